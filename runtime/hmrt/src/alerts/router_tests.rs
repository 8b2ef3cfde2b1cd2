//! The router's rules, one test (or a few) each, with time given by the test.
use super::*;
use std::path::Path;
use std::time::Duration;

const S: u64 = 1000;

fn config(extra: &str) -> Config {
    let text = format!(
        r#"
[[task]]
name = "db"
check = "tcp"

[[task]]
name = "api"
check = "tcp"
depends_on = ["db"]
labels = {{ team = "shop" }}

[[task]]
name = "web"
check = "tcp"

[[alert]]
name = "oncall"
receiver = {{ action = "webhook", config = {{ url = "http://127.0.0.1:9/" }} }}
{extra}
"#
    );
    Config::parse(&text, Path::new("/x/tasks.toml"), None).expect("config")
}

fn change(task: &str, to: State) -> Event {
    Event::StateChanged {
        task: task.into(),
        from: State::Unknown,
        to,
        reason: String::new(),
    }
}

fn check(task: &str, status: Status) -> Event {
    Event::CheckFinished {
        task: task.into(),
        plugin: "tcp".into(),
        status,
        message: format!("{task} says {status}"),
        metrics: Vec::new(),
        elapsed: Duration::ZERO,
        failure: None,
        late: Duration::ZERO,
    }
}

/// Feeds `events` at one-second steps from `t`; returns (task, kind) of each notice.
fn feed(r: &mut Router, t: &mut u64, events: &[Event]) -> Vec<(String, Kind)> {
    let mut out = Vec::new();
    for e in events {
        *t += S;
        out.extend(
            r.on_event(Timestamp(*t), e)
                .into_iter()
                .map(|n| (n.task, n.kind)),
        );
    }
    out
}

fn kinds(list: &[(&str, Kind)]) -> Vec<(String, Kind)> {
    list.iter().map(|(t, k)| (t.to_string(), *k)).collect()
}

#[test]
fn one_unhealthy_and_one_recovered_per_incident() {
    let mut r = Router::new(&config(""), RouterState::default());
    let mut t = 0;
    let mut events = vec![
        check("web", Status::Unhealthy),
        change("web", State::Unhealthy),
    ];
    for _ in 0..50 {
        events.push(check("web", Status::Unhealthy));
    }
    // Restarting and back: still the same incident.
    events.extend([
        change("web", State::Restarting),
        change("web", State::Unknown),
    ]);
    events.extend([
        change("web", State::Unhealthy),
        check("web", Status::Healthy),
    ]);
    events.push(change("web", State::Healthy));
    events.push(check("web", Status::Healthy));
    let got = feed(&mut r, &mut t, &events);
    assert_eq!(
        got,
        kinds(&[("web", Kind::Unhealthy), ("web", Kind::Recovered)])
    );
}

#[test]
fn reminders_at_their_spacing_and_not_after_recovery() {
    let mut r = Router::new(&config("remind_every = \"10s\""), RouterState::default());
    let mut t = 0;
    feed(&mut r, &mut t, &[change("web", State::Unhealthy)]);
    let opened = t;
    assert_eq!(r.next_tick(), Some(Timestamp(opened + 10 * S)));
    assert!(r.tick(Timestamp(opened + 9 * S)).is_empty());
    let first = r.tick(Timestamp(opened + 10 * S));
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].kind, first[0].reminder), (Kind::Reminder, 1));
    // Late by 25 s: one reminder, not a burst, and the next a whole period later.
    let late = r.tick(Timestamp(opened + 45 * S));
    assert_eq!(late.len(), 1);
    assert_eq!(r.next_tick(), Some(Timestamp(opened + 55 * S)));
    t = opened + 46 * S;
    let got = feed(&mut r, &mut t, &[change("web", State::Healthy)]);
    assert_eq!(got, kinds(&[("web", Kind::Recovered)]));
    assert_eq!(r.next_tick(), None);
}

#[test]
fn a_dependency_outage_names_its_dependants_and_holds_their_notices() {
    let mut r = Router::new(&config(""), RouterState::default());
    let mut t = 0;
    let got = r.on_event(Timestamp(1), &change("db", State::Unhealthy));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].held, ["api"], "the outage names the held dependant");
    // api fails while db is down: nothing for api.
    assert!(feed(&mut r, &mut t, &[change("api", State::Unhealthy)]).is_empty());
    // Way 1: db recovers, api still down: api is announced now.
    let got = feed(&mut r, &mut t, &[change("db", State::Healthy)]);
    assert_eq!(
        got,
        kinds(&[("db", Kind::Recovered), ("api", Kind::Unhealthy)])
    );
    let got = feed(&mut r, &mut t, &[change("api", State::Healthy)]);
    assert_eq!(got, kinds(&[("api", Kind::Recovered)]));
    // Way 2: api recovers while db is still down: closed quietly.
    let got = feed(
        &mut r,
        &mut t,
        &[
            change("db", State::Unhealthy),
            change("api", State::Unhealthy),
            change("api", State::Healthy),
            change("db", State::Healthy),
        ],
    );
    assert_eq!(
        got,
        kinds(&[("db", Kind::Unhealthy), ("db", Kind::Recovered)])
    );
}

#[test]
fn an_announced_incident_is_resolved_even_under_a_dependency_outage() {
    let mut r = Router::new(&config(""), RouterState::default());
    let mut t = 0;
    let got = feed(
        &mut r,
        &mut t,
        &[
            change("api", State::Unhealthy),
            change("db", State::Unhealthy),
            change("api", State::Healthy),
        ],
    );
    assert_eq!(
        got,
        kinds(&[
            ("api", Kind::Unhealthy),
            ("db", Kind::Unhealthy),
            ("api", Kind::Recovered)
        ])
    );
}

#[test]
fn route_thresholds_count_checks_on_top_of_the_task() {
    let mut r = Router::new(
        &config("failure_threshold = 3\nsuccess_threshold = 2"),
        RouterState::default(),
    );
    let mut t = 0;
    let bad = check("web", Status::Unhealthy);
    let good = check("web", Status::Healthy);
    let got = feed(
        &mut r,
        &mut t,
        &[bad.clone(), change("web", State::Unhealthy), bad.clone()],
    );
    assert!(got.is_empty(), "two failures: {got:?}");
    let got = feed(&mut r, &mut t, &[bad]);
    assert_eq!(got, kinds(&[("web", Kind::Unhealthy)]));
    let got = feed(
        &mut r,
        &mut t,
        &[good.clone(), change("web", State::Healthy)],
    );
    assert!(got.is_empty(), "one pass: {got:?}");
    let got = feed(&mut r, &mut t, &[good]);
    assert_eq!(got, kinds(&[("web", Kind::Recovered)]));
}

#[test]
fn flapping_sends_one_notice_and_the_state_when_it_ends() {
    let mut r = Router::new(
        &config("events = [\"unhealthy\", \"recovered\", \"flapping\"]"),
        RouterState::default(),
    );
    let mut t = 0;
    let flapping = Event::ActionHeld {
        task: "web".into(),
        reason: HoldReason::Flapping {
            changes: 6,
            window_ms: 60_000,
        },
    };
    let lifted = Event::Policy {
        task: "web".into(),
        decision: DecisionKind::HoldLifted {
            reason: HoldReason::Flapping {
                changes: 6,
                window_ms: 60_000,
            },
        },
    };
    let mut events = vec![flapping.clone()];
    for _ in 0..5 {
        events.extend([
            change("web", State::Unhealthy),
            change("web", State::Healthy),
        ]);
    }
    events.extend([flapping, change("web", State::Unhealthy), lifted]);
    let got = feed(&mut r, &mut t, &events);
    assert_eq!(
        got,
        kinds(&[("web", Kind::Flapping), ("web", Kind::Unhealthy)])
    );
}

#[test]
fn a_restart_resumes_without_repeating_or_forgetting() {
    let c = config("");
    let mut r = Router::new(&c, RouterState::default());
    let mut t = 0;
    assert_eq!(
        feed(&mut r, &mut t, &[change("web", State::Unhealthy)]).len(),
        1
    );
    let saved: RouterState =
        serde_json::from_str(&serde_json::to_string(r.state()).unwrap()).unwrap();
    let mut again = Router::new(&c, saved);
    again.seed("web", State::Unhealthy, "");
    let got = feed(
        &mut again,
        &mut t,
        &[
            check("web", Status::Unhealthy),
            change("web", State::Healthy),
        ],
    );
    assert_eq!(got, kinds(&[("web", Kind::Recovered)]));
}

#[test]
fn an_incident_that_outlasts_escalate_after_reaches_the_second_receiver() {
    let extra = "escalate_after = \"10s\"\nescalate_to = { action = \"webhook\", config = { url = \"http://127.0.0.1:9/boss\" } }";
    let mut r = Router::new(&config(extra), RouterState::default());
    let mut t = 0;
    feed(&mut r, &mut t, &[change("web", State::Unhealthy)]);
    let opened = t;
    assert_eq!(r.next_tick(), Some(Timestamp(opened + 10 * S)));
    assert!(r.tick(Timestamp(opened + 9 * S)).is_empty());
    let escalated = r.tick(Timestamp(opened + 10 * S));
    assert_eq!(escalated.len(), 1);
    assert!(escalated[0].escalation);
    assert_eq!(escalated[0].queue(), "oncall/escalation");
    assert!(r.tick(Timestamp(opened + 20 * S)).is_empty(), "once");
    t = opened + 21 * S;
    let ended = r.on_event(Timestamp(t), &change("web", State::Healthy));
    let queues: Vec<String> = ended.iter().map(Notice::queue).collect();
    assert_eq!(
        queues,
        ["oncall", "oncall/escalation"],
        "both are told it ended"
    );
}

#[test]
fn routes_match_by_glob_and_label() {
    let c = config("tasks = [\"a*\", \"web\"]\nlabels = { team = \"shop\" }");
    let mut r = Router::new(&c, RouterState::default());
    let mut t = 0;
    let got = feed(
        &mut r,
        &mut t,
        &[
            change("web", State::Unhealthy),
            change("api", State::Unhealthy),
        ],
    );
    assert_eq!(
        got,
        kinds(&[("api", Kind::Unhealthy)]),
        "web lacks the label"
    );
}

#[test]
fn group_wait_lets_a_dependency_noticed_later_hold_its_dependant() {
    // Without it, api (noticed first) is announced before db is known down.
    let mut r = Router::new(&config(""), RouterState::default());
    let got: Vec<(String, Kind)> = [
        r.on_event(Timestamp(1_000), &change("api", State::Unhealthy)),
        r.on_event(Timestamp(1_500), &change("db", State::Unhealthy)),
    ]
    .concat()
    .into_iter()
    .map(|n| (n.task, n.kind))
    .collect();
    assert_eq!(
        got,
        kinds(&[("api", Kind::Unhealthy), ("db", Kind::Unhealthy)])
    );

    let mut r = Router::new(&config("group_wait = \"2s\""), RouterState::default());
    assert!(
        r.on_event(Timestamp(1_000), &change("api", State::Unhealthy))
            .is_empty()
    );
    assert_eq!(r.next_tick(), Some(Timestamp(3_000)));
    assert!(
        r.on_event(Timestamp(1_500), &change("db", State::Unhealthy))
            .is_empty()
    );
    let mut got = r.tick(Timestamp(3_000));
    got.extend(r.tick(Timestamp(3_500)));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].task.as_str(), got[0].kind), ("db", Kind::Unhealthy));
    assert_eq!(got[0].held, ["api"]);
    assert_eq!(got[0].started_at, Timestamp(1_500));
}

fn silence_web(from: u64, to: u64) -> Silence {
    Silence {
        id: "s1".into(),
        tasks: vec!["web".into()],
        labels: BTreeMap::new(),
        starts_at: Timestamp(from),
        ends_at: Timestamp(to),
        comment: String::new(),
        author: "T".into(),
    }
}

#[test]
fn an_escalation_due_during_a_silence_waits_for_its_end_without_spinning() {
    let extra = "escalate_after = \"10s\"\nescalate_to = { action = \"webhook\", config = { url = \"http://127.0.0.1:9/boss\" } }";
    let mut r = Router::new(&config(extra), RouterState::default());
    let mut t = 0;
    feed(&mut r, &mut t, &[change("web", State::Unhealthy)]);
    let opened = t;
    r.silence(silence_web(opened + S, opened + 60 * S));
    let mut now = opened + 10 * S;
    assert!(r.tick(Timestamp(now)).is_empty(), "held by the silence");
    // A dispatcher asks next_tick after every tick: it must move past `now`.
    for _ in 0..3 {
        let next = r.next_tick().expect("the silence's end is ahead");
        assert!(next > Timestamp(now), "{next:?} is not after {now}");
        now = next.0;
        let out = r.tick(next);
        if now >= opened + 60 * S {
            assert_eq!(out.len(), 1, "escalated when the silence ends");
            assert!(out[0].escalation);
            return;
        }
        assert!(out.is_empty());
    }
    panic!("never escalated");
}

#[test]
fn failed_and_flapping_held_by_a_silence_are_said_when_it_ends() {
    let mut r = Router::new(
        &config("events = [\"unhealthy\", \"failed\", \"flapping\"]"),
        RouterState::default(),
    );
    r.silence(silence_web(0, 30 * S));
    let mut t = 0;
    let failed = Event::Policy {
        task: "web".into(),
        decision: DecisionKind::Failed {
            reason: "restart budget spent".into(),
        },
    };
    let flapping = Event::ActionHeld {
        task: "web".into(),
        reason: HoldReason::Flapping {
            changes: 6,
            window_ms: 60_000,
        },
    };
    let got = feed(
        &mut r,
        &mut t,
        &[change("web", State::Failed), failed, flapping],
    );
    assert!(got.is_empty(), "held: {got:?}");
    let ended: Vec<Kind> = r
        .tick(Timestamp(30 * S))
        .into_iter()
        .map(|n| n.kind)
        .collect();
    assert_eq!(ended, [Kind::Flapping, Kind::Failed]);
}
