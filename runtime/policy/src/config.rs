//! The policy of one task, as the config gives it, and the checks a set of them must pass.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Exponential backoff between actions.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// The delay after the first action.
    pub initial: Duration,
    /// Each further delay is the previous one times this.
    pub factor: f64,
    /// No delay is longer than this.
    pub max: Duration,
    /// Each delay is moved by up to this fraction either way (0.1 = ±10 %).
    pub jitter: f64,
}

/// Flapping: more than `max_changes` state changes within `window` holds actions.
#[derive(Debug, Clone, PartialEq)]
pub struct Flapping {
    /// State changes allowed within `window`.
    pub max_changes: u32,
    /// The window they are counted in.
    pub window: Duration,
}

/// The policy of one task, as the config gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    /// Failures (consecutive, or within `failure_window`) that make a task unhealthy.
    pub failure_threshold: u32,
    /// Consecutive passes that make a task healthy.
    pub success_threshold: u32,
    /// If set, the task is unhealthy when `failure_threshold` of the last `failure_window`
    /// results failed, rather than that many in a row.
    pub failure_window: Option<u32>,
    /// Backoff between actions.
    pub backoff: Backoff,
    /// Actions allowed within `restart_window` before the task is `failed`. At least 1 for a
    /// task with an action.
    pub max_restarts: u32,
    /// The window the restart budget is counted in.
    pub restart_window: Duration,
    /// Healthy this long, and the backoff starts again from `backoff.initial`.
    pub reset_after: Duration,
    /// A failed task is re-armed after this long, if set.
    pub rearm_after: Option<Duration>,
    /// After each action, failures inside this period do not count.
    pub start_period: Duration,
    /// Flapping detection, if set.
    pub flapping: Option<Flapping>,
    /// Tasks this one depends on: while one is unhealthy or failed, this task's actions are held.
    pub depends_on: Vec<String>,
    /// Whether the task has an `on_failure` action at all. Without one the task is tracked and
    /// reported (healthy, unhealthy, ...) but never acts, and so is never `failed`.
    pub has_action: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            failure_threshold: 3,
            success_threshold: 1,
            failure_window: None,
            backoff: Backoff {
                initial: Duration::from_secs(1),
                factor: 2.0,
                max: Duration::from_secs(300),
                jitter: 0.1,
            },
            max_restarts: 5,
            restart_window: Duration::from_secs(3600),
            reset_after: Duration::from_secs(600),
            rearm_after: None,
            start_period: Duration::ZERO,
            flapping: None,
            depends_on: Vec::new(),
            has_action: false,
        }
    }
}

/// The largest `failure_window` accepted: the window is kept in the task's state.
pub const MAX_FAILURE_WINDOW: u32 = 1000;

/// One field of a [`PolicyConfig`] that holds a value the policy cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigProblem {
    /// The field, spelled as in `PolicyConfig` (`backoff.factor`, `failure_window`, ...).
    pub field: &'static str,
    /// What is wrong with its value.
    pub reason: String,
}

fn problem(field: &'static str, reason: impl Into<String>) -> Result<(), ConfigProblem> {
    Err(ConfigProblem {
        field,
        reason: reason.into(),
    })
}

impl PolicyConfig {
    /// Checks the values one task's policy can work with. The config crate reports these with
    /// file and line; [`crate::Engine::new`] checks again so no caller can skip it.
    pub fn validate(&self) -> Result<(), ConfigProblem> {
        if self.failure_threshold == 0 {
            return problem("failure_threshold", "must be at least 1");
        }
        if self.success_threshold == 0 {
            return problem("success_threshold", "must be at least 1");
        }
        if let Some(n) = self.failure_window {
            if n < self.failure_threshold {
                return problem(
                    "failure_window",
                    format!(
                        "{n} is smaller than failure_threshold ({}): the task could never be unhealthy",
                        self.failure_threshold
                    ),
                );
            }
            if n > MAX_FAILURE_WINDOW {
                return problem(
                    "failure_window",
                    format!("{n} is larger than {MAX_FAILURE_WINDOW}"),
                );
            }
        }
        if self.has_action && self.max_restarts == 0 {
            // The task would be failed at its first incident, and every re-arm a promise of an
            // action that could never come.
            return problem(
                "max_restarts",
                "must be at least 1; to never act, leave out on_failure",
            );
        }
        let b = &self.backoff;
        if !(b.factor.is_finite() && b.factor >= 1.0) {
            return problem(
                "backoff.factor",
                format!(
                    "{} must be a number of at least 1 (a backoff never shrinks)",
                    b.factor
                ),
            );
        }
        if !(b.jitter.is_finite() && (0.0..=1.0).contains(&b.jitter)) {
            return problem(
                "backoff.jitter",
                format!("{} must be a fraction between 0 and 1", b.jitter),
            );
        }
        if let Some(f) = &self.flapping
            && f.window.is_zero()
        {
            return problem("flapping.window", "must be longer than zero");
        }
        Ok(())
    }
}

/// Errors in a set of task policies as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A task depends on a name that is not a task.
    #[error("task {task:?} depends on {dependency:?}, which is not a task")]
    UnknownDependency {
        /// The task whose `depends_on` names it.
        task: String,
        /// The name that is not a task.
        dependency: String,
    },
    /// The dependencies go round in a circle (a task depending on itself included).
    #[error("dependency cycle: {}", .tasks.join(" -> "))]
    Cycle {
        /// The tasks of the cycle in order, the first repeated at the end (`a -> b -> a`).
        tasks: Vec<String>,
    },
    /// A task's policy holds a value the policy cannot work with.
    #[error("task {task:?}: {problem}")]
    Invalid {
        /// The task.
        task: String,
        /// What is wrong.
        problem: ConfigProblem,
    },
}

/// Checks that every `depends_on` names a task and that no dependencies form a cycle. Tasks are
/// visited in name order, so the error reported is the same on every run.
pub fn check_dependencies(configs: &BTreeMap<String, PolicyConfig>) -> Result<(), ConfigError> {
    for (task, cfg) in configs {
        for dep in &cfg.depends_on {
            if !configs.contains_key(dep) {
                return Err(ConfigError::UnknownDependency {
                    task: task.clone(),
                    dependency: dep.clone(),
                });
            }
        }
    }
    // Iterative depth-first search (a long chain of dependencies must not overflow the stack).
    let mut done: BTreeSet<&str> = BTreeSet::new();
    for root in configs.keys() {
        if done.contains(root.as_str()) {
            continue;
        }
        // The current path, each entry with the index of the next dependency to visit.
        let mut path: Vec<(&str, usize)> = vec![(root.as_str(), 0)];
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            let deps = configs
                .get(node)
                .map(|c| c.depends_on.as_slice())
                .unwrap_or(&[]);
            if let Some(dep) = deps.get(*next) {
                *next += 1;
                let dep = dep.as_str();
                if let Some(pos) = path.iter().position(|(n, _)| *n == dep) {
                    let mut tasks: Vec<String> =
                        path[pos..].iter().map(|(n, _)| n.to_string()).collect();
                    tasks.push(dep.to_string());
                    return Err(ConfigError::Cycle { tasks });
                }
                if !done.contains(dep) {
                    path.push((dep, 0));
                }
            } else {
                done.insert(node);
                path.pop();
            }
        }
    }
    Ok(())
}
