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
    /// Per task: denial lines written in the current window, so a guest looping on a denied
    /// call cannot flood the log.
    denials: Mutex<HashMap<String, DenialWindow>>,
}

/// Denial lines logged per task per [`DENIAL_WINDOW`]; the rest are counted and said once.
const DENIAL_LINES: u32 = 10;
/// The span over which [`DENIAL_LINES`] applies.
const DENIAL_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

struct DenialWindow {
    started: Timestamp,
    logged: u32,
    suppressed: u64,
}

impl Default for DenialWindow {
    fn default() -> Self {
        DenialWindow {
            started: Timestamp(0),
            logged: 0,
            suppressed: 0,
        }
    }
}

impl LogSubscriber {
    /// A log writer.
    pub fn new() -> LogSubscriber {
        LogSubscriber::default()
    }

    fn note_denial(&self, at: Timestamp, task: &str, denial: &crate::capabilities::Denial) {
        let mut windows = crate::sync::lock(&self.denials);
        let window = windows.entry(task.to_string()).or_default();
        if at.since(window.started) >= DENIAL_WINDOW {
            if window.suppressed > 0 {
                tracing::warn!(task = %task, event = "denied", suppressed = window.suppressed, "{} more denied calls were not logged", window.suppressed);
            }
            *window = DenialWindow {
                started: at,
                ..DenialWindow::default()
            };
        }
        if window.logged >= DENIAL_LINES {
            window.suppressed += denial.count;
            return;
        }
        window.logged += 1;
        tracing::warn!(task = %task, event = "denied", capability = %denial.capability, asked = %denial.asked, count = denial.count, "not in the task's grants");
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
    fn on_event(&self, at: Timestamp, event: &Event) {
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
            Event::CallDenied { task, denial } => self.note_denial(at, task, denial),
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
