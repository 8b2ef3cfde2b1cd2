//! `{{name}}`: an hmrt check. It GETs `url` and is healthy when the status is `expect_status`
//! (default 200) and, if `expect_text` is set, the body contains it.

use hmrt_plugin::check::{CheckResult, Guest};
use hmrt_plugin::http::{self, Request};
use hmrt_plugin::types::{Capability, Metric, Need, PluginInfo, Status, Task};
use hmrt_plugin::{Config, one_line};

/// The config keys this check knows; any other is an error naming it.
const KEYS: &[&str] = &["url", "expect_status", "expect_text"];

/// The check's settings, read from a task's config.
#[derive(Debug, PartialEq)]
struct Settings {
    url: String,
    expect_status: u16,
    expect_text: Option<String>,
}

impl Settings {
    /// Reads the config; an error names the key that is wrong.
    fn from_json(json: &str) -> Result<Settings, String> {
        let c = Config::parse(json, KEYS)?;
        let url = c.required_string("url")?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("`url` must be an http:// or https:// URL, not {url:?}"));
        }
        let expect_status = match c.value("expect_status") {
            None => 200,
            Some(v) => v
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| (100..=599).contains(n))
                .ok_or("`expect_status` must be an HTTP status code (100-599)")?,
        };
        Ok(Settings {
            url: url.to_owned(),
            expect_status,
            expect_text: c.string("expect_text")?.map(str::to_owned),
        })
    }
}

/// The verdict on a response: pure, so it is tested without hmrt.
fn judge(settings: &Settings, status: u16, body: &[u8]) -> (Status, String) {
    if status != settings.expect_status {
        return (
            Status::Unhealthy,
            format!("status {status}, expected {}", settings.expect_status),
        );
    }
    if let Some(text) = &settings.expect_text
        && !String::from_utf8_lossy(body).contains(text.as_str())
    {
        return (Status::Unhealthy, format!("the body does not contain {text:?}"));
    }
    (Status::Healthy, format!("status {status}"))
}

struct Plugin;

impl Guest for Plugin {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "{{name}}".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "GETs a URL; healthy on the expected status (and text)".to_owned(),
            capabilities: vec![Capability::Http],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        let settings = Settings::from_json(&task.config)?;
        Ok(vec![Need::Http(settings.url)])
    }

    fn check(task: Task) -> CheckResult {
        let settings = match Settings::from_json(&task.config) {
            Ok(settings) => settings,
            Err(e) => return result(Status::Unknown, e, Vec::new()),
        };
        let request = Request {
            method: "GET".to_owned(),
            url: settings.url.clone(),
            headers: Vec::new(),
            body: None,
            timeout_ms: 5_000,
        };
        match http::send(&request) {
            Err(e) => result(
                Status::Unhealthy,
                format!("GET {}: {}", settings.url, e.describe()),
                Vec::new(),
            ),
            Ok(response) => {
                let (status, message) = judge(&settings, response.status, &response.body);
                let latency = Metric {
                    name: "latency_ms".to_owned(),
                    value: response.elapsed_us as f64 / 1000.0,
                    unit: "ms".to_owned(),
                };
                result(status, message, vec![latency])
            }
        }
    }
}

fn result(status: Status, message: String, metrics: Vec<Metric>) -> CheckResult {
    CheckResult {
        status,
        message: one_line(&message, 200),
        metrics,
    }
}

hmrt_plugin::export_check!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: &str) -> Settings {
        Settings::from_json(json).unwrap()
    }

    #[test]
    fn the_config_is_read_and_a_bad_key_is_named() {
        let s = settings(r#"{"url": "http://127.0.0.1:8080/health"}"#);
        assert_eq!(s.expect_status, 200);
        let e = Settings::from_json(r#"{"url": "http://x", "expect": 1}"#).unwrap_err();
        assert!(e.contains("`expect`"), "{e}");
        let e = Settings::from_json(r#"{"url": "http://x", "expect_status": 9}"#).unwrap_err();
        assert!(e.contains("`expect_status`"), "{e}");
        assert!(Settings::from_json("{}").unwrap_err().contains("`url`"));
    }

    #[test]
    fn status_and_text_decide() {
        let s = settings(r#"{"url": "http://x", "expect_text": "ok"}"#);
        assert_eq!(judge(&s, 200, b"all ok").0, Status::Healthy);
        assert_eq!(judge(&s, 200, b"down").0, Status::Unhealthy);
        assert_eq!(judge(&s, 500, b"ok").0, Status::Unhealthy);
    }
}
