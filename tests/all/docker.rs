//! The `docker` check and the `docker-restart` action against a real Docker engine (Debian's
//! `docker.io`: a dockerd of the tests' own with its own data root and socket, no iptables, no
//! bridge; containers from a busybox-static image made with `docker import`, no registry).
//!
//! dockerd takes seconds to start, so the tests share one: the first to need it starts it and
//! the last to finish stops it (a `Weak` in a static), and each test uses containers of its own
//! names. Each test prints how long it took; cargo prints the suite's total.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use hmrt::sandbox::Status;
use hmrt_test_support::docker::DockerEngine;

use crate::support::{HmrtProcess, Workspace, hmrt};

static ENGINE: Mutex<Weak<DockerEngine>> = Mutex::new(Weak::new());

/// The shared engine, with the `busybox:local` image imported; started if none runs.
fn engine() -> Arc<DockerEngine> {
    let mut slot = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(engine) = slot.upgrade() {
        return engine;
    }
    let started = Instant::now();
    let engine = DockerEngine::start();
    engine.import_busybox("busybox:local");
    eprintln!(
        "measured: dockerd up and busybox imported in {:?}",
        started.elapsed()
    );
    let engine = Arc::new(engine);
    *slot = Arc::downgrade(&engine);
    engine
}

/// `docker inspect NAME` through the Engine API, as JSON.
fn inspect(engine: &DockerEngine, name: &str) -> serde_json::Value {
    let (status, body) = engine.api_get(&format!("/v1.41/containers/{name}/json"));
    assert_eq!(status, 200, "inspect {name}: {body}");
    serde_json::from_str(&body).expect("inspect JSON")
}

/// Polls `inspect NAME` until `done` holds for it (at most `timeout`); returns it.
fn wait_container(
    engine: &DockerEngine,
    name: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let state = inspect(engine, name);
        if done(&state) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never {what} in {timeout:?}: {}",
            state["State"]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn docker_ok(engine: &DockerEngine, args: &[&str]) {
    let out = engine.docker(args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A config with a `docker` check task for each (name, container, grant, extra config).
fn check_tasks(engine: &DockerEngine, tasks: &[(&str, &str, &str, &str)]) -> String {
    let mut text = format!("[docker]\nhost = \"{}\"\n", engine.host());
    for (name, container, grant, extra) in tasks {
        text.push_str(&format!(
            r#"
[[task]]
name = "{name}"
check = "docker"
timeout = "10s"
config = {{ container = "{container}"{extra} }}
grants = {{ docker = ["{grant}"] }}
"#
        ));
    }
    text
}

/// What one check run said.
struct Seen {
    status: Status,
    message: String,
    metrics: Vec<(String, f64)>,
    denials: usize,
}

impl Seen {
    fn metric(&self, name: &str) -> f64 {
        self.metrics
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no metric {name} in {:?}", self.metrics))
            .1
    }
}

/// Runs every task's `docker` check once, all in one sandbox (loading the built-in plugins
/// once: in a debug build that is what takes the time), side by side; returns what each saw,
/// by task name.
async fn check_all(
    engine: &DockerEngine,
    tasks: &[(&str, &str, &str, &str)],
) -> Vec<(String, Seen)> {
    let ws = Workspace::new();
    let config = ws.load(&check_tasks(engine, tasks));
    let (sandbox, registry) = hmrt::cli::setup(&config, false).await.expect("setup");
    let bound = hmrt::tasks::bind(&config, &registry).unwrap_or_else(|_| panic!("bind"));
    let mut running = tokio::task::JoinSet::new();
    for task in bound {
        let sandbox = sandbox.clone();
        running.spawn(async move {
            let hmrt::tasks::Bound::Ready(entry) = &task.check else {
                panic!("{}: the docker check did not load", task.name())
            };
            let outcome = sandbox.check(&entry.plugin, &task.check_call).await;
            let metrics = match &outcome.result {
                Ok(result) => result
                    .metrics
                    .iter()
                    .map(|m| (m.name.clone(), m.value))
                    .collect(),
                Err(_) => Vec::new(),
            };
            let seen = Seen {
                status: outcome.status(),
                message: outcome.message(),
                metrics,
                denials: outcome.report.denials.len(),
            };
            (task.name().to_owned(), seen)
        });
    }
    running.join_all().await
}

fn seen<'a>(all: &'a [(String, Seen)], task: &str) -> &'a Seen {
    &all.iter()
        .find(|(name, _)| name == task)
        .expect("task ran")
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_tells_running_stopped_restarting_and_thresholds_apart() {
    let t0 = Instant::now();
    let engine = tokio::task::block_in_place(engine);
    tokio::task::block_in_place(|| {
        engine.run("dk-up", &["/bin/sleep", "100000"]);
        engine.run("dk-down", &["/bin/sh", "-c", "exit 3"]);
        engine.run("dk-busy", &["/bin/sh", "-c", "while :; do :; done"]);
        // Exits after a second; with `--restart=always` (set below) Docker starts it again,
        // and again.
        engine.run("dk-loop", &["/bin/sh", "-c", "sleep 1; exit 1"]);
        docker_ok(&engine, &["update", "--restart=always", "dk-loop"]);
        // Had it exited before the policy was set, a start begins the loop.
        if inspect(&engine, "dk-loop")["State"]["Status"] == "exited" {
            docker_ok(&engine, &["start", "dk-loop"]);
        }
        wait_container(&engine, "dk-down", "exited", Duration::from_secs(20), |c| {
            c["State"]["Status"] == "exited"
        });
        wait_container(
            &engine,
            "dk-loop",
            "restarted twice",
            Duration::from_secs(30),
            |c| c["RestartCount"].as_u64().unwrap_or(0) >= 2,
        );
    });
    let all = check_all(
        &engine,
        &[
            ("up", "dk-up", "dk-up", ""),
            ("up-warn", "dk-up", "dk-up", r#", memory = { warn = "1B" }"#),
            (
                "up-critical",
                "dk-up",
                "dk-up",
                r#", memory = { warn = "1B", critical = "2B" }, cpu = { warn = 10000 }"#,
            ),
            (
                "up-roomy",
                "dk-up",
                "dk-up",
                r#", memory = { critical = "1TiB" }"#,
            ),
            ("down", "dk-down", "dk-down", ""),
            (
                "busy",
                "dk-busy",
                "dk-busy",
                ", cpu = { warn = 1, critical = 5 }",
            ),
            ("loop-1", "dk-loop", "dk-loop", ", max_restarts = 1"),
            ("loop-1000", "dk-loop", "dk-loop", ", max_restarts = 1000"),
        ],
    )
    .await;
    tokio::task::block_in_place(|| docker_ok(&engine, &["rm", "-f", "dk-busy"]));

    // Running, no health check: healthy, with its numbers.
    let up = seen(&all, "up");
    assert_eq!(up.status, Status::Healthy, "{}", up.message);
    assert!(up.message.contains("dk-up: running"), "{}", up.message);
    assert_eq!(up.metric("restart_count"), 0.0);
    let (memory, cpu) = (up.metric("memory_bytes"), up.metric("cpu_percent"));
    eprintln!("measured: dk-up (busybox sleep) memory {memory} bytes, cpu {cpu:.2}%");
    assert!(memory > 0.0, "memory_bytes {memory}");
    assert!((0.0..50.0).contains(&cpu), "an idle sleep uses {cpu}% CPU");

    // Memory above a threshold: degraded at warn, unhealthy at critical; under it, healthy.
    let warn = seen(&all, "up-warn");
    assert_eq!(warn.status, Status::Degraded, "{}", warn.message);
    assert!(warn.message.contains("above 1 B"), "{}", warn.message);
    let critical = seen(&all, "up-critical");
    assert_eq!(critical.status, Status::Unhealthy, "{}", critical.message);
    let roomy = seen(&all, "up-roomy");
    assert_eq!(roomy.status, Status::Healthy, "{}", roomy.message);

    // A spinning shell: its CPU above the critical threshold.
    let busy = seen(&all, "busy");
    let cpu = busy.metric("cpu_percent");
    eprintln!("measured: dk-busy (a shell spinning) cpu {cpu:.1}%");
    assert_eq!(busy.status, Status::Unhealthy, "{}", busy.message);
    assert!(cpu > 5.0, "{}", busy.message);
    assert!(busy.message.contains("above 5.0%"), "{}", busy.message);

    // Stopped: unhealthy, with its exit code.
    let down = seen(&all, "down");
    assert_eq!(down.status, Status::Unhealthy, "{}", down.message);
    assert!(
        down.message.contains("exited (exit code 3)"),
        "{}",
        down.message
    );

    // More restarts than allowed: unhealthy; a higher limit is not crossed by them.
    let loop1 = seen(&all, "loop-1");
    assert_eq!(loop1.status, Status::Unhealthy, "{}", loop1.message);
    assert!(loop1.message.contains("(more than 1)"), "{}", loop1.message);
    assert!(loop1.metric("restart_count") >= 2.0, "{:?}", loop1.metrics);
    let loop1000 = seen(&all, "loop-1000");
    assert!(
        !loop1000.message.contains("more than"),
        "{}",
        loop1000.message
    );
    eprintln!("measured: check cases took {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_container_and_an_id_prefix_are_denied_and_validate_names_the_grant() {
    let t0 = Instant::now();
    let engine = tokio::task::block_in_place(engine);
    let id = tokio::task::block_in_place(|| {
        engine.run("dk-granted", &["/bin/sleep", "100000"]);
        engine.run("dk-other", &["/bin/sleep", "100000"])
    });
    // A granted name that is no container's name but a prefix of another's id.
    let prefix = &id[..12];
    assert!(prefix.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    let all = check_all(
        &engine,
        &[
            ("other", "dk-other", "dk-granted", ""),
            ("prefix", prefix, prefix, ""),
            ("full-id", &id, &id, ""),
        ],
    )
    .await;

    // A container that exists but is not granted: denied and counted.
    let other = seen(&all, "other");
    assert_eq!(other.status, Status::Unknown, "{}", other.message);
    assert!(other.message.contains("denied"), "{}", other.message);
    assert!(other.message.contains("dk-other"), "{}", other.message);
    assert_eq!(other.denials, 1, "{}", other.message);
    // Docker resolves the prefix to dk-other; the host sees that its answer is not the
    // granted container and denies.
    let by_prefix = seen(&all, "prefix");
    assert_eq!(by_prefix.status, Status::Unknown, "{}", by_prefix.message);
    assert!(
        by_prefix.message.contains("denied"),
        "{}",
        by_prefix.message
    );
    assert!(
        by_prefix.message.contains("dk-other"),
        "{}",
        by_prefix.message
    );
    assert_eq!(by_prefix.denials, 1, "{}", by_prefix.message);
    // The full id is the container itself, so it is allowed.
    let full = seen(&all, "full-id");
    assert_eq!(full.status, Status::Healthy, "{}", full.message);

    // validate names the missing grants at the config's lines: the check's, the action's.
    let ws = Workspace::new();
    let path = ws.config(
        "[[task]]\nname = \"app\"\ncheck = \"docker\"\nconfig = { container = \"dk-granted\" }\n\
         grants = { docker = [\"dk-other\"] }\n\
         on_failure = { action = \"docker-restart\", config = { container = \"dk-granted\" } }\n",
    );
    let (code, _, stderr) = hmrt(&["validate", path.to_str().expect("utf-8 path")]);
    assert_ne!(code, 0, "{stderr}");
    let stderr = stderr.replace(path.to_str().expect("utf-8 path"), "tasks.toml");
    eprintln!("validate said:\n{stderr}");
    assert!(stderr.contains("tasks.toml:4:"), "{stderr}");
    assert!(stderr.contains("dk-granted"), "{stderr}");
    assert!(
        stderr.contains("tasks.toml:6:"),
        "the action's need: {stderr}"
    );
    eprintln!("measured: denial cases took {:?}", t0.elapsed());
}

#[test]
fn a_killed_container_is_brought_back_by_docker_restart() {
    let t0 = Instant::now();
    let engine = engine();
    engine.run("dk-app", &["/bin/sleep", "100000"]);
    let before = inspect(&engine, "dk-app");
    let first_start = before["State"]["StartedAt"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let ws = Workspace::new();
    let file = ws.config(&format!(
        r#"
[docker]
host = "{host}"

[[task]]
name = "app"
check = "docker"
interval = "300ms"
timeout = "5s"
failure_threshold = 1
config = {{ container = "dk-app" }}
grants = {{ docker = ["dk-app"] }}
on_failure = {{ action = "docker-restart", config = {{ container = "dk-app" }}, grants = {{ docker = ["dk-app"] }} }}
restart = {{ backoff = "500ms", max_backoff = "5s", max_restarts = 5, window = "10m" }}
"#,
        host = engine.host(),
    ));
    let mut hmrt = HmrtProcess::start(&file);
    hmrt.wait_log("dk-app: running", Duration::from_secs(20));

    docker_ok(&engine, &["kill", "dk-app"]);
    let killed = Instant::now();
    let after = wait_container(
        &engine,
        "dk-app",
        "running again after the kill",
        Duration::from_secs(30),
        |c| {
            c["State"]["Running"] == true
                && c["State"]["StartedAt"].as_str().unwrap_or("") != first_start
        },
    );
    eprintln!(
        "measured: dk-app running again {:?} after docker kill",
        killed.elapsed()
    );
    assert_ne!(after["State"]["Pid"], before["State"]["Pid"]);
    // hmrt says what it did, and the check sees the container healthy again.
    hmrt.wait_log("started dk-app: now running", Duration::from_secs(10));
    let log = hmrt.drain();
    assert!(
        log.contains("exit code 137"),
        "the kill is in the reason:\n{log}"
    );
    hmrt.terminate();
    eprintln!("measured: kill and restart test took {:?}", t0.elapsed());
}
