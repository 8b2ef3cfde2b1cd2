//! `tcp`: connect probes to the `host:port` pairs a task grants. A granted name reaches only
//! public addresses (see `addr`).

use std::time::Instant;

use super::Capability;
use crate::sandbox::HostState;
use crate::sandbox::bindings::tcp::{ExchangeRequest, ExchangeResponse, Host};
use crate::sandbox::bindings::types::HostError;

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
        let connect = async {
            let addrs = super::addr::resolve(&host, port)
                .await
                .map_err(HostError::Failed)?;
            // Only the vetted addresses are dialled: a second lookup could answer otherwise.
            tokio::net::TcpStream::connect(addrs.as_slice())
                .await
                .map_err(|e| HostError::Failed(format!("connect to {host}:{port}: {e}")))
        };
        match tokio::time::timeout(timeout, connect).await {
            Err(_) => Err(HostError::Timeout),
            Ok(Err(e)) => Err(e),
            Ok(Ok(_stream)) => Ok(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)),
        }
    }

    async fn exchange(&mut self, req: ExchangeRequest) -> Result<ExchangeResponse, HostError> {
        let call = &mut self.call;
        if !call.grants.tcp.allows(&req.host, req.port) {
            return Err(call.deny(Capability::Tcp, format!("{}:{}", req.host, req.port)));
        }
        Err(HostError::Failed("tcp.exchange is not built yet".into()))
    }
}
