//! One task's state and the rules that move it. The [`crate::Engine`] owns one [`TaskState`]
//! per task and adds what needs all tasks at once: dependency holds.
//!
//! The rules driven by a new input (a check result, an action's outcome, a person) are here;
//! the rules driven by time alone are in [`timers`]; what can be read of a task is in [`view`].

mod timers;
mod view;

use std::collections::VecDeque;
use std::time::Duration;

use hmrt_domain::duration;

use crate::decision::{Decision, DecisionKind, HoldReason, RearmHow};
use crate::{Backoff, PolicyConfig, State, Status, Timestamp, millis, rng};

pub use view::{ActionRecord, ActionResult, ResultRecord, TaskView};

/// Check results kept per task (the newest last).
pub const MAX_RESULTS: usize = 50;
/// Actions kept per task (the newest last).
pub const MAX_ACTIONS: usize = 20;
/// Messages longer than this are cut (at a character boundary) before they are stored, so a
/// chatty plugin cannot grow the state file.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Which side of healthy a task was last on, for flapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Class {
    Up,
    Down,
}

/// Everything the policy knows about one task: serialisable, so a restarted daemon resumes with
/// the same counters, backoff position, jitter sequence and restart budget.
///
/// Fields missing from a stored state take their defaults, so a state file written by an older
/// version still loads.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TaskState {
    state: State,
    state_since: Option<Timestamp>,
    consecutive_passes: u32,
    consecutive_failures: u32,
    /// The last counted results (true = failure), only with `failure_window`.
    recent_outcomes: VecDeque<bool>,
    /// Actions in the current backoff sequence: the last attempt number.
    backoff_position: u32,
    next_action_not_before: Option<Timestamp>,
    /// splitmix64 state for jitter.
    rng: u64,
    /// Start times of actions still inside `restart_window` (pruned as time goes on).
    restarts: VecDeque<Timestamp>,
    running_attempt: Option<u32>,
    /// An action that ran and whose effect the check has not decided yet.
    pending_attempt: Option<u32>,
    start_period_end: Option<Timestamp>,
    failed_at: Option<Timestamp>,
    /// Since when the task has been healthy or degraded without a break.
    up_since: Option<Timestamp>,
    /// Dependencies holding the actions (not healthy or degraded), in name order.
    held_by: Vec<String>,
    /// Set while flapping: the changes counted when the hold began.
    flapping: Option<u32>,
    /// A person paused the task's actions.
    paused: bool,
    last_class: Option<Class>,
    /// Times of up/down changes within the flapping window.
    changes: VecDeque<Timestamp>,
    results: VecDeque<ResultRecord>,
    actions: VecDeque<ActionRecord>,
}

/// Where one call's decisions go: the task and time are the same for all of them.
pub(crate) struct Out<'a> {
    pub(crate) task: &'a str,
    pub(crate) at: Timestamp,
    pub(crate) list: &'a mut Vec<Decision>,
}

impl Out<'_> {
    fn push(&mut self, kind: DecisionKind) {
        self.list.push(Decision {
            task: self.task.to_string(),
            at: self.at,
            kind,
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    Pass,
    Fail,
}

fn cut(message: &str) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message.to_string();
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

fn plural(n: u32, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

impl Backoff {
    /// The delay after the k-th action of a sequence, before jitter:
    /// `min(initial × factor^(k-1), max)`. Zero for k = 0 (no action yet).
    pub fn base_delay(&self, k: u32) -> Duration {
        Duration::from_millis(self.base_delay_ms(k).round() as u64)
    }

    fn base_delay_ms(&self, k: u32) -> f64 {
        if k == 0 {
            return 0.0;
        }
        let max = millis(self.max) as f64;
        // Past a few thousand doublings the result is infinite anyway; the cap keeps powi's
        // exponent in range.
        let exponent = i32::try_from(k - 1).unwrap_or(i32::MAX).min(4096);
        let d = millis(self.initial) as f64 * self.factor.powi(exponent);
        if d.is_finite() && d < max { d } else { max }
    }
}

impl TaskState {
    /// A fresh task: unknown, no history, its jitter generator at `rng_state`.
    pub(crate) fn new(rng_state: u64) -> TaskState {
        TaskState {
            rng: rng_state,
            ..TaskState::default()
        }
    }

    // ---- the rules ----

    /// A check result. The timers due by its time come first, exactly as
    /// [`TaskState::tick`] applies them: a result never undoes what was due before it.
    pub(crate) fn observe(
        &mut self,
        cfg: &PolicyConfig,
        status: Status,
        message: &str,
        out: &mut Out<'_>,
    ) {
        let now = out.at;
        self.tick(cfg, out);
        let message = cut(message);
        self.results.push_back(ResultRecord {
            at: now,
            status,
            message: message.clone(),
        });
        while self.results.len() > MAX_RESULTS {
            self.results.pop_front();
        }
        // An action is running (perhaps since the tick): a result now says nothing about it.
        if self.state == State::Restarting {
            return;
        }

        let in_start_period = self.start_period_end.is_some_and(|end| now < end);
        let counted = match status {
            Status::Healthy | Status::Degraded => Some(Counted::Pass),
            Status::Unhealthy if !in_start_period => Some(Counted::Fail),
            Status::Unhealthy | Status::Unknown => None,
        };
        match counted {
            Some(Counted::Pass) => {
                self.consecutive_passes = self.consecutive_passes.saturating_add(1);
                self.consecutive_failures = 0;
                self.push_outcome(cfg, false);
                self.on_pass(cfg, status, &message, out);
            }
            Some(Counted::Fail) => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.consecutive_passes = 0;
                self.push_outcome(cfg, true);
                self.on_fail(cfg, &message, out);
            }
            None => {}
        }

        self.update_flapping(cfg, out);
        self.maybe_reset_backoff(cfg, out);
        if counted == Some(Counted::Fail) {
            self.maybe_act(cfg, out);
        }
    }

    fn on_pass(&mut self, cfg: &PolicyConfig, status: Status, message: &str, out: &mut Out<'_>) {
        let to = if status == Status::Degraded {
            State::Degraded
        } else {
            State::Healthy
        };
        if self.state.is_up() {
            self.set_state(to, format!("the check reports {status}: {message}"), out);
        } else if self.consecutive_passes >= cfg.success_threshold {
            let was_failed = self.state == State::Failed;
            let reason = format!(
                "{} in a row: {message}",
                plural(self.consecutive_passes, "passing check", "passing checks")
            );
            self.set_state(to, reason, out);
            if was_failed {
                // Re-armed means it: the next incident gets at least one action.
                self.clear_budget();
                out.push(DecisionKind::Rearmed {
                    how: RearmHow::Recovered,
                });
            }
        }
        if self.state.is_up()
            && let Some(attempt) = self.pending_attempt.take()
        {
            // As in Docker: once the check passes, the start period is over.
            self.start_period_end = None;
            out.push(DecisionKind::Recovered { attempt });
        }
    }

    fn on_fail(&mut self, cfg: &PolicyConfig, message: &str, out: &mut Out<'_>) {
        if !self.failure_threshold_met(cfg) {
            return;
        }
        if matches!(
            self.state,
            State::Unknown | State::Healthy | State::Degraded
        ) {
            let reason = match cfg.failure_window {
                None => format!(
                    "{} in a row: {message}",
                    plural(self.consecutive_failures, "failure", "failures")
                ),
                Some(_) => format!(
                    "{} of the last {} counted checks failed: {message}",
                    self.window_failures(),
                    self.recent_outcomes.len()
                ),
            };
            self.set_state(State::Unhealthy, reason, out);
            if let Some(attempt) = self.pending_attempt.take() {
                self.start_period_end = None;
                out.push(DecisionKind::AttemptFailed {
                    attempt,
                    reason: format!("the check failed again: {message}"),
                });
            }
        }
    }

    /// Acts if nothing holds the task and its backoff has run out; or, if the restart budget is
    /// spent, makes it failed. The reason given is the last result's message.
    fn maybe_act(&mut self, cfg: &PolicyConfig, out: &mut Out<'_>) {
        let now = out.at;
        if !self.would_act(cfg) || now < self.act_due() {
            return;
        }
        if self.restarts.len() >= cfg.max_restarts as usize {
            let reason = format!(
                "restart budget spent: {} within {}",
                plural(
                    self.restarts.len().try_into().unwrap_or(u32::MAX),
                    "action",
                    "actions"
                ),
                duration::format(cfg.restart_window)
            );
            self.failed_at = Some(now);
            self.set_state(State::Failed, reason.clone(), out);
            out.push(DecisionKind::Failed { reason });
            return;
        }
        self.backoff_position = self.backoff_position.saturating_add(1);
        let attempt = self.backoff_position;
        self.restarts.push_back(now);
        self.running_attempt = Some(attempt);
        self.pending_attempt = None;
        self.start_period_end = None;
        self.actions.push_back(ActionRecord {
            attempt,
            started: now,
            finished: None,
            result: None,
        });
        while self.actions.len() > MAX_ACTIONS {
            self.actions.pop_front();
        }
        let reason = format!(
            "attempt {attempt}: {}",
            self.last_message().unwrap_or_default()
        );
        self.set_state(State::Restarting, reason, out);
        out.push(DecisionKind::Act { attempt });
    }

    /// Whether the task acts (or, its budget spent, fails) once [`TaskState::act_due`] has come:
    /// it has an action, is unhealthy with its failure threshold met, and neither a dependency
    /// nor flapping holds it.
    fn would_act(&self, cfg: &PolicyConfig) -> bool {
        cfg.has_action
            && self.state == State::Unhealthy
            && self.held_by.is_empty()
            && self.flapping.is_none()
            && !self.paused
            && self.failure_threshold_met(cfg)
    }

    /// When the time-based holds on acting end: the backoff and the start period.
    fn act_due(&self) -> Timestamp {
        let backoff = self.next_action_not_before.unwrap_or(Timestamp(0));
        let start_period = self.start_period_end.unwrap_or(Timestamp(0));
        backoff.max(start_period)
    }

    /// The outcome of the running action. `Err(state)` if no action is running.
    pub(crate) fn action_finished(
        &mut self,
        cfg: &PolicyConfig,
        result: Result<String, String>,
        out: &mut Out<'_>,
    ) -> Result<(), State> {
        if self.state != State::Restarting {
            return Err(self.state);
        }
        let now = out.at;
        let attempt = self.running_attempt.take().unwrap_or(self.backoff_position);
        let record = match &result {
            Ok(message) => ActionResult::Ok {
                message: cut(message),
            },
            Err(error) => ActionResult::Error { error: cut(error) },
        };
        if let Some(last) = self.actions.back_mut()
            && last.attempt == attempt
            && last.finished.is_none()
        {
            last.finished = Some(now);
            last.result = Some(record);
        }
        // Whatever happened, the next action needs fresh failures.
        self.clear_failures();
        self.consecutive_passes = 0;
        let delay = self.jittered_delay(cfg);
        self.next_action_not_before = Some(now.plus(delay));
        match result {
            Ok(message) => {
                self.pending_attempt = Some(attempt);
                self.start_period_end =
                    (!cfg.start_period.is_zero()).then(|| now.plus(cfg.start_period));
                self.set_state(
                    State::Unknown,
                    format!(
                        "attempt {attempt} finished ({}); waiting for the check",
                        cut(&message)
                    ),
                    out,
                );
            }
            Err(error) => {
                let error = cut(&error);
                out.push(DecisionKind::AttemptFailed {
                    attempt,
                    reason: format!("the action returned an error: {error}"),
                });
                self.set_state(
                    State::Unhealthy,
                    format!("attempt {attempt} returned an error: {error}"),
                    out,
                );
            }
        }
        self.update_flapping(cfg, out);
        Ok(())
    }

    /// A person re-arms a failed task. `Err(state)` if it is not failed.
    pub(crate) fn rearm(&mut self, cfg: &PolicyConfig, out: &mut Out<'_>) -> Result<(), State> {
        if self.state != State::Failed {
            return Err(self.state);
        }
        self.clear_budget();
        self.clear_failures();
        self.consecutive_passes = 0;
        // A person saying "try again" also means "now": the backoff starts over.
        self.backoff_position = 0;
        self.next_action_not_before = None;
        self.set_state(State::Unknown, "re-armed by a person".to_string(), out);
        out.push(DecisionKind::Rearmed {
            how: RearmHow::Person,
        });
        self.update_flapping(cfg, out);
        Ok(())
    }

    /// A person pauses (`true`) or resumes (`false`) the task's actions. `false` if it already
    /// was as asked (nothing decided). Resuming leaves the backoff and budget as they were: the
    /// next check or timer decides whether to act, as it would have without the pause.
    pub(crate) fn set_paused(&mut self, paused: bool, out: &mut Out<'_>) -> bool {
        if self.paused == paused {
            return false;
        }
        self.paused = paused;
        out.push(if paused {
            DecisionKind::Held {
                reason: HoldReason::Paused,
            }
        } else {
            DecisionKind::HoldLifted {
                reason: HoldReason::Paused,
            }
        });
        true
    }

    /// Sets the dependencies that hold the task (empty: none). When the hold lifts, the failures
    /// seen while held are forgotten: they were most likely the dependency's fault.
    pub(crate) fn set_dependency_hold(
        &mut self,
        cfg: &PolicyConfig,
        held_by: Vec<String>,
        out: &mut Out<'_>,
    ) {
        let held_by = if cfg.has_action { held_by } else { Vec::new() };
        if held_by == self.held_by {
            return;
        }
        if held_by.is_empty() {
            let tasks = std::mem::take(&mut self.held_by);
            self.clear_failures();
            out.push(DecisionKind::HoldLifted {
                reason: HoldReason::Dependency { tasks },
            });
        } else {
            self.held_by = held_by.clone();
            out.push(DecisionKind::Held {
                reason: HoldReason::Dependency { tasks: held_by },
            });
        }
    }

    /// Makes a restored state fit the task's current config, which may have changed since it was
    /// saved. Nothing here may panic, whatever the file held.
    pub(crate) fn fit_to(&mut self, cfg: &PolicyConfig) {
        while self.results.len() > MAX_RESULTS {
            self.results.pop_front();
        }
        while self.actions.len() > MAX_ACTIONS {
            self.actions.pop_front();
        }
        match cfg.failure_window {
            Some(n) => {
                while self.recent_outcomes.len() > n as usize {
                    self.recent_outcomes.pop_front();
                }
            }
            None => self.recent_outcomes.clear(),
        }
        if !cfg.has_action {
            if matches!(self.state, State::Restarting | State::Failed) {
                self.state = State::Unknown;
                self.up_since = None;
                self.clear_failures();
                self.consecutive_passes = 0;
            }
            self.pending_attempt = None;
            self.start_period_end = None;
            self.held_by.clear();
            self.flapping = None;
        }
        if self.state != State::Restarting {
            self.running_attempt = None;
        } else if self.running_attempt.is_none() {
            self.running_attempt = Some(self.backoff_position);
        }
        if self.state != State::Failed {
            self.failed_at = None;
        }
        if cfg.flapping.is_none() {
            self.flapping = None;
            self.changes.clear();
        }
    }

    // ---- helpers ----

    fn set_state(&mut self, to: State, reason: String, out: &mut Out<'_>) {
        if to == self.state {
            return;
        }
        let from = self.state;
        self.state = to;
        self.state_since = Some(out.at);
        let class = match to {
            State::Healthy | State::Degraded => Some(Class::Up),
            State::Unhealthy | State::Failed => Some(Class::Down),
            State::Unknown | State::Restarting => None,
        };
        if let Some(class) = class {
            if self.last_class.is_some_and(|last| last != class) {
                self.changes.push_back(out.at);
            }
            self.last_class = Some(class);
        }
        if to.is_up() {
            self.up_since.get_or_insert(out.at);
        } else {
            self.up_since = None;
        }
        out.push(DecisionKind::StateChanged { from, to, reason });
    }

    fn update_flapping(&mut self, cfg: &PolicyConfig, out: &mut Out<'_>) {
        let Some(f) = cfg.flapping.as_ref().filter(|_| cfg.has_action) else {
            self.flapping = None;
            self.changes.clear();
            return;
        };
        let window = millis(f.window);
        self.changes
            .retain(|t| t.0.saturating_add(window) > out.at.0);
        // Only "more than max_changes" and "none" matter, so the oldest beyond that can go.
        while self.changes.len() > f.max_changes as usize + 1 {
            self.changes.pop_front();
        }
        match self.flapping {
            None if self.changes.len() > f.max_changes as usize => {
                let changes = self.changes.len().try_into().unwrap_or(u32::MAX);
                self.flapping = Some(changes);
                out.push(DecisionKind::Held {
                    reason: HoldReason::Flapping {
                        changes,
                        window_ms: window,
                    },
                });
            }
            Some(changes) if self.changes.is_empty() => {
                self.flapping = None;
                out.push(DecisionKind::HoldLifted {
                    reason: HoldReason::Flapping {
                        changes,
                        window_ms: window,
                    },
                });
            }
            _ => {}
        }
    }

    fn maybe_reset_backoff(&mut self, cfg: &PolicyConfig, out: &mut Out<'_>) {
        if self.state.is_up()
            && self.backoff_position > 0
            && self
                .up_since
                .is_some_and(|since| out.at.since(since) >= cfg.reset_after)
        {
            let position = self.backoff_position;
            self.backoff_position = 0;
            self.next_action_not_before = None;
            out.push(DecisionKind::BackoffReset { position });
        }
    }

    /// The delay after the action at the current backoff position, jittered with the task's own
    /// generator.
    fn jittered_delay(&mut self, cfg: &PolicyConfig) -> Duration {
        let b = &cfg.backoff;
        let base = b.base_delay_ms(self.backoff_position);
        let shift = rng::next_signed_unit(&mut self.rng);
        let ms = (base * (1.0 + b.jitter * shift)).round().max(0.0);
        Duration::from_millis(ms as u64)
    }

    fn failure_threshold_met(&self, cfg: &PolicyConfig) -> bool {
        match cfg.failure_window {
            None => self.consecutive_failures >= cfg.failure_threshold,
            Some(_) => self.window_failures() >= cfg.failure_threshold as usize,
        }
    }

    fn window_failures(&self) -> usize {
        self.recent_outcomes.iter().filter(|f| **f).count()
    }

    fn push_outcome(&mut self, cfg: &PolicyConfig, failed: bool) {
        if let Some(n) = cfg.failure_window {
            self.recent_outcomes.push_back(failed);
            while self.recent_outcomes.len() > n as usize {
                self.recent_outcomes.pop_front();
            }
        }
    }

    fn clear_failures(&mut self) {
        self.consecutive_failures = 0;
        self.recent_outcomes.clear();
    }

    fn clear_budget(&mut self) {
        self.restarts.clear();
        self.failed_at = None;
    }
}
