//! hmrt's built-in `email` action: a receiver that delivers an `[[alert]]` route's notices as a
//! plain-text email through an SMTP relay the route grants (`grants = { smtp = ["host:port"] }`).
//!
//! The notice contract is the `webhook` action's (see its docs): the host adds the notice to the
//! config under `notice` when it delivers.
//!
//! # Config
//!
//! - `relay` (required): the SMTP relay, `host:port`. The host uses STARTTLS whenever the relay
//!   offers it; `validate` lists the relay so `hmrt validate` can tell when it is not granted.
//! - `from` (required): the sender, `hmrt@example.org` or `hmrt <hmrt@example.org>`.
//! - `to` (required): a list of recipients.
//! - `subject_prefix`: put before the subject, such as `"[prod]"`; default none.
//! - `timeout`: how long sending may take, default `"30s"`.
//!
//! The subject is `[FIRING] <summary>` (or `[RESOLVED] ...`, `[FIRING, reminder 2] ...`), the
//! body the notice's facts, one per line, then its reason. The host builds the message from
//! these parts, so the reason (untrusted text) can only ever be body text.

// Each receiver reads the parts of a notice it shows, so some are unused here.
#[allow(dead_code)]
#[path = "../../webhook/src/receiver.rs"]
mod receiver;

use hmrt_plugin::action::{Guest, Trigger};
use hmrt_plugin::log::{self, Level};
use hmrt_plugin::smtp::{self, Message};
use hmrt_plugin::types::{Capability, Need, PluginInfo, Task};
use hmrt_plugin::{Config, millis_u32, one_line};
use receiver::{NOTICE_KEY, Notice, facts, headline};
use std::time::Duration;

const KEYS: &[&str] = &[
    "relay",
    "from",
    "to",
    "subject_prefix",
    "timeout",
    NOTICE_KEY,
];

/// The receiver config (without the notice).
#[derive(Debug)]
struct Settings {
    relay: String,
    from: String,
    to: Vec<String>,
    subject_prefix: String,
    timeout: Duration,
}

impl Settings {
    fn from_json(json: &str) -> Result<(Settings, Config), String> {
        let c = Config::parse(json, KEYS)?;
        let relay = c.required_string("relay")?.to_owned();
        if relay.contains("://") || !relay.contains(':') {
            return Err(format!(
                "`relay` is host:port, such as \"127.0.0.1:25\", not {relay:?}"
            ));
        }
        let to = c.strings("to")?;
        if to.is_empty() {
            return Err("`to` must list at least one recipient".to_owned());
        }
        let subject_prefix = c.string("subject_prefix")?.unwrap_or("").to_owned();
        if subject_prefix.chars().any(char::is_control) {
            return Err("`subject_prefix` must be one line".to_owned());
        }
        let settings = Settings {
            relay,
            from: c.required_string("from")?.to_owned(),
            to,
            subject_prefix,
            timeout: c.duration("timeout")?.unwrap_or(Duration::from_secs(30)),
        };
        Ok((settings, c))
    }
}

/// The subject: the prefix and the notice's headline, one line.
fn subject(settings: &Settings, notice: &Notice<'_>) -> String {
    let headline = headline(notice);
    if settings.subject_prefix.is_empty() {
        one_line(&headline, 200)
    } else {
        one_line(&format!("{} {headline}", settings.subject_prefix), 200)
    }
}

/// The body: the headline, the facts aligned, the reason, and the notice's id.
fn body(notice: &Notice<'_>) -> String {
    let mut out = format!("{}\n\n", headline(notice));
    for (name, value) in facts(notice) {
        out.push_str(&format!("{:<8} {value}\n", format!("{name}:")));
    }
    if !notice.reason.trim().is_empty() {
        out.push_str(&format!("\nReason:\n{}\n", notice.reason.trim()));
    }
    if !notice.id.is_empty() {
        out.push_str(&format!("\n-- \nhmrt notice {}\n", notice.id));
    }
    out
}

struct Email;

impl Guest for Email {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "email".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "Delivers alert notices as plain-text email through a granted SMTP relay."
                .to_owned(),
            capabilities: vec![Capability::Smtp],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        let (s, _) = Settings::from_json(&task.config)?;
        Ok(vec![Need::Smtp(s.relay)])
    }

    fn run(task: Task, trigger: Trigger) -> Result<String, String> {
        let (s, c) = Settings::from_json(&task.config)?;
        let notice = Notice::from_config(&c)?;
        log::write(
            Level::Info,
            &format!(
                "mailing {} notice {} for {} through {} to {} recipient(s) (attempt {})",
                notice.kind,
                notice.id,
                notice.task,
                s.relay,
                s.to.len(),
                trigger.attempt
            ),
        );
        let message = Message {
            relay: s.relay.clone(),
            from: s.from.clone(),
            to: s.to.clone(),
            subject: subject(&s, &notice),
            body: body(&notice),
            timeout_ms: millis_u32(s.timeout),
        };
        match smtp::send(&message) {
            Ok(answer) => Ok(format!(
                "mailed {} through {}: {}",
                s.to.join(", "),
                s.relay,
                one_line(&answer, 200)
            )),
            Err(e) => Err(format!("mail through {}: {}", s.relay, e.describe())),
        }
    }
}

hmrt_plugin::export_action!(Email);

#[cfg(test)]
mod tests {
    use super::*;
    use receiver::tests::notice;

    #[test]
    fn config_errors_name_the_key() {
        for (json, key) in [
            (r#"{"from": "a@b", "to": ["c@d"]}"#, "`relay`"),
            (
                r#"{"relay": "smtp://h:25", "from": "a@b", "to": ["c@d"]}"#,
                "`relay`",
            ),
            (r#"{"relay": "h:25", "to": ["c@d"]}"#, "`from`"),
            (r#"{"relay": "h:25", "from": "a@b", "to": []}"#, "`to`"),
            (
                r#"{"relay": "h:25", "from": "a@b", "to": ["c@d"], "subject_prefix": "a\nb"}"#,
                "`subject_prefix`",
            ),
        ] {
            let e = Settings::from_json(json).unwrap_err();
            assert!(e.contains(key), "{json}: {e}");
        }
    }

    #[test]
    fn subject_is_one_line_and_body_has_the_facts() {
        let (s, _) = Settings::from_json(
            r#"{"relay": "h:25", "from": "a@b", "to": ["c@d"], "subject_prefix": "[prod]"}"#,
        )
        .unwrap();
        let mut raw = notice("unhealthy");
        raw["summary"] = serde_json::json!("web is unhealthy:\nsecond line");
        let n = Notice::from_value(&raw).unwrap();
        let subject = subject(&s, &n);
        assert_eq!(subject, "[prod] [FIRING] web is unhealthy:");
        let body = body(&n);
        for part in [
            "Task:    web",
            "State:   unhealthy",
            "Held:    api",
            "returned 500",
            "oncall/web/7",
        ] {
            assert!(body.contains(part), "{part:?} missing from:\n{body}");
        }
    }
}
