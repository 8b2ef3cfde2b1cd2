//! What the protocol probes share (`tcp`, `tls-cert`, `redis`, `mqtt`, `postgres`): reading
//! `address`, booleans and bounded integers from the config, one exchange, results and
//! metrics, and showing a server's bytes in a message.
//!
//! Each of those crates includes this file with `#[path = "../../tcp/src/probe.rs"]`, so the
//! probes read their common keys one way; not every crate uses every item.
#![allow(dead_code)]

use hmrt_plugin::check::CheckResult;
use hmrt_plugin::tcp::{self, ExchangeRequest, ExchangeResponse, Tls};
use hmrt_plugin::types::{HostError, Metric, Status};
use hmrt_plugin::{Config, millis_u32, show_duration};
use std::time::Duration;

/// A `host:port` from the config: as written (for needs and messages), and split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub text: String,
    pub host: String,
    pub port: u16,
}

impl Address {
    /// The required `address` key.
    pub fn from_config(c: &Config) -> Result<Address, String> {
        let text = c.required_string("address")?;
        let (host, port) = split_address(text)?;
        Ok(Address {
            text: text.to_owned(),
            host,
            port,
        })
    }
}

/// Splits `host:port` (or `[v6]:port`) into its host, without brackets, and port.
pub fn split_address(address: &str) -> Result<(String, u16), String> {
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

/// The boolean at `key`, if set.
pub fn boolean(c: &Config, key: &str) -> Result<Option<bool>, String> {
    match c.value(key) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| format!("`{key}` must be true or false, not {v}")),
    }
}

/// The whole number at `key` within `min..=max`, if set.
pub fn integer(c: &Config, key: &str, min: u64, max: u64) -> Result<Option<u64>, String> {
    match c.value(key) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(format!(
                "`{key}` must be a whole number from {min} to {max}, not {v}"
            )),
        },
    }
}

/// The optional string at `key`, which must not be empty when set.
pub fn non_empty(c: &Config, key: &str) -> Result<Option<String>, String> {
    match c.string(key)? {
        Some("") => Err(format!("`{key}` must not be empty")),
        other => Ok(other.map(str::to_owned)),
    }
}

/// One exchange with `address`.
pub struct Exchange<'a> {
    pub address: &'a Address,
    pub tls: Option<Tls>,
    pub send: Vec<u8>,
    pub read_max: u32,
    pub until: Option<Vec<u8>>,
    pub timeout: Duration,
}

impl Exchange<'_> {
    /// Runs it; an error is put as a message: `no answer from ADDR within 5s`, `connect to
    /// ADDR: failed: …`.
    pub fn run(self) -> Result<ExchangeResponse, String> {
        let address = self.address;
        let req = ExchangeRequest {
            host: address.host.clone(),
            port: address.port,
            tls: self.tls,
            send: self.send,
            read_max: self.read_max,
            until: self.until,
            timeout_ms: millis_u32(self.timeout),
        };
        tcp::exchange(&req).map_err(|e| match e {
            HostError::Timeout => format!(
                "no answer from {} within {}",
                address.text,
                show_duration(self.timeout)
            ),
            other => format!("{}: {}", address.text, other.describe()),
        })
    }
}

/// A result.
pub fn result(status: Status, message: String, metrics: Vec<Metric>) -> CheckResult {
    CheckResult {
        status,
        message,
        metrics,
    }
}

/// An `unknown` result for a config that does not read.
pub fn invalid_config(e: String) -> CheckResult {
    result(Status::Unknown, format!("invalid config: {e}"), vec![])
}

/// A metric in milliseconds from microseconds.
pub fn ms_metric(name: &str, micros: u64) -> Metric {
    Metric {
        name: name.to_owned(),
        value: micros as f64 / 1000.0,
        unit: "ms".to_owned(),
    }
}

/// `bytes` from a server as one short line for a message: printable ASCII as is, the rest
/// escaped (`\r`, `\n`, `\x00`), cut after `max` bytes with `…`.
pub fn show_bytes(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > max {
        out.push('…');
    }
    format!("\"{out}\"")
}

/// Whether `degraded_after` makes a response that took `micros` degraded.
pub fn slow(degraded_after: Option<Duration>, micros: u64) -> Option<String> {
    degraded_after
        .filter(|limit| Duration::from_micros(micros) > *limit)
        .map(|limit| format!(", slower than {}", show_duration(limit)))
}

#[cfg(test)]
mod probe_tests {
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
    fn typed_keys_are_named() {
        let c = Config::parse(
            r#"{"a": 1, "b": true, "n": 70000, "e": ""}"#,
            &["a", "b", "n", "e"],
        )
        .unwrap();
        assert!(boolean(&c, "a").unwrap_err().contains("`a`"));
        assert_eq!(boolean(&c, "b"), Ok(Some(true)));
        assert!(integer(&c, "n", 0, 65536).unwrap_err().contains("`n`"));
        assert_eq!(integer(&c, "a", 0, 10), Ok(Some(1)));
        assert!(non_empty(&c, "e").unwrap_err().contains("`e`"));
        assert_eq!(non_empty(&c, "x"), Ok(None));
    }

    #[test]
    fn bytes_are_shown_escaped_and_cut() {
        assert_eq!(show_bytes(b"+PONG\r\n", 80), r#""+PONG\r\n""#);
        assert_eq!(show_bytes(&[0x20, 0x02, 0, 5], 80), r#"" \x02\x00\x05""#);
        assert_eq!(show_bytes(b"abcdef", 3), "\"abc…\"");
    }
}
