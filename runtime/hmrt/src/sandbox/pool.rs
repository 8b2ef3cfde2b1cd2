//! Guest calls run on a runtime of their own, away from the scheduler, the task loops and the
//! API. A spinning guest yields at every epoch tick, but on a shared executor each yield still
//! puts it back in line beside the timers and task loops, so ten spinning guests delayed other
//! tasks' checks by half a second. Here guests queue behind guests only; the threads that keep
//! time and decide what to run stay free, and the kernel shares the cores between the two.
//!
//! Within the pool, a guest that keeps the CPU past a few epoch ticks without waiting on the
//! host is *heavy*: heavy guests take turns, one tick each, on all cores but one (the
//! [`CpuGate`]), so a quick check never waits behind a queue of spinning guests for a worker.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use wasmtime::UpdateDeadline;

/// Epoch ticks a call may run before it counts as heavy and queues at the [`CpuGate`].
const LIGHT_TICKS: u32 = 2;

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// A multi-thread runtime with one worker per core, for guest calls only.
pub(crate) struct GuestPool {
    runtime: Option<Runtime>,
    handle: Handle,
}

impl GuestPool {
    /// Starts the pool's workers (named `hmrt-guest`).
    pub(crate) fn start() -> std::io::Result<GuestPool> {
        let workers = cores();
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

/// The cores heavy guests share: all but one, so quick calls always find a free worker.
#[derive(Clone)]
pub(crate) struct CpuGate {
    permits: Arc<Semaphore>,
}

impl CpuGate {
    pub(crate) fn new() -> CpuGate {
        CpuGate {
            permits: Arc::new(Semaphore::new(cores().saturating_sub(1).max(1))),
        }
    }

    /// The turn-taking of one call.
    pub(crate) fn turns(&self) -> Turns {
        Turns {
            permits: self.permits.clone(),
            held: Arc::new(Mutex::new(None)),
            ticks: 0,
        }
    }
}

/// One call's place at the [`CpuGate`]: what its epoch callback does at each tick. A permit
/// held is given back when the call ends (the Store, and this with it, is dropped).
pub(crate) struct Turns {
    permits: Arc<Semaphore>,
    held: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
    ticks: u32,
}

impl Turns {
    /// At each tick: yield, and once the call is heavy, give the core back and queue (fairly,
    /// first come first served) for the next turn.
    pub(crate) fn tick(&mut self) -> UpdateDeadline {
        self.ticks = self.ticks.saturating_add(1);
        drop(crate::sync::lock(&self.held).take());
        if self.ticks <= LIGHT_TICKS {
            return UpdateDeadline::Yield(1);
        }
        let permits = self.permits.clone();
        let held = self.held.clone();
        UpdateDeadline::YieldCustom(
            1,
            Box::pin(async move {
                // A closed semaphore never happens (it lives as long as the sandbox); without
                // a permit the guest simply runs on.
                if let Ok(permit) = permits.acquire_owned().await {
                    *crate::sync::lock(&held) = Some(permit);
                }
            }),
        )
    }
}
