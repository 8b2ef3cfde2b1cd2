//! The board: what the HTTP API, the status page and `hmrt status` show of each task, kept from
//! the event stream. It holds the policy's latest state of each task (from
//! [`Event::TaskState`]) and adds what only the events know: check times and response times,
//! the check's metrics, a short latency history, and recent actions, manual ones included.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use hmrt_policy::{PolicyConfig, State, Status, TaskState, Timestamp};
use serde::Serialize;

use super::{Event, Metric, Subscriber};
use crate::clock::rfc3339;

/// How many recent check results each task keeps for its latency sparkline.
pub const RECENT: usize = 60;
/// How many recent actions each task keeps.
pub const ACTIONS: usize = 20;

/// One recent check, for the sparkline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recent {
    /// When it ran (RFC 3339).
    pub at: String,
    /// Its verdict.
    pub status: Status,
    /// How long it took, in milliseconds (absent for results restored from disk).
    pub response_ms: Option<f64>,
}

/// One recent action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionEntry {
    /// When it started (RFC 3339).
    pub at: String,
    /// The action plugin.
    pub action: String,
    /// Its attempt (0 for a manual restart).
    pub attempt: u32,
    /// A person asked for it.
    pub manual: bool,
    /// Whether it ran without error; `None` while it runs.
    pub ok: Option<bool>,
    /// What it said.
    pub message: String,
}

/// Everything shown of one task (`GET /tasks/{task}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskInfo {
    /// The task.
    pub name: String,
    /// Its state.
    pub state: State,
    /// In that state since (RFC 3339), if known.
    pub since: Option<String>,
    /// Its last check's verdict.
    pub status: Option<Status>,
    /// Its last check's message.
    pub message: String,
    /// A person paused its actions.
    pub paused: bool,
    /// What holds its actions, for a person; empty if nothing.
    pub held: Vec<String>,
    /// When its last check ran.
    pub last_check: Option<String>,
    /// When its last check passed (healthy or degraded).
    pub last_healthy: Option<String>,
    /// How long its last check took, in milliseconds.
    pub last_response_ms: Option<f64>,
    /// Failed checks in a row.
    pub consecutive_failures: u32,
    /// Passed checks in a row.
    pub consecutive_passes: u32,
    /// Actions started since hmrt started (automatic and manual).
    pub restarts: u64,
    /// Actions within the restart window.
    pub restarts_in_window: u32,
    /// The restart budget.
    pub max_restarts: u32,
    /// What is left of it.
    pub budget_left: u32,
    /// Actions in the current backoff sequence.
    pub backoff_position: u32,
    /// When the next action may start, if one is pending.
    pub next_action_at: Option<String>,
    /// The metrics of its last check.
    pub metrics: Vec<Metric>,
    /// Recent checks, oldest first.
    pub recent: Vec<Recent>,
    /// Recent actions, oldest first.
    pub actions: Vec<ActionEntry>,
    /// The last alert notice delivery attempt about the task, if any.
    pub last_notice: Option<NoticeEntry>,
    /// Alert notices about the task waiting for delivery.
    pub notices_pending: usize,
}

/// An alert notice delivery attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoticeEntry {
    /// When (RFC 3339).
    pub at: String,
    /// The route (or `<route>/escalation`).
    pub route: String,
    /// What the notice said.
    pub kind: &'static str,
    /// `delivered`, `failed` (to be retried) or `dropped`.
    pub outcome: &'static str,
    /// Which attempt it was.
    pub attempt: u32,
    /// What the receiver said.
    pub message: String,
}

/// One task's line in `/health`: what a probe needs, cheap to build for many tasks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthRow {
    /// The task.
    pub name: String,
    /// Its last check's verdict.
    pub status: Option<Status>,
    /// Its state.
    pub state: State,
    /// A person paused its actions.
    pub paused: bool,
    /// When its last check ran.
    pub last_check: Option<String>,
    /// When its last check passed.
    pub last_healthy: Option<String>,
    /// Failed checks in a row.
    pub consecutive_failures: u32,
    /// Actions started since hmrt started.
    pub restarts: u64,
    /// How long its last check took, in milliseconds.
    pub last_response_ms: Option<f64>,
}

#[derive(Debug, Default)]
struct Entry {
    state: Arc<TaskState>,
    last_check: Option<Timestamp>,
    last_healthy: Option<Timestamp>,
    last_status: Option<Status>,
    message: String,
    last_response_ms: Option<f64>,
    metrics: Vec<Metric>,
    recent: VecDeque<Recent>,
    actions: VecDeque<ActionEntry>,
    restarts: u64,
    checked: bool,
    last_notice: Option<NoticeEntry>,
}

/// The board.
pub struct Board {
    policies: BTreeMap<String, PolicyConfig>,
    entries: Mutex<BTreeMap<String, Entry>>,
}

impl Board {
    /// A board for the tasks with these policies.
    pub fn new(policies: BTreeMap<String, PolicyConfig>) -> Board {
        let entries = policies
            .keys()
            .map(|t| (t.clone(), Entry::default()))
            .collect();
        Board {
            policies,
            entries: Mutex::new(entries),
        }
    }

    /// Starts from the states the daemon restored: the board shows a restarted daemon's tasks
    /// as they were, with their last results, until their first events arrive.
    pub fn seed(&self, states: Vec<(String, TaskState)>) {
        let mut entries = crate::sync::lock(&self.entries);
        for (task, state) in states {
            let Some(entry) = entries.get_mut(&task) else {
                continue;
            };
            if entry.checked {
                continue;
            }
            if let Some(last) = state.results().last() {
                entry.last_check = Some(last.at);
                entry.last_status = Some(last.status);
                entry.message = last.message.clone();
            }
            entry.last_healthy = state
                .results()
                .filter(|r| matches!(r.status, Status::Healthy | Status::Degraded))
                .map(|r| r.at)
                .last();
            entry.recent = state
                .results()
                .map(|r| Recent {
                    at: rfc3339(r.at),
                    status: r.status,
                    response_ms: None,
                })
                .collect();
            while entry.recent.len() > RECENT {
                entry.recent.pop_front();
            }
            entry.state = Arc::new(state);
        }
    }

    /// Whether a task of that name exists.
    pub fn has(&self, name: &str) -> bool {
        self.policies.contains_key(name)
    }

    /// The task names, in name order.
    pub fn names(&self) -> Vec<String> {
        self.policies.keys().cloned().collect()
    }

    /// Every task at `now`, in name order.
    pub fn tasks(&self, now: Timestamp) -> Vec<TaskInfo> {
        let entries = crate::sync::lock(&self.entries);
        entries
            .iter()
            .filter_map(|(name, entry)| self.info(name, entry, now))
            .collect()
    }

    /// One task at `now`.
    pub fn task(&self, name: &str, now: Timestamp) -> Option<TaskInfo> {
        let entries = crate::sync::lock(&self.entries);
        entries
            .get(name)
            .and_then(|entry| self.info(name, entry, now))
    }

    /// Every task's health line, in name order (`name` = `Some`: that task only).
    pub fn health(&self, name: Option<&str>) -> Vec<HealthRow> {
        let entries = crate::sync::lock(&self.entries);
        entries
            .iter()
            .filter(|(task, _)| name.is_none_or(|n| n == task.as_str()))
            .map(|(task, e)| HealthRow {
                name: task.clone(),
                status: e.last_status,
                state: e.state.state(),
                paused: e.state.is_paused(),
                last_check: e.last_check.map(rfc3339),
                last_healthy: e.last_healthy.map(rfc3339),
                consecutive_failures: e.state.consecutive_failures(),
                restarts: e.restarts,
                last_response_ms: e.last_response_ms,
            })
            .collect()
    }

    /// The task's latest policy state (its results and actions), for its history.
    pub fn state(&self, name: &str) -> Option<Arc<TaskState>> {
        crate::sync::lock(&self.entries)
            .get(name)
            .map(|e| e.state.clone())
    }

    /// The tasks whose check has not run since hmrt started, in name order.
    pub fn not_yet_checked(&self) -> Vec<String> {
        crate::sync::lock(&self.entries)
            .iter()
            .filter(|(_, e)| !e.checked)
            .map(|(name, _)| name.clone())
            .collect()
    }

    fn info(&self, name: &str, entry: &Entry, now: Timestamp) -> Option<TaskInfo> {
        let policy = self.policies.get(name)?;
        let view = entry.state.view(name, policy, now);
        Some(TaskInfo {
            name: name.to_string(),
            state: view.state,
            since: view.since.map(rfc3339),
            status: entry.last_status,
            message: entry.message.clone(),
            paused: entry.state.is_paused(),
            held: view.held.iter().map(ToString::to_string).collect(),
            last_check: entry.last_check.map(rfc3339),
            last_healthy: entry.last_healthy.map(rfc3339),
            last_response_ms: entry.last_response_ms,
            consecutive_failures: view.consecutive_failures,
            consecutive_passes: view.consecutive_passes,
            restarts: entry.restarts,
            restarts_in_window: view.restarts_in_window,
            max_restarts: view.max_restarts,
            budget_left: view.max_restarts.saturating_sub(view.restarts_in_window),
            backoff_position: view.backoff_position,
            next_action_at: pending_action(&view).map(rfc3339),
            metrics: entry.metrics.clone(),
            recent: entry.recent.iter().cloned().collect(),
            actions: entry.actions.iter().cloned().collect(),
            last_notice: entry.last_notice.clone(),
            notices_pending: 0,
        })
    }
}

/// When the task's next action may start, if one is pending: only an unhealthy task waits for
/// one (the backoff's bound outlives the incident; after it, it means nothing).
pub(crate) fn pending_action(view: &hmrt_policy::TaskView) -> Option<Timestamp> {
    (view.state == State::Unhealthy)
        .then_some(view.next_action_not_before)
        .flatten()
}

impl Subscriber for Board {
    fn on_event(&self, at: Timestamp, event: &Event) {
        let Some(task) = event.task() else {
            return;
        };
        let mut entries = crate::sync::lock(&self.entries);
        let Some(entry) = entries.get_mut(task) else {
            return;
        };
        match event {
            Event::TaskState { state, .. } => entry.state = state.clone(),
            Event::CheckFinished {
                status,
                message,
                metrics,
                elapsed,
                ..
            } => {
                let ms = elapsed.as_secs_f64() * 1000.0;
                entry.checked = true;
                entry.last_check = Some(at);
                entry.last_status = Some(*status);
                entry.message = message.clone();
                entry.last_response_ms = Some(ms);
                entry.metrics = metrics.clone();
                if matches!(status, Status::Healthy | Status::Degraded) {
                    entry.last_healthy = Some(at);
                }
                entry.recent.push_back(Recent {
                    at: rfc3339(at),
                    status: *status,
                    response_ms: Some(ms),
                });
                while entry.recent.len() > RECENT {
                    entry.recent.pop_front();
                }
            }
            Event::ActionStarted {
                action,
                attempt,
                manual,
                ..
            } => {
                entry.restarts += 1;
                entry.actions.push_back(ActionEntry {
                    at: rfc3339(at),
                    action: action.clone(),
                    attempt: *attempt,
                    manual: *manual,
                    ok: None,
                    message: String::new(),
                });
                while entry.actions.len() > ACTIONS {
                    entry.actions.pop_front();
                }
            }
            Event::NoticeSent {
                route,
                kind,
                attempt,
                outcome,
                message,
                ..
            } => {
                entry.last_notice = Some(NoticeEntry {
                    at: rfc3339(at),
                    route: route.clone(),
                    kind,
                    outcome,
                    attempt: *attempt,
                    message: message.clone(),
                });
            }
            Event::ActionFinished { ok, message, .. } => {
                if let Some(last) = entry.actions.back_mut() {
                    last.ok = Some(*ok);
                    last.message = message.clone();
                }
            }
            _ => {}
        }
    }
}
