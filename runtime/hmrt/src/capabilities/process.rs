//! `process`: the figures of a granted service's main process, read-only.

use super::Capability;
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

impl Host for HostState {
    async fn stats(&mut self, target: Target) -> Result<ProcessStats, HostError> {
        let name = grant_name(&target);
        if !self.call.grants.process.allows(&name) {
            return Err(self.call.deny(Capability::Process, name));
        }
        Err(HostError::Failed("process.stats is not built yet".into()))
    }
}
