//! Exec least privilege, with real programs run by the hostile guest: a grant's argument
//! pattern is enforced before anything runs, the program's resource limits hold, and nothing it
//! starts outlives the call, not even a grandchild in a session of its own whose parent exited.

use std::path::Path;
use std::time::{Duration, Instant};

use hmrt::capabilities::Capability;
use hmrt::sandbox::{CheckOutcome, Status};

use crate::support::{Workspace, check_once_timed};

/// Runs the hostile guest once: `program` with `args`, under `grants` (TOML) and `timeout`;
/// returns the outcome and how long the call took.
async fn run_hostile_timed(
    ws: &Workspace,
    grants: &str,
    program: &str,
    args: &[&str],
    timeout: &str,
) -> (CheckOutcome, Duration) {
    ws.plugin("hostile", hmrt_test_artifacts::HOSTILE);
    let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    let config = ws.load(&format!(
        r#"
[[task]]
name = "exec"
check = "hostile"
timeout = "{timeout}"
config = {{ mode = "exec", program = "{program}", args = [{}] }}
grants = {{ exec = {grants} }}
"#,
        args.join(", ")
    ));
    let (outcome, _, took) = check_once_timed(&config).await;
    (outcome, took)
}

/// [`run_hostile_timed`] without its time.
async fn run_hostile(
    ws: &Workspace,
    grants: &str,
    program: &str,
    args: &[&str],
    timeout: &str,
) -> CheckOutcome {
    run_hostile_timed(ws, grants, program, args, timeout)
        .await
        .0
}

/// Writes an executable `/bin/sh` script into the workspace (the test's own; hmrt never runs a
/// shell) and returns its path.
fn script(ws: &Workspace, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = ws.path().join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.display().to_string()
}

/// Live processes whose command line is exactly `/bin/sleep ARG` (a zombie has none).
fn sleeping(arg: &str) -> Vec<u32> {
    let wanted: Vec<u8> = ["/bin/sleep", arg]
        .iter()
        .flat_map(|a| a.bytes().chain([0]))
        .collect();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted)
        })
        .collect()
}

/// Polls until no `/bin/sleep ARG` runs, or fails after a few seconds.
async fn gone(arg: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sleeping(arg).is_empty() {
        assert!(
            Instant::now() < deadline,
            "`/bin/sleep {arg}` (pids {:?}) outlived its call",
            sleeping(arg)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `sleep` duration unique to this test process and `n`, so the test finds exactly its own.
fn marker(n: u32) -> String {
    format!("700.{}{n}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_outside_the_pattern_are_denied_and_nothing_runs() {
    let ws = Workspace::new();
    let allowed = ws.path().join("allowed").display().to_string();
    let pwned = ws.path().join("pwned").display().to_string();
    let grants = format!(r#"[{{ program = "/usr/bin/touch", args = ["{allowed}"] }}]"#);

    // Inside the pattern: it runs.
    let outcome = run_hostile(&ws, &grants, "/usr/bin/touch", &[&allowed], "5s").await;
    assert_eq!(outcome.status(), Status::Healthy, "{}", outcome.message());
    assert!(Path::new(&allowed).exists());

    // Another argument, or one more: denied, named, and the program never starts.
    for args in [vec![pwned.as_str()], vec![allowed.as_str(), pwned.as_str()]] {
        let outcome = run_hostile(&ws, &grants, "/usr/bin/touch", &args, "5s").await;
        let message = outcome.message();
        assert_eq!(outcome.status(), Status::Unhealthy, "{message}");
        assert!(message.contains("denied"), "{message}");
        assert!(
            message.contains(r#"exec program "/usr/bin/touch" with arguments ["#),
            "{message}"
        );
        assert!(message.contains("pwned"), "{message}");
        assert_eq!(outcome.report.denials.len(), 1);
        assert_eq!(outcome.report.denials[0].capability, Capability::Exec);
        assert!(!Path::new(&pwned).exists(), "touch ran for {args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_with_exec_is_denied_by_a_pattern_that_allows_find_by_name() {
    let ws = Workspace::new();
    let dir = ws.path().display().to_string();
    let pwned = ws.path().join("pwned").display().to_string();
    let grants = format!(
        r#"[{{ program = "/usr/bin/find", args = ["{dir}", "-name", "*"] }}, "/usr/bin/touch"]"#
    );
    let ok = run_hostile(&ws, &grants, "/usr/bin/find", &[&dir, "-name", "x"], "5s").await;
    assert_eq!(ok.status(), Status::Healthy, "{}", ok.message());

    let touch = "/usr/bin/touch";
    let hostile = [dir.as_str(), "-name", "x", "-exec", touch, &pwned, ";"];
    let outcome = run_hostile(&ws, &grants, "/usr/bin/find", &hostile, "5s").await;
    let message = outcome.message();
    assert_eq!(outcome.status(), Status::Unhealthy, "{message}");
    assert!(message.contains("denied"), "{message}");
    assert!(message.contains(r#""-exec""#), "{message}");
    // `-exec` would have run touch, which the task may run directly, but not through find.
    assert!(!Path::new(&pwned).exists(), "find ran its -exec");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setsid_grandchild_does_not_outlive_a_timed_out_call() {
    let ws = Workspace::new();
    let (orphan, own) = (marker(1), marker(2));
    // The orphan: a new session and group, its parent (the subshell) gone at once.
    let escape = script(
        &ws,
        "escape.sh",
        &format!("(/usr/bin/setsid /bin/sleep {orphan} &)\nexec /bin/sleep {own}"),
    );
    let grants = format!(r#"[{{ program = "{escape}", args = [] }}]"#);
    let (outcome, took) = run_hostile_timed(&ws, &grants, &escape, &[], "1s").await;
    let message = outcome.message();
    assert_eq!(outcome.status(), Status::Unhealthy, "{message}");
    assert!(message.contains("timed out"), "{message}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
    gone(&own).await;
    gone(&orphan).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_program_leaves_behind_is_killed_when_it_exits() {
    let ws = Workspace::new();
    let orphan = marker(3);
    // It exits at once, leaving an orphan in a session of its own that holds its stdout open.
    let leave = script(
        &ws,
        "leave.sh",
        &format!("(/usr/bin/setsid /bin/sleep {orphan} &)\necho started"),
    );
    let grants = format!(r#"[{{ program = "{leave}", args = [] }}]"#);
    let (outcome, took) = run_hostile_timed(&ws, &grants, &leave, &[], "10s").await;
    let message = outcome.message();
    assert_eq!(outcome.status(), Status::Healthy, "{message}");
    assert!(message.contains("started"), "{message}");
    // The orphan's open stdout no longer stretches the call to its timeout.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    gone(&orphan).await;
}

/// A row of `/proc/self/limits` (soft and hard) as the hostile guest's message quotes it.
fn limit(message: &str, name: &str) -> (String, String) {
    let line = message
        .split("\\n")
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name:?} in {message}"));
    let fields: Vec<&str> = line[name.len()..].split_whitespace().collect();
    (fields[0].to_string(), fields[1].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_program_runs_under_resource_limits() {
    let ws = Workspace::new();
    let grants = r#"[{ program = "/bin/cat", args = ["/proc/self/limits"] }]"#;
    let outcome = run_hostile(&ws, grants, "/bin/cat", &["/proc/self/limits"], "2s").await;
    let message = outcome.message();
    assert_eq!(outcome.status(), Status::Healthy, "{message}");
    let (cpu, cpu_hard) = limit(&message, "Max cpu time");
    let cpu: u64 = cpu.parse().expect("a CPU limit");
    assert!((1..=2).contains(&cpu), "CPU {cpu} s for a 2 s call");
    assert_eq!(cpu_hard.parse::<u64>().ok(), Some(cpu + 1));
    let same = |v: &str| (v.to_string(), v.to_string());
    assert_eq!(limit(&message, "Max file size"), same("16777216"));
    assert_eq!(limit(&message, "Max address space"), same("1073741824"));
    assert_eq!(limit(&message, "Max processes"), same("64"));
    assert_eq!(limit(&message, "Max core file size"), same("0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_past_the_file_size_limit_stops_the_program() {
    let ws = Workspace::new();
    let big = ws.path().join("big").display().to_string();
    let of = format!("of={big}");
    let args = ["if=/dev/zero", of.as_str(), "bs=1048576", "count=32"];
    let grants = format!(
        r#"[{{ program = "/bin/dd", args = [{}] }}]"#,
        args.map(|a| format!("{a:?}")).join(", ")
    );
    let outcome = run_hostile(&ws, &grants, "/bin/dd", &args, "10s").await;
    let message = outcome.message();
    // SIGXFSZ ends dd: no exit code.
    assert_eq!(outcome.status(), Status::Unhealthy, "{message}");
    assert!(message.contains("exit None"), "{message}");
    let size = std::fs::metadata(&big).expect("dd wrote something").len();
    assert_eq!(size, 16 << 20, "dd wrote {size} bytes");
}
