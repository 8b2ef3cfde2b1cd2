//! The audit log: every change a person made through the API (restart, re-arm, pause, resume),
//! one JSON line each, appended to `audit.log` in the state directory: when, who (the name of
//! the token's environment variable, never the token), what, from which address, and what came
//! of it. Each line is written and flushed before the event's publisher goes on.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hmrt_policy::Timestamp;

use super::{Event, Subscriber};
use crate::clock::rfc3339;

/// The audit log's file name in the state directory.
pub const FILE: &str = "audit.log";

/// Appends [`Event::Control`] events to the audit log.
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl AuditLog {
    /// Opens (creating) `audit.log` in `state_dir` for appending.
    pub fn open(state_dir: &Path) -> std::io::Result<AuditLog> {
        std::fs::create_dir_all(state_dir)?;
        let path = state_dir.join(FILE);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(AuditLog {
            path,
            file: Mutex::new(file),
        })
    }
}

impl Subscriber for AuditLog {
    fn on_event(&self, at: Timestamp, event: &Event) {
        let Event::Control {
            task,
            command,
            by,
            from,
            outcome,
        } = event
        else {
            return;
        };
        let line = serde_json::json!({
            "at": rfc3339(at),
            "task": task,
            "command": command,
            "by": by,
            "from": from,
            "outcome": outcome,
        });
        let mut file = crate::sync::lock(&self.file);
        // One write per line: appends of a line are never interleaved with another's.
        let written = file
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| file.sync_data());
        if let Err(e) = written {
            tracing::error!(file = %self.path.display(), "cannot write the audit log: {e}");
        }
    }
}
