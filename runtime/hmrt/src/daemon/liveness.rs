//! Whether the scheduler is alive: each task loop says by when it will next make progress (the
//! end of its sleep, or the bound of the run it is in), and `/livez` fails once any of them is
//! overdue. A stuck loop, a starved runtime or a deadlock shows up as a task past its bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hmrt_policy::Timestamp;

/// How late past its bound a loop may be before it counts as stalled: room for a busy
/// machine, far below anything a person would call alive.
pub const GRACE: Duration = Duration::from_secs(10);

/// Each task loop's progress bound.
#[derive(Debug, Default)]
pub struct Liveness {
    bounds: HashMap<String, AtomicU64>,
}

impl Liveness {
    pub(super) fn new<'a>(tasks: impl Iterator<Item = &'a str>) -> Liveness {
        Liveness {
            bounds: tasks
                .map(|t| (t.to_string(), AtomicU64::new(u64::MAX)))
                .collect(),
        }
    }

    /// `task`'s loop will make progress by `at` (plus [`GRACE`]).
    pub(super) fn expect_by(&self, task: &str, at: Timestamp) {
        if let Some(bound) = self.bounds.get(task) {
            bound.store(at.0, Ordering::Relaxed);
        }
    }

    /// The tasks whose loops are past their bound at `now`, in name order.
    pub fn stalled(&self, now: Timestamp) -> Vec<String> {
        let mut late: Vec<String> = self
            .bounds
            .iter()
            .filter(|(_, bound)| Timestamp(bound.load(Ordering::Relaxed)).plus(GRACE) < now)
            .map(|(task, _)| task.clone())
            .collect();
        late.sort();
        late
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_past_its_bound_is_stalled() {
        let live = Liveness::new(["a", "b"].into_iter());
        assert!(
            live.stalled(Timestamp(1_000_000)).is_empty(),
            "no bound yet"
        );
        live.expect_by("a", Timestamp(1_000));
        live.expect_by("b", Timestamp(100_000));
        assert!(live.stalled(Timestamp(1_000).plus(GRACE)).is_empty());
        assert_eq!(live.stalled(Timestamp(1_001).plus(GRACE)), ["a"]);
    }
}
