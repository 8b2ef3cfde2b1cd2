//! Alerts: `[[alert]]` routes turn the event stream into notices ([`router`]), and notices reach
//! people through receivers, which are action plugins like any other ([`receivers`]).
//!
//! It is an output like the others: [`Alerts`] subscribes to the events, and its dispatcher
//! delivers on a task of its own; neither the scheduler nor the policy knows about it.
//!
//! # Nothing is lost
//!
//! Every notice goes through an outbox, `alerts.json` in the state directory, written durably
//! (temp file, fsync, rename, fsync of the directory) before its first delivery attempt, together
//! with the router's state (which incidents were announced). Events only mark that state changed;
//! the dispatcher writes it, so no task's check waits for a disk. Each route delivers in order: the
//! oldest undelivered notice first, retried with exponential backoff (1 s doubling up to 5 min)
//! while the receiver fails, and dropped only after the route's `give_up_after`, with an event
//! and an error in the log. A notice delivered is removed from the outbox; hmrt killed between
//! the delivery and that write delivers it once more after it starts again (at least once,
//! never lost). A notice owed when hmrt stopped, or was killed, is delivered after it starts.

pub mod mutes;
mod notice;
pub mod receivers;
pub mod router;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmrt_policy::{Status, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::clock::{Clock, rfc3339};
use crate::events::{Event, Events, Subscriber};
use crate::sandbox::{ActionTrigger, Sandbox};
use crate::tasks::Bound;
pub use mutes::Silence;
pub use receivers::Receiver;
pub use router::{Kind, Notice, Router, RouterState};

/// The outbox's file name in the state directory.
pub const FILE: &str = "alerts.json";
/// The first retry's delay; each further one doubles, up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest delay between two attempts.
const MAX_RETRY: Duration = Duration::from_secs(300);
/// The most notices a route keeps waiting: beyond it the oldest waiting one is dropped (with an
/// event and an error), so a receiver down for long under a storm of incidents cannot grow the
/// outbox, and each save, without bound.
const MAX_QUEUE: usize = 1000;

/// A notice waiting for delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pending {
    notice: Notice,
    attempts: u32,
    next_try: Timestamp,
    last_error: Option<String>,
}

/// What `alerts.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Saved {
    router: RouterState,
    /// Per route, oldest first.
    queues: BTreeMap<String, VecDeque<Pending>>,
}

struct Inner {
    router: Router,
    queues: BTreeMap<String, VecDeque<Pending>>,
    /// Routes with a delivery in flight (their head is being sent).
    sending: std::collections::BTreeSet<String>,
    /// The router's state changed since the last save. Events only mark it: the dispatcher
    /// saves before its next delivery attempt, so a check's task never waits for an fsync.
    dirty: bool,
    /// Notices dropped because their queue was full, to report as events.
    overflowed: Vec<Notice>,
}

/// The alert output: routes events into notices, keeps them durably, delivers them.
pub struct Alerts {
    dir: PathBuf,
    inner: Mutex<Inner>,
    wake: Notify,
    receivers: BTreeMap<String, Receiver>,
}

/// Why the outbox could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", .path.display())]
pub struct OutboxError {
    path: PathBuf,
    message: String,
}

impl Alerts {
    /// The alert output for `receivers`, resuming from the outbox in `state_dir`. An outbox
    /// that cannot be parsed (it is written atomically, so only a foreign hand breaks it) is
    /// moved aside, kept for a person to read, with an error in the log, and alerting starts
    /// empty: monitoring must not stop over it. One that cannot be read at all is an error.
    pub fn open(
        config: &hmrt_config::Config,
        receivers: Vec<Receiver>,
        state_dir: &Path,
    ) -> Result<Alerts, OutboxError> {
        let path = state_dir.join(FILE);
        let saved: Saved = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(saved) => saved,
                Err(e) => {
                    let stamp = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis());
                    let aside = state_dir.join(format!("{FILE}.corrupt-{stamp}"));
                    let moved = std::fs::rename(&path, &aside);
                    tracing::error!(event = "outbox_corrupt", file = %path.display(), "the alert outbox cannot be parsed ({e}); moved to {} ({moved:?}); the notices it held are not delivered", aside.display());
                    Saved::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::default(),
            Err(e) => {
                return Err(OutboxError {
                    path,
                    message: e.to_string(),
                });
            }
        };
        let names: std::collections::BTreeSet<&str> =
            receivers.iter().map(|r| r.queue.as_str()).collect();
        let mut queues = saved.queues;
        for (route, queue) in &queues {
            if !names.contains(route.as_str()) && !queue.is_empty() {
                tracing::warn!(event = "notices_dropped", route = %route, count = queue.len(), "receiver no longer in the config: its undelivered notices are dropped");
            }
        }
        queues.retain(|route, _| names.contains(route.as_str()));
        Ok(Alerts {
            dir: state_dir.to_path_buf(),
            inner: Mutex::new(Inner {
                router: Router::new(config, saved.router),
                queues,
                sending: Default::default(),
                dirty: false,
                overflowed: Vec::new(),
            }),
            wake: Notify::new(),
            receivers: receivers
                .into_iter()
                .map(|r| (r.queue.clone(), r))
                .collect(),
        })
    }

    /// Starts from the task states the daemon restored.
    pub fn seed(&self, states: &[(String, hmrt_policy::TaskState)]) {
        let mut inner = crate::sync::lock(&self.inner);
        for (task, state) in states {
            let reason = state.last_message().unwrap_or_default();
            inner.router.seed(task, state.state(), reason);
        }
    }

    /// Notices not yet delivered, per route.
    pub fn pending(&self) -> BTreeMap<String, usize> {
        crate::sync::lock(&self.inner)
            .queues
            .iter()
            .map(|(route, q)| (route.clone(), q.len()))
            .collect()
    }

    /// The silences, oldest first.
    pub fn silences(&self) -> Vec<Silence> {
        crate::sync::lock(&self.inner).router.silences().to_vec()
    }

    /// Adds a silence (durably) and returns it.
    pub fn silence(&self, silence: Silence) -> Silence {
        let mut inner = crate::sync::lock(&self.inner);
        inner.router.silence(silence.clone());
        self.save(&mut inner);
        drop(inner);
        self.wake.notify_one();
        silence
    }

    /// Ends the silence `id` now; what it held and is still broken is announced.
    pub fn unsilence(&self, id: &str) -> Option<Silence> {
        let mut inner = crate::sync::lock(&self.inner);
        let removed = inner.router.unsilence(id)?;
        self.save(&mut inner);
        drop(inner);
        self.wake.notify_one();
        Some(removed)
    }

    /// A new silence id: random, so ids never repeat across restarts or outboxes.
    pub fn new_silence_id() -> String {
        format!("{:016x}", rand::random::<u64>())
    }

    fn save(&self, inner: &mut Inner) {
        inner.dirty = false;
        let saved = Saved {
            router: inner.router.state().clone(),
            queues: inner.queues.clone(),
        };
        let written = serde_json::to_vec(&saved)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                crate::state::write_durably(&self.dir, FILE, &bytes).map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            tracing::error!(
                event = "outbox_unwritable",
                "cannot save the alert outbox: {e}"
            );
        }
    }

    fn enqueue(inner: &mut Inner, notices: Vec<Notice>, now: Timestamp) {
        for notice in notices {
            let queue = inner.queues.entry(notice.queue()).or_default();
            queue.push_back(Pending {
                notice,
                attempts: 0,
                next_try: now,
                last_error: None,
            });
            if queue.len() > MAX_QUEUE {
                // The head may be in flight; the next oldest goes.
                if let Some(dropped) = queue.remove(1) {
                    inner.overflowed.push(dropped.notice);
                }
            }
        }
    }

    /// Reports the notices dropped because their queue was full.
    fn tell_overflowed(&self, events: &Events, now: Timestamp) {
        let dropped = std::mem::take(&mut crate::sync::lock(&self.inner).overflowed);
        for notice in dropped {
            tracing::error!(event = "notice_dropped", route = %notice.queue(), task = %notice.task, kind = ?notice.kind, "more than {MAX_QUEUE} notices wait for this receiver: the oldest waiting one is dropped");
            events.emit(
                now,
                Event::NoticeSent {
                    route: notice.queue(),
                    task: notice.task.clone(),
                    kind: notice.kind.as_str(),
                    attempt: 0,
                    outcome: "dropped",
                    message: format!("more than {MAX_QUEUE} notices waiting"),
                },
            );
        }
    }

    /// Delivers until `stop` turns true: each route's oldest notice when it is due, reminders
    /// when they are due. Publishes each attempt's outcome to `events`.
    pub async fn deliver(
        self: Arc<Self>,
        sandbox: Arc<Sandbox>,
        events: Events,
        clock: Arc<dyn Clock>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut sending = tokio::task::JoinSet::new();
        // What each delivery task carries, so that one that ends abnormally still frees its
        // queue (and counts as a failed attempt) rather than holding it forever.
        let mut in_flight: std::collections::HashMap<tokio::task::Id, (String, Pending)> =
            Default::default();
        let mut told: BTreeMap<String, usize> = BTreeMap::new();
        loop {
            let now = clock.now();
            let (due, next) = self.due(now);
            self.tell_overflowed(&events, now);
            self.tell_pending(&mut told, &events, now);
            for (route, pending) in due {
                let (me, sandbox) = (self.clone(), sandbox.clone());
                let carried = (route.clone(), pending.clone());
                let handle =
                    sending.spawn(async move { me.attempt(&sandbox, &route, &pending).await });
                in_flight.insert(handle.id(), carried);
            }
            let sleep = async {
                match next {
                    Some(at) => clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = sleep => {}
                _ = self.wake.notified() => {}
                Some(done) = sending.join_next_with_id() => {
                    self.finished(done, &mut in_flight, clock.now(), &events);
                }
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        // Deliveries in flight end within their timeout; what they did is recorded.
        while let Some(done) = sending.join_next_with_id().await {
            self.finished(done, &mut in_flight, clock.now(), &events);
        }
        self.save_if_changed();
    }

    /// Saves what events changed since the last save.
    fn save_if_changed(&self) {
        let mut inner = crate::sync::lock(&self.inner);
        if inner.dirty {
            self.save(&mut inner);
        }
    }

    /// Records a delivery task's end, however it ended.
    fn finished(
        &self,
        done: Result<(tokio::task::Id, Result<String, String>), tokio::task::JoinError>,
        in_flight: &mut std::collections::HashMap<tokio::task::Id, (String, Pending)>,
        now: Timestamp,
        events: &Events,
    ) {
        let (id, outcome) = match done {
            Ok((id, outcome)) => (id, outcome),
            Err(e) => (e.id(), Err(format!("the delivery ended abnormally: {e}"))),
        };
        if let Some((route, pending)) = in_flight.remove(&id) {
            self.settle(&route, &pending, outcome, now, events);
        }
    }

    /// Publishes the queues whose length changed since last told.
    fn tell_pending(&self, told: &mut BTreeMap<String, usize>, events: &Events, now: Timestamp) {
        let mut queues: BTreeMap<String, usize> =
            self.receivers.keys().map(|q| (q.clone(), 0)).collect();
        queues.extend(self.pending());
        for (route, pending) in queues {
            if told.get(&route) != Some(&pending) {
                told.insert(route.clone(), pending);
                events.emit(now, Event::OutboxPending { route, pending });
            }
        }
    }

    /// Notices not yet delivered, per task.
    pub fn pending_by_task(&self) -> BTreeMap<String, usize> {
        let inner = crate::sync::lock(&self.inner);
        let mut by_task = BTreeMap::new();
        for pending in inner.queues.values().flatten() {
            *by_task.entry(pending.notice.task.clone()).or_default() += 1;
        }
        by_task
    }

    /// The heads due now (marked in flight), and when to look again.
    fn due(&self, now: Timestamp) -> (Vec<(String, Pending)>, Option<Timestamp>) {
        let mut inner = crate::sync::lock(&self.inner);
        let reminders = inner.router.tick(now);
        if !reminders.is_empty() {
            Self::enqueue(&mut inner, reminders, now);
            inner.dirty = true;
        }
        // Durable before the first attempt of anything new.
        if inner.dirty {
            self.save(&mut inner);
        }
        let mut due = Vec::new();
        let mut next = inner.router.next_tick();
        let routes: Vec<String> = inner.queues.keys().cloned().collect();
        for route in routes {
            if inner.sending.contains(&route) {
                continue;
            }
            let Some(head) = inner.queues.get(&route).and_then(|q| q.front()).cloned() else {
                continue;
            };
            if head.next_try <= now {
                inner.sending.insert(route.clone());
                due.push((route, head));
            } else {
                next = Some(next.map_or(head.next_try, |n: Timestamp| n.min(head.next_try)));
            }
        }
        (due, next)
    }

    /// One delivery attempt of `pending` through the route's receiver.
    async fn attempt(
        &self,
        sandbox: &Sandbox,
        route: &str,
        pending: &Pending,
    ) -> Result<String, String> {
        let Some(receiver) = self.receivers.get(route) else {
            return Err(format!("route {route:?} has no receiver"));
        };
        let entry = match &receiver.plugin {
            Bound::Ready(entry) => entry,
            Bound::Broken(reason) => return Err(reason.clone()),
            Bound::Heartbeat(_) => return Err("a heartbeat is not a receiver".into()),
        };
        let notice = notice_json(&pending.notice);
        let call = receiver.call_for(&notice);
        let trigger = ActionTrigger {
            status: if pending.notice.firing {
                Status::Unhealthy
            } else {
                Status::Healthy
            },
            message: pending.notice.summary.clone(),
            attempt: pending.attempts + 1,
        };
        let (result, report) = sandbox.action(&entry.plugin, &call, trigger).await;
        for denial in &report.denials {
            tracing::warn!(event = "denied", route = %route, capability = %denial.capability, asked = %denial.asked, count = denial.count, "a receiver's call is not in the route's receiver grants");
        }
        match result {
            Ok(inner) => inner,
            Err(e) => Err(format!("receiver {e}")),
        }
    }

    /// Records an attempt's outcome: removes a delivered notice, or schedules the next try (or
    /// gives up after the route's `give_up_after`), and saves.
    fn settle(
        &self,
        route: &str,
        pending: &Pending,
        outcome: Result<String, String>,
        now: Timestamp,
        events: &Events,
    ) {
        let mut inner = crate::sync::lock(&self.inner);
        inner.sending.remove(route);
        let give_up = self
            .receivers
            .get(route)
            .map_or(Duration::ZERO, |r| r.route.give_up_after);
        let Some(queue) = inner.queues.get_mut(route) else {
            return;
        };
        if queue.front().map(|h| &h.notice.id) != Some(&pending.notice.id) {
            return;
        }
        let attempt = pending.attempts + 1;
        let notice = &pending.notice;
        let delivered = outcome.is_ok();
        let message = match &outcome {
            Ok(m) | Err(m) => crate::text::one_line(m, 500),
        };
        let dropped = !delivered && now.since(notice.at) >= give_up;
        if delivered || dropped {
            queue.pop_front();
        } else if let Some(head) = queue.front_mut() {
            head.attempts = attempt;
            head.last_error = Some(message.clone());
            head.next_try = now.plus(retry_delay(attempt));
        }
        self.save(&mut inner);
        drop(inner);
        if dropped {
            tracing::error!(event = "notice_dropped", route = %route, task = %notice.task, kind = ?notice.kind, attempts = attempt, "undeliverable for {}: dropped ({message})", hmrt_domain::duration::format(give_up));
        }
        events.emit(
            now,
            Event::NoticeSent {
                route: route.to_string(),
                task: notice.task.clone(),
                kind: notice.kind.as_str(),
                attempt,
                outcome: if delivered {
                    "delivered"
                } else if dropped {
                    "dropped"
                } else {
                    "failed"
                },
                message,
            },
        );
        self.wake.notify_one();
    }
}

/// The delay before attempt `attempt + 1`.
fn retry_delay(attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
    FIRST_RETRY.saturating_mul(factor).min(MAX_RETRY)
}

/// The notice as receivers get it: times as RFC 3339.
pub fn notice_json(notice: &Notice) -> serde_json::Value {
    serde_json::json!({
        "id": notice.id,
        "route": notice.route,
        "kind": notice.kind.as_str(),
        "firing": notice.firing,
        "task": notice.task,
        "labels": notice.labels,
        "state": notice.state,
        "reason": notice.reason,
        "summary": notice.summary,
        "started_at": rfc3339(notice.started_at),
        "at": rfc3339(notice.at),
        "ends_at": notice.ends_at.map(rfc3339),
        "held": notice.held,
        "reminder": notice.reminder,
        "escalation": notice.escalation,
    })
}

impl Subscriber for Alerts {
    fn on_event(&self, at: Timestamp, event: &Event) {
        if matches!(
            event,
            Event::TaskState { .. }
                | Event::CallDenied { .. }
                | Event::NoticeSent { .. }
                | Event::OutboxPending { .. }
        ) {
            return;
        }
        let mut inner = crate::sync::lock(&self.inner);
        let notices = inner.router.on_event(at, event);
        // A state change may open or close an incident even when it says nothing; checks only
        // move counters, which need not survive a restart.
        let changed = !notices.is_empty() || !matches!(event, Event::CheckFinished { .. });
        if !notices.is_empty() {
            Self::enqueue(&mut inner, notices, at);
        }
        inner.dirty |= changed;
        drop(inner);
        if changed {
            self.wake.notify_one();
        }
    }

    fn close(&self) -> crate::events::Durable<'_> {
        self.save_if_changed();
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_outbox_is_moved_aside_and_alerting_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"{ not json").unwrap();
        let config = hmrt_config::Config::parse(
            "[[task]]\nname = \"web\"\ncheck = \"tcp\"\n[[alert]]\nname = \"a\"\nreceiver = { action = \"webhook\" }\n",
            &dir.path().join("tasks.toml"),
            None,
        )
        .unwrap();
        let alerts = Alerts::open(&config, Vec::new(), dir.path()).expect("opens");
        assert!(alerts.pending().is_empty());
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.contains(&FILE.to_string()), "{names:?}");
        assert!(
            names.iter().any(|n| n.starts_with("alerts.json.corrupt-")),
            "{names:?}"
        );
    }

    #[test]
    fn retries_back_off_to_a_cap() {
        assert_eq!(retry_delay(1), Duration::from_secs(1));
        assert_eq!(retry_delay(2), Duration::from_secs(2));
        assert_eq!(retry_delay(5), Duration::from_secs(16));
        assert_eq!(retry_delay(40), MAX_RETRY);
    }
}
