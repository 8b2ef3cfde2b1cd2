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
mod parse;
mod values;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{ConfigError, ConfigErrors, Location};
pub use grants::{
    ExecGrants, ExecProgram, Grants, HttpGrants, HttpOrigin, SupervisorGrants, SupervisorProgram,
    TcpEndpoint, TcpGrants,
};
pub use hmrt_policy::PolicyConfig;
pub use url::Url;

/// `runtime.max_concurrency` when not set.
pub const DEFAULT_MAX_CONCURRENCY: usize = 16;
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
    /// The `[[task]]` tables, in file order.
    pub tasks: Vec<TaskConfig>,
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
}

/// The `[api]` section: who may change things through the HTTP API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiConfig {
    /// The environment variable holding the bearer token of the mutating routes. Unset: the
    /// API reads only (every mutating route answers 401), which only a loopback `listen` allows.
    pub token_env: Option<String>,
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
    /// Thresholds, backoff, restart budget, start period, flapping and dependencies.
    pub policy: PolicyConfig,
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
