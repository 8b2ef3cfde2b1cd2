//! A real Alertmanager (Debian's `prometheus-alertmanager`, 0.25) on a free loopback port with
//! its own storage directory and no cluster port, for tests that deliver alerts to it.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::http;

/// A running Alertmanager; killed on drop.
pub struct Alertmanager {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// `HMRT_ALERTMANAGER` or `/usr/bin/prometheus-alertmanager`.
pub fn alertmanager_bin() -> PathBuf {
    std::env::var_os("HMRT_ALERTMANAGER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus-alertmanager"))
}

impl Alertmanager {
    /// Starts it and waits until `GET /-/ready` answers 200 (a test whose real part cannot
    /// start fails, naming why).
    pub fn start() -> Alertmanager {
        let bin = alertmanager_bin();
        assert!(
            bin.exists(),
            "{} not found (run scripts/setup --tests, which installs Debian's prometheus-alertmanager, or set HMRT_ALERTMANAGER)",
            bin.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("hmrt-alertmanager-")
            .tempdir()
            .expect("temp dir");
        let config = dir.path().join("am.yml");
        // One receiver that sends nowhere: the test reads the alerts through the API.
        std::fs::write(
            &config,
            "route:\n  receiver: nowhere\n  group_wait: 0s\nreceivers:\n  - name: nowhere\n",
        )
        .expect("write am.yml");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::fs::File::create(dir.path().join("am.log")).expect("log file");
        let child = Command::new(&bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start alertmanager");
        let mut am = Alertmanager {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if http::get(addr, "/-/ready").is_ok_and(|r| r.status == 200) {
                return am;
            }
            if let Ok(Some(status)) = am.child.try_wait() {
                let log =
                    std::fs::read_to_string(am._dir.path().join("am.log")).unwrap_or_default();
                panic!("alertmanager exited ({status}):\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "alertmanager on {addr} not ready in 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `GET /api/v2/alerts` (active, silenced, inhibited and unprocessed alike).
    pub fn alerts(&self) -> serde_json::Value {
        http::get(self.addr, "/api/v2/alerts")
            .and_then(|r| r.json())
            .expect("GET /api/v2/alerts")
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
