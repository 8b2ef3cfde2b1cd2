//! `scratch`: a small key-value store per task, kept between calls (each call is a fresh
//! instance), so a check can compute rates and deltas: CPU % from two samples, new log lines
//! since the last offset. Always allowed, because it reaches nothing but the task's own store.
//!
//! A task's check and its action each have their own store (`<task>.check`, `<task>.action`);
//! `describe`, `validate` and alert receivers have none. Each store holds at most
//! [`STORE_BYTES`] (keys and values together) and takes at most [`WRITES_PER_CALL`] changes per
//! call. Under `hmrt run` it is written to `state_dir/scratch/<store>.json` atomically on every
//! change, so it survives a restart; `hmrt check` keeps it in memory, so a one-off check never
//! moves the daemon's samples.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hmrt_domain::TaskName;

use crate::sandbox::HostState;
use crate::sandbox::bindings::scratch::Host;
use crate::sandbox::bindings::types::HostError;

/// The most a task's store holds: the bytes of its keys and values together.
pub const STORE_BYTES: usize = 64 * 1024;
/// The longest key.
const KEY_BYTES: usize = 256;
/// Changes written per call: each is an fsync, and a guest looping on `set` must not turn its
/// timeout into thousands of them.
pub const WRITES_PER_CALL: u32 = 32;

/// One task's store.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Store {
    entries: BTreeMap<String, Vec<u8>>,
}

impl Store {
    fn size(&self) -> usize {
        self.entries.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// Stores `value` under `key` unless the store would outgrow its cap.
    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), HostError> {
        if key.is_empty() || key.len() > KEY_BYTES {
            return Err(HostError::Invalid(format!(
                "a scratch key has 1 to {KEY_BYTES} bytes"
            )));
        }
        let old = self.entries.get(&key).map_or(0, |v| key.len() + v.len());
        let size = self.size() - old + key.len() + value.len();
        if size > STORE_BYTES {
            return Err(HostError::Invalid(format!(
                "the task's scratch store would hold {size} bytes; it holds at most {STORE_BYTES}"
            )));
        }
        self.entries.insert(key, value);
        Ok(())
    }

    /// The file's text: a JSON object of keys to hex-encoded values.
    fn encode(&self) -> Vec<u8> {
        let map: BTreeMap<&str, String> = self
            .entries
            .iter()
            .map(|(k, v)| (k.as_str(), hex(v)))
            .collect();
        serde_json::to_vec(&map).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Result<Store, String> {
        let map: BTreeMap<String, String> =
            serde_json::from_slice(bytes).map_err(|e| format!("not a scratch store: {e}"))?;
        let mut store = Store::default();
        for (key, value) in map {
            let value = unhex(&value).ok_or_else(|| format!("key {key:?}: not hex"))?;
            store.set(key, value).map_err(|e| match e {
                HostError::Invalid(m) => m,
                other => format!("{other:?}"),
            })?;
        }
        Ok(store)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Every task's store, loaded from its file on first use.
pub(crate) struct Backend {
    dir: Option<PathBuf>,
    stores: Mutex<HashMap<String, Arc<Mutex<Store>>>>,
}

impl Backend {
    pub(crate) fn new(services: &super::HostServices) -> Self {
        Backend {
            dir: services.state_dir.as_ref().map(|d| d.join("scratch")),
            stores: Mutex::new(HashMap::new()),
        }
    }

    /// Where the store `key` (`<task>.check`, `<task>.action`) is kept, if on disk: task names
    /// are file-safe, so the key is too.
    fn file(&self, key: &str) -> Option<(PathBuf, String)> {
        let dir = self.dir.as_ref()?;
        let task = key.rsplit_once('.').map_or(key, |(task, _)| task);
        TaskName::is_valid(task).then(|| (dir.clone(), format!("{key}.json")))
    }

    fn store(&self, task: &str) -> Arc<Mutex<Store>> {
        let mut stores = self.stores.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(store) = stores.get(task) {
            return store.clone();
        }
        let store = self
            .file(task)
            .map(|(dir, name)| load(&dir, &name, task))
            .unwrap_or_default();
        let store = Arc::new(Mutex::new(store));
        stores.insert(task.to_owned(), store.clone());
        store
    }

    fn get(&self, task: &str, key: &str) -> Option<Vec<u8>> {
        let store = self.store(task);
        let store = store.lock().unwrap_or_else(|e| e.into_inner());
        store.entries.get(key).cloned()
    }

    /// Applies `change` to `task`'s store and writes it out; on a failed write the store keeps
    /// its old content, so memory and disk never disagree.
    fn change(
        &self,
        task: &str,
        change: impl FnOnce(&mut Store) -> Result<(), HostError>,
    ) -> Result<(), HostError> {
        let store = self.store(task);
        let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = store.clone();
        change(&mut next)?;
        if next == *store {
            return Ok(());
        }
        if let Some((dir, name)) = self.file(task) {
            std::fs::create_dir_all(&dir)
                .map_err(|e| HostError::Failed(format!("cannot create {}: {e}", dir.display())))
                .and_then(|()| {
                    crate::state::write_durably(&dir, &name, &next.encode()).map_err(|e| {
                        HostError::Failed(format!("cannot keep the scratch store: {e}"))
                    })
                })?;
        }
        *store = next;
        Ok(())
    }
}

/// Reads a store; a corrupt one is moved aside with a warning and the task starts empty.
fn load(dir: &Path, name: &str, task: &str) -> Store {
    let path = dir.join(name);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Store::default(),
        Err(e) => {
            tracing::warn!(task, file = %path.display(), "cannot read the scratch store: {e}; it starts empty");
            return Store::default();
        }
    };
    match Store::decode(&bytes) {
        Ok(store) => store,
        Err(problem) => {
            let aside = dir.join(format!("{name}.corrupt"));
            let moved = std::fs::rename(&path, &aside);
            tracing::warn!(
                task,
                file = %path.display(),
                "{problem}; moved aside to {} ({}), the store starts empty",
                aside.display(),
                if moved.is_ok() { "done" } else { "failed" }
            );
            Store::default()
        }
    }
}

impl HostState {
    /// The call's store, and one more write taken from its allowance.
    fn scratch_write(&mut self) -> Result<Arc<str>, HostError> {
        let call = &mut self.call;
        let store = call.scratch.clone().ok_or_else(|| {
            HostError::Invalid("scratch is not available in describe or validate".into())
        })?;
        if call.scratch_writes >= WRITES_PER_CALL {
            return Err(HostError::Invalid(format!(
                "at most {WRITES_PER_CALL} scratch changes per call"
            )));
        }
        call.scratch_writes += 1;
        Ok(store)
    }
}

impl Host for HostState {
    async fn get(&mut self, key: String) -> Option<Vec<u8>> {
        let store = self.call.scratch.clone()?;
        let backends = self.call.backends.clone();
        // The first use reads the store's file: off the executor.
        tokio::task::spawn_blocking(move || backends.scratch.get(&store, &key))
            .await
            .ok()
            .flatten()
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), HostError> {
        let store = self.scratch_write()?;
        let backends = self.call.backends.clone();
        // The write is small but fsyncs: off the executor.
        tokio::task::spawn_blocking(move || backends.scratch.change(&store, |s| s.set(key, value)))
            .await
            .map_err(|e| HostError::Failed(format!("the scratch store failed: {e}")))?
    }

    async fn remove(&mut self, key: String) {
        let Ok(store) = self.scratch_write() else {
            return;
        };
        let backends = self.call.backends.clone();
        let removed = tokio::task::spawn_blocking(move || {
            backends.scratch.change(&store, |s| {
                s.entries.remove(&key);
                Ok(())
            })
        })
        .await;
        if let Ok(Err(e)) = removed {
            tracing::warn!(task = %self.call.task, "scratch remove: {e:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::HostServices;

    fn backend(dir: Option<&Path>) -> Backend {
        Backend::new(&HostServices {
            state_dir: dir.map(Path::to_path_buf),
            ..HostServices::default()
        })
    }

    #[test]
    fn a_store_survives_a_new_backend_and_check_and_action_have_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let b = backend(Some(dir.path()));
        b.change("web.check", |s| s.set("k".into(), vec![0, 255, 7]))
            .unwrap();
        b.change("web.action", |s| s.set("k".into(), b"other".to_vec()))
            .unwrap();
        let again = backend(Some(dir.path()));
        assert_eq!(again.get("web.check", "k"), Some(vec![0, 255, 7]));
        assert_eq!(again.get("web.action", "k"), Some(b"other".to_vec()));
        assert_eq!(again.get("web.check", "missing"), None);
        assert!(dir.path().join("scratch/web.check.json").exists());
    }

    #[test]
    fn the_cap_counts_keys_and_values_and_a_refused_set_changes_nothing() {
        let b = backend(None);
        b.change("t", |s| s.set("a".into(), vec![1; STORE_BYTES - 1]))
            .unwrap();
        let err = b.change("t", |s| s.set("b".into(), vec![1])).unwrap_err();
        assert!(matches!(err, HostError::Invalid(m) if m.contains("at most")));
        assert_eq!(b.get("t", "b"), None);
        // Replacing a value counts the new size, not both.
        b.change("t", |s| s.set("a".into(), vec![2; STORE_BYTES - 1]))
            .unwrap();
        assert!(b.change("t", |s| s.set(String::new(), vec![])).is_err());
        assert!(b.change("t", |s| s.set("k".repeat(300), vec![])).is_err());
    }

    #[test]
    fn a_corrupt_store_is_moved_aside_and_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = dir.path().join("scratch");
        std::fs::create_dir_all(&scratch).unwrap();
        std::fs::write(scratch.join("web.check.json"), b"{not json").unwrap();
        let b = backend(Some(dir.path()));
        assert_eq!(b.get("web.check", "k"), None);
        assert!(scratch.join("web.check.json.corrupt").exists());
        b.change("web.check", |s| s.set("k".into(), vec![1]))
            .unwrap();
        assert_eq!(
            backend(Some(dir.path())).get("web.check", "k"),
            Some(vec![1])
        );
    }

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        assert_eq!(unhex(&hex(&[0, 1, 254, 255])), Some(vec![0, 1, 254, 255]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("é1"), None);
    }
}
