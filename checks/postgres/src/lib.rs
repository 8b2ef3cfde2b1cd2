//! hmrt's built-in `postgres` check: sends a protocol 3.0 StartupMessage and judges whether the
//! server answers as PostgreSQL, the way `pg_isready` does.
//!
//! - An authentication request of any kind (trust's "ok", a password, SCRAM, ...) is healthy:
//!   the server is up and accepting connections. Like `pg_isready`, the probe then closes
//!   without answering the request, which PostgreSQL does not log.
//! - An error answer is read for its text: `57P03` (starting up, shutting down, in recovery)
//!   is unhealthy, `53300` (too many connections) degraded, and any other (a role or database
//!   that does not exist, no `pg_hba.conf` entry) healthy with the refusal in the message: it
//!   is PostgreSQL answering; the probe's own login is not what is checked.
//! - With `expect_ready = true` only a session that reaches ReadyForQuery is healthy (the
//!   probe's user must be let in without a password, i.e. `trust`); it then sends Terminate.

#[path = "../../tcp/src/probe.rs"]
mod probe;

mod wire;

use hmrt_plugin::Config;
use hmrt_plugin::check::{CheckResult, Guest};
use hmrt_plugin::types::{Capability, Need, PluginInfo, Status, Task};
use probe::{Address, Exchange, invalid_config, ms_metric, result, show_bytes, slow};
use std::time::Duration;
use wire::{Answer, Message};

const KEYS: &[&str] = &[
    "address",
    "user",
    "database",
    "expect_ready",
    "timeout",
    "degraded_after",
];

/// The check's settings, read from a task's config.
#[derive(Debug)]
struct Settings {
    address: Address,
    user: String,
    database: Option<String>,
    expect_ready: bool,
    timeout: Duration,
    degraded_after: Option<Duration>,
}

impl Settings {
    fn from_json(json: &str) -> Result<Settings, String> {
        let c = Config::parse(json, KEYS)?;
        let user = probe::non_empty(&c, "user")?.unwrap_or_else(|| "hmrt".to_owned());
        let database = probe::non_empty(&c, "database")?;
        for (key, value) in [("user", Some(&user)), ("database", database.as_ref())] {
            if value.is_some_and(|v| v.contains('\0') || v.len() > 63) {
                return Err(format!(
                    "`{key}` must be a PostgreSQL name (at most 63 bytes, no NUL)"
                ));
            }
        }
        Ok(Settings {
            address: Address::from_config(&c)?,
            user,
            database,
            expect_ready: probe::boolean(&c, "expect_ready")?.unwrap_or(false),
            timeout: c.duration("timeout")?.unwrap_or(Duration::from_secs(5)),
            degraded_after: c.duration("degraded_after")?,
        })
    }

    fn exchange(&self, send: Vec<u8>, read_max: u32) -> Result<Answer, String> {
        let response = Exchange {
            address: &self.address,
            tls: None,
            send,
            read_max,
            until: None,
            timeout: self.timeout,
        }
        .run()?;
        Ok(Answer::parse(&response.received, response.elapsed_us))
    }
}

struct Postgres;

impl Guest for Postgres {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "postgres".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "Starts a PostgreSQL session and expects the server to answer as \
                      PostgreSQL (optionally: to be ready for queries)."
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
        let startup = wire::startup(&s.user, s.database.as_deref());
        let answer = if s.expect_ready {
            // Terminate right behind: after ReadyForQuery the server reads it and closes.
            let mut send = startup;
            send.extend_from_slice(&wire::TERMINATE);
            s.exchange(send, 16 * 1024)
        } else {
            // The first message's type, length and (for 'R') code: 9 bytes. An error's text
            // needs the rest, which the server sends before it closes: one more exchange.
            match s.exchange(startup.clone(), 9) {
                Ok(a) if a.first_is_error() => s.exchange(startup, 4096),
                other => other,
            }
        };
        match answer {
            Ok(answer) => judge(&s, &answer),
            Err(e) => result(Status::Unhealthy, e, vec![]),
        }
    }
}

/// The result for `answer`.
fn judge(s: &Settings, answer: &Answer) -> CheckResult {
    let a = &s.address.text;
    let metrics = vec![ms_metric("latency_ms", answer.elapsed_us)];
    let (status, message) = match answer.messages.first() {
        None if answer.raw.is_empty() => (
            Status::Unhealthy,
            format!("{a} closed the connection without answering: not PostgreSQL"),
        ),
        None | Some(Message::Other(_) | Message::Ready) => (
            Status::Unhealthy,
            format!(
                "{a} does not answer as PostgreSQL: {}",
                show_bytes(&answer.raw, 60)
            ),
        ),
        Some(Message::Error(e)) => (
            error_status(&e.code, s.expect_ready),
            format!("{a} answers as PostgreSQL but refused the session: {e}"),
        ),
        Some(Message::Auth(0)) if s.expect_ready && !answer.ready() => (
            Status::Unhealthy,
            match answer.error() {
                Some(e) => format!("{a} let {:?} in, then: {e}", s.user),
                None => format!("{a} let {:?} in but never became ready", s.user),
            },
        ),
        Some(Message::Auth(0)) if s.expect_ready => (
            Status::Healthy,
            format!("{a} is ready for queries (as {:?})", s.user),
        ),
        Some(Message::Auth(code)) if s.expect_ready => (
            Status::Unhealthy,
            format!(
                "{a} asks {:?} for {}; `expect_ready` needs a user let in without one",
                s.user,
                wire::auth_name(*code)
            ),
        ),
        Some(Message::Auth(code)) => (
            Status::Healthy,
            format!("{a} answers as PostgreSQL ({})", wire::auth_name(*code)),
        ),
    };
    if status != Status::Healthy {
        return result(status, message, metrics);
    }
    match slow(s.degraded_after, answer.elapsed_us) {
        Some(slower) => result(Status::Degraded, message + &slower, metrics),
        None => result(Status::Healthy, message, metrics),
    }
}

/// How an error answer counts: the server cannot take sessions now (class 57: starting up,
/// shutting down, recovery) is unhealthy, out of connections (class 53) degraded; any other
/// refusal is PostgreSQL answering, unless the session itself was expected.
fn error_status(code: &str, expect_ready: bool) -> Status {
    match code {
        c if c.starts_with("57") => Status::Unhealthy,
        c if c.starts_with("53") => Status::Degraded,
        _ if expect_ready => Status::Unhealthy,
        _ => Status::Healthy,
    }
}

hmrt_plugin::export_check!(Postgres);

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: &str) -> Settings {
        Settings::from_json(json).unwrap()
    }

    #[test]
    fn config() {
        let s = settings(r#"{"address": "127.0.0.1:5432"}"#);
        assert_eq!(s.user, "hmrt");
        assert!(!s.expect_ready);
        for (json, key) in [
            (r#"{}"#, "`address`"),
            (r#"{"address": "h:1", "user": ""}"#, "`user`"),
            (
                r#"{"address": "h:1", "database": "a\u0000b"}"#,
                "`database`",
            ),
            (r#"{"address": "h:1", "expect_ready": 1}"#, "`expect_ready`"),
        ] {
            let err = Settings::from_json(json).unwrap_err();
            assert!(err.contains(key), "{json}: {err}");
        }
    }

    #[test]
    fn judgements() {
        let s = settings(r#"{"address": "h:1"}"#);
        let ready = settings(r#"{"address": "h:1", "expect_ready": true}"#);
        let md5 = Answer::parse(b"R\0\0\0\x0c\0\0\0\x05abcd", 1000);
        assert_eq!(judge(&s, &md5).status, Status::Healthy);
        assert!(judge(&s, &md5).message.contains("MD5"));
        assert_eq!(judge(&ready, &md5).status, Status::Unhealthy);
        let trust = Answer::parse(b"R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I", 1000);
        assert_eq!(judge(&ready, &trust).status, Status::Healthy);
        let error = |code: &str| {
            let mut body = format!("SFATAL\0C{code}\0Mno\0\0").into_bytes();
            let mut raw = vec![b'E'];
            raw.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
            raw.append(&mut body);
            Answer::parse(&raw, 1000)
        };
        assert_eq!(judge(&s, &error("3D000")).status, Status::Healthy);
        assert_eq!(judge(&ready, &error("3D000")).status, Status::Unhealthy);
        assert_eq!(judge(&s, &error("57P03")).status, Status::Unhealthy);
        assert_eq!(judge(&s, &error("53300")).status, Status::Degraded);
        assert_eq!(judge(&s, &Answer::parse(b"", 1)).status, Status::Unhealthy);
        assert_eq!(
            judge(&s, &Answer::parse(b"-ERR unknown\r\n", 1)).status,
            Status::Unhealthy
        );
    }
}
