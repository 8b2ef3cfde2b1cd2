//! The protocol probes (`redis`, `mqtt`, `postgres`, `tls-cert`, and `tcp` with send/expect)
//! against real servers on loopback: Debian's redis-server, mosquitto and PostgreSQL (started
//! by hmrt-test-support), and a TLS server of the test's own (tokio-rustls with rcgen
//! certificates of chosen expiry dates). Each probe: healthy against its server, unhealthy
//! when the server is stopped and when another protocol answers on the port; denied outside
//! its grant, and `hmrt validate` names the missing grant at its line.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use hmrt::capabilities::Capability;
use hmrt::sandbox::{CheckOutcome, Status};
use hmrt_test_support::mosquitto::{Mosquitto, mosquitto_bin};
use hmrt_test_support::postgres::PostgresServer;
use hmrt_test_support::redis::RedisServer;
use hmrt_test_support::supervisord::{free_port, wait_until};

use crate::support::{HttpServer, Workspace, check_once, hmrt};

/// Runs probes in one sandbox, so the built-in plugins are compiled once per test.
struct Prober {
    ws: Workspace,
    sandbox: Arc<hmrt::sandbox::Sandbox>,
    registry: Arc<hmrt::registry::Registry>,
}

impl Prober {
    async fn new() -> Prober {
        let ws = Workspace::new();
        // Setup compiles only the built-ins a config names: name every probe here.
        let names = ["tcp", "tls-cert", "redis", "mqtt", "postgres"];
        let config = ws.load(
            &names
                .iter()
                .map(|c| format!("[[task]]\nname = \"{c}\"\ncheck = \"{c}\"\n"))
                .collect::<String>(),
        );
        let (sandbox, registry) = hmrt::cli::setup(&config, false).await.expect("setup");
        Prober {
            ws,
            sandbox,
            registry,
        }
    }

    /// Runs `check` once with `config` (the inside of a TOML inline table), granted `grant`.
    async fn probe(&self, check: &str, config: &str, grant: &str) -> CheckOutcome {
        let config = self.ws.load(&format!(
            r#"
[[task]]
name = "probe"
check = "{check}"
timeout = "10s"
config = {{ {config} }}
grants = {{ tcp = ["{grant}"] }}
"#
        ));
        let tasks = hmrt::tasks::bind(&config, &self.registry).expect("bind");
        let hmrt::tasks::Bound::Ready(entry) = &tasks[0].check else {
            panic!("the {check} plugin did not load")
        };
        self.sandbox
            .check(&entry.plugin, &tasks[0].check_call)
            .await
    }
}

/// Asserts the status and that the message holds each fragment; returns the message.
fn expect(outcome: &CheckOutcome, status: Status, fragments: &[&str]) -> String {
    let message = outcome.message();
    assert_eq!(outcome.status(), status, "{message}");
    for fragment in fragments {
        assert!(
            message.contains(fragment),
            "{fragment:?} not in {message:?}"
        );
    }
    message
}

/// The value of the metric `name`.
fn metric(outcome: &CheckOutcome, name: &str) -> f64 {
    outcome
        .metrics()
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name} in {:?}", outcome.metrics()))
        .value
}

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_answers_pong_and_other_protocols_and_a_stopped_server_do_not() {
    let probes = Prober::new().await;
    let mut redis = RedisServer::start();
    let a = addr(redis.port());
    let ok = probes
        .probe("redis", &format!(r#"address = "{a}""#), &a)
        .await;
    expect(&ok, Status::Healthy, &["PONG"]);
    assert!(metric(&ok, "latency_ms") > 0.0);

    // The generic tcp check speaks it too, and notices the wrong answer.
    let generic = format!(r#"address = "{a}", send = "PING\r\n", expect = "+PONG""#);
    expect(
        &probes.probe("tcp", &generic, &a).await,
        Status::Healthy,
        &["+PONG"],
    );
    let wrong = format!(r#"address = "{a}", send = "PING\r\n", expect = "+PANG", timeout = "1s""#);
    expect(
        &probes.probe("tcp", &wrong, &a).await,
        Status::Unhealthy,
        &["without", "+PONG"],
    );
    let regex = format!(
        r#"address = "{a}", send = "PING\r\n", expect_regex = "^\\+P.NG", read_until = "\n""#
    );
    expect(
        &probes.probe("tcp", &regex, &a).await,
        Status::Healthy,
        &["/^\\+P.NG/"],
    );

    // Other protocols on the port: an MQTT broker (it hangs up) and an HTTP server.
    let broker = Mosquitto::start();
    let b = addr(broker.port());
    let mq = probes
        .probe("redis", &format!(r#"address = "{b}""#), &b)
        .await;
    expect(&mq, Status::Unhealthy, &["not Redis"]);
    let http = HttpServer::start().await;
    let h = addr(http.port);
    let web = probes
        .probe("redis", &format!(r#"address = "{h}""#), &h)
        .await;
    expect(
        &web,
        Status::Unhealthy,
        &["does not answer as Redis", "HTTP/1.1"],
    );

    redis.stop();
    let down = probes
        .probe("redis", &format!(r#"address = "{a}""#), &a)
        .await;
    expect(&down, Status::Unhealthy, &[&a]);
    let generic_down = probes.probe("tcp", &generic, &a).await;
    expect(&generic_down, Status::Unhealthy, &["refused"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_auth_with_the_right_password_only() {
    let probes = Prober::new().await;
    let redis = RedisServer::start_with_password("s3cret pass");
    let a = addr(redis.port());
    let right = format!(r#"address = "{a}", password = "s3cret pass""#);
    expect(
        &probes.probe("redis", &right, &a).await,
        Status::Healthy,
        &["PONG"],
    );
    let wrong = format!(r#"address = "{a}", password = "guess""#);
    expect(
        &probes.probe("redis", &wrong, &a).await,
        Status::Unhealthy,
        &["WRONGPASS"],
    );
    let none = format!(r#"address = "{a}""#);
    expect(
        &probes.probe("redis", &none, &a).await,
        Status::Unhealthy,
        &["NOAUTH"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_connack_accepted_and_not_mqtt_and_stopped() {
    let probes = Prober::new().await;
    let mut broker = Mosquitto::start();
    let b = addr(broker.port());
    let ok = probes
        .probe("mqtt", &format!(r#"address = "{b}""#), &b)
        .await;
    expect(&ok, Status::Healthy, &["accepted"]);
    assert!(metric(&ok, "latency_ms") > 0.0);

    // Redis waits for a line end that this binary packet does not have: silence.
    let redis = RedisServer::start();
    let r = addr(redis.port());
    let silent = probes
        .probe("mqtt", &format!(r#"address = "{r}", timeout = "2s""#), &r)
        .await;
    expect(&silent, Status::Unhealthy, &["no answer", "within 2s"]);
    let http = HttpServer::start().await;
    let h = addr(http.port);
    let web = probes
        .probe("mqtt", &format!(r#"address = "{h}""#), &h)
        .await;
    expect(
        &web,
        Status::Unhealthy,
        &["does not answer as an MQTT broker", "HTTP"],
    );

    broker.stop();
    let down = probes
        .probe("mqtt", &format!(r#"address = "{b}""#), &b)
        .await;
    expect(&down, Status::Unhealthy, &[&b]);
}

/// A mosquitto of the test's own that allows no anonymous clients: one user in a password
/// file made by `mosquitto_passwd`.
struct LockedBroker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl LockedBroker {
    fn start(user: &str, password: &str) -> LockedBroker {
        let dir = tempfile::tempdir().expect("temp dir");
        let passwd = dir.path().join("passwd");
        let tool = mosquitto_bin().with_file_name("mosquitto_passwd");
        let tool = if tool.is_file() {
            tool
        } else {
            Path::new("/usr/bin/mosquitto_passwd").to_path_buf()
        };
        let made = Command::new(&tool)
            .args(["-c", "-b"])
            .arg(&passwd)
            .args([user, password])
            .status()
            .unwrap_or_else(|e| panic!("run {}: {e}", tool.display()));
        assert!(made.success(), "mosquitto_passwd failed: {made}");
        let port = free_port();
        let as_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let conf = format!(
            "{}listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
             persistence false\n",
            if as_root { "user root\n" } else { "" },
            passwd.display()
        );
        let conf_path = dir.path().join("mq.conf");
        std::fs::write(&conf_path, conf).expect("write mq.conf");
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        let mut broker = LockedBroker {
            child,
            port,
            _dir: dir,
        };
        let up = wait_until(Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(
            up,
            "mosquitto with a password file not listening on {port} (exited: {:?})",
            broker.child.try_wait()
        );
        broker
    }
}

impl Drop for LockedBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_refusals_are_named() {
    let probes = Prober::new().await;
    let broker = LockedBroker::start("mon", "right");
    let b = addr(broker.port);
    let anonymous = probes
        .probe("mqtt", &format!(r#"address = "{b}""#), &b)
        .await;
    expect(
        &anonymous,
        Status::Unhealthy,
        &["refused", "not authorized", "CONNACK code 5"],
    );
    let wrong = format!(r#"address = "{b}", username = "mon", password = "wrong""#);
    expect(
        &probes.probe("mqtt", &wrong, &b).await,
        Status::Unhealthy,
        &["refused", "CONNACK code"],
    );
    let right = format!(
        r#"address = "{b}", username = "mon", password = "right", client_id = "hmrt-test""#
    );
    expect(
        &probes.probe("mqtt", &right, &b).await,
        Status::Healthy,
        &["accepted"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_answers_as_postgres_and_is_ready_for_its_user() {
    let probes = Prober::new().await;
    let mut pg = PostgresServer::start();
    let p = addr(pg.port());
    // The default user `hmrt` has no role in this cluster: still PostgreSQL answering.
    let up = probes
        .probe("postgres", &format!(r#"address = "{p}""#), &p)
        .await;
    expect(&up, Status::Healthy, &["answers as PostgreSQL"]);
    assert!(metric(&up, "latency_ms") > 0.0);
    let ready = format!(r#"address = "{p}", user = "postgres", expect_ready = true"#);
    expect(
        &probes.probe("postgres", &ready, &p).await,
        Status::Healthy,
        &["ready for queries"],
    );
    let no_role = format!(r#"address = "{p}", expect_ready = true"#);
    expect(
        &probes.probe("postgres", &no_role, &p).await,
        Status::Unhealthy,
        &["28000", "hmrt"],
    );
    let no_db =
        format!(r#"address = "{p}", user = "postgres", database = "nope", expect_ready = true"#);
    expect(
        &probes.probe("postgres", &no_db, &p).await,
        Status::Unhealthy,
        &["3D000", "nope"],
    );

    // Redis waits for a line end that this binary packet does not have: silence.
    let redis = RedisServer::start();
    let r = addr(redis.port());
    let silent = probes
        .probe(
            "postgres",
            &format!(r#"address = "{r}", timeout = "2s""#),
            &r,
        )
        .await;
    expect(&silent, Status::Unhealthy, &["no answer", "within 2s"]);
    let http = HttpServer::start().await;
    let h = addr(http.port);
    let web = probes
        .probe("postgres", &format!(r#"address = "{h}""#), &h)
        .await;
    expect(
        &web,
        Status::Unhealthy,
        &["does not answer as PostgreSQL", "HTTP"],
    );
    let broker = Mosquitto::start();
    let b = addr(broker.port());
    let hangs_up = probes
        .probe("postgres", &format!(r#"address = "{b}""#), &b)
        .await;
    expect(&hangs_up, Status::Unhealthy, &["not PostgreSQL"]);

    pg.stop();
    let down = probes
        .probe("postgres", &format!(r#"address = "{p}""#), &p)
        .await;
    expect(&down, Status::Unhealthy, &[&p]);
}

/// A TLS server on loopback with a self-signed certificate for `localhost` that expires in
/// `days` days; it says one line after the handshake and closes.
struct TlsServer {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl TlsServer {
    async fn start(days: i64) -> TlsServer {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "probe.hmrt.test");
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(days);
        let cert = params.self_signed(&key).expect("self-signed certificate");
        let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key_der)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let _ = tls.write_all(b"hello over tls\n").await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        TlsServer { port, task }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cert_days_left_against_the_thresholds() {
    let probes = Prober::new().await;
    for (days, status) in [
        (3, Status::Unhealthy),
        (20, Status::Degraded),
        (90, Status::Healthy),
    ] {
        let server = TlsServer::start(days).await;
        let a = addr(server.port);
        let config = format!(r#"address = "{a}", server_name = "localhost", verify = false"#);
        let outcome = probes.probe("tls-cert", &config, &a).await;
        expect(&outcome, status, &["CN=probe.hmrt.test", "expires on"]);
        let left = metric(&outcome, "days_left");
        assert!(
            left > days as f64 - 0.01 && left <= days as f64,
            "{days} days: days_left {left}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cert_verification_and_handshake_failures() {
    let probes = Prober::new().await;
    let server = TlsServer::start(90).await;
    let a = addr(server.port);
    // Self-signed: the system's roots do not know it.
    let verified = format!(r#"address = "{a}", server_name = "localhost""#);
    expect(
        &probes.probe("tls-cert", &verified, &a).await,
        Status::Unhealthy,
        &["TLS handshake", "UnknownIssuer"],
    );
    // The generic tcp check over TLS reads what the server says after the handshake.
    let tcp_tls =
        format!(r#"address = "{a}", tls = true, verify = false, expect = "hello over tls""#);
    expect(
        &probes.probe("tcp", &tcp_tls, &a).await,
        Status::Healthy,
        &["hello over tls"],
    );
    // Not TLS on the port at all.
    let redis = RedisServer::start();
    let r = addr(redis.port());
    let plain = format!(r#"address = "{r}", verify = false, timeout = "2s""#);
    expect(
        &probes.probe("tls-cert", &plain, &r).await,
        Status::Unhealthy,
        &[&r],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_outside_the_grant_is_denied_and_counted() {
    let redis = RedisServer::start();
    let a = addr(redis.port());
    let ws = Workspace::new();
    let config = ws.load(&format!(
        r#"
[[task]]
name = "probe"
check = "redis"
config = {{ address = "{a}" }}
grants = {{ tcp = ["127.0.0.1:1"] }}
"#
    ));
    let (outcome, counters) = check_once(&config).await;
    expect(&outcome, Status::Unhealthy, &["denied", &a]);
    assert_eq!(outcome.report.denials.len(), 1, "{:?}", outcome.report);
    assert_eq!(counters.denials(Capability::Tcp), 1);
}

#[test]
fn validate_names_each_probes_missing_grant_at_its_line() {
    let ws = Workspace::new();
    let mut config = String::new();
    let mut lines = Vec::new();
    for (i, check) in ["redis", "mqtt", "postgres", "tls-cert", "tcp"]
        .iter()
        .enumerate()
    {
        let port = 20_000 + i;
        config.push_str(&format!(
            "[[task]]\nname = \"{check}\"\ncheck = \"{check}\"\nconfig = {{ address = \"127.0.0.1:{port}\" }}\ngrants = {{ tcp = [\"127.0.0.1:1\"] }}\n\n"
        ));
        // The config line of the task just written.
        lines.push((config.lines().count() - 2, port));
    }
    let path = ws.config(&config);
    let file = path.to_str().expect("utf-8 path");
    let (code, _, stderr) = hmrt(&["validate", file]);
    assert_ne!(code, 0, "{stderr}");
    for (line, port) in lines {
        let at = format!("{file}:{line}:");
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&at) && l.contains(&format!("127.0.0.1:{port}"))),
            "no error at {at} for port {port}:\n{stderr}"
        );
    }
}
