//! Prometheus metrics, kept from the event stream (`prometheus-client`), following
//! blackbox_exporter's conventions where they apply: one series per task, a 0/1 success gauge and
//! a duration histogram per check, one-hot states, counters for restarts, actions and denials.
//!
//! Names and units a guest reports are never metric names: they become label values of
//! `hmrt_check_metric`, cut and restricted to a safe alphabet (the encoder does not escape label
//! values, so a quote or newline from a guest would otherwise forge series). A task keeps at most
//! [`MAX_GUEST_SERIES`] of them, so a guest cannot grow the registry without bound.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use hmrt_policy::{PolicyConfig, State, Status, TaskState, Timestamp};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::{Event, Subscriber};

/// How many distinct guest metrics a task may have as series.
pub const MAX_GUEST_SERIES: usize = 32;
/// The longest guest metric name or unit kept, in bytes.
const MAX_GUEST_LABEL: usize = 64;

const STATES: [State; 6] = [
    State::Unknown,
    State::Healthy,
    State::Degraded,
    State::Unhealthy,
    State::Restarting,
    State::Failed,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabel {
    task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    task: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    task: String,
    action: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeniedLabels {
    task: String,
    capability: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrapLabels {
    plugin: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NoticeLabels {
    route: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GuestLabels {
    task: String,
    name: String,
    unit: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn duration_histogram() -> Histogram {
    // 1 ms to ~4 s in 10 buckets: fine enough for an SLO, small enough that 1,000 tasks do not
    // make a scrape megabytes long.
    Histogram::new(exponential_buckets(0.001, 2.5, 10))
}

/// The registry and the families it holds.
pub struct Metrics {
    registry: Registry,
    policies: BTreeMap<String, PolicyConfig>,
    success: Family<TaskLabel, Gauge>,
    duration: Family<TaskLabel, Histogram, fn() -> Histogram>,
    state: Family<StateLabels, Gauge>,
    paused: Family<TaskLabel, Gauge>,
    restarts: Family<TaskLabel, Counter>,
    actions: Family<ActionLabels, Counter>,
    denied: Family<DeniedLabels, Counter>,
    traps: Family<TrapLabels, Counter>,
    backoff: Family<TaskLabel, FloatGauge>,
    next_action: Family<TaskLabel, FloatGauge>,
    guest: Family<GuestLabels, FloatGauge>,
    lag: Histogram,
    notices: Family<NoticeLabels, Counter>,
    outbox: Family<RouteLabel, Gauge>,
    /// The guest series each task has, to cap them.
    guest_names: Mutex<BTreeMap<String, BTreeSet<(String, String)>>>,
}

impl Metrics {
    /// The metrics of the tasks with these policies, every per-task series present from the
    /// start (a task that never ran shows `unknown`, not nothing).
    pub fn new(policies: BTreeMap<String, PolicyConfig>) -> Metrics {
        let mut registry = Registry::default();
        let success = Family::<TaskLabel, Gauge>::default();
        let duration: Family<TaskLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        let state = Family::<StateLabels, Gauge>::default();
        let paused = Family::<TaskLabel, Gauge>::default();
        let restarts = Family::<TaskLabel, Counter>::default();
        let actions = Family::<ActionLabels, Counter>::default();
        let denied = Family::<DeniedLabels, Counter>::default();
        let traps = Family::<TrapLabels, Counter>::default();
        let backoff = Family::<TaskLabel, FloatGauge>::default();
        let next_action = Family::<TaskLabel, FloatGauge>::default();
        let guest = Family::<GuestLabels, FloatGauge>::default();
        let build = Family::<VersionLabel, Gauge>::default();
        let lag = duration_histogram();
        let notices = Family::<NoticeLabels, Counter>::default();
        let outbox = Family::<RouteLabel, Gauge>::default();
        build
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register(
            "hmrt_check_success",
            "Whether the task's last check passed (healthy or degraded): 1, or not: 0",
            success.clone(),
        );
        registry.register_with_unit(
            "hmrt_check_duration",
            "How long the task's checks took",
            Unit::Seconds,
            duration.clone(),
        );
        registry.register(
            "hmrt_task_state",
            "The task's state, one-hot over unknown, healthy, degraded, unhealthy, restarting, failed",
            state.clone(),
        );
        registry.register(
            "hmrt_task_paused",
            "Whether a person paused the task's actions",
            paused.clone(),
        );
        registry.register(
            "hmrt_restarts",
            "Actions started for the task (automatic and manual)",
            restarts.clone(),
        );
        registry.register(
            "hmrt_actions",
            "Actions that ended, by action and outcome (ok or failed)",
            actions.clone(),
        );
        registry.register(
            "hmrt_capability_denied",
            "Plugin calls outside the task's grants, by capability",
            denied.clone(),
        );
        registry.register(
            "hmrt_plugin_traps",
            "Plugin calls the sandbox ended (trap, timeout, out_of_memory, instantiate, host)",
            traps.clone(),
        );
        registry.register_with_unit(
            "hmrt_backoff",
            "The delay after the task's latest action before the next may start (0: none)",
            Unit::Seconds,
            backoff.clone(),
        );
        registry.register(
            "hmrt_next_action_timestamp_seconds",
            "When the task's next action may start, unix seconds (0: none pending)",
            next_action.clone(),
        );
        registry.register(
            "hmrt_check_metric",
            "A number the task's check reported, by its name and unit",
            guest.clone(),
        );
        registry.register_with_unit(
            "hmrt_scheduler_lag",
            "How long after its due time each check started",
            Unit::Seconds,
            lag.clone(),
        );
        registry.register(
            "hmrt_notices",
            "Alert notice delivery attempts, by route and outcome (delivered, failed, dropped)",
            notices.clone(),
        );
        registry.register(
            "hmrt_outbox_pending",
            "Alert notices waiting for delivery, by route",
            outbox.clone(),
        );
        registry.register("hmrt_build_info", "hmrt's version", build);
        let metrics = Metrics {
            registry,
            policies,
            success,
            duration,
            state,
            paused,
            restarts,
            actions,
            denied,
            traps,
            backoff,
            next_action,
            guest,
            lag,
            notices,
            outbox,
            guest_names: Mutex::new(BTreeMap::new()),
        };
        for task in metrics.policies.keys() {
            metrics.set_state(task, &TaskState::default());
            let _ = metrics.restarts.get_or_create(&task_label(task));
        }
        metrics
    }

    /// The OpenMetrics text of every series.
    pub fn openmetrics(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The same series in Prometheus's classic text format (0.0.4), for clients that do not ask
    /// for OpenMetrics (`curl`, `promtool check metrics`).
    pub fn prometheus_text(&self) -> String {
        classic_text(&self.openmetrics())
    }

    fn set_state(&self, task: &str, state: &TaskState) {
        for s in STATES {
            let labels = StateLabels {
                task: task.to_string(),
                state: s.as_str(),
            };
            self.state
                .get_or_create(&labels)
                .set(i64::from(state.state() == s));
        }
        self.paused
            .get_or_create(&task_label(task))
            .set(i64::from(state.is_paused()));
        let Some(policy) = self.policies.get(task) else {
            return;
        };
        let view = state.view(task, policy, Timestamp(0));
        let delay = policy.backoff.base_delay(view.backoff_position);
        self.backoff
            .get_or_create(&task_label(task))
            .set(delay.as_secs_f64());
        let next = super::board::pending_action(&view).map_or(0.0, |at| at.0 as f64 / 1000.0);
        self.next_action.get_or_create(&task_label(task)).set(next);
    }

    fn set_guest_metrics(&self, task: &str, metrics: &[super::Metric]) {
        let mut names = crate::sync::lock(&self.guest_names);
        let known = names.entry(task.to_string()).or_default();
        for metric in metrics {
            let key = (label_safe(&metric.name), label_safe(&metric.unit));
            if !known.contains(&key) {
                if known.len() >= MAX_GUEST_SERIES {
                    continue;
                }
                known.insert(key.clone());
            }
            let labels = GuestLabels {
                task: task.to_string(),
                name: key.0,
                unit: key.1,
            };
            self.guest.get_or_create(&labels).set(metric.value);
        }
    }
}

fn task_label(task: &str) -> TaskLabel {
    TaskLabel {
        task: task.to_string(),
    }
}

/// A guest's text as a label value: ASCII letters, digits and `_.:-/%` kept, anything else `_`,
/// at most [`MAX_GUEST_LABEL`] bytes.
fn label_safe(text: &str) -> String {
    text.chars()
        .take(MAX_GUEST_LABEL)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.:-/%".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// OpenMetrics text to the classic format: counter families are named with their `_total`
/// (classic parsers look the samples' family up by the sample name), and the OpenMetrics-only
/// `# UNIT` and `# EOF` lines go.
fn classic_text(openmetrics: &str) -> String {
    let counters: BTreeSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# TYPE ", "# HELP "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

impl Subscriber for Metrics {
    fn on_event(&self, _at: Timestamp, event: &Event) {
        match event {
            Event::CheckFinished {
                task,
                plugin,
                status,
                metrics,
                elapsed,
                failure,
                late,
                ..
            } => {
                self.lag.observe(late.as_secs_f64());
                let up = matches!(status, Status::Healthy | Status::Degraded);
                self.success
                    .get_or_create(&task_label(task))
                    .set(i64::from(up));
                self.duration
                    .get_or_create(&task_label(task))
                    .observe(elapsed.as_secs_f64());
                if let Some(kind) = failure {
                    let labels = TrapLabels {
                        plugin: label_safe(plugin),
                        kind,
                    };
                    self.traps.get_or_create(&labels).inc();
                }
                self.set_guest_metrics(task, metrics);
            }
            Event::TaskState { task, state, .. } => self.set_state(task, state),
            Event::ActionStarted { task, .. } => {
                self.restarts.get_or_create(&task_label(task)).inc();
            }
            Event::ActionFinished {
                task,
                action,
                ok,
                failure,
                ..
            } => {
                let labels = ActionLabels {
                    task: task.clone(),
                    action: label_safe(action),
                    outcome: if *ok { "ok" } else { "failed" },
                };
                self.actions.get_or_create(&labels).inc();
                if let Some(kind) = failure {
                    let labels = TrapLabels {
                        plugin: label_safe(action),
                        kind,
                    };
                    self.traps.get_or_create(&labels).inc();
                }
            }
            Event::NoticeSent { route, outcome, .. } => {
                let labels = NoticeLabels {
                    route: route.clone(),
                    outcome,
                };
                self.notices.get_or_create(&labels).inc();
            }
            Event::OutboxPending { route, pending } => {
                let labels = RouteLabel {
                    route: route.clone(),
                };
                self.outbox
                    .get_or_create(&labels)
                    .set(i64::try_from(*pending).unwrap_or(i64::MAX));
            }
            Event::CallDenied { task, denial } => {
                let labels = DeniedLabels {
                    task: task.clone(),
                    capability: denial.capability.to_string(),
                };
                self.denied.get_or_create(&labels).inc_by(denial.count);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::{Capability, Denial};
    use crate::events::Metric;
    use std::time::Duration;

    fn check(task: &str, metrics: Vec<Metric>, failure: Option<&'static str>) -> Event {
        Event::CheckFinished {
            task: task.into(),
            plugin: "hostile".into(),
            status: Status::Unhealthy,
            message: String::new(),
            metrics,
            elapsed: Duration::from_millis(3),
            failure,
            late: Duration::ZERO,
        }
    }

    #[test]
    fn traps_denials_and_guest_metrics_are_counted_and_contained() {
        let policies = [("web".to_string(), PolicyConfig::default())].into();
        let m = Metrics::new(policies);
        m.on_event(Timestamp(0), &check("web", Vec::new(), Some("trap")));
        m.on_event(
            Timestamp(0),
            &Event::CallDenied {
                task: "web".into(),
                denial: Denial {
                    capability: Capability::Http,
                    asked: "http://elsewhere".into(),
                    count: 1,
                },
            },
        );
        let forged = Metric {
            name: "x\"} 1\nhmrt_build_info{version=\"evil\"".into(),
            value: 1.0,
            unit: "ms".into(),
        };
        let many: Vec<Metric> = (0..100)
            .map(|i| Metric {
                name: format!("m{i}"),
                value: 1.0,
                unit: String::new(),
            })
            .collect();
        m.on_event(Timestamp(0), &check("web", vec![forged], None));
        m.on_event(Timestamp(0), &check("web", many, None));
        let text = m.prometheus_text();
        assert!(
            text.contains("hmrt_plugin_traps_total{plugin=\"hostile\",kind=\"trap\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("hmrt_capability_denied_total{task=\"web\",capability=\"http\"} 1"),
            "{text}"
        );
        assert!(
            !text.contains("evil\""),
            "a guest's text stays inside its label: {text}"
        );
        assert_eq!(
            text.matches("hmrt_check_metric{").count(),
            MAX_GUEST_SERIES,
            "{text}"
        );
        assert!(
            text.contains("hmrt_task_state{task=\"web\",state=\"unknown\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn guest_text_never_leaves_its_label() {
        assert_eq!(label_safe("latency_ms"), "latency_ms");
        assert_eq!(label_safe("a\"} 1\nforged 2"), "a___1_forged_2");
        assert_eq!(label_safe(&"x".repeat(100)).len(), MAX_GUEST_LABEL);
    }

    #[test]
    fn classic_text_names_counter_families_by_their_samples() {
        let om = "# HELP c Things.\n# TYPE c counter\nc_total 1\n# TYPE d histogram\n# UNIT d seconds\nd_count 1\n# EOF\n";
        assert_eq!(
            classic_text(om),
            "# HELP c_total Things.\n# TYPE c_total counter\nc_total 1\n# TYPE d histogram\nd_count 1\n"
        );
    }
}
