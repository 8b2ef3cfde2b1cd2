//! Guest CPU must not delay other tasks' schedules: canary `http` tasks every 200 ms, first
//! alone and then beside CPU-spinning guests (the `hostile` test guest in `spin` mode, each
//! spinning to its 1 s timeout, again and again), in one daemon each, in real time. Shared by
//! the `fairness` benchmark (which prints the figures beside the target) and a test in
//! tests/all (which asserts a looser bound in a shorter window).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmrt::clock::SystemClock;
use hmrt::events::{Event, Subscriber};
use hmrt_policy::Timestamp;

/// The canaries' interval.
pub const CANARY_INTERVAL: Duration = Duration::from_millis(200);

/// What the canaries did in one window.
#[derive(Debug, Clone)]
pub struct Canaries {
    /// Checks finished by all canaries together.
    pub checks: usize,
    /// The longest time between two checks of one canary.
    pub worst_gap: Duration,
}

/// When each canary's checks finished.
#[derive(Default)]
struct Finished(Mutex<BTreeMap<String, Vec<Instant>>>);

impl Subscriber for Finished {
    fn on_event(&self, _at: Timestamp, event: &Event) {
        if let Event::CheckFinished { task, .. } = event
            && task.starts_with("canary")
        {
            let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
            seen.entry(task.clone()).or_default().push(Instant::now());
        }
    }
}

/// Runs `canaries` http tasks against `origin` (`http://127.0.0.1:P`, answering 200 at `path`)
/// beside `spinners` spinning guests for `window` after `warmup`, and says what the canaries
/// did.
pub async fn run(
    hostile_wasm: &str,
    origin: &str,
    path: &str,
    canaries: usize,
    spinners: usize,
    warmup: Duration,
    window: Duration,
) -> Canaries {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("plugins")).expect("plugins dir");
    std::fs::copy(hostile_wasm, dir.path().join("plugins/hostile.wasm")).expect("copy hostile");
    let mut text = String::from("[defaults]\ntimeout = \"1s\"\n");
    for i in 0..canaries {
        text.push_str(&format!(
            "[[task]]\nname = \"canary{i}\"\ncheck = \"http\"\ninterval = \"{}ms\"\nconfig = {{ url = \"{origin}{path}\" }}\ngrants = {{ http = [\"{origin}\"] }}\n",
            CANARY_INTERVAL.as_millis()
        ));
    }
    for i in 0..spinners {
        text.push_str(&format!(
            "[[task]]\nname = \"spin{i}\"\ncheck = \"hostile\"\ninterval = \"200ms\"\nconfig = {{ mode = \"spin\" }}\n"
        ));
    }
    let path = dir.path().join("tasks.toml");
    std::fs::write(&path, text).expect("write config");
    let config = hmrt_config::Config::load(&path, None).expect("config");
    let (sandbox, registry) = hmrt::cli::setup(&config, false).await.expect("setup");
    let bound = hmrt::tasks::bind(&config, &registry).unwrap_or_else(|_| panic!("bind"));
    let finished = Arc::new(Finished::default());
    let daemon = hmrt::daemon::Daemon::new(
        &config,
        sandbox,
        bound,
        vec![finished.clone()],
        Arc::new(SystemClock),
    )
    .expect("daemon");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(daemon.run(async {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(warmup).await;
    let from = Instant::now();
    tokio::time::sleep(window).await;
    let to = Instant::now();
    let _ = stop_tx.send(());
    let _ = running.await;
    let seen = finished.0.lock().unwrap_or_else(|e| e.into_inner());
    let mut checks = 0;
    let mut worst_gap = Duration::ZERO;
    for times in seen.values() {
        let inside: Vec<Instant> = times
            .iter()
            .copied()
            .filter(|t| *t >= from && *t <= to)
            .collect();
        checks += inside.len();
        // The edges count too: a canary silent at the start or end of the window is a gap.
        let mut last = from;
        for t in inside.iter().copied().chain([to]) {
            worst_gap = worst_gap.max(t - last);
            last = t;
        }
    }
    Canaries { checks, worst_gap }
}
