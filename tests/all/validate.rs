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

/// The examples of each replaced system's job (`examples/replacing/`) are configs a user copies:
/// every one loads, and every plugin in it accepts its config and is granted what it needs.
/// And each is checked for teeth: without one of its grants, the same file is refused.
#[test]
fn the_replacing_examples_validate_and_a_missing_grant_is_caught() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/replacing");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/replacing") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        seen += 1;
        let (code, stdout, stderr) = hmrt(&["validate", path.to_str().expect("utf-8")]);
        assert_eq!(code, 0, "{}: {stdout}{stderr}", path.display());

        // The first grants table of the file, emptied: its task must now be refused.
        let text = std::fs::read_to_string(&path).expect("read");
        let start = text.find("\ngrants = {").expect("a grants line") + 1;
        let end = start + text[start..].find('\n').expect("end of line");
        let stripped = format!("{}grants = {{}}{}", &text[..start], &text[end..]);
        let ws = Workspace::new();
        let config = ws.config(&stripped);
        let (code, _, stderr) = hmrt(&["validate", config.to_str().expect("utf-8")]);
        assert_ne!(
            code,
            0,
            "{} without its first grants passed",
            path.display()
        );
        assert!(stderr.contains("grants"), "{}: {stderr}", path.display());
    }
    assert_eq!(seen, 4, "one example per replaced system");
}

/// A plugin's `describe()` bounds its grants: a grant beyond it is refused, at the grant's key.
/// What is declared but not granted (for a third-party plugin), and what is granted but named
/// by no need of the config, are notes that do not fail.
#[test]
fn grants_beyond_the_declaration_are_refused_and_unused_ones_are_noted() {
    let ws = Workspace::new();
    ws.plugin("hostile", hmrt_test_artifacts::HOSTILE);
    let (code, stderr) = validate(
        &ws,
        "[[task]]\nname = \"web\"\ncheck = \"http\"\nconfig = { url = \"http://127.0.0.1:18080/\" }\ngrants = { http = [\"http://127.0.0.1:18080\"], exec = [\"ls\"] }\n",
    );
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("task \"web\": grants.exec: the plugin does not declare the exec capability (it declares: http)"),
        "{stderr}"
    );

    // hostile declares http, exec, supervisor and tcp; in mode `ok` it needs none of them.
    let path = ws.config(
        "[[task]]\nname = \"h\"\ncheck = \"hostile\"\nconfig = { mode = \"ok\" }\ngrants = { tcp = [\"127.0.0.1:1\"] }\n",
    );
    let (code, stdout, stderr) = hmrt(&["validate", path.to_str().expect("utf-8 path")]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for kind in ["http", "exec", "supervisor"] {
        assert!(
            stdout.contains(&format!("task \"h\": grants.{kind}: note: the plugin declares the {kind} capability, which this task does not grant")),
            "{kind}: {stdout}"
        );
    }
    assert!(
        stdout.contains(
            "task \"h\": grants.tcp: note: granted, but the plugin's validate() names no tcp need"
        ),
        "{stdout}"
    );
    assert!(stdout.contains(": ok ("), "{stdout}");
}
