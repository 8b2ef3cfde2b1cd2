//! P6 of the performance issue: what an idle daemon costs. `hmrt run` (a child process) with
//! 100 `http` tasks every 30 s against a loopback server; after a warm-up, its CPU (from
//! `/proc/<pid>/stat`) over a window and its resident memory, beside the targets (< 0.5 % of a
//! core, < 25 MB).
//!
//! ```text
//! cargo bench -p hmrt --bench idle --profile dev
//! ```
//!
//! Without `--bench` on its command line it measures a 5 s window, as a smoke test.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

use common::{SERVER_ENV, Server, serve};

const TASKS: usize = 100;
const CPU_TARGET: f64 = 0.5;
const RSS_TARGET_MB: f64 = 25.0;

fn main() {
    if std::env::var_os(SERVER_ENV).is_some() {
        serve();
        return;
    }
    let window = if std::env::args().any(|a| a == "--bench") {
        Duration::from_secs(90)
    } else {
        Duration::from_secs(5)
    };
    let server = Server::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = format!(
        "[runtime]\nstate_dir = \"{}\"\n\n[defaults]\ninterval = \"30s\"\n",
        dir.path().join("state").display()
    );
    for i in 0..TASKS {
        let _ = write!(
            config,
            "\n[[task]]\nname = \"t{i}\"\ncheck = \"http\"\nconfig = {{ url = \"http://127.0.0.1:{p}/health\" }}\ngrants = {{ http = [\"http://127.0.0.1:{p}\"] }}\n",
            p = server.port
        );
    }
    let file = dir.path().join("tasks.toml");
    std::fs::write(&file, config).expect("write the config");
    // As a daemon restarts: the built-in it runs is already in the compile cache (P5's
    // "warm"); a first start with a cold cache compiles it and keeps more memory.
    let warmed = Command::new(env!("CARGO_BIN_EXE_hmrt"))
        .arg("validate")
        .arg(&file)
        .env("HMRT_CACHE_DIR", dir.path().join("cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("hmrt validate");
    assert!(
        warmed.success(),
        "hmrt validate of the bench's config failed"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_hmrt"))
        .arg("run")
        .arg(&file)
        .env("HMRT_LOG", "warn")
        .env("HMRT_CACHE_DIR", dir.path().join("cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hmrt run");
    let pid = child.id();
    // Every task's first check is spread over the first second; let them all run first.
    std::thread::sleep(Duration::from_secs(3));
    let before = cpu_ticks(pid);
    std::thread::sleep(window);
    let after = cpu_ticks(pid);
    let rss_mb = rss_kb(pid) as f64 / 1024.0;
    let _ = child.kill();
    let _ = child.wait();
    let hz = rustix::param::clock_ticks_per_second() as f64;
    let cpu = (after - before) as f64 / hz / window.as_secs_f64() * 100.0;
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!();
    println!(
        "P6: hmrt run idle, {TASKS} http tasks every 30 s, {}s window",
        window.as_secs()
    );
    println!(
        "CPU {cpu:.2} % of a core (target < {CPU_TARGET} %) {}",
        verdict(cpu < CPU_TARGET)
    );
    println!(
        "RSS {rss_mb:.1} MB (target < {RSS_TARGET_MB} MB) {}",
        verdict(rss_mb < RSS_TARGET_MB)
    );
}

/// User + system clock ticks of `pid` so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("hmrt's stat");
    let after_name = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// Resident memory of `pid`, in KiB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("hmrt's status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}
