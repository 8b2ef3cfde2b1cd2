//! The HTTP API's cost: a daemon with 1,000 `http` tasks every 1 s (against a loopback target in
//! a child process) serves its API as `hmrt run` does (on its own thread). A load generator (a
//! child process, 8 keep-alive connections) drives `GET /health`, then `GET /metrics`, as fast as
//! they answer. It prints requests/s for each, and the scheduler's lag (how late each check
//! started after its due time, from the `late` of every check event) with the API idle and under
//! each load, beside the target: the lag does not grow under load (p99 within 2x and 10 ms of
//! idle).
//!
//! ```text
//! cargo bench -p hmrt --bench api --profile dev
//! ```
//!
//! Without `--bench` on its command line it runs 20 tasks for 1 s per phase, as a smoke test.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmrt::api::{ApiState, Tokens};
use hmrt::clock::{Clock, SystemClock};
use hmrt::events::{Board, Event, Metrics, Subscriber};
use hmrt_policy::Timestamp;

use common::{SERVER_ENV, Server, serve};

const LOAD_ENV: &str = "HMRT_BENCH_LOAD";
const CONNECTIONS: usize = 8;

fn main() {
    if std::env::var_os(SERVER_ENV).is_some() {
        serve();
        return;
    }
    if let Some(spec) = std::env::var_os(LOAD_ENV) {
        load(&spec.to_string_lossy());
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let (tasks, warmup, window) = if full {
        (1000, Duration::from_secs(4), Duration::from_secs(10))
    } else {
        (20, Duration::from_secs(1), Duration::from_secs(1))
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let server = Server::start();
    let lag = Arc::new(Lag::default());
    let (api, stop) = runtime.block_on(start(tasks, server.port, lag.clone()));
    std::thread::sleep(warmup);
    let mut rows = Vec::new();
    for path in [None, Some("/health"), Some("/metrics")] {
        lag.reset();
        let rate = match path {
            None => {
                std::thread::sleep(window);
                None
            }
            Some(path) => Some(drive(api, path, window)),
        };
        rows.push((path.unwrap_or("(idle)"), rate, lag.take()));
    }
    let _ = stop.send(true);
    println!();
    println!(
        "api: {tasks} http tasks every 1 s; the API on its own thread; {CONNECTIONS} keep-alive connections"
    );
    println!(
        "{:<10} {:>10} {:>8} {:>10} {:>10} {:>10}",
        "load", "req/s", "checks", "lag p50", "lag p99", "lag max"
    );
    for (label, rate, lags) in &rows {
        let rate = rate.map_or("-".to_string(), |r| format!("{r:.0}"));
        println!(
            "{label:<10} {rate:>10} {:>8} {:>8.1}ms {:>8.1}ms {:>8.1}ms",
            lags.n,
            lags.p50 * 1e3,
            lags.p99 * 1e3,
            lags.max * 1e3
        );
    }
    let idle = &rows[0].2;
    for (label, _, lags) in &rows[1..] {
        let bound = (idle.p99 * 2.0).max(idle.p99 + 0.010);
        println!(
            "lag p99 under {label}: {:.1} ms (target <= {:.1} ms: 2x idle and 10 ms over it) {}",
            lags.p99 * 1e3,
            bound * 1e3,
            if lags.p99 <= bound { "ok" } else { "MISSED" }
        );
    }
}

/// Lateness of every check, collected per phase.
#[derive(Default)]
struct Lag {
    samples: Mutex<Vec<Duration>>,
}

struct Percentiles {
    n: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

impl Lag {
    fn reset(&self) {
        hmrt_lock(&self.samples).clear();
    }

    fn take(&self) -> Percentiles {
        let mut s = std::mem::take(&mut *hmrt_lock(&self.samples));
        s.sort_unstable();
        let at = |q: f64| {
            s.get(((s.len() as f64 * q) as usize).min(s.len().saturating_sub(1)))
                .map_or(0.0, Duration::as_secs_f64)
        };
        Percentiles {
            n: s.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: s.last().map_or(0.0, Duration::as_secs_f64),
        }
    }
}

fn hmrt_lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Subscriber for Lag {
    fn on_event(&self, _at: Timestamp, event: &Event) {
        if let Event::CheckFinished { late, .. } = event {
            hmrt_lock(&self.samples).push(*late);
        }
    }
}

/// Starts the daemon and its API as `hmrt run` does; returns the API's address and the stop
/// switch.
async fn start(
    tasks: usize,
    port: u16,
    lag: Arc<Lag>,
) -> (std::net::SocketAddr, tokio::sync::watch::Sender<bool>) {
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let mut text = String::from(
        "[runtime]\nlisten = \"127.0.0.1:0\"\n[defaults]\ninterval = \"1s\"\ntimeout = \"2s\"\n",
    );
    for i in 0..tasks {
        text.push_str(&format!(
            "[[task]]\nname = \"t{i}\"\ncheck = \"http\"\nconfig = {{ url = \"http://127.0.0.1:{port}/health\" }}\ngrants = {{ http = [\"http://127.0.0.1:{port}\"] }}\n"
        ));
    }
    let path = dir.join("tasks.toml");
    std::fs::write(&path, text).expect("write config");
    let config = hmrt_config::Config::load(&path, None).expect("config");
    let (sandbox, registry) = hmrt::cli::setup(&config, false).await.expect("setup");
    let bound = hmrt::tasks::bind(&config, &registry).unwrap_or_else(|_| panic!("bind"));
    let policies = hmrt::simulate::policies(&config);
    let board = Arc::new(Board::new(policies.clone()));
    let metrics = Arc::new(Metrics::new(policies));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let daemon = hmrt::daemon::Daemon::new(
        &config,
        sandbox,
        bound,
        vec![board.clone(), metrics.clone(), lag],
        clock.clone(),
    )
    .expect("daemon");
    board.seed(daemon.states());
    let state = Arc::new(ApiState {
        board,
        metrics,
        control: daemon.control(),
        liveness: daemon.liveness(),
        tokens: Tokens::default(),
        clock,
        events: daemon.events().clone(),
        alerts: None,
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    hmrt::api::spawn(listener, state, stopped.clone()).expect("API thread");
    let mut until = stopped;
    tokio::spawn(daemon.run(async move {
        let _ = until.wait_for(|stop| *stop).await;
    }));
    (addr, stop)
}

/// Runs the load generator for `window` against `path`; returns requests per second.
fn drive(api: std::net::SocketAddr, path: &str, window: Duration) -> f64 {
    let out = std::process::Command::new(std::env::current_exe().expect("own path"))
        .env(LOAD_ENV, format!("{api}|{path}|{}", window.as_secs_f64()))
        .output()
        .expect("run the load generator");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("load generator said {text:?}"))
}

/// Load mode: `addr|path|seconds`; prints the successful requests per second.
fn load(spec: &str) {
    let mut parts = spec.split('|');
    let (addr, path, secs) = (
        parts.next().expect("addr").to_string(),
        parts.next().expect("path").to_string(),
        parts.next().expect("secs").parse::<f64>().expect("secs"),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let rate = runtime.block_on(async move {
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(CONNECTIONS)
            .build()
            .expect("client");
        let url = format!("http://{addr}{path}");
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let started = Instant::now();
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..CONNECTIONS {
            let (client, url) = (client.clone(), url.clone());
            workers.spawn(async move {
                let mut ok = 0u64;
                while Instant::now() < deadline {
                    if let Ok(r) = client.get(&url).send().await
                        && r.bytes().await.is_ok()
                    {
                        ok += 1;
                    }
                }
                ok
            });
        }
        let total: u64 = workers.join_all().await.into_iter().sum();
        total as f64 / started.elapsed().as_secs_f64()
    });
    println!("{rate}");
}
