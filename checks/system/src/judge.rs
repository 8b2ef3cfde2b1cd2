//! Judging measured numbers against `warn`/`critical` thresholds, and keeping samples between
//! runs in the task's `scratch` store. Shared by the `system` and `process` checks (the process
//! check includes this file with `#[path]`: two small guests, one copy of the rules).

use hmrt_plugin::scratch;
use hmrt_plugin::types::{Metric, Status};
use serde_json::{Map, Value};

/// How bad a status is, for "the worst one wins": unknown (could not tell) ranks above healthy
/// but below what was measured to be wrong.
pub fn rank(status: Status) -> u8 {
    match status {
        Status::Healthy => 0,
        Status::Unknown => 1,
        Status::Degraded => 2,
        Status::Unhealthy => 3,
    }
}

/// `warn` (degraded) and `critical` (unhealthy) thresholds on one number; higher is worse, and
/// a value above a threshold crosses it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Degraded above this.
    pub warn: Option<f64>,
    /// Unhealthy above this.
    pub critical: Option<f64>,
}

/// Thresholds found at a key, with the whole table they were read from (for extra keys).
pub type Found = Option<(Limits, Map<String, Value>)>;

/// How a threshold's value is read: a plain number, or a number with a unit.
pub type ReadNumber = fn(&str, &Value) -> Result<f64, String>;

impl Limits {
    /// Reads `{ warn = .., critical = .. }` at `key` from `table` (plus `extra` keys the caller
    /// reads itself); none when `key` is absent.
    pub fn read(
        table: &Map<String, Value>,
        key: &str,
        read: ReadNumber,
        extra: &[&str],
    ) -> Result<Found, String> {
        let Some(value) = table.get(key) else {
            return Ok(None);
        };
        let inner = as_table(key, value)?;
        let mut known = vec!["warn", "critical"];
        known.extend_from_slice(extra);
        only_keys(key, inner, &known)?;
        let get = |k: &str| {
            inner
                .get(k)
                .map(|v| read(&format!("{key}.{k}"), v))
                .transpose()
        };
        let limits = Limits {
            warn: get("warn")?,
            critical: get("critical")?,
        };
        if let (Some(w), Some(c)) = (limits.warn, limits.critical)
            && w > c
        {
            return Err(format!(
                "`{key}.warn` ({w}) must not be above `{key}.critical` ({c})"
            ));
        }
        Ok(Some((limits, inner.clone())))
    }

    /// The status `value` earns, and the threshold it crossed.
    pub fn judge(&self, value: f64) -> (Status, Option<(&'static str, f64)>) {
        match (self.critical, self.warn) {
            (Some(c), _) if value > c => (Status::Unhealthy, Some(("critical", c))),
            (_, Some(w)) if value > w => (Status::Degraded, Some(("warn", w))),
            _ => (Status::Healthy, None),
        }
    }
}

/// `value` as a table, or an error naming `key`.
pub fn as_table<'a>(key: &str, value: &'a Value) -> Result<&'a Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("`{key}` must be a table such as {{ warn = 80, critical = 90 }}"))
}

/// Rejects keys of `table` (at `key`) outside `known`, naming the first.
pub fn only_keys(key: &str, table: &Map<String, Value>, known: &[&str]) -> Result<(), String> {
    let mut unknown: Vec<&String> = table
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .collect();
    unknown.sort();
    match unknown.first() {
        Some(k) => Err(format!(
            "unknown key `{key}.{k}` (known keys: {})",
            known.join(", ")
        )),
        None => Ok(()),
    }
}

/// A plain non-negative number.
pub fn number(key: &str, value: &Value) -> Result<f64, String> {
    value
        .as_f64()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("`{key}` must be a number of at least 0, not {value}"))
}

/// A percentage, 0 to 100.
pub fn percent(key: &str, value: &Value) -> Result<f64, String> {
    let v = number(key, value)?;
    if v > 100.0 {
        return Err(format!("`{key}` is a percentage (0 to 100), not {v}"));
    }
    Ok(v)
}

/// A byte size: a number of bytes, or a string such as `"200MiB"`, `"10MB"`, `"512KiB"`.
pub fn bytes(key: &str, value: &Value) -> Result<f64, String> {
    match value {
        Value::String(s) => parse_size(s)
            .map(|b| b as f64)
            .map_err(|e| format!("`{key}`: {e}")),
        other => number(key, other),
    }
}

/// A size as tasks.toml writes memory limits (the config's own grammar).
pub use hmrt_plugin::parse_size;

/// `bytes` for messages: `512 B`, `1.5 KiB`, `200.0 MiB`, `3.2 GiB`.
pub fn show_bytes(bytes: f64) -> String {
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

/// What one run found: the worst status so far, what crossed a threshold, what was measured,
/// side notes, and the metrics.
#[derive(Debug)]
pub struct Report {
    pub status: Status,
    pub crossed: Vec<String>,
    pub measured: Vec<String>,
    pub notes: Vec<String>,
    pub metrics: Vec<Metric>,
}

impl Default for Report {
    fn default() -> Self {
        Report {
            status: Status::Healthy,
            crossed: Vec::new(),
            measured: Vec::new(),
            notes: Vec::new(),
            metrics: Vec::new(),
        }
    }
}

impl Report {
    /// Raises the status to `status` if that is worse.
    pub fn worsen(&mut self, status: Status) {
        if rank(status) > rank(self.status) {
            self.status = status;
        }
    }

    /// Adds a metric.
    pub fn metric(&mut self, name: &str, value: f64, unit: &str) {
        self.metrics.push(Metric {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
        });
    }

    /// Judges `value` (shown as `shown`, such as `memory 93.1% used`) against `limits`.
    pub fn judge(&mut self, shown: String, value: f64, limits: &Limits, show: fn(f64) -> String) {
        let (status, crossed) = limits.judge(value);
        self.worsen(status);
        match crossed {
            Some((level, at)) => self
                .crossed
                .push(format!("{shown} (above {level} {})", show(at))),
            None => self.measured.push(shown),
        }
    }

    /// A part that could not be measured: `status` and why.
    pub fn problem(&mut self, status: Status, what: String) {
        self.worsen(status);
        self.crossed.push(what);
    }

    /// The one-line message: what crossed (or could not be read) first, then what was fine,
    /// then the notes.
    pub fn message(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if !self.crossed.is_empty() {
            parts.push(self.crossed.join("; "));
        }
        if !self.measured.is_empty() {
            let fine = self.measured.join(", ");
            parts.push(if self.crossed.is_empty() {
                fine
            } else {
                format!("ok: {fine}")
            });
        }
        parts.extend(self.notes.iter().cloned());
        parts.join("; ")
    }
}

/// The status a failed host call earns: a denial, an invalid call or a timeout means the
/// check could not tell (unknown); a failure is the thing itself not answering (unhealthy).
pub fn error_status(e: &hmrt_plugin::types::HostError) -> Status {
    use hmrt_plugin::types::HostError;
    match e {
        HostError::Failed(_) => Status::Unhealthy,
        HostError::Denied(_) | HostError::Invalid(_) | HostError::Timeout => Status::Unknown,
    }
}

/// The JSON kept in `scratch` under `key`, if any and readable.
pub fn recall(key: &str) -> Option<Value> {
    scratch::get(key).and_then(|bytes| serde_json::from_slice(&bytes).ok())
}

/// Keeps `value` in `scratch` under `key`; the error says why it could not.
pub fn keep(key: &str, value: &Value) -> Result<(), String> {
    let bytes = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    scratch::set(key, &bytes).map_err(|e| e.describe())
}

/// Milliseconds since the Unix epoch, by the guest's wall clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `text` as a metric-name part: lowercase letters, digits and `_` (`/` is `root`,
/// `/var/lib` is `var_lib`, `eth0.100` is `eth0_100`).
pub fn metric_part(text: &str) -> String {
    let cleaned: String = text
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "root".to_owned()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_judge_and_read() {
        let table: Map<String, Value> =
            serde_json::from_str(r#"{"m": {"warn": 80, "critical": 90}, "bad": {"warn": 95, "critical": 90}, "x": {"wrn": 1}, "p": {"warn": 101}}"#).unwrap();
        let (l, _) = Limits::read(&table, "m", percent, &[]).unwrap().unwrap();
        assert_eq!(l.judge(79.0).0, Status::Healthy);
        assert_eq!(l.judge(85.0).0, Status::Degraded);
        assert_eq!(l.judge(90.5), (Status::Unhealthy, Some(("critical", 90.0))));
        assert!(
            Limits::read(&table, "bad", percent, &[])
                .unwrap_err()
                .contains("`bad.warn`")
        );
        assert!(
            Limits::read(&table, "x", percent, &[])
                .unwrap_err()
                .contains("`x.wrn`")
        );
        assert!(
            Limits::read(&table, "p", percent, &[])
                .unwrap_err()
                .contains("`p.warn`")
        );
        assert_eq!(Limits::read(&table, "none", percent, &[]), Ok(None));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("200MiB"), Ok(200 << 20));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size(" 512 kib "), Ok(512 << 10));
        assert_eq!(parse_size("42"), Ok(42));
        for bad in ["", "MiB", "5 XB", "-1MiB", "1.5GiB", "99999999999999TiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(bytes("k", &serde_json::json!("1KiB")), Ok(1024.0));
        assert_eq!(bytes("k", &serde_json::json!(7)), Ok(7.0));
        assert_eq!(show_bytes(512.0), "512 B");
        assert_eq!(show_bytes(1536.0), "1.5 KiB");
        assert_eq!(show_bytes(200.0 * 1048576.0), "200.0 MiB");
    }

    #[test]
    fn worst_status_and_message() {
        let mut r = Report::default();
        r.judge(
            "memory 50.0% used".into(),
            50.0,
            &Limits {
                warn: Some(80.0),
                critical: Some(90.0),
            },
            |v| format!("{v}%"),
        );
        assert_eq!(r.status, Status::Healthy);
        r.judge(
            "disk / 95.0% used".into(),
            95.0,
            &Limits {
                warn: Some(80.0),
                critical: Some(90.0),
            },
            |v| format!("{v}%"),
        );
        r.problem(Status::Unknown, "load: denied".into());
        assert_eq!(r.status, Status::Unhealthy);
        assert_eq!(
            r.message(),
            "disk / 95.0% used (above critical 90%); load: denied; ok: memory 50.0% used"
        );
        assert_eq!(metric_part("/"), "root");
        assert_eq!(metric_part("/var/lib"), "var_lib");
        assert_eq!(metric_part("eth0.100"), "eth0_100");
    }
}
