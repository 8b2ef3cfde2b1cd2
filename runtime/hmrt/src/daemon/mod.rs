//! `hmrt run`: every task on its own schedule, never two runs of one task at once. The daemon
//! schedules, calls the sandbox and the policy, and publishes what happened as events; it calls
//! no output. Every output (log, state journal, counters, ...) is a subscriber.
//!
//! A task loop wakes at the earlier of its next check and the instant the policy asked to be
//! woken at ([`Engine::next_wake`]): a backoff, a start period or `rearm_after` running out
//! between two checks takes effect at that instant, not at the next check.
//!
//! Each engine call is published in one fixed order: the new states of the tasks it touched
//! ([`Event::TaskState`]); then, if it decided anything, the daemon waits for
//! [`Events::durable`] (the state journal has it on disk); then the decisions as events; only
//! then does an action it asked for start. So a decision is durable before its action starts,
//! and before any subscriber hears of it as a decision.

mod control;
mod exits;
mod liveness;
mod reload;
mod task_loop;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hmrt_config::Config;
use hmrt_policy::{Engine, TaskState, Timestamp};
use rand::Rng;
use tokio::sync::{Notify, watch};

pub use control::{Caller, Command, Control, ControlError};
pub use liveness::Liveness;

use crate::clock::Clock;
use crate::events::{Event, Events, Subscriber};
use crate::heartbeat::Pings;
use crate::journal::Journal;
use crate::sandbox::Sandbox;
use crate::state::{StateError, StateStore};
use crate::tasks::BoundTask;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The policy rejected the tasks' settings (should have been caught by the config).
    #[error("policy: {0}")]
    Policy(String),
    /// The state directory cannot be used (not writable, or held by another daemon).
    #[error("state: {0}")]
    State(#[from] StateError),
    /// The state journal's writer thread could not start.
    #[error("state journal: {0}")]
    Journal(std::io::Error),
}

/// The running daemon's shared parts.
struct Shared {
    sandbox: Arc<Sandbox>,
    engine: Mutex<Engine>,
    events: Events,
    /// Read for re-arm requests (`hmrt rearm`); written only by the journal.
    store: Arc<StateStore>,
    clock: Arc<dyn Clock>,
    /// One per task: wakes its loop when a call about another task moved its timers.
    wakers: HashMap<String, Arc<Notify>>,
    /// One per task: wakes its loop to check now, because its program exited (see `exits`).
    hints: HashMap<String, Arc<Notify>>,
    /// The heartbeats' last pings (the API records them).
    pings: Arc<Pings>,
    /// When the daemon started: a heartbeat that never pinged is judged from here.
    started: Timestamp,
    /// Each loop's progress bound, for `/livez`.
    liveness: Arc<Liveness>,
    /// Third-party plugins replaced since start (see `reload`).
    swapped: reload::Swapped,
}

impl Shared {
    fn engine(&self) -> MutexGuard<'_, Engine> {
        crate::sync::lock(&self.engine)
    }

    fn emit(&self, event: Event) {
        self.events.emit(self.clock.now(), event);
    }
}

/// The scheduler.
pub struct Daemon {
    shared: Arc<Shared>,
    tasks: Vec<BoundTask>,
    control: Control,
    inboxes: control::Inboxes,
    /// Whether to watch the programs' processes (`[supervisor] watch_exits`).
    watch_exits: bool,
    /// Where third-party plugins are, watched for changes (see `reload`).
    plugins_dir: std::path::PathBuf,
}

impl Daemon {
    /// A daemon for `tasks` (bound from `config`), publishing to `subscribers` and to the state
    /// journal it adds, reading time from `clock`. Takes the state directory
    /// (`config.runtime.state_dir`, created if missing) and resumes every task from its state
    /// file; see [`crate::state`].
    pub fn new(
        config: &Config,
        sandbox: Arc<Sandbox>,
        tasks: Vec<BoundTask>,
        mut subscribers: Vec<Arc<dyn Subscriber>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Daemon, DaemonError> {
        let policies = crate::simulate::policies(config);
        let mut engine = Engine::new(policies, rand::rng().random())
            .map_err(|e| DaemonError::Policy(e.to_string()))?;
        // Before any task loop starts: the first check already sees the restored state.
        let store = Arc::new(StateStore::open(&config.runtime.state_dir)?);
        let restored = store.restore(&mut engine, clock.now())?;
        log_resumed(&store, &engine, &restored.report);
        subscribers.push(Arc::new(
            Journal::start(store.clone()).map_err(DaemonError::Journal)?,
        ));
        let notifies = || {
            tasks
                .iter()
                .map(|t| (t.name().to_string(), Arc::new(Notify::new())))
                .collect()
        };
        let (wakers, hints) = (notifies(), notifies());
        let names = || tasks.iter().map(|t| t.name());
        let (control, inboxes) = Control::new(names());
        let started = clock.now();
        let shared = Arc::new(Shared {
            sandbox,
            engine: Mutex::new(engine),
            events: Events::new(subscribers),
            store,
            clock,
            wakers,
            hints,
            pings: Arc::new(Pings::default()),
            started,
            liveness: Arc::new(Liveness::new(names())),
            swapped: reload::Swapped::default(),
        });
        // Actions cut short by the last stop: already saved as failed attempts by `restore`.
        for decision in &restored.decisions {
            if let Some(event) = Event::of_decision(&decision.task, &decision.kind) {
                shared.events.emit(decision.at, event);
            }
        }
        Ok(Daemon {
            shared,
            tasks,
            control,
            inboxes,
            watch_exits: config.supervisor.as_ref().is_some_and(|s| s.watch_exits),
            plugins_dir: config.runtime.plugins_dir.clone(),
        })
    }

    /// The handle that sends requests (restart, re-arm, pause, resume, pings) to the tasks.
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// Each task loop's progress bound, for a liveness probe.
    pub fn liveness(&self) -> Arc<Liveness> {
        self.shared.liveness.clone()
    }

    /// Every task's policy state now (as restored at start), in name order: what an output
    /// that shows states starts from before the first event about a task.
    pub fn states(&self) -> Vec<(String, TaskState)> {
        let engine = self.shared.engine();
        engine
            .task_names()
            .filter_map(|t| engine.state(t).map(|s| (t.to_string(), s.clone())))
            .collect()
    }

    /// The stream the daemon publishes to, for what the caller knows before the tasks start
    /// (plugins that did not load).
    pub fn events(&self) -> &Events {
        &self.shared.events
    }

    /// One exit watch per supervisord program the tasks name (see `exits`), if asked for.
    fn watch_exits(&self) -> tokio::task::JoinSet<()> {
        let mut watchers = tokio::task::JoinSet::new();
        let client = self.shared.sandbox.backends().supervisor.clone();
        let Some(client) = client.filter(|_| self.watch_exits) else {
            return watchers;
        };
        let mut programs: HashMap<String, Vec<Arc<Notify>>> = HashMap::new();
        for task in &self.tasks {
            if let (Some(program), Some(hint)) =
                (&task.config.program, self.shared.hints.get(task.name()))
            {
                programs
                    .entry(program.clone())
                    .or_default()
                    .push(hint.clone());
            }
        }
        for (program, loops) in programs {
            watchers.spawn(exits::watch(client.clone(), program, loops));
        }
        watchers
    }

    /// Runs until `shutdown` resolves, then lets every task finish the call it is in (each is
    /// bounded by its timeout), closes the event stream (the journal writes everything it
    /// keeps) and returns.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut watchers = self.watch_exits();
        let users = reload::users(&self.tasks);
        if !users.is_empty() {
            watchers.spawn(reload::watch(
                self.shared.clone(),
                self.plugins_dir.clone(),
                users,
                stop_rx.clone(),
            ));
        }
        let mut running = tokio::task::JoinSet::new();
        for task in self.tasks {
            let shared = self.shared.clone();
            let stop = stop_rx.clone();
            let Some(inbox) = self.inboxes.remove(task.name()) else {
                continue;
            };
            // No span: every line logged about a task carries `task` as its own field, so a
            // span would only say it twice.
            running.spawn(task_loop::task_loop(shared, task, inbox, stop));
        }
        tracing::info!(tasks = running.len(), "hmrt running");
        shutdown.await;
        tracing::info!("stopping: letting running checks and actions finish");
        let _ = stop_tx.send(true);
        while let Some(joined) = running.join_next().await {
            if let Err(e) = joined {
                tracing::error!("a task loop ended abnormally: {e}");
            }
        }
        watchers.shutdown().await;
        self.shared.events.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

fn log_resumed(store: &StateStore, engine: &Engine, report: &hmrt_policy::RestoreReport) {
    let resumed: Vec<String> = report
        .restored
        .iter()
        .filter_map(|name| engine.state(name).map(|s| format!("{name} {}", s.state())))
        .collect();
    let mut summary = format!("state: resumed {} task(s)", resumed.len());
    if !resumed.is_empty() {
        summary.push_str(&format!(" ({})", resumed.join(", ")));
    }
    if !report.fresh.is_empty() {
        summary.push_str(&format!("; starting fresh: {}", report.fresh.join(", ")));
    }
    tracing::info!(dir = %store.dir().display(), "{summary}");
}

/// A random delay in `[0, max)`.
fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    max.mul_f64(rand::rng().random::<f64>())
}

/// The next check after one due at `due` that ended at `now`: one interval later, skipping the
/// slots a slow run missed rather than firing a burst of back-to-back runs.
fn next_check(due: Timestamp, interval: Duration, now: Timestamp) -> Timestamp {
    let mut next = due.plus(interval);
    if next < now {
        let interval_ms = u64::try_from(interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let missed = (now.0 - next.0) / interval_ms + 1;
        next = Timestamp(next.0.saturating_add(missed.saturating_mul(interval_ms)));
    }
    next
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_run_skips_the_slots_it_missed() {
        let s = Duration::from_secs(1);
        assert_eq!(
            next_check(Timestamp(0), s, Timestamp(500)),
            Timestamp(1_000)
        );
        assert_eq!(
            next_check(Timestamp(0), s, Timestamp(1_000)),
            Timestamp(1_000)
        );
        assert_eq!(
            next_check(Timestamp(0), s, Timestamp(3_500)),
            Timestamp(4_000)
        );
        // An interval at the config's upper bound never overflows.
        let year = hmrt_domain::duration::MAX;
        assert!(next_check(Timestamp(u64::MAX - 5), year, Timestamp(0)) >= Timestamp(u64::MAX - 5));
    }
}
