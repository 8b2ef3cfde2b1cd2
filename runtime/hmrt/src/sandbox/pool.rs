//! Guest calls run on a runtime of their own, away from the scheduler, the task loops and the
//! API. A spinning guest yields at every epoch tick, but on a shared executor each yield still
//! puts it back in line beside the timers and task loops, so ten spinning guests delayed other
//! tasks' checks by half a second. Here guests queue behind guests only; the threads that keep
//! time and decide what to run stay free, and the kernel shares the cores between the two.

use std::future::Future;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::JoinHandle;

/// A multi-thread runtime with one worker per core, for guest calls only.
pub(crate) struct GuestPool {
    runtime: Option<Runtime>,
    handle: Handle,
}

impl GuestPool {
    /// Starts the pool's workers (named `hmrt-guest`).
    pub(crate) fn start() -> std::io::Result<GuestPool> {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let runtime = Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("hmrt-guest")
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        Ok(GuestPool {
            runtime: Some(runtime),
            handle,
        })
    }

    /// Runs `call` on the pool.
    pub(crate) fn spawn<F>(&self, call: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(call)
    }
}

impl Drop for GuestPool {
    fn drop(&mut self) {
        // A runtime may not be dropped from inside another one (the sandbox is dropped from
        // async code); calls still running are abandoned, as a timeout abandons them.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
