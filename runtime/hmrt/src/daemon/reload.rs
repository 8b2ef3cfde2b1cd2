//! Hot reload of `plugins_dir`. A new or changed `*.wasm` that a task names is loaded off the
//! scheduler's path (read and compiled on blocking threads, under the size cap and time limit), checked against every task that uses it (world, declared capabilities, the
//! plugin's own `validate()` of the task's config, grants), and only then swapped in for
//! those tasks at once. A new version that fails any of that is reported and the old one keeps
//! running. A removed file leaves its tasks `unknown`, with the reason. Built-ins never change.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::Shared;
use crate::events::Event;
use crate::registry::{Entry, Source, is_builtin, load_file};
use crate::sandbox::{PluginKind, TaskCall};
use crate::tasks::{Bound, BoundTask};

/// How long a file must be quiet before it is read: a copy arrives as several writes.
const SETTLE: Duration = Duration::from_millis(150);

/// The plugins hot reload has replaced since start, by name; a task uses its own bound plugin
/// unless one is here.
#[derive(Default)]
pub(super) struct Swapped {
    by_name: RwLock<HashMap<String, Bound>>,
}

impl Swapped {
    /// The plugin now in force under `name`, if hot reload replaced it.
    pub(super) fn get(&self, name: &str) -> Option<Bound> {
        let map = self.by_name.read().unwrap_or_else(|e| e.into_inner());
        if map.is_empty() {
            return None;
        }
        map.get(name).cloned()
    }

    fn set(&self, name: &str, bound: Bound) {
        self.by_name
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), bound);
    }
}

/// A task's use of a third-party plugin: what a new version must serve.
#[derive(Clone)]
pub(super) struct User {
    task: String,
    kind: PluginKind,
    call: TaskCall,
}

/// The third-party plugins the tasks name (checks and `on_failure` actions), and who uses each.
pub(super) fn users(tasks: &[BoundTask]) -> HashMap<String, Vec<User>> {
    let mut users: HashMap<String, Vec<User>> = HashMap::new();
    for task in tasks {
        if !is_builtin(&task.config.check) {
            users
                .entry(task.config.check.clone())
                .or_default()
                .push(User {
                    task: task.name().to_string(),
                    kind: PluginKind::Check,
                    call: task.check_call.clone(),
                });
        }
        if let (Some(action), Some((_, call))) = (&task.config.on_failure, &task.action)
            && !is_builtin(&action.action)
        {
            users.entry(action.action.clone()).or_default().push(User {
                task: task.name().to_string(),
                kind: PluginKind::Action,
                call: call.clone(),
            });
        }
    }
    users
}

/// Watches `dir` until `stop`, reloading the plugins in `users` as their files change.
pub(super) async fn watch(
    shared: Arc<Shared>,
    dir: PathBuf,
    users: HashMap<String, Vec<User>>,
    mut stop: watch::Receiver<bool>,
) {
    let (tx, mut changed) = mpsc::unbounded_channel::<Change>();
    let names: std::collections::HashSet<String> = users.keys().cloned().collect();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Only what can change a plugin's bytes, and only the names tasks use, so hmrt's own
        // read of a file (an open event) never queues a reload, and a flood of writes to other
        // files costs nothing here.
        let change = match event {
            Err(_) => Some(Change::All),
            Ok(event) if event.need_rescan() => Some(Change::All),
            Ok(event) if !writes(&event.kind) => None,
            Ok(event) => {
                for name in event.paths.iter().filter_map(|p| plugin_name(p)) {
                    if names.contains(&name) {
                        let _ = tx.send(Change::One(name));
                    }
                }
                None
            }
        };
        if let Some(change) = change {
            let _ = tx.send(change);
        }
    });
    let mut watcher = match watcher {
        Ok(watcher) => watcher,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "plugins are not reloaded: cannot watch: {e}");
            return;
        }
    };
    use notify::Watcher;
    if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
        tracing::warn!(dir = %dir.display(), "plugins are not reloaded: cannot watch: {e}");
        return;
    }
    tracing::debug!(dir = %dir.display(), "watching plugins for changes");
    // Each changed name, and when it is quiet enough to read.
    let mut pending: HashMap<String, Instant> = HashMap::new();
    loop {
        let next = pending.values().min().copied();
        tokio::select! {
            _ = stop.changed() => return,
            Some(change) = changed.recv() => {
                let at = Instant::now() + SETTLE;
                match change {
                    Change::One(name) => {
                        pending.insert(name, at);
                    }
                    // Events were lost (the kernel's queue overflowed): look at every file.
                    Change::All => pending.extend(users.keys().map(|n| (n.clone(), at))),
                }
            }
            _ = sleep_until(next) => {
                let now = Instant::now();
                let due: Vec<String> = pending
                    .iter()
                    .filter(|(_, at)| **at <= now)
                    .map(|(name, _)| name.clone())
                    .collect();
                for name in due {
                    pending.remove(&name);
                    if let Some(users) = users.get(&name) {
                        let file = dir.join(format!("{name}.wasm"));
                        reload(&shared, &name, &file, users).await;
                    }
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What the watcher reports.
enum Change {
    /// This plugin's file changed.
    One(String),
    /// Unknown: every plugin's file may have changed.
    All,
}

/// Whether an event can mean new bytes (not a read, not a metadata change).
fn writes(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Any => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Other => false,
    }
}

/// The plugin name of a path in `plugins_dir`: the stem of a `*.wasm` file.
fn plugin_name(path: &Path) -> Option<String> {
    if path.extension().is_none_or(|e| e != "wasm") {
        return None;
    }
    path.file_stem()?.to_str().map(str::to_string)
}

/// Loads `file` as the new version of `name` and swaps it in if it serves every user.
async fn reload(shared: &Shared, name: &str, file: &Path, users: &[User]) {
    let failed = |problem: String| {
        tracing::error!(plugin = %name, "{problem}");
        shared.emit(Event::PluginFailed { problem });
    };
    let gone = matches!(
        std::fs::symlink_metadata(file),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound
    );
    if gone {
        let reason = format!(
            "plugin \"{name}\" is not usable: {} was removed",
            file.display()
        );
        for user in users {
            tracing::warn!(task = %user.task, plugin = %name, "{reason}");
        }
        shared.swapped.set(name, Bound::Broken(reason.clone()));
        failed(reason);
        return;
    }
    let started = std::time::Instant::now();
    let plugin = match load_file(&shared.sandbox, file).await {
        Ok(plugin) => plugin,
        Err(problem) => {
            failed(format!(
                "{problem}; not reloaded: its tasks keep the version they run"
            ));
            return;
        }
    };
    for user in users {
        if let Err(why) =
            crate::validate::fits(&shared.sandbox, &plugin, user.kind, &user.call).await
        {
            failed(format!(
                "{}: not reloaded, since task {:?} could not use it: {why}; its tasks keep the version they run",
                file.display(),
                user.task
            ));
            return;
        }
    }
    let entry = Entry {
        name: name.to_string(),
        source: Source::File(file.to_path_buf()),
        plugin,
    };
    shared.swapped.set(name, Bound::Ready(entry));
    tracing::info!(
        plugin = %name,
        file = %file.display(),
        tasks = users.len(),
        took_ms = started.elapsed().as_millis() as u64,
        "plugin reloaded"
    );
}
