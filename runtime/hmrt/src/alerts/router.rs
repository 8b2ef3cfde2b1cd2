//! Which notices the events make: the alert routes' rules, with no I/O and no clock (time is
//! given), so every rule is tested alone.
//!
//! Per route and task there is at most one incident: it opens when the task goes down
//! (`unhealthy`, `restarting`, `failed`) and closes when it is up again (`healthy`,
//! `degraded`); `unknown` changes nothing. A route says "unhealthy" once per incident (after its
//! own `failure_threshold` of failed checks in a row, if it sets one), reminds at `remind_every`,
//! and says "recovered" once, only for an incident it announced.
//!
//! **Dependencies.** While a task a task depends on (directly or not) is down, the dependant's
//! new incidents are not announced: the dependency's own notice names its dependants as held.
//! When the dependency is up again, each held dependant still down is announced then; one that
//! recovered meanwhile closes quietly (nothing was said, so nothing needs taking back). An
//! incident announced before the dependency went down is still resolved when it ends: a
//! resolution is never swallowed.
//!
//! **Flapping.** While the policy holds a task for flapping, its incidents neither open nor close
//! in notices; one "flapping" notice says so, and when the hold lifts the task's state then is
//! announced if it differs from what was last said.

use std::collections::{BTreeMap, BTreeSet};

use hmrt_config::{AlertRoute, Config};
use hmrt_policy::{DecisionKind, HoldReason, State, Status, Timestamp};
use serde::{Deserialize, Serialize};

use super::mutes::{Mutes, Silence};
use super::notice::summary;
pub use super::notice::{Kind, Notice, queue_name};
use crate::events::Event;

/// An incident of one task, as one route sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Incident {
    started_at: Timestamp,
    /// Whether the route announced it (so its end must be announced too).
    announced: bool,
    reminders: u32,
    next_reminder: Option<Timestamp>,
    /// When to tell the route's second receiver, if the incident lasts.
    #[serde(default)]
    escalate_at: Option<Timestamp>,
    /// Whether the second receiver was told (so its end is told there too).
    #[serde(default)]
    escalated: bool,
}

/// One route's view of one task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Track {
    incident: Option<Incident>,
    /// Failed and passed checks in a row, for the route's own thresholds.
    #[serde(skip)]
    failures: u32,
    #[serde(skip)]
    passes: u32,
    /// A flapping notice was sent for the current flapping hold.
    flapping_said: bool,
    /// A "failed" notice a silence or window held: said when it ends if the task is still
    /// failed.
    #[serde(default)]
    failed_owed: bool,
}

/// What the router knows of a task across routes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct TaskFacts {
    pub(super) state: State,
    pub(super) reason: String,
    pub(super) flapping: bool,
}

/// The router's durable state: kept in the outbox file so that a restart neither repeats an
/// "unhealthy" nor forgets to resolve it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouterState {
    tracks: BTreeMap<String, BTreeMap<String, Track>>,
    facts: BTreeMap<String, TaskFacts>,
    sequence: u64,
    /// Silences made through the API, until they end.
    #[serde(default)]
    silences: Vec<Silence>,
}

/// The routes and the tasks they cover.
pub struct Router {
    routes: Vec<AlertRoute>,
    /// Per route (by index): the tasks it covers.
    covered: Vec<BTreeSet<String>>,
    /// Each task's dependencies, transitively.
    upstream: BTreeMap<String, BTreeSet<String>>,
    /// Each task's dependants, transitively.
    downstream: BTreeMap<String, BTreeSet<String>>,
    labels: BTreeMap<String, BTreeMap<String, String>>,
    state: RouterState,
    mutes: Mutes,
    /// The last tick: a silence or window that began or ended since is applied at the next.
    last_tick: Timestamp,
}

fn is_down(state: State) -> bool {
    matches!(state, State::Unhealthy | State::Restarting | State::Failed)
}

/// The transitive closure of `edges`, from each node.
fn closure(edges: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, BTreeSet<String>> {
    let mut all = BTreeMap::new();
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&String> = edges[start].iter().collect();
        while let Some(next) = stack.pop() {
            if seen.insert(next.clone()) {
                stack.extend(edges.get(next).into_iter().flatten());
            }
        }
        all.insert(start.clone(), seen);
    }
    all
}

impl Router {
    /// The router of `config`'s routes, resuming from `state` (what the outbox kept).
    pub fn new(config: &Config, state: RouterState) -> Router {
        let covered = config
            .alerts
            .iter()
            .map(|r| {
                config
                    .tasks
                    .iter()
                    .filter(|t| r.covers(t))
                    .map(|t| t.name.clone())
                    .collect()
            })
            .collect();
        let deps: BTreeMap<String, Vec<String>> = config
            .tasks
            .iter()
            .map(|t| (t.name.clone(), t.policy.depends_on.clone()))
            .collect();
        let mut reverse: BTreeMap<String, Vec<String>> =
            deps.keys().map(|k| (k.clone(), Vec::new())).collect();
        for (task, ups) in &deps {
            for up in ups {
                reverse.entry(up.clone()).or_default().push(task.clone());
            }
        }
        let mut router = Router {
            routes: config.alerts.clone(),
            covered,
            upstream: closure(&deps),
            downstream: closure(&reverse),
            labels: config
                .tasks
                .iter()
                .map(|t| (t.name.clone(), t.labels.clone()))
                .collect(),
            state,
            mutes: Mutes::new(&config.maintenance),
            last_tick: Timestamp(0),
        };
        router.fit_to_config();
        router
    }

    /// Drops what the state kept of routes and tasks the config no longer has.
    fn fit_to_config(&mut self) {
        let names: BTreeSet<&String> = self.routes.iter().map(|r| &r.name).collect();
        self.state.tracks.retain(|route, _| names.contains(route));
        for (i, route) in self.routes.iter().enumerate() {
            let tracks = self.state.tracks.entry(route.name.clone()).or_default();
            tracks.retain(|task, _| self.covered[i].contains(task));
        }
        let labels = &self.labels;
        self.state.facts.retain(|task, _| labels.contains_key(task));
        // A reminder or escalation the route no longer asks for is not kept pending.
        for route in &self.routes {
            for track in self
                .state
                .tracks
                .entry(route.name.clone())
                .or_default()
                .values_mut()
            {
                if let Some(incident) = track.incident.as_mut() {
                    if route.remind_every.is_none() {
                        incident.next_reminder = None;
                    }
                    if route.escalate_to.is_none() {
                        incident.escalate_at = None;
                    }
                }
            }
        }
    }

    /// The durable state, to save.
    pub fn state(&self) -> &RouterState {
        &self.state
    }

    /// Sets a task's state as the daemon restored it (before any event about it).
    pub fn seed(&mut self, task: &str, state: State, reason: &str) {
        let facts = self.state.facts.entry(task.to_string()).or_default();
        facts.state = state;
        if facts.reason.is_empty() {
            facts.reason = reason.to_string();
        }
    }

    /// The notices `event` makes, at `at`.
    pub fn on_event(&mut self, at: Timestamp, event: &Event) -> Vec<Notice> {
        let mut out = Vec::new();
        match event {
            Event::CheckFinished {
                task,
                status,
                message,
                ..
            } => {
                self.count(task, *status);
                self.facts(task).reason = message.clone();
                self.evaluate(task, at, &mut out);
            }
            Event::StateChanged { task, to, .. } => {
                self.facts(task).state = *to;
                self.evaluate(task, at, &mut out);
                // Its dependants may be held, or free, now.
                let dependants: Vec<String> = self
                    .downstream
                    .get(task)
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect();
                for dependant in dependants {
                    self.evaluate(&dependant, at, &mut out);
                }
            }
            Event::ActionHeld {
                task,
                reason: HoldReason::Flapping { .. },
            } => {
                self.facts(task).flapping = true;
                // Said now, or when a silence or window holding it ends (see `evaluate`).
                self.evaluate(task, at, &mut out);
            }
            Event::ActionHeld {
                task,
                reason: HoldReason::Dependency { .. },
            } => {
                self.each_route(task, |r, route, _| {
                    r.push(route, task, Kind::Held, at, None, &mut out);
                });
            }
            Event::Policy { task, decision } => match decision {
                DecisionKind::HoldLifted {
                    reason: HoldReason::Flapping { .. },
                } => {
                    self.facts(task).flapping = false;
                    self.each_route(task, |_, _, track| track.flapping_said = false);
                    self.evaluate(task, at, &mut out);
                }
                DecisionKind::Failed { .. } => {
                    let muted = self.muted(task, at);
                    self.each_route(task, |r, route, track| {
                        track.failed_owed = muted;
                        r.push(route, task, Kind::Failed, at, None, &mut out);
                    });
                }
                DecisionKind::Rearmed { .. } => self.each_route(task, |r, route, _| {
                    r.push(route, task, Kind::Rearmed, at, None, &mut out);
                }),
                _ => {}
            },
            _ => {}
        }
        out
    }

    /// The silences, oldest first.
    pub fn silences(&self) -> &[Silence] {
        &self.state.silences
    }

    /// Adds a silence.
    pub fn silence(&mut self, silence: Silence) {
        self.state.silences.push(silence);
    }

    /// Ends the silence `id` now (what it held and is still broken is announced at the next
    /// tick); `None` if there is no such silence.
    pub fn unsilence(&mut self, id: &str) -> Option<Silence> {
        let i = self.state.silences.iter().position(|s| s.id == id)?;
        let removed = self.state.silences.remove(i);
        // Make the next tick look again, as if the silence had just ended.
        self.last_tick = Timestamp(0);
        Some(removed)
    }

    /// Whether a silence or maintenance window holds `task`'s notices at `at`.
    fn muted(&self, task: &str, at: Timestamp) -> bool {
        let none = BTreeMap::new();
        let labels = self.labels.get(task).unwrap_or(&none);
        self.mutes.holds(&self.state.silences, task, labels, at)
    }

    /// Reminders due by `at`, and what silences and windows that began or ended since the last
    /// tick change: what they held and is still broken is announced.
    pub fn tick(&mut self, at: Timestamp) -> Vec<Notice> {
        let mut out = Vec::new();
        let boundary = self
            .mutes
            .next_boundary(&self.state.silences, self.last_tick)
            .is_some_and(|b| b <= at);
        if boundary || self.last_tick == Timestamp(0) {
            self.state.silences.retain(|s| s.ends_at > at);
            let tasks: Vec<String> = self.labels.keys().cloned().collect();
            for task in tasks {
                self.evaluate(&task, at, &mut out);
            }
        }
        self.last_tick = at;
        self.escalate(at, &mut out);
        for task in self.waited_out(at) {
            self.evaluate(&task, at, &mut out);
        }
        for i in 0..self.routes.len() {
            let Some(every) = self.routes[i].remind_every else {
                continue;
            };
            let tasks: Vec<String> = self.covered[i].iter().cloned().collect();
            for task in tasks {
                let route = self.routes[i].name.clone();
                let track = self.track(&route, &task);
                let Some(incident) = track.incident.as_mut() else {
                    continue;
                };
                let Some(due) = incident.next_reminder.filter(|due| *due <= at) else {
                    continue;
                };
                // The next one a whole period after this, not after when it was due: a daemon
                // that was stopped for a while does not send a burst.
                incident.next_reminder = Some(at.max(due).plus(every));
                incident.reminders += 1;
                let (started, n) = (incident.started_at, incident.reminders);
                self.push(i, &task, Kind::Reminder, at, Some((started, n)), &mut out);
            }
        }
        out
    }

    /// The tasks with an incident not yet announced whose route's `group_wait` has run out.
    fn waited_out(&self, at: Timestamp) -> Vec<String> {
        let mut tasks = Vec::new();
        for route in &self.routes {
            let Some(wait) = route.group_wait else {
                continue;
            };
            for (task, track) in self.state.tracks.get(&route.name).into_iter().flatten() {
                if track
                    .incident
                    .as_ref()
                    .is_some_and(|i| !i.announced && i.started_at.plus(wait) <= at)
                {
                    tasks.push(task.clone());
                }
            }
        }
        tasks.sort();
        tasks.dedup();
        tasks
    }

    /// Tells each route's second receiver about the announced incidents that outlasted its
    /// `escalate_after` (unless a silence or window holds them).
    fn escalate(&mut self, at: Timestamp, out: &mut Vec<Notice>) {
        for i in 0..self.routes.len() {
            if self.routes[i].escalate_to.is_none() {
                continue;
            }
            let route = self.routes[i].name.clone();
            let tasks: Vec<String> = self.covered[i].iter().cloned().collect();
            for task in tasks {
                let muted = self.muted(&task, at);
                let track = self.track(&route, &task);
                let Some(incident) = track.incident.as_mut() else {
                    continue;
                };
                if incident.escalated || muted || incident.escalate_at.is_none_or(|e| e > at) {
                    continue;
                }
                incident.escalated = true;
                let started = incident.started_at;
                self.push_escalation(i, &task, Kind::Unhealthy, at, started, out);
            }
        }
    }

    /// When the next tick is due: the earliest reminder, or silence or window beginning or
    /// ending.
    pub fn next_tick(&self) -> Option<Timestamp> {
        let reminders = self
            .state
            .tracks
            .values()
            .flat_map(|tracks| tracks.values())
            .filter_map(|t| t.incident.as_ref())
            .flat_map(|i| [i.next_reminder, i.escalate_at.filter(|_| !i.escalated)])
            .flatten()
            // One already past was handled at the last tick or is held (an escalation during a
            // silence waits for its end, which is a boundary below): asking again would spin.
            .filter(|due| *due > self.last_tick);
        let waits = self.routes.iter().filter_map(|route| {
            let wait = route.group_wait?;
            self.state
                .tracks
                .get(&route.name)?
                .values()
                .filter_map(|t| t.incident.as_ref().filter(|i| !i.announced))
                .map(|i| i.started_at.plus(wait))
                .filter(|due| *due > self.last_tick)
                .min()
        });
        let reminders = reminders.chain(waits);
        let mutes = self
            .mutes
            .next_boundary(&self.state.silences, self.last_tick);
        reminders.chain(mutes).min()
    }

    fn facts(&mut self, task: &str) -> &mut TaskFacts {
        self.state.facts.entry(task.to_string()).or_default()
    }

    fn track(&mut self, route: &str, task: &str) -> &mut Track {
        self.state
            .tracks
            .entry(route.to_string())
            .or_default()
            .entry(task.to_string())
            .or_default()
    }

    /// Runs `f` for each route that covers `task`, with that route's track of it.
    fn each_route(&mut self, task: &str, mut f: impl FnMut(&mut Router, usize, &mut Track)) {
        for i in 0..self.routes.len() {
            if !self.covered[i].contains(task) {
                continue;
            }
            let route = self.routes[i].name.clone();
            let mut track = std::mem::take(self.track(&route, task));
            f(self, i, &mut track);
            *self.track(&route, task) = track;
        }
    }

    fn count(&mut self, task: &str, status: Status) {
        self.each_route(task, |_, _, track| match status {
            Status::Healthy | Status::Degraded => {
                track.passes = track.passes.saturating_add(1);
                track.failures = 0;
            }
            Status::Unhealthy => {
                track.failures = track.failures.saturating_add(1);
                track.passes = 0;
            }
            Status::Unknown => {}
        });
    }

    /// Whether a dependency of `task` is down now.
    fn held_by_dependency(&self, task: &str) -> bool {
        self.upstream
            .get(task)
            .into_iter()
            .flatten()
            .any(|up| self.state.facts.get(up).is_some_and(|f| is_down(f.state)))
    }

    /// Opens, announces or closes `task`'s incident on every route that covers it.
    fn evaluate(&mut self, task: &str, at: Timestamp, out: &mut Vec<Notice>) {
        let facts = self.state.facts.get(task).cloned().unwrap_or_default();
        let muted = self.muted(task, at);
        let held = self.held_by_dependency(task) || muted;
        self.each_route(task, |r, i, track| {
            if !muted {
                r.say_owed(i, task, &facts, track, at, out);
            }
            let route = &r.routes[i];
            let (fail_needed, pass_needed) = (
                route.failure_threshold.unwrap_or(0),
                route.success_threshold.unwrap_or(0),
            );
            if is_down(facts.state) && track.incident.is_none() {
                track.incident = Some(Incident {
                    started_at: at,
                    announced: false,
                    reminders: 0,
                    next_reminder: None,
                    escalate_at: None,
                    escalated: false,
                });
            }
            let remind_every = route.remind_every;
            let escalate_after = route.escalate_after;
            let waited = route.group_wait.is_none_or(|wait| {
                track
                    .incident
                    .as_ref()
                    .is_some_and(|i| at >= i.started_at.plus(wait))
            });
            let Some(incident) = track.incident.as_mut() else {
                return;
            };
            if facts.flapping {
                return;
            }
            if is_down(facts.state)
                && !incident.announced
                && !held
                && waited
                && track.failures >= fail_needed
            {
                incident.announced = true;
                incident.next_reminder = remind_every.map(|every| at.plus(every));
                incident.escalate_at = escalate_after.map(|after| at.plus(after));
                let started = incident.started_at;
                r.push(i, task, Kind::Unhealthy, at, Some((started, 0)), out);
            } else if facts.state.is_up() && track.passes >= pass_needed {
                let ended = track.incident.take();
                if let Some(incident) = ended.filter(|i| i.announced) {
                    let started = incident.started_at;
                    r.push(i, task, Kind::Recovered, at, Some((started, 0)), out);
                    if incident.escalated {
                        r.push_escalation(i, task, Kind::Recovered, at, started, out);
                    }
                }
            }
        });
    }

    /// What a silence or window held that is still true once it ends: the flapping hold, or
    /// the failure. (Incidents are announced by `evaluate` itself.)
    fn say_owed(
        &mut self,
        i: usize,
        task: &str,
        facts: &TaskFacts,
        track: &mut Track,
        at: Timestamp,
        out: &mut Vec<Notice>,
    ) {
        if facts.flapping && !track.flapping_said {
            track.flapping_said = true;
            self.push(i, task, Kind::Flapping, at, None, out);
        }
        if std::mem::take(&mut track.failed_owed) && facts.state == State::Failed {
            self.push(i, task, Kind::Failed, at, None, out);
        }
    }

    /// A notice for route `i`'s second receiver.
    fn push_escalation(
        &mut self,
        i: usize,
        task: &str,
        kind: Kind,
        at: Timestamp,
        started: Timestamp,
        out: &mut Vec<Notice>,
    ) {
        let mut made = Vec::new();
        self.push(i, task, kind, at, Some((started, 0)), &mut made);
        for mut notice in made {
            notice.escalation = true;
            notice.id.push_str("/escalation");
            out.push(notice);
        }
    }

    /// Makes a notice of `kind` for `task` on route `i`, if the route wants that kind.
    fn push(
        &mut self,
        i: usize,
        task: &str,
        kind: Kind,
        at: Timestamp,
        incident: Option<(Timestamp, u32)>,
        out: &mut Vec<Notice>,
    ) {
        // What a silence or window holds waits; a resolution never does (nothing announced is
        // left unresolved).
        if kind.firing() && self.muted(task, at) {
            return;
        }
        let route = &self.routes[i];
        if !route.events.contains(&kind.event())
            || (kind == Kind::Recovered && !route.send_resolved)
        {
            return;
        }
        let facts = self.state.facts.get(task).cloned().unwrap_or_default();
        let (started_at, reminder) = incident.unwrap_or((at, 0));
        let held: Vec<String> = if kind.firing() && is_down(facts.state) {
            self.downstream
                .get(task)
                .into_iter()
                .flatten()
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let ends_at = match kind {
            Kind::Recovered | Kind::Rearmed => Some(at),
            // An alert a receiver keeps firing must outlive the gap to the next reminder.
            _ => route.remind_every.map(|every| at.plus(every * 3)),
        };
        self.state.sequence += 1;
        let summary = summary(task, kind, &facts, &held, at.since(started_at));
        out.push(Notice {
            id: format!("{}/{task}/{}", route.name, self.state.sequence),
            route: route.name.clone(),
            kind,
            firing: kind.firing(),
            task: task.to_string(),
            labels: self.labels.get(task).cloned().unwrap_or_default(),
            state: facts.state,
            reason: facts.reason.clone(),
            summary,
            started_at,
            at,
            ends_at,
            held,
            reminder,
            escalation: false,
        });
    }
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
