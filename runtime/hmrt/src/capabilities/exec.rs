//! `exec`: runs a program the task grants, resolved to an absolute path when the config
//! loaded. Never a shell; an empty environment; `/` as the working directory; its own process
//! group, killed as a whole at the timeout or when the call is abandoned.

use std::process::Stdio;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::Capability;
use crate::sandbox::HostState;
use crate::sandbox::bindings::exec::{Command, Host, Output};
use crate::sandbox::bindings::types::HostError;

/// Caps on what a program's output may hand back to a guest.
#[derive(Debug, Clone, Copy)]
pub struct ExecLimits {
    /// Bytes of stdout kept; the rest is read and dropped.
    pub stdout_bytes: usize,
    /// Bytes of stderr kept; the rest is read and dropped.
    pub stderr_bytes: usize,
    /// The most a guest may write to a program's standard input.
    pub input_bytes: usize,
}

impl Default for ExecLimits {
    fn default() -> Self {
        ExecLimits {
            stdout_bytes: 64 * 1024,
            stderr_bytes: 64 * 1024,
            input_bytes: 1 << 20,
        }
    }
}

/// Kills the child's whole process group when dropped, so a program's own children cannot
/// outlive a timeout or an abandoned call.
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            // ESRCH (already gone) is the normal case after a clean exit.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

async fn read_capped(mut reader: impl AsyncRead + Unpin, cap: usize) -> std::io::Result<Vec<u8>> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(kept);
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
}

impl Host for HostState {
    async fn run(&mut self, cmd: Command) -> Result<Output, HostError> {
        let call = &mut self.call;
        if cmd.program.is_empty() {
            return Err(HostError::Invalid("empty program name".into()));
        }
        let Some(path) = call
            .grants
            .exec
            .resolve(&cmd.program)
            .map(|p| p.to_path_buf())
        else {
            return Err(call.deny(Capability::Exec, format!("program {:?}", cmd.program)));
        };
        let timeout = call.timeout(cmd.timeout_ms).ok_or(HostError::Timeout)?;
        let limits = call.backends.limits.exec;
        if cmd
            .input
            .as_ref()
            .is_some_and(|i| i.len() > limits.input_bytes)
        {
            return Err(HostError::Invalid(format!(
                "input of more than {} bytes",
                limits.input_bytes
            )));
        }
        let mut child = tokio::process::Command::new(&path)
            .args(&cmd.args)
            .env_clear()
            .current_dir("/")
            .stdin(if cmd.input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| HostError::Failed(format!("cannot run {}: {e}", path.display())))?;
        let _group = GroupGuard(
            child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .map(Pid::from_raw),
        );
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let stdin = child.stdin.take();
        let input = cmd.input.unwrap_or_default();
        let run = async {
            let feed = async {
                if let Some(mut stdin) = stdin {
                    // A program that exits without reading all of it is not an error of the
                    // call: its exit code says what it did.
                    let _ = stdin.write_all(&input).await;
                    // Dropped here: the program sees the end of its input.
                }
            };
            let out = async {
                match stdout {
                    Some(s) => read_capped(s, limits.stdout_bytes).await,
                    None => Ok(Vec::new()),
                }
            };
            let err = async {
                match stderr {
                    Some(s) => read_capped(s, limits.stderr_bytes).await,
                    None => Ok(Vec::new()),
                }
            };
            let (status, out, err, ()) = tokio::join!(child.wait(), out, err, feed);
            Ok::<_, std::io::Error>((status?, out?, err?))
        };
        match tokio::time::timeout(timeout, run).await {
            Err(_) => Err(HostError::Timeout),
            Ok(Err(e)) => Err(HostError::Failed(format!(
                "running {}: {e}",
                path.display()
            ))),
            // The guard still kills the group when it drops: children the program left behind
            // do not outlive the call.
            Ok(Ok((status, stdout, stderr))) => Ok(Output {
                exit_code: status.code(),
                stdout,
                stderr,
            }),
        }
    }
}
