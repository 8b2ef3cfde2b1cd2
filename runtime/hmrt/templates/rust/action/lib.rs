//! `{{name}}`: an hmrt action. It POSTs a JSON notice (task, status, message, attempt) to `url`.

use hmrt_plugin::action::{Guest, Trigger};
use hmrt_plugin::http::{self, Request};
use hmrt_plugin::types::{Capability, Need, PluginInfo, Status, Task};
use hmrt_plugin::{Config, one_line};

/// The config keys this action knows; any other is an error naming it.
const KEYS: &[&str] = &["url"];

/// Reads the config; an error names the key that is wrong.
fn url(json: &str) -> Result<String, String> {
    let c = Config::parse(json, KEYS)?;
    let url = c.required_string("url")?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("`url` must be an http:// or https:// URL, not {url:?}"));
    }
    Ok(url.to_owned())
}

/// The notice: pure, so it is tested without hmrt.
fn notice(task: &str, trigger: &Trigger) -> String {
    let status = match trigger.status {
        Status::Healthy => "healthy",
        Status::Degraded => "degraded",
        Status::Unhealthy => "unhealthy",
        Status::Unknown => "unknown",
    };
    serde_json::json!({
        "task": task,
        "status": status,
        "message": trigger.message,
        "attempt": trigger.attempt,
    })
    .to_string()
}

struct Plugin;

impl Guest for Plugin {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "{{name}}".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "POSTs a JSON notice about the task to a URL".to_owned(),
            capabilities: vec![Capability::Http],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        Ok(vec![Need::Http(url(&task.config)?)])
    }

    fn run(task: Task, trigger: Trigger) -> Result<String, String> {
        let url = url(&task.config)?;
        let request = Request {
            method: "POST".to_owned(),
            url: url.clone(),
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: Some(notice(&task.name, &trigger).into_bytes()),
            timeout_ms: 5_000,
        };
        match http::send(&request) {
            Ok(r) if (200..300).contains(&r.status) => Ok(format!("POST {url}: {}", r.status)),
            Ok(r) => Err(format!("POST {url}: status {}", r.status)),
            Err(e) => Err(one_line(&format!("POST {url}: {}", e.describe()), 200)),
        }
    }
}

hmrt_plugin::export_action!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notice_carries_the_trigger() {
        let trigger = Trigger {
            status: Status::Unhealthy,
            message: "status 500".into(),
            attempt: 2,
        };
        let v: serde_json::Value = serde_json::from_str(&notice("web", &trigger)).unwrap();
        assert_eq!(v["task"], "web");
        assert_eq!(v["status"], "unhealthy");
        assert_eq!(v["attempt"], 2);
    }

    #[test]
    fn a_bad_config_names_the_key() {
        assert!(url("{}").unwrap_err().contains("`url`"));
        assert!(url(r#"{"url": "ftp://x"}"#).unwrap_err().contains("`url`"));
    }
}
