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
        Command::Simulate {
            file,
            task,
            results,
            seed,
            json,
        } => simulate(&file, &task, &results, seed, json),
        Command::History { file, task, json } => history(&file, &task, json),
        Command::Rearm { file, task } => rearm(&file, &task).await,
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

fn simulate(
    file: &Path,
    task: &str,
    results: &Path,
    seed: u64,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use crate::simulate;
    let config = match load_config(file) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let text = std::fs::read_to_string(results)
        .with_context(|| format!("{}: cannot read the results", results.display()))?;
    let results = simulate::parse_results(&text, results)?;
    let steps = simulate::replay(&config, task, &results, seed)?;
    if json {
        print!("{}", simulate::render_json(&steps)?);
    } else {
        if let Some(line) = simulate::origin_line(&results) {
            println!("{line}");
        }
        print!(
            "{}",
            simulate::render_text(&steps, results.origin(), &config)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A time for people: RFC 3339, UTC, milliseconds.
fn rfc3339(at: hmrt_policy::Timestamp) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(at.0);
    humantime::format_rfc3339_millis(time).to_string()
}

/// The config's task and its state file, or the exit code after saying why not: 2 for no such
/// task, 1 for no state yet.
fn stored_state(
    file: &Path,
    task: &str,
) -> anyhow::Result<Result<(Config, PathBuf, crate::state::StateFile), ExitCode>> {
    use crate::state::{StateError, read_state_file, state_path};
    let config = match load_config(file) {
        Ok(config) => config,
        Err(code) => return Ok(Err(code)),
    };
    if config.task(task).is_none() {
        eprintln!("{}: no task named {task:?}", file.display());
        return Ok(Err(ExitCode::from(2)));
    }
    let path = state_path(&config.runtime.state_dir, task)?;
    match read_state_file(&path, Some(task)) {
        Ok(stored) => Ok(Ok((config, path, stored))),
        Err(StateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "{}: no state for task {task:?} yet (hmrt has not run it with this state_dir)",
                path.display()
            );
            Ok(Err(ExitCode::from(1)))
        }
        Err(e) => Err(e.into()),
    }
}

fn history(file: &Path, task: &str, json: bool) -> anyhow::Result<ExitCode> {
    use hmrt_policy::ActionResult;
    let (config, path, stored) = match stored_state(file, task)? {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    if json {
        let mut out = String::new();
        for entry in crate::state::history(&stored.state) {
            out.push_str(&serde_json::to_string(&entry)?);
            out.push('\n');
        }
        print!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    let Some(task_config) = config.task(task) else {
        return Ok(ExitCode::from(2));
    };
    let policy = &task_config.policy;
    let state = &stored.state;
    let view = state.view(task, policy, crate::daemon::now());
    let mut out = String::new();
    let since = view
        .since
        .map(|at| format!(" since {}", rfc3339(at)))
        .unwrap_or_default();
    out.push_str(&format!("task:       {task}\n"));
    out.push_str(&format!("state:      {}{since}\n", view.state));
    if policy.has_action {
        out.push_str(&format!(
            "restarts:   {} of {} within {}\n",
            view.restarts_in_window,
            view.max_restarts,
            humantime::format_duration(policy.restart_window)
        ));
        let next = view
            .next_action_not_before
            .map(|at| format!("; no action before {}", rfc3339(at)))
            .unwrap_or_default();
        out.push_str(&format!(
            "backoff:    position {} (the next action is attempt {}){next}\n",
            view.backoff_position,
            view.backoff_position.saturating_add(1)
        ));
    }
    for hold in &view.held {
        out.push_str(&format!("held:       {hold}\n"));
    }
    if crate::state::rearm_path(&config.runtime.state_dir, task).is_ok_and(|p| p.exists()) {
        out.push_str("re-arm:     requested, not yet taken by hmrt\n");
    }
    out.push_str(&format!(
        "saved:      {} ({})\n\n",
        rfc3339(stored.saved_at),
        path.display()
    ));
    // Every kept result and action, actions at the time they finished (or started, if running).
    let mut lines: Vec<(u64, u8, String)> = state
        .results()
        .map(|r| {
            let line = format!("{}  {:<16} {}", rfc3339(r.at), r.status.as_str(), r.message);
            (r.at.0, 0, line)
        })
        .collect();
    for a in state.actions() {
        let (at, what, message) = match (&a.result, a.finished) {
            (Some(ActionResult::Ok { message }), Some(at)) => (at, "action ok", message.as_str()),
            (Some(ActionResult::Error { error }), Some(at)) => (at, "action error", error.as_str()),
            _ => (a.started, "action running", ""),
        };
        let line = format!(
            "{}  {:<16} attempt {}: {message}",
            rfc3339(at),
            what,
            a.attempt
        );
        lines.push((at.0, 1, line));
    }
    lines.sort_by_key(|(at, kind, _)| (*at, *kind));
    if lines.is_empty() {
        out.push_str("no results yet\n");
    }
    for (_, _, line) in lines {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

async fn rearm(file: &Path, task: &str) -> anyhow::Result<ExitCode> {
    use crate::state::{DaemonProbe, probe_daemon, request_rearm};
    let (config, path, stored) = match stored_state(file, task)? {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    let state = stored.state.state();
    if state != hmrt_policy::State::Failed {
        eprintln!(
            "task {task:?} is not failed (it is {state}, says {}): there is nothing to re-arm",
            path.display()
        );
        return Ok(ExitCode::from(1));
    }
    let dir = &config.runtime.state_dir;
    let request = request_rearm(dir, task, crate::daemon::now())?;
    let pid = match probe_daemon(dir)? {
        DaemonProbe::NotRunning => {
            println!(
                "hmrt is not running on {}: {task} will be re-armed at its first check when hmrt starts (request: {})",
                dir.display(),
                request.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        DaemonProbe::Running { pid } => pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
    };
    // The daemon takes the request at the task's next check: one interval, plus the check that
    // may be running now.
    let wait = config
        .task(task)
        .map(|t| t.interval + t.timeout)
        .unwrap_or_default()
        + std::time::Duration::from_secs(5);
    let deadline = tokio::time::Instant::now() + wait;
    while request.exists() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if request.exists() {
        println!(
            "re-arm requested: the running hmrt{pid} re-arms {task} at its next check (request: {})",
            request.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let now = crate::state::read_state_file(&path, Some(task))
        .map(|f| f.state.state().to_string())
        .unwrap_or_else(|e| format!("unreadable ({e})"));
    println!(
        "re-armed {task}: the running hmrt{pid} took the request; {task} is now {now}, its restart budget and backoff start over"
    );
    Ok(ExitCode::SUCCESS)
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
