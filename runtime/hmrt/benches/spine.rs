//! The spine under load: the daemon (scheduler, sandbox, policy, events, state journal) with
//! 200 and with 1,000 `http` tasks every 1 s against one loopback server, in real time. It
//! prints, for each size, the checks per second achieved (counted by the daemon and at the
//! target) and the CPU the hmrt process spent per check (user + system, from getrusage), beside
//! the targets: CPU per check at 1,000 tasks within 1.2x of that at 200, and 1,000 tasks kept up
//! with (at least 990 checks/s).
//!
//! Each measured window (33 s) is longer than the state journal's lazy write period
//! ([`hmrt::journal::LAZY_WRITE`], 30 s), so the cost of writing results is in the figure.
//!
//! The target server is a child process (this binary again, with `HMRT_BENCH_SERVER=1`), so its
//! CPU is not counted as hmrt's.
//!
//! ```text
//! cargo bench -p hmrt --bench spine --profile dev
//! ```
//!
//! Without `--bench` on its command line it runs 20 tasks for 2 s, as a smoke test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmrt::events::Counters;

mod common;

use common::{SERVER_ENV, Server, cpu, serve};

fn main() {
    if std::env::var_os(SERVER_ENV).is_some() {
        serve();
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let server = Server::start();
    let sizes: &[(usize, Duration, Duration)] = if full {
        &[
            // A window longer than the journal's lazy write period, so each run pays for
            // writing every task's results once, as a long-running daemon does.
            (200, Duration::from_secs(3), Duration::from_secs(33)),
            (1000, Duration::from_secs(3), Duration::from_secs(33)),
        ]
    } else {
        &[(20, Duration::from_secs(1), Duration::from_secs(2))]
    };
    let mut results = Vec::new();
    for &(tasks, warmup, window) in sizes {
        let port = server.port;
        let measured = runtime
            .block_on(runtime.spawn(measure(tasks, port, warmup, window)))
            .expect("benchmark task");
        results.push((tasks, measured));
    }
    println!();
    println!("spine: http tasks every 1 s against one loopback server (hmrt process CPU only)");
    println!(
        "{:>6}  {:>10}  {:>10}  {:>14}",
        "tasks", "checks/s", "at target", "CPU us/check"
    );
    for (tasks, m) in &results {
        println!(
            "{tasks:>6}  {:>10.1}  {:>10.1}  {:>14.1}",
            m.checks_per_s, m.target_per_s, m.cpu_us_per_check
        );
    }
    if let [(_, small), (large_n, large)] = results.as_slice() {
        let ratio = large.cpu_us_per_check / small.cpu_us_per_check;
        println!(
            "CPU per check at {large_n} / at 200: {ratio:.2}x (target <= 1.20x) {}",
            verdict(ratio <= 1.2)
        );
        println!(
            "checks/s at {large_n}: {:.1} (target >= 990) {}",
            large.checks_per_s,
            verdict(large.checks_per_s >= 990.0)
        );
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

struct Measured {
    checks_per_s: f64,
    target_per_s: f64,
    cpu_us_per_check: f64,
}

async fn measure(tasks: usize, port: u16, warmup: Duration, window: Duration) -> Measured {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut text = String::from("[defaults]\ninterval = \"1s\"\ntimeout = \"2s\"\n");
    for i in 0..tasks {
        text.push_str(&format!(
            "[[task]]\nname = \"t{i}\"\ncheck = \"http\"\nconfig = {{ url = \"http://127.0.0.1:{port}/health\" }}\ngrants = {{ http = [\"http://127.0.0.1:{port}\"] }}\n"
        ));
    }
    let path = dir.path().join("tasks.toml");
    std::fs::write(&path, text).expect("write config");
    let counters = Arc::new(Counters::default());
    let daemon = common::BenchDaemon::start(&path, counters.clone()).await;
    tokio::time::sleep(warmup).await;
    let checks = || counters.counts().checks.values().sum::<u64>();
    let (checks0, target0, cpu0, t0) = (checks(), target_count(port).await, cpu(), Instant::now());
    tokio::time::sleep(window).await;
    let (checks1, target1, cpu1, elapsed) =
        (checks(), target_count(port).await, cpu(), t0.elapsed());
    daemon.stop().await;
    let done = (checks1 - checks0) as f64;
    Measured {
        checks_per_s: done / elapsed.as_secs_f64(),
        target_per_s: (target1 - target0) as f64 / elapsed.as_secs_f64(),
        cpu_us_per_check: (cpu1 - cpu0).as_secs_f64() * 1e6 / done.max(1.0),
    }
}

async fn target_count(port: u16) -> u64 {
    let body = reqwest::get(format!("http://127.0.0.1:{port}/count"))
        .await
        .expect("count")
        .text()
        .await
        .expect("count body");
    body.trim().parse().expect("a number")
}
