//! hmrt's built-in `file-age` check: a heartbeat file that a service touches while it works
//! must have been modified within `max_age` (else unhealthy), and within `warn_age` if set
//! (else degraded). A missing file is unhealthy.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmrt_plugin::check::{CheckResult, Guest};
use hmrt_plugin::files;
use hmrt_plugin::types::{Capability, HostError, Metric, Need, PluginInfo, Status, Task};
use hmrt_plugin::{Config, show_duration};

/// The check's settings, read from a task's config.
#[derive(Debug, PartialEq)]
struct Settings {
    path: String,
    max_age: Duration,
    warn_age: Option<Duration>,
}

impl Settings {
    fn from_json(json: &str) -> Result<Settings, String> {
        let c = Config::parse(json, &["path", "max_age", "warn_age"])?;
        let path = c.required_string("path")?;
        if !path.starts_with('/') || path.split('/').any(|part| part == "..") {
            return Err(format!(
                "`path` must be an absolute path without `..`, not {path:?}"
            ));
        }
        let max_age = c
            .duration("max_age")?
            .ok_or("missing required config key `max_age` (such as \"2m\")")?;
        let warn_age = c.duration("warn_age")?;
        if warn_age.is_some_and(|warn| warn >= max_age) {
            return Err("`warn_age` must be shorter than `max_age`".to_owned());
        }
        Ok(Settings {
            path: path.to_owned(),
            max_age,
            warn_age,
        })
    }
}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// An age as people read it: whole seconds from 10 s on, milliseconds below.
fn show_age(age: Duration) -> String {
    if age >= Duration::from_secs(10) {
        show_duration(Duration::from_secs(age.as_secs()))
    } else {
        show_duration(Duration::from_millis(
            u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
        ))
    }
}

/// Health from the file's age.
fn judge(s: &Settings, age: Duration) -> (Status, String) {
    let ago = format!("{} was modified {} ago", s.path, show_age(age));
    if age > s.max_age {
        let limit = show_duration(s.max_age);
        (
            Status::Unhealthy,
            format!("{ago}, longer than max_age {limit}"),
        )
    } else if let Some(warn) = s.warn_age.filter(|warn| age > *warn) {
        let limit = show_duration(warn);
        (
            Status::Degraded,
            format!("{ago}, longer than warn_age {limit}"),
        )
    } else {
        (Status::Healthy, ago)
    }
}

fn result(status: Status, message: String, metrics: Vec<Metric>) -> CheckResult {
    CheckResult {
        status,
        message,
        metrics,
    }
}

struct FileAge;

impl Guest for FileAge {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "file-age".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary:
                "A heartbeat file must have been modified within max_age (warn_age: degraded)."
                    .to_owned(),
            capabilities: vec![Capability::Files],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        let s = Settings::from_json(&task.config)?;
        Ok(vec![Need::Files(s.path)])
    }

    fn check(task: Task) -> CheckResult {
        let s = match Settings::from_json(&task.config) {
            Ok(s) => s,
            Err(e) => return result(Status::Unknown, format!("invalid config: {e}"), vec![]),
        };
        let stat = match files::stat(&s.path) {
            Ok(stat) => stat,
            Err(HostError::Failed(m)) if m.ends_with("does not exist") => {
                let message = format!("{} is missing: it does not exist", s.path);
                return result(Status::Unhealthy, message, vec![]);
            }
            // Not granted or malformed: the check cannot tell (validate says why).
            Err(e @ (HostError::Denied(_) | HostError::Invalid(_))) => {
                let message = format!("cannot stat {}: {}", s.path, e.describe());
                return result(Status::Unknown, message, vec![]);
            }
            Err(e) => {
                let message = format!("cannot stat {}: {}", s.path, e.describe());
                return result(Status::Unhealthy, message, vec![]);
            }
        };
        // A file dated in the future (a clock step) counts as just touched.
        let age_ms = now_ms().saturating_sub(stat.modified_ms).max(0);
        let age = Duration::from_millis(u64::try_from(age_ms).unwrap_or(0));
        let (status, message) = judge(&s, age);
        let metric = Metric {
            name: "age_s".to_owned(),
            value: age_ms as f64 / 1000.0,
            unit: "s".to_owned(),
        };
        result(status, message, vec![metric])
    }
}

hmrt_plugin::export_check!(FileAge);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config() {
        let s =
            Settings::from_json(r#"{"path": "/run/app/beat", "max_age": "2m", "warn_age": "1m"}"#)
                .unwrap();
        assert_eq!(s.max_age, Duration::from_secs(120));
        assert_eq!(s.warn_age, Some(Duration::from_secs(60)));
        for (json, key) in [
            (r#"{"max_age": "2m"}"#, "`path`"),
            (r#"{"path": "beat", "max_age": "2m"}"#, "`path`"),
            (r#"{"path": "/a/../b", "max_age": "2m"}"#, "`path`"),
            (r#"{"path": "/a"}"#, "`max_age`"),
            (r#"{"path": "/a", "max_age": "soon"}"#, "`max_age`"),
            (
                r#"{"path": "/a", "max_age": "1m", "warn_age": "2m"}"#,
                "`warn_age`",
            ),
            (r#"{"path": "/a", "max_age": "1m", "age": "2m"}"#, "`age`"),
        ] {
            let err = Settings::from_json(json).unwrap_err();
            assert!(err.contains(key), "{json}: {err}");
        }
    }

    #[test]
    fn bands() {
        let s =
            Settings::from_json(r#"{"path": "/b", "max_age": "2m", "warn_age": "1m"}"#).unwrap();
        assert_eq!(judge(&s, Duration::from_secs(5)).0, Status::Healthy);
        assert_eq!(judge(&s, Duration::from_secs(90)).0, Status::Degraded);
        let (status, message) = judge(&s, Duration::from_secs(300));
        assert_eq!(status, Status::Unhealthy);
        assert_eq!(message, "/b was modified 5m ago, longer than max_age 2m");
    }
}
