//! What every receiver shares: reading the notice the host adds to the config, checking and
//! showing URLs, posting JSON and turning the answer into the action's result.
//!
//! This file is compiled into both the `webhook` and the `alertmanager` action (the latter
//! includes it with `#[path]`), so the two read notices and report deliveries the same way
//! without a helper crate of their own.

use hmrt_plugin::http::{self, Request};
use hmrt_plugin::types::HostError;
use hmrt_plugin::{Config, millis_u32, one_line};
use serde_json::{Map, Value};
use std::time::Duration;

/// The config key the host adds, at call time, with the notice to deliver.
pub const NOTICE_KEY: &str = "notice";

/// The error of a receiver run without a notice (as a task's `on_failure`, say).
pub const NO_NOTICE: &str = "no notice: a receiver runs for an [[alert]] route";

/// How much of an error answer's body a result quotes.
const BODY_EXCERPT_BYTES: usize = 200;

/// A notice as the host hands it over under the config key `notice`.
///
/// Only `kind`, `firing`, `task` and `summary` are required: a notice that cannot be delivered
/// is retried until the route gives up, so a missing detail is better shown empty than made a
/// delivery failure. A key that is present with the wrong type is an error (a host bug, named).
/// Keys this version does not know are ignored, so a newer host can add some.
#[derive(Debug)]
pub struct Notice<'a> {
    /// The notice object exactly as received, for receivers that forward it.
    pub raw: &'a Value,
    /// Unique per notice, stable across delivery retries.
    pub id: &'a str,
    /// The `[[alert]]` route's name.
    pub route: &'a str,
    /// `unhealthy`, `recovered`, `failed`, `flapping`, `rearmed`, `held` or `reminder`.
    pub kind: &'a str,
    /// False when the notice ends something (`recovered`, `rearmed`).
    pub firing: bool,
    /// The task's name.
    pub task: &'a str,
    /// The task's labels, sorted by name.
    pub labels: Vec<(&'a str, &'a str)>,
    /// The task's state when the notice was made.
    pub state: &'a str,
    /// Why, in the check's words: untrusted text, possibly several lines.
    pub reason: &'a str,
    /// One line for titles.
    pub summary: &'a str,
    /// When the incident began (RFC 3339, UTC).
    pub started_at: &'a str,
    /// When this notice was made (RFC 3339, UTC).
    pub at: &'a str,
    /// Resolved: when it ended; firing: when the alert should expire unless sent again.
    pub ends_at: Option<&'a str>,
    /// Dependants whose notices this outage holds.
    pub held: Vec<&'a str>,
    /// 0 for an incident's first notice, n for its n-th reminder.
    pub reminder: u64,
}

impl<'a> Notice<'a> {
    /// The notice in `config`, or why not.
    pub fn from_config(config: &'a Config) -> Result<Notice<'a>, String> {
        match config.value(NOTICE_KEY) {
            None => Err(NO_NOTICE.to_owned()),
            Some(raw) => Notice::from_value(raw),
        }
    }

    /// Reads a notice object.
    pub fn from_value(raw: &'a Value) -> Result<Notice<'a>, String> {
        let Value::Object(map) = raw else {
            return Err(format!("`notice` must be a table, not {}", kind_of(raw)));
        };
        let firing = match map.get("firing") {
            Some(Value::Bool(b)) => *b,
            None => return Err("notice has no `firing`".to_owned()),
            Some(other) => {
                return Err(format!(
                    "`notice.firing` must be a boolean, not {}",
                    kind_of(other)
                ));
            }
        };
        let ends_at = match map.get("ends_at") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(other) => {
                return Err(format!(
                    "`notice.ends_at` must be a string or null, not {}",
                    kind_of(other)
                ));
            }
        };
        let mut labels = match map.get("labels") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(table)) => table
                .iter()
                .map(|(name, value)| match value {
                    Value::String(v) => Ok((name.as_str(), v.as_str())),
                    other => Err(format!(
                        "`notice.labels.{name}` must be a string, not {}",
                        kind_of(other)
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => {
                return Err(format!(
                    "`notice.labels` must be a table, not {}",
                    kind_of(other)
                ));
            }
        };
        // serde_json keeps insertion order with some feature sets: sort for stable payloads.
        labels.sort_unstable();
        let held = match map.get("held") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.as_str()),
                    other => Err(format!(
                        "`notice.held` must be a list of strings, but holds {}",
                        kind_of(other)
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => {
                return Err(format!(
                    "`notice.held` must be a list, not {}",
                    kind_of(other)
                ));
            }
        };
        let reminder = match map.get("reminder") {
            None | Some(Value::Null) => 0,
            Some(value) => value
                .as_u64()
                .ok_or_else(|| format!("`notice.reminder` must be a whole number, not {value}"))?,
        };
        Ok(Notice {
            raw,
            id: text(map, "id", false)?,
            route: text(map, "route", false)?,
            kind: text(map, "kind", true)?,
            firing,
            task: text(map, "task", true)?,
            labels,
            state: text(map, "state", false)?,
            reason: text(map, "reason", false)?,
            summary: text(map, "summary", true)?,
            started_at: text(map, "started_at", false)?,
            at: text(map, "at", false)?,
            ends_at,
            held,
            reminder,
        })
    }
}

/// The string at `notice.key`; empty when absent and not `required`.
fn text<'a>(map: &'a Map<String, Value>, key: &str, required: bool) -> Result<&'a str, String> {
    match map.get(key) {
        Some(Value::String(s)) if !(required && s.trim().is_empty()) => Ok(s),
        Some(Value::String(_)) => Err(format!("`notice.{key}` must not be empty")),
        None | Some(Value::Null) if !required => Ok(""),
        None | Some(Value::Null) => Err(format!("notice has no `{key}`")),
        Some(other) => Err(format!(
            "`notice.{key}` must be a string, not {}",
            kind_of(other)
        )),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

/// Checks that the URL at config key `key` is an absolute http(s) URL with a host.
pub fn check_url(key: &str, url: &str) -> Result<(), String> {
    let Some((_, rest)) = url
        .split_once("://")
        .filter(|(scheme, _)| matches!(*scheme, "http" | "https"))
    else {
        return Err(format!(
            "`{key}` must be an absolute http:// or https:// URL, not {url:?}"
        ));
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "`{key}` must not contain spaces or control characters"
        ));
    }
    let host = authority(rest).rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("`{key}` has no host: {url:?}"));
    }
    Ok(())
}

/// The part of `rest` (a URL after `scheme://`) before its path, query or fragment.
fn authority(rest: &str) -> &str {
    rest.split(['/', '?', '#']).next().unwrap_or("")
}

/// `scheme://host[:port]` of a URL [`check_url`] accepted: what a task's grants are written in.
pub fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    // User info is never part of an origin, and may be a password.
    let host = authority(rest).rsplit('@').next().unwrap_or("");
    format!("{scheme}://{host}")
}

/// `url` as it may appear in results and logs: no user info, no query (`?…`), and with
/// `hide_path`, no path (`/…`) either. Chat webhooks (Slack, Discord, Teams) carry their
/// secret in the path, and results end up in logs, the state file and the API.
pub fn shown_url(url: &str, hide_path: bool) -> String {
    let mut shown = origin(url);
    let rest = url.split_once("://").map_or("", |(_, rest)| rest);
    let after_authority = &rest[authority(rest).len()..];
    let (path_and_query, _fragment) = after_authority
        .split_once('#')
        .unwrap_or((after_authority, ""));
    let (path, query) = path_and_query
        .split_once('?')
        .map_or((path_and_query, None), |(p, q)| (p, Some(q)));
    if hide_path && !path.is_empty() && path != "/" {
        shown.push_str("/…");
    } else {
        shown.push_str(path);
    }
    if query.is_some() {
        shown.push_str("?…");
    }
    shown
}

/// Where a receiver posts: the URL and how it may be shown.
pub struct Target<'a> {
    /// The URL to post to.
    pub url: &'a str,
    /// The URL as results and logs show it ([`shown_url`]).
    pub shown: String,
}

impl<'a> Target<'a> {
    /// A target for `url`, its path hidden in messages when `hide_path`.
    pub fn new(url: &'a str, hide_path: bool) -> Target<'a> {
        Target {
            url,
            shown: shown_url(url, hide_path),
        }
    }

    /// POSTs `body` as JSON with `headers` (a `content-type` among them replaces ours) and
    /// says how it went: Ok for a 2xx answer, Err naming the status and the start of the body
    /// otherwise, or the host's error.
    pub fn post_json(
        &self,
        body: &Value,
        headers: &[(String, String)],
        timeout: Duration,
    ) -> Result<String, String> {
        let mut all = Vec::with_capacity(headers.len() + 1);
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        {
            all.push(("content-type".to_owned(), "application/json".to_owned()));
        }
        all.extend(headers.iter().cloned());
        // Serialising a Value cannot fail: its keys are strings.
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let response = http::send(&Request {
            method: "POST".to_owned(),
            url: self.url.to_owned(),
            headers: all,
            body: Some(bytes),
            timeout_ms: millis_u32(timeout),
        });
        match response {
            Ok(r) => self.answer(r.status, &r.body),
            Err(e) => Err(self.host_error(&e)),
        }
    }

    /// The result for an answer with `status` and `body`.
    pub fn answer(&self, status: u16, body: &[u8]) -> Result<String, String> {
        if (200..300).contains(&status) {
            Ok(format!("delivered to {} (HTTP {status})", self.shown))
        } else {
            Err(format!(
                "{} answered HTTP {status}: {}",
                self.shown,
                body_excerpt(body)
            ))
        }
    }

    /// The result for a request the host did not complete. A denial says what to grant, since
    /// the fix is in the route's receiver config, not in the receiver.
    pub fn host_error(&self, e: &HostError) -> String {
        // The host names the URL it was asked for; a chat webhook's URL is a secret.
        let text = e.describe().replace(self.url, &self.shown);
        match e {
            HostError::Denied(_) => format!(
                "POST {} was {text}; the [[alert]] route's receiver grants must cover {}",
                self.shown,
                origin(self.url)
            ),
            _ => format!("POST {}: {text}", self.shown),
        }
    }
}

/// The first [`BODY_EXCERPT_BYTES`] bytes of an answer's body as one line of text.
pub fn body_excerpt(body: &[u8]) -> String {
    let head = &body[..body.len().min(BODY_EXCERPT_BYTES)];
    // Cut at the last whole character rather than show a replacement for a split one.
    let text = match std::str::from_utf8(head) {
        Ok(text) => text.to_owned(),
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&head[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(head).into_owned(),
    };
    // Whitespace runs (newlines included) become one space; other control characters go, so a
    // body cannot forge log lines or terminal escapes.
    let line = text
        .split_whitespace()
        .map(|word| word.chars().filter(|c| !c.is_control()).collect::<String>())
        .collect::<Vec<_>>()
        .join(" ");
    if line.is_empty() {
        "(empty body)".to_owned()
    } else {
        one_line(&line, BODY_EXCERPT_BYTES)
    }
}

/// `text` trimmed and cut to at most `max_chars` characters, ending in `…` when cut. Unlike
/// [`one_line`] it keeps every line, for texts a receiver shows whole.
pub fn cut(text: &str, max_chars: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

/// `[FIRING]`, `[FIRING, reminder 2]` or `[RESOLVED]`: words, not emoji, so that it reads the
/// same in every client and in a notification's preview.
pub fn prefix(notice: &Notice<'_>) -> String {
    match (notice.firing, notice.reminder) {
        (false, _) => "[RESOLVED]".to_owned(),
        (true, 0) => "[FIRING]".to_owned(),
        (true, n) => format!("[FIRING, reminder {n}]"),
    }
}

/// The prefix and the summary, on one line.
pub fn headline(notice: &Notice<'_>) -> String {
    one_line(&format!("{} {}", prefix(notice), notice.summary), 4000)
}

/// `team=web, tier=1`.
pub fn labels_text(notice: &Notice<'_>) -> String {
    let pairs: Vec<String> = notice
        .labels
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    pairs.join(", ")
}

/// The facts every chat format shows besides the reason, as (name, value), empty ones left out.
pub fn facts(notice: &Notice<'_>) -> Vec<(&'static str, String)> {
    let mut facts = vec![
        ("Task", notice.task.to_owned()),
        ("State", notice.state.to_owned()),
        ("Started", notice.started_at.to_owned()),
        // A firing notice's ends_at is only an expiry for Alertmanager-like receivers.
        (
            "Ended",
            (!notice.firing)
                .then_some(notice.ends_at)
                .flatten()
                .unwrap_or("")
                .to_owned(),
        ),
        ("Route", notice.route.to_owned()),
        ("Labels", labels_text(notice)),
        ("Held", notice.held.join(", ")),
    ];
    facts.retain(|(_, value)| !value.is_empty());
    facts
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A full notice as the host makes it, firing unless `kind` ends something.
    pub(crate) fn notice(kind: &str) -> Value {
        let firing = !matches!(kind, "recovered" | "rearmed");
        json!({
            "id": "oncall/web/7",
            "route": "oncall",
            "kind": kind,
            "firing": firing,
            "task": "web",
            "labels": {"team": "web", "tier": "front-end"},
            "state": if firing { "unhealthy" } else { "healthy" },
            "reason": "3 failures in a row: GET http://127.0.0.1:8080/health returned 500",
            "summary": "web is unhealthy: 3 failures in a row: GET http://127.0.0.1:8080/health returned 500",
            "started_at": "2026-12-04T18:00:00.000Z",
            "at": "2026-12-04T18:00:05.000Z",
            "ends_at": if firing { "2026-12-04T18:10:05.000Z" } else { "2026-12-04T18:00:05.000Z" },
            "held": ["api"],
            "reminder": 0,
            "some_future_key": {"x": 1}
        })
    }

    #[test]
    fn notices_read_and_tolerate_new_keys() {
        let raw = notice("unhealthy");
        let n = Notice::from_value(&raw).unwrap();
        assert_eq!((n.kind, n.task, n.firing), ("unhealthy", "web", true));
        assert_eq!(n.labels, vec![("team", "web"), ("tier", "front-end")]);
        assert_eq!(n.held, vec!["api"]);
        assert_eq!(n.ends_at, Some("2026-12-04T18:10:05.000Z"));

        let minimal = json!({"kind": "held", "firing": true, "task": "api", "summary": "s",
                             "ends_at": null});
        let n = Notice::from_value(&minimal).unwrap();
        assert_eq!(
            (n.route, n.reason, n.ends_at, n.reminder),
            ("", "", None, 0)
        );
        assert!(n.labels.is_empty() && n.held.is_empty());
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
                json!({"kind": "", "firing": true, "task": "w", "summary": "s"}),
                "`notice.kind`",
            ),
            (
                json!({"kind": "k", "firing": true, "task": "w", "summary": "s", "labels": {"a": 1}}),
                "`notice.labels.a`",
            ),
            (
                json!({"kind": "k", "firing": true, "task": "w", "summary": "s", "held": "api"}),
                "`notice.held`",
            ),
            (
                json!({"kind": "k", "firing": true, "task": "w", "summary": "s", "reminder": -1}),
                "`notice.reminder`",
            ),
            (
                json!({"kind": "k", "firing": true, "task": "w", "summary": "s", "ends_at": 5}),
                "`notice.ends_at`",
            ),
        ];
        for (raw, key) in cases {
            let err = Notice::from_value(&raw).unwrap_err();
            assert!(err.contains(key), "{raw}: {err}");
        }
        let c = Config::parse(r#"{"url": "http://x"}"#, &["url", NOTICE_KEY]).unwrap();
        assert_eq!(Notice::from_config(&c).unwrap_err(), NO_NOTICE);
    }

    #[test]
    fn urls_checked_and_shown() {
        for good in [
            "http://127.0.0.1:9093",
            "https://hooks.slack.com/services/T/B/X",
        ] {
            assert_eq!(check_url("url", good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "ftp://x",
            "hooks.slack.com/x",
            "http://",
            "http:///x",
            "http://a b",
        ] {
            assert!(
                check_url("url", bad).unwrap_err().contains("`url`"),
                "{bad}"
            );
        }
        let slack = "https://hooks.slack.com/services/T0/B0/secret";
        assert_eq!(origin(slack), "https://hooks.slack.com");
        assert_eq!(shown_url(slack, true), "https://hooks.slack.com/…");
        assert_eq!(
            shown_url(slack, false),
            "https://hooks.slack.com/services/T0/B0/secret"
        );
        let basic = "http://user:pw@am.local:9093/api/v2/alerts?token=t#x";
        assert_eq!(origin(basic), "http://am.local:9093");
        assert_eq!(
            shown_url(basic, false),
            "http://am.local:9093/api/v2/alerts?…"
        );
        assert_eq!(shown_url("http://h:1", true), "http://h:1");
    }

    #[test]
    fn answers_and_host_errors() {
        let t = Target::new("https://hooks.slack.com/services/T0/B0/secret", true);
        assert_eq!(
            t.answer(200, b"ok"),
            Ok("delivered to https://hooks.slack.com/… (HTTP 200)".to_owned())
        );
        let long = format!("invalid_payload\n\t{}", "x".repeat(500));
        let err = t.answer(400, long.as_bytes()).unwrap_err();
        assert!(err.starts_with("https://hooks.slack.com/… answered HTTP 400: invalid_payload x"));
        assert!(err.chars().count() < 260 && !err.contains('\n'), "{err}");
        assert!(t.answer(500, b"").unwrap_err().ends_with("(empty body)"));

        let denied = HostError::Denied(
            "POST https://hooks.slack.com/services/T0/B0/secret is not granted".to_owned(),
        );
        let err = t.host_error(&denied);
        assert!(err.contains("denied"), "{err}");
        assert!(
            err.contains("grants must cover https://hooks.slack.com"),
            "{err}"
        );
        assert!(!err.contains("secret"), "{err}");
        assert_eq!(
            t.host_error(&HostError::Timeout),
            "POST https://hooks.slack.com/…: timeout"
        );
    }

    #[test]
    fn excerpts_and_cuts() {
        // 199 ASCII bytes and then a two-byte character split at byte 200.
        let mut body = "a".repeat(199).into_bytes();
        body.extend("é".as_bytes());
        assert_eq!(body_excerpt(&body), "a".repeat(199));
        assert_eq!(
            body_excerpt(b"line one\r\nline\x1b[31m two"),
            "line one line[31m two"
        );
        assert_eq!(cut("  abc\ndef  ", 100), "abc\ndef");
        assert_eq!(cut("abc def", 5), "abc…");
        assert_eq!(cut("abcdef", 4).chars().count(), 4);
    }
}
