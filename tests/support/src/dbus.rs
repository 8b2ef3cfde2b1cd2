//! A real D-Bus message bus (`dbus-daemon`, 1.14, with Debian's session-bus config) listening
//! on a unix socket in a temp dir: a private bus for tests that stand in for systemd's D-Bus
//! API (systemd itself cannot be PID 1 here).
//!
//! Where dbus-daemon is found: `$HMRT_DBUS_DAEMON`, else `dbus-daemon` on `PATH`, else
//! `/usr/bin/dbus-daemon` (Debian's `dbus`, installed by `scripts/setup --tests`).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::supervisord::{program_bin, terminate, wait_until};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running dbus-daemon; stopped (SIGTERM, then SIGKILL) on drop.
pub struct DbusDaemon {
    child: Child,
    address: String,
    dir: tempfile::TempDir,
}

/// The dbus-daemon executable (see the module docs).
pub fn dbus_daemon_bin() -> PathBuf {
    program_bin("HMRT_DBUS_DAEMON", "dbus-daemon", "/usr/bin/dbus-daemon")
}

impl DbusDaemon {
    /// Starts it and waits until it prints its address (a test whose real part cannot start
    /// fails, naming why).
    pub fn start() -> DbusDaemon {
        let bin = dbus_daemon_bin();
        assert!(
            bin.is_file(),
            "{} not found (run scripts/setup --tests, which installs Debian's dbus, or set \
             HMRT_DBUS_DAEMON)",
            bin.display()
        );
        let mut builder = tempfile::Builder::new();
        builder.prefix("hmrt-dbus-");
        let dir = builder.tempdir().expect("temp dir");
        // Unix socket paths are limited to 108 bytes.
        let dir = if dir.path().join("bus").as_os_str().len() < 100 {
            dir
        } else {
            builder.tempdir_in("/tmp").expect("temp dir in /tmp")
        };
        let socket = dir.path().join("bus");
        let socket_str = socket.to_str().expect("temp dir path is UTF-8");
        // D-Bus addresses escape these; a plain temp dir path needs none.
        assert!(
            socket_str
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_/.".contains(&b)),
            "temp dir path {socket_str:?} would need escaping in a D-Bus address"
        );
        let log = std::fs::File::create(dir.path().join("dbus.log")).expect("log file");
        let mut child = Command::new(&bin)
            .arg("--session")
            .arg(format!("--address=unix:path={socket_str}"))
            .args(["--nofork", "--print-address"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut daemon = DbusDaemon {
            child,
            address: String::new(),
            dir,
        };
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) if line.trim().starts_with("unix:") => {
                daemon.address = line.trim().to_owned();
                daemon
            }
            Ok(line) => {
                let status = wait_until(Duration::from_secs(2), || {
                    matches!(daemon.child.try_wait(), Ok(Some(_)))
                });
                panic!(
                    "dbus-daemon printed {line:?} instead of its address (exited: {status}):\n{}",
                    daemon.log()
                );
            }
            Err(_) => panic!(
                "dbus-daemon did not print its address in {READY_TIMEOUT:?}:\n{}",
                daemon.log()
            ),
        }
    }

    /// Its address as it printed it: `unix:path=<dir>/bus,guid=...` (for
    /// `DBUS_SESSION_BUS_ADDRESS`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Its socket, `<dir>/bus`.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("bus")
    }

    /// The temp dir (socket, log); removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// dbus-daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dbus.log")).unwrap_or_default()
    }

    /// Stops it: SIGTERM, and SIGKILL if it has not exited within 10 s. Dropping it does the
    /// same; calling this twice is harmless.
    pub fn stop(&mut self) {
        terminate(&mut self.child, STOP_TIMEOUT);
    }
}

impl Drop for DbusDaemon {
    fn drop(&mut self) {
        self.stop();
    }
}
