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
                tracing::info!(task = %task, event = "check", %status, "the check tells again: {message}");
            }
            return;
        }
        if unknown.get(task).is_some_and(|last| last == message) {
            return;
        }
        tracing::warn!(task = %task, event = "check", status = "unknown", "the check cannot tell: {message}");
        unknown.insert(task.to_string(), message.to_string());
    }
}

// Each line says each thing once: the task, the plugin and the kind of event are fields (so a
// JSON line carries them as keys), the message says only what the fields do not.
impl Subscriber for LogSubscriber {
    fn on_event(&self, _at: Timestamp, event: &Event) {
        match event {
            Event::CheckFinished {
                task,
                plugin,
                status,
                message,
                elapsed,
                ..
            } => {
                tracing::debug!(task = %task, plugin = %plugin, event = "check", %status, elapsed_ms = elapsed.as_millis() as u64, "{message}");
                self.note_status(task, *status, message);
            }
            Event::StateChanged {
                task,
                from,
                to,
                reason,
            } => {
                tracing::info!(task = %task, event = "state", %from, %to, "{reason}")
            }
            Event::ActionHeld { task, reason } => {
                tracing::info!(task = %task, event = "held", "{reason}")
            }
            Event::ActionStarted {
                task,
                action,
                attempt,
                manual,
            } => {
                tracing::info!(task = %task, plugin = %action, event = "action_started", attempt, manual, "running the action")
            }
            Event::ActionFinished {
                task,
                action,
                attempt,
                manual,
                ok,
                message,
                elapsed,
                ..
            } => {
                let elapsed_ms = elapsed.as_millis() as u64;
                if *ok {
                    tracing::info!(task = %task, plugin = %action, event = "action_done", attempt, manual, elapsed_ms, "{message}")
                } else {
                    tracing::warn!(task = %task, plugin = %action, event = "action_failed", attempt, manual, elapsed_ms, "{message}")
                }
            }
            Event::Policy { task, decision } => {
                tracing::info!(task = %task, event = "policy", "{decision}")
            }
            Event::CallDenied { task, denial } => {
                tracing::warn!(task = %task, event = "denied", capability = %denial.capability, asked = %denial.asked, "not in the task's grants")
            }
            Event::Control {
                task,
                command,
                by,
                from,
                outcome,
            } => {
                tracing::info!(task = %task, event = "control", command, by = %by, from = %from, "{outcome}")
            }
            Event::NoticeSent {
                route,
                task,
                kind,
                attempt,
                outcome,
                message,
            } => {
                if *outcome == "delivered" {
                    tracing::info!(task = %task, route = %route, event = "notice", kind, attempt, outcome, "{message}")
                } else {
                    tracing::warn!(task = %task, route = %route, event = "notice", kind, attempt, outcome, "{message}")
                }
            }
            // The registry logs a plugin file it cannot load as it loads it, for every command;
            // the event would only say it twice.
            Event::PluginFailed { .. } | Event::TaskState { .. } | Event::OutboxPending { .. } => {}
        }
    }
}
