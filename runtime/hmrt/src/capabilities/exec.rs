//! `exec`: runs a program the task grants, resolved to an absolute path when the config
//! loaded, with arguments its grant's pattern allows. Never a shell; an empty environment; `/`
//! as the working directory; resource limits set between `fork` and `exec` (CPU time, address
//! space, processes, file size, no core dumps); and its whole process tree, however it tries to
//! leave (a new session, a new group, an exited parent), killed when the program exits, at the
//! timeout, or when the call is abandoned: see [`tree`].

mod tree;

use std::process::Stdio;
use std::time::Duration;

use nix::sys::resource::{Resource, getrlimit, rlim_t, setrlimit};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::Capability;
use crate::sandbox::HostState;
use crate::sandbox::bindings::exec::{Command, Host, Output};
use crate::sandbox::bindings::types::HostError;
use tree::{Join, Tree};

/// Caps on what a program may use and hand back to a guest.
#[derive(Debug, Clone, Copy)]
pub struct ExecLimits {
    /// Bytes of stdout kept; the rest is read and dropped.
    pub stdout_bytes: usize,
    /// Bytes of stderr kept; the rest is read and dropped.
    pub stderr_bytes: usize,
    /// The most a guest may write to a program's standard input.
    pub input_bytes: usize,
    /// `RLIMIT_AS`: the program's virtual address space, in bytes.
    pub address_space_bytes: u64,
    /// `RLIMIT_NPROC`, and `pids.max` of the call's cgroup when there is one: how many
    /// processes (threads count) the program may have. `RLIMIT_NPROC` counts every process of
    /// the user hmrt runs as, not only the program's, and root (or `CAP_SYS_RESOURCE`) is not
    /// held to it at all; the cgroup's cap counts only the program's tree, for root too.
    pub processes: u64,
    /// `RLIMIT_FSIZE`: the largest file the program may write, in bytes (past it the write
    /// fails and the program gets SIGXFSZ).
    pub file_size_bytes: u64,
}

impl Default for ExecLimits {
    fn default() -> Self {
        ExecLimits {
            stdout_bytes: 64 * 1024,
            stderr_bytes: 64 * 1024,
            input_bytes: 1 << 20,
            address_space_bytes: 1 << 30,
            processes: 64,
            file_size_bytes: 16 << 20,
        }
    }
}

/// The resource limits of one child, worked out before the spawn so that `pre_exec` only makes
/// system calls. The CPU time is the call's timeout rounded up to whole seconds (at least 1):
/// a program cannot use more CPU than wall time, except with several threads or processes, which
/// the limit then stops; the hard limit is a second above the soft one so SIGXCPU comes first.
/// `RLIMIT_CORE` is 0: a crashing program must not leave its memory on disk.
#[derive(Debug, Clone, Copy)]
struct Rlimits([(Resource, rlim_t, rlim_t); 5]);

impl Rlimits {
    fn new(limits: &ExecLimits, timeout: Duration) -> Rlimits {
        let cpu = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
        let cpu = cpu.max(1);
        let wanted = [
            (Resource::RLIMIT_CPU, cpu, cpu + 1),
            (
                Resource::RLIMIT_AS,
                limits.address_space_bytes,
                limits.address_space_bytes,
            ),
            // Root (and CAP_SYS_RESOURCE or CAP_SYS_ADMIN) is not held to RLIMIT_NPROC: for hmrt
            // running as root, the cgroup's pids.max is the cap that holds.
            (Resource::RLIMIT_NPROC, limits.processes, limits.processes),
            (
                Resource::RLIMIT_FSIZE,
                limits.file_size_bytes,
                limits.file_size_bytes,
            ),
            (Resource::RLIMIT_CORE, 0, 0),
        ];
        // Never above hmrt's own hard limits: raising one needs a privilege, and the setrlimit
        // in the child would fail.
        Rlimits(wanted.map(|(resource, soft, hard)| {
            let ceiling = getrlimit(resource).map_or(rlim_t::MAX, |(_, hard)| hard);
            (resource, soft.min(ceiling), hard.min(ceiling))
        }))
    }

    /// Runs in the forked child: setrlimit only (async-signal-safe, no allocation).
    fn apply(&self) -> std::io::Result<()> {
        for &(resource, soft, hard) in &self.0 {
            setrlimit(resource, soft, hard).map_err(std::io::Error::from)?;
        }
        Ok(())
    }
}

/// The arguments of a denied call as the denial names them: Debug-escaped (one line, quotes and
/// control characters escaped) and cut to about 200 bytes, since they come from the guest.
fn shown_args(args: &[String]) -> String {
    const MAX: usize = 200;
    let shown = format!("{args:?}");
    if shown.len() <= MAX {
        return shown;
    }
    let mut end = MAX;
    while !shown.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} arguments)", &shown[..end], args.len())
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

/// Starts `path` with `cmd`'s arguments in `tree`, with `rlimits`.
fn spawn(
    path: &std::path::Path,
    cmd: &Command,
    tree: &Tree,
    rlimits: Rlimits,
) -> std::io::Result<tokio::process::Child> {
    let join: Join = tree.join();
    let mut command = tokio::process::Command::new(path);
    command
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
        .kill_on_drop(true);
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe system
    // calls (write or prctl, setrlimit) on data copied in before the fork; it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            // The tree first: a child that could not join it must not run at all.
            join.apply()?;
            rlimits.apply()
        });
    }
    command.spawn()
}

/// Starts the program in `tree`; if that fails with a cgroup, once more tracked through
/// `/proc`. Joining a cgroup can fail where making it did not (a hierarchy hmrt may write in but
/// not move processes within), and exec must not stop working for it; a failure of anything
/// else (the program, the rlimits) fails the second spawn the same way and is reported.
fn start(
    path: &std::path::Path,
    cmd: &Command,
    tree: Tree,
    rlimits: Rlimits,
) -> std::io::Result<Running> {
    let (tree, spawned) = match spawn(path, cmd, &tree, rlimits) {
        Err(e) if tree.is_cgroup() => {
            drop(tree);
            let tree = Tree::scan_only();
            let spawned = spawn(path, cmd, &tree, rlimits);
            if spawned.is_ok() {
                tracing::warn!(
                    "exec: {} could not join its cgroup ({e}); tracked through /proc instead",
                    path.display()
                );
            }
            (tree, spawned)
        }
        other => (tree, other),
    };
    let child = spawned?;
    tree.started(child.id());
    Ok(Running { child, tree })
}

/// A started program and its tree.
struct Running {
    child: tokio::process::Child,
    tree: Tree,
}

impl Drop for Running {
    /// An abandoned call (the call's own timeout, which `run` handles, did not come first): the
    /// tree is killed, and the child reaped if it dies within a few milliseconds, rather than
    /// left a zombie until tokio reaps it in the background. `tree`'s own Drop then waits for
    /// the rest and removes its cgroup.
    fn drop(&mut self) {
        if self.tree.is_finished() {
            return;
        }
        self.tree.kill();
        let _ = self.child.start_kill();
        let deadline = std::time::Instant::now() + Duration::from_millis(50);
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// What a finished program gave back, or why it did not finish.
type Ran = Result<Result<(std::process::ExitStatus, Vec<u8>, Vec<u8>), std::io::Error>, ()>;

/// Feeds `input`, reads the output and waits for the program, for at most `timeout`; kills the
/// rest of its tree as soon as it exits, so a descendant holding its pipes cannot stretch the
/// call to the timeout.
async fn collect(
    child: &mut tokio::process::Child,
    tree: &Tree,
    input: Option<Vec<u8>>,
    limits: &ExecLimits,
    timeout: Duration,
) -> Ran {
    let (stdout, stderr, stdin) = (child.stdout.take(), child.stderr.take(), child.stdin.take());
    let feed = async {
        if let (Some(mut stdin), Some(input)) = (stdin, input) {
            // A program that exits without reading all of it is not an error of the call: its
            // exit code says what it did. Dropped here: the program sees the end of its input.
            let _ = stdin.write_all(&input).await;
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
    let exited = async {
        let status = child.wait().await;
        tree.kill();
        status
    };
    let run = async {
        let (status, out, err, ()) = tokio::join!(exited, out, err, feed);
        Ok::<_, std::io::Error>((status?, out?, err?))
    };
    let watched = async {
        tokio::select! {
            ran = run => ran,
            never = tree.watch() => match never {},
        }
    };
    tokio::time::timeout(timeout, watched).await.map_err(|_| ())
}

impl Host for HostState {
    async fn run(&mut self, cmd: Command) -> Result<Output, HostError> {
        let call = &mut self.call;
        if cmd.program.is_empty() {
            return Err(HostError::Invalid("empty program name".into()));
        }
        if call.grants.exec.resolve(&cmd.program).is_none() {
            return Err(call.deny(Capability::Exec, format!("program {:?}", cmd.program)));
        }
        let Some(path) = call
            .grants
            .exec
            .allow(&cmd.program, &cmd.args)
            .map(|p| p.path.clone())
        else {
            let asked = format!(
                "program {:?} with arguments {}",
                cmd.program,
                shown_args(&cmd.args)
            );
            return Err(call.deny(Capability::Exec, asked));
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
        let tree = Tree::prepare(limits.processes);
        // Dropped with the call if it is abandoned: its Drop kills whatever is left.
        let mut running = start(&path, &cmd, tree, Rlimits::new(&limits, timeout))
            .map_err(|e| HostError::Failed(format!("cannot run {}: {e}", path.display())))?;
        let (child, tree) = (&mut running.child, &running.tree);
        let ran = collect(child, tree, cmd.input, &limits, timeout).await;
        if ran.is_err() {
            // The child is reaped here, not left a zombie for tokio to collect some time later.
            tree.kill();
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        // Whatever happened, nothing of the program outlives the call.
        tree.finish().await;
        match ran {
            Err(()) => Err(HostError::Timeout),
            Ok(Err(e)) => Err(HostError::Failed(format!(
                "running {}: {e}",
                path.display()
            ))),
            Ok(Ok((status, stdout, stderr))) => Ok(Output {
                exit_code: status.code(),
                stdout,
                stderr,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn denied_arguments_are_escaped_and_cut() {
        let args = vec!["-name".to_string(), "a\"b\nc".to_string()];
        assert_eq!(shown_args(&args), r#"["-name", "a\"b\nc"]"#);
        let long = vec!["é".repeat(300), "x".into()];
        let shown = shown_args(&long);
        assert!(shown.len() < 240, "{} bytes", shown.len());
        assert!(shown.ends_with("... (2 arguments)"), "{shown}");
        assert!(!shown.contains('\n'));
    }

    #[tokio::test]
    async fn a_program_that_cannot_join_its_cgroup_still_runs_tracked_by_proc() {
        let cmd = Command {
            program: "/bin/true".into(),
            args: vec![],
            timeout_ms: 0,
            input: None,
        };
        let limits = ExecLimits::default();
        let rlimits = Rlimits::new(&limits, Duration::from_secs(1));
        let mut running = start(Path::new("/bin/true"), &cmd, Tree::unjoinable(), rlimits)
            .expect("runs after all");
        assert!(!running.tree.is_cgroup());
        assert!(running.child.wait().await.expect("wait").success());
        running.tree.finish().await;
        // Anything else that fails the spawn still fails it.
        let missing = Path::new("/no/such/program");
        assert!(start(missing, &cmd, Tree::unjoinable(), rlimits).is_err());
    }

    #[test]
    fn cpu_limit_is_the_timeout_rounded_up() {
        let limits = ExecLimits::default();
        let cpu = |t| Rlimits::new(&limits, t).0[0];
        assert_eq!(cpu(Duration::from_millis(1)).1, 1);
        assert_eq!(cpu(Duration::ZERO).1, 1);
        assert_eq!(cpu(Duration::from_millis(2500)).1, 3);
        assert_eq!(cpu(Duration::from_secs(5)).1, 5);
        assert_eq!(cpu(Duration::from_secs(5)).2, 6);
        let core = Rlimits::new(&limits, Duration::from_secs(1)).0[4];
        assert_eq!((core.1, core.2), (0, 0));
    }
}
