//! A fleet on an existing engine: a real Prometheus scrapes two hmrt daemons (one per "host"),
//! and one PromQL query sees both daemons' task states and restart counters.

use std::time::Duration;

use hmrt_test_support::prometheus::{Prometheus, samples};
use hmrt_test_support::supervisord::{Supervisord, free_port};

use crate::support::{HmrtProcess, Workspace, never_healthy};

#[test]
fn prometheus_scrapes_two_daemons_and_answers_over_both() {
    // Host A repairs a service that never recovers: it restarts it once and gives up (failed).
    let doomed_port = free_port();
    let supervisord = Supervisord::start(&[never_healthy("doomed", doomed_port)]);
    let a = Workspace::new();
    let a_file = a.config(&format!(
        r#"
[runtime]
listen = "127.0.0.1:0"

[supervisor]
serverurl = "{serverurl}"

[[task]]
name = "doomed"
program = "doomed"
check = "http"
interval = "200ms"
failure_threshold = 1
config = {{ url = "http://127.0.0.1:{doomed_port}/health" }}
grants = {{ http = ["http://127.0.0.1:{doomed_port}"] }}
on_failure = "supervisor-restart"
restart = {{ backoff = "100ms", max_restarts = 1, window = "10m" }}
"#,
        serverurl = supervisord.serverurl()
    ));
    // Host B watches a healthy service: the other daemon's API.
    let mut host_a = HmrtProcess::start(&a_file);
    let a_addr = host_a.api_addr();
    let b = Workspace::new();
    let b_file = b.config(&format!(
        r#"
[runtime]
listen = "127.0.0.1:0"

[[task]]
name = "peer"
check = "http"
interval = "200ms"
config = {{ url = "http://{a_addr}/livez" }}
grants = {{ http = ["http://{a_addr}"] }}
"#
    ));
    let mut host_b = HmrtProcess::start(&b_file);
    let b_addr = host_b.api_addr();

    let prometheus = Prometheus::start(&[a_addr, b_addr], "1s");
    let states = prometheus.wait_for("hmrt_task_state == 1", Duration::from_secs(60), |data| {
        let s = samples(data);
        s.iter()
            .any(|s| s.label("task") == "doomed" && s.label("state") == "failed")
            && s.iter()
                .any(|s| s.label("task") == "peer" && s.label("state") == "healthy")
    });
    let states = samples(&states);
    let instances: std::collections::BTreeSet<&str> =
        states.iter().map(|s| s.label("instance")).collect();
    assert_eq!(
        instances,
        [a_addr.to_string(), b_addr.to_string()]
            .iter()
            .map(String::as_str)
            .collect(),
        "{states:?}"
    );
    // Restart counters over both daemons, by instance.
    let restarts = prometheus.wait_for_samples(
        "sum by (instance) (hmrt_restarts_total)",
        Duration::from_secs(30),
    );
    let of = |addr: std::net::SocketAddr| {
        restarts
            .iter()
            .find(|s| s.label("instance") == addr.to_string())
            .map(|s| s.value)
    };
    assert_eq!(of(a_addr), Some(1.0), "{restarts:?}");
    assert_eq!(of(b_addr), Some(0.0), "{restarts:?}");
    let up = prometheus.wait_for_samples("up{job=\"hmrt\"} == 1", Duration::from_secs(10));
    assert_eq!(up.len(), 2, "{up:?}");
    host_a.terminate();
    host_b.terminate();
}
