//! The host capabilities a plugin can call, one module each. Every module checks the task's
//! grants at exactly one place, before it touches anything, and answers a call outside them
//! with `host-error::denied` through `CallContext::deny`: published with the call's outcome as
//! a [`crate::events::Event::CallDenied`] naming the task (the log and the counters read it),
//! and never a trap.

mod addr;
mod blocking;
mod docker;
mod exec;
mod files;
mod http;
mod log;
mod process;
mod scratch;
mod smtp;
mod supervisor;
mod system;
mod systemd;
mod tcp;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hmrt_config::Grants;

use crate::sandbox::bindings::types::HostError;

pub use exec::ExecLimits;

/// Which capability a call used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// Outbound HTTP.
    Http,
    /// Running a program.
    Exec,
    /// supervisord control.
    Supervisor,
    /// TCP connect probes.
    Tcp,
    /// Sending email through an SMTP relay.
    Smtp,
    /// Reading the host's resources.
    System,
    /// Reading a service's process figures.
    Process,
    /// Reading files.
    Files,
    /// Docker containers.
    Docker,
    /// systemd units.
    Systemd,
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Capability::Http => "http",
            Capability::Exec => "exec",
            Capability::Supervisor => "supervisor",
            Capability::Tcp => "tcp",
            Capability::Smtp => "smtp",
            Capability::System => "system",
            Capability::Process => "process",
            Capability::Files => "files",
            Capability::Docker => "docker",
            Capability::Systemd => "systemd",
        })
    }
}

/// A call a plugin made outside its task's grants.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Denial {
    /// The capability it used.
    pub capability: Capability,
    /// What it asked for (an origin, a program, an address), one escaped, capped line.
    pub asked: String,
    /// How many denied calls this stands for: 1, or for the summary of one capability's calls
    /// past [`DENIALS_KEPT`], how many there were.
    pub count: u64,
}

/// Denials kept whole per call; later ones are counted per capability, so a guest that loops
/// on a denied call with a huge argument costs a counter, not memory and log lines.
pub const DENIALS_KEPT: usize = 16;

/// State changes one call may make: one restart, or a stop and a start.
pub const STATE_CHANGES_PER_CALL: u32 = 2;

/// Size caps on what a capability hands back to a guest.
#[derive(Debug, Clone, Copy)]
pub struct CapabilityLimits {
    /// Largest HTTP response body passed to a guest; the rest is cut.
    pub http_body_bytes: usize,
    /// Redirects followed (each re-checked against the grants).
    pub http_max_redirects: usize,
    /// Program output caps.
    pub exec: ExecLimits,
    /// Log lines a guest may write per call; later ones are dropped.
    pub log_lines_per_call: u32,
    /// Longest log line kept.
    pub log_line_bytes: usize,
}

impl Default for CapabilityLimits {
    fn default() -> Self {
        CapabilityLimits {
            http_body_bytes: 1 << 20,
            http_max_redirects: 5,
            exec: ExecLimits::default(),
            log_lines_per_call: 100,
            log_line_bytes: 4096,
        }
    }
}

/// Where the host's own services are: the config's `[docker]` and `[systemd]` sections and the
/// state directory (for `scratch`).
#[derive(Debug, Clone, Default)]
pub struct HostServices {
    /// The Docker Engine API's Unix socket.
    pub docker_socket: PathBuf,
    /// systemd's D-Bus address; none: the system bus.
    pub systemd_bus: Option<String>,
    /// Where `scratch` keeps each task's store; none: in memory only (`hmrt check`, tests).
    pub state_dir: Option<PathBuf>,
}

impl HostServices {
    /// The services a config names.
    pub fn from_config(config: &hmrt_config::Config) -> Self {
        HostServices {
            docker_socket: config.docker.socket.clone(),
            systemd_bus: config.systemd.bus.clone(),
            state_dir: Some(config.runtime.state_dir.clone()),
        }
    }
}

/// What the capabilities share across calls: clients and limits. (Denied calls are counted by
/// the [`crate::events::Counters`] subscriber, from the events.)
pub struct Backends {
    pub(crate) http: reqwest::Client,
    pub(crate) supervisor: Option<hmrt_supervisor::Client>,
    pub(crate) docker: docker::Backend,
    pub(crate) systemd: systemd::Backend,
    pub(crate) scratch: scratch::Backend,
    pub(crate) limits: CapabilityLimits,
}

impl Backends {
    /// Builds the shared clients. `supervisor` is the `[supervisor]` client, if configured.
    pub fn new(
        supervisor: Option<hmrt_supervisor::Client>,
        limits: CapabilityLimits,
    ) -> Result<Self, reqwest::Error> {
        Ok(Backends {
            http: http::client()?,
            supervisor,
            docker: docker::Backend::new(&HostServices::default()),
            systemd: systemd::Backend::new(&HostServices::default()),
            scratch: scratch::Backend::new(&HostServices::default()),
            limits,
        })
    }

    /// Points the Docker, systemd and scratch backends at `services`.
    pub fn with_services(mut self, services: &HostServices) -> Self {
        self.docker = docker::Backend::new(services);
        self.systemd = systemd::Backend::new(services);
        self.scratch = scratch::Backend::new(services);
        self
    }
}

/// What one plugin call may use, and what it did: the task's grants, the shared backends, the
/// call's deadline, and the denials it ran into.
pub(crate) struct CallContext {
    pub(crate) task: Arc<str>,
    pub(crate) grants: Arc<Grants>,
    pub(crate) backends: Arc<Backends>,
    pub(crate) deadline: crate::sandbox::Deadline,
    pub(crate) denials: Vec<Denial>,
    pub(crate) log_lines: u32,
    /// State changes made so far through supervisord, Docker and systemd together (a restart
    /// counts two); see [`CallContext::change_state`].
    pub(crate) state_changes: u32,
    /// The call's `scratch` store, if it has one (see [`crate::sandbox::TaskCall::scratch`]).
    pub(crate) scratch: Option<Arc<str>>,
    /// Changes written to the store so far (each one an fsync).
    pub(crate) scratch_writes: u32,
}

impl CallContext {
    /// Records a call outside the grants (published with the call's outcome as
    /// [`crate::events::Event::CallDenied`], which the log and the counters read) and returns
    /// the error the guest gets.
    pub(crate) fn deny(&mut self, capability: Capability, asked: String) -> HostError {
        use crate::sandbox::untrusted;
        let asked = untrusted::line(&asked, untrusted::ASKED);
        let message = format!(
            "{capability} {asked} is not granted to task \"{}\"",
            self.task
        );
        let kept = self.denials.len();
        let past_cap = self
            .denials
            .iter_mut()
            .skip(DENIALS_KEPT)
            .find(|d| d.capability == capability);
        match past_cap {
            Some(summary) => summary.count += 1,
            None if kept < DENIALS_KEPT => self.denials.push(Denial {
                capability,
                asked,
                count: 1,
            }),
            None => self.denials.push(Denial {
                capability,
                asked: format!("more calls past the first {DENIALS_KEPT} (not kept)"),
                count: 1,
            }),
        }
        HostError::Denied(message)
    }

    /// Takes `changes` (1 for a start or a stop, 2 for a restart) from the call's allowance of
    /// [`STATE_CHANGES_PER_CALL`], or refuses without touching `what`. A guest looping on
    /// `restart` inside one action would restart services outside the policy's backoff and
    /// budget; one rule for every capability that starts and stops things.
    pub(crate) fn change_state(&mut self, changes: u32, what: &str) -> Result<(), HostError> {
        if self.state_changes + changes > STATE_CHANGES_PER_CALL {
            return Err(HostError::Invalid(format!(
                "one restart (or a stop and a start) per call; {what} was not touched"
            )));
        }
        self.state_changes += changes;
        Ok(())
    }

    /// The timeout a guest asked for, capped at the time left for the call.
    pub(crate) fn timeout(&self, asked_ms: u32) -> Option<Duration> {
        let remaining = self.deadline.remaining();
        if remaining.is_zero() {
            return None;
        }
        let asked = if asked_ms == 0 {
            remaining
        } else {
            Duration::from_millis(u64::from(asked_ms))
        };
        Some(asked.min(remaining))
    }
}
