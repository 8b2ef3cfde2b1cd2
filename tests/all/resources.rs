//! The `system` and `process` checks against this machine and a real supervisord: the host's
//! resources judged with loose and with crossed thresholds, CPU and network rates from the
//! second run on; a supervised program's RSS compared with `/proc/<pid>/status` while it
//! grows; memmon's "restart when RSS passes a limit" end to end through `supervisor-restart`;
//! and denials of what a task does not grant, at `hmrt validate` and at run time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmrt::capabilities::Capability;
use hmrt::events::Event;
use hmrt::sandbox::{CheckOutcome, Sandbox, Status};
use hmrt_config::Config;

use crate::support::supervisord::{Program, Supervisord, python3, send_signal, wait_until};
use crate::support::{RunningDaemon, Workspace, check_once, hmrt, of_task, transition};

/// The tasks of a config, bound once (plugins compile once per setup, slow on a loaded
/// machine), so each task's `scratch` store lives across runs.
struct Checker {
    sandbox: Arc<Sandbox>,
    tasks: Vec<hmrt::tasks::BoundTask>,
}

impl Checker {
    async fn new(config: &Config) -> Checker {
        let (sandbox, registry) = hmrt::cli::setup(config, false).await.expect("setup");
        let tasks = hmrt::tasks::bind(config, &registry).unwrap_or_else(|_| panic!("bind"));
        Checker { sandbox, tasks }
    }

    /// Runs the check of task `name` once.
    async fn run(&self, name: &str) -> CheckOutcome {
        let task = self
            .tasks
            .iter()
            .find(|t| t.name() == name)
            .unwrap_or_else(|| panic!("no task {name}"));
        let hmrt::tasks::Bound::Ready(entry) = &task.check else {
            panic!("the check plugin of {name} did not load")
        };
        self.sandbox.check(&entry.plugin, &task.check_call).await
    }
}

fn metrics(outcome: &CheckOutcome) -> BTreeMap<String, f64> {
    outcome
        .metrics()
        .into_iter()
        .map(|m| (m.name, m.value))
        .collect()
}

/// Percent of memory used by `/proc/meminfo`, as the test reads it.
fn memory_used_percent() -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    let kb = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect(name)
    };
    (1.0 - kb("MemAvailable") / kb("MemTotal")) * 100.0
}

fn system_task(config: &str, grants: &str) -> String {
    named_system_task("host", config, grants)
}

fn named_system_task(name: &str, config: &str, grants: &str) -> String {
    format!(
        r#"
[[task]]
name = "{name}"
check = "system"
timeout = "5s"
config = {config}
grants = {{ system = [{grants}] }}
"#
    )
}

const ALL_GRANTS: &str = r#""cpu", "memory", "load", "disk:/", "network:lo""#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_check_judges_this_machine_and_rates_from_the_second_run() {
    let ws = Workspace::new();
    let loose = r#"{ cpu = { warn = 100, critical = 100 }, memory = { warn = 100, critical = 100 }, swap = { critical = 100 }, load = { warn = 1000.0, critical = 1000.0, per_cpu = true }, disks = [{ mount = "/", critical = 100, inodes = { critical = 100 } }], network = [{ interface = "lo", rx = { critical = "100GiB" } }] }"#;
    let config = ws.load(&system_task(loose, ALL_GRANTS));
    let checker = Checker::new(&config).await;

    let first = checker.run("host").await;
    let message = first.message();
    eprintln!("first run: {message}");
    assert_eq!(first.status(), Status::Healthy, "{message}");
    assert!(message.contains("cpu: first sample recorded"), "{message}");
    assert!(
        message.contains("network lo: first sample recorded"),
        "{message}"
    );
    let m = metrics(&first);
    assert!(
        !m.contains_key("cpu_percent"),
        "no cpu % from one sample: {m:?}"
    );
    let ours = memory_used_percent();
    let theirs = m["memory_used_percent"];
    eprintln!("measured: memory used {theirs:.2}% by hmrt, {ours:.2}% by the test");
    assert!((theirs - ours).abs() < 2.0, "{theirs} vs {ours}");
    assert!(m["disk_root_used_percent"] > 0.0 && m["disk_root_used_percent"] < 100.0);
    assert!(
        m["cpus"] >= 1.0 && m.contains_key("load_1_per_cpu"),
        "{m:?}"
    );

    // Some CPU work and loopback traffic between the runs.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(300) {
        let _ = std::net::TcpStream::connect(listener.local_addr().expect("addr"));
    }
    let second = checker.run("host").await;
    let message = second.message();
    eprintln!("second run: {message}");
    assert_eq!(second.status(), Status::Healthy, "{message}");
    assert!(!message.contains("first sample"), "{message}");
    let m = metrics(&second);
    let cpu = m["cpu_percent"];
    assert!((0.0..=100.0).contains(&cpu) && cpu > 0.0, "cpu {cpu}");
    assert!(m["net_lo_rx_bytes_per_s"] > 0.0, "{m:?}");
    eprintln!(
        "measured: cpu {cpu:.1}%, lo rx {:.0} B/s over the interval",
        m["net_lo_rx_bytes_per_s"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crossed_threshold_is_named_and_decides_the_status() {
    let ws = Workspace::new();
    // A directory that is no mount point.
    let dir = ws.path().to_str().expect("utf-8").to_owned();
    let text = [
        named_system_task(
            "upside-down",
            r#"{ memory = { warn = 99, critical = 1 } }"#,
            ALL_GRANTS,
        ),
        named_system_task(
            "critical",
            r#"{ memory = { critical = 1 }, disks = [{ mount = "/", critical = 100 }] }"#,
            ALL_GRANTS,
        ),
        named_system_task(
            "warn",
            r#"{ memory = { warn = 1, critical = 100 } }"#,
            ALL_GRANTS,
        ),
        named_system_task(
            "not-mounted",
            &format!(r#"{{ disks = [{{ mount = "{dir}" }}] }}"#),
            &format!(r#""disk:{dir}""#),
        ),
    ]
    .concat();
    let checker = Checker::new(&ws.load(&text)).await;

    // warn above critical is refused: the check says so.
    let outcome = checker.run("upside-down").await;
    assert_eq!(outcome.status(), Status::Unknown, "{}", outcome.message());
    assert!(
        outcome.message().contains("`memory.warn`"),
        "{}",
        outcome.message()
    );

    let outcome = checker.run("critical").await;
    let message = outcome.message();
    assert_eq!(outcome.status(), Status::Unhealthy, "{message}");
    assert!(message.starts_with("memory "), "{message}");
    assert!(message.contains("above critical 1.0%"), "{message}");
    assert!(message.contains("ok: disk /"), "{message}");

    let outcome = checker.run("warn").await;
    assert_eq!(outcome.status(), Status::Degraded, "{}", outcome.message());
    assert!(outcome.message().contains("above warn 1.0%"));

    let outcome = checker.run("not-mounted").await;
    let message = outcome.message();
    assert_eq!(outcome.status(), Status::Unhealthy, "{message}");
    assert!(message.contains("is not a mount point"), "{message}");
    assert!(message.contains("mounted at /"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_not_granted_is_refused_at_validate_and_at_run_time() {
    let ws = Workspace::new();
    let text = system_task(
        r#"{ memory = { critical = 95 }, disks = [{ mount = "/", critical = 95 }] }"#,
        r#""memory""#,
    );
    let path = ws.config(&text);
    let (code, _, stderr) = hmrt(&["validate", path.to_str().expect("utf-8")]);
    assert_ne!(code, 0, "validate passed:\n{text}");
    // The error is at the task's config line (line 6 of the text above).
    assert!(stderr.contains("tasks.toml:6:"), "{stderr}");
    assert!(
        stderr.contains(r#""disk:/" is not in the system grants"#),
        "{stderr}"
    );
    assert!(!stderr.contains(r#""memory" is not"#), "{stderr}");

    let config = ws.load(&text);
    let (outcome, counters) = check_once(&config).await;
    let message = outcome.message();
    assert_eq!(outcome.status(), Status::Unknown, "{message}");
    assert!(message.contains("disk /: denied"), "{message}");
    assert!(message.contains("ok: memory"), "{message}");
    assert_eq!(counters.denials(Capability::System), 1);
}

/// A program that grows its resident memory by `step_mib` on each SIGUSR1 (or, with
/// `--grow-once FILE` present, by itself every 100 ms up to `--max` MiB, removing FILE so the
/// next start stays small), prints `grown N` each time, and holds it.
const GROWER: &str = r#"
import os, signal, sys, time
step = int(sys.argv[1]) << 20
held = []
def grow(*_):
    held.append(b"x" * step)
    print("grown %d" % len(held), flush=True)
if os.path.exists(sys.argv[3]):
    os.remove(sys.argv[3])
    for _ in range(int(sys.argv[2])):
        grow()
        time.sleep(0.1)
signal.signal(signal.SIGUSR1, grow)
print("ready", flush=True)
while True:
    signal.pause()
"#;

/// `GROWER` as program `name` (written to `dir`: supervisord's config takes one line).
fn grower(dir: &std::path::Path, name: &str, step_mib: u32, max_steps: u32, once: &str) -> Program {
    let script = dir.join("grower.py");
    std::fs::write(&script, GROWER).expect("write the script");
    let python = python3();
    let step = step_mib.to_string();
    let steps = max_steps.to_string();
    Program::new(
        name,
        &[
            &python.to_string_lossy(),
            "-u",
            &script.to_string_lossy(),
            &step,
            &steps,
            once,
        ],
    )
    .startsecs(1)
}

fn vm_rss(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_rss_follows_proc_status_while_the_program_grows() {
    let ws = Workspace::new();
    let supervisord = blocking(|| {
        Supervisord::start(&[
            grower(ws.path(), "grower", 40, 0, "/nonexistent"),
            Program::new("idle", &["sleep", "600"]).autostart(false),
        ])
    });
    let pid = blocking(|| supervisord.wait_running("grower"));
    // The watched program; one that does not run; one the task does not grant.
    let text = format!(
        r#"
[supervisor]
serverurl = "{}"

[[task]]
name = "grower"
check = "process"
timeout = "5s"
config = {{ supervisor = "grower", threads = {{ critical = 4 }} }}
grants = {{ process = ["supervisor:grower"] }}

[[task]]
name = "idle"
check = "process"
config = {{ supervisor = "idle" }}
grants = {{ process = ["supervisor:idle"] }}

[[task]]
name = "sneaky"
check = "process"
config = {{ supervisor = "idle" }}
grants = {{ process = ["supervisor:grower"] }}
"#,
        supervisord.serverurl()
    );
    let config = ws.load(&text);
    let checker = Checker::new(&config).await;
    for step in 0..5u32 {
        if step > 0 {
            assert!(send_signal(pid as i32, 10), "SIGUSR1 to {pid}");
            let said = format!("grown {step}\n");
            assert!(
                blocking(|| wait_until(Duration::from_secs(10), || supervisord
                    .stdout_log("grower")
                    .contains(&said))),
                "the program did not grow: {}",
                supervisord.stdout_log("grower")
            );
        }
        let before = vm_rss(pid);
        let outcome = checker.run("grower").await;
        let after = vm_rss(pid);
        let message = outcome.message();
        assert_eq!(outcome.status(), Status::Healthy, "{message}");
        let reported = metrics(&outcome)["rss_bytes"];
        let diff = |ours: u64| (reported - ours as f64).abs() / ours as f64 * 100.0;
        eprintln!(
            "measured: step {step}: hmrt rss {:.1} MiB, /proc/{pid}/status VmRSS {:.1} MiB before and {:.1} MiB after the check: {:.2}% / {:.2}% apart",
            reported / 1048576.0,
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            diff(before),
            diff(after)
        );
        assert!(
            diff(before).min(diff(after)) <= 5.0,
            "step {step}: {reported} vs {before}/{after}"
        );
        assert!(message.contains(&format!("pid {pid}")), "{message}");
        assert!(reported >= f64::from(step * 40) * 1048576.0, "{reported}");
    }
    let m = metrics(&checker.run("grower").await);
    assert!(m["threads"] >= 1.0 && m["open_fds"] >= 3.0, "{m:?}");
    assert_eq!(m["restarts"], 0.0);
    assert!(
        m.contains_key("cpu_percent") && m.contains_key("uptime_s"),
        "{m:?}"
    );

    // A program that does not run: unhealthy, saying so.
    let outcome = checker.run("idle").await;
    let message = outcome.message();
    assert_eq!(outcome.status(), Status::Unhealthy, "{message}");
    assert!(message.contains("does not run (it is STOPPED"), "{message}");

    // Another program than the granted one: denied, and validate names it.
    let outcome = checker.run("sneaky").await;
    let message = outcome.message();
    assert_eq!(outcome.status(), Status::Unknown, "{message}");
    assert!(message.contains("denied"), "{message}");
    assert_eq!(outcome.report.denials.len(), 1);
    assert_eq!(outcome.report.denials[0].capability, Capability::Process);
    let path = ws.config(&text);
    let (code, _, stderr) = hmrt(&["validate", path.to_str().expect("utf-8")]);
    assert_ne!(code, 0);
    let sneaky = text.find("name = \"sneaky\"").expect("the task");
    // `name`, `check`, then `config`: the line the error points at.
    let line = text[..sneaky].lines().count() + 3;
    assert!(stderr.contains(&format!("tasks.toml:{line}:")), "{stderr}");
    assert!(
        stderr.contains(r#""supervisor:idle" is not in the process grants"#),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("is not in the process grants").count(),
        1,
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_past_its_rss_limit_is_restarted_and_small_again() {
    let ws = Workspace::new();
    let once = ws.path().join("grow-once");
    std::fs::write(&once, b"").expect("marker");
    // 20 steps of 16 MiB: it passes 100 MiB within a second or so, and holds ~330 MiB.
    let supervisord = blocking(|| {
        Supervisord::start(&[grower(
            ws.path(),
            "hog",
            16,
            20,
            once.to_str().expect("utf-8"),
        )])
    });
    let first_pid = blocking(|| supervisord.wait_running("hog"));
    let config = ws.load(&format!(
        r#"
[supervisor]
serverurl = "{}"

[[task]]
name = "hog"
program = "hog"
check = "process"
interval = "300ms"
timeout = "5s"
failure_threshold = 2
config = {{ rss = {{ warn = "60MiB", critical = "100MiB" }} }}
grants = {{ process = ["supervisor:hog"] }}
on_failure = "supervisor-restart"
restart = {{ backoff = "1s", max_backoff = "10s", max_restarts = 3, window = "10m" }}
"#,
        supervisord.serverurl()
    ));
    let daemon = RunningDaemon::start(config).await;
    let crossed = daemon
        .wait_for(Duration::from_secs(30), "a restart", |e| {
            of_task(e, "hog").find_map(|(at, e)| match e {
                Event::ActionStarted { .. } => Some(*at),
                _ => None,
            })
        })
        .await;
    let (ok, said) = daemon
        .wait_for(Duration::from_secs(30), "the restart to end", |e| {
            of_task(e, "hog").find_map(|(_, e)| match e {
                Event::ActionFinished { ok, message, .. } => Some((*ok, message.clone())),
                _ => None,
            })
        })
        .await;
    assert!(ok, "the restart failed: {said}");
    let unhealthy = transition(&daemon.events(), "hog", "unhealthy", daemon.started)
        .expect("unhealthy before the restart");
    assert!(
        unhealthy.1.contains("above critical 100.0 MiB"),
        "{}",
        unhealthy.1
    );
    daemon
        .wait_for(Duration::from_secs(15), "hog healthy again", |e| {
            transition(e, "hog", "healthy", crossed)
        })
        .await;
    let status = blocking(|| supervisord.status("hog")).expect("hog status");
    assert_eq!(status.state, "RUNNING", "{status:?}");
    let second_pid = status.pid.expect("a pid");
    assert_ne!(second_pid, first_pid, "supervisord shows a new process");
    let rss = vm_rss(second_pid);
    eprintln!(
        "measured: restarted {first_pid} -> {second_pid}; the new process holds {:.1} MiB (limit 100 MiB); the old one was unhealthy with: {}",
        rss as f64 / 1048576.0,
        unhealthy.1
    );
    assert!(rss < 60 << 20, "the new process is small: {rss}");
    daemon.stop().await;
}
