//! hmrt's built-in `log-scan` check: counts the lines matching a regex that were appended to a
//! log since the last run, and judges the count (`critical`, default 1: unhealthy; `warn`:
//! degraded). The message carries the newest matching line.
//!
//! The read position (inode, offset, an unfinished line) is kept in the task's `scratch` store,
//! so every line is counted once across runs. It survives rotation: a truncated log is read
//! again from its start (copytruncate), and a renamed one is found by its inode in the log's
//! directory and finished before the new file is read. That needs the directory granted with
//! a trailing `/` (`files = ["/var/log/app/"]`), which `validate` asks for.

mod position;
mod scan;

use hmrt_plugin::check::{CheckResult, Guest};
use hmrt_plugin::files::{self, FileStat};
use hmrt_plugin::types::{Capability, HostError, Metric, Need, PluginInfo, Status, Task};
use hmrt_plugin::{Config, one_line, scratch};
use regex::bytes::{Regex, RegexBuilder};

use position::Position;
use scan::{From, Plan, Scan};

/// `max_read` when unset: bytes read per run at most.
const DEFAULT_MAX_READ: u64 = 4 << 20;
/// The largest `max_read`.
const MAX_MAX_READ: u64 = 256 << 20;
/// The longest pattern.
const PATTERN_BYTES: usize = 4096;
/// The most of the newest matching line in the message.
const SHOWN_CHARS: usize = 200;

/// The check's settings, read from a task's config.
#[derive(Debug)]
struct Settings {
    path: String,
    /// The directory the log lives in, as a tree (`/var/log/app/`): rotated files are there.
    dir: String,
    pattern: String,
    regex: Regex,
    warn: Option<u64>,
    critical: Option<u64>,
    max_read: u64,
    from: From,
}

impl Settings {
    fn from_json(json: &str) -> Result<Settings, String> {
        let c = Config::parse(
            json,
            &["path", "pattern", "warn", "critical", "max_read", "from"],
        )?;
        let path = c.required_string("path")?;
        let dir = match path.rsplit_once('/') {
            Some((dir, name)) if path.starts_with('/') && !name.is_empty() => format!("{dir}/"),
            _ => {
                return Err(format!(
                    "`path` must be an absolute path to a file, not {path:?}"
                ));
            }
        };
        if path.split('/').any(|part| part == "..") {
            return Err(format!("`path` must not contain `..`: {path:?}"));
        }
        let pattern = c.required_string("pattern")?;
        if pattern.len() > PATTERN_BYTES {
            return Err(format!("`pattern` is longer than {PATTERN_BYTES} bytes"));
        }
        let regex = RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| {
                format!(
                    "`pattern` is not a valid regex: {}",
                    one_line(&e.to_string(), 300)
                )
            })?;
        let warn = count(&c, "warn", 1)?;
        let critical = count(&c, "critical", 1)?.or(if warn.is_none() { Some(1) } else { None });
        if let (Some(w), Some(cr)) = (warn, critical)
            && w >= cr
        {
            return Err("`warn` must be below `critical`".to_owned());
        }
        let max_read = count(&c, "max_read", 1)?.unwrap_or(DEFAULT_MAX_READ);
        if max_read > MAX_MAX_READ {
            return Err(format!("`max_read` is at most {MAX_MAX_READ} bytes"));
        }
        let from = match c.string("from")? {
            None | Some("end") => From::End,
            Some("start") => From::Start,
            Some(other) => return Err(format!("`from` is \"end\" or \"start\", not {other:?}")),
        };
        Ok(Settings {
            path: path.to_owned(),
            dir,
            pattern: pattern.to_owned(),
            regex,
            warn,
            critical,
            max_read,
            from,
        })
    }
}

/// The integer at `key`, at least `min`, if set.
fn count(c: &Config, key: &str, min: u64) -> Result<Option<u64>, String> {
    match c.value(key) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n >= min => Ok(Some(n)),
            _ => Err(format!(
                "`{key}` must be a whole number of at least {min}, not {v}"
            )),
        },
    }
}

/// The host's `files`.
struct Host;

impl scan::Files for Host {
    fn stat(&self, path: &str) -> Result<FileStat, HostError> {
        files::stat(path)
    }

    fn read(&self, path: &str, offset: u64, max: u32) -> Result<Vec<u8>, HostError> {
        files::read(path, offset, max)
    }

    fn entries(&self, dir: &str) -> Result<Vec<(String, FileStat)>, HostError> {
        Ok(files::entries(dir)?
            .into_iter()
            .map(|e| (e.name, e.stat))
            .collect())
    }
}

fn result(status: Status, message: String, metrics: Vec<Metric>) -> CheckResult {
    CheckResult {
        status,
        message,
        metrics,
    }
}

fn metric(name: &str, value: u64, unit: &str) -> Metric {
    Metric {
        name: name.to_owned(),
        value: value as f64,
        unit: unit.to_owned(),
    }
}

/// Health and message from what a run found.
fn judge(s: &Settings, scan: &Scan<'_>) -> (Status, String) {
    let t = &scan.tally;
    let mut message = if scan.started {
        format!(
            "started at the end of {} (byte {}); lines appended from now on are counted",
            s.path,
            scan.next.as_ref().map_or(0, |p| p.offset)
        )
    } else if t.matches == 0 {
        format!(
            "no new line matches {:?} in {} ({} read)",
            s.pattern, s.path, t.lines
        )
    } else {
        let newest = String::from_utf8_lossy(t.newest.as_deref().unwrap_or_default());
        format!(
            "{} new line{} of {} in {} match {:?}; newest: {}",
            t.matches,
            if t.matches == 1 { "" } else { "s" },
            t.lines,
            s.path,
            s.pattern,
            one_line(&newest, SHOWN_CHARS)
        )
    };
    let mut status = if s.critical.is_some_and(|c| t.matches >= c) {
        Status::Unhealthy
    } else if s.warn.is_some_and(|w| t.matches >= w) {
        Status::Degraded
    } else {
        Status::Healthy
    };
    if scan.missing {
        message.push_str(&format!("; {} does not exist", s.path));
        if status == Status::Healthy {
            status = Status::Unknown;
        }
    }
    for note in &scan.notes {
        message.push_str("; ");
        message.push_str(note);
    }
    (status, message)
}

struct LogScan;

impl Guest for LogScan {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "log-scan".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "Counts lines matching a regex appended to a log since the last run, across rotations."
                .to_owned(),
            capabilities: vec![Capability::Files],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        let s = Settings::from_json(&task.config)?;
        Ok(vec![Need::Files(s.path), Need::Files(s.dir)])
    }

    fn check(task: Task) -> CheckResult {
        let s = match Settings::from_json(&task.config) {
            Ok(s) => s,
            Err(e) => return result(Status::Unknown, format!("invalid config: {e}"), vec![]),
        };
        let saved = scratch::get(position::KEY).and_then(|b| Position::decode(&b));
        let plan = Plan {
            path: &s.path,
            regex: &s.regex,
            max_read: s.max_read,
            from: s.from,
        };
        let scan = match scan::run(&Host, &plan, saved) {
            Ok(scan) => scan,
            Err(e) => {
                let status = match e {
                    HostError::Denied(_) | HostError::Invalid(_) => Status::Unknown,
                    _ => Status::Unhealthy,
                };
                return result(
                    status,
                    format!("cannot read {}: {}", s.path, e.describe()),
                    vec![],
                );
            }
        };
        let (mut status, mut message) = judge(&s, &scan);
        if let Some(next) = &scan.next
            && let Err(e) = scratch::set(position::KEY, &next.encode())
        {
            // Without the position the next run would count these lines again.
            status = Status::Unknown;
            message = format!("{message}; cannot keep the read position: {}", e.describe());
        }
        let t = &scan.tally;
        let metrics = vec![
            metric("matches", t.matches, ""),
            metric("lines_read", t.lines, ""),
            metric("bytes_read", t.bytes, "bytes"),
        ];
        result(status, message, metrics)
    }
}

hmrt_plugin::export_check!(LogScan);

#[cfg(test)]
mod tests;
