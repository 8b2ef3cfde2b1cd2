//! `hmrt run`: the daemon until SIGTERM or SIGINT.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::{load_config, setup};
use crate::tasks::bind;

pub(super) async fn run(file: &Path) -> anyhow::Result<ExitCode> {
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
