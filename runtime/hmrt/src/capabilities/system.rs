//! `system`: the host's resources, read-only, as far as the task's `system` grants name them.

use super::Capability;
use crate::sandbox::HostState;
use crate::sandbox::bindings::system::{CpuTimes, DiskUsage, Host, LoadAverage, MemoryInfo, NetworkCounters};
use crate::sandbox::bindings::types::HostError;

impl HostState {
    /// Denies `resource` unless granted.
    fn system_granted(&mut self, resource: &str) -> Result<(), HostError> {
        if self.call.grants.system.allows(resource) {
            Ok(())
        } else {
            Err(self.call.deny(Capability::System, resource.to_owned()))
        }
    }
}

impl Host for HostState {
    async fn cpu(&mut self) -> Result<CpuTimes, HostError> {
        self.system_granted("cpu")?;
        Err(HostError::Failed("system.cpu is not built yet".into()))
    }

    async fn memory(&mut self) -> Result<MemoryInfo, HostError> {
        self.system_granted("memory")?;
        Err(HostError::Failed("system.memory is not built yet".into()))
    }

    async fn load(&mut self) -> Result<LoadAverage, HostError> {
        self.system_granted("load")?;
        Err(HostError::Failed("system.load is not built yet".into()))
    }

    async fn disk(&mut self, mount_point: String) -> Result<DiskUsage, HostError> {
        self.system_granted(&format!("disk:{mount_point}"))?;
        Err(HostError::Failed("system.disk is not built yet".into()))
    }

    async fn network(&mut self, interface: String) -> Result<NetworkCounters, HostError> {
        self.system_granted(&format!("network:{interface}"))?;
        Err(HostError::Failed("system.network is not built yet".into()))
    }
}
