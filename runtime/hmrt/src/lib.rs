//! hmrt: a health-check and recovery runtime whose checks and actions are sandboxed
//! WebAssembly components.
//!
//! The flow: [`hmrt_config`] parses `tasks.toml`; [`registry`] loads the built-in and
//! third-party plugins; [`sandbox`] runs one plugin call in a fresh, limited Store with the
//! task's grants; the scheduler feeds results to [`hmrt_policy`], and runs the actions it
//! decides on.

pub mod alerts;
pub mod api;
pub mod capabilities;
pub mod cli;
pub mod clock;
pub mod daemon;
pub mod events;
pub mod heartbeat;
pub mod journal;
pub mod notify;
pub mod registry;
pub mod sandbox;
pub mod simulate;
pub mod state;
mod sync;
pub mod tasks;
pub mod text;
pub mod validate;
