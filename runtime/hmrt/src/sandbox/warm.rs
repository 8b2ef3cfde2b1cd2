//! Warm instances: a task checked often keeps its Store and instance between its own calls,
//! so a steady-state check is one call into an instantiated guest instead of a new Store, a
//! new instance and a memory reset each time.
//!
//! Why this keeps tasks apart: a [`WarmSlot`] belongs to one task's check call (it is made in
//! `tasks::bind`, inside that task's [`super::TaskCall`]) and is never lent to another; the
//! Store in it was built for that task's name, grants, scratch store and limits, and is
//! checked against them again before every reuse. What a guest leaves in its memory is seen
//! only by the next call of the same task with the same plugin, config and grants.
//!
//! A warm instance is thrown away, and the next call instantiates afresh, after anything but
//! a clean return: a trap (which covers a guest that corrupted its own memory and crashed on
//! it), a timeout, a memory-limit hit or a sandbox failure; and after [`MAX_CALLS`] calls or
//! [`MAX_IDLE`] unused, so whatever a guest accumulates stays bounded. How many are kept at
//! once is bounded by the sandbox's warm budget (`[runtime] warm_instances`), since each one
//! holds a slot of the instance pool and its touched memory.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;
use wasmtime::Store;

use super::load::Instance;
use super::{HostState, Plugin, TaskCall};

/// Calls one warm instance serves before a fresh one replaces it.
pub(crate) const MAX_CALLS: u32 = 10_000;
/// A warm instance unused this long is dropped instead of reused.
pub(crate) const MAX_IDLE: Duration = Duration::from_secs(60);
/// Tasks checked at least this often keep a warm instance; a slower task gets a fresh instance
/// per call, which costs nothing at its pace and holds no memory between calls.
pub const REUSE_INTERVAL: Duration = Duration::from_secs(10);

/// Where one task's check keeps its warm instance between calls.
#[derive(Default)]
pub struct WarmSlot {
    kept: Mutex<Option<Warm>>,
}

impl std::fmt::Debug for WarmSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WarmSlot")
    }
}

impl WarmSlot {
    /// An empty slot.
    pub fn new() -> Arc<WarmSlot> {
        Arc::new(WarmSlot::default())
    }

    /// The kept instance, if it may serve this call of `plugin` for `task`.
    pub(crate) fn take(&self, plugin: &Plugin, task: &TaskCall) -> Option<Warm> {
        let warm = crate::sync::lock(&self.kept).take()?;
        warm.fits(plugin, task).then_some(warm)
    }

    /// Keeps `warm` for the next call (an instance already kept, from an overlapping call,
    /// stays; this one is dropped).
    pub(crate) fn keep(&self, warm: Warm) {
        let mut kept = crate::sync::lock(&self.kept);
        if kept.is_none() {
            *kept = Some(warm);
        }
    }
}

/// One kept Store and the instance in it.
pub(crate) struct Warm {
    pub(crate) store: Store<HostState>,
    pub(crate) instance: Instance,
    pub(crate) ticket: Ticket,
}

/// What a warm instance was made for, and its share of the warm budget.
pub(crate) struct Ticket {
    /// Held so the plugin's identity cannot be reused by another while this is kept.
    plugin: Plugin,
    config: String,
    memory_bytes: usize,
    calls: u32,
    last_used: Instant,
    _budget: OwnedSemaphorePermit,
}

impl Ticket {
    /// A ticket for an instance about to be made for `plugin` and `task`.
    pub(crate) fn new(plugin: &Plugin, task: &TaskCall, budget: OwnedSemaphorePermit) -> Ticket {
        Ticket {
            plugin: plugin.clone(),
            config: task.config.clone(),
            memory_bytes: task.limits.memory_bytes,
            calls: 0,
            last_used: Instant::now(),
            _budget: budget,
        }
    }

    /// Counts a clean call; false once the instance has served its share.
    pub(crate) fn served(&mut self) -> bool {
        self.calls = self.calls.saturating_add(1);
        self.last_used = Instant::now();
        self.calls < MAX_CALLS
    }
}

impl Warm {
    /// Whether this instance was made for exactly this plugin and task: the same compiled
    /// plugin, task name, config, grants, scratch store and memory limit.
    fn fits(&self, plugin: &Plugin, task: &TaskCall) -> bool {
        let call = &self.store.data().call;
        let ticket = &self.ticket;
        ticket.plugin.same(plugin)
            && call.task == task.name
            && Arc::ptr_eq(&call.grants, &task.grants)
            && call.scratch == task.scratch
            && ticket.config == task.config
            && ticket.memory_bytes == task.limits.memory_bytes
            && ticket.last_used.elapsed() < MAX_IDLE
    }
}
