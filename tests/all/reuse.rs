//! Warm instances (sandbox/warm.rs): a task checked often keeps its instance between its own
//! calls, and nothing else. The hostile guest's `remember` mode keeps what every call saw in
//! its own memory and reports it, so a call that ran in another task's instance, or in an
//! instance that trapped, shows it.

use std::time::{Duration, SystemTime};

use hmrt::events::Event;

use crate::support::{RunningDaemon, Workspace};

/// The check results of `task` in order: (message, how the call failed).
fn results(events: &[(SystemTime, Event)], task: &str) -> Vec<(String, Option<&'static str>)> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::CheckFinished {
                task: t,
                message,
                failure,
                ..
            } if t == task => Some((message.clone(), *failure)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_instance_serves_only_its_own_task_and_a_trap_throws_it_away() {
    let ws = Workspace::new();
    ws.plugin("hostile", hmrt_test_artifacts::HOSTILE);
    // alpha and beta: the same plugin with the same config and (no) grants, so only the task
    // tells their instances apart.
    let config = ws.load(
        r#"
[defaults]
interval = "50ms"
timeout = "2s"

[[task]]
name = "alpha"
check = "hostile"
config = { mode = "remember" }

[[task]]
name = "beta"
check = "hostile"
config = { mode = "remember" }

[[task]]
name = "poisoner"
check = "hostile"
config = { mode = "remember", poison_at = 3 }
"#,
    );
    let daemon = RunningDaemon::start(config).await;
    daemon
        .wait_for(
            Duration::from_secs(30),
            "five checks of each task",
            |events| {
                ["alpha", "beta", "poisoner"]
                    .iter()
                    .all(|t| results(events, t).len() >= 5)
                    .then_some(())
            },
        )
        .await;
    let events = daemon.events();
    daemon.stop().await;

    for (task, other) in [("alpha", "beta"), ("beta", "alpha")] {
        let seen = results(&events, task);
        for (n, (message, failure)) in seen.iter().enumerate() {
            assert_eq!(*failure, None, "{task} call {n}: {message}");
            assert!(
                !message.contains(other) && !message.contains("poisoner"),
                "{task}'s call ran in an instance that had served another task: {message}"
            );
            // Each call sees exactly the calls before it: one instance, reused, nobody else's.
            let want = format!("calls={} poisoned=false seen=", n + 1);
            assert!(
                message.starts_with(&want),
                "{task} call {n}: want {want:?}…, got {message:?} (all: {seen:?})"
            );
        }
    }

    let seen = results(&events, "poisoner");
    let (messages, failures): (Vec<&str>, Vec<Option<&str>>) =
        seen.iter().map(|(m, f)| (m.as_str(), *f)).unzip();
    assert!(
        messages[0].starts_with("calls=1 poisoned=false"),
        "{seen:?}"
    );
    assert!(
        messages[1].starts_with("calls=2 poisoned=false"),
        "{seen:?}"
    );
    assert_eq!(failures[2], Some("trap"), "{seen:?}");
    assert!(
        messages[2].contains("poisoned my own memory at call 3"),
        "{seen:?}"
    );
    // The instance that poisoned itself is gone: the next call starts from a fresh one.
    assert!(
        messages[3].starts_with("calls=1 poisoned=false seen=poisoner:"),
        "the call after the trap ran in the poisoned instance: {seen:?}"
    );
    assert!(
        messages[4].starts_with("calls=2 poisoned=false"),
        "{seen:?}"
    );
}
