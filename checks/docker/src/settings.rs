//! The `docker` check's config: which container, and the limits it is held to.

use hmrt_plugin::Config;
use serde_json::{Map, Value};

/// The config keys the check knows.
pub const KEYS: &[&str] = &["container", "max_restarts", "memory", "cpu"];

/// `warn` (degraded) and `critical` (unhealthy) thresholds on one number; a value above a
/// threshold crosses it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Degraded above this.
    pub warn: Option<f64>,
    /// Unhealthy above this.
    pub critical: Option<f64>,
}

impl Limits {
    /// Whether any threshold is set.
    pub fn any(&self) -> bool {
        self.warn.is_some() || self.critical.is_some()
    }
}

/// The check's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The container, by name or full id, as granted.
    pub container: String,
    /// Unhealthy when Docker restarted it more often than this.
    pub max_restarts: Option<u32>,
    /// Memory in use, in bytes.
    pub memory: Limits,
    /// CPU use, in percent of one CPU.
    pub cpu: Limits,
}

impl Settings {
    /// Reads the task's config JSON; errors name the key.
    pub fn from_json(json: &str) -> Result<Settings, String> {
        let c = Config::parse(json, KEYS)?;
        let container = c.required_string("container")?.to_owned();
        let max_restarts =
            match c.value("max_restarts") {
                None => None,
                Some(v) => Some(v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(
                    || format!("`max_restarts` must be a whole number of at least 0, not {v}"),
                )?),
            };
        Ok(Settings {
            container,
            max_restarts,
            memory: limits(c.value("memory"), "memory", bytes)?,
            cpu: limits(c.value("cpu"), "cpu", percent)?,
        })
    }
}

/// Reads `{ warn = .., critical = .. }` at `key` with `read` for each value.
fn limits(
    value: Option<&Value>,
    key: &str,
    read: fn(&str, &Value) -> Result<f64, String>,
) -> Result<Limits, String> {
    let Some(value) = value else {
        return Ok(Limits::default());
    };
    let Value::Object(table) = value else {
        return Err(format!(
            "`{key}` must be a table such as {{ warn = .., critical = .. }}, not {value}"
        ));
    };
    only_keys(key, table)?;
    let get = |k: &str| {
        table
            .get(k)
            .map(|v| read(&format!("{key}.{k}"), v))
            .transpose()
    };
    let limits = Limits {
        warn: get("warn")?,
        critical: get("critical")?,
    };
    if !limits.any() {
        return Err(format!("`{key}` needs `warn`, `critical` or both"));
    }
    if let (Some(w), Some(c)) = (limits.warn, limits.critical)
        && w > c
    {
        return Err(format!("`{key}.warn` is above `{key}.critical`"));
    }
    Ok(limits)
}

fn only_keys(key: &str, table: &Map<String, Value>) -> Result<(), String> {
    let mut unknown: Vec<&String> = table
        .keys()
        .filter(|k| !matches!(k.as_str(), "warn" | "critical"))
        .collect();
    unknown.sort();
    match unknown.first() {
        Some(k) => Err(format!("unknown key `{key}.{k}` (known: warn, critical)")),
        None => Ok(()),
    }
}

/// CPU use in percent of one CPU: a number, or a string such as `"80%"` (above 100 on more
/// than one CPU).
fn percent(key: &str, value: &Value) -> Result<f64, String> {
    let number = match value {
        Value::String(s) => s
            .trim()
            .strip_suffix('%')
            .and_then(|n| n.trim().parse().ok()),
        other => other.as_f64(),
    };
    number
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("`{key}` must be a percentage such as 80 or \"80%\", not {value}"))
}

/// A byte size: a number of bytes, or a string such as `"200MiB"`.
fn bytes(key: &str, value: &Value) -> Result<f64, String> {
    match value {
        Value::String(s) => parse_size(s)
            .map(|b| b as f64)
            .map_err(|e| format!("`{key}`: {e}")),
        other => other
            .as_u64()
            .map(|b| b as f64)
            .ok_or_else(|| format!("`{key}` must be a size such as \"512MiB\", not {other}")),
    }
}

/// A size as tasks.toml writes memory limits (the config's own grammar).
pub use hmrt_plugin::parse_size;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config() {
        let s = Settings::from_json(
            r#"{"container": "app", "max_restarts": 3,
                "memory": {"warn": "256MiB", "critical": "1GiB"},
                "cpu": {"warn": "80%", "critical": 150}}"#,
        )
        .unwrap();
        assert_eq!(s.container, "app");
        assert_eq!(s.max_restarts, Some(3));
        assert_eq!(s.memory.warn, Some((256u64 << 20) as f64));
        assert_eq!(s.memory.critical, Some((1u64 << 30) as f64));
        assert_eq!((s.cpu.warn, s.cpu.critical), (Some(80.0), Some(150.0)));
        let bare = Settings::from_json(r#"{"container": "app"}"#).unwrap();
        assert_eq!((bare.max_restarts, bare.memory.any()), (None, false));
    }

    #[test]
    fn errors_name_the_key() {
        for (json, key) in [
            (r#"{}"#, "`container`"),
            (r#"{"container": ""}"#, "`container`"),
            (r#"{"container": "a", "max_restart": 1}"#, "`max_restart`"),
            (
                r#"{"container": "a", "max_restarts": -1}"#,
                "`max_restarts`",
            ),
            (
                r#"{"container": "a", "max_restarts": 1.5}"#,
                "`max_restarts`",
            ),
            (r#"{"container": "a", "memory": "1GiB"}"#, "`memory`"),
            (r#"{"container": "a", "memory": {}}"#, "`memory`"),
            (
                r#"{"container": "a", "memory": {"warn": "1 XB"}}"#,
                "`memory.warn`",
            ),
            (
                r#"{"container": "a", "memory": {"warm": 1}}"#,
                "`memory.warm`",
            ),
            (
                r#"{"container": "a", "cpu": {"warn": "lots"}}"#,
                "`cpu.warn`",
            ),
            (r#"{"container": "a", "cpu": {"warn": -5}}"#, "`cpu.warn`"),
            (
                r#"{"container": "a", "cpu": {"warn": 90, "critical": 80}}"#,
                "`cpu.warn`",
            ),
        ] {
            let err = Settings::from_json(json).unwrap_err();
            assert!(err.contains(key), "{json}: {err}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("200MiB"), Ok(200 << 20));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("512"), Ok(512));
        for bad in ["", "MiB", "5 XB", "-1MiB", "1.5GiB", "99999999999999TiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
