//! hmrt's built-in `process` check: the figures of a service's main process (a supervisord
//! program, a Docker container or a systemd unit): resident memory, CPU, open files, threads,
//! children and restarts, each judged against `warn` (degraded) and `critical` (unhealthy)
//! thresholds; the worst one decides. The last sample is kept in the task's `scratch` store:
//! CPU percent is the CPU time spent between two runs over the time between them, and a
//! restart is a new process (another pid or start time) seen between runs.

// The threshold rules are the `system` check's, one file for both guests.
#[path = "../../system/src/judge.rs"]
#[allow(dead_code)]
mod judge;
mod settings;

use hmrt_plugin::check::{CheckResult, Guest};
use hmrt_plugin::process::{self, ProcessStats};
use hmrt_plugin::show_duration;
use hmrt_plugin::types::{Capability, Need, PluginInfo, Status, Task};
use serde_json::json;
use std::time::Duration;

use judge::{Report, error_status, keep, now_ms, recall, show_bytes};
use settings::Settings;

/// Restart times kept at most.
const RESTARTS_KEPT: usize = 64;
/// How far two readings of a process's start time may differ and still be one process (the
/// start is computed from two clocks, each read at its own instant).
const SAME_START_MS: u64 = 2_000;

/// The previous sample, and what changed since.
struct Since {
    /// CPU percent of one CPU since the previous sample (or since the new process started).
    cpu_percent: Option<f64>,
    /// Restart times within the window, this run's included.
    restarts: Vec<u64>,
}

/// Compares `now` with the kept sample, keeps `now`, and counts restarts in the window.
fn since_last(s: &Settings, st: &ProcessStats, r: &mut Report) -> Since {
    let at = now_ms();
    let started = at.saturating_sub(st.uptime_ms);
    let last = recall("last");
    let mut restarts: Vec<u64> = recall("restarts")
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let mut cpu_percent = None;
    if let Some(last) = &last {
        let field = |k: &str| last.get(k).and_then(serde_json::Value::as_u64);
        let same = field("pid") == Some(u64::from(st.pid))
            && field("started").is_some_and(|s| s.abs_diff(started) <= SAME_START_MS);
        if same {
            let spent = field("cpu_ms").and_then(|c| st.cpu_ms.checked_sub(c));
            let elapsed = field("at")
                .and_then(|a| at.checked_sub(a))
                .filter(|e| *e > 0);
            if let (Some(spent), Some(elapsed)) = (spent, elapsed) {
                cpu_percent = Some(spent as f64 / elapsed as f64 * 100.0);
            }
        } else {
            restarts.push(at);
            if st.uptime_ms > 0 {
                cpu_percent = Some(st.cpu_ms as f64 / st.uptime_ms as f64 * 100.0);
            }
        }
    }
    let window = u64::try_from(s.window.as_millis()).unwrap_or(u64::MAX);
    restarts.retain(|t| at.saturating_sub(*t) <= window);
    let excess = restarts.len().saturating_sub(RESTARTS_KEPT);
    restarts.drain(..excess);
    let sample = json!({ "pid": st.pid, "started": started, "cpu_ms": st.cpu_ms, "at": at });
    let kept = keep("last", &sample).and_then(|()| keep("restarts", &json!(restarts)));
    if let Err(e) = kept {
        r.notes
            .push(format!("cannot keep the sample between runs ({e})"));
    }
    if last.is_none() {
        r.notes
            .push("first sample recorded, cpu and restarts from the next run".into());
    }
    Since {
        cpu_percent,
        restarts,
    }
}

fn count(v: f64) -> String {
    format!("{v:.0}")
}

fn pct(v: f64) -> String {
    format!("{v:.1}%")
}

/// Judges the figures of one sample.
fn judge(s: &Settings, st: &ProcessStats, r: &mut Report) {
    let since = since_last(s, st, r);
    let rss = st.rss_bytes as f64;
    r.metric("rss_bytes", rss, "bytes");
    r.judge(format!("rss {}", show_bytes(rss)), rss, &s.rss, show_bytes);
    if let Some(cpu) = since.cpu_percent {
        r.metric("cpu_percent", cpu, "%");
        r.judge(format!("cpu {}", pct(cpu)), cpu, &s.cpu, pct);
    }
    let fds = f64::from(st.open_fds);
    r.metric("open_fds", fds, "");
    r.judge(format!("{} open fds", st.open_fds), fds, &s.fds, count);
    let threads = f64::from(st.threads);
    r.metric("threads", threads, "");
    r.judge(
        format!("{} threads", st.threads),
        threads,
        &s.threads,
        count,
    );
    let children = f64::from(st.children);
    r.metric("children", children, "");
    r.judge(
        format!("{} children", st.children),
        children,
        &s.children,
        count,
    );
    r.metric("uptime_s", st.uptime_ms as f64 / 1000.0, "s");
    let restarts = since.restarts.len() as f64;
    r.metric("restarts", restarts, "");
    let within = show_duration(s.window);
    r.judge(
        format!("{} restarts within {within}", since.restarts.len()),
        restarts,
        &s.restarts,
        count,
    );
    let up = show_duration(Duration::from_secs(st.uptime_ms / 1000));
    r.notes.insert(0, format!("pid {}, up {up}", st.pid));
}

struct Process;

impl Guest for Process {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "process".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "Judges a service's main process (supervisord program, container or systemd unit): RSS, CPU, open files, threads, children and restarts.".to_owned(),
            capabilities: vec![Capability::Process],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        let s = Settings::from_json(&task.config, task.program.as_deref())?;
        Ok(vec![Need::Process(s.grant())])
    }

    fn check(task: Task) -> CheckResult {
        let s = match Settings::from_json(&task.config, task.program.as_deref()) {
            Ok(s) => s,
            Err(e) => {
                return CheckResult {
                    status: Status::Unknown,
                    message: format!("invalid config: {e}"),
                    metrics: vec![],
                };
            }
        };
        let mut r = Report::default();
        match process::stats(&s.target) {
            Ok(st) => judge(&s, &st, &mut r),
            Err(e) => r.problem(error_status(&e), e.describe()),
        }
        CheckResult {
            status: r.status,
            message: format!("{}: {}", s.grant(), r.message()),
            metrics: r.metrics,
        }
    }
}

hmrt_plugin::export_check!(Process);
