//! Counts of what happened since start: checks by status, actions by outcome, denied calls by
//! capability: what a metrics endpoint serves (tests read them today).

use std::collections::BTreeMap;
use std::sync::Mutex;

use hmrt_policy::{Status, Timestamp};

use super::{Event, Subscriber};
use crate::capabilities::Capability;

/// The counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Finished checks, by status.
    pub checks: BTreeMap<Status, u64>,
    /// Actions that ran without error.
    pub actions_ok: u64,
    /// Actions that returned an error or could not run.
    pub actions_failed: u64,
    /// Denied plugin calls, by capability.
    pub denials: BTreeMap<Capability, u64>,
}

/// Counts events as they pass.
#[derive(Default)]
pub struct Counters {
    counts: Mutex<Counts>,
}

impl Counters {
    /// The counts so far.
    pub fn counts(&self) -> Counts {
        crate::sync::lock(&self.counts).clone()
    }

    /// Denied calls of `capability` so far.
    pub fn denials(&self, capability: Capability) -> u64 {
        self.counts().denials.get(&capability).copied().unwrap_or(0)
    }
}

impl Subscriber for Counters {
    fn on_event(&self, _at: Timestamp, event: &Event) {
        let mut counts = crate::sync::lock(&self.counts);
        match event {
            Event::CheckFinished { status, .. } => *counts.checks.entry(*status).or_default() += 1,
            Event::ActionFinished { ok: true, .. } => counts.actions_ok += 1,
            Event::ActionFinished { ok: false, .. } => counts.actions_failed += 1,
            Event::CallDenied { denial, .. } => {
                *counts.denials.entry(denial.capability).or_default() += denial.count
            }
            _ => {}
        }
    }
}
