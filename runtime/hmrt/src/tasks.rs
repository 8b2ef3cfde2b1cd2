//! Tasks bound to their plugins: what each task's check and action resolve to, and the call
//! each one makes (config, grants, limits).

use std::sync::Arc;

use hmrt_config::{Config, ConfigError, Location, TaskConfig};

use crate::registry::{Entry, Lookup, Registry};
use crate::sandbox::{CallLimits, PluginKind, TaskCall};

/// A plugin a task uses: usable, or why not.
#[derive(Clone)]
pub enum Bound {
    /// Usable.
    Ready(Entry),
    /// A file by that name exists but cannot be loaded: the task reports `unknown` with this
    /// reason and never acts, while the other tasks run.
    Broken(String),
    /// The check is a push heartbeat, judged by the host ([`crate::heartbeat`]).
    Heartbeat(crate::heartbeat::Settings),
}

/// A task with its plugins resolved.
#[derive(Clone)]
pub struct BoundTask {
    /// The task's config.
    pub config: TaskConfig,
    /// Its check.
    pub check: Bound,
    /// The call its check makes.
    pub check_call: TaskCall,
    /// Its `on_failure` action and the call it makes, if it has one.
    pub action: Option<(Bound, TaskCall)>,
}

impl BoundTask {
    /// The task's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Its heartbeat settings, if its check is a push heartbeat.
    pub fn heartbeat(&self) -> Option<&crate::heartbeat::Settings> {
        match &self.check {
            Bound::Heartbeat(settings) => Some(settings),
            _ => None,
        }
    }
}

/// What the plugin named `name` resolves to, for `task` (`None`: an alert route's receiver),
/// or the config error at `location`.
pub(crate) fn resolve(
    registry: &Registry,
    name: &str,
    kind: PluginKind,
    location: &Location,
    task: Option<&str>,
    key: &str,
) -> Result<Bound, ConfigError> {
    let in_task = |e: ConfigError| match task {
        Some(task) => e.in_task(task),
        None => e,
    };
    match registry.lookup(name) {
        Lookup::Found(entry) if entry.plugin.kind() == kind => Ok(Bound::Ready(entry.clone())),
        Lookup::Found(entry) => Err(in_task(ConfigError::new(
            location.clone(),
            key,
            format!(
                "\"{name}\" is {} plugin, not {}",
                article(entry.plugin.kind()),
                article(kind)
            ),
        ))),
        Lookup::Broken(problem) => Ok(Bound::Broken(format!(
            "plugin \"{name}\" is not usable: {problem}"
        ))),
        Lookup::Missing => {
            let known = registry.names(kind);
            Err(in_task(ConfigError::new(
                location.clone(),
                key,
                format!(
                    "unknown {kind} \"{name}\" (known {kind}s: {}; third-party plugins are the *.wasm files in runtime.plugins_dir)",
                    known.join(", ")
                ),
            )))
        }
    }
}

fn article(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Check => "a check",
        PluginKind::Action => "an action",
    }
}

/// Resolves every task's check and action. Names that resolve to nothing, or to a plugin of
/// the wrong kind, are config errors at the line that names them.
pub fn bind(config: &Config, registry: &Registry) -> Result<Vec<BoundTask>, Vec<ConfigError>> {
    let mut bound = Vec::new();
    let mut errors = Vec::new();
    for task in &config.tasks {
        let check = if task.check == crate::heartbeat::CHECK_NAME {
            if config.runtime.listen.is_none() {
                Err(ConfigError::new(
                    task.check_location.clone(),
                    "check",
                    "a heartbeat's pings arrive through the HTTP API: set [runtime] listen",
                )
                .in_task(&task.name))
            } else {
                crate::heartbeat::Settings::from_task(task).map(Bound::Heartbeat)
            }
        } else {
            resolve(
                registry,
                &task.check,
                PluginKind::Check,
                &task.check_location,
                Some(&task.name),
                "check",
            )
        };
        let action = task.on_failure.as_ref().map(|action| {
            resolve(
                registry,
                &action.action,
                PluginKind::Action,
                &action.location,
                Some(&task.name),
                "on_failure",
            )
            .map(|plugin| {
                let call = TaskCall {
                    name: Arc::from(task.name.as_str()),
                    program: task.program.clone(),
                    config: action.config.value.to_string(),
                    grants: Arc::new(action.grants.clone()),
                    limits: CallLimits {
                        timeout: action.timeout,
                        memory_bytes: memory(task.memory),
                    },
                    scratch: Some(Arc::from(format!("{}.action", task.name))),
                    reuse: None,
                };
                (plugin, call)
            })
        });
        let action = match action.transpose() {
            Ok(action) => action,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        match check {
            Ok(check) => bound.push(BoundTask {
                check_call: TaskCall {
                    name: Arc::from(task.name.as_str()),
                    program: task.program.clone(),
                    config: task.config.value.to_string(),
                    grants: Arc::new(task.grants.clone()),
                    limits: CallLimits {
                        timeout: task.timeout,
                        memory_bytes: memory(task.memory),
                    },
                    scratch: Some(Arc::from(format!("{}.check", task.name))),
                    reuse: (task.interval <= crate::sandbox::REUSE_INTERVAL)
                        .then(crate::sandbox::WarmSlot::new),
                },
                config: task.clone(),
                check,
                action,
            }),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(bound)
    } else {
        Err(errors)
    }
}

fn memory(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

/// The largest memory limit of any task or action: the sandbox's pool is sized for it.
pub fn max_memory(config: &Config) -> usize {
    config
        .tasks
        .iter()
        .map(|t| memory(t.memory))
        .max()
        .unwrap_or(64 << 20)
        .max(16 << 20)
}
