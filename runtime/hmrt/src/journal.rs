//! The state journal: the subscriber that keeps every task's policy state in `state_dir`
//! (through [`StateStore`]), so a restarted hmrt resumes where it was.
//!
//! It reads [`Event::TaskState`] and writes on a thread of its own, never on the executor:
//!
//! - a state whose call **decided** something (a state change, an action, a hold, a budget or
//!   backoff change) is written at once, with fsync; [`Subscriber::durable`] resolves once every
//!   such state received before it is on disk. The daemon awaits that before it publishes the
//!   decision or starts an action, so a `kill -9` during the action never gives the restart
//!   budget back.
//! - a state whose call only added a result (the counters and the result ring moved) is kept in
//!   memory, newest per task (so memory is bounded by the number of tasks, whatever the disk
//!   does), and written with the next decided write of that task, or at the latest
//!   [`LAZY_WRITE`] after it arrived, or when the stream closes. A `kill -9` can lose those
//!   results and counts, never a decision. Lazy states are written in small batches, and a
//!   decision waiting for durability goes between two batches, so a thousand lazy writes never
//!   hold up an action.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmrt_policy::{TaskState, Timestamp};

use crate::events::{Durable, Event, Subscriber};
use crate::state::StateStore;
use crate::sync::lock;

/// The longest a state that decided nothing waits before it is written.
pub const LAZY_WRITE: Duration = Duration::from_secs(30);

/// Lazy states written per batch, between which waiting decisions are served.
const LAZY_BATCH: usize = 32;

/// A state with the clock reading it was published at.
type Stamped = (Arc<TaskState>, Timestamp);

enum Message {
    /// A state that decided something, to write at once.
    Decided { task: String, state: Stamped },
    /// Acknowledge once everything decided before this is durable; `all` also writes what is
    /// kept lazily.
    Barrier {
        all: bool,
        done: tokio::sync::oneshot::Sender<()>,
    },
}

/// The newest undecided state of each task, not written yet, and since when the oldest of
/// them has waited.
#[derive(Default)]
struct Lazy {
    states: BTreeMap<String, Stamped>,
    since: Option<Instant>,
}

/// The state journal subscriber.
pub struct Journal {
    sender: Mutex<mpsc::Sender<Message>>,
    lazy: Arc<Mutex<Lazy>>,
}

impl Journal {
    /// A journal writing to `store`, with its writer thread started.
    pub fn start(store: Arc<StateStore>) -> std::io::Result<Journal> {
        let (sender, receiver) = mpsc::channel();
        let lazy = Arc::new(Mutex::new(Lazy::default()));
        let writer = Writer {
            store,
            receiver,
            lazy: lazy.clone(),
            decided: BTreeMap::new(),
        };
        std::thread::Builder::new()
            .name("hmrt-journal".into())
            .spawn(move || writer.run())?;
        Ok(Journal {
            sender: Mutex::new(sender),
            lazy,
        })
    }

    fn send(&self, message: Message) -> bool {
        lock(&self.sender).send(message).is_ok()
    }

    fn barrier(&self, all: bool) -> Durable<'_> {
        let (done, wait) = tokio::sync::oneshot::channel();
        let sent = self.send(Message::Barrier { all, done });
        Box::pin(async move {
            if sent {
                // An error means the writer is gone, which it has logged.
                let _ = wait.await;
            }
        })
    }
}

impl Subscriber for Journal {
    fn on_event(&self, at: Timestamp, event: &Event) {
        let Event::TaskState {
            task,
            state,
            decided,
        } = event
        else {
            return;
        };
        let stamped = (state.clone(), at);
        if *decided {
            // Newer than anything kept lazily for the task: that one need not be written.
            lock(&self.lazy).states.remove(task);
            if !self.send(Message::Decided {
                task: task.clone(),
                state: stamped,
            }) {
                tracing::error!(task = %task, "the state journal's writer has stopped; this state is not saved");
            }
        } else {
            let mut lazy = lock(&self.lazy);
            lazy.states.insert(task.clone(), stamped);
            lazy.since.get_or_insert_with(Instant::now);
        }
    }

    fn durable(&self) -> Durable<'_> {
        self.barrier(false)
    }

    fn close(&self) -> Durable<'_> {
        self.barrier(true)
    }
}

/// The writer thread's side.
struct Writer {
    store: Arc<StateStore>,
    receiver: mpsc::Receiver<Message>,
    lazy: Arc<Mutex<Lazy>>,
    /// Decided states not written yet, newest per task.
    decided: BTreeMap<String, Stamped>,
}

impl Writer {
    fn run(mut self) {
        loop {
            let since = lock(&self.lazy).since;
            let wait = match since {
                Some(since) => LAZY_WRITE.saturating_sub(since.elapsed()),
                None => LAZY_WRITE,
            };
            match self.receiver.recv_timeout(wait) {
                Ok(message) => self.take(message),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.write_decided();
                    self.write_lazy(false);
                    return;
                }
            }
            // Everything already queued joins this round, so a burst costs one directory fsync.
            self.drain();
            self.write_decided();
            let due = lock(&self.lazy)
                .since
                .is_some_and(|since| since.elapsed() >= LAZY_WRITE);
            if due {
                self.write_lazy(true);
            }
        }
    }

    fn drain(&mut self) {
        while let Ok(message) = self.receiver.try_recv() {
            self.take(message);
        }
    }

    fn take(&mut self, message: Message) {
        match message {
            Message::Decided { task, state } => {
                self.decided.insert(task, state);
            }
            Message::Barrier { all, done } => {
                self.write_decided();
                if all {
                    self.write_lazy(false);
                }
                let _ = done.send(());
            }
        }
    }

    fn write_decided(&mut self) {
        let states = std::mem::take(&mut self.decided);
        self.write(&states);
    }

    /// Writes what is kept lazily, in batches taken from the shared map one at a time (so a
    /// decided state, which removes the task's lazy one, is never followed by an older lazy
    /// write); with `serve`, decisions that arrive meanwhile are written (and their barriers
    /// answered) between two batches.
    fn write_lazy(&mut self, serve: bool) {
        let mut left = {
            let mut lazy = lock(&self.lazy);
            lazy.since = None;
            lazy.states.len()
        };
        while left > 0 {
            let batch: BTreeMap<String, Stamped> = {
                let mut lazy = lock(&self.lazy);
                let keys: Vec<String> = lazy
                    .states
                    .keys()
                    .take(LAZY_BATCH.min(left))
                    .cloned()
                    .collect();
                keys.into_iter()
                    .filter_map(|k| lazy.states.remove_entry(&k))
                    .collect()
            };
            if batch.is_empty() {
                return;
            }
            left = left.saturating_sub(batch.len());
            self.write(&batch);
            if serve {
                self.drain();
                self.write_decided();
            }
        }
    }

    fn write(&self, states: &BTreeMap<String, Stamped>) {
        let Some(newest) = states.values().map(|(_, at)| *at).max() else {
            return;
        };
        let written = self.store.save(
            newest,
            states
                .iter()
                .map(|(task, (state, _))| (task.as_str(), state.as_ref())),
        );
        // Repairing services matters more than remembering that it did: log and go on.
        if let Err(e) = written {
            tracing::error!("cannot save the state: {e}");
        }
    }
}
