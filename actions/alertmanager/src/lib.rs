//! hmrt's built-in `alertmanager` action: a receiver that delivers an `[[alert]]` route's
//! notices to a Prometheus Alertmanager, as alerts posted to its API v2 (`POST /api/v2/alerts`).
//! Alertmanager then does the grouping, silencing, inhibition and paging.
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
//! of the receiver config it does not know are errors.
//!
//! # Config
//!
//! - `url` (required): Alertmanager's base URL, such as `http://127.0.0.1:9093` (with its
//!   `--web.route-prefix`, if it has one). The route's receiver grants must cover its origin.
//! - `timeout`: how long the POST may take, default `"10s"`.
//! - `labels`: a table of static labels added to every alert, such as `{ host = "db-1" }`.
//!   Alertmanager tells alerts apart by their labels only, so when several hmrt hosts share one
//!   Alertmanager, give each a label of its own or their tasks of the same name become one alert.
//! - `generator_url`: a link Alertmanager shows as the alert's source, such as hmrt's status page.
//!
//! # Alerts
//!
//! Each notice becomes one alert (a JSON array of one, as the API takes them):
//!
//! - `alertname`: `HmrtTaskUnhealthy` for `unhealthy`, `reminder` and `recovered` (one incident
//!   is one alert, so the resolve matches what fired), `HmrtTaskFailed` for `failed` and
//!   `rearmed`, `HmrtTaskFlapping`, `HmrtTaskHeld`; `HmrtTask` and the kind in CamelCase for a
//!   kind this version does not know.
//! - `severity`: `critical` for the `HmrtTaskFailed` alert, `warning` for every other.
//! - Other labels: the config's static labels, then the task's labels (a task's own wins; names
//!   Prometheus cannot carry, such as `tier-1`, have their other characters replaced with `_`),
//!   then `task` and `route`. `alertname`, `task`, `route` and `severity` are never overridden,
//!   so a resolving notice always carries the labels of the alert it resolves.
//! - `annotations`: `summary`, `description` (the reason) and `held` (comma-separated).
//! - `startsAt`: when the incident began. `endsAt`: for a firing notice, the notice's `ends_at`
//!   if it has one; without it Alertmanager resolves the alert after its `resolve_timeout` unless
//!   it is sent again. For `recovered`, the notice's `ends_at` (or `at`), and for `rearmed`, its
//!   `at`: times in the past, which resolve the alert.

// Each receiver reads the parts of a notice it shows, so some are unused here.
#[allow(dead_code)]
#[path = "../../webhook/src/receiver.rs"]
mod receiver;

use hmrt_plugin::Config;
use hmrt_plugin::action::{Guest, Trigger};
use hmrt_plugin::log::{self, Level};
use hmrt_plugin::types::{Capability, Need, PluginInfo, Task};
use receiver::{NOTICE_KEY, Notice, Target, check_url};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

const KEYS: &[&str] = &["url", "timeout", "labels", "generator_url", NOTICE_KEY];

/// The labels the action sets itself: they identify the alert, so nothing overrides them.
const OWN_LABELS: &[&str] = &["alertname", "task", "route", "severity"];

/// Alertmanager's alerts endpoint, below its base URL.
const ALERTS_PATH: &str = "/api/v2/alerts";

/// The receiver config (without the notice).
#[derive(Debug)]
struct Settings {
    /// `<url>/api/v2/alerts`.
    endpoint: String,
    timeout: Duration,
    /// Static labels, sorted by name.
    labels: Vec<(String, String)>,
    generator_url: Option<String>,
}

impl Settings {
    fn from_config(c: &Config) -> Result<Settings, String> {
        let url = c.required_string("url")?;
        check_url("url", url)?;
        if url.contains(['?', '#']) {
            return Err(format!(
                "`url` is Alertmanager's base URL, without a query or fragment: {url:?}"
            ));
        }
        let base = url.trim_end_matches('/');
        if base.ends_with(ALERTS_PATH)
            || base.ends_with("/api/v2")
            || base.ends_with("/api/v1/alerts")
        {
            return Err(format!(
                "`url` is Alertmanager's base URL, such as http://127.0.0.1:9093; \
                 {ALERTS_PATH} is added to it"
            ));
        }
        let labels = c.string_table("labels")?;
        for (name, value) in &labels {
            if OWN_LABELS.contains(&name.as_str()) {
                return Err(format!(
                    "`labels.{name}` is set by the action (it identifies the alert)"
                ));
            }
            if !is_label_name(name) {
                return Err(format!(
                    "`labels.{name}` is not a Prometheus label name (letters, digits and '_', \
                     not starting with a digit or \"__\")"
                ));
            }
            if value.is_empty() {
                return Err(format!(
                    "`labels.{name}` must not be empty (Alertmanager drops empty labels)"
                ));
            }
        }
        let generator_url = c.string("generator_url")?;
        if let Some(u) = generator_url {
            check_url("generator_url", u)?;
        }
        Ok(Settings {
            endpoint: format!("{base}{ALERTS_PATH}"),
            timeout: c.duration("timeout")?.unwrap_or(Duration::from_secs(10)),
            labels,
            generator_url: generator_url.map(str::to_owned),
        })
    }

    fn from_json(json: &str) -> Result<(Settings, Config), String> {
        let c = Config::parse(json, KEYS)?;
        Ok((Settings::from_config(&c)?, c))
    }
}

/// Whether `name` is a label name every Alertmanager accepts (the classic Prometheus alphabet;
/// UTF-8 names need a feature flag), and not one of the reserved `__` names.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// A task label's name in the Prometheus alphabet: hmrt allows `-`, Prometheus does not.
fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.insert(0, 'x');
    }
    out
}

/// The alert a notice of `kind` fires or resolves. A reminder and a recovery belong to the
/// incident an `unhealthy` notice opened, and a re-arm ends what `failed` started, so they
/// share those alerts' names (and with them their label sets).
fn alertname(kind: &str) -> String {
    let incident = match kind {
        "unhealthy" | "reminder" | "recovered" => "unhealthy",
        "failed" | "rearmed" => "failed",
        other => other,
    };
    let camel: String = incident
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    format!("HmrtTask{camel}")
}

/// The Alertmanager alert for `notice`.
fn alert(notice: &Notice<'_>, s: &Settings) -> Result<Value, String> {
    let name = alertname(notice.kind);
    let severity = if name == "HmrtTaskFailed" {
        "critical"
    } else {
        "warning"
    };
    let mut labels: BTreeMap<String, String> = s.labels.iter().cloned().collect();
    for (label, value) in &notice.labels {
        // An empty value is no label in Alertmanager's eyes.
        if !value.is_empty() {
            labels.insert(label_name(label), (*value).to_owned());
        }
    }
    for (label, value) in [
        ("alertname", name.as_str()),
        ("task", notice.task),
        ("route", notice.route),
        ("severity", severity),
    ] {
        labels.insert(label.to_owned(), value.to_owned());
    }

    let mut annotations = Map::new();
    annotations.insert("summary".to_owned(), json!(notice.summary));
    if !notice.reason.trim().is_empty() {
        annotations.insert("description".to_owned(), json!(notice.reason));
    }
    if !notice.held.is_empty() {
        annotations.insert("held".to_owned(), json!(notice.held.join(",")));
    }

    let at = Some(notice.at).filter(|at| !at.is_empty());
    let ends_at = if notice.firing {
        notice.ends_at
    } else {
        // A time that has passed is what resolves an alert in Alertmanager.
        let ended = if notice.kind == "rearmed" {
            at
        } else {
            notice.ends_at.or(at)
        };
        Some(ended.ok_or_else(|| {
            format!(
                "a {} notice needs `ends_at` or `at` to resolve the alert",
                notice.kind
            )
        })?)
    };

    let mut alert = json!({"labels": labels, "annotations": annotations});
    if !notice.started_at.is_empty() {
        alert["startsAt"] = json!(notice.started_at);
    }
    if let Some(ends_at) = ends_at {
        alert["endsAt"] = json!(ends_at);
    }
    if let Some(url) = &s.generator_url {
        alert["generatorURL"] = json!(url);
    }
    Ok(alert)
}

struct Alertmanager;

impl Guest for Alertmanager {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "alertmanager".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "Delivers alert notices to a Prometheus Alertmanager as alerts that fire \
                      and resolve."
                .to_owned(),
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
        let alert = alert(&notice, &s)?;
        let target = Target::new(&s.endpoint, false);
        log::write(
            Level::Info,
            &format!(
                "sending {} notice {} for {} to {} as {} {} (attempt {})",
                notice.kind,
                notice.id,
                notice.task,
                target.shown,
                if notice.firing { "firing" } else { "resolved" },
                alert["labels"]["alertname"].as_str().unwrap_or_default(),
                trigger.attempt
            ),
        );
        target.post_json(&json!([alert]), &[], s.timeout)
    }
}

hmrt_plugin::export_action!(Alertmanager);

#[cfg(test)]
mod tests {
    use super::*;
    use receiver::tests::notice;

    fn settings(extra: &str) -> Settings {
        let json = format!(r#"{{"url": "http://127.0.0.1:9093/"{extra}}}"#);
        Settings::from_json(&json).unwrap().0
    }

    fn built(raw: &Value, s: &Settings) -> Value {
        let alert = alert(&Notice::from_value(raw).unwrap(), s).unwrap();
        // What is posted is an array of one, and survives a JSON round trip.
        let text = serde_json::to_string(&json!([alert])).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back[0], alert);
        alert
    }

    #[test]
    fn config_defaults_and_needs() {
        let s = settings("");
        assert_eq!(s.endpoint, "http://127.0.0.1:9093/api/v2/alerts");
        assert_eq!(s.timeout, Duration::from_secs(10));
        let task = Task {
            name: "oncall".into(),
            program: None,
            config: r#"{"url": "https://am.example.com/alertmanager", "labels": {"host": "db-1"},
                        "generator_url": "http://db-1:8089/", "timeout": "3s"}"#
                .into(),
        };
        let needs = Alertmanager::validate(task).unwrap();
        assert!(matches!(&needs[..],
            [Need::Http(u)] if u == "https://am.example.com/alertmanager/api/v2/alerts"));
        let with_notice = json!({"url": "http://x:9093", "notice": notice("held")}).to_string();
        assert!(Settings::from_json(&with_notice).is_ok());
    }

    #[test]
    fn config_errors_name_the_key() {
        let cases = [
            (r#"{}"#, "`url`"),
            (r#"{"url": "127.0.0.1:9093"}"#, "`url`"),
            (r#"{"url": "http://am:9093/api/v2/alerts"}"#, "`url`"),
            (r#"{"url": "http://am:9093?x=1"}"#, "`url`"),
            (r#"{"url": "http://am:9093", "lables": {}}"#, "`lables`"),
            (r#"{"url": "http://am:9093", "timeout": 5}"#, "`timeout`"),
            (
                r#"{"url": "http://am:9093", "labels": {"severity": "page"}}"#,
                "`labels.severity`",
            ),
            (
                r#"{"url": "http://am:9093", "labels": {"data-center": "x"}}"#,
                "`labels.data-center`",
            ),
            (
                r#"{"url": "http://am:9093", "labels": {"__name": "x"}}"#,
                "`labels.__name`",
            ),
            (
                r#"{"url": "http://am:9093", "labels": {"dc": ""}}"#,
                "`labels.dc`",
            ),
            (
                r#"{"url": "http://am:9093", "generator_url": "status"}"#,
                "`generator_url`",
            ),
        ];
        for (json, key) in cases {
            let err = Settings::from_json(json).unwrap_err();
            assert!(err.contains(key), "{json}: {err}");
        }
    }

    #[test]
    fn alert_names() {
        let cases = [
            ("unhealthy", "HmrtTaskUnhealthy"),
            ("reminder", "HmrtTaskUnhealthy"),
            ("recovered", "HmrtTaskUnhealthy"),
            ("failed", "HmrtTaskFailed"),
            ("rearmed", "HmrtTaskFailed"),
            ("flapping", "HmrtTaskFlapping"),
            ("held", "HmrtTaskHeld"),
            ("budget_low", "HmrtTaskBudgetLow"),
        ];
        for (kind, name) in cases {
            assert_eq!(alertname(kind), name, "{kind}");
        }
    }

    #[test]
    fn firing_alert() {
        let s = settings(
            r#", "labels": {"host": "db-1", "team": "ops"}, "generator_url": "http://db-1:8089/""#,
        );
        let alert = built(&notice("unhealthy"), &s);
        assert_eq!(
            alert,
            json!({
                "labels": {
                    "alertname": "HmrtTaskUnhealthy",
                    "task": "web",
                    "route": "oncall",
                    "severity": "warning",
                    "host": "db-1",
                    // The task's own label wins over the static one.
                    "team": "web",
                    "tier": "front-end",
                },
                "annotations": {
                    "summary": "web is unhealthy: 3 failures in a row: GET http://127.0.0.1:8080/health returned 500",
                    "description": "3 failures in a row: GET http://127.0.0.1:8080/health returned 500",
                    "held": "api",
                },
                "startsAt": "2026-12-04T18:00:00.000Z",
                "endsAt": "2026-12-04T18:10:05.000Z",
                "generatorURL": "http://db-1:8089/",
            })
        );

        // Without an expiry, endsAt is left to Alertmanager.
        let mut open = notice("unhealthy");
        open["ends_at"] = Value::Null;
        assert!(built(&open, &s).get("endsAt").is_none());
    }

    #[test]
    fn task_labels_never_override_the_identity() {
        let mut raw = notice("unhealthy");
        raw["labels"] = json!({"alertname": "X", "task": "x", "route": "x", "severity": "x",
                               "tier-1": "a", "empty": ""});
        let labels = &built(&raw, &settings(""))["labels"];
        assert_eq!(
            labels,
            &json!({"alertname": "HmrtTaskUnhealthy", "task": "web", "route": "oncall",
                    "severity": "warning", "tier_1": "a"})
        );
        assert_eq!(label_name("9lives"), "x9lives");
    }

    #[test]
    fn reminder_refreshes_the_firing_alert() {
        let s = settings(r#", "labels": {"host": "db-1"}"#);
        let firing = built(&notice("unhealthy"), &s);
        let mut raw = notice("reminder");
        raw["reminder"] = json!(1);
        raw["at"] = json!("2026-12-04T19:00:05.000Z");
        raw["ends_at"] = json!("2026-12-04T19:10:05.000Z");
        let reminder = built(&raw, &s);
        assert_eq!(reminder["labels"], firing["labels"]);
        assert_eq!(reminder["startsAt"], firing["startsAt"]);
        assert_eq!(reminder["endsAt"], "2026-12-04T19:10:05.000Z");
    }

    #[test]
    fn recovered_resolves_the_firing_alert() {
        let s = settings(r#", "labels": {"host": "db-1"}"#);
        let firing = built(&notice("unhealthy"), &s);
        let mut raw = notice("recovered");
        raw["ends_at"] = json!("2026-12-04T18:04:00.000Z");
        let resolved = built(&raw, &s);
        assert_eq!(resolved["labels"], firing["labels"]);
        assert_eq!(resolved["endsAt"], "2026-12-04T18:04:00.000Z");
        assert_eq!(resolved["startsAt"], firing["startsAt"]);

        // Without ends_at the notice's own time ends it; without either it cannot resolve.
        raw["ends_at"] = Value::Null;
        assert_eq!(built(&raw, &s)["endsAt"], "2026-12-04T18:00:05.000Z");
        raw.as_object_mut().unwrap().remove("at");
        let err = alert(&Notice::from_value(&raw).unwrap(), &s).unwrap_err();
        assert!(err.contains("`ends_at`"), "{err}");
    }

    #[test]
    fn rearmed_resolves_the_failed_alert() {
        let s = settings(r#", "labels": {"host": "db-1"}"#);
        let mut failed = notice("failed");
        failed["ends_at"] = Value::Null;
        let failed = built(&failed, &s);
        assert_eq!(failed["labels"]["alertname"], "HmrtTaskFailed");
        assert_eq!(failed["labels"]["severity"], "critical");
        assert!(failed.get("endsAt").is_none());

        let mut raw = notice("rearmed");
        raw["at"] = json!("2026-12-04T18:30:00.000Z");
        raw["ends_at"] = json!("2026-12-04T18:29:00.000Z");
        let rearmed = built(&raw, &s);
        assert_eq!(rearmed["labels"], failed["labels"]);
        assert_eq!(rearmed["endsAt"], "2026-12-04T18:30:00.000Z");
    }

    #[test]
    fn hostile_reason_stays_valid_json() {
        let mut raw = notice("flapping");
        raw["reason"] = json!("said \"no\"\n<script>alert(1)</script>\u{0}");
        let alert = built(&raw, &settings(""));
        assert_eq!(alert["labels"]["alertname"], "HmrtTaskFlapping");
        assert_eq!(alert["annotations"]["description"], raw["reason"]);
    }
}
