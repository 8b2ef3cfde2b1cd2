//! The walk over the TOML document.
//!
//! It reads toml's span-carrying document tree (`DeTable`) by hand rather than deriving serde
//! structs: serde stops at the first unknown key or wrong type, while this walk records every
//! problem, each at its own key and span, and goes on.

mod alert;
mod read;
mod resolve;
mod settings;
mod task;

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::LineIndex;
use crate::values::parse_serverurl;
use crate::{
    ApiConfig, Config, ConfigError, ConfigErrors, DEFAULT_MAX_CONCURRENCY, DockerConfig, Location,
    MAX_WARM_INSTANCES, RuntimeConfig, SupervisorConfig, SystemdConfig,
};
use settings::{Layer, Pass};

type Value<'i> = Spanned<DeValue<'i>>;
type Span = Range<usize>;

const TOP_KEYS: &[&str] = &[
    "runtime",
    "api",
    "supervisor",
    "docker",
    "systemd",
    "defaults",
    "task",
    "alert",
    "maintenance",
];
const API_KEYS: &[&str] = &["token_env"];
const RUNTIME_KEYS: &[&str] = &[
    "plugins_dir",
    "state_dir",
    "listen",
    "max_concurrency",
    "warm_instances",
];
const SUPERVISOR_KEYS: &[&str] = &["serverurl", "username", "password", "watch_exits"];
const DOCKER_KEYS: &[&str] = &["host"];
const SYSTEMD_KEYS: &[&str] = &["bus"];

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
#[derive(Debug, Clone, Default)]
struct Scope {
    task: Option<String>,
    prefix: String,
}

impl Scope {
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
struct Table<'t> {
    map: &'t DeTable<'t>,
    span: Span,
    scope: Scope,
}

impl<'t> Table<'t> {
    fn get(&self, key: &str) -> Option<&'t Value<'t>> {
        self.map.get(key)
    }
}

/// A value and where it is written.
#[derive(Debug, Clone)]
struct At<T> {
    v: T,
    span: Span,
}

impl<T> At<T> {
    fn new(v: T, span: Span) -> At<T> {
        At { v, span }
    }

    fn map<U>(self, f: impl FnOnce(T) -> U) -> At<U> {
        At::new(f(self.v), self.span)
    }
}

struct Parser<'a> {
    file: &'a Path,
    dir: PathBuf,
    lines: LineIndex<'a>,
    path_env: Option<&'a OsStr>,
    errors: Vec<ConfigError>,
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

    fn document(&mut self, root: &DeTable<'_>) -> Config {
        let top = Table {
            map: root,
            span: 0..0,
            scope: Scope::default(),
        };
        self.check_keys(&top, TOP_KEYS, |key| {
            (key == "tasks").then(|| "unknown key; tasks are written as [[task]]".to_string())
        });
        let (runtime, listen_span) = match self.table(&top, "runtime") {
            Some(t) => self.runtime(&t),
            None => (
                RuntimeConfig {
                    plugins_dir: self.dir.join("plugins"),
                    state_dir: self.dir.join("state"),
                    listen: None,
                    max_concurrency: DEFAULT_MAX_CONCURRENCY,
                    warm_instances: None,
                },
                None,
            ),
        };
        let api = match self.table(&top, "api") {
            Some(t) => self.api(&t),
            None => ApiConfig::default(),
        };
        if let (Some(addr), Some(span)) = (runtime.listen, &listen_span)
            && !addr.ip().is_loopback()
            && api.token_env.is_none()
        {
            self.error(
                span,
                &Scope::default(),
                "runtime.listen",
                format!(
                    "{addr} is reachable from other hosts: set [api] token_env to the name of an environment variable holding the API token (or listen on 127.0.0.1)"
                ),
            );
        }
        let supervisor = self
            .table(&top, "supervisor")
            .and_then(|t| self.supervisor(&t));
        let docker = self
            .table(&top, "docker")
            .map(|t| self.docker(&t))
            .unwrap_or_default();
        let systemd = self
            .table(&top, "systemd")
            .map(|t| self.systemd(&t))
            .unwrap_or_default();
        let defaults = match self.table(&top, "defaults") {
            Some(t) => {
                self.check_keys(&t, &settings::keys(), |key| {
                    task::TASK_ONLY_KEYS
                        .contains(&key)
                        .then(|| "cannot be set in [defaults]; set it in each [[task]]".to_string())
                });
                self.settings(&t, true)
            }
            None => Layer::default(),
        };
        let alone = settings::resolve(&Layer::default(), &defaults);
        self.cross_checks(&alone, &Layer::default(), &defaults, &Pass::Defaults);
        let raw = self.tasks(&top);
        let tasks = self.resolve(raw, &defaults);
        let alerts = self.alerts(&top, &tasks);
        let maintenance = self.maintenance(&top, &tasks);
        Config {
            file: self.file.to_path_buf(),
            runtime,
            api,
            supervisor,
            docker,
            systemd,
            tasks,
            alerts,
            maintenance,
        }
    }

    fn api(&mut self, t: &Table<'_>) -> ApiConfig {
        self.check_keys(t, API_KEYS, |_| None);
        let token_env = self.string(t, "token_env").and_then(|s| {
            let name = s.map(|name| {
                if hmrt_domain::env_name::is_valid(&name) {
                    Ok(name)
                } else {
                    Err(hmrt_domain::env_name::problem(&name))
                }
            });
            self.ok(name, &t.scope, "token_env").map(|n| n.v)
        });
        ApiConfig { token_env }
    }

    /// The `[runtime]` section, and where `listen` is written.
    fn runtime(&mut self, t: &Table<'_>) -> (RuntimeConfig, Option<Span>) {
        self.check_keys(t, RUNTIME_KEYS, |_| None);
        let plugins_dir = self.path(t, "plugins_dir", "plugins");
        let state_dir = self.path(t, "state_dir", "state");
        let mut listen_span = None;
        let listen = self.string(t, "listen").and_then(|s| {
            listen_span = Some(s.span.clone());
            let addr = s.map(|s| {
                s.parse::<SocketAddr>().map_err(|_| {
                    format!(
                        "invalid listen address {s:?}: expected ip:port, such as \"127.0.0.1:9187\""
                    )
                })
            });
            self.ok(addr, &t.scope, "listen").map(|a| a.v)
        });
        let max_concurrency = self
            .count(t, "max_concurrency", 1, u32::MAX)
            .and_then(|n| usize::try_from(n.v).ok())
            .unwrap_or(DEFAULT_MAX_CONCURRENCY);
        let warm_instances = self
            .count(t, "warm_instances", 0, MAX_WARM_INSTANCES as u32)
            .and_then(|n| usize::try_from(n.v).ok());
        (
            RuntimeConfig {
                plugins_dir,
                state_dir,
                listen,
                max_concurrency,
                warm_instances,
            },
            listen_span,
        )
    }

    fn docker(&mut self, t: &Table<'_>) -> DockerConfig {
        self.check_keys(t, DOCKER_KEYS, |_| None);
        let socket = self.string(t, "host").and_then(|s| {
            let path = s.map(|h| match h.strip_prefix("unix://") {
                Some(p) if p.starts_with('/') => Ok(PathBuf::from(p)),
                _ => Err(format!(
                    "{h:?}: hmrt reaches Docker on its Unix socket only; write \"unix:///var/run/docker.sock\""
                )),
            });
            self.ok(path, &t.scope, "host").map(|p| p.v)
        });
        socket.map_or_else(DockerConfig::default, |socket| DockerConfig { socket })
    }

    fn systemd(&mut self, t: &Table<'_>) -> SystemdConfig {
        self.check_keys(t, SYSTEMD_KEYS, |_| None);
        let bus = self.string(t, "bus").and_then(|s| {
            let bus = s.map(|b| {
                if b.starts_with("unix:") && b.len() > 5 && !b.contains(char::is_whitespace) {
                    Ok(b)
                } else {
                    Err(format!(
                        "{b:?} is not a D-Bus address; write \"unix:path=/run/dbus/system_bus_socket\", or leave bus out for the system bus"
                    ))
                }
            });
            self.ok(bus, &t.scope, "bus").map(|b| b.v)
        });
        SystemdConfig { bus }
    }

    fn supervisor(&mut self, t: &Table<'_>) -> Option<SupervisorConfig> {
        self.check_keys(t, SUPERVISOR_KEYS, |_| None);
        let username = self.string(t, "username").map(|s| s.v);
        let password = self.string(t, "password").map(|s| s.v);
        let watch_exits = self.boolean(t, "watch_exits").unwrap_or(true);
        let url = self.required_string(t, "serverurl")?;
        let url = self.ok(url.map(|u| parse_serverurl(&u)), &t.scope, "serverurl")?;
        let location = self.loc(&url.span);
        Some(SupervisorConfig {
            serverurl: url.v,
            username,
            password,
            watch_exits,
            location,
        })
    }
}
