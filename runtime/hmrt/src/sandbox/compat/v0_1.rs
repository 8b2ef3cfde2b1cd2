//! Contract 0.1.0: no `smtp`, and `exec` without standard input.

use crate::sandbox::HostState;
use crate::sandbox::bindings::v0_1::{exec, http, log, supervisor, tcp, types as old};
use crate::sandbox::bindings::{
    exec as cur_exec, http as cur_http, log as cur_log, supervisor as cur_supervisor,
    tcp as cur_tcp, types as cur,
};

common_glue!(capabilities: Http, Exec, Supervisor, Tcp);

impl exec::Host for HostState {
    async fn run(&mut self, cmd: exec::Command) -> Result<exec::Output, old::HostError> {
        let cmd = cur_exec::Command {
            program: cmd.program,
            args: cmd.args,
            timeout_ms: cmd.timeout_ms,
            input: None,
        };
        let out = cur_exec::Host::run(self, cmd).await?;
        Ok(exec::Output {
            exit_code: out.exit_code,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}
