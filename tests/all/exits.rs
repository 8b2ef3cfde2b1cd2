//! A supervised program's exit is repaired at once, not at the task's next check: the daemon
//! watches the program's process (a pidfd), checks its task when it ends and confirms with
//! quick checks up to its `failure_threshold` (daemon/exits.rs). Real supervisord, real kill -9.

use std::time::{Duration, SystemTime};

use hmrt::events::Event;

use crate::support::supervisord::{Program, Supervisord, free_port, send_signal};
use crate::support::{RunningDaemon, Workspace, of_task};

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_is_checked_and_repaired_at_once_on_the_evidence_of_the_threshold() {
    let ws = Workspace::new();
    let port = free_port();
    let supervisord = Supervisord::builder()
        .program(Program::flaky_service("web", port))
        .start();
    blocking(|| supervisord.wait_running("web"));
    // An interval of an hour: only the exit can bring the check forward.
    let config = ws.load(&format!(
        r#"
[supervisor]
serverurl = "{serverurl}"

[[task]]
name = "web"
program = "web"
check = "http"
interval = "1h"
timeout = "1s"
failure_threshold = 2
config = {{ url = "http://127.0.0.1:{port}/health" }}
grants = {{ http = ["http://127.0.0.1:{port}"] }}
on_failure = "supervisor-restart"
"#,
        serverurl = supervisord.serverurl(),
    ));
    let daemon = RunningDaemon::start(config).await;
    daemon
        .wait_for(Duration::from_secs(30), "the first check", |events| {
            of_task(events, "web")
                .any(|(_, e)| matches!(e, Event::CheckFinished { .. }))
                .then_some(())
        })
        .await;

    let old_pid = blocking(|| supervisord.wait_running("web"));
    let killed_at = SystemTime::now();
    assert!(send_signal(old_pid as i32, 9), "kill -9 {old_pid}");
    let restarted_at = daemon
        .wait_for(
            Duration::from_secs(30),
            "a restart after the kill",
            |events| {
                of_task(events, "web").find_map(|(at, e)| {
                    matches!(e, Event::ActionStarted { manual: false, .. }).then_some(*at)
                })
            },
        )
        .await;
    let events = daemon.events();
    // The threshold counted real results: two failed checks after the kill, then the restart.
    let failed_before: Vec<&str> = of_task(&events, "web")
        .filter(|(at, _)| *at >= killed_at && *at <= restarted_at)
        .filter_map(|(_, e)| match e {
            Event::CheckFinished {
                status, message, ..
            } if *status != hmrt::sandbox::Status::Healthy => Some(message.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        failed_before.len(),
        2,
        "failed checks between the kill and the restart: {failed_before:?}"
    );
    let new_pid = blocking(|| supervisord.wait_running("web"));
    assert_ne!(new_pid, old_pid, "web was restarted");
    eprintln!(
        "kill -9 -> restart issued: {:?}",
        restarted_at.duration_since(killed_at).unwrap_or_default()
    );
    daemon.stop().await;
}
