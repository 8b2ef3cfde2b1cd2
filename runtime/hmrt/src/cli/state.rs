//! The commands that read or steer the policy's state: `simulate`, `history`, `rearm`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use hmrt_config::Config;

use super::load_config;

pub(super) fn simulate(
    file: &Path,
    task: &str,
    results: &Path,
    seed: u64,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use crate::simulate;
    let config = match load_config(file) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let text = std::fs::read_to_string(results)
        .with_context(|| format!("{}: cannot read the results", results.display()))?;
    let results = simulate::parse_results(&text, results)?;
    let steps = simulate::replay(&config, task, &results, seed)?;
    if json {
        print!("{}", simulate::render_json(&steps)?);
    } else {
        if let Some(line) = simulate::origin_line(&results) {
            println!("{line}");
        }
        print!(
            "{}",
            simulate::render_text(&steps, results.origin(), &config)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A time for people: RFC 3339, UTC, milliseconds.
use crate::clock::rfc3339;

/// The config's task and its state file, or the exit code after saying why not: 2 for no such
/// task, 1 for no state yet.
pub(super) fn stored_state(
    file: &Path,
    task: &str,
) -> anyhow::Result<Result<(Config, PathBuf, crate::state::StateFile), ExitCode>> {
    use crate::state::{StateError, read_state_file, state_path};
    let config = match load_config(file) {
        Ok(config) => config,
        Err(code) => return Ok(Err(code)),
    };
    if config.task(task).is_none() {
        eprintln!("{}: no task named {task:?}", file.display());
        return Ok(Err(ExitCode::from(2)));
    }
    let path = state_path(&config.runtime.state_dir, task)?;
    match read_state_file(&path, Some(task)) {
        Ok(stored) => Ok(Ok((config, path, stored))),
        Err(StateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "{}: no state for task {task:?} yet (hmrt has not run it with this state_dir)",
                path.display()
            );
            Ok(Err(ExitCode::from(1)))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) fn history(file: &Path, task: &str, json: bool) -> anyhow::Result<ExitCode> {
    use hmrt_policy::ActionResult;
    let (config, path, stored) = match stored_state(file, task)? {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    if json {
        let mut out = String::new();
        for entry in crate::state::history(&stored.state) {
            out.push_str(&serde_json::to_string(&entry)?);
            out.push('\n');
        }
        print!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    let Some(task_config) = config.task(task) else {
        return Ok(ExitCode::from(2));
    };
    let policy = &task_config.policy;
    let state = &stored.state;
    let view = state.view(
        task,
        policy,
        crate::clock::Clock::now(&crate::clock::SystemClock),
    );
    let mut out = String::new();
    let since = view
        .since
        .map(|at| format!(" since {}", rfc3339(at)))
        .unwrap_or_default();
    out.push_str(&format!("task:       {task}\n"));
    out.push_str(&format!("state:      {}{since}\n", view.state));
    if policy.has_action {
        out.push_str(&format!(
            "restarts:   {} of {} within {}\n",
            view.restarts_in_window,
            view.max_restarts,
            hmrt_domain::duration::format(policy.restart_window)
        ));
        let next = view
            .next_action_not_before
            .map(|at| format!("; no action before {}", rfc3339(at)))
            .unwrap_or_default();
        out.push_str(&format!(
            "backoff:    position {} (the next action is attempt {}){next}\n",
            view.backoff_position,
            view.backoff_position.saturating_add(1)
        ));
    }
    for hold in &view.held {
        out.push_str(&format!("held:       {hold}\n"));
    }
    if crate::state::rearm_path(&config.runtime.state_dir, task).is_ok_and(|p| p.exists()) {
        out.push_str("re-arm:     requested, not yet taken by hmrt\n");
    }
    out.push_str(&format!(
        "saved:      {} ({})\n\n",
        rfc3339(stored.saved_at),
        path.display()
    ));
    // Every kept result and action, actions at the time they finished (or started, if running).
    let mut lines: Vec<(u64, u8, String)> = state
        .results()
        .map(|r| {
            let line = format!("{}  {:<16} {}", rfc3339(r.at), r.status.as_str(), r.message);
            (r.at.0, 0, line)
        })
        .collect();
    for a in state.actions() {
        let (at, what, message) = match (&a.result, a.finished) {
            (Some(ActionResult::Ok { message }), Some(at)) => (at, "action ok", message.as_str()),
            (Some(ActionResult::Error { error }), Some(at)) => (at, "action error", error.as_str()),
            _ => (a.started, "action running", ""),
        };
        let line = format!(
            "{}  {:<16} attempt {}: {message}",
            rfc3339(at),
            what,
            a.attempt
        );
        lines.push((at.0, 1, line));
    }
    lines.sort_by_key(|(at, kind, _)| (*at, *kind));
    if lines.is_empty() {
        out.push_str("no results yet\n");
    }
    for (_, _, line) in lines {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn rearm(file: &Path, task: &str) -> anyhow::Result<ExitCode> {
    use crate::state::{DaemonProbe, probe_daemon, request_rearm};
    let (config, path, stored) = match stored_state(file, task)? {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    let state = stored.state.state();
    if state != hmrt_policy::State::Failed {
        eprintln!(
            "task {task:?} is not failed (it is {state}, says {}): there is nothing to re-arm",
            path.display()
        );
        return Ok(ExitCode::from(1));
    }
    let dir = &config.runtime.state_dir;
    let request = request_rearm(
        dir,
        task,
        crate::clock::Clock::now(&crate::clock::SystemClock),
    )?;
    let pid = match probe_daemon(dir)? {
        DaemonProbe::NotRunning => {
            println!(
                "hmrt is not running on {}: {task} will be re-armed at its first check when hmrt starts (request: {})",
                dir.display(),
                request.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        DaemonProbe::Running { pid } => pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
    };
    // The daemon takes the request at the task's next check: one interval, plus the check that
    // may be running now.
    let wait = config
        .task(task)
        .map(|t| t.interval + t.timeout)
        .unwrap_or_default()
        + std::time::Duration::from_secs(5);
    let deadline = tokio::time::Instant::now() + wait;
    while request.exists() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if request.exists() {
        println!(
            "re-arm requested: the running hmrt{pid} re-arms {task} at its next check (request: {})",
            request.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let now = crate::state::read_state_file(&path, Some(task))
        .map(|f| f.state.state().to_string())
        .unwrap_or_else(|e| format!("unreadable ({e})"));
    println!(
        "re-armed {task}: the running hmrt{pid} took the request; {task} is now {now}, its restart budget and backoff start over"
    );
    Ok(ExitCode::SUCCESS)
}
