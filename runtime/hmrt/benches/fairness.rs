//! Fairness: canary `http` tasks every 200 ms, alone and then beside 10 CPU-spinning guests,
//! on this machine's cores, measured in one run. Prints the canaries' checks in each case, the
//! ratio, and the worst gap between two checks of one canary, beside the targets (at least 90 %
//! of the checks made alone; no gap over two intervals).
//!
//! ```text
//! cargo bench -p hmrt --bench fairness --profile dev
//! ```
//!
//! Without `--bench` on its command line it measures 2 s windows, as a smoke test.

use std::time::Duration;

mod common;

use common::fairness::{CANARY_INTERVAL, run};
use common::{SERVER_ENV, Server, serve};

fn main() {
    if std::env::var_os(SERVER_ENV).is_some() {
        serve();
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let window = if full {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(2)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let server = Server::start();
    let origin = format!("http://127.0.0.1:{}", server.port);
    let hostile = hmrt_test_artifacts::HOSTILE;
    let warmup = Duration::from_secs(2);
    let alone = runtime.block_on(run(hostile, &origin, "/health", 5, 0, warmup, window));
    let crowded = runtime.block_on(run(hostile, &origin, "/health", 5, 10, warmup, window));
    let ratio = crowded.checks as f64 / alone.checks.max(1) as f64;
    println!();
    println!(
        "fairness: 5 canary http tasks every {} ms, {} s window, {} cores",
        CANARY_INTERVAL.as_millis(),
        window.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("{:>28}  {:>8}  {:>10}", "", "checks", "worst gap");
    println!(
        "{:>28}  {:>8}  {:>10.0?}",
        "alone", alone.checks, alone.worst_gap
    );
    println!(
        "{:>28}  {:>8}  {:>10.0?}",
        "beside 10 spinning guests", crowded.checks, crowded.worst_gap
    );
    println!(
        "checks beside spinners / alone: {:.1} % (target >= 90 %) {}",
        ratio * 100.0,
        verdict(ratio >= 0.9)
    );
    println!(
        "worst gap beside spinners: {:.0?} (target <= {:.0?}) {}",
        crowded.worst_gap,
        CANARY_INTERVAL * 2,
        verdict(crowded.worst_gap <= CANARY_INTERVAL * 2)
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}
