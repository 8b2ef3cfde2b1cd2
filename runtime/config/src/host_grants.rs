//! Grants to the host's own things: its resources (`system`), a service's process figures
//! (`process`), files (`files`), Docker containers (`docker`) and systemd units (`systemd`).
//! Each is an exact allow-list like the others; the one prefix rule is a `files` grant ending
//! in `/`, which grants that directory and everything under it.

use std::path::{Component, Path, PathBuf};

use crate::Location;

/// One granted name (a system resource, a process target, a container, a unit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedGrant {
    /// The name, as normalised by its kind's parser.
    pub name: String,
    /// Where the grant is written.
    pub location: Location,
}

/// Grants that are exact names: `system`, `process`, `docker`, `systemd`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NamedGrants {
    /// The granted names, in the order written.
    pub names: Vec<NamedGrant>,
}

impl NamedGrants {
    /// Whether `name` is granted (exact, case-sensitive).
    pub fn allows(&self, name: &str) -> bool {
        self.names.iter().any(|g| g.name == name)
    }

    /// Whether nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// One granted path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileGrant {
    /// The path, absolute and without `.` or `..` (a trailing `/` removed).
    pub path: PathBuf,
    /// Whether the grant covers everything under `path` (it was written with a trailing `/`).
    pub tree: bool,
    /// Where the grant is written.
    pub location: Location,
}

/// `files` grants: absolute paths, each a file, or with a trailing `/` a directory and all under it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileGrants {
    /// The granted paths, in the order written.
    pub paths: Vec<FileGrant>,
}

impl FileGrants {
    /// Whether `path` may be read. The caller passes the path with its symbolic links resolved
    /// (and checks the path as asked too), so a link cannot lead out of a grant.
    pub fn allows(&self, path: &Path) -> bool {
        if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
            return false;
        }
        self.paths.iter().any(|g| {
            if g.tree {
                path.starts_with(&g.path)
            } else {
                path == g.path
            }
        })
    }

    /// Whether nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

/// Parses a `files` grant: an absolute path, a trailing `/` for a whole directory.
pub fn parse_file_grant(text: &str) -> Result<(PathBuf, bool), String> {
    if !text.starts_with('/') {
        return Err(format!(
            "{text:?} is not an absolute path; a files grant is a path such as /var/log/app.log, or /var/log/app/ for a directory"
        ));
    }
    if text.contains('\0') {
        return Err(format!("{text:?} contains a NUL byte"));
    }
    let path = Path::new(text);
    // Split the text, not the path: `Path::components` drops a `.` in the middle.
    if text
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(format!(
            "{text:?} contains `.` or `..`; write the path it stands for"
        ));
    }
    let tree = text.ends_with('/');
    let path: PathBuf = path.components().collect();
    Ok((path, tree))
}

/// The forms a `system` grant takes.
pub const SYSTEM_FORMS: &str =
    "\"cpu\", \"memory\", \"load\", \"disk:<mount point>\" or \"network:<interface>\"";

/// Parses a `system` grant: `cpu`, `memory`, `load`, `disk:<absolute mount point>` or
/// `network:<interface>`.
pub fn parse_system_grant(text: &str) -> Result<String, String> {
    match text.split_once(':') {
        None if matches!(text, "cpu" | "memory" | "load") => Ok(text.to_owned()),
        Some(("disk", mount)) => {
            let (path, _) = parse_file_grant(mount).map_err(|_| {
                format!("{text:?}: the mount point must be an absolute path, as \"disk:/var\"")
            })?;
            Ok(format!("disk:{}", path.display()))
        }
        Some(("network", name)) => interface_problem(name)
            .map_or(Ok(text.to_owned()), |why| Err(format!("{text:?}: {why}"))),
        _ => Err(format!(
            "{text:?} is not a system resource; write {SYSTEM_FORMS}"
        )),
    }
}

fn interface_problem(name: &str) -> Option<&'static str> {
    // Linux's IFNAMSIZ is 16 with the NUL; the kernel refuses `/`, whitespace and `:` too.
    if name.is_empty() || name.len() > 15 {
        Some("an interface name has 1 to 15 characters")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
        || name == "."
        || name == ".."
    {
        Some("not an interface name")
    } else {
        None
    }
}

/// Parses a `process` grant: `supervisor:<program>`, `docker:<container>` or `systemd:<unit>`.
pub fn parse_process_grant(text: &str) -> Result<String, String> {
    let forms = "write \"supervisor:<program>\", \"docker:<container>\" or \"systemd:<unit>\"";
    let Some((kind, name)) = text.split_once(':') else {
        return Err(format!("{text:?} does not say whose process; {forms}"));
    };
    let problem = match kind {
        "supervisor" => hmrt_domain::program::problem(name).map(str::to_owned),
        "docker" => parse_container(name).err(),
        "systemd" => parse_unit(name).err(),
        _ => Some(format!("{kind:?} is not a kind of service; {forms}")),
    };
    match problem {
        Some(why) => Err(format!("{text:?}: {why}")),
        None => Ok(text.to_owned()),
    }
}

/// Parses a `docker` grant: a container name or id, as Docker allows them.
pub fn parse_container(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 128
        && text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} is not a container name or id (letters, digits, `_`, `.`, `-`; no wildcards)"
        ))
    }
}

const UNIT_TYPES: &[&str] = &[
    "service",
    "socket",
    "target",
    "timer",
    "mount",
    "automount",
    "path",
    "slice",
    "scope",
    "swap",
    "device",
];

/// Parses a `systemd` grant: a unit's full name, such as `nginx.service`.
pub fn parse_unit(text: &str) -> Result<String, String> {
    let suffix_ok = text
        .rsplit_once('.')
        .is_some_and(|(stem, ty)| !stem.is_empty() && UNIT_TYPES.contains(&ty));
    let chars_ok = text.len() <= 255
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '\\' | '@'));
    if suffix_ok && chars_ok && !text.contains('*') {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} is not a unit name; write it whole, with its type, as nginx.service"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(grants: &[&str]) -> FileGrants {
        FileGrants {
            paths: grants
                .iter()
                .map(|g| {
                    let (path, tree) = parse_file_grant(g).unwrap();
                    FileGrant {
                        path,
                        tree,
                        location: Location::whole_file(Path::new("t.toml")),
                    }
                })
                .collect(),
        }
    }

    #[test]
    fn a_file_grant_is_one_file_and_a_slash_grants_the_tree() {
        let g = files(&["/var/log/app/", "/run/beat"]);
        assert!(g.allows(Path::new("/var/log/app/x.log")));
        assert!(g.allows(Path::new("/var/log/app/a/b")));
        assert!(g.allows(Path::new("/var/log/app")));
        assert!(!g.allows(Path::new("/var/log/application.log")));
        assert!(!g.allows(Path::new("/var/log/app/../../etc/shadow")));
        assert!(g.allows(Path::new("/run/beat")));
        assert!(!g.allows(Path::new("/run/beat/x")));
        assert!(!g.allows(Path::new("/run")));
        assert!(!g.allows(Path::new("run/beat")));
    }

    #[test]
    fn bad_file_grants_say_why() {
        assert!(
            parse_file_grant("var/log")
                .unwrap_err()
                .contains("absolute")
        );
        assert!(parse_file_grant("/var/../etc/").unwrap_err().contains(".."));
        assert!(parse_file_grant("/var/./log").unwrap_err().contains(".."));
    }

    #[test]
    fn system_grants_take_five_forms() {
        for ok in ["cpu", "memory", "load", "disk:/", "disk:/var", "network:lo"] {
            assert_eq!(parse_system_grant(ok).unwrap(), ok);
        }
        assert_eq!(parse_system_grant("disk:/var/").unwrap(), "disk:/var");
        for bad in ["cpus", "disk:var", "network:", "network:a/b", "swap", "*"] {
            assert!(parse_system_grant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn process_docker_and_unit_grants_name_one_thing() {
        assert!(parse_process_grant("supervisor:web").is_ok());
        assert!(parse_process_grant("docker:app-1").is_ok());
        assert!(parse_process_grant("systemd:nginx.service").is_ok());
        assert!(parse_process_grant("web").is_err());
        assert!(parse_process_grant("supervisor:grp:").is_err());
        assert!(parse_process_grant("kube:x").is_err());
        assert!(parse_container("*").is_err());
        assert!(parse_container("a/b").is_err());
        assert!(parse_unit("nginx").is_err());
        assert!(parse_unit("*.service").is_err());
        assert!(parse_unit("getty@tty1.service").is_ok());
    }
}
