//! The rules driven by time alone: `rearm_after` running out, a start period running out, a
//! flapping hold lifting and the backoff running out. [`TaskState::tick`] applies the ones due,
//! for [`crate::Engine::wake`] and at the start of every check result; [`TaskState::next_wake`]
//! says when the next one is due. Both read the same conditions, so they cannot disagree.

use hmrt_domain::duration;

use crate::decision::{DecisionKind, RearmHow};
use crate::{PolicyConfig, State, Timestamp, millis};

use super::{Out, TaskState, plural};

impl TaskState {
    /// Applies every timer due at `out.at`, in a fixed order: `rearm_after`, the start period,
    /// the flapping hold, then the backoff (an action, or `failed` if the budget is spent, with
    /// the last result's message as the reason). Nothing happens while an action runs, and
    /// nothing happens if nothing is due.
    pub(crate) fn tick(&mut self, cfg: &PolicyConfig, out: &mut Out<'_>) {
        if self.state == State::Restarting {
            return;
        }
        self.prune_restarts(cfg, out.at);
        self.rearm_if_elapsed(cfg, out);
        self.end_start_period_if_over(cfg, out);
        // Only lifting is time-driven: a hold begins with a change, which only a result makes.
        if self.flapping.is_some() {
            self.update_flapping(cfg, out);
        }
        self.maybe_act(cfg, out);
    }

    /// The earliest instant at which [`TaskState::tick`] would change something, or `None` if
    /// no timer is pending. An instant already past means "due now".
    pub(crate) fn next_wake(&self, cfg: &PolicyConfig) -> Option<Timestamp> {
        if self.state == State::Restarting {
            return None;
        }
        let rearm = match (self.state, cfg.rearm_after, self.failed_at) {
            (State::Failed, Some(after), Some(at)) => Some(at.plus(after)),
            _ => None,
        };
        let start_period = self.pending_attempt.and(self.start_period_end);
        let flapping_lifts = match (self.flapping, &cfg.flapping) {
            // The hold lifts when the last change leaves the window.
            (Some(_), Some(f)) if cfg.has_action => Some(
                self.changes
                    .back()
                    .map_or(Timestamp(0), |last| last.plus(f.window)),
            ),
            _ => None,
        };
        let act = self.would_act(cfg).then(|| self.act_due());
        [rearm, start_period, flapping_lifts, act]
            .into_iter()
            .flatten()
            .min()
    }

    /// A failed task whose `rearm_after` has run out is re-armed: `unknown`, its budget history
    /// and failure counts cleared (the backoff continues where it was).
    fn rearm_if_elapsed(&mut self, cfg: &PolicyConfig, out: &mut Out<'_>) {
        if self.state == State::Failed
            && let (Some(after), Some(at)) = (cfg.rearm_after, self.failed_at)
            && out.at >= at.plus(after)
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
    }

    /// A start period that ran out before the check passed `success_threshold` times: the
    /// attempt failed, and a task not yet decided is `unhealthy`.
    fn end_start_period_if_over(&mut self, cfg: &PolicyConfig, out: &mut Out<'_>) {
        if let (Some(attempt), Some(end)) = (self.pending_attempt, self.start_period_end)
            && out.at >= end
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
    }

    fn prune_restarts(&mut self, cfg: &PolicyConfig, now: Timestamp) {
        let window = millis(cfg.restart_window);
        // `retain`, not popping from the front: a clock that stepped back must not leave old
        // entries counted forever.
        self.restarts.retain(|t| t.0.saturating_add(window) > now.0);
    }
}
