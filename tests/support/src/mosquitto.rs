//! A real MQTT broker (Debian's `mosquitto`, 2.0) on a free loopback port, with a generated
//! config in a temp dir: anonymous clients allowed, no persistence, its log in that dir.
//!
//! Where mosquitto is found: `$HMRT_MOSQUITTO`, else `mosquitto` on `PATH`, else
//! `/usr/sbin/mosquitto` (installed by `scripts/setup --tests`).
//!
//! Run as root, mosquitto drops privileges to the `mosquitto` user, which could not write the
//! log in the (root-only) temp dir; so as root the config says `user root` and it stays root.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::supervisord::{free_port, program_bin, terminate};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// An MQTT 3.1.1 CONNECT: clean session, keep-alive 60 s, empty client id.
pub const CONNECT: [u8; 14] = [
    0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00,
];
/// The CONNACK that accepts it (session present 0, return code 0).
pub const CONNACK_ACCEPTED: [u8; 4] = [0x20, 0x02, 0x00, 0x00];

/// A running mosquitto; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Mosquitto {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

/// The mosquitto executable (see the module docs).
pub fn mosquitto_bin() -> PathBuf {
    program_bin("HMRT_MOSQUITTO", "mosquitto", "/usr/sbin/mosquitto")
}

impl Mosquitto {
    /// Starts it and waits until a CONNECT gets [`CONNACK_ACCEPTED`] (a test whose real part
    /// cannot start fails, naming why).
    pub fn start() -> Mosquitto {
        let bin = mosquitto_bin();
        assert!(
            bin.is_file(),
            "{} not found (run scripts/setup --tests, which installs Debian's mosquitto, or set \
             HMRT_MOSQUITTO)",
            bin.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("hmrt-mosquitto-")
            .tempdir()
            .expect("temp dir");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = dir.path().join("mosquitto.log");
        let log_str = log.to_str().expect("temp dir path is UTF-8");
        assert!(
            !log_str.contains(['\n', '\r']),
            "temp dir path {log_str:?} has a line break"
        );
        let as_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let mut conf = String::new();
        if as_root {
            conf.push_str("user root\n");
        }
        conf.push_str(&format!(
            "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             log_dest file {log_str}\nlog_type all\n",
            addr.port()
        ));
        let conf_path = dir.path().join("mq.conf");
        std::fs::write(&conf_path, conf).expect("write mq.conf");
        // Before it opens its log (and if it cannot), it writes to stderr.
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("stderr file");
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&conf_path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut broker = Mosquitto { child, addr, dir };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if connack(addr).is_ok_and(|reply| reply == CONNACK_ACCEPTED) {
                return broker;
            }
            if let Ok(Some(status)) = broker.child.try_wait() {
                panic!("mosquitto exited ({status}):\n{}", broker.log());
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto on {addr} not accepting an MQTT CONNECT in {READY_TIMEOUT:?}:\n{}",
                broker.log()
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

    /// mosquitto's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged (its stderr, then its log file).
    pub fn log(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("mosquitto.log"))
    }

    /// Stops it: SIGTERM, and SIGKILL if it has not exited within 10 s. Dropping it does the
    /// same; calling this twice is harmless.
    pub fn stop(&mut self) {
        terminate(&mut self.child, STOP_TIMEOUT);
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends [`CONNECT`] on a new connection and returns the first 4 bytes of the answer, then
/// disconnects.
fn connack(addr: SocketAddr) -> std::io::Result<[u8; 4]> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(&CONNECT)?;
    let mut reply = [0u8; 4];
    stream.read_exact(&mut reply)?;
    let _ = stream.write_all(&[0xe0, 0x00]); // DISCONNECT
    Ok(reply)
}
