//! The hostile cases of `tests/hostile/` (see its README): one directory per case, each an
//! adversary's move, its task, and what must hold. Every `run = "check"` case is a task of ONE
//! `hmrt check --json` process, so the cases also run next to each other (a flood beside a
//! forger beside a spinner) as a daemon's tasks do; every `run = "validate"` case is an
//! `hmrt validate` of its own. All cases are judged first, then one panic lists every failure,
//! so a regression shows everything it broke at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::Workspace;
use crate::support::recording::RecordingServer;
use crate::support::supervisord::{self, Program, Supervisord};

/// hmrt's own debug lines (each check's message among them, so the log is attacked too),
/// everything else from warn.
const LOG: &str = "hmrt=debug,warn";
/// In hmrt's environment; a program a check runs must never see it.
const SECRET: (&str, &str) = ("HMRT_HOSTILE_SECRET", "hostile-secret-value");
/// The supervisord program `{sleeper}` names; supervisord starts only if a check case uses it.
const SLEEPER: &str = "hostile-sleeper";
/// How long one hmrt process may run before the test kills it and fails.
const PROCESS_LIMIT: Duration = Duration::from_secs(180);
/// What in hmrt's output means it panicked (with `RUST_BACKTRACE=1` a panic prints a
/// backtrace; without, Rust's hint names the variable).
const PANIC_SIGNS: &[&str] = &["stack backtrace", "panicked at runtime/", "RUST_BACKTRACE"];
/// The failure list's key for what is not one case's.
const WHOLE_RUN: &str = "(whole run)";

#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Run {
    Check,
    Validate,
}

/// What a case expects; every field is optional. See tests/hostile/README.md.
#[derive(Default, Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Expect {
    status: Option<String>,
    message_has: Vec<String>,
    message_lacks: Vec<String>,
    message_len_at_most: Option<usize>,
    metrics_lack: Vec<String>,
    denied_at_most: Option<usize>,
    denied_count: Option<u64>,
    output_lacks: Vec<String>,
    /// `[text, n]`: the output holds no run of `text` repeated `n` times.
    output_lacks_run: Option<(String, usize)>,
    server_saw_lacks: Vec<String>,
    validate_has: Vec<String>,
    exit_code: Option<i32>,
    file_absent: Vec<PathBuf>,
    process_absent: Vec<String>,
}

/// The keys of case.toml outside its tables (`[task]` and config tables are taken as text).
#[derive(serde::Deserialize)]
struct Header {
    about: String,
    breach: String,
    run: Run,
    #[serde(default)]
    expect: Expect,
}

struct Case {
    /// `directory [breach]`, as failures name it.
    label: String,
    name: String,
    run: Run,
    /// The `[task]` table's body (and `[task.*]` sub-tables), verbatim.
    task: String,
    /// Other tables (`[runtime]`, `[supervisor]`): the top of the case's own tasks.toml.
    config: String,
    expect: Expect,
}

/// What one hmrt process did.
struct Ran {
    code: Option<i32>,
    output: String,
    stdout: String,
    /// The last VmHWM read while it ran, in KiB.
    peak_kib: u64,
    wall: Duration,
}

/// Failures by case label, each with its reasons.
type Failures = BTreeMap<String, Vec<String>>;

#[test]
fn every_hostile_case_holds() {
    let started = Instant::now();
    let server = RecordingServer::start();
    let traces = tempfile::tempdir().expect("temp dir for traces");
    let cases = load_cases(&placeholders(&server, traces.path()));
    let checks: Vec<&Case> = cases.iter().filter(|c| c.run == Run::Check).collect();
    let sleeper = checks
        .iter()
        .any(|c| c.task.contains(SLEEPER))
        .then(|| Supervisord::start(&[Program::new(SLEEPER, &["sleep", "3600"]).startsecs(0)]));
    let idle = run_idle();
    let mut failures = Failures::new();
    let (ran, memory) = run_checks(&checks, sleeper.as_ref(), &server, &mut failures);
    let mut outputs = vec![idle.output.clone(), ran.output.clone()];
    for case in cases.iter().filter(|c| c.run == Run::Validate) {
        let validated = run_validate(case);
        judge(case, None, &validated, &server.seen(), &mut failures);
        outputs.push(validated.output);
    }
    for output in &outputs {
        if let Some(found) = panicked(output) {
            failures.entry(WHOLE_RUN.into()).or_default().push(found);
        }
    }
    let (peak, idle_kib, limits) = (ran.peak_kib, idle.peak_kib, memory / 1024);
    let ceiling = 2 * idle_kib + limits;
    let (all, in_check, took) = (cases.len(), checks.len(), started.elapsed());
    eprintln!(
        "measured: {all} cases ({in_check} in one hmrt check) in {took:?}, the check {:?}; peak \
         RSS {peak} KiB (idle run {idle_kib} KiB, memory limits {limits} KiB, ceiling {ceiling} KiB)",
        ran.wall
    );
    if peak >= ceiling {
        let said = format!("peak RSS {peak} KiB is not below 2 x idle + memory limits, {ceiling}");
        failures.entry(WHOLE_RUN.into()).or_default().push(said);
    }
    let listed: Vec<String> = failures
        .iter()
        .map(|(label, why)| format!("{label}:\n  {}", why.join("\n  ")))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} hostile cases (or the whole run) failed:\n{}",
        failures.len(),
        cases.len(),
        listed.join("\n")
    );
}

/// The placeholders a case may write, with what they stand for.
fn placeholders(server: &RecordingServer, traces: &Path) -> Vec<(&'static str, String)> {
    // Only written into configs that `hmrt validate` reads; nothing listens there.
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], supervisord::free_port()));
    vec![
        ("{server}", server.addr.to_string()),
        ("{other}", server.other.to_string()),
        ("{port}", server.addr.port().to_string()),
        ("{origin}", format!("http://{}", server.addr)),
        ("{listen}", listen.to_string()),
        ("{listen_port}", listen.port().to_string()),
        ("{tmp}", path_str(traces).to_owned()),
        ("{sleeper}", SLEEPER.to_owned()),
    ]
}

/// Every case directory, sorted by name. A case file that does not read is the test's own bug,
/// so it panics at once.
fn load_cases(places: &[(&str, String)]) -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/hostile");
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.expect("dir entry"))
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().into_string().expect("a UTF-8 name"))
        .collect();
    names.sort();
    let cases: Vec<Case> = names
        .into_iter()
        .map(|n| load_case(&root, n, places))
        .collect();
    assert!(cases.len() >= 25, "only {} hostile cases", cases.len());
    cases
}

fn load_case(root: &Path, name: String, places: &[(&str, String)]) -> Case {
    let mut text = std::fs::read_to_string(root.join(&name).join("case.toml")).expect("case.toml");
    for (place, value) in places {
        text = text.replace(place, value);
    }
    let header: Header = toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (task, config) = split(&text);
    let well_formed = !header.about.trim().is_empty()
        && !task.trim().is_empty()
        && !task.lines().any(|l| l.trim_start().starts_with("name"))
        && (header.run == Run::Validate || config.trim().is_empty());
    assert!(
        well_formed,
        "{name}: a case has `about` and a [task] without `name` (the directory's), and only a \
         validate case has top-level tables (check cases share one tasks.toml)"
    );
    Case {
        label: format!("{name} [{}]", header.breach),
        name,
        run: header.run,
        task,
        config,
        expect: header.expect,
    }
}

/// case.toml cut at its table headers: the `[task]` body with its `[task.*]` sub-tables, and
/// every other table but `[expect]` (config for the top of the case's own tasks.toml).
fn split(text: &str) -> (String, String) {
    let (mut task, mut config) = (String::new(), String::new());
    let mut into: Option<&mut String> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            let name = trimmed.trim_matches(|c| c == '[' || c == ']' || c == ' ');
            into = match name.split('.').next().unwrap_or("") {
                "expect" => None,
                "task" => Some(&mut task),
                _ => Some(&mut config),
            };
            if name == "task" {
                continue;
            }
        }
        if let Some(into) = into.as_deref_mut() {
            into.push_str(line);
            into.push('\n');
        }
    }
    (task, config)
}

fn task_text(case: &Case) -> String {
    format!("[[task]]\nname = \"{}\"\n{}\n", case.name, case.task)
}

/// The one `hmrt check --json` of every check case; judges each case on its row. Returns the
/// run and the sum of the tasks' `memory` limits as hmrt reads them (defaults included).
fn run_checks(
    cases: &[&Case],
    sleeper: Option<&Supervisord>,
    server: &RecordingServer,
    failures: &mut Failures,
) -> (Ran, u64) {
    let ws = hostile_workspace();
    let mut text = String::new();
    if let Some(url) = sleeper.map(Supervisord::serverurl) {
        text.push_str(&format!("[supervisor]\nserverurl = \"{url}\"\n\n"));
    }
    text.extend(cases.iter().map(|c| task_text(c)));
    let file = ws.config(&text);
    let memory = match hmrt_config::Config::load(&file, std::env::var_os("PATH").as_deref()) {
        Ok(config) => config.tasks.iter().map(|t| t.memory).sum(),
        Err(e) => panic!("the check cases' tasks.toml does not load:\n{e}"),
    };
    let ran = run_hmrt(&["check", "--json", path_str(&file)]);
    let rows: Option<Vec<Value>> = serde_json::from_str(&ran.stdout).ok();
    if rows.is_none() {
        let (code, output) = (ran.code, &ran.output);
        let said = format!("hmrt check printed no report (exit {code:?}):\n{output}");
        failures.entry(WHOLE_RUN.into()).or_default().push(said);
    }
    let seen = server.seen();
    for case in cases {
        let row = rows
            .iter()
            .flatten()
            .find(|r| r["task"] == case.name.as_str());
        judge(case, row, &ran, &seen, failures);
    }
    (ran, memory)
}

fn hostile_workspace() -> Workspace {
    let ws = Workspace::new();
    ws.plugin("hostile", hmrt_test_artifacts::HOSTILE);
    ws
}

/// `hmrt check` of one healthy hostile task: the baseline the peak RSS is held to.
fn run_idle() -> Ran {
    let ws = hostile_workspace();
    let file =
        ws.config("[[task]]\nname = \"idle\"\ncheck = \"hostile\"\nconfig = { mode = \"ok\" }\n");
    let ran = run_hmrt(&["check", "--json", path_str(&file)]);
    assert_eq!(ran.code, Some(0), "the idle run failed:\n{}", ran.output);
    ran
}

fn run_validate(case: &Case) -> Ran {
    let ws = hostile_workspace();
    let file = ws.config(&format!("{}\n{}", case.config, task_text(case)));
    run_hmrt(&["validate", path_str(&file)])
}

/// Runs hmrt to its end, reading its peak RSS (VmHWM) every ~20 ms while it runs.
fn run_hmrt(args: &[&str]) -> Ran {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hmrt"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env("HMRT_LOG", LOG)
        .env(SECRET.0, SECRET.1)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hmrt");
    // Drained on threads of their own: a full pipe would stall hmrt.
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let mut peak_kib = 0;
    let status = loop {
        if let Some(kib) = vm_hwm(child.id()) {
            peak_kib = kib;
        }
        if let Some(status) = child.try_wait().expect("wait for hmrt") {
            break status;
        }
        if started.elapsed() > PROCESS_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hmrt {args:?} still ran after {PROCESS_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().expect("stdout reader");
    Ran {
        code: status.code(),
        output: format!("{stdout}{}", stderr.join().expect("stderr reader")),
        stdout,
        peak_kib,
        wall: started.elapsed(),
    }
}

fn drain(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The process's peak resident set so far, in KiB (`None` once it has exited).
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Records under the case's label every way it failed: on its row (check) or its output
/// (validate), and on what the whole run left behind.
fn judge(case: &Case, row: Option<&Value>, ran: &Ran, seen: &str, failures: &mut Failures) {
    let (e, output) = (&case.expect, ran.output.as_str());
    let mut why = Vec::new();
    match (case.run, row) {
        (Run::Check, Some(row)) => judge_row(e, row, &mut why),
        (Run::Check, None) => why.push("no row in hmrt check's report".to_owned()),
        (Run::Validate, _) => {
            has(&mut why, "the output", output, &e.validate_has, true);
            let exit = format!("hmrt validate exited {:?}; it said:\n{output}", ran.code);
            let ok = e.exit_code.is_none_or(|c| ran.code == Some(c));
            must(&mut why, ok, exit);
        }
    }
    has(&mut why, "the output", output, &e.output_lacks, false);
    if let Some((text, n)) = &e.output_lacks_run {
        let run = format!("the output holds {text:?} {n} times in a row");
        must(&mut why, !output.contains(&text.repeat(*n)), run);
    }
    let record = "the server's record";
    has(&mut why, record, seen, &e.server_saw_lacks, false);
    for file in &e.file_absent {
        let ran = format!("{} exists: a program ran", file.display());
        must(&mut why, !file.exists(), ran);
    }
    for marker in &e.process_absent {
        // A killed tree may take a moment to be reaped; one that escaped stays far longer.
        let gone = supervisord::wait_until(Duration::from_secs(5), || !running_with(marker));
        let said = format!("a process with argument {marker:?} outlived hmrt");
        must(&mut why, gone, said);
    }
    if !why.is_empty() {
        failures.entry(case.label.clone()).or_default().extend(why);
    }
}

fn judge_row(e: &Expect, row: &Value, why: &mut Vec<String>) {
    let message = row["message"].as_str().unwrap_or_default();
    let before = why.len();
    let ok = e
        .status
        .as_ref()
        .is_none_or(|s| row["status"] == s.as_str());
    must(why, ok, format!("status {}", row["status"]));
    has(why, "the message", message, &e.message_has, true);
    has(why, "the message", message, &e.message_lacks, false);
    let ok = e.message_len_at_most.is_none_or(|max| message.len() <= max);
    must(why, ok, format!("a message of {} bytes", message.len()));
    for metric in row["metrics"].as_array().into_iter().flatten() {
        let [name, unit] = [&metric["name"], &metric["unit"]].map(|v| v.as_str().unwrap_or(""));
        let what = format!("metric {metric}");
        has(why, &what, &format!("{name}{unit}"), &e.metrics_lack, false);
    }
    let denied = row["denied"].as_array().map_or(&[][..], |d| d.as_slice());
    let count: u64 = denied.iter().filter_map(|d| d["count"].as_u64()).sum();
    let ok = e.denied_at_most.is_none_or(|max| denied.len() <= max);
    must(why, ok, format!("{} denied entries", denied.len()));
    let ok = e.denied_count.is_none_or(|want| count == want);
    must(why, ok, format!("denied calls counted {count}"));
    if why.len() > before {
        let shown: String = message.chars().take(400).collect();
        why.push(format!("(the message: {shown:?})"));
    }
}

/// Each of `wanted` that `text` (named `what`) holds when it should not, or lacks when it
/// should.
fn has(why: &mut Vec<String>, what: &str, text: &str, wanted: &[String], should: bool) {
    let verb = if should { "lacks" } else { "holds" };
    for s in wanted {
        let ok = text.contains(s.as_str()) == should;
        must(why, ok, format!("{what} {verb} {s:?}"));
    }
}

fn must(why: &mut Vec<String>, ok: bool, what: String) {
    if !ok {
        why.push(what);
    }
}

/// Where `output` shows that hmrt panicked, with some context.
fn panicked(output: &str) -> Option<String> {
    let (sign, at) = PANIC_SIGNS
        .iter()
        .find_map(|s| Some((s, output.find(s)?)))?;
    let from = output[..at]
        .char_indices()
        .rev()
        .nth(300)
        .map_or(0, |(i, _)| i);
    let context: String = output[from..].chars().take(1200).collect();
    Some(format!("hmrt panicked ({sign:?}):\n{context}"))
}

/// Whether a live process has `marker` as one of its arguments.
fn running_with(marker: &str) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.filter_map(|e| e.ok()).any(|e| {
        let pid = e.file_name().to_string_lossy().parse::<u32>();
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        pid.is_ok_and(supervisord::process_alive)
            && cmdline
                .split(|b| *b == 0)
                .any(|arg| arg == marker.as_bytes())
    })
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}
