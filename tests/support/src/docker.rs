//! A real Docker engine (Debian's `docker.io`, 20.10) of the test's own: `dockerd` with its
//! data, exec root, socket and pid file in a short temp dir (`/tmp/hd-XXXXXX`: unix socket
//! paths are limited to 108 bytes, and containerd's sockets live under the exec root), no
//! iptables rules, no bridge, no IP forwarding and an empty daemon config, so it touches
//! nothing of a system-wide Docker and needs no network. It starts its own containerd.
//!
//! Images come without a registry: [`DockerEngine::import_busybox`] imports a rootfs holding
//! only a static busybox (Debian's `busybox-static`) and a few applet links; containers run
//! with `--network none`. On drop, every container it started is removed (`docker rm -f`),
//! dockerd gets SIGTERM (it stops its containerd) and is waited for with a deadline, and the
//! temp dir is deleted.
//!
//! dockerd needs root. Where things are found: dockerd `$HMRT_DOCKERD`, else `dockerd` on
//! `PATH`, else `/usr/sbin/dockerd`; the client `$HMRT_DOCKER`, else `/usr/bin/docker` (the one
//! from `docker.io`, matching the engine), else `docker` on `PATH`; busybox `$HMRT_BUSYBOX`,
//! else `/bin/busybox`. `$HMRT_DOCKER_STORAGE_DRIVER`, if set, is passed as
//! `--storage-driver` (dockerd picks `overlay2` by itself where the kernel has overlayfs; `vfs`
//! works everywhere, slowly).

use std::io::{Read as _, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::supervisord::{process_alive, send_signal, wait_until};

/// How long dockerd gets to answer `docker info`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one docker CLI invocation may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);
/// How long dockerd gets to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const SIGTERM: i32 = 15;
const SIGKILL: i32 = 9;

/// The applets [`DockerEngine::import_busybox`] links in `/bin` (any other runs as
/// `/bin/busybox APPLET`).
pub const BUSYBOX_APPLETS: &[&str] = &["sh", "sleep", "httpd", "true", "false"];

/// A running dockerd; see the module docs.
pub struct DockerEngine {
    child: Child,
    docker: PathBuf,
    image: Mutex<Option<String>>,
    containers: Mutex<Vec<String>>,
    stopped: bool,
    dir: tempfile::TempDir,
}

fn in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The dockerd executable (see the module docs).
pub fn dockerd_bin() -> PathBuf {
    std::env::var_os("HMRT_DOCKERD")
        .map(PathBuf::from)
        .or_else(|| in_path("dockerd"))
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/dockerd"))
}

/// The docker client (see the module docs).
pub fn docker_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("HMRT_DOCKER") {
        return PathBuf::from(path);
    }
    let debian = Path::new("/usr/bin/docker");
    if debian.is_file() {
        return debian.to_path_buf();
    }
    in_path("docker").unwrap_or_else(|| debian.to_path_buf())
}

/// The static busybox put into images (see the module docs).
pub fn busybox_bin() -> PathBuf {
    std::env::var_os("HMRT_BUSYBOX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/bin/busybox"))
}

/// Runs `cmd` (stdout and stderr captured; stdin as the caller set it) and waits at most
/// `timeout`; kills it and returns a `TimedOut` error if it takes longer.
pub fn output_within(cmd: &mut Command, timeout: Duration) -> std::io::Result<Output> {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait()? {
            Some(status) => break Some(status),
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "{cmd:?} took longer than {timeout:?}; stderr: {}",
                String::from_utf8_lossy(&stderr)
            ),
        )),
    }
}

/// Whether `bytes` is a 64-bit little-endian ELF executable without a program interpreter
/// (statically linked). Other ELF classes are not judged (`true`).
fn is_static_elf(bytes: &[u8]) -> bool {
    let u16_at = |i: usize| {
        bytes
            .get(i..i + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u64_at = |i: usize| {
        bytes
            .get(i..i + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    if !bytes.starts_with(b"\x7fELF") {
        return false;
    }
    if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return true;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    const PT_INTERP: u32 = 3;
    (0..usize::from(phnum)).all(|i| {
        let at = phoff + i * usize::from(phentsize);
        bytes
            .get(at..at + 4)
            .is_some_and(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) != PT_INTERP)
    })
}

impl DockerEngine {
    /// Starts dockerd and waits (up to 60 s) until `docker info` succeeds (a test whose real
    /// part cannot start fails, naming why).
    pub fn start() -> DockerEngine {
        let dockerd = dockerd_bin();
        let docker = docker_bin();
        for (bin, var) in [(&dockerd, "HMRT_DOCKERD"), (&docker, "HMRT_DOCKER")] {
            assert!(
                bin.is_file(),
                "{} not found (run scripts/setup --tests, which installs Debian's docker.io, or \
                 set {var})",
                bin.display()
            );
        }
        assert!(
            std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0),
            "dockerd needs root; these tests run it only when run as root"
        );
        let dir = tempfile::Builder::new()
            .prefix("hd-")
            .tempdir_in("/tmp")
            .expect("temp dir in /tmp");
        let d = dir.path();
        // Its identity key in its own dir (else dockerd creates /etc/docker/key.json); 20.10
        // has no flag for it.
        let config = serde_json::json!({
            "deprecated-key-path": d.join("key.json").to_string_lossy(),
        });
        std::fs::write(d.join("daemon.json"), config.to_string()).expect("write daemon.json");
        let log = std::fs::File::create(d.join("dockerd.log")).expect("log file");
        let mut cmd = Command::new(&dockerd);
        cmd.arg(format!("--data-root={}", d.join("root").display()))
            .arg(format!("--exec-root={}", d.join("exec").display()))
            .arg(format!("--host=unix://{}", d.join("docker.sock").display()))
            .arg(format!("--pidfile={}", d.join("docker.pid").display()))
            // Not /etc/docker/daemon.json: a machine's own settings must not apply.
            .arg(format!("--config-file={}", d.join("daemon.json").display()))
            .args(["--iptables=false", "--ip-forward=false", "--ip-masq=false"])
            .arg("--bridge=none");
        if let Some(driver) = std::env::var_os("HMRT_DOCKER_STORAGE_DRIVER") {
            cmd.arg("--storage-driver").arg(driver);
        }
        let child = cmd
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log file"))
            .stderr(log)
            // Its own process group, so the fallback cleanup can kill it as a group.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", dockerd.display()));
        let mut engine = DockerEngine {
            child,
            docker,
            image: Mutex::new(None),
            containers: Mutex::new(Vec::new()),
            stopped: false,
            dir,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let info = engine.cli_within(&["info"], Duration::from_secs(10));
            if info.as_ref().is_ok_and(|o| o.status.success()) {
                return engine;
            }
            if let Ok(Some(status)) = engine.child.try_wait() {
                panic!("dockerd exited ({status}):\n{}", engine.log());
            }
            if Instant::now() >= deadline {
                let last = match info {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                panic!(
                    "dockerd not answering `docker info` in {READY_TIMEOUT:?} (last: {last}):\n{}",
                    engine.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `docker -H <its socket>`, with its client config in its dir (not `~/.docker`) and no
    /// `DOCKER_CONTEXT` from the environment.
    fn cli(&self) -> Command {
        let mut cmd = Command::new(&self.docker);
        cmd.arg("-H")
            .arg(self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("cli"))
            .env_remove("DOCKER_CONTEXT");
        cmd
    }

    fn cli_within(&self, args: &[&str], timeout: Duration) -> std::io::Result<Output> {
        output_within(self.cli().args(args).stdin(Stdio::null()), timeout)
    }

    /// Runs `docker -H <its socket> ARGS` (60 s deadline) and returns what it did; panics only
    /// if it cannot run or hangs.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.cli_within(args, CLI_TIMEOUT)
            .unwrap_or_else(|e| panic!("docker {args:?}: {e}"))
    }

    /// Its socket, `/tmp/hd-XXXXXX/docker.sock`.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// `unix://` and its socket, for `docker -H` or `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// dockerd's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The pid of the containerd this dockerd started, once it has.
    pub fn containerd_pid(&self) -> Option<u32> {
        let path = self.dir.path().join("exec/containerd/containerd.pid");
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }

    /// What dockerd (and its containerd) logged.
    pub fn log(&self) -> String {
        std::fs::read(self.dir.path().join("dockerd.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// `GET path` on the Engine API over its socket (HTTP/1.0, so the body is read to the
    /// end); returns the status and the body. Example path: `/v1.41/containers/NAME/json`.
    pub fn api_get(&self, path: &str) -> (u16, String) {
        assert!(
            path.starts_with('/') && !path.contains(['\r', '\n', ' ']),
            "api_get: path {path:?}"
        );
        let exchange = || -> std::io::Result<Vec<u8>> {
            let mut stream = UnixStream::connect(self.socket())?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.set_write_timeout(Some(Duration::from_secs(10)))?;
            write!(stream, "GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n")?;
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw)?;
            Ok(raw)
        };
        let raw = exchange().unwrap_or_else(|e| panic!("GET {path} on {}: {e}", self.host()));
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("GET {path}: not an HTTP response: {head:?}"));
        (status, body.to_owned())
    }

    /// Imports an image named `tag` (e.g. `busybox:local`) whose rootfs is a static busybox as
    /// `/bin/busybox` with [`BUSYBOX_APPLETS`] linked next to it and an empty `/tmp`:
    /// `tar -C rootfs -c . | docker import - TAG`, piped here, no shell. [`run`](Self::run)
    /// then uses it.
    pub fn import_busybox(&self, tag: &str) {
        let busybox = busybox_bin();
        let bytes = std::fs::read(&busybox).unwrap_or_else(|e| {
            panic!(
                "read {}: {e} (run scripts/setup --tests, which installs Debian's \
                 busybox-static, or set HMRT_BUSYBOX)",
                busybox.display()
            )
        });
        assert!(
            is_static_elf(&bytes),
            "{} is not a static executable, so it cannot run alone in an image: install \
             Debian's busybox-static (scripts/setup --tests) or set HMRT_BUSYBOX",
            busybox.display()
        );
        let rootfs = tempfile::Builder::new()
            .prefix("rootfs-")
            .tempdir_in(self.dir.path())
            .expect("rootfs dir");
        let bin = rootfs.path().join("bin");
        std::fs::create_dir(&bin).expect("mkdir rootfs/bin");
        std::fs::write(bin.join("busybox"), &bytes).expect("write rootfs/bin/busybox");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(bin.join("busybox"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod rootfs/bin/busybox");
        for applet in BUSYBOX_APPLETS {
            std::os::unix::fs::symlink("busybox", bin.join(applet))
                .unwrap_or_else(|e| panic!("link rootfs/bin/{applet}: {e}"));
        }
        let tmp = rootfs.path().join("tmp");
        std::fs::create_dir(&tmp).expect("mkdir rootfs/tmp");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))
            .expect("chmod rootfs/tmp");

        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(rootfs.path())
            .args(["--numeric-owner", "--owner=0", "--group=0", "-c", "."])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start tar: {e}"));
        let tar_out = tar.stdout.take().expect("tar stdout is piped");
        let import = output_within(
            self.cli()
                .args(["import", "-", tag])
                .stdin(Stdio::from(tar_out)),
            CLI_TIMEOUT,
        );
        let tar_ok = wait_until(Duration::from_secs(10), || {
            matches!(tar.try_wait(), Ok(Some(_)))
        });
        if !tar_ok {
            let _ = tar.kill();
        }
        let tar_status = tar.wait().expect("wait for tar");
        let mut tar_err = String::new();
        if let Some(mut e) = tar.stderr.take() {
            let _ = e.read_to_string(&mut tar_err);
        }
        let import = import.unwrap_or_else(|e| panic!("docker import: {e}"));
        assert!(
            tar_status.success() && import.status.success(),
            "tar ({tar_status}: {tar_err}) | docker import - {tag} ({}: {}) failed:\n{}",
            import.status,
            String::from_utf8_lossy(&import.stderr),
            self.log()
        );
        *self.image.lock().unwrap_or_else(|e| e.into_inner()) = Some(tag.to_owned());
    }

    /// `docker run -d --network none --name NAME IMAGE ARGS...` with the image of the last
    /// [`import_busybox`](Self::import_busybox); returns the container id. The container is
    /// removed on drop.
    pub fn run(&self, name: &str, args: &[&str]) -> String {
        let image = self
            .image
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .expect("DockerEngine::run: call import_busybox first");
        let mut argv = vec![
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            name,
            image.as_str(),
        ];
        argv.extend_from_slice(args);
        let out = self.docker(&argv);
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        // Even a failed run may have created it.
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(if id.is_empty() {
                name.to_owned()
            } else {
                id.clone()
            });
        assert!(
            out.status.success() && !id.is_empty(),
            "docker run {name} ({}): {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        id
    }

    /// Removes every container [`run`](Self::run) started, stops dockerd (SIGTERM; SIGKILL to
    /// it and its containerd after 30 s) and unmounts whatever it left mounted in its
    /// directory. Dropping it does the same, and deletes the directory; calling this twice is
    /// harmless.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let containerd = self.containerd_pid();
        if let Ok(Some(_)) = self.child.try_wait() {
            self.unmount_leftovers();
            return;
        }
        let containers =
            std::mem::take(&mut *self.containers.lock().unwrap_or_else(|e| e.into_inner()));
        if !containers.is_empty() {
            let mut argv = vec!["rm", "-f"];
            argv.extend(containers.iter().map(String::as_str));
            match self.cli_within(&argv, CLI_TIMEOUT) {
                Ok(out) if out.status.success() => {}
                Ok(out) => eprintln!(
                    "docker rm -f {containers:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(e) => eprintln!("docker rm -f {containers:?}: {e}"),
            }
        }
        let pid = i32::try_from(self.child.id()).unwrap_or(i32::MAX);
        send_signal(pid, SIGTERM);
        let child = &mut self.child;
        if !wait_until(STOP_TIMEOUT, || matches!(child.try_wait(), Ok(Some(_)))) {
            eprintln!("dockerd did not stop in {STOP_TIMEOUT:?}; killing it and its containerd");
            send_signal(-pid, SIGKILL);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(containerd) = containerd
            && !wait_until(Duration::from_secs(10), || !process_alive(containerd))
        {
            if let Ok(p) = i32::try_from(containerd) {
                send_signal(p, SIGKILL);
            }
            wait_until(Duration::from_secs(5), || !process_alive(containerd));
        }
        self.unmount_leftovers();
    }

    /// Lazily unmounts anything still mounted under its directory (deepest first), so that
    /// deleting it cannot fail on a busy mount.
    fn unmount_leftovers(&self) {
        let dir = self.dir.path();
        let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        let mut points: Vec<PathBuf> = mountinfo
            .lines()
            .filter_map(|line| line.split(' ').nth(4))
            .map(|p| PathBuf::from(p.replace("\\040", " ")))
            .filter(|p| p.starts_with(dir))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for point in points {
            let _ = output_within(
                Command::new("umount")
                    .arg("-l")
                    .arg(&point)
                    .stdin(Stdio::null()),
                Duration::from_secs(10),
            );
        }
    }
}

impl Drop for DockerEngine {
    fn drop(&mut self) {
        self.stop();
    }
}
