//! What systemd says about a unit, turned into the guest's `unit-status`: the pure part of the
//! capability (no bus), unit-tested on its own.

use crate::sandbox::bindings::systemd::UnitStatus;
use crate::sandbox::untrusted;

/// Longest state word passed on (`ActiveState`, `SubState`, `Result`, `LoadState`); systemd's
/// are short words, so anything longer is cut rather than trusted.
const WORD: usize = 64;

/// The properties of a unit that the capability reads, from `org.freedesktop.systemd1.Unit`
/// and the unit type's own interface (`...Service` for services).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UnitProps {
    /// `Id`: the unit's own name (an alias resolves to the unit it names).
    pub(crate) id: String,
    /// `LoadState`: `loaded`, `not-found`, `bad-setting`, `error`, `masked`, ...
    pub(crate) load_state: String,
    /// `ActiveState`.
    pub(crate) active_state: String,
    /// `SubState`.
    pub(crate) sub_state: String,
    /// `Result` of the type interface (services, sockets, mounts, ...), if it has one.
    pub(crate) result: Option<String>,
    /// `NRestarts` (services only).
    pub(crate) n_restarts: Option<u32>,
    /// `MainPID` (services only; 0 while no process runs).
    pub(crate) main_pid: Option<u32>,
}

/// Why a unit's properties are not passed on as a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The name reached another unit (an alias): the grant names `asked`, not `id`.
    Alias { asked: String, id: String },
    /// systemd has no usable unit of that name (`LoadState` says why).
    NotLoaded { name: String, load_state: String },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Alias { asked, id } => write!(
                f,
                "{asked} is an alias of {id}; grant the unit by its own name"
            ),
            Refusal::NotLoaded { name, load_state } => {
                write!(
                    f,
                    "systemd has no unit {name} (its load state is {load_state})"
                )
            }
        }
    }
}

/// Load states in which systemd has no unit to report on.
const NOT_LOADED: &[&str] = &["not-found", "bad-setting", "error"];

impl UnitProps {
    /// The guest's view of the unit `asked` (the granted name), refused when systemd resolved
    /// it to another unit or has no such unit. Strings are capped, escaped words.
    pub(crate) fn status(self, asked: &str) -> Result<UnitStatus, Refusal> {
        // Compare before capping: a long unit name (a scope, an escaped device path) is still
        // itself.
        let id = word(&self.id);
        if self.id != asked {
            return Err(Refusal::Alias {
                asked: untrusted::line(asked, untrusted::ASKED),
                id,
            });
        }
        if NOT_LOADED.contains(&self.load_state.as_str()) {
            return Err(Refusal::NotLoaded {
                name: id,
                load_state: word(&self.load_state),
            });
        }
        Ok(UnitStatus {
            name: id,
            active_state: word(&self.active_state),
            sub_state: word(&self.sub_state),
            result: self.result.as_deref().map(word).unwrap_or_default(),
            n_restarts: self.n_restarts.unwrap_or(0),
            main_pid: self.main_pid.filter(|&pid| pid > 0),
        })
    }
}

/// `text` from the bus as one escaped, capped word.
fn word(text: &str) -> String {
    untrusted::line(text, WORD)
}

/// The D-Bus interface of a unit's type (`nginx.service` -> `org.freedesktop.systemd1.Service`),
/// which holds `Result`, `NRestarts` and `MainPID`; none for types without such an interface.
pub(crate) fn type_interface(unit: &str) -> Option<&'static str> {
    let (_, kind) = unit.rsplit_once('.')?;
    Some(match kind {
        "service" => "org.freedesktop.systemd1.Service",
        "socket" => "org.freedesktop.systemd1.Socket",
        "mount" => "org.freedesktop.systemd1.Mount",
        "automount" => "org.freedesktop.systemd1.Automount",
        "swap" => "org.freedesktop.systemd1.Swap",
        "timer" => "org.freedesktop.systemd1.Timer",
        "path" => "org.freedesktop.systemd1.Path",
        "scope" => "org.freedesktop.systemd1.Scope",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nginx() -> UnitProps {
        UnitProps {
            id: "nginx.service".into(),
            load_state: "loaded".into(),
            active_state: "active".into(),
            sub_state: "running".into(),
            result: Some("success".into()),
            n_restarts: Some(2),
            main_pid: Some(4242),
        }
    }

    #[test]
    fn a_loaded_unit_is_its_status() {
        let s = nginx().status("nginx.service").unwrap();
        assert_eq!(s.name, "nginx.service");
        assert_eq!(
            (s.active_state.as_str(), s.sub_state.as_str()),
            ("active", "running")
        );
        assert_eq!(s.result, "success");
        assert_eq!((s.n_restarts, s.main_pid), (2, Some(4242)));
    }

    #[test]
    fn no_main_process_is_none() {
        let props = UnitProps {
            main_pid: Some(0),
            ..nginx()
        };
        assert_eq!(props.status("nginx.service").unwrap().main_pid, None);
        let timer = UnitProps {
            id: "backup.timer".into(),
            result: None,
            n_restarts: None,
            main_pid: None,
            ..nginx()
        };
        let s = timer.status("backup.timer").unwrap();
        assert_eq!((s.result.as_str(), s.n_restarts, s.main_pid), ("", 0, None));
    }

    #[test]
    fn an_alias_is_refused_naming_both() {
        let err = nginx().status("www.service").unwrap_err();
        assert_eq!(
            err,
            Refusal::Alias {
                asked: "www.service".into(),
                id: "nginx.service".into()
            }
        );
        assert!(err.to_string().contains("alias of nginx.service"));
    }

    #[test]
    fn a_unit_systemd_does_not_have_is_refused() {
        for state in ["not-found", "bad-setting", "error"] {
            let props = UnitProps {
                load_state: state.into(),
                ..nginx()
            };
            let err = props.status("nginx.service").unwrap_err();
            assert!(err.to_string().contains(state), "{err}");
        }
        let masked = UnitProps {
            load_state: "masked".into(),
            active_state: "inactive".into(),
            ..nginx()
        };
        assert_eq!(
            masked.status("nginx.service").unwrap().active_state,
            "inactive"
        );
    }

    #[test]
    fn words_from_the_bus_are_escaped_and_capped() {
        let props = UnitProps {
            sub_state: format!("run\nning{}", "x".repeat(500)),
            result: Some("\u{1b}[31mred".into()),
            ..nginx()
        };
        let s = props.status("nginx.service").unwrap();
        // The cut ends in `…` (3 bytes) past the cap.
        assert!(s.sub_state.len() <= WORD + 3, "{}", s.sub_state);
        assert!(!s.sub_state.contains('\n'), "{}", s.sub_state);
        assert!(!s.result.contains('\u{1b}'), "{}", s.result);
    }

    #[test]
    fn type_interfaces() {
        assert_eq!(
            type_interface("nginx.service"),
            Some("org.freedesktop.systemd1.Service")
        );
        assert_eq!(
            type_interface("docker.socket"),
            Some("org.freedesktop.systemd1.Socket")
        );
        assert_eq!(type_interface("multi-user.target"), None);
        assert_eq!(type_interface("nginx"), None);
    }
}
