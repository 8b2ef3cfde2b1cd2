//! hmrt's built-in `exec` action: a receiver that hands an `[[alert]]` route's notices to a
//! program the route grants (`grants = { exec = ["notify-ops"] }`), as one JSON object on the
//! program's standard input. Like every `exec` call: no shell, an empty environment, `/` as the
//! working directory, output capped, and killed at the timeout.
//!
//! The notice contract is the `webhook` action's (see its docs): the host adds the notice to the
//! config under `notice` when it delivers. The program reads exactly that object (one line of
//! JSON, then end of input). Exit 0 is a delivery; any other exit is a failure the host retries
//! with backoff, so the program should be safe to run again for the same notice `id`.
//!
//! # Config
//!
//! - `program` (required): the program, by a name the route's exec grants list.
//! - `args`: its arguments, a list of strings; default none.
//! - `timeout`: how long it may run, default `"10s"`.

// Each receiver reads the parts of a notice it shows, so some are unused here.
#[allow(dead_code)]
#[path = "../../webhook/src/receiver.rs"]
mod receiver;

use hmrt_plugin::action::{Guest, Trigger};
use hmrt_plugin::exec::{self, Command, Output};
use hmrt_plugin::log::{self, Level};
use hmrt_plugin::types::{Capability, Need, PluginInfo, Task};
use hmrt_plugin::{Config, millis_u32, one_line};
use receiver::{NOTICE_KEY, Notice, body_excerpt};
use std::time::Duration;

const KEYS: &[&str] = &["program", "args", "timeout", NOTICE_KEY];

/// The receiver config (without the notice).
#[derive(Debug)]
struct Settings {
    program: String,
    args: Vec<String>,
    timeout: Duration,
}

impl Settings {
    fn from_json(json: &str) -> Result<(Settings, Config), String> {
        let c = Config::parse(json, KEYS)?;
        let settings = Settings {
            program: c.required_string("program")?.to_owned(),
            args: c.strings("args")?,
            timeout: c.duration("timeout")?.unwrap_or(Duration::from_secs(10)),
        };
        Ok((settings, c))
    }
}

/// The action's result for what the program did.
fn judge(program: &str, out: &Output) -> Result<String, String> {
    match out.exit_code {
        Some(0) => Ok(format!("{program} took the notice (exit 0)")),
        Some(code) => Err(format!(
            "{program} exited {code}: {}",
            body_excerpt(&out.stderr)
        )),
        None => Err(format!(
            "{program} was killed by a signal: {}",
            body_excerpt(&out.stderr)
        )),
    }
}

struct Exec;

impl Guest for Exec {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "exec".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "Hands alert notices as JSON to a granted program on its standard input."
                .to_owned(),
            capabilities: vec![Capability::Exec],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        let (s, _) = Settings::from_json(&task.config)?;
        Ok(vec![Need::Exec(s.program)])
    }

    fn run(task: Task, trigger: Trigger) -> Result<String, String> {
        let (s, c) = Settings::from_json(&task.config)?;
        let notice = Notice::from_config(&c)?;
        let mut input = serde_json::to_vec(notice.raw).map_err(|e| e.to_string())?;
        input.push(b'\n');
        log::write(
            Level::Info,
            &format!(
                "handing {} notice {} for {} to {} (attempt {})",
                notice.kind, notice.id, notice.task, s.program, trigger.attempt
            ),
        );
        let command = Command {
            program: s.program.clone(),
            args: s.args.clone(),
            timeout_ms: millis_u32(s.timeout),
            input: Some(input),
        };
        match exec::run(&command) {
            Ok(out) => judge(&s.program, &out),
            Err(e) => Err(one_line(&format!("{}: {}", s.program, e.describe()), 1000)),
        }
    }
}

hmrt_plugin::export_action!(Exec);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_verdicts() {
        let e = Settings::from_json(r#"{"args": ["x"]}"#).unwrap_err();
        assert!(e.contains("`program`"), "{e}");
        let e = Settings::from_json(r#"{"program": "p", "shell": "sh"}"#).unwrap_err();
        assert!(e.contains("shell"), "{e}");
        let (s, _) = Settings::from_json(r#"{"program": "p", "args": ["-q"]}"#).unwrap();
        assert_eq!(
            (s.args, s.timeout),
            (vec!["-q".to_owned()], Duration::from_secs(10))
        );

        let out = |code, err: &str| Output {
            exit_code: code,
            stdout: vec![],
            stderr: err.as_bytes().to_vec(),
        };
        assert!(judge("p", &out(Some(0), "")).is_ok());
        let e = judge("p", &out(Some(3), "no route\nto pager")).unwrap_err();
        assert!(e.contains("exited 3") && e.contains("no route"), "{e}");
        assert!(judge("p", &out(None, "")).unwrap_err().contains("signal"));
    }
}
