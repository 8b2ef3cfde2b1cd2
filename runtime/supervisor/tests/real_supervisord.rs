//! The client against a real supervisord 4.3.0 (see the hmrt-test-support crate,
//! tests/support, for where it comes from), plus fake servers for the failure modes
//! supervisord will not produce.

use std::time::{Duration, Instant};

use hmrt_supervisor::{Client, Error, ProcessState, StopOutcome, fault};
use hmrt_test_support::supervisord::{Program, Supervisord, free_port, process_alive, wait_until};

/// Generous: start waits out startsecs (1 s) on a 2-core machine running other builds.
const TIMEOUT: Duration = Duration::from_secs(20);

fn sleeper(name: &str) -> Program {
    Program::new(name, &["sleep", "600"])
}

fn client(sv: &Supervisord) -> Client {
    Client::new(&sv.serverurl(), sv.auth(), TIMEOUT).unwrap()
}

#[tokio::test]
async fn status_of_a_running_program_matches_supervisorctl() {
    let port = free_port();
    let sv = Supervisord::start(&[Program::flaky_service("web", port), sleeper("other")]);
    let pid = sv.wait_running("web");

    let info = client(&sv).status("web").await.unwrap();
    assert_eq!(info.name, "web");
    assert_eq!(info.group, "web");
    assert_eq!(info.state, ProcessState::Running);
    assert_eq!(info.pid, Some(pid));
    assert!(
        info.description.starts_with(&format!("pid {pid}, uptime ")),
        "{info:?}"
    );
    assert!(info.start.is_some() && info.stop.is_none(), "{info:?}");
    assert!(info.now >= info.start.unwrap());
    assert!(info.stderr_logfile.ends_with("web.stderr.log"), "{info:?}");

    // The service really is the thing supervisord reports.
    let body = http_get(port, "/pid").await;
    assert_eq!(body.trim(), pid.to_string());
}

#[tokio::test]
async fn stop_start_restart_change_the_process() {
    let sv = Supervisord::start(&[sleeper("web")]);
    let first = sv.wait_running("web");
    let c = client(&sv);

    assert_eq!(c.stop("web").await.unwrap(), StopOutcome::Stopped);
    assert_eq!(sv.state_of("web"), "STOPPED");
    assert!(wait_until(Duration::from_secs(5), || !process_alive(first)));
    let info = c.status("web").await.unwrap();
    assert_eq!((info.state, info.pid), (ProcessState::Stopped, None));
    assert!(info.stop.is_some());

    // Stopping what is already down is fine, and says so.
    assert_eq!(c.stop("web").await.unwrap(), StopOutcome::WasNotRunning);

    c.start("web").await.unwrap();
    // start waited for startsecs: supervisord already calls it RUNNING.
    let second = sv.pid_of("web").expect("running after start");
    assert_eq!(sv.state_of("web"), "RUNNING");
    assert_ne!(second, first);

    let err = c.start("web").await.unwrap_err();
    assert_eq!(err.fault_code(), Some(fault::ALREADY_STARTED), "{err}");

    let info = c.restart("web").await.unwrap();
    assert_eq!(info.state, ProcessState::Running);
    let third = info.pid.expect("pid after restart");
    assert_ne!(third, second);
    assert_eq!(sv.pid_of("web"), Some(third));
    assert!(wait_until(Duration::from_secs(5), || !process_alive(
        second
    )));

    // restart of a stopped program just starts it.
    c.stop("web").await.unwrap();
    let info = c.restart("web").await.unwrap();
    assert_eq!(info.state, ProcessState::Running);
    assert_eq!(sv.pid_of("web"), info.pid);
}

#[tokio::test]
async fn unknown_program_is_a_clear_bad_name_fault() {
    let sv = Supervisord::start(&[sleeper("web")]);
    let c = client(&sv);
    for result in [
        c.status("nope").await.map(|_| ()),
        c.start("nope").await,
        c.stop("nope").await.map(|_| ()),
        c.restart("nope").await.map(|_| ()),
    ] {
        let err = result.unwrap_err();
        assert_eq!(err.fault_code(), Some(fault::BAD_NAME));
        assert_eq!(
            err.to_string(),
            format!(
                "supervisord at {}: no such process \"nope\" (BAD_NAME)",
                sv.serverurl()
            )
        );
    }

    // Markup in a name is escaped on the way out and decoded on the way back.
    let err = c.status("a<b>&'\"c").await.unwrap_err();
    match &err {
        Error::Fault {
            code,
            name,
            message,
            process,
            ..
        } => {
            assert_eq!((*code, name.as_str()), (fault::BAD_NAME, "BAD_NAME"));
            assert_eq!(message, "BAD_NAME: a<b>&'\"c");
            assert_eq!(process, "a<b>&'\"c");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn wildcards_are_refused_before_anything_is_sent() {
    // Nothing listens here: a refusal that reached the network would be a Connect error.
    let c = Client::new("unix:///nonexistent/hmrt/s.sock", None, TIMEOUT).unwrap();
    for name in ["web:*", "*", ""] {
        let err = c.start(name).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        let err = c.stop(name).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    }
    let err = c.status("web").await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("supervisord at unix:///nonexistent/hmrt/s.sock: cannot connect: "),
        "{err}"
    );
}

#[tokio::test]
async fn a_program_that_exits_at_once_fails_to_start_with_reasons() {
    let sv = Supervisord::start(&[
        // startsecs well above any scheduling delay, so "too quickly" is certain.
        Program::new("crashy", &["sh", "-c", "echo boom >&2; exit 3"])
            .autostart(false)
            .startsecs(10),
        Program::new("missing", &["/nonexistent/hmrt-no-such-binary"]).autostart(false),
    ]);
    let c = client(&sv);

    let err = c.start("crashy").await.unwrap_err();
    let code = err.fault_code();
    assert!(
        code == Some(fault::SPAWN_ERROR) || code == Some(fault::ABNORMAL_TERMINATION),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "supervisord at {}: could not start \"crashy\"",
            sv.serverurl()
        )),
        "{msg}"
    );
    // The follow-up status tells the operator why and where to look.
    assert!(msg.contains("now FATAL"), "{msg}");
    assert!(msg.contains("Exited too quickly"), "{msg}");
    assert!(msg.contains("crashy.stderr.log"), "{msg}");
    assert!(sv.stderr_log("crashy").contains("boom"));

    let err = c.restart("crashy").await.unwrap_err();
    assert!(
        matches!(
            err.fault_code(),
            Some(fault::SPAWN_ERROR | fault::ABNORMAL_TERMINATION)
        ),
        "{err}"
    );

    let err = c.start("missing").await.unwrap_err();
    assert_eq!(err.fault_code(), Some(fault::NO_FILE), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("cannot start \"missing\": its command was not found (NO_FILE)"),
        "{msg}"
    );
    assert!(msg.contains("/nonexistent/hmrt-no-such-binary"), "{msg}");
}

#[tokio::test]
async fn a_killed_program_shows_up_as_exited_and_can_be_started_again() {
    let sv = Supervisord::start(&[sleeper("web")]);
    let pid = sv.wait_running("web");
    let c = client(&sv);

    assert_eq!(sv.kill_program("web"), pid);
    sv.wait_for_state("web", "EXITED", Duration::from_secs(10));
    let info = c.status("web").await.unwrap();
    assert_eq!((info.state, info.pid), (ProcessState::Exited, None));

    // Stopping an exited program is the "already down" case.
    assert_eq!(c.stop("web").await.unwrap(), StopOutcome::WasNotRunning);
    let info = c.restart("web").await.unwrap();
    assert_eq!(info.state, ProcessState::Running);
    assert_ne!(info.pid, Some(pid));
}

#[tokio::test]
async fn signal_reaches_the_program_and_bad_signals_are_faults() {
    let sv = Supervisord::start(&[sleeper("web")]);
    sv.wait_running("web");
    let c = client(&sv);

    let err = c.signal("web", "NOSUCHSIG").await.unwrap_err();
    assert_eq!(err.fault_code(), Some(fault::BAD_SIGNAL), "{err}");
    let err = c.signal("web", "HUP; rm").await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { what: "signal", .. }));

    c.signal("web", "KILL").await.unwrap();
    sv.wait_for_state("web", "EXITED", Duration::from_secs(10));
}

#[tokio::test]
async fn http_transport_with_basic_auth() {
    let port = free_port();
    let sv = Supervisord::builder()
        .program(sleeper("web"))
        .http_port(port)
        .auth("hmrt", "s3cr:et%")
        .start();
    let pid = sv.wait_running("web");
    let url = sv.http_serverurl().unwrap();

    let good = Client::new(&url, sv.auth(), TIMEOUT).unwrap();
    let info = good.status("web").await.unwrap();
    assert_eq!(info.pid, Some(pid));
    let info = good.restart("web").await.unwrap();
    assert_ne!(info.pid, Some(pid));
    assert_eq!(sv.pid_of("web"), info.pid);

    // The unix socket needs the same credentials.
    let unix = Client::new(&sv.serverurl(), sv.auth(), TIMEOUT).unwrap();
    assert_eq!(unix.status("web").await.unwrap().pid, info.pid);

    for auth in [None, Some(("hmrt".to_owned(), "wrong".to_owned()))] {
        let bad = Client::new(&url, auth, TIMEOUT).unwrap();
        let err = bad.status("web").await.unwrap_err();
        assert!(matches!(err, Error::Http { status: 401, .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "supervisord at {url}: HTTP 401 Unauthorized (check the supervisor username/password)"
            )
        );
    }
}

#[tokio::test]
async fn response_size_cap_applies_to_real_answers() {
    let sv = Supervisord::start(&[sleeper("web")]);
    let c = client(&sv).with_max_response(100);
    let err = c.status("web").await.unwrap_err();
    assert!(
        matches!(&err, Error::Malformed { what, .. } if what.contains("larger than 100 bytes")),
        "{err:?}"
    );
}

// ---- fake servers: failure modes a healthy supervisord does not produce ----

/// A unix listener in a temp dir; `serve` handles each connection.
async fn fake_server<F, Fut>(serve: F) -> (tempfile::TempDir, String)
where
    F: Fn(tokio::net::UnixStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::Builder::new()
        .prefix("hmrt-fake-")
        .tempdir()
        .unwrap();
    let path = dir.path().join("s.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    (dir, format!("unix://{}", path.display()))
}

#[tokio::test]
async fn timeout_when_the_socket_accepts_but_never_answers() {
    let (_dir, url) = fake_server(|stream| async move {
        // Hold the connection open and say nothing.
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(stream);
    })
    .await;
    let timeout = Duration::from_millis(300);
    let c = Client::new(&url, None, timeout).unwrap();
    let started = Instant::now();
    let err = c.status("web").await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(
        elapsed >= timeout && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "supervisord at {url}: no complete answer to supervisor.getProcessInfo within 300ms"
        )
    );
}

#[tokio::test]
async fn garbage_and_early_close_are_malformed_not_panics() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (_d1, closes) = fake_server(|stream| async move { drop(stream) }).await;
    let err = Client::new(&closes, None, TIMEOUT)
        .unwrap()
        .status("web")
        .await
        .unwrap_err();
    // Closing before or while we write is either an I/O error or an empty answer.
    assert!(
        matches!(&err, Error::Malformed { what, .. } if what.contains("without an answer"))
            || matches!(err, Error::Io { .. }),
        "{err:?}"
    );

    let (_d2, junk) = fake_server(|mut stream| async move {
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf).await;
        let body = "<methodResponse><params><param><value><int>nope</int></value></param></params></methodResponse>";
        let reply = format!(
            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(reply.as_bytes()).await;
    })
    .await;
    let err = Client::new(&junk, None, TIMEOUT)
        .unwrap()
        .status("web")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Malformed { what, .. } if what.contains("bad integer")),
        "{err:?}"
    );

    let (_d3, not_found) = fake_server(|mut stream| async move {
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf).await;
        let _ = stream
            .write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            .await;
    })
    .await;
    let err = Client::new(&not_found, None, TIMEOUT)
        .unwrap()
        .stop("web")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Http { status: 404, .. }), "{err:?}");
}

#[test]
fn dropping_the_harness_leaves_no_processes() {
    let dir = tempfile::tempdir().unwrap();
    let child_pid_file = dir.path().join("child.pid");
    let script = format!(
        "trap '' TERM; sleep 600 & echo $! > '{}'; wait",
        child_pid_file.display()
    );
    let (sv_pid, prog_pid, grandchild) = {
        let sv = Supervisord::start(&[
            sleeper("plain"),
            // Ignores SIGTERM and has a child: needs the SIGKILL after stopwaitsecs, to the group.
            Program::new("stubborn", &["sh", "-c", &script]).stopwaitsecs(1),
        ]);
        let prog_pid = sv.wait_running("stubborn");
        sv.wait_running("plain");
        let grandchild: u32 = std::fs::read_to_string(&child_pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(process_alive(grandchild));
        (sv.pid(), prog_pid, grandchild)
    };
    for pid in [sv_pid, prog_pid, grandchild] {
        assert!(
            wait_until(Duration::from_secs(10), || !process_alive(pid)),
            "pid {pid} survived the harness"
        );
    }
}

async fn http_get(port: u16, path: &str) -> String {
    let (status, body) = http(port, "GET", path).await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// One HTTP/1.0 request to 127.0.0.1; `Err` if the connection fails.
async fn http(port: u16, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("{method} {path} HTTP/1.0\r\nContent-Length: 0\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_owned()))
}

async fn health(port: u16) -> u16 {
    http(port, "GET", "/health").await.unwrap().0
}

#[tokio::test]
async fn flaky_service_behaves_as_documented() {
    let (mem, ctl, never, slow) = (free_port(), free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("mode");
    let sv = Supervisord::start(&[
        Program::flaky_service("mem", mem),
        Program::flaky_service("ctl", ctl)
            .arg("--control-file")
            .arg(control.to_string_lossy()),
        Program::flaky_service("never", never).arg("--never-healthy"),
        Program::flaky_service("slow", slow)
            .arg("--start-delay")
            .arg("3")
            .autostart(false)
            .startsecs(0),
    ]);
    for name in ["mem", "ctl", "never"] {
        sv.wait_running(name);
    }
    let c = client(&sv);

    // In-memory mode: fail, recover, fail again, and a restart repairs it.
    assert_eq!(health(mem).await, 200);
    assert_eq!(http(mem, "POST", "/fail").await.unwrap().0, 200);
    assert_eq!(health(mem).await, 500);
    http(mem, "POST", "/recover").await.unwrap();
    assert_eq!(health(mem).await, 200);
    http(mem, "POST", "/fail").await.unwrap();
    c.restart("mem").await.unwrap();
    assert_eq!(health(mem).await, 200);
    assert!(
        sv.stderr_log("mem")
            .contains("\"GET /health HTTP/1.0\" 500")
    );

    // Control-file mode: the failure survives a restart; the file repairs it.
    assert_eq!(health(ctl).await, 200);
    http(ctl, "POST", "/fail").await.unwrap();
    assert_eq!(std::fs::read_to_string(&control).unwrap().trim(), "fail");
    c.restart("ctl").await.unwrap();
    assert_eq!(health(ctl).await, 500);
    std::fs::write(&control, "ok\n").unwrap();
    assert_eq!(health(ctl).await, 200);

    // --never-healthy, even after /recover.
    http(never, "POST", "/recover").await.unwrap();
    assert_eq!(health(never).await, 500);

    // /hang: the request gets no answer, and SIGTERM still ends the process at once
    // (supervisord would SIGKILL only after stopwaitsecs = 5 s).
    http(mem, "POST", "/hang").await.unwrap();
    let hung = tokio::time::timeout(Duration::from_millis(500), http(mem, "GET", "/health")).await;
    assert!(hung.is_err(), "a hanging /health answered: {hung:?}");
    let started = Instant::now();
    c.stop("mem").await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(sv.stderr_log("mem").contains("got signal 15, exiting"));

    // --start-delay: RUNNING at once (startsecs=0), but not listening for a while.
    c.start("slow").await.unwrap();
    assert!(
        http(slow, "GET", "/health").await.is_err(),
        "listening before its delay"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((200, _)) = http(slow, "GET", "/health").await {
            break;
        }
        assert!(Instant::now() < deadline, "{}", sv.stderr_log("slow"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
