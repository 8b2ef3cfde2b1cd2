//! The walk over the TOML document.
//!
//! It reads toml's span-carrying document tree (`DeTable`) by hand rather than deriving serde
//! structs: serde stops at the first unknown key or wrong type, while this walk records every
//! problem, each at its own key and span, and goes on.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hmrt_policy::{Flapping, PolicyConfig};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::LineIndex;
use crate::grants::{parse_http_origin, parse_tcp_endpoint, resolve_exec};
use crate::values::{parse_duration, parse_serverurl, parse_size};
use crate::{
    ActionConfig, Config, ConfigError, ConfigErrors, DEFAULT_ACTION_TIMEOUT, DEFAULT_INTERVAL,
    DEFAULT_MAX_CONCURRENCY, DEFAULT_MEMORY, DEFAULT_TIMEOUT, ExecProgram, Grants, HttpOrigin,
    Location, PluginConfig, RuntimeConfig, SupervisorConfig, SupervisorProgram, TaskConfig,
    TcpEndpoint,
};

type Value<'i> = Spanned<DeValue<'i>>;
type Span = Range<usize>;

const TOP_KEYS: &[&str] = &["runtime", "supervisor", "defaults", "task"];
const RUNTIME_KEYS: &[&str] = &["plugins_dir", "state_dir", "listen", "max_concurrency"];
const SUPERVISOR_KEYS: &[&str] = &["serverurl", "username", "password"];
/// Keys a task and `[defaults]` share.
const SETTING_KEYS: &[&str] = &[
    "interval",
    "timeout",
    "failure_threshold",
    "success_threshold",
    "failure_window",
    "memory",
    "start_period",
    "restart",
    "flapping",
];
/// Keys only a task may have: they name what is specific to one task.
const TASK_ONLY_KEYS: &[&str] = &[
    "name",
    "program",
    "check",
    "config",
    "grants",
    "on_failure",
    "depends_on",
];
const RESTART_KEYS: &[&str] = &[
    "backoff",
    "max_backoff",
    "factor",
    "jitter",
    "max_restarts",
    "window",
    "reset_after",
    "rearm_after",
];
const FLAPPING_KEYS: &[&str] = &["changes", "window"];
const GRANT_KEYS: &[&str] = &["http", "exec", "supervisor", "tcp"];
const ACTION_KEYS: &[&str] = &["action", "config", "grants", "timeout"];

pub(crate) fn parse(
    text: &str,
    file: &Path,
    path_env: Option<&OsStr>,
) -> Result<Config, ConfigErrors> {
    let lines = LineIndex::new(text, file);
    let root = DeTable::parse(text).map_err(|e| {
        let location = match e.span() {
            Some(span) => lines.locate(&span),
            None => Location::whole_file(file),
        };
        ConfigError::new(
            location,
            "",
            format!("TOML syntax: {}", e.message().trim_end()),
        )
    })?;
    let mut parser = Parser {
        file,
        dir: file.parent().unwrap_or(Path::new("")).to_path_buf(),
        lines,
        path_env,
        errors: Vec::new(),
    };
    let config = parser.document(root.get_ref());
    if parser.errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors::new(parser.errors))
    }
}

/// Where an error is reported: the task it belongs to (if any) and the key path of the table
/// being read, relative to the task.
#[derive(Debug, Clone)]
struct Scope {
    task: Option<String>,
    prefix: String,
}

impl Scope {
    fn root() -> Scope {
        Scope {
            task: None,
            prefix: String::new(),
        }
    }

    fn task(name: &str) -> Scope {
        Scope {
            task: Some(name.to_string()),
            prefix: String::new(),
        }
    }

    fn key(&self, key: &str) -> String {
        match (self.prefix.is_empty(), key.is_empty()) {
            (true, _) => key.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}.{key}", self.prefix),
        }
    }

    fn child(&self, key: &str) -> Scope {
        Scope {
            task: self.task.clone(),
            prefix: self.key(key),
        }
    }
}

/// A table being read, with its span and scope.
struct Table<'t, 'i> {
    map: &'t DeTable<'i>,
    span: Span,
    scope: Scope,
}

impl<'t, 'i> Table<'t, 'i> {
    fn get(&self, key: &str) -> Option<&'t Value<'i>> {
        self.map.get(key)
    }
}

/// A value and where it is written.
#[derive(Debug, Clone)]
struct At<T> {
    v: T,
    span: Span,
}

/// A setting that a task or `[defaults]` wrote.
#[derive(Debug, Clone)]
struct Val<T> {
    v: T,
    span: Span,
    /// The key as errors name it, relative to the scope it was read in.
    key: String,
    from_defaults: bool,
}

/// The settings a task and `[defaults]` share, as written (absent = not written).
#[derive(Debug, Clone, Default)]
struct Settings {
    interval: Option<Val<Duration>>,
    timeout: Option<Val<Duration>>,
    failure_threshold: Option<Val<u32>>,
    success_threshold: Option<Val<u32>>,
    failure_window: Option<Val<u32>>,
    memory: Option<Val<u64>>,
    start_period: Option<Val<Duration>>,
    restart: RestartSettings,
    flapping: Option<FlappingSettings>,
}

#[derive(Debug, Clone, Default)]
struct RestartSettings {
    backoff: Option<Val<Duration>>,
    max_backoff: Option<Val<Duration>>,
    factor: Option<Val<f64>>,
    jitter: Option<Val<f64>>,
    max_restarts: Option<Val<u32>>,
    window: Option<Val<Duration>>,
    reset_after: Option<Val<Duration>>,
    rearm_after: Option<Val<Duration>>,
}

#[derive(Debug, Clone)]
struct FlappingSettings {
    span: Span,
    key: String,
    changes: Option<Val<u32>>,
    window: Option<Val<Duration>>,
}

/// The task's value if it wrote one, else `[defaults]`'s.
fn pick<'a, T>(task: &'a Option<Val<T>>, defaults: &'a Option<Val<T>>) -> Option<&'a Val<T>> {
    task.as_ref().or(defaults.as_ref())
}

fn pick_or<T: Copy>(task: &Option<Val<T>>, defaults: &Option<Val<T>>, builtin: T) -> T {
    pick(task, defaults).map_or(builtin, |v| v.v)
}

/// Which values a cross-field check may report at: while checking `[defaults]` on its own, its
/// values; while checking a task, only the task's own values, so that a conflict inside
/// `[defaults]` is reported once, not once per task.
enum Pass<'a> {
    Defaults,
    Task(&'a Scope),
}

/// A `[[task]]` as read, before names, dependencies and defaults are resolved across tasks.
struct RawTask {
    scope: Scope,
    span: Span,
    name: Option<At<String>>,
    program: Option<At<String>>,
    check: Option<At<String>>,
    config: PluginConfig,
    grants: Grants,
    on_failure: Option<ActionConfig>,
    depends_on: Vec<At<String>>,
    settings: Settings,
}

enum Positive {
    ZeroAllowed,
    NonZero,
}

struct Parser<'a> {
    file: &'a Path,
    dir: PathBuf,
    lines: LineIndex<'a>,
    path_env: Option<&'a OsStr>,
    errors: Vec<ConfigError>,
}

fn kind(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// Levenshtein distance, for "did you mean" on unknown keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

fn valid_task_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A JSON pointer token (RFC 6901).
fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn show_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl<'a> Parser<'a> {
    fn loc(&self, span: &Span) -> Location {
        self.lines.locate(span)
    }

    fn line(&self, span: &Span) -> usize {
        self.loc(span).line
    }

    /// Records an error at `span` about `key` (relative to `scope`).
    fn error(&mut self, span: &Span, scope: &Scope, key: &str, message: impl Into<String>) {
        let mut error = ConfigError::new(self.loc(span), scope.key(key), message);
        error.task = scope.task.clone();
        self.errors.push(error);
    }

    fn type_error(&mut self, value: &Value<'_>, scope: &Scope, key: &str, expected: &str) {
        let found = kind(value.get_ref());
        self.error(
            &value.span(),
            scope,
            key,
            format!("expected {expected}, found {found}"),
        );
    }

    fn missing(&mut self, table: &Table<'_, '_>, key: &str) {
        self.error(&table.span, &table.scope, key, "missing required key");
    }

    /// Reports every key of `table` not in `allowed`; `special` may give a better message for a
    /// key that is known but misplaced.
    fn check_keys(
        &mut self,
        table: &Table<'_, '_>,
        allowed: &[&str],
        special: impl Fn(&str) -> Option<String>,
    ) {
        for (key, _) in table.map.iter() {
            let name: &str = key.get_ref();
            if allowed.contains(&name) {
                continue;
            }
            let message = special(name).unwrap_or_else(|| {
                let closest = allowed
                    .iter()
                    .map(|a| (edit_distance(name, a), *a))
                    .filter(|(d, a)| *d <= 2.min(a.len() / 2))
                    .min();
                match closest {
                    Some((_, a)) => format!("unknown key; did you mean {a:?}?"),
                    None => format!("unknown key; expected one of: {}", allowed.join(", ")),
                }
            });
            self.error(&key.span(), &table.scope, name, message);
        }
    }

    fn table<'t, 'i>(&mut self, table: &Table<'t, 'i>, key: &str) -> Option<Table<'t, 'i>> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::Table(map) => Some(Table {
                map,
                span: value.span(),
                scope: table.scope.child(key),
            }),
            _ => {
                self.type_error(value, &table.scope, key, "a table");
                None
            }
        }
    }

    fn string(&mut self, table: &Table<'_, '_>, key: &str) -> Option<At<String>> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some(At {
                v: s.to_string(),
                span: value.span(),
            }),
            _ => {
                self.type_error(value, &table.scope, key, "a string");
                None
            }
        }
    }

    fn nonempty_string(&mut self, table: &Table<'_, '_>, key: &str) -> Option<At<String>> {
        let s = self.string(table, key)?;
        if s.v.trim().is_empty() {
            self.error(&s.span, &table.scope, key, "must not be empty");
            return None;
        }
        Some(s)
    }

    fn required_string(&mut self, table: &Table<'_, '_>, key: &str) -> Option<At<String>> {
        if table.get(key).is_none() {
            self.missing(table, key);
            return None;
        }
        self.nonempty_string(table, key)
    }

    fn integer(&mut self, table: &Table<'_, '_>, key: &str, min: i64, max: i64) -> Option<At<i64>> {
        let value = table.get(key)?;
        let DeValue::Integer(int) = value.get_ref() else {
            self.type_error(value, &table.scope, key, "an integer");
            return None;
        };
        let span = value.span();
        match i64::from_str_radix(int.as_str(), int.radix()) {
            Ok(n) if n < min => {
                self.error(
                    &span,
                    &table.scope,
                    key,
                    format!("must be at least {min} (found {n})"),
                );
                None
            }
            Ok(n) if n > max => {
                self.error(
                    &span,
                    &table.scope,
                    key,
                    format!("must be at most {max} (found {n})"),
                );
                None
            }
            Ok(n) => Some(At { v: n, span }),
            Err(_) => {
                self.error(&span, &table.scope, key, format!("must be at most {max}"));
                None
            }
        }
    }

    fn u32_at_least(&mut self, table: &Table<'_, '_>, key: &str, min: u32) -> Option<At<u32>> {
        let n = self.integer(table, key, min.into(), u32::MAX.into())?;
        let v = u32::try_from(n.v).ok()?;
        Some(At { v, span: n.span })
    }

    /// A number (a TOML float, or an integer where a whole number is meant) that is finite.
    fn float(&mut self, table: &Table<'_, '_>, key: &str) -> Option<At<f64>> {
        let value = table.get(key)?;
        let span = value.span();
        let parsed = match value.get_ref() {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            _ => {
                self.type_error(value, &table.scope, key, "a number");
                return None;
            }
        };
        match parsed {
            Some(v) if v.is_finite() => Some(At { v, span }),
            _ => {
                self.error(&span, &table.scope, key, "must be a finite number");
                None
            }
        }
    }

    fn duration(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
        positive: Positive,
    ) -> Option<At<Duration>> {
        let value = table.get(key)?;
        let DeValue::String(text) = value.get_ref() else {
            self.type_error(value, &table.scope, key, "a duration string such as \"5s\"");
            return None;
        };
        let span = value.span();
        match parse_duration(text) {
            Ok(d) if d.is_zero() && matches!(positive, Positive::NonZero) => {
                self.error(
                    &span,
                    &table.scope,
                    key,
                    format!("must be longer than 0 (found {text:?})"),
                );
                None
            }
            Ok(v) => Some(At { v, span }),
            Err(message) => {
                self.error(&span, &table.scope, key, message);
                None
            }
        }
    }

    fn memory(&mut self, table: &Table<'_, '_>, key: &str) -> Option<At<u64>> {
        let value = table.get(key)?;
        let span = value.span();
        let size = match value.get_ref() {
            DeValue::String(text) => parse_size(text),
            DeValue::Integer(int) => u64::from_str_radix(int.as_str(), int.radix()).map_err(|_| {
                format!(
                    "invalid size {}: must be a positive number of bytes",
                    int.as_str()
                )
            }),
            _ => {
                self.type_error(
                    value,
                    &table.scope,
                    key,
                    "a size such as \"64MiB\" or a number of bytes",
                );
                return None;
            }
        };
        match size {
            Ok(0) => {
                self.error(&span, &table.scope, key, "must be larger than 0");
                None
            }
            Ok(v) => Some(At { v, span }),
            Err(message) => {
                self.error(&span, &table.scope, key, message);
                None
            }
        }
    }

    /// An array of strings; each element with its index (so an error at one element does not
    /// shift the others' key paths).
    fn string_list(&mut self, table: &Table<'_, '_>, key: &str) -> Vec<(usize, At<String>)> {
        let Some(value) = table.get(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.type_error(value, &table.scope, key, "an array of strings");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            match item.get_ref() {
                DeValue::String(s) if s.trim().is_empty() => {
                    self.error(&item.span(), &table.scope, &item_key, "must not be empty");
                }
                DeValue::String(s) => out.push((
                    i,
                    At {
                        v: s.to_string(),
                        span: item.span(),
                    },
                )),
                _ => self.type_error(item, &table.scope, &item_key, "a string"),
            }
        }
        out
    }

    fn path(&mut self, table: &Table<'_, '_>, key: &str, default: &str) -> PathBuf {
        let written = self.nonempty_string(table, key);
        let path = written.map_or_else(|| PathBuf::from(default), |s| PathBuf::from(s.v));
        if path.is_absolute() {
            path
        } else {
            self.dir.join(path)
        }
    }

    // The document ----------------------------------------------------------------------------

    fn document(&mut self, root: &DeTable<'_>) -> Config {
        let top = Table {
            map: root,
            span: 0..0,
            scope: Scope::root(),
        };
        self.check_keys(&top, TOP_KEYS, |key| {
            (key == "tasks").then(|| "unknown key; tasks are written as [[task]]".to_string())
        });
        let runtime = match self.table(&top, "runtime") {
            Some(t) => self.runtime(&t),
            None => RuntimeConfig {
                plugins_dir: self.dir.join("plugins"),
                state_dir: self.dir.join("state"),
                listen: None,
                max_concurrency: DEFAULT_MAX_CONCURRENCY,
            },
        };
        let supervisor = self
            .table(&top, "supervisor")
            .and_then(|t| self.supervisor(&t));
        let defaults = match self.table(&top, "defaults") {
            Some(t) => {
                self.check_keys(&t, SETTING_KEYS, |key| {
                    TASK_ONLY_KEYS
                        .contains(&key)
                        .then(|| "cannot be set in [defaults]; set it in each [[task]]".to_string())
                });
                self.settings(&t, true)
            }
            None => Settings::default(),
        };
        self.cross_checks(&Settings::default(), &defaults, &Pass::Defaults);
        let raw = self.tasks(&top);
        let tasks = self.resolve(raw, &defaults);
        Config {
            file: self.file.to_path_buf(),
            runtime,
            supervisor,
            tasks,
        }
    }

    fn runtime(&mut self, t: &Table<'_, '_>) -> RuntimeConfig {
        self.check_keys(t, RUNTIME_KEYS, |_| None);
        let plugins_dir = self.path(t, "plugins_dir", "plugins");
        let state_dir = self.path(t, "state_dir", "state");
        let listen = self
            .string(t, "listen")
            .and_then(|s| match s.v.parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.error(
                    &s.span,
                    &t.scope,
                    "listen",
                    format!(
                        "invalid listen address {:?}: expected ip:port, such as \"127.0.0.1:9187\"",
                        s.v
                    ),
                );
                    None
                }
            });
        let max_concurrency = self
            .integer(t, "max_concurrency", 1, i64::from(u32::MAX))
            .and_then(|n| usize::try_from(n.v).ok())
            .unwrap_or(DEFAULT_MAX_CONCURRENCY);
        RuntimeConfig {
            plugins_dir,
            state_dir,
            listen,
            max_concurrency,
        }
    }

    fn supervisor(&mut self, t: &Table<'_, '_>) -> Option<SupervisorConfig> {
        self.check_keys(t, SUPERVISOR_KEYS, |_| None);
        let username = self.string(t, "username").map(|s| s.v);
        let password = self.string(t, "password").map(|s| s.v);
        let url = self.required_string(t, "serverurl")?;
        match parse_serverurl(&url.v) {
            Ok(serverurl) => Some(SupervisorConfig {
                serverurl,
                username,
                password,
                location: self.loc(&url.span),
            }),
            Err(message) => {
                self.error(&url.span, &t.scope, "serverurl", message);
                None
            }
        }
    }

    fn settings(&mut self, t: &Table<'_, '_>, from_defaults: bool) -> Settings {
        fn val<T>(
            t: &Table<'_, '_>,
            key: &str,
            at: Option<At<T>>,
            from_defaults: bool,
        ) -> Option<Val<T>> {
            at.map(|at| Val {
                v: at.v,
                span: at.span,
                key: t.scope.key(key),
                from_defaults,
            })
        }
        let d = from_defaults;
        let mut s = Settings {
            interval: val(
                t,
                "interval",
                self.duration(t, "interval", Positive::NonZero),
                d,
            ),
            timeout: val(
                t,
                "timeout",
                self.duration(t, "timeout", Positive::NonZero),
                d,
            ),
            failure_threshold: val(
                t,
                "failure_threshold",
                self.u32_at_least(t, "failure_threshold", 1),
                d,
            ),
            success_threshold: val(
                t,
                "success_threshold",
                self.u32_at_least(t, "success_threshold", 1),
                d,
            ),
            failure_window: val(
                t,
                "failure_window",
                self.u32_at_least(t, "failure_window", 1),
                d,
            ),
            memory: val(t, "memory", self.memory(t, "memory"), d),
            start_period: val(
                t,
                "start_period",
                self.duration(t, "start_period", Positive::ZeroAllowed),
                d,
            ),
            restart: RestartSettings::default(),
            flapping: None,
        };
        if let Some(r) = self.table(t, "restart") {
            self.check_keys(&r, RESTART_KEYS, |_| None);
            let factor = self.float(&r, "factor").and_then(|f| {
                if f.v >= 1.0 {
                    Some(f)
                } else {
                    self.error(
                        &f.span,
                        &r.scope,
                        "factor",
                        format!("must be at least 1 (found {})", f.v),
                    );
                    None
                }
            });
            let jitter = self.float(&r, "jitter").and_then(|j| {
                if (0.0..1.0).contains(&j.v) {
                    Some(j)
                } else {
                    self.error(
                        &j.span,
                        &r.scope,
                        "jitter",
                        format!("must be at least 0 and less than 1 (found {})", j.v),
                    );
                    None
                }
            });
            s.restart = RestartSettings {
                backoff: val(
                    &r,
                    "backoff",
                    self.duration(&r, "backoff", Positive::ZeroAllowed),
                    d,
                ),
                max_backoff: val(
                    &r,
                    "max_backoff",
                    self.duration(&r, "max_backoff", Positive::ZeroAllowed),
                    d,
                ),
                factor: val(&r, "factor", factor, d),
                jitter: val(&r, "jitter", jitter, d),
                max_restarts: val(
                    &r,
                    "max_restarts",
                    self.u32_at_least(&r, "max_restarts", 0),
                    d,
                ),
                window: val(
                    &r,
                    "window",
                    self.duration(&r, "window", Positive::NonZero),
                    d,
                ),
                reset_after: val(
                    &r,
                    "reset_after",
                    self.duration(&r, "reset_after", Positive::ZeroAllowed),
                    d,
                ),
                rearm_after: val(
                    &r,
                    "rearm_after",
                    self.duration(&r, "rearm_after", Positive::NonZero),
                    d,
                ),
            };
        }
        if let Some(f) = self.table(t, "flapping") {
            self.check_keys(&f, FLAPPING_KEYS, |_| None);
            s.flapping = Some(FlappingSettings {
                changes: val(&f, "changes", self.u32_at_least(&f, "changes", 1), d),
                window: val(
                    &f,
                    "window",
                    self.duration(&f, "window", Positive::NonZero),
                    d,
                ),
                span: f.span.clone(),
                key: f.scope.prefix.clone(),
            });
        }
        s
    }

    /// Checks that need two settings, after the task's settings are laid over `[defaults]`.
    fn cross_checks(&mut self, task: &Settings, defaults: &Settings, pass: &Pass<'_>) {
        let builtin = PolicyConfig::default();
        if let Some(window) = pick(&task.failure_window, &defaults.failure_window) {
            let threshold = pick(&task.failure_threshold, &defaults.failure_threshold);
            let threshold_v = threshold.map_or(builtin.failure_threshold, |v| v.v);
            if window.v < threshold_v {
                let message = format!(
                    "failure_window must be at least failure_threshold: failure_window is {}, \
                     failure_threshold is {}",
                    self.describe(Some(window), builtin.failure_threshold, |n| n.to_string()),
                    self.describe(threshold, builtin.failure_threshold, |n| n.to_string()),
                );
                self.report_pair(pass, Some(window), threshold, message);
            }
        }
        let r = (&task.restart, &defaults.restart);
        let backoff = pick(&r.0.backoff, &r.1.backoff);
        let max_backoff = pick(&r.0.max_backoff, &r.1.max_backoff);
        let backoff_v = backoff.map_or(builtin.backoff.initial, |v| v.v);
        let max_v = max_backoff.map_or(builtin.backoff.max, |v| v.v);
        if max_v < backoff_v {
            let message = format!(
                "restart.max_backoff must be at least restart.backoff: max_backoff is {}, backoff is {}",
                self.describe(max_backoff, builtin.backoff.max, show_duration),
                self.describe(backoff, builtin.backoff.initial, show_duration),
            );
            self.report_pair(pass, max_backoff, backoff, message);
        }
    }

    /// `"3 (line 7)"`, `"3 ([defaults], line 4)"` or `"3 (built-in default)"`.
    fn describe<T: Copy>(
        &self,
        val: Option<&Val<T>>,
        builtin: T,
        show: impl Fn(T) -> String,
    ) -> String {
        match val {
            Some(v) if v.from_defaults => {
                format!("{} ([defaults], line {})", show(v.v), self.line(&v.span))
            }
            Some(v) => format!("{} (line {})", show(v.v), self.line(&v.span)),
            None => format!("{} (built-in default)", show(builtin)),
        }
    }

    /// Reports a conflict between `a` and `b` at `a` if this pass may report at it, else at `b`.
    fn report_pair<T>(
        &mut self,
        pass: &Pass<'_>,
        a: Option<&Val<T>>,
        b: Option<&Val<T>>,
        message: String,
    ) {
        let (wanted_defaults, scope) = match pass {
            Pass::Defaults => (true, Scope::root()),
            Pass::Task(scope) => (false, (*scope).clone()),
        };
        let target = [a, b]
            .into_iter()
            .flatten()
            .find(|v| v.from_defaults == wanted_defaults);
        if let Some(target) = target {
            let mut error = ConfigError::new(self.loc(&target.span), target.key.clone(), message);
            error.task = scope.task;
            self.errors.push(error);
        }
    }

    fn tasks(&mut self, top: &Table<'_, '_>) -> Vec<RawTask> {
        let Some(value) = top.get("task") else {
            return Vec::new();
        };
        let scope = Scope::root();
        match value.get_ref() {
            DeValue::Array(items) => {
                let mut raw = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.get_ref() {
                        DeValue::Table(map) => raw.push(self.task(i, map, item.span())),
                        _ => self.type_error(item, &scope, &format!("task[{i}]"), "a table"),
                    }
                }
                raw
            }
            DeValue::Table(_) => {
                self.error(
                    &value.span(),
                    &scope,
                    "task",
                    "tasks are an array of tables: write [[task]], not [task]",
                );
                Vec::new()
            }
            _ => {
                self.type_error(value, &scope, "task", "an array of [[task]] tables");
                Vec::new()
            }
        }
    }

    fn task(&mut self, index: usize, map: &DeTable<'_>, span: Span) -> RawTask {
        let by_index = Table {
            map,
            span: span.clone(),
            scope: Scope {
                task: None,
                prefix: format!("task[{index}]"),
            },
        };
        let name = self.required_string(&by_index, "name").and_then(|name| {
            if valid_task_name(&name.v) {
                Some(name)
            } else {
                self.error(
                    &name.span,
                    &by_index.scope,
                    "name",
                    format!(
                        "invalid task name {:?}: use letters, digits, '_', '.' and '-'",
                        name.v
                    ),
                );
                None
            }
        });
        // Once the task has a name, its errors say which task by name rather than by position.
        let t = match &name {
            Some(name) => Table {
                map,
                span: span.clone(),
                scope: Scope::task(&name.v),
            },
            None => by_index,
        };
        let allowed: Vec<&str> = TASK_ONLY_KEYS.iter().chain(SETTING_KEYS).copied().collect();
        self.check_keys(&t, &allowed, |_| None);
        let program = self.nonempty_string(&t, "program");
        let check = self.required_string(&t, "check");
        let config = self.plugin_config(&t, "config");
        let grants = self.grants(&t, "grants");
        let on_failure = self.on_failure(&t, program.as_ref());
        let depends_on = self.string_list(&t, "depends_on");
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, dep) in &depends_on {
            if let Some(first) = seen.insert(&dep.v, *i) {
                self.error(
                    &dep.span,
                    &t.scope,
                    &format!("depends_on[{i}]"),
                    format!("{:?} is listed twice (also depends_on[{first}])", dep.v),
                );
            }
        }
        let settings = self.settings(&t, false);
        RawTask {
            scope: t.scope,
            span,
            name,
            program,
            check,
            config,
            grants,
            on_failure,
            depends_on: depends_on.into_iter().map(|(_, dep)| dep).collect(),
            settings,
        }
    }

    fn on_failure(
        &mut self,
        t: &Table<'_, '_>,
        program: Option<&At<String>>,
    ) -> Option<ActionConfig> {
        let value = t.get("on_failure")?;
        match value.get_ref() {
            DeValue::String(action) => {
                if action.trim().is_empty() {
                    self.error(&value.span(), &t.scope, "on_failure", "must not be empty");
                    return None;
                }
                let location = self.loc(&value.span());
                let mut grants = Grants::default();
                // The shorthand lets the action control the task's own program and nothing else.
                if let Some(program) = program {
                    grants.supervisor.programs.push(SupervisorProgram {
                        name: program.v.clone(),
                        location: location.clone(),
                    });
                }
                Some(ActionConfig {
                    action: action.to_string(),
                    location,
                    config: PluginConfig::empty(),
                    grants,
                    timeout: DEFAULT_ACTION_TIMEOUT,
                })
            }
            DeValue::Table(map) => {
                let a = Table {
                    map,
                    span: value.span(),
                    scope: t.scope.child("on_failure"),
                };
                self.check_keys(&a, ACTION_KEYS, |_| None);
                let action = self.required_string(&a, "action");
                let config = self.plugin_config(&a, "config");
                let grants = self.grants(&a, "grants");
                let timeout = self
                    .duration(&a, "timeout", Positive::NonZero)
                    .map_or(DEFAULT_ACTION_TIMEOUT, |d| d.v);
                let action = action?;
                Some(ActionConfig {
                    location: self.loc(&action.span),
                    action: action.v,
                    config,
                    grants,
                    timeout,
                })
            }
            _ => {
                self.type_error(
                    value,
                    &t.scope,
                    "on_failure",
                    "an action name or a table { action = \"...\", ... }",
                );
                None
            }
        }
    }

    fn plugin_config(&mut self, t: &Table<'_, '_>, key: &str) -> PluginConfig {
        let Some(value) = t.get(key) else {
            return PluginConfig::empty();
        };
        if !matches!(value.get_ref(), DeValue::Table(_)) {
            self.type_error(value, &t.scope, key, "a table");
            return PluginConfig::empty();
        }
        let mut locations = BTreeMap::new();
        let json = self.json(value, &t.scope, key, "", &mut locations);
        PluginConfig {
            value: json,
            locations,
        }
    }

    fn json(
        &mut self,
        value: &Value<'_>,
        scope: &Scope,
        key: &str,
        pointer: &str,
        locations: &mut BTreeMap<String, Location>,
    ) -> serde_json::Value {
        use serde_json::Value as J;
        let span = value.span();
        locations.insert(pointer.to_string(), self.loc(&span));
        match value.get_ref() {
            DeValue::String(s) => J::String(s.to_string()),
            DeValue::Integer(int) => match i64::from_str_radix(int.as_str(), int.radix()) {
                Ok(n) => J::from(n),
                Err(_) => {
                    self.error(&span, scope, key, "integer out of range");
                    J::Null
                }
            },
            DeValue::Float(f) => {
                let number = f
                    .as_str()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64);
                match number {
                    Some(n) => J::Number(n),
                    None => {
                        self.error(
                            &span,
                            scope,
                            key,
                            format!(
                                "{} cannot be passed to a plugin (JSON has no inf or nan)",
                                f.as_str()
                            ),
                        );
                        J::Null
                    }
                }
            }
            DeValue::Boolean(b) => J::Bool(*b),
            DeValue::Datetime(d) => J::String(d.to_string()),
            DeValue::Array(items) => J::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        self.json(
                            item,
                            scope,
                            &format!("{key}[{i}]"),
                            &format!("{pointer}/{i}"),
                            locations,
                        )
                    })
                    .collect(),
            ),
            DeValue::Table(map) => {
                let mut object = serde_json::Map::new();
                for (k, v) in map.iter() {
                    let name: &str = k.get_ref();
                    let child_key = format!("{key}.{name}");
                    let child_pointer = format!("{pointer}/{}", pointer_token(name));
                    let json = self.json(v, scope, &child_key, &child_pointer, locations);
                    object.insert(name.to_string(), json);
                }
                J::Object(object)
            }
        }
    }

    fn grants(&mut self, t: &Table<'_, '_>, key: &str) -> Grants {
        let mut grants = Grants::default();
        let Some(g) = self.table(t, key) else {
            return grants;
        };
        self.check_keys(&g, GRANT_KEYS, |_| None);
        for (i, s) in self.string_list(&g, "http") {
            match parse_http_origin(&s.v) {
                Ok((scheme, host, port)) => grants.http.origins.push(HttpOrigin {
                    scheme,
                    host,
                    port,
                    location: self.loc(&s.span),
                }),
                Err(message) => self.error(&s.span, &g.scope, &format!("http[{i}]"), message),
            }
        }
        for (i, s) in self.string_list(&g, "exec") {
            match resolve_exec(&s.v, self.path_env) {
                Ok(path) => grants.exec.programs.push(ExecProgram {
                    name: s.v,
                    path,
                    location: self.loc(&s.span),
                }),
                Err(message) => self.error(&s.span, &g.scope, &format!("exec[{i}]"), message),
            }
        }
        for (_, s) in self.string_list(&g, "supervisor") {
            grants.supervisor.programs.push(SupervisorProgram {
                name: s.v,
                location: self.loc(&s.span),
            });
        }
        for (i, s) in self.string_list(&g, "tcp") {
            match parse_tcp_endpoint(&s.v) {
                Ok((host, port)) => grants.tcp.endpoints.push(TcpEndpoint {
                    host,
                    port,
                    location: self.loc(&s.span),
                }),
                Err(message) => self.error(&s.span, &g.scope, &format!("tcp[{i}]"), message),
            }
        }
        grants
    }

    // Across tasks ----------------------------------------------------------------------------

    fn resolve(&mut self, raw: Vec<RawTask>, defaults: &Settings) -> Vec<TaskConfig> {
        // The first task of each name; later ones are reported and take no part in dependencies.
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for (i, task) in raw.iter().enumerate() {
            let Some(name) = &task.name else { continue };
            match by_name.get(&name.v) {
                Some(&first) => {
                    let first_line = raw[first].name.as_ref().map_or(0, |n| self.line(&n.span));
                    self.error(
                        &name.span,
                        &task.scope,
                        "name",
                        format!(
                            "duplicate task name {:?} (first defined at line {first_line})",
                            name.v
                        ),
                    );
                }
                None => {
                    by_name.insert(name.v.clone(), i);
                }
            }
        }
        for task in &raw {
            for (i, dep) in task.depends_on.iter().enumerate() {
                if !by_name.contains_key(&dep.v) {
                    self.error(
                        &dep.span,
                        &task.scope,
                        &format!("depends_on[{i}]"),
                        format!("unknown task {:?}", dep.v),
                    );
                }
            }
        }
        self.find_cycles(&raw, &by_name);

        let mut tasks = Vec::new();
        for task in raw {
            self.cross_checks(&task.settings, defaults, &Pass::Task(&task.scope));
            let flapping = self.flapping(&task, defaults);
            let (Some(name), Some(check)) = (task.name, task.check) else {
                continue;
            };
            let s = &task.settings;
            let d = defaults;
            let builtin = PolicyConfig::default();
            let mut backoff = builtin.backoff.clone();
            backoff.initial = pick_or(&s.restart.backoff, &d.restart.backoff, backoff.initial);
            backoff.max = pick_or(&s.restart.max_backoff, &d.restart.max_backoff, backoff.max);
            backoff.factor = pick_or(&s.restart.factor, &d.restart.factor, backoff.factor);
            backoff.jitter = pick_or(&s.restart.jitter, &d.restart.jitter, backoff.jitter);
            let mut depends_on: Vec<String> = Vec::new();
            for dep in task.depends_on {
                if !depends_on.contains(&dep.v) {
                    depends_on.push(dep.v);
                }
            }
            let policy = policy_config(PolicyParts {
                failure_threshold: pick_or(
                    &s.failure_threshold,
                    &d.failure_threshold,
                    builtin.failure_threshold,
                ),
                success_threshold: pick_or(
                    &s.success_threshold,
                    &d.success_threshold,
                    builtin.success_threshold,
                ),
                failure_window: pick(&s.failure_window, &d.failure_window).map(|v| v.v),
                backoff,
                max_restarts: pick_or(
                    &s.restart.max_restarts,
                    &d.restart.max_restarts,
                    builtin.max_restarts,
                ),
                restart_window: pick_or(
                    &s.restart.window,
                    &d.restart.window,
                    builtin.restart_window,
                ),
                reset_after: pick_or(
                    &s.restart.reset_after,
                    &d.restart.reset_after,
                    builtin.reset_after,
                ),
                rearm_after: pick(&s.restart.rearm_after, &d.restart.rearm_after)
                    .map(|v| v.v)
                    .or(builtin.rearm_after),
                start_period: pick_or(&s.start_period, &d.start_period, builtin.start_period),
                flapping,
                depends_on,
                has_action: task.on_failure.is_some(),
            });
            tasks.push(TaskConfig {
                location: self.loc(&task.span),
                name_location: self.loc(&name.span),
                name: name.v,
                program_location: task.program.as_ref().map(|p| self.loc(&p.span)),
                program: task.program.map(|p| p.v),
                check_location: self.loc(&check.span),
                check: check.v,
                interval: pick_or(&s.interval, &d.interval, DEFAULT_INTERVAL),
                timeout: pick_or(&s.timeout, &d.timeout, DEFAULT_TIMEOUT),
                memory: pick_or(&s.memory, &d.memory, DEFAULT_MEMORY),
                config: task.config,
                grants: task.grants,
                on_failure: task.on_failure,
                policy,
            });
        }
        tasks
    }

    /// The task's flapping settings laid over `[defaults]`'s; both fields are required in the
    /// result, so a table that leaves one out is reported where it is written.
    fn flapping(&mut self, task: &RawTask, defaults: &Settings) -> Option<Flapping> {
        let (table, other) = match (&task.settings.flapping, &defaults.flapping) {
            (None, None) => return None,
            (Some(t), d) => (t, d.as_ref()),
            (None, Some(d)) => (d, None),
        };
        let changes = table
            .changes
            .as_ref()
            .or(other.and_then(|o| o.changes.as_ref()));
        let window = table
            .window
            .as_ref()
            .or(other.and_then(|o| o.window.as_ref()));
        for (field, present) in [("changes", changes.is_some()), ("window", window.is_some())] {
            if !present {
                let key = format!("{}.{field}", table.key);
                self.error(
                    &table.span,
                    &task.scope,
                    &key,
                    "missing required key (flapping needs both changes and window)",
                );
            }
        }
        Some(Flapping {
            max_changes: changes?.v,
            window: window?.v,
        })
    }

    /// Reports each dependency cycle once, at the `depends_on` entry that closes it.
    fn find_cycles(&mut self, raw: &[RawTask], by_name: &HashMap<String, usize>) {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        // Iterative depth-first search: a config with a long dependency chain must not be able
        // to overflow the stack.
        let mut marks = vec![Mark::New; raw.len()];
        let mut found: Vec<(usize, usize, String)> = Vec::new();
        for &start in by_name.values().collect::<std::collections::BTreeSet<_>>() {
            if marks[start] != Mark::New {
                continue;
            }
            let mut path: Vec<(usize, usize)> = vec![(start, 0)];
            marks[start] = Mark::OnPath;
            while let Some(&mut (node, ref mut next)) = path.last_mut() {
                let deps = &raw[node].depends_on;
                if *next >= deps.len() {
                    marks[node] = Mark::Done;
                    path.pop();
                    continue;
                }
                let edge = *next;
                *next += 1;
                // A name listed twice is reported elsewhere; following it twice would report
                // the same cycle twice.
                if deps[..edge].iter().any(|d| d.v == deps[edge].v) {
                    continue;
                }
                let Some(&target) = by_name.get(&deps[edge].v) else {
                    continue;
                };
                match marks[target] {
                    Mark::New => {
                        marks[target] = Mark::OnPath;
                        path.push((target, 0));
                    }
                    Mark::OnPath => {
                        let from = path.iter().position(|&(n, _)| n == target).unwrap_or(0);
                        let names: Vec<String> = path[from..]
                            .iter()
                            .chain(std::iter::once(&(target, 0)))
                            .filter_map(|&(n, _)| {
                                raw[n].name.as_ref().map(|name| format!("{:?}", name.v))
                            })
                            .collect();
                        found.push((node, edge, names.join(" -> ")));
                    }
                    Mark::Done => {}
                }
            }
        }
        for (node, edge, cycle) in found {
            let task = &raw[node];
            self.error(
                &task.depends_on[edge].span,
                &task.scope,
                &format!("depends_on[{edge}]"),
                format!("dependency cycle: {cycle}"),
            );
        }
    }
}

/// Everything a task's policy is made of.
struct PolicyParts {
    failure_threshold: u32,
    success_threshold: u32,
    failure_window: Option<u32>,
    backoff: hmrt_policy::Backoff,
    max_restarts: u32,
    restart_window: Duration,
    reset_after: Duration,
    rearm_after: Option<Duration>,
    start_period: Duration,
    flapping: Option<Flapping>,
    depends_on: Vec<String>,
    has_action: bool,
}

// The policy crate grows fields of its own; `..Default::default()` keeps this building when it
// does, and is needless only until then.
#[allow(clippy::needless_update)]
fn policy_config(p: PolicyParts) -> PolicyConfig {
    PolicyConfig {
        failure_threshold: p.failure_threshold,
        success_threshold: p.success_threshold,
        failure_window: p.failure_window,
        backoff: p.backoff,
        max_restarts: p.max_restarts,
        restart_window: p.restart_window,
        reset_after: p.reset_after,
        rearm_after: p.rearm_after,
        start_period: p.start_period,
        flapping: p.flapping,
        depends_on: p.depends_on,
        has_action: p.has_action,
        ..PolicyConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("intervall", "interval"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn task_names() {
        assert!(valid_task_name("web-1.a_b"));
        assert!(!valid_task_name(""));
        assert!(!valid_task_name("a b"));
        assert!(!valid_task_name("é"));
    }
}
