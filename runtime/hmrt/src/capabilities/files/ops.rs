//! The three `files` calls as plain blocking functions of the grants, the path asked and a
//! deadline: everything the capability does, testable without a guest.

use std::collections::BinaryHeap;
use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::Instant;

use hmrt_config::FileGrants;

use super::guard::{Kind, Opened, Refusal, Stat, check_asked, io_failure, open_checked};

/// The most one `read` returns, whatever the guest asks for.
pub(crate) const READ_BYTES: u32 = 1 << 20;
/// The most entries one `entries` returns (the first ones by name).
pub(crate) const ENTRIES: usize = 1000;
/// How many directory entries are walked between two looks at the clock.
const CLOCK_EVERY: usize = 256;

/// What `asked` is, its links followed.
pub(crate) fn stat(grants: &FileGrants, asked: &str) -> Result<Stat, Refusal> {
    check_asked(grants, asked)?;
    let opened = open_checked(grants, Path::new(asked), asked)?;
    Ok(Stat::of(&opened.meta))
}

/// At most `max` (capped at [`READ_BYTES`]) bytes of the regular file `asked` from `offset`;
/// empty at or past its end (its size when it was opened).
pub(crate) fn read(
    grants: &FileGrants,
    asked: &str,
    offset: u64,
    max: u32,
    deadline: Instant,
) -> Result<Vec<u8>, Refusal> {
    check_asked(grants, asked)?;
    let opened = open_checked(grants, Path::new(asked), asked)?;
    let stat = Stat::of(&opened.meta);
    if stat.kind != Kind::File {
        // Never opened for reading: a FIFO would block, a device's open may act.
        return Err(Refusal::Invalid(format!(
            "{asked} is not a regular file ({})",
            kind_name(stat.kind)
        )));
    }
    let want = u64::from(max.min(READ_BYTES)).min(stat.size.saturating_sub(offset));
    if want == 0 {
        return Ok(Vec::new());
    }
    let file = reopen(&opened, asked)?;
    let want = usize::try_from(want).unwrap_or(0);
    let mut buf = vec![0u8; want];
    let mut filled = 0;
    while filled < want {
        if Instant::now() >= deadline {
            return Err(Refusal::Timeout);
        }
        let at = offset.saturating_add(filled as u64);
        let Some(rest) = buf.get_mut(filled..) else {
            break;
        };
        match file.read_at(rest, at) {
            Ok(0) => break, // shrank since it was opened
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_failure(asked, &e)),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// Opens the very file `opened` holds for reading (through its `/proc/self/fd` name, so the
/// path is not resolved again), without blocking and without becoming a controlling terminal.
fn reopen(opened: &Opened, asked: &str) -> Result<std::fs::File, Refusal> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(opened.proc_path())
        .map_err(|e| io_failure(asked, &e))?;
    let meta = file.metadata().map_err(|e| io_failure(asked, &e))?;
    if meta.dev() != opened.meta.dev() || meta.ino() != opened.meta.ino() {
        return Err(Refusal::Failed(format!(
            "{asked} changed while it was opened"
        )));
    }
    Ok(file)
}

/// The first [`ENTRIES`] entries of the directory `asked` by name (names that are not UTF-8
/// are left out: a guest could not name them back), each with what `stat` says of it. An
/// entry that is not itself granted (a link leading outside, or any entry of a directory
/// granted as one path without the trailing `/`) is listed with its stat withheld (kind
/// `other`, zeros); one that vanishes while listed is left out.
pub(crate) fn entries(
    grants: &FileGrants,
    asked: &str,
    deadline: Instant,
) -> Result<Vec<(String, Stat)>, Refusal> {
    check_asked(grants, asked)?;
    let opened = open_checked(grants, Path::new(asked), asked)?;
    if !opened.meta.is_dir() {
        return Err(Refusal::Invalid(format!("{asked} is not a directory")));
    }
    let dir = opened.proc_path();
    let names = first_names(&dir, asked, deadline)?;
    let mut listed = Vec::with_capacity(names.len());
    for (i, name) in names.into_iter().enumerate() {
        if i % CLOCK_EVERY == 0 && Instant::now() >= deadline {
            return Err(Refusal::Timeout);
        }
        let shown = format!("{asked}/{name}");
        match open_checked(grants, &dir.join(&name), &shown) {
            Ok(child) => listed.push((name, Stat::of(&child.meta))),
            Err(Refusal::Outside) => listed.push((name, Stat::withheld())),
            Err(_) => {}
        }
    }
    Ok(listed)
}

/// The [`ENTRIES`] smallest UTF-8 names in `dir`, sorted, holding no more than that many in
/// memory however large the directory is.
fn first_names(dir: &Path, asked: &str, deadline: Instant) -> Result<Vec<String>, Refusal> {
    let mut kept: BinaryHeap<String> = BinaryHeap::with_capacity(ENTRIES + 1);
    let listing = std::fs::read_dir(dir).map_err(|e| io_failure(asked, &e))?;
    for (i, entry) in listing.enumerate() {
        if i % CLOCK_EVERY == 0 && Instant::now() >= deadline {
            return Err(Refusal::Timeout);
        }
        let Ok(entry) = entry else { continue };
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if kept.len() < ENTRIES {
            kept.push(name);
        } else if kept.peek().is_some_and(|largest| name < *largest) {
            kept.pop();
            kept.push(name);
        }
    }
    Ok(kept.into_sorted_vec())
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::File => "a regular file",
        Kind::Directory => "a directory",
        Kind::Other => "a device, socket or pipe",
    }
}

#[cfg(test)]
mod tests {
    use super::super::guard::tests::grants;
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    struct Tree {
        _dir: tempfile::TempDir,
        root: PathBuf,
    }

    impl Tree {
        fn new() -> Tree {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().canonicalize().unwrap();
            std::fs::create_dir_all(root.join("logs")).unwrap();
            std::fs::write(root.join("secret"), b"top secret").unwrap();
            Tree { _dir: dir, root }
        }

        fn at(&self, p: &str) -> String {
            self.root.join(p).to_str().unwrap().to_owned()
        }

        fn grants(&self) -> FileGrants {
            grants(&[(&self.root.join("logs"), true)])
        }
    }

    #[test]
    fn reads_are_ranges_capped_and_empty_past_the_end() {
        let t = Tree::new();
        let g = t.grants();
        let body: Vec<u8> = (0..(READ_BYTES as usize + 10)).map(|i| i as u8).collect();
        std::fs::write(t.at("logs/big"), &body).unwrap();
        std::fs::write(t.at("logs/small"), b"hello world").unwrap();
        assert_eq!(
            read(&g, &t.at("logs/small"), 6, 100, later()).unwrap(),
            b"world"
        );
        assert_eq!(
            read(&g, &t.at("logs/small"), 0, 5, later()).unwrap(),
            b"hello"
        );
        assert!(
            read(&g, &t.at("logs/small"), 11, 5, later())
                .unwrap()
                .is_empty()
        );
        assert!(
            read(&g, &t.at("logs/small"), u64::MAX, 5, later())
                .unwrap()
                .is_empty()
        );
        assert!(
            read(&g, &t.at("logs/small"), 0, 0, later())
                .unwrap()
                .is_empty()
        );
        let big = read(&g, &t.at("logs/big"), 5, u32::MAX, later()).unwrap();
        assert_eq!(big.len(), READ_BYTES as usize);
        assert_eq!(big.as_slice(), &body[5..5 + READ_BYTES as usize]);
        let gone = Instant::now() - Duration::from_millis(1);
        assert_eq!(
            read(&g, &t.at("logs/small"), 0, 5, gone),
            Err(Refusal::Timeout)
        );
    }

    #[test]
    fn links_and_dot_dot_out_of_the_grant_are_refused() {
        let t = Tree::new();
        let g = t.grants();
        std::os::unix::fs::symlink(t.at("secret"), t.at("logs/link")).unwrap();
        assert_eq!(stat(&g, &t.at("logs/link")), Err(Refusal::Outside));
        assert_eq!(
            read(&g, &t.at("logs/link"), 0, 10, later()),
            Err(Refusal::Outside)
        );
        assert_eq!(stat(&g, &t.at("logs/../secret")), Err(Refusal::NotGranted));
        assert_eq!(stat(&g, &t.at("secret")), Err(Refusal::NotGranted));
        assert_eq!(stat(&g, "/etc/shadow"), Err(Refusal::NotGranted));
    }

    #[test]
    fn a_fifo_is_stated_but_never_read_and_nothing_blocks() {
        let t = Tree::new();
        let g = t.grants();
        let fifo = t.at("logs/pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        assert_eq!(stat(&g, &fifo).unwrap().kind, Kind::Other);
        let started = Instant::now();
        let err = read(&g, &fifo, 0, 10, later()).unwrap_err();
        assert!(
            matches!(&err, Refusal::Invalid(m) if m.contains("not a regular file")),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        let dir = read(&g, &t.at("logs"), 0, 10, later()).unwrap_err();
        assert!(matches!(dir, Refusal::Invalid(m) if m.contains("a directory")));
    }

    #[test]
    fn entries_are_the_first_thousand_by_name_with_links_out_withheld() {
        let t = Tree::new();
        let g = t.grants();
        for i in (0..ENTRIES + 5).rev() {
            std::fs::write(t.at(&format!("logs/f{i:05}")), b"ab").unwrap();
        }
        std::os::unix::fs::symlink(t.at("secret"), t.at("logs/a-link")).unwrap();
        std::fs::create_dir(t.at("logs/a-sub")).unwrap();
        let listed = entries(&g, &t.at("logs"), later()).unwrap();
        assert_eq!(listed.len(), ENTRIES);
        assert_eq!(listed[0], ("a-link".to_owned(), Stat::withheld()));
        assert_eq!(listed[1].0, "a-sub");
        assert_eq!(listed[1].1.kind, Kind::Directory);
        assert_eq!(listed[2].0, "f00000");
        assert_eq!((listed[2].1.kind, listed[2].1.size), (Kind::File, 2));
        let inode = std::fs::metadata(t.at("logs/f00000")).unwrap().ino();
        assert_eq!(listed[2].1.inode, inode);
        assert_eq!(listed.last().unwrap().0, format!("f{:05}", ENTRIES - 3));
        assert!(matches!(
            entries(&g, &t.at("logs/f00001"), later()),
            Err(Refusal::Invalid(_))
        ));
    }

    #[test]
    fn a_directory_granted_as_one_path_lists_names_only() {
        let t = Tree::new();
        std::fs::write(t.at("logs/app.log"), b"x").unwrap();
        let g = grants(&[(&t.root.join("logs"), false)]);
        let listed = entries(&g, &t.at("logs"), later()).unwrap();
        assert_eq!(listed, vec![("app.log".to_owned(), Stat::withheld())]);
        assert_eq!(stat(&g, &t.at("logs/app.log")), Err(Refusal::NotGranted));
    }
}
