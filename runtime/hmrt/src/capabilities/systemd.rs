//! `systemd`: the units a task's `systemd` grants name, over systemd's D-Bus API.

use super::Capability;
use crate::sandbox::HostState;
use crate::sandbox::bindings::systemd::{Host, UnitStatus};
use crate::sandbox::bindings::types::HostError;

/// The D-Bus connection to systemd, shared by all calls (connected on first use).
pub(crate) struct Backend {
    bus: Option<String>,
}

impl Backend {
    pub(crate) fn new(services: &super::HostServices) -> Self {
        Backend {
            bus: services.systemd_bus.clone(),
        }
    }

    /// The pid of `unit`'s main process, for `process` (granted there, not here).
    pub(crate) async fn main_pid(&self, unit: &str) -> Result<u32, HostError> {
        let _ = &self.bus;
        Err(HostError::Failed(format!("systemd is not built yet ({unit})")))
    }
}

impl HostState {
    /// Denies `unit` unless granted.
    fn unit_granted(&mut self, unit: &str) -> Result<(), HostError> {
        if self.call.grants.systemd.allows(unit) {
            Ok(())
        } else {
            Err(self.call.deny(Capability::Systemd, unit.to_owned()))
        }
    }
}

impl Host for HostState {
    async fn unit(&mut self, name: String) -> Result<UnitStatus, HostError> {
        self.unit_granted(&name)?;
        Err(HostError::Failed("systemd is not built yet".into()))
    }

    async fn start(&mut self, name: String) -> Result<UnitStatus, HostError> {
        self.unit_granted(&name)?;
        Err(HostError::Failed("systemd is not built yet".into()))
    }

    async fn stop(&mut self, name: String) -> Result<UnitStatus, HostError> {
        self.unit_granted(&name)?;
        Err(HostError::Failed("systemd is not built yet".into()))
    }

    async fn restart(&mut self, name: String) -> Result<UnitStatus, HostError> {
        self.unit_granted(&name)?;
        Err(HostError::Failed("systemd is not built yet".into()))
    }
}
