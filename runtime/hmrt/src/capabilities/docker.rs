//! `docker`: the containers a task's `docker` grants name, over the Docker Engine API.

use super::Capability;
use crate::sandbox::HostState;
use crate::sandbox::bindings::docker::{Container, ContainerStats, Host};
use crate::sandbox::bindings::types::HostError;

/// The Docker Engine API client, shared by all calls (connected on first use).
pub(crate) struct Backend {
    socket: std::path::PathBuf,
}

impl Backend {
    pub(crate) fn new(services: &super::HostServices) -> Self {
        Backend {
            socket: services.docker_socket.clone(),
        }
    }

    /// The pid of `container`'s main process, for `process` (granted there, not here).
    pub(crate) async fn main_pid(&self, container: &str) -> Result<u32, HostError> {
        let _ = &self.socket;
        Err(HostError::Failed(format!(
            "docker is not built yet ({container})"
        )))
    }
}

impl HostState {
    /// Denies `container` unless granted.
    fn container_granted(&mut self, container: &str) -> Result<(), HostError> {
        if self.call.grants.docker.allows(container) {
            Ok(())
        } else {
            Err(self.call.deny(Capability::Docker, container.to_owned()))
        }
    }
}

impl Host for HostState {
    async fn inspect(&mut self, container: String) -> Result<Container, HostError> {
        self.container_granted(&container)?;
        Err(HostError::Failed("docker is not built yet".into()))
    }

    async fn stats(&mut self, container: String) -> Result<ContainerStats, HostError> {
        self.container_granted(&container)?;
        Err(HostError::Failed("docker is not built yet".into()))
    }

    async fn start(&mut self, container: String) -> Result<Container, HostError> {
        self.container_granted(&container)?;
        Err(HostError::Failed("docker is not built yet".into()))
    }

    async fn stop(&mut self, container: String) -> Result<Container, HostError> {
        self.container_granted(&container)?;
        Err(HostError::Failed("docker is not built yet".into()))
    }

    async fn restart(&mut self, container: String) -> Result<Container, HostError> {
        self.container_granted(&container)?;
        Err(HostError::Failed("docker is not built yet".into()))
    }
}
