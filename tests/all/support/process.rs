//! `hmrt run` as a real process, with its log lines as they come.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `hmrt run FILE` as a process, its stderr lines sent to a channel.
pub struct HmrtProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl HmrtProcess {
    /// Starts it with the log filter `info`.
    pub fn start(file: &Path) -> HmrtProcess {
        Self::start_logging(file, "info")
    }

    /// Starts it with the log filter `filter` (`HMRT_LOG`).
    pub fn start_logging(file: &Path, filter: &str) -> HmrtProcess {
        Self::start_with(file, filter, &[])
    }

    /// Starts it with the log filter `filter` and these environment variables (tokens).
    pub fn start_with(file: &Path, filter: &str, env: &[(&str, &str)]) -> HmrtProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hmrt"))
            .arg("run")
            .arg(file)
            .env("HMRT_LOG", filter)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hmrt");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        HmrtProcess {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Waits until a log line contains `text`.
    pub fn wait_log(&mut self, text: &str, timeout: Duration) {
        self.wait_until(text, timeout, |log| log.iter().any(|l| l.contains(text)));
    }

    /// Waits until `done` holds for the log lines so far; panics, naming `what`, after
    /// `timeout`. Returns the lines.
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[String]) -> bool,
    ) -> &[String] {
        let deadline = Instant::now() + timeout;
        while !done(&self.log) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.log.push(line),
                Err(_) => panic!("hmrt never logged {what}:\n{}", self.log.join("\n")),
            }
        }
        &self.log
    }

    /// The address the HTTP API listens on, from its log line (a config can ask for port 0,
    /// so tests never race for a port).
    pub fn api_addr(&mut self) -> std::net::SocketAddr {
        const SAID: &str = "HTTP API and /metrics on http://";
        let log = self.wait_until("the API's address", Duration::from_secs(60), |log| {
            log.iter().any(|l| l.contains(SAID))
        });
        let line = log.iter().find(|l| l.contains(SAID)).expect("the line");
        let rest = &line[line.find(SAID).expect("found") + SAID.len()..];
        let addr = rest.split('/').next().expect("an address");
        addr.parse().unwrap_or_else(|e| panic!("{addr:?}: {e}"))
    }

    /// Every line logged so far, joined.
    pub fn drain(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        self.log.join("\n")
    }

    /// SIGKILL, and reap it.
    pub fn kill9(&mut self) {
        self.child.kill().expect("kill -9 hmrt");
        self.child.wait().expect("reap hmrt");
    }

    /// SIGTERM, and wait (up to 10 s) for it to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "hmrt did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for HmrtProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
