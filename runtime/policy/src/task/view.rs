//! What can be read of a task: the records it keeps, its accessors and its summary.

use crate::decision::HoldReason;
use crate::{PolicyConfig, State, Status, Timestamp, millis};

use super::TaskState;

/// One check result as the policy saw it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResultRecord {
    /// When it was observed.
    pub at: Timestamp,
    /// What the check said.
    pub status: Status,
    /// Its message (cut to [`crate::MAX_MESSAGE_BYTES`]).
    pub message: String,
}

/// What an action's run returned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum ActionResult {
    /// It ran; whether it helped is decided by the check afterwards.
    Ok {
        /// Its outcome message.
        message: String,
    },
    /// It failed to run.
    Error {
        /// Its error.
        error: String,
    },
}

/// One action the policy asked for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActionRecord {
    /// Its attempt number.
    pub attempt: u32,
    /// When it was asked for.
    pub started: Timestamp,
    /// When it finished, once it has.
    pub finished: Option<Timestamp>,
    /// What its run returned, once it has.
    pub result: Option<ActionResult>,
}

/// A read-only summary of one task, for the HTTP API, `hmrt status` and tests.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskView {
    /// The task.
    pub name: String,
    /// Its state.
    pub state: State,
    /// Since when it has been in that state (None: since the start).
    pub since: Option<Timestamp>,
    /// What holds its actions; empty if nothing.
    pub held: Vec<HoldReason>,
    /// Counted passes in a row.
    pub consecutive_passes: u32,
    /// Counted failures in a row.
    pub consecutive_failures: u32,
    /// With `failure_window`: failures among the last counted results.
    pub failures_in_window: Option<u32>,
    /// Actions started within the trailing `restart_window`.
    pub restarts_in_window: u32,
    /// The budget they are counted against.
    pub max_restarts: u32,
    /// The attempt number of the last action of the current backoff sequence (0: none).
    pub backoff_position: u32,
    /// No action before this time.
    pub next_action_not_before: Option<Timestamp>,
    /// Failures before this time do not count.
    pub start_period_end: Option<Timestamp>,
    /// The attempt whose effect is not decided yet.
    pub pending_attempt: Option<u32>,
    /// The attempt running now.
    pub running_attempt: Option<u32>,
    /// When the task became failed, if it is.
    pub failed_at: Option<Timestamp>,
    /// The status of the last check result.
    pub last_status: Option<Status>,
    /// The message of the last check result.
    pub last_message: Option<String>,
}

impl TaskState {
    /// The task's state.
    pub fn state(&self) -> State {
        self.state
    }

    /// When the task entered its state (None: it has been in it since the start).
    pub fn state_since(&self) -> Option<Timestamp> {
        self.state_since
    }

    /// Counted passes in a row.
    pub fn consecutive_passes(&self) -> u32 {
        self.consecutive_passes
    }

    /// Counted failures in a row.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// The attempt number of the last action of the current backoff sequence (0: none yet, or
    /// reset).
    pub fn backoff_position(&self) -> u32 {
        self.backoff_position
    }

    /// No action before this time.
    pub fn next_action_not_before(&self) -> Option<Timestamp> {
        self.next_action_not_before
    }

    /// Start times of the actions counted against the restart budget (pruned lazily: use
    /// [`TaskView::restarts_in_window`] for the count at a given time).
    pub fn restarts(&self) -> impl Iterator<Item = Timestamp> + '_ {
        self.restarts.iter().copied()
    }

    /// The end of the current start period, if one is running.
    pub fn start_period_end(&self) -> Option<Timestamp> {
        self.start_period_end
    }

    /// The attempt that ran and whose effect is not decided yet.
    pub fn pending_attempt(&self) -> Option<u32> {
        self.pending_attempt
    }

    /// The attempt running now.
    pub fn running_attempt(&self) -> Option<u32> {
        self.running_attempt
    }

    /// When the task became failed, if it is.
    pub fn failed_at(&self) -> Option<Timestamp> {
        self.failed_at
    }

    /// Dependencies holding the task's actions, in name order.
    pub fn held_by(&self) -> &[String] {
        &self.held_by
    }

    /// Whether the task is flapping (its actions held).
    pub fn is_flapping(&self) -> bool {
        self.flapping.is_some()
    }

    /// What holds the task's actions now.
    pub fn holds(&self, config: &PolicyConfig) -> Vec<HoldReason> {
        let mut holds = Vec::new();
        if !self.held_by.is_empty() {
            holds.push(HoldReason::Dependency {
                tasks: self.held_by.clone(),
            });
        }
        if let (Some(changes), Some(f)) = (self.flapping, &config.flapping) {
            holds.push(HoldReason::Flapping {
                changes,
                window_ms: millis(f.window),
            });
        }
        if self.paused {
            holds.push(HoldReason::Paused);
        }
        holds
    }

    /// Whether a person paused the task's actions.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The last results (up to [`crate::MAX_RESULTS`]), oldest first.
    pub fn results(&self) -> impl Iterator<Item = &ResultRecord> + '_ {
        self.results.iter()
    }

    /// The last actions (up to [`crate::MAX_ACTIONS`]), oldest first.
    pub fn actions(&self) -> impl Iterator<Item = &ActionRecord> + '_ {
        self.actions.iter()
    }

    /// The message of the last check result.
    pub fn last_message(&self) -> Option<&str> {
        self.results.back().map(|r| r.message.as_str())
    }

    /// A summary of the task at `now`.
    pub fn view(&self, name: &str, config: &PolicyConfig, now: Timestamp) -> TaskView {
        let window = millis(config.restart_window);
        let restarts = self
            .restarts
            .iter()
            .filter(|t| t.0.saturating_add(window) > now.0)
            .count();
        TaskView {
            name: name.to_string(),
            state: self.state,
            since: self.state_since,
            held: self.holds(config),
            consecutive_passes: self.consecutive_passes,
            consecutive_failures: self.consecutive_failures,
            failures_in_window: config
                .failure_window
                .map(|_| self.window_failures().try_into().unwrap_or(u32::MAX)),
            restarts_in_window: restarts.try_into().unwrap_or(u32::MAX),
            max_restarts: config.max_restarts,
            backoff_position: self.backoff_position,
            next_action_not_before: self.next_action_not_before,
            start_period_end: self.start_period_end,
            pending_attempt: self.pending_attempt,
            running_attempt: self.running_attempt,
            failed_at: self.failed_at,
            last_status: self.results.back().map(|r| r.status),
            last_message: self.last_message().map(str::to_string),
        }
    }
}
