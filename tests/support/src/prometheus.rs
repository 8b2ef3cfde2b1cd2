//! Test fixture: a real Prometheus scraping given targets on loopback, and `promtool`.
//!
//! [`Prometheus::start`] runs `prometheus` on a free 127.0.0.1 port with its own temporary
//! config and TSDB directory, scraping the targets as job `hmrt` at `/metrics`, and returns
//! once it answers `GET /-/ready`. [`Prometheus::query`] and [`Prometheus::wait_for`] ask it
//! PromQL over its HTTP API. It is killed when the value is dropped.
//!
//! Why a real one: what matters is that Prometheus accepts what hmrt serves (the OpenMetrics
//! content type, `# EOF`, names, label values) and that queries over the scraped series say
//! what the docs and alert rules promise. A parser of our own would only agree with us.
//!
//! Binaries: `$HMRT_PROMETHEUS`, else `/usr/bin/prometheus`; `$HMRT_PROMTOOL`, else
//! `/usr/bin/promtool` (Debian's `prometheus` package; `scripts/setup --tests` installs it).
//!
//! Everything blocks, and failures panic with Prometheus' log: this is test code, and a test
//! whose real part cannot start must fail, not pass vacuously.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::http;

/// How long Prometheus gets to answer `/-/ready` (start-up is usually well under a second, but
/// a loaded CI machine can be slow, and a failure costs only this wait).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Poll interval while waiting.
const POLL: Duration = Duration::from_millis(100);
/// How many ports to try when the free one is taken before Prometheus binds it.
const BIND_ATTEMPTS: usize = 3;

/// The prometheus executable (see the module docs).
pub fn prometheus_bin() -> PathBuf {
    bin("HMRT_PROMETHEUS", "/usr/bin/prometheus")
}

/// The promtool executable (see the module docs).
pub fn promtool_bin() -> PathBuf {
    bin("HMRT_PROMTOOL", "/usr/bin/promtool")
}

fn bin(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.is_file(),
        "{} not found (set {var}, or run scripts/setup --tests, which installs Debian's prometheus \
         package)",
        path.display()
    );
    path
}

/// One sample of an instant vector: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// All labels, `__name__` included when the query keeps it.
    pub labels: BTreeMap<String, String>,
    /// The value (Prometheus sends it as a string, so `NaN` and `±Inf` arrive too).
    pub value: f64,
}

impl Sample {
    /// The value of one label, `""` when absent (as PromQL treats a missing label).
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// The samples of a query's `data` when it is an instant vector (see [`Prometheus::query`]);
/// empty for any other result type.
pub fn samples(data: &serde_json::Value) -> Vec<Sample> {
    if data["resultType"] != "vector" {
        return Vec::new();
    }
    let Some(result) = data["result"].as_array() else {
        return Vec::new();
    };
    result
        .iter()
        .map(|s| Sample {
            labels: s["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            value: s["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN),
        })
        .collect()
}

/// A running Prometheus; see the module docs.
pub struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (job `hmrt`, path `/metrics`) every
    /// `scrape_interval` (a Prometheus duration such as `"1s"`), and waits until it is ready.
    /// Rules are evaluated at the same interval.
    pub fn start(targets: &[SocketAddr], scrape_interval: &str) -> Prometheus {
        Prometheus::start_with_rules(targets, scrape_interval, &[])
    }

    /// [`Prometheus::start`], also loading these rule files (recording and alerting rules,
    /// such as `examples/prometheus/rules.yml`), so a test can watch `ALERTS{...}`.
    pub fn start_with_rules(
        targets: &[SocketAddr],
        scrape_interval: &str,
        rule_files: &[&Path],
    ) -> Prometheus {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let dir = tempfile::Builder::new()
                .prefix("hmrt-prometheus-")
                .tempdir()
                .expect("create a temp dir for Prometheus");
            let config = dir.path().join("prometheus.yml");
            std::fs::write(&config, render_config(targets, scrape_interval, rule_files))
                .expect("write prometheus.yml");
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("bind 127.0.0.1:0")
                .port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let child = spawn(dir.path(), &config, addr);
            let mut prom = Prometheus { child, addr, dir };
            match prom.wait_ready() {
                Ready::Yes => return prom,
                // The port was free a moment ago, but something took it before Prometheus
                // bound it: try another.
                Ready::PortTaken if attempt < BIND_ATTEMPTS => drop(prom),
                Ready::PortTaken | Ready::Exited | Ready::TimedOut => {
                    let why = match prom.child.try_wait() {
                        Ok(Some(status)) => format!("exited during start-up ({status})"),
                        _ => format!("was not ready within {READY_TIMEOUT:?}"),
                    };
                    panic!("Prometheus on {addr} {why}\n{}", prom.diagnostics());
                }
            }
        }
    }

    /// Where it listens (`127.0.0.1:<port>`), for its HTTP API and UI.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its temporary directory (config, `data/`, `prometheus.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its log so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query at the current time; returns the response's `data`
    /// (`{"resultType": "vector", "result": [{"metric": {...}, "value": [ts, "1"]}]}`;
    /// [`samples`] turns a vector into [`Sample`]s). Panics on an HTTP error or a
    /// non-success status (a PromQL syntax error, say), with Prometheus' error message.
    pub fn query(&self, promql: &str) -> serde_json::Value {
        self.try_query(promql)
            .unwrap_or_else(|e| panic!("query {promql:?}: {e}\n{}", self.diagnostics()))
    }

    /// [`Prometheus::query`] as [`Sample`]s (empty unless the result is an instant vector).
    pub fn samples(&self, promql: &str) -> Vec<Sample> {
        samples(&self.query(promql))
    }

    fn try_query(&self, promql: &str) -> Result<serde_json::Value, String> {
        let path = format!("/api/v1/query?query={}", url_encode(promql));
        let resp = http::get(self.addr, &path)?;
        let json = resp
            .json()
            .map_err(|e| format!("HTTP {}: {e}", resp.status))?;
        if resp.status != 200 || json["status"] != "success" {
            return Err(format!("HTTP {}: {json}", resp.status));
        }
        Ok(json["data"].clone())
    }

    /// Polls `promql` until `predicate` holds for its `data` (as [`Prometheus::query`] returns
    /// it), and returns that `data`. Panics after `timeout` with the last result, the
    /// scrape targets' health and the log: the usual reasons are a target Prometheus cannot
    /// scrape or parse, and a series not scraped yet. Allow 15 s or more: Prometheus 2.42
    /// hands its targets to the scrapers on a fixed 5 s tick, so the first scrape comes about
    /// 5 s after start (6 s measured with a 1 s interval), plus up to one interval.
    pub fn wait_for(
        &self,
        promql: &str,
        timeout: Duration,
        predicate: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let data = self.query(promql);
            if predicate(&data) {
                return data;
            }
            if Instant::now() >= deadline {
                panic!(
                    "query {promql:?}: the condition did not hold within {timeout:?}; \
                     last result: {data}\n{}",
                    self.diagnostics()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// [`Prometheus::wait_for`] until the query returns at least one sample; returns them.
    pub fn wait_for_samples(&self, promql: &str, timeout: Duration) -> Vec<Sample> {
        samples(&self.wait_for(promql, timeout, |d| !samples(d).is_empty()))
    }

    /// The scrape targets' state from `/api/v1/targets` (health, last error), for messages.
    pub fn targets(&self) -> String {
        match http::get(self.addr, "/api/v1/targets?state=active").and_then(|r| r.json()) {
            Ok(json) => json["data"]["activeTargets"]
                .as_array()
                .map(|ts| {
                    ts.iter()
                        .map(|t| {
                            format!(
                                "{} health={} lastError={:?}",
                                t["scrapeUrl"].as_str().unwrap_or("?"),
                                t["health"].as_str().unwrap_or("?"),
                                t["lastError"].as_str().unwrap_or("")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_else(|| json.to_string()),
            Err(e) => format!("(targets unavailable: {e})"),
        }
    }

    fn diagnostics(&self) -> String {
        let targets = if self.child_running() {
            format!("--- scrape targets ---\n{}\n", self.targets())
        } else {
            String::new()
        };
        format!(
            "{targets}--- prometheus.log ({}) ---\n{}",
            self.dir.path().join("prometheus.log").display(),
            self.log()
        )
    }

    fn child_running(&self) -> bool {
        crate::supervisord::process_alive(self.child.id())
    }

    fn wait_ready(&mut self) -> Ready {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return if self.log().contains("address already in use") {
                    Ready::PortTaken
                } else {
                    Ready::Exited
                };
            }
            // 503 while the TSDB opens, 200 once queries and scrapes run.
            if http::request_timeout(self.addr, "GET", "/-/ready", &[], &[], POLL * 10)
                .is_ok_and(|r| r.status == 200)
            {
                return Ready::Yes;
            }
            if Instant::now() >= deadline {
                return Ready::TimedOut;
            }
            std::thread::sleep(POLL);
        }
    }

    fn stop(&mut self) {
        // SIGKILL, not a graceful stop: its data dir is thrown away, and a test should not
        // wait for a TSDB flush.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

enum Ready {
    Yes,
    PortTaken,
    Exited,
    TimedOut,
}

fn spawn(dir: &Path, config: &Path, addr: SocketAddr) -> Child {
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("create prometheus.log");
    Command::new(prometheus_bin())
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone file"))
        .stderr(log)
        // Its own process group, so a Ctrl-C aimed at cargo does not race our kill.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", prometheus_bin().display()))
}

fn render_config(targets: &[SocketAddr], scrape_interval: &str, rule_files: &[&Path]) -> String {
    // JSON strings are valid YAML scalars, and quote whatever a path may hold.
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    let mut out = format!(
        "global:\n  scrape_interval: {i}\n  evaluation_interval: {i}\n",
        i = quote(scrape_interval)
    );
    if !rule_files.is_empty() {
        out.push_str("rule_files:\n");
        for f in rule_files {
            out.push_str(&format!("  - {}\n", quote(&f.display().to_string())));
        }
    }
    out.push_str("scrape_configs:\n  - job_name: hmrt\n    metrics_path: /metrics\n");
    out.push_str("    static_configs:\n      - targets: [");
    let list: Vec<String> = targets.iter().map(|t| quote(&t.to_string())).collect();
    out.push_str(&list.join(", "));
    out.push_str("]\n");
    out
}

/// Percent-encodes a query-string value: everything but RFC 3986's unreserved characters,
/// so PromQL's `{`, `"`, `=~`, `+`, spaces and `[5m]` arrive as written.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs promtool with `args`, `stdin` piped in; Ok(output) on exit 0, else Err(output)
/// (stdout then stderr: promtool prints findings on either, depending on the command).
fn promtool(args: &[&std::ffi::OsStr], stdin: Option<&[u8]>) -> Result<String, String> {
    let mut child = Command::new(promtool_bin())
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", promtool_bin().display()));
    if let Some(input) = stdin {
        // Write from another thread: promtool may print (and fill a pipe) before it has
        // read all of a large input.
        let mut pipe = child.stdin.take().expect("piped stdin");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait for promtool");
        let _ = writer.join();
        return finish(out);
    }
    finish(child.wait_with_output().expect("wait for promtool"))
}

fn finish(out: std::process::Output) -> Result<String, String> {
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("promtool: {}\n{text}", out.status))
    }
}

/// `promtool check metrics` on an exposition: Ok(its output) when it finds nothing, else
/// Err with its findings (it exits non-zero on lint problems, not only on parse errors).
///
/// promtool 2.42 parses the classic text format (0.0.4) only. An OpenMetrics exposition
/// names a counter's family without `_total` (`# TYPE hmrt_restarts counter` over samples
/// `hmrt_restarts_total`), which it reads as an untyped family with no help text and
/// reports. hmrt serves the classic format unless a client asks for OpenMetrics, so check that.
pub fn promtool_check_metrics(text: &str) -> Result<String, String> {
    promtool(
        &["check".as_ref(), "metrics".as_ref()],
        Some(text.as_bytes()),
    )
}

/// `promtool check rules <path>`: Ok(its output) when the rule file is valid, else Err.
pub fn promtool_check_rules(path: &Path) -> Result<String, String> {
    promtool(
        &["check".as_ref(), "rules".as_ref(), path.as_os_str()],
        None,
    )
}

/// `promtool test rules <path>` (rule unit tests): Ok(its output) when all pass, else Err.
pub fn promtool_test_rules(path: &Path) -> Result<String, String> {
    promtool(&["test".as_ref(), "rules".as_ref(), path.as_os_str()], None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILD_INFO: &str = "# HELP hmrt_build_info Build information.\n\
                              # TYPE hmrt_build_info gauge\n\
                              hmrt_build_info{version=\"0.1.0\"} 1\n";

    /// What prometheus-client serves: OpenMetrics, counter family without `_total`, `# EOF`.
    const OPENMETRICS: &str = "# HELP hmrt_restarts Restarts hmrt made.\n\
                               # TYPE hmrt_restarts counter\n\
                               hmrt_restarts_total{task=\"web\"} 3\n\
                               # HELP hmrt_backoff_seconds Current backoff.\n\
                               # TYPE hmrt_backoff_seconds gauge\n\
                               # UNIT hmrt_backoff_seconds seconds\n\
                               hmrt_backoff_seconds{task=\"web\"} 2.5\n\
                               # EOF\n";

    const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// A /metrics server for the test: `body` with `content_type`, for any request.
    fn serve(body: &'static str, content_type: &'static str) -> SocketAddr {
        http::test_server::start(move |_| {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        })
        .0
    }

    #[test]
    fn scrapes_classic_and_openmetrics_targets() {
        let classic = serve(BUILD_INFO, "text/plain; version=0.0.4; charset=utf-8");
        let openmetrics = serve(OPENMETRICS, OPENMETRICS_TYPE);

        let started = Instant::now();
        let prom = Prometheus::start(&[classic, openmetrics], "1s");
        let ready = started.elapsed();

        let build = prom.wait_for_samples("hmrt_build_info", Duration::from_secs(30));
        let scraped = started.elapsed();
        eprintln!("Prometheus ready after {ready:?}, first series after {scraped:?}");
        assert_eq!(build.len(), 1, "{build:?}");
        assert_eq!(build[0].label("version"), "0.1.0");
        assert_eq!(build[0].label("job"), "hmrt");
        assert_eq!(build[0].label("instance"), classic.to_string());
        assert_eq!(build[0].value, 1.0);

        // The OpenMetrics target: the counter is stored under its sample name.
        let restarts = prom.wait_for_samples(
            r#"hmrt_restarts_total{task="web", job="hmrt"}"#,
            Duration::from_secs(30),
        );
        assert_eq!(restarts[0].label("instance"), openmetrics.to_string());
        assert_eq!(restarts[0].value, 3.0);
        let up = prom.wait_for_samples("sum(up)", Duration::from_secs(30));
        assert_eq!(up[0].value, 2.0, "{}", prom.targets());
    }

    #[test]
    fn an_unscrapable_target_is_down() {
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let prom = Prometheus::start(&[closed], "1s");
        let up = prom.wait_for_samples("up == 0", Duration::from_secs(30));
        assert_eq!(up[0].label("instance"), closed.to_string());
    }

    #[test]
    fn a_bad_query_panics_with_the_reason() {
        let prom = Prometheus::start(&[], "1s");
        assert!(prom.samples("vector(1)").iter().all(|s| s.value == 1.0));
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            prom.query("sum(");
        }))
        .unwrap_err();
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("bad_data"), "{msg}");
    }

    #[test]
    fn url_encoding_keeps_promql_intact() {
        assert_eq!(
            url_encode(r#"increase(x{a=~"b|c"}[5m]) > 3"#),
            "increase%28x%7Ba%3D~%22b%7Cc%22%7D%5B5m%5D%29%20%3E%203"
        );
        assert_eq!(url_encode("ä+"), "%C3%A4%2B");
    }

    #[test]
    fn config_quotes_what_it_writes() {
        let conf = render_config(
            &["127.0.0.1:9187".parse().unwrap()],
            "1s",
            &[Path::new("/tmp/a b/rules.yml")],
        );
        assert!(conf.contains(r#"targets: ["127.0.0.1:9187"]"#), "{conf}");
        assert!(conf.contains(r#"- "/tmp/a b/rules.yml""#), "{conf}");
    }

    #[test]
    fn promtool_check_metrics_passes_good_and_fails_bad_text() {
        promtool_check_metrics(BUILD_INFO).unwrap();

        let bad = "# HELP hmrt_restarts Restarts.\n\
                   # TYPE hmrt_restarts counter\n\
                   hmrt_restarts{task=\"web\"} 1\n";
        let err = promtool_check_metrics(bad).unwrap_err();
        assert!(err.contains("_total"), "{err}");

        let err = promtool_check_metrics("not{{ metrics\n").unwrap_err();
        assert!(err.contains("parsing error"), "{err}");
    }

    #[test]
    fn openmetrics_is_not_what_promtool_reads() {
        let err = promtool_check_metrics(OPENMETRICS).unwrap_err();
        assert!(err.contains("no help text"), "{err}");
    }

    fn examples_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/prometheus")
    }

    /// The example alert rules are valid, and their unit tests pass: CI fails when either
    /// breaks.
    #[test]
    fn example_rules_check_and_pass_their_tests() {
        let dir = examples_dir();
        let out = promtool_check_rules(&dir.join("rules.yml")).unwrap_or_else(|e| panic!("{e}"));
        assert!(out.contains("SUCCESS"), "{out}");
        let out =
            promtool_test_rules(&dir.join("rules_test.yml")).unwrap_or_else(|e| panic!("{e}"));
        assert!(out.contains("SUCCESS"), "{out}");
    }

    #[test]
    fn broken_rules_fail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.yml");
        std::fs::write(
            &path,
            "groups:\n  - name: x\n    rules:\n      - alert: Bad\n        expr: sum(\n",
        )
        .unwrap();
        assert!(promtool_check_rules(&path).is_err());
    }

    /// The example Prometheus config is valid (its rule file resolves next to it).
    #[test]
    fn example_config_checks() {
        let out = promtool(
            &[
                "check".as_ref(),
                "config".as_ref(),
                examples_dir().join("prometheus.yml").as_os_str(),
            ],
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.contains("SUCCESS"), "{out}");
    }
}
