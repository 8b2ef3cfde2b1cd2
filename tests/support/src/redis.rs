//! A real Redis (Debian's `redis-server`, 7.0) on a free loopback port with its working
//! directory in a temp dir, no snapshots and no append-only file, optionally requiring a
//! password (`--requirepass`).
//!
//! Where redis-server is found: `$HMRT_REDIS_SERVER`, else `redis-server` on `PATH`, else
//! `/usr/bin/redis-server` (installed by `scripts/setup --tests`).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::supervisord::{free_port, program_bin, terminate};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running redis-server; stopped (SIGTERM, then SIGKILL) on drop.
pub struct RedisServer {
    child: Child,
    addr: SocketAddr,
    password: Option<String>,
    dir: tempfile::TempDir,
}

/// The redis-server executable (see the module docs).
pub fn redis_server_bin() -> PathBuf {
    program_bin("HMRT_REDIS_SERVER", "redis-server", "/usr/bin/redis-server")
}

impl RedisServer {
    /// Starts one without a password and waits until `PING` gets `+PONG` (a test whose real
    /// part cannot start fails, naming why).
    pub fn start() -> RedisServer {
        RedisServer::launch(None)
    }

    /// Starts one that requires `password` (`--requirepass`) and waits until `PING` gets
    /// `-NOAUTH`.
    pub fn start_with_password(password: &str) -> RedisServer {
        assert!(
            !password.is_empty() && !password.contains(['\r', '\n', '\0']),
            "start_with_password: {password:?} (non-empty, one line)"
        );
        RedisServer::launch(Some(password.to_owned()))
    }

    fn launch(password: Option<String>) -> RedisServer {
        let bin = redis_server_bin();
        assert!(
            bin.is_file(),
            "{} not found (run scripts/setup --tests, which installs Debian's redis-server, or \
             set HMRT_REDIS_SERVER)",
            bin.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("hmrt-redis-")
            .tempdir()
            .expect("temp dir");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = std::fs::File::create(dir.path().join("redis.log")).expect("log file");
        let mut cmd = Command::new(&bin);
        // No config file: every setting is an argument, so nothing of /etc/redis applies.
        cmd.arg("--port")
            .arg(addr.port().to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--logfile", ""])
            .arg("--dir")
            .arg(dir.path());
        if let Some(pw) = &password {
            cmd.arg("--requirepass").arg(pw);
        }
        let child = cmd
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut server = RedisServer {
            child,
            addr,
            password,
            dir,
        };
        let want: &[u8] = if server.password.is_some() {
            b"-NOAUTH"
        } else {
            b"+PONG\r\n"
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if ping(addr).is_ok_and(|reply| reply.starts_with(want)) {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("redis-server exited ({status}):\n{}", server.log());
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on {addr} not answering PING in {READY_TIMEOUT:?}:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its address, `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The password it requires, if any.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// redis-server's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// Stops it: SIGTERM, and SIGKILL if it has not exited within 10 s. Dropping it does the
    /// same; calling this twice is harmless.
    pub fn stop(&mut self) {
        terminate(&mut self.child, STOP_TIMEOUT);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `PING` on a new connection and returns the first reply line, `\r\n` included.
fn ping(addr: SocketAddr) -> std::io::Result<Vec<u8>> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(b"PING\r\n")?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    while !reply.ends_with(b"\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
    }
    Ok(reply)
}
