//! One task's loop: its checks on their schedule, the policy's timers on time, the actions the
//! policy asks for, and the requests the API sends it, one at a time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hmrt_policy::{Decision, DecisionKind, Status, Timestamp};
use tokio::sync::{mpsc, watch};

use super::control::{Caller, Command, ControlError, Request};
use super::{Shared, jitter, next_check};
use crate::events::Event;
use crate::heartbeat;
use crate::sandbox::ActionTrigger;
use crate::tasks::{Bound, BoundTask};

pub(super) async fn task_loop(
    shared: Arc<Shared>,
    task: BoundTask,
    mut inbox: mpsc::Receiver<Request>,
    mut stop: watch::Receiver<bool>,
) {
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
    // Early checks after the task's program exited (see `exits`): the next one's instant.
    let hinted = shared.hints.get(&name).cloned().unwrap_or_default();
    let mut confirm = super::exits::Confirm::default();
    let mut urgent: Option<Timestamp> = None;
    // The time of the last call into the policy about this task (or when a call about another
    // task moved its timers): a timer that ran out before it is decided at this time, one that
    // ran out after it at its own instant. `hmrt simulate` applies the same rule (the time of
    // the last entry replayed), so the two agree to the millisecond.
    let mut floor = shared.clock.now();
    // When this loop last judged the task (a check, scheduled or after a ping): a heartbeat's
    // deadline at or before it has been seen, and must not wake the loop again.
    let mut judged = Timestamp(0);
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
        // A heartbeat's silence is noticed at the instant it runs past its period, not at the
        // next check after it.
        let due_now = match task.heartbeat() {
            Some(settings) => {
                let deadline = heartbeat::deadline(
                    settings,
                    shared.pings.last(&name).as_ref(),
                    shared.started,
                );
                if deadline > judged {
                    due.min(deadline)
                } else {
                    due
                }
            }
            None => due,
        };
        let due_now = urgent.map_or(due_now, |u| u.min(due_now));
        let until = wake.map_or(due_now, |w| w.min(due_now));
        shared.liveness.expect_by(&name, until);
        tokio::select! {
            _ = shared.clock.sleep_until(until) => {}
            _ = woken.notified() => {
                floor = floor.max(shared.clock.now());
                continue;
            }
            _ = hinted.notified() => {
                // Only for a task that is up: one that is failing or restarting is already
                // being seen to (and its own restart ends the old process too).
                let up = shared.engine().state(&name).is_some_and(|s| s.state().is_up());
                if up {
                    let threshold = task.config.policy.failure_threshold;
                    urgent = urgent.or(confirm.hint(shared.clock.now(), threshold));
                }
                continue;
            }
            Some(request) = inbox.recv() => {
                let handled = handle(&shared, &task, request).await;
                floor = floor.max(handled);
                judged = judged.max(handled);
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
            Some(wake) if now >= wake && wake <= due_now => {
                let at = wake.max(floor);
                let decisions = checked(&name, shared.engine().wake(&name, at));
                if decisions.is_empty() {
                    idle_wake = Some(wake);
                }
                floor = at;
                let (status, message) = last_result(&shared, &name);
                carry_out(&shared, &task, decisions, status, &message).await;
            }
            _ if now >= due_now => {
                let status;
                (floor, status) = run_check(&shared, &task, due_now).await;
                judged = floor;
                idle_wake = None;
                // Every check counts for a burst: a scheduled one that fails goes on with it.
                urgent = urgent.and_then(|_| confirm.checked(status, shared.clock.now()));
                // A check the heartbeat's deadline brought forward leaves the rhythm alone.
                if now >= due {
                    slot = next_check(slot, interval, shared.clock.now());
                    due = slot.plus(jitter(per_run_jitter));
                }
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

/// One check, due at `due`, then whatever the policy decides. The result counts at the time
/// the check started (what it says held then), which it returns with the result's status.
async fn run_check(shared: &Arc<Shared>, task: &BoundTask, due: Timestamp) -> (Timestamp, Status) {
    let name = task.name();
    let started = shared.clock.now();
    let late = started.since(due);
    let plugin = task.config.check.as_str();
    shared
        .liveness
        .expect_by(name, started.plus(run_bound(task)));
    let swapped = shared.swapped.get(plugin);
    let (status, message) = match swapped.as_ref().unwrap_or(&task.check) {
        Bound::Broken(reason) => {
            shared
                .events
                .check_unusable(shared.clock.now(), name, plugin, reason, late);
            (Status::Unknown, reason.clone())
        }
        Bound::Heartbeat(settings) => {
            let last = shared.pings.last(name);
            let (status, message) =
                heartbeat::judge(settings, last.as_ref(), shared.started, started);
            shared.emit(Event::CheckFinished {
                task: name.to_string(),
                plugin: plugin.to_string(),
                status,
                message: message.clone(),
                metrics: Vec::new(),
                elapsed: Duration::ZERO,
                failure: None,
                late,
            });
            (status, message)
        }
        Bound::Ready(entry) => {
            let outcome = shared.sandbox.check(&entry.plugin, &task.check_call).await;
            shared
                .events
                .check_finished(shared.clock.now(), name, plugin, &outcome, late);
            (outcome.status(), outcome.message())
        }
    };
    let decisions = shared.engine().observe(name, started, status, &message);
    carry_out(shared, task, checked(name, decisions), status, &message).await;
    (started, status)
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
    let trigger = ActionTrigger {
        status,
        message: message.to_string(),
        attempt,
    };
    let result = invoke_action(shared, task, trigger, false).await;
    let decisions = shared
        .engine()
        .action_finished(task.name(), shared.clock.now(), result);
    checked(task.name(), decisions)
}

/// Runs the task's action in its sandbox with its grants, publishing its start, denials and
/// end. `manual` marks a person's restart (attempt 0), which the policy does not count.
async fn invoke_action(
    shared: &Shared,
    task: &BoundTask,
    trigger: ActionTrigger,
    manual: bool,
) -> Result<String, String> {
    let name = task.name();
    let swapped = task
        .config
        .on_failure
        .as_ref()
        .and_then(|a| shared.swapped.get(&a.action));
    let action = task
        .action
        .as_ref()
        .map(|(bound, call)| (swapped.as_ref().unwrap_or(bound), call));
    let (entry, call) = match action {
        None => return Err("the task has no on_failure action".to_string()),
        Some((Bound::Ready(entry), call)) => (entry, call),
        Some((Bound::Broken(reason), _)) => return Err(reason.clone()),
        Some((Bound::Heartbeat(_), _)) => {
            return Err("a heartbeat is a check, not an action".to_string());
        }
    };
    let attempt = trigger.attempt;
    shared
        .liveness
        .expect_by(name, shared.clock.now().plus(call.limits.timeout));
    shared.emit(Event::ActionStarted {
        task: name.to_string(),
        action: entry.name.clone(),
        attempt,
        manual,
    });
    let (result, report) = shared.sandbox.action(&entry.plugin, call, trigger).await;
    for denial in &report.denials {
        shared.emit(Event::CallDenied {
            task: name.to_string(),
            denial: denial.clone(),
        });
    }
    let failure = result.as_ref().err().map(|e| e.kind());
    let result = match result {
        Ok(inner) => inner,
        Err(call_error) => Err(format!("action {call_error}")),
    };
    shared.emit(Event::ActionFinished {
        task: name.to_string(),
        action: entry.name.clone(),
        attempt,
        manual,
        ok: result.is_ok(),
        message: match &result {
            Ok(m) | Err(m) => m.clone(),
        },
        elapsed: report.elapsed,
        failure,
    });
    result
}

/// How long one run of the task's loop (a check and the actions it leads to) may take.
fn run_bound(task: &BoundTask) -> Duration {
    let action = task
        .action
        .as_ref()
        .map_or(Duration::ZERO, |(_, call)| call.limits.timeout);
    task.check_call.limits.timeout + action
}

/// Carries out a request from the API between two runs; returns the time of the policy call
/// it made (the loop's new floor).
async fn handle(shared: &Arc<Shared>, task: &BoundTask, request: Request) -> Timestamp {
    let name = task.name();
    let now = shared.clock.now();
    shared.liveness.expect_by(name, now.plus(run_bound(task)));
    let Request {
        command,
        caller,
        reply,
    } = request;
    let kind = command.name();
    let result = match command {
        Command::Push(ping) => push(shared, task, ping).await,
        Command::Restart => restart(shared, task, &caller).await,
        Command::Rearm => {
            let decisions = shared.engine().rearm(name, now);
            match decisions {
                Ok(decisions) => {
                    carry_out_now(shared, task, decisions).await;
                    Ok(format!("{name} re-armed"))
                }
                Err(e) => Err(ControlError::Conflict(e.to_string())),
            }
        }
        Command::Pause | Command::Resume => {
            let paused = kind == "pause";
            let decisions = checked(name, shared.engine().set_paused(name, now, paused));
            let changed = !decisions.is_empty();
            carry_out_now(shared, task, decisions).await;
            Ok(match (paused, changed) {
                (true, true) => format!("{name} paused: checks go on, actions wait"),
                (true, false) => format!("{name} was already paused"),
                (false, true) => format!("{name} resumed"),
                (false, false) => format!("{name} was not paused"),
            })
        }
    };
    if kind != "push" {
        shared.emit(Event::Control {
            task: name.to_string(),
            command: kind,
            by: caller.by,
            from: caller.from,
            outcome: match &result {
                Ok(done) => done.clone(),
                Err(e) => format!("refused: {e}"),
            },
        });
    }
    // The caller may have gone; what was done is done and published either way.
    let _ = reply.send(result);
    now
}

/// A heartbeat's ping: recorded, then judged at once, so a ping after a silence turns the task
/// healthy now rather than at its next check.
async fn push(
    shared: &Arc<Shared>,
    task: &BoundTask,
    ping: heartbeat::Ping,
) -> Result<String, ControlError> {
    if task.heartbeat().is_none() {
        return Err(ControlError::Conflict(format!(
            "task {:?} is not a heartbeat (its check is {:?})",
            task.name(),
            task.config.check
        )));
    }
    shared.pings.record(task.name(), ping);
    run_check(shared, task, shared.clock.now()).await;
    Ok(format!("ping recorded for {}", task.name()))
}

/// A person's restart: the task's own action, with its grants, in its sandbox, published like
/// an automatic one but marked manual. The policy does not count it against the restart budget
/// (a person decided, not the thresholds); the next check says whether it helped.
async fn restart(
    shared: &Arc<Shared>,
    task: &BoundTask,
    caller: &Caller,
) -> Result<String, ControlError> {
    if task.action.is_none() {
        return Err(ControlError::Conflict(format!(
            "task {:?} has no on_failure action to run",
            task.name()
        )));
    }
    let (status, message) = last_result(shared, task.name());
    let trigger = ActionTrigger {
        status,
        message: format!("manual restart requested by {}: {message}", caller.by),
        attempt: 0,
    };
    match invoke_action(shared, task, trigger, true).await {
        Ok(done) => Ok(done),
        Err(error) => Err(ControlError::ActionFailed(error)),
    }
}

/// Publishes decisions the loop's own request made and carries out what they ask for.
async fn carry_out_now(shared: &Arc<Shared>, task: &BoundTask, decisions: Vec<Decision>) {
    let (status, message) = last_result(shared, task.name());
    carry_out(shared, task, decisions, status, &message).await;
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
