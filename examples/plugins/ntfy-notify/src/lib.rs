//! `ntfy-notify`: an hmrt receiver written the way a third party would write one. It delivers
//! an `[[alert]]` route's notices to an [ntfy](https://ntfy.sh)-style push server.
//!
//! A receiver is an ordinary action. When hmrt delivers a notice it calls `run` with the route's
//! receiver config plus a key `notice` holding the notice (a JSON object: `id`, `route`, `kind`,
//! `firing`, `task`, `labels`, `state`, `reason`, `summary`, `started_at`, `at`, `ends_at`,
//! `held`, `reminder`); `validate` gets the config without it. This plugin reads only `kind`,
//! `firing`, `task`, `summary` and `id`, and ignores the rest, so a newer host may add keys.
//!
//! Each notice is one `POST {url}/{topic}` whose body is the notice's summary (plain text), with
//! the headers
//!
//! - `Title: [FIRING] <task>`, or `[RESOLVED] <task>` when the notice ends something,
//! - `Priority: high` for `unhealthy`, `failed` and `reminder`, `default` for the other kinds,
//! - `Tags: rotating_light` while firing, `white_check_mark` when resolved.
//!
//! # Config
//!
//! ```toml
//! config = { url = "https://ntfy.example.com", topic = "hmrt-alerts", timeout = "10s" }
//! ```
//!
//! - `url` (required): the server's base URL, `http://` or `https://`, without a query.
//! - `topic` (required): 1 to 64 letters, digits, `-` or `_`.
//! - `timeout`: how long the POST may take, default `"10s"`.
//!
//! There is no `token`: secrets do not belong in tasks.toml. Let the server accept anonymous
//! posts to the topic instead.

// hmrt-plugin holds the bindings of the contract (hmrt's WIT package, `wit/plugin.wit`) and
// helpers; this example takes it from hmrt's source tree.
use hmrt_plugin::action::{Guest, Trigger};
use hmrt_plugin::http::{self, Request};
use hmrt_plugin::log::{self, Level};
use hmrt_plugin::types::{Capability, HostError, Need, PluginInfo, Task};
use hmrt_plugin::{Config, millis_u32, one_line};
use serde_json::Value;
use std::time::Duration;

/// The config key the host adds, at call time, with the notice to deliver.
const NOTICE_KEY: &str = "notice";

/// The config keys this plugin knows.
const KEYS: &[&str] = &["url", "topic", "timeout", NOTICE_KEY];

/// The error of a run without a notice (as a task's `on_failure`, say).
const NO_NOTICE: &str = "no notice: a receiver runs for an [[alert]] route";

/// Why `token` is refused, rather than the generic unknown-key message.
const NO_TOKEN: &str = "`token` is not a config key: secrets do not belong in tasks.toml; \
                        let the server accept anonymous posts to this topic instead";

/// The longest topic.
const MAX_TOPIC: usize = 64;

/// How long a POST may take when the config does not say.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most characters of the summary a message carries (ntfy's default message limit is
/// 4096 bytes; 1000 characters stay under it in any UTF-8).
const MAX_BODY_CHARS: usize = 1000;

/// The most characters of a header value.
const MAX_HEADER_CHARS: usize = 200;

/// How much of an error answer's body a result quotes.
const BODY_EXCERPT_BYTES: usize = 200;

/// The receiver config (without the notice).
#[derive(Debug)]
struct Settings {
    /// `{url}/{topic}`: where to POST.
    endpoint: String,
    /// `scheme://host[:port]` of `url`: what the route's grants must cover.
    origin: String,
    topic: String,
    timeout: Duration,
}

impl Settings {
    /// Reads the config; an error names the key that is wrong.
    fn from_json(json: &str) -> Result<(Settings, Config), String> {
        // Checked before the generic unknown-key error, so that the message says why.
        if matches!(serde_json::from_str::<Value>(json), Ok(Value::Object(map)) if map.contains_key("token"))
        {
            return Err(NO_TOKEN.to_owned());
        }
        let c = Config::parse(json, KEYS)?;
        let (base, origin) = base_url(c.required_string("url")?)?;
        let topic = c.required_string("topic")?;
        check_topic(topic)?;
        let settings = Settings {
            endpoint: format!("{base}/{topic}"),
            origin,
            topic: topic.to_owned(),
            timeout: c.duration("timeout")?.unwrap_or(DEFAULT_TIMEOUT),
        };
        Ok((settings, c))
    }
}

/// Checks the server URL; returns it without trailing slashes, and its origin.
fn base_url(url: &str) -> Result<(&str, String), String> {
    let Some((scheme, rest)) = url
        .split_once("://")
        .filter(|(scheme, _)| matches!(*scheme, "http" | "https"))
    else {
        return Err(format!(
            "`url` must be an absolute http:// or https:// URL, not {url:?}"
        ));
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("`url` must not contain spaces or control characters".to_owned());
    }
    if url.contains(['?', '#']) {
        return Err(format!(
            "`url` must be the server's base URL, without a query or fragment, not {url:?}"
        ));
    }
    let host = rest.split('/').next().unwrap_or("");
    if host.contains('@') {
        // Not quoted: the user info may be a password.
        return Err("`url` must not carry user info: secrets do not belong in tasks.toml".into());
    }
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("`url` has no host: {url:?}"));
    }
    Ok((url.trim_end_matches('/'), format!("{scheme}://{host}")))
}

/// Checks that `topic` is 1 to [`MAX_TOPIC`] letters, digits, `-` or `_`.
fn check_topic(topic: &str) -> Result<(), String> {
    let valid = (1..=MAX_TOPIC).contains(&topic.len())
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`topic` must be 1 to {MAX_TOPIC} letters, digits, '-' or '_', not {topic:?}"
        ))
    }
}

/// What this plugin reads of a notice.
#[derive(Debug)]
struct Notice<'a> {
    /// Unique per notice, stable across delivery retries; may be empty.
    id: &'a str,
    /// `unhealthy`, `recovered`, `failed`, `flapping`, `rearmed`, `held` or `reminder`.
    kind: &'a str,
    /// False when the notice ends something (`recovered`, `rearmed`).
    firing: bool,
    task: &'a str,
    /// One line saying what happened.
    summary: &'a str,
}

impl<'a> Notice<'a> {
    /// The notice in `config`, or why not.
    fn from_config(config: &'a Config) -> Result<Notice<'a>, String> {
        let Some(raw) = config.value(NOTICE_KEY) else {
            return Err(NO_NOTICE.to_owned());
        };
        let Value::Object(map) = raw else {
            return Err("`notice` must be a table".to_owned());
        };
        let text = |key: &str, required: bool| match map.get(key) {
            Some(Value::String(s)) if !(required && s.trim().is_empty()) => Ok(s.as_str()),
            Some(Value::String(_)) => Err(format!("`notice.{key}` must not be empty")),
            None | Some(Value::Null) if !required => Ok(""),
            None => Err(format!("notice has no `{key}`")),
            Some(_) => Err(format!("`notice.{key}` must be a string")),
        };
        let firing = match map.get("firing") {
            Some(Value::Bool(b)) => *b,
            None => return Err("notice has no `firing`".to_owned()),
            Some(_) => return Err("`notice.firing` must be a boolean".to_owned()),
        };
        Ok(Notice {
            id: text("id", false)?,
            kind: text("kind", true)?,
            firing,
            task: text("task", true)?,
            summary: text("summary", true)?,
        })
    }

    /// `[FIRING] web` or `[RESOLVED] web`.
    fn title(&self) -> String {
        let state = if self.firing {
            "[FIRING]"
        } else {
            "[RESOLVED]"
        };
        header_text(&format!("{state} {}", self.task))
    }

    /// ntfy's priority: `high` (a long vibration, a pop-over) for what needs someone now.
    fn priority(&self) -> &'static str {
        match self.kind {
            "unhealthy" | "failed" | "reminder" => "high",
            _ => "default",
        }
    }

    /// ntfy's tags; these two are emoji shortcodes, shown before the title.
    fn tags(&self) -> &'static str {
        if self.firing {
            "rotating_light"
        } else {
            "white_check_mark"
        }
    }

    /// The request headers.
    fn headers(&self) -> Vec<(String, String)> {
        vec![
            (
                "content-type".to_owned(),
                "text/plain; charset=utf-8".to_owned(),
            ),
            ("Title".to_owned(), self.title()),
            ("Priority".to_owned(), self.priority().to_owned()),
            ("Tags".to_owned(), self.tags().to_owned()),
        ]
    }

    /// The message: the summary, on one line.
    fn body(&self) -> String {
        one_line(self.summary, MAX_BODY_CHARS)
    }
}

/// `text` as a header value: printable ASCII only (anything else becomes `?`), cut short.
fn header_text(text: &str) -> String {
    let ascii: String = text
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    one_line(&ascii, MAX_HEADER_CHARS)
}

/// The result for an answer with `status` and `body`.
fn answer(s: &Settings, status: u16, body: &[u8]) -> Result<String, String> {
    if (200..300).contains(&status) {
        Ok(format!("sent to {}", s.topic))
    } else {
        Err(format!(
            "POST {} answered HTTP {status}: {}",
            s.endpoint,
            body_excerpt(body)
        ))
    }
}

/// The result for a request the host did not complete. A denial says what to grant: the fix
/// is in the route's receiver config.
fn host_error(s: &Settings, e: &HostError) -> String {
    match e {
        HostError::Denied(_) => format!(
            "POST {} was {}; the [[alert]] route's receiver grants must cover {}",
            s.endpoint,
            e.describe(),
            s.origin
        ),
        _ => format!("POST {}: {}", s.endpoint, e.describe()),
    }
}

/// The start of an answer's body as one line, without control characters.
fn body_excerpt(body: &[u8]) -> String {
    let head = String::from_utf8_lossy(&body[..body.len().min(BODY_EXCERPT_BYTES)]);
    let line = head
        .split_whitespace()
        .map(|word| word.chars().filter(|c| !c.is_control()).collect::<String>())
        .collect::<Vec<_>>()
        .join(" ");
    if line.is_empty() {
        "(empty body)".to_owned()
    } else {
        line
    }
}

struct NtfyNotify;

impl Guest for NtfyNotify {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "ntfy-notify".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "Delivers alert notices to an ntfy push server topic.".to_owned(),
            capabilities: vec![Capability::Http],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        let (s, _) = Settings::from_json(&task.config)?;
        Ok(vec![Need::Http(s.endpoint)])
    }

    fn run(task: Task, trigger: Trigger) -> Result<String, String> {
        let (s, c) = Settings::from_json(&task.config)?;
        let notice = Notice::from_config(&c)?;
        log::write(
            Level::Info,
            &format!(
                "sending {} notice {} for {} to {} (attempt {})",
                notice.kind, notice.id, notice.task, s.endpoint, trigger.attempt
            ),
        );
        let request = Request {
            method: "POST".to_owned(),
            url: s.endpoint.clone(),
            headers: notice.headers(),
            body: Some(notice.body().into_bytes()),
            timeout_ms: millis_u32(s.timeout),
        };
        match http::send(&request) {
            Ok(response) => answer(&s, response.status, &response.body),
            Err(e) => Err(host_error(&s, &e)),
        }
    }
}

hmrt_plugin::export_action!(NtfyNotify);

#[cfg(test)]
mod tests {
    use super::*;
    use hmrt_plugin::types::Status;
    use serde_json::json;

    const CONFIG: &str = r#"{"url": "https://ntfy.example.com/", "topic": "hmrt-alerts"}"#;

    fn task(config: &str) -> Task {
        Task {
            name: "oncall".to_owned(),
            program: None,
            config: config.to_owned(),
        }
    }

    /// A config with a notice of `kind`, firing unless `kind` ends something.
    fn with_notice(kind: &str) -> Config {
        let firing = !matches!(kind, "recovered" | "rearmed");
        let config = json!({
            "url": "http://127.0.0.1:8090",
            "topic": "t",
            "notice": {
                "id": "oncall/web/7",
                "route": "oncall",
                "kind": kind,
                "firing": firing,
                "task": "web",
                "labels": {"team": "web"},
                "summary": "web is unhealthy: GET http://127.0.0.1:8080/health returned 500",
                "reminder": 0,
                "some_future_key": {"x": 1}
            }
        });
        Config::parse(&config.to_string(), KEYS).unwrap()
    }

    #[test]
    fn config_defaults_and_need() {
        let (s, _) = Settings::from_json(CONFIG).unwrap();
        assert_eq!(s.endpoint, "https://ntfy.example.com/hmrt-alerts");
        assert_eq!(s.origin, "https://ntfy.example.com");
        assert_eq!(
            (s.topic.as_str(), s.timeout),
            ("hmrt-alerts", DEFAULT_TIMEOUT)
        );

        let config = r#"{"url": "http://127.0.0.1:8090/ntfy", "topic": "A_b-9", "timeout": "3s"}"#;
        let needs = NtfyNotify::validate(task(config)).unwrap();
        assert!(matches!(&needs[..], [Need::Http(u)] if u == "http://127.0.0.1:8090/ntfy/A_b-9"));
        let (s, _) = Settings::from_json(config).unwrap();
        assert_eq!(
            (s.origin.as_str(), s.timeout),
            ("http://127.0.0.1:8090", Duration::from_secs(3))
        );

        let longest = format!(r#"{{"url": "http://h", "topic": "{}"}}"#, "a".repeat(64));
        assert!(Settings::from_json(&longest).is_ok());
        // The host adds the notice at call time; it is not an unknown key.
        let with = json!({"url": "http://h", "topic": "t", "notice": {"kind": "held"}});
        assert!(Settings::from_json(&with.to_string()).is_ok());
    }

    #[test]
    fn config_errors_name_the_key() {
        let too_long = format!(r#"{{"url": "http://h", "topic": "{}"}}"#, "a".repeat(65));
        let cases = [
            (r#"{"topic": "t"}"#, "`url`"),
            (r#"{"url": "http://h"}"#, "`topic`"),
            (r#"{"url": "ntfy.sh", "topic": "t"}"#, "`url`"),
            (r#"{"url": "ftp://h", "topic": "t"}"#, "`url`"),
            (r#"{"url": "http://", "topic": "t"}"#, "`url`"),
            (r#"{"url": "http://h x", "topic": "t"}"#, "`url`"),
            (r#"{"url": "http://h/?auth=x", "topic": "t"}"#, "`url`"),
            (r#"{"url": "http://h", "topic": ""}"#, "`topic`"),
            (r#"{"url": "http://h", "topic": "a/b"}"#, "`topic`"),
            (r#"{"url": "http://h", "topic": "alerts!"}"#, "`topic`"),
            (&too_long, "`topic`"),
            (r#"{"url": "http://h", "topic": 5}"#, "`topic`"),
            (
                r#"{"url": "http://h", "topic": "t", "timeout": "soon"}"#,
                "`timeout`",
            ),
            (
                r#"{"url": "http://h", "topic": "t", "priority": "max"}"#,
                "`priority`",
            ),
            (
                r#"{"url": "http://h", "topic": "t", "token": "tk_x"}"#,
                "`token`",
            ),
        ];
        for (json, key) in cases {
            let err = Settings::from_json(json).unwrap_err();
            assert!(err.contains(key), "{json}: {err}");
        }
    }

    #[test]
    fn secrets_are_refused_without_being_quoted() {
        let err = Settings::from_json(r#"{"url": "http://h", "topic": "t", "token": "tk_secret"}"#)
            .unwrap_err();
        assert_eq!(err, NO_TOKEN);
        let err =
            Settings::from_json(r#"{"url": "https://me:secret@h", "topic": "t"}"#).unwrap_err();
        assert!(
            err.contains("user info") && !err.contains("secret@"),
            "{err}"
        );
    }

    #[test]
    fn run_without_a_notice_says_so() {
        let trigger = Trigger {
            status: Status::Unhealthy,
            message: "web is down".to_owned(),
            attempt: 1,
        };
        assert_eq!(
            NtfyNotify::run(task(CONFIG), trigger),
            Err(NO_NOTICE.to_owned())
        );
    }

    #[test]
    fn title_priority_and_tags_follow_the_kind() {
        let cases = [
            ("unhealthy", "[FIRING] web", "high", "rotating_light"),
            ("failed", "[FIRING] web", "high", "rotating_light"),
            ("reminder", "[FIRING] web", "high", "rotating_light"),
            ("flapping", "[FIRING] web", "default", "rotating_light"),
            ("held", "[FIRING] web", "default", "rotating_light"),
            ("recovered", "[RESOLVED] web", "default", "white_check_mark"),
            ("rearmed", "[RESOLVED] web", "default", "white_check_mark"),
        ];
        for (kind, title, priority, tags) in cases {
            let c = with_notice(kind);
            let n = Notice::from_config(&c).unwrap();
            assert_eq!(
                (n.title().as_str(), n.priority(), n.tags()),
                (title, priority, tags),
                "{kind}"
            );
            let headers = n.headers();
            for (name, value) in [("Title", title), ("Priority", priority), ("Tags", tags)] {
                assert!(
                    headers.iter().any(|(n, v)| n == name && v == value),
                    "{kind}: {name}"
                );
            }
        }
        let c = with_notice("unhealthy");
        let n = Notice::from_config(&c).unwrap();
        assert_eq!(
            n.body(),
            "web is unhealthy: GET http://127.0.0.1:8080/health returned 500"
        );
        assert_eq!(n.id, "oncall/web/7");
    }

    #[test]
    fn notice_errors_name_the_key() {
        let cases = [
            (json!([1]), "`notice`"),
            (
                json!({"firing": true, "task": "w", "summary": "s"}),
                "`kind`",
            ),
            (
                json!({"kind": "k", "task": "w", "summary": "s"}),
                "`firing`",
            ),
            (
                json!({"kind": "k", "firing": "yes", "task": "w", "summary": "s"}),
                "`notice.firing`",
            ),
            (
                json!({"kind": "k", "firing": true, "task": " ", "summary": "s"}),
                "`notice.task`",
            ),
            (
                json!({"kind": "k", "firing": true, "task": "w"}),
                "`summary`",
            ),
            (
                json!({"kind": "k", "firing": true, "task": "w", "summary": 1}),
                "`notice.summary`",
            ),
        ];
        for (notice, key) in cases {
            let config = json!({"url": "http://h", "topic": "t", "notice": notice}).to_string();
            let c = Config::parse(&config, KEYS).unwrap();
            let err = Notice::from_config(&c).unwrap_err();
            assert!(err.contains(key), "{notice}: {err}");
        }
    }

    #[test]
    fn texts_are_safe_and_short() {
        assert_eq!(
            header_text("[FIRING] wéb\r\nX-Evil: 1"),
            "[FIRING] w?b??X-Evil: 1"
        );
        assert_eq!(
            header_text(&"x".repeat(500)).chars().count(),
            MAX_HEADER_CHARS
        );
        let c = with_notice("unhealthy");
        let mut n = Notice::from_config(&c).unwrap();
        let long = format!("{}\nsecond line", "é".repeat(5000));
        n.summary = &long;
        let body = n.body();
        assert!(body.chars().count() <= MAX_BODY_CHARS && body.len() < 4096);
        assert!(!body.contains('\n'));
    }

    #[test]
    fn answers_and_host_errors() {
        let (s, _) = Settings::from_json(CONFIG).unwrap();
        assert_eq!(answer(&s, 200, b"{}"), Ok("sent to hmrt-alerts".to_owned()));
        let err = answer(
            &s,
            403,
            b"{\"code\":40301,\n\"error\":\"forbidden\"}\x1b[31m",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "POST https://ntfy.example.com/hmrt-alerts answered HTTP 403: \
             {\"code\":40301, \"error\":\"forbidden\"}[31m"
        );
        assert!(
            answer(&s, 500, b"")
                .unwrap_err()
                .ends_with("HTTP 500: (empty body)")
        );
        assert!(answer(&s, 500, &[b'x'; 1000]).unwrap_err().len() < 300);

        let denied = HostError::Denied("POST https://ntfy.example.com/hmrt-alerts".to_owned());
        let err = host_error(&s, &denied);
        assert!(err.contains("denied"), "{err}");
        assert!(
            err.ends_with("grants must cover https://ntfy.example.com"),
            "{err}"
        );
        assert_eq!(
            host_error(&s, &HostError::Timeout),
            "POST https://ntfy.example.com/hmrt-alerts: timeout"
        );
    }
}
