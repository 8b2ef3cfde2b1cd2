//! Smoke tests of the real-server starters: each starts its server, speaks its protocol to it,
//! drops it, and checks that no process of it is left (its pid is gone from /proc, or only a
//! zombie).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use hmrt_test_support::dbus::DbusDaemon;
use hmrt_test_support::docker::DockerEngine;
use hmrt_test_support::mosquitto::{CONNACK_ACCEPTED, CONNECT, Mosquitto};
use hmrt_test_support::postgres::{PostgresServer, startup_message};
use hmrt_test_support::redis::RedisServer;
use hmrt_test_support::supervisord::{process_alive, wait_until};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Reads until `done(bytes so far)` or EOF; a read timeout fails the test.
fn read_until(stream: &mut impl std::io::Read, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&got) {
        let n = stream
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read (so far {:?}): {e}", String::from_utf8_lossy(&got)));
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    got
}

fn redis_command(stream: &mut TcpStream, command: &str) -> String {
    stream
        .write_all(format!("{command}\r\n").as_bytes())
        .unwrap();
    String::from_utf8_lossy(&read_until(stream, |b| b.ends_with(b"\r\n"))).into_owned()
}

fn assert_gone(what: &str, pid: u32) {
    assert!(
        wait_until(Duration::from_secs(10), || !process_alive(pid)),
        "{what} (pid {pid}) still running after drop"
    );
}

fn report(name: &str, started: Instant) {
    eprintln!("{name}: {:.2?}", started.elapsed());
}

#[test]
fn redis_answers_ping_and_requires_its_password() {
    let started = Instant::now();
    let redis = RedisServer::start();
    let mut conn = connect(redis.addr());
    assert_eq!(redis_command(&mut conn, "PING"), "+PONG\r\n");
    assert_eq!(redis_command(&mut conn, "SET hmrt smoke"), "+OK\r\n");
    conn.write_all(b"GET hmrt\r\n").unwrap();
    let value = read_until(&mut conn, |b| b.ends_with(b"smoke\r\n"));
    assert_eq!(value, b"$5\r\nsmoke\r\n");
    let pid = redis.pid();
    drop(conn);
    drop(redis);
    assert_gone("redis-server", pid);

    let redis = RedisServer::start_with_password("s3cret");
    assert_eq!(redis.password(), Some("s3cret"));
    let mut conn = connect(redis.addr());
    assert!(redis_command(&mut conn, "PING").starts_with("-NOAUTH"));
    assert!(redis_command(&mut conn, "AUTH wrong").starts_with("-WRONGPASS"));
    assert_eq!(redis_command(&mut conn, "AUTH s3cret"), "+OK\r\n");
    assert_eq!(redis_command(&mut conn, "PING"), "+PONG\r\n");
    let pid = redis.pid();
    drop(conn);
    drop(redis);
    assert_gone("redis-server (with a password)", pid);
    report("redis", started);
}

#[test]
fn mosquitto_accepts_a_connect_and_acknowledges_a_publish() {
    let started = Instant::now();
    let broker = Mosquitto::start();
    let mut conn = connect(broker.addr());
    conn.write_all(&CONNECT).unwrap();
    let mut connack = [0u8; 4];
    conn.read_exact(&mut connack).unwrap();
    assert_eq!(connack, CONNACK_ACCEPTED);
    // PUBLISH, QoS 1, topic "hmrt/smoke", packet id 1, payload "up" → PUBACK for id 1.
    let mut publish = vec![0x32, 0];
    publish.extend_from_slice(&[0x00, 0x0a]);
    publish.extend_from_slice(b"hmrt/smoke");
    publish.extend_from_slice(&[0x00, 0x01]);
    publish.extend_from_slice(b"up");
    publish[1] = u8::try_from(publish.len() - 2).unwrap();
    conn.write_all(&publish).unwrap();
    let mut puback = [0u8; 4];
    conn.read_exact(&mut puback).unwrap();
    assert_eq!(puback, [0x40, 0x02, 0x00, 0x01]);
    conn.write_all(&[0xe0, 0x00]).unwrap();
    let pid = broker.pid();
    drop(conn);
    drop(broker);
    assert_gone("mosquitto", pid);
    report("mosquitto", started);
}

#[test]
fn postgres_answers_a_startup_message_and_runs_sql() {
    let started = Instant::now();
    let pg = PostgresServer::start();
    let mut conn = connect(pg.addr());
    conn.write_all(&startup_message(pg.user())).unwrap();
    // Trust: AuthenticationOk ('R', length 8, code 0), ..., then ReadyForQuery ('Z', 5, 'I').
    let reply = read_until(&mut conn, |b| b.ends_with(&[b'Z', 0, 0, 0, 5, b'I']));
    assert_eq!(&reply[..9], &[b'R', 0, 0, 0, 8, 0, 0, 0, 0], "{reply:?}");
    assert!(reply.ends_with(&[b'Z', 0, 0, 0, 5, b'I']), "{reply:?}");
    conn.write_all(&[b'X', 0, 0, 0, 4]).unwrap();
    drop(conn);
    assert_eq!(pg.psql("SELECT 40 + 2").trim(), "42");
    assert!(
        pg.socket_dir()
            .join(format!(".s.PGSQL.{}", pg.port()))
            .exists()
    );
    let pid = pg.pid();
    let dir = pg.socket_dir().to_path_buf();
    drop(pg);
    assert_gone("postgres", pid);
    assert!(!dir.exists(), "{} left behind", dir.display());
    report("postgres", started);
}

#[test]
fn docker_runs_a_busybox_container() {
    let started = Instant::now();
    let docker = DockerEngine::start();
    let ready = started.elapsed();
    assert!(docker.socket().as_os_str().len() < 108);
    docker.import_busybox("busybox:local");
    let id = docker.run("hmrt-smoke", &["/bin/sleep", "1000"]);
    assert_eq!(id.len(), 64, "container id {id:?}");

    let (status, body) = docker.api_get("/v1.41/containers/hmrt-smoke/json");
    assert_eq!(status, 200, "{body}");
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["Id"], id.as_str());
    assert_eq!(info["State"]["Running"], true, "{body}");
    let container_pid = u32::try_from(info["State"]["Pid"].as_u64().unwrap()).unwrap();
    assert!(process_alive(container_pid));

    let exec = docker.docker(&["exec", "hmrt-smoke", "/bin/sh", "-c", "echo hi from $0"]);
    assert!(exec.status.success(), "{exec:?}");
    assert_eq!(String::from_utf8_lossy(&exec.stdout), "hi from /bin/sh\n");

    let dockerd = docker.pid();
    let containerd = docker.containerd_pid().expect("containerd.pid");
    let dir = docker.socket().parent().unwrap().to_path_buf();
    drop(docker);
    assert_gone("the container's sleep", container_pid);
    assert_gone("dockerd", dockerd);
    assert_gone("containerd", containerd);
    assert!(!dir.exists(), "{} left behind", dir.display());
    eprintln!("docker: ready in {ready:.2?}");
    report("docker", started);
}

#[test]
fn dbus_daemon_authenticates_and_says_hello() {
    let started = Instant::now();
    let bus = DbusDaemon::start();
    let socket = bus.socket();
    assert!(
        bus.address()
            .starts_with(&format!("unix:path={},guid=", socket.display())),
        "{}",
        bus.address()
    );
    let mut conn = UnixStream::connect(&socket).unwrap();
    conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    // SASL EXTERNAL with our uid (hex of its decimal digits), then BEGIN.
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .unwrap();
    let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
    conn.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())
        .unwrap();
    let ok = read_until(&mut conn, |b| b.ends_with(b"\r\n"));
    assert!(ok.starts_with(b"OK "), "{}", String::from_utf8_lossy(&ok));
    conn.write_all(b"BEGIN\r\n").unwrap();
    conn.write_all(&hello_message()).unwrap();
    // The reply to Hello carries our unique name, ":1.N".
    let reply = read_until(&mut conn, |b| b.windows(3).any(|w| w == b":1."));
    assert_eq!(reply.first(), Some(&b'l'), "{reply:?}");
    assert_eq!(reply.get(1), Some(&2), "not a METHOD_RETURN: {reply:?}");
    let pid = bus.pid();
    let dir = bus.dir().to_path_buf();
    drop(conn);
    drop(bus);
    assert_gone("dbus-daemon", pid);
    assert!(!dir.exists(), "{} left behind", dir.display());
    report("dbus", started);
}

/// org.freedesktop.DBus.Hello as a little-endian D-Bus message (serial 1, no body).
fn hello_message() -> Vec<u8> {
    fn pad(buf: &mut Vec<u8>, to: usize) {
        while !buf.len().is_multiple_of(to) {
            buf.push(0);
        }
    }
    let mut fields = Vec::new();
    for (code, sig, value) in [
        (1u8, b'o', "/org/freedesktop/DBus"),
        (2, b's', "org.freedesktop.DBus"),
        (3, b's', "Hello"),
        (6, b's', "org.freedesktop.DBus"),
    ] {
        pad(&mut fields, 8);
        fields.extend_from_slice(&[code, 1, sig, 0]);
        fields.extend_from_slice(&u32::try_from(value.len()).unwrap().to_le_bytes());
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    let mut msg = vec![b'l', 1, 0, 1];
    msg.extend_from_slice(&0u32.to_le_bytes()); // body length
    msg.extend_from_slice(&1u32.to_le_bytes()); // serial
    msg.extend_from_slice(&u32::try_from(fields.len()).unwrap().to_le_bytes());
    msg.extend_from_slice(&fields);
    pad(&mut msg, 8);
    msg
}
