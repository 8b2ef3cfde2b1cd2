//! The one typed stream of what happens. Every output (log, state, metrics, alerts, tests'
//! recorders) subscribes to it, so adding an output never touches the scheduler or the policy.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::capabilities::Denial;

/// Something that happened.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A check call ended.
    CheckFinished {
        /// The task.
        task: String,
        /// The verdict (a failed call is `unhealthy`).
        status: String,
        /// Why.
        message: String,
        /// How long the call took.
        #[serde(with = "humantime_serde_ms")]
        elapsed: Duration,
    },
    /// The policy moved a task to another state.
    StateChanged {
        /// The task.
        task: String,
        /// The state before.
        from: String,
        /// The state after.
        to: String,
        /// Why.
        reason: String,
    },
    /// An action was held back.
    ActionHeld {
        /// The task.
        task: String,
        /// Why.
        reason: String,
    },
    /// An action started.
    ActionStarted {
        /// The task.
        task: String,
        /// The action plugin.
        action: String,
        /// Which attempt in the restart window.
        attempt: u32,
    },
    /// An action ended.
    ActionFinished {
        /// The task.
        task: String,
        /// The action plugin.
        action: String,
        /// Which attempt.
        attempt: u32,
        /// Whether it succeeded.
        ok: bool,
        /// What it said.
        message: String,
        /// How long it took.
        #[serde(with = "humantime_serde_ms")]
        elapsed: Duration,
    },
    /// The policy reported something about an attempt or the budget (recovered, attempt
    /// failed, re-armed, failed).
    Policy {
        /// The task.
        task: String,
        /// What happened, in words.
        what: String,
    },
    /// A plugin call was denied.
    CallDenied {
        /// The task.
        task: String,
        /// The denial.
        denial: Denial,
    },
    /// A plugin file could not be loaded.
    PluginFailed {
        /// What is wrong, naming the file.
        problem: String,
    },
}

mod humantime_serde_ms {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }
}

impl Event {
    /// The task the event is about, if any.
    pub fn task(&self) -> Option<&str> {
        match self {
            Event::CheckFinished { task, .. }
            | Event::StateChanged { task, .. }
            | Event::ActionHeld { task, .. }
            | Event::ActionStarted { task, .. }
            | Event::ActionFinished { task, .. }
            | Event::Policy { task, .. }
            | Event::CallDenied { task, .. } => Some(task),
            Event::PluginFailed { .. } => None,
        }
    }
}

/// Receives every event, in order, synchronously: it must be quick.
pub trait Subscriber: Send + Sync {
    /// Called once per event.
    fn on_event(&self, at: SystemTime, event: &Event);
}

/// The fan-out.
#[derive(Clone, Default)]
pub struct Events {
    subscribers: Arc<Vec<Arc<dyn Subscriber>>>,
}

impl Events {
    /// A stream with these subscribers.
    pub fn new(subscribers: Vec<Arc<dyn Subscriber>>) -> Events {
        Events {
            subscribers: Arc::new(subscribers),
        }
    }

    /// Sends `event` to every subscriber.
    pub fn emit(&self, event: Event) {
        let at = SystemTime::now();
        for subscriber in self.subscribers.iter() {
            subscriber.on_event(at, &event);
        }
    }
}

/// Writes events to the log through `tracing`, each with its task.
pub struct LogSubscriber;

impl Subscriber for LogSubscriber {
    fn on_event(&self, _at: SystemTime, event: &Event) {
        match event {
            Event::CheckFinished {
                task,
                status,
                message,
                elapsed,
            } => {
                tracing::debug!(task = %task, %status, elapsed_ms = elapsed.as_millis() as u64, "check: {message}")
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
                if *ok {
                    tracing::info!(task = %task, %action, attempt, elapsed_ms = elapsed.as_millis() as u64, "action {action} done: {message}")
                } else {
                    tracing::warn!(task = %task, %action, attempt, elapsed_ms = elapsed.as_millis() as u64, "action {action} failed: {message}")
                }
            }
            Event::Policy { task, what } => tracing::info!(task = %task, "{what}"),
            Event::CallDenied { task, denial } => {
                tracing::debug!(task = %task, capability = %denial.capability, asked = %denial.asked, "denied")
            }
            Event::PluginFailed { problem } => tracing::error!("plugin not loaded: {problem}"),
        }
    }
}

/// Keeps every event with its time: for tests and `hmrt check`.
#[derive(Default)]
pub struct Recorder {
    events: Mutex<Vec<(SystemTime, Event)>>,
}

impl Recorder {
    /// Everything recorded so far.
    pub fn events(&self) -> Vec<(SystemTime, Event)> {
        match self.events.lock() {
            Ok(events) => events.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl Subscriber for Recorder {
    fn on_event(&self, at: SystemTime, event: &Event) {
        let mut events = match self.events.lock() {
            Ok(events) => events,
            Err(poisoned) => poisoned.into_inner(),
        };
        events.push((at, event.clone()));
    }
}
