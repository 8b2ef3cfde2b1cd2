//! A real PostgreSQL (Debian's `postgresql`, 15) on a free loopback port, its cluster in a
//! temp dir: `initdb -A trust -U postgres` (so user `postgres` connects without a password),
//! then `pg_ctl -w start`; stopped with `pg_ctl -m fast stop` on drop.
//!
//! PostgreSQL refuses to run as root. When the tests run as root, initdb and pg_ctl run as
//! the unprivileged system user `hmrt-pg` (`$HMRT_PG_USER` overrides it), which
//! `scripts/setup --tests` creates, through `runuser -u hmrt-pg -- <argv>` (argv passed as is,
//! no shell); the temp dir is then in `/tmp` and owned by that user. Otherwise they run as the
//! current user.
//!
//! Where the binaries are found: `$HMRT_PG_BIN` (a directory holding `initdb`, `pg_ctl`,
//! `psql`), else the newest `/usr/lib/postgresql/<version>/bin`.
//!
//! The port, `listen_addresses = '127.0.0.1'` and the socket directory (the temp dir) are
//! written into the cluster's `postgresql.conf` rather than passed as `pg_ctl -o "-p P -k D
//! ..."`: pg_ctl hands `-o` to `/bin/sh`, and the config file needs no shell quoting. The
//! cluster is throwaway, so it also runs with `fsync = off`.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::supervisord::{free_port, process_alive, send_signal, wait_until};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
const SIGKILL: i32 = 9;

/// The user the server runs as when the tests run as root (see the module docs).
pub const DEFAULT_RUN_AS: &str = "hmrt-pg";

/// A running PostgreSQL cluster; stopped and deleted on drop.
pub struct PostgresServer {
    bin_dir: PathBuf,
    run_as: Option<String>,
    addr: SocketAddr,
    pid: u32,
    stopped: bool,
    dir: tempfile::TempDir,
}

/// The directory with `initdb`, `pg_ctl` and `psql` (see the module docs).
pub fn pg_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HMRT_PG_BIN") {
        return PathBuf::from(dir);
    }
    let root = Path::new("/usr/lib/postgresql");
    let version = |name: &str| -> Option<Vec<u32>> {
        name.split('.').map(|part| part.parse().ok()).collect()
    };
    std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb")
                .is_file()
                .then_some((version(&name)?, bin))
        })
        .max()
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| {
            panic!(
                "no /usr/lib/postgresql/<version>/bin/initdb (run scripts/setup --tests, which \
                 installs Debian's postgresql, or set HMRT_PG_BIN)"
            )
        })
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `id -u USER` / `id -g USER`.
fn id_of(user: &str, flag: &str) -> u32 {
    let out = Command::new("id")
        .arg(flag)
        .arg("--")
        .arg(user)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run id {flag} {user}: {e}"));
    assert!(
        out.status.success(),
        "no user {user:?} to run PostgreSQL as (it refuses root): run scripts/setup --tests as \
         root, which creates it with useradd --system --create-home {user}, or set \
         HMRT_PG_USER ({})",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("id {flag} {user}: {e}"))
}

/// Waits for `child` until `timeout`; kills it if it takes longer.
fn wait_within(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

impl PostgresServer {
    /// Creates a cluster, starts it, and waits until a StartupMessage for user `postgres`
    /// gets an authentication request (`R`) back (a test whose real part cannot start fails,
    /// naming why).
    pub fn start() -> PostgresServer {
        let bin_dir = pg_bin_dir();
        let run_as = running_as_root()
            .then(|| std::env::var("HMRT_PG_USER").unwrap_or_else(|_| DEFAULT_RUN_AS.to_owned()));
        let mut builder = tempfile::Builder::new();
        builder.prefix("hmrt-pg-");
        let dir = match &run_as {
            // That user must be able to reach it: not under root's own $TMPDIR.
            Some(_) => builder.tempdir_in("/tmp"),
            None => builder.tempdir(),
        }
        .expect("temp dir");
        let dir = if dir.path().join(".s.PGSQL.65535").as_os_str().len() < 100 {
            dir
        } else {
            // Unix socket paths are limited to 108 bytes.
            builder.tempdir_in("/tmp").expect("temp dir in /tmp")
        };
        if let Some(user) = &run_as {
            let (uid, gid) = (id_of(user, "-u"), id_of(user, "-g"));
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {} to {user}: {e}", dir.path().display()));
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut server = PostgresServer {
            bin_dir,
            run_as,
            addr,
            pid: 0,
            stopped: true,
            dir,
        };

        let data = server.data_dir();
        let status = server.run_tool(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
                "--no-sync".as_ref(),
            ],
            "initdb.log",
            READY_TIMEOUT,
        );
        assert!(
            status.is_some_and(|s| s.success()),
            "initdb failed ({status:?}):\n{}",
            server.read("initdb.log")
        );

        let socket_dir = server.dir.path().to_str().expect("temp dir path is UTF-8");
        assert!(
            !socket_dir.contains(['\'', '\\', '\n']),
            "temp dir path {socket_dir:?} cannot be quoted for postgresql.conf"
        );
        let settings = format!(
            "\n# hmrt-test-support\nport = {}\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{socket_dir}'\nfsync = off\n",
            addr.port()
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(settings.as_bytes()))
            .expect("append to postgresql.conf");

        server.stopped = false;
        let log = server.dir.path().join("postgres.log");
        let status = server.run_tool(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "start".as_ref(),
            ],
            "pg_ctl-start.log",
            READY_TIMEOUT + Duration::from_secs(10),
        );
        assert!(
            status.is_some_and(|s| s.success()),
            "pg_ctl start failed ({status:?}):\n{}\n{}",
            server.read("pg_ctl-start.log"),
            server.log()
        );
        server.pid = std::fs::read_to_string(data.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next()?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no pid in postmaster.pid:\n{}", server.log()));

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if startup_reply(addr).is_ok_and(|b| b == b'R') {
                return server;
            }
            assert!(
                process_alive(server.pid),
                "postgres (pid {}) exited:\n{}",
                server.pid,
                server.log()
            );
            assert!(
                Instant::now() < deadline,
                "postgres on {addr} not answering a StartupMessage in {READY_TIMEOUT:?}:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `bin_dir/tool args` (as the unprivileged user when root), stdout and stderr into
    /// `log` in the temp dir, with a deadline.
    fn run_tool(
        &self,
        tool: &str,
        args: &[&std::ffi::OsStr],
        log: &str,
        timeout: Duration,
    ) -> Option<ExitStatus> {
        let program = self.bin_dir.join(tool);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let runuser = Path::new("/usr/sbin/runuser");
                let mut c = Command::new(if runuser.is_file() {
                    runuser
                } else {
                    Path::new("runuser")
                });
                c.arg("-u").arg(user).arg("--").arg(&program);
                c
            }
            None => Command::new(&program),
        };
        let out = std::fs::File::create(self.dir.path().join(log)).expect("log file");
        let mut child = cmd
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone log file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {} ({cmd:?}): {e}", program.display()));
        wait_within(&mut child, timeout)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn read(&self, name: &str) -> String {
        std::fs::read(self.dir.path().join(name))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Its address, `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The directory of its unix socket (`.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The superuser, who connects without a password (`trust`): `postgres`.
    pub fn user(&self) -> &'static str {
        "postgres"
    }

    /// The postmaster's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The server's log.
    pub fn log(&self) -> String {
        self.read("postgres.log")
    }

    /// Runs `sql` through `psql` (as user `postgres`, over TCP, unaligned, tuples only,
    /// stopping at the first error) and returns its stdout; panics with stderr on failure.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bin_dir.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .arg("-p")
            .arg(self.port().to_string())
            .args(["-U", "postgres", "-d", "postgres", "-c", sql])
            .env("PGCONNECT_TIMEOUT", "10")
            .env("PGOPTIONS", "-c statement_timeout=30s")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run psql: {e}"));
        assert!(
            out.status.success(),
            "psql -c {sql:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops it (`pg_ctl -m fast stop`, then SIGKILL if the postmaster is still there after
    /// the deadline). Dropping it does the same, and deletes the cluster; calling this twice is
    /// harmless.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let data = self.data_dir();
        let status = self.run_tool(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "30".as_ref(),
                "stop".as_ref(),
            ],
            "pg_ctl-stop.log",
            STOP_TIMEOUT,
        );
        if self.pid == 0 {
            return;
        }
        // pg_ctl returns once postmaster.pid is gone, a moment before the process is.
        let pid = self.pid;
        if !wait_until(Duration::from_secs(10), || !process_alive(pid)) {
            eprintln!(
                "postgres (pid {pid}) still running after pg_ctl stop ({status:?}); killing it:\n{}",
                self.read("pg_ctl-stop.log")
            );
            if let Ok(pid) = i32::try_from(pid) {
                send_signal(pid, SIGKILL);
            }
            wait_until(Duration::from_secs(10), || !process_alive(pid));
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends a protocol 3.0 StartupMessage for user `postgres` and returns the first byte of the
/// answer (`R` for an authentication request, `E` for an error).
fn startup_reply(addr: SocketAddr) -> std::io::Result<u8> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(&startup_message("postgres"))?;
    let mut first = [0u8; 1];
    stream.read_exact(&mut first)?;
    // Terminate ('X'): the server then closes without logging an unexpected EOF.
    let _ = stream.write_all(&[b'X', 0, 0, 0, 4]);
    Ok(first[0])
}

/// A StartupMessage (protocol 196608, i.e. 3.0) for `user`.
pub fn startup_message(user: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes());
    body.extend_from_slice(b"user\0");
    body.extend_from_slice(user.as_bytes());
    body.extend_from_slice(b"\0\0");
    let len = u32::try_from(body.len() + 4).expect("short message");
    let mut msg = len.to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    msg
}
