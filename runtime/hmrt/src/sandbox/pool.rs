//! A guest call that keeps the CPU runs on a runtime of its own, away from the scheduler, the
//! task loops and the API. A spinning guest yields at every epoch tick, but on a shared
//! executor each yield still puts it back in line beside the timers and task loops, so ten
//! spinning guests delayed other tasks' checks by half a second. On the pool guests queue
//! behind guests only; the threads that keep time and decide what to run stay free, and the
//! kernel shares the cores between the two.
//!
//! Most calls are light: microseconds of guest code around a wait on the host. Sending each
//! to another runtime and back costs two thread wake-ups, several times the call itself, so
//! a call starts on its caller's task ([`GuestPool::run`]) and moves to the pool at its first
//! epoch tick of guest CPU (at most [`super::EPOCH_TICK`]). A panic inside wasmtime still ends
//! only that call, either way.
//!
//! Within the pool, a guest that keeps the CPU past a few epoch ticks without waiting on the
//! host is *heavy*: heavy guests take turns, one tick each, on all cores but one (the
//! [`CpuGate`]), so a quick check never waits behind a queue of spinning guests for a worker.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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

    /// Runs `call` on the caller's task until `offload` is set (by the call's epoch callback,
    /// see [`Turns::tick`]), then on the pool. Err: the call panicked (a bug in hmrt or
    /// wasmtime), as a message.
    pub(crate) async fn run<F>(&self, call: F, offload: &AtomicBool) -> Result<F::Output, String>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // Boxed, so the half-run call can move to the pool: its address stays the same.
        let mut call = Box::pin(call);
        let inline = std::future::poll_fn(|cx| {
            match std::panic::catch_unwind(AssertUnwindSafe(|| call.as_mut().poll(cx))) {
                Err(panic) => Poll::Ready(Some(Err(panic_message(&panic)))),
                Ok(Poll::Ready(output)) => Poll::Ready(Some(Ok(output))),
                Ok(Poll::Pending) if offload.load(Ordering::Relaxed) => Poll::Ready(None),
                Ok(Poll::Pending) => Poll::Pending,
            }
        })
        .await;
        match inline {
            Some(done) => done,
            None => self.handle.spawn(call).await.map_err(|e| e.to_string()),
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic");
    format!("panicked: {text}")
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
            offload: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// One call's place at the [`CpuGate`]: what its epoch callback does at each tick. A permit
/// held is given back when the call ends ([`Turns::release`], or the Store is dropped).
pub(crate) struct Turns {
    permits: Arc<Semaphore>,
    held: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
    ticks: u32,
    /// Set at the call's first tick: it leaves its caller's task for the pool.
    offload: Arc<AtomicBool>,
}

impl Turns {
    /// Ends the call's turn: gives back a core it holds, and the next call starts light, on
    /// its caller's task.
    pub(crate) fn release(&mut self) {
        self.ticks = 0;
        self.offload.store(false, Ordering::Relaxed);
        drop(crate::sync::lock(&self.held).take());
    }

    /// The flag [`GuestPool::run`] watches.
    pub(crate) fn offload(&self) -> Arc<AtomicBool> {
        self.offload.clone()
    }

    /// At each tick: yield, and once the call is heavy, give the core back and queue (fairly,
    /// first come first served) for the next turn.
    pub(crate) fn tick(&mut self) -> UpdateDeadline {
        self.ticks = self.ticks.saturating_add(1);
        self.offload.store(true, Ordering::Relaxed);
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
