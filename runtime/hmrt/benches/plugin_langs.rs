//! What a plugin costs in each language a third party can write one in: the scaffold of
//! `hmrt plugins new` (its http check), built by its own `./build.sh`, then through the
//! daemon's own path (`hmrt::cli::setup`, `tasks::bind`, `Sandbox::check`): component size,
//! first compile (an empty compile cache), load from the compile cache, and a check call
//! against a keep-alive loopback server, in the task's warm instance and in a fresh one.
//!
//! ```text
//! cargo bench -p hmrt --bench plugin_langs --profile dev
//! ```
//!
//! It installs each language's toolchain into its project (pip, npm), so it needs the
//! registries; without `--bench` (`cargo test --benches`) it does nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hmrt::sandbox::{Plugin, Sandbox, Status, TaskCall};
use hmrt::tasks::Bound;

const LANGS: &[&str] = &["rust", "python", "js"];
const CALLS: usize = 300;
const LOADS: usize = 5;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("plugin_langs: builds three projects from their registries; run with --bench");
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    // SAFETY: set before any thread of this process starts (the runtime is built below).
    unsafe { std::env::set_var("HMRT_CACHE_DIR", work.path().join("cache")) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let rows: Vec<Row> = LANGS
        .iter()
        .map(|lang| {
            let (wasm, build) = scaffold(work.path(), lang);
            let dir = work.path().to_path_buf();
            let lang = lang.to_string();
            runtime
                .block_on(runtime.spawn(async move { measure(&dir, &lang, &wasm, build).await }))
                .expect("benchmark task")
        })
        .collect();
    println!(
        "\nplugins by language (the scaffold's http check; {} CPUs; {} hmrt)",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        if cfg!(debug_assertions) {
            "dev-profile"
        } else {
            "release-profile"
        }
    );
    println!(
        "{:<8} {:>10} {:>9} {:>14} {:>12} {:>12} {:>12}",
        "", "size", "build", "first compile", "cached load", "call, warm", "call, fresh"
    );
    for r in rows {
        println!(
            "{:<8} {:>7} KB {:>7.1} s {:>12.0} ms {:>9.1} ms {:>9.0} µs {:>9.0} µs",
            r.lang,
            r.size / 1000,
            r.build.as_secs_f64(),
            ms(r.first),
            ms(r.cached),
            r.warm.as_secs_f64() * 1e6,
            r.fresh.as_secs_f64() * 1e6,
        );
    }
    println!(
        "(build: the project's ./build.sh after its toolchain is installed; calls: medians of {CALLS}, each a GET to 127.0.0.1)"
    );
}

struct Row {
    lang: String,
    size: u64,
    build: Duration,
    first: Duration,
    cached: Duration,
    warm: Duration,
    fresh: Duration,
}

/// `hmrt plugins new` + `./build.sh` (twice: the second is the build time an author sees once
/// the toolchain is installed). Returns the component and that build's time.
fn scaffold(dir: &Path, lang: &str) -> (PathBuf, Duration) {
    let name = format!("lp-{lang}");
    let project = dir.join(&name);
    let status = Command::new(env!("CARGO_BIN_EXE_hmrt"))
        .args(["plugins", "new", &name, "--lang", lang, "--dir"])
        .arg(&project)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("hmrt plugins new");
    assert!(status.success(), "plugins new {lang}");
    let build = || {
        let started = Instant::now();
        let out = Command::new(project.join("build.sh"))
            .current_dir(&project)
            .output()
            .expect("build.sh");
        assert!(
            out.status.success(),
            "{lang}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        started.elapsed()
    };
    build();
    // Touch the source so the second build builds.
    let source = ["src/lib.rs", "app.py", "app.js"]
        .iter()
        .map(|f| project.join(f))
        .find(|p| p.is_file())
        .expect("the source");
    let text = std::fs::read_to_string(&source).expect("source");
    std::fs::write(&source, format!("{text}\n")).expect("touch");
    (project.join(format!("{name}.wasm")), build())
}

async fn measure(dir: &Path, lang: &str, wasm: &Path, build: Duration) -> Row {
    let server = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, server).await });
    let plugins = dir.join(format!("plugins-{lang}"));
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    std::fs::copy(wasm, plugins.join("probe.wasm")).expect("copy");
    let text = format!(
        "[runtime]\nplugins_dir = {plugins:?}\n\n[[task]]\nname = \"probe\"\ncheck = \"probe\"\ninterval = \"1s\"\nmemory = \"128MiB\"\nconfig = {{ url = \"http://127.0.0.1:{port}/\" }}\ngrants = {{ http = [\"http://127.0.0.1:{port}\"] }}\n"
    );
    let path = dir.join(format!("tasks-{lang}.toml"));
    std::fs::write(&path, &text).expect("config");
    let config = hmrt_config::Config::load(&path, None).expect("config");

    let started = Instant::now();
    let (sandbox, registry) = hmrt::cli::setup(&config, false).await.expect("setup");
    let first = started.elapsed();
    assert!(
        registry.problems().is_empty(),
        "{lang}: {:?}",
        registry.problems()
    );
    drop((sandbox, registry));
    let mut loads = Vec::new();
    let mut kept = None;
    for _ in 0..LOADS {
        let started = Instant::now();
        let parts = hmrt::cli::setup(&config, false).await.expect("setup");
        loads.push(started.elapsed());
        kept = Some(parts);
    }
    let (sandbox, registry) = kept.expect("loaded");
    let tasks = hmrt::tasks::bind(&config, &registry).unwrap_or_else(|e| panic!("{e:?}"));
    let (plugin, call) = match &tasks[0].check {
        Bound::Ready(entry) => (entry.plugin.clone(), tasks[0].check_call.clone()),
        _ => panic!("{lang}: probe not bound"),
    };
    let fresh_call = TaskCall {
        reuse: None,
        ..call.clone()
    };
    let warm = calls(&sandbox, &plugin, &call).await;
    let fresh = calls(&sandbox, &plugin, &fresh_call).await;
    Row {
        lang: lang.to_string(),
        size: std::fs::metadata(wasm).expect("size").len(),
        build,
        first,
        cached: median(loads),
        warm,
        fresh,
    }
}

async fn calls(sandbox: &Sandbox, plugin: &Plugin, call: &TaskCall) -> Duration {
    let mut times = Vec::with_capacity(CALLS);
    for i in 0..CALLS + 20 {
        let started = Instant::now();
        let outcome = sandbox.check(plugin, call).await;
        let took = started.elapsed();
        assert_eq!(outcome.status(), Status::Healthy, "{}", outcome.message());
        if i >= 20 {
            times.push(took);
        }
    }
    median(times)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
