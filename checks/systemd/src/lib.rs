//! hmrt's built-in `systemd` check: a unit is active, and (optionally) not in a crash loop.
//!
//! ```toml
//! check = "systemd"
//! config = { unit = "nginx.service", crash_loop = { restarts = 3, within = "10m" } }
//! grants = { systemd = ["nginx.service"] }
//! ```
//!
//! `active` is healthy; `activating`, `reloading`, `deactivating` (on the way) degraded;
//! `failed` and `inactive` unhealthy, with the sub-state and systemd's `Result` in the message.
//! With `crash_loop`, the unit's `NRestarts` is kept between runs in the task's scratch store,
//! and more than `restarts` restarts within `within` is unhealthy even while the unit is
//! active at the moment of the check.

mod history;

use std::time::{Duration, SystemTime};

use hmrt_plugin::check::{CheckResult, Guest};
use hmrt_plugin::systemd::{self, UnitStatus};
use hmrt_plugin::types::{Capability, HostError, Metric, Need, PluginInfo, Status, Task};
use hmrt_plugin::{Config, scratch, show_duration};
use serde_json::Value;

use history::History;

/// Unit types systemd has (a unit name ends in one).
const UNIT_TYPES: &[&str] = &[
    "service",
    "socket",
    "target",
    "timer",
    "mount",
    "automount",
    "path",
    "slice",
    "scope",
    "swap",
    "device",
];

/// More than `restarts` restarts within `within` is a crash loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CrashLoop {
    restarts: u32,
    within: Duration,
}

/// The check's settings, read from a task's config.
#[derive(Debug, PartialEq, Eq)]
struct Settings {
    unit: String,
    crash_loop: Option<CrashLoop>,
}

impl Settings {
    fn from_json(json: &str) -> Result<Settings, String> {
        let c = Config::parse(json, &["unit", "crash_loop"])?;
        let unit = unit_name(c.required_string("unit")?)?;
        let crash_loop = c.value("crash_loop").map(crash_loop).transpose()?;
        Ok(Settings { unit, crash_loop })
    }
}

/// `text` if it is a whole unit name, such as `nginx.service`.
fn unit_name(text: &str) -> Result<String, String> {
    let typed = text
        .rsplit_once('.')
        .is_some_and(|(stem, kind)| !stem.is_empty() && UNIT_TYPES.contains(&kind));
    let chars = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '\\' | '@'));
    if typed && chars && text.len() <= 255 {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`unit` must be a whole unit name with its type, such as \"nginx.service\", not {text:?}"
        ))
    }
}

/// The `crash_loop` table: `{ restarts = 3, within = "10m" }`.
fn crash_loop(value: &Value) -> Result<CrashLoop, String> {
    let Value::Object(table) = value else {
        return Err(
            "`crash_loop` must be a table such as { restarts = 3, within = \"10m\" }".into(),
        );
    };
    let json = Value::Object(table.clone()).to_string();
    let c =
        Config::parse(&json, &["restarts", "within"]).map_err(|e| format!("`crash_loop`: {e}"))?;
    let restarts = match c.value("restarts") {
        None => return Err("`crash_loop.restarts` is missing".into()),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("`crash_loop.restarts` must be a whole number >= 0, not {v}"))?,
    };
    let within = c
        .duration("within")
        .map_err(|e| format!("`crash_loop.{}", e.trim_start_matches('`')))?
        .ok_or("`crash_loop.within` is missing")?;
    if within.is_zero() {
        return Err("`crash_loop.within` must be longer than 0s".into());
    }
    Ok(CrashLoop { restarts, within })
}

/// What a unit's state says, before any crash loop.
fn verdict(unit: &UnitStatus) -> (Status, String) {
    let state = format!(
        "{} is {} ({})",
        unit.name, unit.active_state, unit.sub_state
    );
    let result = if unit.result.is_empty() || unit.result == "success" {
        String::new()
    } else {
        format!(", result {}", unit.result)
    };
    match unit.active_state.as_str() {
        "active" => (Status::Healthy, state),
        "failed" | "inactive" => (Status::Unhealthy, format!("{state}{result}")),
        _ => (Status::Degraded, format!("{state}{result}")),
    }
}

/// The check's metrics.
fn metrics(unit: &UnitStatus, in_window: Option<u32>) -> Vec<Metric> {
    let metric = |name: &str, value: f64| Metric {
        name: name.to_owned(),
        value,
        unit: String::new(),
    };
    let mut out = vec![metric("n_restarts", f64::from(unit.n_restarts))];
    if let Some(pid) = unit.main_pid {
        out.push(metric("main_pid", f64::from(pid)));
    }
    if let Some(n) = in_window {
        out.push(metric("restarts_in_window", f64::from(n)));
    }
    out
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Judges `unit` with the crash-loop rule: the restarts within the window, or why the history
/// could not be kept.
fn judge_crash_loop(unit: &UnitStatus, rule: CrashLoop) -> (Result<u32, String>, Option<String>) {
    let mut history = History::decode(scratch::get(history::KEY).as_deref());
    let restarts = history.observe(now_ms(), unit.n_restarts, rule.within);
    let kept = scratch::set(history::KEY, &history.encode())
        .map_err(|e| format!("crash-loop history cannot be kept: {}", e.describe()));
    let looping = (restarts > rule.restarts).then(|| {
        format!(
            "{} restarted {restarts} times within {} (more than {}): crash loop",
            unit.name,
            show_duration(rule.within),
            rule.restarts
        )
    });
    (kept.map(|()| restarts), looping)
}

fn result(status: Status, message: String, metrics: Vec<Metric>) -> CheckResult {
    CheckResult {
        status,
        message,
        metrics,
    }
}

/// A capability error as a result: a denial or a malformed call means the check could not
/// tell; systemd failing or not answering means the unit cannot be counted on.
fn host_error(unit: &str, error: &HostError) -> CheckResult {
    let status = match error {
        HostError::Denied(_) | HostError::Invalid(_) => Status::Unknown,
        HostError::Timeout | HostError::Failed(_) => Status::Unhealthy,
    };
    result(
        status,
        format!("systemd {unit}: {}", error.describe()),
        vec![],
    )
}

struct Systemd;

impl Guest for Systemd {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "systemd".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "Checks that a systemd unit is active and not restarting in a crash loop."
                .to_owned(),
            capabilities: vec![Capability::Systemd],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        let s = Settings::from_json(&task.config)?;
        Ok(vec![Need::Systemd(s.unit)])
    }

    fn check(task: Task) -> CheckResult {
        let s = match Settings::from_json(&task.config) {
            Ok(s) => s,
            Err(e) => return result(Status::Unknown, format!("invalid config: {e}"), vec![]),
        };
        let unit = match systemd::unit(&s.unit) {
            Ok(unit) => unit,
            Err(e) => return host_error(&s.unit, &e),
        };
        let (status, message) = verdict(&unit);
        let Some(rule) = s.crash_loop else {
            return result(status, message, metrics(&unit, None));
        };
        let (counted, looping) = judge_crash_loop(&unit, rule);
        let in_window = counted.as_ref().ok().copied();
        let metrics = metrics(&unit, in_window);
        match (status, looping, counted) {
            (Status::Unhealthy, _, _) => result(status, message, metrics),
            (_, Some(looping), _) => {
                result(Status::Unhealthy, format!("{looping}; {message}"), metrics)
            }
            // The unit looks fine now, but the rule asked for could not be applied.
            (_, None, Err(why)) => result(Status::Unknown, format!("{message}; {why}"), metrics),
            (_, None, Ok(_)) => result(status, message, metrics),
        }
    }
}

hmrt_plugin::export_check!(Systemd);

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(active: &str, sub: &str, result: &str) -> UnitStatus {
        UnitStatus {
            name: "nginx.service".into(),
            active_state: active.into(),
            sub_state: sub.into(),
            result: result.into(),
            n_restarts: 2,
            main_pid: None,
        }
    }

    #[test]
    fn config() {
        let s = Settings::from_json(
            r#"{"unit": "nginx.service", "crash_loop": {"restarts": 3, "within": "10m"}}"#,
        )
        .unwrap();
        assert_eq!(
            s,
            Settings {
                unit: "nginx.service".into(),
                crash_loop: Some(CrashLoop {
                    restarts: 3,
                    within: Duration::from_secs(600)
                })
            }
        );
        assert_eq!(
            Settings::from_json(r#"{"unit": "getty@tty1.service"}"#)
                .unwrap()
                .crash_loop,
            None
        );
        for (json, key) in [
            (r#"{}"#, "`unit`"),
            (r#"{"unit": "nginx"}"#, "`unit`"),
            (r#"{"unit": "nginx.service", "units": 1}"#, "`units`"),
            (r#"{"unit": "a.service", "crash_loop": 3}"#, "`crash_loop`"),
            (
                r#"{"unit": "a.service", "crash_loop": {"within": "1m"}}"#,
                "`crash_loop.restarts`",
            ),
            (
                r#"{"unit": "a.service", "crash_loop": {"restarts": -1, "within": "1m"}}"#,
                "`crash_loop.restarts`",
            ),
            (
                r#"{"unit": "a.service", "crash_loop": {"restarts": 3}}"#,
                "`crash_loop.within`",
            ),
            (
                r#"{"unit": "a.service", "crash_loop": {"restarts": 3, "within": "soon"}}"#,
                "`crash_loop.within`",
            ),
            (
                r#"{"unit": "a.service", "crash_loop": {"restarts": 3, "within": "1m", "x": 1}}"#,
                "`x`",
            ),
        ] {
            let err = Settings::from_json(json).unwrap_err();
            assert!(err.contains(key), "{json}: {err}");
        }
    }

    #[test]
    fn verdicts() {
        let cases = [
            (
                unit("active", "running", "success"),
                Status::Healthy,
                "nginx.service is active (running)",
            ),
            (
                unit("activating", "start", "success"),
                Status::Degraded,
                "nginx.service is activating (start)",
            ),
            (
                unit("reloading", "reload", ""),
                Status::Degraded,
                "nginx.service is reloading (reload)",
            ),
            (
                unit("failed", "failed", "exit-code"),
                Status::Unhealthy,
                "nginx.service is failed (failed), result exit-code",
            ),
            (
                unit("inactive", "dead", "success"),
                Status::Unhealthy,
                "nginx.service is inactive (dead)",
            ),
        ];
        for (unit, status, message) in cases {
            assert_eq!(verdict(&unit), (status, message.to_owned()));
        }
    }

    #[test]
    fn metrics_name_what_was_measured() {
        let mut u = unit("active", "running", "success");
        u.main_pid = Some(77);
        let m = metrics(&u, Some(1));
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["n_restarts", "main_pid", "restarts_in_window"]);
        assert_eq!(m[1].value, 77.0);
        assert_eq!(metrics(&unit("failed", "failed", ""), None).len(), 1);
    }
}
