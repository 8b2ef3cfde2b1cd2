//! `hmrt check` and `hmrt validate`: the config's checks run once, or examined without running.

use std::path::Path;
use std::process::ExitCode;

use super::{load_config, setup};
use crate::sandbox::Status;
use crate::tasks::{Bound, bind};

/// The Nagios exit code of a status.
pub(super) fn exit_code(status: Status) -> u8 {
    match status {
        Status::Healthy => 0,
        Status::Degraded => 1,
        Status::Unhealthy => 2,
        Status::Unknown => 3,
    }
}

/// How bad a status is, for "the worst status wins".
pub(super) fn severity(status: Status) -> u8 {
    match status {
        Status::Healthy => 0,
        Status::Degraded => 1,
        Status::Unknown => 2,
        Status::Unhealthy => 3,
    }
}

pub(super) async fn check(file: &Path, only: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
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
                Bound::Broken(reason) => (
                    Status::Unknown,
                    serde_json::json!({
                        "task": task.name(), "status": "unknown", "message": reason,
                        "metrics": [], "elapsed_ms": 0.0, "denied": [],
                    }),
                ),
                Bound::Ready(entry) => {
                    let outcome = sandbox.check(&entry.plugin, &task.check_call).await;
                    let metrics: Vec<_> = outcome
                        .result
                        .as_ref()
                        .map(|r| r.metrics.iter().map(|m| serde_json::json!({"name": m.name, "value": m.value, "unit": m.unit})).collect())
                        .unwrap_or_default();
                    let status = outcome.status();
                    let row = serde_json::json!({
                        "task": task.name(),
                        "status": hmrt_policy::Status::from(status).as_str(),
                        "message": outcome.message(),
                        "metrics": metrics,
                        "elapsed_ms": outcome.report.elapsed.as_secs_f64() * 1000.0,
                        "denied": outcome.report.denials,
                    });
                    (status, row)
                }
            };
            (index, row)
        });
    }
    let mut rows = running.join_all().await;
    rows.sort_by_key(|(index, _)| *index);
    let worst = rows
        .iter()
        .map(|(_, (status, _))| *status)
        .max_by_key(|status| severity(*status))
        .unwrap_or(Status::Healthy);
    let rows: Vec<serde_json::Value> = rows.into_iter().map(|(_, (_, row))| row).collect();
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

pub(super) async fn validate(file: &Path) -> anyhow::Result<ExitCode> {
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
