//! A real SMTP server on loopback: `aiosmtpd` (from PyPI, installed into `.tools/venv` by
//! `scripts/setup --tests`) with its `Mailbox` handler, which stores every message it accepts
//! in a Maildir the test reads.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::supervisord::{free_port, python3};

/// A running aiosmtpd; killed on drop.
pub struct SmtpServer {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    /// Starts it and waits until it greets (a test whose real part cannot start fails, naming
    /// why).
    pub fn start() -> SmtpServer {
        let python = python3();
        let dir = tempfile::Builder::new()
            .prefix("hmrt-smtp-")
            .tempdir()
            .expect("temp dir");
        let maildir = dir.path().join("maildir");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = std::fs::File::create(dir.path().join("smtpd.log")).expect("log file");
        let child = Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l", &addr.to_string()])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {} -m aiosmtpd: {e}", python.display()));
        let mut server = SmtpServer { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "aiosmtpd exited ({status}); run scripts/setup --tests, which installs it \
                     into .tools/venv:\n{}",
                    server.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd on {addr} not answering in 30 s:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its address, `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("smtpd.log")).unwrap_or_default()
    }

    /// Every message it has accepted so far, raw (headers and body), oldest first.
    pub fn messages(&self) -> Vec<String> {
        let new = self.dir.path().join("maildir").join("new");
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&new)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, path)| std::fs::read_to_string(path).ok())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
