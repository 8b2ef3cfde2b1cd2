//! `supervisor`: status, start, stop and restart of the supervisord programs a task grants,
//! through hmrt's one supervisord client.

use super::Capability;
use crate::sandbox::HostState;
use crate::sandbox::bindings::supervisor::{Host, ProcessState, ProcessStatus};
use crate::sandbox::bindings::types::HostError;

#[derive(Clone, Copy)]
enum Verb {
    Status,
    Start,
    Stop,
    Restart,
}

impl HostState {
    async fn supervise(&mut self, verb: Verb, program: String) -> Result<ProcessStatus, HostError> {
        let call = &mut self.call;
        if program.is_empty() {
            return Err(HostError::Invalid("empty program name".into()));
        }
        if !call.grants.supervisor.allows(&program) {
            return Err(call.deny(Capability::Supervisor, format!("program {program:?}")));
        }
        let backends = call.backends.clone();
        let Some(client) = backends.supervisor.as_ref() else {
            return Err(HostError::Failed(
                "no supervisord configured: set [supervisor] serverurl".into(),
            ));
        };
        let changes = match verb {
            Verb::Status => 0,
            Verb::Start | Verb::Stop => 1,
            Verb::Restart => 2,
        };
        call.change_state(changes, &format!("{program:?}"))?;
        let timeout = call.timeout(0).ok_or(HostError::Timeout)?;
        let request = async {
            match verb {
                Verb::Status => client.status(&program).await,
                Verb::Start => match client.start(&program).await {
                    Ok(()) => client.status(&program).await,
                    Err(e) => Err(e),
                },
                Verb::Stop => match client.stop(&program).await {
                    Ok(_) => client.status(&program).await,
                    Err(e) => Err(e),
                },
                Verb::Restart => client.restart(&program).await,
            }
        };
        match tokio::time::timeout(timeout, request).await {
            Err(_) => Err(HostError::Timeout),
            Ok(Err(e)) => Err(HostError::Failed(e.to_string())),
            Ok(Ok(info)) => Ok(ProcessStatus {
                name: info.name,
                state: state(info.state),
                pid: info.pid,
                description: info.description,
            }),
        }
    }
}

fn state(state: hmrt_supervisor::ProcessState) -> ProcessState {
    use hmrt_supervisor::ProcessState as S;
    match state {
        S::Stopped => ProcessState::Stopped,
        S::Starting => ProcessState::Starting,
        S::Running => ProcessState::Running,
        S::Backoff => ProcessState::Backoff,
        S::Stopping => ProcessState::Stopping,
        S::Exited => ProcessState::Exited,
        S::Fatal => ProcessState::Fatal,
        S::Unknown => ProcessState::Unknown,
    }
}

impl Host for HostState {
    async fn status(&mut self, program: String) -> Result<ProcessStatus, HostError> {
        self.supervise(Verb::Status, program).await
    }

    async fn start(&mut self, program: String) -> Result<ProcessStatus, HostError> {
        self.supervise(Verb::Start, program).await
    }

    async fn stop(&mut self, program: String) -> Result<ProcessStatus, HostError> {
        self.supervise(Verb::Stop, program).await
    }

    async fn restart(&mut self, program: String) -> Result<ProcessStatus, HostError> {
        self.supervise(Verb::Restart, program).await
    }
}
