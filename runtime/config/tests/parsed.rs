//! tasks.toml configs that load, and what they load into; each a real file in a temporary
//! directory. Configs that must be refused are the directory cases of `tests/cases/`.

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

const WEB: &str = "[[task]]\nname = \"web\"\ncheck = \"http\"\n";

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
        ServerUrl::Http { host, port } => assert_eq!((host.as_str(), *port), ("127.0.0.1", 9001)),
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

#[test]
fn durations_are_read_in_the_one_grammar_up_to_a_year() {
    let text = format!(
        "{WEB}interval = \"250ms\"\ntimeout = \"1.5s\"\nstart_period = \"1m 30s\"\n\
         restart = {{ backoff = \"1m30s\", max_backoff = \"1h\", window = \"1y\", reset_after = \"2 min\" }}\n"
    );
    let (_fx, config) = load_ok(&text);
    let web = &config.tasks[0];
    assert_eq!(web.interval, Duration::from_millis(250));
    assert_eq!(web.timeout, Duration::from_millis(1500));
    assert_eq!(web.policy.start_period, Duration::from_secs(90));
    assert_eq!(web.policy.backoff.initial, Duration::from_secs(90));
    assert_eq!(web.policy.backoff.max, Duration::from_secs(3600));
    assert_eq!(web.policy.restart_window, hmrt_domain::duration::MAX);
    assert_eq!(web.policy.reset_after, Duration::from_secs(120));
}

/// Every setting, written with a value unlike its default, lands in its own field; the same
/// from `[defaults]`. A row of the settings table pointing at the wrong field fails here.
#[test]
fn every_setting_reaches_its_field() {
    let settings = "interval = \"7s\"\ntimeout = \"3s\"\nfailure_threshold = 4\n\
        success_threshold = 2\nfailure_window = 9\nmemory = \"3MiB\"\nstart_period = \"11s\"\n\
        restart = { backoff = \"2s\", max_backoff = \"13m\", factor = 1.5, jitter = 0.25, \
        max_restarts = 6, window = \"2h\", reset_after = \"17m\", rearm_after = \"19m\" }\n\
        flapping = { changes = 8, window = \"23m\" }\n";
    let min = |n: u64| Duration::from_secs(60 * n);
    let mut expected = PolicyConfig {
        failure_threshold: 4,
        success_threshold: 2,
        failure_window: Some(9),
        max_restarts: 6,
        restart_window: min(120),
        reset_after: min(17),
        rearm_after: Some(min(19)),
        start_period: Duration::from_secs(11),
        flapping: Some(Flapping {
            max_changes: 8,
            window: min(23),
        }),
        ..PolicyConfig::default()
    };
    expected.backoff.initial = Duration::from_secs(2);
    expected.backoff.max = min(13);
    expected.backoff.factor = 1.5;
    expected.backoff.jitter = 0.25;
    for text in [
        format!("{WEB}{settings}"),
        format!("[defaults]\n{settings}\n{WEB}"),
    ] {
        let (_fx, config) = load_ok(&text);
        let web = &config.tasks[0];
        assert_eq!(web.interval, Duration::from_secs(7), "{text}");
        assert_eq!(web.timeout, Duration::from_secs(3), "{text}");
        assert_eq!(web.memory, 3 << 20, "{text}");
        assert_eq!(web.policy, expected, "{text}");
    }
}

#[test]
fn a_program_in_a_group_is_one_program() {
    let text = "[[task]]\nname = \"web\"\nprogram = \"grp:web\"\ncheck = \"http\"\n\
        on_failure = \"supervisor-restart\"\ngrants = { supervisor = [\"grp:web\", \"db\"] }\n";
    let (_fx, config) = load_ok(text);
    let web = &config.tasks[0];
    assert_eq!(web.program.as_deref(), Some("grp:web"));
    assert!(web.grants.supervisor.allows("grp:web") && web.grants.supervisor.allows("db"));
    let action = web.on_failure.as_ref().unwrap();
    assert!(action.grants.supervisor.allows("grp:web"));
}
