//! The verdict on what Docker said: pure, so every case is tested without an engine.

use hmrt_plugin::docker::{Container, ContainerStats};
use hmrt_plugin::one_line;
use hmrt_plugin::types::{Metric, Status};

use crate::settings::{Limits, Settings};

/// Longest piece of Docker's text put into a message.
const SHOWN: usize = 200;

/// How bad a status is, for "the worst one wins".
fn rank(status: Status) -> u8 {
    match status {
        Status::Healthy => 0,
        Status::Unknown => 1,
        Status::Degraded => 2,
        Status::Unhealthy => 3,
    }
}

/// What one run found: the worst status, what is wrong (first in the message), what was
/// measured, and the metrics.
#[derive(Debug)]
pub struct Verdict {
    /// The worst status so far.
    pub status: Status,
    problems: Vec<String>,
    notes: Vec<String>,
    /// The metrics measured.
    pub metrics: Vec<Metric>,
}

impl Verdict {
    fn new() -> Verdict {
        Verdict {
            status: Status::Healthy,
            problems: Vec::new(),
            notes: Vec::new(),
            metrics: Vec::new(),
        }
    }

    fn problem(&mut self, status: Status, text: String) {
        if rank(status) > rank(self.status) {
            self.status = status;
        }
        self.problems.push(text);
    }

    fn metric(&mut self, name: &str, value: f64, unit: &str) {
        self.metrics.push(Metric {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
        });
    }

    /// The one-line message: the problems, then what was measured.
    pub fn message(&self, container: &str) -> String {
        let mut parts = self.problems.clone();
        parts.extend(self.notes.iter().cloned());
        format!("{container}: {}", parts.join(", "))
    }
}

/// Judges the container's state, health and restart count.
pub fn state(settings: &Settings, c: &Container) -> Verdict {
    let mut v = Verdict::new();
    let state = one_line(&c.state, SHOWN);
    let exit = c
        .exit_code
        .map(|code| format!(" (exit code {code})"))
        .unwrap_or_default();
    match state.as_str() {
        "running" => match c.health.as_deref() {
            None => v.notes.push("running".to_owned()),
            Some("healthy") => v.notes.push("running, healthy".to_owned()),
            Some("starting") => v.problem(
                Status::Degraded,
                "running, health check starting".to_owned(),
            ),
            Some(other) => v.problem(
                Status::Unhealthy,
                format!("running but {}", one_line(other, SHOWN)),
            ),
        },
        "restarting" => v.problem(Status::Unhealthy, format!("restarting{exit}")),
        "exited" | "dead" => v.problem(Status::Unhealthy, format!("{state}{exit}")),
        "created" => v.problem(Status::Unhealthy, "created, never started".to_owned()),
        other => v.problem(Status::Unhealthy, format!("{other}{exit}")),
    }
    let restarts = c.restart_count;
    v.metric("restart_count", f64::from(restarts), "");
    match settings.max_restarts {
        Some(max) if restarts > max => v.problem(
            Status::Unhealthy,
            format!("restarted {restarts} times (more than {max})"),
        ),
        _ if restarts > 0 => v.notes.push(format!("restarted {restarts} times")),
        _ => {}
    }
    v
}

/// Adds what the stats sample says, judged against the memory and CPU limits.
pub fn stats(v: &mut Verdict, settings: &Settings, s: &ContainerStats) {
    let memory = s.memory_bytes as f64;
    v.metric("memory_bytes", memory, "bytes");
    v.metric("cpu_percent", s.cpu_percent, "%");
    let memory_text = format!("memory {}", show_bytes(memory));
    let cpu_text = format!("cpu {:.1}%", s.cpu_percent);
    judge(v, settings.memory, memory, memory_text, show_bytes);
    judge(v, settings.cpu, s.cpu_percent, cpu_text, |p| {
        format!("{p:.1}%")
    });
}

/// Judges `value` against `limits`: a problem above a threshold, else a note.
fn judge(v: &mut Verdict, limits: Limits, value: f64, text: String, show: fn(f64) -> String) {
    match (limits.critical, limits.warn) {
        (Some(c), _) if value > c => {
            v.problem(Status::Unhealthy, format!("{text} above {}", show(c)));
        }
        (_, Some(w)) if value > w => {
            v.problem(Status::Degraded, format!("{text} above {}", show(w)));
        }
        _ => v.notes.push(text),
    }
}

/// A stats sample that could not be taken: only a problem when a limit needs it.
pub fn no_stats(v: &mut Verdict, settings: &Settings, why: String) {
    if settings.memory.any() || settings.cpu.any() {
        v.problem(Status::Unknown, format!("no stats: {why}"));
    }
}

/// `bytes` for messages: `512 B`, `1.5 KiB`, `200.0 MiB`, `3.2 GiB`.
fn show_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: &str) -> Settings {
        Settings::from_json(json).unwrap()
    }

    fn container(state: &str, health: Option<&str>, restarts: u32, exit: Option<i64>) -> Container {
        Container {
            id: "0123".into(),
            name: "app".into(),
            state: state.into(),
            health: health.map(str::to_owned),
            restart_count: restarts,
            exit_code: exit,
            pid: None,
            started_at: String::new(),
        }
    }

    #[test]
    fn states() {
        let s = settings(r#"{"container": "app"}"#);
        let cases = [
            (
                container("running", None, 0, None),
                Status::Healthy,
                "app: running",
            ),
            (
                container("running", Some("healthy"), 0, None),
                Status::Healthy,
                "app: running, healthy",
            ),
            (
                container("running", Some("starting"), 0, None),
                Status::Degraded,
                "app: running, health check starting",
            ),
            (
                container("running", Some("unhealthy"), 0, None),
                Status::Unhealthy,
                "app: running but unhealthy",
            ),
            (
                container("exited", None, 0, Some(137)),
                Status::Unhealthy,
                "app: exited (exit code 137)",
            ),
            (
                container("restarting", None, 4, Some(1)),
                Status::Unhealthy,
                "app: restarting (exit code 1), restarted 4 times",
            ),
            (
                container("created", None, 0, None),
                Status::Unhealthy,
                "app: created, never started",
            ),
            (
                container("paused", None, 0, None),
                Status::Unhealthy,
                "app: paused",
            ),
        ];
        for (c, status, message) in cases {
            let v = state(&s, &c);
            assert_eq!((v.status, v.message("app").as_str()), (status, message));
        }
    }

    #[test]
    fn too_many_restarts() {
        let s = settings(r#"{"container": "app", "max_restarts": 2}"#);
        let v = state(&s, &container("running", None, 2, None));
        assert_eq!(v.status, Status::Healthy);
        let v = state(&s, &container("running", None, 3, None));
        assert_eq!(v.status, Status::Unhealthy);
        assert_eq!(
            v.message("app"),
            "app: restarted 3 times (more than 2), running"
        );
        assert_eq!(v.metrics[0].name, "restart_count");
        assert_eq!(v.metrics[0].value, 3.0);
    }

    #[test]
    fn memory_and_cpu_limits() {
        let s = settings(
            r#"{"container": "app", "memory": {"warn": "1MiB", "critical": "2MiB"},
                "cpu": {"warn": 50}}"#,
        );
        let sample = |mib: u64, cpu: f64| ContainerStats {
            cpu_percent: cpu,
            memory_bytes: mib << 20,
            memory_limit_bytes: 1 << 30,
        };
        let run = |sample: ContainerStats| {
            let mut v = state(&s, &container("running", None, 0, None));
            stats(&mut v, &s, &sample);
            (v.status, v.message("app"))
        };
        assert_eq!(
            run(sample(0, 1.0)),
            (Status::Healthy, "app: running, memory 0 B, cpu 1.0%".into())
        );
        assert_eq!(run(sample(3, 1.0)).0, Status::Unhealthy);
        assert_eq!(
            run(sample(1, 1.0)).0,
            Status::Healthy,
            "at the threshold is not above it"
        );
        let (status, message) = run(ContainerStats {
            cpu_percent: 75.0,
            memory_bytes: (1 << 20) + 1,
            memory_limit_bytes: 0,
        });
        assert_eq!(status, Status::Degraded);
        assert_eq!(
            message,
            "app: memory 1.0 MiB above 1.0 MiB, cpu 75.0% above 50.0%, running"
        );
        let mut v = state(&s, &container("running", None, 0, None));
        no_stats(&mut v, &s, "failed: boom".into());
        assert_eq!(v.status, Status::Unknown);
        let bare = settings(r#"{"container": "app"}"#);
        let mut v = state(&bare, &container("running", None, 0, None));
        no_stats(&mut v, &bare, "failed: boom".into());
        assert_eq!(v.status, Status::Healthy);
    }
}
