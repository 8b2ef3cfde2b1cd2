//! The wasmtime engine every plugin runs in: its configuration (what wasm features a guest
//! gets, the pooling allocator's bounds) and the thread that advances its epoch, the clock of
//! CPU deadlines and yields.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use wasmtime::Engine;

use super::{EPOCH_TICK, SandboxOptions};

pub(super) fn engine_config(options: &SandboxOptions) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(512 * 1024)
        .async_stack_size(2 << 20)
        .async_stack_zeroing(true)
        .concurrency_support(false)
        .wasm_threads(false)
        .wasm_gc(false)
        .wasm_exceptions(false)
        .wasm_stack_switching(false)
        .wasm_memory64(false);
    // Calls are bounded by `max_concurrency` and kept instances by `warm_instances`, so the
    // pool needs room for both (stacks too: a Store keeps the fiber stack of its last call for
    // the next one); the per-component maximums keep one component from taking the whole pool.
    let calls = options.max_concurrency.max(1) + 2;
    let slots = calls.saturating_add(options.warm_instances);
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(32))
        .total_memories(slots.saturating_mul(4))
        .total_tables(slots.saturating_mul(16))
        .total_stacks(slots)
        .max_core_instances_per_component(32)
        .max_memories_per_component(4)
        .max_tables_per_component(16)
        .max_memory_size(options.max_memory_bytes);
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    config
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a thread of its own while any call is
/// running, until the engine is gone. With no call running it sleeps: an idle daemon would
/// otherwise wake 200 times a second for nothing.
pub(super) struct EpochTicker {
    stop: Arc<AtomicBool>,
    running: Arc<AtomicUsize>,
    thread: std::thread::Thread,
}

/// A call in progress: the epoch advances until every one is dropped.
pub(super) struct Running {
    running: Arc<AtomicUsize>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl EpochTicker {
    pub(super) fn start(engine: &Engine) -> std::io::Result<EpochTicker> {
        let stop = Arc::new(AtomicBool::new(false));
        let running = Arc::new(AtomicUsize::new(0));
        let weak = engine.weak();
        let (flag, calls) = (stop.clone(), running.clone());
        let handle = std::thread::Builder::new()
            .name("hmrt-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    if calls.load(Ordering::Acquire) == 0 {
                        // Woken by the next call (`running`); the timeout only bounds how long
                        // a stop or a dropped engine goes unnoticed.
                        std::thread::park_timeout(Duration::from_secs(1));
                        continue;
                    }
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            })?;
        Ok(EpochTicker {
            stop,
            running,
            thread: handle.thread().clone(),
        })
    }

    /// Marks a call as running until the value is dropped.
    pub(super) fn running(&self) -> Running {
        if self.running.fetch_add(1, Ordering::AcqRel) == 0 {
            // An unpark before the ticker parks is kept, so this wake-up cannot be lost.
            self.thread.unpark();
        }
        Running {
            running: self.running.clone(),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.unpark();
    }
}
