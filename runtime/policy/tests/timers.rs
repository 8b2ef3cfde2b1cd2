//! Exact-time timers: `next_wake` says when a timer of a task is due, and `wake` at that instant
//! takes the decision then, not at the next check result.

use hmrt_policy::{
    Backoff, DecisionKind, HoldReason, PolicyConfig, PolicyError, RearmHow, Snapshot, State,
    Status, Timestamp,
};

use DecisionKind as K;
use Status::{Healthy as H, Unhealthy as F};

mod common;

use common::*;

/// Results every 10s; a fixed 15s backoff.
fn fixed_15s() -> PolicyConfig {
    PolicyConfig {
        failure_threshold: 1,
        backoff: Backoff {
            initial: ms(15 * S),
            factor: 1.0,
            max: ms(15 * S),
            jitter: 0.0,
        },
        ..acting()
    }
}

fn all_at(ds: &[hmrt_policy::Decision], t: u64) -> bool {
    ds.iter().all(|d| d.at == Timestamp(t))
}

#[test]
fn the_backoff_running_out_between_checks_acts_at_that_instant() {
    let mut h = Harness::one(fixed_15s());
    assert_eq!(h.next_wake("web"), None);
    assert_eq!(acts(&h.obs("web", 0, F), "web"), [1]);
    assert_eq!(
        h.next_wake("web"),
        None,
        "an action runs: its outcome is awaited"
    );
    h.finish("web", 0, true);
    assert_eq!(h.next_wake("web"), None, "the check decides the attempt");
    let ds = h.obs("web", 10 * S, F);
    assert!(
        kinds(&ds, "web")
            .iter()
            .any(|k| matches!(k, K::AttemptFailed { attempt: 1, .. }))
    );
    assert!(acts(&ds, "web").is_empty(), "the backoff runs until 15s");
    assert_eq!(h.next_wake("web"), Some(15 * S));

    assert!(h.wake("web", 15 * S - 1).is_empty(), "too early");
    let ds = h.wake("web", 15 * S);
    let k = kinds(&ds, "web");
    assert!(
        matches!(
            &k[..],
            [
                K::StateChanged { from: State::Unhealthy, to: State::Restarting, reason },
                K::Act { attempt: 2 },
            ] if reason == "attempt 2: unhealthy at 10000"
        ),
        "{k:?}"
    );
    assert!(all_at(&ds, 15 * S), "{ds:?}");
    assert_eq!(h.next_wake("web"), None);
    // The check at 20s finds the action running: recorded, nothing decided.
    assert!(h.obs("web", 20 * S, F).is_empty());
    // Waking again decides nothing more.
    assert!(h.wake("web", 21 * S).is_empty());
}

#[test]
fn a_late_call_first_applies_what_was_due() {
    // Without a wake the next check catches up, at its own time: the due action is not undone
    // by a passing result that arrives after it was due.
    for status in [F, H, Status::Unknown] {
        let mut h = Harness::one(fixed_15s());
        h.obs("web", 0, F);
        h.finish("web", 0, true);
        h.obs("web", 10 * S, F);
        let ds = h.obs("web", 20 * S, status);
        assert_eq!(acts(&ds, "web"), [2], "{status}");
        assert!(all_at(&ds, 20 * S));
        assert_eq!(h.state("web"), State::Restarting);
    }
}

#[test]
fn a_start_period_running_out_between_checks_fails_the_attempt_at_its_end() {
    let mut h = Harness::one(start_cfg());
    h.obs("web", 0, F);
    h.finish("web", 1000, true);
    assert_eq!(h.next_wake("web"), Some(31_000));
    h.obs("web", 10_000, H); // one pass of the two needed
    assert_eq!(h.next_wake("web"), Some(31_000));
    assert!(h.wake("web", 30_999).is_empty());
    let ds = h.wake("web", 31_000);
    let k = kinds(&ds, "web");
    assert!(
        matches!(
            &k[..],
            [
                K::AttemptFailed { attempt: 1, reason },
                K::StateChanged { from: State::Unknown, to: State::Unhealthy, .. },
            ] if reason == "the start period of 30s ended before 2 passing checks"
        ),
        "{k:?}"
    );
    assert!(all_at(&ds, 31_000));
    // No failure counted since the action: the next action needs a fresh one.
    assert_eq!(h.next_wake("web"), None);
    assert_eq!(acts(&h.obs("web", 40_000, F), "web"), [2]);
}

#[test]
fn rearm_after_running_out_between_checks_rearms_at_that_instant() {
    let mut h = Harness::one(PolicyConfig {
        rearm_after: Some(ms(10 * M)),
        ..budget_cfg()
    });
    let t = spend(&mut h, 2, 0);
    h.obs("web", t, F);
    assert_eq!(h.state("web"), State::Failed);
    assert_eq!(h.next_wake("web"), Some(t + 10 * M));
    assert!(h.wake("web", t + 10 * M - 1).is_empty());
    let ds = h.wake("web", t + 10 * M);
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
            ]
        ),
        "{k:?}"
    );
    assert!(all_at(&ds, t + 10 * M));
    assert_eq!(h.next_wake("web"), None);
    let v = h.engine.view("web", Timestamp(t + 10 * M)).unwrap();
    assert_eq!((v.state, v.restarts_in_window), (State::Unknown, 0));
}

#[test]
fn a_spent_budget_makes_the_task_failed_when_the_backoff_runs_out() {
    let mut h = Harness::one(budget_cfg());
    h.obs("web", 0, F);
    h.finish("web", 10, true);
    h.obs("web", 500, F);
    assert_eq!(h.next_wake("web"), Some(1010));
    assert_eq!(acts(&h.wake("web", 1010), "web"), [2]);
    h.finish("web", 1020, true);
    h.obs("web", 2000, F);
    assert_eq!(h.next_wake("web"), Some(3020));
    let ds = h.wake("web", 3020);
    let k = kinds(&ds, "web");
    assert!(
        matches!(
            &k[..],
            [
                K::StateChanged { from: State::Unhealthy, to: State::Failed, .. },
                K::Failed { reason },
            ] if reason == "restart budget spent: 2 actions within 1h"
        ),
        "{k:?}"
    );
    assert!(all_at(&ds, 3020));
    assert_eq!(h.next_wake("web"), None, "failed, and no rearm_after");
}

#[test]
fn a_flapping_hold_lifts_and_the_task_acts_when_the_last_change_leaves_the_window() {
    let mut h = Harness::one(flapping_cfg());
    h.obs("web", 0, H);
    h.obs("web", 1000, F);
    h.finish("web", 1100, true);
    h.obs("web", 2000, H);
    h.obs("web", 3000, F); // the third change: held
    assert!(h.engine.state("web").unwrap().is_flapping());
    assert_eq!(h.next_wake("web"), Some(63_000));
    h.obs("web", 10_000, F);
    assert_eq!(h.next_wake("web"), Some(63_000));
    assert!(h.wake("web", 62_999).is_empty());
    let ds = h.wake("web", 63_000);
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
    assert!(all_at(&ds, 63_000));
}

#[test]
fn nothing_is_pending_while_a_dependency_holds_the_task_or_without_an_action() {
    let db = PolicyConfig {
        failure_threshold: 1,
        ..acting()
    };
    let api = PolicyConfig {
        depends_on: vec!["db".into()],
        ..fixed_15s()
    };
    let quiet = PolicyConfig {
        has_action: false,
        ..acting()
    };
    let mut h = Harness::new(&[("api", api), ("db", db), ("quiet", quiet)]);
    h.obs("db", 0, H);
    h.obs("api", 1, F);
    h.finish("api", 2, true);
    h.obs("api", 3, F);
    assert_eq!(h.next_wake("api"), Some(15 * S + 2));
    // db goes down: api is held, so its backoff running out changes nothing.
    h.obs("db", 4, F);
    assert_eq!(h.engine.state("api").unwrap().held_by(), ["db"]);
    assert_eq!(h.next_wake("api"), None);
    assert!(h.wake("api", 20 * S).is_empty());
    assert_eq!(h.state("api"), State::Unhealthy);

    h.obs_all("quiet", &[0, 1, 2], F);
    assert_eq!(h.state("quiet"), State::Unhealthy);
    assert_eq!(h.next_wake("quiet"), None);
    assert!(h.wake("quiet", 30 * S).is_empty());

    assert_eq!(h.engine.next_wake("nope"), None);
    assert_eq!(
        h.engine.wake("nope", Timestamp(0)),
        Err(PolicyError::UnknownTask {
            task: "nope".into()
        })
    );
}

#[test]
fn a_wake_keeps_the_dependency_holds_current() {
    let db = PolicyConfig {
        failure_threshold: 1,
        ..acting()
    };
    let api = PolicyConfig {
        depends_on: vec!["db".into()],
        ..acting()
    };
    let tasks = [("api", api), ("db", db)];
    // The first call of a new engine catches up on the holds, whichever call it is.
    let mut h = Harness::new(&tasks);
    let ds = h.wake("db", 0);
    assert_eq!(
        kinds(&ds, "api"),
        [K::Held {
            reason: HoldReason::Dependency {
                tasks: vec!["db".into()]
            }
        }]
    );
    assert!(h.wake("db", 1).is_empty(), "and only once");

    // So does the first call after a restore: here the saved holds say nothing of db's state.
    let mut h = Harness::new(&tasks);
    h.obs("db", 0, H);
    let saved: Snapshot = serde_json::from_str(
        r#"{"version":1,"tasks":{"api":{"state":"healthy"},"db":{"state":"unhealthy"}}}"#,
    )
    .unwrap();
    h.engine.restore(saved).unwrap();
    assert!(h.engine.state("api").unwrap().held_by().is_empty());
    let ds = h.wake("db", 10);
    assert!(
        kinds(&ds, "api")
            .iter()
            .any(|k| matches!(k, K::Held { .. }))
    );
    assert_eq!(h.engine.state("api").unwrap().held_by(), ["db"]);
}
