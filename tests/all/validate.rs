//! `hmrt validate` as a user runs it: the binary, a file, and `file:line` messages.

use crate::support::{Workspace, hmrt};

/// Runs `hmrt validate` on `config` and returns (exit code, stderr), with the tasks file's
/// path replaced by `tasks.toml` for readable assertions.
fn validate(ws: &Workspace, config: &str) -> (i32, String) {
    let path = ws.config(config);
    let (code, _stdout, stderr) = hmrt(&["validate", path.to_str().expect("utf-8 path")]);
    (
        code,
        stderr.replace(path.to_str().expect("utf-8 path"), "tasks.toml"),
    )
}

const GOOD: &str = r#"
[[task]]
name = "web"
check = "http"
config = { url = "http://127.0.0.1:18080/health" }
grants = { http = ["http://127.0.0.1:18080"] }
"#;

#[test]
fn a_good_config_passes() {
    let ws = Workspace::new();
    let (code, stderr) = validate(&ws, GOOD);
    assert_eq!(code, 0, "{stderr}");
}

/// Each case: a config, and fragments the error output must contain (the first one with the
/// line and column).
#[test]
fn each_mistake_is_reported_at_its_line() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "unknown key",
            "[[task]]\nname = \"web\"\ncheck = \"http\"\nintervall = \"5s\"\n",
            &["tasks.toml:4:1", "intervall"],
        ),
        (
            "bad duration",
            "[[task]]\nname = \"web\"\ncheck = \"http\"\ninterval = \"5 parsecs\"\n",
            &["tasks.toml:4:", "interval", "5 parsecs"],
        ),
        (
            "unknown check name",
            "[[task]]\nname = \"web\"\ncheck = \"htp\"\n",
            &["tasks.toml:3:", "unknown check \"htp\"", "http"],
        ),
        (
            "url not granted",
            "[[task]]\nname = \"web\"\ncheck = \"http\"\nconfig = { url = \"http://127.0.0.1:9999/health\" }\ngrants = { http = [\"http://127.0.0.1:18080\"] }\n",
            &[
                "tasks.toml:4:",
                "http://127.0.0.1:9999/health",
                "not covered",
            ],
        ),
        (
            "no grants at all",
            "[[task]]\nname = \"web\"\ncheck = \"http\"\nconfig = { url = \"http://127.0.0.1:9999/health\" }\n",
            &["tasks.toml:4:", "not covered"],
        ),
        (
            "task name used twice",
            "[[task]]\nname = \"web\"\ncheck = \"tcp\"\nconfig = { address = \"127.0.0.1:1\" }\ngrants = { tcp = [\"127.0.0.1:1\"] }\n\n[[task]]\nname = \"web\"\ncheck = \"tcp\"\nconfig = { address = \"127.0.0.1:1\" }\ngrants = { tcp = [\"127.0.0.1:1\"] }\n",
            &["tasks.toml:8:", "web"],
        ),
        (
            "the plugin rejects its config",
            "[[task]]\nname = \"web\"\ncheck = \"http\"\nconfig = { ur = \"http://127.0.0.1:18080/\" }\n",
            &["tasks.toml:4:", "ur"],
        ),
        (
            "an action as a check",
            "[[task]]\nname = \"web\"\ncheck = \"supervisor-restart\"\n",
            &["tasks.toml:3:", "an action plugin, not a check"],
        ),
        (
            "a heartbeat without the API",
            "[[task]]\nname = \"cron\"\ncheck = \"heartbeat\"\nconfig = { period = \"1h\", token_env = \"T\" }\n",
            &["tasks.toml:3:", "[runtime] listen"],
        ),
        (
            "a heartbeat's period",
            "[runtime]\nlisten = \"127.0.0.1:0\"\n[[task]]\nname = \"cron\"\ncheck = \"heartbeat\"\nconfig = { period = \"soon\", token_env = \"T\" }\n",
            &["tasks.toml:6:", "config.period", "soon"],
        ),
        (
            "a heartbeat's token variable",
            "[runtime]\nlisten = \"127.0.0.1:0\"\n[[task]]\nname = \"cron\"\ncheck = \"heartbeat\"\nconfig = { period = \"1h\", token_env = \"my-token\" }\n",
            &["tasks.toml:6:", "config.token_env", "my-token"],
        ),
        (
            "exec program not granted",
            "[[task]]\nname = \"disk\"\ncheck = \"command\"\nconfig = { program = \"df\" }\n",
            &["tasks.toml:4:", "df", "exec"],
        ),
    ];
    let ws = Workspace::new();
    for (case, config, fragments) in cases {
        let (code, stderr) = validate(&ws, config);
        assert_ne!(code, 0, "{case}: validate passed:\n{config}");
        for fragment in *fragments {
            assert!(
                stderr.contains(fragment),
                "{case}: {fragment:?} not in:\n{stderr}"
            );
        }
    }
}

#[test]
fn a_core_module_in_plugins_is_named_with_what_is_wrong() {
    let ws = Workspace::new();
    // The smallest valid core module: the header and nothing else.
    ws.write_plugin_bytes("legacy", b"\0asm\x01\0\0\0");
    let (code, stderr) = validate(&ws, GOOD);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("plugins/legacy.wasm"), "{stderr}");
    assert!(
        stderr.contains("core WebAssembly module, not a component"),
        "{stderr}"
    );
}
