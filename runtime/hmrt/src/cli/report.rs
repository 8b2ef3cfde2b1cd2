//! `hmrt check`'s report: a subscriber that keeps each task's check result and the calls it had
//! denied, and renders them as a table or JSON.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use hmrt_policy::{Status, Timestamp};

use crate::capabilities::Denial;
use crate::events::{Event, Metric, Subscriber};
use crate::sync::lock;

/// One task's row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    /// The task.
    pub task: String,
    /// Its check's status.
    pub status: Status,
    /// Why.
    pub message: String,
    /// What it measured.
    pub metrics: Vec<Metric>,
    /// How long the call took, in milliseconds.
    pub elapsed_ms: f64,
    /// Calls it made outside its grants.
    pub denied: Vec<Denial>,
}

/// Collects rows from the events of one `hmrt check`.
#[derive(Default)]
pub struct CheckReport {
    rows: Mutex<BTreeMap<String, Row>>,
    denied: Mutex<BTreeMap<String, Vec<Denial>>>,
}

impl Subscriber for CheckReport {
    fn on_event(&self, _at: Timestamp, event: &Event) {
        match event {
            Event::CallDenied { task, denial } => lock(&self.denied)
                .entry(task.clone())
                .or_default()
                .push(denial.clone()),
            Event::CheckFinished {
                task,
                status,
                message,
                metrics,
                elapsed,
                ..
            } => {
                let denied = lock(&self.denied).remove(task).unwrap_or_default();
                lock(&self.rows).insert(
                    task.clone(),
                    Row {
                        task: task.clone(),
                        status: *status,
                        message: message.clone(),
                        metrics: metrics.clone(),
                        elapsed_ms: millis(*elapsed),
                        denied,
                    },
                );
            }
            _ => {}
        }
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl CheckReport {
    /// The rows, in the order of `tasks` (the config's order).
    pub fn rows(&self, tasks: &[&str]) -> Vec<Row> {
        let rows = lock(&self.rows);
        tasks.iter().filter_map(|t| rows.get(*t).cloned()).collect()
    }
}

/// How bad a status is, for "the worst status wins": unhealthy is worse than unknown.
fn severity(status: Status) -> u8 {
    match status {
        Status::Healthy => 0,
        Status::Degraded => 1,
        Status::Unknown => 2,
        Status::Unhealthy => 3,
    }
}

/// The worse of two statuses, as [`worst`] ranks them.
pub fn worse(a: Status, b: Status) -> Status {
    if severity(b) > severity(a) { b } else { a }
}

/// The worst status among `rows` (healthy when there are none).
pub fn worst(rows: &[Row]) -> Status {
    rows.iter()
        .map(|r| r.status)
        .max_by_key(|s| severity(*s))
        .unwrap_or(Status::Healthy)
}

/// The rows as a table: task, status, message, time.
pub fn table(rows: &[Row]) -> String {
    let width = rows.iter().map(|r| r.task.len()).max().unwrap_or(4);
    let mut out = String::new();
    for row in rows {
        out.push_str(&format!(
            "{:width$}  {:9}  {}  ({:.0} ms)\n",
            row.task, row.status, row.message, row.elapsed_ms,
        ));
    }
    out
}
