//! Turning bytes into a usable plugin: is it a component, which world and which version of
//! the contract does it speak, can hmrt satisfy its imports. Each question gets an error that
//! names the file and says what is wrong, before anything runs.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Component;

use wasmtime::Store;

use super::bindings::action::exports::hmrt::plugin::action_plugin::Trigger;
use super::bindings::action::{Action, ActionPre};
use super::bindings::check::{Check, CheckPre};
use super::bindings::types::Task;
use super::bindings::{v0_1, v0_2};
use super::{CallLimits, CheckResult, HostState, Need, PluginInfo, Sandbox, TaskCall, compat};
use super::{surface, untrusted};

/// The version of the `hmrt:plugin` package this host speaks; a new plugin is built against it.
pub const CONTRACT_VERSION: &str = "0.3.0";
/// Every version hmrt runs plugins of, newest first: older ones through `compat/`.
pub const SUPPORTED_VERSIONS: &[&str] = &[CONTRACT_VERSION, "0.2.0", "0.1.0"];
/// The contract's WIT package name.
pub(crate) const PACKAGE: &str = "hmrt:plugin";

/// Which world a plugin targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// A health check (`check` world).
    Check,
    /// A corrective action (`action` world).
    Action,
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::Check => "check",
            PluginKind::Action => "action",
        })
    }
}

/// The largest plugin file read (a Python or JavaScript component is 20–40 MB).
pub const MAX_PLUGIN_BYTES: u64 = 128 << 20;
/// How long compiling one plugin may take before it is given up (a Python component takes
/// 7–9 s here).
const COMPILE_TIME: Duration = Duration::from_secs(120);

/// Reads a plugin file: a regular file (a symlink to one is followed) of at most
/// [`MAX_PLUGIN_BYTES`]. Opened without blocking, so a FIFO or a device dropped into
/// `plugins/` is refused instead of hanging startup.
pub fn read_plugin(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    if meta.len() > MAX_PLUGIN_BYTES {
        return Err(format!(
            "is {} MiB; a plugin may be at most {} MiB",
            meta.len() >> 20,
            MAX_PLUGIN_BYTES >> 20
        ));
    }
    let mut bytes = Vec::new();
    // The cap holds even if the file grows while it is read.
    file.take(MAX_PLUGIN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_PLUGIN_BYTES {
        return Err(format!(
            "grew past {} MiB while read",
            MAX_PLUGIN_BYTES >> 20
        ));
    }
    Ok(bytes)
}

/// Why bytes are not a plugin hmrt can run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// Not WebAssembly at all.
    #[error("not a WebAssembly file (no \\0asm header)")]
    NotWasm,
    /// A core module: it needs to be built as (or wrapped into) a component.
    #[error(
        "is a core WebAssembly module, not a component: build it with `cargo build --target wasm32-wasip2` (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    /// wasmtime could not compile it.
    #[error("cannot be compiled: {0}")]
    Compile(String),
    /// Built against another version of the contract.
    #[error(
        "was built against {PACKAGE}@{found} ({interface}), but this hmrt runs plugins built against {PACKAGE}@{}: {}",
        SUPPORTED_VERSIONS.join(" or @"),
        rebuild_advice(found)
    )]
    VersionMismatch {
        /// The interface whose version differs.
        interface: String,
        /// The version it names.
        found: String,
    },
    /// Exports neither world's interface.
    #[error(
        "exports neither {PACKAGE}/check-plugin@{CONTRACT_VERSION} nor {PACKAGE}/action-plugin@{CONTRACT_VERSION} (it exports: {exports}); a plugin implements the `check` or `action` world of this hmrt's wit/ (`hmrt plugins new` writes it)"
    )]
    NotAPlugin {
        /// What it does export.
        exports: String,
    },
    /// Imports something hmrt does not provide.
    #[error("imports {import}, which hmrt does not provide{hint}")]
    UnsupportedImport {
        /// The import, as the component names it.
        import: String,
        /// What to do about it (starts with "; "), or empty.
        hint: String,
    },
    /// Its `describe` failed.
    #[error("describe() failed: {0}")]
    Describe(String),
}

/// What to rebuild a plugin of contract version `found` with.
fn rebuild_advice(found: &str) -> String {
    let newer = |a: &str, b: &str| {
        let parse =
            |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
        parse(a) > parse(b)
    };
    if newer(found, CONTRACT_VERSION) {
        format!(
            "it is newer than this hmrt; upgrade hmrt, or rebuild the plugin against {PACKAGE}@{CONTRACT_VERSION} (the wit/ that `hmrt plugins new` writes)"
        )
    } else {
        format!(
            "rebuild it against {PACKAGE}@{CONTRACT_VERSION} (the wit/ that `hmrt plugins new` writes; the SDKs of this hmrt use it)"
        )
    }
}

/// A compiled plugin, ready to instantiate.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<Inner>,
}

struct Inner {
    kind: PluginKind,
    contract: &'static str,
    info: PluginInfo,
    imports: Vec<String>,
    pre: Pre,
}

#[derive(Clone)]
pub(crate) enum Pre {
    Check(CheckPre<HostState>),
    Action(ActionPre<HostState>),
    CheckV01(v0_1::check::CheckPre<HostState>),
    ActionV01(v0_1::action::ActionPre<HostState>),
    CheckV02(v0_2::check::CheckPre<HostState>),
    ActionV02(v0_2::action::ActionPre<HostState>),
}

/// An instance of either world in either contract version.
pub(crate) enum Instance {
    Check(Check),
    Action(Action),
    CheckV01(v0_1::check::Check),
    ActionV01(v0_1::action::Action),
    CheckV02(v0_2::check::Check),
    ActionV02(v0_2::action::Action),
}

impl Pre {
    /// The typed pre-instance of `kind` in contract version `contract`.
    fn new(
        kind: PluginKind,
        contract: &str,
        instance_pre: wasmtime::component::InstancePre<HostState>,
    ) -> Result<Pre, LoadError> {
        let typed = |e: wasmtime::Error| {
            LoadError::Compile(untrusted::line(&format!("{e:#}"), untrusted::MESSAGE))
        };
        Ok(match (kind, contract) {
            (PluginKind::Check, "0.1.0") => {
                Pre::CheckV01(v0_1::check::CheckPre::new(instance_pre).map_err(typed)?)
            }
            (PluginKind::Action, "0.1.0") => {
                Pre::ActionV01(v0_1::action::ActionPre::new(instance_pre).map_err(typed)?)
            }
            (PluginKind::Check, "0.2.0") => {
                Pre::CheckV02(v0_2::check::CheckPre::new(instance_pre).map_err(typed)?)
            }
            (PluginKind::Action, "0.2.0") => {
                Pre::ActionV02(v0_2::action::ActionPre::new(instance_pre).map_err(typed)?)
            }
            (PluginKind::Check, _) => Pre::Check(CheckPre::new(instance_pre).map_err(typed)?),
            (PluginKind::Action, _) => Pre::Action(ActionPre::new(instance_pre).map_err(typed)?),
        })
    }

    pub(crate) async fn instantiate(
        &self,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<Instance> {
        Ok(match self {
            Pre::Check(pre) => Instance::Check(pre.instantiate_async(store).await?),
            Pre::Action(pre) => Instance::Action(pre.instantiate_async(store).await?),
            Pre::CheckV01(pre) => Instance::CheckV01(pre.instantiate_async(store).await?),
            Pre::ActionV01(pre) => Instance::ActionV01(pre.instantiate_async(store).await?),
            Pre::CheckV02(pre) => Instance::CheckV02(pre.instantiate_async(store).await?),
            Pre::ActionV02(pre) => Instance::ActionV02(pre.instantiate_async(store).await?),
        })
    }
}

impl Instance {
    pub(crate) async fn describe(
        &self,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<PluginInfo> {
        Ok(match self {
            Instance::Check(i) => i.hmrt_plugin_check_plugin().call_describe(store).await?,
            Instance::Action(i) => i.hmrt_plugin_action_plugin().call_describe(store).await?,
            Instance::CheckV01(i) => i
                .hmrt_plugin_check_plugin()
                .call_describe(store)
                .await?
                .into(),
            Instance::ActionV01(i) => i
                .hmrt_plugin_action_plugin()
                .call_describe(store)
                .await?
                .into(),
            Instance::CheckV02(i) => i
                .hmrt_plugin_check_plugin()
                .call_describe(store)
                .await?
                .into(),
            Instance::ActionV02(i) => i
                .hmrt_plugin_action_plugin()
                .call_describe(store)
                .await?
                .into(),
        })
    }

    pub(crate) async fn validate(
        &self,
        store: &mut Store<HostState>,
        task: &Task,
    ) -> wasmtime::Result<Result<Vec<Need>, String>> {
        Ok(match self {
            Instance::Check(i) => {
                i.hmrt_plugin_check_plugin()
                    .call_validate(store, task)
                    .await?
            }
            Instance::Action(i) => {
                i.hmrt_plugin_action_plugin()
                    .call_validate(store, task)
                    .await?
            }
            Instance::CheckV01(i) => compat::v0_1::needs(
                i.hmrt_plugin_check_plugin()
                    .call_validate(store, &task.into())
                    .await?,
            ),
            Instance::ActionV01(i) => compat::v0_1::needs(
                i.hmrt_plugin_action_plugin()
                    .call_validate(store, &task.into())
                    .await?,
            ),
            Instance::CheckV02(i) => compat::v0_2::needs(
                i.hmrt_plugin_check_plugin()
                    .call_validate(store, &task.into())
                    .await?,
            ),
            Instance::ActionV02(i) => compat::v0_2::needs(
                i.hmrt_plugin_action_plugin()
                    .call_validate(store, &task.into())
                    .await?,
            ),
        })
    }

    /// Runs a check; the caller has made sure the plugin is one.
    pub(crate) async fn check(
        &self,
        store: &mut Store<HostState>,
        task: &Task,
    ) -> wasmtime::Result<CheckResult> {
        match self {
            Instance::Check(i) => i.hmrt_plugin_check_plugin().call_check(store, task).await,
            Instance::CheckV01(i) => {
                let r = i
                    .hmrt_plugin_check_plugin()
                    .call_check(store, &task.into())
                    .await?;
                Ok(CheckResult {
                    status: r.status.into(),
                    message: r.message,
                    metrics: r.metrics.into_iter().map(Into::into).collect(),
                })
            }
            Instance::CheckV02(i) => {
                let r = i
                    .hmrt_plugin_check_plugin()
                    .call_check(store, &task.into())
                    .await?;
                Ok(CheckResult {
                    status: r.status.into(),
                    message: r.message,
                    metrics: r.metrics.into_iter().map(Into::into).collect(),
                })
            }
            Instance::Action(_) | Instance::ActionV01(_) | Instance::ActionV02(_) => {
                Err(wasmtime::Error::msg("an action has no check"))
            }
        }
    }

    /// Runs an action; the caller has made sure the plugin is one.
    pub(crate) async fn run(
        &self,
        store: &mut Store<HostState>,
        task: &Task,
        trigger: &Trigger,
    ) -> wasmtime::Result<Result<String, String>> {
        match self {
            Instance::Action(i) => {
                i.hmrt_plugin_action_plugin()
                    .call_run(store, task, trigger)
                    .await
            }
            Instance::ActionV01(i) => {
                let trigger = v0_1::action::exports::hmrt::plugin::action_plugin::Trigger {
                    status: trigger.status.into(),
                    message: trigger.message.clone(),
                    attempt: trigger.attempt,
                };
                i.hmrt_plugin_action_plugin()
                    .call_run(store, &task.into(), &trigger)
                    .await
            }
            Instance::ActionV02(i) => {
                let trigger = v0_2::action::exports::hmrt::plugin::action_plugin::Trigger {
                    status: trigger.status.into(),
                    message: trigger.message.clone(),
                    attempt: trigger.attempt,
                };
                i.hmrt_plugin_action_plugin()
                    .call_run(store, &task.into(), &trigger)
                    .await
            }
            Instance::Check(_) | Instance::CheckV01(_) | Instance::CheckV02(_) => {
                Err(wasmtime::Error::msg("a check has no action"))
            }
        }
    }
}

impl Plugin {
    /// Which world it targets.
    pub fn kind(&self) -> PluginKind {
        self.inner.kind
    }

    /// The contract version it was built against (one of [`SUPPORTED_VERSIONS`]).
    pub fn contract(&self) -> &'static str {
        self.inner.contract
    }

    /// What it says about itself.
    pub fn info(&self) -> &PluginInfo {
        &self.inner.info
    }

    /// The interfaces it imports (WASI and hmrt's), as the component names them.
    pub fn imports(&self) -> &[String] {
        &self.inner.imports
    }

    pub(crate) fn pre(&self) -> &Pre {
        &self.inner.pre
    }

    /// Whether both are the same loaded plugin (not merely the same name).
    pub(crate) fn same(&self, other: &Plugin) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Sandbox {
    /// Compiles `bytes` and checks that it is a plugin this host can run, then asks it to
    /// describe itself (in a sandbox with no grants).
    pub async fn load(&self, bytes: &[u8]) -> Result<Plugin, LoadError> {
        match bytes.get(0..8) {
            Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => return Err(LoadError::CoreModule),
            Some([0, b'a', b's', b'm', ..]) => {}
            _ => return Err(LoadError::NotWasm),
        }
        // Names first: a plugin that cannot link is told so before a compile of seconds.
        let surface = surface::read(bytes)?;
        let (kind, contract) = surface.world()?;
        surface.check_imports(contract)?;
        let component = self.compile(bytes).await?;
        let imports = surface.imports;
        let instance_pre = self.linker().instantiate_pre(&component).map_err(|e| {
            let text = untrusted::line(&format!("{e:#}"), untrusted::MESSAGE);
            // wasmtime says "component imports instance `x`, but a matching implementation
            // was not found in the linker"; the name in backticks is what the user needs.
            match text.split('`').nth(1) {
                Some(name) => surface::unsupported(name),
                None => LoadError::Compile(text),
            }
        })?;
        let pre = Pre::new(kind, contract, instance_pre)?;
        let info = self.describe(&pre).await?;
        Ok(Plugin {
            inner: Arc::new(Inner {
                kind,
                contract,
                info,
                imports,
                pre,
            }),
        })
    }

    /// Compiles off the async workers and under [`COMPILE_TIME`], so a component built to
    /// make Cranelift work for minutes delays neither the scheduler nor startup. (The thread
    /// finishes its compile in the background; its result is dropped.)
    async fn compile(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        let engine = self.engine().clone();
        let bytes = bytes.to_vec();
        let cache = self.compile_cache().cloned();
        let compiling = tokio::task::spawn_blocking(move || match cache {
            Some(cache) => cache.compile(&engine, &bytes),
            None => Component::new(&engine, &bytes),
        });
        match tokio::time::timeout(COMPILE_TIME, compiling).await {
            Err(_) => Err(LoadError::Compile(format!(
                "compiling took longer than {} s",
                COMPILE_TIME.as_secs()
            ))),
            Ok(Err(join)) => Err(LoadError::Compile(format!("the compiler failed: {join}"))),
            Ok(Ok(compiled)) => compiled.map_err(|e| {
                let text = untrusted::line(&format!("{e:#}"), untrusted::MESSAGE);
                LoadError::Compile(format!("{text}{}", surface::compile_hint(&text)))
            }),
        }
    }

    async fn describe(&self, pre: &Pre) -> Result<PluginInfo, LoadError> {
        let task = TaskCall {
            name: Arc::from("(describe)"),
            program: None,
            config: "{}".into(),
            grants: Arc::new(hmrt_config::Grants::default()),
            limits: CallLimits {
                timeout: Duration::from_secs(2),
                memory_bytes: self.max_memory_bytes(),
            },
            scratch: None,
            reuse: None,
        };
        let (result, _report) = self
            .call(pre, &task, None, move |store, instance| {
                Box::pin(instance.describe(store))
            })
            .await;
        result
            .map(untrusted::info)
            .map_err(|e| LoadError::Describe(e.to_string()))
    }
}
