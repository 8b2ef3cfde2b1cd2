//! Requests from outside (the HTTP API) that change a task: restart, re-arm, pause, resume, and
//! a heartbeat's ping. Each is sent to the task's own loop and applied there, between two of
//! its runs, so a request never races a check or an action of the same task. The queue per task
//! is short and never waits: a flood of requests is refused (busy), not buffered.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::heartbeat::Ping;

/// How many requests may wait for one task's loop.
const QUEUE: usize = 8;

/// What is asked of a task.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run the task's `on_failure` action now, outside the policy's budget.
    Restart,
    /// Re-arm a failed task.
    Rearm,
    /// Hold the task's actions (its checks go on).
    Pause,
    /// Let the task's actions run again.
    Resume,
    /// A heartbeat's ping.
    Push(Ping),
}

impl Command {
    /// The command's name, as the API's path and the audit log write it.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Restart => "restart",
            Command::Rearm => "rearm",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Push(_) => "push",
        }
    }
}

/// Who asked, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The name of the environment variable whose token was presented.
    pub by: String,
    /// The peer's address.
    pub from: String,
}

/// Why a request was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// No task has that name.
    #[error("no task named {name:?}")]
    UnknownTask {
        /// The name asked for.
        name: String,
    },
    /// The task is not in a state the request applies to (re-arm of a task that is not failed,
    /// restart of a task without an action, a ping to a task that is not a heartbeat).
    #[error("{0}")]
    Conflict(String),
    /// The action ran and failed (a manual restart).
    #[error("the action failed: {0}")]
    ActionFailed(String),
    /// Too many requests are waiting for the task.
    #[error("too many requests are waiting for task {0:?}; try again")]
    Busy(String),
    /// The daemon is stopping.
    #[error("hmrt is stopping")]
    Stopped,
}

/// A request with its reply.
pub(super) struct Request {
    pub(super) command: Command,
    pub(super) caller: Caller,
    pub(super) reply: oneshot::Sender<Result<String, ControlError>>,
}

/// The handle the API holds: sends requests to the task loops.
#[derive(Clone)]
pub struct Control {
    queues: Arc<HashMap<String, mpsc::Sender<Request>>>,
}

/// One receiving end per task, handed to its loop.
pub(super) type Inboxes = HashMap<String, mpsc::Receiver<Request>>;

impl Control {
    /// A handle for `tasks`, and the receiving end of each task's queue.
    pub(super) fn new<'a>(tasks: impl Iterator<Item = &'a str>) -> (Control, Inboxes) {
        let mut queues = HashMap::new();
        let mut inboxes = HashMap::new();
        for task in tasks {
            let (tx, rx) = mpsc::channel(QUEUE);
            queues.insert(task.to_string(), tx);
            inboxes.insert(task.to_string(), rx);
        }
        (
            Control {
                queues: Arc::new(queues),
            },
            inboxes,
        )
    }

    /// Asks `task`'s loop to carry out `command`; resolves with what came of it once done.
    pub async fn send(
        &self,
        task: &str,
        command: Command,
        caller: Caller,
    ) -> Result<String, ControlError> {
        let queue = self
            .queues
            .get(task)
            .ok_or_else(|| ControlError::UnknownTask {
                name: task.to_string(),
            })?;
        let (reply, answer) = oneshot::channel();
        let request = Request {
            command,
            caller,
            reply,
        };
        queue.try_send(request).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ControlError::Busy(task.to_string()),
            mpsc::error::TrySendError::Closed(_) => ControlError::Stopped,
        })?;
        answer.await.unwrap_or(Err(ControlError::Stopped))
    }
}
