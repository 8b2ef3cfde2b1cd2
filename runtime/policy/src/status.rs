//! What a check reports ([`Status`]) and what the policy makes of a task ([`State`]).

use std::fmt;
use std::str::FromStr;

/// Health as a check reports it (the WIT `status`). A check that times out, traps or runs out of
/// memory reaches the policy as `Unhealthy` with that reason as its message.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The service does what it should.
    Healthy,
    /// The service works but something is off: a pass for the thresholds, shown as degraded.
    Degraded,
    /// The service does not work: a failure.
    Unhealthy,
    /// The check could not tell: neutral, it neither counts nor breaks a streak.
    Unknown,
}

/// The state of a task.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Not yet decided: at start, and after an action until the check decides.
    #[default]
    Unknown,
    /// Passing.
    Healthy,
    /// Passing, but the check reports something off. Never acted on.
    Degraded,
    /// Failing: acted on when the task has an action and nothing holds it.
    Unhealthy,
    /// The action is running.
    Restarting,
    /// The restart budget is spent: no more actions until re-armed.
    Failed,
}

impl State {
    /// Whether the service works in this state (healthy or degraded): what a dependent waits for.
    pub fn is_up(self) -> bool {
        matches!(self, State::Healthy | State::Degraded)
    }

    /// The lowercase name, as shown and serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Healthy => "healthy",
            State::Degraded => "degraded",
            State::Unhealthy => "unhealthy",
            State::Restarting => "restarting",
            State::Failed => "failed",
        }
    }
}

impl Status {
    /// The lowercase name, as shown and serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
            Status::Unknown => "unknown",
        }
    }
}

// `pad`, not `write_str`: a table that writes `{:9}` gets its columns.
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A name that is not a status or a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{found:?} is not one of {expected}")]
pub struct ParseError {
    /// What was given.
    pub found: String,
    /// The names accepted.
    pub expected: &'static str,
}

impl FromStr for Status {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "healthy" => Ok(Status::Healthy),
            "degraded" => Ok(Status::Degraded),
            "unhealthy" => Ok(Status::Unhealthy),
            "unknown" => Ok(Status::Unknown),
            _ => Err(ParseError {
                found: s.to_string(),
                expected: "healthy, degraded, unhealthy, unknown",
            }),
        }
    }
}

impl FromStr for State {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "unknown" => Ok(State::Unknown),
            "healthy" => Ok(State::Healthy),
            "degraded" => Ok(State::Degraded),
            "unhealthy" => Ok(State::Unhealthy),
            "restarting" => Ok(State::Restarting),
            "failed" => Ok(State::Failed),
            _ => Err(ParseError {
                found: s.to_string(),
                expected: "unknown, healthy, degraded, unhealthy, restarting, failed",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fill_a_column() {
        assert_eq!(format!("[{:9}]", Status::Healthy), "[healthy  ]");
        assert_eq!(format!("[{:>10}]", State::Failed), "[    failed]");
        assert_eq!(Status::Unknown.to_string(), "unknown");
    }
}
