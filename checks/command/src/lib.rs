//! hmrt's built-in `command` check: runs a program and reads its exit code the Nagios way
//! (0 healthy, 1 degraded, 2 unhealthy, 3 unknown).

use hmrt_plugin::check::{CheckResult, Guest};
use hmrt_plugin::exec::{self, Command, Output};
use hmrt_plugin::types::{Capability, Need, PluginInfo, Status, Task};
use hmrt_plugin::{Config, millis_u32, one_line};
use std::time::Duration;

/// How long a message may be; the program's output can be anything.
const MAX_MESSAGE: usize = 200;

/// The check's settings, read from a task's config.
#[derive(Debug)]
struct Settings {
    program: String,
    args: Vec<String>,
    timeout: Duration,
}

impl Settings {
    fn from_json(json: &str) -> Result<Settings, String> {
        let c = Config::parse(json, &["program", "args", "timeout"])?;
        Ok(Settings {
            program: c.required_string("program")?.to_owned(),
            args: c.strings("args")?,
            timeout: c.duration("timeout")?.unwrap_or(Duration::from_secs(5)),
        })
    }
}

/// The verdict for what the program did.
fn judge(program: &str, out: &Output) -> (Status, String) {
    let stdout = one_line(&String::from_utf8_lossy(&out.stdout), MAX_MESSAGE);
    let line = if stdout.is_empty() {
        one_line(&String::from_utf8_lossy(&out.stderr), MAX_MESSAGE)
    } else {
        stdout
    };
    let (status, fallback) = match out.exit_code {
        Some(0) => (Status::Healthy, format!("{program} exited 0")),
        Some(1) => (Status::Degraded, format!("{program} exited 1")),
        Some(2) => (Status::Unhealthy, format!("{program} exited 2")),
        Some(3) => (Status::Unknown, format!("{program} exited 3")),
        Some(code) => {
            let msg = format!("{program} exited {code}");
            let msg = if line.is_empty() {
                msg
            } else {
                format!("{msg}: {line}")
            };
            return (Status::Unhealthy, msg);
        }
        None => {
            let msg = format!("{program} was killed by a signal");
            let msg = if line.is_empty() {
                msg
            } else {
                format!("{msg}: {line}")
            };
            return (Status::Unhealthy, msg);
        }
    };
    (status, if line.is_empty() { fallback } else { line })
}

struct CommandCheck;

impl Guest for CommandCheck {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "command".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "Runs a program and maps its exit code the Nagios way \
                      (0 healthy, 1 degraded, 2 unhealthy, 3 unknown)."
                .to_owned(),
            capabilities: vec![Capability::Exec],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        let s = Settings::from_json(&task.config)?;
        Ok(vec![Need::Exec(s.program)])
    }

    fn check(task: Task) -> CheckResult {
        let (status, message) = match Settings::from_json(&task.config) {
            Err(e) => (Status::Unknown, format!("invalid config: {e}")),
            Ok(s) => match exec::run(&Command {
                program: s.program.clone(),
                args: s.args,
                timeout_ms: millis_u32(s.timeout),
                input: None,
            }) {
                Ok(out) => judge(&s.program, &out),
                Err(e) => (
                    Status::Unhealthy,
                    format!("{}: {}", s.program, e.describe()),
                ),
            },
        };
        CheckResult {
            status,
            message,
            metrics: vec![],
        }
    }
}

hmrt_plugin::export_check!(CommandCheck);

#[cfg(test)]
mod tests {
    use super::*;

    fn out(code: Option<i32>, stdout: &str, stderr: &str) -> Output {
        Output {
            exit_code: code,
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    #[test]
    fn nagios_exit_codes() {
        let cases = [
            (Some(0), "OK - fine\nperf", "", Status::Healthy, "OK - fine"),
            (
                Some(1),
                "",
                " WARNING: slow \n",
                Status::Degraded,
                "WARNING: slow",
            ),
            (Some(2), "CRIT", "ignored", Status::Unhealthy, "CRIT"),
            (Some(3), "", "", Status::Unknown, "probe exited 3"),
            (
                Some(127),
                "",
                "not found",
                Status::Unhealthy,
                "probe exited 127: not found",
            ),
            (Some(-1), "", "", Status::Unhealthy, "probe exited -1"),
            (
                None,
                "",
                "",
                Status::Unhealthy,
                "probe was killed by a signal",
            ),
        ];
        for (code, stdout, stderr, status, message) in cases {
            let (got_status, got_message) = judge("probe", &out(code, stdout, stderr));
            assert_eq!(
                (got_status, got_message.as_str()),
                (status, message),
                "{code:?}"
            );
        }
    }

    #[test]
    fn long_output_is_cut() {
        let (_, message) = judge("probe", &out(Some(0), &"x".repeat(1000), ""));
        assert_eq!(message.chars().count(), MAX_MESSAGE);
    }

    #[test]
    fn config() {
        let s = Settings::from_json(r#"{"program": "check_disk", "args": ["-w", "10%"]}"#).unwrap();
        assert_eq!((s.program.as_str(), s.args.len()), ("check_disk", 2));
        for (json, key) in [
            (r#"{}"#, "`program`"),
            (r#"{"program": "x", "arg": []}"#, "`arg`"),
            (r#"{"program": "x", "args": "-v"}"#, "`args`"),
            (r#"{"program": "x", "timeout": "5 parsecs"}"#, "`timeout`"),
            (r#"{"program": "x", "timeout": "2 years"}"#, "`timeout`"),
        ] {
            let err = Settings::from_json(json).unwrap_err();
            assert!(err.contains(key), "{json}: {err}");
        }
    }
}
