//! hmrt's built-in `docker` check: a container is running (and healthy, when its image has a
//! health check), Docker has not restarted it more often than allowed, and its memory and CPU
//! use stay under their thresholds.

mod judge;
mod settings;

use hmrt_plugin::check::{CheckResult, Guest};
use hmrt_plugin::docker;
use hmrt_plugin::types::{Capability, HostError, Need, PluginInfo, Status, Task};

use settings::Settings;

struct Docker;

/// How a failed `inspect` counts: a call outside the grants or a malformed one says nothing
/// about the container (unknown); a container Docker cannot find or answer for is not running
/// as it should (unhealthy).
fn inspect_failure(container: &str, e: &HostError) -> CheckResult {
    let status = match e {
        HostError::Denied(_) | HostError::Invalid(_) => Status::Unknown,
        HostError::Failed(_) | HostError::Timeout => Status::Unhealthy,
    };
    CheckResult {
        status,
        message: format!("inspect {container}: {}", e.describe()),
        metrics: vec![],
    }
}

impl Guest for Docker {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "docker".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "Checks that a Docker container runs and is healthy, its restart count, \
                      memory and CPU."
                .to_owned(),
            capabilities: vec![Capability::Docker],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        let s = Settings::from_json(&task.config)?;
        Ok(vec![Need::Docker(s.container)])
    }

    fn check(task: Task) -> CheckResult {
        let s = match Settings::from_json(&task.config) {
            Ok(s) => s,
            Err(e) => {
                return CheckResult {
                    status: Status::Unknown,
                    message: format!("invalid config: {e}"),
                    metrics: vec![],
                };
            }
        };
        let container = match docker::inspect(&s.container) {
            Ok(c) => c,
            Err(e) => return inspect_failure(&s.container, &e),
        };
        let mut verdict = judge::state(&s, &container);
        // Stats only of a running container: Docker has none of a stopped one.
        if container.state == "running" {
            match docker::stats(&s.container) {
                Ok(sample) => judge::stats(&mut verdict, &s, &sample),
                Err(e) => judge::no_stats(&mut verdict, &s, e.describe()),
            }
        }
        CheckResult {
            status: verdict.status,
            message: verdict.message(&s.container),
            metrics: verdict.metrics,
        }
    }
}

hmrt_plugin::export_check!(Docker);
