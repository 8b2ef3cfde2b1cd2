//! `hmrt run`: every task on its own schedule, never two runs of one task at once. Each
//! result goes to the policy engine; what it decides is carried out (actions run in the
//! sandbox) and published as events.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use hmrt_config::Config;
use hmrt_policy::{Decision, DecisionKind, Engine, Timestamp};
use rand::Rng;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

use crate::events::{Event, Events};
use crate::sandbox::{ActionTrigger, Sandbox, Status};
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
}

/// The running daemon's shared parts.
struct Shared {
    sandbox: Arc<Sandbox>,
    engine: Mutex<Engine>,
    events: Events,
    /// Every task's policy state, written after each change and read back at start.
    store: StateStore,
}

impl Shared {
    fn engine(&self) -> MutexGuard<'_, Engine> {
        // A panic while holding the lock cannot leave the engine half-updated in a way that
        // matters more than stopping would: keep going with what is there.
        match self.engine.lock() {
            Ok(engine) => engine,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The scheduler.
pub struct Daemon {
    shared: Arc<Shared>,
    tasks: Vec<BoundTask>,
}

/// Now, as the policy counts time.
pub fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Timestamp(u64::try_from(millis).unwrap_or(u64::MAX))
}

impl Daemon {
    /// A daemon for `tasks` (bound from `config`), publishing to `events`. Takes the state
    /// directory (`config.runtime.state_dir`, created if missing) and resumes every task from its
    /// state file; see [`crate::state`].
    pub fn new(
        config: Config,
        sandbox: Arc<Sandbox>,
        tasks: Vec<BoundTask>,
        events: Events,
    ) -> Result<Daemon, DaemonError> {
        let policies: BTreeMap<String, hmrt_policy::PolicyConfig> = config
            .tasks
            .iter()
            .map(|t| (t.name.clone(), t.policy.clone()))
            .collect();
        let mut engine = Engine::new(policies, rand::rng().random())
            .map_err(|e| DaemonError::Policy(e.to_string()))?;
        // Before any task loop starts: the first check already sees the restored state.
        let store = StateStore::open(&config.runtime.state_dir)?;
        let restored = store.restore(&mut engine, now())?;
        let resumed: Vec<String> = restored
            .report
            .restored
            .iter()
            .filter_map(|name| engine.state(name).map(|s| format!("{name} {}", s.state())))
            .collect();
        let mut summary = format!("state: resumed {} task(s)", resumed.len());
        if !resumed.is_empty() {
            summary.push_str(&format!(" ({})", resumed.join(", ")));
        }
        if !restored.report.fresh.is_empty() {
            summary.push_str(&format!(
                "; starting fresh: {}",
                restored.report.fresh.join(", ")
            ));
        }
        tracing::info!(dir = %store.dir().display(), "{summary}");
        let shared = Arc::new(Shared {
            sandbox,
            engine: Mutex::new(engine),
            events,
            store,
        });
        // Actions cut short by the last stop: already saved as failed attempts by `restore`.
        for decision in &restored.decisions {
            publish(&shared, decision);
        }
        Ok(Daemon { shared, tasks })
    }

    /// Runs until `shutdown` resolves, then lets every task finish the call it is in (each is
    /// bounded by its timeout) and returns.
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
        // Every change was saved as it happened; this also covers a write that failed then.
        let all: BTreeSet<String> = self
            .shared
            .engine()
            .task_names()
            .map(str::to_string)
            .collect();
        persist(&self.shared, all).await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// A random delay in `[0, max)`.
fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    max.mul_f64(rand::rng().random::<f64>())
}

async fn task_loop(shared: Arc<Shared>, task: BoundTask, mut stop: watch::Receiver<bool>) {
    let interval = task.config.interval;
    // Spread the first runs so tasks with one interval do not all start at once; then keep a
    // fixed rhythm with a little jitter on each run.
    let mut next = Instant::now() + jitter(interval.min(Duration::from_secs(1)));
    let per_run_jitter = (interval / 20).min(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        run_once(&shared, &task).await;
        next += interval;
        let now = Instant::now();
        if next < now {
            // A run took longer than the interval: skip the missed slots rather than firing a
            // burst of back-to-back runs.
            let behind = now - next;
            let missed = behind.as_nanos() / interval.as_nanos().max(1) + 1;
            next += interval * u32::try_from(missed).unwrap_or(u32::MAX);
        }
        next += jitter(per_run_jitter);
    }
}

/// One check, then whatever the policy decides.
async fn run_once(shared: &Arc<Shared>, task: &BoundTask) {
    let name = task.name();
    if shared.store.rearm_requested(name) {
        rearm_on_request(shared, name).await;
    }
    let (status, message) = match &task.check {
        Bound::Broken(reason) => (Status::Unknown, reason.clone()),
        Bound::Ready(entry) => {
            let outcome = shared.sandbox.check(&entry.plugin, &task.check_call).await;
            for denial in &outcome.report.denials {
                shared.events.emit(Event::CallDenied {
                    task: name.to_string(),
                    denial: denial.clone(),
                });
            }
            let message = outcome.message();
            shared.events.emit(Event::CheckFinished {
                task: name.to_string(),
                status: hmrt_policy::Status::from(outcome.status()).to_string(),
                message: message.clone(),
                elapsed: outcome.report.elapsed,
            });
            (outcome.status(), message)
        }
    };
    let decisions = shared
        .engine()
        .observe(name, now(), status.into(), &message);
    let mut pending = checked(name, decisions);
    // Durable before anything it decided happens: a kill -9 during the action or the backoff
    // that follows must not give the budget back.
    persist(shared, involved(name, &pending)).await;
    while !pending.is_empty() {
        let mut next = Vec::new();
        for decision in pending {
            if let Some(attempt) = publish(shared, &decision)
                && decision.task == name
            {
                let decided = run_action(shared, task, attempt, status, &message).await;
                persist(shared, involved(name, &decided)).await;
                next.extend(decided);
            }
        }
        pending = next;
    }
}

/// A person asked (`hmrt rearm`) to re-arm the task: re-arm it if it is still failed, save that,
/// and only then delete the request, so a stop in between leaves the request to be taken again.
async fn rearm_on_request(shared: &Arc<Shared>, name: &str) {
    let rearmed = shared.engine().rearm(name, now());
    match rearmed {
        Ok(decisions) => {
            tracing::info!(task = %name, "re-armed at a person's request");
            persist(shared, involved(name, &decisions)).await;
            for decision in &decisions {
                publish(shared, decision);
            }
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

/// The task a call was about and every task its decisions name (a dependency hold).
fn involved(task: &str, decisions: &[Decision]) -> BTreeSet<String> {
    std::iter::once(task.to_string())
        .chain(decisions.iter().map(|d| d.task.clone()))
        .collect()
}

/// Writes the current states of `tasks` to the state directory and returns once they are
/// durable. The write (with its fsyncs) runs on the blocking pool, not on the executor. A write
/// that fails is logged and the daemon goes on: repairing services matters more than remembering
/// that it did.
async fn persist(shared: &Arc<Shared>, tasks: BTreeSet<String>) {
    let owned = shared.clone();
    let written = tokio::task::spawn_blocking(move || {
        // The states are taken under the store's write lock, so writes land in order.
        owned.store.save_with(now(), || {
            let engine = owned.engine();
            tasks
                .into_iter()
                .filter_map(|t| {
                    let state = engine.state(&t)?.clone();
                    Some((t, state))
                })
                .collect()
        })
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!("cannot save the state: {e}"),
        Err(e) => tracing::error!("saving the state failed: {e}"),
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
            shared.events.emit(Event::ActionStarted {
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
                shared.events.emit(Event::CallDenied {
                    task: name.to_string(),
                    denial: denial.clone(),
                });
            }
            let result = match result {
                Ok(inner) => inner,
                Err(call_error) => Err(format!("action {call_error}")),
            };
            shared.events.emit(Event::ActionFinished {
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
    let decisions = shared.engine().action_finished(name, now(), result);
    checked(name, decisions)
}

/// The policy only refuses calls about tasks it does not know, which the daemon never makes;
/// should it happen, it is logged rather than taken down.
fn checked(
    task: &str,
    decisions: Result<Vec<Decision>, hmrt_policy::PolicyError>,
) -> Vec<Decision> {
    decisions.unwrap_or_else(|e| {
        tracing::error!(task = %task, "policy refused a result: {e}");
        Vec::new()
    })
}

/// Publishes a decision as an event; returns the attempt number when it asks for an action.
fn publish(shared: &Shared, decision: &Decision) -> Option<u32> {
    let task = decision.task.clone();
    let event = match &decision.kind {
        DecisionKind::StateChanged { from, to, reason } => Event::StateChanged {
            task,
            from: from.to_string(),
            to: to.to_string(),
            reason: reason.clone(),
        },
        DecisionKind::Act { attempt } => return Some(*attempt),
        DecisionKind::Held { reason } => Event::ActionHeld {
            task,
            reason: reason.to_string(),
        },
        other => Event::Policy {
            task,
            what: other.to_string(),
        },
    };
    shared.events.emit(event);
    None
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
