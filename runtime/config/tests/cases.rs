//! tasks.toml cases, each a real file in a temporary directory.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hmrt_config::{
    Config, ConfigError, ConfigErrors, DEFAULT_ACTION_TIMEOUT, DEFAULT_MEMORY, ServerUrl, Url,
};
use hmrt_policy::{Flapping, PolicyConfig};
use serde_json::json;

/// A directory holding `tasks.toml`, and a `bin` directory with an executable `probe` that is
/// the whole `PATH` the loader sees.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let probe = bin.join("probe");
        std::fs::write(&probe, "#!/bin/sh\nexit 0\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Fixture { dir }
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("tasks.toml")
    }

    fn probe(&self) -> PathBuf {
        self.dir.path().join("bin").join("probe")
    }

    fn path_env(&self) -> OsString {
        self.dir.path().join("bin").into_os_string()
    }

    fn load(&self, text: &str) -> Result<Config, ConfigErrors> {
        std::fs::write(self.file(), text).unwrap();
        Config::load(&self.file(), Some(&self.path_env()))
    }
}

fn load_ok(text: &str) -> (Fixture, Config) {
    let fx = Fixture::new();
    match fx.load(text) {
        Ok(config) => (fx, config),
        Err(e) => panic!("config rejected:\n{e}\n--- config:\n{text}"),
    }
}

/// Every error, one per line, with the temporary directory cut off so cases can name
/// `tasks.toml:LINE:COLUMN` exactly.
fn load_err(text: &str) -> Vec<String> {
    let fx = Fixture::new();
    match fx.load(text) {
        Ok(config) => panic!("config accepted: {config:#?}\n--- config:\n{text}"),
        Err(errors) => {
            assert!(!errors.is_empty());
            let prefix = format!("{}/", fx.dir.path().display());
            errors
                .to_string()
                .lines()
                .map(|l| l.strip_prefix(&prefix).unwrap_or(l).to_string())
                .collect()
        }
    }
}

const WEB: &str = "[[task]]\nname = \"web\"\ncheck = \"http\"\n";

/// Each case: a config, and the one error it must produce (a prefix: location, scope, key and
/// the start of the message).
const ERROR_CASES: &[(&str, &str, &str)] = &[
    (
        "unknown top-level key",
        "[runtim]\nplugins_dir = \"p\"\n",
        "tasks.toml:1:2: runtim: unknown key; did you mean \"runtime\"?",
    ),
    (
        "unknown key in a task",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\nintervall = \"5s\"\n",
        "tasks.toml:4:1: task \"web\": intervall: unknown key; did you mean \"interval\"?",
    ),
    (
        "unknown key in restart",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\nrestart = { backoff = \"1s\", maxbackoff = \"5m\" }\n",
        "tasks.toml:4:29: task \"web\": restart.maxbackoff: unknown key; did you mean \"max_backoff\"?",
    ),
    (
        "unknown key far from any known one",
        "[supervisor]\nserverurl = \"unix:///tmp/s.sock\"\nzzz = 1\n",
        "tasks.toml:3:1: supervisor.zzz: unknown key; expected one of: serverurl, username, password",
    ),
    (
        "task-only key in defaults",
        "[defaults]\ncheck = \"http\"\n",
        "tasks.toml:2:1: defaults.check: cannot be set in [defaults]; set it in each [[task]]",
    ),
    (
        "bad duration",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\n\n[task.restart]\nbackoff = \"5 parsecs\"\n",
        "tasks.toml:6:11: task \"web\": restart.backoff: invalid duration \"5 parsecs\": ",
    ),
    (
        "zero interval",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\ninterval = \"0s\"\n",
        "tasks.toml:4:12: task \"web\": interval: must be longer than 0 (found \"0s\")",
    ),
    (
        "zero restart window",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\nrestart.window = \"0ms\"\n",
        "tasks.toml:4:18: task \"web\": restart.window: must be longer than 0",
    ),
    (
        "duration that is not a string",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\ntimeout = 5\n",
        "tasks.toml:4:11: task \"web\": timeout: expected a duration string such as \"5s\", found an integer",
    ),
    (
        "wrong type",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\nfailure_threshold = \"3\"\n",
        "tasks.toml:4:21: task \"web\": failure_threshold: expected an integer, found a string",
    ),
    (
        "section of the wrong type",
        "runtime = 3\n",
        "tasks.toml:1:11: runtime: expected a table, found an integer",
    ),
    (
        "[task] instead of [[task]]",
        "[task]\nname = \"web\"\ncheck = \"http\"\n",
        "tasks.toml:1:1: task: tasks are an array of tables: write [[task]], not [task]",
    ),
    (
        "duplicate task name",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\n\n[[task]]\nname = \"web\"\ncheck = \"tcp\"\n",
        "tasks.toml:6:8: task \"web\": name: duplicate task name \"web\" (first defined at line 2)",
    ),
    (
        "missing name",
        "[[task]]\ncheck = \"http\"\n",
        "tasks.toml:1:1: task[0].name: missing required key",
    ),
    (
        "missing check",
        "[[task]]\nname = \"web\"\n",
        "tasks.toml:1:1: task \"web\": check: missing required key",
    ),
    (
        "invalid task name",
        "[[task]]\nname = \"my web\"\ncheck = \"http\"\n",
        "tasks.toml:2:8: task[0].name: invalid task name \"my web\"",
    ),
    (
        "unknown depends_on name",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\ndepends_on = [\"db\"]\n",
        "tasks.toml:4:15: task \"web\": depends_on[0]: unknown task \"db\"",
    ),
    (
        "depends_on cycle",
        "[[task]]\nname = \"a\"\ncheck = \"http\"\ndepends_on = [\"b\"]\n\n\
         [[task]]\nname = \"b\"\ncheck = \"http\"\ndepends_on = [\"a\"]\n",
        "tasks.toml:9:15: task \"b\": depends_on[0]: dependency cycle: \"a\" -> \"b\" -> \"a\"",
    ),
    (
        "depends on itself",
        "[[task]]\nname = \"a\"\ncheck = \"http\"\ndepends_on = [\"a\"]\n",
        "tasks.toml:4:15: task \"a\": depends_on[0]: dependency cycle: \"a\" -> \"a\"",
    ),
    (
        "depends_on lists a task twice",
        "[[task]]\nname = \"db\"\ncheck = \"tcp\"\n\n[[task]]\nname = \"web\"\ncheck = \"http\"\ndepends_on = [\"db\", \"db\"]\n",
        "tasks.toml:8:21: task \"web\": depends_on[1]: \"db\" is listed twice (also depends_on[0])",
    ),
    (
        "a longer cycle is reported once, where it closes",
        "[[task]]\nname = \"a\"\ncheck = \"h\"\ndepends_on = [\"b\"]\n\
         [[task]]\nname = \"b\"\ncheck = \"h\"\ndepends_on = [\"c\"]\n\
         [[task]]\nname = \"c\"\ncheck = \"h\"\ndepends_on = [\"a\"]\n",
        "tasks.toml:12:15: task \"c\": depends_on[0]: dependency cycle: \"a\" -> \"b\" -> \"c\" -> \"a\"",
    ),
    (
        "http grant with a path",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\ngrants = { http = [\"http://127.0.0.1:18080/health\"] }\n",
        "tasks.toml:4:20: task \"web\": grants.http[0]: \"http://127.0.0.1:18080/health\" has a path (\"/health\"); a grant is an origin",
    ),
    (
        "http grant with a bad scheme",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\ngrants.http = [\"ftp://127.0.0.1\"]\n",
        "tasks.toml:4:16: task \"web\": grants.http[0]: \"ftp://127.0.0.1\" has scheme \"ftp\"; the scheme must be http or https",
    ),
    (
        "exec program not found",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\ngrants = { exec = [\"probe\", \"no-such-program\"] }\n",
        "tasks.toml:4:29: task \"web\": grants.exec[1]: program \"no-such-program\" not found in PATH",
    ),
    (
        "exec relative path",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\ngrants = { exec = [\"bin/probe\"] }\n",
        "tasks.toml:4:20: task \"web\": grants.exec[0]: program \"bin/probe\" is a relative path",
    ),
    (
        "exec absolute path that does not exist",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\ngrants = { exec = [\"/no/such/probe\"] }\n",
        "tasks.toml:4:20: task \"web\": grants.exec[0]: program \"/no/such/probe\" does not exist",
    ),
    (
        "tcp grant without a port",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\ngrants = { tcp = [\"db.local\"] }\n",
        "tasks.toml:4:19: task \"web\": grants.tcp[0]: \"db.local\" has no port",
    ),
    (
        "unknown grant kind",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\ngrants = { htp = [] }\n",
        "tasks.toml:4:12: task \"web\": grants.htp: unknown key; did you mean \"http\"?",
    ),
    (
        "threshold 0 in a task",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\nsuccess_threshold = 0\n",
        "tasks.toml:4:21: task \"web\": success_threshold: must be at least 1 (found 0)",
    ),
    (
        "threshold 0 in defaults",
        "[defaults]\nfailure_threshold = 0\n",
        "tasks.toml:2:21: defaults.failure_threshold: must be at least 1 (found 0)",
    ),
    (
        "jitter out of range",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\nrestart = { jitter = 1.0 }\n",
        "tasks.toml:4:22: task \"web\": restart.jitter: must be at least 0 and less than 1 (found 1)",
    ),
    (
        "factor below 1",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\nrestart = { factor = 0.5 }\n",
        "tasks.toml:4:22: task \"web\": restart.factor: must be at least 1 (found 0.5)",
    ),
    (
        "max_backoff below backoff",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\nrestart = { backoff = \"10s\", max_backoff = \"5s\" }\n",
        "tasks.toml:4:44: task \"web\": restart.max_backoff: restart.max_backoff must be at least restart.backoff: max_backoff is 5s (line 4), backoff is 10s (line 4)",
    ),
    (
        "task backoff above the defaults' max_backoff is reported at the task",
        "[defaults]\nrestart.max_backoff = \"1m\"\n\n[[task]]\nname = \"web\"\ncheck = \"http\"\nrestart.backoff = \"2m\"\n",
        "tasks.toml:7:19: task \"web\": restart.backoff: restart.max_backoff must be at least restart.backoff: max_backoff is 1m ([defaults], line 2), backoff is 2m (line 7)",
    ),
    (
        "failure_window below failure_threshold",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\nfailure_window = 2\n",
        "tasks.toml:4:18: task \"web\": failure_window: failure_window must be at least failure_threshold: failure_window is 2 (line 4), failure_threshold is 3 (built-in default)",
    ),
    (
        "bad memory size",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\nmemory = \"64 parsecs\"\n",
        "tasks.toml:4:10: task \"web\": memory: invalid size \"64 parsecs\": unknown unit \"parsecs\"",
    ),
    (
        "bad listen address",
        "[runtime]\nlisten = \"localhost:9187\"\n",
        "tasks.toml:2:10: runtime.listen: invalid listen address \"localhost:9187\"",
    ),
    (
        "max_concurrency 0",
        "[runtime]\nmax_concurrency = 0\n",
        "tasks.toml:2:19: runtime.max_concurrency: must be at least 1 (found 0)",
    ),
    (
        "supervisor serverurl with a relative socket",
        "[supervisor]\nserverurl = \"unix://tmp/s.sock\"\n",
        "tasks.toml:2:13: supervisor.serverurl: \"unix://tmp/s.sock\": the socket path must be absolute",
    ),
    (
        "on_failure table without action",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\non_failure = { timeout = \"10s\" }\n",
        "tasks.toml:4:14: task \"web\": on_failure.action: missing required key",
    ),
    (
        "on_failure table with an unknown key",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\n\n[task.on_failure]\naction = \"x\"\ngrant = {}\n",
        "tasks.toml:7:1: task \"web\": on_failure.grant: unknown key; did you mean \"grants\"?",
    ),
    (
        "on_failure of the wrong type",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\non_failure = 1\n",
        "tasks.toml:4:14: task \"web\": on_failure: expected an action name or a table",
    ),
    (
        "config value JSON cannot carry",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\nconfig = { limits = { max = nan } }\n",
        "tasks.toml:4:29: task \"web\": config.limits.max: nan cannot be passed to a plugin",
    ),
    (
        "incomplete flapping",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\nflapping = { changes = 3 }\n",
        "tasks.toml:4:12: task \"web\": flapping.window: missing required key",
    ),
    (
        "TOML syntax error",
        "[[task]]\nname = \"web\"\nname = \"db\"\n",
        "tasks.toml:3:1: TOML syntax: duplicate key",
    ),
];

#[test]
fn error_cases() {
    let mut failures = Vec::new();
    for (name, text, expected) in ERROR_CASES {
        let errors = load_err(text);
        if errors.len() != 1 || !errors[0].starts_with(expected) {
            failures.push(format!(
                "{name}:\n  expected: {expected}\n  got:      {}",
                errors.join("\n            ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn each_cycle_is_reported_once() {
    let text = "\
[[task]]
name = \"a\"
check = \"h\"
depends_on = [\"b\"]
[[task]]
name = \"b\"
check = \"h\"
depends_on = [\"c\"]
[[task]]
name = \"c\"
check = \"h\"
depends_on = [\"a\", \"a\", \"b\"]
";
    assert_eq!(
        load_err(text),
        [
            "tasks.toml:12:15: task \"c\": depends_on[0]: dependency cycle: \"a\" -> \"b\" -> \"c\" -> \"a\"",
            "tasks.toml:12:20: task \"c\": depends_on[1]: \"a\" is listed twice (also depends_on[0])",
            "tasks.toml:12:25: task \"c\": depends_on[2]: dependency cycle: \"b\" -> \"c\" -> \"b\"",
        ]
    );
}

#[test]
fn all_errors_are_collected_in_one_pass_in_file_order() {
    let text = "\
[runtime]
listen = \"nope\"
bogus = 1

[[task]]
name = \"web\"
check = \"http\"
interval = \"5 parsecs\"
restart = { jitter = 2.0, factor = 0.1 }
grants = { http = [\"http://h/x\"], tcp = [\"h\"] }

[[task]]
name = \"db\"
depends_on = [\"nothere\"]
";
    let errors = load_err(text);
    let heads: Vec<&str> = errors
        .iter()
        .map(|e| {
            let loc = e.split(": ").next().unwrap();
            loc.strip_prefix("tasks.toml:").unwrap_or(loc)
        })
        .collect();
    assert_eq!(
        heads,
        [
            "2:10", "3:1", "8:12", "9:22", "9:36", "10:20", "10:42", "12:1", "14:15"
        ],
        "{}",
        errors.join("\n")
    );
    assert!(
        errors[7].contains("task \"db\": check: missing required key"),
        "{}",
        errors[7]
    );
    assert!(
        errors[8].contains("unknown task \"nothere\""),
        "{}",
        errors[8]
    );
}

#[test]
fn the_design_example() {
    let text = r#"
[runtime]
plugins_dir = "plugins"          # *.wasm here load by file stem; relative to this file
state_dir   = "/var/lib/hmrt"
listen      = "127.0.0.1:9187"

[supervisor]
serverurl = "unix:///tmp/supervisor.sock"

[[task]]
name = "web"
program = "web"
check = "http"
interval = "5s"
timeout = "2s"
failure_threshold = 3
success_threshold = 1
config = { url = "http://127.0.0.1:18080/health" }
grants = { http = ["http://127.0.0.1:18080"] }
on_failure = "supervisor-restart"
restart = { backoff = "1s", max_backoff = "5m", max_restarts = 5, window = "1h" }
"#;
    let (fx, config) = load_ok(text);
    assert_eq!(config.file, fx.file());
    assert_eq!(config.runtime.plugins_dir, fx.dir.path().join("plugins"));
    assert_eq!(config.runtime.state_dir, PathBuf::from("/var/lib/hmrt"));
    assert_eq!(
        config.runtime.listen,
        Some("127.0.0.1:9187".parse().unwrap())
    );
    assert_eq!(config.runtime.max_concurrency, 16);
    let supervisor = config.supervisor.as_ref().unwrap();
    assert_eq!(
        supervisor.serverurl,
        ServerUrl::Unix("/tmp/supervisor.sock".into())
    );
    assert_eq!(
        (supervisor.location.line, supervisor.location.column),
        (8, 13)
    );

    assert_eq!(config.tasks.len(), 1);
    let web = config.task("web").unwrap();
    assert_eq!(web.program.as_deref(), Some("web"));
    assert_eq!(web.check, "http");
    assert_eq!((web.location.line, web.location.column), (10, 1));
    assert_eq!((web.name_location.line, web.name_location.column), (11, 8));
    assert_eq!(
        (web.check_location.line, web.check_location.column),
        (13, 9)
    );
    assert_eq!(web.interval, Duration::from_secs(5));
    assert_eq!(web.timeout, Duration::from_secs(2));
    assert_eq!(web.memory, DEFAULT_MEMORY);
    assert_eq!(
        web.config.value,
        json!({ "url": "http://127.0.0.1:18080/health" })
    );
    let url_at = web.config.location("/url").unwrap();
    assert_eq!((url_at.line, url_at.column), (18, 18));

    let health = Url::parse("http://127.0.0.1:18080/health").unwrap();
    assert!(web.grants.http.allows(&health));
    assert!(
        !web.grants
            .http
            .allows(&Url::parse("http://127.0.0.1:18081/").unwrap())
    );
    assert_eq!(web.grants.http.origins[0].location.line, 19);
    assert!(web.grants.exec.programs.is_empty());
    assert!(
        web.grants.supervisor.programs.is_empty(),
        "the check gets no implied grants"
    );

    let action = web.on_failure.as_ref().unwrap();
    assert_eq!(action.action, "supervisor-restart");
    assert_eq!((action.location.line, action.location.column), (20, 14));
    assert_eq!(action.timeout, DEFAULT_ACTION_TIMEOUT);
    assert_eq!(action.config.value, json!({}));
    assert!(action.grants.supervisor.allows("web"));
    assert!(!action.grants.supervisor.allows("db"));
    assert!(action.grants.http.origins.is_empty());

    let builtin = PolicyConfig::default();
    let mut expected = PolicyConfig {
        failure_threshold: 3,
        success_threshold: 1,
        max_restarts: 5,
        restart_window: Duration::from_secs(3600),
        has_action: true,
        ..PolicyConfig::default()
    };
    expected.backoff.initial = Duration::from_secs(1);
    expected.backoff.max = Duration::from_secs(300);
    assert_eq!(web.policy, expected);
    assert_eq!(web.policy.backoff.factor, builtin.backoff.factor);
}

#[test]
fn defaults_apply_and_tasks_override_them() {
    let text = r#"
[defaults]
interval = "30s"
timeout = "3s"
failure_threshold = 4
memory = "128MiB"
start_period = "20s"
restart = { backoff = "2s", factor = 3, jitter = 0, max_restarts = 2 }
flapping = { changes = 6, window = "10m" }

[[task]]
name = "a"
check = "http"

[[task]]
name = "b"
check = "tcp"
interval = "1s"
failure_window = 6
memory = 1048576
restart = { max_restarts = 9, rearm_after = "30m" }
flapping = { changes = 2 }
depends_on = ["a"]
"#;
    let (_fx, config) = load_ok(text);
    let a = config.task("a").unwrap();
    assert_eq!(a.interval, Duration::from_secs(30));
    assert_eq!(a.timeout, Duration::from_secs(3));
    assert_eq!(a.memory, 128 << 20);
    assert_eq!(a.policy.failure_threshold, 4);
    assert_eq!(a.policy.success_threshold, 1);
    assert_eq!(a.policy.failure_window, None);
    assert_eq!(a.policy.start_period, Duration::from_secs(20));
    assert_eq!(a.policy.backoff.initial, Duration::from_secs(2));
    assert_eq!(a.policy.backoff.factor, 3.0);
    assert_eq!(a.policy.backoff.jitter, 0.0);
    assert_eq!(a.policy.backoff.max, PolicyConfig::default().backoff.max);
    assert_eq!(a.policy.max_restarts, 2);
    assert_eq!(a.policy.rearm_after, None);
    assert_eq!(
        a.policy.flapping,
        Some(Flapping {
            max_changes: 6,
            window: Duration::from_secs(600)
        })
    );
    assert!(!a.policy.has_action);
    assert!(a.on_failure.is_none());
    assert!(a.policy.depends_on.is_empty());

    let b = config.task("b").unwrap();
    assert_eq!(b.interval, Duration::from_secs(1));
    assert_eq!(b.timeout, Duration::from_secs(3));
    assert_eq!(b.memory, 1 << 20);
    assert_eq!(b.policy.failure_threshold, 4);
    assert_eq!(b.policy.failure_window, Some(6));
    // Restart settings merge key by key: b's own max_restarts, the defaults' backoff.
    assert_eq!(b.policy.max_restarts, 9);
    assert_eq!(b.policy.backoff.initial, Duration::from_secs(2));
    assert_eq!(b.policy.rearm_after, Some(Duration::from_secs(1800)));
    assert_eq!(
        b.policy.flapping,
        Some(Flapping {
            max_changes: 2,
            window: Duration::from_secs(600)
        })
    );
    assert_eq!(b.policy.depends_on, ["a"]);
}

#[test]
fn builtin_defaults() {
    let (fx, config) = load_ok(WEB);
    assert_eq!(config.runtime.plugins_dir, fx.dir.path().join("plugins"));
    assert_eq!(config.runtime.state_dir, fx.dir.path().join("state"));
    assert_eq!(config.runtime.listen, None);
    assert!(config.supervisor.is_none());
    let web = &config.tasks[0];
    assert_eq!(web.interval, Duration::from_secs(10));
    assert_eq!(web.timeout, Duration::from_secs(5));
    assert_eq!(web.memory, 64 << 20);
    assert_eq!(web.policy, PolicyConfig::default());
    assert!(web.grants.is_empty());
    assert_eq!(web.config.value, json!({}));
}

#[test]
fn an_error_in_defaults_is_reported_once_not_per_task() {
    let text = format!(
        "[defaults]\nfailure_threshold = 5\nfailure_window = 4\n\n{WEB}\n[[task]]\nname = \"db\"\ncheck = \"tcp\"\n"
    );
    let errors = load_err(&text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("tasks.toml:3:18: defaults.failure_window: failure_window must be at least failure_threshold: failure_window is 4 ([defaults], line 3), failure_threshold is 5 ([defaults], line 2)"),
        "{}",
        errors[0]
    );
}

#[test]
fn shorthand_on_failure_implies_the_program_grant_and_the_table_form_does_not() {
    let text = r#"
[[task]]
name = "short"
program = "web"
check = "http"
on_failure = "supervisor-restart"

[[task]]
name = "short-no-program"
check = "http"
on_failure = "notify"

[[task]]
name = "table"
program = "web"
check = "http"
on_failure = { action = "supervisor-restart", timeout = "10s", config = { signal = "TERM" } }

[[task]]
name = "table-grants"
program = "web"
check = "http"

[task.on_failure]
action = "supervisor-restart"
grants = { supervisor = ["web", "worker"], http = ["https://alerts.example"] }
"#;
    let (_fx, config) = load_ok(text);
    let short = config.task("short").unwrap().on_failure.as_ref().unwrap();
    let names: Vec<&str> = short
        .grants
        .supervisor
        .programs
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["web"]);
    assert_eq!(short.grants.supervisor.programs[0].location.line, 6);
    assert!(short.grants.http.origins.is_empty() && short.grants.exec.programs.is_empty());

    let bare = config
        .task("short-no-program")
        .unwrap()
        .on_failure
        .as_ref()
        .unwrap();
    assert!(bare.grants.is_empty());

    let table = config.task("table").unwrap();
    let action = table.on_failure.as_ref().unwrap();
    assert_eq!(action.action, "supervisor-restart");
    assert!(action.grants.is_empty(), "the table form implies nothing");
    assert_eq!(action.timeout, Duration::from_secs(10));
    assert_eq!(action.config.value, json!({ "signal": "TERM" }));
    assert_eq!((action.location.line, action.location.column), (17, 25));
    assert!(table.policy.has_action);

    let explicit = config
        .task("table-grants")
        .unwrap()
        .on_failure
        .as_ref()
        .unwrap();
    assert!(explicit.grants.supervisor.allows("worker"));
    assert!(explicit.grants.supervisor.allows("web"));
    assert!(
        explicit
            .grants
            .http
            .allows(&Url::parse("https://alerts.example/hook").unwrap())
    );
    assert_eq!(explicit.location.line, 25);
}

#[test]
fn exec_grants_resolve_through_the_given_path() {
    let fx = Fixture::new();
    let probe = fx.probe();
    let text = format!(
        "{WEB}grants = {{ exec = [\"probe\", \"{}\"] }}\n",
        probe.display()
    );
    let config = fx.load(&text).unwrap();
    let exec = &config.tasks[0].grants.exec;
    assert_eq!(exec.programs.len(), 2);
    assert_eq!(exec.programs[0].name, "probe");
    assert_eq!(exec.programs[0].path, probe);
    assert_eq!(exec.resolve("probe"), Some(probe.as_path()));
    assert_eq!(exec.resolve(probe.to_str().unwrap()), Some(probe.as_path()));
    assert_eq!(exec.resolve("sh"), None);

    // The same config with no PATH: the bare name cannot be found, the absolute path still can.
    let errors = Config::load(&fx.file(), None).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors}");
    assert_eq!(errors.errors()[0].key, "grants.exec[0]");
    assert!(errors.errors()[0].message.contains("PATH is not set"));
}

#[test]
fn grants_of_every_kind() {
    let text = format!(
        "{WEB}grants = {{ http = [\"https://Example.com\", \"http://[::1]:8080/\"], supervisor = [\"web\"], tcp = [\"DB:5432\", \"[::1]:6379\"] }}\n"
    );
    let (_fx, config) = load_ok(&text);
    let g = &config.tasks[0].grants;
    assert!(
        g.http
            .allows(&Url::parse("https://example.com:443/x?y").unwrap())
    );
    assert!(g.http.allows(&Url::parse("http://[::1]:8080/x").unwrap()));
    assert!(!g.http.allows(&Url::parse("http://example.com/").unwrap()));
    assert!(g.supervisor.allows("web") && !g.supervisor.allows("Web"));
    assert!(g.tcp.allows("db", 5432) && g.tcp.allows("::1", 6379));
    assert!(!g.tcp.allows("db", 5433));
    assert_eq!(g.http.origins[1].location.column, 43);
}

#[test]
fn check_config_becomes_json_with_locations() {
    let text = format!(
        "{WEB}\n[task.config]\nurl = \"http://127.0.0.1:18080/health\"\nexpect = [200, 204]\nheaders.\"x/y\" = \"z\"\nwhen = 1979-05-27T07:32:00Z\nratio = 0.5\nhex = 0x10\nfast = true\n"
    );
    let (_fx, config) = load_ok(&text);
    let c = &config.tasks[0].config;
    assert_eq!(
        c.value,
        json!({
            "url": "http://127.0.0.1:18080/health",
            "expect": [200, 204],
            "headers": { "x/y": "z" },
            "when": "1979-05-27T07:32:00Z",
            "ratio": 0.5,
            "hex": 16,
            "fast": true,
        })
    );
    let at = |p: &str| c.location(p).map(|l| (l.line, l.column));
    assert_eq!(at(""), Some((5, 1)));
    assert_eq!(at("/url"), Some((6, 7)));
    assert_eq!(at("/expect/1"), Some((7, 16)));
    assert_eq!(at("/headers/x~1y"), Some((8, 17)));
    assert_eq!(at("/nothere"), None);
}

#[test]
fn relative_and_absolute_runtime_paths() {
    let (fx, config) = load_ok(
        "[runtime]\nplugins_dir = \"ext/plugins\"\nstate_dir = \"/srv/hmrt\"\nmax_concurrency = 3\n",
    );
    assert_eq!(
        config.runtime.plugins_dir,
        fx.dir.path().join("ext/plugins")
    );
    assert_eq!(config.runtime.state_dir, Path::new("/srv/hmrt"));
    assert_eq!(config.runtime.max_concurrency, 3);

    // Config::parse resolves against the named file's directory without reading it.
    let config = Config::parse("", Path::new("/etc/hmrt/tasks.toml"), None).unwrap();
    assert_eq!(config.runtime.plugins_dir, Path::new("/etc/hmrt/plugins"));
    assert!(config.tasks.is_empty());
}

#[test]
fn supervisor_over_http() {
    let (_fx, config) = load_ok(
        "[supervisor]\nserverurl = \"http://127.0.0.1:9001\"\nusername = \"u\"\npassword = \"secret\"\n",
    );
    let s = config.supervisor.unwrap();
    match &s.serverurl {
        ServerUrl::Http(url) => assert_eq!(url.port(), Some(9001)),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.username.as_deref(), Some("u"));
    assert_eq!(s.password.as_deref(), Some("secret"));
    assert!(
        !format!("{s:?}").contains("secret"),
        "the password leaks through Debug"
    );
}

#[test]
fn files_that_cannot_be_read() {
    let fx = Fixture::new();
    let missing = fx.dir.path().join("missing.toml");
    let e = Config::load(&missing, None).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot read the config", missing.display()))
    );

    std::fs::write(fx.file(), b"[runtime]\nlisten = \"\xff\"\n").unwrap();
    let e = Config::load(&fx.file(), None).unwrap_err();
    let location = &e.errors()[0].location;
    assert_eq!((location.line, location.column), (2, 11));
    assert!(e.to_string().ends_with("not valid UTF-8"));
}

#[test]
fn the_host_makes_errors_that_read_the_same() {
    let (_fx, config) = load_ok(WEB);
    let web = &config.tasks[0];
    let error = ConfigError::new(
        web.check_location.clone(),
        "check",
        format!("unknown check {:?}", web.check),
    )
    .in_task(&web.name);
    let shown = error.to_string();
    let shown = shown.rsplit('/').next().unwrap();
    assert_eq!(
        shown,
        "tasks.toml:3:9: task \"web\": check: unknown check \"http\""
    );
}
