//! `process`: the figures of a granted service's main process, read-only.
//!
//! The main pid is asked of whoever runs the service (supervisord through hmrt's client,
//! Docker, systemd); the figures are then read from `/proc/<pid>` (see [`procfs`]). Both steps
//! are bounded by the call's time.

mod procfs;

use super::Capability;
use super::system::off_thread;
use crate::sandbox::HostState;
use crate::sandbox::bindings::process::{Host, ProcessStats, Target};
use crate::sandbox::bindings::types::HostError;

/// The grant that covers `target`, as the config writes it.
pub(crate) fn grant_name(target: &Target) -> String {
    match target {
        Target::Supervisor(p) => format!("supervisor:{p}"),
        Target::Docker(c) => format!("docker:{c}"),
        Target::Systemd(u) => format!("systemd:{u}"),
    }
}

/// The main pid of `target` (granted already), or why there is none.
async fn main_pid(call: &super::CallContext, target: &Target) -> Result<u32, HostError> {
    let timeout = call.timeout(0).ok_or(HostError::Timeout)?;
    let ask = async {
        match target {
            Target::Supervisor(program) => supervised_pid(call, program).await,
            Target::Docker(container) => call.backends.docker.main_pid(container).await,
            Target::Systemd(unit) => call.backends.systemd.main_pid(unit).await,
        }
    };
    tokio::time::timeout(timeout, ask)
        .await
        .unwrap_or(Err(HostError::Timeout))
}

/// The pid supervisord reports for `program` while it runs.
async fn supervised_pid(call: &super::CallContext, program: &str) -> Result<u32, HostError> {
    let Some(client) = call.backends.supervisor.as_ref() else {
        return Err(HostError::Failed(
            "no supervisord configured: set [supervisor] serverurl".into(),
        ));
    };
    let info = client
        .status(program)
        .await
        .map_err(|e| HostError::Failed(e.to_string()))?;
    match info.pid {
        Some(pid) if pid > 0 => Ok(pid),
        _ => Err(HostError::Failed(format!(
            "supervisord program {program:?} does not run (it is {}: {})",
            info.state.as_str(),
            crate::text::one_line(&info.description, 200)
        ))),
    }
}

impl Host for HostState {
    async fn stats(&mut self, target: Target) -> Result<ProcessStats, HostError> {
        let name = grant_name(&target);
        if !self.call.grants.process.allows(&name) {
            return Err(self.call.deny(Capability::Process, name));
        }
        let pid = match main_pid(&self.call, &target).await {
            // Docker or systemd resolved the granted name to another container or unit.
            Err(HostError::Denied(why)) => {
                return Err(self
                    .call
                    .deny(Capability::Process, format!("{name} ({why})")));
            }
            other => other?,
        };
        off_thread(&self.call, None, move || procfs::read_stats(pid)).await
    }
}
