//! A notice: what a receiver is told, and the words it is told in.

use std::collections::BTreeMap;
use std::time::Duration;

use hmrt_config::AlertEvent;
use hmrt_policy::{State, Timestamp};
use serde::{Deserialize, Serialize};

use super::router::TaskFacts;

/// What a notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An incident began.
    Unhealthy,
    /// An announced incident ended.
    Recovered,
    /// The restart budget is spent.
    Failed,
    /// The task flaps; its notices wait until it is stable.
    Flapping,
    /// A failed task was re-armed.
    Rearmed,
    /// The task's actions are held by a dependency.
    Held,
    /// An announced incident still lasts.
    Reminder,
}

impl Kind {
    /// Whether the notice says something is wrong (as opposed to resolving it).
    pub fn firing(self) -> bool {
        !matches!(self, Kind::Recovered | Kind::Rearmed)
    }

    /// Its name, as notices and metrics write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Unhealthy => "unhealthy",
            Kind::Recovered => "recovered",
            Kind::Failed => "failed",
            Kind::Flapping => "flapping",
            Kind::Rearmed => "rearmed",
            Kind::Held => "held",
            Kind::Reminder => "reminder",
        }
    }

    /// The route event that lets it through.
    pub(super) fn event(self) -> AlertEvent {
        match self {
            Kind::Unhealthy | Kind::Reminder => AlertEvent::Unhealthy,
            Kind::Recovered => AlertEvent::Recovered,
            Kind::Failed => AlertEvent::Failed,
            Kind::Flapping => AlertEvent::Flapping,
            Kind::Rearmed => AlertEvent::Rearmed,
            Kind::Held => AlertEvent::Held,
        }
    }
}

/// A notice to deliver: what the receiver gets (as `notice` in its config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// Unique, stable across delivery attempts: `route/task/sequence`.
    pub id: String,
    /// The route.
    pub route: String,
    /// What it is about.
    pub kind: Kind,
    /// Whether it says something is wrong.
    pub firing: bool,
    /// The task.
    pub task: String,
    /// The task's labels.
    pub labels: BTreeMap<String, String>,
    /// The task's state when the notice was made.
    pub state: State,
    /// Why (the last check's message: untrusted text, one line).
    pub reason: String,
    /// One line for a title.
    pub summary: String,
    /// When the incident began.
    pub started_at: Timestamp,
    /// When the notice was made.
    pub at: Timestamp,
    /// Recovered: when the incident ended; firing with reminders: when the alert should expire
    /// if not re-sent.
    pub ends_at: Option<Timestamp>,
    /// Dependants whose notices this outage holds.
    pub held: Vec<String>,
    /// 0 for the first notice of an incident; n for its n-th reminder.
    pub reminder: u32,
    /// For the route's second receiver (`escalate_to`): the incident outlasted
    /// `escalate_after`.
    #[serde(default)]
    pub escalation: bool,
}

impl Notice {
    /// The outbox queue it waits in: its route's, or its route's escalation queue.
    pub fn queue(&self) -> String {
        queue_name(&self.route, self.escalation)
    }
}

/// The queue of `route`'s notices (`escalation`: of its second receiver).
pub fn queue_name(route: &str, escalation: bool) -> String {
    if escalation {
        format!("{route}/escalation")
    } else {
        route.to_string()
    }
}

/// The notice's one line, for titles.
pub(super) fn summary(
    task: &str,
    kind: Kind,
    facts: &TaskFacts,
    held: &[String],
    lasted: Duration,
) -> String {
    let lasted = hmrt_domain::duration::format(Duration::from_secs(lasted.as_secs()));
    let mut text = match kind {
        Kind::Unhealthy => format!("{task} is {}: {}", facts.state, facts.reason),
        Kind::Reminder => format!(
            "{task} is still {} after {lasted}: {}",
            facts.state, facts.reason
        ),
        Kind::Recovered => format!("{task} recovered after {lasted}: {}", facts.reason),
        Kind::Failed => format!("{task} failed: restart budget spent; {}", facts.reason),
        Kind::Flapping => format!("{task} is flapping; its notices wait until it is stable"),
        Kind::Rearmed => format!("{task} was re-armed"),
        Kind::Held => format!("{task}'s actions are held by a dependency"),
    };
    if !held.is_empty() {
        text.push_str(&format!(" (holding {})", held.join(", ")));
    }
    crate::text::one_line(&text, 300)
}
