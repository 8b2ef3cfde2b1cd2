//! A plugin's declared capabilities (its `describe()`) against a task's grants. A grant for a
//! capability the plugin does not declare is refused: the operator would hand a plugin more
//! than its author says it needs. Two more findings are notes, not errors: a capability a
//! third-party plugin declares that the task does not grant (its calls there will be denied),
//! and a granted capability that nothing the plugin's `validate()` listed for this config uses.

use hmrt_config::{ConfigError, Grants, Location};

use crate::sandbox::{Need, PluginInfo, capability_names};

/// What a call's grants and its plugin's declaration say, beside the plugin's own verdict.
#[derive(Default)]
pub(super) struct Declared {
    /// Grants beyond the declaration: the task is refused.
    pub errors: Vec<ConfigError>,
    /// Worth knowing, never a refusal.
    pub notes: Vec<ConfigError>,
}

/// The capability a need is of, as the `grants` keys spell it.
pub(crate) fn need_kind(need: &Need) -> &'static str {
    match need {
        Need::Http(_) => "http",
        Need::Exec(_) => "exec",
        Need::Supervisor(_) => "supervisor",
        Need::Tcp(_) => "tcp",
        Need::Smtp(_) => "smtp",
        Need::System(_) => "system",
        Need::Process(_) => "process",
        Need::Files(_) => "files",
        Need::Docker(_) => "docker",
        Need::Systemd(_) => "systemd",
    }
}

/// What a need asks for (a URL, a program, an address, ...).
pub(crate) fn need_value(need: &Need) -> &str {
    match need {
        Need::Http(v)
        | Need::Exec(v)
        | Need::Supervisor(v)
        | Need::Tcp(v)
        | Need::Smtp(v)
        | Need::System(v)
        | Need::Process(v)
        | Need::Files(v)
        | Need::Docker(v)
        | Need::Systemd(v) => v,
    }
}

/// Grants the plugin does not declare (always errors).
pub(crate) fn undeclared(
    info: &PluginInfo,
    grants: &Grants,
    at: &Location,
    grants_key: &str,
) -> Vec<ConfigError> {
    let declared = capability_names(info);
    grants
        .kinds()
        .into_iter()
        .filter(|kind| !declared.contains(kind))
        .map(|kind| {
            ConfigError::new(
                at.clone(),
                format!("{grants_key}.{kind}"),
                format!(
                    "the plugin does not declare the {kind} capability (it declares: {}); a grant beyond what a plugin declares is refused: remove it, or use a plugin that declares {kind}",
                    list(&declared)
                ),
            )
        })
        .collect()
}

/// Notes on a call whose grants are within the declaration: declared but not granted (for
/// third-party plugins; a built-in declares all it can do, most of it optional), granted but
/// named by no need of this config.
pub(super) fn notes(
    info: &PluginInfo,
    third_party: bool,
    grants: &Grants,
    needs: &[Need],
    at: &Location,
    grants_key: &str,
) -> Vec<ConfigError> {
    let granted = grants.kinds();
    let mut notes = Vec::new();
    if third_party {
        for kind in capability_names(info)
            .iter()
            .filter(|k| !granted.contains(k))
        {
            notes.push(ConfigError::new(
                at.clone(),
                format!("{grants_key}.{kind}"),
                format!(
                    "note: the plugin declares the {kind} capability, which this task does not grant (its {kind} calls will be denied)"
                ),
            ));
        }
    }
    for kind in granted
        .iter()
        .filter(|kind| !needs.iter().any(|n| need_kind(n) == **kind))
    {
        notes.push(ConfigError::new(
            at.clone(),
            format!("{grants_key}.{kind}"),
            format!(
                "note: granted, but the plugin's validate() names no {kind} need for this config (a grant nothing uses only widens what the plugin could reach)"
            ),
        ));
    }
    notes
}

fn list(kinds: &[&str]) -> String {
    if kinds.is_empty() {
        "nothing".into()
    } else {
        kinds.join(", ")
    }
}
