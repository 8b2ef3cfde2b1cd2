//! Issue 3's recovery policy end to end, against a real supervisord: re-arming a failed task
//! (by `rearm_after` and by `hmrt rearm`), health-gated restarts with a start period, a
//! dependent held while its dependency is down, and durable state across `kill -9` of the real
//! `hmrt run` process. e2e.rs covers the doubling gaps up to `failed`; this does not repeat it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use hmrt::events::Event;
use hmrt::state::{StateFile, read_state_file};
use hmrt_policy::{ActionResult, State, Timestamp};
use rand::{Rng, SeedableRng};

use crate::support::supervisord::{Program, Supervisord, free_port};
use crate::support::{
    HmrtProcess, RunningDaemon, Workspace, hmrt, never_healthy, of_task, transition,
};

/// The supervisord harness and the CLI block: keep them off the executor the daemon runs on.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn since(later: SystemTime, earlier: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

/// (time, attempt) of each action `task` started.
fn starts(events: &[(SystemTime, Event)], task: &str) -> Vec<(SystemTime, u32)> {
    of_task(events, task)
        .filter_map(|(at, e)| match e {
            Event::ActionStarted { attempt, .. } => Some((*at, *attempt)),
            _ => None,
        })
        .collect()
}

/// (time, ok) of each action of `task` that finished.
fn ends(events: &[(SystemTime, Event)], task: &str) -> Vec<(SystemTime, bool)> {
    of_task(events, task)
        .filter_map(|(at, e)| match e {
            Event::ActionFinished { ok, .. } => Some((*at, *ok)),
            _ => None,
        })
        .collect()
}

/// What the policy reported about `task` (recovered, attempt failed, re-armed, ...), in words.
fn policy(events: &[(SystemTime, Event)], task: &str) -> Vec<(SystemTime, String)> {
    of_task(events, task)
        .filter_map(|(at, e)| match e {
            Event::Policy { decision, .. } => Some((*at, decision.to_string())),
            _ => None,
        })
        .collect()
}

/// A task whose http check watches `program` on `port` and restarts it when it fails.
fn restarted_task(name: &str, port: u16, extra: &str, restart: &str) -> String {
    format!(
        r#"
[[task]]
name = "{name}"
program = "{name}"
check = "http"
timeout = "1s"
config = {{ url = "http://127.0.0.1:{port}/health" }}
grants = {{ http = ["http://127.0.0.1:{port}"] }}
on_failure = "supervisor-restart"
restart = {{ {restart} }}
{extra}
"#
    )
}

fn state_of(dir: &Path, task: &str) -> Option<StateFile> {
    read_state_file(&dir.join(format!("{task}.state.json")), Some(task)).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_is_rearmed_after_rearm_after_and_by_a_person() {
    let (p_broken, p_stuck) = (free_port(), free_port());
    let supervisord = Supervisord::start(&[
        never_healthy("broken", p_broken),
        never_healthy("stuck", p_stuck),
    ]);
    supervisord.wait_running("broken");
    supervisord.wait_running("stuck");
    let ws = Workspace::new();
    let budget =
        r#"backoff = "500ms", factor = 2.0, jitter = 0.0, max_backoff = "10s", window = "10m""#;
    let text = format!(
        "[supervisor]\nserverurl = \"{}\"\n{}{}",
        supervisord.serverurl(),
        restarted_task(
            "broken",
            p_broken,
            "interval = \"250ms\"\nfailure_threshold = 1",
            &format!("{budget}, max_restarts = 2, rearm_after = \"2s\""),
        ),
        restarted_task(
            "stuck",
            p_stuck,
            "interval = \"250ms\"\nfailure_threshold = 1",
            &format!("{budget}, max_restarts = 1"),
        ),
    );
    let config = ws.load(&text);
    let file = ws.path().join("tasks.toml");
    let file = file.to_str().expect("utf-8").to_string();
    let state_dir = config.runtime.state_dir.clone();
    // On the manual clock: rearm_after and the quiet window run out exactly, in no real time.
    let daemon = RunningDaemon::start_manual(config).await;
    let clock = daemon.manual.clone().expect("a manual clock");

    // broken: two restarts, failed, re-armed by rearm_after, and the restarts resume.
    let (failed_at, _) = daemon
        .advance_until(Duration::from_secs(60), "broken failed", |e| {
            transition(e, "broken", "failed", daemon.started)
        })
        .await;
    let (rearmed_at, _) = daemon
        .advance_until(
            Duration::from_secs(10),
            "broken re-armed by rearm_after",
            |e| {
                policy(e, "broken")
                    .into_iter()
                    .find(|(_, what)| what == "re-armed: rearm_after elapsed")
            },
        )
        .await;
    let waited = since(rearmed_at, failed_at);
    assert_eq!(
        waited,
        Duration::from_secs(2),
        "re-armed when rearm_after ran out"
    );
    let (resumed_at, attempt) = daemon
        .advance_until(Duration::from_secs(10), "a restart after the re-arm", |e| {
            starts(e, "broken").get(2).copied()
        })
        .await;
    let events = daemon.events();
    let before: Vec<_> = starts(&events, "broken")
        .into_iter()
        .filter(|(at, _)| *at < failed_at)
        .collect();
    assert_eq!(before.len(), 2, "max_restarts restarts before failed");
    assert!(resumed_at >= rearmed_at, "no restart while failed");
    // rearm_after clears the budget but the backoff goes on; a person's re-arm restarts it.
    assert_eq!(
        attempt, 3,
        "the backoff position continues after rearm_after"
    );

    // stuck: one restart, failed, and without rearm_after it stays failed...
    daemon
        .advance_until(Duration::from_secs(20), "stuck failed", |e| {
            transition(e, "stuck", "failed", daemon.started)
        })
        .await;
    // A quiet window of 2.5 s on the clock, longer than broken's rearm_after.
    daemon.advance(Duration::from_millis(2500)).await;
    let events = daemon.events();
    assert_eq!(starts(&events, "stuck").len(), 1, "no restart while failed");
    assert!(
        !policy(&events, "stuck")
            .iter()
            .any(|(_, w)| w.starts_with("re-armed")),
        "no re-arm without rearm_after or a person"
    );
    let on_disk = state_of(&state_dir, "stuck").expect("stuck's state file");
    assert_eq!(on_disk.state.state(), State::Failed);

    // ...until a person re-arms it; the running daemon takes the request at the next check
    // (the clock moves on while `hmrt rearm` waits for that).
    let asked = crate::support::system_time(hmrt::clock::Clock::now(&*clock));
    let cli = {
        let file = file.clone();
        tokio::task::spawn_blocking(move || hmrt(&["rearm", &file, "--task", "stuck"]))
    };
    daemon
        .advance_until(Duration::from_secs(60), "the re-arm request taken", |_| {
            cli.is_finished().then_some(())
        })
        .await;
    let (code, stdout, stderr) = cli.await.expect("hmrt rearm");
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("re-armed stuck") && stdout.contains("took the request"),
        "{stdout}"
    );
    assert!(
        !state_dir.join("stuck.rearm").exists(),
        "the daemon consumed the request"
    );
    let (_, by_person) = daemon
        .advance_until(Duration::from_secs(5), "stuck re-armed by a person", |e| {
            policy(e, "stuck")
                .into_iter()
                .find(|(at, what)| *at >= asked && what == "re-armed by a person")
        })
        .await;
    assert_eq!(by_person, "re-armed by a person");
    let (_, attempt) = daemon
        .advance_until(
            Duration::from_secs(10),
            "a restart after the person's re-arm",
            |e| starts(e, "stuck").get(1).copied(),
        )
        .await;
    assert_eq!(attempt, 1, "a person's re-arm starts the backoff over");

    // hmrt history reads both restarts back from the state file, in simulate's format.
    let deadline = Instant::now() + Duration::from_secs(10);
    while state_of(&state_dir, "stuck")
        .is_none_or(|f| f.state.actions().filter(|a| a.finished.is_some()).count() < 2)
    {
        assert!(
            Instant::now() < deadline,
            "the second restart never finished"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, stdout, stderr) =
        blocking(|| hmrt(&["history", &file, "--task", "stuck", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let mut last = 0;
    let mut actions = 0;
    for line in &lines {
        let at = line["at"].as_u64().expect("at in ms");
        assert!(at >= last, "time order: {stdout}");
        last = at;
        match (line.get("status"), line.get("action")) {
            (Some(status), None) => assert_eq!(status, "unhealthy", "{line}"),
            (None, Some(action)) => {
                assert_eq!(action, "ok", "{line}");
                actions += 1;
            }
            _ => panic!("neither a result nor an action: {line}"),
        }
        assert!(line["message"].is_string(), "{line}");
    }
    assert_eq!(actions, 2, "{stdout}");
    assert!(lines.len() > 4, "the check results too: {stdout}");
    let (code, text, stderr) = blocking(|| hmrt(&["history", &file, "--task", "stuck"]));
    assert_eq!(code, 0, "{stderr}");
    for expected in [
        "task:       stuck",
        "restarts:   1 of 1 within 10m",
        "backoff:    position 1",
        "action ok",
        "unhealthy",
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_whose_start_period_ends_without_a_pass_is_a_failed_attempt() {
    let port = free_port();
    let supervisord = Supervisord::start(&[never_healthy("slow", port)]);
    supervisord.wait_running("slow");
    let ws = Workspace::new();
    let start_period = Duration::from_secs(1);
    let config = ws.load(&format!(
        "[supervisor]\nserverurl = \"{}\"\n{}",
        supervisord.serverurl(),
        restarted_task(
            "slow",
            port,
            "interval = \"250ms\"\nfailure_threshold = 1\nstart_period = \"1s\"",
            r#"backoff = "200ms", factor = 1.0, jitter = 0.0, max_restarts = 3, window = "10m""#,
        ),
    ));
    let state_dir = config.runtime.state_dir.clone();
    let file = ws.path().join("tasks.toml");
    let file = file.to_str().expect("utf-8").to_string();
    // On the manual clock: each start period runs out at its exact instant, in no real time.
    let daemon = RunningDaemon::start_manual(config).await;
    daemon
        .advance_until(Duration::from_secs(60), "slow failed", |e| {
            transition(e, "slow", "failed", daemon.started)
        })
        .await;
    let events = daemon.events();
    let ends = ends(&events, "slow");
    assert_eq!(ends.len(), 3, "max_restarts restarts");
    assert!(ends.iter().all(|(_, ok)| *ok), "each restart itself ran");
    let reports = policy(&events, "slow");
    assert!(
        !reports.iter().any(|(_, w)| w.starts_with("recovered")),
        "never counted as recovered: {reports:?}"
    );
    assert!(
        transition(&events, "slow", "healthy", daemon.started).is_none(),
        "never healthy"
    );
    for (k, (ended, _)) in ends.iter().enumerate() {
        let attempt = k + 1;
        let prefix = format!("attempt {attempt} failed: ");
        let (failed, why) = reports
            .iter()
            .find(|(_, w)| w.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {reports:?}"));
        assert!(
            why.contains("start period of 1s ended"),
            "failed because the start period ran out: {why}"
        );
        // The failures inside the start period did not count: the attempt is decided when
        // the period is over, at that instant (not at the next check after it).
        let after = since(*failed, *ended);
        assert_eq!(
            after, start_period,
            "attempt {attempt} was judged {after:?} after it ended"
        );
    }

    // `hmrt simulate` on what `hmrt history --json` exported decides exactly what the daemon
    // did, to the millisecond: the same engine, fed the same results and outcomes.
    let stored = state_of(&state_dir, "slow").expect("slow's state");
    let (code, history, stderr) =
        blocking(|| hmrt(&["history", &file, "--task", "slow", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    let results = ws.path().join("slow.jsonl");
    std::fs::write(&results, &history).expect("write results");
    let results = results.to_str().expect("utf-8");
    let (code, simulated, stderr) = blocking(|| {
        hmrt(&[
            "simulate",
            &file,
            "--task",
            "slow",
            "--results",
            results,
            "--json",
        ])
    });
    assert_eq!(code, 0, "{stderr}\nresults:\n{history}");
    let decisions: Vec<hmrt_policy::Decision> = simulated
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let acts: Vec<(Timestamp, u32)> = decisions
        .iter()
        .filter_map(|d| match d.kind {
            hmrt_policy::DecisionKind::Act { attempt } => Some((d.at, attempt)),
            _ => None,
        })
        .collect();
    let ran: Vec<(Timestamp, u32)> = stored
        .state
        .actions()
        .map(|a| (a.started, a.attempt))
        .collect();
    assert_eq!(acts, ran, "simulated:\n{simulated}");
    let failed: Vec<Timestamp> = decisions
        .iter()
        .filter(|d| matches!(d.kind, hmrt_policy::DecisionKind::Failed { .. }))
        .map(|d| d.at)
        .collect();
    assert_eq!(
        failed,
        stored.state.failed_at().into_iter().collect::<Vec<_>>()
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_is_held_while_its_dependency_is_down_and_only_the_dependency_restarts() {
    let (p_db, p_api) = (free_port(), free_port());
    let supervisord = Supervisord::start(&[
        // A slow start keeps db's port closed for a while after each restart.
        Program::flaky_service("db", p_db)
            .arg("--start-delay")
            .arg("1")
            .autorestart(false)
            .startsecs(1),
        // api answers 500 while nothing listens on db's port.
        Program::flaky_service("api", p_api)
            .arg("--requires-port")
            .arg(p_db.to_string())
            .autorestart(false)
            .startsecs(1),
    ]);
    supervisord.wait_running("db");
    let api_pid = supervisord.wait_running("api");
    // db's first check must pass, or hmrt would (rightly) restart it at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", p_db)).is_err() {
        assert!(Instant::now() < deadline, "db never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ws = Workspace::new();
    let restart = r#"backoff = "500ms", jitter = 0.0, max_restarts = 5, window = "10m""#;
    let text = format!(
        "[supervisor]\nserverurl = \"{}\"\n{}{}",
        supervisord.serverurl(),
        restarted_task(
            "db",
            p_db,
            // Its slow start is inside the start period: one restart brings it back.
            "interval = \"200ms\"\nfailure_threshold = 1\nstart_period = \"5s\"",
            restart
        ),
        // A higher threshold than db's: db is unhealthy (and api held) before api would act.
        restarted_task(
            "api",
            p_api,
            "interval = \"200ms\"\nfailure_threshold = 3\ndepends_on = [\"db\"]",
            restart
        ),
    );
    let config = ws.load(&text);
    let file = ws.path().join("tasks.toml");
    let file = file.to_str().expect("utf-8").to_string();
    let daemon = RunningDaemon::start(config).await;
    for task in ["db", "api"] {
        daemon
            .wait_for(Duration::from_secs(15), "db and api healthy", |e| {
                transition(e, task, "healthy", daemon.started)
            })
            .await;
    }

    let killed = SystemTime::now();
    blocking(|| supervisord.kill_program("db"));
    daemon
        .wait_for(Duration::from_secs(10), "api held by db", |e| {
            of_task(e, "api").find_map(|(at, e)| match e {
                Event::ActionHeld { reason, .. } if *at >= killed => {
                    assert!(reason.to_string().contains("db"), "{reason}");
                    Some(())
                }
                _ => None,
            })
        })
        .await;
    let (api_down, _) = daemon
        .wait_for(Duration::from_secs(10), "api unhealthy", |e| {
            transition(e, "api", "unhealthy", killed)
        })
        .await;
    let (db_restarted, _) = daemon
        .wait_for(Duration::from_secs(10), "db restarted", |e| {
            starts(e, "db").first().copied()
        })
        .await;
    daemon
        .wait_for(
            Duration::from_secs(20),
            "db healthy after its restart",
            |e| transition(e, "db", "healthy", db_restarted),
        )
        .await;
    let (api_back, _) = daemon
        .wait_for(Duration::from_secs(10), "api healthy again", |e| {
            transition(e, "api", "healthy", api_down)
        })
        .await;
    // api's own check decides when it is healthy: as soon as db's new process listens, which
    // may be a check before db's task sees it.
    assert!(api_back >= db_restarted, "api recovered once db was back");
    let events = daemon.events();
    assert_eq!(starts(&events, "db").len(), 1, "db restarted once");
    assert!(
        starts(&events, "api").is_empty(),
        "api is never restarted: {:?}",
        starts(&events, "api")
    );
    assert!(
        of_task(&events, "api").any(|(at, e)| *at >= killed
            && matches!(e, Event::CheckFinished { status, message, .. }
                if status.as_str() == "unhealthy" && message.contains("500"))),
        "api's own check really failed while db was down"
    );
    assert_eq!(
        blocking(|| supervisord.pid_of("api")),
        Some(api_pid),
        "supervisord still runs the first api process"
    );

    // A task that is not failed cannot be re-armed.
    let (code, stdout, stderr) = blocking(|| hmrt(&["rearm", &file, "--task", "db"]));
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("is not failed"), "{stderr}");
    daemon.stop().await;
}

/// Polls `task`'s state file until `cond` holds; panics with hmrt's log after `timeout`.
fn wait_state(
    dir: &Path,
    task: &str,
    hmrt: &mut HmrtProcess,
    timeout: Duration,
    what: &str,
    mut cond: impl FnMut(&StateFile) -> bool,
) -> StateFile {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(file) = state_of(dir, task)
            && cond(&file)
        {
            return file;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out waiting for {what}; state: {:?}\nhmrt's log:\n{}",
                state_of(dir, task).map(|f| f.state.view(task, &Default::default(), Timestamp(0))),
                hmrt.drain()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wall_now() -> Timestamp {
    hmrt::clock::Clock::now(&hmrt::clock::SystemClock)
}

#[test]
fn a_killed_hmrt_keeps_the_budget_and_the_backoff_position() {
    let port = free_port();
    // startsecs = 1: each restart takes a second, a window wide enough to kill hmrt inside.
    let supervisord = Supervisord::start(&[never_healthy("broken", port).startsecs(1)]);
    supervisord.wait_running("broken");
    let ws = Workspace::new();
    let file = ws.config(&format!(
        "[supervisor]\nserverurl = \"{}\"\n{}",
        supervisord.serverurl(),
        restarted_task(
            "broken",
            port,
            "interval = \"200ms\"\nfailure_threshold = 1",
            r#"backoff = "1s", factor = 2.0, jitter = 0.0, max_backoff = "1m", max_restarts = 3, window = "10m""#,
        ),
    ));
    let dir: PathBuf = ws.path().join("state");

    // 1. Killed while the first restart runs: it was saved before it ran, so it counts.
    let mut first = HmrtProcess::start(&file);
    wait_state(
        &dir,
        "broken",
        &mut first,
        Duration::from_secs(30),
        "the first restart running",
        |f| f.state.running_attempt() == Some(1),
    );
    first.kill9();
    let cut = state_of(&dir, "broken").expect("the state survives kill -9");
    assert_eq!(cut.state.state(), State::Restarting);
    assert_eq!(cut.state.restarts().count(), 1);

    // 2. Killed in the backoff after the second restart (2 s).
    let mut second = HmrtProcess::start(&file);
    let before = wait_state(
        &dir,
        "broken",
        &mut second,
        Duration::from_secs(30),
        "the end of the second restart",
        |f| {
            f.state.backoff_position() == 2
                && f.state.state() != State::Restarting
                && f.state.next_action_not_before().is_some()
        },
    );
    let not_before = before
        .state
        .next_action_not_before()
        .expect("a backoff deadline");
    second.kill9();
    let killed = wall_now();
    assert!(
        killed < not_before,
        "killed {} ms after the backoff ended: not mid-backoff",
        killed.0 - not_before.0
    );
    let after_kill = state_of(&dir, "broken").expect("the state survives kill -9");
    let first_attempt = after_kill
        .state
        .actions()
        .find(|a| a.attempt == 1)
        .expect("attempt 1 on record");
    assert!(
        matches!(&first_attempt.result, Some(ActionResult::Error { error }) if error.contains("interrupted")),
        "the restart cut short by the kill is a failed attempt: {first_attempt:?}"
    );
    assert_eq!(after_kill.state.backoff_position(), 2);
    assert_eq!(after_kill.state.restarts().count(), 2);
    assert_eq!(after_kill.state.next_action_not_before(), Some(not_before));

    // 3. Started again: the backoff and the budget go on where they were.
    let mut third_run = HmrtProcess::start(&file);
    let third = wait_state(
        &dir,
        "broken",
        &mut third_run,
        Duration::from_secs(20),
        "the third restart",
        |f| f.state.actions().any(|a| a.attempt == 3),
    );
    let started = third
        .state
        .actions()
        .find(|a| a.attempt == 3)
        .expect("attempt 3")
        .started;
    assert!(
        started >= not_before,
        "attempt 3 started {} ms before the backoff (kept across the kill) allowed",
        not_before.0 - started.0
    );
    assert!(
        third.state.actions().filter(|a| a.attempt < 3).count() == 2,
        "the first two attempts are still on record"
    );
    // The budget was kept: 2 before the kill + 1 after = max_restarts, so failed, not a fresh
    // run of three more restarts.
    let failed = wait_state(
        &dir,
        "broken",
        &mut third_run,
        Duration::from_secs(20),
        "failed",
        |f| f.state.state() == State::Failed,
    );
    assert_eq!(failed.state.restarts().count(), 3);
    assert_eq!(failed.state.actions().count(), 3);
    assert_eq!(
        third_run.terminate().code(),
        Some(0),
        "{}",
        third_run.drain()
    );

    // Re-armed by a person while no hmrt runs: the next one takes the request when it starts.
    let file_arg = file.to_str().expect("utf-8");
    let (code, stdout, stderr) = hmrt(&["rearm", file_arg, "--task", "broken"]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("hmrt is not running"), "{stdout}");
    assert!(dir.join("broken.rearm").exists());
    let asked = wall_now();
    let mut fourth = HmrtProcess::start(&file);
    let rearmed = wait_state(
        &dir,
        "broken",
        &mut fourth,
        Duration::from_secs(20),
        "a restart after the re-arm",
        |f| {
            f.state
                .actions()
                .any(|a| a.started >= asked && a.attempt == 1)
        },
    );
    assert!(
        rearmed.state.restarts().count() <= 1,
        "the budget starts over: {:?}",
        rearmed.state.restarts().collect::<Vec<_>>()
    );
    assert!(!dir.join("broken.rearm").exists(), "the request was taken");
    fourth.wait_log("re-armed by a person", Duration::from_secs(5));
    assert_eq!(fourth.terminate().code(), Some(0));
}

#[test]
fn dozens_of_kill_9_never_leave_a_state_file_that_does_not_load() {
    let port = free_port();
    let supervisord = Supervisord::start(&[never_healthy("svc", port)]);
    supervisord.wait_running("svc");
    let ws = Workspace::new();
    // svc restarts all the time (its state often `restarting` when the kill comes); fast is
    // checked and written every 50 ms.
    let file = ws.config(&format!(
        "[supervisor]\nserverurl = \"{}\"\n{}\n{}",
        supervisord.serverurl(),
        restarted_task(
            "svc",
            port,
            "interval = \"100ms\"\nfailure_threshold = 1",
            r#"backoff = "100ms", factor = 1.0, jitter = 0.0, max_restarts = 100000, window = "1h""#,
        ),
        "[[task]]\nname = \"fast\"\ncheck = \"command\"\ninterval = \"50ms\"\n\
         config = { program = \"true\" }\ngrants = { exec = [\"true\"] }\n",
    ));
    let dir = ws.path().join("state");
    let seed: u64 = rand::rng().random();
    eprintln!("kill -9 delays from seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let check_dir = |when: &str| -> (StateFile, StateFile) {
        let names: Vec<String> = std::fs::read_dir(&dir)
            .expect("state dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names.iter().any(|n| n.contains(".corrupt-")),
            "{when}: a state file was moved aside: {names:?}"
        );
        let load = |task: &str| {
            read_state_file(&dir.join(format!("{task}.state.json")), Some(task))
                .unwrap_or_else(|e| panic!("{when}: {e}"))
        };
        (load("svc"), load("fast"))
    };

    let kills = 30;
    let mut newest_result = Timestamp(0);
    let mut interrupted_expected: Option<Timestamp> = None;
    let mut interrupted_seen = 0;
    for i in 0..kills {
        let mut run = HmrtProcess::start(&file);
        // Most kills come while it runs; every fifth one at any moment of its start (while it
        // loads, moves, and writes back the state).
        if i % 5 == 4 {
            std::thread::sleep(Duration::from_millis(rng.random_range(0..1500)));
        } else {
            run.wait_log("hmrt running", Duration::from_secs(30));
            if let Some(started) = interrupted_expected.take() {
                // The restart the last kill cut short is a failed attempt now.
                let (svc, _) = check_dir("after a restart");
                let action = svc
                    .state
                    .actions()
                    .find(|a| a.started == started)
                    .expect("the cut-short action is on record");
                assert!(
                    matches!(&action.result, Some(ActionResult::Error { error }) if error.contains("interrupted")),
                    "{action:?}"
                );
                interrupted_seen += 1;
            }
            std::thread::sleep(Duration::from_millis(rng.random_range(0..400)));
        }
        run.kill9();
        let (svc, fast) = check_dir(&format!("after kill {}", i + 1));
        let newest = fast
            .state
            .results()
            .last()
            .map(|r| r.at)
            .unwrap_or(Timestamp(0));
        assert!(
            newest >= newest_result,
            "kill {}: the state went back in time",
            i + 1
        );
        newest_result = newest;
        if svc.state.state() == State::Restarting {
            interrupted_expected = svc.state.actions().last().map(|a| a.started);
        }
    }
    eprintln!("{kills} kills; {interrupted_seen} cut a restart short");

    // A last start loads everything as it is, and a clean stop writes every result it kept in
    // memory (results that decided nothing are written lazily: a kill -9 may lose those, never
    // a decision) and leaves no temp file behind.
    let mut last = HmrtProcess::start(&file);
    last.wait_log("hmrt running", Duration::from_secs(30));
    let running_since = wall_now();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(last.terminate().code(), Some(0));
    let log = last.drain();
    assert!(!log.contains("moved it aside"), "{log}");
    let (_, fast) = check_dir("after a clean stop");
    let kept_from_the_last_run = fast
        .state
        .results()
        .filter(|r| r.at >= running_since)
        .count();
    assert!(
        kept_from_the_last_run > 20,
        "a clean stop writes the results it kept: {kept_from_the_last_run} of ~30"
    );
    assert!(
        fast.state.results().last().map(|r| r.at) >= Some(newest_result),
        "the state never goes back in time"
    );
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .expect("state dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
