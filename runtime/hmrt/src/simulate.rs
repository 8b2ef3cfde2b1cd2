//! `hmrt simulate`: replays a timestamped sequence of results through the policy engine and
//! tells what would have happened and when.
//!
//! The engine is [`hmrt_policy::Engine`], built from the config's tasks exactly as `hmrt run`
//! builds it ([`policies`]), so a simulation runs the same rules, thresholds, backoff, budget,
//! start periods, dependencies and flapping as the daemon. Only the jitter seed differs: the
//! daemon draws one at random, a simulation uses a fixed one (`--seed`, default 0) so the same
//! inputs always print the same output.
//!
//! # The results file
//!
//! One entry per line. Blank lines and lines whose first non-blank character is `#` are
//! ignored (a `#` later in a line is part of the message). Two forms, which may be mixed:
//!
//! **Text**: `<time> [task=<name>] <what> [message...]`
//!
//! - `<time>` is either an offset from the start as a humane duration (`0s`, `1500ms`, `2m`,
//!   `1m30s`, `4.5s`), or an absolute time in RFC 3339 (`2026-11-23T10:00:00.250Z`, or with an
//!   offset such as `+01:00`). A file uses one kind only: offsets are what a person writes by
//!   hand, absolute times what an export writes. Offsets count from 0; with absolute times the
//!   first entry is the start (`+0.000s` in the output).
//! - `task=<name>` (optional) feeds the entry to another task of the config; without it the
//!   entry is for the task named by `--task`.
//! - `<what>` is a check status, `healthy`, `degraded`, `unhealthy` or `unknown`, or the outcome
//!   of the action the engine asked for: `action-ok` or `action-error`.
//! - The rest of the line is the message (the check's message, the action's outcome or error).
//!
//! **JSON Lines**: a line starting with `{` is one JSON object:
//!
//! ```text
//! {"at": 1795428000250, "status": "unhealthy", "message": "connection refused"}
//! {"at": 1795428001000, "action": "ok", "message": "restarted web"}
//! {"at": 1795428001000, "action": "error", "message": "supervisor: SPAWN_ERROR"}
//! {"at": 1795428002000, "task": "db", "status": "healthy"}
//! ```
//!
//! - `at` (required): the time, in milliseconds since the UNIX epoch (an absolute time, so a
//!   JSON entry does not mix with text offsets);
//! - exactly one of `status` (`healthy|degraded|unhealthy|unknown`: a check result) and
//!   `action` (`ok|error`: an action's outcome);
//! - `message` (optional, default empty) and `task` (optional, as `task=` above).
//!
//! Other fields are ignored, so an export may carry more (an attempt number, a duration).
//!
//! # Rules
//!
//! - Times never go backwards; entries at the same time are taken in file order.
//! - When the engine asks for an action, the outcome is the next entry for that task if that
//!   entry is `action-ok`/`action-error` (at that entry's time: when the action finished).
//!   Otherwise (the next entry for the task is a check, or there is none) the action is assumed
//!   to have succeeded at the instant it was asked for, and the output says `(assumed ok)`.
//! - An action outcome when the engine asked for no action is an error: the file and the policy
//!   disagree (typically a file written for another config).
//! - Every task of the config exists in the engine, but only the entries in the file are ever
//!   observed. A task that has no entries stays `unknown`, so a task that `depends_on` it is held
//!   from the start: give the dependency's results with `task=<name>` (a `healthy` at `0s` is
//!   enough to release the hold).
//! - A replay starts from a fresh state: every task `unknown`, no restart budget spent, the
//!   backoff at its start (as `hmrt run` with no state file).
//! - Errors name `file:line` and what is wrong.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use hmrt_config::Config;
use hmrt_policy::{Decision, DecisionKind, Engine, PolicyConfig, State, Status, Timestamp};

/// A line of the results file that is not a valid entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {problem}", file.display())]
pub struct ResultsError {
    /// The results file.
    pub file: PathBuf,
    /// The line, counted from 1.
    pub line: usize,
    /// What is wrong with it.
    pub problem: String,
}

/// A simulation that cannot run, or cannot go on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimulateError {
    /// `--task` names no task of the config.
    #[error("{}: no task named {task:?} (the tasks are: {})", config.display(), known.join(", "))]
    UnknownTask {
        /// The config file.
        config: PathBuf,
        /// The name given.
        task: String,
        /// The config's tasks, in file order.
        known: Vec<String>,
    },
    /// An entry's `task=` names no task of the config.
    #[error("{}:{line}: no task named {task:?} in {}", file.display(), config.display())]
    UnknownEntryTask {
        /// The results file.
        file: PathBuf,
        /// The entry's line.
        line: usize,
        /// The name given.
        task: String,
        /// The config file.
        config: PathBuf,
    },
    /// An action outcome where the engine asked for no action.
    #[error(
        "{}:{line}: an action outcome for {task:?}, but the policy asked for no action here ({task} is {state})",
        file.display()
    )]
    NoActionAsked {
        /// The results file.
        file: PathBuf,
        /// The entry's line.
        line: usize,
        /// The task.
        task: String,
        /// The task's state at that point.
        state: State,
    },
    /// The policy rejected the config's tasks (the config loader should have caught it).
    #[error("{}: {problem}", config.display())]
    Policy {
        /// The config file.
        config: PathBuf,
        /// What the policy said.
        problem: hmrt_policy::ConfigError,
    },
    /// The policy refused a call. The checks above should make this impossible.
    #[error("{}:{line}: {problem}", file.display())]
    Refused {
        /// The results file.
        file: PathBuf,
        /// The entry's line.
        line: usize,
        /// What the policy said.
        problem: hmrt_policy::PolicyError,
    },
}

/// How the times of a results file are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Offsets from the start (`1m30s`): the start is time 0.
    Offsets,
    /// Absolute times (RFC 3339, or JSON's milliseconds): the first entry is the start.
    Absolute,
}

/// What an entry reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// A check result.
    Check(Status),
    /// The outcome of the action the engine asked for: `true` if it ran, `false` if it failed.
    Action {
        /// Whether the action ran.
        ok: bool,
    },
}

/// One entry of a results file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its line in the file, counted from 1.
    pub line: usize,
    /// When it happened.
    pub at: Timestamp,
    /// The task it is for; `None`: the simulated task.
    pub task: Option<String>,
    /// What it reports.
    pub what: What,
    /// The check's message, or the action's outcome or error.
    pub message: String,
}

/// A parsed results file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Results {
    /// The file it was read from (named in errors).
    pub file: PathBuf,
    /// How its times are written.
    pub clock: Clock,
    /// Its entries, in file order (and so in time order).
    pub entries: Vec<Entry>,
}

impl Results {
    /// The time shown as `+0.000s`: 0 for offsets, the first entry's time for absolute times.
    pub fn origin(&self) -> Timestamp {
        match self.clock {
            Clock::Offsets => Timestamp(0),
            Clock::Absolute => self.entries.first().map_or(Timestamp(0), |e| e.at),
        }
    }
}

/// One line of a simulation's story.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// What the engine decided.
    Decision(Decision),
    /// An action finished: the backoff puts the next one no earlier than `not_before`.
    Backoff {
        /// The task.
        task: String,
        /// When the action finished.
        at: Timestamp,
        /// The next attempt's number.
        next_attempt: u32,
        /// No action before this time.
        not_before: Timestamp,
    },
}

/// The message given to the engine for an action outcome the file did not give. The engine
/// shows it in its transition, as `attempt N finished (assumed ok)`.
pub const ASSUMED_OK: &str = "assumed ok";

/// Parses a results file's `text`; `file` is named in errors.
pub fn parse_results(text: &str, file: &Path) -> Result<Results, ResultsError> {
    let mut entries: Vec<Entry> = Vec::new();
    // The kind of time the first entry used, and its line.
    let mut clock: Option<(Clock, usize)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let error = |problem: String| ResultsError {
            file: file.to_path_buf(),
            line,
            problem,
        };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (entry_clock, entry) = if trimmed.starts_with('{') {
            parse_json(trimmed, line).map_err(error)?
        } else {
            parse_text(trimmed, line).map_err(error)?
        };
        match clock {
            None => clock = Some((entry_clock, line)),
            Some((first, first_line)) if first != entry_clock => {
                let (this, that) = match entry_clock {
                    Clock::Offsets => ("an offset from the start", "absolute times"),
                    Clock::Absolute => ("an absolute time", "offsets from the start"),
                };
                return Err(error(format!(
                    "{this}, but the file uses {that} (since line {first_line}); use one kind of time in a file"
                )));
            }
            Some(_) => {}
        }
        if let Some(previous) = entries.last()
            && entry.at < previous.at
        {
            return Err(error(format!(
                "the time goes backwards: {} is before line {}'s {}",
                show_time(entry_clock, entry.at),
                previous.line,
                show_time(entry_clock, previous.at)
            )));
        }
        entries.push(entry);
    }
    Ok(Results {
        file: file.to_path_buf(),
        clock: clock.map_or(Clock::Offsets, |(c, _)| c),
        entries,
    })
}

/// A time as the file writes it, for error messages.
fn show_time(clock: Clock, at: Timestamp) -> String {
    match clock {
        Clock::Offsets => hmrt_domain::duration::format(Duration::from_millis(at.0)),
        Clock::Absolute => rfc3339(at),
    }
}

fn rfc3339(at: Timestamp) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(at.0)).to_string()
}

fn parse_text(line_text: &str, line: usize) -> Result<(Clock, Entry), String> {
    let mut rest = line_text;
    let mut word = || {
        let text = rest.trim_start();
        let end = text.find(char::is_whitespace).unwrap_or(text.len());
        let (w, r) = text.split_at(end);
        rest = r;
        w
    };
    let time = word();
    let (clock, at) = parse_time(time)?;
    let mut what_word = word();
    let mut task = None;
    if let Some(name) = what_word.strip_prefix("task=") {
        if name.is_empty() {
            return Err("task= names no task".to_string());
        }
        task = Some(name.to_string());
        what_word = word();
    }
    let what = match what_word {
        "" => {
            return Err(format!(
                "nothing after the time {time:?}: expected a status (healthy, degraded, unhealthy, unknown) or action-ok / action-error"
            ));
        }
        "action-ok" => What::Action { ok: true },
        "action-error" => What::Action { ok: false },
        other => What::Check(other.parse::<Status>().map_err(|_| {
            format!(
                "unknown status {other:?}: expected healthy, degraded, unhealthy, unknown, action-ok or action-error"
            )
        })?),
    };
    Ok((
        clock,
        Entry {
            line,
            at,
            task,
            what,
            message: rest.trim().to_string(),
        },
    ))
}

/// An offset (`1m30s`) or an RFC 3339 time.
fn parse_time(text: &str) -> Result<(Clock, Timestamp), String> {
    // A date starts with four digits and a dash; no duration does.
    let looks_absolute = text.len() > 4
        && text.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && text.as_bytes()[4] == b'-';
    if looks_absolute {
        let at = parse_rfc3339(text).map_err(|e| {
            format!("bad time {text:?}: {e} (expected RFC 3339, such as 2026-11-23T10:00:00.250Z)")
        })?;
        Ok((Clock::Absolute, at))
    } else {
        let d = hmrt_domain::duration::parse(text).map_err(|e| {
            format!(
                "bad time {text:?}: {e}; expected an offset such as 0s, 1500ms, 1m30s, or an RFC 3339 time"
            )
        })?;
        Ok((Clock::Offsets, Timestamp(millis(d))))
    }
}

/// RFC 3339 with `Z` or a numeric offset (humantime reads only UTC, so the offset is applied
/// here).
fn parse_rfc3339(text: &str) -> Result<Timestamp, String> {
    let bytes = text.as_bytes();
    let (utc_text, offset_minutes): (String, i64) = if text.ends_with(['Z', 'z']) {
        (format!("{}Z", &text[..text.len() - 1]), 0)
    } else if bytes.len() > 6
        && matches!(bytes[bytes.len() - 6], b'+' | b'-')
        && bytes[bytes.len() - 3] == b':'
    {
        let (local, offset) = text.split_at(text.len() - 6);
        let part = |range: std::ops::Range<usize>, max: i64| {
            offset
                .get(range)
                .and_then(|p| p.parse::<i64>().ok())
                .filter(|n| (0..=max).contains(n))
                .ok_or_else(|| format!("bad UTC offset {offset:?}"))
        };
        let (hours, minutes) = (part(1..3, 23)?, part(4..6, 59)?);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        (format!("{local}Z"), sign * (hours * 60 + minutes))
    } else {
        return Err("no time zone (end it with Z or an offset such as +01:00)".to_string());
    };
    let time = humantime::parse_rfc3339(&utc_text).map_err(|e| e.to_string())?;
    let ms = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "before 1970".to_string())
        .map(millis)?;
    let ms = i128::from(ms) - i128::from(offset_minutes) * 60_000;
    u64::try_from(ms)
        .map(Timestamp)
        .map_err(|_| "before 1970".to_string())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The JSON form of an entry. Unknown fields are ignored (see the module docs).
#[derive(serde::Deserialize)]
struct JsonEntry {
    at: u64,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    task: Option<String>,
}

fn parse_json(text: &str, line: usize) -> Result<(Clock, Entry), String> {
    let json: JsonEntry = serde_json::from_str(text).map_err(|e| format!("bad JSON entry: {e}"))?;
    let what = match (json.status.as_deref(), json.action.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(
                "an entry has either \"status\" (a check) or \"action\" (an action's outcome), not both"
                    .to_string(),
            );
        }
        (None, None) => {
            return Err(
                "the entry has neither \"status\" (a check) nor \"action\" (an action's outcome)"
                    .to_string(),
            );
        }
        (Some(status), None) => What::Check(status.parse::<Status>().map_err(|_| {
            format!("unknown status {status:?}: expected healthy, degraded, unhealthy or unknown")
        })?),
        (None, Some("ok")) => What::Action { ok: true },
        (None, Some("error")) => What::Action { ok: false },
        (None, Some(other)) => {
            return Err(format!(
                "unknown action outcome {other:?}: expected \"ok\" or \"error\""
            ));
        }
    };
    if json.task.as_deref() == Some("") {
        return Err("\"task\" names no task".to_string());
    }
    Ok((
        Clock::Absolute,
        Entry {
            line,
            at: Timestamp(json.at),
            task: json.task,
            what,
            message: json.message.unwrap_or_default(),
        },
    ))
}

/// Every task's policy, by name: what the engine is built from, in `hmrt run` and here.
pub fn policies(config: &Config) -> BTreeMap<String, PolicyConfig> {
    config
        .tasks
        .iter()
        .map(|t| (t.name.clone(), t.policy.clone()))
        .collect()
}

/// Replays `results` for `task` through an engine built from `config` with jitter `seed`, and
/// returns the decisions with backoff notes between them.
pub fn replay(
    config: &Config,
    task: &str,
    results: &Results,
    seed: u64,
) -> Result<Vec<Step>, SimulateError> {
    if config.task(task).is_none() {
        return Err(SimulateError::UnknownTask {
            config: config.file.clone(),
            task: task.to_string(),
            known: config.tasks.iter().map(|t| t.name.clone()).collect(),
        });
    }
    let engine = Engine::new(policies(config), seed).map_err(|problem| SimulateError::Policy {
        config: config.file.clone(),
        problem,
    })?;
    let mut replay = Replay {
        engine,
        config,
        results,
        task,
        steps: Vec::new(),
    };
    for index in 0..results.entries.len() {
        replay.entry(index)?;
    }
    Ok(replay.steps)
}

/// A replay in progress.
struct Replay<'a> {
    engine: Engine,
    config: &'a Config,
    results: &'a Results,
    /// The task entries without `task=` are for.
    task: &'a str,
    steps: Vec<Step>,
}

impl Replay<'_> {
    fn task_of(&self, entry: &Entry) -> String {
        entry.task.clone().unwrap_or_else(|| self.task.to_string())
    }

    fn refused(&self, index: usize) -> impl Fn(hmrt_policy::PolicyError) -> SimulateError + '_ {
        move |problem| SimulateError::Refused {
            file: self.results.file.clone(),
            line: self.results.entries[index].line,
            problem,
        }
    }

    /// Entry `index`: first every policy timer that runs out before it (as the daemon wakes a
    /// task at that instant), then the entry itself.
    fn entry(&mut self, index: usize) -> Result<(), SimulateError> {
        let entry = &self.results.entries[index];
        self.timers_before(index, entry.at)?;
        let name = self.task_of(entry);
        let Some(state) = self.engine.state(&name).map(|s| s.state()) else {
            return Err(SimulateError::UnknownEntryTask {
                file: self.results.file.clone(),
                line: entry.line,
                task: name,
                config: self.config.file.clone(),
            });
        };
        let decisions = match entry.what {
            What::Check(status) => self
                .engine
                .observe(&name, entry.at, status, &entry.message)
                .map_err(self.refused(index))?,
            What::Action { ok } => {
                if state != State::Restarting {
                    return Err(SimulateError::NoActionAsked {
                        file: self.results.file.clone(),
                        line: entry.line,
                        task: name,
                        state,
                    });
                }
                let result = if ok {
                    Ok(entry.message.clone())
                } else {
                    Err(entry.message.clone())
                };
                self.engine
                    .action_finished(&name, entry.at, result)
                    .map_err(self.refused(index))?
            }
        };
        let mut queue: VecDeque<Step> = decisions.into_iter().map(Step::Decision).collect();
        if matches!(entry.what, What::Action { .. }) {
            queue.extend(backoff_note(&self.engine, &name, entry.at));
        }
        self.settle(queue, index + 1)
    }

    /// Fires, in time order, every timer of every task that runs out before `before`, as the
    /// daemon wakes each task's loop. A timer already past when it became due (a hold lifted by
    /// another task's entry) fires at the time of that entry, as the daemon's does at once.
    fn timers_before(&mut self, index: usize, before: Timestamp) -> Result<(), SimulateError> {
        let floor = index
            .checked_sub(1)
            .map(|i| self.results.entries[i].at)
            .unwrap_or(Timestamp(0));
        // A wake that decides nothing is not taken again at the same instant (per task), so
        // the replay never spins.
        let mut idle: BTreeMap<String, Timestamp> = BTreeMap::new();
        loop {
            let due = self
                .engine
                .task_names()
                .filter_map(|t| {
                    let at = self.engine.next_wake(t)?.max(floor);
                    (idle.get(t) != Some(&at)).then(|| (at, t.to_string()))
                })
                .min();
            let Some((at, name)) = due.filter(|(at, _)| *at < before) else {
                return Ok(());
            };
            let decisions = self.engine.wake(&name, at).map_err(self.refused(index))?;
            if decisions.is_empty() {
                idle.insert(name, at);
                continue;
            }
            self.settle(decisions.into_iter().map(Step::Decision).collect(), index)?;
        }
    }

    /// Records `queue`'s steps; an action asked for whose outcome is not the next entry for its
    /// task (from `next` on) is assumed to have worked at once.
    fn settle(&mut self, mut queue: VecDeque<Step>, next: usize) -> Result<(), SimulateError> {
        while let Some(step) = queue.pop_front() {
            let asked = match &step {
                Step::Decision(Decision {
                    task: acting,
                    at,
                    kind: DecisionKind::Act { .. },
                }) => Some((acting.clone(), *at)),
                _ => None,
            };
            self.steps.push(step);
            let Some((acting, at)) = asked else { continue };
            let outcome_follows = self.results.entries[next..]
                .iter()
                .find(|later| self.task_of(later) == acting)
                .is_some_and(|later| matches!(later.what, What::Action { .. }));
            if outcome_follows {
                continue;
            }
            let finished = self
                .engine
                .action_finished(&acting, at, Ok(ASSUMED_OK.to_string()))
                .map_err(self.refused(next.saturating_sub(1)))?;
            let mut follow: Vec<Step> = finished.into_iter().map(Step::Decision).collect();
            follow.extend(backoff_note(&self.engine, &acting, at));
            for step in follow.into_iter().rev() {
                queue.push_front(step);
            }
        }
        Ok(())
    }
}

/// The backoff after an action of `task` finished at `at`.
fn backoff_note(engine: &Engine, task: &str, at: Timestamp) -> Option<Step> {
    let state = engine.state(task)?;
    Some(Step::Backoff {
        task: task.to_string(),
        at,
        next_attempt: state.backoff_position().saturating_add(1),
        not_before: state.next_action_not_before()?,
    })
}

/// [`replay`] without the backoff notes: the engine's decisions, in order. This is what a test
/// compares with what `hmrt run` decided.
pub fn simulate(
    config: &Config,
    task: &str,
    results: &Results,
    seed: u64,
) -> Result<Vec<Decision>, SimulateError> {
    Ok(replay(config, task, results, seed)?
        .into_iter()
        .filter_map(|step| match step {
            Step::Decision(d) => Some(d),
            Step::Backoff { .. } => None,
        })
        .collect())
}

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
