//! hmrt's domain rules, each written once and used by every crate that needs it: the host's
//! config, state and registry, the supervisord client, and the guest SDK.
//!
//! - [`duration`]: the one duration grammar (`"250ms"`, `"1m30s"`, `"1.5s"`, `"2 min"`), its
//!   upper bound ([`duration::MAX`]) and the one formatter ([`duration::format`]).
//! - [`TaskName`]: what may name a task (it also names the task's state file).
//! - [`ServerUrl`]: supervisord's address as supervisorctl's `-s` takes it.
//! - [`program`]: what may name a supervisord program in a grant or a task.
//! - [`env_name`]: what may name an environment variable holding a secret.

#![warn(missing_docs)]

pub mod duration;
pub mod env_name;
pub mod program;
mod server_url;
pub mod size;
mod task_name;

pub use server_url::{ServerUrl, ServerUrlError};
pub use task_name::{TaskName, TaskNameError};
