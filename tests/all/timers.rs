//! Policy timers at the exact instant (a backoff, a start period and `rearm_after` that run out
//! between two checks take effect then, not at the next check), and re-arming that means it
//! (a re-armed task gets an action at its next incident). Against a real supervisord: on the
//! manual clock (instants exact to the millisecond) and once in real time.

use std::time::{Duration, SystemTime};

use hmrt::events::Event;
use hmrt_policy::{DecisionKind, RearmHow, State};

use crate::support::supervisord::{Program, Supervisord, free_port};
use crate::support::{RunningDaemon, Workspace, never_healthy, of_task};

/// A task watching `name` on `port`, restarted by supervisord.
fn task(name: &str, port: u16, settings: &str, restart: &str) -> String {
    format!(
        r#"
[[task]]
name = "{name}"
program = "{name}"
check = "http"
timeout = "2s"
failure_threshold = 1
config = {{ url = "http://127.0.0.1:{port}/health" }}
grants = {{ http = ["http://127.0.0.1:{port}"] }}
on_failure = "supervisor-restart"
restart = {{ {restart} }}
{settings}
"#
    )
}

fn starts(events: &[(SystemTime, Event)], task: &str) -> Vec<SystemTime> {
    of_task(events, task)
        .filter_map(|(at, e)| matches!(e, Event::ActionStarted { .. }).then_some(*at))
        .collect()
}

fn ends(events: &[(SystemTime, Event)], task: &str) -> Vec<SystemTime> {
    of_task(events, task)
        .filter_map(|(at, e)| matches!(e, Event::ActionFinished { .. }).then_some(*at))
        .collect()
}

fn decided(
    events: &[(SystemTime, Event)],
    task: &str,
    want: impl Fn(&DecisionKind) -> bool,
) -> Option<SystemTime> {
    of_task(events, task).find_map(|(at, e)| match e {
        Event::Policy { decision, .. } if want(decision) => Some(*at),
        _ => None,
    })
}

fn checks(events: &[(SystemTime, Event)], task: &str) -> Vec<SystemTime> {
    of_task(events, task)
        .filter_map(|(at, e)| matches!(e, Event::CheckFinished { .. }).then_some(*at))
        .collect()
}

fn gap(later: SystemTime, earlier: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_start_period_and_rearm_after_run_out_at_their_instant_on_the_manual_clock() {
    let (p_backoff, p_start, p_rearm) = (free_port(), free_port(), free_port());
    let supervisord = Supervisord::start(&[
        never_healthy("backoff", p_backoff),
        never_healthy("start", p_start),
        never_healthy("rearm", p_rearm),
    ]);
    for name in ["backoff", "start", "rearm"] {
        supervisord.wait_running(name);
    }
    let ws = Workspace::new();
    let fixed = r#"backoff = "15s", factor = 1.0, jitter = 0.0, max_backoff = "15s""#;
    let text = format!(
        "[supervisor]\nserverurl = \"{}\"\n[defaults]\ninterval = \"10s\"\n{}{}{}",
        supervisord.serverurl(),
        task(
            "backoff",
            p_backoff,
            "",
            &format!("{fixed}, max_restarts = 5")
        ),
        task(
            "start",
            p_start,
            "start_period = \"15s\"",
            &format!("{fixed}, max_restarts = 5"),
        ),
        task(
            "rearm",
            p_rearm,
            "",
            r#"backoff = "1s", jitter = 0.0, max_restarts = 1, rearm_after = "15s""#,
        ),
    );
    let daemon = RunningDaemon::start_manual(ws.load(&text)).await;

    // backoff: the first restart did not help (seen at the check 10 s later); the second comes
    // when the 15 s backoff runs out, 15 s after the first ended, not at the check at 20 s.
    let (first, second) = daemon
        .advance_until(Duration::from_secs(60), "two restarts of backoff", |e| {
            let s = starts(e, "backoff");
            (s.len() >= 2).then(|| (ends(e, "backoff")[0], s[1]))
        })
        .await;
    assert_eq!(gap(second, first), Duration::from_secs(15), "backoff gap");
    let events = daemon.events();
    let between: Vec<_> = checks(&events, "backoff")
        .into_iter()
        .filter(|at| *at > first && *at <= second)
        .collect();
    assert_eq!(
        between.len(),
        1,
        "one check (at +10 s) between the two restarts: {between:?}"
    );

    // start: the start period runs out 15 s after the restart, between the checks at +10 s and
    // +20 s: the attempt fails at that instant.
    let (restarted, attempt_failed) = daemon
        .advance_until(Duration::from_secs(60), "start's attempt failing", |e| {
            let failed = decided(e, "start", |d| {
                matches!(d, DecisionKind::AttemptFailed { reason, .. } if reason.contains("start period"))
            })?;
            Some((ends(e, "start")[0], failed))
        })
        .await;
    assert_eq!(gap(attempt_failed, restarted), Duration::from_secs(15));

    // rearm: failed at its second incident, re-armed 15 s later at that instant (between two
    // checks 10 s apart), and restarted at the next failing check.
    let (failed, rearmed) = daemon
        .advance_until(Duration::from_secs(90), "rearm re-armed", |e| {
            let failed = decided(e, "rearm", |d| matches!(d, DecisionKind::Failed { .. }))?;
            let rearmed = decided(e, "rearm", |d| {
                *d == DecisionKind::Rearmed {
                    how: RearmHow::Elapsed,
                }
            })?;
            Some((failed, rearmed))
        })
        .await;
    assert_eq!(gap(rearmed, failed), Duration::from_secs(15));
    let again = daemon
        .advance_until(Duration::from_secs(30), "a restart after the re-arm", |e| {
            starts(e, "rearm").into_iter().find(|at| *at > rearmed)
        })
        .await;
    assert!(again > rearmed);
    daemon.stop().await;
    drop(supervisord);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_restart_comes_when_the_backoff_runs_out_in_real_time() {
    let port = free_port();
    let supervisord = Supervisord::start(&[never_healthy("web", port)]);
    supervisord.wait_running("web");
    let ws = Workspace::new();
    // Checks every 1 s; the backoff (1.3 s, counted from the end of the first restart) runs out
    // between two checks, well away from both.
    let text = format!(
        "[supervisor]\nserverurl = \"{}\"\n{}",
        supervisord.serverurl(),
        task(
            "web",
            port,
            "interval = \"1s\"",
            r#"backoff = "1300ms", factor = 1.0, jitter = 0.0, max_backoff = "1300ms", max_restarts = 5"#,
        ),
    );
    let daemon = RunningDaemon::start(ws.load(&text)).await;
    let (first_end, second) = daemon
        .wait_for(Duration::from_secs(20), "two restarts", |e| {
            let s = starts(e, "web");
            (s.len() >= 2).then(|| (ends(e, "web")[0], s[1]))
        })
        .await;
    let events = daemon.events();
    daemon.stop().await;
    let waited = gap(second, first_end);
    println!("second restart {waited:?} after the first ended (backoff 1.3 s, checks every 1 s)");
    assert!(
        waited >= Duration::from_millis(1300) && waited < Duration::from_millis(1450),
        "the second restart came {waited:?} after the first ended, not when the 1.3 s backoff ran out"
    );
    // It came from the timer, not from a check that happened to fall near the backoff's end.
    let just_before: Vec<_> = checks(&events, "web")
        .into_iter()
        .filter(|at| *at <= second && gap(second, *at) < Duration::from_millis(150))
        .collect();
    assert!(
        just_before.is_empty(),
        "a check right before the restart: {just_before:?}"
    );
    drop(supervisord);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_recovers_by_itself_after_failing_is_restarted_at_its_next_incident() {
    let port = free_port();
    let control = tempfile::NamedTempFile::new().expect("control file");
    let control_path = control.path().to_path_buf();
    std::fs::write(&control_path, "fail").expect("write control");
    let supervisord = Supervisord::start(&[Program::flaky_service("web", port)
        .arg("--control-file")
        .arg(control_path.to_string_lossy().to_string())
        .autorestart(false)
        .startsecs(0)]);
    supervisord.wait_running("web");
    let ws = Workspace::new();
    let text = format!(
        "[supervisor]\nserverurl = \"{}\"\n{}",
        supervisord.serverurl(),
        task(
            "web",
            port,
            "interval = \"250ms\"",
            r#"backoff = "200ms", factor = 1.0, jitter = 0.0, max_restarts = 2, window = "10m""#,
        ),
    );
    let daemon = RunningDaemon::start(ws.load(&text)).await;
    // A restart cannot fix it (the mode is in the file): two restarts, then failed.
    daemon
        .wait_for(Duration::from_secs(20), "web failed", |e| {
            decided(e, "web", |d| matches!(d, DecisionKind::Failed { .. }))
        })
        .await;
    assert_eq!(starts(&daemon.events(), "web").len(), 2);
    // It recovers by itself.
    std::fs::write(&control_path, "ok").expect("write control");
    let recovered = daemon
        .wait_for(
            Duration::from_secs(10),
            "re-armed: recovered by itself",
            |e| {
                decided(e, "web", |d| {
                    *d == DecisionKind::Rearmed {
                        how: RearmHow::Recovered,
                    }
                })
            },
        )
        .await;
    // The next incident gets an action, not "restart budget spent" at once.
    std::fs::write(&control_path, "fail").expect("write control");
    let restarted = daemon
        .wait_for(
            Duration::from_secs(10),
            "a restart at the next incident",
            |e| starts(e, "web").into_iter().find(|at| *at > recovered),
        )
        .await;
    let events = daemon.events();
    daemon.stop().await;
    let failed_again = of_task(&events, "web").any(|(at, e)| {
        *at > recovered
            && *at < restarted
            && matches!(
                e,
                Event::StateChanged {
                    to: State::Failed,
                    ..
                }
            )
    });
    assert!(!failed_again, "the re-armed task went failed before acting");
    drop(supervisord);
    drop(control);
}
