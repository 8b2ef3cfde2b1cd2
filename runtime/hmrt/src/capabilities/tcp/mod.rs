//! `tcp`: connect probes and exchanges (connect, optional TLS, send, read) with the `host:port`
//! pairs a task grants. A granted name reaches only public addresses (see `addr`).
//!
//! An exchange is bounded everywhere a server or a guest could make it grow: what is sent
//! ([`SEND_MAX`]), what is read ([`READ_MAX`]), and the time (the call's deadline).

mod stream;
mod tls;

use std::time::Instant;

use super::Capability;
use crate::sandbox::HostState;
use crate::sandbox::bindings::tcp::{ExchangeRequest, ExchangeResponse, Host};
use crate::sandbox::bindings::types::HostError;

/// Most bytes an exchange reads, whatever the guest asks for.
pub(crate) const READ_MAX: usize = 64 * 1024;
/// Most bytes an exchange sends.
pub(crate) const SEND_MAX: usize = 64 * 1024;

impl Host for HostState {
    async fn connect(
        &mut self,
        host: String,
        port: u16,
        timeout_ms: u32,
    ) -> Result<u64, HostError> {
        let call = &mut self.call;
        if host.is_empty() {
            return Err(HostError::Invalid("empty host".into()));
        }
        if !call.grants.tcp.allows(&host, port) {
            return Err(call.deny(Capability::Tcp, format!("{host}:{port}")));
        }
        let timeout = call.timeout(timeout_ms).ok_or(HostError::Timeout)?;
        let started = Instant::now();
        match tokio::time::timeout(timeout, stream::dial(&host, port)).await {
            Err(_) => Err(HostError::Timeout),
            Ok(Err(e)) => Err(e),
            Ok(Ok(_stream)) => Ok(micros_since(started)),
        }
    }

    async fn exchange(&mut self, req: ExchangeRequest) -> Result<ExchangeResponse, HostError> {
        let call = &mut self.call;
        if req.host.is_empty() {
            return Err(HostError::Invalid("empty host".into()));
        }
        if !call.grants.tcp.allows(&req.host, req.port) {
            return Err(call.deny(Capability::Tcp, format!("{}:{}", req.host, req.port)));
        }
        let plan = stream::Plan::from_request(req)?;
        let timeout = call.timeout(plan.timeout_ms).ok_or(HostError::Timeout)?;
        stream::run(plan, tokio::time::Instant::now() + timeout).await
    }
}

/// Microseconds since `started`, saturating.
fn micros_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}
