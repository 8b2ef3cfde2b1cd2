//! Each route's receiver, bound to its action plugin: the same resolution, grants and limits as
//! a task's `on_failure` action. A receiver's call carries the notice in its config.

use std::sync::Arc;

use hmrt_config::{ActionConfig, AlertRoute, Config, ConfigError};

use crate::registry::Registry;
use crate::sandbox::{CallLimits, PluginKind, TaskCall};
use crate::tasks::{Bound, resolve};

/// A route's receiver, ready to call.
#[derive(Clone)]
pub struct Receiver {
    /// The route.
    pub route: AlertRoute,
    /// The outbox queue it delivers: the route's name, or `<route>/escalation`.
    pub queue: String,
    /// Its action, config and grants (the route's `receiver` or `escalate_to`).
    pub action: ActionConfig,
    /// Its action plugin.
    pub plugin: Bound,
    /// The call without a notice (what `validate` sees).
    pub call: TaskCall,
}

impl Receiver {
    /// The call for `notice`: the receiver's config with the notice under `notice`.
    pub fn call_for(&self, notice: &serde_json::Value) -> TaskCall {
        let mut config = self.action.config.value.clone();
        if let Some(object) = config.as_object_mut() {
            object.insert("notice".into(), notice.clone());
        }
        TaskCall {
            config: config.to_string(),
            ..self.call.clone()
        }
    }
}

/// Binds every route's receiver (and second receiver, with `escalate_to`); a name that
/// resolves to nothing, or to a check, is an error at its line.
pub fn bind(config: &Config, registry: &Registry) -> Result<Vec<Receiver>, Vec<ConfigError>> {
    let mut receivers = Vec::new();
    let mut errors = Vec::new();
    for route in &config.alerts {
        let mut each = vec![(false, &route.receiver, "receiver")];
        if let Some(second) = &route.escalate_to {
            each.push((true, second, "escalate_to"));
        }
        for (escalation, action, key) in each {
            match resolve(
                registry,
                &action.action,
                PluginKind::Action,
                &action.location,
                None,
                &format!("alert {:?}: {key}.action", route.name),
            ) {
                Ok(plugin) => receivers.push(Receiver {
                    plugin,
                    call: TaskCall {
                        name: Arc::from(route.name.as_str()),
                        program: None,
                        config: action.config.value.to_string(),
                        grants: Arc::new(action.grants.clone()),
                        limits: CallLimits {
                            timeout: action.timeout,
                            memory_bytes: 64 << 20,
                        },
                        scratch: None,
                        reuse: None,
                    },
                    queue: super::router::queue_name(&route.name, escalation),
                    action: action.clone(),
                    route: route.clone(),
                }),
                Err(e) => errors.push(e),
            }
        }
    }
    if errors.is_empty() {
        Ok(receivers)
    } else {
        Err(errors)
    }
}
