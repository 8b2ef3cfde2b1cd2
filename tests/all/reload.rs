//! Hot reload of `plugins_dir` under a running `hmrt run`: a replaced plugin's new behaviour
//! within an interval, a broken replacement refused while the old version runs on, a removed
//! file leaving its task `unknown` with the reason. The two versions are the frozen-contract
//! test guests `v0-1` and `v0-2`: one config serves both, and each logs its own name.

use std::time::Duration;

use crate::support::{HmrtProcess, Workspace};

/// Lines after the first `n`.
fn since(log: &[String], n: usize) -> &[String] {
    &log[n.min(log.len())..]
}

#[test]
fn a_replaced_plugin_runs_at_once_a_broken_one_is_refused_and_a_removed_one_is_unknown() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let ws = Workspace::new();
    ws.plugin("probe", hmrt_test_artifacts::V0_1);
    let config = ws.config(&format!(
        r#"
[[task]]
name = "probe"
check = "probe"
interval = "300ms"
config = {{ address = "127.0.0.1:{port}" }}
grants = {{ tcp = ["127.0.0.1:{port}"] }}
"#
    ));
    let mut hmrt = HmrtProcess::start_logging(&config, "info,hmrt=debug");
    let wait = Duration::from_secs(30);
    hmrt.wait_log("v0-1 check:", wait);
    let plugin = ws.path().join("plugins/probe.wasm");

    // Replaced in place (a copy is several writes): the new version answers the next checks.
    let mark = hmrt.drain().lines().count();
    std::fs::copy(hmrt_test_artifacts::V0_2, &plugin).expect("replace");
    let replaced = std::time::Instant::now();
    hmrt.wait_until("a check by the new version", wait, |log| {
        since(log, mark).iter().any(|l| l.contains("v0-2 check:"))
    });
    let took = replaced.elapsed();
    // One change, one reload: hmrt's own read of the file (an open event) must not start
    // another, which would reload it without end.
    hmrt.wait_until("three more checks by the new version", wait, |log| {
        since(log, mark)
            .iter()
            .filter(|l| l.contains("v0-2 check:"))
            .count()
            >= 4
    });
    let log = hmrt.drain();
    let reloads = log
        .lines()
        .skip(mark)
        .filter(|l| l.contains("plugin reloaded"))
        .count();
    assert_eq!(reloads, 1, "{log}");
    // The settle time (150 ms), the load, and at most one interval (300 ms), with slack for a
    // loaded machine.
    assert!(
        took < Duration::from_secs(3),
        "new behaviour after {took:?}"
    );

    // Broken: refused, reported, and the old (v0-2) version keeps answering.
    let mark = log.lines().count();
    std::fs::write(&plugin, b"\0asm\x0d\0\x01\0 not really").expect("break");
    hmrt.wait_until(
        "the broken file refused, then a check by the old version",
        wait,
        |log| {
            let after = since(log, mark);
            let refused = after.iter().position(|l| l.contains("not reloaded"));
            refused.is_some_and(|at| after[at..].iter().any(|l| l.contains("v0-2 check:")))
        },
    );
    let log = hmrt.drain();
    let refusal = log
        .lines()
        .skip(mark)
        .find(|l| l.contains("not reloaded"))
        .expect("the refusal");
    assert!(refusal.contains("probe.wasm"), "{refusal}");
    assert!(refusal.contains("keep the version they run"), "{refusal}");
    assert!(
        !log.lines().skip(mark).any(|l| l.contains("v0-1 check:")),
        "{log}"
    );

    // Removed: the task is unknown, and says why.
    let mark = log.lines().count();
    std::fs::remove_file(&plugin).expect("remove");
    hmrt.wait_until("an unknown check naming the removed file", wait, |log| {
        since(log, mark).iter().any(|l| {
            l.contains("task=probe") && l.contains("status=unknown") && l.contains("was removed")
        })
    });

    // And back: a valid file again is picked up, and the task checks healthy.
    let mark = hmrt.drain().lines().count();
    std::fs::copy(hmrt_test_artifacts::V0_1, &plugin).expect("restore");
    hmrt.wait_until("a check by the restored version", wait, |log| {
        since(log, mark).iter().any(|l| l.contains("v0-1 check:"))
    });
    assert!(hmrt.terminate().success());
    drop(listener);
}
