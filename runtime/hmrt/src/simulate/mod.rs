//! `hmrt simulate`: replays a timestamped sequence of results through the policy engine and
//! tells what would have happened and when.
//!
//! The engine is [`hmrt_policy::Engine`], built from the config's tasks exactly as `hmrt run`
//! builds it ([`policies`]), so a simulation runs the same rules, thresholds, backoff, budget,
//! start periods, dependencies and flapping as the daemon. Only the jitter seed differs: the
//! daemon draws one at random, a simulation uses a fixed one (`--seed`, default 0) so the same
//! inputs always print the same output.
//!
//! # The results file
//!
//! One entry per line. Blank lines and lines whose first non-blank character is `#` are
//! ignored (a `#` later in a line is part of the message). Two forms, which may be mixed:
//!
//! **Text**: `<time> [task=<name>] <what> [message...]`
//!
//! - `<time>` is either an offset from the start as a humane duration (`0s`, `1500ms`, `2m`,
//!   `1m30s`, `4.5s`), or an absolute time in RFC 3339 (`2026-11-23T10:00:00.250Z`, or with an
//!   offset such as `+01:00`). A file uses one kind only: offsets are what a person writes by
//!   hand, absolute times what an export writes. Offsets count from 0; with absolute times the
//!   first entry is the start (`+0.000s` in the output).
//! - `task=<name>` (optional) feeds the entry to another task of the config; without it the
//!   entry is for the task named by `--task`.
//! - `<what>` is a check status, `healthy`, `degraded`, `unhealthy` or `unknown`, or the outcome
//!   of the action the engine asked for: `action-ok` or `action-error`.
//! - The rest of the line is the message (the check's message, the action's outcome or error).
//!
//! **JSON Lines**: a line starting with `{` is one JSON object:
//!
//! ```text
//! {"at": 1795428000250, "status": "unhealthy", "message": "connection refused"}
//! {"at": 1795428001000, "action": "ok", "message": "restarted web"}
//! {"at": 1795428001000, "action": "error", "message": "supervisor: SPAWN_ERROR"}
//! {"at": 1795428002000, "task": "db", "status": "healthy"}
//! ```
//!
//! - `at` (required): the time, in milliseconds since the UNIX epoch (an absolute time, so a
//!   JSON entry does not mix with text offsets);
//! - exactly one of `status` (`healthy|degraded|unhealthy|unknown`: a check result) and
//!   `action` (`ok|error`: an action's outcome);
//! - `message` (optional, default empty) and `task` (optional, as `task=` above).
//!
//! Other fields are ignored, so an export may carry more (an attempt number, a duration).
//!
//! # Rules
//!
//! - Times never go backwards; entries at the same time are taken in file order.
//! - Timers run out between entries, as the daemon's do between checks: before each entry,
//!   every backoff, start period, `rearm_after` and flapping hold that runs out before its time
//!   is applied, in time order, at its own instant, or at the time of the entry before if it
//!   became due only then (a hold another task's entry lifted). A check result counts at the
//!   time its check started, which is the time `hmrt history` exports.
//! - When the engine asks for an action, the outcome is the next entry for that task if that
//!   entry is `action-ok`/`action-error` (at that entry's time: when the action finished).
//!   Otherwise (the next entry for the task is a check, or there is none) the action is assumed
//!   to have succeeded at the instant it was asked for, and the output says `(assumed ok)`.
//! - An action outcome when the engine asked for no action is an error: the file and the policy
//!   disagree (typically a file written for another config).
//! - Every task of the config exists in the engine, but only the entries in the file are ever
//!   observed. A task that has no entries stays `unknown`, so a task that `depends_on` it is held
//!   from the start: give the dependency's results with `task=<name>` (a `healthy` at `0s` is
//!   enough to release the hold).
//! - A replay starts from a fresh state: every task `unknown`, no restart budget spent, the
//!   backoff at its start (as `hmrt run` with no state file).
//! - Errors name `file:line` and what is wrong.

mod render;
mod results;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use hmrt_config::Config;
use hmrt_policy::{Decision, DecisionKind, Engine, PolicyConfig, State, Timestamp};

pub use render::{origin_line, render_json, render_text};
pub use results::{Clock, Entry, Results, ResultsError, What, parse_results};

/// A simulation that cannot run, or cannot go on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimulateError {
    /// `--task` names no task of the config.
    #[error("{}: no task named {task:?} (the tasks are: {})", config.display(), known.join(", "))]
    UnknownTask {
        /// The config file.
        config: PathBuf,
        /// The name given.
        task: String,
        /// The config's tasks, in file order.
        known: Vec<String>,
    },
    /// An entry's `task=` names no task of the config.
    #[error("{}:{line}: no task named {task:?} in {}", file.display(), config.display())]
    UnknownEntryTask {
        /// The results file.
        file: PathBuf,
        /// The entry's line.
        line: usize,
        /// The name given.
        task: String,
        /// The config file.
        config: PathBuf,
    },
    /// An action outcome where the engine asked for no action.
    #[error(
        "{}:{line}: an action outcome for {task:?}, but the policy asked for no action here ({task} is {state})",
        file.display()
    )]
    NoActionAsked {
        /// The results file.
        file: PathBuf,
        /// The entry's line.
        line: usize,
        /// The task.
        task: String,
        /// The task's state at that point.
        state: State,
    },
    /// The policy rejected the config's tasks (the config loader should have caught it).
    #[error("{}: {problem}", config.display())]
    Policy {
        /// The config file.
        config: PathBuf,
        /// What the policy said.
        problem: hmrt_policy::ConfigError,
    },
    /// The policy refused a call. The checks above should make this impossible.
    #[error("{}:{line}: {problem}", file.display())]
    Refused {
        /// The results file.
        file: PathBuf,
        /// The entry's line.
        line: usize,
        /// What the policy said.
        problem: hmrt_policy::PolicyError,
    },
}

/// One line of a simulation's story.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// What the engine decided.
    Decision(Decision),
    /// An action finished: the backoff puts the next one no earlier than `not_before`.
    Backoff {
        /// The task.
        task: String,
        /// When the action finished.
        at: Timestamp,
        /// The next attempt's number.
        next_attempt: u32,
        /// No action before this time.
        not_before: Timestamp,
    },
}

/// The message given to the engine for an action outcome the file did not give. The engine
/// shows it in its transition, as `attempt N finished (assumed ok)`.
pub const ASSUMED_OK: &str = "assumed ok";

/// Every task's policy, by name: what the engine is built from, in `hmrt run` and here.
pub fn policies(config: &Config) -> BTreeMap<String, PolicyConfig> {
    config
        .tasks
        .iter()
        .map(|t| (t.name.clone(), t.policy.clone()))
        .collect()
}

/// Replays `results` for `task` through an engine built from `config` with jitter `seed`, and
/// returns the decisions with backoff notes between them.
pub fn replay(
    config: &Config,
    task: &str,
    results: &Results,
    seed: u64,
) -> Result<Vec<Step>, SimulateError> {
    if config.task(task).is_none() {
        return Err(SimulateError::UnknownTask {
            config: config.file.clone(),
            task: task.to_string(),
            known: config.tasks.iter().map(|t| t.name.clone()).collect(),
        });
    }
    let engine = Engine::new(policies(config), seed).map_err(|problem| SimulateError::Policy {
        config: config.file.clone(),
        problem,
    })?;
    let mut replay = Replay {
        engine,
        config,
        results,
        task,
        steps: Vec::new(),
    };
    for index in 0..results.entries.len() {
        replay.entry(index)?;
    }
    Ok(replay.steps)
}

/// A replay in progress.
struct Replay<'a> {
    engine: Engine,
    config: &'a Config,
    results: &'a Results,
    /// The task entries without `task=` are for.
    task: &'a str,
    steps: Vec<Step>,
}

impl Replay<'_> {
    fn task_of(&self, entry: &Entry) -> String {
        entry.task.clone().unwrap_or_else(|| self.task.to_string())
    }

    fn refused(&self, index: usize) -> impl Fn(hmrt_policy::PolicyError) -> SimulateError + '_ {
        move |problem| SimulateError::Refused {
            file: self.results.file.clone(),
            line: self.results.entries[index].line,
            problem,
        }
    }

    /// Entry `index`: first every policy timer that runs out before it (as the daemon wakes a
    /// task at that instant), then the entry itself.
    fn entry(&mut self, index: usize) -> Result<(), SimulateError> {
        let entry = &self.results.entries[index];
        self.timers_before(index, entry.at)?;
        let name = self.task_of(entry);
        let Some(state) = self.engine.state(&name).map(|s| s.state()) else {
            return Err(SimulateError::UnknownEntryTask {
                file: self.results.file.clone(),
                line: entry.line,
                task: name,
                config: self.config.file.clone(),
            });
        };
        let decisions = match entry.what {
            What::Check(status) => self
                .engine
                .observe(&name, entry.at, status, &entry.message)
                .map_err(self.refused(index))?,
            What::Action { ok } => {
                if state != State::Restarting {
                    return Err(SimulateError::NoActionAsked {
                        file: self.results.file.clone(),
                        line: entry.line,
                        task: name,
                        state,
                    });
                }
                let result = if ok {
                    Ok(entry.message.clone())
                } else {
                    Err(entry.message.clone())
                };
                self.engine
                    .action_finished(&name, entry.at, result)
                    .map_err(self.refused(index))?
            }
        };
        let mut queue: VecDeque<Step> = decisions.into_iter().map(Step::Decision).collect();
        if matches!(entry.what, What::Action { .. }) {
            queue.extend(backoff_note(&self.engine, &name, entry.at));
        }
        self.settle(queue, index + 1)
    }

    /// Fires, in time order, every timer of every task that runs out before `before`, as the
    /// daemon wakes each task's loop. A timer already past when it became due (a hold lifted by
    /// another task's entry) fires at the time of that entry, as the daemon's does at once.
    fn timers_before(&mut self, index: usize, before: Timestamp) -> Result<(), SimulateError> {
        let floor = index
            .checked_sub(1)
            .map(|i| self.results.entries[i].at)
            .unwrap_or(Timestamp(0));
        // A wake that decides nothing is not taken again at the same instant (per task), so
        // the replay never spins.
        let mut idle: BTreeMap<String, Timestamp> = BTreeMap::new();
        loop {
            let due = self
                .engine
                .task_names()
                .filter_map(|t| {
                    let at = self.engine.next_wake(t)?.max(floor);
                    (idle.get(t) != Some(&at)).then(|| (at, t.to_string()))
                })
                .min();
            let Some((at, name)) = due.filter(|(at, _)| *at < before) else {
                return Ok(());
            };
            let decisions = self.engine.wake(&name, at).map_err(self.refused(index))?;
            if decisions.is_empty() {
                idle.insert(name, at);
                continue;
            }
            self.settle(decisions.into_iter().map(Step::Decision).collect(), index)?;
        }
    }

    /// Records `queue`'s steps; an action asked for whose outcome is not the next entry for its
    /// task (from `next` on) is assumed to have worked at once.
    fn settle(&mut self, mut queue: VecDeque<Step>, next: usize) -> Result<(), SimulateError> {
        while let Some(step) = queue.pop_front() {
            let asked = match &step {
                Step::Decision(Decision {
                    task: acting,
                    at,
                    kind: DecisionKind::Act { .. },
                }) => Some((acting.clone(), *at)),
                _ => None,
            };
            self.steps.push(step);
            let Some((acting, at)) = asked else { continue };
            let outcome_follows = self.results.entries[next..]
                .iter()
                .find(|later| self.task_of(later) == acting)
                .is_some_and(|later| matches!(later.what, What::Action { .. }));
            if outcome_follows {
                continue;
            }
            let finished = self
                .engine
                .action_finished(&acting, at, Ok(ASSUMED_OK.to_string()))
                .map_err(self.refused(next.saturating_sub(1)))?;
            let mut follow: Vec<Step> = finished.into_iter().map(Step::Decision).collect();
            follow.extend(backoff_note(&self.engine, &acting, at));
            for step in follow.into_iter().rev() {
                queue.push_front(step);
            }
        }
        Ok(())
    }
}

/// The backoff after an action of `task` finished at `at`.
fn backoff_note(engine: &Engine, task: &str, at: Timestamp) -> Option<Step> {
    let state = engine.state(task)?;
    Some(Step::Backoff {
        task: task.to_string(),
        at,
        next_attempt: state.backoff_position().saturating_add(1),
        not_before: state.next_action_not_before()?,
    })
}

/// [`replay`] without the backoff notes: the engine's decisions, in order. This is what a test
/// compares with what `hmrt run` decided.
pub fn simulate(
    config: &Config,
    task: &str,
    results: &Results,
    seed: u64,
) -> Result<Vec<Decision>, SimulateError> {
    Ok(replay(config, task, results, seed)?
        .into_iter()
        .filter_map(|step| match step {
            Step::Decision(d) => Some(d),
            Step::Backoff { .. } => None,
        })
        .collect())
}
