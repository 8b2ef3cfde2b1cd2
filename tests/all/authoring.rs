//! Writing a plugin as a third party would, in each language: `hmrt plugins new`, the
//! project's own `./build.sh` (its toolchain from its registry: cargo, pip, npm) and
//! `./build.sh test`, then `hmrt try`, then the plugin in `plugins/` as a task beside the
//! built-ins under `hmrt check`. A toolchain that cannot be installed fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{HttpServer, Workspace, hmrt, recording::RecordingServer};

/// Scaffolds `name` in `lang` as `kind` under `dir`, builds it and runs its unit tests; returns
/// the component.
fn scaffold(dir: &Path, lang: &str, kind: &str, name: &str) -> PathBuf {
    let project = dir.join(name);
    let (code, stdout, stderr) = hmrt(&[
        "plugins",
        "new",
        name,
        "--lang",
        lang,
        "--kind",
        kind,
        "--dir",
        project.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "plugins new: {stdout}{stderr}");
    assert!(stdout.contains("./build.sh"), "{stdout}");
    for args in [&[][..], &["test"][..]] {
        let out = Command::new(project.join("build.sh"))
            .args(args)
            .current_dir(&project)
            // One build of the Rust projects' dependencies for both kinds.
            .env("CARGO_TARGET_DIR", dir.join("cargo-target"))
            .output()
            .expect("run build.sh");
        assert!(
            out.status.success(),
            "{lang} {kind}: ./build.sh {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let wasm = project.join(format!("{name}.wasm"));
    assert!(wasm.is_file(), "{lang}: no {}", wasm.display());
    wasm
}

/// Both kinds in `lang`: the check healthy and unhealthy beside the built-in `http` check, the
/// action's notice arriving at a server, and the sample task accepted by `hmrt validate`.
/// Returns the check's component.
async fn write_build_and_run(lang: &str) -> Vec<u8> {
    let server = HttpServer::start().await;
    let notified = RecordingServer::start();
    let build = tempfile::tempdir().expect("temp dir");
    let check = format!("{lang}-probe");
    let action = format!("{lang}-notify");
    let (check_wasm, action_wasm) = tokio::task::block_in_place(|| {
        (
            scaffold(build.path(), lang, "check", &check),
            scaffold(build.path(), lang, "action", &action),
        )
    });
    let path = |p: &Path| p.to_str().expect("utf-8").to_string();

    // Alone, with `hmrt try`.
    let origin = format!("http={}", server.origin());
    let config = format!(r#"{{"url": "{}", "expect_text": "ok"}}"#, server.url("/"));
    let (code, stdout, stderr) = tokio::task::block_in_place(|| {
        hmrt(&[
            "try",
            &path(&check_wasm),
            "--config",
            &config,
            "--grant",
            &origin,
        ])
    });
    assert_eq!(code, 0, "{lang} try: {stdout}{stderr}");
    assert!(stdout.contains("healthy"), "{stdout}");
    assert!(stdout.contains("latency_ms"), "{stdout}");
    let notify_origin = format!("http://{}", notified.addr);
    let config = format!(r#"{{"url": "{notify_origin}/notify"}}"#);
    let (code, stdout, stderr) = tokio::task::block_in_place(|| {
        hmrt(&[
            "try",
            &path(&action_wasm),
            "--config",
            &config,
            "--grant",
            &format!("http={notify_origin}"),
        ])
    });
    assert_eq!(code, 0, "{lang} try action: {stdout}{stderr}");
    assert!(
        notified.seen().contains("POST /notify"),
        "{}",
        notified.seen()
    );

    // In plugins/, as tasks beside a built-in.
    let ws = Workspace::new();
    ws.plugin(&check, &path(&check_wasm));
    ws.plugin(&action, &path(&action_wasm));
    let config = ws.config(&format!(
        r#"
[[task]]
name = "builtin"
check = "http"
config = {{ url = "{up}" }}
grants = {{ http = ["{origin}"] }}

[[task]]
name = "custom-up"
check = "{check}"
config = {{ url = "{up}", expect_text = "ok" }}
grants = {{ http = ["{origin}"] }}
on_failure = {{ action = "{action}", config = {{ url = "{notify_origin}/notify" }}, grants = {{ http = ["{notify_origin}"] }} }}

[[task]]
name = "custom-down"
check = "{check}"
config = {{ url = "{down}" }}
grants = {{ http = ["{origin}"] }}
"#,
        up = server.url("/"),
        down = server.url("/status/503"),
        origin = server.origin(),
    ));
    let (code, stdout, stderr) =
        tokio::task::block_in_place(|| hmrt(&["validate", &path(&config)]));
    assert_eq!(code, 0, "{lang} validate: {stdout}{stderr}");
    let (code, stdout, stderr) =
        tokio::task::block_in_place(|| hmrt(&["check", "--json", &path(&config)]));
    let rows: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    let status = |task: &str| {
        rows.as_array()
            .expect("rows")
            .iter()
            .find(|r| r["task"] == task)
            .map(|r| (r["status"].clone(), r["message"].clone()))
            .expect("row")
    };
    assert_eq!(status("builtin").0, "healthy", "{stdout}");
    assert_eq!(status("custom-up").0, "healthy", "{stdout}");
    let (down, message) = status("custom-down");
    assert_eq!(down, "unhealthy", "{stdout}");
    assert!(message.to_string().contains("503"), "{message}");
    assert_eq!(code, 2, "the worst status wins");

    // The project's own sample task, with its plugin beside it, validates as written.
    let sample =
        std::fs::read_to_string(build.path().join(&check).join("task.toml")).expect("task.toml");
    let ws = Workspace::new();
    ws.plugin(&check, &path(&check_wasm));
    let config = ws.config(&sample);
    let (code, stdout, stderr) =
        tokio::task::block_in_place(|| hmrt(&["validate", &path(&config)]));
    assert_eq!(code, 0, "{lang} sample task: {stdout}{stderr}");
    std::fs::read(&check_wasm).expect("the check's component")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_plugin_is_written_built_tried_and_run_beside_the_builtins() {
    write_build_and_run("rust").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_plugin_is_written_built_tried_and_run_beside_the_builtins() {
    let wasm = write_build_and_run("python").await;
    tokio::task::block_in_place(|| a_big_plugin_compiles_while_the_other_tasks_keep_time(&wasm));
}

/// Hot reload of a Python plugin (about 19 MB; 10 s or more for Cranelift here) with the
/// compile cache off, so the reload really compiles: a built-in task checked every 200 ms
/// meanwhile keeps its rhythm, each check at most one interval after the one before it was due.
fn a_big_plugin_compiles_while_the_other_tasks_keep_time(wasm: &[u8]) {
    use std::time::Duration;
    let server = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = server.local_addr().expect("addr").port();
    let ws = Workspace::new();
    ws.write_plugin_bytes("big", wasm);
    let config = ws.config(&format!(
        r#"
[[task]]
name = "steady"
check = "tcp"
interval = "200ms"
config = {{ address = "127.0.0.1:{port}" }}
grants = {{ tcp = ["127.0.0.1:{port}"] }}

[[task]]
name = "big"
check = "big"
interval = "1s"
config = {{ url = "http://127.0.0.1:{port}/" }}
grants = {{ http = ["http://127.0.0.1:{port}"] }}
"#
    ));
    let mut hmrt = crate::support::HmrtProcess::start_with(
        &config,
        "info,hmrt=debug",
        &[("HMRT_CACHE_DIR", "off")],
    );
    hmrt.wait_log("hmrt running", Duration::from_secs(120));
    let mark = hmrt.drain().lines().count();
    std::fs::write(ws.path().join("plugins/big.wasm"), wasm).expect("replace");
    hmrt.wait_log("plugin reloaded", Duration::from_secs(180));
    let log = hmrt.drain();
    assert!(hmrt.terminate().success());
    let lines: Vec<&str> = log.lines().skip(mark).collect();
    let reloaded = lines
        .iter()
        .position(|l| l.contains("plugin reloaded"))
        .expect("the reload line");
    let time = |line: &str| {
        let stamp = line.split_whitespace().next().unwrap_or_default();
        stamp
            .parse::<jiff::Timestamp>()
            .unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    let checks: Vec<jiff::Timestamp> = lines[..reloaded]
        .iter()
        .filter(|l| l.contains("task=steady") && l.contains("event=\"check\""))
        .map(|l| time(l))
        .collect();
    let compiling = time(lines[reloaded]).duration_since(time(lines[0]));
    let gaps: Vec<i128> = checks
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_millis())
        .collect();
    let worst = gaps.iter().copied().max().unwrap_or(i128::MAX);
    eprintln!(
        "reload took {compiling:#}; steady checked {} times, the longest gap {worst} ms",
        checks.len()
    );
    assert!(
        compiling.as_secs_f64() > 2.0,
        "the reload compiled for only {compiling:#}: not the test it should be"
    );
    assert!(
        checks.len() as f64 >= compiling.as_secs_f64() / 0.2 * 0.8,
        "{} checks in {compiling:#}",
        checks.len()
    );
    assert!(
        worst < 400,
        "a gap of {worst} ms between checks 200 ms apart: {gaps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_plugin_is_written_built_tried_and_run_beside_the_builtins() {
    write_build_and_run("js").await;
}
