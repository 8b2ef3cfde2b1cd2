//! The data each Store holds: WASI's empty context, the call's limits, and what the task grants.

use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::capabilities::CallContext;

/// The `T` of every `Store<T>`: one per plugin call, dropped with it.
pub struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) call: CallContext,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Wraps wasmtime's `StoreLimits` to remember that a guest hit its memory limit, so the task's
/// reason can say "memory limit" instead of the guest's generic abort.
pub(crate) struct MemoryLimiter {
    inner: wasmtime::StoreLimits,
    pub(crate) memory_limit_hit: bool,
}

impl MemoryLimiter {
    pub(crate) fn new(memory_bytes: usize) -> Self {
        let inner = wasmtime::StoreLimitsBuilder::new()
            .memory_size(memory_bytes)
            // A component has a handful of core instances, tables and memories; bounding their
            // number keeps a hostile component from multiplying the per-memory limit.
            .instances(64)
            .tables(64)
            .memories(16)
            .table_elements(100_000)
            .trap_on_grow_failure(false)
            .build();
        MemoryLimiter {
            inner,
            memory_limit_hit: false,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if !allowed {
            self.memory_limit_hit = true;
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// The wall-clock deadline of a call, shared by the epoch callback (guest CPU) and the
/// capabilities (host I/O is capped at the time left).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline(pub(crate) Instant);

impl Deadline {
    pub(crate) fn remaining(&self) -> std::time::Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}
