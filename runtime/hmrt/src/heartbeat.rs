//! Push heartbeats (a dead-man's switch): a task whose check is `heartbeat` is healthy while
//! something pings `POST /push/{task}` at least once per `period`, and unhealthy once silent
//! past it. A cron job's success becomes a task like any other, with thresholds, actions and
//! history.
//!
//! The judgement runs in the host, not in a guest: it touches nothing outside hmrt (its only
//! input is the pings the API received), so there is nothing to sandbox, and a guest would need
//! a capability that hands it exactly this host state.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use hmrt_config::{ConfigError, TaskConfig};
use hmrt_domain::duration;
use hmrt_policy::{Status, Timestamp};

/// The name a task's `check` gives to use a heartbeat.
pub const CHECK_NAME: &str = "heartbeat";

/// The longest message a push may carry; longer ones are cut.
const MAX_PUSH_MESSAGE: usize = 512;

/// A heartbeat task's settings, from its `config` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The longest silence that is still healthy.
    pub period: Duration,
    /// The environment variable holding the token a ping must present.
    pub token_env: String,
}

impl Settings {
    /// Reads `config = { period = "5m", token_env = "BACKUP_PUSH_TOKEN" }`; errors name the key
    /// at its line.
    pub fn from_task(task: &TaskConfig) -> Result<Settings, ConfigError> {
        let config = &task.config;
        let at = |pointer: &str| {
            config
                .location(pointer)
                .or(config.location(""))
                .unwrap_or(&task.check_location)
                .clone()
        };
        let error = |pointer: &str, key: &str, message: String| {
            ConfigError::new(at(pointer), key, message).in_task(&task.name)
        };
        let object = config.value.as_object().cloned().unwrap_or_default();
        if let Some(key) = object
            .keys()
            .find(|k| !["period", "token_env"].contains(&k.as_str()))
        {
            return Err(error(
                &format!("/{key}"),
                &format!("config.{key}"),
                "unknown key; a heartbeat takes `period` and `token_env`".to_string(),
            ));
        }
        let string = |key: &str| -> Result<String, ConfigError> {
            match object.get(key) {
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(error(
                    &format!("/{key}"),
                    &format!("config.{key}"),
                    "must be a string".to_string(),
                )),
                None => Err(error(
                    "",
                    "config",
                    format!(
                        "a heartbeat needs `{key}` (config = {{ period = \"5m\", token_env = \"BACKUP_PUSH_TOKEN\" }})"
                    ),
                )),
            }
        };
        let period = string("period")?;
        let period = duration::parse(&period)
            .map_err(|e| error("/period", "config.period", e.to_string()))?;
        if period.is_zero() {
            return Err(error(
                "/period",
                "config.period",
                "must be longer than 0s".to_string(),
            ));
        }
        let token_env = string("token_env")?;
        if !hmrt_domain::env_name::is_valid(&token_env) {
            return Err(error(
                "/token_env",
                "config.token_env",
                hmrt_domain::env_name::problem(&token_env),
            ));
        }
        Ok(Settings { period, token_env })
    }
}

/// What a ping said: by default "it ran", or that it failed, with a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Ping {
    /// When it arrived.
    pub at: Timestamp,
    /// What it reports (`healthy` unless the job said otherwise).
    pub status: Status,
    /// What it said, cut and made one line.
    pub message: String,
}

impl Ping {
    /// A ping at `at`, its message made safe to show.
    pub fn new(at: Timestamp, status: Status, message: &str) -> Ping {
        Ping {
            at,
            status,
            message: crate::text::one_line(message, MAX_PUSH_MESSAGE),
        }
    }
}

/// The last ping of each heartbeat task, shared by the API (which records) and the daemon
/// (which judges).
#[derive(Debug, Default)]
pub struct Pings {
    last: Mutex<HashMap<String, Ping>>,
}

impl Pings {
    /// Records `ping` for `task`.
    pub fn record(&self, task: &str, ping: Ping) {
        crate::sync::lock(&self.last).insert(task.to_string(), ping);
    }

    /// The last ping of `task`, if any since the daemon started.
    pub fn last(&self, task: &str) -> Option<Ping> {
        crate::sync::lock(&self.last).get(task).cloned()
    }
}

/// The verdict at `now` on a task last pinged `last`, waiting since `started` (the daemon's
/// start) for its first ping. Until one period has passed without any ping the task is
/// `unknown`: a job that runs hourly has not had its chance yet.
pub fn judge(
    settings: &Settings,
    last: Option<&Ping>,
    started: Timestamp,
    now: Timestamp,
) -> (Status, String) {
    let period = duration::format(settings.period);
    match last {
        Some(ping) if now.since(ping.at) <= settings.period => {
            let ago = duration::format(round_ms(now.since(ping.at)));
            let said = if ping.message.is_empty() {
                String::new()
            } else {
                format!(": {}", ping.message)
            };
            (
                ping.status,
                format!("last ping {ago} ago (period {period}){said}"),
            )
        }
        Some(ping) => (
            Status::Unhealthy,
            format!(
                "no ping for {} (period {period})",
                duration::format(round_ms(now.since(ping.at)))
            ),
        ),
        None if now.since(started) <= settings.period => (
            Status::Unknown,
            format!("waiting for the first ping (period {period})"),
        ),
        None => (
            Status::Unhealthy,
            format!("no ping since hmrt started (period {period})"),
        ),
    }
}

/// When a task last pinged `last` turns unhealthy without another ping: the instant its check
/// must run to notice the silence on time.
pub fn deadline(settings: &Settings, last: Option<&Ping>, started: Timestamp) -> Timestamp {
    let from = last.map_or(started, |p| p.at);
    // One millisecond past: `judge` still calls a ping exactly one period old healthy.
    from.plus(settings.period).plus(Duration::from_millis(1))
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis().try_into().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            period: Duration::from_secs(60),
            token_env: "T".into(),
        }
    }

    #[test]
    fn silence_past_the_period_is_unhealthy() {
        let s = settings();
        let start = Timestamp(1_000_000);
        assert_eq!(
            judge(&s, None, start, start.plus(s.period)).0,
            Status::Unknown
        );
        assert_eq!(
            judge(&s, None, start, deadline(&s, None, start)).0,
            Status::Unhealthy
        );
        let ping = Ping::new(start.plus(Duration::from_secs(10)), Status::Healthy, "");
        let at = ping.at.plus(s.period);
        assert_eq!(judge(&s, Some(&ping), start, at).0, Status::Healthy);
        let late = deadline(&s, Some(&ping), start);
        let (status, message) = judge(&s, Some(&ping), start, late);
        assert_eq!(status, Status::Unhealthy);
        assert!(message.starts_with("no ping for 1m"), "{message}");
    }

    #[test]
    fn a_failure_ping_is_reported_as_sent_and_its_message_made_safe() {
        let s = settings();
        let ping = Ping::new(Timestamp(5), Status::Unhealthy, "backup\nfailed\x1b[2J");
        let (status, message) = judge(&s, Some(&ping), Timestamp(0), Timestamp(6));
        assert_eq!(status, Status::Unhealthy);
        assert!(
            !message.contains('\n') && !message.contains('\x1b'),
            "{message}"
        );
    }
}
