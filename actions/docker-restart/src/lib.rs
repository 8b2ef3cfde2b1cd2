//! hmrt's built-in `docker-restart` action: restarts a Docker container (or starts it, when it
//! is not running) and says what it did.

use hmrt_plugin::action::{Guest, Trigger};
use hmrt_plugin::docker::{self, Container};
use hmrt_plugin::log::{self, Level};
use hmrt_plugin::types::{Capability, Need, PluginInfo, Task};
use hmrt_plugin::{Config, one_line};

/// Longest piece of Docker's text put into a summary.
const SHOWN: usize = 200;

/// The container to restart: the config's `container`.
fn container(task: &Task) -> Result<String, String> {
    let c = Config::parse(&task.config, &["container"])?;
    Ok(c.required_string("container")?.to_owned())
}

/// What to do with a container in `state`: start one that does not run (a restart would first
/// wait out a stop of nothing), restart any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Start,
    Restart,
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Verb::Start => "start",
            Verb::Restart => "restart",
        }
    }
}

fn verb(before: Option<&Container>) -> Verb {
    match before.map(|c| c.state.as_str()) {
        Some("exited" | "created" | "dead") => Verb::Start,
        _ => Verb::Restart,
    }
}

/// How `c` was: `running, pid 41` or `exited (exit code 137)`.
fn how(c: &Container) -> String {
    let state = one_line(&c.state, SHOWN);
    match (c.pid, c.exit_code) {
        (Some(pid), _) => format!("{state}, pid {pid}"),
        (None, Some(code)) => format!("{state} (exit code {code})"),
        (None, None) => state,
    }
}

/// The one-line summary of `verb` from `before` (if it could be read) to `after`.
fn summary(
    name: &str,
    verb: Verb,
    before: Option<&Container>,
    after: &Container,
) -> Result<String, String> {
    let done = match verb {
        Verb::Start => "started",
        Verb::Restart => "restarted",
    };
    if after.state != "running" {
        return Err(format!("{name} is {} after it was {done}", how(after)));
    }
    let was = before
        .map(|b| format!(" (was {})", how(b)))
        .unwrap_or_default();
    Ok(format!("{done} {name}: now {}{was}", how(after)))
}

struct DockerRestart;

impl Guest for DockerRestart {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "docker-restart".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "Restarts a Docker container, or starts it if it is not running.".to_owned(),
            capabilities: vec![Capability::Docker],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        Ok(vec![Need::Docker(container(&task)?)])
    }

    fn run(task: Task, trigger: Trigger) -> Result<String, String> {
        let name = container(&task)?;
        // Only to choose start or restart and for the summary: when it cannot be read, a
        // restart still brings the container up.
        let before = docker::inspect(&name).ok();
        let verb = verb(before.as_ref());
        log::write(
            Level::Info,
            &format!(
                "{} {name} (attempt {}): {}",
                match verb {
                    Verb::Start => "starting",
                    Verb::Restart => "restarting",
                },
                trigger.attempt,
                trigger.message
            ),
        );
        let after = match verb {
            Verb::Start => docker::start(&name),
            Verb::Restart => docker::restart(&name),
        }
        .map_err(|e| format!("{} {name}: {}", verb.name(), e.describe()))?;
        summary(&name, verb, before.as_ref(), &after)
    }
}

hmrt_plugin::export_action!(DockerRestart);

#[cfg(test)]
mod tests {
    use super::*;

    fn c(state: &str, pid: Option<u32>, exit: Option<i64>) -> Container {
        Container {
            id: "0123".into(),
            name: "app".into(),
            state: state.into(),
            health: None,
            restart_count: 0,
            exit_code: exit,
            pid,
            started_at: String::new(),
        }
    }

    #[test]
    fn the_container_comes_from_the_config() {
        let task = |config: &str| Task {
            name: "web".into(),
            program: Some("web".into()),
            config: config.into(),
        };
        assert_eq!(
            container(&task(r#"{"container": "app"}"#)),
            Ok("app".into())
        );
        assert!(container(&task("{}")).unwrap_err().contains("`container`"));
        assert!(
            container(&task(r#"{"container": " "}"#))
                .unwrap_err()
                .contains("`container`")
        );
        assert!(
            container(&task(r#"{"containr": "a"}"#))
                .unwrap_err()
                .contains("`containr`")
        );
    }

    #[test]
    fn a_stopped_container_is_started_any_other_restarted() {
        assert_eq!(verb(Some(&c("exited", None, Some(137)))), Verb::Start);
        assert_eq!(verb(Some(&c("created", None, None))), Verb::Start);
        assert_eq!(verb(Some(&c("running", Some(4), None))), Verb::Restart);
        assert_eq!(verb(Some(&c("restarting", None, Some(1)))), Verb::Restart);
        assert_eq!(verb(None), Verb::Restart);
    }

    #[test]
    fn summaries() {
        let before = c("exited", None, Some(137));
        assert_eq!(
            summary(
                "app",
                Verb::Start,
                Some(&before),
                &c("running", Some(57), None)
            ),
            Ok("started app: now running, pid 57 (was exited (exit code 137))".into())
        );
        assert_eq!(
            summary(
                "app",
                Verb::Restart,
                Some(&c("running", Some(41), None)),
                &c("running", Some(57), None)
            ),
            Ok("restarted app: now running, pid 57 (was running, pid 41)".into())
        );
        assert_eq!(
            summary("app", Verb::Restart, None, &c("exited", None, Some(1))),
            Err("app is exited (exit code 1) after it was restarted".into())
        );
    }
}
