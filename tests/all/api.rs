//! The HTTP API of a real `hmrt run` (a process, as operators run it) against a real supervisord:
//! every route, the token and the audit log, probes, heartbeats, bad input, `hmrt status` and
//! `hmrt ctl`, `/metrics` through `promtool`, and the status page in a real headless Chromium.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use hmrt_test_support::http::{self, Response};
use hmrt_test_support::supervisord::{Program, Supervisord, free_port};
use hmrt_test_support::{chromium, prometheus};
use serde_json::Value;

use crate::support::{HmrtProcess, Workspace, hmrt, never_healthy};

const TOKEN: &str = "api-token-0123456789abcdef";
const PUSH_TOKEN: &str = "push-token-0123456789abcdef";

/// A running daemon's API.
struct Api {
    addr: SocketAddr,
}

impl Api {
    fn get(&self, path: &str) -> Response {
        http::get(self.addr, path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self.get(path);
        let json = r
            .json()
            .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {}", r.text()));
        (r.status, json)
    }

    fn post(&self, path: &str, token: Option<&str>, body: &[u8]) -> Response {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth.as_str()));
        }
        http::request(self.addr, "POST", path, &headers, body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    fn task(&self, name: &str) -> Value {
        let (status, json) = self.get_json(&format!("/tasks/{name}"));
        assert_eq!(status, 200, "{json}");
        json
    }

    /// Polls `GET path` until `done` holds for its (status, JSON); panics naming `what`.
    fn wait(&self, what: &str, path: &str, timeout: Duration, done: impl Fn(u16, &Value) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, json) = self.get_json(path);
            if done(status, &json) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: still {status} {json} after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn state(&self, task: &str) -> String {
        self.task(task)["state"].as_str().unwrap_or("").to_string()
    }
}

fn audit_lines(state_dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(state_dir.join("audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("an audit line is JSON"))
        .collect()
}

/// supervisord with `web` (healthy until told), `db` (the same) and `doomed` (never healthy),
/// and a daemon watching them with the API on.
struct Setup {
    supervisord: Supervisord,
    web_port: u16,
    db_port: u16,
    ws: Workspace,
    daemon: HmrtProcess,
    api: Api,
}

fn setup() -> Setup {
    let (web_port, db_port, doomed_port) = (free_port(), free_port(), free_port());
    let supervisord = Supervisord::start(&[
        Program::flaky_service("web", web_port)
            .autorestart(false)
            .startsecs(0),
        Program::flaky_service("db", db_port)
            .autorestart(false)
            .startsecs(0),
        never_healthy("doomed", doomed_port),
    ]);
    supervisord.wait_running("web");
    supervisord.wait_running("db");
    let ws = Workspace::new();
    let http_task = |name: &str, port: u16| {
        format!(
            "check = \"http\"\ninterval = \"200ms\"\ntimeout = \"1s\"\nconfig = {{ url = \"http://127.0.0.1:{port}/health\" }}\ngrants = {{ http = [\"http://127.0.0.1:{port}\"] }}\n# {name}\n"
        )
    };
    let file = ws.config(&format!(
        r#"
[runtime]
listen = "127.0.0.1:0"

[api]
token_env = "TEST_HMRT_TOKEN"

[supervisor]
serverurl = "{serverurl}"

[[task]]
name = "web"
program = "web"
# Three failures (600 ms): a check that lands while a (manual) restart brings the service up
# is not an incident.
failure_threshold = 3
on_failure = "supervisor-restart"
restart = {{ backoff = "200ms", max_restarts = 10, window = "10m" }}
{web}
[[task]]
name = "db"
failure_threshold = 1
{db}
# Fronts db (checks db's port): held, never acting, while db is down.
[[task]]
name = "api"
program = "db"
depends_on = ["db"]
on_failure = "supervisor-restart"
{api}
[[task]]
name = "doomed"
program = "doomed"
failure_threshold = 1
on_failure = "supervisor-restart"
restart = {{ backoff = "100ms", max_restarts = 1, window = "10m" }}
{doomed}
[[task]]
name = "cron"
check = "heartbeat"
interval = "1h"
failure_threshold = 1
config = {{ period = "1500ms", token_env = "TEST_PUSH_TOKEN" }}

[[task]]
name = "slow"
check = "command"
interval = "1h"
timeout = "10s"
config = {{ program = "sleep", args = ["1.5"] }}
grants = {{ exec = ["sleep"] }}
"#,
        serverurl = supervisord.serverurl(),
        web = http_task("web", web_port),
        db = http_task("db", db_port),
        api = http_task("api", db_port),
        doomed = http_task("doomed", doomed_port),
    ));
    let mut daemon = HmrtProcess::start_with(
        &file,
        "info",
        &[("TEST_HMRT_TOKEN", TOKEN), ("TEST_PUSH_TOKEN", PUSH_TOKEN)],
    );
    let api = Api {
        addr: daemon.api_addr(),
    };
    Setup {
        supervisord,
        web_port,
        db_port,
        ws,
        daemon,
        api,
    }
}

fn service(port: u16, path: &str) {
    let r = http::request(
        SocketAddr::from(([127, 0, 0, 1], port)),
        "POST",
        path,
        &[],
        b"",
    )
    .expect("the flaky service answers");
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn every_route_against_a_running_daemon() {
    let mut s = setup();
    let api = &s.api;

    // Readiness: the API answers before the first round is done, and says what it waits for.
    let (status, ready) = api.get_json("/readyz");
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["not_yet_checked"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "slow"),
        "{ready}"
    );
    api.wait("readyz", "/readyz", Duration::from_secs(20), |code, _| {
        code == 200
    });
    let (status, live) = api.get_json("/livez");
    assert_eq!(status, 200, "{live}");

    // The doomed task spends its budget of 1 and fails; the rest is up.
    api.wait(
        "doomed failed",
        "/tasks/doomed",
        Duration::from_secs(20),
        |_, t| t["state"] == "failed",
    );
    api.wait(
        "web healthy",
        "/tasks/web",
        Duration::from_secs(20),
        |_, t| t["state"] == "healthy",
    );
    let (status, health) = api.get_json("/health");
    assert_eq!(status, 503, "a failed task makes /health 503: {health}");
    assert_eq!(health["summary"]["failed"], 1, "{health}");
    let (status, one) = api.get_json("/health/web");
    assert_eq!(status, 200, "{one}");
    for key in [
        "status",
        "state",
        "last_check",
        "last_healthy",
        "consecutive_failures",
        "restarts",
        "last_response_ms",
    ] {
        assert!(one.get(key).is_some(), "/health/web lacks {key}: {one}");
    }
    let (status, _) = api.get_json("/health/doomed");
    assert_eq!(status, 503);

    // History: JSON Lines that `hmrt simulate --results` reads, or CSV. (Taken before the
    // re-arm below: a person's re-arm or pause is not in a history, so a history across one
    // does not replay.)
    let history = api.get("/tasks/doomed/history");
    assert_eq!(history.status, 200);
    let results = s.ws.path().join("doomed-history.jsonl");
    std::fs::write(&results, history.body).unwrap();
    let tasks = s.ws.path().join("tasks.toml");
    let (code, out, err) = hmrt(&[
        "simulate",
        tasks.to_str().unwrap(),
        "--task",
        "doomed",
        "--results",
        results.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "simulate reads the history: {out}{err}");
    let csv = http::request(
        api.addr,
        "GET",
        "/tasks/doomed/history",
        &[("Accept", "text/csv")],
        b"",
    )
    .unwrap();
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    assert!(
        csv.text().starts_with("at,kind,status,attempt,message\r\n"),
        "{}",
        csv.text()
    );
    assert!(csv.text().contains(",action,ok,1,"), "{}", csv.text());

    // Re-arm through the API (audited): the failed task gets a new budget and fails again.
    let r = api.post("/tasks/doomed/rearm", Some(TOKEN), br#"{"reason":"test"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = api.post("/tasks/web/rearm", Some(TOKEN), b"");
    assert_eq!(r.status, 409, "web is not failed: {}", r.text());

    // /health/{task} follows a task without an action (db) within one check interval, both
    // ways (the whole /health is 503 already: doomed is failed).
    let broke = Instant::now();
    service(s.db_port, "/fail");
    api.wait(
        "/health/db 503",
        "/health/db",
        Duration::from_secs(5),
        |code, _| code == 503,
    );
    let (_, db) = api.get_json("/tasks/db");
    assert_eq!(db["state"], "unhealthy", "{db}");
    eprintln!(
        "measured: /health/db 503 {:?} after db broke (interval 200ms)",
        broke.elapsed()
    );
    // api depends on db: its actions are held, and the view says so.
    api.wait("api held", "/tasks/api", Duration::from_secs(5), |_, t| {
        t["held"].as_array().is_some_and(|h| !h.is_empty())
    });
    let fixed = Instant::now();
    service(s.db_port, "/recover");
    api.wait(
        "db healthy",
        "/health/db",
        Duration::from_secs(5),
        |code, _| code == 200,
    );
    eprintln!(
        "measured: /health/db 200 {:?} after db recovered",
        fixed.elapsed()
    );

    // Pause: checks go on and are recorded, the action waits, the state shows it.
    let r = api.post(
        "/tasks/web/pause",
        Some(TOKEN),
        br#"{"reason":"maintenance"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let restarts_before = api.task("web")["restarts"].as_u64().unwrap();
    let pid_before = s.supervisord.pid_of("web").expect("web runs");
    service(s.web_port, "/fail");
    api.wait(
        "web unhealthy while paused",
        "/tasks/web",
        Duration::from_secs(5),
        |_, t| t["state"] == "unhealthy",
    );
    let checked = api.task("web")["last_check"].clone();
    api.wait(
        "checks go on while paused",
        "/tasks/web",
        Duration::from_secs(5),
        |_, t| t["last_check"] != checked,
    );
    let web = api.task("web");
    assert_eq!(web["paused"], true, "{web}");
    assert!(
        web["held"].to_string().contains("paused"),
        "the hold names the pause: {web}"
    );
    assert_eq!(
        web["restarts"].as_u64().unwrap(),
        restarts_before,
        "no action while paused"
    );
    // Resume: the action that waited runs now, and web is healthy again.
    let r = api.post("/tasks/web/resume", Some(TOKEN), b"");
    assert_eq!(r.status, 200, "{}", r.text());
    api.wait(
        "web healthy after resume",
        "/tasks/web",
        Duration::from_secs(15),
        |_, t| t["state"] == "healthy" && t["restarts"].as_u64() > Some(restarts_before),
    );
    assert_ne!(s.supervisord.pid_of("web"), Some(pid_before), "restarted");

    // A manual restart: the same action and grants, marked manual, outside the budget.
    let before = api.task("web");
    let pid_before = s.supervisord.pid_of("web").expect("web runs");
    let r = api.post("/tasks/web/restart", Some(TOKEN), b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let after = api.task("web");
    assert_eq!(
        after["restarts"].as_u64().unwrap(),
        before["restarts"].as_u64().unwrap() + 1
    );
    assert_eq!(
        after["restarts_in_window"], before["restarts_in_window"],
        "a manual restart does not count against the budget"
    );
    let last = after["actions"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["manual"], true, "{last}");
    assert_eq!(last["ok"], true, "{last}");
    assert_ne!(
        s.supervisord.pid_of("web"),
        Some(pid_before),
        "supervisord restarted it"
    );

    // Every mutating route: 401 without the token, and with a wrong one.
    for route in ["restart", "rearm", "pause", "resume"] {
        let path = format!("/tasks/web/{route}");
        assert_eq!(api.post(&path, None, b"").status, 401, "{path}");
        assert_eq!(
            api.post(&path, Some("wrong-token-0123456789"), b"").status,
            401,
            "{path}"
        );
    }
    assert_eq!(api.post("/push/cron", None, b"").status, 401);
    assert_eq!(
        api.post("/push/cron", Some(TOKEN), b"").status,
        401,
        "the API token is not the push token"
    );

    // The audit log has one line per authorized mutation, with who, what and from where.
    let audit = audit_lines(&s.ws.path().join("state"));
    let commands: Vec<(&str, &str)> = audit
        .iter()
        .map(|l| (l["task"].as_str().unwrap(), l["command"].as_str().unwrap()))
        .collect();
    assert_eq!(
        commands,
        [
            ("doomed", "rearm"),
            ("web", "rearm"),
            ("web", "pause"),
            ("web", "resume"),
            ("web", "restart")
        ],
        "{audit:?}"
    );
    for line in &audit {
        assert!(
            line["by"].as_str().unwrap().starts_with("TEST_HMRT_TOKEN"),
            "{line}"
        );
        assert!(
            line["from"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{line}"
        );
        assert!(line["at"].as_str().unwrap().ends_with('Z'), "{line}");
    }
    assert!(
        audit[0]["by"].as_str().unwrap().contains("(test)"),
        "the reason is kept"
    );
    assert!(
        !std::fs::read_to_string(s.ws.path().join("state/audit.log"))
            .unwrap()
            .contains(TOKEN)
    );

    // Bad input: unknown tasks name the known ones; bad bodies say what is wrong; huge ones 413.
    for (code, body) in [
        api.get_json("/tasks/nope"),
        api.get_json("/health/nope"),
        api.get_json("/tasks/nope/history"),
    ] {
        assert_eq!(code, 404, "{body}");
        assert!(
            body["known"].as_array().unwrap().iter().any(|t| t == "web"),
            "{body}"
        );
    }
    let r = api.post("/tasks/nope/pause", Some(TOKEN), b"");
    assert_eq!(r.status, 404, "{}", r.text());
    let r = api.post("/tasks/web/pause", Some(TOKEN), b"{\"reason\":");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("EOF"), "{}", r.text());
    let r = api.post("/tasks/web/pause", Some(TOKEN), br#"{"because":"x"}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("unknown field"), "{}", r.text());
    let r = api.post("/tasks/web/pause", Some(TOKEN), &vec![b' '; 64 * 1024]);
    assert_eq!(r.status, 413, "{}", r.text());
    let r = api.post("/push/web", Some(PUSH_TOKEN), b"");
    assert_eq!(r.status, 409, "web is not a heartbeat: {}", r.text());
    let r = http::get(api.addr, "/no/such/route").unwrap();
    assert_eq!(r.status, 404);
    let (status, _) = api.get_json("/livez");
    assert_eq!(status, 200, "the daemon keeps running through bad input");
    api.wait(
        "web healthy",
        "/tasks/web",
        Duration::from_secs(10),
        |_, t| t["state"] == "healthy",
    );

    // The OpenAPI document and the router agree: every documented route is mounted.
    let (status, doc) = api.get_json("/openapi.json");
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().unwrap();
    let operations: usize = paths.values().map(|m| m.as_object().unwrap().len()).sum();
    assert_eq!(
        operations,
        18,
        "{}",
        serde_json::to_string_pretty(&doc).unwrap()
    );
    for (path, methods) in paths {
        for method in methods.as_object().unwrap().keys() {
            let concrete = path.replace("{task}", "web");
            let method = method.to_ascii_uppercase();
            let r = http::request(api.addr, &method, &concrete, &[], b"").unwrap();
            assert!(
                r.status != 405 && !(r.status == 404 && r.text().contains("no route")),
                "{method} {path} is documented but not mounted: {} {}",
                r.status,
                r.text()
            );
        }
    }

    // /metrics: classic text that promtool accepts, OpenMetrics when asked.
    let metrics = api.get("/metrics");
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    prometheus::promtool_check_metrics(&text).unwrap_or_else(|e| panic!("promtool: {e}\n{text}"));
    // Values that cannot flip under a loaded machine; the rest are checked for presence (their
    // values are the metrics unit test's and the fleet test's).
    for series in [
        "hmrt_task_state{task=\"web\",state=\"healthy\"} ",
        "hmrt_task_state{task=\"doomed\",state=\"failed\"} 1",
        "hmrt_task_paused{task=\"web\"} 0",
        "hmrt_check_success{task=\"web\"} ",
        "hmrt_build_info{version=",
        "hmrt_check_metric{task=\"web\",name=",
        "hmrt_actions_total{task=\"web\",action=\"supervisor-restart\",outcome=\"ok\"}",
        "hmrt_restarts_total{task=\"doomed\"} 2",
        "hmrt_check_duration_seconds_bucket{",
        "hmrt_backoff_seconds{task=\"web\"}",
        "hmrt_next_action_timestamp_seconds{task=\"web\"}",
    ] {
        assert!(text.contains(series), "/metrics lacks {series}:\n{text}");
    }
    let om = http::request(
        api.addr,
        "GET",
        "/metrics",
        &[("Accept", "application/openmetrics-text;version=1.0.0")],
        b"",
    )
    .unwrap();
    assert!(
        om.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(om.text().ends_with("# EOF\n"));

    // The CLI over the API.
    let url = format!("http://{}", api.addr);
    let (code, out, err) = hmrt(&["status", "--url", &url]);
    assert_eq!(code, 2, "a failed task: {out}{err}");
    assert!(out.contains("doomed") && out.contains("failed"), "{out}");
    assert!(!out.contains('\x1b'), "no colour off a terminal: {out:?}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hmrt"))
        .args(["ctl", "pause", "db", "--url", &url, "--reason", "cli"])
        .env("HMRT_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(api.task("db")["paused"], true);
    let (code, _, err) = hmrt(&["ctl", "resume", "db", "--url", &url]);
    assert_eq!(code, 1, "no token in the environment: {err}");
    assert!(err.contains("HMRT_API_TOKEN"), "{err}");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (code, _, err) = hmrt(&["status", "--url", &dead]);
    assert_eq!(code, 3, "unreachable is UNKNOWN: {err}");
    assert!(err.contains("cannot reach"), "{err}");

    // The status page, rendered by a real headless Chromium on a phone-sized viewport.
    // The status page, rendered by a real headless Chromium.
    status_page(api, &s);

    let log = s.daemon.drain();
    assert!(
        !log.contains(TOKEN) && !log.contains(PUSH_TOKEN),
        "a token reached the log"
    );
    s.daemon.terminate();
}

/// The page shows a healthy, an unhealthy, a held and a failed task, each marked.
fn status_page(api: &Api, s: &Setup) {
    // db down (unhealthy), so api is held; doomed failed again after its re-arm.
    service(s.db_port, "/fail");
    api.wait(
        "db unhealthy",
        "/tasks/db",
        Duration::from_secs(5),
        |_, t| t["state"] == "unhealthy",
    );
    api.wait("api held", "/tasks/api", Duration::from_secs(5), |_, t| {
        t["held"].as_array().is_some_and(|h| !h.is_empty())
    });
    api.wait(
        "doomed failed",
        "/tasks/doomed",
        Duration::from_secs(20),
        |_, t| t["state"] == "failed",
    );
    let url = format!("http://{}/", api.addr);
    let served = api.get("/");
    let policy = served.header("content-security-policy").unwrap_or_default();
    assert!(
        policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"),
        "{policy}"
    );
    let dom = chromium::dump_dom(&url, (390, 844));
    assert!(
        dom.contains("data-loaded=\"true\""),
        "the page rendered: {dom}"
    );
    let article = |task: &str| {
        chromium::element_with_attr(&dom, "data-task", task)
            .unwrap_or_else(|| panic!("no article for {task}:\n{dom}"))
            .to_string()
    };
    let web = article("web");
    assert_eq!(
        chromium::attr(&web, "data-state").as_deref(),
        Some("healthy"),
        "{web}"
    );
    assert!(
        web.contains("<polyline"),
        "web has a latency sparkline: {web}"
    );
    let db = article("db");
    assert_eq!(
        chromium::attr(&db, "data-state").as_deref(),
        Some("unhealthy"),
        "{db}"
    );
    assert_eq!(
        chromium::attr(&db, "data-paused").as_deref(),
        Some("true"),
        "{db}"
    );
    let held = article("api");
    assert_eq!(
        chromium::attr(&held, "data-held").as_deref(),
        Some("true"),
        "{held}"
    );
    assert!(held.contains("db"), "the hold names the dependency: {held}");
    let failed = article("doomed");
    assert_eq!(
        chromium::attr(&failed, "data-state").as_deref(),
        Some("failed"),
        "{failed}"
    );
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page-phone.png");
    chromium::screenshot(&url, (390, 844), &shot);
    let desktop = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page-desktop.png");
    chromium::screenshot(&url, (1280, 900), &desktop);
    eprintln!("screenshots: {} {}", shot.display(), desktop.display());
}

#[test]
fn a_heartbeat_is_healthy_while_pinged_and_unhealthy_once_silent() {
    let ws = Workspace::new();
    let file = ws.config(
        r#"
[runtime]
listen = "127.0.0.1:0"

[[task]]
name = "cron"
check = "heartbeat"
interval = "1h"
failure_threshold = 1
config = { period = "1s", token_env = "TEST_PUSH_TOKEN" }
"#,
    );
    let mut daemon = HmrtProcess::start_with(&file, "info", &[("TEST_PUSH_TOKEN", PUSH_TOKEN)]);
    let api = Api {
        addr: daemon.api_addr(),
    };
    assert_eq!(
        api.state("cron"),
        "unknown",
        "no ping yet, within its first period"
    );
    let r = api.post("/push/cron", Some(PUSH_TOKEN), b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(api.state("cron"), "healthy", "a ping is judged at once");
    let (status, health) = api.get_json("/health");
    assert_eq!(status, 200, "{health}");
    let pinged = Instant::now();
    // /health turns 503 with the task, not a check interval later: both read one board.
    api.wait(
        "/health 503",
        "/health",
        Duration::from_secs(5),
        |code, _| code == 503,
    );
    let silent = pinged.elapsed();
    assert_eq!(api.state("cron"), "unhealthy");
    eprintln!("measured: unhealthy {silent:?} after the last ping (period 1s)");
    assert!(
        silent >= Duration::from_secs(1) && silent < Duration::from_secs(2),
        "unhealthy within one period after the period ran out: {silent:?}"
    );
    let message = api.task("cron")["message"].as_str().unwrap().to_string();
    assert!(message.starts_with("no ping for"), "{message}");
    // Judged once when the period ran out, then at its interval (1 h): never in a loop. (A
    // window to count in, not a wait for something to happen.)
    std::thread::sleep(Duration::from_millis(300));
    let cron = api.task("cron");
    assert_eq!(cron["consecutive_failures"], 1, "{cron}");
    let r = api.post("/push/cron", Some(PUSH_TOKEN), b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        api.state("cron"),
        "healthy",
        "healthy again on the next ping"
    );
    let (status, health) = api.get_json("/health");
    assert_eq!(status, 200, "/health is 200 again at once: {health}");
    // A job may report its own failure, with a message (made safe to show).
    let r = api.post(
        "/push/cron",
        Some(PUSH_TOKEN),
        br#"{"status":"unhealthy","message":"backup failed:\ndisk full"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let cron = api.task("cron");
    assert_eq!(cron["state"], "unhealthy", "{cron}");
    assert!(
        cron["message"]
            .as_str()
            .unwrap()
            .contains("backup failed:\\ndisk full"),
        "{cron}"
    );
    let r = api.post("/push/cron", Some(PUSH_TOKEN), br#"{"status":"sideways"}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    daemon.terminate();
}

#[test]
fn idle_connections_cannot_take_the_api() {
    use std::io::Read;
    let ws = Workspace::new();
    let file = ws.config("[runtime]\nlisten = \"127.0.0.1:0\"\n");
    let mut daemon = HmrtProcess::start_with(&file, "info", &[]);
    let api = Api {
        addr: daemon.api_addr(),
    };
    // Clients that connect and say nothing: the API serves 256 connections at once.
    let idle: Vec<std::net::TcpStream> = (0..256)
        .map(|_| std::net::TcpStream::connect(api.addr).expect("connects"))
        .collect();
    // Each is accepted in turn; once they hold every slot, one more is closed at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut extra = std::net::TcpStream::connect(api.addr).expect("connects");
        extra
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut byte = [0u8; 1];
        if matches!(extra.read(&mut byte), Ok(0)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a connection beyond the cap was kept open"
        );
    }
    drop(idle);
    // Their slots come free as the API sees them close.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !http::get(api.addr, "/livez").is_ok_and(|r| r.status == 200) {
        assert!(Instant::now() < deadline, "/livez never answered again");
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon.terminate();
}

#[test]
fn the_api_refuses_to_start_without_its_tokens() {
    let ws = Workspace::new();
    let file = ws.config(
        r#"
[runtime]
listen = "127.0.0.1:0"

[api]
token_env = "TEST_HMRT_TOKEN_UNSET"
"#,
    );
    let (code, _, err) =
        crate::support::hmrt_within(&["run", file.to_str().unwrap()], Duration::from_secs(30));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("TEST_HMRT_TOKEN_UNSET")
            && err.contains("not set")
            && err.contains("not starting"),
        "{err}"
    );
}
