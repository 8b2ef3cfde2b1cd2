//! Alerts end to end: a real `hmrt run` process, checks against a loopback server the test
//! flips, notices delivered by the built-in `webhook` receiver to that server (and to a real
//! Alertmanager).

use std::time::{Duration, Instant};

use hmrt_test_support::http;

use crate::support::switchboard::{Switchboard, pairs};
use crate::support::{HmrtProcess, Workspace};

/// A task checking `/health/{name}` on the switchboard every `interval`.
fn task(board: &Switchboard, name: &str, extra: &str) -> String {
    format!(
        r#"
[[task]]
name = "{name}"
check = "http"
interval = "100ms"
timeout = "1s"
config = {{ url = "{origin}/health/{name}" }}
grants = {{ http = ["{origin}"] }}
{extra}
"#,
        origin = board.origin()
    )
}

/// A route sending every task's notices to the switchboard's `/hook`.
fn route(board: &Switchboard, extra: &str) -> String {
    format!(
        r#"
[[alert]]
name = "oncall"
receiver = {{ action = "webhook", config = {{ url = "{origin}/hook" }}, grants = {{ http = ["{origin}"] }} }}
{extra}
"#,
        origin = board.origin()
    )
}

fn api_task(addr: std::net::SocketAddr, name: &str) -> serde_json::Value {
    http::get(addr, &format!("/tasks/{name}"))
        .and_then(|r| r.json())
        .expect("the task")
}

/// Polls `GET /tasks/{task}` (every 20 ms, up to `timeout`) until `done` holds; panics naming
/// `what` with the last answer.
fn wait_task(
    addr: std::net::SocketAddr,
    task: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let t = api_task(addr, task);
        if done(&t) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {t}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`wait_task`] until the task is in `state` (10 s).
fn wait_state(addr: std::net::SocketAddr, task: &str, state: &str) {
    wait_task(
        addr,
        task,
        &format!("{task} never {state}"),
        Duration::from_secs(10),
        |t| t["state"] == state,
    );
}

#[test]
fn one_notice_per_incident_and_reminders_at_their_spacing() {
    let board = Switchboard::start();
    let ws = Workspace::new();
    let file = ws.config(&format!(
        "[runtime]\nlisten = \"127.0.0.1:0\"\n{}{}",
        task(&board, "web", "failure_threshold = 1"),
        route(&board, "remind_every = \"1s\"")
    ));
    let mut hmrt = HmrtProcess::start(&file);
    let api = hmrt.api_addr();
    wait_state(api, "web", "healthy");
    board.broken("web", true);
    // 50 failed checks (100 ms apart): one "unhealthy", then a reminder every second.
    wait_task(
        api,
        "web",
        "fewer than 50 failed checks",
        Duration::from_secs(20),
        |t| t["consecutive_failures"].as_u64().unwrap_or(0) >= 50,
    );
    board.broken("web", false);
    board.wait("recovered", Duration::from_secs(10), |k| {
        k.last().is_some_and(|(_, kind)| kind == "recovered")
    });
    let notices = board.notices();
    let kinds: Vec<String> = board.kinds().into_iter().map(|(_, k)| k).collect();
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("unhealthy"),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "unhealthy").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "recovered").count(),
        1,
        "{kinds:?}"
    );
    let reminders: Vec<Instant> = notices
        .iter()
        .filter(|(_, n)| n["kind"] == "reminder")
        .map(|(at, _)| *at)
        .collect();
    assert!(reminders.len() >= 3, "{kinds:?}");
    let mut at = notices[0].0;
    for (i, reminder) in reminders.iter().enumerate() {
        let gap = reminder.duration_since(at);
        eprintln!("measured: reminder {} {gap:?} after the one before", i + 1);
        assert!(
            gap >= Duration::from_millis(900) && gap <= Duration::from_millis(1100),
            "reminder {} came {gap:?} after the previous notice (1 s ± one 100 ms interval)",
            i + 1
        );
        at = *reminder;
    }
    let first = &notices[0].1;
    assert_eq!(first["task"], "web");
    assert_eq!(first["route"], "oncall");
    assert!(first["reason"].as_str().unwrap().contains("500"), "{first}");
    hmrt.terminate();
}

#[test]
fn a_dependency_outage_holds_its_dependants_and_follows_up_both_ways() {
    let board = Switchboard::start();
    let ws = Workspace::new();
    // db fails at its first failed check, api at its third: db is down first, as when api
    // fails because db did.
    let file = ws.config(&format!(
        "[runtime]\nlisten = \"127.0.0.1:0\"\n{}{}{}",
        task(&board, "db", "failure_threshold = 1"),
        task(
            &board,
            "api",
            "failure_threshold = 3\ndepends_on = [\"db\"]"
        ),
        route(&board, "")
    ));
    let mut hmrt = HmrtProcess::start(&file);
    let api = hmrt.api_addr();
    let reach = |task: &str, state: &str| wait_state(api, task, state);
    reach("db", "healthy");
    reach("api", "healthy");

    // Way 1: both break; db comes back first while api stays down.
    board.broken("db", true);
    board.broken("api", true);
    reach("db", "unhealthy");
    reach("api", "unhealthy");
    board.wait("db's notice", Duration::from_secs(5), |k| !k.is_empty());
    let first = board.notices()[0].1.clone();
    assert_eq!(first["task"], "db", "{first}");
    assert_eq!(
        first["held"],
        serde_json::json!(["api"]),
        "the outage names api: {first}"
    );
    board.broken("db", false);
    board.wait(
        "api announced once db is back",
        Duration::from_secs(5),
        |k| k.len() >= 3,
    );
    assert_eq!(
        board.kinds(),
        pairs(&[
            ("db", "unhealthy"),
            ("db", "recovered"),
            ("api", "unhealthy")
        ])
    );
    board.broken("api", false);
    board.wait("api recovered", Duration::from_secs(5), |k| k.len() >= 4);

    // Way 2: both break; api comes back while db is still down: api is never mentioned.
    board.broken("db", true);
    board.broken("api", true);
    reach("db", "unhealthy");
    reach("api", "unhealthy");
    board.broken("api", false);
    reach("api", "healthy");
    board.broken("db", false);
    reach("db", "healthy");
    board.wait("db recovered again", Duration::from_secs(5), |k| {
        k.len() >= 6
    });
    // Anything still owed would be delivered within a few checks: let both be checked three
    // more times, then nothing more may have come.
    board.wait_checks(&["db", "api"], 3, Duration::from_secs(10));
    assert_eq!(
        board.kinds(),
        pairs(&[
            ("db", "unhealthy"),
            ("db", "recovered"),
            ("api", "unhealthy"),
            ("api", "recovered"),
            ("db", "unhealthy"),
            ("db", "recovered"),
        ])
    );
    hmrt.terminate();
}

#[test]
fn notices_wait_out_a_receiver_outage_in_order() {
    let board = Switchboard::start();
    let ws = Workspace::new();
    let file = ws.config(&format!(
        "[runtime]\nlisten = \"127.0.0.1:0\"\n{}{}",
        task(&board, "web", "failure_threshold = 1"),
        route(&board, "")
    ));
    let mut hmrt = HmrtProcess::start(&file);
    let api = hmrt.api_addr();
    let reach = |state: &str| wait_state(api, "web", state);
    reach("healthy");
    board.receiver_down(true);
    let down = Instant::now();
    for _ in 0..2 {
        board.broken("web", true);
        reach("unhealthy");
        board.broken("web", false);
        reach("healthy");
    }
    // The receiver stays down for 30 s: the outage the scenario is about, not a wait for hmrt.
    while down.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        board.refused() >= 3,
        "hmrt kept trying: {}",
        board.refused()
    );
    // The delivery state shows, in the task and in the metrics.
    let web = api_task(api, "web");
    assert_eq!(web["notices_pending"], 4, "{web}");
    assert_eq!(web["last_notice"]["outcome"], "failed", "{web}");
    let metrics = http::get(api, "/metrics").unwrap().text();
    assert!(
        metrics.contains("hmrt_outbox_pending{route=\"oncall\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hmrt_notices_total{route=\"oncall\",outcome=\"failed\"}"),
        "{metrics}"
    );
    assert!(board.kinds().is_empty());
    board.receiver_down(false);
    board.wait("every notice", Duration::from_secs(40), |k| k.len() >= 4);
    // Nothing left in the outbox: every notice hmrt will send has been sent, so what the
    // receiver holds now is final.
    wait_task(
        api,
        "web",
        "an empty outbox",
        Duration::from_secs(10),
        |t| t["notices_pending"] == 0,
    );
    assert_eq!(
        board.kinds(),
        pairs(&[
            ("web", "unhealthy"),
            ("web", "recovered"),
            ("web", "unhealthy"),
            ("web", "recovered"),
        ]),
        "all of them, once each, in order"
    );
    wait_task(
        api,
        "web",
        "the outbox never emptied",
        Duration::from_secs(5),
        |t| t["notices_pending"] == 0,
    );
    let metrics = http::get(api, "/metrics").unwrap().text();
    assert!(
        metrics.contains("hmrt_outbox_pending{route=\"oncall\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hmrt_notices_total{route=\"oncall\",outcome=\"delivered\"} 4"),
        "{metrics}"
    );
    eprintln!(
        "measured: {} attempts refused while down; all delivered {:?} after it came back",
        board.refused(),
        board
            .notices()
            .last()
            .unwrap()
            .0
            .duration_since(down + Duration::from_secs(30))
    );
    hmrt.terminate();
}

#[test]
fn a_kill_between_unhealthy_and_recovered_loses_and_repeats_nothing() {
    let board = Switchboard::start();
    let ws = Workspace::new();
    let file = ws.config(&format!(
        "[runtime]\nlisten = \"127.0.0.1:0\"\n{}{}",
        task(&board, "web", "failure_threshold = 1"),
        route(&board, "")
    ));
    let mut hmrt = HmrtProcess::start(&file);
    let api = hmrt.api_addr();
    wait_state(api, "web", "healthy");
    board.broken("web", true);
    board.wait("unhealthy", Duration::from_secs(10), |k| !k.is_empty());
    // Killed once hmrt has recorded the delivery: a kill between the receiver's answer and
    // that record repeats the notice (at least once; its id is stable for a receiver to
    // drop the repeat).
    wait_task(
        api,
        "web",
        "the delivery recorded",
        Duration::from_secs(5),
        |t| t["notices_pending"] == 0 && t["last_notice"]["outcome"] == "delivered",
    );
    hmrt.kill9();
    board.broken("web", false);
    let mut again = HmrtProcess::start(&file);
    board.wait(
        "recovered after the restart",
        Duration::from_secs(20),
        |k| k.len() >= 2,
    );
    // Whatever the restart queued has been sent once its outbox is empty (sent in order): a
    // repeat would be on the board by then.
    let api = again.api_addr();
    wait_task(
        api,
        "web",
        "the outbox empty after the restart",
        Duration::from_secs(10),
        |t| t["notices_pending"] == 0,
    );
    assert_eq!(
        board.kinds(),
        pairs(&[("web", "unhealthy"), ("web", "recovered")])
    );
    again.terminate();
}

#[test]
fn a_real_alertmanager_receives_the_alert_and_sees_it_resolved() {
    use hmrt_test_support::alertmanager::Alertmanager;
    let am = Alertmanager::start();
    let board = Switchboard::start();
    let ws = Workspace::new();
    let file = ws.config(&format!(
        r#"[runtime]
listen = "127.0.0.1:0"
{}
[[alert]]
name = "am"
receiver = {{ action = "alertmanager", config = {{ url = "{am}" }}, grants = {{ http = ["{am}"] }} }}
"#,
        task(&board, "web", "failure_threshold = 1\nlabels = { team = \"shop\" }"),
        am = am.url()
    ));
    let mut hmrt = HmrtProcess::start(&file);
    let api = hmrt.api_addr();
    wait_state(api, "web", "healthy");
    let ours = |alerts: &serde_json::Value| -> Option<serde_json::Value> {
        alerts
            .as_array()?
            .iter()
            .find(|a| a["labels"]["task"] == "web")
            .cloned()
    };
    board.broken("web", true);
    let deadline = Instant::now() + Duration::from_secs(20);
    let firing = loop {
        if let Some(alert) = ours(&am.alerts()).filter(|a| a["status"]["state"] == "active") {
            break alert;
        }
        assert!(
            Instant::now() < deadline,
            "no active alert: {}",
            am.alerts()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        firing["labels"]["alertname"], "HmrtTaskUnhealthy",
        "{firing}"
    );
    assert_eq!(
        firing["labels"]["team"], "shop",
        "the task's labels: {firing}"
    );
    assert!(
        firing["annotations"]["description"]
            .as_str()
            .unwrap_or("")
            .contains("500"),
        "{firing}"
    );
    board.broken("web", false);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let alerts = am.alerts();
        // Resolved: gone from the active list, or listed with its end in the past.
        let resolved = match ours(&alerts) {
            None => true,
            Some(a) => {
                a["status"]["state"] != "active" || {
                    let ends = a["endsAt"].as_str().unwrap_or("");
                    humantime::parse_rfc3339_weak(&ends[..ends.len().min(23)])
                        .is_ok_and(|t| t <= std::time::SystemTime::now())
                }
            }
        };
        if resolved {
            break;
        }
        assert!(Instant::now() < deadline, "never resolved: {alerts}");
        std::thread::sleep(Duration::from_millis(100));
    }
    hmrt.terminate();
}

/// Polls `read` (every 50 ms, up to 20 s) until it yields at least `n` items.
fn wait_items<T: std::fmt::Debug>(what: &str, n: usize, read: impl Fn() -> Vec<T>) -> Vec<T> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let items = read();
        if items.len() >= n {
            return items;
        }
        assert!(Instant::now() < deadline, "{what}: {items:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `email` receiver through a real SMTP server (aiosmtpd), and the `exec` receiver handing
/// the notice to a real program (`tee`) on its standard input: one incident, one firing and one
/// resolved message each, with the task, its state and the check's reason in them.
#[test]
fn email_through_a_real_smtp_server_and_exec_through_a_program_tell_the_incident() {
    use hmrt_test_support::smtp::SmtpServer;
    let smtp = SmtpServer::start();
    let board = Switchboard::start();
    let ws = Workspace::new();
    let piped = ws.path().join("notices.jsonl");
    let file = ws.config(&format!(
        r#"[runtime]
listen = "127.0.0.1:0"
{}
[[alert]]
name = "mail"
receiver = {{ action = "email", config = {{ relay = "{relay}", from = "hmrt <hmrt@example.org>", to = ["ops@example.org"] }}, grants = {{ smtp = ["{relay}"] }} }}

[[alert]]
name = "script"
receiver = {{ action = "exec", config = {{ program = "tee", args = ["-a", "{piped}"] }}, grants = {{ exec = ["tee"] }} }}
"#,
        task(&board, "web", "failure_threshold = 2"),
        relay = smtp.addr(),
        piped = piped.display(),
    ));
    let mut hmrt = HmrtProcess::start(&file);
    let api = hmrt.api_addr();
    wait_state(api, "web", "healthy");
    board.broken("web", true);
    let mails = wait_items("no email arrived", 1, || smtp.messages());
    let firing = &mails[0];
    for part in [
        "Subject: [FIRING] web is unhealthy",
        "To: ops@example.org",
        "Task:    web",
        "State:   unhealthy",
        "returned 500",
    ] {
        assert!(firing.contains(part), "{part:?} missing from:\n{firing}");
    }
    let read_piped = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&piped)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON notice per line"))
            .collect()
    };
    let notices = wait_items("the program got nothing", 1, read_piped);
    assert_eq!(
        (
            &notices[0]["kind"],
            &notices[0]["task"],
            &notices[0]["route"]
        ),
        (&"unhealthy".into(), &"web".into(), &"script".into()),
        "{notices:?}"
    );
    // Many more failed checks: still one message each.
    wait_task(api, "web", "30 failures", Duration::from_secs(20), |t| {
        t["consecutive_failures"].as_u64().unwrap_or(0) >= 30
    });
    assert_eq!(smtp.messages().len(), 1, "{:?}", smtp.messages());
    assert_eq!(read_piped().len(), 1, "{:?}", read_piped());

    board.broken("web", false);
    let mails = wait_items("no resolved email", 2, || smtp.messages());
    assert!(mails[1].contains("Subject: [RESOLVED] web"), "{}", mails[1]);
    let notices = wait_items("the program got no recovery", 2, read_piped);
    assert_eq!(notices[1]["kind"], "recovered", "{notices:?}");
    hmrt.terminate();
    assert_eq!((smtp.messages().len(), read_piped().len()), (2, 2));
}

#[test]
fn an_email_receiver_without_an_smtp_grant_is_refused_at_the_line() {
    let board = Switchboard::start();
    let ws = Workspace::new();
    let file = ws.config(&format!(
        r#"{}
[[alert]]
name = "mail"
receiver = {{ action = "email", config = {{ relay = "127.0.0.1:2525", from = "a@example.org", to = ["b@example.org"] }}, grants = {{ smtp = ["127.0.0.1:25"] }} }}
"#,
        task(&board, "web", ""),
    ));
    let (code, _, err) = crate::support::hmrt(&["validate", file.to_str().unwrap()]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("tasks.toml:13:")
            && err.contains("127.0.0.1:2525 is not in the smtp grants")
            && err.contains("receiver.grants"),
        "{err}"
    );
}

const TOKEN: &str = "api-token-0123456789abcdef";

#[test]
fn a_silence_holds_notices_not_checks_and_what_is_still_broken_is_told_at_its_end() {
    let board = Switchboard::start();
    let ws = Workspace::new();
    let file = ws.config(&format!(
        "[runtime]\nlisten = \"127.0.0.1:0\"\n[api]\ntoken_env = \"TEST_HMRT_TOKEN\"\n{}{}",
        task(&board, "web", "failure_threshold = 1"),
        route(&board, "")
    ));
    let mut hmrt = HmrtProcess::start_with(&file, "info", &[("TEST_HMRT_TOKEN", TOKEN)]);
    let api = hmrt.api_addr();
    let auth = format!("Bearer {TOKEN}");
    let post = |path: &str, body: &str| {
        http::request(
            api,
            "POST",
            path,
            &[("Authorization", &auth)],
            body.as_bytes(),
        )
        .unwrap()
    };
    let r = post(
        "/silences",
        r#"{"tasks": ["web"], "duration": "1h", "comment": "deploy"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json().unwrap()["id"].as_str().unwrap().to_string();
    // A silence outlives a restart of hmrt.
    hmrt.terminate();
    let mut hmrt = HmrtProcess::start_with(&file, "info", &[("TEST_HMRT_TOKEN", TOKEN)]);
    let api = hmrt.api_addr();
    let post = |path: &str, body: &str| {
        http::request(
            api,
            "POST",
            path,
            &[("Authorization", &auth)],
            body.as_bytes(),
        )
        .unwrap()
    };
    let r = post("/silences", r#"{"tasks": ["web"], "duration": "soon"}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    let r = http::request(api, "POST", "/silences", &[], b"{}").unwrap();
    assert_eq!(r.status, 401);
    let listed = http::get(api, "/silences").unwrap().json().unwrap();
    assert_eq!(listed["silences"][0]["id"], id.as_str(), "{listed}");
    assert_eq!(
        listed["silences"][0]["author"], "TEST_HMRT_TOKEN",
        "{listed}"
    );

    board.broken("web", true);
    wait_task(
        api,
        "web",
        "checks stopped under the silence",
        Duration::from_secs(10),
        |t| t["consecutive_failures"].as_u64().unwrap_or(0) >= 10,
    );
    assert!(board.kinds().is_empty(), "silenced: {:?}", board.kinds());
    let r = http::request(
        api,
        "DELETE",
        &format!("/silences/{id}"),
        &[("Authorization", &auth)],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    board.wait(
        "unhealthy once the silence ended",
        Duration::from_secs(5),
        |k| !k.is_empty(),
    );
    board.broken("web", false);
    board.wait("recovered", Duration::from_secs(5), |k| k.len() >= 2);
    assert_eq!(
        board.kinds(),
        pairs(&[("web", "unhealthy"), ("web", "recovered")])
    );
    // The same through the CLI.
    let ctl = |args: &[&str]| {
        let url = format!("http://{api}");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hmrt"))
            .arg("ctl")
            .args(args)
            .args(["--url", &url])
            .env("HMRT_API_TOKEN", TOKEN)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = ctl(&["silence", "web", "--for", "10m", "--reason", "cli"]);
    let id = said.split_whitespace().nth(1).unwrap().to_string();
    let listed = http::get(api, "/silences").unwrap().json().unwrap();
    assert_eq!(listed["silences"][0]["id"], id.as_str(), "{said} {listed}");
    assert!(ctl(&["unsilence", &id]).contains("ended"));
    let audit = std::fs::read_to_string(ws.path().join("state/audit.log")).unwrap();
    assert!(
        audit.contains("\"command\":\"silence\"") && audit.contains("\"command\":\"unsilence\""),
        "{audit}"
    );
    hmrt.terminate();
}

#[test]
fn a_maintenance_window_holds_notices_and_tells_what_is_still_broken_when_it_ends() {
    let board = Switchboard::start();
    let ws = Workspace::new();
    let now = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::UTC);
    let hms = |z: &jiff::Zoned| format!("{:02}:{:02}:{:02}", z.hour(), z.minute(), z.second());
    let from = now.checked_sub(jiff::Span::new().seconds(2)).unwrap();
    let to = now.checked_add(jiff::Span::new().seconds(5)).unwrap();
    let ends = std::time::SystemTime::now() + Duration::from_secs(5);
    let file = ws.config(&format!(
        "[runtime]\nlisten = \"127.0.0.1:0\"\n{}{}\n[[maintenance]]\nname = \"now\"\ntasks = [\"web\"]\nfrom = \"{}\"\nto = \"{}\"\ntimezone = \"UTC\"\n",
        task(&board, "web", "failure_threshold = 1"),
        route(&board, ""),
        hms(&from),
        hms(&to),
    ));
    let mut hmrt = HmrtProcess::start(&file);
    let api = hmrt.api_addr();
    board.broken("web", true);
    let deadline = Instant::now() + Duration::from_secs(4);
    while api_task(api, "web")["state"] != "unhealthy" {
        assert!(Instant::now() < deadline, "web never unhealthy");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        board.kinds().is_empty(),
        "inside the window: {:?}",
        board.kinds()
    );
    board.wait(
        "unhealthy at the window's end",
        Duration::from_secs(10),
        |k| !k.is_empty(),
    );
    let told = std::time::SystemTime::now();
    // The window's end is a whole second; allow the second it rounds down to.
    assert!(
        told + Duration::from_secs(1) >= ends,
        "told before the window ended ({:?} early)",
        ends.duration_since(told).unwrap_or_default()
    );
    assert_eq!(board.kinds(), pairs(&[("web", "unhealthy")]));
    hmrt.terminate();
}

#[test]
fn a_receiver_without_a_grant_for_its_url_is_refused_at_the_line() {
    let board = Switchboard::start();
    let ws = Workspace::new();
    let file = ws.config(&format!(
        r#"{}
[[alert]]
name = "oncall"
receiver = {{ action = "webhook", config = {{ url = "http://127.0.0.1:1/hook" }}, grants = {{ http = ["{origin}"] }} }}
"#,
        task(&board, "web", ""),
        origin = board.origin()
    ));
    let (code, _, err) = crate::support::hmrt(&["validate", file.to_str().unwrap()]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("tasks.toml:13:")
            && err.contains("http://127.0.0.1:1/hook")
            && err.contains("not covered")
            && err.contains("receiver.grants"),
        "{err}"
    );
}

#[test]
fn a_third_party_receiver_from_plugins_delivers_like_a_built_in() {
    let board = Switchboard::start();
    let ws = Workspace::new();
    ws.plugin("ntfy-notify", hmrt_test_artifacts::NTFY_NOTIFY);
    let file = ws.config(&format!(
        r#"[runtime]
listen = "127.0.0.1:0"
{}
[[alert]]
name = "phone"
receiver = {{ action = "ntfy-notify", config = {{ url = "{origin}", topic = "hook" }}, grants = {{ http = ["{origin}"] }} }}
"#,
        task(&board, "web", "failure_threshold = 1"),
        origin = board.origin()
    ));
    let mut hmrt = HmrtProcess::start(&file);
    let _ = hmrt.api_addr();
    board.broken("web", true);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let bodies = board.bodies();
        if bodies
            .iter()
            .any(|b| b.as_str().is_some_and(|t| t.contains("web is unhealthy")))
        {
            break;
        }
        assert!(Instant::now() < deadline, "nothing arrived: {bodies:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    hmrt.terminate();
}
