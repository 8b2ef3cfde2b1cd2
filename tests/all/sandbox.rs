//! Hostile and careless plugins, each a guest built for the test (tests/guests/hostile): every
//! one is contained with a clear reason, and a well-behaved task keeps running on time.

use std::time::{Duration, SystemTime};

use hmrt::events::Event;

use crate::support::{HttpServer, RunningDaemon, Workspace, check_once, of_task, transition};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plugins_are_contained_and_others_keep_their_schedule() {
    let granted = HttpServer::start().await;
    let not_granted = HttpServer::start().await;
    let ws = Workspace::new();
    ws.plugin("hostile", hmrt_test_artifacts::HOSTILE);
    let config = ws.load(&format!(
        r#"
[defaults]
interval = "300ms"
timeout = "1s"
failure_threshold = 1
memory = "32MiB"

[[task]]
name = "steady"
check = "http"
interval = "100ms"
config = {{ url = "{ok_url}" }}
grants = {{ http = ["{ok_origin}"] }}

[[task]]
name = "http-denied"
check = "hostile"
config = {{ mode = "http", url = "{bad_url}" }}
grants = {{ http = ["{ok_origin}"] }}

[[task]]
name = "spin"
check = "hostile"
timeout = "500ms"
config = {{ mode = "spin" }}

[[task]]
name = "alloc"
check = "hostile"
config = {{ mode = "alloc" }}

[[task]]
name = "panic"
check = "hostile"
config = {{ mode = "panic", message = "the check blew up on purpose" }}

[[task]]
name = "exec-denied"
check = "hostile"
config = {{ mode = "exec", program = "true" }}

[[task]]
name = "restart-denied"
check = "hostile"
program = "web"
config = {{ mode = "restart", program = "db" }}
grants = {{ supervisor = ["web"] }}
"#,
        ok_url = granted.url("/"),
        ok_origin = granted.origin(),
        bad_url = not_granted.url("/"),
    ));
    let daemon = RunningDaemon::start(config).await;
    let t0 = SystemTime::now();
    let denied_origin = format!("http origin http://127.0.0.1:{}", not_granted.port);
    let cases = [
        ("http-denied", vec!["denied", denied_origin.as_str()]),
        ("spin", vec!["timed out after 500ms"]),
        ("alloc", vec!["memory limit of 32 MiB"]),
        ("panic", vec!["the check blew up on purpose"]),
        ("exec-denied", vec!["denied", "exec program \"true\""]),
        (
            "restart-denied",
            vec!["denied", "supervisor program \"db\""],
        ),
    ];
    for (task, fragments) in &cases {
        let (_, reason) = daemon
            .wait_for(
                Duration::from_secs(10),
                &format!("{task} unhealthy"),
                |events| transition(events, task, "unhealthy", t0),
            )
            .await;
        for fragment in fragments {
            assert!(
                reason.contains(fragment),
                "{task}: reason {reason:?} should contain {fragment:?}"
            );
        }
    }
    // Let every hostile task run a few more times, then look at the steady task's rhythm.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let counters = daemon.counters.clone();
    let recorder = daemon.recorder.clone();
    daemon.stop().await;
    let events: Vec<(SystemTime, Event)> = recorder
        .events()
        .into_iter()
        .map(|(at, e)| (crate::support::system_time(at), e))
        .collect();
    let counts = counters.counts();

    let steady: Vec<SystemTime> = of_task(&events, "steady")
        .filter_map(|(at, e)| match e {
            Event::CheckFinished { status, .. } => {
                assert_eq!(status.as_str(), "healthy", "the steady task stays healthy");
                Some(*at)
            }
            _ => None,
        })
        .collect();
    assert!(steady.len() >= 15, "steady ran only {} times", steady.len());
    let worst_gap = steady
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).unwrap_or_default())
        .max()
        .unwrap_or_default();
    assert!(
        worst_gap < Duration::from_millis(350),
        "the steady task (interval 100ms) waited {worst_gap:?} between two checks while hostile plugins ran"
    );
    for (task, _) in &cases {
        let runs = of_task(&events, task)
            .filter(|(_, e)| matches!(e, Event::CheckFinished { .. }))
            .count();
        assert!(
            runs >= 2,
            "{task} ran {runs} times: a hostile plugin must not stop its own schedule either"
        );
    }
    // Denied calls are published as events, named by task.
    for task in ["http-denied", "exec-denied", "restart-denied"] {
        assert!(
            of_task(&events, task).any(|(_, e)| matches!(e, Event::CallDenied { .. })),
            "{task}: no call-denied event"
        );
    }
    // ...and counted by the counters subscriber, one for one.
    let denied_events = events
        .iter()
        .filter(|(_, e)| matches!(e, Event::CallDenied { .. }))
        .count() as u64;
    let counted: u64 = counts.denials.values().sum();
    assert!(denied_events > 0);
    assert_eq!(counted, denied_events, "denials counted, one per event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_an_origin_not_granted_is_denied() {
    let server = HttpServer::start().await;
    let elsewhere = HttpServer::start().await;
    let ws = Workspace::new();
    let config = ws.load(&format!(
        r#"
[[task]]
name = "redirected"
check = "http"
config = {{ url = "{url}" }}
grants = {{ http = ["{origin}"] }}
"#,
        url = server.url(&format!("/redirect-out/{}", elsewhere.port)),
        origin = server.origin(),
    ));
    let (outcome, counters) = check_once(&config).await;
    let message = outcome.message();
    assert_eq!(
        outcome.status(),
        hmrt::sandbox::Status::Unhealthy,
        "{message}"
    );
    assert!(message.contains("denied"), "{message}");
    assert!(
        message.contains(&format!("127.0.0.1:{}", elsewhere.port)),
        "{message}"
    );
    assert_eq!(outcome.report.denials.len(), 1);
    assert_eq!(
        counters.denials(hmrt::capabilities::Capability::Http),
        1,
        "denials are counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_flooding_stdout_is_cut_and_the_check_still_answers() {
    let ws = Workspace::new();
    ws.plugin("hostile", hmrt_test_artifacts::HOSTILE);
    let config = ws.load(
        r#"
[[task]]
name = "flood"
check = "hostile"
timeout = "5s"
config = { mode = "stdout-flood" }
"#,
    );
    let (outcome, _) = check_once(&config).await;
    assert!(
        outcome.report.stdout.len() <= 16 * 1024,
        "stdout kept {} bytes",
        outcome.report.stdout.len()
    );
    assert!(
        outcome.report.elapsed < Duration::from_secs(5),
        "took {:?}",
        outcome.report.elapsed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_message_from_a_guest_is_cut() {
    let ws = Workspace::new();
    ws.plugin("hostile", hmrt_test_artifacts::HOSTILE);
    let config = ws.load(
        r#"
[[task]]
name = "chatty"
check = "hostile"
config = { mode = "huge-message" }
"#,
    );
    let (outcome, _) = check_once(&config).await;
    assert_eq!(outcome.status(), hmrt::sandbox::Status::Healthy);
    let message = outcome.message();
    assert!(
        message.len() <= 4 * 1024 + 4,
        "a {} byte message reached the host's outputs",
        message.len()
    );
    assert!(message.starts_with("xxxx"), "{message}");
}

/// Whether any process runs with exactly this command line.
fn running_with_cmdline(wanted: &[&str]) -> bool {
    let wanted: Vec<u8> = wanted.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok())
        .any(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == wanted))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_past_its_timeout_is_killed() {
    let ws = Workspace::new();
    // A distinctive duration so the test can find exactly this process.
    let marker = "31.4159";
    let config = ws.load(&format!(
        r#"
[[task]]
name = "slow"
check = "command"
timeout = "700ms"
config = {{ program = "sleep", args = ["{marker}"] }}
grants = {{ exec = ["sleep"] }}
"#
    ));
    let (outcome, _) = check_once(&config).await;
    assert_eq!(
        outcome.status(),
        hmrt::sandbox::Status::Unhealthy,
        "{}",
        outcome.message()
    );
    assert!(
        outcome.report.elapsed < Duration::from_secs(3),
        "took {:?}",
        outcome.report.elapsed
    );
    let sleep = std::process::Command::new("which")
        .arg("sleep")
        .output()
        .expect("which");
    let sleep = String::from_utf8_lossy(&sleep.stdout).trim().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while running_with_cmdline(&[&sleep, marker]) {
        assert!(
            std::time::Instant::now() < deadline,
            "`sleep {marker}` outlived its check"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[path = "../../runtime/hmrt/benches/common/fairness.rs"]
mod fairness;

/// The fairness benchmark's measurement, shorter and with a looser bound: canaries every
/// 200 ms beside 10 spinning guests keep most of their rhythm (the benchmark's target is 90 %
/// of the checks made alone, no gap over two intervals).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_keep_their_rhythm_beside_ten_spinning_guests() {
    let server = HttpServer::start().await;
    let window = Duration::from_secs(4);
    let crowded = fairness::run(
        hmrt_test_artifacts::HOSTILE,
        &server.origin(),
        "/",
        3,
        10,
        Duration::from_secs(1),
        window,
    )
    .await;
    let nominal = 3 * (window.as_millis() / fairness::CANARY_INTERVAL.as_millis()) as usize;
    eprintln!(
        "measured: canaries beside 10 spinning guests: {} of {nominal} nominal checks, worst gap {:?}",
        crowded.checks, crowded.worst_gap
    );
    assert!(
        crowded.checks * 4 >= nominal * 3,
        "canaries made {} of {nominal} checks beside spinning guests",
        crowded.checks
    );
    assert!(
        crowded.worst_gap < fairness::CANARY_INTERVAL * 3,
        "a canary waited {:?} between two checks",
        crowded.worst_gap
    );
}
