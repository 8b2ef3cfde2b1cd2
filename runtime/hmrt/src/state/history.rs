//! A task's recent results and actions as `hmrt history` prints them, in the format
//! `hmrt simulate --results` reads back.

use hmrt_policy::{ActionResult, Status, TaskState};

/// One entry of a task's history, in the JSON Lines format `hmrt simulate --results` reads.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum HistoryEntry {
    /// A check result: `{"at": ms, "status": "...", "message": "..."}`.
    Result {
        /// When it was observed (unix ms).
        at: u64,
        /// The check's status.
        status: Status,
        /// Its message.
        message: String,
    },
    /// An action's outcome: `{"at": ms, "action": "ok"|"error", "message": "...", "attempt": n}`
    /// (simulate ignores `attempt`).
    Action {
        /// When it finished (unix ms).
        at: u64,
        /// `ok` or `error`.
        action: &'static str,
        /// Its outcome message or error.
        message: String,
        /// Its attempt number.
        attempt: u32,
    },
}

impl HistoryEntry {
    /// Its time.
    pub fn at(&self) -> u64 {
        match self {
            HistoryEntry::Result { at, .. } | HistoryEntry::Action { at, .. } => *at,
        }
    }
}

/// The task's recent results and finished actions, in time order (an action after the check
/// result that led to it when both carry the same millisecond). Actions that started before the
/// oldest result still kept are left out, so the sequence replays through `hmrt simulate`
/// without an outcome the replay never asked for; an action still running is left out too.
pub fn history(state: &TaskState) -> Vec<HistoryEntry> {
    let first = state.results().next().map(|r| r.at);
    let mut entries: Vec<(u64, u8, HistoryEntry)> = state
        .results()
        .map(|r| {
            (
                r.at.0,
                0,
                HistoryEntry::Result {
                    at: r.at.0,
                    status: r.status,
                    message: r.message.clone(),
                },
            )
        })
        .collect();
    for action in state.actions() {
        if first.is_none_or(|first| action.started < first) {
            continue;
        }
        let (Some(finished), Some(result)) = (action.finished, &action.result) else {
            continue;
        };
        let (outcome, message) = match result {
            ActionResult::Ok { message } => ("ok", message.clone()),
            ActionResult::Error { error } => ("error", error.clone()),
        };
        entries.push((
            finished.0,
            1,
            HistoryEntry::Action {
                at: finished.0,
                action: outcome,
                message,
                attempt: action.attempt,
            },
        ));
    }
    // Stable: results keep their order among themselves.
    entries.sort_by_key(|(at, kind, _)| (*at, *kind));
    entries.into_iter().map(|(_, _, e)| e).collect()
}
