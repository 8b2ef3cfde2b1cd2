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
        crate::sync::lock(&self.events).clone()
    }
}

impl Subscriber for Recorder {
    fn on_event(&self, at: Timestamp, event: &Event) {
        let mut events = crate::sync::lock(&self.events);
        events.push((at, event.clone()));
    }
}
