//! End to end against a real supervisord: a real HTTP service goes bad, hmrt restarts it
//! through the `supervisor-restart` guest, and it is healthy again; a service that never
//! recovers spends its restart budget with growing delays and ends `failed`.

use std::time::{Duration, SystemTime};

use hmrt::events::Event;

use crate::support::supervisord::{Program, Supervisord, free_port};
use crate::support::{RunningDaemon, Workspace, of_task, transition};

fn post(port: u16, path: &str) {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the service");
    write!(stream, "POST {path} HTTP/1.0\r\nContent-Length: 0\r\n\r\n").expect("send");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
}

fn action_starts(events: &[(SystemTime, Event)], task: &str) -> Vec<SystemTime> {
    of_task(events, task)
        .filter_map(|(at, e)| matches!(e, Event::ActionStarted { .. }).then_some(*at))
        .collect()
}

fn action_ends(events: &[(SystemTime, Event)], task: &str) -> Vec<(SystemTime, bool, String)> {
    of_task(events, task)
        .filter_map(|(at, e)| match e {
            Event::ActionFinished { ok, message, .. } => Some((*at, *ok, message.clone())),
            _ => None,
        })
        .collect()
}

/// The supervisord harness blocks (it shells out to supervisorctl): keep it off the executor
/// the daemon runs on.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn since(later: SystemTime, earlier: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_and_a_killed_service_are_restarted_and_healthy_again() {
    let port = free_port();
    let supervisord = Supervisord::start(&[Program::flaky_service("web", port)
        .autorestart(false)
        .startsecs(1)]);
    let first_pid = supervisord.wait_running("web");
    let ws = Workspace::new();
    let interval = Duration::from_millis(500);
    let failure_threshold = 2;
    let config = ws.load(&format!(
        r#"
[supervisor]
serverurl = "{serverurl}"

[[task]]
name = "web"
program = "web"
check = "http"
interval = "500ms"
timeout = "1s"
failure_threshold = {failure_threshold}
config = {{ url = "http://127.0.0.1:{port}/health" }}
grants = {{ http = ["http://127.0.0.1:{port}"] }}
on_failure = "supervisor-restart"
restart = {{ backoff = "1s", max_backoff = "10s", max_restarts = 5, window = "10m" }}
"#,
        serverurl = supervisord.serverurl(),
    ));
    let daemon = RunningDaemon::start(config).await;
    let bound = interval * failure_threshold + Duration::from_secs(2);

    daemon
        .wait_for(Duration::from_secs(10), "web healthy", |e| {
            transition(e, "web", "healthy", daemon.started)
        })
        .await;

    // 1. The health endpoint starts returning 500.
    let broke = SystemTime::now();
    post(port, "/fail");
    let restarted = daemon
        .wait_for(Duration::from_secs(15), "a restart", |e| {
            action_starts(e, "web").first().copied()
        })
        .await;
    eprintln!(
        "measured: restart began {:?} after /health started failing (bound {bound:?})",
        since(restarted, broke)
    );
    assert!(
        since(restarted, broke) <= bound,
        "restart {:?} after the failure; bound {bound:?}",
        since(restarted, broke)
    );
    let (_, ok, message) = daemon
        .wait_for(Duration::from_secs(15), "the restart to end", |e| {
            action_ends(e, "web").first().cloned()
        })
        .await;
    assert!(ok, "restart failed: {message}");
    daemon
        .wait_for(
            Duration::from_secs(10),
            "web healthy after the restart",
            |e| transition(e, "web", "healthy", restarted),
        )
        .await;
    let second_pid = blocking(|| supervisord.pid_of("web")).expect("web runs");
    assert_ne!(second_pid, first_pid, "supervisord shows a new process");
    assert!(
        message.contains(&second_pid.to_string()),
        "the action names the new pid: {message}"
    );

    // 2. The process is killed.
    let killed = SystemTime::now();
    blocking(|| supervisord.kill_program("web"));
    let restarted = daemon
        .wait_for(Duration::from_secs(15), "a second restart", |e| {
            action_starts(e, "web").get(1).copied()
        })
        .await;
    eprintln!(
        "measured: restart began {:?} after the SIGKILL (bound {bound:?})",
        since(restarted, killed)
    );
    assert!(
        since(restarted, killed) <= bound,
        "restart {:?} after the kill; bound {bound:?}",
        since(restarted, killed)
    );
    daemon
        .wait_for(
            Duration::from_secs(10),
            "web healthy after the second restart",
            |e| transition(e, "web", "healthy", restarted),
        )
        .await;
    let third_pid = blocking(|| supervisord.pid_of("web")).expect("web runs");
    assert_ne!(third_pid, second_pid);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_never_recovers_spends_its_budget_with_growing_delays_and_fails() {
    let port = free_port();
    let supervisord = Supervisord::start(&[Program::flaky_service("broken", port)
        .arg("--never-healthy")
        .autorestart(false)
        .startsecs(0)]);
    supervisord.wait_running("broken");
    let ws = Workspace::new();
    let config = ws.load(&format!(
        r#"
[supervisor]
serverurl = "{serverurl}"

[[task]]
name = "broken"
program = "broken"
check = "http"
interval = "250ms"
timeout = "1s"
failure_threshold = 2
config = {{ url = "http://127.0.0.1:{port}/health" }}
grants = {{ http = ["http://127.0.0.1:{port}"] }}
on_failure = "supervisor-restart"
restart = {{ backoff = "1s", factor = 2.0, jitter = 0.0, max_backoff = "10s", max_restarts = 3, window = "10m" }}
"#,
        serverurl = supervisord.serverurl(),
    ));
    // On the manual clock: the backoff gaps and the quiet window are exact and take no real
    // time; the checks and restarts are real.
    let daemon = RunningDaemon::start_manual(config).await;
    let failed_at = daemon
        .advance_until(Duration::from_secs(60), "broken failed", |e| {
            transition(e, "broken", "failed", daemon.started)
        })
        .await
        .0;
    let events = daemon.events();
    let starts = action_starts(&events, "broken");
    let ends = action_ends(&events, "broken");
    assert_eq!(
        starts.len(),
        3,
        "exactly max_restarts restarts before failed"
    );
    assert!(
        ends.iter().all(|(_, ok, _)| *ok),
        "each restart itself worked: {ends:?}"
    );
    // The delay before restart k+1, from the end of restart k, is backoff × 2^(k-1) exactly:
    // the failure threshold (2 × 250 ms) is met before the backoff runs out, and the restart
    // comes when it does.
    for (k, expected) in [(0, Duration::from_secs(1)), (1, Duration::from_secs(2))] {
        let gap = since(starts[k + 1], ends[k].0);
        eprintln!(
            "measured: gap before restart {} was {gap:?} (backoff {expected:?})",
            k + 2
        );
        assert_eq!(gap, expected, "gap {}", k + 1);
    }
    // Failed means no more actions: a window of 30 s on the clock (many backoffs long) in
    // which a restart must NOT happen.
    daemon.advance(Duration::from_secs(30)).await;
    let later = daemon.events();
    assert_eq!(
        action_starts(&later, "broken").len(),
        3,
        "no restart after failed"
    );
    assert!(
        of_task(&later, "broken")
            .any(|(at, e)| *at >= failed_at && matches!(e, Event::CheckFinished { .. })),
        "a failed task is still checked"
    );
    daemon.stop().await;
}
