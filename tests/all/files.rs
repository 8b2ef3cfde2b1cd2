//! The `files` capability and the `file-age` and `log-scan` checks, on real files in temp dirs:
//! heartbeat ages against their bands, log lines counted once across runs, a rename rotation,
//! a copytruncate and a restart of hmrt, and every way out of a grant refused (a path outside,
//! a link leading out, `..`, a FIFO that must not hang the call).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hmrt::capabilities::Capability;
use hmrt::sandbox::{CheckOutcome, Sandbox, Status};
use hmrt::tasks::{Bound, BoundTask};
use hmrt_config::Config;

use crate::support::{Workspace, hmrt};

/// A config's tasks, bound once, run on demand in one sandbox whose scratch stores are kept
/// in the config's `state_dir` (as under `hmrt run`).
struct Harness {
    sandbox: Arc<Sandbox>,
    tasks: Vec<BoundTask>,
}

impl Harness {
    async fn new(config: &Config) -> Harness {
        let (sandbox, registry) = hmrt::cli::setup(config, true).await.expect("setup");
        let tasks = hmrt::tasks::bind(config, &registry).unwrap_or_else(|_| panic!("bind"));
        Harness { sandbox, tasks }
    }

    async fn run(&self, task: &str) -> CheckOutcome {
        let bound = self
            .tasks
            .iter()
            .find(|t| t.name() == task)
            .unwrap_or_else(|| panic!("no task {task}"));
        let Bound::Ready(entry) = &bound.check else {
            panic!("the check plugin of {task} did not load")
        };
        self.sandbox.check(&entry.plugin, &bound.check_call).await
    }
}

fn metric(outcome: &CheckOutcome, name: &str) -> f64 {
    outcome
        .metrics()
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name}: {}", outcome.message()))
        .value
}

/// A canonical temp dir (grants compare resolved paths) with `logs/` in it.
fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().canonicalize().expect("canonical temp dir");
    std::fs::create_dir(root.join("logs")).expect("logs dir");
    (dir, root)
}

fn append(path: &Path, text: &str) {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    file.write_all(text.as_bytes()).expect("append");
}

fn touch_ago(path: &Path, ago: Duration) {
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open heartbeat");
    file.set_modified(SystemTime::now() - ago)
        .expect("set mtime");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_age_judges_a_heartbeat_by_its_bands_and_a_missing_one_is_unhealthy() {
    let (_dir, root) = data_dir();
    let beat = root.join("beat");
    std::fs::write(&beat, b"").expect("heartbeat");
    let ws = Workspace::new();
    let config = ws.load(&format!(
        r#"
[[task]]
name = "beat"
check = "file-age"
config = {{ path = "{beat}", max_age = "2m", warn_age = "1m" }}
grants = {{ files = ["{beat}"] }}
"#,
        beat = beat.display()
    ));
    let h = Harness::new(&config).await;

    // Touched now: setting up the sandbox (compiling the plugins) takes seconds.
    touch_ago(&beat, Duration::ZERO);
    let fresh = h.run("beat").await;
    assert_eq!(fresh.status(), Status::Healthy, "{}", fresh.message());
    assert!(metric(&fresh, "age_s") < 5.0, "{}", fresh.message());

    touch_ago(&beat, Duration::from_secs(90));
    let warned = h.run("beat").await;
    assert_eq!(warned.status(), Status::Degraded, "{}", warned.message());
    assert!(
        warned.message().contains("warn_age 1m"),
        "{}",
        warned.message()
    );
    let age = metric(&warned, "age_s");
    assert!((89.0..100.0).contains(&age), "age_s {age}");

    touch_ago(&beat, Duration::from_secs(300));
    let old = h.run("beat").await;
    assert_eq!(old.status(), Status::Unhealthy, "{}", old.message());
    assert!(old.message().contains("max_age 2m"), "{}", old.message());

    std::fs::remove_file(&beat).expect("remove heartbeat");
    let missing = h.run("beat").await;
    assert_eq!(missing.status(), Status::Unhealthy, "{}", missing.message());
    assert!(
        missing.message().contains("missing"),
        "{}",
        missing.message()
    );
    assert!(missing.report.denials.is_empty());
}

/// (matches, lines read, status, message) of one log-scan run.
async fn scan(h: &Harness) -> (f64, f64, Status, String) {
    let o = h.run("errors").await;
    let message = o.message();
    assert!(o.report.denials.is_empty(), "{message}");
    (
        metric(&o, "matches"),
        metric(&o, "lines_read"),
        o.status(),
        message,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_scan_counts_only_new_lines_across_runs_rotations_and_restarts() {
    let (_dir, root) = data_dir();
    let logs = root.join("logs");
    let log = logs.join("app.log");
    append(&log, "ERROR from before hmrt watched\nok\n");
    let ws = Workspace::new();
    let config = ws.load(&format!(
        r#"
[runtime]
state_dir = "state"

[[task]]
name = "errors"
check = "log-scan"
config = {{ path = "{log}", pattern = "ERROR|FATAL" }}
grants = {{ files = ["{logs}/"] }}
"#,
        log = log.display(),
        logs = logs.display()
    ));
    let h = Harness::new(&config).await;

    // First run: starts at the end, history is not counted.
    let (m, _, status, message) = scan(&h).await;
    assert_eq!((m, status), (0.0, Status::Healthy), "{message}");
    assert!(message.contains("started at the end"), "{message}");

    append(&log, "ERROR a\nok\nFATAL b\n");
    let (m, l, status, message) = scan(&h).await;
    assert_eq!((m, l, status), (2.0, 3.0, Status::Unhealthy), "{message}");
    assert!(message.contains("newest: FATAL b"), "{message}");

    append(&log, "ok\n");
    let (m, l, status, message) = scan(&h).await;
    assert_eq!((m, l, status), (0.0, 1.0, Status::Healthy), "{message}");

    // Rotation by rename: the writer still appends to the renamed file before it reopens,
    // then a new app.log is started.
    append(&log, "ERROR c\n");
    let rotated = logs.join("app.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    append(&rotated, "ERROR d\nok\n");
    append(&log, "ERROR e\nok\nERROR f\n");
    let (m, l, status, message) = scan(&h).await;
    assert_eq!((m, l, status), (4.0, 6.0, Status::Unhealthy), "{message}");
    assert!(message.contains("rotated"), "{message}");
    assert!(message.contains("newest: ERROR f"), "{message}");

    let (m, l, _, message) = scan(&h).await;
    assert_eq!((m, l), (0.0, 0.0), "{message}");

    // A new hmrt (the position is in state_dir/scratch) goes on where the last one stopped.
    drop(h);
    let h = Harness::new(&config).await;
    append(&log, "ok\nERROR g\n");
    let (m, l, _, message) = scan(&h).await;
    assert_eq!((m, l), (1.0, 2.0), "{message}");

    // copytruncate: copied aside, truncated in place, written again.
    std::fs::copy(&log, logs.join("app.log.2")).expect("copy");
    std::fs::File::create(&log).expect("truncate");
    append(&log, "ERROR h\n");
    let (m, l, status, message) = scan(&h).await;
    assert_eq!((m, l, status), (1.0, 1.0, Status::Unhealthy), "{message}");
    assert!(message.contains("truncated"), "{message}");

    let (m, _, status, message) = scan(&h).await;
    assert_eq!((m, status), (0.0, Status::Healthy), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_scan_thresholds_and_a_line_split_between_runs() {
    let (_dir, root) = data_dir();
    let log = root.join("logs/app.log");
    append(&log, "");
    let ws = Workspace::new();
    let config = ws.load(&format!(
        r#"
[[task]]
name = "errors"
check = "log-scan"
config = {{ path = "{log}", pattern = "(?i)error", warn = 2, critical = 4, from = "start" }}
grants = {{ files = ["{logs}/"] }}
"#,
        log = log.display(),
        logs = root.join("logs").display()
    ));
    let h = Harness::new(&config).await;
    append(&log, "error 1\nok\nErr");
    let (m, _, status, message) = scan(&h).await;
    assert_eq!((m, status), (1.0, Status::Healthy), "{message}");
    append(&log, "or 2 (its line ends now)\n");
    let (m, l, status, message) = scan(&h).await;
    assert_eq!((m, l, status), (1.0, 1.0, Status::Healthy), "{message}");
    append(&log, "ERROR 3\nError 4\n");
    let (m, _, status, message) = scan(&h).await;
    assert_eq!((m, status), (2.0, Status::Degraded), "{message}");
    append(&log, "ERROR 5\nERROR 6\nERROR 7\nERROR 8\n");
    let (m, _, status, message) = scan(&h).await;
    assert_eq!((m, status), (4.0, Status::Unhealthy), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_out_of_a_files_grant_is_refused_and_a_fifo_does_not_hang() {
    let (_dir, root) = data_dir();
    let logs = root.join("logs");
    let secret = root.join("secret");
    std::fs::write(&secret, b"top secret\n").expect("secret");
    std::os::unix::fs::symlink(&secret, logs.join("link")).expect("link out");
    std::os::unix::fs::symlink("..", logs.join("up")).expect("link up");
    let made = std::process::Command::new("mkfifo")
        .arg(logs.join("pipe"))
        .status()
        .expect("mkfifo");
    assert!(made.success(), "mkfifo failed");
    let task = |name: &str, check: &str, config: String| {
        format!(
            "[[task]]\nname = \"{name}\"\ncheck = \"{check}\"\ntimeout = \"5s\"\nconfig = {{ {config} }}\ngrants = {{ files = [\"{logs}/\"] }}\n",
            logs = logs.display()
        )
    };
    let age = |path: &Path| format!("path = \"{}\", max_age = \"1h\"", path.display());
    let tasks = [
        task("outside", "file-age", age(&secret)),
        task("link", "file-age", age(&logs.join("link"))),
        task("up", "file-age", age(&logs.join("up/secret"))),
        task("dotdot", "file-age", age(&logs.join("../secret"))),
        task(
            "pipe",
            "log-scan",
            format!(
                "path = \"{}\", pattern = \"x\"",
                logs.join("pipe").display()
            ),
        ),
        task(
            "linked-log",
            "log-scan",
            format!(
                "path = \"{}\", pattern = \"secret\", from = \"start\"",
                logs.join("link").display()
            ),
        ),
    ];
    let ws = Workspace::new();
    let config = ws.load(&tasks.concat());
    let h = Harness::new(&config).await;

    for (name, says) in [
        ("outside", secret.display().to_string()),
        ("link", "leads outside the grants".to_owned()),
        ("up", "leads outside the grants".to_owned()),
        ("linked-log", "leads outside the grants".to_owned()),
    ] {
        let o = h.run(name).await;
        let message = o.message();
        assert_eq!(o.status(), Status::Unknown, "{name}: {message}");
        assert!(message.contains("denied"), "{name}: {message}");
        assert!(message.contains(&says), "{name}: {message}");
        assert!(!message.contains("top secret"), "{name}: {message}");
        assert_eq!(o.report.denials.len(), 1, "{name}: {message}");
        assert_eq!(o.report.denials[0].capability, Capability::Files);
    }

    // `..` in the config never reaches the host.
    let o = h.run("dotdot").await;
    assert_eq!(o.status(), Status::Unknown, "{}", o.message());
    assert!(o.message().contains(".."), "{}", o.message());

    // A FIFO is stated, never opened for reading: the call returns at once.
    let started = Instant::now();
    let o = h.run("pipe").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(o.status(), Status::Unknown, "{}", o.message());
    assert!(
        o.message().contains("not a regular file"),
        "{}",
        o.message()
    );
}

/// Runs `hmrt validate` on `config` and returns (exit code, stderr).
fn validate(ws: &Workspace, config: &str) -> (i32, String) {
    let path = ws.config(config);
    let (code, _stdout, stderr) = hmrt(&["validate", path.to_str().expect("utf-8 path")]);
    (
        code,
        stderr.replace(path.to_str().expect("utf-8 path"), "tasks.toml"),
    )
}

#[test]
fn validate_reports_an_ungranted_path_at_its_line() {
    let ws = Workspace::new();
    let good = "[[task]]\nname = \"beat\"\ncheck = \"file-age\"\nconfig = { path = \"/run/app/heartbeat\", max_age = \"2m\" }\ngrants = { files = [\"/run/app/heartbeat\"] }\n\n[[task]]\nname = \"errors\"\ncheck = \"log-scan\"\nconfig = { path = \"/var/log/app/app.log\", pattern = \"ERROR\" }\ngrants = { files = [\"/var/log/app/\"] }\n";
    let (code, stderr) = validate(&ws, good);
    assert_eq!(code, 0, "{stderr}");

    let outside = "[[task]]\nname = \"beat\"\ncheck = \"file-age\"\nconfig = { path = \"/etc/shadow\", max_age = \"2m\" }\ngrants = { files = [\"/run/app/\"] }\n";
    let (code, stderr) = validate(&ws, outside);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("tasks.toml:4:"), "{stderr}");
    assert!(stderr.contains("/etc/shadow"), "{stderr}");
    assert!(stderr.contains("not covered"), "{stderr}");

    // Only the log granted, not its directory: rotation could not be followed.
    let file_only = "[[task]]\nname = \"errors\"\ncheck = \"log-scan\"\nconfig = { path = \"/var/log/app/app.log\", pattern = \"ERROR\" }\ngrants = { files = [\"/var/log/app/app.log\"] }\n";
    let (code, stderr) = validate(&ws, file_only);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("tasks.toml:"), "{stderr}");
    assert!(
        stderr.contains("\"/var/log/app/\" is not covered"),
        "{stderr}"
    );

    let bad_pattern = "[[task]]\nname = \"errors\"\ncheck = \"log-scan\"\nconfig = { path = \"/var/log/app/app.log\", pattern = \"(\" }\ngrants = { files = [\"/var/log/app/\"] }\n";
    let (code, stderr) = validate(&ws, bad_pattern);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("tasks.toml:4:"), "{stderr}");
    assert!(stderr.contains("`pattern`"), "{stderr}");
}
