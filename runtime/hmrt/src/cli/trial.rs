//! `hmrt try`: one plugin file alone, with a config and grants from the command line, so its
//! author sees what hmrt would make of it (load, declaration, `validate()`, each call's result,
//! metrics, output and denied calls, and timings) before writing a task for it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hmrt_config::Config;

use super::check::exit_code;
use crate::capabilities::{Backends, CapabilityLimits};
use crate::sandbox::{
    ActionTrigger, CallLimits, CallReport, CompileCache, Plugin, PluginKind, Sandbox,
    SandboxOptions, Status, TaskCall,
};
use crate::validate::declared;

/// What `hmrt try` is asked to do.
#[derive(Debug, clap::Args)]
pub struct Trial {
    /// The plugin's `.wasm` file.
    #[arg(value_name = "PLUGIN")]
    file: PathBuf,
    /// The plugin's config, a JSON object (a task's `config` table).
    #[arg(long, default_value = "{}")]
    config: String,
    /// A grant, KIND=VALUE as in a task's `grants`: http=http://127.0.0.1:8080, exec=df,
    /// supervisor=web, tcp=127.0.0.1:6379, files=/var/log/, ... Repeat for more.
    #[arg(long = "grant", value_name = "KIND=VALUE")]
    grants: Vec<String>,
    /// How many calls, one after another (each in a fresh instance), 1 to 10000.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    times: u32,
    /// The task's supervisord program, as the plugin sees it.
    #[arg(long)]
    program: Option<String>,
    /// Each call's time limit, as tasks.toml writes it (default: a task's).
    #[arg(long)]
    timeout: Option<String>,
    /// The memory limit, as tasks.toml writes it (default: a task's).
    #[arg(long)]
    memory: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// What exits non-zero before any call: the plugin, the config or the grants are wrong (3, as
/// `hmrt check` exits when it cannot check).
const CANNOT_TRY: u8 = 3;

pub(super) async fn run(trial: Trial) -> anyhow::Result<ExitCode> {
    let (sandbox, plugin, call, mut out) = match prepare(&trial).await {
        Ok(prepared) => prepared,
        Err(message) => {
            // `--json` promises one JSON object on stdout, also when nothing could be tried.
            if trial.json {
                println!("{}", serde_json::json!({ "error": message }));
            } else {
                eprintln!("{message}");
            }
            return Ok(ExitCode::from(CANNOT_TRY));
        }
    };
    let mut worst = Status::Healthy;
    for attempt in 1..=trial.times {
        let status = call_once(&sandbox, &plugin, &call, attempt, &mut out).await;
        worst = super::report::worse(worst, status);
    }
    out.finish(worst)?;
    Ok(ExitCode::from(exit_code(worst)))
}

/// Everything before the calls: settings, config, sandbox, the plugin, its declaration against
/// the grants and its verdict on the config. An error is the message `hmrt try` exits 3 with.
async fn prepare(trial: &Trial) -> Result<(Sandbox, Plugin, TaskCall, Output), String> {
    let task = task_settings(trial)?;
    let config_json = match serde_json::from_str::<serde_json::Value>(&trial.config) {
        Ok(value @ serde_json::Value::Object(_)) => value.to_string(),
        Ok(_) => {
            return Err("--config: must be a JSON object, such as '{\"url\": \"...\"}'".into());
        }
        Err(e) => return Err(format!("--config: not JSON: {e}")),
    };
    let memory = usize::try_from(task.memory).unwrap_or(usize::MAX);
    let sandbox = sandbox(memory).map_err(|e| format!("{e:#}"))?;
    let bytes = crate::sandbox::read_plugin(&trial.file)
        .map_err(|why| format!("{}: cannot read: {why}", trial.file.display()))?;
    let started = Instant::now();
    let plugin = sandbox
        .load(&bytes)
        .await
        .map_err(|e| format!("{}: {e}", trial.file.display()))?;
    let load = started.elapsed();
    let call = TaskCall {
        name: Arc::from("try"),
        program: trial.program.clone(),
        config: config_json,
        grants: Arc::new(task.grants.clone()),
        limits: CallLimits {
            timeout: task.timeout,
            memory_bytes: memory,
        },
        scratch: Some(Arc::from("try")),
        reuse: None,
    };
    let refused = declared::undeclared(
        plugin.info(),
        &call.grants,
        &hmrt_config::Location::whole_file(Path::new("--grant")),
        "grants",
    );
    if !refused.is_empty() {
        let refused: Vec<String> = refused.iter().map(ToString::to_string).collect();
        return Err(refused.join("\n"));
    }
    let mut out = Output::new(trial.json);
    out.plugin(&trial.file, &plugin, bytes.len(), load);
    match sandbox.validate(&plugin, &call).await {
        Err(e) => return Err(format!("validate() {e}")),
        Ok(Err(message)) => return Err(format!("--config: {message}")),
        Ok(Ok(needs)) => out.needs(&needs, &call.grants),
    }
    Ok((sandbox, plugin, call, out))
}

/// One call of the plugin (its check, or its action with a made-up trigger), reported.
async fn call_once(
    sandbox: &Sandbox,
    plugin: &Plugin,
    call: &TaskCall,
    attempt: u32,
    out: &mut Output,
) -> Status {
    match plugin.kind() {
        PluginKind::Check => {
            let outcome = sandbox.check(plugin, call).await;
            let status = outcome.status();
            let (message, metrics) = (outcome.message(), outcome.metrics());
            out.call(attempt, status, &message, &metrics, &outcome.report);
            status
        }
        PluginKind::Action => {
            let trigger = ActionTrigger {
                status: Status::Unhealthy,
                message: "hmrt try".into(),
                attempt,
            };
            let (result, report) = sandbox.action(plugin, call, trigger).await;
            let (status, message) = match result {
                Ok(Ok(summary)) => (Status::Healthy, format!("done: {summary}")),
                Ok(Err(message)) => (Status::Unhealthy, format!("failed: {message}")),
                Err(e) => (Status::Unhealthy, format!("action {e}")),
            };
            out.call(attempt, status, &message, &[], &report);
            status
        }
    }
}

/// The grants, timeout and memory limit, read by the config crate from a one-task config, so
/// `--grant` means exactly what `grants` means in tasks.toml.
fn task_settings(trial: &Trial) -> Result<hmrt_config::TaskConfig, String> {
    let mut kinds: Vec<(String, Vec<String>)> = Vec::new();
    for grant in &trial.grants {
        let Some((kind, value)) = grant.split_once('=') else {
            return Err(format!(
                "--grant {grant:?}: write KIND=VALUE, such as http=http://127.0.0.1:8080 or exec=df"
            ));
        };
        match kinds.iter_mut().find(|(k, _)| k == kind) {
            Some((_, values)) => values.push(value.to_string()),
            None => kinds.push((kind.to_string(), vec![value.to_string()])),
        }
    }
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    let grants: Vec<String> = kinds
        .iter()
        .map(|(kind, values)| {
            let values: Vec<String> = values.iter().map(|v| quote(v)).collect();
            format!("{} = [{}]", quote(kind), values.join(", "))
        })
        .collect();
    let mut text = format!(
        "[[task]]\nname = \"try\"\ncheck = \"try\"\ngrants = {{ {} }}\n",
        grants.join(", ")
    );
    if let Some(timeout) = &trial.timeout {
        text.push_str(&format!("timeout = {}\n", quote(timeout)));
    }
    if let Some(memory) = &trial.memory {
        text.push_str(&format!("memory = {}\n", quote(memory)));
    }
    let path_env = std::env::var_os("PATH");
    let config = Config::parse(&text, Path::new("(command line)"), path_env.as_deref()).map_err(
        |errors| {
            errors
                .errors()
                .iter()
                .map(|e| format!("{}: {}", e.key, e.message))
                .collect::<Vec<_>>()
                .join("\n")
        },
    )?;
    config
        .tasks
        .into_iter()
        .next()
        .ok_or_else(|| "no task".to_string())
}

fn sandbox(memory: usize) -> anyhow::Result<Sandbox> {
    let backends =
        Backends::new(None, CapabilityLimits::default()).context("cannot build the HTTP client")?;
    let options = SandboxOptions {
        compile_cache: CompileCache::from_env(),
        max_memory_bytes: memory.max(16 << 20),
        max_concurrency: 1,
        warm_instances: 0,
    };
    Sandbox::new(&options, backends).map_err(|e| anyhow::anyhow!("cannot start wasmtime: {e:#}"))
}

/// Text as it goes, or one JSON object at the end.
struct Output {
    json: Option<serde_json::Map<String, serde_json::Value>>,
    calls: Vec<serde_json::Value>,
    elapsed: Vec<Duration>,
}

impl Output {
    fn new(json: bool) -> Output {
        Output {
            json: json.then(serde_json::Map::new),
            calls: Vec::new(),
            elapsed: Vec::new(),
        }
    }

    fn plugin(&mut self, file: &Path, plugin: &Plugin, size: usize, load: Duration) {
        let info = plugin.info();
        let capabilities = crate::sandbox::capability_names(info);
        if let Some(json) = &mut self.json {
            json.insert("file".into(), file.display().to_string().into());
            json.insert("kind".into(), plugin.kind().to_string().into());
            json.insert("name".into(), info.name.clone().into());
            json.insert("version".into(), info.version.clone().into());
            json.insert("contract".into(), plugin.contract().into());
            json.insert("capabilities".into(), capabilities.into());
            json.insert("size_bytes".into(), size.into());
            json.insert("load_ms".into(), millis(load).into());
            return;
        }
        println!(
            "plugin   {} {} ({}, hmrt:plugin@{}), {} KiB, loaded in {:.1} ms",
            info.name,
            info.version,
            plugin.kind(),
            plugin.contract(),
            size / 1024,
            millis(load)
        );
        println!(
            "declares {}",
            if capabilities.is_empty() {
                "no capabilities".to_string()
            } else {
                capabilities.join(", ")
            }
        );
    }

    fn needs(&mut self, needs: &[crate::sandbox::Need], grants: &hmrt_config::Grants) {
        let rows: Vec<(String, Option<String>)> = needs
            .iter()
            .map(|need| {
                (
                    format!(
                        "{} {}",
                        declared::need_kind(need),
                        declared::need_value(need)
                    ),
                    crate::validate::uncovered(need, grants),
                )
            })
            .collect();
        if let Some(json) = &mut self.json {
            let value: Vec<serde_json::Value> = rows
                .iter()
                .map(|(need, problem)| serde_json::json!({ "need": need, "not_granted": problem }))
                .collect();
            json.insert("needs".into(), value.into());
            return;
        }
        for (need, problem) in rows {
            match problem {
                None => println!("needs    {need} (granted)"),
                Some(problem) => println!(
                    "needs    {need}: NOT GRANTED, `hmrt run` would refuse the task: {problem}"
                ),
            }
        }
    }

    fn call(
        &mut self,
        attempt: u32,
        status: Status,
        message: &str,
        metrics: &[crate::events::Metric],
        report: &CallReport,
    ) {
        self.elapsed.push(report.elapsed);
        let denied: Vec<String> = report
            .denials
            .iter()
            .map(|d| {
                let times = if d.count > 1 {
                    format!(" ({}x)", d.count)
                } else {
                    String::new()
                };
                format!("{} {}{times}", d.capability, d.asked)
            })
            .collect();
        if self.json.is_some() {
            self.calls.push(serde_json::json!({
                "status": status,
                "message": message,
                "metrics": metrics,
                "elapsed_ms": millis(report.elapsed),
                "denied": denied,
                "stdout": report.stdout,
                "stderr": report.stderr,
            }));
            return;
        }
        println!(
            "call {attempt}   {status}: {message} ({:.2} ms)",
            millis(report.elapsed)
        );
        for m in metrics {
            println!("  metric  {} = {} {}", m.name, m.value, m.unit);
        }
        for d in &denied {
            println!("  denied  {d}");
        }
        for (name, text) in [("stdout", &report.stdout), ("stderr", &report.stderr)] {
            // The guest's bytes, never raw on a terminal: no escape sequences, no control
            // characters, each line capped.
            for line in text.lines() {
                let line = crate::sandbox::untrusted::line(line, crate::sandbox::untrusted::STDERR);
                println!("  {name}  {line}");
            }
        }
    }

    fn finish(mut self, worst: Status) -> anyhow::Result<()> {
        let mut sorted = self.elapsed.clone();
        sorted.sort();
        let pick = |q: f64| {
            sorted
                .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or_default()
        };
        let (min, median, max) = (pick(0.0), pick(0.5), pick(1.0));
        if let Some(mut json) = self.json.take() {
            json.insert("calls".into(), std::mem::take(&mut self.calls).into());
            json.insert("status".into(), serde_json::to_value(worst)?);
            json.insert(
                "call_ms".into(),
                serde_json::json!({ "min": millis(min), "median": millis(median), "max": millis(max) }),
            );
            println!("{}", serde_json::to_string_pretty(&json)?);
        } else if sorted.len() > 1 {
            println!(
                "{} calls: min {:.2} ms, median {:.2} ms, max {:.2} ms; worst {worst}",
                sorted.len(),
                millis(min),
                millis(median),
                millis(max)
            );
        }
        Ok(())
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
