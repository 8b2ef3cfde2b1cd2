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

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hmrt_config::Config;
use hmrt_policy::{Decision, DecisionKind, Engine, Status, Timestamp};
use rand::Rng;
use tokio::sync::{Notify, watch};
use tracing::Instrument;

use crate::clock::Clock;
use crate::events::{Event, Events, Subscriber};
use crate::journal::Journal;
use crate::sandbox::{ActionTrigger, Sandbox};
use crate::state::{StateError, StateStore};
use crate::tasks::{Bound, BoundTask};

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
        let wakers = tasks
            .iter()
            .map(|t| (t.name().to_string(), Arc::new(Notify::new())))
            .collect();
        let shared = Arc::new(Shared {
            sandbox,
            engine: Mutex::new(engine),
            events: Events::new(subscribers),
            store,
            clock,
            wakers,
        });
        // Actions cut short by the last stop: already saved as failed attempts by `restore`.
        for decision in &restored.decisions {
            if let Some(event) = Event::of_decision(&decision.task, &decision.kind) {
                shared.events.emit(decision.at, event);
            }
        }
        Ok(Daemon { shared, tasks })
    }

    /// The stream the daemon publishes to, for what the caller knows before the tasks start
    /// (plugins that did not load).
    pub fn events(&self) -> &Events {
        &self.shared.events
    }

    /// Runs until `shutdown` resolves, then lets every task finish the call it is in (each is
    /// bounded by its timeout), closes the event stream (the journal writes everything it
    /// keeps) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut running = tokio::task::JoinSet::new();
        for task in self.tasks {
            let shared = self.shared.clone();
            let stop = stop_rx.clone();
            let span = tracing::info_span!("task", task = %task.name());
            running.spawn(task_loop(shared, task, stop).instrument(span));
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

async fn task_loop(shared: Arc<Shared>, task: BoundTask, mut stop: watch::Receiver<bool>) {
    let interval = task.config.interval;
    let name = task.name().to_string();
    // Spread the first runs so tasks with one interval do not all start at once. Then one slot
    // per interval: each check runs a little after its slot (the jitter), and the jitter never
    // moves the slots, so it cannot add up into a slower rhythm.
    let mut slot = shared
        .clock
        .now()
        .plus(jitter(interval.min(Duration::from_secs(1))));
    let mut due = slot;
    let per_run_jitter = (interval / 20).min(Duration::from_millis(250));
    // A wake that decided nothing is not asked for again until the next check: the policy's
    // timers and this loop must never spin on an instant that is already past.
    let mut idle_wake: Option<Timestamp> = None;
    let woken = shared.wakers.get(&name).cloned().unwrap_or_default();
    // The time of the last call into the policy about this task (or when a call about another
    // task moved its timers): a timer that ran out before it is decided at this time, one that
    // ran out after it at its own instant. `hmrt simulate` applies the same rule (the time of
    // the last entry replayed), so the two agree to the millisecond.
    let mut floor = shared.clock.now();
    loop {
        let now = shared.clock.now();
        if slot > now.plus(interval) {
            // The wall clock was set back: start the rhythm again from now rather than wait
            // for a slot that lies that far ahead.
            slot = now;
            due = now;
        }
        let wake = shared
            .engine()
            .next_wake(&name)
            .filter(|w| idle_wake.is_none_or(|idle| *w > idle));
        let until = wake.map_or(due, |w| w.min(due));
        tokio::select! {
            _ = shared.clock.sleep_until(until) => {}
            _ = woken.notified() => {
                floor = floor.max(shared.clock.now());
                continue;
            }
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        if shared.store.rearm_requested(&name) {
            rearm_on_request(&shared, &name).await;
            floor = floor.max(shared.clock.now());
        }
        let now = shared.clock.now();
        match wake {
            // In time order: a timer that ran out before the check is due goes first, even
            // when the loop wakes late for both.
            Some(wake) if now >= wake && wake <= due => {
                let at = wake.max(floor);
                let decisions = checked(&name, shared.engine().wake(&name, at));
                if decisions.is_empty() {
                    idle_wake = Some(wake);
                }
                floor = at;
                let (status, message) = last_result(&shared, &name);
                carry_out(&shared, &task, decisions, status, &message).await;
            }
            _ if now >= due => {
                floor = run_check(&shared, &task).await;
                idle_wake = None;
                slot = next_check(slot, interval, shared.clock.now());
                due = slot.plus(jitter(per_run_jitter));
            }
            _ => {}
        }
    }
}

/// The status and message of the task's last check result, for an action started by a timer.
fn last_result(shared: &Shared, task: &str) -> (Status, String) {
    let engine = shared.engine();
    let last = engine.state(task).and_then(|s| s.results().last());
    match last {
        Some(r) => (r.status, r.message.clone()),
        None => (Status::Unknown, String::new()),
    }
}

/// One check, then whatever the policy decides. The result counts at the time the check
/// started (what it says held then), which it returns.
async fn run_check(shared: &Arc<Shared>, task: &BoundTask) -> Timestamp {
    let name = task.name();
    let started = shared.clock.now();
    let (status, message) = match &task.check {
        Bound::Broken(reason) => {
            shared
                .events
                .check_unusable(shared.clock.now(), name, reason);
            (Status::Unknown, reason.clone())
        }
        Bound::Ready(entry) => {
            let outcome = shared.sandbox.check(&entry.plugin, &task.check_call).await;
            shared
                .events
                .check_finished(shared.clock.now(), name, &outcome);
            (outcome.status(), outcome.message())
        }
    };
    let decisions = shared.engine().observe(name, started, status, &message);
    carry_out(shared, task, checked(name, decisions), status, &message).await;
    started
}

/// Publishes a call's decisions and carries out the actions they ask for; then the same for
/// what each action's outcome decides.
async fn carry_out(
    shared: &Arc<Shared>,
    task: &BoundTask,
    decisions: Vec<Decision>,
    status: Status,
    message: &str,
) {
    let name = task.name();
    let mut pending = decisions;
    loop {
        let attempts = publish(shared, name, &pending).await;
        if attempts.is_empty() {
            return;
        }
        pending = Vec::new();
        for attempt in attempts {
            pending.extend(run_action(shared, task, attempt, status, message).await);
        }
    }
}

/// Publishes what a call about `task` did, in the order the module's docs give: the new state of
/// every task it touched; then, if it decided anything, the explicit durability step (the state
/// journal has it on disk, so a kill -9 during the action or the backoff after it never gives the
/// budget back, and whoever sees a decision's event finds it in the state file); then the
/// decisions as events. Returns the attempts of the actions `task` must now run.
async fn publish(shared: &Shared, task: &str, decisions: &[Decision]) -> Vec<u32> {
    let mut touched: BTreeMap<&str, bool> = BTreeMap::new();
    touched.insert(task, false);
    for decision in decisions {
        touched.insert(decision.task.as_str(), true);
    }
    let touched_others: Vec<String> = touched
        .keys()
        .filter(|t| **t != task)
        .map(|t| t.to_string())
        .collect();
    {
        // Under the engine lock: two loops publishing states of one task (its own, and a hold
        // decided by a task it depends on) must reach the journal in the engine's order, or an
        // older copy could overwrite a newer decision on disk. Subscribers are quick (the
        // journal only queues), so the lock is held briefly.
        let engine = shared.engine();
        let at = shared.clock.now();
        for (t, decided) in touched {
            if let Some(state) = engine.state(t) {
                shared.events.emit(
                    at,
                    Event::TaskState {
                        task: t.to_string(),
                        state: Arc::new(state.clone()),
                        decided,
                    },
                );
            }
        }
    }
    for other in touched_others {
        if let Some(notify) = shared.wakers.get(other.as_str()) {
            // Its timers may have moved (a hold lifted): let its loop look again.
            notify.notify_one();
        }
    }
    if decisions.is_empty() {
        return Vec::new();
    }
    shared.events.durable().await;
    let mut attempts = Vec::new();
    for decision in decisions {
        match &decision.kind {
            DecisionKind::Act { attempt } if decision.task == task => attempts.push(*attempt),
            kind => {
                if let Some(event) = Event::of_decision(&decision.task, kind) {
                    shared.events.emit(decision.at, event);
                }
            }
        }
    }
    attempts
}

/// A person asked (`hmrt rearm`) to re-arm the task: re-arm it if it is still failed, make that
/// durable, and only then delete the request, so a stop in between leaves the request to be
/// taken again.
async fn rearm_on_request(shared: &Arc<Shared>, name: &str) {
    let rearmed = shared.engine().rearm(name, shared.clock.now());
    match rearmed {
        Ok(decisions) => {
            publish(shared, name, &decisions).await;
        }
        Err(e) => tracing::info!(task = %name, "re-arm request ignored: {e}"),
    }
    let owned = shared.clone();
    let task = name.to_string();
    let cleared = tokio::task::spawn_blocking(move || owned.store.clear_rearm_request(&task)).await;
    match cleared {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(task = %name, "cannot remove the re-arm request: {e}"),
        Err(e) => tracing::error!(task = %name, "removing the re-arm request failed: {e}"),
    }
}

/// Runs the task's action and reports its outcome to the policy.
async fn run_action(
    shared: &Shared,
    task: &BoundTask,
    attempt: u32,
    status: Status,
    message: &str,
) -> Vec<Decision> {
    let name = task.name();
    let result = match &task.action {
        None => Err("the task has no on_failure action".to_string()),
        Some((Bound::Broken(reason), _)) => Err(reason.clone()),
        Some((Bound::Ready(entry), call)) => {
            shared.emit(Event::ActionStarted {
                task: name.to_string(),
                action: entry.name.clone(),
                attempt,
            });
            let trigger = ActionTrigger {
                status,
                message: message.to_string(),
                attempt,
            };
            let (result, report) = shared.sandbox.action(&entry.plugin, call, trigger).await;
            for denial in &report.denials {
                shared.emit(Event::CallDenied {
                    task: name.to_string(),
                    denial: denial.clone(),
                });
            }
            let result = match result {
                Ok(inner) => inner,
                Err(call_error) => Err(format!("action {call_error}")),
            };
            shared.emit(Event::ActionFinished {
                task: name.to_string(),
                action: entry.name.clone(),
                attempt,
                ok: result.is_ok(),
                message: match &result {
                    Ok(m) | Err(m) => m.clone(),
                },
                elapsed: report.elapsed,
            });
            result
        }
    };
    let decisions = shared
        .engine()
        .action_finished(name, shared.clock.now(), result);
    checked(name, decisions)
}

/// The policy only refuses calls about tasks it does not know, which the daemon never makes;
/// should it happen, it is logged rather than taken down.
fn checked(
    task: &str,
    decisions: Result<Vec<Decision>, hmrt_policy::PolicyError>,
) -> Vec<Decision> {
    decisions.unwrap_or_else(|e| {
        tracing::error!(task = %task, "policy refused a call: {e}");
        Vec::new()
    })
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
