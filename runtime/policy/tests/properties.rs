//! Property tests: random configs and random sequences of results, action outcomes, re-arms and
//! time steps, checked against invariants by a model that follows only the decision stream.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use hmrt_policy::{
    Backoff, Decision, DecisionKind, Engine, Flapping, HoldReason, PolicyConfig, PolicyError,
    RearmHow, Snapshot, State, Status, Timestamp,
};

#[derive(Debug, Clone)]
enum Op {
    Observe(usize, Status),
    Finish(usize, bool),
    Rearm(usize),
    /// `wake` at the script's time, due or not.
    Wake(usize),
    /// `wake` at the task's `next_wake`, if that is later than the script's time: a daemon that
    /// wakes on time.
    WakeDue(usize),
}

impl Op {
    fn task(&self) -> usize {
        match self {
            Op::Observe(i, _) | Op::Finish(i, _) | Op::Rearm(i) | Op::Wake(i) | Op::WakeDue(i) => {
                *i
            }
        }
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        4 => Just(Status::Unhealthy),
        3 => Just(Status::Healthy),
        1 => Just(Status::Degraded),
        1 => Just(Status::Unknown),
    ]
}

fn op(tasks: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..tasks, status()).prop_map(|(i, s)| Op::Observe(i, s)),
        4 => (0..tasks, prop::bool::weighted(0.8)).prop_map(|(i, ok)| Op::Finish(i, ok)),
        1 => (0..tasks).prop_map(Op::Rearm),
        2 => (0..tasks).prop_map(Op::Wake),
        3 => (0..tasks).prop_map(Op::WakeDue),
    ]
}

fn step() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 0..3_000u64, 2 => 0..30_000u64, 1 => 0..600_000u64]
}

/// A valid random policy for task `index`, which may depend on tasks before it (so no cycles).
fn config(index: usize) -> impl Strategy<Value = PolicyConfig> {
    let thresholds = (1..4u32, 1..3u32, prop::option::of(0..4u32));
    let backoff = (100..5_000u64, 1.0..3.0f64, 0..30_000u64, 0.0..0.5f64);
    let budget = (
        0..5u32,
        1_000..120_000u64,
        0..60_000u64,
        prop::option::of(1_000..60_000u64),
    );
    let rest = (
        prop_oneof![Just(0u64), 500..10_000u64],
        prop::option::of((0..4u32, 1_000..30_000u64)),
        prop::collection::vec(any::<bool>(), index),
        prop::bool::weighted(0.85),
    );
    (thresholds, backoff, budget, rest).prop_map(
        move |(
            (ft, st, extra_window),
            (initial, factor, extra_max, jitter),
            (max_restarts, restart_window, reset_after, rearm_after),
            (start_period, flapping, deps, has_action),
        )| PolicyConfig {
            failure_threshold: ft,
            success_threshold: st,
            failure_window: extra_window.map(|e| ft + e),
            backoff: Backoff {
                initial: ms(initial),
                factor,
                max: ms(initial + extra_max),
                jitter,
            },
            // A task with an action needs at least one restart.
            max_restarts: if has_action {
                max_restarts.max(1)
            } else {
                max_restarts
            },
            restart_window: ms(restart_window),
            reset_after: ms(reset_after),
            rearm_after: rearm_after.map(ms),
            start_period: ms(start_period),
            flapping: flapping.map(|(max_changes, window)| Flapping {
                max_changes,
                window: ms(window),
            }),
            depends_on: deps
                .iter()
                .enumerate()
                .filter(|(_, d)| **d)
                .map(|(j, _)| name(j))
                .collect(),
            has_action,
        },
    )
}

fn name(i: usize) -> String {
    format!("t{i}")
}

fn configs() -> impl Strategy<Value = Vec<PolicyConfig>> {
    (1..4usize).prop_flat_map(|n| (0..n).map(config).collect::<Vec<_>>())
}

type Script = Vec<(u64, Op)>;

fn scenario() -> impl Strategy<Value = (Vec<PolicyConfig>, Script, u64)> {
    configs().prop_flat_map(|cfgs| {
        let n = cfgs.len();
        (
            Just(cfgs),
            prop::collection::vec((step(), op(n)), 1..300),
            any::<u64>(),
        )
    })
}

fn build(cfgs: &[PolicyConfig], seed: u64) -> Engine {
    let map: BTreeMap<String, PolicyConfig> = cfgs
        .iter()
        .enumerate()
        .map(|(i, c)| (name(i), c.clone()))
        .collect();
    Engine::new(map, seed).unwrap()
}

/// The time `op` runs at, the script having reached `t`: later for a wake on time.
fn time_of(e: &Engine, t: u64, op: &Op) -> u64 {
    match op {
        Op::WakeDue(i) => e.next_wake(&name(*i)).map_or(t, |w| t.max(w.0)),
        _ => t,
    }
}

/// Applies one op; the result as data, so two engines can be compared.
fn apply(e: &mut Engine, t: u64, op: &Op) -> Result<Vec<Decision>, PolicyError> {
    let now = Timestamp(t);
    match op {
        Op::Observe(i, s) => e.observe(&name(*i), now, *s, &format!("{s}")),
        Op::Finish(i, ok) => {
            let r = if *ok {
                Ok("done".to_string())
            } else {
                Err("broke".to_string())
            };
            e.action_finished(&name(*i), now, r)
        }
        Op::Rearm(i) => e.rearm(&name(*i), now),
        Op::Wake(i) | Op::WakeDue(i) => e.wake(&name(*i), now),
    }
}

/// What the checker knows about one task, learnt only from the decisions.
#[derive(Debug, Default)]
struct Model {
    state: State,
    running: bool,
    /// Action start times since the budget was last cleared by a re-arm.
    acts: Vec<u64>,
    position: u32,
    last_end: Option<u64>,
    start_period_end: Option<u64>,
    up_since: Option<u64>,
    up: Option<bool>,
    class_changes: Vec<u64>,
    flapping: bool,
    /// Re-armed, and no action since.
    rearmed_without_act: bool,
}

struct Checker {
    cfgs: Vec<PolicyConfig>,
    models: Vec<Model>,
    total_acts: usize,
    /// Whether a call has gone through: from then on the dependency holds are current.
    called: bool,
    /// The `next_wake` of the op's task just before the op.
    wake_before: Option<Timestamp>,
}

fn index(task: &str) -> usize {
    task[1..].parse().unwrap()
}

impl Checker {
    fn new(cfgs: &[PolicyConfig]) -> Checker {
        Checker {
            cfgs: cfgs.to_vec(),
            models: cfgs.iter().map(|_| Model::default()).collect(),
            total_acts: 0,
            called: false,
            wake_before: None,
        }
    }

    /// Whether `op`, run at `t`, may decide about task `i` by a timer: it is a call about `i`
    /// and `i`'s `next_wake` had come.
    fn timer_due(&self, t: u64, op: &Op, i: usize) -> bool {
        !matches!(op, Op::Finish(..) | Op::Rearm(..))
            && op.task() == i
            && self.wake_before.is_some_and(|w| w.0 <= t)
    }

    fn step(
        &mut self,
        engine: &Engine,
        t: u64,
        op: &Op,
        wake_before: Option<Timestamp>,
        result: &Result<Vec<Decision>, PolicyError>,
    ) -> Result<(), TestCaseError> {
        self.wake_before = wake_before;
        // Calls that must be refused, and are refused only then.
        match op {
            Op::Finish(i, _) => {
                prop_assert_eq!(
                    result.is_ok(),
                    self.models[*i].running,
                    "finish {:?}",
                    result
                );
            }
            Op::Rearm(i) => {
                let failed = self.models[*i].state == State::Failed;
                prop_assert_eq!(result.is_ok(), failed, "rearm {:?}", result);
            }
            Op::Observe(..) => prop_assert!(result.is_ok()),
            Op::Wake(i) | Op::WakeDue(i) => {
                prop_assert!(result.is_ok());
                // A wake decides something exactly when a timer is due (the first call of all
                // also catches up on dependency holds).
                let decisions = result.as_ref().unwrap();
                if self.called {
                    if self.timer_due(t, op, *i) {
                        prop_assert!(
                            decisions.iter().any(|d| index(&d.task) == *i),
                            "nothing decided at a due wake ({:?})",
                            wake_before
                        );
                    } else {
                        prop_assert!(
                            decisions.is_empty(),
                            "a wake before {:?} decided {:?}",
                            wake_before,
                            decisions
                        );
                    }
                }
            }
        }
        let Ok(decisions) = result else {
            return Ok(());
        };
        self.called = true;
        if let Op::Finish(i, ok) = op {
            let m = &mut self.models[*i];
            m.running = false;
            m.last_end = Some(t);
            let cfg = &self.cfgs[*i];
            if *ok && !cfg.start_period.is_zero() {
                m.start_period_end = Some(t + cfg.start_period.as_millis() as u64);
            }
            // The next action waits base ± jitter from the end of this one.
            let base = cfg.backoff.base_delay(m.position).as_millis() as f64;
            let j = cfg.backoff.jitter;
            let next = engine
                .state(&name(*i))
                .unwrap()
                .next_action_not_before()
                .unwrap()
                .0 as f64;
            prop_assert!(next >= t as f64 + base * (1.0 - j) - 1.0);
            prop_assert!(next <= t as f64 + base * (1.0 + j) + 1.0);
        }
        for d in decisions {
            self.decision(t, op, d)?;
        }
        Ok(())
    }

    fn decision(&mut self, t: u64, op: &Op, d: &Decision) -> Result<(), TestCaseError> {
        let i = index(&d.task);
        let cfg = self.cfgs[i].clone();
        match &d.kind {
            DecisionKind::StateChanged { from, to, .. } => {
                let m = &mut self.models[i];
                prop_assert_eq!(*from, m.state, "{}", d);
                prop_assert_ne!(from, to);
                // Actions start only from unhealthy; only a finished action leaves restarting.
                if *to == State::Restarting {
                    prop_assert_eq!(*from, State::Unhealthy);
                }
                if *from == State::Restarting {
                    prop_assert!(matches!(op, Op::Finish(j, _) if *j == i));
                }
                m.state = *to;
                if to.is_up() {
                    m.up_since.get_or_insert(t);
                } else {
                    m.up_since = None;
                }
                let class = match to {
                    State::Healthy | State::Degraded => Some(true),
                    State::Unhealthy | State::Failed => Some(false),
                    _ => None,
                };
                if let Some(c) = class {
                    if m.up.is_some_and(|u| u != c) {
                        m.class_changes.push(t);
                    }
                    m.up = Some(c);
                }
            }
            DecisionKind::Act { attempt } => {
                self.total_acts += 1;
                prop_assert!(cfg.has_action);
                // Only at a counted failure of this very task, or when its backoff ran out (its
                // next_wake had come) with the failure threshold met.
                prop_assert!(
                    matches!(op, Op::Observe(j, Status::Unhealthy) if *j == i)
                        || self.timer_due(t, op, i),
                    "act on {:?} (next wake {:?})",
                    op,
                    self.wake_before
                );
                let states: Vec<State> = self.models.iter().map(|m| m.state).collect();
                let m = &mut self.models[i];
                prop_assert_eq!(m.state, State::Restarting);
                prop_assert!(!m.running, "an action while one runs");
                m.running = true;
                // Not while held by a dependency.
                for dep in &cfg.depends_on {
                    let s = states[index(dep)];
                    prop_assert!(s.is_up(), "act while {} is {}", dep, s);
                }
                // Not while flapping: neither said so, nor by the count.
                prop_assert!(!m.flapping);
                if let Some(f) = &cfg.flapping {
                    let w = f.window.as_millis() as u64;
                    let recent = m.class_changes.iter().filter(|c| *c + w > t).count();
                    prop_assert!(recent <= f.max_changes as usize, "act while flapping");
                }
                // Not inside a start period.
                prop_assert!(
                    m.start_period_end.is_none_or(|end| t >= end),
                    "act at {} inside a start period ending {:?}",
                    t,
                    m.start_period_end
                );
                // The budget: at most max_restarts within any restart_window.
                let w = cfg.restart_window.as_millis() as u64;
                let in_window = m.acts.iter().filter(|a| **a + w > t).count();
                prop_assert!(in_window < cfg.max_restarts as usize);
                m.acts.push(t);
                m.rearmed_without_act = false;
                // The backoff: one step further, and not before its delay (less jitter).
                prop_assert_eq!(*attempt, m.position + 1);
                if let (true, Some(end)) = (m.position > 0, m.last_end) {
                    let base = cfg.backoff.base_delay(m.position).as_millis() as f64;
                    let earliest = end as f64 + base * (1.0 - cfg.backoff.jitter) - 1.0;
                    prop_assert!(t as f64 >= earliest, "act at {} before {}", t, earliest);
                }
                m.position = *attempt;
                m.start_period_end = None;
            }
            DecisionKind::Failed { .. } => {
                // Where an action would have been.
                prop_assert!(
                    matches!(op, Op::Observe(j, Status::Unhealthy) if *j == i)
                        || self.timer_due(t, op, i),
                    "failed on {:?} (next wake {:?})",
                    op,
                    self.wake_before
                );
                let m = &self.models[i];
                let w = cfg.restart_window.as_millis() as u64;
                let in_window = m.acts.iter().filter(|a| **a + w > t).count();
                prop_assert!(
                    in_window >= cfg.max_restarts as usize,
                    "failed with budget left"
                );
                // A re-armed task gets at least one action before it can fail again.
                prop_assert!(!m.rearmed_without_act, "failed again without an action");
            }
            DecisionKind::Rearmed { how } => {
                let m = &mut self.models[i];
                // Every re-arm clears the budget history.
                m.rearmed_without_act = true;
                match how {
                    RearmHow::Recovered => m.acts.clear(),
                    RearmHow::Elapsed => {
                        prop_assert!(cfg.rearm_after.is_some());
                        m.acts.clear();
                    }
                    RearmHow::Person => {
                        prop_assert!(matches!(op, Op::Rearm(j) if *j == i));
                        m.acts.clear();
                        m.position = 0;
                        m.last_end = None;
                    }
                }
            }
            DecisionKind::BackoffReset { position } => {
                // The backoff shrinks only after reset_after of unbroken health.
                let m = &mut self.models[i];
                prop_assert_eq!(*position, m.position);
                prop_assert!(m.state.is_up());
                let since = m.up_since.unwrap();
                prop_assert!(t - since >= cfg.reset_after.as_millis() as u64);
                m.position = 0;
                m.last_end = None;
            }
            DecisionKind::Recovered { .. } => self.models[i].start_period_end = None,
            DecisionKind::AttemptFailed { .. } => {
                // Decided by a check only once the start period is over.
                if !matches!(op, Op::Finish(..)) {
                    let m = &mut self.models[i];
                    prop_assert!(
                        m.start_period_end.is_none_or(|end| t >= end),
                        "attempt failed at {} inside a start period ending {:?}",
                        t,
                        m.start_period_end
                    );
                    m.start_period_end = None;
                }
            }
            DecisionKind::Held { reason } => {
                prop_assert!(cfg.has_action);
                if let HoldReason::Flapping { .. } = reason {
                    prop_assert!(!self.models[i].flapping);
                    self.models[i].flapping = true;
                }
            }
            DecisionKind::HoldLifted { reason } => {
                if let HoldReason::Flapping { .. } = reason {
                    prop_assert!(self.models[i].flapping);
                    self.models[i].flapping = false;
                }
            }
        }
        Ok(())
    }
}

fn roundtrip(e: &Engine) -> Snapshot {
    let json = serde_json::to_string(&e.export()).unwrap();
    serde_json::from_str(&json).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every invariant, checked after every call.
    #[test]
    fn invariants_hold((cfgs, script, seed) in scenario()) {
        let mut engine = build(&cfgs, seed);
        let mut checker = Checker::new(&cfgs);
        let mut t = 1_700_000_000_000u64;
        for (dt, op) in &script {
            t = time_of(&engine, t + dt, op);
            let wake_before = engine.next_wake(&name(op.task()));
            let result = apply(&mut engine, t, op);
            checker.step(&engine, t, op, wake_before, &result)?;
        }
    }

    /// A daemon killed at any point and restored from its state file decides exactly as one
    /// that kept running.
    #[test]
    fn restore_at_any_point_gives_identical_decisions(
        (cfgs, script, seed) in scenario(),
        cut in any::<prop::sample::Index>(),
        other_seed in any::<u64>(),
    ) {
        let cut = cut.index(script.len() + 1);
        let mut a = build(&cfgs, seed);
        let mut t = 1_700_000_000_000u64;
        for (dt, op) in &script[..cut] {
            t = time_of(&a, t + dt, op);
            let _ = apply(&mut a, t, op);
        }
        let mut b = build(&cfgs, other_seed);
        b.restore(roundtrip(&a)).unwrap();
        for (dt, op) in &script[cut..] {
            for task in 0..cfgs.len() {
                prop_assert_eq!(a.next_wake(&name(task)), b.next_wake(&name(task)));
            }
            t = time_of(&a, t + dt, op);
            prop_assert_eq!(apply(&mut a, t, op), apply(&mut b, t, op));
        }
        prop_assert_eq!(
            serde_json::to_string(&a.export()).unwrap(),
            serde_json::to_string(&b.export()).unwrap()
        );
    }

    /// One rule, one place: a check result first applies the timers due by its time exactly as
    /// `wake` does, so waking the task at the same instant just before changes nothing.
    #[test]
    fn a_result_applies_the_timers_due_exactly_as_wake_does((cfgs, script, seed) in scenario()) {
        let mut a = build(&cfgs, seed);
        let mut b = build(&cfgs, seed);
        let mut t = 1_700_000_000_000u64;
        for (dt, op) in &script {
            t = time_of(&a, t + dt, op);
            let alone = apply(&mut a, t, op);
            if let Op::Observe(i, _) = op {
                let mut woken = b.wake(&name(*i), Timestamp(t)).unwrap();
                woken.extend(apply(&mut b, t, op).unwrap());
                prop_assert_eq!(alone.unwrap(), woken);
            } else {
                prop_assert_eq!(alone, apply(&mut b, t, op));
            }
        }
        prop_assert_eq!(a.export(), b.export());
    }
}

/// The invariants above would hold for an engine that never acts; make sure the random
/// scenarios do exercise actions, failed tasks and holds.
#[test]
fn the_scenarios_exercise_the_interesting_paths() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut acts, mut failed, mut held, mut flapping, mut recovered, mut resets) =
        (0, 0, 0, 0, 0, 0);
    // Re-arms of each kind, and timers taking effect at a wake.
    let (mut by_itself, mut elapsed, mut by_person, mut woken) = (0, 0, 0, 0);
    for _ in 0..200 {
        let (cfgs, script, seed) = scenario().new_tree(&mut runner).unwrap().current();
        let mut engine = build(&cfgs, seed);
        let mut t = 0;
        for (dt, op) in &script {
            t = time_of(&engine, t + dt, op);
            for d in apply(&mut engine, t, op).unwrap_or_default() {
                if matches!(op, Op::Wake(_) | Op::WakeDue(_)) {
                    woken += 1;
                }
                match d.kind {
                    DecisionKind::Act { .. } => acts += 1,
                    DecisionKind::Failed { .. } => failed += 1,
                    DecisionKind::Held {
                        reason: HoldReason::Dependency { .. },
                    } => held += 1,
                    DecisionKind::Held {
                        reason: HoldReason::Flapping { .. },
                    } => flapping += 1,
                    DecisionKind::Recovered { .. } => recovered += 1,
                    DecisionKind::BackoffReset { .. } => resets += 1,
                    DecisionKind::Rearmed { how } => match how {
                        RearmHow::Recovered => by_itself += 1,
                        RearmHow::Elapsed => elapsed += 1,
                        RearmHow::Person => by_person += 1,
                    },
                    _ => {}
                }
            }
        }
    }
    let counts = [acts, failed, held, flapping, recovered, resets];
    assert!(
        counts.iter().all(|c| *c > 5),
        "acts, failed, held, flapping, recovered, resets: {counts:?}"
    );
    let counts = [by_itself, elapsed, by_person, woken];
    assert!(
        counts.iter().all(|c| *c > 5),
        "re-armed by itself, by rearm_after, by a person; decided at a wake: {counts:?}"
    );
}
