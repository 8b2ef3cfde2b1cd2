//! The one Docker Engine API client hmrt shares across calls, connected on first use, and the
//! operations the capability makes of it. Every operation first resolves the name it was given
//! and checks that Docker's answer is that very container (see [`convert::is_the_granted`]);
//! what follows addresses the container by its full id, so a container created or renamed
//! meanwhile is never the one touched.

use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    RestartContainerOptions, StartContainerOptions, StatsOptions, StopContainerOptions,
};
use futures_util::StreamExt as _;
use tokio::sync::OnceCell;

use super::convert;
use crate::sandbox::bindings::docker::{Container, ContainerStats};
use crate::sandbox::untrusted;

/// bollard's own per-request timeout; the capability's call deadline is what actually bounds a
/// call (it is shorter), so this only has to be longer than any deadline.
const CLIENT_TIMEOUT_SECS: u64 = 600;

/// Longest message from Docker passed on.
const MESSAGE: usize = 512;

/// Docker's default stop grace period, for a container that sets none.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Why an operation did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EngineError {
    /// Docker resolved the name to a container the grant does not name (an id prefix).
    #[error("{asked:?} resolves to container {actual:?}, which is not granted")]
    NotTheGranted {
        /// The name asked for.
        asked: String,
        /// The name of the container Docker resolved it to (escaped).
        actual: String,
    },
    /// The container does not run (for `stats` and `main_pid`).
    #[error("container {0:?} is not running")]
    NotRunning(String),
    /// The name is not one Docker could hold; never sent.
    #[error("{0:?} is not a container name or id")]
    BadName(String),
    /// Docker or the connection to it failed; the text is escaped and capped.
    #[error("{0}")]
    Engine(String),
}

/// A state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// `docker start`.
    Start,
    /// `docker stop`.
    Stop,
    /// `docker restart`.
    Restart,
}

/// A container [`Backend::resolve`] found to be the granted one.
struct Resolved<'a> {
    docker: &'a Docker,
    /// Its full id.
    id: String,
    inspect: ContainerInspectResponse,
}

/// The Docker Engine API client, shared by all calls (connected on first use).
pub(crate) struct Backend {
    socket: PathBuf,
    client: OnceCell<Docker>,
}

impl Backend {
    /// A backend for the `[docker] host` socket of `services`; nothing is connected yet.
    pub(crate) fn new(services: &crate::capabilities::HostServices) -> Self {
        Backend {
            socket: services.docker_socket.clone(),
            client: OnceCell::new(),
        }
    }

    /// The client, connected (and its API version agreed with the engine) on first use. A
    /// failure is not kept: the next call tries again, so hmrt may start before dockerd.
    async fn client(&self) -> Result<&Docker, EngineError> {
        self.client
            .get_or_try_init(|| async {
                let path = self.socket.to_str().ok_or_else(|| {
                    EngineError::Engine(format!(
                        "docker socket {} is not UTF-8",
                        self.socket.display()
                    ))
                })?;
                // The newest API bollard speaks, lowered to the engine's by asking it once
                // (Debian's 20.10 speaks 1.41 and refuses newer clients).
                let docker = Docker::connect_with_unix(
                    path,
                    CLIENT_TIMEOUT_SECS,
                    bollard::API_DEFAULT_VERSION,
                )
                .map_err(|e| self.failed(e))?;
                docker.negotiate_version().await.map_err(|e| self.failed(e))
            })
            .await
    }

    /// `e` as a one-line message naming the socket.
    fn failed(&self, e: bollard::errors::Error) -> EngineError {
        use bollard::errors::Error as E;
        let text = match e {
            E::DockerResponseServerError {
                status_code,
                message,
            } => format!("docker answered {status_code}: {message}"),
            E::SocketNotFoundError(_) => {
                format!("no docker socket at {}", self.socket.display())
            }
            other => format!("docker at {}: {other}", self.socket.display()),
        };
        EngineError::Engine(untrusted::line(&text, MESSAGE))
    }

    /// Inspects `asked` and checks that Docker's answer is the container the grant names.
    async fn resolve(&self, asked: &str) -> Result<Resolved<'_>, EngineError> {
        if hmrt_config::parse_container(asked).is_err() {
            return Err(EngineError::BadName(untrusted::line(asked, MESSAGE)));
        }
        let docker = self.client().await?;
        let inspect = docker
            .inspect_container(asked, None)
            .await
            .map_err(|e| self.failed(e))?;
        if !convert::is_the_granted(asked, &inspect) {
            return Err(EngineError::NotTheGranted {
                asked: untrusted::line(asked, MESSAGE),
                actual: untrusted::line(convert::name_of(&inspect), MESSAGE),
            });
        }
        // An id, so the operations after address this container and no other.
        let id = inspect.id.clone().unwrap_or_default();
        if hmrt_config::parse_container(&id).is_err() {
            return Err(EngineError::Engine(format!(
                "docker gave container {asked:?} no usable id"
            )));
        }
        Ok(Resolved {
            docker,
            id,
            inspect,
        })
    }

    /// What Docker says about the container.
    pub(crate) async fn inspect(&self, asked: &str) -> Result<Container, EngineError> {
        let found = self.resolve(asked).await?;
        Ok(convert::container(&found.inspect))
    }

    /// One stats sample of the running container. Docker takes two readings about a second
    /// apart for it (`stream=false` without `one-shot`), so the CPU figure is over that second.
    pub(crate) async fn stats(&self, asked: &str) -> Result<ContainerStats, EngineError> {
        let Resolved {
            docker,
            id,
            inspect,
        } = self.resolve(asked).await?;
        if !convert::is_running(&inspect) {
            return Err(EngineError::NotRunning(asked.to_owned()));
        }
        let options = StatsOptions {
            stream: false,
            one_shot: false,
        };
        let mut samples = docker.stats(&id, Some(options));
        match samples.next().await {
            Some(Ok(sample)) => Ok(convert::stats(&sample)),
            Some(Err(e)) => Err(self.failed(e)),
            None => Err(EngineError::Engine(format!(
                "docker sent no stats for {asked:?}"
            ))),
        }
    }

    /// Makes `change` and returns the container's state after. A stop or restart keeps the
    /// container's own grace period (`--stop-timeout`, else Docker's 10 s) and is refused when
    /// that does not fit in half of `time_left`: cutting it short would kill a database that
    /// asked for time to shut down cleanly.
    pub(crate) async fn change(
        &self,
        asked: &str,
        change: Change,
        time_left: Duration,
    ) -> Result<Container, EngineError> {
        let Resolved {
            docker,
            id,
            inspect,
        } = self.resolve(asked).await?;
        let own = inspect
            .config
            .as_ref()
            .and_then(|c| c.stop_timeout)
            .and_then(|s| u64::try_from(s).ok())
            .map_or(STOP_GRACE, Duration::from_secs);
        if change != Change::Start && own > time_left / 2 {
            return Err(EngineError::Engine(format!(
                "{asked:?} takes up to {}s to stop (its stop timeout), more than the call has left ({}s); give the action a longer timeout",
                own.as_secs(),
                time_left.as_secs()
            )));
        }
        let grace = Some(i32::try_from(own.as_secs()).unwrap_or(i32::MAX));
        let done = match change {
            Change::Start => {
                docker
                    .start_container(&id, None::<StartContainerOptions>)
                    .await
            }
            Change::Stop => {
                let options = StopContainerOptions {
                    t: grace,
                    signal: None,
                };
                docker.stop_container(&id, Some(options)).await
            }
            Change::Restart => {
                let options = RestartContainerOptions {
                    t: grace,
                    signal: None,
                };
                docker.restart_container(&id, Some(options)).await
            }
        };
        // Docker answers 304 to starting a running or stopping a stopped container: not an
        // error for a caller that wanted it in that state.
        match done {
            Ok(()) => {}
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => {}
            Err(e) => return Err(self.failed(e)),
        }
        let after = docker
            .inspect_container(&id, None)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(convert::container(&after))
    }

    /// The pid of `container`'s main process, for `process` (granted there, not here).
    pub(crate) async fn main_pid(
        &self,
        container: &str,
    ) -> Result<u32, crate::sandbox::bindings::types::HostError> {
        use crate::sandbox::bindings::types::HostError;
        let found = self.resolve(container).await.map_err(|e| match e {
            EngineError::NotTheGranted { .. } => HostError::Denied(e.to_string()),
            EngineError::BadName(_) => HostError::Invalid(e.to_string()),
            _ => HostError::Failed(e.to_string()),
        })?;
        convert::container(&found.inspect).pid.ok_or_else(|| {
            HostError::Failed(EngineError::NotRunning(container.to_owned()).to_string())
        })
    }
}
