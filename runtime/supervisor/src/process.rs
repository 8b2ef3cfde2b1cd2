//! What `supervisor.getProcessInfo` says about a process.

use std::fmt;

use crate::error::CallError;
use crate::xmlrpc::Value;

/// A supervisord process state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcessState {
    /// Stopped (or never started).
    Stopped,
    /// Started, not yet up for `startsecs`.
    Starting,
    /// Up for at least `startsecs`.
    Running,
    /// Exited too quickly; supervisord will retry (up to `startretries`).
    Backoff,
    /// Being stopped.
    Stopping,
    /// Exited on its own after being RUNNING.
    Exited,
    /// Could not be started (retries exhausted).
    Fatal,
    /// supervisord does not know (or this crate does not recognise the state).
    Unknown,
}

impl ProcessState {
    /// supervisord's name for the state (`RUNNING`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
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

    /// Parses supervisord's `statename`; `None` for names it does not define.
    pub fn from_name(name: &str) -> Option<ProcessState> {
        Some(match name {
            "STOPPED" => ProcessState::Stopped,
            "STARTING" => ProcessState::Starting,
            "RUNNING" => ProcessState::Running,
            "BACKOFF" => ProcessState::Backoff,
            "STOPPING" => ProcessState::Stopping,
            "EXITED" => ProcessState::Exited,
            "FATAL" => ProcessState::Fatal,
            "UNKNOWN" => ProcessState::Unknown,
            _ => return None,
        })
    }

    /// Maps supervisord's numeric `state` (`supervisor/states.py`); `None` for other codes.
    pub fn from_code(code: i64) -> Option<ProcessState> {
        Some(match code {
            0 => ProcessState::Stopped,
            10 => ProcessState::Starting,
            20 => ProcessState::Running,
            30 => ProcessState::Backoff,
            40 => ProcessState::Stopping,
            100 => ProcessState::Exited,
            200 => ProcessState::Fatal,
            1000 => ProcessState::Unknown,
            _ => return None,
        })
    }
}

impl fmt::Display for ProcessState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The status of one process, from `supervisor.getProcessInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// The process name (without the group).
    pub name: String,
    /// The group name (equal to `name` for a plain `[program:x]`).
    pub group: String,
    /// The state.
    pub state: ProcessState,
    /// The pid while it has one (supervisord reports 0 otherwise).
    pub pid: Option<u32>,
    /// supervisord's human description (`pid 123, uptime 0:01:02`, `Exited too quickly ...`).
    pub description: String,
    /// When it was last started (UNIX seconds), if ever.
    pub start: Option<i64>,
    /// When it last stopped (UNIX seconds), if ever.
    pub stop: Option<i64>,
    /// supervisord's clock (UNIX seconds) when it answered.
    pub now: i64,
    /// Exit status of the last exit (0 if it never exited).
    pub exitstatus: i32,
    /// Why the last spawn failed, or empty.
    pub spawnerr: String,
    /// The stdout log file, or empty.
    pub stdout_logfile: String,
    /// The stderr log file, or empty (also empty with `redirect_stderr=true`).
    pub stderr_logfile: String,
}

impl ProcessInfo {
    pub(crate) fn from_value(v: &Value) -> Result<ProcessInfo, CallError> {
        if !matches!(v, Value::Struct(_)) {
            return Err(CallError::Malformed(
                "getProcessInfo did not return a struct".to_owned(),
            ));
        }
        let string = |key: &str| -> Result<String, CallError> {
            match v.member(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                None => Ok(String::new()),
                Some(other) => Err(CallError::Malformed(format!(
                    "getProcessInfo: {key} is {other:?}, not a string"
                ))),
            }
        };
        let int = |key: &str| -> Result<i64, CallError> {
            match v.member(key) {
                Some(Value::Int(i)) => Ok(*i),
                None => Ok(0),
                Some(other) => Err(CallError::Malformed(format!(
                    "getProcessInfo: {key} is {other:?}, not an integer"
                ))),
            }
        };
        let name = string("name")?;
        if name.is_empty() {
            return Err(CallError::Malformed(
                "getProcessInfo: no process name in the answer".to_owned(),
            ));
        }
        // statename is the documented, stable field; the numeric code is the fallback.
        let state = match ProcessState::from_name(&string("statename")?) {
            Some(state) => state,
            None if v.member("state").is_some() => {
                ProcessState::from_code(int("state")?).unwrap_or(ProcessState::Unknown)
            }
            None => ProcessState::Unknown,
        };
        let nonzero = |x: i64| (x > 0).then_some(x);
        Ok(ProcessInfo {
            name,
            group: string("group")?,
            state,
            pid: u32::try_from(int("pid")?).ok().filter(|&p| p > 0),
            description: string("description")?,
            start: nonzero(int("start")?),
            stop: nonzero(int("stop")?),
            now: int("now")?,
            exitstatus: i32::try_from(int("exitstatus")?).unwrap_or(-1),
            spawnerr: string("spawnerr")?,
            stdout_logfile: string("stdout_logfile")?,
            stderr_logfile: string("stderr_logfile")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(members: &[(&str, Value)]) -> Result<ProcessInfo, CallError> {
        ProcessInfo::from_value(&Value::Struct(
            members
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        ))
    }

    #[test]
    fn maps_fields_and_zero_means_absent() {
        let i = info(&[
            ("name", Value::String("web".into())),
            ("group", Value::String("web".into())),
            ("state", Value::Int(0)),
            ("statename", Value::String("STOPPED".into())),
            ("pid", Value::Int(0)),
            ("start", Value::Int(0)),
            ("stop", Value::Int(0)),
            ("exitstatus", Value::Int(0)),
            ("description", Value::String("Not started".into())),
        ])
        .unwrap();
        assert_eq!(i.state, ProcessState::Stopped);
        assert_eq!((i.pid, i.start, i.stop), (None, None, None));
        assert_eq!(i.description, "Not started");
    }

    #[test]
    fn state_falls_back_to_the_code_then_unknown() {
        let base = [("name", Value::String("w".into()))];
        let with = |extra: Vec<(&str, Value)>| {
            let mut m: Vec<_> = base.to_vec();
            m.extend(extra);
            info(&m).unwrap().state
        };
        assert_eq!(with(vec![("state", Value::Int(20))]), ProcessState::Running);
        assert_eq!(
            with(vec![
                ("state", Value::Int(20)),
                ("statename", Value::String("FATAL".into()))
            ]),
            ProcessState::Fatal
        );
        assert_eq!(
            with(vec![("state", Value::Int(12345))]),
            ProcessState::Unknown
        );
        assert_eq!(with(vec![]), ProcessState::Unknown);
    }

    #[test]
    fn rejects_wrong_types() {
        assert!(info(&[("name", Value::Int(1))]).is_err());
        assert!(
            info(&[
                ("name", Value::String("w".into())),
                ("pid", Value::String("1".into()))
            ])
            .is_err()
        );
        assert!(info(&[]).is_err());
        assert!(ProcessInfo::from_value(&Value::Bool(true)).is_err());
    }
}
