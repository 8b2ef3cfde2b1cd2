//! Blocking host reads (`/proc`, `statvfs`, files) run on tokio's blocking pool. A call's
//! deadline ends the guest's wait, not the syscall: a read stuck in the kernel (a hung NFS
//! mount) keeps its thread until the kernel lets go. Two bounds keep such reads from piling up
//! until they starve every other blocking job of the daemon: no new read of a key (a mount
//! point, a path) while one of it has been running for more than [`STUCK`], and at most
//! [`IN_FLIGHT`] in all. Past either, a call fails at once and says why. (Reads of one key at
//! the same moment are normal, from tasks that share a disk or a log, and go ahead.)

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::sandbox::bindings::types::HostError;

/// Blocking reads in flight at most, across all calls.
pub const IN_FLIGHT: usize = 64;

/// How long a read may run before new reads of its key are refused: far beyond any healthy
/// `statvfs` or file read, well within a check's timeout.
pub const STUCK: Duration = Duration::from_secs(1);

static SLOTS: Semaphore = Semaphore::const_new(IN_FLIGHT);
/// When each read in flight started, per key.
static KEYS: Mutex<BTreeMap<String, Vec<Instant>>> = Mutex::new(BTreeMap::new());

/// A read's place under its key while it runs; released when the read returns, not when the
/// call ends.
struct KeyGuard {
    key: String,
    started: Instant,
}

impl KeyGuard {
    fn take(key: String) -> Result<KeyGuard, String> {
        let mut keys = KEYS.lock().unwrap_or_else(|e| e.into_inner());
        let running = keys.entry(key.clone()).or_default();
        if running.iter().any(|started| started.elapsed() > STUCK) {
            return Err(key);
        }
        let started = Instant::now();
        running.push(started);
        Ok(KeyGuard { key, started })
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        let mut keys = KEYS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(running) = keys.get_mut(&self.key) {
            if let Some(i) = running.iter().position(|s| *s == self.started) {
                running.swap_remove(i);
            }
            if running.is_empty() {
                keys.remove(&self.key);
            }
        }
    }
}

/// Runs `read` on the blocking pool, waiting at most `timeout`. `key` names what it reads (a
/// mount point, a path): a read of it stuck for more than [`STUCK`], or [`IN_FLIGHT`] reads in
/// all, fail the call at once.
pub(crate) async fn run<T: Send + 'static, E: Send + 'static>(
    timeout: Duration,
    key: Option<String>,
    read: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<Result<T, E>, HostError> {
    let permit = SLOTS.try_acquire().map_err(|_| {
        HostError::Failed(format!(
            "{IN_FLIGHT} host reads are still waiting on the kernel (a hung mount?); not starting another"
        ))
    })?;
    let key = key.map(KeyGuard::take).transpose().map_err(|key| {
        HostError::Failed(format!(
            "a read of {key} has not returned for over {}s (a hung mount?)",
            STUCK.as_secs()
        ))
    })?;
    let work = tokio::task::spawn_blocking(move || {
        let _held = (permit, key);
        read()
    });
    match tokio::time::timeout(timeout, work).await {
        Err(_) => Err(HostError::Timeout),
        Ok(Err(join)) => Err(HostError::Failed(format!("the read failed: {join}"))),
        Ok(Ok(result)) => Ok(result),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stuck_read_refuses_the_next_of_its_key_until_it_returns() {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let key = || Some("disk:/test-stuck".to_string());
        let stuck = run(Duration::from_millis(50), key(), move || {
            wait.recv().ok();
            Ok::<_, ()>(1)
        })
        .await;
        assert!(matches!(stuck, Err(HostError::Timeout)));
        // A second read at once is normal (two tasks, one disk) and goes ahead.
        let beside = run(Duration::from_secs(5), key(), || Ok::<_, ()>(2)).await;
        assert!(matches!(beside, Ok(Ok(2))), "{beside:?}");
        // Once the first has hung past STUCK, new reads of its key are refused.
        tokio::time::sleep(STUCK + Duration::from_millis(100)).await;
        let refused = run(Duration::from_millis(50), key(), || Ok::<_, ()>(2)).await;
        assert!(
            matches!(&refused, Err(HostError::Failed(m)) if m.contains("has not returned")),
            "{refused:?}"
        );
        // Another key is not held up.
        let other = run(Duration::from_secs(5), Some("disk:/other".into()), || {
            Ok::<_, ()>(3)
        })
        .await;
        assert!(matches!(other, Ok(Ok(3))));
        release.send(()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match run(Duration::from_secs(5), key(), || Ok::<_, ()>(4)).await {
                Ok(Ok(4)) => break,
                _ if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(5)).await
                }
                other => panic!("the key was never released: {other:?}"),
            }
        }
    }
}
