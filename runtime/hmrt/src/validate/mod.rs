//! `hmrt validate`: everything that can be known before running. The config (by the config
//! crate), the plugins (loadable, right world and version), the names tasks use, each plugin's
//! own verdict on its config, and whether the task's grants cover what the plugin says that
//! config needs. Every finding names a file, and a line where there is one.

use hmrt_config::{Config, ConfigError, Grants, Location, PluginConfig};

use crate::registry::Registry;
use crate::sandbox::{Need, Sandbox, TaskCall};
use crate::tasks::{Bound, BoundTask, bind};

pub(crate) mod declared;
mod reach;

/// What `hmrt validate` found, in two kinds: `run` refuses to start on the first, and starts
/// despite the second (the design's exception: a plugin file that cannot load is reported, its
/// tasks stay `unknown`, and the rest run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// Plugin files in `plugins_dir` that could not be loaded.
    pub plugin_files: Vec<String>,
    /// Everything else: the tasks' names, plugins, plugin configs and grants.
    pub config: Vec<String>,
    /// Worth knowing, never a refusal: capabilities declared but not granted, grants that
    /// nothing in the config needs.
    pub notes: Vec<String>,
}

impl Findings {
    /// Every finding, plugin files first.
    pub fn all(&self) -> impl Iterator<Item = &String> + '_ {
        self.plugin_files.iter().chain(&self.config)
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.plugin_files.is_empty() && self.config.is_empty()
    }
}

/// Everything wrong with `config` and the plugins it uses, one message per finding.
pub async fn validate(config: &Config, sandbox: &Sandbox, registry: &Registry) -> Findings {
    validate_tasks(config, sandbox, registry, None).await
}

/// [`validate`], asking the plugins only about the task named `only` (when given): what
/// `hmrt check --task` needs, without paying for, or failing on, the other tasks' plugin calls.
pub async fn validate_tasks(
    config: &Config,
    sandbox: &Sandbox,
    registry: &Registry,
    only: Option<&str>,
) -> Findings {
    let mut findings = Findings {
        plugin_files: registry.problems().iter().map(|p| p.to_string()).collect(),
        ..Findings::default()
    };
    let tasks = match bind(config, registry) {
        Ok(tasks) => tasks,
        Err(errors) => {
            findings
                .config
                .extend(errors.iter().map(ToString::to_string));
            return findings;
        }
    };
    findings
        .config
        .extend(reach::laundering(config).iter().map(ToString::to_string));
    if only.is_none() {
        let (errors, notes) = validate_receivers(config, sandbox, registry).await;
        findings.config.extend(errors);
        findings.notes.extend(notes);
    }
    for task in tasks
        .iter()
        .filter(|t| only.is_none_or(|name| t.name() == name))
    {
        let found = validate_task(sandbox, task).await;
        findings
            .config
            .extend(found.errors.iter().map(ToString::to_string));
        findings
            .notes
            .extend(found.notes.iter().map(ToString::to_string));
    }
    findings
}

/// Each alert route's receiver: it resolves to an action, accepts its config, and the route's
/// receiver grants cover what it would touch.
async fn validate_receivers(
    config: &Config,
    sandbox: &Sandbox,
    registry: &Registry,
) -> (Vec<String>, Vec<String>) {
    let receivers = match crate::alerts::receivers::bind(config, registry) {
        Ok(receivers) => receivers,
        Err(errors) => return (errors.iter().map(ToString::to_string).collect(), Vec::new()),
    };
    let mut findings = Vec::new();
    let mut notes = Vec::new();
    for receiver in &receivers {
        let Bound::Ready(entry) = &receiver.plugin else {
            continue;
        };
        let route = &receiver.route;
        let key = if receiver.queue == route.name {
            "receiver"
        } else {
            "escalate_to"
        };
        let prefix = format!("alert {:?}: {key}", route.name);
        let found = validate_call(
            sandbox,
            entry,
            &receiver.call,
            &receiver.action.config,
            &receiver.action.location,
            &format!("{prefix}.config"),
            &format!("{prefix}.grants"),
        )
        .await;
        findings.extend(found.errors.iter().map(ToString::to_string));
        notes.extend(found.notes.iter().map(ToString::to_string));
    }
    (findings, notes)
}

async fn validate_task(sandbox: &Sandbox, task: &BoundTask) -> declared::Declared {
    let mut found = declared::Declared::default();
    let name = task.name();
    let mut add = |more: declared::Declared| {
        found
            .errors
            .extend(more.errors.into_iter().map(|e| e.in_task(name)));
        found
            .notes
            .extend(more.notes.into_iter().map(|e| e.in_task(name)));
    };
    if let Bound::Ready(entry) = &task.check {
        add(validate_call(
            sandbox,
            entry,
            &task.check_call,
            &task.config.config,
            &task.config.check_location,
            "config",
            "grants",
        )
        .await);
    }
    if let (Some((Bound::Ready(entry), call)), Some(action)) =
        (&task.action, &task.config.on_failure)
    {
        add(validate_call(
            sandbox,
            entry,
            call,
            &action.config,
            &action.location,
            "on_failure.config",
            "on_failure.grants",
        )
        .await);
    }
    found
}

/// The plugin's verdict on one call's config, and whether the call's grants are within its
/// declaration and cover what that config needs.
async fn validate_call(
    sandbox: &Sandbox,
    entry: &crate::registry::Entry,
    call: &TaskCall,
    config: &PluginConfig,
    fallback: &Location,
    config_key: &str,
    grants_key: &str,
) -> declared::Declared {
    let plugin = &entry.plugin;
    let table = config.location("").unwrap_or(fallback);
    let fail = |error| declared::Declared {
        errors: vec![error],
        notes: Vec::new(),
    };
    let undeclared = declared::undeclared(plugin.info(), &call.grants, table, grants_key);
    if !undeclared.is_empty() {
        return declared::Declared {
            errors: undeclared,
            notes: Vec::new(),
        };
    }
    let needs = match sandbox.validate(plugin, call).await {
        Err(e) => {
            return fail(ConfigError::new(
                table.clone(),
                config_key,
                format!("the plugin's validate {e}"),
            ));
        }
        Ok(Err(message)) => return fail(ConfigError::new(table.clone(), config_key, message)),
        Ok(Ok(needs)) => needs,
    };
    let notes = declared::notes(
        plugin.info(),
        matches!(entry.source, crate::registry::Source::File(_)),
        &call.grants,
        &needs,
        table,
        grants_key,
    );
    let mut errors = Vec::new();
    for need in needs {
        if let Some(problem) = uncovered(&need, &call.grants) {
            // Point at the config value the need came from when there is one.
            let value = declared::need_value(&need);
            let (location, key) = match find_value(config, value) {
                Some((pointer, location)) => (
                    location,
                    format!("{config_key}{}", pointer.replace('/', ".")),
                ),
                None => (table.clone(), config_key.to_string()),
            };
            errors.push(ConfigError::new(
                location,
                key,
                format!("{problem} ({grants_key})"),
            ));
        }
    }
    declared::Declared { errors, notes }
}

/// Whether `plugin` can serve `call` as a plugin of `kind`: the world, the declaration against
/// the grants, the plugin's own verdict on the config, and the grants against its needs. What
/// hot reload asks of a new version before it replaces the old one; the first problem, in one
/// line.
pub(crate) async fn fits(
    sandbox: &Sandbox,
    plugin: &crate::sandbox::Plugin,
    kind: crate::sandbox::PluginKind,
    call: &TaskCall,
) -> Result<(), String> {
    if plugin.kind() != kind {
        return Err(format!(
            "it is now a plugin of the {} world, not the {kind} world",
            plugin.kind()
        ));
    }
    let location = Location::whole_file(std::path::Path::new(""));
    if let Some(e) = declared::undeclared(plugin.info(), &call.grants, &location, "grants").first()
    {
        return Err(format!("{}: {}", e.key, e.message));
    }
    let needs = match sandbox.validate(plugin, call).await {
        Err(e) => return Err(format!("its validate {e}")),
        Ok(Err(message)) => return Err(format!("its validate() rejects the config: {message}")),
        Ok(Ok(needs)) => needs,
    };
    match needs.iter().find_map(|need| uncovered(need, &call.grants)) {
        Some(problem) => Err(format!("it needs what the task does not grant: {problem}")),
        None => Ok(()),
    }
}

fn find_value(config: &PluginConfig, wanted: &str) -> Option<(String, Location)> {
    config.locations.iter().find_map(|(pointer, location)| {
        (config.value.pointer(pointer)?.as_str()? == wanted)
            .then(|| (pointer.clone(), location.clone()))
    })
}

/// Why `grants` do not cover `need`, or `None` when they do.
pub(crate) fn uncovered(need: &Need, grants: &Grants) -> Option<String> {
    match need {
        Need::Http(raw) => match url::Url::parse(raw) {
            Err(e) => Some(format!("{raw:?} is not a valid URL: {e}")),
            Ok(url) if grants.http.allows(&url) => None,
            Ok(url) => Some(format!(
                "{raw} is not covered by the http grants (it needs the origin {}://{}:{})",
                url.scheme(),
                url.host_str().unwrap_or(""),
                url.port_or_known_default().unwrap_or(0)
            )),
        },
        Need::Exec(program) => grants
            .exec
            .resolve(program)
            .is_none()
            .then(|| format!("program {program:?} is not in the exec grants")),
        Need::Supervisor(program) => (!grants.supervisor.allows(program))
            .then(|| format!("supervisord program {program:?} is not in the supervisor grants")),
        Need::Tcp(address) => endpoint_uncovered(address, &grants.tcp, "tcp"),
        Need::Smtp(address) => endpoint_uncovered(address, &grants.smtp, "smtp"),
        // Normalised as the grant is (`disk:/var/` is `disk:/var`), as the capability does.
        Need::System(resource) => match hmrt_config::parse_system_grant(resource) {
            Err(e) => Some(e),
            Ok(name) if grants.system.allows(&name) => None,
            Ok(_) => Some(format!("{resource:?} is not in the system grants")),
        },
        Need::Process(target) => (!grants.process.allows(target))
            .then(|| format!("{target:?} is not in the process grants")),
        Need::Files(path) => (!grants.files.allows(std::path::Path::new(path)))
            .then(|| format!("{path:?} is not covered by the files grants")),
        Need::Docker(container) => (!grants.docker.allows(container))
            .then(|| format!("container {container:?} is not in the docker grants")),
        Need::Systemd(unit) => (!grants.systemd.allows(unit))
            .then(|| format!("unit {unit:?} is not in the systemd grants")),
    }
}

fn endpoint_uncovered(
    address: &str,
    grants: &hmrt_config::TcpGrants,
    kind: &str,
) -> Option<String> {
    let parsed = address
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host.trim_matches(['[', ']']), port.parse::<u16>().ok()?)));
    match parsed {
        None => Some(format!("{address:?} is not a host:port address")),
        Some((host, port)) if grants.allows(host, port) => None,
        Some(_) => Some(format!("{address} is not in the {kind} grants")),
    }
}
