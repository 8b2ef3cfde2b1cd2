//! Keeps every event with its time: for tests.

use std::sync::Mutex;

use hmrt_policy::Timestamp;

use super::{Event, Subscriber};

/// Keeps every event with its time.
#[derive(Default)]
pub struct Recorder {
    events: Mutex<Vec<(Timestamp, Event)>>,
}

impl Recorder {
    /// Everything recorded so far.
    pub fn events(&self) -> Vec<(Timestamp, Event)> {
        match self.events.lock() {
            Ok(events) => events.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl Subscriber for Recorder {
    fn on_event(&self, at: Timestamp, event: &Event) {
        let mut events = match self.events.lock() {
            Ok(events) => events,
            Err(poisoned) => poisoned.into_inner(),
        };
        events.push((at, event.clone()));
    }
}
