//! A supervised program's exit, noticed as it happens: the daemon holds a pidfd for the running
//! process of each program its tasks name (the pid from `supervisor.getProcessInfo`), and when
//! it becomes readable (the process ended) the loops of those tasks check at once, then again
//! every [`CONFIRM_SPACING`] while the check fails, up to the task's `failure_threshold`
//! checks. So a crash is repaired within milliseconds, still only on the evidence of the task's
//! own checks counted by the same thresholds: an exit is a hint, never a result.
//!
//! Why not supervisord's event listener protocol: supervisord 4.3 reaps children and sends
//! events from a loop that polls once a second (Python retries the poll after SIGCHLD), so its
//! PROCESS_STATE_EXITED arrived 1 to 2 s after a kill here. A pidfd costs nothing while the
//! process runs and wakes the daemon within a millisecond of its end.
//!
//! While a program has no running process (stopped, starting, restarting) its status is asked
//! every [`RECHECK`]; a task's loop ignores hints while the task is not up (its own restart
//! ends the old process too). A pid this host cannot see (supervisord in another pid namespace) ends
//! the watch with a warning, and the task is checked on its schedule only.

use std::sync::Arc;
use std::time::Duration;

use hmrt_policy::{Status, Timestamp};
use hmrt_supervisor::{Client, ProcessState};
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

/// Between two checks of a burst: long enough for the program's port to be seen closed,
/// short enough that a threshold of 3 still repairs within 100 ms.
pub(super) const CONFIRM_SPACING: Duration = Duration::from_millis(10);
/// At most one burst per task in this span: a program crash-looping faster than this is
/// checked on its schedule in between (and the policy's backoff holds its restarts anyway).
pub(super) const BURST_GAP: Duration = Duration::from_secs(1);
/// How often a program without a running process is asked for its status.
const RECHECK: Duration = Duration::from_millis(250);

/// Watches `program`'s processes one after another and wakes `loops` when one ends, until the
/// daemon stops (the task is aborted) or the program's pids cannot be seen from here.
pub(super) async fn watch(client: Client, program: String, loops: Vec<Arc<Notify>>) {
    // A pid supervisord says runs but this host could not open: seen twice, the pid is not
    // ours to see.
    let mut unseen: Option<u32> = None;
    loop {
        let pid = match client.status(&program).await {
            Ok(info) if info.state == ProcessState::Running => info.pid.filter(|p| *p > 0),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(program = %program, "exit watch: {e}");
                None
            }
        };
        let Some(pid) = pid else {
            tokio::time::sleep(RECHECK).await;
            continue;
        };
        match ended(pid).await {
            Ok(()) => unseen = None,
            Err(e) if gone(&e) && unseen != Some(pid) => {
                // Gone between the status and the open, most likely: that is an exit too.
                unseen = Some(pid);
            }
            Err(e) => {
                tracing::warn!(
                    program = %program,
                    "cannot watch pid {pid} ({e}); is supervisord in another pid namespace? \
                     its exits are noticed at the next check"
                );
                return;
            }
        }
        tracing::debug!(program = %program, pid, "the process ended: checking its tasks now");
        loops.iter().for_each(|l| l.notify_one());
        tokio::time::sleep(RECHECK).await;
    }
}

/// Whether `pidfd_open` failed because no process has that pid (ESRCH).
fn gone(error: &std::io::Error) -> bool {
    error.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error())
}

/// Resolves when process `pid` has ended.
async fn ended(pid: u32) -> std::io::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| std::io::Error::other("not a pid"))?;
    let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::NONBLOCK)?;
    // A pidfd is readable once the process has ended.
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open and is the same descriptor for
    // as long as the AsyncFd lives, as `register_with_interest` requires.
    let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(std::io::Error::from)?;
    let _ready = fd.readable().await?;
    Ok(())
}

/// One task's bursts of early checks.
#[derive(Debug, Default)]
pub(super) struct Confirm {
    /// Checks left in the current burst.
    left: u32,
    /// When the last burst began.
    began: Option<Timestamp>,
}

impl Confirm {
    /// A hint arrived at `now`: the instant of the first early check, unless a burst began
    /// within [`BURST_GAP`].
    pub(super) fn hint(&mut self, now: Timestamp, threshold: u32) -> Option<Timestamp> {
        if self.began.is_some_and(|b| now.since(b) < BURST_GAP) {
            return None;
        }
        self.began = Some(now);
        self.left = threshold.max(1);
        Some(now)
    }

    /// A check of the burst ended at `now` with `status`: the instant of the next one, if the
    /// burst goes on (the check failed and the threshold has not been reached).
    pub(super) fn checked(&mut self, status: Status, now: Timestamp) -> Option<Timestamp> {
        self.left = self.left.saturating_sub(1);
        if status == Status::Healthy {
            self.left = 0;
        }
        (self.left > 0).then(|| now.plus(CONFIRM_SPACING))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_checks_up_to_the_threshold_while_failing_and_once_per_gap() {
        let mut confirm = Confirm::default();
        let t = Timestamp(10_000);
        assert_eq!(confirm.hint(t, 3), Some(t));
        let next = confirm.checked(Status::Unhealthy, t.plus(Duration::from_millis(2)));
        assert_eq!(next, Some(Timestamp(10_012)));
        assert_eq!(
            confirm.checked(Status::Unhealthy, Timestamp(10_013)),
            Some(Timestamp(10_023))
        );
        assert_eq!(confirm.checked(Status::Unhealthy, Timestamp(10_024)), None);
        // A second hint inside the gap starts nothing; after it, a new burst.
        assert_eq!(confirm.hint(Timestamp(10_500), 3), None);
        assert_eq!(confirm.hint(Timestamp(11_000), 3), Some(Timestamp(11_000)));
        // A passing check ends the burst.
        assert_eq!(confirm.checked(Status::Healthy, Timestamp(11_001)), None);
        assert_eq!(confirm.checked(Status::Unhealthy, Timestamp(11_002)), None);
    }

    #[tokio::test]
    async fn a_pidfd_resolves_when_its_process_ends() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        let watched = tokio::spawn(ended(pid));
        tokio::task::yield_now().await;
        assert!(!watched.is_finished(), "resolved while the process runs");
        child.kill().expect("kill");
        child.wait().expect("reap");
        tokio::time::timeout(Duration::from_secs(10), watched)
            .await
            .expect("resolved after the kill")
            .expect("join")
            .expect("watched");
        // A pid that is not running cannot be watched: that is said (as an exit the watch
        // tells from other errors), not waited on forever.
        let error = ended(pid).await.expect_err("a reaped pid");
        assert!(gone(&error), "{error:?}");
    }
}
