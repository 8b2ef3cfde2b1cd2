//! hmrt's built-in `tcp` check: opens a TCP connection and judges whether and how fast it
//! succeeded; given something to send or expect (or TLS), it runs one exchange and judges the
//! answer, like blackbox_exporter's `query_response`.

mod probe;

use hmrt_plugin::check::{CheckResult, Guest};
use hmrt_plugin::tcp::{self, Tls};
use hmrt_plugin::types::{Capability, Metric, Need, PluginInfo, Status, Task};
use hmrt_plugin::{Config, millis_u32, show_duration, show_micros_as_ms};
use probe::{Address, Exchange, invalid_config, ms_metric, result, show_bytes, slow};
use std::time::Duration;

const KEYS: &[&str] = &[
    "address",
    "timeout",
    "degraded_after",
    "send",
    "send_hex",
    "expect",
    "expect_regex",
    "read_until",
    "read_max",
    "tls",
    "server_name",
    "verify",
];

/// Bytes read when `read_max` is not set.
const READ_MAX_DEFAULT: u64 = 4096;
/// The host's cap on what an exchange reads.
const READ_MAX_CAP: u64 = 65536;

/// What must be in the answer.
#[derive(Debug)]
enum Expect {
    /// These bytes, anywhere.
    Contains(Vec<u8>),
    /// A match of this regex in the answer read as UTF-8 (invalid bytes replaced).
    Regex(regex_lite::Regex),
}

/// The check's settings, read from a task's config.
#[derive(Debug)]
struct Settings {
    address: Address,
    timeout: Duration,
    degraded_after: Option<Duration>,
    send: Vec<u8>,
    expect: Option<Expect>,
    read_until: Option<Vec<u8>>,
    read_max: u32,
    tls: Option<Tls>,
}

impl Settings {
    fn from_json(json: &str) -> Result<Settings, String> {
        let c = Config::parse(json, KEYS)?;
        let send = match (c.string("send")?, c.string("send_hex")?) {
            (Some(_), Some(_)) => return Err("set `send` or `send_hex`, not both".to_owned()),
            (Some(text), None) => text.as_bytes().to_vec(),
            (None, Some(hex)) => parse_hex(hex)?,
            (None, None) => Vec::new(),
        };
        let expect = match (probe::non_empty(&c, "expect")?, c.string("expect_regex")?) {
            (Some(_), Some(_)) => {
                return Err("set `expect` or `expect_regex`, not both".to_owned());
            }
            (Some(text), None) => Some(Expect::Contains(text.into_bytes())),
            (None, Some(re)) => Some(Expect::Regex(
                regex_lite::Regex::new(re).map_err(|e| format!("`expect_regex`: {e}"))?,
            )),
            (None, None) => None,
        };
        let tls = probe::boolean(&c, "tls")?.unwrap_or(false);
        let server_name = probe::non_empty(&c, "server_name")?;
        let verify = probe::boolean(&c, "verify")?;
        if !tls && (server_name.is_some() || verify.is_some()) {
            return Err("`server_name` and `verify` need `tls = true`".to_owned());
        }
        Ok(Settings {
            address: Address::from_config(&c)?,
            timeout: c.duration("timeout")?.unwrap_or(Duration::from_secs(5)),
            degraded_after: c.duration("degraded_after")?,
            send,
            expect,
            read_until: probe::non_empty(&c, "read_until")?.map(String::into_bytes),
            read_max: probe::integer(&c, "read_max", 1, READ_MAX_CAP)?.unwrap_or(READ_MAX_DEFAULT)
                as u32,
            tls: tls.then(|| Tls {
                server_name,
                verify: verify.unwrap_or(true),
            }),
        })
    }

    /// Whether this is a plain connect probe (the check as it was before exchanges).
    fn connect_only(&self) -> bool {
        self.send.is_empty() && self.expect.is_none() && self.tls.is_none()
    }

    /// Where reading may stop early: `read_until`, else the `expect` bytes themselves.
    fn until(&self) -> Option<Vec<u8>> {
        match (&self.read_until, &self.expect) {
            (Some(until), _) => Some(until.clone()),
            (None, Some(Expect::Contains(bytes))) => Some(bytes.clone()),
            _ => None,
        }
    }
}

/// `send_hex`: pairs of hex digits, with spaces allowed between them.
fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return Err("`send_hex` must be pairs of hex digits, such as \"0d0a\"".to_owned());
    }
    digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| format!("`send_hex`: {:?} is not a hex byte", pair_text(pair)))
        })
        .collect()
}

fn pair_text(pair: &[u8]) -> String {
    String::from_utf8_lossy(pair).into_owned()
}

struct TcpCheck;

impl Guest for TcpCheck {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "tcp".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "Connects to host:port (optionally over TLS), optionally sends bytes and \
                      expects an answer; reports how long it took."
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
        if s.connect_only() {
            connect(&s)
        } else {
            exchange(&s)
        }
    }
}

/// The connect probe.
fn connect(s: &Settings) -> CheckResult {
    let a = &s.address;
    let elapsed_us = match tcp::connect(&a.host, a.port, millis_u32(s.timeout)) {
        Ok(us) => us,
        Err(e) => {
            let message = format!("connect to {}: {}", a.text, e.describe());
            return result(Status::Unhealthy, message, vec![]);
        }
    };
    let took = format!(
        "connected to {} in {}",
        a.text,
        show_micros_as_ms(elapsed_us)
    );
    let (status, message) = match slow(s.degraded_after, elapsed_us) {
        Some(slower) => (Status::Degraded, format!("{took}{slower}")),
        None => (Status::Healthy, took),
    };
    result(status, message, vec![ms_metric("connect_ms", elapsed_us)])
}

/// The exchange: send, read, judge the answer.
fn exchange(s: &Settings) -> CheckResult {
    let response = match (Exchange {
        address: &s.address,
        tls: s.tls.clone(),
        send: s.send.clone(),
        read_max: s.read_max,
        until: s.until(),
        timeout: s.timeout,
    })
    .run()
    {
        Ok(r) => r,
        Err(e) => return result(Status::Unhealthy, e, vec![]),
    };
    let got = &response.received;
    let metrics = vec![
        ms_metric("response_ms", response.elapsed_us),
        Metric {
            name: "received_bytes".to_owned(),
            value: got.len() as f64,
            unit: "bytes".to_owned(),
        },
    ];
    let took = show_micros_as_ms(response.elapsed_us);
    let how_it_ended = if response.timed_out {
        format!(
            " (still reading at the {} timeout)",
            show_duration(s.timeout)
        )
    } else if response.closed {
        " (then the server closed the connection)".to_owned()
    } else {
        String::new()
    };
    let Some(expect) = &s.expect else {
        let message = format!(
            "{} answered {} bytes in {took}{how_it_ended}",
            s.address.text,
            got.len()
        );
        return judged_by_time(s, message, response.elapsed_us, metrics);
    };
    let (found, wanted) = match expect {
        Expect::Contains(bytes) => (contains(got, bytes), show_bytes(bytes, 80)),
        Expect::Regex(re) => (
            re.is_match(&String::from_utf8_lossy(got)),
            format!("/{}/", re.as_str()),
        ),
    };
    if !found {
        let message = format!(
            "{} answered without {wanted}: {}{how_it_ended}",
            s.address.text,
            show_bytes(got, 120)
        );
        return result(Status::Unhealthy, message, metrics);
    }
    let message = format!("{} answered {wanted} in {took}", s.address.text);
    judged_by_time(s, message, response.elapsed_us, metrics)
}

/// Healthy, or degraded past `degraded_after`.
fn judged_by_time(s: &Settings, message: String, micros: u64, metrics: Vec<Metric>) -> CheckResult {
    match slow(s.degraded_after, micros) {
        Some(slower) => result(Status::Degraded, format!("{message}{slower}"), metrics),
        None => result(Status::Healthy, message, metrics),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

hmrt_plugin::export_check!(TcpCheck);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config() {
        let s = Settings::from_json(r#"{"address": "127.0.0.1:6379", "degraded_after": "50ms"}"#)
            .unwrap();
        assert_eq!(s.degraded_after, Some(Duration::from_millis(50)));
        assert!(s.connect_only(), "the old config is still a connect probe");
        for (json, key) in [
            (r#"{}"#, "`address`"),
            (r#"{"address": "h:1", "port": 1}"#, "`port`"),
            (r#"{"address": "h:1", "timeout": 5}"#, "`timeout`"),
            (
                r#"{"address": "h:1", "send": "a", "send_hex": "61"}"#,
                "`send_hex`",
            ),
            (r#"{"address": "h:1", "send_hex": "6"}"#, "`send_hex`"),
            (r#"{"address": "h:1", "send_hex": "zz"}"#, "`send_hex`"),
            (
                r#"{"address": "h:1", "expect_regex": "("}"#,
                "`expect_regex`",
            ),
            (r#"{"address": "h:1", "read_max": 0}"#, "`read_max`"),
            (r#"{"address": "h:1", "read_max": 70000}"#, "`read_max`"),
            (r#"{"address": "h:1", "tls": "yes"}"#, "`tls`"),
            (r#"{"address": "h:1", "verify": false}"#, "`verify`"),
        ] {
            let err = Settings::from_json(json).unwrap_err();
            assert!(err.contains(key), "{json}: {err}");
        }
    }

    #[test]
    fn send_and_expect() {
        let s = Settings::from_json(
            r#"{"address": "h:1", "send": "PING\r\n", "expect": "+PONG", "read_max": 64}"#,
        )
        .unwrap();
        assert_eq!(s.send, b"PING\r\n");
        assert_eq!(s.until(), Some(b"+PONG".to_vec()));
        assert_eq!(s.read_max, 64);
        assert!(!s.connect_only());
        let s = Settings::from_json(
            r#"{"address": "h:1", "send_hex": "10 0c 00", "expect_regex": "^\\+PO", "read_until": "\n"}"#,
        )
        .unwrap();
        assert_eq!(s.send, [0x10, 0x0c, 0x00]);
        assert_eq!(s.until(), Some(b"\n".to_vec()));
        let s = Settings::from_json(r#"{"address": "h:1", "tls": true, "verify": false}"#).unwrap();
        assert!(s.tls.is_some_and(|t| !t.verify && t.server_name.is_none()));
    }

    #[test]
    fn substrings() {
        assert!(contains(b"+PONG\r\n", b"PONG"));
        assert!(!contains(b"+PON", b"PONG"));
    }
}
