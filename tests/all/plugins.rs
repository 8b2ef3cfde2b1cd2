//! The plugins directory: third-party plugins by file stem, clear errors for what cannot load,
//! and no silent shadowing of built-ins.

use crate::support::{HttpServer, Workspace, hmrt};

#[test]
fn plugins_list_shows_builtins_and_names_each_broken_file() {
    let ws = Workspace::new();
    ws.plugin("json-health", hmrt_test_artifacts::JSON_HEALTH);
    ws.plugin("old", hmrt_test_artifacts::OLD_WIT);
    ws.plugin("http", hmrt_test_artifacts::HOSTILE);
    ws.write_plugin_bytes("notwasm", b"#!/bin/sh\necho hi\n");
    let dir = ws.path().join("plugins");
    let (code, stdout, stderr) = hmrt(&["plugins", "list", "--dir", dir.to_str().expect("utf-8")]);
    assert_ne!(code, 0, "broken files make the listing fail");
    for builtin in [
        "http",
        "command",
        "tcp",
        "supervisor-restart",
        "heartbeat",
        "json-health",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(builtin)),
            "{builtin} missing from:\n{stdout}"
        );
    }
    assert!(
        stderr.contains("old.wasm") && stderr.contains("hmrt:plugin@0.0.1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("http.wasm") && stderr.contains("built-in"),
        "{stderr}"
    );
    assert!(
        stderr.contains("notwasm.wasm") && stderr.contains("not a WebAssembly file"),
        "{stderr}"
    );
}

#[test]
fn plugins_inspect_says_what_a_plugin_is_and_may_touch() {
    let (code, stdout, stderr) = hmrt(&[
        "plugins",
        "inspect",
        "--json",
        hmrt_test_artifacts::JSON_HEALTH,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let value: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(value["kind"], "check");
    assert_eq!(value["name"], "json-health");
    assert_eq!(value["capabilities"], serde_json::json!(["http"]));
    let imports = value["imports"].as_array().expect("imports");
    assert!(
        imports.iter().any(|i| i == "hmrt:plugin/http@0.3.0"),
        "{imports:?}"
    );

    let (code, _, stderr) = hmrt(&["plugins", "inspect", hmrt_test_artifacts::OLD_WIT]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("built against hmrt:plugin@0.0.1")
            && stderr.contains("hmrt:plugin@0.3.0 or @0.2.0 or @0.1.0"),
        "{stderr}"
    );
}

/// Plugins built against contracts 0.1.0 (before `smtp` and `exec` input) and 0.2.0 (before
/// `system`, `process`, `files`, `docker`, `systemd`, `scratch` and `tcp.exchange`) still load,
/// are validated against their grants, and run with their capability calls served.
#[test]
fn plugins_built_against_contracts_0_1_and_0_2_still_load_validate_and_run() {
    for (wasm, version) in [
        (hmrt_test_artifacts::V0_1, "0.1.0"),
        (hmrt_test_artifacts::V0_2, "0.2.0"),
    ] {
        an_older_plugin_loads_validates_and_runs(wasm, version);
    }
}

fn an_older_plugin_loads_validates_and_runs(wasm: &str, version: &str) {
    let (code, stdout, stderr) = hmrt(&["plugins", "inspect", "--json", wasm]);
    assert_eq!(code, 0, "{stderr}");
    let value: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(
        value["contract"],
        format!("hmrt:plugin@{version}"),
        "{value}"
    );
    assert_eq!(value["capabilities"], serde_json::json!(["tcp"]));

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let ws = Workspace::new();
    ws.plugin("older", wasm);
    let granted = ws.config(&format!(
        r#"
[[task]]
name = "old-plugin"
check = "older"
config = {{ address = "{addr}" }}
grants = {{ tcp = ["{addr}"] }}
"#
    ));
    let (code, stdout, stderr) = hmrt(&["check", granted.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("{version} plugin connected to")),
        "{stdout}{stderr}"
    );

    // Its needs reach `hmrt validate` through the same glue: no grant, refused at the line.
    let ungranted = ws.config(&format!(
        r#"
[[task]]
name = "old-plugin"
check = "older"
config = {{ address = "{addr}" }}
"#
    ));
    let (code, _, stderr) = hmrt(&["validate", ungranted.to_str().expect("utf-8")]);
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("tasks.toml:5:") && stderr.contains("not in the tcp grants"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_party_check_runs_and_a_broken_plugin_does_not_stop_other_tasks() {
    let server = HttpServer::start().await;
    let ws = Workspace::new();
    ws.plugin("json-health", hmrt_test_artifacts::JSON_HEALTH);
    ws.plugin("old", hmrt_test_artifacts::OLD_WIT);
    let config = ws.config(&format!(
        r#"
[[task]]
name = "third-party"
check = "json-health"
config = {{ url = "{url}", pointer = "/status", equals = "ok" }}
grants = {{ http = ["{origin}"] }}

[[task]]
name = "uses-broken"
check = "old"

[[task]]
name = "builtin"
check = "http"
config = {{ url = "{plain}" }}
grants = {{ http = ["{origin}"] }}
"#,
        url = server.url("/json"),
        plain = server.url("/"),
        origin = server.origin(),
    ));
    let (code, stdout, stderr) = hmrt(&["check", "--json", config.to_str().expect("utf-8")]);
    let rows: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    let status = |task: &str| -> (String, String) {
        let row = rows
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["task"] == task)
            .expect("row");
        (
            row["status"].as_str().unwrap_or("").into(),
            row["message"].as_str().unwrap_or("").into(),
        )
    };
    assert_eq!(status("builtin").0, "healthy", "{stdout}");
    assert_eq!(status("third-party").0, "healthy", "{stdout}");
    let (broken, why) = status("uses-broken");
    assert_eq!(broken, "unknown");
    assert!(why.contains("old.wasm") && why.contains("0.0.1"), "{why}");
    assert_eq!(code, 3, "the worst status (unknown) decides the exit code");
}

/// Only the built-ins a config names are compiled at start, yet every built-in is still known:
/// an unknown name lists them all, and a file named like one that was not compiled is still
/// refused as a clash.
#[test]
fn built_ins_a_config_does_not_name_are_known_but_not_compiled() {
    let ws = Workspace::new();
    ws.plugin("tls-cert", hmrt_test_artifacts::V0_2);
    let config = ws.config(
        r#"
[[task]]
name = "typo"
check = "dockr"
"#,
    );
    let (code, _, stderr) = hmrt(&["validate", config.to_str().expect("utf-8")]);
    assert_ne!(code, 0, "{stderr}");
    for known in ["docker", "systemd", "log-scan", "http"] {
        assert!(stderr.contains(known), "{known} missing from: {stderr}");
    }
    assert!(
        stderr.contains("\"tls-cert\" is the name of a built-in plugin"),
        "{stderr}"
    );
}

/// `hmrt try`: one plugin file alone, config and grants from the command line; the result,
/// its metrics, denied calls and timings; exit codes as `hmrt check`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_runs_one_plugin_with_command_line_grants_and_exits_as_check() {
    let server = HttpServer::start().await;
    let wasm = hmrt_test_artifacts::JSON_HEALTH;
    let config = format!(
        r#"{{"url": "{}", "pointer": "/status", "equals": "ok"}}"#,
        server.url("/json")
    );
    let grant = format!("http={}", server.origin());
    let args = |extra: &[&str]| {
        let mut args = vec!["try", wasm, "--config", config.as_str()];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |extra: &[&str]| {
        let args = args(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tokio::task::block_in_place(|| hmrt(&args))
    };

    let (code, stdout, stderr) = run(&["--grant", &grant, "--times", "3"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("json-health 0.1.0 (check, hmrt:plugin@0.3.0)"),
        "{stdout}"
    );
    assert!(stdout.contains("(granted)"), "{stdout}");
    assert_eq!(
        stdout.matches("healthy: /status is \"ok\"").count(),
        3,
        "{stdout}"
    );
    assert!(stdout.contains("metric  latency_ms"), "{stdout}");
    assert!(stdout.contains("3 calls: min"), "{stdout}");

    // Not granted: `validate()`'s need is flagged, the call is denied and says so.
    let (code, stdout, _) = run(&["--json"]);
    assert_eq!(code, 2, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(json["calls"][0]["status"], "unhealthy");
    assert_eq!(
        json["calls"][0]["denied"][0],
        format!("http origin {}", server.origin())
    );
    assert!(json["needs"][0]["not_granted"].is_string(), "{json}");

    // A grant the plugin does not declare, a bad config and a bad grant cannot be tried: 3.
    let (code, _, stderr) = run(&["--grant", &grant, "--grant", "exec=ls"]);
    assert_eq!(code, 3);
    assert!(
        stderr.contains("does not declare the exec capability"),
        "{stderr}"
    );
    let (code, _, stderr) = tokio::task::block_in_place(|| {
        hmrt(&["try", wasm, "--config", r#"{"url": 1}"#, "--grant", &grant])
    });
    assert_eq!(code, 3);
    assert!(stderr.contains("`url`"), "{stderr}");
    let (code, _, stderr) = run(&["--grant", "http=ftp://x"]);
    assert_eq!(code, 3);
    assert!(stderr.contains("grants.http[0]"), "{stderr}");
}

/// A component that uses the component model's async ABI (what jco's QuickJS backend emits
/// without `--backend-qjs-disable-async`) is refused with the flag that fixes it.
#[test]
fn an_async_component_is_refused_with_the_build_flag_that_fixes_it() {
    let bytes = wat::parse_str(
        r#"(component
  (import "hmrt:plugin/types@0.3.0" (instance $t))
  (core func $cancel (canon task.cancel))
  (export "hmrt:plugin/check-plugin@0.3.0" (instance $t)))"#,
    )
    .expect("the test's component");
    let ws = Workspace::new();
    ws.write_plugin_bytes("qjs", &bytes);
    let file = ws.path().join("plugins/qjs.wasm");
    let (code, _, stderr) = hmrt(&["plugins", "inspect", file.to_str().expect("utf-8")]);
    assert_ne!(code, 0);
    assert!(stderr.contains("component model async feature"), "{stderr}");
    assert!(stderr.contains("--backend-qjs-disable-async"), "{stderr}");
}
