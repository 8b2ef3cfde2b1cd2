//! The scan against real files through `std::fs` standing in for the host's `files`.

use super::*;
use hmrt_plugin::files::FileKind;
use std::io::Write as _;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

struct StdFiles;

fn stat_of(meta: &std::fs::Metadata) -> FileStat {
    FileStat {
        kind: if meta.is_file() {
            FileKind::File
        } else if meta.is_dir() {
            FileKind::Directory
        } else {
            FileKind::Other
        },
        size: meta.len(),
        modified_ms: 0,
        inode: meta.ino(),
    }
}

fn failed(path: &str, e: std::io::Error) -> HostError {
    if e.kind() == std::io::ErrorKind::NotFound {
        HostError::Failed(format!("{path} does not exist"))
    } else {
        HostError::Failed(e.to_string())
    }
}

impl scan::Files for StdFiles {
    fn stat(&self, path: &str) -> Result<FileStat, HostError> {
        std::fs::metadata(path)
            .map(|m| stat_of(&m))
            .map_err(|e| failed(path, e))
    }

    fn read(&self, path: &str, offset: u64, max: u32) -> Result<Vec<u8>, HostError> {
        let file = std::fs::File::open(path).map_err(|e| failed(path, e))?;
        let mut buf = vec![0; max.min(1 << 20) as usize];
        let n = file
            .read_at(&mut buf, offset)
            .map_err(|e| failed(path, e))?;
        buf.truncate(n);
        Ok(buf)
    }

    fn entries(&self, dir: &str) -> Result<Vec<(String, FileStat)>, HostError> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| failed(dir, e))? {
            let e = e.map_err(|e| failed(dir, e))?;
            let meta = e.metadata().map_err(|e| failed(dir, e))?;
            out.push((e.file_name().into_string().unwrap(), stat_of(&meta)));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

struct Log {
    _dir: tempfile::TempDir,
    path: PathBuf,
    saved: Option<Position>,
    settings: Settings,
}

impl Log {
    fn new(extra: &str) -> Log {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        let json = format!(
            r#"{{"path": {:?}, "pattern": "ERROR"{extra}}}"#,
            path.to_str().unwrap()
        );
        let settings = Settings::from_json(&json).unwrap();
        Log {
            _dir: dir,
            path,
            saved: None,
            settings,
        }
    }

    fn append(&self, path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    /// One run: (matches, lines, status).
    fn run(&mut self) -> (u64, u64, Status, String) {
        let plan = Plan {
            path: &self.settings.path,
            regex: &self.settings.regex,
            max_read: self.settings.max_read,
            from: self.settings.from,
        };
        let scan = scan::run(&StdFiles, &plan, self.saved.clone()).unwrap();
        let (status, message) = judge(&self.settings, &scan);
        if let Some(next) = &scan.next {
            self.saved = Position::decode(&next.encode());
        }
        (scan.tally.matches, scan.tally.lines, status, message)
    }
}

#[test]
fn only_new_lines_count_across_runs_and_a_rename_rotation() {
    let mut log = Log::new("");
    let p = log.path.clone();
    log.append(&p, "ERROR old history\nok\n");
    let (m, _, status, message) = log.run();
    assert_eq!((m, status), (0, Status::Healthy), "{message}");
    assert!(message.starts_with("started at the end"), "{message}");

    log.append(&p, "ok\nERROR one\nfine\nERROR two\n");
    let (m, l, status, message) = log.run();
    assert_eq!((m, l, status), (2, 4, Status::Unhealthy), "{message}");
    assert!(message.contains("newest: ERROR two"), "{message}");

    assert_eq!(log.run().0, 0);

    // Half a line now, its end later: one line, counted once.
    log.append(&p, "ERROR thr");
    assert_eq!(log.run().0, 0);
    log.append(&p, "ee\n");
    let (m, l, _, _) = log.run();
    assert_eq!((m, l), (1, 1));

    // More written to the log, then it is renamed away and a new one started.
    log.append(&p, "ERROR four\nok\n");
    std::fs::rename(&p, p.with_extension("log.1")).unwrap();
    log.append(&p, "ERROR five\nERROR six\nok\n");
    let (m, l, status, message) = log.run();
    assert_eq!((m, l, status), (3, 5, Status::Unhealthy), "{message}");
    assert!(message.contains("rotated"), "{message}");
    assert!(message.contains("newest: ERROR six"), "{message}");

    log.append(&p, "ERROR seven\n");
    assert_eq!(log.run().0, 1);
}

#[test]
fn copytruncate_reads_from_the_start_and_a_missing_log_waits() {
    let mut log = Log::new(r#", "from": "start", "warn": 2, "critical": 3"#);
    let p = log.path.clone();
    let (m, _, status, _) = log.run();
    assert_eq!((m, status), (0, Status::Unknown));
    log.append(&p, "ERROR a\nERROR b\n");
    let (m, _, status, message) = log.run();
    assert_eq!((m, status), (2, Status::Degraded), "{message}");
    std::fs::File::create(&p).unwrap(); // truncated in place
    log.append(&p, "ERROR c\n");
    let (m, _, status, message) = log.run();
    assert_eq!((m, status), (1, Status::Healthy), "{message}");
    assert!(message.contains("truncated"), "{message}");

    // Renamed away and no new file yet: the old one is finished, then the new one read.
    log.append(&p, "ERROR d\n");
    std::fs::rename(&p, p.with_extension("old")).unwrap();
    let (m, _, status, message) = log.run();
    assert_eq!((m, status), (1, Status::Unknown), "{message}");
    log.append(&p.with_extension("old"), "ERROR e\n");
    log.append(&p, "ERROR f\nERROR g\nERROR h\n");
    let (m, _, status, _) = log.run();
    assert_eq!((m, status), (4, Status::Unhealthy));
}

#[test]
fn max_read_leaves_the_rest_for_the_next_run() {
    let mut log = Log::new(r#", "from": "start", "max_read": 10"#);
    let p = log.path.clone();
    log.append(&p, "ERROR 1\nERROR 2\nERROR 3\n");
    let (m, _, _, message) = log.run();
    assert_eq!(m, 1, "{message}");
    assert!(message.contains("14 bytes left"), "{message}");
    assert_eq!(log.run().0, 1);
    assert_eq!(log.run().0, 1);
    assert_eq!(log.run().0, 0);
}

#[test]
fn config_errors_name_the_key() {
    for (json, key) in [
        (r#"{"pattern": "x"}"#, "`path`"),
        (r#"{"path": "log", "pattern": "x"}"#, "`path`"),
        (r#"{"path": "/var/log/", "pattern": "x"}"#, "`path`"),
        (r#"{"path": "/a/../b", "pattern": "x"}"#, "`path`"),
        (r#"{"path": "/a/b"}"#, "`pattern`"),
        (r#"{"path": "/a/b", "pattern": "("}"#, "`pattern`"),
        (r#"{"path": "/a/b", "pattern": "x", "warn": 0}"#, "`warn`"),
        (
            r#"{"path": "/a/b", "pattern": "x", "warn": 3, "critical": 2}"#,
            "`warn`",
        ),
        (
            r#"{"path": "/a/b", "pattern": "x", "critical": "many"}"#,
            "`critical`",
        ),
        (
            r#"{"path": "/a/b", "pattern": "x", "from": "middle"}"#,
            "`from`",
        ),
        (
            r#"{"path": "/a/b", "pattern": "x", "max_read": 1e12}"#,
            "`max_read`",
        ),
        (
            r#"{"path": "/a/b", "pattern": "x", "patern": "y"}"#,
            "`patern`",
        ),
    ] {
        let err = Settings::from_json(json).unwrap_err();
        assert!(err.contains(key), "{json}: {err}");
    }
    let s = Settings::from_json(r#"{"path": "/var/log/app/app.log", "pattern": "x"}"#).unwrap();
    assert_eq!(
        (s.warn, s.critical, s.dir.as_str()),
        (None, Some(1), "/var/log/app/")
    );
    let s = Settings::from_json(r#"{"path": "/app.log", "pattern": "x", "warn": 5}"#).unwrap();
    assert_eq!((s.warn, s.critical, s.dir.as_str()), (Some(5), None, "/"));
}
