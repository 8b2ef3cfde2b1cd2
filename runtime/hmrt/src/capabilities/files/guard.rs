//! Where a path leads, checked against the `files` grants twice: as the guest wrote it, and as
//! the kernel resolved it once opened.
//!
//! A path is opened with `O_PATH`: the kernel follows every symbolic link and hands back a
//! handle without opening the file for I/O, so a FIFO cannot block the call and a device's
//! open has no side effect. `/proc/self/fd/N` then names what was really opened, and that name
//! must be granted too: a link inside a granted directory that leads out of it (to
//! `/etc/shadow`, to another tree) is denied. Everything after that (`fstat`, the read, the
//! directory listing) goes through that one handle, never through the path again, so swapping
//! a link between the check and the use changes nothing.

use std::fs::{File, Metadata, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use hmrt_config::FileGrants;

/// The longest path a guest may ask for (Linux's `PATH_MAX`).
pub(crate) const PATH_BYTES: usize = 4096;

/// Why a file call gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The path as asked is not granted.
    NotGranted,
    /// The path as asked is granted, but it resolves (through a link) outside the grants.
    Outside,
    /// The call was malformed or asked for something of the wrong kind; the text says how.
    Invalid(String),
    /// The call was allowed but failed (it does not exist, permission); the text says why.
    Failed(String),
    /// The call ran out of time.
    Timeout,
}

/// What a path is, as `stat` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// Anything else.
    Other,
}

/// What `stat` says of a path (after its links are followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    /// What it is.
    pub(crate) kind: Kind,
    /// Its size in bytes.
    pub(crate) size: u64,
    /// Its modification time, in milliseconds since the Unix epoch.
    pub(crate) modified_ms: i64,
    /// Its inode number.
    pub(crate) inode: u64,
}

impl Stat {
    /// What `meta` says.
    pub(crate) fn of(meta: &Metadata) -> Stat {
        let file_type = meta.file_type();
        let kind = if file_type.is_file() {
            Kind::File
        } else if file_type.is_dir() {
            Kind::Directory
        } else {
            Kind::Other
        };
        Stat {
            kind,
            size: meta.len(),
            modified_ms: meta
                .mtime()
                .saturating_mul(1000)
                .saturating_add(meta.mtime_nsec() / 1_000_000),
            inode: meta.ino(),
        }
    }

    /// What a directory listing says of an entry it may name but not describe (a link that
    /// leads outside the grants): nothing.
    pub(crate) fn withheld() -> Stat {
        Stat {
            kind: Kind::Other,
            size: 0,
            modified_ms: 0,
            inode: 0,
        }
    }
}

/// A path opened as a handle (`O_PATH`) and found inside the grants.
pub(crate) struct Opened {
    /// The handle: good for `fstat` and for reopening through `/proc/self/fd`, not for I/O.
    pub(crate) handle: File,
    /// What `fstat` says of it.
    pub(crate) meta: Metadata,
}

impl Opened {
    /// The name under which the kernel reopens exactly this file (not whatever the path
    /// names by now).
    pub(crate) fn proc_path(&self) -> PathBuf {
        fd_path(&self.handle)
    }
}

fn fd_path(file: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// Whether `asked`, as the guest wrote it, may be looked at: absolute, without `..`, at most
/// [`PATH_BYTES`], and granted.
pub(crate) fn check_asked(grants: &FileGrants, asked: &str) -> Result<(), Refusal> {
    if asked.is_empty() || asked.len() > PATH_BYTES || asked.contains('\0') {
        return Err(Refusal::Invalid(format!(
            "a path is 1 to {PATH_BYTES} bytes without NUL"
        )));
    }
    let path = Path::new(asked);
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Err(Refusal::NotGranted);
    }
    if grants.allows(path) {
        Ok(())
    } else {
        Err(Refusal::NotGranted)
    }
}

/// Opens `path` as a handle, following its links, and checks that what it reached is granted.
/// `shown` names the path in messages (the path as the guest asked).
pub(crate) fn open_checked(
    grants: &FileGrants,
    path: &Path,
    shown: &str,
) -> Result<Opened, Refusal> {
    let handle = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(path)
        .map_err(|e| {
            // A link to something outside that does not exist must not answer "does not
            // exist": that would tell what exists outside the grants.
            if leads_outside(grants, path) {
                Refusal::Outside
            } else {
                io_failure(shown, &e)
            }
        })?;
    let real = std::fs::read_link(fd_path(&handle)).map_err(|e| {
        Refusal::Failed(format!(
            "cannot tell where {shown} leads (is /proc mounted?): {e}"
        ))
    })?;
    if !grants.allows(&real) {
        return Err(Refusal::Outside);
    }
    let meta = handle.metadata().map_err(|e| io_failure(shown, &e))?;
    Ok(Opened { handle, meta })
}

/// Whether the deepest part of `path` that exists resolves outside the grants, with the rest
/// of the path appended: what a failed open would have reached.
fn leads_outside(grants: &FileGrants, path: &Path) -> bool {
    for ancestor in path.ancestors() {
        if let Ok(real) = std::fs::canonicalize(ancestor) {
            let rest = path.strip_prefix(ancestor).unwrap_or(Path::new(""));
            return !grants.allows(&real.join(rest));
        }
    }
    false
}

/// An I/O error as the guest sees it, naming the path it asked for.
pub(crate) fn io_failure(shown: &str, e: &std::io::Error) -> Refusal {
    Refusal::Failed(match e.kind() {
        ErrorKind::NotFound => format!("{shown} does not exist"),
        ErrorKind::PermissionDenied => format!("{shown}: permission denied"),
        _ => format!("{shown}: {e}"),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use hmrt_config::{FileGrant, Location};

    pub(crate) fn grants(paths: &[(&Path, bool)]) -> FileGrants {
        FileGrants {
            paths: paths
                .iter()
                .map(|(path, tree)| FileGrant {
                    path: path.to_path_buf(),
                    tree: *tree,
                    location: Location::whole_file(Path::new("t.toml")),
                })
                .collect(),
        }
    }

    #[test]
    fn the_path_as_asked_must_be_absolute_granted_and_without_dot_dot() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let g = grants(&[(&root.join("logs"), true)]);
        let inside = root.join("logs/app.log");
        assert_eq!(check_asked(&g, inside.to_str().unwrap()), Ok(()));
        let sneaky = format!("{}/logs/../secret", root.display());
        assert_eq!(check_asked(&g, &sneaky), Err(Refusal::NotGranted));
        assert_eq!(check_asked(&g, "logs/app.log"), Err(Refusal::NotGranted));
        assert_eq!(check_asked(&g, "/etc/shadow"), Err(Refusal::NotGranted));
        assert!(matches!(check_asked(&g, ""), Err(Refusal::Invalid(_))));
        assert!(matches!(
            check_asked(&g, &"/".repeat(PATH_BYTES + 1)),
            Err(Refusal::Invalid(_))
        ));
    }

    #[test]
    fn a_link_out_of_the_grant_is_outside_whether_or_not_its_target_exists() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("logs")).unwrap();
        std::fs::create_dir_all(root.join("secret")).unwrap();
        std::fs::write(root.join("secret/key"), b"k").unwrap();
        std::fs::write(root.join("logs/app.log"), b"x").unwrap();
        std::os::unix::fs::symlink(root.join("secret/key"), root.join("logs/key")).unwrap();
        std::os::unix::fs::symlink(root.join("secret"), root.join("logs/sub")).unwrap();
        std::os::unix::fs::symlink("app.log", root.join("logs/current")).unwrap();
        let g = grants(&[(&root.join("logs"), true)]);
        let open = |p: &str| open_checked(&g, &root.join(p), p).map(|o| Stat::of(&o.meta));
        assert_eq!(open("logs/app.log").unwrap().kind, Kind::File);
        // A link that stays inside is followed.
        assert_eq!(open("logs/current").unwrap().size, 1);
        assert_eq!(open("logs/key").unwrap_err(), Refusal::Outside);
        assert_eq!(open("logs/sub/key").unwrap_err(), Refusal::Outside);
        // Not "does not exist": that would tell what exists out there.
        assert_eq!(open("logs/sub/nothing").unwrap_err(), Refusal::Outside);
        assert_eq!(
            open("logs/none.log").unwrap_err(),
            Refusal::Failed("logs/none.log does not exist".into())
        );
    }

    #[test]
    fn a_one_file_grant_covers_that_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("beat"), b"").unwrap();
        std::fs::write(root.join("other"), b"").unwrap();
        std::os::unix::fs::symlink(root.join("other"), root.join("beat2")).unwrap();
        let g = grants(&[(&root.join("beat"), false), (&root.join("beat2"), false)]);
        assert!(open_checked(&g, &root.join("beat"), "beat").is_ok());
        // Granted by name, but it is another file: refused.
        assert_eq!(
            open_checked(&g, &root.join("beat2"), "beat2").err(),
            Some(Refusal::Outside)
        );
    }
}
