//! hmrt's built-in `webhook` action: a receiver that delivers an `[[alert]]` route's notices as
//! one HTTP POST, in a generic JSON shape or as a Slack, Discord or Microsoft Teams message.
//!
//! # The notice contract
//!
//! A receiver is an action whose `task.config` is the route's receiver config plus a key
//! `notice` that the host adds when it delivers (it is absent when the host calls `validate`).
//! `trigger.message` is the notice's one-line summary and `trigger.attempt` the delivery attempt
//! (1, 2, ...). The notice is a JSON object:
//!
//! ```json
//! {
//!   "id": "oncall/web/7",            // unique per notice; stable across delivery retries
//!   "route": "oncall",               // the [[alert]] route's name
//!   "kind": "unhealthy",             // or recovered, failed, flapping, rearmed, held, reminder
//!   "firing": true,                  // false for recovered and rearmed
//!   "task": "web",
//!   "labels": {"team": "web"},       // the task's labels, may be empty
//!   "state": "unhealthy",            // the task's state when the notice was made
//!   "reason": "3 failures in a row: GET http://127.0.0.1:8080/health returned 500",
//!   "summary": "web is unhealthy: 3 failures in a row: ...",   // one line, for titles
//!   "started_at": "2026-12-04T18:00:00.000Z",   // when the incident began (RFC 3339 UTC)
//!   "at": "2026-12-04T18:00:05.000Z",           // when this notice was made
//!   "ends_at": "2026-12-04T18:10:05.000Z",      // resolved: when it ended; firing: when the
//!                                               // alert expires unless sent again; or null
//!   "held": ["api"],                 // dependants whose notices this outage holds
//!   "reminder": 0                    // 0 for the first notice, n for the n-th reminder
//! }
//! ```
//!
//! Keys of the notice this version does not know are ignored (a newer host may add some); keys
//! of the receiver config it does not know are errors. `reason` is untrusted text (it quotes
//! what the checked service answered), so it only ever reaches a payload through serde_json, and
//! through Slack's own escaping where Slack would read markup.
//!
//! # Config
//!
//! - `url` (required): where to POST, `http://` or `https://`. The route's receiver grants must
//!   cover its origin; `validate` lists it so `hmrt validate` can tell.
//! - `format`: `"json"` (default), `"slack"`, `"discord"` or `"teams"`.
//! - `headers`: a table of extra request headers, such as `Authorization`. Never logged.
//! - `timeout`: how long the POST may take, default `"10s"`.
//!
//! The URLs of Slack, Discord and Teams webhooks are themselves secrets, so for those formats
//! results and logs show only the URL's origin (`https://hooks.slack.com/…`); queries are hidden
//! for every format.
//!
//! # Payloads
//!
//! - `json`: `{"notice": <the notice as received>, "text": <summary>}`.
//! - `slack`: an incoming-webhook message, `{"text": "[FIRING] <summary>", "blocks": [...]}`.
//! - `discord`: `{"content": ..., "allowed_mentions": {"parse": []}, "embeds": [...]}`, cut to
//!   Discord's limits; mentions are disabled so a reason cannot ping `@everyone`.
//! - `teams`: an Office 365 connector `MessageCard`.

mod receiver;

use hmrt_plugin::Config;
use hmrt_plugin::action::{Guest, Trigger};
use hmrt_plugin::log::{self, Level};
use hmrt_plugin::types::{Capability, Need, PluginInfo, Task};
use receiver::{NOTICE_KEY, Notice, Target, check_url, cut, facts, headline};
use serde_json::{Value, json};
use std::time::Duration;

const KEYS: &[&str] = &["url", "format", "headers", "timeout", NOTICE_KEY];

/// Discord's embed colour for a firing notice (red).
const DISCORD_RED: u32 = 0xE7_4C_3C;
/// Discord's embed colour for a notice that ends something (green).
const DISCORD_GREEN: u32 = 0x2E_CC_71;

/// The shape of the POST body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// The notice itself, for receivers of one's own.
    Json,
    /// A Slack incoming webhook.
    Slack,
    /// A Discord webhook.
    Discord,
    /// A Microsoft Teams (Office 365) connector.
    Teams,
}

impl Format {
    const ALL: [Format; 4] = [Format::Json, Format::Slack, Format::Discord, Format::Teams];

    fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Slack => "slack",
            Format::Discord => "discord",
            Format::Teams => "teams",
        }
    }

    /// Whether the URL's path is a secret (chat webhooks put their token in it).
    fn hides_path(self) -> bool {
        self != Format::Json
    }
}

/// The receiver config (without the notice).
#[derive(Debug)]
struct Settings {
    url: String,
    format: Format,
    headers: Vec<(String, String)>,
    timeout: Duration,
}

impl Settings {
    fn from_config(c: &Config) -> Result<Settings, String> {
        let url = c.required_string("url")?;
        check_url("url", url)?;
        let format = match c.string("format")? {
            None => Format::Json,
            Some(name) => Format::ALL
                .into_iter()
                .find(|f| f.as_str() == name)
                .ok_or_else(|| {
                    format!("`format` must be one of json, slack, discord, teams, not {name:?}")
                })?,
        };
        let headers = c.string_table("headers")?;
        for (name, value) in &headers {
            // Checked here so that a bad header is a config error, not a failure at 3 am. The
            // value is never quoted: it is usually a secret.
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(format!("`headers.{name}` is not a valid header name"));
            }
            if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                return Err(format!(
                    "`headers.{name}` must not contain line breaks or NUL"
                ));
            }
        }
        Ok(Settings {
            url: url.to_owned(),
            format,
            headers,
            timeout: c.duration("timeout")?.unwrap_or(Duration::from_secs(10)),
        })
    }

    fn from_json(json: &str) -> Result<(Settings, Config), String> {
        let c = Config::parse(json, KEYS)?;
        Ok((Settings::from_config(&c)?, c))
    }
}

/// Whether `b` may appear in a header name (an RFC 9110 token).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The POST body for `notice` in `format`.
fn payload(format: Format, notice: &Notice<'_>) -> Value {
    match format {
        Format::Json => json!({"notice": notice.raw, "text": notice.summary}),
        Format::Slack => slack(notice),
        Format::Discord => discord(notice),
        Format::Teams => teams(notice),
    }
}

/// `text` with Slack's three control characters escaped, cut so that the escaped text is at
/// most `max` characters. Slack reads `<...>` as links and mentions (`<!channel>`), so
/// untrusted text must never reach it unescaped. The escaping is Slack markup, not JSON.
fn slack_text(text: &str, max: usize) -> String {
    let text = text.trim();
    let mut out = String::new();
    let mut len = 0;
    for (i, c) in text.char_indices() {
        let piece = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            _ => &text[i..i + c.len_utf8()],
        };
        let piece_len = piece.chars().count();
        // Keep room for the ellipsis unless this is the last character.
        let last = i + c.len_utf8() == text.len();
        if len + piece_len + usize::from(!last) > max {
            out.push('…');
            return out;
        }
        out.push_str(piece);
        len += piece_len;
    }
    out
}

/// A Slack incoming-webhook message: `text` for notifications and clients without blocks, a
/// header, the facts as a fields section and the reason.
fn slack(notice: &Notice<'_>) -> Value {
    let headline = headline(notice);
    // Slack's limits: header text 150, a field 2000, a section's text 3000.
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": cut(&headline, 150)},
    })];
    let fields: Vec<Value> = facts(notice)
        .into_iter()
        .map(|(name, value)| {
            let text = format!("*{name}*\n{}", slack_text(&value, 1900));
            json!({"type": "mrkdwn", "text": text})
        })
        .collect();
    blocks.push(json!({"type": "section", "fields": fields}));
    if !notice.reason.trim().is_empty() {
        let text = format!("*Reason*\n{}", slack_text(notice.reason, 2900));
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
    }
    json!({"text": slack_text(&headline, 3000), "blocks": blocks})
}

/// A Discord webhook message with one embed, cut to Discord's limits (content 2000, title 256,
/// description 4096, field value 1024, footer 2048, all of an embed 6000).
fn discord(notice: &Notice<'_>) -> Value {
    let title = cut(notice.summary, 256);
    let fields: Vec<(&str, String)> = facts(notice)
        .into_iter()
        .map(|(name, value)| (name, cut(&value, 1024)))
        .collect();
    let footer = (!notice.id.is_empty()).then(|| cut(&format!("hmrt notice {}", notice.id), 2048));
    let used = title.chars().count()
        + fields
            .iter()
            .map(|(name, value)| name.len() + value.chars().count())
            .sum::<usize>()
        + footer.as_ref().map_or(0, |f| f.chars().count());
    let description = cut(notice.reason, 4096.min(6000usize.saturating_sub(used)));

    let mut embed = json!({
        "title": title,
        "color": if notice.firing { DISCORD_RED } else { DISCORD_GREEN },
        "fields": fields
            .iter()
            .map(|(name, value)| {
                // Short facts side by side; lists get a line of their own.
                let inline = !matches!(*name, "Labels" | "Held");
                json!({"name": name, "value": value, "inline": inline})
            })
            .collect::<Vec<_>>(),
    });
    // Discord refuses empty strings where it expects text: leave such keys out.
    if !description.is_empty() {
        embed["description"] = json!(description);
    }
    if let Some(footer) = footer {
        embed["footer"] = json!({"text": footer});
    }
    if !notice.at.is_empty() {
        embed["timestamp"] = json!(notice.at);
    }
    json!({
        "content": cut(&headline(notice), 2000),
        // The content quotes the reason: no `@everyone`, role or user pings from it.
        "allowed_mentions": {"parse": []},
        "embeds": [embed],
    })
}

/// A Microsoft Teams connector `MessageCard` (Teams caps a card at about 28 KB, hence the cuts).
fn teams(notice: &Notice<'_>) -> Value {
    let facts: Vec<Value> = facts(notice)
        .into_iter()
        .map(|(name, value)| json!({"name": name, "value": cut(&value, 1000)}))
        .collect();
    let mut card = json!({
        "@type": "MessageCard",
        "@context": "http://schema.org/extensions",
        "themeColor": if notice.firing { "E74C3C" } else { "2ECC71" },
        "summary": cut(notice.summary, 500),
        "title": cut(&headline(notice), 500),
        "sections": [{"facts": facts}],
    });
    if !notice.reason.trim().is_empty() {
        card["text"] = json!(cut(notice.reason, 8000));
    }
    card
}

struct Webhook;

impl Guest for Webhook {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "webhook".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "Delivers alert notices as an HTTP POST: generic JSON, Slack, Discord or \
                      Microsoft Teams."
                .to_owned(),
            capabilities: vec![Capability::Http],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        let (s, _) = Settings::from_json(&task.config)?;
        Ok(vec![Need::Http(s.url)])
    }

    fn run(task: Task, trigger: Trigger) -> Result<String, String> {
        let (s, c) = Settings::from_json(&task.config)?;
        let notice = Notice::from_config(&c)?;
        let target = Target::new(&s.url, s.format.hides_path());
        log::write(
            Level::Info,
            &format!(
                "delivering {} notice {} for {} to {} as {} (attempt {})",
                notice.kind,
                notice.id,
                notice.task,
                target.shown,
                s.format.as_str(),
                trigger.attempt
            ),
        );
        target.post_json(&payload(s.format, &notice), &s.headers, s.timeout)
    }
}

hmrt_plugin::export_action!(Webhook);

#[cfg(test)]
mod tests {
    use super::*;
    use receiver::tests::notice;

    /// The payload for `raw` in `format`, checked to survive a JSON round trip.
    fn built(format: Format, raw: &Value) -> Value {
        let n = Notice::from_value(raw).unwrap();
        let body = payload(format, &n);
        let text = serde_json::to_string(&body).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, body);
        body
    }

    /// A notice whose reason is hostile and far longer than any limit.
    fn nasty() -> Value {
        let mut raw = notice("unhealthy");
        let reason = format!(
            "he said \"no\"\nline two\r\n<script>alert('x')</script> <!channel> @everyone & {}",
            "z".repeat(10_000)
        );
        raw["reason"] = json!(reason);
        raw["summary"] = json!(format!("web is unhealthy: {}", "y".repeat(5_000)));
        raw["labels"] = json!({"team": "a".repeat(3_000)});
        raw
    }

    fn chars(v: &Value) -> usize {
        v.as_str().unwrap().chars().count()
    }

    #[test]
    fn config_defaults_and_needs() {
        let (s, _) = Settings::from_json(r#"{"url": "https://example.com/hook"}"#).unwrap();
        assert_eq!(
            (s.format, s.timeout),
            (Format::Json, Duration::from_secs(10))
        );
        let task = Task {
            name: "oncall".into(),
            program: None,
            config: r#"{"url": "https://hooks.slack.com/services/T/B/X", "format": "slack",
                        "headers": {"Authorization": "Bearer t"}, "timeout": "3s"}"#
                .into(),
        };
        let needs = Webhook::validate(task).unwrap();
        assert!(
            matches!(&needs[..], [Need::Http(u)] if u == "https://hooks.slack.com/services/T/B/X")
        );
        // The host adds the notice at call time; it is not an unknown key.
        let with_notice = json!({"url": "http://x", "notice": notice("held")}).to_string();
        assert!(Settings::from_json(&with_notice).is_ok());
    }

    #[test]
    fn config_errors_name_the_key() {
        let cases = [
            (r#"{}"#, "`url`"),
            (r#"{"url": "ftp://x"}"#, "`url`"),
            (r#"{"url": "http://x", "fromat": "slack"}"#, "`fromat`"),
            (r#"{"url": "http://x", "format": "mattermost"}"#, "`format`"),
            (r#"{"url": "http://x", "timeout": "soon"}"#, "`timeout`"),
            (
                r#"{"url": "http://x", "headers": {"A B": "c"}}"#,
                "`headers.A B`",
            ),
            (
                r#"{"url": "http://x", "headers": {"X": "a\nb"}}"#,
                "`headers.X`",
            ),
            (r#"{"url": "http://x", "headers": {"X": 1}}"#, "`headers.X`"),
        ];
        for (json, key) in cases {
            let err = Settings::from_json(json).unwrap_err();
            assert!(err.contains(key), "{json}: {err}");
        }
        let err = Settings::from_json(r#"{"url": "http://x", "headers": {"X": "secret\n"}}"#)
            .unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn json_forwards_the_notice_verbatim() {
        let raw = notice("unhealthy");
        let body = built(Format::Json, &raw);
        assert_eq!(body["notice"], raw);
        assert_eq!(body["text"], raw["summary"]);
        assert_eq!(body["notice"]["some_future_key"], json!({"x": 1}));
    }

    #[test]
    fn slack_message() {
        let body = built(Format::Slack, &notice("unhealthy"));
        assert_eq!(
            body["text"],
            "[FIRING] web is unhealthy: 3 failures in a row: GET http://127.0.0.1:8080/health returned 500"
        );
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[1]["fields"][0]["text"], "*Task*\nweb");
        assert_eq!(blocks[1]["fields"][1]["text"], "*State*\nunhealthy");
        assert_eq!(
            blocks[1]["fields"][2]["text"],
            "*Started*\n2026-12-04T18:00:00.000Z"
        );
        assert!(
            blocks[2]["text"]["text"]
                .as_str()
                .unwrap()
                .starts_with("*Reason*\n3 failures")
        );

        let mut resolved = notice("recovered");
        resolved["summary"] = json!("web recovered");
        let body = built(Format::Slack, &resolved);
        assert_eq!(body["text"], "[RESOLVED] web recovered");

        let mut reminder = notice("reminder");
        reminder["reminder"] = json!(2);
        assert!(
            built(Format::Slack, &reminder)["text"]
                .as_str()
                .unwrap()
                .starts_with("[FIRING, reminder 2] ")
        );
    }

    #[test]
    fn slack_escapes_markup_and_respects_limits() {
        let body = built(Format::Slack, &nasty());
        let reason = &body["blocks"][2]["text"]["text"];
        let text = reason.as_str().unwrap();
        assert!(text.contains("he said \"no\"\nline two"), "{text}");
        assert!(text.contains("&lt;script&gt;alert('x')&lt;/script&gt; &lt;!channel&gt;"));
        assert!(text.contains(" &amp; "));
        assert!(!text.contains('<') && text.ends_with('…'));
        assert!(chars(reason) <= 3000);
        assert!(chars(&body["blocks"][0]["text"]["text"]) <= 150);
        assert!(chars(&body["text"]) <= 3000);
        for field in body["blocks"][1]["fields"].as_array().unwrap() {
            assert!(chars(&field["text"]) <= 2000);
        }
        // An escape is never cut in half.
        assert_eq!(slack_text("a&b", 3), "a…");
        assert_eq!(slack_text("a&b", 7), "a&amp;b");
        assert_eq!(slack_text("abc", 3), "abc");
    }

    #[test]
    fn discord_message() {
        let body = built(Format::Discord, &notice("unhealthy"));
        assert_eq!(body["allowed_mentions"], json!({"parse": []}));
        assert!(
            body["content"]
                .as_str()
                .unwrap()
                .starts_with("[FIRING] web is unhealthy")
        );
        let embed = &body["embeds"][0];
        assert_eq!(embed["color"], json!(0xE74C3C));
        assert_eq!(embed["description"], notice("x")["reason"]);
        assert_eq!(
            embed["fields"][0],
            json!({"name": "Task", "value": "web", "inline": true})
        );
        assert_eq!(embed["footer"]["text"], "hmrt notice oncall/web/7");
        assert_eq!(embed["timestamp"], "2026-12-04T18:00:05.000Z");

        let body = built(Format::Discord, &notice("recovered"));
        assert_eq!(body["embeds"][0]["color"], json!(0x2ECC71));
    }

    #[test]
    fn discord_cuts_to_its_limits() {
        let body = built(Format::Discord, &nasty());
        let embed = &body["embeds"][0];
        assert!(chars(&body["content"]) <= 2000);
        assert!(chars(&embed["title"]) <= 256);
        let description = embed["description"].as_str().unwrap();
        assert!(description.starts_with("he said \"no\"\nline two\r\n<script>"));
        assert!(description.chars().count() <= 4096 && description.ends_with('…'));
        let mut total = chars(&embed["title"]) + description.chars().count();
        total += chars(&embed["footer"]["text"]);
        for field in embed["fields"].as_array().unwrap() {
            assert!(chars(&field["value"]) <= 1024);
            total += chars(&field["name"]) + chars(&field["value"]);
        }
        assert!(total <= 6000, "{total}");

        // No empty strings where Discord wants text.
        let mut quiet = notice("held");
        quiet["reason"] = json!("");
        quiet["state"] = json!("");
        let embed = &built(Format::Discord, &quiet)["embeds"][0];
        assert!(embed.get("description").is_none());
        assert!(
            embed["fields"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["name"] != "State")
        );
    }

    #[test]
    fn teams_card() {
        let body = built(Format::Teams, &notice("unhealthy"));
        assert_eq!(body["@type"], "MessageCard");
        assert_eq!(body["@context"], "http://schema.org/extensions");
        assert_eq!(body["themeColor"], "E74C3C");
        assert!(
            body["title"]
                .as_str()
                .unwrap()
                .starts_with("[FIRING] web is unhealthy")
        );
        assert_eq!(body["text"], notice("x")["reason"]);
        assert_eq!(
            body["sections"][0]["facts"][0],
            json!({"name": "Task", "value": "web"})
        );
        assert_eq!(
            built(Format::Teams, &notice("rearmed"))["themeColor"],
            "2ECC71"
        );

        let body = built(Format::Teams, &nasty());
        assert!(chars(&body["text"]) <= 8000 && chars(&body["title"]) <= 500);
        assert!(
            body["text"]
                .as_str()
                .unwrap()
                .contains("<script>alert('x')</script>")
        );
    }
}
