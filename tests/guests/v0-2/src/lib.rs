//! A check built against `hmrt:plugin@0.2.0` (the frozen `wit/0.2.0/`), as a plugin written
//! before 0.3.0 was: hmrt must still load it and serve its imports through the 0.2.0 glue.
//! `config.address` (`host:port`) is connected to with the `tcp` capability: healthy when the
//! connection opens; a denial or a failure is unhealthy and says why. It logs one line.

use exports::hmrt::plugin::check_plugin::{CheckResult, Guest};
use hmrt::plugin::log::{self, Level};
use hmrt::plugin::types::{Capability, HostError, Metric, Need, PluginInfo, Status, Task};

wit_bindgen::generate!({ world: "check", path: "../../../wit/0.2.0" });

struct V02;

/// `config.address` split into host and port, from the task's JSON config. Kept dependency-free:
/// the config is `{"address":"host:port"}`.
fn address(task: &Task) -> Result<(String, u16), String> {
    let text = task
        .config
        .split("\"address\"")
        .nth(1)
        .and_then(|rest| rest.split('"').nth(1))
        .ok_or("config needs `address`")?;
    let (host, port) = text.rsplit_once(':').ok_or("`address` is host:port")?;
    let port = port.parse().map_err(|_| "`address` has a bad port")?;
    Ok((host.to_owned(), port))
}

impl Guest for V02 {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "v0-2".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "A tcp check built against hmrt:plugin@0.2.0.".to_owned(),
            capabilities: vec![Capability::Tcp],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        let (host, port) = address(&task)?;
        Ok(vec![Need::Tcp(format!("{host}:{port}"))])
    }

    fn check(task: Task) -> CheckResult {
        let (status, message, metrics) = match address(&task) {
            Err(e) => (Status::Unknown, e, vec![]),
            Ok((host, port)) => match hmrt::plugin::tcp::connect(&host, port, 2_000) {
                Ok(us) => (
                    Status::Healthy,
                    format!("0.2.0 plugin connected to {host}:{port}"),
                    vec![Metric {
                        name: "connect".to_owned(),
                        value: us as f64,
                        unit: "us".to_owned(),
                    }],
                ),
                Err(HostError::Denied(why)) => (
                    Status::Unhealthy,
                    format!("0.2.0 plugin denied: {why}"),
                    vec![],
                ),
                Err(e) => (Status::Unhealthy, format!("0.2.0 plugin: {e:?}"), vec![]),
            },
        };
        log::write(Level::Info, &format!("v0-2 check: {message}"));
        CheckResult {
            status,
            message,
            metrics,
        }
    }
}

export!(V02);
