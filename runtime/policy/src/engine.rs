//! The engine over all tasks: routes calls to tasks and keeps dependency holds current.

use std::collections::BTreeMap;

use crate::config::check_dependencies;
use crate::task::Out;
use crate::{ConfigError, Decision, PolicyConfig, State, Status, TaskState, TaskView, Timestamp};

/// A call the engine cannot carry out. Nothing changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// No task has this name.
    #[error("no task is named {task:?}")]
    UnknownTask {
        /// The name given.
        task: String,
    },
    /// `action_finished` for a task whose action is not running.
    #[error("task {task:?} has no action running (it is {state})")]
    NoActionRunning {
        /// The task.
        task: String,
        /// Its state.
        state: State,
    },
    /// `rearm` for a task that is not failed.
    #[error("task {task:?} is not failed (it is {state}); there is nothing to re-arm")]
    NotFailed {
        /// The task.
        task: String,
        /// Its state.
        state: State,
    },
}

/// A snapshot the engine cannot restore.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The snapshot was written in a format this version does not read.
    #[error("state format version {found} is not supported (this hmrt reads version {supported})")]
    UnsupportedVersion {
        /// The snapshot's version.
        found: u32,
        /// The version this crate writes and reads.
        supported: u32,
    },
}

/// Every task's full state: what the daemon writes to its state file and reads back at start.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// The format version ([`Snapshot::VERSION`]).
    pub version: u32,
    /// Each task's state, by name.
    pub tasks: BTreeMap<String, TaskState>,
}

impl Snapshot {
    /// The format version this crate writes and reads.
    pub const VERSION: u32 = 1;
}

/// What [`Engine::restore`] did with a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RestoreReport {
    /// Tasks whose state was restored.
    pub restored: Vec<String>,
    /// Tasks in the snapshot that are no longer configured: their state was dropped.
    pub dropped: Vec<String>,
    /// Configured tasks the snapshot did not have: they start fresh.
    pub fresh: Vec<String>,
}

#[derive(Debug, Clone)]
struct Task {
    config: PolicyConfig,
    state: TaskState,
}

/// The policy over all tasks.
#[derive(Debug, Clone)]
pub struct Engine {
    tasks: BTreeMap<String, Task>,
}

impl Engine {
    /// Builds the engine. `seed` seeds every task's jitter (mixed with its name), so the same
    /// seed and the same inputs give the same decisions. Fails on an invalid policy, a
    /// `depends_on` naming no task, or a dependency cycle.
    pub fn new(configs: BTreeMap<String, PolicyConfig>, seed: u64) -> Result<Engine, ConfigError> {
        for (task, config) in &configs {
            config.validate().map_err(|problem| ConfigError::Invalid {
                task: task.clone(),
                problem,
            })?;
        }
        check_dependencies(&configs)?;
        let tasks = configs
            .into_iter()
            .map(|(name, config)| {
                let state = TaskState::new(crate::rng::seed_for(seed, &name));
                (name, Task { config, state })
            })
            .collect();
        Ok(Engine { tasks })
    }

    /// A check result for `task` at `now`. A timeout, trap or out-of-memory is given as
    /// `Status::Unhealthy` with its reason as the message.
    pub fn observe(
        &mut self,
        task: &str,
        now: Timestamp,
        status: Status,
        message: &str,
    ) -> Result<Vec<Decision>, PolicyError> {
        self.task(task)?;
        Ok(self.run(task, now, |t, out| {
            t.state.observe(&t.config, status, message, out);
        }))
    }

    /// The earliest instant at which a timer of `task` would change something without a new
    /// check result: its backoff running out while it would act (or, its budget spent, fail),
    /// its start period running out while an attempt is pending, `rearm_after` running out while
    /// it is failed, or its flapping hold lifting. `None` if nothing is pending (an unknown task
    /// included). An instant already past means "due now".
    ///
    /// Call [`Engine::wake`] at that instant to take the decision on time; call this again after
    /// every call about the task, since any of them may move it. Cheap: no allocation, and no
    /// work that grows with the number of tasks beyond finding the task.
    pub fn next_wake(&self, task: &str) -> Option<Timestamp> {
        let t = self.tasks.get(task)?;
        t.state.next_wake(&t.config)
    }

    /// Applies every timer of `task` due at `now`, exactly as [`Engine::observe`] applies them
    /// before its result, but without a result: `rearm_after` elapsed
    /// ([`crate::RearmHow::Elapsed`]), a start period run out (the attempt failed, the task is
    /// `unhealthy`), a flapping hold lifted, and a backoff run out while the failure threshold is
    /// met ([`crate::DecisionKind::Act`], or [`crate::DecisionKind::Failed`] if the budget is
    /// spent; the last result's message is the reason). Called before anything is due, it
    /// decides nothing. Like every call, it keeps the dependency holds of other tasks current.
    pub fn wake(&mut self, task: &str, now: Timestamp) -> Result<Vec<Decision>, PolicyError> {
        self.task(task)?;
        Ok(self.run(task, now, |t, out| t.state.tick(&t.config, out)))
    }

    /// The outcome of the action asked for by the last [`crate::DecisionKind::Act`] for `task`:
    /// `Ok(message)` if it ran, `Err(error)` if it failed to.
    pub fn action_finished(
        &mut self,
        task: &str,
        now: Timestamp,
        result: Result<String, String>,
    ) -> Result<Vec<Decision>, PolicyError> {
        let state = self.task(task)?.state.state();
        if state != State::Restarting {
            return Err(PolicyError::NoActionRunning {
                task: task.to_string(),
                state,
            });
        }
        Ok(self.run(task, now, |t, out| {
            // Checked above; the holds updated in between never change a task's own state.
            let _ = t.state.action_finished(&t.config, result, out);
        }))
    }

    /// A person re-arms a failed task: it becomes `unknown`, its restart budget history is
    /// cleared and its backoff starts over.
    pub fn rearm(&mut self, task: &str, now: Timestamp) -> Result<Vec<Decision>, PolicyError> {
        let state = self.task(task)?.state.state();
        if state != State::Failed {
            return Err(PolicyError::NotFailed {
                task: task.to_string(),
                state,
            });
        }
        Ok(self.run(task, now, |t, out| {
            let _ = t.state.rearm(&t.config, out);
        }))
    }

    /// Ends every action that is marked running as failed ("interrupted"). The daemon calls this
    /// after restoring a snapshot taken while an action ran: that run's outcome is lost, and the
    /// task must not wait for it forever.
    pub fn interrupt_running(&mut self, now: Timestamp) -> Vec<Decision> {
        let running: Vec<String> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.state.state() == State::Restarting)
            .map(|(name, _)| name.clone())
            .collect();
        let mut decisions = Vec::new();
        for name in running {
            decisions.extend(self.run(&name, now, |t, out| {
                let _ = t.state.action_finished(
                    &t.config,
                    Err("interrupted: hmrt stopped while the action ran".to_string()),
                    out,
                );
            }));
        }
        decisions
    }

    /// The task's names, in order.
    pub fn task_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.tasks.keys().map(String::as_str)
    }

    /// The task's policy.
    pub fn config(&self, task: &str) -> Option<&PolicyConfig> {
        self.tasks.get(task).map(|t| &t.config)
    }

    /// The task's full state (rings of results and actions included).
    pub fn state(&self, task: &str) -> Option<&TaskState> {
        self.tasks.get(task).map(|t| &t.state)
    }

    /// A summary of the task at `now`.
    pub fn view(&self, task: &str, now: Timestamp) -> Option<TaskView> {
        self.tasks
            .get(task)
            .map(|t| t.state.view(task, &t.config, now))
    }

    /// Summaries of every task at `now`, in name order.
    pub fn views(&self, now: Timestamp) -> Vec<TaskView> {
        self.tasks
            .iter()
            .map(|(name, t)| t.state.view(name, &t.config, now))
            .collect()
    }

    /// Every task's full state.
    pub fn export(&self) -> Snapshot {
        Snapshot {
            version: Snapshot::VERSION,
            tasks: self
                .tasks
                .iter()
                .map(|(name, t)| (name.clone(), t.state.clone()))
                .collect(),
        }
    }

    /// Replaces the tasks' states with a snapshot's. A state is fitted to its task's current
    /// config (which may have changed since), tasks no longer configured are dropped, and tasks
    /// the snapshot lacks keep their fresh state. An action that was running is still marked
    /// running: see [`Engine::interrupt_running`].
    pub fn restore(&mut self, snapshot: Snapshot) -> Result<RestoreReport, RestoreError> {
        if snapshot.version != Snapshot::VERSION {
            return Err(RestoreError::UnsupportedVersion {
                found: snapshot.version,
                supported: Snapshot::VERSION,
            });
        }
        let mut report = RestoreReport::default();
        for name in self.tasks.keys() {
            if !snapshot.tasks.contains_key(name) {
                report.fresh.push(name.clone());
            }
        }
        for (name, mut state) in snapshot.tasks {
            match self.tasks.get_mut(&name) {
                Some(task) => {
                    state.fit_to(&task.config);
                    task.state = state;
                    report.restored.push(name);
                }
                None => report.dropped.push(name),
            }
        }
        Ok(report)
    }

    fn task(&self, task: &str) -> Result<&Task, PolicyError> {
        self.tasks
            .get(task)
            .ok_or_else(|| PolicyError::UnknownTask {
                task: task.to_string(),
            })
    }

    /// Runs `f` on the task (which must exist) between two updates of the dependency holds: the
    /// first catches up on anything not yet decided (the first call, a restore), the second
    /// follows the change `f` made.
    fn run(
        &mut self,
        task: &str,
        now: Timestamp,
        f: impl FnOnce(&mut Task, &mut Out<'_>),
    ) -> Vec<Decision> {
        let mut list = Vec::new();
        self.update_holds(now, &mut list);
        if let Some(t) = self.tasks.get_mut(task) {
            let mut out = Out {
                task,
                at: now,
                list: &mut list,
            };
            f(t, &mut out);
        }
        self.update_holds(now, &mut list);
        list
    }

    fn update_holds(&mut self, now: Timestamp, list: &mut Vec<Decision>) {
        let wanted: Vec<(String, Vec<String>)> = self
            .tasks
            .iter()
            .map(|(name, t)| {
                // A task without an action has nothing to hold.
                let deps = if t.config.has_action {
                    t.config.depends_on.as_slice()
                } else {
                    &[]
                };
                let mut held_by: Vec<String> = deps
                    .iter()
                    .filter(|dep| {
                        self.tasks
                            .get(dep.as_str())
                            .is_some_and(|d| !d.state.state().is_up())
                    })
                    .cloned()
                    .collect();
                held_by.sort();
                held_by.dedup();
                (name.clone(), held_by)
            })
            .filter(|(name, held_by)| {
                self.tasks
                    .get(name)
                    .is_some_and(|t| t.state.held_by() != held_by.as_slice())
            })
            .collect();
        for (name, held_by) in wanted {
            if let Some(t) = self.tasks.get_mut(&name) {
                let mut out = Out {
                    task: &name,
                    at: now,
                    list,
                };
                t.state.set_dependency_hold(&t.config, held_by, &mut out);
            }
        }
    }
}
