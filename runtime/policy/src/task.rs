//! One task's state and the rules that move it. The [`crate::Engine`] owns one [`TaskState`]
//! per task and adds what needs all tasks at once: dependency holds.

use std::collections::VecDeque;
use std::time::Duration;

use hmrt_domain::duration;

use crate::decision::{Decision, DecisionKind, HoldReason, RearmHow};
use crate::{Backoff, PolicyConfig, State, Status, Timestamp, millis, rng};

/// Check results kept per task (the newest last).
pub const MAX_RESULTS: usize = 50;
/// Actions kept per task (the newest last).
pub const MAX_ACTIONS: usize = 20;
/// Messages longer than this are cut (at a character boundary) before they are stored, so a
/// chatty plugin cannot grow the state file.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// One check result as the policy saw it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResultRecord {
    /// When it was observed.
    pub at: Timestamp,
    /// What the check said.
    pub status: Status,
    /// Its message (cut to [`MAX_MESSAGE_BYTES`]).
    pub message: String,
}

/// What an action's run returned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum ActionResult {
    /// It ran; whether it helped is decided by the check afterwards.
    Ok {
        /// Its outcome message.
        message: String,
    },
    /// It failed to run.
    Error {
        /// Its error.
        error: String,
    },
}

/// One action the policy asked for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActionRecord {
    /// Its attempt number.
    pub attempt: u32,
    /// When it was asked for.
    pub started: Timestamp,
    /// When it finished, once it has.
    pub finished: Option<Timestamp>,
    /// What its run returned, once it has.
    pub result: Option<ActionResult>,
}

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
    last_class: Option<Class>,
    /// Times of up/down changes within the flapping window.
    changes: VecDeque<Timestamp>,
    results: VecDeque<ResultRecord>,
    actions: VecDeque<ActionRecord>,
}

/// A read-only summary of one task, for the HTTP API, `hmrt status` and tests.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskView {
    /// The task.
    pub name: String,
    /// Its state.
    pub state: State,
    /// Since when it has been in that state (None: since the start).
    pub since: Option<Timestamp>,
    /// What holds its actions; empty if nothing.
    pub held: Vec<HoldReason>,
    /// Counted passes in a row.
    pub consecutive_passes: u32,
    /// Counted failures in a row.
    pub consecutive_failures: u32,
    /// With `failure_window`: failures among the last counted results.
    pub failures_in_window: Option<u32>,
    /// Actions started within the trailing `restart_window`.
    pub restarts_in_window: u32,
    /// The budget they are counted against.
    pub max_restarts: u32,
    /// The attempt number of the last action of the current backoff sequence (0: none).
    pub backoff_position: u32,
    /// No action before this time.
    pub next_action_not_before: Option<Timestamp>,
    /// Failures before this time do not count.
    pub start_period_end: Option<Timestamp>,
    /// The attempt whose effect is not decided yet.
    pub pending_attempt: Option<u32>,
    /// The attempt running now.
    pub running_attempt: Option<u32>,
    /// When the task became failed, if it is.
    pub failed_at: Option<Timestamp>,
    /// The status of the last check result.
    pub last_status: Option<Status>,
    /// The message of the last check result.
    pub last_message: Option<String>,
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

    /// The task's state.
    pub fn state(&self) -> State {
        self.state
    }

    /// When the task entered its state (None: it has been in it since the start).
    pub fn state_since(&self) -> Option<Timestamp> {
        self.state_since
    }

    /// Counted passes in a row.
    pub fn consecutive_passes(&self) -> u32 {
        self.consecutive_passes
    }

    /// Counted failures in a row.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// The attempt number of the last action of the current backoff sequence (0: none yet, or
    /// reset).
    pub fn backoff_position(&self) -> u32 {
        self.backoff_position
    }

    /// No action before this time.
    pub fn next_action_not_before(&self) -> Option<Timestamp> {
        self.next_action_not_before
    }

    /// Start times of the actions counted against the restart budget (pruned lazily: use
    /// [`TaskView::restarts_in_window`] for the count at a given time).
    pub fn restarts(&self) -> impl Iterator<Item = Timestamp> + '_ {
        self.restarts.iter().copied()
    }

    /// The end of the current start period, if one is running.
    pub fn start_period_end(&self) -> Option<Timestamp> {
        self.start_period_end
    }

    /// The attempt that ran and whose effect is not decided yet.
    pub fn pending_attempt(&self) -> Option<u32> {
        self.pending_attempt
    }

    /// The attempt running now.
    pub fn running_attempt(&self) -> Option<u32> {
        self.running_attempt
    }

    /// When the task became failed, if it is.
    pub fn failed_at(&self) -> Option<Timestamp> {
        self.failed_at
    }

    /// Dependencies holding the task's actions, in name order.
    pub fn held_by(&self) -> &[String] {
        &self.held_by
    }

    /// Whether the task is flapping (its actions held).
    pub fn is_flapping(&self) -> bool {
        self.flapping.is_some()
    }

    /// What holds the task's actions now.
    pub fn holds(&self, config: &PolicyConfig) -> Vec<HoldReason> {
        let mut holds = Vec::new();
        if !self.held_by.is_empty() {
            holds.push(HoldReason::Dependency {
                tasks: self.held_by.clone(),
            });
        }
        if let (Some(changes), Some(f)) = (self.flapping, &config.flapping) {
            holds.push(HoldReason::Flapping {
                changes,
                window_ms: millis(f.window),
            });
        }
        holds
    }

    /// The last results (up to [`MAX_RESULTS`]), oldest first.
    pub fn results(&self) -> impl Iterator<Item = &ResultRecord> + '_ {
        self.results.iter()
    }

    /// The last actions (up to [`MAX_ACTIONS`]), oldest first.
    pub fn actions(&self) -> impl Iterator<Item = &ActionRecord> + '_ {
        self.actions.iter()
    }

    /// The message of the last check result.
    pub fn last_message(&self) -> Option<&str> {
        self.results.back().map(|r| r.message.as_str())
    }

    /// A summary of the task at `now`.
    pub fn view(&self, name: &str, config: &PolicyConfig, now: Timestamp) -> TaskView {
        let window = millis(config.restart_window);
        let restarts = self
            .restarts
            .iter()
            .filter(|t| t.0.saturating_add(window) > now.0)
            .count();
        TaskView {
            name: name.to_string(),
            state: self.state,
            since: self.state_since,
            held: self.holds(config),
            consecutive_passes: self.consecutive_passes,
            consecutive_failures: self.consecutive_failures,
            failures_in_window: config
                .failure_window
                .map(|_| self.window_failures().try_into().unwrap_or(u32::MAX)),
            restarts_in_window: restarts.try_into().unwrap_or(u32::MAX),
            max_restarts: config.max_restarts,
            backoff_position: self.backoff_position,
            next_action_not_before: self.next_action_not_before,
            start_period_end: self.start_period_end,
            pending_attempt: self.pending_attempt,
            running_attempt: self.running_attempt,
            failed_at: self.failed_at,
            last_status: self.results.back().map(|r| r.status),
            last_message: self.last_message().map(str::to_string),
        }
    }

    // ---- the rules ----

    /// A check result.
    pub(crate) fn observe(
        &mut self,
        cfg: &PolicyConfig,
        status: Status,
        message: &str,
        out: &mut Out<'_>,
    ) {
        let now = out.at;
        let message = cut(message);
        self.results.push_back(ResultRecord {
            at: now,
            status,
            message: message.clone(),
        });
        while self.results.len() > MAX_RESULTS {
            self.results.pop_front();
        }
        // The action's own effect is being applied: a result now says nothing about it.
        if self.state == State::Restarting {
            return;
        }
        self.prune_restarts(cfg, now);

        if self.state == State::Failed
            && let (Some(after), Some(at)) = (cfg.rearm_after, self.failed_at)
            && now >= at.plus(after)
        {
            self.clear_budget();
            self.clear_failures();
            self.consecutive_passes = 0;
            self.set_state(
                State::Unknown,
                format!("re-armed: failed for {}", duration::format(after)),
                out,
            );
            out.push(DecisionKind::Rearmed {
                how: RearmHow::Elapsed,
            });
        }

        if let (Some(attempt), Some(end)) = (self.pending_attempt, self.start_period_end)
            && now >= end
        {
            self.pending_attempt = None;
            self.start_period_end = None;
            let reason = format!(
                "the start period of {} ended before {}",
                duration::format(cfg.start_period),
                plural(cfg.success_threshold, "passing check", "passing checks")
            );
            out.push(DecisionKind::AttemptFailed {
                attempt,
                reason: reason.clone(),
            });
            if self.state == State::Unknown {
                self.set_state(State::Unhealthy, reason, out);
            }
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
            self.maybe_act(cfg, &message, out);
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
                self.failed_at = None;
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

    fn maybe_act(&mut self, cfg: &PolicyConfig, message: &str, out: &mut Out<'_>) {
        let now = out.at;
        let blocked = !cfg.has_action
            || self.state != State::Unhealthy
            || !self.failure_threshold_met(cfg)
            || !self.held_by.is_empty()
            || self.flapping.is_some()
            || self.start_period_end.is_some_and(|end| now < end)
            || self.next_action_not_before.is_some_and(|t| now < t);
        if blocked {
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
        self.set_state(
            State::Restarting,
            format!("attempt {attempt}: {message}"),
            out,
        );
        out.push(DecisionKind::Act { attempt });
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

    fn prune_restarts(&mut self, cfg: &PolicyConfig, now: Timestamp) {
        let window = millis(cfg.restart_window);
        // `retain`, not popping from the front: a clock that stepped back must not leave old
        // entries counted forever.
        self.restarts.retain(|t| t.0.saturating_add(window) > now.0);
    }
}
