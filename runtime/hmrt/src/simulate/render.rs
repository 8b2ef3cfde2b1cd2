//! A simulation's story, as text for a person or JSON for a program.

use std::fmt::Write as _;

use hmrt_config::Config;
use hmrt_policy::{DecisionKind, Timestamp};

use super::results::rfc3339;
use super::{Clock, Results, Step};

/// The story as text: one line per step, `+12.500s  web  unknown -> healthy  (...)`, times
/// from `origin` ([`Results::origin`]). `config` names each task's action.
pub fn render_text(steps: &[Step], origin: Timestamp, config: &Config) -> String {
    let rows: Vec<(String, &str, String)> = steps
        .iter()
        .map(|step| match step {
            Step::Decision(d) => (
                offset(d.at, origin),
                d.task.as_str(),
                describe(&d.kind, &d.task, config),
            ),
            Step::Backoff {
                task,
                at,
                next_attempt,
                not_before,
            } => (
                offset(*at, origin),
                task.as_str(),
                format!(
                    "backoff: attempt {next_attempt} not before {} (in {})",
                    offset(*not_before, origin),
                    seconds(not_before.0.saturating_sub(at.0))
                ),
            ),
        })
        .collect();
    let time_width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let task_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (time, task, text) in rows {
        let _ = writeln!(out, "{time:>time_width$}  {task:<task_width$}  {text}");
    }
    out
}

/// The decisions as JSON Lines (the backoff notes are not decisions and are left out).
pub fn render_json(steps: &[Step]) -> Result<String, serde_json::Error> {
    let mut out = String::new();
    for step in steps {
        if let Step::Decision(d) = step {
            out.push_str(&serde_json::to_string(d)?);
            out.push('\n');
        }
    }
    Ok(out)
}

/// The header of the text output for absolute times: what `+0.000s` is.
pub fn origin_line(results: &Results) -> Option<String> {
    match results.clock {
        Clock::Offsets => None,
        Clock::Absolute => Some(format!("# +0.000s is {}", rfc3339(results.origin()))),
    }
}

fn offset(at: Timestamp, origin: Timestamp) -> String {
    format!("+{}", seconds(at.0.saturating_sub(origin.0)))
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

fn describe(kind: &DecisionKind, task: &str, config: &Config) -> String {
    match kind {
        DecisionKind::StateChanged { from, to, reason } => format!("{from} -> {to}  ({reason})"),
        DecisionKind::Act { attempt } => {
            let action = config
                .task(task)
                .and_then(|t| t.on_failure.as_ref())
                .map_or("the action", |a| a.action.as_str());
            format!("act: {action} attempt {attempt}")
        }
        DecisionKind::HoldLifted { reason } => format!("hold lifted (was {reason})"),
        other => other.to_string(),
    }
}
