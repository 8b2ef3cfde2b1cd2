//! `hmrt check` and `hmrt validate`: the config's checks run once, or examined without running.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use super::report::{self, CheckReport};
use super::{load_config, setup};
use crate::clock::{Clock, SystemClock};
use crate::events::{Events, LogSubscriber};
use crate::sandbox::Status;
use crate::tasks::{Bound, bind};

/// What `hmrt check` exits with when it cannot check: the config is wrong. Nagios reads 3 as
/// UNKNOWN, which is the truth (2 would claim the service is down).
const CANNOT_CHECK: u8 = 3;

/// The Nagios exit code of a status.
pub(super) fn exit_code(status: Status) -> u8 {
    match status {
        Status::Healthy => 0,
        Status::Degraded => 1,
        Status::Unhealthy => 2,
        Status::Unknown => 3,
    }
}

pub(super) async fn check(file: &Path, only: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let Ok(config) = load_config(file) else {
        return Ok(ExitCode::from(CANNOT_CHECK));
    };
    let (sandbox, registry) = match setup(&config, false).await {
        Ok(parts) => parts,
        Err(e) => {
            eprintln!("hmrt: {e:#}");
            return Ok(ExitCode::from(CANNOT_CHECK));
        }
    };
    let findings = crate::validate::validate_tasks(&config, &sandbox, &registry, only).await;
    if !findings.config.is_empty() {
        for finding in &findings.config {
            eprintln!("{finding}");
        }
        return Ok(ExitCode::from(CANNOT_CHECK));
    }
    let tasks = match bind(&config, &registry) {
        Ok(tasks) => tasks,
        Err(errors) => {
            for error in errors {
                eprintln!("{error}");
            }
            return Ok(ExitCode::from(CANNOT_CHECK));
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
        return Ok(ExitCode::from(CANNOT_CHECK));
    }
    let report = Arc::new(CheckReport::default());
    let events = Events::new(vec![report.clone(), Arc::new(LogSubscriber::new())]);
    let clock = SystemClock;
    let mut running = tokio::task::JoinSet::new();
    for task in selected.iter().cloned() {
        let sandbox = sandbox.clone();
        let events = events.clone();
        running.spawn(async move {
            match &task.check {
                Bound::Broken(reason) => {
                    events.check_unusable(
                        clock.now(),
                        task.name(),
                        &task.config.check,
                        reason,
                        Duration::ZERO,
                    )
                }
                Bound::Heartbeat(_) => events.check_unusable(
                    clock.now(),
                    task.name(),
                    &task.config.check,
                    "a heartbeat is judged by the running daemon from the pings it receives (see `hmrt status`)",
                    Duration::ZERO,
                ),
                Bound::Ready(entry) => {
                    let outcome = sandbox.check(&entry.plugin, &task.check_call).await;
                    events.check_finished(
                        clock.now(),
                        task.name(),
                        &entry.name,
                        &outcome,
                        Duration::ZERO,
                    );
                }
            }
        });
    }
    running.join_all().await;
    let names: Vec<&str> = selected.iter().map(|t| t.name()).collect();
    let rows = report.rows(&names);
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", report::table(&rows));
    }
    Ok(ExitCode::from(exit_code(report::worst(&rows))))
}

pub(super) async fn validate(file: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(file) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let (sandbox, registry) = setup(&config, false).await?;
    let findings = crate::validate::validate(&config, &sandbox, &registry).await;
    let count = findings.all().count();
    for note in &findings.notes {
        println!("{note}");
    }
    if findings.is_empty() {
        println!(
            "{}: ok ({} tasks, {} plugins)",
            file.display(),
            config.tasks.len(),
            registry.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for finding in findings.all() {
        eprintln!("{finding}");
    }
    eprintln!("{}: {count} error(s)", file.display());
    Ok(ExitCode::from(1))
}
