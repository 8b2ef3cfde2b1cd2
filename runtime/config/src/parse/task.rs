//! A `[[task]]` table: the keys only a task has (its settings are read by `settings`), its
//! grants and its plugins' `config` tables.

use std::collections::{BTreeMap, HashMap};

use hmrt_domain::{TaskName, program};
use toml::de::{DeTable, DeValue};

use super::read::nonempty;
use super::settings::{self, Layer};
use super::{At, Parser, Scope, Span, Table, Value};
use crate::grants::{parse_endpoint, parse_http_origin, resolve_exec};
use crate::{
    ActionConfig, DEFAULT_ACTION_TIMEOUT, ExecArgs, ExecProgram, FileGrant, Grants, HttpOrigin,
    Location, NamedGrant, NamedGrants, PluginConfig, SupervisorProgram, TcpEndpoint,
    parse_container, parse_file_grant, parse_process_grant, parse_system_grant, parse_unit,
};

/// Reads one grant's text as the name it grants, or says why not.
type NameParser = fn(&str) -> Result<String, String>;

/// Keys only a task may have: they name what is specific to one task.
#[rustfmt::skip]
pub(super) const TASK_ONLY_KEYS: &[&str] =
    &["name", "program", "check", "config", "grants", "on_failure", "depends_on", "labels"];
const GRANT_KEYS: &[&str] = &[
    "http",
    "exec",
    "supervisor",
    "tcp",
    "smtp",
    "system",
    "process",
    "files",
    "docker",
    "systemd",
];
const ACTION_KEYS: &[&str] = &["action", "config", "grants", "timeout"];
const EXEC_KEYS: &[&str] = &["program", "args"];

/// A `[[task]]` as read, before names, dependencies and defaults are resolved across tasks.
pub(super) struct RawTask {
    pub(super) scope: Scope,
    pub(super) span: Span,
    pub(super) name: Option<At<String>>,
    pub(super) program: Option<At<String>>,
    pub(super) check: Option<At<String>>,
    pub(super) config: PluginConfig,
    pub(super) grants: Grants,
    pub(super) on_failure: Option<ActionConfig>,
    /// Each with its index in the array as written, which errors name it by.
    pub(super) depends_on: Vec<(usize, At<String>)>,
    pub(super) labels: BTreeMap<String, String>,
    pub(super) settings: Layer,
}

/// A JSON pointer token (RFC 6901).
fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

impl Parser<'_> {
    pub(super) fn tasks(&mut self, top: &Table<'_>) -> Vec<RawTask> {
        let Some(value) = top.get("task") else {
            return Vec::new();
        };
        let scope = Scope::default();
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
                let message = "tasks are an array of tables: write [[task]], not [task]";
                self.error(&value.span(), &scope, "task", message);
                Vec::new()
            }
            _ => {
                self.type_error(value, &scope, "task", "an array of [[task]] tables");
                Vec::new()
            }
        }
    }

    fn task(&mut self, index: usize, map: &DeTable<'_>, span: Span) -> RawTask {
        let prefix = format!("task[{index}]");
        let by_index = Scope { task: None, prefix };
        let mut t = Table {
            map,
            span: span.clone(),
            scope: by_index,
        };
        let name = self.required_string(&t, "name").and_then(|name| {
            let checked = name.map(|n| TaskName::new(&n).map(|_| n).map_err(|e| e.to_string()));
            self.ok(checked, &t.scope, "name")
        });
        // Once the task has a name, its errors say which task by name rather than by position.
        if let Some(name) = &name {
            t.scope = Scope {
                task: Some(name.v.clone()),
                prefix: String::new(),
            };
        }
        let allowed: Vec<&str> = TASK_ONLY_KEYS
            .iter()
            .copied()
            .chain(settings::keys())
            .collect();
        self.check_keys(&t, &allowed, |_| None);
        let program = self.program(&t);
        let check = self.required_string(&t, "check");
        let config = self.plugin_config(&t, "config");
        let grants = self.grants(&t, "grants");
        let on_failure = self.on_failure(&t, program.as_ref());
        let depends_on = self.depends_on(&t);
        let labels = self.labels(&t);
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
            depends_on,
            labels,
            settings,
        }
    }

    /// The supervisord program the task watches: one program, never a group or a pattern,
    /// because the shorthand `on_failure` grants the action exactly this name.
    fn program(&mut self, t: &Table<'_>) -> Option<At<String>> {
        let program = self.nonempty_string(t, "program")?;
        let checked = program.map(|p| program::problem(&p).map_or(Ok(p), |why| Err(why.into())));
        self.ok(checked, &t.scope, "program")
    }

    /// The names in `depends_on`; one listed twice is reported (whether they name tasks is
    /// checked across tasks, in `resolve`).
    fn depends_on(&mut self, t: &Table<'_>) -> Vec<(usize, At<String>)> {
        let depends_on = self.string_list(t, "depends_on");
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, dep) in &depends_on {
            if let Some(first) = seen.insert(&dep.v, *i) {
                let message = format!("{:?} is listed twice (also depends_on[{first}])", dep.v);
                self.error(&dep.span, &t.scope, &format!("depends_on[{i}]"), message);
            }
        }
        depends_on
    }

    fn on_failure(&mut self, t: &Table<'_>, program: Option<&At<String>>) -> Option<ActionConfig> {
        let value = t.get("on_failure")?;
        match value.get_ref() {
            DeValue::String(action) => {
                let action = At::new(nonempty(action), value.span());
                let action = self.ok(action, &t.scope, "on_failure")?;
                let location = self.loc(&action.span);
                let mut grants = Grants::default();
                // The shorthand lets the action control the task's own program and nothing else.
                if let Some(program) = program {
                    grants.supervisor.programs.push(SupervisorProgram {
                        name: program.v.clone(),
                        location: location.clone(),
                    });
                }
                Some(ActionConfig {
                    action: action.v,
                    location,
                    config: PluginConfig::empty(),
                    grants,
                    timeout: DEFAULT_ACTION_TIMEOUT,
                })
            }
            DeValue::Table(_) => {
                let a = self.table(t, "on_failure")?;
                self.action_table(&a)
            }
            _ => {
                let want = "an action name or a table { action = \"...\", ... }";
                self.type_error(value, &t.scope, "on_failure", want);
                None
            }
        }
    }

    /// `on_failure = { action = "...", config = {...}, grants = {...}, timeout = "30s" }`: the
    /// action gets exactly the grants written.
    pub(super) fn action_table(&mut self, a: &Table<'_>) -> Option<ActionConfig> {
        self.check_keys(a, ACTION_KEYS, |_| None);
        let action = self.required_string(a, "action");
        let config = self.plugin_config(a, "config");
        let grants = self.grants(a, "grants");
        let timeout = self
            .duration(a, "timeout", true)
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

    fn plugin_config(&mut self, t: &Table<'_>, key: &str) -> PluginConfig {
        let (Some(_), Some(value)) = (self.table(t, key), t.get(key)) else {
            return PluginConfig::empty();
        };
        let mut locations = BTreeMap::new();
        let json = self.json(value, &t.scope, key, "", &mut locations);
        PluginConfig {
            value: json,
            locations,
        }
    }

    /// `value` as JSON, recording where each value is written by its JSON pointer.
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
                let n = f
                    .as_str()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64);
                let message = || {
                    format!(
                        "{} cannot be passed to a plugin (JSON has no inf or nan)",
                        f.as_str()
                    )
                };
                let n = self.ok(At::new(n.ok_or_else(message), span), scope, key);
                n.map_or(J::Null, |n| J::Number(n.v))
            }
            DeValue::Boolean(b) => J::Bool(*b),
            DeValue::Datetime(d) => J::String(d.to_string()),
            DeValue::Array(items) => {
                let mut array = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let (key, pointer) = (format!("{key}[{i}]"), format!("{pointer}/{i}"));
                    array.push(self.json(item, scope, &key, &pointer, locations));
                }
                J::Array(array)
            }
            DeValue::Table(map) => {
                let mut object = serde_json::Map::new();
                for (k, v) in map.iter() {
                    let name: &str = k.get_ref();
                    let key = format!("{key}.{name}");
                    let pointer = format!("{pointer}/{}", pointer_token(name));
                    let json = self.json(v, scope, &key, &pointer, locations);
                    object.insert(name.to_string(), json);
                }
                J::Object(object)
            }
        }
    }

    fn grants(&mut self, t: &Table<'_>, key: &str) -> Grants {
        let mut grants = Grants::default();
        let Some(g) = self.table(t, key) else {
            return grants;
        };
        self.check_keys(&g, GRANT_KEYS, |_| None);
        grants.http.origins = self.each_grant(&g, "http", |text, location| {
            let (scheme, host, port) = parse_http_origin(&text)?;
            Ok(HttpOrigin {
                scheme,
                host,
                port,
                location,
            })
        });
        grants.exec.programs = self.exec_grants(&g);
        // Each grant names exactly one program: "grp:" or "*" would grant a whole group.
        grants.supervisor.programs = self.each_grant(&g, "supervisor", |name, location| {
            match program::problem(&name) {
                Some(why) => Err(why.to_string()),
                None => Ok(SupervisorProgram { name, location }),
            }
        });
        for (kind, endpoints) in [
            ("tcp", &mut grants.tcp.endpoints),
            ("smtp", &mut grants.smtp.endpoints),
        ] {
            *endpoints = self.each_grant(&g, kind, |text, location| {
                let (host, port) = parse_endpoint(&text, kind)?;
                Ok(TcpEndpoint {
                    host,
                    port,
                    location,
                })
            });
        }
        let named: [(&str, &mut NamedGrants, NameParser); 4] = [
            ("system", &mut grants.system, parse_system_grant),
            ("process", &mut grants.process, parse_process_grant),
            ("docker", &mut grants.docker, parse_container),
            ("systemd", &mut grants.systemd, parse_unit),
        ];
        for (kind, names, parse) in named {
            names.names = self.each_grant(&g, kind, |text, location| {
                Ok(NamedGrant {
                    name: parse(&text)?,
                    location,
                })
            });
        }
        grants.files.paths = self.each_grant(&g, "files", |text, location| {
            let (path, tree) = parse_file_grant(&text)?;
            Ok(FileGrant {
                path,
                tree,
                location,
            })
        });
        grants
    }

    /// `exec = [...]`: each element a program name (any arguments) or a table
    /// `{ program = "...", args = [...] }` (arguments matching the pattern); one it refuses is
    /// reported at its own index, or at its own key inside the table.
    fn exec_grants(&mut self, g: &Table<'_>) -> Vec<ExecProgram> {
        let Some(value) = g.get("exec") else {
            return Vec::new();
        };
        let DeValue::Array(items) = value.get_ref() else {
            let want = "an array of program names or { program, args } tables";
            self.type_error(value, &g.scope, "exec", want);
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let key = format!("exec[{i}]");
            let granted = match item.get_ref() {
                DeValue::String(name) => {
                    let name = At::new(nonempty(name), item.span());
                    self.ok(name, &g.scope, &key)
                        .and_then(|name| self.exec_program(g, &key, name, ExecArgs::Any))
                }
                DeValue::Table(map) => {
                    let (span, scope) = (item.span(), g.scope.child(&key));
                    self.exec_table(&Table { map, span, scope })
                }
                _ => {
                    let want = "a program name or a table { program = \"...\", args = [...] }";
                    self.type_error(item, &g.scope, &key, want);
                    None
                }
            };
            out.extend(granted);
        }
        out
    }

    /// `{ program = "find", args = ["/var/log", "-name", "*"] }`: both keys required, so a table
    /// never silently grants any arguments (the bare string does that, and says so).
    fn exec_table(&mut self, t: &Table<'_>) -> Option<ExecProgram> {
        self.check_keys(t, EXEC_KEYS, |_| None);
        let name = self.required_string(t, "program");
        let args = self.exec_args(t);
        self.exec_program(t, "program", name?, args?)
    }

    /// The `args` pattern of an exec grant table: strings only, `**` only last.
    fn exec_args(&mut self, t: &Table<'_>) -> Option<ExecArgs> {
        let Some(value) = t.get("args") else {
            let message = "missing required key; write args = [] for no arguments, or the \
                           program name alone (a string, not a table) for any arguments";
            self.error(&t.span, &t.scope, "args", message);
            return None;
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.type_error(value, &t.scope, "args", "an array of strings");
            return None;
        };
        let mut written = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::String(s) => written.push(s.as_ref()),
                _ => self.type_error(item, &t.scope, &format!("args[{i}]"), "a string"),
            }
        }
        if written.len() < items.len() {
            return None;
        }
        match ExecArgs::parse(&written) {
            Ok(args) => Some(args),
            Err((i, message)) => {
                let key = format!("args[{i}]");
                self.error(&items[i].span(), &t.scope, &key, message);
                None
            }
        }
    }

    /// One exec grant, its program resolved to an absolute path; a program that does not
    /// resolve is reported at `name`, as `key` of `t`.
    fn exec_program(
        &mut self,
        t: &Table<'_>,
        key: &str,
        name: At<String>,
        args: ExecArgs,
    ) -> Option<ExecProgram> {
        let path = At::new(resolve_exec(&name.v, self.path_env), name.span.clone());
        let path = self.ok(path, &t.scope, key)?;
        Some(ExecProgram {
            location: self.loc(&name.span),
            name: name.v,
            path: path.v,
            args,
        })
    }

    /// The grants of one kind, each read by `grant` from its text and location; one it refuses
    /// is reported at its own index.
    fn each_grant<T>(
        &mut self,
        g: &Table<'_>,
        kind: &str,
        mut grant: impl FnMut(String, Location) -> Result<T, String>,
    ) -> Vec<T> {
        let mut out = Vec::new();
        for (i, s) in self.string_list(g, kind) {
            match grant(s.v, self.loc(&s.span)) {
                Ok(granted) => out.push(granted),
                Err(message) => self.error(&s.span, &g.scope, &format!("{kind}[{i}]"), message),
            }
        }
        out
    }
}
