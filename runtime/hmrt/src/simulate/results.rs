//! The results file `hmrt simulate` replays: its two forms (text and JSON Lines), parsed into
//! [`Results`]; the format is described in the parent module's docs.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use hmrt_policy::{Status, Timestamp};

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

pub(super) use crate::clock::rfc3339;

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
