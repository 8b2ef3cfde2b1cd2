//! The client against a real supervisord 4.3.0 (see the hmrt-test-support crate,
//! tests/support, for where it comes from), over its unix socket and its inet port, with and
//! without basic auth, plus fake servers for the failure modes supervisord will not produce.

use std::time::{Duration, Instant};

use hmrt_supervisor::{Client, Error, ProcessState, ServerUrl, StopOutcome, fault};
use hmrt_test_support::supervisord::{Program, Supervisord, free_port, process_alive, wait_until};

/// Generous: start waits out startsecs (1 s) on a 2-core machine running other builds.
const TIMEOUT: Duration = Duration::from_secs(20);

fn sleeper(name: &str) -> Program {
    Program::new(name, &["sleep", "600"])
}

/// A serverurl as the config would hand it over: parsed once.
fn server(url: &str) -> ServerUrl {
    url.parse()
        .unwrap_or_else(|e| panic!("{url:?} does not parse: {e}"))
}

fn client(sv: &Supervisord) -> Client {
    Client::new(&server(&sv.serverurl()), sv.auth(), TIMEOUT).unwrap()
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
    let c = Client::new(&server("unix:///nonexistent/hmrt/s.sock"), None, TIMEOUT).unwrap();
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

    let good = Client::new(&server(&url), sv.auth(), TIMEOUT).unwrap();
    let info = good.status("web").await.unwrap();
    assert_eq!(info.pid, Some(pid));
    let info = good.restart("web").await.unwrap();
    assert_ne!(info.pid, Some(pid));
    assert_eq!(sv.pid_of("web"), info.pid);

    // The unix socket needs the same credentials.
    let unix = Client::new(&server(&sv.serverurl()), sv.auth(), TIMEOUT).unwrap();
    assert_eq!(unix.status("web").await.unwrap().pid, info.pid);

    for auth in [None, Some(("hmrt".to_owned(), "wrong".to_owned()))] {
        let bad = Client::new(&server(&url), auth, TIMEOUT).unwrap();
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

/// Asserts that `url` with `auth` is refused with a 401 that tells the operator what to check.
async fn assert_unauthorized(url: &ServerUrl, auth: Option<(String, String)>) {
    let c = Client::new(url, auth.clone(), TIMEOUT).unwrap();
    let err = c.status("web").await.unwrap_err();
    assert!(
        matches!(err, Error::Http { status: 401, .. }),
        "{auth:?}: {err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "supervisord at {url}: HTTP 401 Unauthorized (check the supervisor username/password)"
        )
    );
}

fn creds(user: &str, password: &str) -> Option<(String, String)> {
    Some((user.to_owned(), password.to_owned()))
}

#[tokio::test]
async fn unix_socket_with_basic_auth() {
    let sv = Supervisord::builder()
        .program(sleeper("web"))
        .auth("hmrt", "pa ss:w%rd")
        .start();
    let pid = sv.wait_running("web");
    let url = server(&sv.serverurl());
    assert!(matches!(url, ServerUrl::Unix(_)));

    let good = Client::new(&url, sv.auth(), TIMEOUT).unwrap();
    assert_eq!(good.status("web").await.unwrap().pid, Some(pid));
    let info = good.restart("web").await.unwrap();
    assert_ne!(info.pid, Some(pid));
    assert_eq!(sv.pid_of("web"), info.pid);

    for auth in [
        None,
        creds("hmrt", "wrong"),
        creds("other", "pa ss:w%rd"),
        creds("hmrt", ""),
    ] {
        assert_unauthorized(&url, auth).await;
    }
    // Nothing was restarted by the refused calls.
    assert_eq!(sv.pid_of("web"), info.pid);
}

#[tokio::test]
async fn inet_port_without_auth() {
    let port = free_port();
    let sv = Supervisord::builder()
        .program(sleeper("web"))
        .http_port(port)
        .start();
    let pid = sv.wait_running("web");
    let text = sv.http_serverurl().unwrap();
    assert_eq!(text, format!("http://127.0.0.1:{port}"));
    let url = server(&text);

    let c = Client::new(&url, None, TIMEOUT).unwrap();
    let info = c.status("web").await.unwrap();
    assert_eq!((info.state, info.pid), (ProcessState::Running, Some(pid)));
    assert_eq!(c.stop("web").await.unwrap(), StopOutcome::Stopped);
    assert_eq!(sv.state_of("web"), "STOPPED");
    c.start("web").await.unwrap();
    let second = sv.pid_of("web").expect("running after start");
    assert_ne!(second, pid);

    // The same address with a trailing slash, as people write it in supervisorctl's -s.
    let slash = Client::new(&server(&format!("{text}/")), None, TIMEOUT).unwrap();
    assert_eq!(slash.status("web").await.unwrap().pid, Some(second));

    // supervisorctl, pointed at the same port, sees what the client did.
    let (_, out) = sv.supervisorctl(&["-s", &text, "status", "web"]);
    assert!(
        out.contains("RUNNING") && out.contains(&format!("pid {second},")),
        "{out}"
    );

    // A port nobody listens on: a clear connect error.
    let closed = free_port();
    let nobody = Client::new(
        &server(&format!("http://127.0.0.1:{closed}")),
        None,
        TIMEOUT,
    )
    .unwrap();
    let err = nobody.status("web").await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "supervisord at http://127.0.0.1:{closed}: cannot connect: "
        )),
        "{err}"
    );
}

/// `http://127.0.0.2` without a port means port 80, for this client as for supervisorctl.
/// Every 127.x address is loopback on Linux, so supervisord on 127.0.0.2:80 clashes with
/// nothing on 127.0.0.1:80. Binding port 80 needs root (the tests run as root). If supervisord
/// cannot bind it, it exits and `start()` panics with its log: this test fails, it never
/// passes without having talked to a supervisord on port 80.
#[tokio::test]
async fn portless_http_url_is_port_80_as_supervisorctl_takes_it() {
    let sv = Supervisord::builder()
        .program(sleeper("web"))
        .http_listen("127.0.0.2", 80)
        .auth("hmrt", "s3cret")
        .start();
    let pid = sv.wait_running("web");
    assert_eq!(
        sv.http_serverurl().as_deref(),
        Some("http://127.0.0.2:80"),
        "the harness configured port 80"
    );
    // supervisord really listens there.
    std::net::TcpStream::connect(("127.0.0.2", 80)).expect("supervisord on 127.0.0.2:80");

    let url = server("http://127.0.0.2");
    assert_eq!(
        url,
        ServerUrl::Http {
            host: "127.0.0.2".into(),
            port: 80
        }
    );
    let c = Client::new(&url, sv.auth(), TIMEOUT).unwrap();
    let info = c.status("web").await.unwrap();
    assert_eq!((info.state, info.pid), (ProcessState::Running, Some(pid)));

    // supervisorctl itself, given the same port-less URL, reaches the same supervisord.
    let (code, out) = sv.supervisorctl(&["-s", "http://127.0.0.2", "status", "web"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("RUNNING") && out.contains(&format!("pid {pid},")),
        "{out}"
    );

    let info = c.restart("web").await.unwrap();
    let new_pid = info.pid.expect("pid after restart");
    assert_ne!(new_pid, pid);
    let (_, out) = sv.supervisorctl(&["-s", "http://127.0.0.2", "pid", "web"]);
    assert_eq!(out.trim(), new_pid.to_string());

    // The port-less form and :80 are one address; wrong credentials are refused there too.
    let explicit = Client::new(&server("http://127.0.0.2:80/"), sv.auth(), TIMEOUT).unwrap();
    assert_eq!(explicit.status("web").await.unwrap().pid, Some(new_pid));
    assert_unauthorized(&url, creds("hmrt", "wrong")).await;
    assert_unauthorized(&url, None).await;
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
    let c = Client::new(&server(&url), None, timeout).unwrap();
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
    let err = Client::new(&server(&closes), None, TIMEOUT)
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
    let err = Client::new(&server(&junk), None, TIMEOUT)
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
    let err = Client::new(&server(&not_found), None, TIMEOUT)
        .unwrap()
        .stop("web")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Http { status: 404, .. }), "{err:?}");
}

/// A TCP listener on 127.0.0.1; `serve` handles each connection. Returns the port.
async fn fake_tcp_server<F, Fut>(serve: F) -> u16
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    port
}

/// Reads one HTTP request (head, then Content-Length bytes of body) and returns it as text.
async fn read_request<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> String {
    use tokio::io::AsyncReadExt;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&raw).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&raw).into_owned(),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
}

/// A getProcessInfo answer for a running "web" with pid 42, as supervisord would send it.
fn running_web_reply() -> String {
    let body = "<?xml version='1.0'?>\n<methodResponse><params><param><value><struct>\
        <member><name>name</name><value><string>web</string></value></member>\
        <member><name>group</name><value><string>web</string></value></member>\
        <member><name>statename</name><value><string>RUNNING</string></value></member>\
        <member><name>pid</name><value><int>42</int></value></member>\
        </struct></value></param></params></methodResponse>\n";
    format!(
        "HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Answers every request with [`running_web_reply`] and keeps each request's text.
async fn recording_server(seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>) -> u16 {
    use tokio::io::AsyncWriteExt;
    fake_tcp_server(move |mut stream| {
        let seen = seen.clone();
        async move {
            let request = read_request(&mut stream).await;
            seen.lock().unwrap().push(request);
            let _ = stream.write_all(running_web_reply().as_bytes()).await;
        }
    })
    .await
}

/// The headers of a request, names lowercased.
fn headers(request: &str) -> Vec<(String, String)> {
    let head = request.split("\r\n\r\n").next().unwrap_or_default();
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect()
}

#[tokio::test]
async fn the_request_is_one_plain_post_to_rpc2_with_basic_auth() {
    use tokio::io::AsyncWriteExt;
    // Over TCP.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let port = recording_server(seen.clone()).await;
    let c = Client::new(
        &server(&format!("http://127.0.0.1:{port}")),
        creds("hmrt", "s3cr:et%"),
        TIMEOUT,
    )
    .unwrap();
    let info = c.status("web").await.unwrap();
    assert_eq!((info.state, info.pid), (ProcessState::Running, Some(42)));

    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert!(request.starts_with("POST /RPC2 HTTP/1.1\r\n"), "{request}");
    let h = headers(request);
    let get = |name: &str| {
        h.iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(get("host"), [format!("127.0.0.1:{port}").as_str()]);
    assert_eq!(get("content-type"), ["text/xml"]);
    // base64("hmrt:s3cr:et%")
    assert_eq!(get("authorization"), ["Basic aG1ydDpzM2NyOmV0JQ=="]);
    assert!(
        get("user-agent")[0].starts_with("hmrt-supervisor/"),
        "{h:?}"
    );
    // No decompression is offered, whatever compression features the build has.
    assert!(get("accept-encoding").is_empty(), "{h:?}");
    assert!(get("proxy-authorization").is_empty(), "{h:?}");
    let body = request.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(get("content-length"), [body.len().to_string().as_str()]);
    assert!(
        body.contains("<methodName>supervisor.getProcessInfo</methodName>")
            && body.contains("<string>web</string>"),
        "{body}"
    );

    // Over the unix socket: Host is localhost, as supervisorctl sends it, and no auth header
    // without credentials.
    let unix_seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorder = unix_seen.clone();
    let (_dir, url) = fake_server(move |mut stream| {
        let seen = recorder.clone();
        async move {
            let request = read_request(&mut stream).await;
            seen.lock().unwrap().push(request);
            let _ = stream.write_all(running_web_reply().as_bytes()).await;
        }
    })
    .await;
    let c = Client::new(&server(&url), None, TIMEOUT).unwrap();
    assert_eq!(c.status("web").await.unwrap().pid, Some(42));
    let request = unix_seen.lock().unwrap()[0].clone();
    assert!(request.starts_with("POST /RPC2 HTTP/1.1\r\n"), "{request}");
    let h = headers(&request);
    assert!(h.contains(&("host".into(), "localhost".into())), "{h:?}");
    assert!(!h.iter().any(|(n, _)| n == "authorization"), "{h:?}");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    use tokio::io::AsyncWriteExt;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let target = recording_server(seen.clone()).await;
    let redirector = fake_tcp_server(move |mut stream| async move {
        read_request(&mut stream).await;
        let reply = format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{target}/RPC2\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let _ = stream.write_all(reply.as_bytes()).await;
    })
    .await;
    let url = format!("http://127.0.0.1:{redirector}");
    let c = Client::new(&server(&url), creds("hmrt", "pw"), TIMEOUT).unwrap();
    let err = c.start("web").await.unwrap_err();
    assert!(matches!(err, Error::Http { status: 307, .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("supervisord at {url}: HTTP 307 Temporary Redirect")
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "the redirect was followed: {:?}",
        seen.lock().unwrap()
    );
}

#[tokio::test]
async fn an_endless_answer_is_cut_off_while_it_is_read() {
    use tokio::io::AsyncWriteExt;
    // Chunked, never ending: buffering it all before checking the size would never finish
    // (and end in the 20 s timeout instead).
    let (_d1, endless) = fake_server(|mut stream| async move {
        read_request(&mut stream).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await;
        let chunk = format!("1000\r\n{}\r\n", "x".repeat(4096));
        while stream.write_all(chunk.as_bytes()).await.is_ok() {}
    })
    .await;
    let c = Client::new(&server(&endless), None, TIMEOUT)
        .unwrap()
        .with_max_response(64 * 1024);
    let started = Instant::now();
    let err = c.status("web").await.unwrap_err();
    assert!(
        matches!(&err, Error::Malformed { what, .. } if what == "response body larger than 65536 bytes"),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A declared Content-Length above the cap is refused before any of the body is read.
    let (_d2, declared) = fake_server(|mut stream| async move {
        read_request(&mut stream).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
            .await;
        tokio::time::sleep(Duration::from_secs(60)).await;
    })
    .await;
    let c = Client::new(&server(&declared), None, TIMEOUT)
        .unwrap()
        .with_max_response(100);
    let started = Instant::now();
    let err = c.status("web").await.unwrap_err();
    assert!(
        matches!(&err, Error::Malformed { what, .. } if what.contains("larger than 100 bytes")),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Exactly at the cap is fine.
    let exact = running_web_reply();
    let body_len = exact.split_once("\r\n\r\n").unwrap().1.len();
    let (_d3, at_cap) = fake_server(|mut stream| async move {
        read_request(&mut stream).await;
        let _ = stream.write_all(running_web_reply().as_bytes()).await;
    })
    .await;
    let c = Client::new(&server(&at_cap), None, TIMEOUT).unwrap();
    assert!(
        c.clone()
            .with_max_response(body_len)
            .status("web")
            .await
            .is_ok()
    );
    assert!(
        c.with_max_response(body_len - 1)
            .status("web")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn truncated_and_non_http_answers_are_errors_not_panics() {
    use tokio::io::AsyncWriteExt;
    let (_d1, truncated) = fake_server(|mut stream| async move {
        read_request(&mut stream).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
            .await;
    })
    .await;
    let err = Client::new(&server(&truncated), None, TIMEOUT)
        .unwrap()
        .status("web")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::UnexpectedEof),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .ends_with("the connection closed before the answer was complete"),
        "{err}"
    );

    let (_d2, ssh) = fake_server(|mut stream| async move {
        read_request(&mut stream).await;
        let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.2\r\n\r\n").await;
    })
    .await;
    let err = Client::new(&server(&ssh), None, TIMEOUT)
        .unwrap()
        .status("web")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Malformed { what, .. } if what.starts_with("not an HTTP answer")),
        "{err:?}"
    );

    let (_d3, body_not_utf8) = fake_server(|mut stream| async move {
        read_request(&mut stream).await;
        let _ = stream
            .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n\xff\xfe")
            .await;
    })
    .await;
    let err = Client::new(&server(&body_not_utf8), None, TIMEOUT)
        .unwrap()
        .status("web")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Malformed { what, .. } if what.contains("not UTF-8")),
        "{err:?}"
    );
}

/// Set in the child process [`proxies_in_the_environment_are_not_used`] starts.
const PROXY_CHILD: &str = "HMRT_SUPERVISOR_TEST_PROXY_CHILD";

/// `HTTP_PROXY` and friends are for the outside world: a supervisord client that followed them
/// would hand supervisord's credentials to the proxy. The environment is the process's, so the
/// test runs itself again as a child with the proxy variables set (no `set_var` in a threaded
/// test binary), pointing at a listener that must never see a connection.
#[tokio::test]
async fn proxies_in_the_environment_are_not_used() {
    if std::env::var_os(PROXY_CHILD).is_some() {
        // The child: a fake supervisord on TCP, reached directly, within a short timeout.
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let port = recording_server(seen.clone()).await;
        let c = Client::new(
            &server(&format!("http://127.0.0.1:{port}")),
            creds("hmrt", "pw"),
            Duration::from_secs(3),
        )
        .unwrap();
        let info = c.status("web").await.unwrap();
        assert_eq!(info.pid, Some(42));
        assert_eq!(seen.lock().unwrap().len(), 1);
        return;
    }

    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    proxy.set_nonblocking(true).unwrap();
    let proxy_url = format!("http://127.0.0.1:{}", proxy.local_addr().unwrap().port());
    let out = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "proxies_in_the_environment_are_not_used",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PROXY_CHILD, "1")
        .env("HTTP_PROXY", &proxy_url)
        .env("http_proxy", &proxy_url)
        .env("ALL_PROXY", &proxy_url)
        .env("all_proxy", &proxy_url)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .await
        .unwrap();
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("1 passed"),
        "the child ran no test:\n{report}"
    );
    assert!(
        matches!(proxy.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the client connected to the proxy from the environment"
    );
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
