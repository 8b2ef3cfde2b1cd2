//! hmrt's built-in `tcp` check: opens a TCP connection and judges whether and how fast it
//! succeeded.

use hmrt_plugin::check::{CheckResult, Guest};
use hmrt_plugin::tcp;
use hmrt_plugin::types::{Capability, Metric, Need, PluginInfo, Status, Task};
use hmrt_plugin::{Config, millis_u32, show_duration, show_micros_as_ms};
use std::time::Duration;

/// The check's settings, read from a task's config.
#[derive(Debug)]
struct Settings {
    /// As written, for needs and messages.
    address: String,
    host: String,
    port: u16,
    timeout: Duration,
    degraded_after: Option<Duration>,
}

impl Settings {
    fn from_json(json: &str) -> Result<Settings, String> {
        let c = Config::parse(json, &["address", "timeout", "degraded_after"])?;
        let address = c.required_string("address")?;
        let (host, port) = split_address(address)?;
        Ok(Settings {
            address: address.to_owned(),
            host,
            port,
            timeout: c.duration("timeout")?.unwrap_or(Duration::from_secs(5)),
            degraded_after: c.duration("degraded_after")?,
        })
    }
}

/// Splits `host:port` (or `[v6]:port`) into its host, without brackets, and port.
fn split_address(address: &str) -> Result<(String, u16), String> {
    let bad = || format!("`address` must be \"host:port\", not {address:?}");
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']').ok_or_else(bad)?,
        None if host.contains(':') => return Err(bad()),
        None => host,
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

struct Tcp;

impl Guest for Tcp {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "tcp".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "Opens a TCP connection to host:port and reports how long it took.".to_owned(),
            capabilities: vec![Capability::Tcp],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        let s = Settings::from_json(&task.config)?;
        Ok(vec![Need::Tcp(s.address)])
    }

    fn check(task: Task) -> CheckResult {
        let s = match Settings::from_json(&task.config) {
            Ok(s) => s,
            Err(e) => {
                return CheckResult {
                    status: Status::Unknown,
                    message: format!("invalid config: {e}"),
                    metrics: vec![],
                };
            }
        };
        let elapsed_us = match tcp::connect(&s.host, s.port, millis_u32(s.timeout)) {
            Ok(us) => us,
            Err(e) => {
                return CheckResult {
                    status: Status::Unhealthy,
                    message: format!("connect to {}: {}", s.address, e.describe()),
                    metrics: vec![],
                };
            }
        };
        let connect_ms = elapsed_us as f64 / 1000.0;
        let took = format!(
            "connected to {} in {}",
            s.address,
            show_micros_as_ms(elapsed_us)
        );
        let (status, message) = match s.degraded_after {
            Some(limit) if Duration::from_micros(elapsed_us) > limit => (
                Status::Degraded,
                format!("{took}, slower than {}", show_duration(limit)),
            ),
            _ => (Status::Healthy, took),
        };
        CheckResult {
            status,
            message,
            metrics: vec![Metric {
                name: "connect_ms".to_owned(),
                value: connect_ms,
                unit: "ms".to_owned(),
            }],
        }
    }
}

hmrt_plugin::export_check!(Tcp);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(split_address("127.0.0.1:80"), Ok(("127.0.0.1".into(), 80)));
        assert_eq!(
            split_address("db.local:5432"),
            Ok(("db.local".into(), 5432))
        );
        assert_eq!(split_address("[::1]:8080"), Ok(("::1".into(), 8080)));
        for bad in [
            "127.0.0.1",
            ":80",
            "h:0",
            "h:70000",
            "::1:80",
            "[::1:80",
            "h:http",
        ] {
            let err = split_address(bad).unwrap_err();
            assert!(err.contains("`address`"), "{bad}: {err}");
        }
    }

    #[test]
    fn config() {
        let s = Settings::from_json(r#"{"address": "127.0.0.1:6379", "degraded_after": "50ms"}"#)
            .unwrap();
        assert_eq!(s.degraded_after, Some(Duration::from_millis(50)));
        for (json, key) in [
            (r#"{}"#, "`address`"),
            (r#"{"address": "h:1", "port": 1}"#, "`port`"),
            (r#"{"address": "h:1", "timeout": 5}"#, "`timeout`"),
        ] {
            let err = Settings::from_json(json).unwrap_err();
            assert!(err.contains(key), "{json}: {err}");
        }
    }
}
