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

/// A backoff never shrinks.
fn at_least_one(v: f64) -> Result<f64, String> {
    match v < 1.0 {
        true => Err(format!("must be at least 1 (found {v})")),
        false => Ok(v),
    }
}

fn fraction(v: f64) -> Result<f64, String> {
    match (0.0..1.0).contains(&v) {
        true => Ok(v),
        false => Err(format!("must be at least 0 and less than 1 (found {v})")),
    }
}

/// How a setting is written and bounded, and the setter that puts its value in [`Resolved`].
#[derive(Clone, Copy)]
enum Target {
    /// A duration string; `NONZERO` refuses `"0s"`.
    Duration(bool, fn(&mut Resolved, Duration)),
    /// An integer from the first bound to the second.
    Count(u32, u32, fn(&mut Resolved, u32)),
    /// A finite number the check accepts.
    Number(fn(f64) -> Result<f64, String>, fn(&mut Resolved, f64)),
    /// A memory size.
    Size(fn(&mut Resolved, u64)),
}
use Target as T;

/// For a duration where zero would mean "always" or "never": an interval, a window.
const NONZERO: bool = true;
const ZERO_OK: bool = false;
const ANY: u32 = u32::MAX;

/// Every setting a task and `[defaults]` share, by its key inside a task (`section.key` for the
/// `restart` and `flapping` tables), in the order "expected one of" lists them.
#[rustfmt::skip]
const SETTINGS: &[(&str, Target)] = &[
    ("interval", T::Duration(NONZERO, |r, d| r.interval = d)),
    ("timeout", T::Duration(NONZERO, |r, d| r.timeout = d)),
    ("failure_threshold", T::Count(1, ANY, |r, n| r.policy.failure_threshold = n)),
    ("success_threshold", T::Count(1, ANY, |r, n| r.policy.success_threshold = n)),
    // The policy keeps this many results per task, and so bounds the window.
    ("failure_window", T::Count(1, MAX_FAILURE_WINDOW, |r, n| r.policy.failure_window = Some(n))),
    ("memory", T::Size(|r, n| r.memory = n)),
    ("start_period", T::Duration(ZERO_OK, |r, d| r.policy.start_period = d)),
    ("restart.backoff", T::Duration(ZERO_OK, |r, d| r.policy.backoff.initial = d)),
    ("restart.max_backoff", T::Duration(ZERO_OK, |r, d| r.policy.backoff.max = d)),
    ("restart.factor", T::Number(at_least_one, |r, x| r.policy.backoff.factor = x)),
    ("restart.jitter", T::Number(fraction, |r, x| r.policy.backoff.jitter = x)),
    ("restart.max_restarts", T::Count(0, ANY, |r, n| r.policy.max_restarts = n)),
    ("restart.window", T::Duration(NONZERO, |r, d| r.policy.restart_window = d)),
    ("restart.reset_after", T::Duration(ZERO_OK, |r, d| r.policy.reset_after = d)),
    ("restart.rearm_after", T::Duration(NONZERO, |r, d| r.policy.rearm_after = Some(d))),
    ("flapping.changes", T::Count(1, ANY, |r, n| r.flapping_changes = Some(n))),
    ("flapping.window", T::Duration(NONZERO, |r, d| r.flapping_window = Some(d))),
];

/// Puts a setting's value, as read, where it goes in [`Resolved`].
type Setter = Box<dyn Fn(&mut Resolved)>;

fn setter<V: Copy + 'static>(to: fn(&mut Resolved, V), at: At<V>) -> At<Setter> {
    at.map(|v| Box::new(move |r: &mut Resolved| to(r, v)) as Setter)
}

/// A setting as written: its value, where, and the key errors name it by.
pub(super) struct Val {
    set: Setter,
    span: Span,
    /// Relative to the task, or from the top of the file for `[defaults]`.
    key: String,
    from_defaults: bool,
}

/// The settings one table wrote (a task, or `[defaults]`).
#[derive(Default)]
pub(super) struct Layer {
    /// By setting key (`"restart.backoff"`).
    values: BTreeMap<&'static str, Val>,
    /// Where each section (`restart`, `flapping`) is written, and its key as errors name it.
    sections: BTreeMap<&'static str, (Span, String)>,
    /// Every setting key written, even with a value that was refused.
    written: BTreeSet<&'static str>,
}

/// The keys a task or `[defaults]` may hold for settings: plain settings and sections.
pub(super) fn keys() -> Vec<&'static str> {
    let mut keys = Vec::new();
    for (key, _) in SETTINGS {
        let top = key.split_once('.').map_or(*key, |(s, _)| s);
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
        .filter_map(|(key, _)| key.strip_prefix(section)?.strip_prefix('.'))
        .collect()
}

/// The task's settings laid over `[defaults]`'s over the built-in ones.
pub(super) fn resolve(task: &Layer, defaults: &Layer) -> Resolved {
    let mut r = Resolved::builtin();
    for (key, _) in SETTINGS {
        if let Some(val) = origin(task, defaults, key) {
            (val.set)(&mut r);
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
        for section in keys() {
            let inner = section_keys(section);
            if let Some(table) = (!inner.is_empty())
                .then(|| self.table(t, section))
                .flatten()
            {
                self.check_keys(&table, &inner, |_| None);
                let at = (table.span.clone(), table.scope.prefix.clone());
                layer.sections.insert(section, at);
                sections.insert(section, table);
            }
        }
        for &(name, target) in SETTINGS {
            let (table, key) = match name.split_once('.') {
                None => (t, name),
                Some((section, key)) => match sections.get(section) {
                    Some(table) => (table, key),
                    None => continue,
                },
            };
            if table.get(key).is_some() {
                layer.written.insert(name);
            }
            if let Some(at) = self.setting(table, key, target) {
                let (span, key) = (at.span, table.scope.key(key));
                let val = Val {
                    set: at.v,
                    span,
                    key,
                    from_defaults,
                };
                layer.values.insert(name, val);
            }
        }
        layer
    }

    /// Reads one setting the way its target says.
    fn setting(&mut self, t: &Table<'_>, key: &str, target: Target) -> Option<At<Setter>> {
        Some(match target {
            T::Duration(nonzero, to) => setter(to, self.duration(t, key, nonzero)?),
            T::Count(min, max, to) => setter(to, self.count(t, key, min, max)?),
            T::Number(check, to) => {
                let n = self.float(t, key)?;
                setter(to, self.ok(n.map(check), &t.scope, key)?)
            }
            T::Size(to) => setter(to, self.memory(t, key)?),
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
            if !(task.written.contains(key.as_str()) || defaults.written.contains(key.as_str())) {
                let message = "missing required key (flapping needs both changes and window)";
                self.error(&span, &scope, &format!("{prefix}.{field}"), message);
            }
        }
        None
    }
}
