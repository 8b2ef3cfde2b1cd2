//! What the tests share: configs in temp dirs, an in-process daemon with an event recorder,
//! and loopback HTTP servers.

pub use hmrt_test_support::supervisord;

mod process;
pub mod recording;
pub mod switchboard;

pub use process::HmrtProcess;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hmrt::clock::{Clock, ManualClock, SystemClock};
use hmrt::events::{Counters, Event, Recorder};
use hmrt_config::Config;
use hmrt_policy::Timestamp;

/// A temp dir with a `tasks.toml` and a `plugins/` dir.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("plugins")).expect("plugins dir");
        Workspace { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Copies a built guest into `plugins/NAME.wasm`.
    pub fn plugin(&self, name: &str, wasm: &str) -> &Workspace {
        std::fs::copy(
            wasm,
            self.path().join("plugins").join(format!("{name}.wasm")),
        )
        .expect("copy plugin");
        self
    }

    pub fn write_plugin_bytes(&self, name: &str, bytes: &[u8]) {
        std::fs::write(
            self.path().join("plugins").join(format!("{name}.wasm")),
            bytes,
        )
        .expect("write plugin");
    }

    /// Writes `tasks.toml` and returns its path.
    pub fn config(&self, text: &str) -> PathBuf {
        let path = self.path().join("tasks.toml");
        std::fs::write(&path, text).expect("write config");
        path
    }

    pub fn load(&self, text: &str) -> Config {
        let path = self.config(text);
        Config::load(&path, std::env::var_os("PATH").as_deref())
            .unwrap_or_else(|e| panic!("config does not load:\n{e}"))
    }
}

/// A daemon running in this process, with every event recorded.
pub struct RunningDaemon {
    pub recorder: Arc<Recorder>,
    pub counters: Arc<Counters>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<()>,
    pub started: SystemTime,
    /// The clock the daemon reads, when a test drives it.
    pub manual: Option<Arc<ManualClock>>,
    /// How many task loops the daemon runs (one sleeper each on a manual clock).
    pub loops: usize,
}

/// A supervisord program whose `/health` always answers 500, restarted only by hmrt.
pub fn never_healthy(name: &str, port: u16) -> supervisord::Program {
    supervisord::Program::flaky_service(name, port)
        .arg("--never-healthy")
        .autorestart(false)
        .startsecs(0)
}

/// A time as the events carry it, as a `SystemTime`.
pub fn system_time(at: Timestamp) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(at.0)
}

impl RunningDaemon {
    /// A daemon on the real clock.
    pub async fn start(config: Config) -> RunningDaemon {
        Self::start_with(config, None).await
    }

    /// A daemon on a clock the test moves, starting at the real time now (state files and the
    /// CLI read real times).
    pub async fn start_manual(config: Config) -> RunningDaemon {
        let clock = ManualClock::new(SystemClock.now());
        Self::start_with(config, Some(clock)).await
    }

    async fn start_with(config: Config, manual: Option<Arc<ManualClock>>) -> RunningDaemon {
        let (sandbox, registry) = hmrt::cli::setup(&config, true).await.expect("setup");
        for problem in registry.problems() {
            eprintln!("plugin problem: {problem}");
        }
        let tasks = hmrt::tasks::bind(&config, &registry).unwrap_or_else(|errors| {
            panic!(
                "bind: {}",
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        let loops = tasks.len();
        let recorder = Arc::new(Recorder::default());
        let counters = Arc::new(Counters::default());
        let clock: Arc<dyn Clock> = match &manual {
            Some(clock) => clock.clone(),
            None => Arc::new(SystemClock),
        };
        let started = system_time(clock.now());
        let daemon = hmrt::daemon::Daemon::new(
            &config,
            sandbox,
            tasks,
            vec![
                recorder.clone(),
                counters.clone(),
                Arc::new(hmrt::events::LogSubscriber::new()),
            ],
            clock,
        )
        .expect("daemon");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            daemon
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .expect("daemon run");
        });
        RunningDaemon {
            recorder,
            counters,
            stop: Some(stop),
            handle,
            started,
            manual,
            loops,
        }
    }

    /// On a manual clock: moves time forward from one scheduled instant to the next (each task
    /// loop settling in between) until `find` returns something or the clock has moved
    /// `limit`; panics then with the events seen.
    pub async fn advance_until<T>(
        &self,
        limit: Duration,
        what: &str,
        mut find: impl FnMut(&[(SystemTime, Event)]) -> Option<T>,
    ) -> T {
        let clock = self.manual.as_ref().expect("a daemon on a manual clock");
        let until = clock.now().plus(limit);
        let mut found = None;
        clock
            .run_until(until, self.loops, Duration::from_secs(30), || {
                found = find(&self.events());
                found.is_some()
            })
            .await;
        match found.or_else(|| find(&self.events())) {
            Some(found) => found,
            None => {
                let dump: Vec<String> = self
                    .events()
                    .iter()
                    .map(|(_, e)| format!("{e:?}"))
                    .collect();
                panic!(
                    "the clock moved {limit:?} without {what}; events:\n{}",
                    dump.join("\n")
                )
            }
        }
    }

    /// On a manual clock: moves time forward by `span`, through every instant scheduled in it.
    pub async fn advance(&self, span: Duration) {
        let clock = self.manual.as_ref().expect("a daemon on a manual clock");
        let until = clock.now().plus(span);
        clock
            .run_until(until, self.loops, Duration::from_secs(30), || false)
            .await;
    }

    pub fn events(&self) -> Vec<(SystemTime, Event)> {
        self.recorder
            .events()
            .into_iter()
            .map(|(at, e)| (system_time(at), e))
            .collect()
    }

    /// Polls the recorded events until `find` returns something, or panics after `timeout`
    /// with the events seen so far.
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut find: impl FnMut(&[(SystemTime, Event)]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.events();
            if let Some(found) = find(&events) {
                return found;
            }
            if Instant::now() >= deadline {
                let dump: Vec<String> = events.iter().map(|(_, e)| format!("{e:?}")).collect();
                panic!(
                    "timed out after {timeout:?} waiting for {what}; events:\n{}",
                    dump.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.handle)
            .await
            .expect("daemon stops within 30 s")
            .expect("daemon task");
    }
}

/// Events about `task`, with their times.
pub fn of_task<'a>(
    events: &'a [(SystemTime, Event)],
    task: &'a str,
) -> impl Iterator<Item = &'a (SystemTime, Event)> + 'a {
    events.iter().filter(move |(_, e)| e.task() == Some(task))
}

/// The time and reason of the first transition of `task` to `to` after `after`.
pub fn transition(
    events: &[(SystemTime, Event)],
    task: &str,
    to: &str,
    after: SystemTime,
) -> Option<(SystemTime, String)> {
    of_task(events, task).find_map(|(at, e)| match e {
        Event::StateChanged { to: t, reason, .. } if t.as_str() == to && *at >= after => {
            Some((*at, reason.clone()))
        }
        _ => None,
    })
}

/// Runs the first task's check of `config` once, in a sandbox of its own, and publishes it as
/// the daemon does; returns the outcome and the counters that saw it.
pub async fn check_once(config: &Config) -> (hmrt::sandbox::CheckOutcome, Arc<Counters>) {
    let (outcome, counters, _) = check_once_timed(config).await;
    (outcome, counters)
}

/// [`check_once`], and how long the check call itself took (setting up the sandbox, which
/// compiles every built-in plugin, not counted).
pub async fn check_once_timed(
    config: &Config,
) -> (hmrt::sandbox::CheckOutcome, Arc<Counters>, Duration) {
    let (sandbox, registry) = hmrt::cli::setup(config, false).await.expect("setup");
    let tasks = hmrt::tasks::bind(config, &registry).unwrap_or_else(|_| panic!("bind"));
    let hmrt::tasks::Bound::Ready(entry) = &tasks[0].check else {
        panic!("the first task's check plugin did not load")
    };
    let started = std::time::Instant::now();
    let outcome = sandbox.check(&entry.plugin, &tasks[0].check_call).await;
    let took = started.elapsed();
    let counters = Arc::new(Counters::default());
    let events = hmrt::events::Events::new(vec![counters.clone()]);
    events.check_finished(
        SystemClock.now(),
        tasks[0].name(),
        &tasks[0].config.check,
        &outcome,
        Duration::ZERO,
    );
    (outcome, counters, took)
}

/// A loopback HTTP server: `GET /` answers 200 "ok"; `GET /json` a JSON health document;
/// `GET /status/N` answers N; `GET /redirect-out/PORT` redirects to another local port.
pub struct HttpServer {
    pub port: u16,
    _task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    pub async fn start() -> HttpServer {
        use axum::extract::Path as UrlPath;
        use axum::http::StatusCode;
        use axum::routing::get;
        let app = axum::Router::new()
            .route("/", get(|| async { "ok" }))
            .route(
                "/json",
                get(|| async {
                    (
                        [("content-type", "application/json")],
                        r#"{"status":"ok","checks":3}"#,
                    )
                }),
            )
            .route(
                "/status/{code}",
                get(|UrlPath(code): UrlPath<u16>| async move {
                    (
                        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
                        "status",
                    )
                }),
            )
            .route(
                "/redirect-out/{port}",
                get(|UrlPath(port): UrlPath<u16>| async move {
                    (
                        StatusCode::FOUND,
                        [("location", format!("http://127.0.0.1:{port}/"))],
                        "",
                    )
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HttpServer { port, _task: task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Runs an `hmrt` subcommand as a process and returns (exit code, stdout, stderr).
pub fn hmrt(args: &[&str]) -> (i32, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hmrt"))
        .args(args)
        .env("HMRT_LOG", "warn")
        .output()
        .expect("run hmrt");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs an `hmrt` subcommand that must end by itself within `limit` (a `run` that should refuse
/// to start): panics, after killing it, if it does not. Returns (exit code, stdout, stderr).
pub fn hmrt_within(args: &[&str], limit: Duration) -> (i32, String, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hmrt"))
        .args(args)
        .env("HMRT_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run hmrt");
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "hmrt {args:?} still ran after {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
