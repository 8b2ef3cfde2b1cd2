//! The state journal: the subscriber that keeps every task's policy state in `state_dir`
//! (through [`StateStore`]), so a restarted hmrt resumes where it was.
//!
//! It reads [`Event::TaskState`] and writes on a thread of its own, never on the executor:
//!
//! - a state whose call **decided** something (a state change, an action, a hold, a budget or
//!   backoff change) is written at once, with fsync; [`Subscriber::durable`] resolves once every
//!   such state received before it is on disk. The daemon awaits that before it starts an
//!   action, so a `kill -9` during the action never gives the restart budget back.
//! - a state whose call only added a result (the counters and the result ring moved) is kept in
//!   memory and written with the next decided write of that task, or at the latest
//!   [`LAZY_WRITE`] after it arrived, or when the stream closes. A `kill -9` can lose those
//!   results and counts, never a decision.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmrt_policy::{TaskState, Timestamp};

use crate::events::{Durable, Event, Subscriber};
use crate::state::StateStore;

/// The longest a state that decided nothing waits before it is written.
pub const LAZY_WRITE: Duration = Duration::from_secs(30);

enum Message {
    State {
        task: String,
        state: Arc<TaskState>,
        decided: bool,
        at: Timestamp,
    },
    /// Acknowledge once everything decided before this is durable; `all` also writes what is
    /// kept lazily.
    Barrier {
        all: bool,
        done: tokio::sync::oneshot::Sender<()>,
    },
}

/// The state journal subscriber.
pub struct Journal {
    sender: Mutex<mpsc::Sender<Message>>,
}

impl Journal {
    /// A journal writing to `store`, with its writer thread started.
    pub fn start(store: Arc<StateStore>) -> std::io::Result<Journal> {
        let (sender, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("hmrt-journal".into())
            .spawn(move || Writer::new(store).run(receiver))?;
        Ok(Journal {
            sender: Mutex::new(sender),
        })
    }

    fn send(&self, message: Message) -> bool {
        let sender = match self.sender.lock() {
            Ok(sender) => sender,
            Err(poisoned) => poisoned.into_inner(),
        };
        sender.send(message).is_ok()
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
        if let Event::TaskState {
            task,
            state,
            decided,
        } = event
            && !self.send(Message::State {
                task: task.clone(),
                state: state.clone(),
                decided: *decided,
                at,
            })
        {
            tracing::error!(task = %task, "the state journal's writer has stopped; this state is not saved");
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
    /// States not written yet, by task, with when the first of them arrived.
    lazy: BTreeMap<String, (Arc<TaskState>, Timestamp)>,
    lazy_since: Option<Instant>,
    /// Tasks whose newest state decided something and is not written yet.
    decided: BTreeMap<String, (Arc<TaskState>, Timestamp)>,
}

impl Writer {
    fn new(store: Arc<StateStore>) -> Writer {
        Writer {
            store,
            lazy: BTreeMap::new(),
            lazy_since: None,
            decided: BTreeMap::new(),
        }
    }

    fn run(mut self, receiver: mpsc::Receiver<Message>) {
        loop {
            let wait = match self.lazy_since {
                Some(since) => LAZY_WRITE.saturating_sub(since.elapsed()),
                None => Duration::from_secs(3600),
            };
            match receiver.recv_timeout(wait) {
                Ok(message) => self.take(message),
                Err(RecvTimeoutError::Timeout) => self.write_lazy(),
                Err(RecvTimeoutError::Disconnected) => {
                    self.write_decided();
                    self.write_lazy();
                    return;
                }
            }
            // Everything already queued joins this round, so a burst costs one directory fsync.
            while let Ok(message) = receiver.try_recv() {
                self.take(message);
            }
            self.write_decided();
            if self
                .lazy_since
                .is_some_and(|since| since.elapsed() >= LAZY_WRITE)
            {
                self.write_lazy();
            }
        }
    }

    fn take(&mut self, message: Message) {
        match message {
            Message::State {
                task,
                state,
                decided,
                at,
            } => {
                if decided {
                    self.lazy.remove(&task);
                    self.decided.insert(task, (state, at));
                } else if let Some(newest) = self.decided.get_mut(&task) {
                    // Not written yet: the newer state goes out in the same write.
                    *newest = (state, at);
                } else {
                    self.lazy.insert(task, (state, at));
                    self.lazy_since.get_or_insert_with(Instant::now);
                }
            }
            Message::Barrier { all, done } => {
                self.write_decided();
                if all {
                    self.write_lazy();
                }
                let _ = done.send(());
            }
        }
    }

    fn write_decided(&mut self) {
        let states = std::mem::take(&mut self.decided);
        self.write(states);
    }

    fn write_lazy(&mut self) {
        let states = std::mem::take(&mut self.lazy);
        self.lazy_since = None;
        self.write(states);
    }

    fn write(&self, states: BTreeMap<String, (Arc<TaskState>, Timestamp)>) {
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
