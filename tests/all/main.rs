//! hmrt's integration tests: one binary (wasmtime links once), one module per area.
//! Everything is real: guests built from source by tests/artifacts, HTTP servers on loopback,
//! supervisord started per test, processes that die.

mod support;

mod alerts;
mod api;
mod authoring;
mod cli;
mod docker;
mod e2e;
mod exec_limits;
mod exits;
mod files;
mod fleet;
mod hostile;
mod notify;
mod plugins;
mod probes;
mod recovery;
mod reload;
mod resources;
mod reuse;
mod sandbox;
mod simulate;
mod systemd;
mod timers;
mod validate;
