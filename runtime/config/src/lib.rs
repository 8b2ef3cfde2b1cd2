//! hmrt's `tasks.toml`: parsed, validated and resolved into typed values.
//!
//! Everything a config can get wrong is reported with its file, line, column and key, and all
//! problems are collected in one pass (only a TOML syntax error stops early), so an operator fixes
//! a config in one round. The resolved [`Config`] keeps the locations of the things the host checks
//! later (check and action names, grants, plugin config values) so that its errors read the same;
//! see [`ConfigError::new`].
//!
//! Unknown keys are errors everywhere. Durations are strings in hmrt's one duration grammar,
//! [`hmrt_domain::duration`] (`"250ms"`, `"5s"`, `"1h30m"`, `"1.5s"`), at most a year; memory sizes
//! are `"512KiB"`, `"64MiB"`, `"1GiB"`, `"10MB"` (decimal) or a plain integer of bytes.

#![warn(missing_docs)]

mod error;
mod grants;
mod host_grants;
mod parse;
mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{ConfigError, ConfigErrors, Location};
pub use grants::{
    ArgPattern, ExecArgs, ExecGrants, ExecProgram, Grants, HttpGrants, HttpOrigin,
    SupervisorGrants, SupervisorProgram, TcpEndpoint, TcpGrants, parse_endpoint,
};
pub use hmrt_policy::PolicyConfig;
pub use host_grants::{
    FileGrant, FileGrants, NamedGrant, NamedGrants, SYSTEM_FORMS, parse_container,
    parse_file_grant, parse_process_grant, parse_system_grant, parse_unit,
};
pub use url::Url;

/// `runtime.max_concurrency` when not set.
pub const DEFAULT_MAX_CONCURRENCY: usize = 16;
/// The most `runtime.warm_instances` may be: past a few thousand the instance pool's
/// address-space reservation, not the checks, becomes the limit.
pub const MAX_WARM_INSTANCES: usize = 4096;
/// A task's `interval` when neither it nor `[defaults]` sets one.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// A task's `timeout` when neither it nor `[defaults]` sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// A task's `memory` (bytes) when neither it nor `[defaults]` sets one: 64 MiB.
pub const DEFAULT_MEMORY: u64 = 64 * 1024 * 1024;
/// An `on_failure` action's `timeout` when not set.
pub const DEFAULT_ACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// A whole `tasks.toml`, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from (or named by [`Config::parse`]'s `file`).
    pub file: PathBuf,
    /// The `[runtime]` section, with defaults applied.
    pub runtime: RuntimeConfig,
    /// The `[api]` section (all unset when not written).
    pub api: ApiConfig,
    /// The `[supervisor]` section, if written.
    pub supervisor: Option<SupervisorConfig>,
    /// The `[docker]` section, with defaults applied.
    pub docker: DockerConfig,
    /// The `[systemd]` section, with defaults applied.
    pub systemd: SystemdConfig,
    /// The `[[task]]` tables, in file order.
    pub tasks: Vec<TaskConfig>,
    /// The `[[alert]]` routes, in file order.
    pub alerts: Vec<AlertRoute>,
    /// The `[[maintenance]]` windows, in file order.
    pub maintenance: Vec<MaintenanceWindow>,
}

impl Config {
    /// Reads and resolves the config at `path`. `path_env` is the `PATH` that bare program names
    /// in `exec` grants are searched in: the hmrt process's own (`std::env::var_os("PATH")`) in
    /// production, whatever a test needs in tests.
    pub fn load(path: &Path, path_env: Option<&OsStr>) -> Result<Config, ConfigErrors> {
        let bytes = std::fs::read(path).map_err(|e| {
            ConfigError::new(
                Location::whole_file(path),
                "",
                format!("cannot read the config: {e}"),
            )
        })?;
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let valid = e.utf8_error().valid_up_to();
                let bytes = e.into_bytes();
                // The valid prefix is exactly what is needed to locate the bad byte.
                let prefix = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
                let index = error::LineIndex::new(prefix, path);
                return Err(ConfigError::new(
                    index.locate(&(valid..valid)),
                    "",
                    "the config is not valid UTF-8",
                )
                .into());
            }
        };
        Config::parse(&text, path, path_env)
    }

    /// Resolves the config `text`, as if read from `file`: errors name `file`, and relative
    /// paths (`plugins_dir`, `state_dir`) are resolved against `file`'s directory.
    pub fn parse(
        text: &str,
        file: &Path,
        path_env: Option<&OsStr>,
    ) -> Result<Config, ConfigErrors> {
        parse::parse(text, file, path_env)
    }

    /// The task named `name`.
    pub fn task(&self, name: &str) -> Option<&TaskConfig> {
        self.tasks.iter().find(|t| t.name == name)
    }
}

/// The `[runtime]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// Where third-party plugins (`*.wasm`, loaded by file stem) are; default `plugins` next to
    /// the config file.
    pub plugins_dir: PathBuf,
    /// Where durable state is kept; default `state` next to the config file.
    pub state_dir: PathBuf,
    /// The address of the HTTP API and `/metrics`; `None` = off.
    pub listen: Option<SocketAddr>,
    /// How many checks may run at once (at least 1).
    pub max_concurrency: usize,
    /// How many tasks checked at least every 10 s may keep their plugin instance warm between
    /// checks (0: a fresh instance for every call); None: one for each such task.
    pub warm_instances: Option<usize>,
}

/// The `[api]` section: who may change things through the HTTP API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiConfig {
    /// The environment variable holding the bearer token of the mutating routes. Unset: the
    /// API reads only (every mutating route answers 401), which only a loopback `listen` allows.
    pub token_env: Option<String>,
}

/// The `[docker]` section: where the Docker Engine API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerConfig {
    /// The engine's Unix socket (`host = "unix:///var/run/docker.sock"`, the default).
    pub socket: PathBuf,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            socket: PathBuf::from("/var/run/docker.sock"),
        }
    }
}

/// The `[systemd]` section: which D-Bus bus systemd's API is on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemdConfig {
    /// A D-Bus address (`bus = "unix:path=/run/dbus/system_bus_socket"`); none: the system bus.
    pub bus: Option<String>,
}

/// The `[supervisor]` section: how to reach supervisord.
#[derive(Clone, PartialEq)]
pub struct SupervisorConfig {
    /// Where supervisord listens.
    pub serverurl: ServerUrl,
    /// The user for HTTP basic authentication, if any.
    pub username: Option<String>,
    /// The password for HTTP basic authentication, if any.
    pub password: Option<String>,
    /// Whether the daemon watches the process of each program its tasks name (`watch_exits`,
    /// default true), so that an exit is checked at once rather than at the task's next check.
    /// Needs hmrt and supervisord on one host, in one pid namespace.
    pub watch_exits: bool,
    /// Where `serverurl` is written.
    pub location: Location,
}

// The password must not reach logs through a `{:?}`.
impl fmt::Debug for SupervisorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorConfig")
            .field("serverurl", &self.serverurl)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("watch_exits", &self.watch_exits)
            .field("location", &self.location)
            .finish()
    }
}

/// supervisord's address, as supervisorctl's `-s` takes it: the one type the config parses
/// and the supervisord client (`hmrt_supervisor::Client::new`) connects to.
pub use hmrt_domain::ServerUrl;

/// One `[[task]]`, with `[defaults]` and the built-in defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskConfig {
    /// The task's unique name.
    pub name: String,
    /// Where the task's table starts (its `[[task]]` header).
    pub location: Location,
    /// Where `name` is written.
    pub name_location: Location,
    /// The supervisord program the task watches, if any.
    pub program: Option<String>,
    /// Where `program` is written.
    pub program_location: Option<Location>,
    /// The check: a built-in name or a plugin file stem. The host resolves it.
    pub check: String,
    /// Where `check` is written.
    pub check_location: Location,
    /// Time between the starts of two checks.
    pub interval: Duration,
    /// Wall-clock limit of one check call.
    pub timeout: Duration,
    /// Guest memory limit, in bytes.
    pub memory: u64,
    /// The check's `config` table.
    pub config: PluginConfig,
    /// The check's grants (and only the check's: the action has its own).
    pub grants: Grants,
    /// What to do when the task becomes unhealthy.
    pub on_failure: Option<ActionConfig>,
    /// Labels (`labels = { team = "web" }`) that alert routes match on and notices carry.
    pub labels: BTreeMap<String, String>,
    /// Thresholds, backoff, restart budget, start period, flapping and dependencies.
    pub policy: PolicyConfig,
}

/// An `[[alert]]` route: which tasks' events reach which receiver, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRoute {
    /// The route's unique name (metrics and notices name it).
    pub name: String,
    /// Where its table starts.
    pub location: Location,
    /// Task names or globs; empty: every task (narrowed by `labels`).
    pub tasks: Vec<TaskMatcher>,
    /// Labels a task must all carry to match; empty: no condition.
    pub labels: BTreeMap<String, String>,
    /// The events that make notices.
    pub events: BTreeSet<AlertEvent>,
    /// The action that delivers the notices (its config gets the notice under `notice`).
    pub receiver: ActionConfig,
    /// Failed checks in a row before the route says "unhealthy" (on top of the task's own
    /// threshold); `None`: as soon as the task is unhealthy.
    pub failure_threshold: Option<u32>,
    /// Passed checks in a row before the route says "recovered"; `None`: as soon as the task is.
    pub success_threshold: Option<u32>,
    /// How long a new incident waits before it is announced, so that a dependency's outage,
    /// noticed a little later than its dependant's, holds the dependant first; `None`: at once.
    pub group_wait: Option<Duration>,
    /// How often to remind while an incident lasts; `None`: never.
    pub remind_every: Option<Duration>,
    /// Whether "recovered" notices are sent.
    pub send_resolved: bool,
    /// How long an undeliverable notice is retried before it is dropped (with a log line).
    pub give_up_after: Duration,
    /// How long an announced incident may last before the second receiver is told too.
    pub escalate_after: Option<Duration>,
    /// The second receiver (set exactly when `escalate_after` is).
    pub escalate_to: Option<ActionConfig>,
}

impl AlertRoute {
    /// Whether the route covers `task`.
    pub fn covers(&self, task: &TaskConfig) -> bool {
        (self.tasks.is_empty() || self.tasks.iter().any(|m| m.matches(&task.name)))
            && self
                .labels
                .iter()
                .all(|(k, v)| task.labels.get(k) == Some(v))
    }
}

/// A recurring maintenance window: during it, matching tasks are checked as always but their
/// notices are held; what is still broken when it ends is announced then.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceWindow {
    /// Its unique name.
    pub name: String,
    /// Where its table starts.
    pub location: Location,
    /// Task names or globs; empty: every task (narrowed by `labels`).
    pub tasks: Vec<TaskMatcher>,
    /// Labels a task must all carry.
    pub labels: BTreeMap<String, String>,
    /// The days it begins on, Monday = 0 … Sunday = 6.
    pub weekdays: BTreeSet<u8>,
    /// When it begins, seconds after local midnight.
    pub from: u32,
    /// When it ends, seconds after local midnight; before `from`: the next day.
    pub to: u32,
    /// The time zone `from` and `to` are in (an IANA name, such as "Europe/Berlin").
    pub timezone: String,
}

impl MaintenanceWindow {
    /// Whether the window covers `task`.
    pub fn covers(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        (self.tasks.is_empty() || self.tasks.iter().any(|m| m.matches(name)))
            && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// What an alert route can be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertEvent {
    /// An incident began (the task became unhealthy).
    Unhealthy,
    /// The incident ended (the task passes again).
    Recovered,
    /// The restart budget is spent.
    Failed,
    /// The task changes state too often; one notice instead of a stream.
    Flapping,
    /// A failed task was re-armed.
    Rearmed,
    /// The task's actions are held by a dependency.
    Held,
}

impl AlertEvent {
    /// The events of a route that does not list them.
    pub const DEFAULT: &'static [AlertEvent] = &[
        AlertEvent::Unhealthy,
        AlertEvent::Recovered,
        AlertEvent::Failed,
    ];
    const ALL: &'static [AlertEvent] = &[
        AlertEvent::Unhealthy,
        AlertEvent::Recovered,
        AlertEvent::Failed,
        AlertEvent::Flapping,
        AlertEvent::Rearmed,
        AlertEvent::Held,
    ];

    /// Its name in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::Unhealthy => "unhealthy",
            AlertEvent::Recovered => "recovered",
            AlertEvent::Failed => "failed",
            AlertEvent::Flapping => "flapping",
            AlertEvent::Rearmed => "rearmed",
            AlertEvent::Held => "held",
        }
    }

    /// The event named `name`, or why not.
    pub fn parse(name: &str) -> Result<AlertEvent, String> {
        Self::ALL
            .iter()
            .copied()
            .find(|e| e.as_str() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|e| e.as_str()).collect();
                format!("unknown event {name:?}; known: {}", known.join(", "))
            })
    }
}

/// A task name, or a glob over names (`*` any run of characters, `?` one character).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskMatcher {
    pattern: String,
}

impl TaskMatcher {
    /// A matcher for `pattern`.
    pub fn new(pattern: &str) -> TaskMatcher {
        TaskMatcher {
            pattern: pattern.to_string(),
        }
    }

    /// Whether it has wildcards.
    pub fn is_glob(&self) -> bool {
        self.pattern.contains(['*', '?'])
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        glob(self.pattern.as_bytes(), name.as_bytes())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }
}

/// `*` and `?` over bytes (task names are ASCII), iteratively with one backtrack point, so a
/// pattern never costs more than length × length.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// A task's `on_failure` action.
///
/// Written as a bare name (`on_failure = "supervisor-restart"`), the action gets the grant
/// `supervisor = [program]` if the task names a `program`: the shorthand lets the action control
/// the task's own program and nothing else. Written as a table
/// (`{ action = "...", config = {...}, grants = {...}, timeout = "30s" }`), it gets exactly the
/// grants written, nothing implied.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionConfig {
    /// The action: a built-in name or a plugin file stem. The host resolves it.
    pub action: String,
    /// Where the action name is written.
    pub location: Location,
    /// The action's `config` table (an empty object for the shorthand).
    pub config: PluginConfig,
    /// The action's grants.
    pub grants: Grants,
    /// Wall-clock limit of one action call.
    pub timeout: Duration,
}

/// A plugin's `config` table as JSON (always an object; TOML datetimes become RFC 3339 strings),
/// with where each value is written.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    /// The table as a JSON object.
    pub value: serde_json::Value,
    /// Where each value is written, by JSON pointer (`""` the table itself, `"/url"`,
    /// `"/headers/0"`).
    pub locations: BTreeMap<String, Location>,
}

impl Default for PluginConfig {
    fn default() -> Self {
        PluginConfig::empty()
    }
}

impl PluginConfig {
    /// An empty table.
    pub fn empty() -> Self {
        PluginConfig {
            value: serde_json::Value::Object(serde_json::Map::new()),
            locations: BTreeMap::new(),
        }
    }

    /// Where the value at JSON `pointer` (RFC 6901, as [`serde_json::Value::pointer`]) is
    /// written.
    pub fn location(&self, pointer: &str) -> Option<&Location> {
        self.locations.get(pointer)
    }
}

#[cfg(test)]
mod tests {
    use super::TaskMatcher;

    #[test]
    fn globs() {
        let m = |p: &str, n: &str| TaskMatcher::new(p).matches(n);
        assert!(m("web", "web") && !m("web", "web2"));
        assert!(m("db-*", "db-main") && m("db-*", "db-") && !m("db-*", "web"));
        assert!(m("*-api", "orders-api") && m("w?b", "web") && !m("w?b", "weeb"));
        assert!(m("*a*b*", "xxaxxbxx") && !m("*a*b*", "xxbxxaxx"));
    }
}
