//! Dependency holds are kept current incrementally (only a changed task's dependants are looked
//! at). Checked here against a brute-force recomputation over random dependency graphs, random
//! calls and restores of snapshots that mix older and newer task states.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;

use hmrt_policy::{
    Backoff, Decision, DecisionKind, Engine, HoldReason, PolicyConfig, Snapshot, Status, Timestamp,
};

#[derive(Debug, Clone)]
enum Op {
    Observe(usize, Status),
    Finish(usize, bool),
    Rearm(usize),
    Wake(usize),
    Interrupt,
    /// Saves a snapshot for a later restore.
    Save,
    /// Restores a snapshot made of the saved one for the tasks chosen and the current state for
    /// the others: its holds need not match its states.
    Restore(Vec<bool>),
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        3 => Just(Status::Unhealthy),
        3 => Just(Status::Healthy),
        1 => Just(Status::Degraded),
        1 => Just(Status::Unknown),
    ]
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0..n, status()).prop_map(|(i, s)| Op::Observe(i, s)),
        4 => (0..n, prop::bool::weighted(0.8)).prop_map(|(i, ok)| Op::Finish(i, ok)),
        1 => (0..n).prop_map(Op::Rearm),
        2 => (0..n).prop_map(Op::Wake),
        1 => Just(Op::Interrupt),
        1 => Just(Op::Save),
        1 => prop::collection::vec(any::<bool>(), n).prop_map(Op::Restore),
    ]
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// A random graph of 1 to 10 tasks: the task at position p may depend (more than once) on
/// positions before it, so there is no cycle; names are a random permutation, so name order
/// and dependency order differ.
fn graph() -> impl Strategy<Value = BTreeMap<String, PolicyConfig>> {
    (1..=10usize).prop_flat_map(|n| {
        let names = Just((0..n).collect::<Vec<_>>()).prop_shuffle();
        let tasks = (0..n)
            .map(|p| {
                (
                    prop::collection::vec(0..p.max(1), 0..=p.min(4)),
                    prop::bool::weighted(0.8),
                    1..3u32,
                    1..3u32,
                    1..4u32,
                    prop::option::of(1_000..20_000u64),
                )
            })
            .collect::<Vec<_>>();
        (names, tasks).prop_map(|(names, tasks)| {
            let name = |p: usize| format!("n{}", names[p]);
            tasks
                .into_iter()
                .enumerate()
                .map(|(p, (deps, has_action, ft, st, max, rearm))| {
                    let config = PolicyConfig {
                        failure_threshold: ft,
                        success_threshold: st,
                        backoff: Backoff {
                            initial: ms(500),
                            factor: 2.0,
                            max: ms(4_000),
                            jitter: 0.0,
                        },
                        max_restarts: max,
                        restart_window: ms(60_000),
                        rearm_after: rearm.map(ms),
                        depends_on: if p == 0 {
                            Vec::new()
                        } else {
                            deps.into_iter().map(name).collect()
                        },
                        has_action,
                        ..PolicyConfig::default()
                    };
                    (name(p), config)
                })
                .collect()
        })
    })
}

fn scenario() -> impl Strategy<Value = (BTreeMap<String, PolicyConfig>, Vec<(u64, Op)>)> {
    graph().prop_flat_map(|configs| {
        let n = configs.len();
        (
            Just(configs),
            prop::collection::vec((0..5_000u64, op(n)), 1..200),
        )
    })
}

/// Every task's hold as a full recomputation gives it: for a task with an action, its
/// dependencies that are not healthy or degraded, in name order, each once.
fn brute_force(
    engine: &Engine,
    configs: &BTreeMap<String, PolicyConfig>,
) -> BTreeMap<String, Vec<String>> {
    configs
        .iter()
        .map(|(name, config)| {
            let held: BTreeSet<String> = if config.has_action {
                config
                    .depends_on
                    .iter()
                    .filter(|dep| !engine.state(dep).unwrap().state().is_up())
                    .cloned()
                    .collect()
            } else {
                BTreeSet::new()
            };
            (name.clone(), held.into_iter().collect())
        })
        .collect()
}

fn holds(engine: &Engine) -> BTreeMap<String, Vec<String>> {
    engine
        .task_names()
        .map(|name| {
            let held = engine.state(name).unwrap().held_by().to_vec();
            (name.to_string(), held)
        })
        .collect()
}

/// Each task's hold as the call's decisions leave it, for the tasks they name.
fn announced(decisions: &[Decision]) -> BTreeMap<String, Vec<String>> {
    let mut last = BTreeMap::new();
    for d in decisions {
        match &d.kind {
            DecisionKind::Held {
                reason: HoldReason::Dependency { tasks },
            } => {
                last.insert(d.task.clone(), tasks.clone());
            }
            DecisionKind::HoldLifted {
                reason: HoldReason::Dependency { .. },
            } => {
                last.insert(d.task.clone(), Vec::new());
            }
            _ => {}
        }
    }
    last
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// After every call the holds are exactly what a full recomputation gives, and every hold
    /// that changed in the call was announced by a decision (and none that did not).
    #[test]
    fn holds_match_a_full_recomputation_after_every_call((configs, script) in scenario()) {
        let names: Vec<String> = configs.keys().cloned().collect();
        let mut engine = Engine::new(configs.clone(), 7).unwrap();
        let mut saved: Snapshot = engine.export();
        let mut before = holds(&engine);
        let mut t = 1_700_000_000_000u64;
        for (dt, op) in &script {
            t += dt;
            let now = Timestamp(t);
            let result = match op {
                Op::Observe(i, s) => engine.observe(&names[*i], now, *s, "check"),
                Op::Finish(i, ok) => {
                    let r = if *ok { Ok("done".into()) } else { Err("broke".into()) };
                    engine.action_finished(&names[*i], now, r)
                }
                Op::Rearm(i) => engine.rearm(&names[*i], now),
                Op::Wake(i) => engine.wake(&names[*i], now),
                Op::Interrupt => Ok(engine.interrupt_running(now)),
                Op::Save => {
                    saved = engine.export();
                    continue;
                }
                Op::Restore(pick) => {
                    let mut mixed = engine.export();
                    for (take, name) in pick.iter().zip(&names) {
                        if *take {
                            mixed.tasks.insert(name.clone(), saved.tasks[name].clone());
                        }
                    }
                    engine.restore(mixed).unwrap();
                    // The holds are brought up to date by the next call that goes through.
                    before = holds(&engine);
                    continue;
                }
            };
            let after = holds(&engine);
            let Ok(decisions) = result else {
                // A refused call changes nothing.
                prop_assert_eq!(&before, &after);
                continue;
            };
            prop_assert_eq!(&after, &brute_force(&engine, &configs), "after {:?}", op);
            let told = announced(&decisions);
            for name in &names {
                match told.get(name) {
                    Some(held) => prop_assert_eq!(held, &after[name], "{} told", name),
                    None => prop_assert_eq!(&before[name], &after[name], "{} untold", name),
                }
            }
            before = after;
        }
    }
}
