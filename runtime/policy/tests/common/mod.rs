//! The fake-clock harness shared by the rule tests: times are plain milliseconds chosen by the
//! test.

#![allow(dead_code)] // each test file uses some of it

use std::collections::BTreeMap;
use std::time::Duration;

use hmrt_policy::{
    Backoff, Decision, DecisionKind, Engine, Flapping, PolicyConfig, State, Status, Timestamp,
};

use DecisionKind as K;
use Status::Unhealthy as F;

pub const S: u64 = 1_000;
pub const M: u64 = 60 * S;

pub fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// A policy with an action, no jitter and a 1s doubling backoff: the numbers in tests are exact.
pub fn acting() -> PolicyConfig {
    PolicyConfig {
        failure_threshold: 1,
        success_threshold: 1,
        backoff: Backoff {
            initial: ms(S),
            factor: 2.0,
            max: ms(5 * S),
            jitter: 0.0,
        },
        max_restarts: 100,
        restart_window: ms(60 * M),
        has_action: true,
        ..PolicyConfig::default()
    }
}

pub struct Harness {
    pub engine: Engine,
}

impl Harness {
    pub fn new(tasks: &[(&str, PolicyConfig)]) -> Harness {
        Self::seeded(tasks, 1)
    }

    pub fn seeded(tasks: &[(&str, PolicyConfig)], seed: u64) -> Harness {
        let configs: BTreeMap<String, PolicyConfig> = tasks
            .iter()
            .map(|(n, c)| (n.to_string(), c.clone()))
            .collect();
        Harness {
            engine: Engine::new(configs, seed).unwrap(),
        }
    }

    pub fn one(cfg: PolicyConfig) -> Harness {
        Harness::new(&[("web", cfg)])
    }

    pub fn obs(&mut self, task: &str, t: u64, status: Status) -> Vec<Decision> {
        self.engine
            .observe(task, Timestamp(t), status, &format!("{status} at {t}"))
            .unwrap()
    }

    /// Observes the same status at each of `times`, returning all decisions.
    pub fn obs_all(&mut self, task: &str, times: &[u64], status: Status) -> Vec<Decision> {
        times
            .iter()
            .flat_map(|t| self.obs(task, *t, status))
            .collect()
    }

    pub fn finish(&mut self, task: &str, t: u64, ok: bool) -> Vec<Decision> {
        let result = if ok {
            Ok("restarted".to_string())
        } else {
            Err("supervisord said no".to_string())
        };
        self.engine
            .action_finished(task, Timestamp(t), result)
            .unwrap()
    }

    pub fn wake(&mut self, task: &str, t: u64) -> Vec<Decision> {
        self.engine.wake(task, Timestamp(t)).unwrap()
    }

    pub fn next_wake(&self, task: &str) -> Option<u64> {
        self.engine.next_wake(task).map(|t| t.0)
    }

    pub fn state(&self, task: &str) -> State {
        self.engine.state(task).unwrap().state()
    }

    pub fn next_action(&self, task: &str) -> Option<u64> {
        self.engine
            .state(task)
            .unwrap()
            .next_action_not_before()
            .map(|t| t.0)
    }
}

pub fn kinds(ds: &[Decision], task: &str) -> Vec<DecisionKind> {
    ds.iter()
        .filter(|d| d.task == task)
        .map(|d| d.kind.clone())
        .collect()
}

pub fn acts(ds: &[Decision], task: &str) -> Vec<u32> {
    kinds(ds, task)
        .into_iter()
        .filter_map(|k| match k {
            K::Act { attempt } => Some(attempt),
            _ => None,
        })
        .collect()
}

pub fn changes(ds: &[Decision], task: &str) -> Vec<(State, State)> {
    kinds(ds, task)
        .into_iter()
        .filter_map(|k| match k {
            K::StateChanged { from, to, .. } => Some((from, to)),
            _ => None,
        })
        .collect()
}

/// Runs `n` actions (each right after the backoff), returning the time after the last finish.
pub fn spend(h: &mut Harness, n: u32, mut t: u64) -> u64 {
    for i in 1..=n {
        assert_eq!(acts(&h.obs("web", t, F), "web"), [i], "attempt {i} at {t}");
        h.finish("web", t + 10, true);
        t = h.next_action("web").unwrap();
    }
    t
}

pub fn budget_cfg() -> PolicyConfig {
    PolicyConfig {
        max_restarts: 2,
        restart_window: ms(60 * M),
        ..acting()
    }
}

pub fn start_cfg() -> PolicyConfig {
    PolicyConfig {
        start_period: ms(30 * S),
        success_threshold: 2,
        ..acting()
    }
}

pub fn flapping_cfg() -> PolicyConfig {
    PolicyConfig {
        flapping: Some(Flapping {
            max_changes: 2,
            window: ms(60 * S),
        }),
        backoff: Backoff {
            initial: ms(1),
            factor: 1.0,
            max: ms(1),
            jitter: 0.0,
        },
        ..acting()
    }
}
