//! What the benchmarks that run a daemon share: the loopback target server (this benchmark's
//! binary again, in a child process, so its CPU is not counted as hmrt's) and the process's
//! CPU time.

#![allow(dead_code)]

pub mod fairness;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Set in the child: run as the target server.
pub const SERVER_ENV: &str = "HMRT_BENCH_SERVER";

/// User + system CPU of this process so far.
pub fn cpu() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(usage.user_time()) + tv(usage.system_time())
}

/// The target: this binary in server mode, in a child process.
pub struct Server {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Server {
    /// Starts it and reads its port.
    pub fn start() -> Server {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .env(SERVER_ENV, "1")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the target server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the server's port");
        let port = line.trim().parse().expect("a port");
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Server mode: `GET /health` answers 200 "ok" and is counted; `GET /count` says how many.
pub fn serve() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        use axum::routing::get;
        let served = Arc::new(AtomicU64::new(0));
        let counted = served.clone();
        let app = axum::Router::new()
            .route(
                "/health",
                get(move || {
                    served.fetch_add(1, Ordering::Relaxed);
                    async { "ok" }
                }),
            )
            .route(
                "/count",
                get(move || {
                    let n = counted.load(Ordering::Relaxed);
                    async move { n.to_string() }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("{}", listener.local_addr().expect("addr").port());
        let _ = axum::serve(listener, app).await;
    });
}

/// User + system clock ticks of process `pid` so far (all its threads), from `/proc/<pid>/stat`.
pub fn proc_cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    let after_name = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// Resident memory of process `pid` (VmRSS in `/proc/<pid>/status`), in KiB.
pub fn proc_rss_kb(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// The machine's 1, 5 and 15 minute load averages, as `/proc/loadavg` gives them.
pub fn loadavg() -> String {
    let line = std::fs::read_to_string("/proc/loadavg").expect("/proc/loadavg");
    line.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Server {
    /// Its process id (for its CPU, beside hmrt's).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// The daemon of a bench that runs it in-process: `tasks.toml` at `path`, publishing to
/// `subscriber`, on the real clock.
pub struct BenchDaemon {
    stop: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<Result<(), hmrt::daemon::DaemonError>>,
}

impl BenchDaemon {
    /// Loads the config, sets up the sandbox and registry as `hmrt run` does, and starts it.
    pub async fn start(
        path: &std::path::Path,
        subscriber: Arc<dyn hmrt::events::Subscriber>,
    ) -> BenchDaemon {
        let config = hmrt_config::Config::load(path, None).expect("config");
        let (sandbox, registry) = hmrt::cli::setup(&config, false).await.expect("setup");
        let bound = hmrt::tasks::bind(&config, &registry).unwrap_or_else(|_| panic!("bind"));
        let daemon = hmrt::daemon::Daemon::new(
            &config,
            sandbox,
            bound,
            vec![subscriber],
            Arc::new(hmrt::clock::SystemClock),
        )
        .expect("daemon");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(daemon.run(async {
            let _ = stopped.await;
        }));
        BenchDaemon { stop, running }
    }

    /// Stops it and waits until it has.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.running.await;
    }
}
