//! `json-health`: an hmrt check plugin written the way a third party would write one.
//!
//! It GETs `url`, parses the body as JSON and is healthy when the value at the JSON pointer
//! `pointer` (RFC 6901, such as `/status` or `/checks/0/ok`) equals `equals`.
//!
//! ```toml
//! config = { url = "http://127.0.0.1:8080/health", pointer = "/status", equals = "ok" }
//! ```

// hmrt-plugin holds the bindings of the contract (hmrt's WIT package, `wit/plugin.wit`) and
// helpers; this example takes it from hmrt's source tree.
use hmrt_plugin::check::{CheckResult, Guest};
use hmrt_plugin::http::{self, Request};
use hmrt_plugin::types::{Capability, Metric, Need, PluginInfo, Status, Task};
use serde_json::Value;

/// The plugin's config.
struct Settings {
    url: String,
    pointer: String,
    equals: Value,
}

impl Settings {
    /// Reads the config; an error names the key that is wrong.
    fn from_json(json: &str) -> Result<Settings, String> {
        let Ok(Value::Object(mut config)) = serde_json::from_str::<Value>(json) else {
            return Err("config must be a table".to_owned());
        };
        if let Some(key) = config
            .keys()
            .find(|k| !["url", "pointer", "equals"].contains(&k.as_str()))
        {
            return Err(format!(
                "unknown config key `{key}` (known keys: url, pointer, equals)"
            ));
        }
        let mut string = |key: &str| match config.remove(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            Some(_) => Err(format!("`{key}` must be a non-empty string")),
            None => Err(format!("missing required config key `{key}`")),
        };
        let url = string("url")?;
        let pointer = string("pointer")?;
        if !pointer.starts_with('/') {
            return Err(format!(
                "`pointer` must be a JSON pointer such as \"/status\", not {pointer:?}"
            ));
        }
        let equals = config
            .remove("equals")
            .ok_or("missing required config key `equals`")?;
        Ok(Settings {
            url,
            pointer,
            equals,
        })
    }
}

fn result(status: Status, message: String, metrics: Vec<Metric>) -> CheckResult {
    CheckResult {
        status,
        message,
        metrics,
    }
}

struct JsonHealth;

impl Guest for JsonHealth {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "json-health".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary:
                "GETs a URL and checks that one value of its JSON body equals what is expected."
                    .to_owned(),
            capabilities: vec![Capability::Http],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        Ok(vec![Need::Http(Settings::from_json(&task.config)?.url)])
    }

    fn check(task: Task) -> CheckResult {
        let s = match Settings::from_json(&task.config) {
            Ok(s) => s,
            Err(e) => return result(Status::Unknown, format!("invalid config: {e}"), vec![]),
        };
        let request = Request {
            method: "GET".to_owned(),
            url: s.url.clone(),
            headers: vec![("accept".to_owned(), "application/json".to_owned())],
            body: None,
            timeout_ms: 5_000,
        };
        let response = match http::send(&request) {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("GET {}: {}", s.url, e.describe());
                return result(Status::Unhealthy, msg, vec![]);
            }
        };
        let metrics = vec![Metric {
            name: "latency_ms".to_owned(),
            value: response.elapsed_us as f64 / 1000.0,
            unit: "ms".to_owned(),
        }];
        if !(200..300).contains(&response.status) {
            let msg = format!("GET {} returned {}", s.url, response.status);
            return result(Status::Unhealthy, msg, metrics);
        }
        let body: Value = match serde_json::from_slice(&response.body) {
            Ok(body) => body,
            Err(e) => return result(Status::Unhealthy, format!("body is not JSON: {e}"), metrics),
        };
        match body.pointer(&s.pointer) {
            Some(found) if *found == s.equals => result(
                Status::Healthy,
                format!("{} is {found}", s.pointer),
                metrics,
            ),
            Some(found) => {
                let msg = format!("{} is {found}, expected {}", s.pointer, s.equals);
                result(Status::Unhealthy, msg, metrics)
            }
            None => {
                let msg = format!("{} is missing, expected {}", s.pointer, s.equals);
                result(Status::Unhealthy, msg, metrics)
            }
        }
    }
}

hmrt_plugin::export_check!(JsonHealth);
