//! The `systemd` check, the `systemd-restart` action and the `systemd` capability behind them.
//!
//! systemd cannot run as PID 1 here (the tests run inside a machine whose init is not systemd,
//! and systemd will not manage units as an ordinary process), so these tests talk to a
//! stand-in ([`hmrt_test_support::systemd_standin`]) that speaks the same D-Bus interface as
//! systemd — `org.freedesktop.systemd1` with `Manager.GetUnit`/`LoadUnit`/`StartUnit`/
//! `StopUnit`/`RestartUnit`, the `JobRemoved` signal, and the units' `Unit` and `Service`
//! properties — on a real `dbus-daemon` started for each test. hmrt reaches it exactly as it
//! reaches systemd, through `[systemd] bus = "unix:path=..."`. A running unit has a real
//! process, so `MainPID` is a real pid.

use std::time::{Duration, Instant};

use hmrt::capabilities::Capability;
use hmrt::sandbox::{ActionTrigger, CheckOutcome, Sandbox, Status};
use hmrt::tasks::{Bound, BoundTask};
use hmrt_test_support::dbus::DbusDaemon;
use hmrt_test_support::systemd_standin::SystemdStandin;

use crate::support::{HmrtProcess, Workspace, check_once, hmrt};

/// A dbus-daemon and the systemd stand-in on it, with `units` running.
struct Systemd {
    standin: SystemdStandin,
    _bus: DbusDaemon,
}

impl Systemd {
    fn start(units: &[&str]) -> Systemd {
        let bus = DbusDaemon::start();
        let standin = SystemdStandin::start(&bus);
        for unit in units {
            standin.add_service(unit);
            standin.run(unit);
        }
        Systemd { standin, _bus: bus }
    }

    /// `tasks` after a `[systemd]` section pointing at the stand-in.
    fn config(&self, tasks: &str) -> String {
        format!("[systemd]\nbus = \"{}\"\n{tasks}", self.standin.address())
    }
}

/// A task checking `unit` with `grants`, and `extra` config keys.
fn check_task(name: &str, unit: &str, extra: &str, grants: &str) -> String {
    format!(
        r#"
[[task]]
name = "{name}"
check = "systemd"
config = {{ unit = "{unit}"{extra} }}
grants = {{ systemd = [{grants}] }}
"#
    )
}

fn metric(outcome: &CheckOutcome, name: &str) -> Option<f64> {
    let result = outcome.result.as_ref().ok()?;
    result
        .metrics
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.value)
}

/// One sandbox for a config, so that checks run one after the other share the task's scratch
/// store (as under `hmrt run`).
struct Runs {
    sandbox: std::sync::Arc<Sandbox>,
    tasks: Vec<BoundTask>,
}

impl Runs {
    async fn new(config: &hmrt_config::Config) -> Runs {
        let (sandbox, registry) = hmrt::cli::setup(config, true).await.expect("setup");
        let tasks = hmrt::tasks::bind(config, &registry).unwrap_or_else(|_| panic!("bind"));
        Runs { sandbox, tasks }
    }

    async fn check(&self, index: usize) -> CheckOutcome {
        let task = &self.tasks[index];
        let Bound::Ready(entry) = &task.check else {
            panic!("{}: the check plugin did not load", task.name())
        };
        self.sandbox.check(&entry.plugin, &task.check_call).await
    }

    async fn act(&self, index: usize) -> (Result<Result<String, String>, String>, usize) {
        let task = &self.tasks[index];
        let Some((Bound::Ready(entry), call)) = &task.action else {
            panic!("{}: no action plugin loaded", task.name())
        };
        let trigger = ActionTrigger {
            status: Status::Unhealthy,
            message: "test".into(),
            attempt: 1,
        };
        let (result, report) = self.sandbox.action(&entry.plugin, call, trigger).await;
        (result.map_err(|e| e.to_string()), report.denials.len())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_unit_is_healthy_and_one_on_its_way_is_degraded() {
    let t0 = Instant::now();
    let systemd = Systemd::start(&["nginx.service"]);
    let ws = Workspace::new();
    let config = ws.load(&systemd.config(&check_task(
        "nginx",
        "nginx.service",
        "",
        "\"nginx.service\"",
    )));
    let (outcome, _) = check_once(&config).await;
    let message = outcome.message();
    assert_eq!(outcome.status(), Status::Healthy, "{message}");
    assert_eq!(message, "nginx.service is active (running)");
    let pid = systemd.standin.state("nginx.service").main_pid;
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "MainPID {pid} is a real process"
    );
    assert_eq!(metric(&outcome, "main_pid"), Some(f64::from(pid)));
    assert_eq!(metric(&outcome, "n_restarts"), Some(0.0));

    systemd
        .standin
        .set_state("nginx.service", "activating", "start");
    let (outcome, _) = check_once(&config).await;
    assert_eq!(outcome.status(), Status::Degraded, "{}", outcome.message());
    assert_eq!(outcome.message(), "nginx.service is activating (start)");
    eprintln!(
        "measured: active and activating cases took {:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_or_stopped_unit_is_unhealthy_with_the_reason() {
    let systemd = Systemd::start(&["nginx.service", "worker.service"]);
    let ws = Workspace::new();
    let tasks = [
        check_task("nginx", "nginx.service", "", "\"nginx.service\""),
        check_task("worker", "worker.service", "", "\"worker.service\""),
        check_task("ghost", "ghost.service", "", "\"ghost.service\""),
    ]
    .concat();
    systemd.standin.fail("nginx.service", "exit-code");
    systemd.standin.fail("worker.service", "signal");
    // A stopped unit: inactive (dead), as after `systemctl stop`.
    systemd
        .standin
        .set_state("worker.service", "inactive", "dead");
    let config = ws.load(&systemd.config(&tasks));
    let runs = Runs::new(&config).await;
    let cases = [
        (0, "nginx.service is failed (failed), result exit-code"),
        (1, "worker.service is inactive (dead), result signal"),
        (
            2,
            "systemd has no unit ghost.service (its load state is not-found)",
        ),
    ];
    for (index, want) in cases {
        let outcome = runs.check(index).await;
        let message = outcome.message();
        assert_eq!(outcome.status(), Status::Unhealthy, "{message}");
        assert!(
            message.contains(want),
            "{message:?} should contain {want:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_without_systemd_on_it_is_unhealthy_and_named() {
    let bus = DbusDaemon::start();
    let ws = Workspace::new();
    let config = ws.load(&format!(
        "[systemd]\nbus = \"unix:path={}\"\n{}",
        bus.socket().display(),
        check_task("nginx", "nginx.service", "", "\"nginx.service\"")
    ));
    let (outcome, _) = check_once(&config).await;
    let message = outcome.message();
    assert_eq!(outcome.status(), Status::Unhealthy, "{message}");
    assert!(
        message.contains("systemd nginx.service: failed:"),
        "{message}"
    );
    assert!(message.contains("org.freedesktop.systemd1"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_reads_a_units_main_process_through_systemd() {
    let systemd = Systemd::start(&["nginx.service"]);
    let ws = Workspace::new();
    let config = ws.load(&systemd.config(
        r#"
[[task]]
name = "nginx-process"
check = "process"
config = { systemd = "nginx.service" }
grants = { process = ["systemd:nginx.service"] }
"#,
    ));
    let runs = Runs::new(&config).await;
    let pid = systemd.standin.state("nginx.service").main_pid;
    let outcome = runs.check(0).await;
    let message = outcome.message();
    assert_eq!(outcome.status(), Status::Healthy, "{message}");
    assert!(message.contains(&format!("pid {pid}")), "{message}");
    assert!(
        metric(&outcome, "rss_bytes").is_some_and(|rss| rss > 0.0),
        "{message}"
    );

    systemd.standin.fail("nginx.service", "signal");
    let outcome = runs.check(0).await;
    let message = outcome.message();
    assert_ne!(outcome.status(), Status::Healthy, "{message}");
    assert!(
        message.contains("nginx.service has no main process (it is failed (failed))"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_is_seen_across_runs_and_ends_with_its_window() {
    let systemd = Systemd::start(&["api.service", "cron.service"]);
    let ws = Workspace::new();
    let tasks = [
        check_task(
            "api",
            "api.service",
            ", crash_loop = { restarts = 3, within = \"10m\" }",
            "\"api.service\"",
        ),
        check_task(
            "cron",
            "cron.service",
            ", crash_loop = { restarts = 1, within = \"1s\" }",
            "\"cron.service\"",
        ),
    ]
    .concat();
    let config = ws.load(&systemd.config(&tasks));
    let runs = Runs::new(&config).await;
    let api = &systemd.standin;

    let first = runs.check(0).await;
    assert_eq!(first.status(), Status::Healthy, "{}", first.message());
    assert_eq!(metric(&first, "restarts_in_window"), Some(0.0));
    // Two restarts by Restart=: within the limit, and the unit is active.
    api.crash("api.service");
    api.crash("api.service");
    let second = runs.check(0).await;
    assert_eq!(second.status(), Status::Healthy, "{}", second.message());
    assert_eq!(metric(&second, "restarts_in_window"), Some(2.0));
    assert_eq!(metric(&second, "n_restarts"), Some(2.0));
    // Two more: four within ten minutes is more than three, though it is active right now.
    api.crash("api.service");
    api.crash("api.service");
    let third = runs.check(0).await;
    let message = third.message();
    assert_eq!(third.status(), Status::Unhealthy, "{message}");
    assert!(
        message.contains("api.service restarted 4 times within 10m (more than 3): crash loop"),
        "{message}"
    );
    assert!(message.contains("active (running)"), "{message}");

    // A short window: the loop is seen, then forgotten once the window has passed.
    assert_eq!(runs.check(1).await.status(), Status::Healthy);
    api.crash("cron.service");
    api.crash("cron.service");
    let looping = runs.check(1).await;
    assert_eq!(looping.status(), Status::Unhealthy, "{}", looping.message());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let outcome = runs.check(1).await;
        if outcome.status() == Status::Healthy {
            assert_eq!(metric(&outcome, "restarts_in_window"), Some(0.0));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {:?} 10 s after a 1 s window: {}",
            outcome.status(),
            outcome.message()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_not_granted_and_aliases_are_denied() {
    let systemd = Systemd::start(&["nginx.service", "db.service"]);
    systemd.standin.alias("www.service", "nginx.service");
    let ws = Workspace::new();
    let restart_db = r#"
[[task]]
name = "restart-db"
check = "systemd"
config = { unit = "nginx.service" }
grants = { systemd = ["nginx.service"] }
on_failure = { action = "systemd-restart", config = { unit = "db.service" }, grants = { systemd = ["nginx.service"] } }
"#;
    let tasks = [
        check_task("other", "db.service", "", "\"nginx.service\""),
        check_task("alias", "www.service", "", "\"www.service\""),
        restart_db.to_owned(),
    ]
    .concat();
    let config = ws.load(&systemd.config(&tasks));
    let runs = Runs::new(&config).await;

    let other = runs.check(0).await;
    let message = other.message();
    assert_eq!(other.status(), Status::Unknown, "{message}");
    assert!(
        message.contains("denied: systemd db.service is not granted"),
        "{message}"
    );
    assert_eq!(other.report.denials.len(), 1);
    assert_eq!(other.report.denials[0].capability, Capability::Systemd);

    // www.service is granted by name, but it is another name of nginx.service.
    let alias = runs.check(1).await;
    let message = alias.message();
    assert_eq!(alias.status(), Status::Unknown, "{message}");
    assert!(message.contains("denied"), "{message}");
    assert!(message.contains("an alias of nginx.service"), "{message}");
    assert_eq!(alias.report.denials.len(), 1);

    let (result, denials) = runs.act(2).await;
    let error = result
        .expect("the action ran")
        .expect_err("the restart was denied");
    assert!(
        error.contains("denied: systemd db.service is not granted"),
        "{error}"
    );
    // The action reads the unit first (for its summary), then restarts it: both denied.
    assert_eq!(denials, 2);
    assert!(
        systemd.standin.jobs().is_empty(),
        "no job reached systemd: {:?}",
        systemd.standin.jobs()
    );
    let (outcome, counters) = check_once(&config).await;
    assert_eq!(outcome.status(), Status::Unknown);
    assert_eq!(
        counters.denials(Capability::Systemd),
        1,
        "denials are counted"
    );
}

#[test]
fn systemd_restart_brings_a_failed_unit_back_end_to_end() {
    let t0 = Instant::now();
    let systemd = Systemd::start(&["nginx.service"]);
    let ws = Workspace::new();
    let file = ws.config(&systemd.config(
        r#"
[[task]]
name = "nginx"
check = "systemd"
interval = "200ms"
timeout = "5s"
failure_threshold = 1
config = { unit = "nginx.service" }
grants = { systemd = ["nginx.service"] }
on_failure = { action = "systemd-restart", config = { unit = "nginx.service" }, grants = { systemd = ["nginx.service"] } }
restart = { backoff = "500ms", max_backoff = "5s", max_restarts = 5, window = "10m" }
"#,
    ));
    let mut hmrt = HmrtProcess::start(&file);
    hmrt.wait_log("nginx.service is active (running)", Duration::from_secs(30));
    let before = systemd.standin.state("nginx.service");

    systemd.standin.fail("nginx.service", "exit-code");
    let failed = Instant::now();
    let deadline = failed + Duration::from_secs(30);
    let after = loop {
        let state = systemd.standin.state("nginx.service");
        if state.active_state == "active" {
            break state;
        }
        assert!(
            Instant::now() < deadline,
            "nginx.service still {state:?} 30 s after it failed:\n{}",
            hmrt.drain()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!(
        "measured: nginx.service active again {:?} after it failed",
        failed.elapsed()
    );
    assert_ne!(after.main_pid, before.main_pid);
    assert!(std::path::Path::new(&format!("/proc/{}", after.main_pid)).exists());
    // hmrt says what it did and why.
    hmrt.wait_log(
        &format!(
            "restarted nginx.service: pid {}, now active (running) (was failed (failed))",
            after.main_pid
        ),
        Duration::from_secs(10),
    );
    let log = hmrt.drain();
    assert!(
        log.contains("result exit-code"),
        "the failure is in the reason:\n{log}"
    );
    assert_eq!(
        systemd.standin.jobs(),
        vec![("RestartUnit".to_owned(), "nginx.service".to_owned())],
        "one restart, through systemd's job API"
    );
    hmrt.terminate();
    eprintln!("measured: fail and restart test took {:?}", t0.elapsed());
}

#[test]
fn validate_reports_a_missing_systemd_grant_at_its_line() {
    let ws = Workspace::new();
    let path = ws.config(
        "[[task]]\nname = \"web\"\ncheck = \"systemd\"\nconfig = { unit = \"nginx.service\" }\n\
         grants = { systemd = [\"other.service\"] }\n\
         on_failure = { action = \"systemd-restart\", config = { unit = \"nginx.service\" } }\n",
    );
    let (code, _, stderr) = hmrt(&["validate", path.to_str().expect("utf-8 path")]);
    assert_ne!(code, 0, "{stderr}");
    let stderr = stderr.replace(path.to_str().expect("utf-8 path"), "tasks.toml");
    assert!(
        stderr.contains("tasks.toml:4:"),
        "the check's need: {stderr}"
    );
    assert!(
        stderr.contains("unit \"nginx.service\" is not in the systemd grants"),
        "{stderr}"
    );
    assert!(
        stderr.contains("tasks.toml:6:"),
        "the action's need: {stderr}"
    );

    // With the grants, the same tasks validate.
    let path = ws.config(
        "[[task]]\nname = \"web\"\ncheck = \"systemd\"\n\
         config = { unit = \"nginx.service\", crash_loop = { restarts = 3, within = \"10m\" } }\n\
         grants = { systemd = [\"nginx.service\"] }\n\
         on_failure = { action = \"systemd-restart\", config = { unit = \"nginx.service\" }, \
         grants = { systemd = [\"nginx.service\"] } }\n",
    );
    let (code, _, stderr) = hmrt(&["validate", path.to_str().expect("utf-8 path")]);
    assert_eq!(code, 0, "{stderr}");

    // A config error names its key.
    let path = ws.config(
        "[[task]]\nname = \"web\"\ncheck = \"systemd\"\n\
         config = { unit = \"nginx.service\", crash_loop = { restarts = 3 } }\n\
         grants = { systemd = [\"nginx.service\"] }\n",
    );
    let (code, _, stderr) = hmrt(&["validate", path.to_str().expect("utf-8 path")]);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("crash_loop.within"), "{stderr}");
}
