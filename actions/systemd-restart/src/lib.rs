//! hmrt's built-in `systemd-restart` action: restarts a systemd unit and says what it became.
//!
//! ```toml
//! on_failure = { action = "systemd-restart", config = { unit = "nginx.service" }, grants = { systemd = ["nginx.service"] } }
//! ```

use hmrt_plugin::Config;
use hmrt_plugin::action::{Guest, Trigger};
use hmrt_plugin::log::{self, Level};
use hmrt_plugin::systemd::{self, UnitStatus};
use hmrt_plugin::types::{Capability, Need, PluginInfo, Task};

/// Unit types systemd has (a unit name ends in one).
const UNIT_TYPES: &[&str] = &[
    "service",
    "socket",
    "target",
    "timer",
    "mount",
    "automount",
    "path",
    "slice",
    "scope",
    "swap",
    "device",
];

/// The unit to restart: the config's `unit`, a whole unit name.
fn unit(task: &Task) -> Result<String, String> {
    let c = Config::parse(&task.config, &["unit"])?;
    let text = c.required_string("unit")?;
    let typed = text
        .rsplit_once('.')
        .is_some_and(|(stem, kind)| !stem.is_empty() && UNIT_TYPES.contains(&kind));
    let chars = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '\\' | '@'));
    if typed && chars && text.len() <= 255 {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`unit` must be a whole unit name with its type, such as \"nginx.service\", not {text:?}"
        ))
    }
}

/// `unit` as `active (running)`.
fn state(unit: &UnitStatus) -> String {
    format!("{} ({})", unit.active_state, unit.sub_state)
}

/// The one-line summary of a restart from `before` (if it could be read) to `after`; an error
/// when the unit is not up after it.
fn summary(before: Option<&UnitStatus>, after: &UnitStatus) -> Result<String, String> {
    let name = &after.name;
    if !matches!(
        after.active_state.as_str(),
        "active" | "activating" | "reloading"
    ) {
        let result = if after.result.is_empty() {
            String::new()
        } else {
            format!(", result {}", after.result)
        };
        return Err(format!(
            "{name} is {} after the restart{result}",
            state(after)
        ));
    }
    let was = before.map_or_else(String::new, |b| format!(" (was {})", state(b)));
    Ok(match (before.and_then(|b| b.main_pid), after.main_pid) {
        (Some(old), Some(new)) => {
            format!("restarted {name}: pid {old} -> {new}, now {}", state(after))
        }
        (None, Some(new)) => format!("restarted {name}: pid {new}, now {}{was}", state(after)),
        (_, None) => format!("restarted {name}: now {}{was}", state(after)),
    })
}

struct SystemdRestart;

impl Guest for SystemdRestart {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "systemd-restart".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "Restarts a systemd unit and reports its state after.".to_owned(),
            capabilities: vec![Capability::Systemd],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        Ok(vec![Need::Systemd(unit(&task)?)])
    }

    fn run(task: Task, trigger: Trigger) -> Result<String, String> {
        let unit = unit(&task)?;
        log::write(
            Level::Info,
            &format!(
                "restarting {unit} (attempt {}): {}",
                trigger.attempt, trigger.message
            ),
        );
        // Only for the summary: a failure to read it must not stop the restart.
        let before = systemd::unit(&unit).ok();
        let after =
            systemd::restart(&unit).map_err(|e| format!("restart {unit}: {}", e.describe()))?;
        summary(before.as_ref(), &after)
    }
}

hmrt_plugin::export_action!(SystemdRestart);

#[cfg(test)]
mod tests {
    use super::*;

    fn task(config: &str) -> Task {
        Task {
            name: "web".into(),
            program: Some("web".into()),
            config: config.into(),
        }
    }

    fn status(active: &str, sub: &str, pid: Option<u32>) -> UnitStatus {
        UnitStatus {
            name: "nginx.service".into(),
            active_state: active.into(),
            sub_state: sub.into(),
            result: "exit-code".into(),
            n_restarts: 0,
            main_pid: pid,
        }
    }

    #[test]
    fn the_unit_comes_from_the_config() {
        assert_eq!(
            unit(&task(r#"{"unit": "nginx.service"}"#)),
            Ok("nginx.service".into())
        );
        for (config, key) in [
            ("{}", "`unit`"),
            (r#"{"unit": "nginx"}"#, "`unit`"),
            (r#"{"unit": "a b.service"}"#, "`unit`"),
            (r#"{"unit": "nginx.service", "program": "x"}"#, "`program`"),
        ] {
            let err = unit(&task(config)).unwrap_err();
            assert!(err.contains(key), "{config}: {err}");
        }
    }

    #[test]
    fn summaries() {
        let failed = status("failed", "failed", None);
        let running = |pid| status("active", "running", Some(pid));
        assert_eq!(
            summary(Some(&running(41)), &running(57)),
            Ok("restarted nginx.service: pid 41 -> 57, now active (running)".into())
        );
        assert_eq!(
            summary(Some(&failed), &running(57)),
            Ok(
                "restarted nginx.service: pid 57, now active (running) (was failed (failed))"
                    .into()
            )
        );
        assert_eq!(
            summary(None, &status("activating", "start", None)),
            Ok("restarted nginx.service: now activating (start)".into())
        );
        assert_eq!(
            summary(Some(&running(41)), &failed),
            Err("nginx.service is failed (failed) after the restart, result exit-code".into())
        );
    }
}
