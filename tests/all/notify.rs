//! `Type=notify`: systemd cannot run as PID 1 here, so the protocol is tested against what
//! systemd itself reads: a real datagram socket named by `NOTIFY_SOCKET`, with
//! `WATCHDOG_USEC` set as systemd sets it for a unit with `WatchdogSec=`.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::support::{HmrtProcess, Workspace};

/// The next datagram, or `None` after `deadline`.
fn next(socket: &UnixDatagram, deadline: Instant) -> Option<(Instant, String)> {
    let left = deadline.checked_duration_since(Instant::now())?;
    socket
        .set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .ok()?;
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).ok()?;
    Some((
        Instant::now(),
        String::from_utf8_lossy(&buf[..n]).into_owned(),
    ))
}

/// Reads datagrams until one contains `wanted`; panics with what came instead.
fn wait_for(socket: &UnixDatagram, wanted: &str, within: Duration) -> (Instant, Vec<String>) {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while let Some((at, message)) = next(socket, deadline) {
        seen.push(message.clone());
        if message.lines().any(|l| l == wanted) {
            return (at, seen);
        }
    }
    panic!("no {wanted} within {within:?}; got {seen:?}");
}

#[test]
fn ready_after_the_first_round_then_the_watchdog_at_half_its_period_then_stopping() {
    let ws = Workspace::new();
    let path = ws.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    // The `slow` task's first check takes a second: READY=1 must wait for it.
    let file = ws.config(
        r#"
[[task]]
name = "slow"
check = "command"
interval = "10s"
timeout = "5s"
config = { program = "sleep", args = ["1"] }
grants = { exec = ["sleep"] }
"#,
    );
    let started = Instant::now();
    let mut hmrt = HmrtProcess::start_with(
        &file,
        "info",
        &[
            ("NOTIFY_SOCKET", path.to_str().expect("utf-8 path")),
            ("WATCHDOG_USEC", "300000"),
        ],
    );
    let (ready_at, before) = wait_for(&socket, "READY=1", Duration::from_secs(20));
    let waited = ready_at - started;
    eprintln!("measured: READY=1 {waited:?} after start");
    assert!(
        waited >= Duration::from_millis(900),
        "READY=1 came {waited:?} after start, before the first round ended; before it: {before:?}"
    );
    hmrt.wait_log("told the service manager: ready", Duration::from_secs(5));
    // Pings at half of 300 ms.
    let mut pings = Vec::new();
    while pings.len() < 5 {
        let (at, _) = wait_for(&socket, "WATCHDOG=1", Duration::from_secs(5));
        pings.push(at);
    }
    for pair in pings.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(75) && gap <= Duration::from_millis(300),
            "watchdog pings {gap:?} apart (want about 150ms)"
        );
    }
    let status = hmrt.terminate();
    assert!(status.success(), "hmrt exited with {status}");
    // Everything sent before the exit is in the socket's queue.
    wait_for(&socket, "STOPPING=1", Duration::from_secs(2));
}
