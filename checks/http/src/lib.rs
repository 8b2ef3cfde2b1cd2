//! hmrt's built-in `http` check: sends one request and judges the status code, the body and the
//! latency.

use hmrt_plugin::check::{CheckResult, Guest};
use hmrt_plugin::http::{self, Request};
use hmrt_plugin::types::{Capability, Metric, Need, PluginInfo, Status, Task};
use hmrt_plugin::{Config, millis_u32, one_line, show_duration, show_micros_as_ms};
use std::time::Duration;

const KEYS: &[&str] = &[
    "url",
    "method",
    "headers",
    "body",
    "expect_status",
    "body_contains",
    "degraded_after",
    "timeout",
];

/// The check's settings, read from a task's config.
struct Settings {
    url: String,
    method: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    /// None means any 2xx.
    expect_status: Option<Vec<u16>>,
    body_contains: Option<String>,
    degraded_after: Option<Duration>,
    timeout: Duration,
}

impl Settings {
    fn from_json(json: &str) -> Result<Settings, String> {
        let c = Config::parse(json, KEYS)?;
        let url = c.required_string("url")?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "`url` must be an absolute http:// or https:// URL, not {url:?}"
            ));
        }
        let method = c.string("method")?.unwrap_or("GET").to_ascii_uppercase();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(format!(
                "`method` must be an HTTP method such as GET, not {method:?}"
            ));
        }
        let expect_status = c
            .integers("expect_status")?
            .map(|codes| {
                codes
                    .into_iter()
                    .map(|code| match u16::try_from(code) {
                        Ok(code @ 100..=599) => Ok(code),
                        _ => Err(format!(
                            "`expect_status`: {code} is not an HTTP status code"
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        if expect_status.as_ref().is_some_and(Vec::is_empty) {
            return Err("`expect_status` must list at least one status code".to_owned());
        }
        Ok(Settings {
            url: url.to_owned(),
            method,
            headers: c.string_table("headers")?,
            body: c.string("body")?.map(str::to_owned),
            expect_status,
            body_contains: c.string("body_contains")?.map(str::to_owned),
            degraded_after: c.duration("degraded_after")?,
            timeout: c.duration("timeout")?.unwrap_or(Duration::from_secs(5)),
        })
    }

    fn status_ok(&self, status: u16) -> bool {
        match &self.expect_status {
            None => (200..300).contains(&status),
            Some(codes) => codes.contains(&status),
        }
    }

    fn expected(&self) -> String {
        match &self.expect_status {
            None => "2xx".to_owned(),
            Some(codes) => {
                let codes: Vec<String> = codes.iter().map(u16::to_string).collect();
                codes.join(" or ")
            }
        }
    }
}

fn result(status: Status, message: String, metrics: Vec<Metric>) -> CheckResult {
    CheckResult {
        status,
        message,
        metrics,
    }
}

struct Http;

impl Guest for Http {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "http".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "Sends an HTTP request and checks the status code, the body and the latency."
                .to_owned(),
            capabilities: vec![Capability::Http],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        let s = Settings::from_json(&task.config)?;
        Ok(vec![Need::Http(s.url)])
    }

    fn check(task: Task) -> CheckResult {
        let s = match Settings::from_json(&task.config) {
            Ok(s) => s,
            Err(e) => return result(Status::Unknown, format!("invalid config: {e}"), vec![]),
        };
        let what = format!("{} {}", s.method, s.url);
        let response = http::send(&Request {
            method: s.method.clone(),
            url: s.url.clone(),
            headers: s.headers.clone(),
            body: s.body.as_ref().map(|b| b.as_bytes().to_vec()),
            timeout_ms: millis_u32(s.timeout),
        });
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                return result(
                    Status::Unhealthy,
                    format!("{what}: {}", e.describe()),
                    vec![],
                );
            }
        };
        let latency = Duration::from_micros(response.elapsed_us);
        let latency_ms = response.elapsed_us as f64 / 1000.0;
        let metrics = vec![
            Metric {
                name: "latency_ms".to_owned(),
                value: latency_ms,
                unit: "ms".to_owned(),
            },
            Metric {
                name: "status_code".to_owned(),
                value: f64::from(response.status),
                unit: String::new(),
            },
        ];
        let got = format!(
            "{what} returned {} in {}",
            response.status,
            show_micros_as_ms(response.elapsed_us)
        );
        if !s.status_ok(response.status) {
            let msg = format!("{got}, expected {}", s.expected());
            return result(Status::Unhealthy, msg, metrics);
        }
        if let Some(needle) = &s.body_contains {
            let body = String::from_utf8_lossy(&response.body);
            if !body.contains(needle.as_str()) {
                let cut = if response.truncated {
                    " (body was cut at the host's cap)"
                } else {
                    ""
                };
                let msg = format!("{got}, but the body does not contain {needle:?}{cut}");
                return result(Status::Unhealthy, msg, metrics);
            }
        }
        if let Some(limit) = s.degraded_after.filter(|limit| latency > *limit) {
            let msg = format!("{got}, slower than {}", show_duration(limit));
            return result(Status::Degraded, msg, metrics);
        }
        result(Status::Healthy, one_line(&got, 200), metrics)
    }
}

hmrt_plugin::export_check!(Http);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_needs() {
        let s = Settings::from_json(r#"{"url": "http://127.0.0.1:8080/health"}"#).unwrap();
        assert_eq!(s.method, "GET");
        assert_eq!(s.timeout, Duration::from_secs(5));
        assert!(s.status_ok(204) && !s.status_ok(301) && !s.status_ok(500));
        let task = Task {
            name: "web".into(),
            program: None,
            config: r#"{"url": "http://127.0.0.1:8080/health"}"#.into(),
        };
        let needs = Http::validate(task).unwrap();
        assert!(matches!(&needs[..], [Need::Http(u)] if u == "http://127.0.0.1:8080/health"));
    }

    #[test]
    fn config_errors_name_the_key() {
        let cases = [
            (r#"{}"#, "`url`"),
            (r#"{"url": "http://x", "expect": [200]}"#, "`expect`"),
            (r#"{"url": "ftp://x"}"#, "`url`"),
            (
                r#"{"url": "http://x", "expect_status": [200, 999]}"#,
                "`expect_status`",
            ),
            (
                r#"{"url": "http://x", "expect_status": []}"#,
                "`expect_status`",
            ),
            (r#"{"url": "http://x", "timeout": "soon"}"#, "`timeout`"),
            (
                r#"{"url": "http://x", "degraded_after": 5}"#,
                "`degraded_after`",
            ),
            (r#"{"url": "http://x", "headers": {"a": 1}}"#, "`headers.a`"),
            (r#"{"url": "http://x", "method": "G T"}"#, "`method`"),
        ];
        for (json, key) in cases {
            let err = Settings::from_json(json).err().unwrap();
            assert!(err.contains(key), "{json}: {err}");
        }
    }

    #[test]
    fn expected_status_list() {
        let s = Settings::from_json(r#"{"url": "http://x", "expect_status": [200, 301]}"#).unwrap();
        assert!(s.status_ok(301) && !s.status_ok(204));
        assert_eq!(s.expected(), "200 or 301");
    }
}
