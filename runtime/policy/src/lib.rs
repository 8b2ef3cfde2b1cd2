//! hmrt's recovery policy: every decision about health and recovery, as a pure state machine.
//!
//! It is given check results and the time, and returns decisions. It does no I/O and reads no
//! clock, so the daemon, `hmrt simulate` and the tests all drive exactly the same code.
//!
//! The entry point is [`Engine`]: build it from every task's [`PolicyConfig`], then feed it
//! [`Engine::observe`] (a check result), [`Engine::action_finished`] (the outcome of an action it
//! asked for with [`DecisionKind::Act`]) and [`Engine::rearm`] (a person's reset). Timers (a
//! backoff, a start period, `rearm_after`, a flapping hold) run out between results:
//! [`Engine::next_wake`] says when a task's next one is due and [`Engine::wake`] at that instant
//! takes the decision on time. Each call returns the [`Decision`]s it took, in order.
//! [`Engine::export`] and [`Engine::restore`] carry the whole state across a restart of the
//! daemon.
//!
//! ```
//! use std::collections::BTreeMap;
//! use hmrt_policy::{DecisionKind, Engine, PolicyConfig, State, Status, Timestamp};
//!
//! let web = PolicyConfig { failure_threshold: 2, has_action: true, ..PolicyConfig::default() };
//! let mut engine = Engine::new(BTreeMap::from([("web".to_string(), web)]), 42)?;
//! engine.observe("web", Timestamp(1_000), Status::Unhealthy, "connection refused")?;
//! let decisions = engine.observe("web", Timestamp(6_000), Status::Unhealthy, "connection refused")?;
//! assert!(decisions.iter().any(|d| d.kind == DecisionKind::Act { attempt: 1 }));
//! // The caller runs the action, then reports how it went.
//! engine.action_finished("web", Timestamp(7_000), Ok("restarted".into()))?;
//! assert_eq!(engine.state("web").map(|s| s.state()), Some(State::Unknown));
//! // It did not help: the failure threshold is met again while the backoff (1s ± 10%) runs.
//! engine.observe("web", Timestamp(7_200), Status::Unhealthy, "connection refused")?;
//! engine.observe("web", Timestamp(7_400), Status::Unhealthy, "connection refused")?;
//! // The next action is due when the backoff runs out, without waiting for another result.
//! let due = engine.next_wake("web").expect("the backoff is running");
//! assert!(engine.wake("web", Timestamp(due.0 - 1))?.is_empty());
//! let decisions = engine.wake("web", due)?;
//! assert!(decisions.iter().any(|d| d.kind == DecisionKind::Act { attempt: 2 }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Rules, and the choices made where the design left room
//!
//! - Results: `healthy` and `degraded` are passes, `unhealthy` a failure, `unknown` neutral (it
//!   neither counts nor breaks a streak). Failures inside a start period are ignored entirely.
//! - Thresholds: `success_threshold` consecutive passes make a task healthy (or degraded, per the
//!   last result); `failure_threshold` consecutive failures, or that many among the last
//!   `failure_window` counted results, make it unhealthy. A task that is already healthy or
//!   degraded follows each pass's status at once.
//! - Actions: a task acts only at a counted failure or when its backoff runs out while its
//!   failure threshold is met; only while `unhealthy`, and only when nothing holds it (no
//!   running action, no start period, no dependency hold, not flapping, not failed) and the
//!   backoff has elapsed. The attempt number is the backoff position: the k-th action of a
//!   sequence is attempt k, and the next one waits `min(initial × factor^(k-1), max)` ± jitter
//!   from the end of action k. Jitter is applied after the cap, so a delay may exceed `max` by
//!   the jitter fraction.
//! - Timers: the backoff running out, a start period running out, `rearm_after` running out and
//!   a flapping hold lifting take effect at their instant when the caller wakes the task then
//!   ([`Engine::next_wake`], [`Engine::wake`]). Every check result first applies the timers due
//!   by its time, exactly as `wake` would, and only then counts: a late caller gets the same
//!   decisions, taken at the later time, and a result never undoes what was due before it.
//! - Every finished action (success or error) clears the failure counts, so the next action
//!   needs `failure_threshold` fresh failures as well as the elapsed backoff.
//! - The backoff resets to `initial` only after the task has been healthy or degraded without a
//!   break for `reset_after` (checked at observations), or when a person re-arms it.
//! - Start period: as in Docker, a pass inside it counts and the check reaching
//!   `success_threshold` ends it early (the action is `recovered`); if it runs out first, the
//!   attempt failed and the task is `unhealthy`. With no start period an attempt is decided by
//!   the thresholds alone.
//! - Restart budget: an action due when `max_restarts` actions started within the trailing
//!   `restart_window` makes the task `failed` instead. Every way of re-arming (recovering by
//!   itself, `rearm_after`, a person) clears that history, so a re-armed task always gets at
//!   least one action at its next incident; only a person's re-arm also restarts the backoff.
//!   For that promise to hold, a task with an action needs `max_restarts` of at least 1 (to
//!   never act, a task has no action).
//! - Dependencies hold a task with an action while any dependency is not healthy or degraded.
//!   When the hold lifts, the task's failure counts are cleared, so failures seen while held
//!   never lead to an action. A call about a task re-evaluates only the holds of its dependants
//!   (all holds once, at the first call after [`Engine::new`] or [`Engine::restore`]), so its
//!   cost does not grow with the number of tasks.
//! - Flapping counts changes between "up" (healthy, degraded) and "down" (unhealthy, failed);
//!   `unknown` and `restarting` are neither and do not end a run. More than `max_changes` such
//!   changes within `window` holds actions; the hold lifts once a whole `window` passes without a
//!   change (the hysteresis: entering needs many changes, leaving needs none for a window).
//! - Tasks without an action are tracked and reported but are never held, never act and are
//!   never `failed`.

#![warn(missing_docs)]

mod config;
mod decision;
mod engine;
mod rng;
mod status;
mod task;

pub use config::{
    Backoff, ConfigError, ConfigProblem, Flapping, MAX_FAILURE_WINDOW, PolicyConfig,
    check_dependencies,
};
pub use decision::{Decision, DecisionKind, HoldReason, RearmHow};
pub use engine::{Engine, PolicyError, RestoreError, RestoreReport, Snapshot};
pub use status::{ParseError, State, Status};
pub use task::{
    ActionRecord, ActionResult, MAX_ACTIONS, MAX_MESSAGE_BYTES, MAX_RESULTS, ResultRecord,
    TaskState, TaskView,
};

use std::time::Duration;

/// A point in time: milliseconds since the UNIX epoch. The caller supplies it; the policy never
/// reads a clock.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// This time plus `d`, saturating rather than overflowing.
    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(millis(d)))
    }

    /// Time elapsed from `earlier` to this time; zero if `earlier` is later (a clock that went
    /// back must not panic the policy).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

/// A duration in whole milliseconds, saturating: the policy's unit of time.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
