//! P4 of the performance issue: CPU per http check at most half of Monit's, measured side by
//! side on the same nginx target in one run. One nginx (its own prefix, config and access log in
//! a temp dir) answers `GET /hN` with 200; then `hmrt run` with N `http` tasks every 1 s, and
//! after it `monit -I` with the same N `check host` entries (`set daemon 1`), each alone. After
//! a warm-up, each checker is watched over a window: its checks counted at the target (lines of
//! nginx's access log, told apart by User-Agent: `hmrt/<version>`, `Monit/<version>`), its CPU
//! (utime + stime from `/proc/<pid>/stat`) divided by those checks, and its resident memory at
//! the end. It prints both, the ratio of CPU per check beside the target (≤ 0.50), and the
//! machine's load at start and end. Monit also checks the machine itself once per cycle (the
//! system service it adds when none is configured); that cost is counted as Monit's.
//!
//! ```text
//! cargo bench -p hmrt --bench monit --profile dev
//! ```
//!
//! Needs `nginx` and `monit` (`scripts/setup --bench` installs them); it fails at once without.
//! Without `--bench` on its command line it runs 20 tasks and a 3 s window, as a smoke test;
//! with it, 200 tasks and a 20 s window each.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{loadavg, proc_cpu_ticks, proc_rss_kb};

const RATIO_TARGET: f64 = 0.5;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (tasks, warmup, window) = if full {
        (200, Duration::from_secs(5), Duration::from_secs(20))
    } else {
        (20, Duration::from_secs(3), Duration::from_secs(3))
    };
    let nginx_bin = program("nginx");
    let monit_bin = program("monit");
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();
    let load_start = loadavg();
    let nginx = Nginx::start(&nginx_bin, dir);
    let hmrt_cmd = hmrt_command(dir, nginx.port, tasks);
    let hmrt = measure("hmrt", hmrt_cmd, "hmrt/", &nginx.access_log, warmup, window);
    let monit_cmd = monit_command(&monit_bin, dir, nginx.port, tasks);
    let monit = measure(
        "monit",
        monit_cmd,
        "monit/",
        &nginx.access_log,
        warmup,
        window,
    );
    drop(nginx);
    println!();
    println!(
        "P4: CPU per http check, hmrt beside Monit, {tasks} http tasks every 1 s against one \
         nginx, each alone: {}s warm-up, {}s window",
        warmup.as_secs(),
        window.as_secs()
    );
    println!("load at start {load_start}");
    report(&hmrt, &monit);
    println!("load at end {}", loadavg());
}

/// Both checkers' figures and the ratio of their CPU per check, beside the target.
fn report(hmrt: &Measured, monit: &Measured) {
    println!(
        "{:<6} {:>10} {:>10} {:>10} {:>14} {:>10}",
        "", "checks/s", "requests", "CPU", "CPU/check", "RSS"
    );
    for (name, m) in [("hmrt", hmrt), ("monit", monit)] {
        println!(
            "{name:<6} {:>10.1} {:>10} {:>7.0} ms {:>11.1} µs {:>7.1} MB",
            m.checks_per_s,
            m.requests,
            m.cpu_us / 1000.0,
            m.cpu_us / m.requests as f64,
            m.rss_mb
        );
    }
    if monit.cpu_us == 0.0 {
        // /proc counts CPU in clock ticks (10 ms): a short window can see none of Monit's.
        println!(
            "hmrt CPU/check ÷ Monit CPU/check not measurable: Monit used less than one clock \
             tick in its window (target ≤ {RATIO_TARGET:.2}) UNMEASURED"
        );
        return;
    }
    let ratio = (hmrt.cpu_us / hmrt.requests as f64) / (monit.cpu_us / monit.requests as f64);
    let verdict = if ratio <= RATIO_TARGET {
        "ok"
    } else {
        "MISSED"
    };
    println!("hmrt CPU/check ÷ Monit CPU/check {ratio:.2} (target ≤ {RATIO_TARGET:.2}) {verdict}");
}

/// The path of `name` on `PATH` or in the sbin directories (nginx lives in /usr/sbin, which
/// is not on every user's `PATH`); fails at once when it is missing.
fn program(name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin", "/sbin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if let Ok(meta) = std::fs::metadata(&candidate)
            && meta.is_file()
            && meta.permissions().mode() & 0o111 != 0
        {
            return candidate;
        }
    }
    panic!(
        "`{name}` not found on PATH or in /usr/sbin: this benchmark runs nginx and Monit; \
         install them with `scripts/setup --bench`"
    );
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// The last lines of a log file, for a failure message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A child process that is sent SIGTERM when dropped, and killed if it has not exited 5 s later.
struct Daemon {
    name: &'static str,
    child: Child,
    /// Where to look when it fails.
    log: PathBuf,
}

impl Daemon {
    fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> Daemon {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Daemon { name, child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails, showing its log, when it has exited.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited ({status}); {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log)
            );
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The target: nginx with one worker, everything it writes in `<dir>/nginx`.
struct Nginx {
    port: u16,
    access_log: PathBuf,
    _daemon: Daemon,
}

impl Nginx {
    fn start(bin: &Path, dir: &Path) -> Nginx {
        let prefix = dir.join("nginx");
        std::fs::create_dir(&prefix).expect("nginx's prefix");
        let port = free_port();
        let p = prefix.display();
        let access_log = prefix.join("access.log");
        let error_log = prefix.join("error.log");
        let config = format!(
            "worker_processes 1;\ndaemon off;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\n\
             events {{ worker_connections 1024; }}\nhttp {{\n\
             log_format bench '$msec $request_uri \"$http_user_agent\"';\n\
             access_log {p}/access.log bench;\n\
             client_body_temp_path {p}/body;\nproxy_temp_path {p}/proxy;\n\
             fastcgi_temp_path {p}/fastcgi;\nuwsgi_temp_path {p}/uwsgi;\nscgi_temp_path {p}/scgi;\n\
             keepalive_timeout 65s;\nkeepalive_requests 1000000;\n\
             server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\\n\"; }} }}\n}}\n"
        );
        let conf = prefix.join("nginx.conf");
        std::fs::write(&conf, config).expect("write nginx.conf");
        let mut cmd = Command::new(bin);
        cmd.arg("-p")
            .arg(format!("{p}/"))
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&error_log)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut daemon = Daemon::spawn("nginx", cmd, error_log);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !answers(port) {
            daemon.assert_running();
            assert!(
                Instant::now() < deadline,
                "nginx did not answer on 127.0.0.1:{port} within 10 s; {}:\n{}",
                daemon.log.display(),
                tail(&daemon.log)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx {
            port,
            access_log,
            _daemon: daemon,
        }
    }
}

/// Whether `GET /ready` on 127.0.0.1:`port` answers 200.
fn answers(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let request = "GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let mut response = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut response).is_ok()
        && response.starts_with("HTTP/1.1 200")
}

/// `hmrt run` with `tasks` http tasks every 1 s on the target, its log (warnings only) in
/// `<dir>/hmrt.log`.
fn hmrt_command(dir: &Path, port: u16, tasks: usize) -> (Command, PathBuf) {
    let mut config = format!(
        "[runtime]\nstate_dir = \"{}\"\n\n[defaults]\ninterval = \"1s\"\n",
        dir.join("hmrt-state").display()
    );
    for i in 0..tasks {
        let _ = write!(
            config,
            "\n[[task]]\nname = \"h{i}\"\ncheck = \"http\"\nconfig = {{ url = \"http://127.0.0.1:{port}/h{i}\" }}\ngrants = {{ http = [\"http://127.0.0.1:{port}\"] }}\n"
        );
    }
    let file = dir.join("tasks.toml");
    std::fs::write(&file, config).expect("write tasks.toml");
    let log = dir.join("hmrt.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hmrt"));
    cmd.arg("run")
        .arg(&file)
        .env("HMRT_LOG", "warn")
        .env("HMRT_CACHE_DIR", dir.join("hmrt-cache"))
        .stdout(Stdio::null())
        .stderr(File::create(&log).expect("hmrt.log"));
    (cmd, log)
}

/// `monit -I` with `tasks` host checks of the target, once a second, its log in
/// `<dir>/monit/monit.log`.
fn monit_command(bin: &Path, dir: &Path, port: u16, tasks: usize) -> (Command, PathBuf) {
    use std::os::unix::fs::OpenOptionsExt as _;
    let home = dir.join("monit");
    std::fs::create_dir(&home).expect("monit's dir");
    let h = home.display();
    let mut rc = format!(
        "set daemon 1\nset logfile {h}/monit.log\nset idfile {h}/monit.id\n\
         set statefile {h}/monit.state\nset pidfile {h}/monit.pid\n"
    );
    for i in 0..tasks {
        let _ = write!(
            rc,
            "\ncheck host h{i} with address 127.0.0.1\n  if failed port {port} protocol http request \"/h{i}\" then alert\n"
        );
    }
    let monitrc = home.join("monitrc");
    // Monit refuses a control file that others can read.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&monitrc)
        .and_then(|mut f| f.write_all(rc.as_bytes()))
        .expect("write monitrc");
    let log = home.join("monit.log");
    let mut cmd = Command::new(bin);
    cmd.arg("-I")
        .arg("-c")
        .arg(&monitrc)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    (cmd, log)
}

/// One checker's figures over its window.
struct Measured {
    /// Its requests nginx logged in the window.
    requests: u64,
    checks_per_s: f64,
    /// Its user + system CPU over the window, in µs (whole clock ticks).
    cpu_us: f64,
    rss_mb: f64,
}

/// Starts one checker, warms it up, watches it over `window`, and stops it.
fn measure(
    name: &'static str,
    (cmd, log): (Command, PathBuf),
    agent: &str,
    access_log: &Path,
    warmup: Duration,
    window: Duration,
) -> Measured {
    let started_at = log_len(access_log);
    let mut daemon = Daemon::spawn(name, cmd, log);
    std::thread::sleep(warmup);
    daemon.assert_running();
    let start = log_len(access_log);
    let warm = count_agent(access_log, started_at, start, agent);
    assert!(
        warm > 0,
        "{name} made no request to nginx in its {}s warm-up; {}:\n{}",
        warmup.as_secs(),
        daemon.log.display(),
        tail(&daemon.log)
    );
    let began = Instant::now();
    let cpu_before = proc_cpu_ticks(daemon.pid());
    std::thread::sleep(window);
    let cpu_after = proc_cpu_ticks(daemon.pid());
    let end = log_len(access_log);
    let elapsed = began.elapsed();
    let rss_mb = proc_rss_kb(daemon.pid()) as f64 / 1024.0;
    daemon.assert_running();
    drop(daemon);
    let requests = count_agent(access_log, start, end, agent);
    assert!(
        requests > 0,
        "{name} made no request to nginx in its window"
    );
    let hz = rustix::param::clock_ticks_per_second() as f64;
    Measured {
        requests,
        checks_per_s: requests as f64 / elapsed.as_secs_f64(),
        cpu_us: (cpu_after - cpu_before) as f64 / hz * 1e6,
        rss_mb,
    }
}

/// The access log's length in bytes now (nginx writes each line whole, unbuffered).
fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Lines of the access log between byte offsets `from` and `to` whose User-Agent starts with
/// `agent`, ignoring case (Monit sends `Monit/5.33.0`).
fn count_agent(path: &Path, from: u64, to: u64, agent: &str) -> u64 {
    let mut file = File::open(path).expect("open nginx's access log");
    file.seek(SeekFrom::Start(from))
        .expect("seek the access log");
    let mut bytes = Vec::new();
    file.take(to - from)
        .read_to_end(&mut bytes)
        .expect("read the access log");
    let agent = agent.to_ascii_lowercase();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| line.split_once('"').map(|(_, ua)| ua.to_ascii_lowercase()))
        .filter(|ua| ua.starts_with(&agent))
        .count() as u64
}
