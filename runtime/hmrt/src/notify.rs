//! systemd's notify protocol, for `Type=notify` units: `READY=1` once every task has been
//! checked once (so `systemctl start` returns when hmrt knows the state of what it watches),
//! `WATCHDOG=1` at half of `WATCHDOG_USEC` while no task loop is stalled (so systemd's watchdog
//! restarts a hmrt whose scheduler hangs, not just one whose process died), and `STOPPING=1`
//! when it shuts down. Without `NOTIFY_SOCKET` nothing is sent.
//!
//! Readiness is an output like any other: a subscriber of the event stream.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmrt_policy::Timestamp;
use sd_notify::NotifyState;

use crate::clock::Clock;
use crate::daemon::Liveness;
use crate::events::{Event, Subscriber};

/// At the latest this long after start, `READY=1` is sent even if some task has not finished
/// its first check (a slow first round must not make systemd give up on hmrt).
pub const READY_AT_THE_LATEST: Duration = Duration::from_secs(30);

/// Whether hmrt runs under a service manager that listens.
pub fn wanted() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

fn send(state: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(event = "notify", "cannot notify the service manager: {e}");
    }
}

/// Sends `READY=1` once each of the tasks it waits for has finished a check.
pub struct Readiness {
    pending: Mutex<BTreeSet<String>>,
    sent: AtomicBool,
}

impl Readiness {
    /// Waits for `tasks` (those that check on a schedule: a heartbeat waits for its pings).
    pub fn new(tasks: impl IntoIterator<Item = String>) -> Arc<Readiness> {
        let readiness = Arc::new(Readiness {
            pending: Mutex::new(tasks.into_iter().collect()),
            sent: AtomicBool::new(false),
        });
        if crate::sync::lock(&readiness.pending).is_empty() {
            readiness.ready("no task to check first");
        }
        readiness
    }

    /// Sends `READY=1` now, if not yet sent.
    pub fn ready(&self, status: &str) {
        if !self.sent.swap(true, Ordering::SeqCst) {
            send(&[NotifyState::Ready, NotifyState::Status(status)]);
            tracing::info!(
                event = "notify",
                "told the service manager: ready ({status})"
            );
        }
    }

    /// After [`READY_AT_THE_LATEST`], ready whatever the first round says.
    pub async fn at_the_latest(self: Arc<Self>) {
        tokio::time::sleep(READY_AT_THE_LATEST).await;
        let waiting: Vec<String> = crate::sync::lock(&self.pending).iter().cloned().collect();
        self.ready(&format!("running; not checked yet: {}", waiting.join(", ")));
    }
}

impl Subscriber for Readiness {
    fn on_event(&self, _at: Timestamp, event: &Event) {
        if self.sent.load(Ordering::Relaxed) {
            return;
        }
        if let Event::CheckFinished { task, .. } = event {
            let mut pending = crate::sync::lock(&self.pending);
            if pending.remove(task) && pending.is_empty() {
                drop(pending);
                self.ready("running; every task checked once");
            }
        }
    }
}

/// Pings systemd's watchdog at half its period while no task loop is stalled, until `stop`
/// turns true. Does nothing without `WATCHDOG_USEC` (or when it names another process).
pub async fn watchdog(
    liveness: Arc<Liveness>,
    clock: Arc<dyn Clock>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let half = (period / 2).max(Duration::from_millis(10));
    let mut warned = false;
    loop {
        let stalled = liveness.stalled(clock.now());
        if stalled.is_empty() {
            send(&[NotifyState::Watchdog]);
            warned = false;
        } else if !warned {
            // No ping: systemd restarts hmrt when the period runs out, as it should.
            tracing::error!(
                event = "notify",
                "task loops stalled ({}): the watchdog is no longer pinged",
                stalled.join(", ")
            );
            warned = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(half) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// Says hmrt is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}
