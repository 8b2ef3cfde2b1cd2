//! `scratch`: a small key-value store per task, kept between calls.

use crate::sandbox::HostState;
use crate::sandbox::bindings::scratch::Host;
use crate::sandbox::bindings::types::HostError;

/// Every task's store, loaded from `state_dir/scratch/` on first use.
pub(crate) struct Backend {
    dir: Option<std::path::PathBuf>,
}

impl Backend {
    pub(crate) fn new(services: &super::HostServices) -> Self {
        Backend {
            dir: services.state_dir.as_ref().map(|d| d.join("scratch")),
        }
    }
}

impl Host for HostState {
    async fn get(&mut self, _key: String) -> Option<Vec<u8>> {
        let _ = &self.call.backends.scratch.dir;
        None
    }

    async fn set(&mut self, _key: String, _value: Vec<u8>) -> Result<(), HostError> {
        Err(HostError::Failed("scratch.set is not built yet".into()))
    }

    async fn remove(&mut self, _key: String) {}
}
