//! `docker`: inspect, stats, start, stop and restart of the containers a task's `docker` grants
//! name, over the Docker Engine API on its Unix socket (`[docker] host`).
//!
//! A call is allowed when the name it passes equals a granted one, and then only when Docker's
//! answer is that very container (its name or full id equals the grant): Docker also resolves
//! unique id prefixes, which a granted name must not reach. Everything a call does runs under
//! the call's deadline, and one call changes a container's state at most once (a restart) or
//! twice (a stop and a start).

mod convert;
mod engine;

pub(crate) use engine::Backend;
use engine::{Change, EngineError};

use super::Capability;
use crate::sandbox::HostState;
use crate::sandbox::bindings::docker::{Container, ContainerStats, Host};
use crate::sandbox::bindings::types::HostError;

/// How many state changes `change` counts.
fn weight(change: Option<Change>) -> u32 {
    match change {
        None => 0,
        Some(Change::Start | Change::Stop) => 1,
        Some(Change::Restart) => 2,
    }
}

impl HostState {
    /// Checks a call on `container` before anything is sent: a name, granted, and (for a
    /// `change`) within the call's state changes. Returns the time the call has left.
    fn admit(
        &mut self,
        container: &str,
        change: Option<Change>,
    ) -> Result<std::time::Duration, HostError> {
        let call = &mut self.call;
        if container.is_empty() {
            return Err(HostError::Invalid("empty container name".into()));
        }
        if !call.grants.docker.allows(container) {
            return Err(call.deny(Capability::Docker, format!("container {container:?}")));
        }
        let changes = weight(change);
        call.change_state(changes, &format!("{container:?}"))?;
        call.timeout(0).ok_or(HostError::Timeout)
    }

    /// The guest's error for `e`: a container the grant does not name is a denial (recorded
    /// like any other).
    fn docker_error(&mut self, e: EngineError) -> HostError {
        match e {
            EngineError::NotTheGranted { asked, actual } => self.call.deny(
                Capability::Docker,
                format!("container {asked} (docker resolved it to {actual:?})"),
            ),
            EngineError::BadName(_) => HostError::Invalid(e.to_string()),
            other => HostError::Failed(other.to_string()),
        }
    }

    /// Runs `op` under `timeout` and maps its error.
    async fn docker_within<T>(
        &mut self,
        timeout: std::time::Duration,
        op: impl Future<Output = Result<T, EngineError>>,
    ) -> Result<T, HostError> {
        match tokio::time::timeout(timeout, op).await {
            Err(_) => Err(HostError::Timeout),
            Ok(Err(e)) => Err(self.docker_error(e)),
            Ok(Ok(answer)) => Ok(answer),
        }
    }

    /// Makes `change` to `container`.
    async fn docker_change(
        &mut self,
        container: String,
        change: Change,
    ) -> Result<Container, HostError> {
        let timeout = self.admit(&container, Some(change))?;
        let backends = self.call.backends.clone();
        let op = backends.docker.change(&container, change, timeout);
        self.docker_within(timeout, op).await
    }
}

impl Host for HostState {
    async fn inspect(&mut self, container: String) -> Result<Container, HostError> {
        let timeout = self.admit(&container, None)?;
        let backends = self.call.backends.clone();
        let op = backends.docker.inspect(&container);
        self.docker_within(timeout, op).await
    }

    async fn stats(&mut self, container: String) -> Result<ContainerStats, HostError> {
        let timeout = self.admit(&container, None)?;
        let backends = self.call.backends.clone();
        let op = backends.docker.stats(&container);
        self.docker_within(timeout, op).await
    }

    async fn start(&mut self, container: String) -> Result<Container, HostError> {
        self.docker_change(container, Change::Start).await
    }

    async fn stop(&mut self, container: String) -> Result<Container, HostError> {
        self.docker_change(container, Change::Stop).await
    }

    async fn restart(&mut self, container: String) -> Result<Container, HostError> {
        self.docker_change(container, Change::Restart).await
    }
}
