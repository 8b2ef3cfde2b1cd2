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
    name: String,
    config: PolicyConfig,
    state: TaskState,
    /// What can hold this task: its dependencies, as indices into `Engine::tasks` (so in name
    /// order), without repeats. Empty for a task without an action, which is never held.
    deps: Vec<usize>,
    /// What this task can hold: the tasks with an action that depend on it, in name order.
    dependants: Vec<usize>,
}

/// The policy over all tasks.
#[derive(Debug, Clone)]
pub struct Engine {
    /// Every task, in name order.
    tasks: Vec<Task>,
    /// Whether some dependency holds may not follow the tasks' states: at the start and after a
    /// restore. The next call brings them all up to date once, with its decisions.
    holds_stale: bool,
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
        let names: Vec<&String> = configs.keys().collect();
        let index_of = |name: &String| names.binary_search(&name).ok();
        let mut deps: Vec<Vec<usize>> = configs
            .values()
            .map(|config| {
                let mut deps: Vec<usize> = if config.has_action {
                    config.depends_on.iter().filter_map(index_of).collect()
                } else {
                    Vec::new()
                };
                deps.sort_unstable();
                deps.dedup();
                deps
            })
            .collect();
        let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); configs.len()];
        for (task, task_deps) in deps.iter().enumerate() {
            for &dep in task_deps {
                // Tasks are visited in order, so each list comes out sorted.
                dependants[dep].push(task);
            }
        }
        let tasks = configs
            .into_iter()
            .zip(deps.iter_mut().zip(dependants))
            .map(|((name, config), (deps, dependants))| {
                let state = TaskState::new(crate::rng::seed_for(seed, &name));
                Task {
                    name,
                    config,
                    state,
                    deps: std::mem::take(deps),
                    dependants,
                }
            })
            .collect();
        Ok(Engine {
            tasks,
            holds_stale: true,
        })
    }

    /// A check result for `task` at `now`. A timeout, trap or out-of-memory is given as
    /// `Status::Unhealthy` with its reason as the message. The task's timers due by `now` are
    /// applied first, exactly as [`Engine::wake`] applies them.
    pub fn observe(
        &mut self,
        task: &str,
        now: Timestamp,
        status: Status,
        message: &str,
    ) -> Result<Vec<Decision>, PolicyError> {
        let i = self.index(task)?;
        Ok(self.run(i, now, |config, state, out| {
            state.observe(config, status, message, out);
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
        let t = &self.tasks[self.index(task).ok()?];
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
        let i = self.index(task)?;
        Ok(self.run(i, now, |config, state, out| state.tick(config, out)))
    }

    /// The outcome of the action asked for by the last [`crate::DecisionKind::Act`] for `task`:
    /// `Ok(message)` if it ran, `Err(error)` if it failed to.
    pub fn action_finished(
        &mut self,
        task: &str,
        now: Timestamp,
        result: Result<String, String>,
    ) -> Result<Vec<Decision>, PolicyError> {
        let i = self.index(task)?;
        let state = self.tasks[i].state.state();
        if state != State::Restarting {
            return Err(PolicyError::NoActionRunning {
                task: task.to_string(),
                state,
            });
        }
        Ok(self.run(i, now, |config, state, out| {
            // Checked above; the holds updated in between never change a task's own state.
            let _ = state.action_finished(config, result, out);
        }))
    }

    /// A person re-arms a failed task: it becomes `unknown`, its restart budget history is
    /// cleared and its backoff starts over.
    pub fn rearm(&mut self, task: &str, now: Timestamp) -> Result<Vec<Decision>, PolicyError> {
        let i = self.index(task)?;
        let state = self.tasks[i].state.state();
        if state != State::Failed {
            return Err(PolicyError::NotFailed {
                task: task.to_string(),
                state,
            });
        }
        Ok(self.run(i, now, |config, state, out| {
            let _ = state.rearm(config, out);
        }))
    }

    /// A person pauses the task's actions (`paused = true`) or resumes them: while paused its
    /// checks go on and count, its state moves as they say, and each action it would take waits
    /// ([`crate::HoldReason::Paused`]). The pause is part of the task's state, so it outlives a
    /// restart of the daemon. Resuming applies what is due at once (an unhealthy task past its
    /// backoff acts). Pausing a paused task, or resuming a running one, decides nothing.
    pub fn set_paused(
        &mut self,
        task: &str,
        now: Timestamp,
        paused: bool,
    ) -> Result<Vec<Decision>, PolicyError> {
        let i = self.index(task)?;
        Ok(self.run(i, now, |config, state, out| {
            if state.set_paused(paused, out) && !paused {
                state.tick(config, out);
            }
        }))
    }

    /// Ends every action that is marked running as failed ("interrupted"). The daemon calls this
    /// after restoring a snapshot taken while an action ran: that run's outcome is lost, and the
    /// task must not wait for it forever. Like every call, it brings the dependency holds up to
    /// date (all of them after a restore), even if no action was running.
    pub fn interrupt_running(&mut self, now: Timestamp) -> Vec<Decision> {
        let mut decisions = Vec::new();
        self.catch_up_holds(now, &mut decisions);
        for i in 0..self.tasks.len() {
            if self.tasks[i].state.state() == State::Restarting {
                decisions.extend(self.run(i, now, |config, state, out| {
                    let _ = state.action_finished(
                        config,
                        Err("interrupted: hmrt stopped while the action ran".to_string()),
                        out,
                    );
                }));
            }
        }
        decisions
    }

    /// The task's names, in order.
    pub fn task_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.tasks.iter().map(|t| t.name.as_str())
    }

    /// The task's policy.
    pub fn config(&self, task: &str) -> Option<&PolicyConfig> {
        self.get(task).map(|t| &t.config)
    }

    /// The task's full state (rings of results and actions included).
    pub fn state(&self, task: &str) -> Option<&TaskState> {
        self.get(task).map(|t| &t.state)
    }

    /// A summary of the task at `now`.
    pub fn view(&self, task: &str, now: Timestamp) -> Option<TaskView> {
        self.get(task)
            .map(|t| t.state.view(&t.name, &t.config, now))
    }

    /// Summaries of every task at `now`, in name order.
    pub fn views(&self, now: Timestamp) -> Vec<TaskView> {
        self.tasks
            .iter()
            .map(|t| t.state.view(&t.name, &t.config, now))
            .collect()
    }

    /// Every task's full state.
    pub fn export(&self) -> Snapshot {
        Snapshot {
            version: Snapshot::VERSION,
            tasks: self
                .tasks
                .iter()
                .map(|t| (t.name.clone(), t.state.clone()))
                .collect(),
        }
    }

    /// Replaces the tasks' states with a snapshot's. A state is fitted to its task's current
    /// config (which may have changed since), tasks no longer configured are dropped, and tasks
    /// the snapshot lacks keep their fresh state. An action that was running is still marked
    /// running: see [`Engine::interrupt_running`]. The dependency holds are brought up to date
    /// by the next call, with its decisions.
    pub fn restore(&mut self, snapshot: Snapshot) -> Result<RestoreReport, RestoreError> {
        if snapshot.version != Snapshot::VERSION {
            return Err(RestoreError::UnsupportedVersion {
                found: snapshot.version,
                supported: Snapshot::VERSION,
            });
        }
        let mut report = RestoreReport::default();
        for t in &self.tasks {
            if !snapshot.tasks.contains_key(&t.name) {
                report.fresh.push(t.name.clone());
            }
        }
        for (name, mut state) in snapshot.tasks {
            match self.index(&name) {
                Ok(i) => {
                    let task = &mut self.tasks[i];
                    state.fit_to(&task.config);
                    task.state = state;
                    report.restored.push(name);
                }
                Err(_) => report.dropped.push(name),
            }
        }
        self.holds_stale = true;
        Ok(report)
    }

    fn index(&self, task: &str) -> Result<usize, PolicyError> {
        self.tasks
            .binary_search_by(|t| t.name.as_str().cmp(task))
            .map_err(|_| PolicyError::UnknownTask {
                task: task.to_string(),
            })
    }

    fn get(&self, task: &str) -> Option<&Task> {
        self.index(task).ok().map(|i| &self.tasks[i])
    }

    /// Runs `f` on task `i` and keeps the dependency holds current: all of them first if they
    /// may be stale (the first call, a restore), then those `f` may have moved.
    ///
    /// Only the task's own state changes in a call (setting a hold changes no state), so only
    /// its dependants' holds can change, and only if it went from up to not up or back. That
    /// keeps a call's cost independent of the number of tasks.
    fn run(
        &mut self,
        i: usize,
        now: Timestamp,
        f: impl FnOnce(&PolicyConfig, &mut TaskState, &mut Out<'_>),
    ) -> Vec<Decision> {
        let mut list = Vec::new();
        self.catch_up_holds(now, &mut list);
        let Task {
            name,
            config,
            state,
            ..
        } = &mut self.tasks[i];
        let was_up = state.state().is_up();
        f(
            config,
            state,
            &mut Out {
                task: name,
                at: now,
                list: &mut list,
            },
        );
        if state.state().is_up() != was_up {
            for k in 0..self.tasks[i].dependants.len() {
                let dependant = self.tasks[i].dependants[k];
                self.update_hold(dependant, now, &mut list);
            }
        }
        list
    }

    /// Brings every dependency hold up to date if they may be stale (the first call, a restore).
    fn catch_up_holds(&mut self, now: Timestamp, list: &mut Vec<Decision>) {
        if self.holds_stale {
            for j in 0..self.tasks.len() {
                self.update_hold(j, now, list);
            }
            self.holds_stale = false;
        }
    }

    /// Sets task `j`'s dependency hold to the dependencies that are not up now, if that differs
    /// from the hold it has. Allocates only when the hold changes.
    fn update_hold(&mut self, j: usize, now: Timestamp, list: &mut Vec<Decision>) {
        let t = &self.tasks[j];
        let down = |dep: &&usize| !self.tasks[**dep].state.state().is_up();
        let current = t.state.held_by().iter().map(String::as_str);
        let wanted = t
            .deps
            .iter()
            .filter(down)
            .map(|&d| self.tasks[d].name.as_str());
        if current.eq(wanted) {
            return;
        }
        let held_by: Vec<String> = t
            .deps
            .iter()
            .filter(down)
            .map(|&d| self.tasks[d].name.clone())
            .collect();
        let Task {
            name,
            config,
            state,
            ..
        } = &mut self.tasks[j];
        state.set_dependency_hold(
            config,
            held_by,
            &mut Out {
                task: name,
                at: now,
                list,
            },
        );
    }
}
