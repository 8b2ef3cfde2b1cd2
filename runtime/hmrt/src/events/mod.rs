//! The one typed stream of what happens. The daemon and `hmrt check` publish; every output
//! (the log, the state journal, counters, `hmrt check`'s report, tests' recorders) is a
//! [`Subscriber`] with one job, so adding an output never touches the scheduler or the policy.
//!
//! Events carry the policy's own types (status, state, decision kinds, hold reasons, attempt
//! numbers), never their names as strings: an output decides how to show them.
//!
//! # Durability, as an explicit step
//!
//! A subscriber may promise durability (the state journal does). The publisher marks the
//! moments that need it with [`Events::durable`]: it resolves once every subscriber has made
//! everything it received so far durable. The daemon calls it after publishing a decision and
//! before starting the action that decision asked for, so a `kill -9` during the action (or
//! the backoff after it) never gives the restart budget back.

mod audit;
mod board;
mod counters;
mod log;
mod metrics;
mod recorder;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hmrt_policy::{DecisionKind, HoldReason, State, Status, TaskState, Timestamp};

use crate::capabilities::Denial;
use crate::sandbox::CheckOutcome;

pub use audit::AuditLog;
pub use board::{ActionEntry, Board, HealthRow, NoticeEntry, Recent, TaskInfo};
pub use counters::Counters;
pub use log::LogSubscriber;
pub use metrics::Metrics;
pub use recorder::Recorder;

/// A number a check measured (its guest's text already cut to size by the sandbox).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Metric {
    /// A short snake_case name, such as `latency_ms`.
    pub name: String,
    /// The value.
    pub value: f64,
    /// The unit; empty when the value has none.
    pub unit: String,
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A check call ended (or could not run: its plugin is not usable).
    CheckFinished {
        /// The task.
        task: String,
        /// The check plugin (a built-in or a plugin file stem).
        plugin: String,
        /// The verdict (a failed call is `unhealthy`; an unusable plugin `unknown`).
        status: Status,
        /// Why (untrusted text from the guest, already cut to one bounded line).
        message: String,
        /// The metrics the check reported.
        metrics: Vec<Metric>,
        /// How long the call took.
        elapsed: Duration,
        /// How the call failed, if it did ([`crate::sandbox::CallError::kind`]): the check said
        /// nothing, the sandbox ended it.
        failure: Option<&'static str>,
        /// How long after its due time the check started: the scheduler's lag (zero for a check
        /// not on a schedule, as `hmrt check` runs them).
        late: Duration,
    },
    /// The policy moved a task to another state.
    StateChanged {
        /// The task.
        task: String,
        /// The state before.
        from: State,
        /// The state after.
        to: State,
        /// Why.
        reason: String,
    },
    /// The task's actions are held from now on, or for a new reason.
    ActionHeld {
        /// The task.
        task: String,
        /// Why.
        reason: HoldReason,
    },
    /// An action started.
    ActionStarted {
        /// The task.
        task: String,
        /// The action plugin.
        action: String,
        /// The attempt (the position in the backoff sequence); 0 for a manual restart.
        attempt: u32,
        /// A person asked for it (through the API); it does not count against the budget.
        manual: bool,
    },
    /// An action ended.
    ActionFinished {
        /// The task.
        task: String,
        /// The action plugin.
        action: String,
        /// The attempt; 0 for a manual restart.
        attempt: u32,
        /// A person asked for it.
        manual: bool,
        /// Whether it ran without error.
        ok: bool,
        /// What it said.
        message: String,
        /// How long it took.
        elapsed: Duration,
        /// How the call failed in the sandbox, if it did ([`crate::sandbox::CallError::kind`]).
        failure: Option<&'static str>,
    },
    /// Any other decision of the policy: a hold lifted, an attempt recovered or failed, a
    /// re-arm, the budget spent, the backoff reset.
    Policy {
        /// The task.
        task: String,
        /// What the policy decided.
        decision: DecisionKind,
    },
    /// A task's whole policy state after a call that changed it: the state journal's input.
    /// `decided` is true when the call decided something (a state change, an action, a hold, a
    /// budget change), which must be durable before any action it leads to starts; otherwise only
    /// counters and the result ring changed.
    TaskState {
        /// The task.
        task: String,
        /// Its state.
        state: Arc<TaskState>,
        /// Whether the call decided something.
        decided: bool,
    },
    /// A plugin call was denied.
    CallDenied {
        /// The task.
        task: String,
        /// The denial.
        denial: Denial,
    },
    /// A person changed something through the API (restart, re-arm, pause, resume): what the
    /// audit log keeps.
    Control {
        /// The task.
        task: String,
        /// What was asked.
        command: &'static str,
        /// Who asked: the name of the environment variable whose token they presented.
        by: String,
        /// From which address.
        from: String,
        /// What came of it, for a person.
        outcome: String,
    },
    /// An alert route tried to deliver a notice.
    NoticeSent {
        /// The route.
        route: String,
        /// The task the notice is about.
        task: String,
        /// What the notice says (`unhealthy`, `recovered`, `reminder`, ...).
        kind: &'static str,
        /// Which attempt this was.
        attempt: u32,
        /// `delivered`, `failed` (it will be retried) or `dropped` (given up).
        outcome: &'static str,
        /// What the receiver said.
        message: String,
    },
    /// How many notices an alert queue holds now (published when it changes).
    OutboxPending {
        /// The queue: a route's name, or `<route>/escalation`.
        route: String,
        /// Notices waiting in it.
        pending: usize,
    },
    /// A plugin file could not be loaded: its tasks report `unknown`, the others run.
    PluginFailed {
        /// What is wrong, naming the file.
        problem: String,
    },
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
            | Event::TaskState { task, .. }
            | Event::CallDenied { task, .. }
            | Event::Control { task, .. }
            | Event::NoticeSent { task, .. } => Some(task),
            Event::PluginFailed { .. } | Event::OutboxPending { .. } => None,
        }
    }

    /// The event a policy decision is published as; `None` for [`DecisionKind::Act`], which the
    /// publisher carries out (and publishes as [`Event::ActionStarted`]).
    pub fn of_decision(task: &str, kind: &DecisionKind) -> Option<Event> {
        let task = task.to_string();
        Some(match kind {
            DecisionKind::Act { .. } => return None,
            DecisionKind::StateChanged { from, to, reason } => Event::StateChanged {
                task,
                from: *from,
                to: *to,
                reason: reason.clone(),
            },
            DecisionKind::Held { reason } => Event::ActionHeld {
                task,
                reason: reason.clone(),
            },
            other => Event::Policy {
                task,
                decision: other.clone(),
            },
        })
    }
}

/// A future a subscriber returns from [`Subscriber::durable`].
pub type Durable<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Receives every event, in order, synchronously: it must be quick (hand slow work to a thread
/// of its own, as the state journal does).
pub trait Subscriber: Send + Sync {
    /// Called once per event, with the publisher's clock reading.
    fn on_event(&self, at: Timestamp, event: &Event);

    /// Resolves once everything received so far that this subscriber keeps durably is durable.
    /// Most subscribers keep nothing: the default is ready at once.
    fn durable(&self) -> Durable<'_> {
        Box::pin(std::future::ready(()))
    }

    /// The stream ends (the daemon stops): resolves once everything received is durable, even
    /// what was kept to be written later.
    fn close(&self) -> Durable<'_> {
        self.durable()
    }
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

    /// Sends `event`, stamped `at`, to every subscriber.
    pub fn emit(&self, at: Timestamp, event: Event) {
        for subscriber in self.subscribers.iter() {
            subscriber.on_event(at, &event);
        }
    }

    /// Resolves once every subscriber has made durable what it keeps of the events so far.
    pub async fn durable(&self) {
        for subscriber in self.subscribers.iter() {
            subscriber.durable().await;
        }
    }

    /// Ends the stream: resolves once every subscriber has made durable all it keeps.
    pub async fn close(&self) {
        for subscriber in self.subscribers.iter() {
            subscriber.close().await;
        }
    }

    /// Publishes a check that could not run because its plugin is not usable: `unknown`, with
    /// why.
    pub fn check_unusable(
        &self,
        at: Timestamp,
        task: &str,
        plugin: &str,
        reason: &str,
        late: Duration,
    ) {
        self.emit(
            at,
            Event::CheckFinished {
                task: task.to_string(),
                plugin: plugin.to_string(),
                status: Status::Unknown,
                message: reason.to_string(),
                metrics: Vec::new(),
                elapsed: Duration::ZERO,
                failure: None,
                late,
            },
        );
    }

    /// Publishes one check call: each denied call, then the result.
    pub fn check_finished(
        &self,
        at: Timestamp,
        task: &str,
        plugin: &str,
        outcome: &CheckOutcome,
        late: Duration,
    ) {
        for denial in &outcome.report.denials {
            self.emit(
                at,
                Event::CallDenied {
                    task: task.to_string(),
                    denial: denial.clone(),
                },
            );
        }
        self.emit(
            at,
            Event::CheckFinished {
                task: task.to_string(),
                plugin: plugin.to_string(),
                status: outcome.status(),
                message: outcome.message(),
                metrics: outcome.metrics(),
                elapsed: outcome.report.elapsed,
                failure: outcome.result.as_ref().err().map(|e| e.kind()),
                late,
            },
        );
    }
}
