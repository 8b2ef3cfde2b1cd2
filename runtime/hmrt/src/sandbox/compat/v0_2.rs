//! Contract 0.2.0: everything but 0.3.0's `system`, `process`, `files`, `docker`, `systemd`,
//! `scratch` and `tcp.exchange`.

use crate::sandbox::HostState;
use crate::sandbox::bindings::v0_2::{exec, http, log, smtp, supervisor, tcp, types as old};
use crate::sandbox::bindings::{
    exec as cur_exec, http as cur_http, log as cur_log, smtp as cur_smtp,
    supervisor as cur_supervisor, tcp as cur_tcp, types as cur,
};

common_glue!(capabilities: Http, Exec, Supervisor, Tcp, Smtp);

impl exec::Host for HostState {
    async fn run(&mut self, cmd: exec::Command) -> Result<exec::Output, old::HostError> {
        let cmd = cur_exec::Command {
            program: cmd.program,
            args: cmd.args,
            timeout_ms: cmd.timeout_ms,
            input: cmd.input,
        };
        let out = cur_exec::Host::run(self, cmd).await?;
        Ok(exec::Output {
            exit_code: out.exit_code,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

impl smtp::Host for HostState {
    async fn send(&mut self, m: smtp::Message) -> Result<String, old::HostError> {
        let m = cur_smtp::Message {
            relay: m.relay,
            from: m.from,
            to: m.to,
            subject: m.subject,
            body: m.body,
            timeout_ms: m.timeout_ms,
        };
        Ok(cur_smtp::Host::send(self, m).await?)
    }
}
