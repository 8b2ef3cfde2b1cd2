//! hmrt's built-in `tls-cert` check: a TLS handshake with a server and the days left until its
//! certificate expires, against `warn_days` (degraded) and `critical_days` (unhealthy). An
//! expired or not yet valid certificate, or a failed handshake, is unhealthy with the reason.
//!
//! With `verify = true` (the default) the chain and name are verified against the system's
//! roots, so an untrusted certificate fails the handshake; `verify = false` reads the dates of
//! any certificate (self-signed, an internal CA's).

#[path = "../../tcp/src/probe.rs"]
mod probe;

use hmrt_plugin::Config;
use hmrt_plugin::check::{CheckResult, Guest};
use hmrt_plugin::tcp::{Certificate, Tls};
use hmrt_plugin::types::{Capability, Metric, Need, PluginInfo, Status, Task};
use probe::{Address, Exchange, invalid_config, ms_metric, result};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const KEYS: &[&str] = &[
    "address",
    "server_name",
    "verify",
    "warn_days",
    "critical_days",
    "timeout",
];

const DAY: f64 = 86_400.0;

/// The check's settings, read from a task's config.
#[derive(Debug)]
struct Settings {
    address: Address,
    server_name: Option<String>,
    verify: bool,
    warn_days: f64,
    critical_days: f64,
    timeout: Duration,
}

impl Settings {
    fn from_json(json: &str) -> Result<Settings, String> {
        let c = Config::parse(json, KEYS)?;
        let warn_days = days(&c, "warn_days")?.unwrap_or(30.0);
        let critical_days = days(&c, "critical_days")?.unwrap_or(7.0);
        if critical_days > warn_days {
            return Err(format!(
                "`critical_days` ({critical_days}) must not be more than `warn_days` ({warn_days})"
            ));
        }
        Ok(Settings {
            address: Address::from_config(&c)?,
            server_name: probe::non_empty(&c, "server_name")?,
            verify: probe::boolean(&c, "verify")?.unwrap_or(true),
            warn_days,
            critical_days,
            timeout: c.duration("timeout")?.unwrap_or(Duration::from_secs(5)),
        })
    }
}

/// A number of days (0 to 3650, fractions allowed) at `key`, if set.
fn days(c: &Config, key: &str) -> Result<Option<f64>, String> {
    match c.value(key) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(d) if (0.0..=3650.0).contains(&d) => Ok(Some(d)),
            _ => Err(format!(
                "`{key}` must be a number of days from 0 to 3650, not {v}"
            )),
        },
    }
}

/// Judges `cert` at `now` (seconds since the epoch): the status and what to say.
fn judge(s: &Settings, cert: &Certificate, now: i64) -> (Status, String, f64) {
    let left = (cert.not_after.saturating_sub(now)) as f64 / DAY;
    let who = format!(
        "certificate of {} ({}, issued by {})",
        s.address.text, cert.subject, cert.issuer
    );
    let until = show_time(cert.not_after);
    if now < cert.not_before {
        let message = format!("{who} is not valid before {}", show_time(cert.not_before));
        return (Status::Unhealthy, message, left);
    }
    if left <= 0.0 {
        let message = format!("{who} expired on {until}, {:.1} days ago", -left);
        return (Status::Unhealthy, message, left);
    }
    let message = format!("{who} expires on {until}, in {left:.1} days");
    let (status, note) = if left < s.critical_days {
        (
            Status::Unhealthy,
            format!(" (fewer than {})", s.critical_days),
        )
    } else if left < s.warn_days {
        (Status::Degraded, format!(" (fewer than {})", s.warn_days))
    } else {
        (Status::Healthy, String::new())
    };
    (status, message + &note, left)
}

/// Seconds since the epoch as `2026-05-01 12:00 UTC`.
fn show_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn now_secs() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

struct TlsCert;

impl Guest for TlsCert {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "tls-cert".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "Reads a TLS server's certificate and reports the days left until it \
                      expires."
                .to_owned(),
            capabilities: vec![Capability::Tcp],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        let s = Settings::from_json(&task.config)?;
        Ok(vec![Need::Tcp(s.address.text)])
    }

    fn check(task: Task) -> CheckResult {
        let s = match Settings::from_json(&task.config) {
            Ok(s) => s,
            Err(e) => return invalid_config(e),
        };
        // Nothing is sent or read: the handshake brings the certificate.
        let response = match (Exchange {
            address: &s.address,
            tls: Some(Tls {
                server_name: s.server_name.clone(),
                verify: s.verify,
            }),
            send: Vec::new(),
            read_max: 0,
            until: None,
            timeout: s.timeout,
        })
        .run()
        {
            Ok(r) => r,
            Err(e) => return result(Status::Unhealthy, e, vec![]),
        };
        let Some(cert) = &response.certificate else {
            let message = format!("{} sent no certificate that could be read", s.address.text);
            return result(Status::Unhealthy, message, vec![]);
        };
        let (status, message, left) = judge(&s, cert, now_secs());
        let metrics = vec![
            Metric {
                name: "days_left".to_owned(),
                value: left,
                unit: "days".to_owned(),
            },
            ms_metric("handshake_ms", response.elapsed_us),
        ];
        result(status, message, metrics)
    }
}

hmrt_plugin::export_check!(TlsCert);

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(not_before: i64, not_after: i64) -> Certificate {
        Certificate {
            subject: "CN=db.example".into(),
            issuer: "CN=Example CA".into(),
            not_before,
            not_after,
        }
    }

    #[test]
    fn thresholds() {
        let s = Settings::from_json(r#"{"address": "h:443"}"#).unwrap();
        let now = 1_800_000_000;
        let day = 86_400;
        let at = |d: i64| judge(&s, &cert(now - day, now + d * day), now);
        assert_eq!(at(90).0, Status::Healthy);
        assert_eq!(at(20).0, Status::Degraded);
        let (status, message, left) = at(3);
        assert_eq!(status, Status::Unhealthy);
        assert!((left - 3.0).abs() < 1e-9);
        assert!(message.contains("in 3.0 days"), "{message}");
        let (status, message, _) = at(-2);
        assert_eq!(status, Status::Unhealthy);
        assert!(
            message.contains("expired") && message.contains("2.0 days ago"),
            "{message}"
        );
        let (status, message, _) = judge(&s, &cert(now + day, now + 99 * day), now);
        assert_eq!(status, Status::Unhealthy);
        assert!(message.contains("not valid before"), "{message}");
    }

    #[test]
    fn dates() {
        assert_eq!(show_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(show_time(1_893_542_400), "2030-01-02 00:00 UTC");
        assert_eq!(show_time(951_782_400 + 3_660), "2000-02-29 01:01 UTC");
        assert_eq!(show_time(-86_400), "1969-12-31 00:00 UTC");
    }

    #[test]
    fn config() {
        let s =
            Settings::from_json(r#"{"address": "h:443", "warn_days": 14.5, "critical_days": 3}"#)
                .unwrap();
        assert_eq!((s.warn_days, s.critical_days), (14.5, 3.0));
        assert!(s.verify);
        for (json, key) in [
            (r#"{}"#, "`address`"),
            (
                r#"{"address": "h:1", "warn_days": 5, "critical_days": 6}"#,
                "`critical_days`",
            ),
            (r#"{"address": "h:1", "warn_days": -1}"#, "`warn_days`"),
            (r#"{"address": "h:1", "verify": "no"}"#, "`verify`"),
            (r#"{"address": "h:1", "server_name": ""}"#, "`server_name`"),
        ] {
            let err = Settings::from_json(json).unwrap_err();
            assert!(err.contains(key), "{json}: {err}");
        }
    }
}
