//! The sandbox: one wasmtime engine and linker, each plugin compiled once, and a limited Store
//! per call that holds the calling task's grants: fresh for each call, or for a task checked
//! often, kept warm between that task's own calls (see `warm`).
//!
//! Limits on every call: memory (a `ResourceLimiter`), guest CPU (an epoch deadline that also
//! yields to the executor every tick, so a spinning guest cannot starve other tasks), and wall
//! clock for the whole call including host I/O (a timeout around it). A call that keeps the
//! CPU moves to the guests' own runtime (`pool`), so guest CPU never sits in line with the
//! scheduler's timers; a panic inside wasmtime ends that call, not hmrt.

pub mod bindings;
mod cache;
mod compat;
mod engine;
mod host;
mod load;
mod output;
mod pool;
mod surface;
pub(crate) mod untrusted;
mod warm;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmrt_config::Grants;
use tokio::sync::Semaphore;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::WasiCtxBuilder;

use crate::capabilities::{Backends, CallContext, Denial};
pub use bindings::check::exports::hmrt::plugin::check_plugin::CheckResult;
use bindings::types::Status as WitStatus;
pub use bindings::types::{Capability as DeclaredCapability, Metric, Need, PluginInfo};
pub use cache::CompileCache;
pub use hmrt_policy::Status;
pub(crate) use host::{Deadline, HostState};
pub use load::{
    CONTRACT_VERSION, LoadError, MAX_PLUGIN_BYTES, Plugin, PluginKind, SUPPORTED_VERSIONS,
    read_plugin,
};
use load::{Instance, Pre};
pub use warm::{REUSE_INTERVAL, WarmSlot};

/// How often the epoch advances: the granularity of CPU deadlines and of a guest's yields.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Bytes of a guest's stdout and stderr kept for its reason; writes past this fail.
const GUEST_OUTPUT_BYTES: usize = 16 * 1024;

/// How the sandbox is sized. Every call waits for one of `max_concurrency` slots, so the
/// instance pool below can never run out.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Plugin calls running at once.
    pub max_concurrency: u32,
    /// The largest memory limit any task has; the pool's slots are this big.
    pub max_memory_bytes: usize,
    /// Where compiled plugins are kept between starts; none: compile at every start.
    pub compile_cache: Option<CompileCache>,
    /// Warm instances kept at once (each holds a pool slot and its touched memory).
    pub warm_instances: u32,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            max_concurrency: 16,
            max_memory_bytes: 64 << 20,
            compile_cache: None,
            warm_instances: 64,
        }
    }
}

/// The limits of one call.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    /// Wall clock for the whole call, guest CPU and host I/O together.
    pub timeout: Duration,
    /// Linear memory the guest may have, per memory.
    pub memory_bytes: usize,
}

/// The task a call runs for: what the plugin sees, and what it may touch.
#[derive(Clone)]
pub struct TaskCall {
    /// The task's name.
    pub name: Arc<str>,
    /// The supervisord program it watches, if any.
    pub program: Option<String>,
    /// The plugin's config as a JSON object.
    pub config: String,
    /// What the plugin may touch.
    pub grants: Arc<Grants>,
    /// How long and how big the call may get.
    pub limits: CallLimits,
    /// Which `scratch` store the call uses: a task's check and its action each have their own
    /// (`<task>.check`, `<task>.action`), so neither can read or reset the other's samples.
    /// None: `scratch` is refused (`describe`, `validate`, alert receivers).
    pub scratch: Option<Arc<str>>,
    /// Where this task keeps a warm instance between its calls; None: a fresh instance per
    /// call. Only the task's own check call has one (see `warm`).
    pub reuse: Option<Arc<WarmSlot>>,
}

/// Why a call produced no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The call ran past its timeout (guest CPU or waiting on the host).
    #[error("timed out after {}", hmrt_domain::duration::format(*.0))]
    Timeout(Duration),
    /// The guest tried to grow its memory past the limit.
    #[error("exceeded its memory limit of {} MiB{}", .limit >> 20, guest_said(.stderr))]
    OutOfMemory {
        /// The limit, in bytes.
        limit: usize,
        /// What the guest printed to stderr.
        stderr: String,
    },
    /// The guest trapped (a panic is a trap; its message is in `stderr`).
    #[error("trapped: {trap}{}", guest_said(.stderr))]
    Trap {
        /// The trap, or wasmtime's error when it is not a trap.
        trap: String,
        /// What the guest printed to stderr.
        stderr: String,
    },
    /// The component could not be instantiated.
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    /// The call's task ended abnormally inside the host (a bug in hmrt or wasmtime).
    #[error("the sandbox failed: {0}")]
    Host(String),
}

fn guest_said(stderr: &str) -> String {
    // Rust's panic output is "thread '…' panicked at file:line:col:\nmessage\nnote: …";
    // the reason keeps the location and message, not the note.
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("note: run with"))
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let joined = lines.join(" ");
    let joined = joined
        .strip_prefix("thread '<unnamed>' ")
        .unwrap_or(&joined)
        .to_string();
    format!(": {}", untrusted::line(&joined, untrusted::STDERR))
}

/// What a call left behind besides its result.
#[derive(Debug, Clone, Default)]
pub struct CallReport {
    /// Calls it made outside its grants.
    pub denials: Vec<Denial>,
    /// Its stdout (capped).
    pub stdout: String,
    /// Its stderr (capped).
    pub stderr: String,
    /// How long the call took, instantiation included.
    pub elapsed: Duration,
}

/// The result of running a check plugin once.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    /// The plugin's result, or why there is none.
    pub result: Result<CheckResult, CallError>,
    /// What else the call did.
    pub report: CallReport,
}

impl CallError {
    /// A short, stable name of how the call failed, for metrics (`hmrt_plugin_traps_total`).
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Timeout(_) => "timeout",
            CallError::OutOfMemory { .. } => "out_of_memory",
            CallError::Trap { .. } => "trap",
            CallError::Instantiate(_) => "instantiate",
            CallError::Host(_) => "host",
        }
    }
}

impl CheckOutcome {
    /// The status the policy sees: a call that failed counts as unhealthy.
    pub fn status(&self) -> Status {
        match &self.result {
            Ok(result) => result.status.into(),
            Err(_) => Status::Unhealthy,
        }
    }

    /// The metrics the check reported (none if the call failed).
    pub fn metrics(&self) -> Vec<crate::events::Metric> {
        let Ok(result) = &self.result else {
            return Vec::new();
        };
        result
            .metrics
            .iter()
            .map(|m| crate::events::Metric {
                name: m.name.clone(),
                value: m.value,
                unit: m.unit.clone(),
            })
            .collect()
    }

    /// One line saying why.
    pub fn message(&self) -> String {
        match &self.result {
            Ok(result) => result.message.clone(),
            Err(error) => format!("check {error}"),
        }
    }
}

/// The engine, linker and shared capability backends.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<HostState>,
    backends: Arc<Backends>,
    slots: Arc<Semaphore>,
    warm_budget: Arc<Semaphore>,
    guests: pool::GuestPool,
    gate: pool::CpuGate,
    cache: Option<CompileCache>,
    ticker: engine::EpochTicker,
    /// The pool's slot size: `describe` may use all of it, since an interpreter's plugin
    /// (Python, JavaScript) needs tens of MiB before it runs a line of its own.
    max_memory_bytes: usize,
}

type CallFuture<'a, R> = Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>>;

impl Sandbox {
    /// Builds the engine and linker.
    pub fn new(options: &SandboxOptions, backends: Backends) -> Result<Sandbox, wasmtime::Error> {
        let engine = Engine::new(&engine::engine_config(options))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bindings::check::Check::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
        bindings::v0_1::check::Check::add_to_linker::<HostState, HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )?;
        bindings::v0_2::check::Check::add_to_linker::<HostState, HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )?;
        let ticker = engine::EpochTicker::start(&engine)?;
        Ok(Sandbox {
            engine,
            linker,
            backends: Arc::new(backends),
            slots: Arc::new(Semaphore::new(options.max_concurrency.max(1) as usize)),
            warm_budget: Arc::new(Semaphore::new(options.warm_instances as usize)),
            guests: pool::GuestPool::start()?,
            gate: pool::CpuGate::new(),
            cache: options.compile_cache.clone(),
            ticker,
            max_memory_bytes: options.max_memory_bytes,
        })
    }

    /// The capability backends (for their counters).
    pub fn backends(&self) -> &Arc<Backends> {
        &self.backends
    }

    /// Runs `plugin`'s check for `task`.
    pub async fn check(&self, plugin: &Plugin, task: &TaskCall) -> CheckOutcome {
        if plugin.kind() != PluginKind::Check {
            return CheckOutcome {
                result: Err(CallError::Instantiate(format!(
                    "plugin {:?} is an action, not a check",
                    plugin.info().name
                ))),
                report: CallReport::default(),
            };
        }
        let arg = wit_task(task);
        let reuse = task.reuse.as_ref().map(|slot| (plugin, slot));
        let (result, report) = self
            .call(plugin.pre(), task, reuse, move |store, instance| {
                Box::pin(async move { instance.check(store, &arg).await })
            })
            .await;
        CheckOutcome {
            result: result.map(untrusted::check_result),
            report,
        }
    }

    /// Runs `plugin`'s action for `task`. The outer `Result` is the call, the inner one what
    /// the action itself returned.
    pub async fn action(
        &self,
        plugin: &Plugin,
        task: &TaskCall,
        trigger: ActionTrigger,
    ) -> (Result<Result<String, String>, CallError>, CallReport) {
        if plugin.kind() != PluginKind::Action {
            return (
                Err(CallError::Instantiate(format!(
                    "plugin {:?} is a check, not an action",
                    plugin.info().name
                ))),
                CallReport::default(),
            );
        }
        let arg = wit_task(task);
        let trigger = bindings::action::exports::hmrt::plugin::action_plugin::Trigger {
            status: wit_status(trigger.status),
            message: trigger.message,
            attempt: trigger.attempt,
        };
        let (result, report) = self
            .call(plugin.pre(), task, None, move |store, instance| {
                Box::pin(async move { instance.run(store, &arg, &trigger).await })
            })
            .await;
        let cut = |m: String| untrusted::line(&m, untrusted::MESSAGE);
        (result.map(|r| r.map(cut).map_err(cut)), report)
    }

    /// Asks `plugin` what `task`'s config would need (or what is wrong with it). The call
    /// runs with no grants at all: validating a config never touches what the task may touch.
    pub async fn validate(
        &self,
        plugin: &Plugin,
        task: &TaskCall,
    ) -> Result<Result<Vec<Need>, String>, CallError> {
        let task = TaskCall {
            grants: Arc::new(Grants::default()),
            scratch: None,
            reuse: None,
            ..task.clone()
        };
        let arg = wit_task(&task);
        let (result, _report) = self
            .call(plugin.pre(), &task, None, move |store, instance| {
                Box::pin(async move { instance.validate(store, &arg).await })
            })
            .await;
        result.map(untrusted::validated)
    }

    /// Runs one call in its own tokio task, within the task's limits: in the task's warm
    /// instance when `reuse` has one that fits, else in a fresh Store and instance, which is
    /// kept warm afterwards if `reuse` asks for it, the call ended cleanly and the warm budget
    /// has room.
    async fn call<R, F>(
        &self,
        pre: &Pre,
        task: &TaskCall,
        reuse: Option<(&Plugin, &Arc<WarmSlot>)>,
        f: F,
    ) -> (Result<R, CallError>, CallReport)
    where
        R: Send + 'static,
        F: for<'a> FnOnce(&'a mut Store<HostState>, &'a Instance) -> CallFuture<'a, R>
            + Send
            + 'static,
    {
        let Ok(_slot) = self.slots.clone().acquire_owned().await else {
            return (
                Err(CallError::Host("sandbox closed".into())),
                CallReport::default(),
            );
        };
        let started = Instant::now();
        let timeout = task.limits.timeout;
        let deadline = Deadline(started + timeout);
        let (mut store, instance, ticket) = match reuse.and_then(|(p, slot)| slot.take(p, task)) {
            Some(warm) => {
                let mut store = warm.store;
                rearm(&mut store, deadline);
                (store, Some(warm.instance), Some(warm.ticket))
            }
            None => {
                let ticket = reuse.and_then(|(plugin, _)| {
                    let budget = self.warm_budget.clone().try_acquire_owned().ok()?;
                    Some(warm::Ticket::new(plugin, task, budget))
                });
                (self.new_store(task, deadline), None, ticket)
            }
        };
        let (stdout, stderr) = {
            let state = store.data();
            (state.stdout.clone(), state.stderr.clone())
        };
        let limit = task.limits.memory_bytes;
        let pre = pre.clone();
        let offload = store.data().turns.offload();
        // Inside the body: a call moved to the guest pool runs on after its caller is gone.
        let running = self.ticker.running();
        let body = async move {
            let _running = running;
            let mut instance = instance;
            let result = tokio::time::timeout(timeout, async {
                if instance.is_none() {
                    instance = Some(pre.instantiate(&mut store).await?);
                }
                match instance.as_ref() {
                    Some(instance) => f(&mut store, instance).await,
                    None => Err(wasmtime::format_err!("no instance")),
                }
            })
            .await;
            let state = store.data_mut();
            let denials = std::mem::take(&mut state.call.denials);
            let memory_hit = state.limiter.memory_limit_hit;
            state.turns.release();
            // Only a clean return is kept: after a trap, a timeout (the abandoned call is
            // still inside the Store) or a memory-limit hit the Store is dropped here,
            // inside this task, and nothing of the call outlives it.
            let kept = match (&result, ticket, instance) {
                (Ok(Ok(_)), Some(mut ticket), Some(instance)) if !memory_hit => {
                    ticket.served().then_some(warm::Warm {
                        store,
                        instance,
                        ticket,
                    })
                }
                _ => None,
            };
            (result, memory_hit, denials, kept)
        };
        let joined = self.guests.run(body, &offload).await;
        let mut report = CallReport {
            denials: Vec::new(),
            stdout: stdout.drain(),
            stderr: stderr.drain(),
            elapsed: started.elapsed(),
        };
        let result = match joined {
            Err(panicked) => Err(CallError::Host(panicked)),
            Ok((result, memory_hit, denials, kept)) => {
                report.denials = denials;
                if let (Some(warm), Some((_, slot))) = (kept, reuse) {
                    slot.keep(warm);
                }
                match result {
                    Err(_elapsed) => Err(CallError::Timeout(timeout)),
                    Ok(Ok(value)) => Ok(value),
                    Ok(Err(error)) => {
                        Err(classify(&error, memory_hit, limit, timeout, &report.stderr))
                    }
                }
            }
        };
        (result, report)
    }

    fn new_store(&self, task: &TaskCall, deadline: Deadline) -> Store<HostState> {
        let stdout = output::CallOutput::new(GUEST_OUTPUT_BYTES);
        let stderr = output::CallOutput::new(GUEST_OUTPUT_BYTES);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .max_random_size(64 * 1024)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(10_000);
        let state = HostState {
            wasi,
            table,
            limiter: host::MemoryLimiter::new(task.limits.memory_bytes),
            call: CallContext {
                task: task.name.clone(),
                grants: task.grants.clone(),
                backends: self.backends.clone(),
                deadline,
                denials: Vec::new(),
                log_lines: 0,
                state_changes: 0,
                scratch: task.scratch.clone(),
                scratch_writes: 0,
            },
            stdout,
            stderr,
            turns: self.gate.turns(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        // One host call may copy at most this much in from the guest.
        store.set_hostcall_fuel(8 << 20);
        store.set_max_component_handles(10_000);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut store| {
            let state = store.data_mut();
            if Instant::now() >= state.call.deadline.0 {
                Err(Trap::Interrupt.into())
            } else {
                // Yield at every tick so a guest that never calls the host still shares the
                // cores with every other call; a heavy one takes turns (see `pool`).
                Ok(state.turns.tick())
            }
        });
        store
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn compile_cache(&self) -> Option<&CompileCache> {
        self.cache.as_ref()
    }

    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.linker
    }

    pub(crate) fn max_memory_bytes(&self) -> usize {
        self.max_memory_bytes
    }
}

/// Makes a kept Store ready for its task's next call: the call's own deadline and fresh
/// per-call counts (the grants, scratch store and limits are the task's and stay).
fn rearm(store: &mut Store<HostState>, deadline: Deadline) {
    let call = &mut store.data_mut().call;
    call.deadline = deadline;
    call.denials.clear();
    call.log_lines = 0;
    call.state_changes = 0;
    call.scratch_writes = 0;
    store.set_epoch_deadline(1);
}

/// Why an action runs, as the action plugin sees it.
#[derive(Debug, Clone)]
pub struct ActionTrigger {
    /// The task's status when the policy decided to act.
    pub status: Status,
    /// The message of the result that led to it.
    pub message: String,
    /// Which attempt within the restart window this is.
    pub attempt: u32,
}

/// The one mapping between the contract's status and the policy's, at the sandbox boundary:
/// everything past the sandbox (policy, events, outputs) uses [`hmrt_policy::Status`].
impl From<WitStatus> for Status {
    fn from(status: WitStatus) -> Self {
        match status {
            WitStatus::Healthy => Status::Healthy,
            WitStatus::Degraded => Status::Degraded,
            WitStatus::Unhealthy => Status::Unhealthy,
            WitStatus::Unknown => Status::Unknown,
        }
    }
}

fn wit_status(status: Status) -> WitStatus {
    match status {
        Status::Healthy => WitStatus::Healthy,
        Status::Degraded => WitStatus::Degraded,
        Status::Unhealthy => WitStatus::Unhealthy,
        Status::Unknown => WitStatus::Unknown,
    }
}

/// The names of the capabilities a plugin declares, as the config's `grants` keys spell them.
pub fn capability_names(info: &PluginInfo) -> Vec<&'static str> {
    info.capabilities
        .iter()
        .map(|c| capability_name(*c))
        .collect()
}

/// The name of a capability a plugin declares, as the config's `grants` keys spell it.
pub fn capability_name(capability: DeclaredCapability) -> &'static str {
    match capability {
        DeclaredCapability::Http => "http",
        DeclaredCapability::Exec => "exec",
        DeclaredCapability::Supervisor => "supervisor",
        DeclaredCapability::Tcp => "tcp",
        DeclaredCapability::Smtp => "smtp",
        DeclaredCapability::System => "system",
        DeclaredCapability::Process => "process",
        DeclaredCapability::Files => "files",
        DeclaredCapability::Docker => "docker",
        DeclaredCapability::Systemd => "systemd",
    }
}

fn wit_task(task: &TaskCall) -> bindings::types::Task {
    bindings::types::Task {
        name: task.name.to_string(),
        program: task.program.clone(),
        config: task.config.clone(),
    }
}

fn classify(
    error: &wasmtime::Error,
    memory_hit: bool,
    limit: usize,
    timeout: Duration,
    stderr: &str,
) -> CallError {
    if memory_hit {
        return CallError::OutOfMemory {
            limit,
            stderr: stderr.to_string(),
        };
    }
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return CallError::Trap {
            trap: format!(
                "the plugin exited (exit status {}) instead of returning",
                exit.0
            ),
            stderr: stderr.to_string(),
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::Timeout(timeout),
        Some(trap) => CallError::Trap {
            trap: trap.to_string(),
            stderr: stderr.to_string(),
        },
        // wasmtime's text can carry names from the guest's own custom sections.
        None => CallError::Trap {
            trap: untrusted::line(
                format!("{error:#}").lines().next().unwrap_or_default(),
                untrusted::MESSAGE,
            ),
            stderr: stderr.to_string(),
        },
    }
}

impl bindings::types::Host for HostState {}
