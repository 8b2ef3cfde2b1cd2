//! hmrt's built-in `redis` check: sends `PING` (after `AUTH` when a password is set) and
//! expects `+PONG`; a Redis error (`-NOAUTH`, `-WRONGPASS`, `-LOADING`) is unhealthy with its
//! text, and an answer that is not Redis's protocol is unhealthy as such.
//!
//! The commands go as RESP arrays (any byte of a password is safe in them), pipelined with a
//! closing `QUIT`, so Redis answers all and then closes: one round trip, no waiting.

#[path = "../../tcp/src/probe.rs"]
mod probe;

use hmrt_plugin::Config;
use hmrt_plugin::check::{CheckResult, Guest};
use hmrt_plugin::types::{Capability, Need, PluginInfo, Status, Task};
use probe::{Address, Exchange, invalid_config, ms_metric, result, show_bytes, slow};
use std::time::Duration;

const KEYS: &[&str] = &[
    "address",
    "username",
    "password",
    "timeout",
    "degraded_after",
];

/// The check's settings, read from a task's config.
#[derive(Debug)]
struct Settings {
    address: Address,
    username: Option<String>,
    password: Option<String>,
    timeout: Duration,
    degraded_after: Option<Duration>,
}

impl Settings {
    fn from_json(json: &str) -> Result<Settings, String> {
        let c = Config::parse(json, KEYS)?;
        let username = probe::non_empty(&c, "username")?;
        let password = probe::non_empty(&c, "password")?;
        if username.is_some() && password.is_none() {
            return Err("`username` needs `password`".to_owned());
        }
        Ok(Settings {
            address: Address::from_config(&c)?,
            username,
            password,
            timeout: c.duration("timeout")?.unwrap_or(Duration::from_secs(5)),
            degraded_after: c.duration("degraded_after")?,
        })
    }

    /// `[AUTH [username] password]`, `PING`, `QUIT` as RESP arrays.
    fn commands(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(password) = &self.password {
            let mut auth = vec!["AUTH".as_bytes()];
            auth.extend(self.username.as_deref().map(str::as_bytes));
            auth.push(password.as_bytes());
            resp_array(&mut out, &auth);
        }
        resp_array(&mut out, &[b"PING"]);
        resp_array(&mut out, &[b"QUIT"]);
        out
    }
}

/// Appends `parts` as one RESP array of bulk strings.
fn resp_array(out: &mut Vec<u8>, parts: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
    for part in parts {
        out.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
}

/// What the answer says.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// `+PONG` (after `+OK` to AUTH).
    Pong,
    /// Redis answered with an error: its text, without the `-`.
    Error(String),
    /// Nothing Redis would say.
    NotRedis(String),
}

/// Judges the replies to [`Settings::commands`]: `authed` tells whether an AUTH came first.
fn judge(received: &[u8], authed: bool) -> Verdict {
    let mut lines = received
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r"));
    let mut next = || lines.next().flatten();
    let not_redis = || Verdict::NotRedis(show_bytes(received, 80));
    if authed {
        match next() {
            Some(b"+OK") => {}
            Some(line) if line.starts_with(b"-") => return error(line),
            _ => return not_redis(),
        }
    }
    match next() {
        Some(b"+PONG") => Verdict::Pong,
        Some(line) if line.starts_with(b"-") => error(line),
        _ => not_redis(),
    }
}

fn error(line: &[u8]) -> Verdict {
    let text = line.get(1..).unwrap_or_default();
    Verdict::Error(String::from_utf8_lossy(text).chars().take(200).collect())
}

struct Redis;

impl Guest for Redis {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "redis".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "Sends PING to a Redis server (after AUTH when a password is set) and \
                      expects PONG."
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
        let response = match (Exchange {
            address: &s.address,
            tls: None,
            send: s.commands(),
            read_max: 4096,
            until: None,
            timeout: s.timeout,
        })
        .run()
        {
            Ok(r) => r,
            Err(e) => return result(Status::Unhealthy, e, vec![]),
        };
        let metrics = vec![ms_metric("latency_ms", response.elapsed_us)];
        let a = &s.address.text;
        match judge(&response.received, s.password.is_some()) {
            Verdict::Pong => {
                let took = hmrt_plugin::show_micros_as_ms(response.elapsed_us);
                let message = format!("{a} answered PING with PONG in {took}");
                match slow(s.degraded_after, response.elapsed_us) {
                    Some(slower) => result(Status::Degraded, message + &slower, metrics),
                    None => result(Status::Healthy, message, metrics),
                }
            }
            Verdict::Error(text) => {
                let message = format!("{a}: Redis answered with an error: {text}");
                result(Status::Unhealthy, message, metrics)
            }
            Verdict::NotRedis(_) if response.received.is_empty() => {
                let message = format!("{a} closed the connection without answering: not Redis");
                result(Status::Unhealthy, message, metrics)
            }
            Verdict::NotRedis(shown) => {
                let message = format!("{a} does not answer as Redis: {shown}");
                result(Status::Unhealthy, message, metrics)
            }
        }
    }
}

hmrt_plugin::export_check!(Redis);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_resp_arrays() {
        let s = Settings::from_json(r#"{"address": "127.0.0.1:6379"}"#).unwrap();
        assert_eq!(s.commands(), b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n");
        let s = Settings::from_json(
            r#"{"address": "127.0.0.1:6379", "username": "mon", "password": "p w\r\n"}"#,
        )
        .unwrap();
        assert!(
            s.commands()
                .starts_with(b"*3\r\n$4\r\nAUTH\r\n$3\r\nmon\r\n$5\r\np w\r\n\r\n*1\r\n")
        );
    }

    #[test]
    fn answers() {
        assert_eq!(judge(b"+PONG\r\n+OK\r\n", false), Verdict::Pong);
        assert_eq!(judge(b"+OK\r\n+PONG\r\n+OK\r\n", true), Verdict::Pong);
        assert_eq!(
            judge(b"-NOAUTH Authentication required.\r\n+OK\r\n", false),
            Verdict::Error("NOAUTH Authentication required.".into())
        );
        assert!(matches!(
            judge(b"-WRONGPASS invalid username-password pair\r\n", true),
            Verdict::Error(t) if t.starts_with("WRONGPASS")
        ));
        for other in [
            &b""[..],
            b"+PONG",
            b"HTTP/1.1 400 Bad Request\r\n",
            b"\x20\x02\x00\x00",
            b"+OK\r\n",
        ] {
            assert!(
                matches!(judge(other, false), Verdict::NotRedis(_)),
                "{other:?}"
            );
        }
    }

    #[test]
    fn config() {
        for (json, key) in [
            (r#"{}"#, "`address`"),
            (r#"{"address": "h:1", "username": "u"}"#, "`username`"),
            (r#"{"address": "h:1", "password": ""}"#, "`password`"),
            (r#"{"address": "h:1", "pass": "x"}"#, "`pass`"),
        ] {
            let err = Settings::from_json(json).unwrap_err();
            assert!(err.contains(key), "{json}: {err}");
        }
    }
}
