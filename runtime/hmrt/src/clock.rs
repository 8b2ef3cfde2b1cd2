//! The one clock the daemon reads: wall time for the policy and event stamps, and the sleeps of
//! the scheduler. [`SystemClock`] in production; [`ManualClock`] in tests, where a test moves
//! time itself, so backoff gaps, start periods and quiet windows run in milliseconds and always
//! the same way.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use hmrt_policy::Timestamp;
use tokio::sync::watch;

/// A future the scheduler awaits.
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Where the daemon reads the time and waits for it.
pub trait Clock: Send + Sync + 'static {
    /// Now, as the policy counts time (unix milliseconds).
    fn now(&self) -> Timestamp;

    /// Resolves once [`Clock::now`] has reached `at` (at once if it has).
    fn sleep_until(&self, at: Timestamp) -> Sleep<'_>;
}

/// Wall time, and tokio's timers for the waits.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let millis = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Timestamp(u64::try_from(millis).unwrap_or(u64::MAX))
    }

    fn sleep_until(&self, at: Timestamp) -> Sleep<'_> {
        // One monotonic sleep for the distance now: if the wall clock is set meanwhile, the
        // caller finds out when it looks at the time again (the scheduler then starts its
        // rhythm over), rather than sleeping on for however far the clock went back.
        let left = at.since(self.now());
        Box::pin(tokio::time::sleep(left))
    }
}

/// A clock that moves only when told: [`ManualClock::advance`] and [`ManualClock::set`]. It
/// knows who sleeps until when, so a test can step from one scheduled instant to the next
/// ([`ManualClock::run_until`]) once every task loop is idle.
pub struct ManualClock {
    now: watch::Sender<Timestamp>,
    sleepers: Mutex<BTreeMap<u64, Timestamp>>,
    next_id: AtomicU64,
}

impl ManualClock {
    /// A clock that reads `start`.
    pub fn new(start: Timestamp) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now: watch::Sender::new(start),
            sleepers: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
        })
    }

    fn sleepers(&self) -> MutexGuard<'_, BTreeMap<u64, Timestamp>> {
        crate::sync::lock(&self.sleepers)
    }

    /// Moves the clock to `at` (never back) and wakes whoever sleeps until then.
    pub fn set(&self, at: Timestamp) {
        self.now.send_if_modified(|now| {
            let later = at > *now;
            if later {
                *now = at;
            }
            later
        });
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.set(self.now().plus(d));
    }

    /// How many futures sleep on the clock now, and the earliest instant one waits for.
    pub fn sleeping(&self) -> (usize, Option<Timestamp>) {
        let sleepers = self.sleepers();
        (sleepers.len(), sleepers.values().min().copied())
    }

    /// Waits (in real time, up to `patience`) until no sleeper is due and `count` futures sleep
    /// on the clock: with one sleeper per task loop, that is "every task has done all it can at
    /// this instant".
    /// Returns false if that did not happen in time.
    pub async fn settle(&self, count: usize, patience: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let now = self.now();
            let due = self.sleepers().values().any(|t| *t <= now);
            if !due && self.sleeping().0 >= count {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Steps the clock from one scheduled instant to the next until it reads `until`, letting
    /// `loops` sleepers (the daemon's task loops) settle at each step; stops early, returning
    /// the clock's time, once `stop` says so after a step. Panics if the loops do not settle
    /// within `patience` of real time at some step (a test helper: that is a hung daemon).
    pub async fn run_until(
        &self,
        until: Timestamp,
        loops: usize,
        patience: Duration,
        mut stop: impl FnMut() -> bool,
    ) -> Timestamp {
        loop {
            self.settle_after_wake(loops, patience).await;
            if stop() {
                return self.now();
            }
            match self.sleeping().1 {
                Some(next) if next <= until => self.set(next),
                _ => {
                    self.set(until);
                    self.settle_after_wake(loops, patience).await;
                    return self.now();
                }
            }
        }
    }

    /// Waits until every sleeper that is due has woken, then until `loops` sleep again.
    async fn settle_after_wake(&self, loops: usize, patience: Duration) {
        assert!(
            self.settle(loops, patience).await,
            "the daemon's {loops} task loops did not all go to sleep within {patience:?} at {:?} (sleeping: {})",
            self.now(),
            self.sleeping().0
        );
    }
}

/// Removes a sleeper's registration when its sleep ends or is dropped (a task loop stopping).
struct Registered<'a> {
    clock: &'a ManualClock,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.clock.sleepers().remove(&self.id);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.borrow()
    }

    fn sleep_until(&self, at: Timestamp) -> Sleep<'_> {
        Box::pin(async move {
            let mut now = self.now.subscribe();
            if *now.borrow_and_update() >= at {
                return;
            }
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            self.sleepers().insert(id, at);
            let _registered = Registered { clock: self, id };
            while *now.borrow_and_update() < at {
                if now.changed().await.is_err() {
                    return;
                }
            }
        })
    }
}

impl<C: Clock> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }

    fn sleep_until(&self, at: Timestamp) -> Sleep<'_> {
        (**self).sleep_until(at)
    }
}

/// `at` (unix milliseconds) as RFC 3339 in UTC with milliseconds: how every output writes a time.
pub fn rfc3339(at: Timestamp) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_millis(at.0);
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_sleepers_when_it_reaches_them() {
        let clock = ManualClock::new(Timestamp(1_000));
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move {
                clock.sleep_until(Timestamp(5_000)).await;
                clock.now()
            })
        };
        assert!(clock.settle(1, Duration::from_secs(5)).await);
        assert_eq!(clock.sleeping(), (1, Some(Timestamp(5_000))));
        clock.advance(Duration::from_millis(3_999));
        assert!(clock.settle(1, Duration::from_secs(5)).await, "not yet due");
        clock.set(Timestamp(5_000));
        assert_eq!(sleeper.await.ok(), Some(Timestamp(5_000)));
        assert_eq!(clock.sleeping(), (0, None));
        clock.set(Timestamp(10));
        assert_eq!(clock.now(), Timestamp(5_000), "a clock never goes back");
    }
}
