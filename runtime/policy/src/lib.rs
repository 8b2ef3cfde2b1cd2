//! hmrt's recovery policy: every decision about health and recovery, as a pure state machine.
//!
//! It is given check results and the time, and returns decisions. It does no I/O and reads no
//! clock, so the daemon, `hmrt simulate` and the tests all drive exactly the same code.

use std::time::Duration;

/// A point in time: milliseconds since the UNIX epoch. The caller supplies it; the policy never
/// reads a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Timestamp(pub u64);

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
    /// Actions allowed within `restart_window` before the task is `failed`.
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
