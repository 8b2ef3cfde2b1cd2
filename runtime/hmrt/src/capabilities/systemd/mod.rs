//! `systemd`: the units a task's `systemd` grants name, over systemd's D-Bus API
//! (`org.freedesktop.systemd1` on the system bus, or the `[systemd] bus` address).
//!
//! A unit is read through its object (`Manager.GetUnit`, or `LoadUnit` when systemd has not
//! loaded it): `Id`, `LoadState`, `ActiveState`, `SubState`, and for a service `Result`,
//! `NRestarts` and `MainPID`. A name that systemd resolves to another unit (an alias) is
//! denied: the grant names a unit, not whatever an alias points at. Start, stop and restart
//! queue a job (`StartUnit`/`StopUnit`/`RestartUnit`, mode `replace`), wait for its
//! `JobRemoved` and read the unit again. Everything is bounded by the call's time, and one
//! call makes at most one restart (or a stop and a start), as for supervisord.

mod bus;
mod unit;

use tokio::sync::Mutex;
use zbus::Connection;

use super::Capability;
use crate::sandbox::HostState;
use crate::sandbox::bindings::systemd::{Host, UnitStatus};
use crate::sandbox::bindings::types::HostError;
use bus::Job;
use unit::Refusal;

/// The D-Bus connection to systemd, shared by all calls: connected on first use, kept while
/// it works, connected again after it broke.
pub(crate) struct Backend {
    bus: Option<String>,
    connection: Mutex<Option<Connection>>,
}

/// Why a unit could not be read or changed.
enum Failure {
    /// The unit is not the granted one, or systemd has none of that name.
    Refused(Refusal),
    /// The bus or systemd failed (the text is one capped line).
    Bus(String),
}

impl From<zbus::Error> for Failure {
    fn from(error: zbus::Error) -> Self {
        Failure::Bus(bus::describe(&error))
    }
}

impl Backend {
    pub(crate) fn new(services: &super::HostServices) -> Self {
        Backend {
            bus: services.systemd_bus.clone(),
            connection: Mutex::new(None),
        }
    }

    /// The shared connection, made on first use. The caller bounds the wait.
    async fn connection(&self) -> Result<Connection, Failure> {
        let mut slot = self.connection.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let conn = bus::connect(self.bus.as_deref()).await.map_err(|e| {
            let bus = self.bus.as_deref().unwrap_or("the system bus");
            Failure::Bus(format!(
                "cannot reach systemd on {bus}: {}",
                bus::describe(&e)
            ))
        })?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Drops the shared connection after `error` if it means the connection is gone.
    async fn forget_if_broken(&self, error: &zbus::Error) {
        if bus::is_broken(error) {
            *self.connection.lock().await = None;
        }
    }

    /// `name`'s status, refused when it is not the granted unit itself.
    async fn status(&self, name: &str) -> Result<UnitStatus, Failure> {
        let conn = self.connection().await?;
        match bus::read(&conn, name).await {
            Ok(props) => props.status(name).map_err(Failure::Refused),
            Err(e) => {
                self.forget_if_broken(&e).await;
                Err(e.into())
            }
        }
    }

    /// Checks that `name` is the granted unit, runs `job` on it and reads it again.
    async fn change(&self, job: Job, name: &str) -> Result<UnitStatus, Failure> {
        // The job goes to the name only once the name is known to be the unit itself.
        self.status(name).await?;
        let conn = self.connection().await?;
        if let Err(e) = bus::run_job(&conn, job, name).await {
            self.forget_if_broken(&e).await;
            return Err(e.into());
        }
        self.status(name).await
    }

    /// The pid of `unit`'s main process, for `process` (granted there, not here; the caller
    /// bounds the wait).
    pub(crate) async fn main_pid(&self, unit: &str) -> Result<u32, HostError> {
        let status = self.status(unit).await.map_err(|failure| match failure {
            // The caller records it as a `process` denial.
            Failure::Refused(refusal @ unit::Refusal::Alias { .. }) => {
                HostError::Denied(refusal.to_string())
            }
            Failure::Refused(refusal) => HostError::Failed(refusal.to_string()),
            Failure::Bus(text) => HostError::Failed(text),
        })?;
        status.main_pid.ok_or_else(|| {
            HostError::Failed(format!(
                "{unit} has no main process (it is {} ({}))",
                status.active_state, status.sub_state
            ))
        })
    }
}

#[derive(Clone, Copy)]
enum Verb {
    Status,
    Change(Job),
}

impl HostState {
    async fn systemd(&mut self, verb: Verb, name: String) -> Result<UnitStatus, HostError> {
        let call = &mut self.call;
        if name.is_empty() {
            return Err(HostError::Invalid("empty unit name".into()));
        }
        if !call.grants.systemd.allows(&name) {
            return Err(call.deny(Capability::Systemd, name));
        }
        let changes = match verb {
            Verb::Status => 0,
            Verb::Change(Job::Start | Job::Stop) => 1,
            Verb::Change(Job::Restart) => 2,
        };
        call.change_state(changes, &format!("{name:?}"))?;
        let timeout = call.timeout(0).ok_or(HostError::Timeout)?;
        let backend = &call.backends.systemd;
        let request = async {
            match verb {
                Verb::Status => backend.status(&name).await,
                Verb::Change(job) => backend.change(job, &name).await,
            }
        };
        match tokio::time::timeout(timeout, request).await {
            Err(_) => Err(HostError::Timeout),
            Ok(Ok(status)) => Ok(status),
            Ok(Err(Failure::Bus(text))) => Err(HostError::Failed(text)),
            Ok(Err(Failure::Refused(refusal @ Refusal::NotLoaded { .. }))) => {
                Err(HostError::Failed(refusal.to_string()))
            }
            Ok(Err(Failure::Refused(Refusal::Alias { asked, id }))) => Err(call.deny(
                Capability::Systemd,
                format!("{asked} (an alias of {id}, which is not granted)"),
            )),
        }
    }
}

impl Host for HostState {
    async fn unit(&mut self, name: String) -> Result<UnitStatus, HostError> {
        self.systemd(Verb::Status, name).await
    }

    async fn start(&mut self, name: String) -> Result<UnitStatus, HostError> {
        self.systemd(Verb::Change(Job::Start), name).await
    }

    async fn stop(&mut self, name: String) -> Result<UnitStatus, HostError> {
        self.systemd(Verb::Change(Job::Stop), name).await
    }

    async fn restart(&mut self, name: String) -> Result<UnitStatus, HostError> {
        self.systemd(Verb::Change(Job::Restart), name).await
    }
}
