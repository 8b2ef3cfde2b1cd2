//! What one check costs, measured through the same public path the daemon uses: a tasks.toml
//! parsed by `hmrt_config`, `hmrt::cli::setup` for the sandbox and registry, `hmrt::tasks::bind`
//! for each task's call, and `Sandbox::check` (in the task's warm instance for a task checked at
//! least every `sandbox::REUSE_INTERVAL`, else fresh Store + instantiate + call + drop).
//!
//! Run it in the profile everything else is built in, so nothing is rebuilt:
//!
//! ```text
//! cargo bench -p hmrt --bench check_cost --profile dev
//! ```
//!
//! Without `--bench` on its command line (`cargo test --benches`, `--all-targets`) it runs a
//! few iterations of each part only, as a smoke test.
//!
//! Parts:
//! 1. a pure check: the `hostile` test guest with `mode = "ok"`, which returns healthy without
//!    a single host call, so the time is the sandbox's own cost (P2: warm; and fresh, for
//!    comparison);
//! 2. the built-in `http` check against a native reqwest GET to the same in-process keep-alive
//!    axum server, in alternating batches so both see the same machine state; the server is
//!    fast on purpose, so the sandbox's overhead is not hidden behind a slow endpoint;
//! 3. pure checks from 8 concurrent callers against 1, as throughput.

use std::path::Path;
use std::time::{Duration, Instant};

use hmrt::sandbox::{Plugin, Sandbox, Status, TaskCall};
use hmrt::tasks::{Bound, BoundTask};

/// Iteration counts, full or smoke.
struct Plan {
    warmup: usize,
    pure: usize,
    batch: usize,
    batches: usize,
    concurrent_callers: usize,
    concurrent_per_caller: usize,
}

const FULL: Plan = Plan {
    warmup: 500,
    pure: 5_000,
    batch: 50,
    batches: 40,
    concurrent_callers: 8,
    concurrent_per_caller: 500,
};

const SMOKE: Plan = Plan {
    warmup: 5,
    pure: 20,
    batch: 5,
    batches: 2,
    concurrent_callers: 8,
    concurrent_per_caller: 5,
};

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` on a harness-less target passes nothing.
    let full = std::env::args().any(|a| a == "--bench");
    let plan = if full { &FULL } else { &SMOKE };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // On a worker thread, as the daemon's scheduler is: `block_on` would run the caller on
    // the main thread and add a cross-thread wake-up to every call.
    runtime
        .block_on(runtime.spawn(run(plan, full)))
        .expect("benchmark task");
}

async fn run(plan: &Plan, full: bool) {
    let server = start_server().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(dir.path(), server.port, plan.concurrent_callers);
    let (sandbox, registry) = hmrt::cli::setup(&config, false).await.expect("setup");
    assert!(
        registry.problems().is_empty(),
        "plugins not loaded: {:?}",
        registry
            .problems()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
    let tasks = match hmrt::tasks::bind(&config, &registry) {
        Ok(tasks) => tasks,
        Err(errors) => panic!(
            "bind: {:?}",
            errors.iter().map(ToString::to_string).collect::<Vec<_>>()
        ),
    };
    let (pure_plugin, pure_call) = task(&tasks, "pure");
    let (fresh_plugin, fresh_call) = task(&tasks, "pure-fresh");
    let (http_plugin, http_call) = task(&tasks, "http");
    let native = native_client();
    let url = format!("http://127.0.0.1:{}/", server.port);

    println!(
        "hmrt check cost ({}; {} CPUs; {} build)",
        if full {
            "full run"
        } else {
            "smoke run, no --bench"
        },
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        if cfg!(debug_assertions) {
            "dev-profile"
        } else {
            "release-profile"
        },
    );

    // 1. Pure check.
    for _ in 0..plan.warmup {
        checked(&sandbox, &pure_plugin, &pure_call).await;
    }
    let mut pure = Vec::with_capacity(plan.pure);
    for _ in 0..plan.pure {
        pure.push(checked(&sandbox, &pure_plugin, &pure_call).await.0);
    }
    let pure = Stats::of(pure);
    let mut fresh = Vec::with_capacity(plan.pure);
    for _ in 0..plan.pure {
        fresh.push(checked(&sandbox, &fresh_plugin, &fresh_call).await.0);
    }
    let fresh = Stats::of(fresh);

    // 2. http check against native reqwest, alternating batches after a warm-up of both.
    for _ in 0..plan.warmup {
        checked(&sandbox, &http_plugin, &http_call).await;
        native_get(&native, &url).await;
    }
    let mut http = Vec::with_capacity(plan.batch * plan.batches);
    let mut exchange = Vec::with_capacity(plan.batch * plan.batches);
    let mut direct = Vec::with_capacity(plan.batch * plan.batches);
    for round in 0..plan.batches {
        // Alternate which goes first too, so neither always follows the other.
        for first in [round % 2 == 0, round % 2 != 0] {
            for _ in 0..plan.batch {
                if first {
                    let (total, inside) = checked(&sandbox, &http_plugin, &http_call).await;
                    http.push(total);
                    exchange.push(inside.expect("the http check reports latency_ms"));
                } else {
                    direct.push(native_get(&native, &url).await);
                }
            }
        }
    }
    let http = Stats::of(http);
    let exchange = Stats::of(exchange);
    let direct = Stats::of(direct);

    // 3. Throughput: the same total of pure checks from 1 caller, then from N at once.
    let total = plan.concurrent_callers * plan.concurrent_per_caller;
    let started = Instant::now();
    for _ in 0..total {
        checked(&sandbox, &pure_plugin, &pure_call).await;
    }
    let serial = total as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..plan.concurrent_callers {
        let sandbox = sandbox.clone();
        let (plugin, call) = (pure_plugin.clone(), pure_call.clone());
        let per_caller = plan.concurrent_per_caller;
        callers.spawn(async move {
            for _ in 0..per_caller {
                checked(&sandbox, &plugin, &call).await;
            }
        });
    }
    while let Some(joined) = callers.join_next().await {
        joined.expect("caller");
    }
    let concurrent = total as f64 / started.elapsed().as_secs_f64();

    println!();
    println!(
        "{:<52} {:>6} {:>9} {:>9} {:>9}",
        "", "N", "median", "p90", "mean"
    );
    pure.row("pure check (the task's warm instance)");
    fresh.row("pure check (new Store + instantiate + call)");
    http.row("http check (built-in, sandboxed) to loopback");
    exchange.row("  of which the request, as the host timed it");
    direct.row("native reqwest GET to the same server");
    println!();
    let ratio = http.median / direct.median;
    println!(
        "P1 http check / native GET: x{ratio:.2} median, x{:.2} mean (target <= x1.10) {}",
        http.mean / direct.mean,
        verdict(ratio <= 1.10)
    );
    println!(
        "P2 pure check: {:.1} us median (target <= 10 us) {}",
        pure.median,
        verdict(pure.median <= 10.0)
    );
    println!(
        "pure checks/s: {serial:.0} from 1 caller, {concurrent:.0} from {} concurrent callers \
         (max_concurrency {}, {total} checks per run)",
        plan.concurrent_callers, plan.concurrent_callers
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

/// Runs one check through the daemon's path and returns how long it took, and the `latency_ms`
/// metric if the check reports one (the http check's request as the host timed it). A check
/// that is not healthy means the benchmark measures the wrong thing, so it stops.
async fn checked(
    sandbox: &Sandbox,
    plugin: &Plugin,
    call: &TaskCall,
) -> (Duration, Option<Duration>) {
    let started = Instant::now();
    let outcome = sandbox.check(plugin, call).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(outcome.status(), Status::Healthy),
        "{}: {}",
        call.name,
        outcome.message()
    );
    let latency = outcome.result.ok().and_then(|r| {
        r.metrics
            .iter()
            .find(|m| m.name == "latency_ms")
            .map(|m| Duration::from_secs_f64(m.value / 1000.0))
    });
    (elapsed, latency)
}

async fn native_get(client: &reqwest::Client, url: &str) -> Duration {
    let started = Instant::now();
    let response = client.get(url).send().await.expect("native GET");
    let status = response.status();
    let body = response.bytes().await.expect("native body");
    let elapsed = started.elapsed();
    assert!(
        status.is_success() && &body[..] == b"ok",
        "native GET: {status}"
    );
    elapsed
}

/// A client set up as hmrt's own (no proxy, no redirects), so the two differ only in the sandbox.
fn native_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

fn task(tasks: &[BoundTask], name: &str) -> (Plugin, TaskCall) {
    let task = tasks
        .iter()
        .find(|t| t.name() == name)
        .unwrap_or_else(|| panic!("task {name} not bound"));
    match &task.check {
        Bound::Ready(entry) => (entry.plugin.clone(), task.check_call.clone()),
        Bound::Broken(reason) => panic!("{name}: {reason}"),
        Bound::Heartbeat(_) => panic!("{name} is a heartbeat, not a plugin"),
    }
}

fn write_config(dir: &Path, port: u16, max_concurrency: usize) -> hmrt_config::Config {
    let plugins = dir.join("plugins");
    std::fs::create_dir(&plugins).expect("plugins dir");
    std::fs::copy(hmrt_test_artifacts::HOSTILE, plugins.join("hostile.wasm"))
        .expect("copy the hostile guest");
    let text = format!(
        r#"
[runtime]
max_concurrency = {max_concurrency}

[[task]]
name = "pure"
check = "hostile"
interval = "1s"
config = {{ mode = "ok" }}

# Checked less often than sandbox::REUSE_INTERVAL: a fresh instance per call.
[[task]]
name = "pure-fresh"
check = "hostile"
interval = "1m"
config = {{ mode = "ok" }}

[[task]]
name = "http"
check = "http"
interval = "1s"
config = {{ url = "http://127.0.0.1:{port}/" }}
grants = {{ http = ["http://127.0.0.1:{port}"] }}
"#
    );
    let file = dir.join("tasks.toml");
    std::fs::write(&file, &text).expect("write tasks.toml");
    hmrt_config::Config::parse(&text, &file, None).expect("tasks.toml")
}

struct Server {
    port: u16,
    _task: tokio::task::JoinHandle<()>,
}

async fn start_server() -> Server {
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server { port, _task: task }
}

/// Median, 90th percentile and mean, in µs.
struct Stats {
    n: usize,
    median: f64,
    p90: f64,
    mean: f64,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Stats {
        samples.sort_unstable();
        let micros = |d: Duration| d.as_secs_f64() * 1e6;
        let n = samples.len();
        Stats {
            n,
            median: micros(samples[n / 2]),
            p90: micros(samples[(n * 9 / 10).min(n - 1)]),
            mean: samples.iter().copied().map(micros).sum::<f64>() / n as f64,
        }
    }

    fn row(&self, label: &str) {
        println!(
            "{label:<52} {:>6} {:>6.1} µs {:>6.1} µs {:>6.1} µs",
            self.n, self.median, self.p90, self.mean
        );
    }
}
