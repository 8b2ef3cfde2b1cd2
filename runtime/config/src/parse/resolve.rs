//! What needs every task at once: unique names, dependencies that name tasks and form no
//! cycle, and each task's settings laid over `[defaults]`.

use std::collections::{BTreeMap, HashMap};

use hmrt_policy::{ConfigError as DependencyError, PolicyConfig, check_dependencies};

use super::read::closest;
use super::settings::{self, Layer, Pass};
use super::task::RawTask;
use super::{At, Parser};
use crate::{ConfigError, Location, TaskConfig};

impl Parser<'_> {
    pub(super) fn resolve(&mut self, raw: Vec<RawTask>, defaults: &Layer) -> Vec<TaskConfig> {
        let by_name = self.first_of_each_name(&raw);
        self.dependencies(&raw, &by_name);
        let mut defaults_flapping_reported = false;
        let mut tasks = Vec::new();
        for task in raw {
            let mut r = settings::resolve(&task.settings, defaults);
            self.cross_checks(&r, &task.settings, defaults, &Pass::Task(&task.scope));
            r.policy.flapping = self.flapping(
                &r,
                &task.settings,
                defaults,
                &task.scope,
                &mut defaults_flapping_reported,
            );
            let (Some(name), Some(check)) = (task.name, task.check) else {
                continue;
            };
            let mut policy = r.policy;
            policy.depends_on = unique_dependencies(&task.depends_on);
            policy.has_action = task.on_failure.is_some();
            if let Err(problem) = policy.validate() {
                let key = config_key(problem.field);
                let (layer, scope) = (&task.settings, &task.scope);
                self.policy_problem(layer, defaults, scope, &task.span, &key, problem.reason);
            }
            tasks.push(TaskConfig {
                location: self.loc(&task.span),
                name_location: self.loc(&name.span),
                name: name.v,
                program_location: task.program.as_ref().map(|p| self.loc(&p.span)),
                program: task.program.map(|p| p.v),
                check_location: self.loc(&check.span),
                check: check.v,
                interval: r.interval,
                timeout: r.timeout,
                memory: r.memory,
                config: task.config,
                grants: task.grants,
                on_failure: task.on_failure,
                labels: task.labels,
                policy,
            });
        }
        tasks
    }

    /// The first task of each name, by name; later ones are reported and take no part in
    /// dependencies.
    fn first_of_each_name(&mut self, raw: &[RawTask]) -> HashMap<String, usize> {
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for (i, task) in raw.iter().enumerate() {
            let Some(name) = &task.name else { continue };
            let Some(&first) = by_name.get(&name.v) else {
                by_name.insert(name.v.clone(), i);
                continue;
            };
            let first_line = raw[first].name.as_ref().map_or(0, |n| self.line(&n.span));
            let message = format!(
                "duplicate task name {:?} (first defined at line {first_line})",
                name.v
            );
            self.error(&name.span, &task.scope, "name", message);
        }
        by_name
    }

    /// Reports every unknown dependency and every cycle, each at the `depends_on` entry that
    /// names the unknown task or closes the cycle. The rule is the policy's
    /// `check_dependencies` (the engine checks the same at start); it stops at the first
    /// problem, so each problem found is reported, its edge taken out, and the check run again
    /// until it passes. Each round removes an edge, so the loop ends.
    fn dependencies(&mut self, raw: &[RawTask], by_name: &HashMap<String, usize>) {
        let mut graph: BTreeMap<String, PolicyConfig> = BTreeMap::new();
        for (name, &i) in by_name {
            let depends_on = unique_dependencies(&raw[i].depends_on);
            graph.insert(
                name.clone(),
                PolicyConfig {
                    depends_on,
                    ..PolicyConfig::default()
                },
            );
        }
        loop {
            let (task, dependency, message) = match check_dependencies(&graph) {
                Ok(()) => return,
                Err(DependencyError::UnknownDependency { task, dependency }) => {
                    let message = unknown_task(&dependency, by_name);
                    (task, dependency, message)
                }
                Err(DependencyError::Cycle { tasks }) => {
                    let [.., from, to] = tasks.as_slice() else {
                        return;
                    };
                    let path: Vec<String> = tasks.iter().map(|t| format!("{t:?}")).collect();
                    let message = format!("dependency cycle: {}", path.join(" -> "));
                    (from.clone(), to.clone(), message)
                }
                // Not a dependency problem: `check_dependencies` does not return it today.
                Err(other) => {
                    let whole = Location::whole_file(self.file);
                    self.errors
                        .push(ConfigError::new(whole, "", other.to_string()));
                    return;
                }
            };
            let Some(edges) = graph.get_mut(&task).map(|p| &mut p.depends_on) else {
                return;
            };
            let Some(at) = edges.iter().position(|d| *d == dependency) else {
                return;
            };
            edges.remove(at);
            let Some(t) = by_name.get(&task).map(|&i| &raw[i]) else {
                return;
            };
            // The first entry that names it; a second one is reported as listed twice.
            if let Some((i, dep)) = t.depends_on.iter().find(|(_, d)| d.v == dependency) {
                self.error(&dep.span, &t.scope, &format!("depends_on[{i}]"), message);
            }
        }
    }
}

/// `unknown task "dbb"`, with the task it is probably a typo of.
fn unknown_task(name: &str, by_name: &HashMap<String, usize>) -> String {
    match closest(name, by_name.keys().map(String::as_str)) {
        Some(known) => format!("unknown task {name:?}; did you mean {known:?}?"),
        None => format!("unknown task {name:?}"),
    }
}

/// The names a task depends on, each once.
fn unique_dependencies(depends_on: &[(usize, At<String>)]) -> Vec<String> {
    let mut names: Vec<String> = depends_on.iter().map(|(_, d)| d.v.clone()).collect();
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// The config key of a `PolicyConfig` field, as `ConfigProblem` names it.
fn config_key(field: &str) -> String {
    let key = match field {
        "backoff.initial" => "restart.backoff",
        "backoff.max" => "restart.max_backoff",
        "restart_window" => "restart.window",
        "flapping.max_changes" => "flapping.changes",
        "max_restarts" | "reset_after" | "rearm_after" => return format!("restart.{field}"),
        _ => {
            return field
                .strip_prefix("backoff.")
                .map_or(field.to_string(), |f| format!("restart.{f}"));
        }
    };
    key.to_string()
}

#[cfg(test)]
mod tests {
    use super::config_key;

    #[test]
    fn policy_fields_are_named_by_their_config_keys() {
        for (field, key) in [
            ("failure_window", "failure_window"),
            ("backoff.factor", "restart.factor"),
            ("backoff.jitter", "restart.jitter"),
            ("backoff.initial", "restart.backoff"),
            ("backoff.max", "restart.max_backoff"),
            ("restart_window", "restart.window"),
            ("max_restarts", "restart.max_restarts"),
            ("flapping.window", "flapping.window"),
            ("flapping.max_changes", "flapping.changes"),
        ] {
            assert_eq!(config_key(field), key);
        }
    }
}
