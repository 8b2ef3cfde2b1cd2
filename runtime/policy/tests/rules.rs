//! One test (or a few) per rule of the policy, driven with a fake clock: times are plain
//! milliseconds chosen by the test.

use hmrt_policy::{
    Backoff, ConfigError, Decision, DecisionKind, Engine, Flapping, HoldReason, PolicyConfig,
    PolicyError, RearmHow, Snapshot, State, Status, Timestamp,
};

use DecisionKind as K;
use Status::{Degraded as D, Healthy as H, Unhealthy as F, Unknown as U};

mod common;

use common::*;

// ---- thresholds ----

#[test]
fn consecutive_thresholds() {
    let mut h = Harness::one(PolicyConfig {
        failure_threshold: 3,
        success_threshold: 2,
        ..PolicyConfig::default()
    });
    assert!(h.obs_all("web", &[1, 2], F).is_empty());
    assert_eq!(h.state("web"), State::Unknown);
    let ds = h.obs("web", 3, F);
    assert_eq!(changes(&ds, "web"), [(State::Unknown, State::Unhealthy)]);
    assert!(h.obs("web", 4, H).is_empty(), "one pass is not two");
    assert_eq!(
        changes(&h.obs("web", 5, H), "web"),
        [(State::Unhealthy, State::Healthy)]
    );
    // A pass breaks a run of failures.
    h.obs_all("web", &[6, 7], F);
    h.obs("web", 8, H);
    h.obs_all("web", &[9, 10], F);
    assert_eq!(h.state("web"), State::Healthy);
    h.obs("web", 11, F);
    assert_eq!(h.state("web"), State::Unhealthy);
}

#[test]
fn failure_window_counts_m_of_n() {
    let cfg = PolicyConfig {
        failure_threshold: 3,
        failure_window: Some(5),
        ..PolicyConfig::default()
    };
    let mut h = Harness::one(cfg.clone());
    h.obs("web", 1, H);
    for (t, s) in [(2, F), (3, H), (4, F), (5, H)] {
        h.obs("web", t, s);
        assert_eq!(h.state("web"), State::Healthy);
    }
    let ds = h.obs("web", 6, F);
    assert_eq!(changes(&ds, "web"), [(State::Healthy, State::Unhealthy)]);
    let view = h.engine.view("web", Timestamp(6)).unwrap();
    assert_eq!(view.failures_in_window, Some(3));

    // The same sequence with consecutive counting never gets there.
    let mut h = Harness::one(PolicyConfig {
        failure_window: None,
        ..cfg.clone()
    });
    for (t, s) in [(1, H), (2, F), (3, H), (4, F), (5, H), (6, F)] {
        h.obs("web", t, s);
    }
    assert_eq!(h.state("web"), State::Healthy);

    // Failures older than the window drop out: F F H H H H F is 1 of the last 5.
    let mut h = Harness::one(cfg);
    for (t, s) in [
        (1, H),
        (2, F),
        (3, F),
        (4, H),
        (5, H),
        (6, H),
        (7, H),
        (8, F),
    ] {
        h.obs("web", t, s);
    }
    assert_eq!(h.state("web"), State::Healthy);
}

#[test]
fn degraded_is_a_pass_shown_as_degraded() {
    let mut h = Harness::one(PolicyConfig {
        failure_threshold: 2,
        success_threshold: 2,
        ..acting()
    });
    h.obs("web", 1, D);
    let ds = h.obs("web", 2, D);
    assert_eq!(changes(&ds, "web"), [(State::Unknown, State::Degraded)]);
    // Degraded breaks a failure streak like any pass, and is never acted on.
    let ds: Vec<_> = [(3, F), (4, D), (5, F), (6, D), (7, D)]
        .into_iter()
        .flat_map(|(t, s)| h.obs("web", t, s))
        .collect();
    assert!(acts(&ds, "web").is_empty());
    assert_eq!(h.state("web"), State::Degraded);
    // Up already: each pass shows its own status at once.
    assert_eq!(
        changes(&h.obs("web", 8, H), "web"),
        [(State::Degraded, State::Healthy)]
    );
    assert_eq!(
        changes(&h.obs("web", 9, D), "web"),
        [(State::Healthy, State::Degraded)]
    );
}

#[test]
fn unknown_is_neutral() {
    let mut h = Harness::one(PolicyConfig {
        failure_threshold: 3,
        success_threshold: 2,
        ..acting()
    });
    // Unknowns between failures neither count nor break the run.
    let ds: Vec<_> = [(1, F), (2, U), (3, F), (4, U)]
        .into_iter()
        .flat_map(|(t, s)| h.obs("web", t, s))
        .collect();
    assert!(ds.is_empty());
    assert_eq!(h.engine.state("web").unwrap().consecutive_failures(), 2);
    let ds = h.obs("web", 5, F);
    assert_eq!(acts(&ds, "web"), [1]);
    h.finish("web", 6, true);
    // Nor do they break a run of passes.
    h.obs("web", 7, H);
    h.obs("web", 8, U);
    let ds = h.obs("web", 9, H);
    assert!(kinds(&ds, "web").contains(&K::Recovered { attempt: 1 }));

    // And they never cause an action, however many.
    let mut h = Harness::one(acting());
    let ds = h.obs_all("web", &(1..200).collect::<Vec<_>>(), U);
    assert!(ds.is_empty());
    assert_eq!(h.state("web"), State::Unknown);
}

#[test]
fn without_an_action_a_task_is_tracked_but_never_acts_or_fails() {
    let mut h = Harness::one(PolicyConfig {
        has_action: false,
        max_restarts: 0,
        ..acting()
    });
    let ds = h.obs_all("web", &(1..100).collect::<Vec<_>>(), F);
    assert_eq!(changes(&ds, "web"), [(State::Unknown, State::Unhealthy)]);
    assert!(acts(&ds, "web").is_empty());
    assert_eq!(h.state("web"), State::Unhealthy);
}

// ---- actions and backoff ----

#[test]
fn the_action_runs_on_the_transition_to_unhealthy() {
    let mut h = Harness::one(PolicyConfig {
        failure_threshold: 2,
        ..acting()
    });
    h.obs("web", 1, H);
    assert!(h.obs("web", 2, F).is_empty());
    let ds = h.obs("web", 3, F);
    let k = kinds(&ds, "web");
    assert!(
        matches!(
            &k[..],
            [
                K::StateChanged {
                    from: State::Healthy,
                    to: State::Unhealthy,
                    ..
                },
                K::StateChanged {
                    from: State::Unhealthy,
                    to: State::Restarting,
                    ..
                },
                K::Act { attempt: 1 },
            ]
        ),
        "{k:?}"
    );
    // While it runs, results are recorded but decide nothing.
    assert!(h.obs_all("web", &[4, 5, 6], F).is_empty());
    assert_eq!(h.engine.state("web").unwrap().results().count(), 6);
    let ds = h.finish("web", 10, true);
    assert_eq!(changes(&ds, "web"), [(State::Restarting, State::Unknown)]);
    // The next action needs failure_threshold fresh failures.
    let ds = h.obs("web", 10 + 5 * S, F);
    assert!(acts(&ds, "web").is_empty());
    let ds = h.obs("web", 10 + 6 * S, F);
    assert_eq!(acts(&ds, "web"), [2]);
}

#[test]
fn backoff_doubles_up_to_its_cap_from_the_end_of_the_previous_action() {
    let mut h = Harness::one(acting());
    let mut t = 1_000_000;
    assert_eq!(acts(&h.obs("web", t, F), "web"), [1]);
    let mut seen = Vec::new();
    for attempt in 1..=6u32 {
        // The action takes a while: the delay counts from its end.
        t += 700;
        h.finish("web", t, true);
        let delay = h.next_action("web").unwrap() - t;
        seen.push(delay);
        assert!(acts(&h.obs("web", t + delay - 1, F), "web").is_empty());
        assert_eq!(h.state("web"), State::Unhealthy);
        t += delay;
        assert_eq!(acts(&h.obs("web", t, F), "web"), [attempt + 1]);
    }
    assert_eq!(seen, [S, 2 * S, 4 * S, 5 * S, 5 * S, 5 * S]);
}

#[test]
fn base_delay_formula() {
    let b = Backoff {
        initial: ms(250),
        factor: 3.0,
        max: ms(10 * S),
        jitter: 0.5,
    };
    let got: Vec<u64> = (0..7).map(|k| b.base_delay(k).as_millis() as u64).collect();
    assert_eq!(got, [0, 250, 750, 2250, 6750, 10_000, 10_000]);
    assert_eq!(b.base_delay(u32::MAX), ms(10 * S));
}

#[test]
fn jitter_stays_within_its_fraction_and_is_deterministic() {
    let cfg = PolicyConfig {
        backoff: Backoff {
            initial: ms(10 * S),
            factor: 2.0,
            max: ms(60 * S),
            jitter: 0.2,
        },
        ..acting()
    };
    let delay_for = |seed: u64| {
        let mut h = Harness::seeded(&[("web", cfg.clone())], seed);
        h.obs("web", 0, F);
        h.finish("web", 100, true);
        h.next_action("web").unwrap() - 100
    };
    let delays: Vec<u64> = (0..300).map(delay_for).collect();
    assert!(
        delays.iter().all(|d| (8_000..=12_000).contains(d)),
        "{delays:?}"
    );
    // Spread over the range, not stuck at one value.
    assert!(delays.iter().any(|d| *d < 8_500));
    assert!(delays.iter().any(|d| *d > 11_500));
    assert_eq!(delay_for(42), delay_for(42));
}

#[test]
fn a_failed_run_is_a_failed_attempt_and_the_backoff_continues() {
    let mut h = Harness::one(acting());
    h.obs("web", 0, F);
    let ds = h.finish("web", 100, false);
    let k = kinds(&ds, "web");
    assert!(
        matches!(&k[0], K::AttemptFailed { attempt: 1, reason } if reason.contains("supervisord said no"))
    );
    assert_eq!(h.state("web"), State::Unhealthy);
    assert!(acts(&h.obs("web", 100 + S - 1, F), "web").is_empty());
    assert_eq!(acts(&h.obs("web", 100 + S, F), "web"), [2]);
    let ds = h.finish("web", 200 + S, false);
    assert!(kinds(&ds, "web").contains(&K::AttemptFailed {
        attempt: 2,
        reason: "the action returned an error: supervisord said no".into()
    }));
    assert_eq!(h.next_action("web"), Some(200 + 3 * S));
    let last = h
        .engine
        .state("web")
        .unwrap()
        .actions()
        .last()
        .cloned()
        .unwrap();
    assert_eq!(last.attempt, 2);
    assert_eq!(last.finished, Some(Timestamp(200 + S)));
}

#[test]
fn backoff_resets_only_after_reset_after_of_continuous_health() {
    let mut h = Harness::one(PolicyConfig {
        reset_after: ms(10 * M),
        ..acting()
    });
    // Three actions: the backoff is at 4s.
    let mut t = 0;
    for _ in 0..3 {
        h.obs("web", t, F);
        t += 10;
        h.finish("web", t, true);
        t = h.next_action("web").unwrap();
    }
    assert_eq!(h.engine.state("web").unwrap().backoff_position(), 3);
    // Healthy, but with a break (degraded is still up; an unhealthy spell is not).
    let up = t;
    h.obs("web", up, H);
    h.obs("web", up + 3 * M, D);
    let ds = h.obs("web", up + 10 * M - 1, H);
    assert!(
        !kinds(&ds, "web")
            .iter()
            .any(|k| matches!(k, K::BackoffReset { .. }))
    );
    assert_eq!(h.engine.state("web").unwrap().backoff_position(), 3);
    let ds = h.obs("web", up + 10 * M, H);
    assert!(kinds(&ds, "web").contains(&K::BackoffReset { position: 3 }));
    // The next action is attempt 1 again, at once.
    let t = up + 11 * M;
    assert_eq!(acts(&h.obs("web", t, F), "web"), [1]);
    h.finish("web", t + 1, true);
    assert_eq!(h.next_action("web"), Some(t + 1 + S));

    // A failure in between restarts the clock: healthy 9 min, unhealthy, healthy 9 min.
    let mut h = Harness::one(PolicyConfig {
        reset_after: ms(10 * M),
        failure_threshold: 1,
        ..acting()
    });
    h.obs("web", 0, F);
    h.finish("web", 1, true);
    h.obs("web", 2, H);
    h.obs("web", 9 * M, F); // acts again (attempt 2): the clock stops
    h.finish("web", 9 * M + 1, true);
    h.obs("web", 9 * M + 2, H);
    let ds = h.obs("web", 18 * M, H);
    assert!(kinds(&ds, "web").is_empty());
    assert_eq!(h.engine.state("web").unwrap().backoff_position(), 2);
}

// ---- restart budget and re-arming ----

#[test]
fn a_spent_budget_makes_the_task_failed() {
    let mut h = Harness::one(budget_cfg());
    let t = spend(&mut h, 2, 0);
    let ds = h.obs("web", t, F);
    let k = kinds(&ds, "web");
    assert!(acts(&ds, "web").is_empty());
    assert!(
        matches!(
            &k[..],
            [
                K::StateChanged { from: State::Unknown, to: State::Unhealthy, .. },
                K::AttemptFailed { attempt: 2, .. },
                K::StateChanged { from: State::Unhealthy, to: State::Failed, .. },
                K::Failed { reason }
            ] if reason.contains("2 actions within 1h")
        ),
        "{k:?}"
    );
    // Failed: no more actions, even long after (no rearm_after) and with the window passed.
    let ds = h.obs_all("web", &[t + S, t + 30 * M, t + 3 * 60 * M], F);
    assert!(ds.is_empty(), "{ds:?}");
    assert_eq!(h.state("web"), State::Failed);
}

#[test]
fn the_budget_is_a_trailing_window() {
    let cfg = PolicyConfig {
        restart_window: ms(10 * S),
        ..budget_cfg()
    };
    // Actions at 0 and 1010; a third due at 3020 would be the third within 10s: failed.
    let mut h = Harness::one(cfg.clone());
    let t = spend(&mut h, 2, 0);
    assert_eq!(t, 3020);
    assert_eq!(
        h.engine
            .view("web", Timestamp(t))
            .unwrap()
            .restarts_in_window,
        2
    );
    let ds = h.obs("web", t, F);
    assert!(
        kinds(&ds, "web")
            .iter()
            .any(|k| matches!(k, K::Failed { .. }))
    );

    // Due only at 10s, the first action has left the window: there is room for a third.
    let mut h = Harness::one(cfg);
    spend(&mut h, 2, 0);
    assert_eq!(
        h.engine
            .view("web", Timestamp(10 * S))
            .unwrap()
            .restarts_in_window,
        1
    );
    assert_eq!(acts(&h.obs("web", 10 * S, F), "web"), [3]);
}

#[test]
fn rearm_by_recovering() {
    let mut h = Harness::one(PolicyConfig {
        success_threshold: 2,
        ..budget_cfg()
    });
    let t = spend(&mut h, 2, 0);
    h.obs("web", t, F);
    assert_eq!(h.state("web"), State::Failed);
    assert!(h.obs("web", t + 1, H).is_empty());
    let ds = h.obs("web", t + 2, H);
    let k = kinds(&ds, "web");
    assert!(
        matches!(
            &k[..],
            [
                K::StateChanged {
                    from: State::Failed,
                    to: State::Healthy,
                    ..
                },
                K::Rearmed {
                    how: RearmHow::Recovered
                }
            ]
        ),
        "{k:?}"
    );
    // Re-armed means it: the spent restarts no longer count, so the next incident acts at once
    // (the backoff carries on: attempt 3) instead of going straight back to failed.
    let ds = h.obs("web", t + 3, F);
    assert_eq!(acts(&ds, "web"), [3]);
    assert!(
        !kinds(&ds, "web")
            .iter()
            .any(|k| matches!(k, K::Failed { .. }))
    );
    let v = h.engine.view("web", Timestamp(t + 3)).unwrap();
    assert_eq!(v.restarts_in_window, 1);
}

#[test]
fn max_restarts_of_zero_is_refused_for_a_task_with_an_action() {
    let zero = PolicyConfig {
        max_restarts: 0,
        ..acting()
    };
    let problem = zero.validate().unwrap_err();
    assert_eq!(problem.field, "max_restarts");
    assert_eq!(
        problem.to_string(),
        "max_restarts: must be at least 1; to never act, leave out on_failure"
    );
    let configs = [("web".to_string(), zero.clone())].into_iter().collect();
    assert!(matches!(
        Engine::new(configs, 0),
        Err(ConfigError::Invalid { task, problem }) if task == "web" && problem.field == "max_restarts"
    ));
    // Without an action the budget is never used: 0 is fine.
    let quiet = PolicyConfig {
        has_action: false,
        ..zero
    };
    assert_eq!(quiet.validate(), Ok(()));
}

#[test]
fn rearm_after_elapsed() {
    let mut h = Harness::one(PolicyConfig {
        rearm_after: Some(ms(10 * M)),
        ..budget_cfg()
    });
    let t = spend(&mut h, 2, 0);
    h.obs("web", t, F);
    assert_eq!(h.state("web"), State::Failed);
    assert!(h.obs("web", t + 10 * M - 1, F).is_empty());
    // Evaluated at the first observation after the time: it counts as a fresh failure.
    let ds = h.obs("web", t + 10 * M, F);
    let k = kinds(&ds, "web");
    assert!(
        matches!(
            &k[..],
            [
                K::StateChanged {
                    from: State::Failed,
                    to: State::Unknown,
                    ..
                },
                K::Rearmed {
                    how: RearmHow::Elapsed
                },
                K::StateChanged {
                    from: State::Unknown,
                    to: State::Unhealthy,
                    ..
                },
                K::StateChanged {
                    from: State::Unhealthy,
                    to: State::Restarting,
                    ..
                },
                K::Act { attempt: 3 },
            ]
        ),
        "{k:?}"
    );
    // The budget history was cleared: one action in the window, the new one.
    let v = h.engine.view("web", Timestamp(t + 10 * M)).unwrap();
    assert_eq!(v.restarts_in_window, 1);
}

#[test]
fn rearm_by_a_person() {
    let mut h = Harness::one(budget_cfg());
    assert_eq!(
        h.engine.rearm("web", Timestamp(0)),
        Err(PolicyError::NotFailed {
            task: "web".into(),
            state: State::Unknown
        })
    );
    let t = spend(&mut h, 2, 0);
    h.obs("web", t, F);
    let ds = h.engine.rearm("web", Timestamp(t + 5)).unwrap();
    let k = kinds(&ds, "web");
    assert!(
        matches!(
            &k[..],
            [
                K::StateChanged {
                    from: State::Failed,
                    to: State::Unknown,
                    ..
                },
                K::Rearmed {
                    how: RearmHow::Person
                }
            ]
        ),
        "{k:?}"
    );
    // Budget and backoff start over: the next failure acts at once, as attempt 1.
    assert_eq!(acts(&h.obs("web", t + 6, F), "web"), [1]);
}

// ---- start period ----

#[test]
fn start_period_ignores_failures_and_a_pass_run_recovers() {
    let mut h = Harness::one(start_cfg());
    h.obs("web", 0, F);
    h.finish("web", 1000, true);
    let end = 31_000;
    assert_eq!(
        h.engine.state("web").unwrap().start_period_end(),
        Some(Timestamp(end))
    );
    let ds = h.obs_all("web", &[2000, 10_000, 20_000, end - 1], F);
    assert!(ds.is_empty(), "{ds:?}");
    assert_eq!(h.engine.state("web").unwrap().consecutive_failures(), 0);
    h.obs("web", end - 2, H);
    let ds = h.obs("web", end - 1, H);
    let k = kinds(&ds, "web");
    assert!(
        matches!(
            &k[..],
            [
                K::StateChanged {
                    from: State::Unknown,
                    to: State::Healthy,
                    ..
                },
                K::Recovered { attempt: 1 }
            ]
        ),
        "{k:?}"
    );
}

#[test]
fn a_pass_run_that_completes_after_the_start_period_is_too_late() {
    let mut h = Harness::one(start_cfg());
    h.obs("web", 0, F);
    h.finish("web", 1000, true);
    h.obs("web", 30_999, H);
    let ds = h.obs("web", 31_000, H);
    let k = kinds(&ds, "web");
    assert!(
        matches!(
            &k[..],
            [
                K::AttemptFailed { attempt: 1, .. },
                K::StateChanged {
                    from: State::Unknown,
                    to: State::Unhealthy,
                    ..
                },
                K::StateChanged {
                    from: State::Unhealthy,
                    to: State::Healthy,
                    ..
                },
            ]
        ),
        "{k:?}"
    );
}

#[test]
fn a_pass_run_ends_the_start_period_early() {
    let mut h = Harness::one(start_cfg());
    h.obs("web", 0, F);
    h.finish("web", 1000, true);
    h.obs_all("web", &[2000, 3000], H);
    assert_eq!(h.engine.state("web").unwrap().start_period_end(), None);
    // So a failure now counts (and acts, the backoff of 1s having elapsed).
    assert_eq!(acts(&h.obs("web", 4000, F), "web"), [2]);
}

#[test]
fn a_start_period_that_runs_out_is_a_failed_attempt() {
    let mut h = Harness::one(start_cfg());
    h.obs("web", 0, F);
    h.finish("web", 1000, true);
    // One pass is not success_threshold.
    h.obs("web", 5000, H);
    assert!(h.obs("web", 30_999, F).is_empty());
    let ds = h.obs("web", 31_000, F);
    let k = kinds(&ds, "web");
    assert!(
        matches!(
            &k[..],
            [
                K::AttemptFailed { attempt: 1, reason },
                K::StateChanged { from: State::Unknown, to: State::Unhealthy, .. },
                K::StateChanged { from: State::Unhealthy, to: State::Restarting, .. },
                K::Act { attempt: 2 },
            ] if reason.contains("start period of 30s")
        ),
        "{k:?}"
    );
}

#[test]
fn a_start_period_ending_on_an_unknown_leaves_the_task_unhealthy() {
    let mut h = Harness::one(PolicyConfig {
        failure_threshold: 2,
        ..start_cfg()
    });
    h.obs("web", 0, F);
    h.obs("web", 1, F);
    h.finish("web", 1000, true);
    let ds = h.obs("web", 40_000, U);
    assert!(kinds(&ds, "web").contains(&K::AttemptFailed {
        attempt: 1,
        reason: "the start period of 30s ended before 2 passing checks".into()
    }));
    assert_eq!(h.state("web"), State::Unhealthy);
    // Unhealthy, but the next action still needs failure_threshold fresh failures.
    assert!(acts(&h.obs("web", 41_000, F), "web").is_empty());
    assert_eq!(acts(&h.obs("web", 42_000, F), "web"), [2]);
}

#[test]
fn without_a_start_period_the_thresholds_decide_the_attempt() {
    let mut h = Harness::one(PolicyConfig {
        failure_threshold: 2,
        ..acting()
    });
    h.obs_all("web", &[0, 1], F);
    h.finish("web", 10, true);
    let ds = h.obs_all("web", &[20, 30], F);
    assert!(kinds(&ds, "web").iter().any(|k| matches!(
        k,
        K::AttemptFailed { attempt: 1, reason } if reason.contains("failed again")
    )));
    assert_eq!(h.state("web"), State::Unhealthy);
}

// ---- dependencies ----

fn api_db() -> Harness {
    let db = PolicyConfig {
        failure_threshold: 2,
        ..acting()
    };
    let api = PolicyConfig {
        failure_threshold: 2,
        depends_on: vec!["db".into()],
        ..acting()
    };
    Harness::new(&[("api", api), ("db", db)])
}

#[test]
fn api_is_not_restarted_when_db_died() {
    let mut h = api_db();
    // At the start db is unknown: api is held until db is up.
    let ds = h.obs("db", 0, H);
    assert_eq!(
        kinds(&ds, "api"),
        [
            K::Held {
                reason: HoldReason::Dependency {
                    tasks: vec!["db".into()]
                }
            },
            K::HoldLifted {
                reason: HoldReason::Dependency {
                    tasks: vec!["db".into()]
                }
            }
        ]
    );
    h.obs("api", 1, H);

    // db dies; api's check fails with it, and api is checked more often.
    let mut all = Vec::new();
    all.extend(h.obs("api", 1000, F));
    all.extend(h.obs("db", 1000, F));
    all.extend(h.obs("api", 1500, F));
    // api reached its threshold before db's death was seen: nothing can hold it then. That is
    // the limit of depends_on; from here on, db is seen to die first.
    assert_eq!(acts(&all, "api"), [1]);

    let mut h = api_db();
    h.obs("db", 0, H);
    h.obs("api", 1, H);
    let mut all = Vec::new();
    all.extend(h.obs("db", 1000, F));
    all.extend(h.obs("api", 1000, F));
    let ds = h.obs("db", 2000, F); // db unhealthy and restarting; api held in the same call
    assert_eq!(acts(&ds, "db"), [1]);
    assert!(kinds(&ds, "api").contains(&K::Held {
        reason: HoldReason::Dependency {
            tasks: vec!["db".into()]
        }
    }));
    all.extend(ds);
    // api keeps failing while db restarts: reported, never acted on, held said once.
    for t in (2500..10_000).step_by(500) {
        all.extend(h.obs("api", t, F));
    }
    assert_eq!(h.state("api"), State::Unhealthy);
    assert!(acts(&all, "api").is_empty());
    assert_eq!(
        kinds(&all, "api")
            .iter()
            .filter(|k| matches!(k, K::Held { .. }))
            .count(),
        1
    );
    // db comes back: the hold lifts and api's failures seen while held are forgotten.
    h.finish("db", 10_000, true);
    let ds = h.obs("db", 11_000, H);
    assert!(
        kinds(&ds, "api")
            .iter()
            .any(|k| matches!(k, K::HoldLifted { .. }))
    );
    assert_eq!(h.engine.state("api").unwrap().consecutive_failures(), 0);
    // One stale failure from api (its check raced db's recovery) does not restart it.
    assert!(acts(&h.obs("api", 11_500, F), "api").is_empty());
    h.obs("api", 12_000, H);
    assert_eq!(h.state("api"), State::Healthy);
    assert!(acts(&all, "api").is_empty());
}

#[test]
fn a_dependent_acts_after_fresh_failures_once_the_hold_lifts() {
    let mut h = api_db();
    h.obs("db", 0, H);
    h.obs("db", 100, F);
    h.obs("db", 200, F);
    h.obs_all("api", &[300, 400, 500], F);
    h.finish("db", 600, true);
    h.obs("db", 700, H);
    assert!(acts(&h.obs("api", 800, F), "api").is_empty());
    assert_eq!(acts(&h.obs("api", 900, F), "api"), [1]);
}

#[test]
fn every_not_up_state_of_a_dependency_holds() {
    let mut h = api_db();
    h.obs("db", 0, H);
    h.obs("api", 0, H);
    for (t, s, expect_held) in [(1, F, false), (2, F, true), (3, D, true)] {
        h.obs("db", t, s);
        let held = !h.engine.state("api").unwrap().held_by().is_empty();
        assert_eq!(held, expect_held, "db {s} at {t}: {:?}", h.state("db"));
    }
    // db restarting, then unknown after its action, then degraded (up).
    assert_eq!(h.state("db"), State::Restarting);
    h.finish("db", 4, true);
    assert_eq!(h.state("db"), State::Unknown);
    assert_eq!(h.engine.state("api").unwrap().held_by(), ["db"]);
    h.obs("db", 5, D);
    assert!(h.engine.state("api").unwrap().held_by().is_empty());
    let v = h.engine.view("api", Timestamp(5)).unwrap();
    assert!(v.held.is_empty());
}

#[test]
fn construction_rejects_unknown_dependencies_cycles_and_bad_values() {
    let dep = |d: &[&str]| PolicyConfig {
        depends_on: d.iter().map(|s| s.to_string()).collect(),
        ..PolicyConfig::default()
    };
    let build = |tasks: Vec<(&str, PolicyConfig)>| {
        Engine::new(
            tasks.into_iter().map(|(n, c)| (n.to_string(), c)).collect(),
            0,
        )
        .map(|_| ())
    };
    assert_eq!(
        build(vec![("api", dep(&["db"]))]),
        Err(ConfigError::UnknownDependency {
            task: "api".into(),
            dependency: "db".into()
        })
    );
    let err = build(vec![
        ("a", dep(&["b"])),
        ("b", dep(&["c"])),
        ("c", dep(&["a"])),
        ("d", dep(&["a"])),
    ])
    .unwrap_err();
    assert_eq!(
        err,
        ConfigError::Cycle {
            tasks: vec!["a".into(), "b".into(), "c".into(), "a".into()]
        }
    );
    assert_eq!(err.to_string(), "dependency cycle: a -> b -> c -> a");
    assert_eq!(
        build(vec![("a", dep(&["a"]))]),
        Err(ConfigError::Cycle {
            tasks: vec!["a".into(), "a".into()]
        })
    );
    // A diamond is not a cycle.
    assert_eq!(
        build(vec![
            ("a", dep(&["b", "c"])),
            ("b", dep(&["d"])),
            ("c", dep(&["d"])),
            ("d", dep(&[])),
        ]),
        Ok(())
    );
    let bad = PolicyConfig {
        failure_threshold: 0,
        ..PolicyConfig::default()
    };
    assert!(matches!(
        build(vec![("web", bad)]),
        Err(ConfigError::Invalid { task, problem }) if task == "web" && problem.field == "failure_threshold"
    ));
    let bad = PolicyConfig {
        failure_window: Some(2),
        ..PolicyConfig::default()
    };
    assert!(matches!(
        build(vec![("web", bad)]),
        Err(ConfigError::Invalid { .. })
    ));
    let mut bad = PolicyConfig::default();
    bad.backoff.factor = 0.5;
    assert!(matches!(
        build(vec![("web", bad)]),
        Err(ConfigError::Invalid { .. })
    ));
    let mut bad = PolicyConfig::default();
    bad.backoff.jitter = f64::NAN;
    assert!(matches!(
        build(vec![("web", bad)]),
        Err(ConfigError::Invalid { .. })
    ));
}

// ---- flapping ----

#[test]
fn flapping_holds_actions_until_a_quiet_window() {
    let mut h = Harness::one(flapping_cfg());
    h.obs("web", 0, H); // up (no change yet: nothing before)
    h.obs("web", 1000, F); // down: change 1, acts
    h.finish("web", 1100, true);
    h.obs("web", 2000, H); // up: change 2
    let ds = h.obs("web", 3000, F); // down: change 3 > 2
    let k = kinds(&ds, "web");
    assert!(
        matches!(
            &k[..],
            [
                K::StateChanged {
                    to: State::Unhealthy,
                    ..
                },
                K::Held {
                    reason: HoldReason::Flapping {
                        changes: 3,
                        window_ms: 60_000
                    }
                },
            ]
        ),
        "{k:?}"
    );
    assert!(h.engine.state("web").unwrap().is_flapping());
    // Still failing, backoff long elapsed: held for the whole window after the last change.
    let ds = h.obs_all("web", &[4000, 30_000, 62_999], F);
    assert!(ds.is_empty(), "{ds:?}");
    let ds = h.obs("web", 63_000, F);
    let k = kinds(&ds, "web");
    assert!(
        matches!(
            &k[..],
            [
                K::HoldLifted {
                    reason: HoldReason::Flapping { .. }
                },
                K::StateChanged {
                    to: State::Restarting,
                    ..
                },
                K::Act { attempt: 2 },
            ]
        ),
        "{k:?}"
    );
}

#[test]
fn healthy_and_degraded_are_the_same_side_for_flapping() {
    let mut h = Harness::one(flapping_cfg());
    let ds: Vec<_> = (0..20)
        .flat_map(|i| h.obs("web", i * 100, if i % 2 == 0 { H } else { D }))
        .collect();
    assert!(!ds.iter().any(|d| matches!(d.kind, K::Held { .. })));
    assert!(!h.engine.state("web").unwrap().is_flapping());
}

// ---- durable state ----

fn roundtrip(e: &Engine) -> Snapshot {
    let json = serde_json::to_string(&e.export()).unwrap();
    serde_json::from_str(&json).unwrap()
}

#[test]
fn restore_mid_backoff_continues_with_the_same_budget_and_position() {
    let cfg = PolicyConfig {
        backoff: Backoff {
            initial: ms(10 * S),
            factor: 2.0,
            max: ms(10 * M),
            jitter: 0.3,
        },
        max_restarts: 3,
        ..acting()
    };
    let mut a = Harness::seeded(&[("web", cfg.clone())], 7);
    a.obs("web", 0, F);
    a.finish("web", 100, true);
    a.obs("web", 200, F);
    let t = a.next_action("web").unwrap();
    a.obs("web", t, F);
    a.finish("web", t + 100, true);
    let due = a.next_action("web").unwrap();
    assert!(due > t + 100 + 14 * S);

    // The daemon is killed here and starts again (with another seed: the state carries it).
    let mut b = Harness::seeded(&[("web", cfg)], 99);
    let report = b.engine.restore(roundtrip(&a.engine)).unwrap();
    assert_eq!(report.restored, ["web"]);
    assert_eq!(b.next_action("web"), Some(due));
    let v = b.engine.view("web", Timestamp(due)).unwrap();
    assert_eq!((v.restarts_in_window, v.backoff_position), (2, 2));

    let script = |h: &mut Harness| {
        let mut ds = h.obs("web", due - 1, F);
        ds.extend(h.obs("web", due, F));
        ds.extend(h.finish("web", due + 50, true));
        let next = h.next_action("web").unwrap();
        ds.extend(h.obs("web", next, F));
        (ds, next)
    };
    let (da, na) = script(&mut a);
    let (db, nb) = script(&mut b);
    assert_eq!(da, db);
    assert_eq!(na, nb);
    // Attempt 3 was the last the budget allowed.
    assert_eq!(acts(&db, "web"), [3]);
    assert!(
        kinds(&db, "web")
            .iter()
            .any(|k| matches!(k, K::Failed { .. }))
    );
}

#[test]
fn restoring_into_a_changed_config_does_not_panic() {
    let old = PolicyConfig {
        failure_threshold: 3,
        failure_window: Some(10),
        flapping: Some(Flapping {
            max_changes: 1,
            window: ms(M),
        }),
        ..acting()
    };
    let mut a = Harness::new(&[("web", old.clone()), ("gone", old.clone())]);
    for t in 0..5 {
        a.obs("web", t, if t % 2 == 0 { F } else { H });
    }
    a.obs_all("web", &[10, 11, 12], F);
    assert_eq!(a.state("web"), State::Restarting);
    let snap = roundtrip(&a.engine);

    let new = PolicyConfig {
        failure_threshold: 1,
        failure_window: None,
        flapping: None,
        has_action: false,
        depends_on: vec!["db".into()],
        ..PolicyConfig::default()
    };
    let mut b = Harness::new(&[("web", new), ("db", PolicyConfig::default())]);
    let report = b.engine.restore(snap.clone()).unwrap();
    assert_eq!(report.restored, ["web"]);
    assert_eq!(report.dropped, ["gone"]);
    assert_eq!(report.fresh, ["db"]);
    // No action any more: the running action cannot be waited for.
    assert_eq!(b.state("web"), State::Unknown);
    b.obs("web", 20, F);
    assert_eq!(b.state("web"), State::Unhealthy);

    // The same snapshot into a config with an action: the running action is interrupted.
    let mut c = Harness::new(&[("web", old)]);
    c.engine.restore(snap).unwrap();
    assert_eq!(c.state("web"), State::Restarting);
    let ds = c.engine.interrupt_running(Timestamp(30));
    assert!(kinds(&ds, "web").iter().any(
        |k| matches!(k, K::AttemptFailed { attempt: 1, reason } if reason.contains("interrupted"))
    ));
    assert_eq!(c.state("web"), State::Unhealthy);

    // A version this crate does not read is an error, not a guess.
    let mut bad = c.engine.export();
    bad.version = 99;
    assert!(c.engine.restore(bad).is_err());
    // Fields missing from a stored task state take defaults.
    let partial: Snapshot =
        serde_json::from_str(r#"{"version":1,"tasks":{"web":{"state":"failed"}}}"#).unwrap();
    c.engine.restore(partial).unwrap();
    assert_eq!(c.state("web"), State::Failed);
    c.obs("web", 40, H);
    assert_eq!(c.state("web"), State::Healthy);
}

// ---- the API's edges ----

#[test]
fn errors_for_calls_that_make_no_sense() {
    let mut h = Harness::one(acting());
    assert_eq!(
        h.engine.observe("nope", Timestamp(0), H, ""),
        Err(PolicyError::UnknownTask {
            task: "nope".into()
        })
    );
    assert_eq!(
        h.engine
            .action_finished("web", Timestamp(0), Ok(String::new())),
        Err(PolicyError::NoActionRunning {
            task: "web".into(),
            state: State::Unknown
        })
    );
    // A clock that steps back does not panic anything.
    h.obs("web", 10_000, F);
    h.finish("web", 5, true);
    h.obs("web", 1, F);
}

#[test]
fn results_are_a_bounded_ring_with_cut_messages() {
    let mut h = Harness::one(acting());
    for t in 0..120 {
        h.engine
            .observe("web", Timestamp(t), U, &"x".repeat(5000))
            .unwrap();
    }
    let st = h.engine.state("web").unwrap();
    assert_eq!(st.results().count(), hmrt_policy::MAX_RESULTS);
    assert_eq!(st.results().next().unwrap().at, Timestamp(70));
    assert!(st.last_message().unwrap().len() <= hmrt_policy::MAX_MESSAGE_BYTES + 4);
}

#[test]
fn names_display_and_serialise_in_lowercase() {
    assert_eq!(Status::Degraded.to_string(), "degraded");
    assert_eq!(State::Failed.to_string(), "failed");
    assert_eq!(State::Restarting.to_string(), "restarting");
    assert_eq!(
        serde_json::to_string(&State::Restarting).unwrap(),
        "\"restarting\""
    );
    assert_eq!(
        serde_json::to_string(&Status::Unhealthy).unwrap(),
        "\"unhealthy\""
    );
    assert_eq!("unknown".parse::<Status>(), Ok(Status::Unknown));
    assert_eq!("failed".parse::<State>(), Ok(State::Failed));
    assert!("Healthy".parse::<Status>().is_err());
    let d = Decision {
        task: "web".into(),
        at: Timestamp(5),
        kind: K::Act { attempt: 2 },
    };
    let json = serde_json::to_string(&d).unwrap();
    assert_eq!(
        json,
        r#"{"task":"web","at":5,"decision":"act","attempt":2}"#
    );
    assert_eq!(serde_json::from_str::<Decision>(&json).unwrap(), d);
    assert_eq!(d.to_string(), "web: act (attempt 2)");
    let held = K::Held {
        reason: HoldReason::Dependency {
            tasks: vec!["db".into()],
        },
    };
    assert_eq!(held.to_string(), "held: dependency db not healthy");
}

#[test]
fn durations_in_messages_are_written_by_the_one_formatter() {
    let mut h = Harness::one(PolicyConfig {
        restart_window: ms(90 * S),
        rearm_after: Some(ms(90 * S)),
        ..budget_cfg()
    });
    let t = spend(&mut h, 2, 0);
    let ds = h.obs("web", t, F);
    assert!(
        kinds(&ds, "web").iter().any(|k| matches!(
            k,
            K::Failed { reason } if reason == "restart budget spent: 2 actions within 1m30s"
        )),
        "{ds:?}"
    );
    let ds = h.obs("web", t + 90 * S, U);
    assert!(
        kinds(&ds, "web").iter().any(|k| matches!(
            k,
            K::StateChanged { from: State::Failed, reason, .. } if reason == "re-armed: failed for 1m30s"
        )),
        "{ds:?}"
    );

    let mut h = Harness::one(PolicyConfig {
        start_period: ms(1500),
        ..start_cfg()
    });
    h.obs("web", 0, F);
    h.finish("web", 10, true);
    let ds = h.obs("web", 2 * S, U);
    assert!(kinds(&ds, "web").contains(&K::AttemptFailed {
        attempt: 1,
        reason: "the start period of 1s500ms ended before 2 passing checks".into()
    }));

    let flapping = HoldReason::Flapping {
        changes: 3,
        window_ms: 90_000,
    };
    assert_eq!(
        flapping.to_string(),
        "flapping: 3 state changes within 1m30s"
    );
}

// ---- pause ----

#[test]
fn a_paused_task_is_checked_but_does_not_act_until_resumed() {
    let mut h = Harness::one(PolicyConfig {
        failure_threshold: 2,
        ..acting()
    });
    h.obs("web", 1, H);
    let ds = h.engine.set_paused("web", Timestamp(2), true).unwrap();
    assert_eq!(
        kinds(&ds, "web"),
        [K::Held {
            reason: HoldReason::Paused
        }]
    );
    // Pausing again decides nothing.
    assert!(
        h.engine
            .set_paused("web", Timestamp(3), true)
            .unwrap()
            .is_empty()
    );
    let ds = h.obs_all("web", &[10, 20, 30], F);
    assert_eq!(changes(&ds, "web"), [(State::Healthy, State::Unhealthy)]);
    assert!(acts(&ds, "web").is_empty());
    assert_eq!(
        h.next_wake("web"),
        None,
        "a paused task has no action timer"
    );
    let state = h.engine.state("web").unwrap();
    assert!(state.is_paused());
    assert_eq!(state.results().count(), 4, "results are still recorded");
    // The pause is part of the durable state.
    let json = serde_json::to_string(state).unwrap();
    let back: hmrt_policy::TaskState = serde_json::from_str(&json).unwrap();
    assert!(back.is_paused());
    // Resuming acts at once: the failure threshold is met and no backoff is running.
    let ds = h.engine.set_paused("web", Timestamp(40), false).unwrap();
    let k = kinds(&ds, "web");
    assert_eq!(
        k[0],
        K::HoldLifted {
            reason: HoldReason::Paused
        }
    );
    assert_eq!(acts(&ds, "web"), [1]);
    assert!(
        h.engine
            .set_paused("web", Timestamp(41), false)
            .unwrap()
            .is_empty()
    );
}
