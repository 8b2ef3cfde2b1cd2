//! The settings a task and `[defaults]` share, written once as a table of key, type and target.
//!
//! Every setting is read the same way wherever it is written (a task, `[defaults]`, their
//! `restart` and `flapping` sections) and resolved the same way: the task's value if it wrote
//! one, else `[defaults]`'s, else the built-in default. A new setting is one row of
//! [`SETTINGS`]; nothing else lists the keys.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hmrt_policy::{Flapping, MAX_FAILURE_WINDOW, PolicyConfig};

use super::{At, Parser, Scope, Span, Table};
use crate::{ConfigError, DEFAULT_INTERVAL, DEFAULT_MEMORY, DEFAULT_TIMEOUT};

/// A task's settings, resolved: what the task wrote, else what `[defaults]` wrote, else built in.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Resolved {
    pub(super) interval: Duration,
    pub(super) timeout: Duration,
    pub(super) memory: u64,
    /// The policy's settings; `flapping`, `depends_on` and `has_action` are set apart.
    pub(super) policy: PolicyConfig,
    /// `flapping.changes` and `flapping.window`, resolved one by one: the policy takes them only
    /// together, see [`Parser::flapping`].
    flapping_changes: Option<u32>,
    flapping_window: Option<Duration>,
}

impl Resolved {
    fn builtin() -> Resolved {
        Resolved {
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            memory: DEFAULT_MEMORY,
            policy: PolicyConfig::default(),
            flapping_changes: None,
            flapping_window: None,
        }
    }
}

/// How a number setting is bounded.
#[derive(Debug, Clone, Copy)]
enum NumberRule {
    /// At least 1: a backoff never shrinks.
    AtLeastOne,
    /// From 0 up to, not including, 1.
    Fraction,
}

impl NumberRule {
    fn check(self, v: f64) -> Result<(), String> {
        match self {
            NumberRule::AtLeastOne if v < 1.0 => Err(format!("must be at least 1 (found {v})")),
            NumberRule::Fraction if !(0.0..1.0).contains(&v) => {
                Err(format!("must be at least 0 and less than 1 (found {v})"))
            }
            _ => Ok(()),
        }
    }
}

/// How a setting is written and bounded, and the setter that puts its value in [`Resolved`].
#[derive(Clone, Copy)]
enum Target {
    /// A duration string; `nonzero` refuses `"0s"`.
    Duration {
        nonzero: bool,
        to: fn(&mut Resolved, Duration),
    },
    /// An integer from `min` to `max`.
    Count {
        min: u32,
        max: u32,
        to: fn(&mut Resolved, u32),
    },
    /// A finite number within `rule`.
    Number {
        rule: NumberRule,
        to: fn(&mut Resolved, f64),
    },
    /// A memory size.
    Size { to: fn(&mut Resolved, u64) },
}

/// One setting: its key inside a task (`section.key` for the `restart` and `flapping` tables)
/// and its target.
struct Setting {
    key: &'static str,
    target: Target,
}

const fn duration(key: &'static str, nonzero: bool, to: fn(&mut Resolved, Duration)) -> Setting {
    let target = Target::Duration { nonzero, to };
    Setting { key, target }
}

const fn count(key: &'static str, min: u32, max: u32, to: fn(&mut Resolved, u32)) -> Setting {
    let target = Target::Count { min, max, to };
    Setting { key, target }
}

const fn number(key: &'static str, rule: NumberRule, to: fn(&mut Resolved, f64)) -> Setting {
    let target = Target::Number { rule, to };
    Setting { key, target }
}

/// For a duration where zero would mean "always" or "never": an interval, a window.
const NONZERO: bool = true;
const ZERO_OK: bool = false;
const ANY: u32 = u32::MAX;

/// Every setting a task and `[defaults]` share, in the order "expected one of" lists them. One
/// row each, so the table reads as one.
#[rustfmt::skip]
const SETTINGS: &[Setting] = &[
    duration("interval", NONZERO, |r, d| r.interval = d),
    duration("timeout", NONZERO, |r, d| r.timeout = d),
    count("failure_threshold", 1, ANY, |r, n| r.policy.failure_threshold = n),
    count("success_threshold", 1, ANY, |r, n| r.policy.success_threshold = n),
    // The policy keeps this many results per task, and so bounds the window.
    count("failure_window", 1, MAX_FAILURE_WINDOW, |r, n| r.policy.failure_window = Some(n)),
    Setting { key: "memory", target: Target::Size { to: |r, n| r.memory = n } },
    duration("start_period", ZERO_OK, |r, d| r.policy.start_period = d),
    duration("restart.backoff", ZERO_OK, |r, d| r.policy.backoff.initial = d),
    duration("restart.max_backoff", ZERO_OK, |r, d| r.policy.backoff.max = d),
    number("restart.factor", NumberRule::AtLeastOne, |r, x| r.policy.backoff.factor = x),
    number("restart.jitter", NumberRule::Fraction, |r, x| r.policy.backoff.jitter = x),
    count("restart.max_restarts", 0, ANY, |r, n| r.policy.max_restarts = n),
    duration("restart.window", NONZERO, |r, d| r.policy.restart_window = d),
    duration("restart.reset_after", ZERO_OK, |r, d| r.policy.reset_after = d),
    duration("restart.rearm_after", NONZERO, |r, d| r.policy.rearm_after = Some(d)),
    count("flapping.changes", 1, ANY, |r, n| r.flapping_changes = Some(n)),
    duration("flapping.window", NONZERO, |r, d| r.flapping_window = Some(d)),
];

/// A setting's value as read.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SettingValue {
    Duration(Duration),
    Count(u32),
    Number(f64),
    Size(u64),
}

impl Target {
    /// Puts `value` where the setting goes.
    fn apply(self, r: &mut Resolved, value: SettingValue) {
        use SettingValue as V;
        match (self, value) {
            (Target::Duration { to, .. }, V::Duration(d)) => to(r, d),
            (Target::Count { to, .. }, V::Count(n)) => to(r, n),
            (Target::Number { to, .. }, V::Number(x)) => to(r, x),
            (Target::Size { to }, V::Size(n)) => to(r, n),
            // Every value is read by its own setting's target (`Parser::setting`), so the types
            // always agree.
            _ => {}
        }
    }
}

/// A setting as written: its value, where, and the key errors name it by.
#[derive(Debug, Clone)]
pub(super) struct Val {
    v: SettingValue,
    span: Span,
    /// Relative to the task, or from the top of the file for `[defaults]`.
    key: String,
    from_defaults: bool,
}

/// The settings one table wrote (a task, or `[defaults]`).
#[derive(Debug, Default)]
pub(super) struct Layer {
    /// By setting key (`"restart.backoff"`).
    values: BTreeMap<&'static str, Val>,
    /// Where each section (`restart`, `flapping`) is written, and its key as errors name it.
    sections: BTreeMap<&'static str, (Span, String)>,
    /// Every setting key written, even with a value that was refused.
    written: BTreeSet<&'static str>,
}

impl Layer {
    fn written(&self, key: &str) -> bool {
        self.written.contains(key)
    }
}

/// The keys a task or `[defaults]` may hold for settings: plain settings and sections.
pub(super) fn keys() -> Vec<&'static str> {
    let mut keys = Vec::new();
    for setting in SETTINGS {
        let top = setting.key.split_once('.').map_or(setting.key, |(s, _)| s);
        if !keys.contains(&top) {
            keys.push(top);
        }
    }
    keys
}

/// The keys a section may hold.
fn section_keys(section: &str) -> Vec<&'static str> {
    SETTINGS
        .iter()
        .filter_map(|s| s.key.strip_prefix(section)?.strip_prefix('.'))
        .collect()
}

/// The task's settings laid over `[defaults]`'s over the built-in ones.
pub(super) fn resolve(task: &Layer, defaults: &Layer) -> Resolved {
    let mut r = Resolved::builtin();
    for setting in SETTINGS {
        if let Some(val) = origin(task, defaults, setting.key) {
            setting.target.apply(&mut r, val.v);
        }
    }
    r
}

/// Where the resolved value of `key` comes from, unless it is built in.
fn origin<'l>(task: &'l Layer, defaults: &'l Layer, key: &str) -> Option<&'l Val> {
    task.values.get(key).or_else(|| defaults.values.get(key))
}

/// Which values a cross-field check may report at: while checking `[defaults]` on its own, its
/// values; while checking a task, only the task's own values, so that a conflict inside
/// `[defaults]` is reported once, not once per task.
pub(super) enum Pass<'a> {
    Defaults,
    Task(&'a Scope),
}

impl Parser<'_> {
    /// Reads every setting `t` (a task's table or `[defaults]`) writes, each checked on its own.
    pub(super) fn settings(&mut self, t: &Table<'_>, from_defaults: bool) -> Layer {
        let mut layer = Layer::default();
        let mut sections = BTreeMap::new();
        for setting in SETTINGS {
            let Some((section, _)) = setting.key.split_once('.') else {
                continue;
            };
            if sections.contains_key(section) {
                continue;
            }
            let table = self.table(t, section);
            if let Some(table) = &table {
                self.check_keys(table, &section_keys(section), |_| None);
                let at = (table.span.clone(), table.scope.prefix.clone());
                layer.sections.insert(section, at);
            }
            sections.insert(section, table);
        }
        for setting in SETTINGS {
            let (table, key) = match setting.key.split_once('.') {
                None => (t, setting.key),
                Some((section, key)) => match sections.get(section) {
                    Some(Some(table)) => (table, key),
                    _ => continue,
                },
            };
            if table.get(key).is_some() {
                layer.written.insert(setting.key);
            }
            if let Some(at) = self.setting(table, key, setting.target) {
                let val = Val {
                    v: at.v,
                    span: at.span,
                    key: table.scope.key(key),
                    from_defaults,
                };
                layer.values.insert(setting.key, val);
            }
        }
        layer
    }

    /// Reads one setting the way its target says.
    fn setting(&mut self, t: &Table<'_>, key: &str, target: Target) -> Option<At<SettingValue>> {
        use SettingValue as V;
        Some(match target {
            Target::Duration { nonzero, .. } => self.duration(t, key, nonzero)?.map(V::Duration),
            Target::Count { min, max, .. } => self.count(t, key, min, max)?.map(V::Count),
            Target::Number { rule, .. } => {
                let n = self.float(t, key)?;
                if let Err(message) = rule.check(n.v) {
                    self.error(&n.span, &t.scope, key, message);
                    return None;
                }
                n.map(V::Number)
            }
            Target::Size { .. } => self.memory(t, key)?.map(V::Size),
        })
    }

    /// Checks that need two settings, on `r`: the task's settings laid over `[defaults]`.
    pub(super) fn cross_checks(
        &mut self,
        r: &Resolved,
        task: &Layer,
        defaults: &Layer,
        pass: &Pass<'_>,
    ) {
        let origin = |key| origin(task, defaults, key);
        if let Some(window) = r.policy.failure_window
            && window < r.policy.failure_threshold
        {
            let (window_at, threshold_at) = (origin("failure_window"), origin("failure_threshold"));
            let message = format!(
                "failure_window must be at least failure_threshold: failure_window is {}, \
                 failure_threshold is {}",
                self.describe(window_at, window),
                self.describe(threshold_at, r.policy.failure_threshold),
            );
            self.report_pair(pass, window_at, threshold_at, message);
        }
        let backoff = &r.policy.backoff;
        if backoff.max < backoff.initial {
            let (max_at, initial_at) = (origin("restart.max_backoff"), origin("restart.backoff"));
            let message = format!(
                "restart.max_backoff must be at least restart.backoff: max_backoff is {}, \
                 backoff is {}",
                self.describe(max_at, hmrt_domain::duration::format(backoff.max)),
                self.describe(initial_at, hmrt_domain::duration::format(backoff.initial)),
            );
            self.report_pair(pass, max_at, initial_at, message);
        }
    }

    /// `"3 (line 7)"`, `"3 ([defaults], line 4)"` or `"3 (built-in default)"`.
    fn describe(&self, origin: Option<&Val>, value: impl std::fmt::Display) -> String {
        match origin {
            Some(v) if v.from_defaults => {
                format!("{value} ([defaults], line {})", self.line(&v.span))
            }
            Some(v) => format!("{value} (line {})", self.line(&v.span)),
            None => format!("{value} (built-in default)"),
        }
    }

    /// Reports a conflict between `a` and `b` at `a` if this pass may report at it, else at `b`.
    fn report_pair(&mut self, pass: &Pass<'_>, a: Option<&Val>, b: Option<&Val>, message: String) {
        let (wanted_defaults, task) = match pass {
            Pass::Defaults => (true, None),
            Pass::Task(scope) => (false, scope.task.clone()),
        };
        let target = [a, b]
            .into_iter()
            .flatten()
            .find(|v| v.from_defaults == wanted_defaults);
        if let Some(target) = target {
            let mut error = ConfigError::new(self.loc(&target.span), target.key.clone(), message);
            error.task = task;
            self.errors.push(error);
        }
    }

    /// Reports a problem `PolicyConfig::validate` found in a task's resolved policy, at the
    /// value of `key` that the task or `[defaults]` wrote, else at the task's header. The
    /// config's own rules cover what the policy checks, so this only reports a rule they do
    /// not (yet) have: a config that loads is one the engine accepts at start. A problem with
    /// a key the config has already reported is left out (a conflict of two values is found
    /// by both), and so is one in `[defaults]` reported for an earlier task.
    pub(super) fn policy_problem(
        &mut self,
        task: &Layer,
        defaults: &Layer,
        scope: &Scope,
        header: &Span,
        key: &str,
        message: String,
    ) {
        let (span, scope, key) = match origin(task, defaults, key) {
            Some(v) if v.from_defaults => (&v.span, Scope::default(), v.key.as_str()),
            Some(v) => (&v.span, scope.clone(), v.key.as_str()),
            None => (header, scope.clone(), key),
        };
        let reported = |e: &ConfigError| e.task == scope.task && e.key == key;
        if !self.errors.iter().any(reported) {
            self.error(span, &scope, key, message);
        }
    }

    /// The flapping policy, from `flapping.changes` and `flapping.window` resolved one by one
    /// (a task may write one and take the other from `[defaults]`). The policy needs both, so
    /// a key neither table writes is reported at the flapping table nearest the task: its own,
    /// or else the one in `[defaults]`, which is then reported only once (`defaults_reported`).
    pub(super) fn flapping(
        &mut self,
        r: &Resolved,
        task: &Layer,
        defaults: &Layer,
        scope: &Scope,
        defaults_reported: &mut bool,
    ) -> Option<Flapping> {
        if let (Some(max_changes), Some(window)) = (r.flapping_changes, r.flapping_window) {
            return Some(Flapping {
                max_changes,
                window,
            });
        }
        let (span, prefix, scope) = match task.sections.get("flapping") {
            Some((span, prefix)) => (span.clone(), prefix.clone(), scope.clone()),
            None => {
                let (span, prefix) = defaults.sections.get("flapping")?;
                if std::mem::replace(defaults_reported, true) {
                    return None;
                }
                (span.clone(), prefix.clone(), Scope::default())
            }
        };
        for field in ["changes", "window"] {
            // A key written with a bad value is reported as such, not as missing too.
            let key = format!("flapping.{field}");
            if !(task.written(&key) || defaults.written(&key)) {
                let message = "missing required key (flapping needs both changes and window)";
                self.error(&span, &scope, &format!("{prefix}.{field}"), message);
            }
        }
        None
    }
}
