//! Durable state: each task's policy state in its own file under `state_dir`, so a restarted
//! hmrt resumes where it was (a failed task stays failed, the backoff continues, the restart
//! budget is kept).
//!
//! # Layout of `state_dir`
//!
//! - `<task>.state.json`: one task's [`StateFile`] (its [`TaskState`]: state, counters, backoff
//!   position, jitter generator, restart history, and the rings of recent results and actions).
//! - `<task>.rearm`: a person asked to re-arm the task (`hmrt rearm`); the daemon consumes it at
//!   the task's next check, or at its first check when it starts later.
//! - `hmrt.lock`: held (`flock`) by the running daemon, with its pid inside. A second daemon on the
//!   same directory refuses to start; the CLI uses it to tell whether a daemon is running.
//! - `<file>.corrupt-<unix ms>`: a state file that could not be read, moved aside at start.
//!
//! # Writes
//!
//! Every write is atomic and durable: a temp file in the same directory (`.<task>.state.json.tmp`),
//! write, fsync, rename over the old file, fsync the directory. A `kill -9` at any moment leaves
//! either the old or the new file, never a torn one; a leftover temp file is removed at start.
//! Writes are serialised by the store. While the daemon runs, one writer does them all: the
//! state journal ([`crate::journal`]), which writes a task's state at once when a call decided
//! something and lazily when a check only added a result, always in the engine's order, so a
//! later write never carries older state than an earlier one.
//!
//! # Start
//!
//! [`StateStore::restore`] loads every state file. One that cannot be read or parsed (or was
//! written by an unsupported format version, or names another task) is moved aside with a
//! warning naming it, and that task starts fresh. Files of tasks no longer in the config are
//! deleted, with an info log (the issue's "state for tasks no longer in the config is dropped"),
//! so a renamed task starts fresh. Then the engine is restored, an action that was running when
//! hmrt died is ended as a failed attempt ([`Engine::interrupt_running`]), and every task's state
//! is written back, so each configured task has a file from then on.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hmrt_policy::{Decision, Engine, RestoreReport, Snapshot, TaskState, Timestamp};

mod history;

pub use history::{HistoryEntry, history};

/// The suffix of a task's state file.
pub const STATE_SUFFIX: &str = ".state.json";
/// The suffix of a task's re-arm request.
pub const REARM_SUFFIX: &str = ".rearm";
/// The lock file the running daemon holds.
pub const LOCK_FILE: &str = "hmrt.lock";
/// The infix of a state file moved aside: `<file>.corrupt-<unix ms>`.
pub const CORRUPT_INFIX: &str = ".corrupt-";

const TEMP_SUFFIX: &str = ".tmp";
/// How long a starting daemon waits for the lock: a CLI probing it holds it for an instant.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The name cannot name a file in the state directory.
    #[error("{name:?} cannot name a state file: use letters, digits, '_', '.' and '-'")]
    BadName {
        /// The name given.
        name: String,
    },
    /// A file or directory operation failed.
    #[error("{}: cannot {what}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done ("create the state directory", "write", ...).
        what: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The file is not a state file this hmrt reads.
    #[error("{}: not a state file this hmrt can read: {problem}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// Another daemon holds the state directory.
    #[error("{}: another hmrt{} is using this state directory", dir.display(), match pid { Some(pid) => format!(" (pid {pid})"), None => String::new() })]
    Locked {
        /// The state directory.
        dir: PathBuf,
        /// The pid written in the lock file, if readable.
        pid: Option<u32>,
    },
}

fn io_error<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// One task's state file, as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StateFile {
    /// The policy's state format version ([`Snapshot::VERSION`]).
    pub version: u32,
    /// The task the state belongs to (the same as the file name's stem).
    pub task: String,
    /// When it was written.
    pub saved_at: Timestamp,
    /// The task's full policy state.
    pub state: TaskState,
}

/// The same as [`StateFile`], borrowed, for writing without a clone.
#[derive(serde::Serialize)]
struct StateFileRef<'a> {
    version: u32,
    task: &'a str,
    saved_at: Timestamp,
    state: &'a TaskState,
}

/// Whether `name` can name a file in the state directory: exactly the task-name rule
/// ([`hmrt_domain::TaskName`]), which keeps `/`, `.` and `..` out.
pub fn valid_name(name: &str) -> bool {
    hmrt_domain::TaskName::is_valid(name)
}

fn checked_name(name: &str) -> Result<&str, StateError> {
    if valid_name(name) {
        Ok(name)
    } else {
        Err(StateError::BadName {
            name: name.to_string(),
        })
    }
}

/// The state file of `task` in `dir`.
pub fn state_path(dir: &Path, task: &str) -> Result<PathBuf, StateError> {
    Ok(dir.join(format!("{}{STATE_SUFFIX}", checked_name(task)?)))
}

/// The re-arm request of `task` in `dir`.
pub fn rearm_path(dir: &Path, task: &str) -> Result<PathBuf, StateError> {
    Ok(dir.join(format!("{}{REARM_SUFFIX}", checked_name(task)?)))
}

/// Reads and checks one state file: it must parse, be of the supported version, and belong to
/// the task its name says (when `expected_task` is given).
pub fn read_state_file(path: &Path, expected_task: Option<&str>) -> Result<StateFile, StateError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_error(path, "read"))?;
    let corrupt = |problem: String| StateError::Corrupt {
        path: path.to_path_buf(),
        problem,
    };
    let file: StateFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if file.version != Snapshot::VERSION {
        return Err(corrupt(format!(
            "format version {} is not supported (this hmrt reads version {})",
            file.version,
            Snapshot::VERSION
        )));
    }
    if let Some(task) = expected_task
        && file.task != task
    {
        return Err(corrupt(format!(
            "it holds the state of task {:?}, not {task:?}",
            file.task
        )));
    }
    Ok(file)
}

/// Writes `bytes` to `dir/name` atomically (temp file `dir/tmp_name`, fsync, rename). The
/// caller fsyncs the directory.
fn write_atomic(dir: &Path, name: &str, tmp_name: &str, bytes: &[u8]) -> Result<(), StateError> {
    let tmp = dir.join(tmp_name);
    let target = dir.join(name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_error(&tmp, "create"))?;
        file.write_all(bytes).map_err(io_error(&tmp, "write"))?;
        file.sync_all().map_err(io_error(&tmp, "fsync"))?;
        drop(file);
        fs::rename(&tmp, &target).map_err(io_error(&target, "replace"))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `dir/name` so that a kill at any moment leaves either the old file or the
/// new one, and the new one is on disk when this returns: for the other outputs that keep
/// state in the state directory (the alert outbox).
pub(crate) fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StateError> {
    write_atomic(dir, name, &format!(".{name}{TEMP_SUFFIX}"), bytes)?;
    sync_dir(dir)
}

/// Makes the directory's entries (renames, removals) durable.
fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir, "fsync the state directory"))
}

/// Whether a daemon holds the state directory `dir`, as far as the lock says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonProbe {
    /// No daemon holds it.
    NotRunning,
    /// A daemon holds it; its pid if the lock file names one.
    Running {
        /// The daemon's pid.
        pid: Option<u32>,
    },
}

/// Whether a daemon is running on `dir`. Takes a shared lock for an instant, so it never blocks a
/// daemon that is starting for longer than that.
pub fn probe_daemon(dir: &Path) -> Result<DaemonProbe, StateError> {
    let path = dir.join(LOCK_FILE);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(DaemonProbe::NotRunning),
        Err(e) => return Err(io_error(&path, "open")(e)),
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Ok(DaemonProbe::NotRunning)
        }
        Err(fs::TryLockError::WouldBlock) => Ok(DaemonProbe::Running {
            pid: read_pid(&path),
        }),
        Err(fs::TryLockError::Error(e)) => Err(io_error(&path, "lock")(e)),
    }
}

fn read_pid(lock: &Path) -> Option<u32> {
    fs::read_to_string(lock).ok()?.trim().parse().ok()
}

/// Asks for `task` to be re-armed: writes `<task>.rearm` atomically in `dir` (the daemon, running
/// or started later, consumes it at the task's next check). Returns the request's path.
pub fn request_rearm(dir: &Path, task: &str, now: Timestamp) -> Result<PathBuf, StateError> {
    let path = rearm_path(dir, task)?;
    let name = format!("{task}{REARM_SUFFIX}");
    // The pid keeps two CLIs from sharing a temp file; the daemon never writes these.
    let tmp = format!(".{name}.{}{TEMP_SUFFIX}", std::process::id());
    let body = serde_json::json!({ "requested_at": now.0 }).to_string();
    write_atomic(dir, &name, &tmp, body.as_bytes())?;
    sync_dir(dir)?;
    Ok(path)
}

/// What [`StateStore::load`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The states of configured tasks that had a readable file.
    pub snapshot: Option<Snapshot>,
    /// Files that could not be read, each with where it was moved and why.
    pub moved_aside: Vec<(PathBuf, PathBuf, String)>,
    /// Files of tasks no longer configured, deleted.
    pub removed: Vec<PathBuf>,
}

/// What [`StateStore::restore`] did.
#[derive(Debug)]
pub struct Restored {
    /// What the engine made of the states.
    pub report: RestoreReport,
    /// Files that could not be read, each with where it was moved and why.
    pub moved_aside: Vec<(PathBuf, PathBuf, String)>,
    /// Files of tasks no longer configured, deleted.
    pub removed: Vec<PathBuf>,
    /// The decisions of ending actions that were running when hmrt stopped.
    pub decisions: Vec<Decision>,
}

/// The state directory, held by one daemon.
pub struct StateStore {
    dir: PathBuf,
    /// Held for the store's life: the `flock` is released when it closes (also on `kill -9`).
    _lock: File,
    /// Serialises writes: one temp file per task, and a later write never carries older state.
    writing: Mutex<()>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("dir", &self.dir)
            .finish()
    }
}

impl StateStore {
    /// Opens `dir` (creating it if missing) and takes its lock. Fails if another daemon holds it.
    pub fn open(dir: &Path) -> Result<StateStore, StateError> {
        fs::create_dir_all(dir).map_err(io_error(dir, "create the state directory"))?;
        let path = dir.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error(&path, "open"))?;
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(StateError::Locked {
                        dir: dir.to_path_buf(),
                        pid: read_pid(&path),
                    });
                }
                Err(fs::TryLockError::Error(e)) => return Err(io_error(&path, "lock")(e)),
            }
        }
        lock.set_len(0)
            .and_then(|()| lock.write_all(format!("{}\n", std::process::id()).as_bytes()))
            .map_err(io_error(&path, "write"))?;
        Ok(StateStore {
            dir: dir.to_path_buf(),
            _lock: lock,
            writing: Mutex::new(()),
        })
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn write_guard(&self) -> MutexGuard<'_, ()> {
        crate::sync::lock(&self.writing)
    }

    /// Reads every state file: those of `configured` tasks into a snapshot, unreadable ones moved
    /// aside, those of other tasks deleted, leftover temp files removed. Logs each file it moves
    /// or deletes.
    pub fn load<'a>(
        &self,
        configured: impl IntoIterator<Item = &'a str>,
        now: Timestamp,
    ) -> Result<Loaded, StateError> {
        let configured: BTreeSet<&str> = configured.into_iter().collect();
        let _guard = self.write_guard();
        let entries = fs::read_dir(&self.dir).map_err(io_error(&self.dir, "list"))?;
        let mut loaded = Loaded::default();
        let mut tasks = std::collections::BTreeMap::new();
        let mut changed = false;
        for entry in entries {
            let entry = entry.map_err(io_error(&self.dir, "list"))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let path = entry.path();
            if name.starts_with('.') && name.ends_with(&format!("{STATE_SUFFIX}{TEMP_SUFFIX}")) {
                // A write that a kill cut short: the file it was replacing is intact.
                match fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::debug!(file = %path.display(), "removed an unfinished state write");
                        changed = true;
                    }
                    Err(e) => tracing::warn!(file = %path.display(), "cannot remove: {e}"),
                }
                continue;
            }
            let Some(task) = name.strip_suffix(STATE_SUFFIX) else {
                continue;
            };
            if !configured.contains(task) {
                fs::remove_file(&path).map_err(io_error(&path, "remove"))?;
                tracing::info!(
                    file = %path.display(),
                    "removed the state of {task:?}: no such task in the config"
                );
                loaded.removed.push(path);
                changed = true;
                continue;
            }
            match read_state_file(&path, Some(task)) {
                Ok(file) => {
                    tasks.insert(task.to_string(), file.state);
                }
                Err(error) => {
                    let aside = self.dir.join(format!("{name}{CORRUPT_INFIX}{}", now.0));
                    let problem = error.to_string();
                    match fs::rename(&path, &aside) {
                        Ok(()) => tracing::warn!(
                            file = %path.display(),
                            moved_to = %aside.display(),
                            "{problem}; moved it aside to {}, task {task:?} starts fresh",
                            aside.display()
                        ),
                        Err(e) => tracing::warn!(
                            file = %path.display(),
                            "{problem}; cannot move it aside ({e}), task {task:?} starts fresh and its file will be overwritten"
                        ),
                    }
                    loaded.moved_aside.push((path, aside, problem));
                    changed = true;
                }
            }
        }
        if changed {
            sync_dir(&self.dir)?;
        }
        loaded.snapshot = Some(Snapshot {
            version: Snapshot::VERSION,
            tasks,
        });
        Ok(loaded)
    }

    /// Loads the state files into `engine`, ends the actions that were running when hmrt stopped
    /// as failed attempts, and writes every task's state back.
    pub fn restore(&self, engine: &mut Engine, now: Timestamp) -> Result<Restored, StateError> {
        let names: Vec<String> = engine.task_names().map(str::to_string).collect();
        let loaded = self.load(names.iter().map(String::as_str), now)?;
        let snapshot = loaded.snapshot.unwrap_or(Snapshot {
            version: Snapshot::VERSION,
            tasks: Default::default(),
        });
        // Each file's version was checked as it was read, so this cannot fail.
        let report = engine.restore(snapshot).map_err(|e| StateError::Corrupt {
            path: self.dir.clone(),
            problem: e.to_string(),
        })?;
        let decisions = engine.interrupt_running(now);
        self.save_with(now, || {
            names
                .iter()
                .filter_map(|n| engine.state(n).map(|s| (n.clone(), s.clone())))
                .collect()
        })?;
        Ok(Restored {
            report,
            moved_aside: loaded.moved_aside,
            removed: loaded.removed,
            decisions,
        })
    }

    /// Writes the states `states` returns, each to its task's file, then fsyncs the directory.
    /// `states` runs under the store's write lock, so it should take the states at that moment
    /// (from the engine) rather than hand over states taken earlier.
    pub fn save_with(
        &self,
        now: Timestamp,
        states: impl FnOnce() -> Vec<(String, TaskState)>,
    ) -> Result<(), StateError> {
        let _guard = self.write_guard();
        let states = states();
        self.write(
            now,
            states.iter().map(|(task, state)| (task.as_str(), state)),
        )
    }

    /// Writes each `(task, state)` to the task's file (atomically, with fsync), then fsyncs the
    /// directory once. The caller orders writes (the journal's one writer thread does).
    pub fn save<'a>(
        &self,
        now: Timestamp,
        states: impl IntoIterator<Item = (&'a str, &'a TaskState)>,
    ) -> Result<(), StateError> {
        let _guard = self.write_guard();
        self.write(now, states)
    }

    /// Writes every state it can: one file that cannot be written does not keep the others
    /// from being written. Returns the first error, after the directory's fsync.
    fn write<'a>(
        &self,
        now: Timestamp,
        states: impl IntoIterator<Item = (&'a str, &'a TaskState)>,
    ) -> Result<(), StateError> {
        let mut wrote = false;
        let mut first_error = None;
        for (task, state) in states {
            match self.write_one(now, task, state) {
                Ok(()) => wrote = true,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let synced = if wrote { sync_dir(&self.dir) } else { Ok(()) };
        match first_error {
            Some(e) => Err(e),
            None => synced,
        }
    }

    fn write_one(&self, now: Timestamp, task: &str, state: &TaskState) -> Result<(), StateError> {
        let path = state_path(&self.dir, task)?;
        let file = StateFileRef {
            version: Snapshot::VERSION,
            task,
            saved_at: now,
            state,
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| StateError::Io {
            path: path.clone(),
            what: "serialise",
            source: io::Error::other(e),
        })?;
        let name = format!("{task}{STATE_SUFFIX}");
        write_atomic(&self.dir, &name, &format!(".{name}{TEMP_SUFFIX}"), &bytes)
    }

    /// Whether a person asked to re-arm `task` (a `<task>.rearm` file exists).
    pub fn rearm_requested(&self, task: &str) -> bool {
        rearm_path(&self.dir, task).is_ok_and(|p| p.exists())
    }

    /// Deletes `task`'s re-arm request (after the re-arm is saved).
    pub fn clear_rearm_request(&self, task: &str) -> Result<(), StateError> {
        let path = rearm_path(&self.dir, task)?;
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&path, "remove")(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hmrt_policy::{DecisionKind, PolicyConfig, State};

    use super::*;

    fn engine(names: &[&str]) -> Engine {
        let configs: BTreeMap<String, PolicyConfig> = names
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    PolicyConfig {
                        failure_threshold: 1,
                        has_action: true,
                        max_restarts: 2,
                        ..PolicyConfig::default()
                    },
                )
            })
            .collect();
        Engine::new(configs, 7).expect("engine")
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn names_cannot_leave_the_directory() {
        let dir = Path::new("/state");
        for bad in ["", ".", "..", "../x", "a/b", "a b", "x\0"] {
            assert!(state_path(dir, bad).is_err(), "{bad:?}");
            assert!(rearm_path(dir, bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            state_path(dir, "web.1_a-b").expect("valid"),
            Path::new("/state/web.1_a-b.state.json")
        );
        // "..." is a valid task name and stays inside the directory.
        assert_eq!(state_path(dir, "...").expect("valid").parent(), Some(dir));
    }

    #[test]
    fn a_restored_engine_continues_where_it_was() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("state");
        let now = Timestamp(1_000_000);
        {
            let store = StateStore::open(&dir).expect("open creates the dir");
            let mut engine = engine(&["web"]);
            store.restore(&mut engine, now).expect("restore");
            let d = engine
                .observe("web", now, hmrt_policy::Status::Unhealthy, "down")
                .expect("observe");
            assert!(
                d.iter()
                    .any(|d| matches!(d.kind, DecisionKind::Act { attempt: 1 }))
            );
            engine
                .action_finished("web", Timestamp(1_001_000), Ok("restarted".into()))
                .expect("finished");
            store
                .save_with(now, || {
                    vec![("web".into(), engine.state("web").expect("web").clone())]
                })
                .expect("save");
        }
        let store = StateStore::open(&dir).expect("reopen");
        let mut engine = engine(&["web"]);
        let restored = store.restore(&mut engine, now).expect("restore");
        assert_eq!(restored.report.restored, vec!["web".to_string()]);
        let state = engine.state("web").expect("web");
        assert_eq!(state.backoff_position(), 1);
        assert_eq!(state.restarts().count(), 1);
        assert_eq!(state.results().count(), 1);
        assert_eq!(files(&dir), ["hmrt.lock", "web.state.json"]);
    }

    #[test]
    fn an_action_running_when_hmrt_died_counts_as_a_failed_attempt() {
        let tmp = tempfile::tempdir().expect("tmp");
        let now = Timestamp(5_000);
        {
            let store = StateStore::open(tmp.path()).expect("open");
            let mut engine = engine(&["web"]);
            engine
                .observe("web", now, hmrt_policy::Status::Unhealthy, "down")
                .expect("observe");
            assert_eq!(
                engine.state("web").map(|s| s.state()),
                Some(State::Restarting)
            );
            store
                .save_with(now, || {
                    vec![("web".into(), engine.state("web").expect("web").clone())]
                })
                .expect("save");
        }
        let store = StateStore::open(tmp.path()).expect("reopen");
        let mut engine = engine(&["web"]);
        let restored = store
            .restore(&mut engine, Timestamp(9_000))
            .expect("restore");
        assert!(
            restored.decisions.iter().any(|d| matches!(
                &d.kind,
                DecisionKind::AttemptFailed { attempt: 1, reason } if reason.contains("interrupted")
            )),
            "{:?}",
            restored.decisions
        );
        assert_eq!(
            engine.state("web").map(|s| s.state()),
            Some(State::Unhealthy)
        );
        // The end of the attempt was written back.
        let file = read_state_file(&tmp.path().join("web.state.json"), Some("web")).expect("read");
        assert_eq!(file.state.state(), State::Unhealthy);
        assert_eq!(file.state.restarts().count(), 1, "the attempt used budget");
    }

    #[test]
    fn corrupt_files_are_moved_aside_and_stale_ones_removed() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path();
        fs::write(
            dir.join("web.state.json"),
            b"{\"version\": 1, \"task\": \"web\", \"sa",
        )
        .expect("w");
        fs::write(dir.join("db.state.json"), b"{}").expect("w");
        fs::write(dir.join("old.state.json"), b"whatever").expect("w");
        fs::write(dir.join(".api.state.json.tmp"), b"half a wri").expect("w");
        fs::write(dir.join("notes.txt"), b"kept").expect("w");
        // A file copied over from another task is not this task's state.
        let other = serde_json::json!({
            "version": 1, "task": "db", "saved_at": 1, "state": TaskState::default()
        });
        fs::write(dir.join("api.state.json"), other.to_string()).expect("w");
        let store = StateStore::open(dir).expect("open");
        let mut engine = engine(&["web", "db", "api", "new"]);
        let restored = store.restore(&mut engine, Timestamp(42)).expect("restore");
        let mut aside: Vec<String> = restored
            .moved_aside
            .iter()
            .map(|(_, to, _)| to.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        aside.sort();
        assert_eq!(
            aside,
            [
                "api.state.json.corrupt-42",
                "db.state.json.corrupt-42",
                "web.state.json.corrupt-42"
            ]
        );
        assert_eq!(restored.removed, vec![dir.join("old.state.json")]);
        assert_eq!(restored.report.restored, Vec::<String>::new());
        assert_eq!(
            files(dir),
            [
                "api.state.json",
                "api.state.json.corrupt-42",
                "db.state.json",
                "db.state.json.corrupt-42",
                "hmrt.lock",
                "new.state.json",
                "notes.txt",
                "web.state.json",
                "web.state.json.corrupt-42",
            ]
        );
        for task in ["web", "db", "api", "new"] {
            read_state_file(&dir.join(format!("{task}.state.json")), Some(task))
                .expect("fresh state written");
        }
    }

    #[test]
    fn an_unsupported_version_is_moved_aside() {
        let tmp = tempfile::tempdir().expect("tmp");
        let future = serde_json::json!({
            "version": 99, "task": "web", "saved_at": 1, "state": TaskState::default()
        });
        fs::write(tmp.path().join("web.state.json"), future.to_string()).expect("w");
        let err = read_state_file(&tmp.path().join("web.state.json"), Some("web"))
            .expect_err("version 99");
        assert!(err.to_string().contains("version 99"), "{err}");
    }

    #[test]
    fn a_second_store_on_one_directory_is_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        assert_eq!(
            probe_daemon(tmp.path()).expect("probe"),
            DaemonProbe::NotRunning
        );
        let store = StateStore::open(tmp.path()).expect("open");
        assert_eq!(
            probe_daemon(tmp.path()).expect("probe"),
            DaemonProbe::Running {
                pid: Some(std::process::id())
            }
        );
        let err = StateStore::open(tmp.path()).expect_err("locked");
        assert!(matches!(err, StateError::Locked { .. }), "{err}");
        drop(store);
        assert_eq!(
            probe_daemon(tmp.path()).expect("probe"),
            DaemonProbe::NotRunning
        );
        StateStore::open(tmp.path()).expect("free again");
    }

    #[test]
    fn rearm_requests_are_seen_and_cleared() {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = StateStore::open(tmp.path()).expect("open");
        assert!(!store.rearm_requested("web"));
        request_rearm(tmp.path(), "web", Timestamp(1)).expect("request");
        assert!(store.rearm_requested("web"));
        store.clear_rearm_request("web").expect("clear");
        assert!(!store.rearm_requested("web"));
        store
            .clear_rearm_request("web")
            .expect("clearing twice is fine");
    }

    #[test]
    fn history_is_in_time_order_in_simulates_format() {
        let mut engine = engine(&["web"]);
        engine
            .observe(
                "web",
                Timestamp(1_000),
                hmrt_policy::Status::Unhealthy,
                "HTTP 500",
            )
            .expect("observe");
        engine
            .action_finished("web", Timestamp(1_000), Ok("restarted (pid 7)".into()))
            .expect("finished");
        engine
            .observe("web", Timestamp(2_000), hmrt_policy::Status::Healthy, "ok")
            .expect("observe");
        let lines: Vec<String> = history(engine.state("web").expect("web"))
            .iter()
            .map(|e| serde_json::to_string(e).expect("json"))
            .collect();
        assert_eq!(
            lines,
            [
                r#"{"at":1000,"status":"unhealthy","message":"HTTP 500"}"#,
                r#"{"at":1000,"action":"ok","message":"restarted (pid 7)","attempt":1}"#,
                r#"{"at":2000,"status":"healthy","message":"ok"}"#,
            ]
        );
    }
}
