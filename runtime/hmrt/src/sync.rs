//! The one way hmrt takes a lock.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, going on with what it holds if a thread panicked while holding it: every
/// mutex in hmrt guards data that stays usable (a map, counters, the engine), and stopping
/// the daemon would matter more than a half-finished update.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
