//! The `process` check's config: whose process, and the thresholds on its figures.

use std::time::Duration;

use hmrt_plugin::Config;
use hmrt_plugin::process::Target;
use serde_json::{Map, Value};

use crate::judge::{Limits, bytes, number};

const KEYS: &[&str] = &[
    "supervisor",
    "docker",
    "systemd",
    "rss",
    "cpu",
    "fds",
    "threads",
    "children",
    "restarts",
];

/// The window restarts are counted in when `restarts.within` is not set.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(3600);

/// What to watch and how to judge it.
#[derive(Debug, Clone)]
pub struct Settings {
    pub target: Target,
    pub rss: Limits,
    /// Percent of one CPU (a busy multi-threaded process can pass 100).
    pub cpu: Limits,
    pub fds: Limits,
    pub threads: Limits,
    pub children: Limits,
    /// Restarts (a new pid or start time between runs) within `window`.
    pub restarts: Limits,
    pub window: Duration,
}

impl Settings {
    /// Reads the config; `program` is the task's supervisord program, the target when none of
    /// `supervisor`, `docker`, `systemd` is set.
    pub fn from_json(json: &str, program: Option<&str>) -> Result<Settings, String> {
        let c = Config::parse(json, KEYS)?;
        let top: Map<String, Value> = KEYS
            .iter()
            .filter_map(|k| c.value(k).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        let target = target(&c, program)?;
        let limits = |key: &str, how| -> Result<Limits, String> {
            Ok(Limits::read(&top, key, how, &[])?
                .map(|(l, _)| l)
                .unwrap_or_default())
        };
        let mut s = Settings {
            target,
            rss: limits("rss", bytes)?,
            cpu: limits("cpu", number)?,
            fds: limits("fds", number)?,
            threads: limits("threads", number)?,
            children: limits("children", number)?,
            restarts: Limits::default(),
            window: DEFAULT_WINDOW,
        };
        if let Some((l, table)) = Limits::read(&top, "restarts", number, &["within"])? {
            s.restarts = l;
            if let Some(within) = table.get("within") {
                let text = within
                    .as_str()
                    .ok_or("`restarts.within` must be a duration string such as \"10m\"")?;
                s.window = hmrt_plugin::parse_duration(text)
                    .map_err(|e| format!("`restarts.within`: {e}"))?;
                if s.window.is_zero() {
                    return Err("`restarts.within` must be longer than 0".into());
                }
            }
        }
        Ok(s)
    }

    /// The `process` grant a run needs: `supervisor:<program>`, `docker:<container>` or
    /// `systemd:<unit>`.
    pub fn grant(&self) -> String {
        match &self.target {
            Target::Supervisor(p) => format!("supervisor:{p}"),
            Target::Docker(c) => format!("docker:{c}"),
            Target::Systemd(u) => format!("systemd:{u}"),
        }
    }
}

fn target(c: &Config, program: Option<&str>) -> Result<Target, String> {
    let mut chosen = Vec::new();
    for key in ["supervisor", "docker", "systemd"] {
        if let Some(name) = c.string(key)? {
            if name.trim().is_empty() || name.contains(char::is_whitespace) {
                return Err(format!("`{key}` must name one {key} service, not {name:?}"));
            }
            chosen.push((key, name.to_owned()));
        }
    }
    match (chosen.as_slice(), program) {
        ([], Some(p)) => Ok(Target::Supervisor(p.to_owned())),
        ([], None) => Err(
            "say whose process: set one of `supervisor`, `docker`, `systemd` (or the task's `program`)"
                .into(),
        ),
        ([(key, name)], _) => Ok(match *key {
            "supervisor" => Target::Supervisor(name.clone()),
            "docker" => Target::Docker(name.clone()),
            _ => Target::Systemd(name.clone()),
        }),
        _ => Err(format!(
            "set exactly one of `supervisor`, `docker`, `systemd`, not {}",
            chosen
                .iter()
                .map(|(k, _)| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(" and ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_limits() {
        let s = Settings::from_json(
            r#"{"supervisor": "web", "rss": {"warn": "200MiB", "critical": "500MiB"},
                "cpu": {"warn": 80, "critical": 150}, "restarts": {"within": "10m", "critical": 3}}"#,
            None,
        )
        .unwrap();
        assert_eq!(s.grant(), "supervisor:web");
        assert_eq!(s.rss.critical, Some(500.0 * 1048576.0));
        assert_eq!(s.cpu.critical, Some(150.0));
        assert_eq!(s.window, Duration::from_secs(600));
        assert_eq!(s.restarts.critical, Some(3.0));
        let s = Settings::from_json(r#"{"docker": "app"}"#, Some("web")).unwrap();
        assert_eq!(s.grant(), "docker:app");
        assert_eq!(s.window, DEFAULT_WINDOW);
        let s = Settings::from_json("{}", Some("web")).unwrap();
        assert_eq!(s.grant(), "supervisor:web");
        let s = Settings::from_json(r#"{"systemd": "nginx.service"}"#, None).unwrap();
        assert_eq!(s.grant(), "systemd:nginx.service");
    }

    #[test]
    fn errors_name_the_key() {
        for (json, key) in [
            (r#"{}"#, "say whose process"),
            (
                r#"{"supervisor": "a", "docker": "b"}"#,
                "`supervisor` and `docker`",
            ),
            (r#"{"supervisor": ""}"#, "`supervisor`"),
            (r#"{"supervisor": 1}"#, "`supervisor`"),
            (
                r#"{"supervisor": "a", "rss": {"critical": "5 parsecs"}}"#,
                "`rss.critical`",
            ),
            (
                r#"{"supervisor": "a", "rss": {"warn": "2GiB", "critical": "1GiB"}}"#,
                "`rss.warn`",
            ),
            (r#"{"supervisor": "a", "fds": {"max": 1}}"#, "`fds.max`"),
            (
                r#"{"supervisor": "a", "restarts": {"within": 10}}"#,
                "`restarts.within`",
            ),
            (
                r#"{"supervisor": "a", "restarts": {"within": "0s"}}"#,
                "`restarts.within`",
            ),
            (r#"{"supervisor": "a", "memory": {}}"#, "`memory`"),
        ] {
            let err = Settings::from_json(json, None).unwrap_err();
            assert!(err.contains(key), "{json}: {err}");
        }
    }
}
