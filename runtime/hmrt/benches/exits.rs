//! P7 of the performance issue: a supervised program's exit to the restart hmrt issues. A real
//! supervisord runs `flaky_service.py` (autorestart off); the daemon (in-process) checks it over
//! http every 1 s with `failure_threshold = 2` and `on_failure = "supervisor-restart"`. Each
//! round waits until the task is healthy again, SIGKILLs the program's process and times the
//! `ActionStarted` event, beside the target (≤ 100 ms). Without the exit watch (daemon/exits.rs)
//! a round would take up to the 1 s interval plus a second failing check.
//!
//! ```text
//! cargo bench -p hmrt --bench exits --profile dev
//! ```
//!
//! Without `--bench` on its command line it runs 2 rounds, as a smoke test.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmrt::events::{Event, Subscriber};
use hmrt_policy::{State, Timestamp};
use hmrt_test_support::supervisord::{Program, Supervisord, free_port, send_signal};

mod common;

const TARGET: Duration = Duration::from_millis(100);

/// When each restart started, and the task's latest state.
#[derive(Default)]
struct Watch {
    restarts: Mutex<Vec<Instant>>,
    state: Mutex<State>,
}

impl Subscriber for Watch {
    fn on_event(&self, _at: Timestamp, event: &Event) {
        match event {
            Event::ActionStarted { manual: false, .. } => {
                self.restarts.lock().expect("lock").push(Instant::now());
            }
            Event::StateChanged { to, .. } => *self.state.lock().expect("lock") = *to,
            _ => {}
        }
    }
}

fn main() {
    let rounds = if std::env::args().any(|a| a == "--bench") {
        20
    } else {
        2
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let latencies = runtime
        .block_on(runtime.spawn(measure(rounds)))
        .expect("benchmark task");
    let mut sorted = latencies.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    let max = sorted[sorted.len() - 1];
    println!();
    println!("exits: kill -9 of a supervisord program -> restart issued ({rounds} rounds)");
    println!(
        "P7 exit -> restart: median {:.1} ms, max {:.1} ms (target <= {} ms) {}",
        median.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        TARGET.as_millis(),
        if max <= TARGET { "ok" } else { "MISSED" }
    );
}

async fn measure(rounds: usize) -> Vec<Duration> {
    let port = free_port();
    let supervisord = tokio::task::spawn_blocking(move || {
        let sv = Supervisord::start(&[Program::flaky_service("web", port)]);
        sv.wait_running("web");
        sv
    })
    .await
    .expect("supervisord");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tasks.toml");
    let text = format!(
        r#"
[runtime]
state_dir = "state"

[supervisor]
serverurl = "{serverurl}"

[[task]]
name = "web"
program = "web"
check = "http"
interval = "1s"
timeout = "1s"
failure_threshold = 2
config = {{ url = "http://127.0.0.1:{port}/health" }}
grants = {{ http = ["http://127.0.0.1:{port}"] }}
on_failure = "supervisor-restart"
restart = {{ backoff = "10ms", max_backoff = "10ms", max_restarts = 1000, window = "1h" }}
"#,
        serverurl = supervisord.serverurl()
    );
    std::fs::write(&path, text).expect("write config");
    let watch = Arc::new(Watch::default());
    let daemon = common::BenchDaemon::start(&path, watch.clone()).await;
    let mut latencies = Vec::with_capacity(rounds);
    for round in 0..rounds {
        wait(&format!("round {round}: healthy"), || {
            *watch.state.lock().expect("lock") == State::Healthy
        })
        .await;
        let sv = &supervisord;
        let pid = tokio::task::block_in_place(|| sv.wait_running("web"));
        let before = watch.restarts.lock().expect("lock").len();
        let killed = Instant::now();
        assert!(send_signal(pid as i32, 9), "kill -9 {pid}");
        wait(&format!("round {round}: a restart"), || {
            watch.restarts.lock().expect("lock").len() > before
        })
        .await;
        let started = watch.restarts.lock().expect("lock")[before];
        latencies.push(started.duration_since(killed));
    }
    daemon.stop().await;
    latencies
}

/// Polls `done` every millisecond until it holds; panics after 30 s.
async fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
