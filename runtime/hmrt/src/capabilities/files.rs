//! `files`: read-only access to the paths a task's `files` grants name (one file, or with a
//! trailing `/` a directory and everything under it).
//!
//! A path is checked twice: as asked (absolute, no `..`, granted), and as the kernel resolved
//! it once opened, so a link inside a granted directory cannot lead out of it (see `guard`).
//! Reads are of regular files only (a FIFO or a device is never opened for I/O), at most
//! [`ops::READ_BYTES`] a call; a listing holds at most [`ops::ENTRIES`] entries. The I/O runs
//! on tokio's blocking pool within the call's time (a file on a hung network mount blocks).

mod guard;
mod ops;

use std::time::Instant;

use hmrt_config::FileGrants;

use super::Capability;
use crate::sandbox::HostState;
use crate::sandbox::bindings::files::{Entry, FileKind, FileStat, Host};
use crate::sandbox::bindings::types::HostError;
use guard::{Kind, Refusal, Stat};

impl HostState {
    /// Runs `op` on the blocking pool within the call's time, after checking `asked` as
    /// written (a denied call costs no thread); a refusal becomes the guest's error, a denial
    /// recorded once.
    async fn on_files<T: Send + 'static>(
        &mut self,
        asked: &str,
        op: impl FnOnce(&FileGrants, Instant) -> Result<T, Refusal> + Send + 'static,
    ) -> Result<T, HostError> {
        let outcome = match guard::check_asked(&self.call.grants.files, asked) {
            Err(refusal) => Err(refusal),
            Ok(()) => {
                let timeout = self.call.timeout(0).ok_or(HostError::Timeout)?;
                let deadline = Instant::now() + timeout;
                let grants = self.call.grants.clone();
                let key = Some(format!("file {asked}"));
                match super::blocking::run(timeout, key, move || op(&grants.files, deadline)).await
                {
                    Err(HostError::Timeout) => Err(Refusal::Timeout),
                    Err(e) => return Err(e),
                    Ok(outcome) => outcome,
                }
            }
        };
        outcome.map_err(|refusal| match refusal {
            Refusal::NotGranted => self.call.deny(Capability::Files, asked.to_owned()),
            Refusal::Outside => self.call.deny(
                Capability::Files,
                format!("{asked} (it leads outside the grants)"),
            ),
            Refusal::Invalid(m) => HostError::Invalid(m),
            Refusal::Failed(m) => HostError::Failed(m),
            Refusal::Timeout => HostError::Timeout,
        })
    }
}

fn file_stat(stat: Stat) -> FileStat {
    FileStat {
        kind: match stat.kind {
            Kind::File => FileKind::File,
            Kind::Directory => FileKind::Directory,
            Kind::Other => FileKind::Other,
        },
        size: stat.size,
        modified_ms: stat.modified_ms,
        inode: stat.inode,
    }
}

impl Host for HostState {
    async fn stat(&mut self, path: String) -> Result<FileStat, HostError> {
        let asked = path.clone();
        self.on_files(&path, move |grants, _| ops::stat(grants, &asked))
            .await
            .map(file_stat)
    }

    async fn read(&mut self, path: String, offset: u64, max: u32) -> Result<Vec<u8>, HostError> {
        let asked = path.clone();
        self.on_files(&path, move |grants, deadline| {
            ops::read(grants, &asked, offset, max, deadline)
        })
        .await
    }

    async fn entries(&mut self, path: String) -> Result<Vec<Entry>, HostError> {
        let asked = path.clone();
        let listed = self
            .on_files(&path, move |grants, deadline| {
                ops::entries(grants, &asked, deadline)
            })
            .await?;
        Ok(listed
            .into_iter()
            .map(|(name, stat)| Entry {
                name,
                stat: file_stat(stat),
            })
            .collect())
    }
}
