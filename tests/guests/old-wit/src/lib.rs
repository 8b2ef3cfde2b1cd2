//! A healthy check built against `hmrt:plugin@0.0.1` (the copy of the WIT in `wit/`), so every
//! import and export name carries `@0.0.1`. The host must reject it, naming the version.

use exports::hmrt::plugin::check_plugin::{CheckResult, Guest};
use hmrt::plugin::types::{Need, PluginInfo, Status, Task};

wit_bindgen::generate!({ world: "check", path: "wit" });

struct OldWit;

impl Guest for OldWit {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "old-wit".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "A check built against hmrt:plugin@0.0.1.".to_owned(),
            capabilities: vec![],
        }
    }

    fn validate(_task: Task) -> Result<Vec<Need>, String> {
        Ok(vec![])
    }

    fn check(_task: Task) -> CheckResult {
        CheckResult {
            status: Status::Healthy,
            message: "built against hmrt:plugin@0.0.1".to_owned(),
            metrics: vec![],
        }
    }
}

export!(OldWit);
