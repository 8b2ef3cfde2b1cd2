//! The command line: argument types (parsed in `main.rs`) and one function per command, in a
//! module per group of commands.
//! This is the binary's edge, so errors here are `anyhow` and end as a message and an exit code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

mod check;
mod plugins;
mod remote;
mod report;
mod run;
mod scaffold;
mod state;
mod trial;

use check::{check, validate};
use hmrt_config::Config;
use plugins::{plugins_inspect, plugins_list};
use run::run;
use state::{history, rearm, simulate};

use crate::capabilities::{Backends, CapabilityLimits, HostServices};
use crate::registry::Registry;
use crate::sandbox::{CompileCache, Sandbox, SandboxOptions};

/// hmrt: health checks and recovery, with every check and action sandboxed in WebAssembly.
#[derive(Debug, Parser)]
#[command(name = "hmrt", version, about, propagate_version = true)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `hmrt=debug`. `HMRT_LOG` also works.
    #[arg(long, global = true, default_value = "info")]
    pub log: String,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every task on its schedule and repair what breaks, until SIGTERM or SIGINT.
    Run {
        /// The tasks file.
        file: PathBuf,
    },
    /// Run every check once and exit 0 healthy, 1 degraded, 2 unhealthy, 3 unknown (the worst
    /// status wins; unhealthy counts as worse than unknown).
    Check {
        /// The tasks file.
        file: PathBuf,
        /// Only this task.
        #[arg(long)]
        task: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check the config, the plugins and the grants without running anything; non-zero on
    /// any error, each one as `file:line:column: message`.
    Validate {
        /// The tasks file.
        file: PathBuf,
    },
    /// Replay a timestamped sequence of results through the policy engine and print what would
    /// have happened and when: state changes, actions, holds, recoveries. The results file
    /// format is described in the `hmrt::simulate` module docs.
    Simulate {
        /// The tasks file (its policies are used exactly as `hmrt run` uses them).
        file: PathBuf,
        /// The task the results are for (other tasks' entries say `task=NAME`).
        #[arg(long)]
        task: String,
        /// The results file: `<time> <status|action-ok|action-error> [message]` lines, or JSON
        /// Lines.
        #[arg(long)]
        results: PathBuf,
        /// The jitter seed: the same seed and inputs always print the same output.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print the decisions as JSON Lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// A task's recent check results and actions, read from its state file (not from a running
    /// hmrt), oldest first, under its current state, restart budget and backoff position.
    History {
        /// The tasks file (its `state_dir` is read).
        file: PathBuf,
        /// The task.
        #[arg(long)]
        task: String,
        /// Print JSON Lines in the format `hmrt simulate --results` reads.
        #[arg(long)]
        json: bool,
    },
    /// Re-arm a failed task: its restart budget and backoff start over. A running hmrt takes the
    /// request at the task's next check; otherwise the next `hmrt run` takes it at its first.
    Rearm {
        /// The tasks file (its `state_dir` is used).
        file: PathBuf,
        /// The task.
        #[arg(long)]
        task: String,
    },
    /// The tasks of a running hmrt, through its HTTP API: exits 0 healthy, 1 degraded,
    /// 2 unhealthy or failed, 3 when the daemon cannot be reached (Nagios UNKNOWN).
    Status {
        /// The daemon's API address (its `[runtime] listen`).
        #[arg(long, env = "HMRT_URL", default_value = DEFAULT_URL)]
        url: String,
        /// Print the daemon's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Change a task of a running hmrt through its HTTP API; needs the API token.
    Ctl {
        /// What to do.
        #[arg(value_enum)]
        command: CtlCommand,
        /// The task (a name or glob for `silence`; the silence's id for `unsilence`).
        task: String,
        /// How long a silence lasts.
        #[arg(long = "for", default_value = "1h")]
        duration: String,
        /// The daemon's API address (its `[runtime] listen`).
        #[arg(long, env = "HMRT_URL", default_value = DEFAULT_URL)]
        url: String,
        /// The environment variable holding the API token.
        #[arg(long, default_value = "HMRT_API_TOKEN")]
        token_env: String,
        /// Why, for the audit log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Run one plugin file alone, with a config and grants from the command line: prints what
    /// it declares and needs, each call's result, metrics, output, denied calls and timings.
    /// Exits as `hmrt check` (0 healthy, 1 degraded, 2 unhealthy, 3 unknown or cannot try).
    Try(trial::Trial),
    /// The plugins hmrt knows.
    Plugins {
        /// What to show.
        #[command(subcommand)]
        command: PluginsCommand,
    },
}

/// Where `hmrt status` and `hmrt ctl` look for the daemon when not told.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9187";

/// What `hmrt ctl` asks.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CtlCommand {
    /// Run the task's action now (not counted against the restart budget).
    Restart,
    /// Re-arm a failed task.
    Rearm,
    /// Hold the task's actions; its checks go on.
    Pause,
    /// Let the task's actions run again.
    Resume,
    /// Hold the task's alert notices for `--for` (checks go on).
    Silence,
    /// End a silence (by its id) now.
    Unsilence,
}

impl CtlCommand {
    fn path(self) -> &'static str {
        match self {
            CtlCommand::Restart => "restart",
            CtlCommand::Rearm => "rearm",
            CtlCommand::Pause => "pause",
            CtlCommand::Resume => "resume",
            CtlCommand::Silence => "silence",
            CtlCommand::Unsilence => "unsilence",
        }
    }
}

/// `hmrt plugins ...`
#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// The built-in plugins and those in a plugins directory.
    List {
        /// Take `plugins_dir` from this tasks file.
        #[arg(long, short, conflicts_with = "dir")]
        config: Option<PathBuf>,
        /// List the plugins in this directory.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// A new plugin project that builds with one command (`./build.sh`), with a README, a
    /// sample task and a unit test, against this hmrt's contract.
    New(scaffold::Request),
    /// What a plugin file is: its world, its description, what it imports.
    Inspect {
        /// The `.wasm` file.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Sets up logging and runs the command.
pub fn main(args: Args) -> ExitCode {
    init_logging(&args);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("hmrt: cannot start the async runtime: {e}");
            return ExitCode::from(70);
        }
    };
    match runtime.block_on(dispatch(args.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hmrt: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(args: &Args) {
    let filter = std::env::var("HMRT_LOG").unwrap_or_else(|_| args.log.clone());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // Another subscriber (a test harness) may already be installed; that one wins.
    let _ = match args.log_format {
        LogFormat::Text => builder.try_init(),
        // Top-level fields (task, plugin, event, ...) and no span copies of them: each line
        // says each thing once.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { file } => run(&file).await,
        Command::Check { file, task, json } => check(&file, task.as_deref(), json).await,
        Command::Validate { file } => validate(&file).await,
        Command::Try(trial) => trial::run(trial).await,
        Command::Simulate {
            file,
            task,
            results,
            seed,
            json,
        } => simulate(&file, &task, &results, seed, json),
        Command::History { file, task, json } => history(&file, &task, json),
        Command::Rearm { file, task } => rearm(&file, &task).await,
        Command::Status { url, json } => remote::status(&url, json).await,
        Command::Ctl {
            command,
            task,
            duration,
            url,
            token_env,
            reason,
        } => {
            let request = remote::CtlRequest {
                command: command.path(),
                target: &task,
                reason: reason.as_deref(),
                duration: &duration,
            };
            remote::ctl(&url, request, &token_env).await
        }
        Command::Plugins { command } => match command {
            PluginsCommand::List { config, dir } => {
                plugins_list(config.as_deref(), dir.as_deref()).await
            }
            PluginsCommand::Inspect { file, json } => plugins_inspect(&file, json).await,
            PluginsCommand::New(request) => scaffold::new(request),
        },
    }
}

/// Loads the config, or prints every error in it.
fn load_config(file: &Path) -> Result<Config, ExitCode> {
    Config::load(file, std::env::var_os("PATH").as_deref()).map_err(|errors| {
        for error in errors.errors() {
            eprintln!("{error}");
        }
        ExitCode::from(2)
    })
}

/// The sandbox and registry a config needs. `durable_scratch`: whether plugins' `scratch`
/// stores live in the state directory (the daemon) or in memory (one-off commands, which must
/// not move the daemon's samples).
pub async fn setup(
    config: &Config,
    durable_scratch: bool,
) -> anyhow::Result<(Arc<Sandbox>, Arc<Registry>)> {
    let supervisor = match &config.supervisor {
        None => None,
        Some(s) => {
            let auth = s.username.clone().zip(s.password.clone());
            Some(
                hmrt_supervisor::Client::new(
                    &s.serverurl,
                    auth,
                    std::time::Duration::from_secs(30),
                )
                .with_context(|| format!("{}: supervisor.serverurl", s.location))?,
            )
        }
    };
    let backends = Backends::new(supervisor, CapabilityLimits::default())
        .context("cannot build the HTTP client")?
        .with_services(&HostServices {
            state_dir: durable_scratch.then(|| config.runtime.state_dir.clone()),
            ..HostServices::from_config(config)
        });
    let options = SandboxOptions {
        max_concurrency: u32::try_from(config.runtime.max_concurrency).unwrap_or(u32::MAX),
        max_memory_bytes: crate::tasks::max_memory(config),
        compile_cache: CompileCache::from_env(),
        warm_instances: u32::try_from(warm_instances(config)).unwrap_or(u32::MAX),
    };
    let sandbox = Sandbox::new(&options, backends)
        .map_err(|e| anyhow::anyhow!("cannot start wasmtime: {e:#}"))?;
    let registry = Registry::load_named(
        &sandbox,
        Some(&config.runtime.plugins_dir),
        &plugin_names(config),
    )
    .await;
    release_freed_memory();
    Ok((Arc::new(sandbox), Arc::new(registry)))
}

/// Compiling plugins (a cold compile cache) leaves megabytes of freed Cranelift memory in the
/// allocator, which a long-running daemon would otherwise keep resident for good.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory at the top of glibc's heaps to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `[runtime] warm_instances`, or when not set one for each task whose check may keep its
/// instance (see `sandbox::REUSE_INTERVAL`), so the default never leaves such a task cold.
fn warm_instances(config: &Config) -> usize {
    config.runtime.warm_instances.unwrap_or_else(|| {
        let often = config.tasks.iter();
        let often = often.filter(|t| t.interval <= crate::sandbox::REUSE_INTERVAL);
        often.count().min(hmrt_config::MAX_WARM_INSTANCES)
    })
}

/// Every plugin name `config` uses: its tasks' checks and actions, its routes' receivers.
fn plugin_names(config: &Config) -> std::collections::BTreeSet<String> {
    let tasks = config.tasks.iter().flat_map(|t| {
        std::iter::once(t.check.clone()).chain(t.on_failure.iter().map(|a| a.action.clone()))
    });
    let routes = config.alerts.iter().flat_map(|r| {
        std::iter::once(r.receiver.action.clone())
            .chain(r.escalate_to.iter().map(|a| a.action.clone()))
    });
    tasks.chain(routes).collect()
}

async fn bare_sandbox() -> anyhow::Result<Sandbox> {
    let backends =
        Backends::new(None, CapabilityLimits::default()).context("cannot build the HTTP client")?;
    let options = SandboxOptions {
        compile_cache: CompileCache::from_env(),
        ..SandboxOptions::default()
    };
    Sandbox::new(&options, backends).map_err(|e| anyhow::anyhow!("cannot start wasmtime: {e:#}"))
}
