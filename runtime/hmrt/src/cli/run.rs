//! `hmrt run`: the daemon until SIGTERM or SIGINT.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::{load_config, setup};
use crate::clock::{Clock, SystemClock};
use crate::events::{Counters, Event, LogSubscriber};
use crate::tasks::bind;

/// The exit code of a config that `run` refuses (as `load_config` uses).
const CONFIG_ERROR: u8 = 2;

pub(super) async fn run(file: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(file) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let (sandbox, registry) = setup(&config).await?;
    // What `hmrt validate` refuses, `run` refuses too, with the same messages: a daemon that
    // starts on a wrong config would only leave tasks `unknown` forever.
    let findings = crate::validate::validate(&config, &sandbox, &registry).await;
    if !findings.config.is_empty() {
        for finding in &findings.config {
            eprintln!("{finding}");
        }
        eprintln!(
            "{}: {} error(s); not starting",
            file.display(),
            findings.config.len()
        );
        return Ok(ExitCode::from(CONFIG_ERROR));
    }
    let tasks = match bind(&config, &registry) {
        Ok(tasks) => tasks,
        Err(errors) => {
            for error in errors {
                eprintln!("{error}");
            }
            return Ok(ExitCode::from(CONFIG_ERROR));
        }
    };
    let clock = Arc::new(SystemClock);
    let daemon = crate::daemon::Daemon::new(
        &config,
        sandbox,
        tasks,
        vec![
            Arc::new(LogSubscriber::new()),
            Arc::new(Counters::default()),
        ],
        clock.clone(),
    )?;
    for problem in registry.problems() {
        daemon.events().emit(
            clock.now(),
            Event::PluginFailed {
                problem: problem.to_string(),
            },
        );
    }
    daemon.run(crate::daemon::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
