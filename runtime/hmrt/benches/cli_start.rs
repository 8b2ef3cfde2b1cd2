//! P5 of the performance issue: the wall time of `hmrt check` of one http task, from exec to
//! exit, cold (nothing compiled yet) and with a warm compile cache, beside the target
//! (< 50 ms warm). The target server is this binary in server mode (see `common`).
//!
//! ```text
//! cargo bench -p hmrt --bench cli_start --profile dev
//! ```
//!
//! Without `--bench` on its command line it runs 3 warm starts, as a smoke test.

use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{SERVER_ENV, Server, serve};

const TARGET: Duration = Duration::from_millis(50);

fn main() {
    if std::env::var_os(SERVER_ENV).is_some() {
        serve();
        return;
    }
    let runs = if std::env::args().any(|a| a == "--bench") {
        30
    } else {
        3
    };
    let server = Server::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("tasks.toml");
    std::fs::write(
        &config,
        format!(
            "[[task]]\nname = \"web\"\ncheck = \"http\"\nconfig = {{ url = \"http://127.0.0.1:{port}/health\" }}\ngrants = {{ http = [\"http://127.0.0.1:{port}\"] }}\n",
            port = server.port
        ),
    )
    .expect("write the config");
    let cache = dir.path().join("cache");
    let check = || {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_hmrt"))
            .arg("check")
            .arg(&config)
            .env("HMRT_CACHE_DIR", &cache)
            .output()
            .expect("run hmrt check");
        let took = started.elapsed();
        assert!(
            out.status.success(),
            "hmrt check failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        took
    };
    let cold = check();
    let mut warm: Vec<Duration> = (0..runs).map(|_| check()).collect();
    warm.sort();
    let median = warm[warm.len() / 2];
    let worst = warm[warm.len() - 1];
    println!();
    println!("P5: `hmrt check` of one http task, exec to exit ({runs} warm runs)");
    println!("{:>34}  {:>9.1?}", "cold (compiles the http check)", cold);
    println!("{:>34}  {:>9.1?}", "warm compile cache, median", median);
    println!("{:>34}  {:>9.1?}", "warm compile cache, slowest", worst);
    let verdict = if median < TARGET { "ok" } else { "MISSED" };
    println!("warm median {median:.1?} (target < {TARGET:?}) {verdict}");
}
