//! hmrt's built-in `supervisor-restart` action: restarts a supervisord program (by default the
//! task's own) and says which process replaced which.

use hmrt_plugin::Config;
use hmrt_plugin::action::{Guest, Trigger};
use hmrt_plugin::log::{self, Level};
use hmrt_plugin::supervisor::{self, ProcessState, ProcessStatus};
use hmrt_plugin::types::{Capability, Need, PluginInfo, Task};

/// The program to restart: the config's `program`, else the task's.
fn program(task: &Task) -> Result<String, String> {
    let c = Config::parse(&task.config, &["program"])?;
    match c.string("program")? {
        Some(p) if p.trim().is_empty() => Err("`program` must not be empty".to_owned()),
        Some(p) => Ok(p.to_owned()),
        None => task
            .program
            .clone()
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| "task has no `program` and the action config names none".to_owned()),
    }
}

/// The one-line summary of a restart from `before` (if it could be read) to `after`.
fn summary(
    program: &str,
    before: Option<&ProcessStatus>,
    after: &ProcessStatus,
) -> Result<String, String> {
    if !matches!(after.state, ProcessState::Running | ProcessState::Starting) {
        return Err(format!(
            "{program} is {} after the restart: {}",
            state_name(after.state),
            after.description
        ));
    }
    Ok(match (before.and_then(|b| b.pid), after.pid) {
        (Some(old), Some(new)) => format!("restarted {program}: pid {old} -> {new}"),
        (None, Some(new)) => format!("restarted {program}: pid {new} (was not running)"),
        (_, None) => format!("restarted {program}: now {}", state_name(after.state)),
    })
}

/// supervisord's own name for a state.
fn state_name(state: ProcessState) -> &'static str {
    match state {
        ProcessState::Stopped => "STOPPED",
        ProcessState::Starting => "STARTING",
        ProcessState::Running => "RUNNING",
        ProcessState::Backoff => "BACKOFF",
        ProcessState::Stopping => "STOPPING",
        ProcessState::Exited => "EXITED",
        ProcessState::Fatal => "FATAL",
        ProcessState::Unknown => "UNKNOWN",
    }
}

struct SupervisorRestart;

impl Guest for SupervisorRestart {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "supervisor-restart".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "Restarts a supervisord program, by default the task's own.".to_owned(),
            capabilities: vec![Capability::Supervisor],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        Ok(vec![Need::Supervisor(program(&task)?)])
    }

    fn run(task: Task, trigger: Trigger) -> Result<String, String> {
        let program = program(&task)?;
        log::write(
            Level::Info,
            &format!(
                "restarting {program} (attempt {}): {}",
                trigger.attempt, trigger.message
            ),
        );
        // Only for the summary: a failure to read it must not stop the restart.
        let before = supervisor::status(&program).ok();
        let after = supervisor::restart(&program)
            .map_err(|e| format!("restart {program}: {}", e.describe()))?;
        summary(&program, before.as_ref(), &after)
    }
}

hmrt_plugin::export_action!(SupervisorRestart);

#[cfg(test)]
mod tests {
    use super::*;

    fn task(program: Option<&str>, config: &str) -> Task {
        Task {
            name: "web".into(),
            program: program.map(str::to_owned),
            config: config.into(),
        }
    }

    fn status(state: ProcessState, pid: Option<u32>) -> ProcessStatus {
        ProcessStatus {
            name: "web".into(),
            state,
            pid,
            description: "Exited too quickly".into(),
        }
    }

    #[test]
    fn program_comes_from_config_then_task() {
        assert_eq!(program(&task(Some("web"), "{}")), Ok("web".into()));
        assert_eq!(
            program(&task(Some("web"), r#"{"program": "api"}"#)),
            Ok("api".into())
        );
        assert_eq!(
            program(&task(None, r#"{"program": "api"}"#)),
            Ok("api".into())
        );
        assert_eq!(
            program(&task(None, "{}")),
            Err("task has no `program` and the action config names none".into())
        );
        assert!(
            program(&task(Some("web"), r#"{"programme": "x"}"#))
                .unwrap_err()
                .contains("`programme`")
        );
        assert!(
            program(&task(Some("web"), r#"{"program": ""}"#))
                .unwrap_err()
                .contains("`program`")
        );
    }

    #[test]
    fn summaries() {
        let running = |pid| status(ProcessState::Running, Some(pid));
        let cases = [
            (
                Some(running(41)),
                running(57),
                "restarted web: pid 41 -> 57",
            ),
            (None, running(57), "restarted web: pid 57 (was not running)"),
            (
                Some(status(ProcessState::Stopped, None)),
                running(57),
                "restarted web: pid 57 (was not running)",
            ),
            (
                None,
                status(ProcessState::Starting, None),
                "restarted web: now STARTING",
            ),
        ];
        for (before, after, want) in cases {
            assert_eq!(summary("web", before.as_ref(), &after), Ok(want.to_owned()));
        }
        let err = summary(
            "web",
            Some(&running(41)),
            &status(ProcessState::Backoff, None),
        )
        .unwrap_err();
        assert_eq!(err, "web is BACKOFF after the restart: Exited too quickly");
    }
}
