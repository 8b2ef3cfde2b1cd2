//! A compile cache on disk: a plugin compiled once is loaded as machine code by every later
//! start (`hmrt check`, `hmrt validate`, a daemon restart), instead of paying Cranelift again.
//!
//! Deserialising is trusting: wasmtime runs what the file holds. So only files hmrt wrote are
//! ever loaded: the cache directory and each file must belong to hmrt's own user and be
//! writable by nobody else, and each file carries a SHA-256 of its contents, checked before
//! use. Anything else (a foreign owner, loose permissions, a cut or corrupt file, a file of
//! another engine configuration) is compiled again and replaced, never trusted. The key is the
//! component's SHA-256 and the engine's compatibility hash, so a new hmrt or a changed engine
//! configuration never reads an old artifact.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// What every cache file starts with, before the digest of the rest.
const MAGIC: &[u8; 8] = b"HMRTCC1\n";
/// Files kept; past this the least recently written are removed down to [`KEEP_AFTER_PRUNE`].
const MAX_FILES: usize = 200;
const KEEP_AFTER_PRUNE: usize = 150;
/// The largest artifact read back (a Python component compiles to well under this).
const MAX_FILE_BYTES: u64 = 512 << 20;

/// Where compiled plugins are kept.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    /// A cache in `dir` (created, private to hmrt's user, on first write).
    pub fn new(dir: PathBuf) -> CompileCache {
        CompileCache { dir }
    }

    /// The cache directory from the environment: `HMRT_CACHE_DIR` (empty or `off`: no cache),
    /// else systemd's `CACHE_DIRECTORY`, else `$XDG_CACHE_HOME/hmrt`, else `~/.cache/hmrt`.
    pub fn from_env() -> Option<CompileCache> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let base = match std::env::var_os("HMRT_CACHE_DIR") {
            Some(v) if v.is_empty() || v == "off" => return None,
            Some(v) => PathBuf::from(v),
            None => var("CACHE_DIRECTORY")
                .map(PathBuf::from)
                .or_else(|| var("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("hmrt")))
                .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache/hmrt")))?,
        };
        Some(CompileCache::new(base.join("compiled")))
    }

    /// `bytes` compiled for `engine`: from the cache when a trusted artifact is there, else
    /// compiled and written back (a failed write only costs the next start a compile).
    pub fn compile(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
        let path = self.dir.join(key(engine, bytes));
        if let Some(payload) = self.trusted(&path) {
            // SAFETY: `payload` is an artifact this hmrt's user wrote with `serialize` for an
            // engine of the same compatibility hash (it is in the file name), in a directory
            // only that user can write to, and its SHA-256 matches what was written with it.
            match unsafe { Component::deserialize(engine, &payload) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::debug!(file = %path.display(), "compile cache: {e:#}; compiling again")
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = component
            .serialize()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|artifact| self.write(&path, &artifact))
        {
            tracing::debug!(dir = %self.dir.display(), "compile cache not written: {e}");
        }
        Ok(component)
    }

    /// The payload of `path` if hmrt may trust it: owned by this user, writable by nobody else
    /// (nor its directory), and intact.
    fn trusted(&self, path: &Path) -> Option<Vec<u8>> {
        if !private(&fs::metadata(&self.dir).ok()?, true) {
            return None;
        }
        let mut file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || !private(&meta, false) || meta.len() > MAX_FILE_BYTES {
            return None;
        }
        let mut data = Vec::with_capacity(usize::try_from(meta.len()).ok()?);
        file.read_to_end(&mut data).ok()?;
        let rest = data.strip_prefix(MAGIC.as_slice())?;
        let (digest, payload) = rest.split_at_checked(32)?;
        (Sha256::digest(payload).as_slice() == digest).then(|| payload.to_vec())
    }

    /// Writes `artifact` to `path` atomically (a temp file, then a rename), mode 0600.
    fn write(&self, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        if !private(&fs::metadata(&self.dir)?, true) {
            return Err(std::io::Error::other(
                "the directory is not private to hmrt's user; not written",
            ));
        }
        // Unique per writer: two loads of one plugin at once (in one process or two) must not
        // write into one temp file.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let tmp = self.dir.join(format!(
            ".{}.{}.{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("x"),
            std::process::id(),
            WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let written = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(MAGIC)?;
            file.write_all(&Sha256::digest(artifact))?;
            file.write_all(artifact)?;
            file.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written?;
        self.prune();
        Ok(())
    }

    /// Keeps the cache from growing without end across plugin and hmrt versions.
    fn prune(&self) {
        let Ok(listing) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = listing
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        if files.len() <= MAX_FILES {
            return;
        }
        files.sort();
        for (_, old) in files.iter().take(files.len() - KEEP_AFTER_PRUNE) {
            let _ = fs::remove_file(old);
        }
    }
}

/// Whether `meta` belongs to this process's user and nobody else can write to it (a directory
/// may not be readable by others either).
fn private(meta: &fs::Metadata, dir: bool) -> bool {
    let loose = if dir { 0o077 } else { 0o022 };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    meta.uid() == me && meta.mode() & loose == 0
}

/// The file name of `bytes` compiled for `engine`.
fn key(engine: &Engine, bytes: &[u8]) -> String {
    let mut compat = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut compat);
    env!("CARGO_PKG_VERSION").hash(&mut compat);
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{hex}-{:016x}.cwasm", compat.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).expect("engine")
    }

    fn plugin() -> &'static [u8] {
        crate::registry::builtin_bytes("command").expect("the command check is built in")
    }

    fn only_file(dir: &Path) -> PathBuf {
        let files: Vec<PathBuf> = fs::read_dir(dir)
            .expect("cache dir")
            .map(|e| e.expect("entry").path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        files[0].clone()
    }

    #[test]
    fn a_compiled_plugin_is_written_once_and_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(tmp.path().join("compiled"));
        let engine = engine();
        let first = cache.compile(&engine, plugin()).unwrap();
        let file = only_file(&tmp.path().join("compiled"));
        assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
        assert!(cache.trusted(&file).is_some());
        let second = cache.compile(&engine, plugin()).unwrap();
        assert_eq!(first.serialize().unwrap(), second.serialize().unwrap());
    }

    #[test]
    fn a_corrupt_or_loose_artifact_is_never_loaded_and_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("compiled");
        let cache = CompileCache::new(dir.clone());
        let engine = engine();
        cache.compile(&engine, plugin()).unwrap();
        let file = only_file(&dir);

        // One flipped byte: refused, compiled again, written whole.
        let mut bytes = fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&file, &bytes).unwrap();
        assert!(cache.trusted(&file).is_none());
        cache.compile(&engine, plugin()).unwrap();
        assert!(cache.trusted(&file).is_some());

        // Writable by the group: not trusted, and the rewrite is private again.
        fs::set_permissions(&file, fs::Permissions::from_mode(0o664)).unwrap();
        assert!(cache.trusted(&file).is_none());
        cache.compile(&engine, plugin()).unwrap();
        assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o600);

        // A directory others may write to: nothing in it is trusted, nothing is written.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(cache.trusted(&file).is_none());
        assert!(cache.compile(&engine, plugin()).is_ok());
    }

    #[test]
    fn another_engine_configuration_uses_another_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("compiled");
        let cache = CompileCache::new(dir.clone());
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        let other = Engine::new(&config).unwrap();
        assert_ne!(key(&engine(), plugin()), key(&other, plugin()));
        cache.compile(&engine(), plugin()).unwrap();
        cache.compile(&other, plugin()).unwrap();
        let files: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files.len(), 2, "{files:?}");
    }
}
