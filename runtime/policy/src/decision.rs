//! What the policy decides: the output of every call into the [`crate::Engine`].

use std::fmt;
use std::time::Duration;

use hmrt_domain::duration;

use crate::{State, Timestamp};

/// One decision about one task, taken at one time.
///
/// Serialised flat: `{"task":"web","at":1700000000000,"decision":"act","attempt":1}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Decision {
    /// The task it is about. A call about one task may decide about others (a dependency hold).
    pub task: String,
    /// The time of the call that took it.
    pub at: Timestamp,
    /// What was decided.
    #[serde(flatten)]
    pub kind: DecisionKind,
}

/// What was decided.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum DecisionKind {
    /// The task's state changed.
    StateChanged {
        /// The state before.
        from: State,
        /// The state now.
        to: State,
        /// Why, for a person.
        reason: String,
    },
    /// Run the task's action now; then report its outcome with
    /// [`crate::Engine::action_finished`]. The attempt is the position in the backoff sequence.
    Act {
        /// 1 for the first action of a sequence, counting up until the backoff resets.
        attempt: u32,
    },
    /// The task's actions are held from now on, or for a new reason.
    Held {
        /// Why.
        reason: HoldReason,
    },
    /// A hold ended.
    HoldLifted {
        /// The hold that ended.
        reason: HoldReason,
    },
    /// The check passed `success_threshold` times after the action: it worked.
    Recovered {
        /// The attempt that worked.
        attempt: u32,
    },
    /// An action did not bring the service back (its run returned an error, its start period
    /// ran out, or the check failed again). The task stays unhealthy and the backoff continues.
    AttemptFailed {
        /// The attempt that failed.
        attempt: u32,
        /// Why it counts as failed.
        reason: String,
    },
    /// A failed task may act again. Its restart-window history is cleared, however it was
    /// re-armed, so its next incident gets at least one action.
    Rearmed {
        /// What re-armed it.
        how: RearmHow,
    },
    /// The restart budget is spent: the task is `failed` and takes no action until re-armed.
    Failed {
        /// Why, for a person.
        reason: String,
    },
    /// The task stayed healthy for `reset_after`: the next delay is `backoff.initial` again.
    BackoffReset {
        /// The backoff position (attempts in the sequence) before the reset.
        position: u32,
    },
}

/// Why a task's actions are held.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "hold", rename_all = "snake_case")]
pub enum HoldReason {
    /// These dependencies are not healthy or degraded.
    Dependency {
        /// Their names, in name order.
        tasks: Vec<String>,
    },
    /// The task changed state too often.
    Flapping {
        /// The changes counted within the window when the hold began.
        changes: u32,
        /// The window, in milliseconds.
        window_ms: u64,
    },
    /// A person paused the task: its checks go on and are recorded, its actions wait.
    Paused,
}

/// What re-armed a failed task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RearmHow {
    /// It passed its check `success_threshold` times by itself.
    Recovered,
    /// `rearm_after` elapsed since it failed.
    Elapsed,
    /// A person re-armed it.
    Person,
}

impl fmt::Display for HoldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HoldReason::Dependency { tasks } => {
                let s = if tasks.len() == 1 { "y" } else { "ies" };
                write!(f, "dependenc{s} {} not healthy", tasks.join(", "))
            }
            HoldReason::Flapping { changes, window_ms } => write!(
                f,
                "flapping: {changes} state changes within {}",
                duration::format(Duration::from_millis(*window_ms))
            ),
            HoldReason::Paused => f.write_str("paused by a person"),
        }
    }
}

impl fmt::Display for RearmHow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RearmHow::Recovered => "recovered",
            RearmHow::Elapsed => "elapsed",
            RearmHow::Person => "person",
        })
    }
}

impl fmt::Display for DecisionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecisionKind::StateChanged { from, to, reason } => {
                write!(f, "{from} -> {to}: {reason}")
            }
            DecisionKind::Act { attempt } => write!(f, "act (attempt {attempt})"),
            DecisionKind::Held { reason } => write!(f, "held: {reason}"),
            DecisionKind::HoldLifted { reason } => write!(f, "hold lifted: {reason}"),
            DecisionKind::Recovered { attempt } => write!(f, "recovered after attempt {attempt}"),
            DecisionKind::AttemptFailed { attempt, reason } => {
                write!(f, "attempt {attempt} failed: {reason}")
            }
            DecisionKind::Rearmed { how } => match how {
                RearmHow::Recovered => f.write_str("re-armed: recovered by itself"),
                RearmHow::Elapsed => f.write_str("re-armed: rearm_after elapsed"),
                RearmHow::Person => f.write_str("re-armed by a person"),
            },
            DecisionKind::Failed { reason } => write!(f, "failed: {reason}"),
            DecisionKind::BackoffReset { position } => {
                write!(f, "backoff reset (was at attempt {position})")
            }
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.task, self.kind)
    }
}
