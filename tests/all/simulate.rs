//! `hmrt simulate`: the results file (both forms, every error at its line), the replay through
//! the policy engine, and the printed story, pinned by a snapshot of the sample outage.

use std::path::{Path, PathBuf};

use hmrt::simulate::{self, Results, Step};
use hmrt_policy::{Decision, DecisionKind, HoldReason, Timestamp};

use crate::support::{Workspace, hmrt};

/// The task examples/results/web-outage.txt is written for (its header quotes it).
const WEB: &str = r#"[[task]]
name = "web"
program = "web"
check = "http"
interval = "5s"
failure_threshold = 2
success_threshold = 2
start_period = "12s"
config = { url = "http://127.0.0.1:18080/health" }
grants = { http = ["http://127.0.0.1:18080"] }
on_failure = "supervisor-restart"
restart = { backoff = "20s", max_backoff = "5m", max_restarts = 3, window = "1h", reset_after = "1m" }
"#;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn sample() -> PathBuf {
    repo("examples/results/web-outage.txt")
}

fn parse(text: &str) -> Results {
    simulate::parse_results(text, Path::new("results.txt"))
        .unwrap_or_else(|e| panic!("results do not parse: {e}"))
}

fn parse_error(text: &str) -> String {
    match simulate::parse_results(text, Path::new("results.txt")) {
        Ok(results) => panic!("{text:?} parsed: {results:?}"),
        Err(e) => e.to_string(),
    }
}

fn acts(decisions: &[Decision], task: &str) -> Vec<(u64, u32)> {
    decisions
        .iter()
        .filter(|d| d.task == task)
        .filter_map(|d| match d.kind {
            DecisionKind::Act { attempt } => Some((d.at.0, attempt)),
            _ => None,
        })
        .collect()
}

/// The printed story of the sample outage is exactly the snapshot. `HMRT_UPDATE_SNAPSHOTS=1`
/// rewrites the snapshot instead (then review the diff).
#[test]
fn the_sample_outage_prints_its_snapshot() {
    let ws = Workspace::new();
    let config = ws.config(WEB);
    let (code, stdout, stderr) = hmrt(&[
        "simulate",
        config.to_str().expect("utf-8 path"),
        "--task",
        "web",
        "--results",
        sample().to_str().expect("utf-8 path"),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let snapshot = repo("tests/all/snapshots/simulate_web_outage.txt");
    if std::env::var_os("HMRT_UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(snapshot.parent().expect("a parent")).expect("snapshot dir");
        std::fs::write(&snapshot, &stdout).expect("write the snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&snapshot).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with HMRT_UPDATE_SNAPSHOTS=1 to write it",
            snapshot.display()
        )
    });
    assert!(
        stdout == expected,
        "hmrt simulate's output differs from {} (HMRT_UPDATE_SNAPSHOTS=1 rewrites it):\n--- expected\n{expected}--- got\n{stdout}",
        snapshot.display()
    );
}

/// What the snapshot shows, asserted on its own so that a carelessly rewritten snapshot cannot
/// hide a broken policy or replay: two restarts, the second held back by the backoff and
/// assumed ok, the first failed by its start period, the second recovered.
#[test]
fn the_sample_outage_restarts_twice_and_recovers() {
    let ws = Workspace::new();
    let config = ws.load(WEB);
    let text = std::fs::read_to_string(sample()).expect("the sample");
    let results = simulate::parse_results(&text, &sample()).expect("the sample parses");
    let decisions = simulate::simulate(&config, "web", &results, 0).expect("simulate");
    // Failures at 35s and 40s meet the threshold, but the backoff (20s ±10% from 22.5s) holds
    // the restart until it runs out, at 43.871s with seed 0: then, not at the next check (45s).
    assert_eq!(acts(&decisions, "web"), vec![(20_000, 1), (43_871, 2)]);
    let kinds: Vec<&DecisionKind> = decisions.iter().map(|d| &d.kind).collect();
    assert!(kinds.iter().any(|k| matches!(
        k,
        DecisionKind::AttemptFailed { attempt: 1, reason } if reason.contains("start period")
    )));
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, DecisionKind::Recovered { attempt: 2 }))
    );
    assert!(
        !kinds
            .iter()
            .any(|k| matches!(k, DecisionKind::Failed { .. }))
    );
    let steps = simulate::replay(&config, "web", &results, 0).expect("replay");
    let story = simulate::render_text(&steps, results.origin(), &config);
    assert!(
        story.contains("+43.871s  web  restarting -> unknown  (attempt 2 finished (assumed ok)"),
        "{story}"
    );
    assert!(
        story.contains(" +22.500s  web  backoff: attempt 2 not before +"),
        "{story}"
    );
}

/// The sample's header quotes the config it is written for; it must be the one tested here.
#[test]
fn the_sample_quotes_the_tested_config() {
    let text = std::fs::read_to_string(sample()).expect("the sample");
    let quoted: String = text
        .lines()
        .skip_while(|l| *l != "#   [[task]]")
        .take_while(|l| l.starts_with("#   "))
        .map(|l| format!("{}\n", &l[4..]))
        .collect();
    assert_eq!(quoted, WEB);
}

#[test]
fn json_output_is_the_decisions_of_the_library_loop() {
    let ws = Workspace::new();
    let path = ws.config(WEB);
    let (code, stdout, stderr) = hmrt(&[
        "simulate",
        path.to_str().expect("utf-8 path"),
        "--task=web",
        "--results",
        sample().to_str().expect("utf-8 path"),
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let printed: Vec<Decision> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let text = std::fs::read_to_string(sample()).expect("the sample");
    let results = simulate::parse_results(&text, &sample()).expect("parses");
    let decisions = simulate::simulate(&ws.load(WEB), "web", &results, 0).expect("simulate");
    assert!(!decisions.is_empty());
    assert_eq!(printed, decisions);
}

#[test]
fn the_seed_is_fixed_by_default_and_moves_only_the_jitter() {
    let ws = Workspace::new();
    let path = ws.config(WEB);
    let sample = sample();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "simulate",
            path.to_str().expect("utf-8 path"),
            "--task",
            "web",
            "--results",
            sample.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = hmrt(&args);
        assert_eq!(code, 0, "{stderr}");
        stdout
    };
    let default = run(&[]);
    assert_eq!(default, run(&["--seed", "0"]));
    let other = run(&["--seed", "7"]);
    assert_ne!(default, other, "another seed draws other jitter");
    // The jitter moves when the backoff runs out, and so when the second restart comes (at
    // that instant): every seed decides the same things in the same order up to that restart,
    // which comes inside 22.5s + 20s ±10%, before the check at 45s. (What follows may differ: a
    // restart early enough lets its 12s start period end before the second passing check.)
    let config = ws.load(WEB);
    let text = std::fs::read_to_string(&sample).expect("the sample");
    let results = simulate::parse_results(&text, &sample).expect("parses");
    let kinds = |decisions: &[hmrt_policy::Decision]| -> Vec<(String, DecisionKind)> {
        decisions
            .iter()
            .map(|d| (d.task.clone(), d.kind.clone()))
            .collect()
    };
    let decided = simulate::simulate(&config, "web", &results, 0).expect("simulate");
    let mut second_restarts = std::collections::BTreeSet::new();
    for seed in 1..200 {
        let got = simulate::simulate(&config, "web", &results, seed).expect("simulate");
        let up_to_the_second_restart = 10;
        assert_eq!(
            kinds(&got)[..up_to_the_second_restart],
            kinds(&decided)[..up_to_the_second_restart],
            "seed {seed}"
        );
        assert!(
            !got.iter()
                .any(|d| matches!(d.kind, DecisionKind::Failed { .. })),
            "seed {seed}"
        );
        let (at, attempt) = acts(&got, "web")[1];
        assert_eq!(attempt, 2);
        assert!(
            (40_500..=44_500).contains(&at),
            "seed {seed}: second restart at {at} ms"
        );
        second_restarts.insert(at);
    }
    assert!(second_restarts.len() > 50, "the jitter moves the restart");
}

/// One sequence written three ways tells the same story.
#[test]
fn offsets_rfc3339_and_json_lines_tell_the_same_story() {
    let ws = Workspace::new();
    let config = ws.load(WEB);
    // 2026-11-23T10:00:00Z
    let base: u64 = 1_795_428_000_000;
    let seq: &[(u64, &str, &str)] = &[
        (0, "healthy", "ok"),
        (5_000, "healthy", "ok"),
        (10_000, "unhealthy", "refused"),
        (15_000, "unhealthy", "refused"),
        (16_250, "action-error", "SPAWN_ERROR"),
        (20_000, "unhealthy", "refused"),
        (25_000, "unhealthy", "refused"),
        (60_000, "unhealthy", "refused"),
        (65_000, "healthy", "ok"),
        (70_000, "healthy", "ok"),
    ];
    let offsets: String = seq
        .iter()
        .map(|(at, what, msg)| format!("{at}ms {what} {msg}\n"))
        .collect();
    let rfc3339: String = seq
        .iter()
        .map(|(at, what, msg)| {
            // Written in +01:00 to exercise the offset.
            let local =
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(base + at + 3_600_000);
            let utc = humantime::format_rfc3339_millis(local).to_string();
            format!("{}+01:00 {what} {msg}\n", utc.trim_end_matches('Z'))
        })
        .collect();
    let json: String = seq
        .iter()
        .map(|(at, what, msg)| {
            let at = base + at;
            match what.strip_prefix("action-") {
                Some(outcome) => {
                    format!("{{\"at\": {at}, \"action\": \"{outcome}\", \"message\": \"{msg}\"}}\n")
                }
                None => {
                    format!("{{\"at\": {at}, \"status\": \"{what}\", \"message\": \"{msg}\"}}\n")
                }
            }
        })
        .collect();
    let story = |text: &str| {
        let results = parse(text);
        let steps = simulate::replay(&config, "web", &results, 0).expect("replay");
        (
            simulate::origin_line(&results),
            simulate::render_text(&steps, results.origin(), &config),
        )
    };
    let (none, by_offsets) = story(&offsets);
    assert_eq!(none, None);
    assert!(
        by_offsets.contains("attempt 1 failed: the action returned an error: SPAWN_ERROR"),
        "{by_offsets}"
    );
    let (origin, by_rfc3339) = story(&rfc3339);
    assert_eq!(
        origin.as_deref(),
        Some("# +0.000s is 2026-11-23T10:00:00.000Z")
    );
    assert_eq!(by_rfc3339, by_offsets);
    let (_, by_json) = story(&json);
    assert_eq!(by_json, by_offsets);
}

#[test]
fn each_mistake_in_a_results_file_is_named_at_its_line() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "bad time",
            "0s healthy\n5 parsecs unhealthy\n",
            &["results.txt:2: ", "bad time \"5\""],
        ),
        (
            "unknown status",
            "# a comment\n\n0s healthy\n5s sick x\n",
            &["results.txt:4: ", "unknown status \"sick\""],
        ),
        (
            "nothing after the time",
            "0s\n",
            &["results.txt:1: ", "nothing after the time"],
        ),
        (
            "time going backwards",
            "0s healthy\n10s healthy\n5s healthy\n",
            &["results.txt:3: ", "goes backwards", "line 2"],
        ),
        (
            "offsets mixed with absolute times",
            "0s healthy\n2026-11-23T10:00:00Z healthy\n",
            &["results.txt:2: ", "an absolute time", "offsets", "line 1"],
        ),
        (
            "JSON after offsets",
            "0s healthy\n{\"at\": 5, \"status\": \"healthy\"}\n",
            &["results.txt:2: ", "an absolute time"],
        ),
        (
            "RFC 3339 without a zone",
            "2026-11-23T10:00:00 healthy\n",
            &["results.txt:1: ", "bad time", "time zone"],
        ),
        (
            "a bad date",
            "2026-13-23T10:00:00Z healthy\n",
            &["results.txt:1: ", "bad time \"2026-13-23T10:00:00Z\""],
        ),
        (
            "a bad UTC offset",
            "2026-11-23T10:00:00+25:00 healthy\n",
            &["results.txt:1: ", "bad UTC offset \"+25:00\""],
        ),
        (
            "empty task=",
            "0s task= healthy\n",
            &["results.txt:1: ", "task= names no task"],
        ),
        (
            "JSON that is not JSON",
            "{\"at\": 5, \"status\": \n",
            &["results.txt:1: ", "bad JSON entry"],
        ),
        (
            "JSON without at",
            "{\"status\": \"healthy\"}\n",
            &["results.txt:1: ", "bad JSON entry", "at"],
        ),
        (
            "JSON with both status and action",
            "{\"at\": 5, \"status\": \"healthy\", \"action\": \"ok\"}\n",
            &["results.txt:1: ", "not both"],
        ),
        (
            "JSON with neither",
            "{\"at\": 5, \"message\": \"hm\"}\n",
            &["results.txt:1: ", "neither"],
        ),
        (
            "JSON unknown status",
            "{\"at\": 5, \"status\": \"fine\"}\n",
            &["results.txt:1: ", "unknown status \"fine\""],
        ),
        (
            "JSON unknown action outcome",
            "{\"at\": 5, \"action\": \"maybe\"}\n",
            &["results.txt:1: ", "unknown action outcome \"maybe\""],
        ),
    ];
    for (what, text, fragments) in cases {
        let message = parse_error(text);
        assert!(
            message.starts_with(fragments[0]),
            "{what}: {message:?} does not start with {:?}",
            fragments[0]
        );
        for fragment in &fragments[1..] {
            assert!(
                message.contains(fragment),
                "{what}: {message:?} lacks {fragment:?}"
            );
        }
    }
}

#[test]
fn comments_blank_lines_and_messages_are_read_as_documented() {
    let results = parse(
        "# comment\n\n   # indented comment\n1500ms\ttask=db  degraded\n1m30s  unhealthy  HTTP 503 # not a comment\n",
    );
    assert_eq!(results.clock, simulate::Clock::Offsets);
    assert_eq!(
        results.entries,
        vec![
            simulate::Entry {
                line: 4,
                at: Timestamp(1_500),
                task: Some("db".to_string()),
                what: simulate::What::Check(hmrt_policy::Status::Degraded),
                message: String::new(),
            },
            simulate::Entry {
                line: 5,
                at: Timestamp(90_000),
                task: None,
                what: simulate::What::Check(hmrt_policy::Status::Unhealthy),
                message: "HTTP 503 # not a comment".to_string(),
            },
        ]
    );
}

#[test]
fn an_action_outcome_nobody_asked_for_is_an_error_at_its_line() {
    let ws = Workspace::new();
    let config = ws.load(WEB);
    let results = parse("0s healthy\n5s healthy\n6s action-ok restarted\n");
    let error = simulate::simulate(&config, "web", &results, 0)
        .expect_err("no action was asked for")
        .to_string();
    assert!(error.starts_with("results.txt:3: "), "{error}");
    assert!(error.contains("asked for no action"), "{error}");
    assert!(error.contains("web is healthy"), "{error}");
}

#[test]
fn an_entry_for_a_task_the_config_lacks_is_an_error_at_its_line() {
    let ws = Workspace::new();
    let config = ws.load(WEB);
    let results = parse("0s healthy\n5s task=dbx healthy\n");
    let error = simulate::simulate(&config, "web", &results, 0)
        .expect_err("no task dbx")
        .to_string();
    assert!(error.starts_with("results.txt:2: "), "{error}");
    assert!(error.contains("no task named \"dbx\""), "{error}");
}

#[test]
fn an_action_without_an_outcome_is_assumed_ok_even_at_the_end() {
    let ws = Workspace::new();
    let config = ws.load(WEB);
    let results = parse("0s unhealthy a\n5s unhealthy b\n");
    let steps = simulate::replay(&config, "web", &results, 0).expect("replay");
    let story = simulate::render_text(&steps, results.origin(), &config);
    let expected_tail = "+5.000s  web  act: supervisor-restart attempt 1\n\
                         +5.000s  web  restarting -> unknown  (attempt 1 finished (assumed ok); waiting for the check)\n";
    assert!(story.contains(expected_tail), "{story}");
    assert!(matches!(
        steps.last(),
        Some(Step::Backoff {
            next_attempt: 2,
            ..
        })
    ));
}

/// With an outcome in the file, the action ends when the file says, as the file says.
#[test]
fn an_action_error_in_the_file_fails_the_attempt_at_its_time() {
    let ws = Workspace::new();
    let config = ws.load(WEB);
    let results = parse("0s unhealthy a\n5s unhealthy b\n7s action-error SPAWN_ERROR\n");
    let decisions = simulate::simulate(&config, "web", &results, 0).expect("simulate");
    let failed = decisions
        .iter()
        .find(|d| matches!(d.kind, DecisionKind::AttemptFailed { .. }))
        .expect("the attempt failed");
    assert_eq!(failed.at, Timestamp(7_000));
    assert!(failed.kind.to_string().contains("SPAWN_ERROR"));
}

const API_DB: &str = r#"
[[task]]
name = "db"
program = "db"
check = "tcp"
config = { host = "127.0.0.1", port = 15432 }
grants = { tcp = ["127.0.0.1:15432"] }
failure_threshold = 2
on_failure = "supervisor-restart"

[[task]]
name = "api"
program = "api"
check = "http"
config = { url = "http://127.0.0.1:18081/health" }
grants = { http = ["http://127.0.0.1:18081"] }
failure_threshold = 2
on_failure = "supervisor-restart"
depends_on = ["db"]
"#;

/// `task=db` feeds the dependency: while db is down, api's own failures never restart it.
#[test]
fn a_dependency_in_the_file_holds_the_dependent_until_it_is_up() {
    let ws = Workspace::new();
    let config = ws.load(API_DB);
    let results = parse(
        "0s task=db healthy\n\
         0s healthy\n\
         5s task=db unhealthy refused\n\
         5s unhealthy db is down\n\
         10s task=db unhealthy refused\n\
         10s unhealthy db is down\n\
         15s unhealthy db is down\n\
         20s task=db healthy\n\
         20s healthy\n",
    );
    let decisions = simulate::simulate(&config, "api", &results, 0).expect("simulate");
    assert_eq!(acts(&decisions, "db"), vec![(10_000, 1)]);
    assert_eq!(acts(&decisions, "api"), vec![]);
    let db_down = HoldReason::Dependency {
        tasks: vec!["db".to_string()],
    };
    let held: Vec<(u64, bool)> = decisions
        .iter()
        .filter(|d| d.task == "api")
        .filter_map(|d| match &d.kind {
            DecisionKind::Held { reason } if *reason == db_down => Some((d.at.0, true)),
            DecisionKind::HoldLifted { reason } if *reason == db_down => Some((d.at.0, false)),
            _ => None,
        })
        .collect();
    // Held from the start (db unknown), lifted at 0s, held when db fails at 10s, lifted at 20s.
    assert_eq!(
        held,
        vec![(0, true), (0, false), (10_000, true), (20_000, false)]
    );
}

/// A dependency with no entries stays unknown, so its dependent is held all along.
#[test]
fn a_dependency_never_observed_holds_the_dependent_throughout() {
    let ws = Workspace::new();
    let config = ws.load(API_DB);
    let results = parse("0s unhealthy a\n5s unhealthy b\n10s unhealthy c\n");
    let steps = simulate::replay(&config, "api", &results, 0).expect("replay");
    let story = simulate::render_text(&steps, results.origin(), &config);
    assert!(
        story.starts_with("+0.000s  api  held: dependency db not healthy\n"),
        "{story}"
    );
    assert!(!story.contains("act:"), "{story}");
}

#[test]
fn the_cli_names_the_tasks_when_the_task_is_unknown() {
    let ws = Workspace::new();
    let config = ws.config(API_DB);
    let (code, stdout, stderr) = hmrt(&[
        "simulate",
        config.to_str().expect("utf-8 path"),
        "--task",
        "web",
        "--results",
        sample().to_str().expect("utf-8 path"),
    ]);
    assert_ne!(code, 0);
    assert_eq!(stdout, "");
    assert!(stderr.contains("no task named \"web\""), "{stderr}");
    assert!(stderr.contains("db, api"), "{stderr}");
}

#[test]
fn the_cli_fails_at_the_line_of_a_bad_results_file() {
    let ws = Workspace::new();
    let config = ws.config(WEB);
    let results = ws.path().join("r.txt");
    std::fs::write(&results, "0s healthy\n5s healthy\n10s on-fire\n").expect("write");
    let (code, stdout, stderr) = hmrt(&[
        "simulate",
        config.to_str().expect("utf-8 path"),
        "--task",
        "web",
        "--results",
        results.to_str().expect("utf-8 path"),
    ]);
    assert_ne!(code, 0);
    assert_eq!(stdout, "");
    assert!(
        stderr.contains(&format!(
            "{}:3: unknown status \"on-fire\"",
            results.display()
        )),
        "{stderr}"
    );
}
