//! The data each Store holds: WASI's empty context, the call's limits, and what the task grants.

use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::capabilities::CallContext;

/// The `T` of every `Store<T>`: one per plugin call, or per task while its instance is warm.
pub struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) call: CallContext,
    /// The guest's stdout and stderr, drained after every call.
    pub(crate) stdout: super::output::CallOutput,
    pub(crate) stderr: super::output::CallOutput,
    /// The call's place at the CPU gate (see `pool`).
    pub(crate) turns: super::pool::Turns,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Wraps wasmtime's `StoreLimits`, which bounds each memory on its own, to bound the sum of all
/// the call's memories (a component with four memories would otherwise get four times the
/// limit), and to remember that a guest hit the limit, so the task's reason can say "memory
/// limit" instead of the guest's generic abort.
pub(crate) struct MemoryLimiter {
    inner: wasmtime::StoreLimits,
    limit: usize,
    total: usize,
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
            limit: memory_bytes,
            total: 0,
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
        let total = self.total.saturating_sub(current).saturating_add(desired);
        let allowed =
            total <= self.limit && self.inner.memory_growing(current, desired, maximum)?;
        if allowed {
            self.total = total;
        } else {
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

#[cfg(test)]
mod tests {
    use wasmtime::ResourceLimiter;

    use super::MemoryLimiter;

    #[test]
    fn the_limit_is_on_the_sum_of_the_memories() {
        let mut limiter = MemoryLimiter::new(4 << 20);
        // Four memories of 1 MiB fit; a fifth byte of growth anywhere does not.
        for _ in 0..4 {
            assert!(limiter.memory_growing(0, 1 << 20, None).unwrap());
        }
        assert!(!limiter.memory_growing(1 << 20, 2 << 20, None).unwrap());
        assert!(!limiter.memory_growing(0, 64 << 10, None).unwrap());
        assert!(limiter.memory_limit_hit);
    }
}
