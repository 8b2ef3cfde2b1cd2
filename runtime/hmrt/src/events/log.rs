//! Writes events to the log through `tracing`, each with its task.

use std::collections::HashMap;
use std::sync::Mutex;

use hmrt_policy::{Status, Timestamp};

use super::{Event, Subscriber};

/// The log writer. Besides one line per event, it says at warn level why a task's check cannot
/// tell (`unknown`), once each time the reason changes, so a task that stays `unknown` is never
/// silent at the default level.
#[derive(Default)]
pub struct LogSubscriber {
    /// Per task: the reason last warned about while its checks report `unknown`.
    unknown: Mutex<HashMap<String, String>>,
}

impl LogSubscriber {
    /// A log writer.
    pub fn new() -> LogSubscriber {
        LogSubscriber::default()
    }

    fn note_status(&self, task: &str, status: Status, message: &str) {
        let mut unknown = crate::sync::lock(&self.unknown);
        if status != Status::Unknown {
            if unknown.remove(task).is_some() {
                tracing::info!(task = %task, %status, "the check tells again: {message}");
            }
            return;
        }
        if unknown.get(task).is_some_and(|last| last == message) {
            return;
        }
        tracing::warn!(task = %task, "the check cannot tell (unknown): {message}");
        unknown.insert(task.to_string(), message.to_string());
    }
}

impl Subscriber for LogSubscriber {
    fn on_event(&self, _at: Timestamp, event: &Event) {
        match event {
            Event::CheckFinished {
                task,
                status,
                message,
                elapsed,
                ..
            } => {
                tracing::debug!(task = %task, %status, elapsed_ms = elapsed.as_millis() as u64, "check: {message}");
                self.note_status(task, *status, message);
            }
            Event::StateChanged {
                task,
                from,
                to,
                reason,
            } => {
                tracing::info!(task = %task, %from, %to, "state {from} -> {to}: {reason}")
            }
            Event::ActionHeld { task, reason } => {
                tracing::info!(task = %task, "action held: {reason}")
            }
            Event::ActionStarted {
                task,
                action,
                attempt,
            } => {
                tracing::info!(task = %task, %action, attempt, "action {action} started (attempt {attempt})")
            }
            Event::ActionFinished {
                task,
                action,
                attempt,
                ok,
                message,
                elapsed,
            } => {
                let elapsed_ms = elapsed.as_millis() as u64;
                if *ok {
                    tracing::info!(task = %task, %action, attempt, elapsed_ms, "action {action} done: {message}")
                } else {
                    tracing::warn!(task = %task, %action, attempt, elapsed_ms, "action {action} failed: {message}")
                }
            }
            Event::Policy { task, decision } => tracing::info!(task = %task, "{decision}"),
            Event::CallDenied { task, denial } => {
                tracing::warn!(task = %task, capability = %denial.capability, asked = %denial.asked, "call denied: not in the task's grants")
            }
            Event::PluginFailed { problem } => tracing::error!("plugin not loaded: {problem}"),
            Event::TaskState { .. } => {}
        }
    }
}
