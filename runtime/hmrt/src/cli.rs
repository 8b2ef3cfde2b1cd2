//! The command line: argument types (parsed in `main.rs`) and one function per command.
//! This is the binary's edge, so errors here are `anyhow` and end as a message and an exit code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use hmrt_config::Config;

use crate::capabilities::{Backends, CapabilityLimits};
use crate::registry::Registry;
use crate::sandbox::{Sandbox, SandboxOptions, Status};
use crate::tasks::{Bound, bind};

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
    /// The plugins hmrt knows.
    Plugins {
        /// What to show.
        #[command(subcommand)]
        command: PluginsCommand,
    },
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
        LogFormat::Json => builder.json().try_init(),
    };
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { file } => run(&file).await,
        Command::Check { file, task, json } => check(&file, task.as_deref(), json).await,
        Command::Validate { file } => validate(&file).await,
        Command::Plugins { command } => match command {
            PluginsCommand::List { config, dir } => {
                plugins_list(config.as_deref(), dir.as_deref()).await
            }
            PluginsCommand::Inspect { file, json } => plugins_inspect(&file, json).await,
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

/// The sandbox and registry a config needs.
pub async fn setup(config: &Config) -> anyhow::Result<(Arc<Sandbox>, Arc<Registry>)> {
    let supervisor = match &config.supervisor {
        None => None,
        Some(s) => {
            let auth = s.username.clone().zip(s.password.clone());
            Some(
                hmrt_supervisor::Client::new(
                    &s.serverurl.to_string(),
                    auth,
                    std::time::Duration::from_secs(30),
                )
                .with_context(|| format!("{}: supervisor.serverurl", s.location))?,
            )
        }
    };
    let backends = Backends::new(supervisor, CapabilityLimits::default())
        .context("cannot build the HTTP client")?;
    let options = SandboxOptions {
        max_concurrency: u32::try_from(config.runtime.max_concurrency).unwrap_or(u32::MAX),
        max_memory_bytes: crate::tasks::max_memory(config),
    };
    let sandbox = Sandbox::new(&options, backends)
        .map_err(|e| anyhow::anyhow!("cannot start wasmtime: {e:#}"))?;
    let registry = Registry::load(&sandbox, Some(&config.runtime.plugins_dir)).await;
    Ok((Arc::new(sandbox), Arc::new(registry)))
}

async fn run(file: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(file) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let (sandbox, registry) = setup(&config).await?;
    for problem in registry.problems() {
        tracing::error!("plugin not loaded: {problem}");
    }
    let tasks = match bind(&config, &registry) {
        Ok(tasks) => tasks,
        Err(errors) => {
            for error in errors {
                eprintln!("{error}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    let daemon = crate::daemon::Daemon::new(
        config,
        sandbox,
        tasks,
        crate::events::Events::new(vec![Arc::new(crate::events::LogSubscriber)]),
    )?;
    daemon.run(crate::daemon::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// The Nagios exit code of a status.
fn exit_code(status: Status) -> u8 {
    match status {
        Status::Healthy => 0,
        Status::Degraded => 1,
        Status::Unhealthy => 2,
        Status::Unknown => 3,
    }
}

/// How bad a status is, for "the worst status wins".
fn severity(status: Status) -> u8 {
    match status {
        Status::Healthy => 0,
        Status::Degraded => 1,
        Status::Unknown => 2,
        Status::Unhealthy => 3,
    }
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Healthy => "healthy",
        Status::Degraded => "degraded",
        Status::Unhealthy => "unhealthy",
        Status::Unknown => "unknown",
    }
}

async fn check(file: &Path, only: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let config = match load_config(file) {
        Ok(config) => config,
        Err(_) => return Ok(ExitCode::from(3)),
    };
    let (sandbox, registry) = setup(&config).await?;
    let tasks = match bind(&config, &registry) {
        Ok(tasks) => tasks,
        Err(errors) => {
            for error in errors {
                eprintln!("{error}");
            }
            return Ok(ExitCode::from(3));
        }
    };
    let selected: Vec<_> = tasks
        .into_iter()
        .filter(|t| only.is_none_or(|name| t.name() == name))
        .collect();
    if let Some(name) = only
        && selected.is_empty()
    {
        eprintln!("{}: no task named {name:?}", file.display());
        return Ok(ExitCode::from(3));
    }
    let mut running = tokio::task::JoinSet::new();
    for (index, task) in selected.into_iter().enumerate() {
        let sandbox = sandbox.clone();
        running.spawn(async move {
            let row = match &task.check {
                Bound::Broken(reason) => serde_json::json!({
                    "task": task.name(), "status": "unknown", "message": reason,
                    "metrics": [], "elapsed_ms": 0.0, "denied": [],
                }),
                Bound::Ready(entry) => {
                    let outcome = sandbox.check(&entry.plugin, &task.check_call).await;
                    let metrics: Vec<_> = outcome
                        .result
                        .as_ref()
                        .map(|r| r.metrics.iter().map(|m| serde_json::json!({"name": m.name, "value": m.value, "unit": m.unit})).collect())
                        .unwrap_or_default();
                    serde_json::json!({
                        "task": task.name(),
                        "status": status_name(outcome.status()),
                        "message": outcome.message(),
                        "metrics": metrics,
                        "elapsed_ms": outcome.report.elapsed.as_secs_f64() * 1000.0,
                        "denied": outcome.report.denials,
                    })
                }
            };
            (index, row)
        });
    }
    let mut rows = running.join_all().await;
    rows.sort_by_key(|(index, _)| *index);
    let rows: Vec<serde_json::Value> = rows.into_iter().map(|(_, row)| row).collect();
    let mut worst = Status::Healthy;
    for row in &rows {
        let status = match row["status"].as_str() {
            Some("healthy") => Status::Healthy,
            Some("degraded") => Status::Degraded,
            Some("unhealthy") => Status::Unhealthy,
            _ => Status::Unknown,
        };
        if severity(status) > severity(worst) {
            worst = status;
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let width = rows
            .iter()
            .filter_map(|r| r["task"].as_str())
            .map(str::len)
            .max()
            .unwrap_or(4);
        for row in &rows {
            println!(
                "{:width$}  {:9}  {}  ({:.0} ms)",
                row["task"].as_str().unwrap_or(""),
                row["status"].as_str().unwrap_or(""),
                row["message"].as_str().unwrap_or(""),
                row["elapsed_ms"].as_f64().unwrap_or(0.0),
            );
        }
    }
    Ok(ExitCode::from(exit_code(worst)))
}

async fn validate(file: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(file) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let (sandbox, registry) = setup(&config).await?;
    let findings = crate::validate::validate(&config, &sandbox, &registry).await;
    if findings.is_empty() {
        println!(
            "{}: ok ({} tasks, {} plugins)",
            file.display(),
            config.tasks.len(),
            registry.entries().count()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for finding in &findings {
        eprintln!("{finding}");
    }
    eprintln!("{}: {} error(s)", file.display(), findings.len());
    Ok(ExitCode::from(1))
}

async fn bare_sandbox() -> anyhow::Result<Sandbox> {
    let backends =
        Backends::new(None, CapabilityLimits::default()).context("cannot build the HTTP client")?;
    Sandbox::new(&SandboxOptions::default(), backends)
        .map_err(|e| anyhow::anyhow!("cannot start wasmtime: {e:#}"))
}

async fn plugins_list(config: Option<&Path>, dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dir = match (config, dir) {
        (Some(file), _) => match load_config(file) {
            Ok(config) => Some(config.runtime.plugins_dir),
            Err(code) => return Ok(code),
        },
        (None, dir) => dir.map(Path::to_path_buf),
    };
    let sandbox = bare_sandbox().await?;
    let registry = Registry::load(&sandbox, dir.as_deref()).await;
    for entry in registry.entries() {
        let info = entry.plugin.info();
        println!(
            "{:20} {:6} {:8} {}  [{}]",
            entry.name,
            entry.plugin.kind(),
            info.version,
            info.summary,
            entry.source
        );
    }
    for problem in registry.problems() {
        eprintln!("error: {problem}");
    }
    Ok(if registry.problems().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn plugins_inspect(file: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("{}: cannot read", file.display()))?;
    let sandbox = bare_sandbox().await?;
    let plugin = match sandbox.load(&bytes).await {
        Ok(plugin) => plugin,
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            return Ok(ExitCode::from(1));
        }
    };
    let info = plugin.info();
    let capabilities: Vec<&str> = info
        .capabilities
        .iter()
        .map(|c| crate::sandbox::capability_name(*c))
        .collect();
    if json {
        let value = serde_json::json!({
            "file": file,
            "kind": plugin.kind(),
            "name": info.name,
            "version": info.version,
            "summary": info.summary,
            "capabilities": capabilities,
            "imports": plugin.imports(),
            "contract": format!("hmrt:plugin@{}", crate::sandbox::CONTRACT_VERSION),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("file:         {}", file.display());
        println!(
            "kind:         {} (hmrt:plugin@{})",
            plugin.kind(),
            crate::sandbox::CONTRACT_VERSION
        );
        println!("name:         {} {}", info.name, info.version);
        println!("summary:      {}", info.summary);
        println!(
            "capabilities: {}",
            if capabilities.is_empty() {
                "none".into()
            } else {
                capabilities.join(", ")
            }
        );
        println!("imports:");
        for import in plugin.imports() {
            println!("  {import}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
