//! `files`: read-only access to the paths a task's `files` grants name.

use std::path::Path;

use super::Capability;
use crate::sandbox::HostState;
use crate::sandbox::bindings::files::{Entry, FileStat, Host};
use crate::sandbox::bindings::types::HostError;

impl HostState {
    /// Denies `path` unless granted as asked.
    fn file_granted(&mut self, path: &str) -> Result<(), HostError> {
        if self.call.grants.files.allows(Path::new(path)) {
            Ok(())
        } else {
            Err(self.call.deny(Capability::Files, path.to_owned()))
        }
    }
}

impl Host for HostState {
    async fn stat(&mut self, path: String) -> Result<FileStat, HostError> {
        self.file_granted(&path)?;
        Err(HostError::Failed("files.stat is not built yet".into()))
    }

    async fn read(&mut self, path: String, _offset: u64, _max: u32) -> Result<Vec<u8>, HostError> {
        self.file_granted(&path)?;
        Err(HostError::Failed("files.read is not built yet".into()))
    }

    async fn entries(&mut self, path: String) -> Result<Vec<Entry>, HostError> {
        self.file_granted(&path)?;
        Err(HostError::Failed("files.list is not built yet".into()))
    }
}
