//! Test fixture: a real supervisord (4.3.0) in a temporary directory, with a generated
//! `supervisord.conf`, a unix socket (and optionally an HTTP port and basic auth), stopped
//! with everything it runs when the [`Supervisord`] value is dropped.
//!
//! It uses only std and `tempfile`, and it queries supervisord through `supervisorctl` (from
//! the same installation) rather than through `hmrt-supervisor`, so it can test that client
//! without trusting it and needs no dependency on it.
//!
//! Where supervisord is found: `$HMRT_SUPERVISORD`, else `<workspace>/.tools/venv/bin/supervisord`
//! (install with `python3 -m venv .tools/venv && .tools/venv/bin/pip install supervisor==4.3.0`).
//! supervisorctl: `$HMRT_SUPERVISORCTL`, else next to supervisord.
//!
//! All methods block (supervisorctl is a process, ~0.2 s per call). In a tokio test that must
//! keep other tasks running meanwhile, call them through `tokio::task::spawn_blocking`.
//! Failures panic with supervisord's and the program's logs: this is test code.
//!
//! Cleanup: supervisord runs in its own process group and every program is started with
//! `stopasgroup`/`killasgroup`, so on drop supervisord's SIGTERM shutdown stops the programs
//! and their children; if it does not exit in time, the harness SIGKILLs the process groups
//! of supervisord and of every program it knew about. A test process killed with SIGKILL
//! cannot clean up, of course.

use std::fmt::Write as _;
use std::io::Read as _;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long supervisord gets to start answering.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one supervisorctl invocation may take.
const CTL_TIMEOUT: Duration = Duration::from_secs(15);
/// Poll interval while waiting for a state.
const POLL: Duration = Duration::from_millis(50);

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

mod sys {
    unsafe extern "C" {
        /// POSIX kill(2); std is linked against libc anyway, so no crate is needed for it.
        pub fn kill(pid: i32, sig: i32) -> i32;
    }
}

/// Sends `sig` to `pid` (negative: a process group). Returns whether it was delivered.
pub fn send_signal(pid: i32, sig: i32) -> bool {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { sys::kill(pid, sig) == 0 }
}

/// A server's executable: `$env` if set, else `name` on `PATH`, else `fallback` (where Debian
/// puts it), for a clear "not found" from the caller.
pub fn program_bin(env: &str, name: &str, fallback: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(fallback))
}

/// Stops a server: SIGTERM, and SIGKILL if it has not exited within `timeout`. Harmless on one
/// that has exited already.
pub fn terminate(child: &mut Child, timeout: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        send_signal(pid, 15);
    }
    if !wait_until(timeout, || matches!(child.try_wait(), Ok(Some(_)))) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Whether a process with this pid exists and is not a zombie (a container's pid 1 may never
/// reap orphans, so a dead one can linger as a zombie).
pub fn process_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may itself contain ')'.
    match stat.rfind(')') {
        Some(i) => !matches!(stat[i + 1..].trim_start().chars().next(), Some('Z' | 'X')),
        None => true,
    }
}

/// Polls `cond` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// The workspace root (the directory whose Cargo.toml has `[workspace]`), found upwards from
/// this crate's manifest directory.
pub fn workspace_root() -> PathBuf {
    let start = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in start.ancestors() {
        let manifest = dir.join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(&manifest)
            && text.lines().any(|l| l.trim() == "[workspace]")
        {
            return dir.to_path_buf();
        }
    }
    panic!("no workspace Cargo.toml above {}", start.display());
}

/// The supervisord executable (see the module docs).
pub fn supervisord_bin() -> PathBuf {
    let path = match std::env::var_os("HMRT_SUPERVISORD") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join(".tools/venv/bin/supervisord"),
    };
    assert!(
        path.is_file(),
        "supervisord not found at {} (set HMRT_SUPERVISORD, or install it: python3 -m venv \
         .tools/venv && .tools/venv/bin/pip install supervisor==4.3.0 in the workspace root)",
        path.display()
    );
    path
}

/// The supervisorctl executable (see the module docs).
pub fn supervisorctl_bin() -> PathBuf {
    let path = match std::env::var_os("HMRT_SUPERVISORCTL") {
        Some(p) => PathBuf::from(p),
        None => sibling_of_supervisord("supervisorctl"),
    };
    assert!(
        path.is_file(),
        "supervisorctl not found at {} (set HMRT_SUPERVISORCTL)",
        path.display()
    );
    path
}

/// A Python 3 interpreter for test services: the one next to supervisord if there is one
/// (the venv), else `python3` from PATH.
pub fn python3() -> PathBuf {
    let sibling = sibling_of_supervisord("python3");
    if sibling.is_file() {
        sibling
    } else {
        PathBuf::from("python3")
    }
}

fn sibling_of_supervisord(name: &str) -> PathBuf {
    let bin = supervisord_bin();
    bin.parent().unwrap_or(Path::new("/")).join(name)
}

/// `flaky_service.py`, next to this crate's `Cargo.toml` (`tests/support/`).
pub fn flaky_service_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("flaky_service.py")
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, release it).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// One `[program:x]` section.
#[derive(Debug, Clone)]
pub struct Program {
    /// The program name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// argv; supervisord execs it directly (no shell), searching PATH for `argv[0]`.
    pub command: Vec<String>,
    /// Start it when supervisord starts (default true).
    pub autostart: bool,
    /// Let supervisord restart it on exit (default false: hmrt is the one that restarts).
    pub autorestart: bool,
    /// Seconds it must stay up to count as started (default 1).
    pub startsecs: u32,
    /// supervisord's own retries after a too-quick exit (default 0: straight to FATAL).
    pub startretries: u32,
    /// Seconds between SIGTERM and SIGKILL on stop (default 5).
    pub stopwaitsecs: u32,
    /// Extra environment variables.
    pub environment: Vec<(String, String)>,
    /// Working directory (default: supervisord's).
    pub directory: Option<PathBuf>,
}

impl Program {
    /// A program running `command` with the defaults described on the fields.
    pub fn new(name: &str, command: &[&str]) -> Program {
        Program {
            name: name.to_owned(),
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            autostart: true,
            autorestart: false,
            startsecs: 1,
            startretries: 0,
            stopwaitsecs: 5,
            environment: Vec::new(),
            directory: None,
        }
    }

    /// `flaky_service.py --port <port>`; add more flags with [`Program::arg`].
    pub fn flaky_service(name: &str, port: u16) -> Program {
        let python = python3();
        let script = flaky_service_path();
        let port = port.to_string();
        Program::new(
            name,
            &[
                &python.to_string_lossy(),
                "-u",
                &script.to_string_lossy(),
                "--port",
                &port,
            ],
        )
    }

    /// Appends one argument to the command.
    pub fn arg(mut self, arg: impl Into<String>) -> Program {
        self.command.push(arg.into());
        self
    }

    /// Sets `autostart`.
    pub fn autostart(mut self, yes: bool) -> Program {
        self.autostart = yes;
        self
    }

    /// Sets `autorestart`.
    pub fn autorestart(mut self, yes: bool) -> Program {
        self.autorestart = yes;
        self
    }

    /// Sets `startsecs`.
    pub fn startsecs(mut self, secs: u32) -> Program {
        self.startsecs = secs;
        self
    }

    /// Sets `startretries`.
    pub fn startretries(mut self, n: u32) -> Program {
        self.startretries = n;
        self
    }

    /// Sets `stopwaitsecs`.
    pub fn stopwaitsecs(mut self, secs: u32) -> Program {
        self.stopwaitsecs = secs;
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Program {
        self.environment.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Sets the working directory.
    pub fn directory(mut self, dir: impl Into<PathBuf>) -> Program {
        self.directory = Some(dir.into());
        self
    }

    fn write_section(&self, out: &mut String, dir: &Path) {
        assert!(
            !self.name.is_empty()
                && self
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "program name {:?}: use letters, digits, '-', '_', '.'",
            self.name
        );
        assert!(
            !self.command.is_empty(),
            "program {}: empty command",
            self.name
        );
        let command: Vec<String> = self.command.iter().map(|a| shell_quote(a)).collect();
        let name = &self.name;
        let _ = writeln!(out, "[program:{name}]");
        let _ = writeln!(out, "command={}", ini_value(&command.join(" ")));
        let _ = writeln!(out, "autostart={}", self.autostart);
        let _ = writeln!(out, "autorestart={}", self.autorestart);
        let _ = writeln!(out, "startsecs={}", self.startsecs);
        let _ = writeln!(out, "startretries={}", self.startretries);
        let _ = writeln!(out, "stopwaitsecs={}", self.stopwaitsecs);
        let _ = writeln!(out, "stopsignal=TERM");
        // Signal the whole process group, so a program's own children go down with it.
        let _ = writeln!(out, "stopasgroup=true");
        let _ = writeln!(out, "killasgroup=true");
        let _ = writeln!(
            out,
            "stdout_logfile={}",
            ini_value(&dir.join(format!("{name}.stdout.log")).to_string_lossy())
        );
        let _ = writeln!(
            out,
            "stderr_logfile={}",
            ini_value(&dir.join(format!("{name}.stderr.log")).to_string_lossy())
        );
        if let Some(d) = &self.directory {
            let _ = writeln!(out, "directory={}", ini_value(&d.to_string_lossy()));
        }
        if !self.environment.is_empty() {
            let pairs: Vec<String> = self
                .environment
                .iter()
                .map(|(k, v)| {
                    assert!(
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "environment key {k:?}"
                    );
                    // supervisord's parser strips the quotes but has no escapes inside them.
                    assert!(!v.contains(['"', '\n', '\r']), "environment value {v:?}");
                    format!("{k}=\"{v}\"")
                })
                .collect();
            let _ = writeln!(out, "environment={}", ini_value(&pairs.join(",")));
        }
        out.push('\n');
    }
}

/// Quotes one argv element for supervisord's shlex-based command splitting.
fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./=:,+@%".contains(c))
    {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', "'\"'\"'"))
    }
}

/// Makes a value safe for supervisord's ini parser, which expands `%(name)s`.
fn ini_value(v: &str) -> String {
    assert!(
        !v.contains(['\n', '\r']),
        "config value with a line break: {v:?}"
    );
    v.replace('%', "%%")
}

/// Options beyond the program list; see [`Supervisord::builder`].
#[derive(Debug, Clone, Default)]
pub struct SupervisordBuilder {
    programs: Vec<Program>,
    http: Option<(String, u16)>,
    auth: Option<(String, String)>,
}

impl SupervisordBuilder {
    /// Adds a program.
    pub fn program(mut self, program: Program) -> SupervisordBuilder {
        self.programs.push(program);
        self
    }

    /// Also serves XML-RPC on `127.0.0.1:<port>` (`[inet_http_server]`); see [`free_port`].
    pub fn http_port(self, port: u16) -> SupervisordBuilder {
        self.http_listen("127.0.0.1", port)
    }

    /// Also serves XML-RPC on `<host>:<port>` (`[inet_http_server] port=host:port`), e.g.
    /// `127.0.0.2:80` for the port-less `http://127.0.0.2` (every 127.x address is loopback
    /// on Linux; port 80 needs root). supervisord exits if it cannot bind, and then
    /// [`start`](SupervisordBuilder::start) panics with its log.
    pub fn http_listen(mut self, host: &str, port: u16) -> SupervisordBuilder {
        assert!(
            !host.is_empty() && !host.contains([':', '[', ']', '\n', '\r', ' ']),
            "http_listen: host {host:?} (an IPv4 address or a name)"
        );
        self.http = Some((host.to_owned(), port));
        self
    }

    /// Requires basic auth on both the unix socket and the HTTP port.
    pub fn auth(mut self, username: &str, password: &str) -> SupervisordBuilder {
        self.auth = Some((username.to_owned(), password.to_owned()));
        self
    }

    /// Writes the config, starts supervisord and waits until it answers.
    pub fn start(self) -> Supervisord {
        Supervisord::launch(self)
    }
}

/// The status line supervisorctl prints for one program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramStatus {
    /// `RUNNING`, `STOPPED`, `EXITED`, `FATAL`, ...
    pub state: String,
    /// The pid while running.
    pub pid: Option<u32>,
    /// The rest of the line (`pid 123, uptime 0:00:05`, `Exited too quickly ...`).
    pub description: String,
}

/// A running supervisord; see the module docs.
pub struct Supervisord {
    child: Child,
    dir: tempfile::TempDir,
    conf: PathBuf,
    socket: PathBuf,
    http: Option<(String, u16)>,
    auth: Option<(String, String)>,
    programs: Vec<Program>,
}

impl Supervisord {
    /// Starts supervisord with these programs (unix socket only, no auth).
    pub fn start(programs: &[Program]) -> Supervisord {
        let mut builder = Supervisord::builder();
        builder.programs = programs.to_vec();
        builder.start()
    }

    /// For HTTP, auth, or adding programs one by one.
    pub fn builder() -> SupervisordBuilder {
        SupervisordBuilder::default()
    }

    fn launch(opts: SupervisordBuilder) -> Supervisord {
        let dir = tempdir_for_socket();
        let socket = dir.path().join("supervisor.sock");
        let conf = dir.path().join("supervisord.conf");
        std::fs::write(&conf, render_conf(&opts, dir.path(), &socket))
            .expect("write supervisord.conf");

        let out = std::fs::File::create(dir.path().join("supervisord.out")).expect("create file");
        let err = out.try_clone().expect("clone file");
        let child = Command::new(supervisord_bin())
            .arg("-c")
            .arg(&conf)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own process group: the fallback cleanup can kill it as a group, and a
            // Ctrl-C aimed at cargo does not race our orderly shutdown.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", supervisord_bin().display()));

        let mut sv = Supervisord {
            child,
            dir,
            conf,
            socket,
            http: opts.http,
            auth: opts.auth,
            programs: opts.programs,
        };
        sv.wait_ready();
        sv
    }

    fn wait_ready(&mut self) {
        let want = self.child.id().to_string();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "supervisord exited during startup ({status})\n{}",
                    self.diagnostics(None)
                );
            }
            if let Some((_, stdout)) = self.try_ctl(&["pid"])
                && stdout.trim() == want
            {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "supervisord did not answer within {READY_TIMEOUT:?}\n{}",
                    self.diagnostics(None)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// `unix://<tmp>/supervisor.sock`
    pub fn serverurl(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// `http://<host>:<port>` if an HTTP port was configured.
    pub fn http_serverurl(&self) -> Option<String> {
        self.http
            .as_ref()
            .map(|(host, port)| format!("http://{host}:{port}"))
    }

    /// The configured basic-auth credentials.
    pub fn auth(&self) -> Option<(String, String)> {
        self.auth.clone()
    }

    /// The temporary directory (config, socket, logs); removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The generated supervisord.conf.
    pub fn conf_path(&self) -> &Path {
        &self.conf
    }

    /// supervisord's own pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `supervisorctl -c <conf> <args>` and returns (exit code, stdout); panics if it
    /// hangs past its timeout.
    pub fn supervisorctl(&self, args: &[&str]) -> (Option<i32>, String) {
        self.try_ctl(args).unwrap_or_else(|| {
            panic!(
                "supervisorctl {args:?} took longer than {CTL_TIMEOUT:?}\n{}",
                self.diagnostics(None)
            )
        })
    }

    fn try_ctl(&self, args: &[&str]) -> Option<(Option<i32>, String)> {
        let mut child = Command::new(supervisorctl_bin())
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn supervisorctl: {e}"));
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + CTL_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let out = reader.join().unwrap_or_default();
        status.map(|s| (s.code(), out))
    }

    /// What supervisorctl says about program `name`; `None` if there is no such program.
    pub fn status(&self, name: &str) -> Option<ProgramStatus> {
        let (_, out) = self.supervisorctl(&["status", name]);
        out.lines().find_map(|line| parse_status_line(name, line))
    }

    /// The program's state (`RUNNING`, ...); panics for an unknown program.
    pub fn state_of(&self, name: &str) -> String {
        self.status(name)
            .unwrap_or_else(|| panic!("no program {name:?}"))
            .state
    }

    /// The program's pid if it has one.
    pub fn pid_of(&self, name: &str) -> Option<u32> {
        self.status(name).and_then(|s| s.pid)
    }

    /// Waits until program `name` is in `state`; panics with the logs after `timeout`.
    pub fn wait_for_state(&self, name: &str, state: &str, timeout: Duration) -> ProgramStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status(name);
            if let Some(s) = &status
                && s.state == state
            {
                return s.clone();
            }
            if Instant::now() >= deadline {
                panic!(
                    "program {name:?} not {state} after {timeout:?} (last: {status:?})\n{}",
                    self.diagnostics(Some(name))
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits (up to 30 s) until program `name` is RUNNING and returns its pid.
    pub fn wait_running(&self, name: &str) -> u32 {
        let status = self.wait_for_state(name, "RUNNING", Duration::from_secs(30));
        status
            .pid
            .unwrap_or_else(|| panic!("{name} RUNNING without a pid: {status:?}"))
    }

    /// SIGKILLs program `name` behind supervisord's back (a crash) and returns the pid it
    /// had. Panics if it is not running.
    pub fn kill_program(&self, name: &str) -> u32 {
        let pid = self
            .pid_of(name)
            .unwrap_or_else(|| panic!("kill_program: {name:?} has no pid"));
        let as_i32 = i32::try_from(pid).unwrap_or_else(|_| panic!("pid {pid} out of range"));
        assert!(send_signal(as_i32, SIGKILL), "kill -9 {pid} failed");
        pid
    }

    /// The program's stdout log so far.
    pub fn stdout_log(&self, name: &str) -> String {
        read_lossy(&self.dir.path().join(format!("{name}.stdout.log")))
    }

    /// The program's stderr log so far.
    pub fn stderr_log(&self, name: &str) -> String {
        read_lossy(&self.dir.path().join(format!("{name}.stderr.log")))
    }

    /// supervisord's own log so far.
    pub fn supervisord_log(&self) -> String {
        read_lossy(&self.dir.path().join("supervisord.log"))
    }

    fn diagnostics(&self, program: Option<&str>) -> String {
        let mut s = format!(
            "--- supervisord.log ---\n{}\n--- supervisord stdout/stderr ---\n{}\n",
            tail(&self.supervisord_log()),
            tail(&read_lossy(&self.dir.path().join("supervisord.out")))
        );
        if let Some(name) = program {
            let _ = write!(
                s,
                "--- {name} stdout ---\n{}\n--- {name} stderr ---\n{}\n",
                tail(&self.stdout_log(name)),
                tail(&self.stderr_log(name))
            );
        }
        s
    }

    /// Pids of all programs supervisord currently reports (for the fallback cleanup).
    fn program_pids(&self) -> Vec<u32> {
        let Some((_, out)) = self.try_ctl(&["status"]) else {
            return Vec::new();
        };
        out.lines()
            .filter_map(|line| {
                let name = line.split_whitespace().next()?;
                parse_status_line(name, line)?.pid
            })
            .collect()
    }
}

impl Drop for Supervisord {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pids = self.program_pids();
        let sv_pid = i32::try_from(self.child.id()).unwrap_or(i32::MAX);
        send_signal(sv_pid, SIGTERM);
        // supervisord stops every program (TERM, then KILL after stopwaitsecs) before exiting.
        let grace = self
            .programs
            .iter()
            .map(|p| p.stopwaitsecs)
            .max()
            .unwrap_or(0);
        let exited = wait_until(Duration::from_secs(u64::from(grace) + 10), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            eprintln!("supervisord did not stop in time; killing it and its programs");
            for pid in pids {
                if let Ok(pid) = i32::try_from(pid) {
                    // Each program leads its own process group (supervisord setpgrp()s them).
                    send_signal(-pid, SIGKILL);
                }
            }
            send_signal(-sv_pid, SIGKILL);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn render_conf(opts: &SupervisordBuilder, dir: &Path, socket: &Path) -> String {
    let mut c = String::new();
    let auth_lines = |c: &mut String| {
        if let Some((user, password)) = &opts.auth {
            let _ = writeln!(c, "username={}", ini_value(user));
            let _ = writeln!(c, "password={}", ini_value(password));
        }
    };
    let path = |p: PathBuf| ini_value(&p.to_string_lossy());
    let _ = writeln!(c, "[unix_http_server]");
    let _ = writeln!(c, "file={}", path(socket.to_path_buf()));
    let _ = writeln!(c, "chmod=0700");
    auth_lines(&mut c);
    c.push('\n');
    if let Some((host, port)) = &opts.http {
        let _ = writeln!(c, "[inet_http_server]");
        let _ = writeln!(c, "port={}:{port}", ini_value(host));
        auth_lines(&mut c);
        c.push('\n');
    }
    let _ = writeln!(c, "[rpcinterface:supervisor]");
    let _ = writeln!(
        c,
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface"
    );
    c.push('\n');
    let _ = writeln!(c, "[supervisorctl]");
    let _ = writeln!(c, "serverurl=unix://{}", path(socket.to_path_buf()));
    auth_lines(&mut c);
    c.push('\n');
    let _ = writeln!(c, "[supervisord]");
    let _ = writeln!(c, "nodaemon=true");
    let _ = writeln!(c, "logfile={}", path(dir.join("supervisord.log")));
    let _ = writeln!(c, "pidfile={}", path(dir.join("supervisord.pid")));
    let _ = writeln!(c, "childlogdir={}", path(dir.to_path_buf()));
    let _ = writeln!(c, "loglevel=debug");
    // Low limits: supervisord refuses to start if it cannot raise rlimits to these.
    let _ = writeln!(c, "minfds=64");
    let _ = writeln!(c, "minprocs=16");
    c.push('\n');
    for p in &opts.programs {
        p.write_section(&mut c, dir);
    }
    c
}

/// A temp dir whose socket path fits in sun_path (108 bytes) even with a long $TMPDIR.
fn tempdir_for_socket() -> tempfile::TempDir {
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("hmrt-sv-");
        b
    };
    let dir = builder.tempdir().expect("create temp dir");
    if dir.path().join("supervisor.sock").as_os_str().len() < 100 {
        return dir;
    }
    builder.tempdir_in("/tmp").expect("create temp dir in /tmp")
}

/// Parses `web   RUNNING   pid 123, uptime 0:00:01` for program `name`.
fn parse_status_line(name: &str, line: &str) -> Option<ProgramStatus> {
    let mut parts = line.split_whitespace();
    let first = parts.next()?;
    // "group:name" is printed for programs in groups; a plain program prints its name.
    if first != name && first.rsplit(':').next() != Some(name) {
        return None;
    }
    let state = parts.next()?;
    if !state.chars().all(|c| c.is_ascii_uppercase()) || state == "ERROR" {
        return None;
    }
    let description = parts.collect::<Vec<_>>().join(" ");
    let pid = description
        .strip_prefix("pid ")
        .and_then(|rest| rest.split(',').next())
        .and_then(|p| p.trim().parse().ok());
    Some(ProgramStatus {
        state: state.to_owned(),
        pid,
        description,
    })
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn tail(s: &str) -> &str {
    let start = s.len().saturating_sub(4000);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[start..]
}
