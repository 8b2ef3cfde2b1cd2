//! The binary as an operator uses it: `hmrt check`'s Nagios exit codes, and `hmrt run`
//! stopping cleanly on SIGTERM and SIGINT.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{HmrtProcess, HttpServer, Workspace, hmrt, hmrt_within};

fn command_task(name: &str, program: &str, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "[[task]]\nname = \"{name}\"\ncheck = \"command\"\nconfig = {{ program = \"{program}\", args = [{}] }}\ngrants = {{ exec = [\"{program}\"] }}\n",
        args.join(", ")
    )
}

#[test]
fn check_exits_with_the_worst_status_the_nagios_way() {
    let ws = Workspace::new();
    let cases = [
        (command_task("ok", "true", &[]), 0),
        (
            command_task("ok", "true", &[]) + &command_task("warn", "false", &[]),
            1,
        ),
        (
            command_task("warn", "false", &[]) + &command_task("crit", "ls", &["/no/such/path"]),
            2,
        ),
        (
            command_task("unknown", "python3", &["-c", "import sys; sys.exit(3)"]),
            3,
        ),
        // Unhealthy counts as worse than unknown.
        (
            command_task("unknown", "python3", &["-c", "import sys; sys.exit(3)"])
                + &command_task("crit", "ls", &["/no/such/path"]),
            2,
        ),
    ];
    for (config, expected) in cases {
        let path = ws.config(&config);
        let (code, stdout, stderr) = hmrt(&["check", path.to_str().expect("utf-8")]);
        assert_eq!(
            code, expected,
            "config:\n{config}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
    }
    // --task picks one.
    let path = ws.config(
        &(command_task("ok", "true", &[]) + &command_task("crit", "ls", &["/no/such/path"])),
    );
    let (code, stdout, _) = hmrt(&["check", "--task", "ok", path.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stdout}");
    assert!(!stdout.contains("crit"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stops_on_sigterm_and_sigint_with_exit_zero() {
    let server = HttpServer::start().await;
    let ws = Workspace::new();
    let path = ws.config(&format!(
        "[[task]]\nname = \"web\"\ncheck = \"http\"\ninterval = \"200ms\"\ntimeout = \"2s\"\nconfig = {{ url = \"{}\" }}\ngrants = {{ http = [\"{}\"] }}\n",
        server.url("/"),
        server.origin()
    ));
    for signal in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
    ] {
        // Each run starts fresh: a resumed `healthy` state would not log the transition below.
        let _ = std::fs::remove_dir_all(ws.path().join("state"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_hmrt"))
            .args(["run", path.to_str().expect("utf-8")])
            .env("HMRT_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hmrt");
        let stderr = child.stderr.take().expect("stderr");
        let (lines_tx, lines_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        // Wait until it has checked the task once.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut log = Vec::new();
        while !log
            .iter()
            .any(|l: &String| l.contains("from=unknown to=healthy"))
        {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => log.push(line),
                Err(_) => panic!("hmrt never reported the task healthy:\n{}", log.join("\n")),
            }
        }
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        let sent = Instant::now();
        nix::sys::signal::kill(pid, signal).expect("signal hmrt");
        // The longest timeout is 2 s; allow for process teardown on a loaded machine.
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(5),
                "hmrt did not stop within 5 s of {signal}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "{signal}: exit {status:?}");
    }
}

/// A tcp check given `host` where it takes `address`: `hmrt validate` refuses it at its line.
const WRONG_KEY: &str = r#"
[[task]]
name = "db"
check = "tcp"
config = { host = "127.0.0.1:5432" }
grants = { tcp = ["127.0.0.1:5432"] }
"#;

#[test]
fn run_refuses_what_validate_refuses_with_the_same_messages() {
    let ws = Workspace::new();
    let path = ws.config(WRONG_KEY);
    let file = path.to_str().expect("utf-8");
    let (code, _, validate_err) = hmrt(&["validate", file]);
    assert_eq!(code, 1, "{validate_err}");
    let located: Vec<&str> = validate_err
        .lines()
        .filter(|l| l.starts_with(file))
        .filter(|l| !l.ends_with("error(s)"))
        .collect();
    assert!(!located.is_empty(), "{validate_err}");
    assert!(
        located
            .iter()
            .any(|l| l.contains(":5:") && l.contains("host")),
        "the wrong key at its line: {validate_err}"
    );
    // `run` exits at once (it would otherwise run until a signal) with the same messages.
    let (code, _, run_err) = hmrt_within(&["run", file], Duration::from_secs(30));
    assert_eq!(code, 2, "{run_err}");
    for line in located {
        assert!(
            run_err.contains(line),
            "{line:?} missing from run's output:\n{run_err}"
        );
    }
    assert!(!run_err.contains("hmrt running"), "{run_err}");
}

#[test]
fn check_exits_unknown_on_any_config_error() {
    let ws = Workspace::new();
    for (what, config) in [
        ("a plugin config error", WRONG_KEY.to_string()),
        ("a TOML error", "[[task]\n".to_string()),
        (
            "an unknown key",
            command_task("ok", "true", &[]) + "intervall = \"5s\"\n",
        ),
        (
            "an absurd duration",
            command_task("ok", "true", &[]) + "timeout = \"400000000000y\"\n",
        ),
    ] {
        let path = ws.config(&config);
        let (code, stdout, stderr) = hmrt(&["check", path.to_str().expect("utf-8")]);
        assert_eq!(
            code, 3,
            "{what}: UNKNOWN, not a verdict about the service\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
    }
}

#[test]
fn an_absurd_duration_is_a_located_error_not_a_panic() {
    let ws = Workspace::new();
    for key in ["timeout", "interval"] {
        let path =
            ws.config(&(command_task("ok", "true", &[]) + &format!("{key} = \"400000000000y\"\n")));
        let file = path.to_str().expect("utf-8");
        for command in ["validate", "run"] {
            let (code, _, stderr) = hmrt_within(&[command, file], Duration::from_secs(30));
            assert!(
                code == 1 || code == 2,
                "{command} {key}: exit {code}\n{stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
            assert!(
                stderr.contains(&format!("{file}:6:")) && stderr.contains(key),
                "{command}: the error names file, line and key:\n{stderr}"
            );
        }
    }
}

#[test]
fn a_task_left_unknown_says_why_at_warn_level_once_and_the_others_run() {
    let ws = Workspace::new();
    ws.write_plugin_bytes("broken", b"not a component");
    let path = ws.config(
        &(command_task("fine", "true", &[])
            + "interval = \"100ms\"\n"
            + "[[task]]\nname = \"lost\"\ncheck = \"broken\"\ninterval = \"100ms\"\n"),
    );
    // warn for everything (what an operator sees at a quiet level), debug for the checks only,
    // to count them.
    let mut run = HmrtProcess::start_logging(&path, "warn,hmrt::events=debug");
    let checks_of = |log: &[String], task: &str| {
        log.iter()
            .filter(|l| l.contains("elapsed_ms=") && l.contains(&format!("task={task} ")))
            .count()
    };
    let log = run
        .wait_until("five checks of each task", Duration::from_secs(20), |log| {
            checks_of(log, "lost") >= 5 && checks_of(log, "fine") >= 5
        })
        .to_vec();
    run.kill9();
    let text = log.join("\n");
    let warned: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("WARN") && l.contains("cannot tell"))
        .collect();
    assert_eq!(
        warned.len(),
        1,
        "one warning while the reason stays the same:\n{text}"
    );
    assert!(
        warned[0].contains("lost") && warned[0].contains("broken"),
        "it names the task and why: {}",
        warned[0]
    );
    assert!(
        log.iter()
            .any(|l| l.contains("ERROR") && l.contains("plugin not loaded")),
        "the plugin file is reported:\n{text}"
    );
}

#[test]
fn json_log_lines_carry_task_plugin_and_event_as_fields_once() {
    let ws = Workspace::new();
    let path = ws.config(&(command_task("fine", "true", &[]) + "interval = \"100ms\"\n"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hmrt"))
        .args(["run", path.to_str().unwrap(), "--log-format", "json"])
        .env("HMRT_LOG", "debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start hmrt");
    let stderr = child.stderr.take().expect("stderr");
    let mut check = None;
    let mut state = None;
    for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
        let json: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        match json["event"].as_str() {
            Some("check") if json.get("plugin").is_some() => check = Some(json),
            Some("state") => state = Some(json),
            _ => {}
        }
        if check.is_some() && state.is_some() {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let check = check.expect("a check line");
    assert_eq!(check["task"], "fine", "{check}");
    assert_eq!(check["plugin"], "command", "{check}");
    assert_eq!(check["status"], "healthy", "{check}");
    let state = state.expect("a state line");
    assert_eq!(
        (&state["from"], &state["to"]),
        (&"unknown".into(), &"healthy".into())
    );
    for line in [&check, &state] {
        let message = line["message"].as_str().unwrap();
        assert!(
            !message.contains("fine"),
            "the message does not repeat the task: {line}"
        );
        assert!(
            line.get("span").is_none() && line.get("spans").is_none(),
            "{line}"
        );
    }
}
