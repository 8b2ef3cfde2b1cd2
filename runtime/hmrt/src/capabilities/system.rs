//! `system`: the host's resources, read-only, as far as the task's `system` grants name them.
//!
//! Every answer is a few fixed-size numbers read from `/proc` (and `statvfs(3)` for a disk), so
//! nothing a guest asks for makes the host allocate more than a capped read of one kernel file.
//! The reads run off the async workers (a disk on a hung network mount blocks in `statvfs`)
//! and are bounded by the call's time.
//!
//! A `disk:<path>` grant must name a mount point: a path that is not one is refused with the
//! mount point it lives on. Reporting the filesystem that contains it instead would hide the
//! failure disk checks exist to catch: a data disk that did not mount, whose directory then
//! sits on the root filesystem and looks healthy.

mod parse;

pub(crate) use parse::{kb_field, ticks_to_ms, uptime_ms};

use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::{CallContext, Capability};
use crate::sandbox::HostState;
use crate::sandbox::bindings::system::{
    CpuTimes, DiskUsage, Host, LoadAverage, MemoryInfo, NetworkCounters,
};
use crate::sandbox::bindings::types::HostError;

/// The most read of one `/proc` file: far beyond any real `/proc/stat` or mount table, and a
/// cap on what one call can make the host hold.
pub(crate) const PROC_FILE_BYTES: u64 = 4 << 20;

/// The first [`PROC_FILE_BYTES`] of `path`, as text. Lossy: a mount point or interface name
/// need not be UTF-8, and one such line must not fail every read of the file.
pub(crate) fn read_proc(path: &Path) -> Result<String, HostError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(PROC_FILE_BYTES).read_to_end(&mut bytes))
        .map_err(|e| HostError::Failed(format!("reading {}: {e}", path.display())))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The kernel's clock ticks per second (`USER_HZ`), which `/proc` counts CPU time in.
pub(crate) fn ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

/// Runs `read` (blocking file-system work) on tokio's blocking pool, within the call's time
/// (bounded as [`super::blocking`] says; `key` names a mount point a read may hang on).
pub(crate) async fn off_thread<T: Send + 'static>(
    call: &CallContext,
    key: Option<String>,
    read: impl FnOnce() -> Result<T, HostError> + Send + 'static,
) -> Result<T, HostError> {
    let timeout = call.timeout(0).ok_or(HostError::Timeout)?;
    super::blocking::run(timeout, key, read).await?
}

fn failed(e: String) -> HostError {
    HostError::Failed(e)
}

fn read_cpu() -> Result<CpuTimes, HostError> {
    let t = parse::cpu_ticks(&read_proc(Path::new("/proc/stat"))?).map_err(failed)?;
    let hz = ticks_per_second();
    Ok(CpuTimes {
        user_ms: ticks_to_ms(t.user, hz),
        system_ms: ticks_to_ms(t.system, hz),
        idle_ms: ticks_to_ms(t.idle, hz),
        iowait_ms: ticks_to_ms(t.iowait, hz),
        other_ms: ticks_to_ms(t.other, hz),
        cpus: t.cpus,
    })
}

fn read_memory() -> Result<MemoryInfo, HostError> {
    let m = parse::meminfo(&read_proc(Path::new("/proc/meminfo"))?).map_err(failed)?;
    Ok(MemoryInfo {
        total_bytes: m.total,
        available_bytes: m.available,
        swap_total_bytes: m.swap_total,
        swap_free_bytes: m.swap_free,
    })
}

fn read_load() -> Result<LoadAverage, HostError> {
    let (one, five, fifteen) =
        parse::loadavg(&read_proc(Path::new("/proc/loadavg"))?).map_err(failed)?;
    Ok(LoadAverage { one, five, fifteen })
}

/// The filesystem mounted at `mount` (refused unless `mount`, its links resolved, is a mount
/// point; see the module docs).
fn read_disk(mount: PathBuf) -> Result<DiskUsage, HostError> {
    let real = mount
        .canonicalize()
        .map_err(|e| failed(format!("{}: {e}", mount.display())))?;
    let real_text = real.to_string_lossy();
    let mountinfo = read_proc(Path::new("/proc/self/mountinfo"))?;
    if !parse::is_mount_point(&mountinfo, &real_text) {
        let on = parse::containing_mount(&mountinfo, &real_text).unwrap_or_else(|| "?".into());
        return Err(failed(format!(
            "{} is not a mount point (it is on the filesystem mounted at {on}); is its disk mounted?",
            mount.display()
        )));
    }
    let s = rustix::fs::statvfs(&real)
        .map_err(|e| failed(format!("statvfs {}: {e}", mount.display())))?;
    let unit = if s.f_frsize == 0 {
        s.f_bsize
    } else {
        s.f_frsize
    };
    let bytes = |blocks: u64| blocks.saturating_mul(unit);
    Ok(DiskUsage {
        total_bytes: bytes(s.f_blocks),
        available_bytes: bytes(s.f_bavail),
        used_bytes: bytes(s.f_blocks.saturating_sub(s.f_bfree)),
        inodes_total: s.f_files,
        inodes_free: s.f_ffree,
    })
}

fn read_network(interface: String) -> Result<NetworkCounters, HostError> {
    let text = read_proc(Path::new("/proc/net/dev"))?;
    let n = parse::net_dev(&text, &interface)
        .ok_or_else(|| failed(format!("no network interface {interface:?} on this host")))?;
    Ok(NetworkCounters {
        rx_bytes: n.rx_bytes,
        tx_bytes: n.tx_bytes,
        rx_errors: n.rx_errors,
        tx_errors: n.tx_errors,
    })
}

/// The grant name a disk call needs: `disk:` and the path as the config's grant parser
/// normalises it (so `/var/` asks for `disk:/var`); none for a path no grant can name.
fn disk_grant(mount_point: &str) -> Option<(String, PathBuf)> {
    let name = hmrt_config::parse_system_grant(&format!("disk:{mount_point}")).ok()?;
    let path = PathBuf::from(name.strip_prefix("disk:")?);
    Some((name, path))
}

impl HostState {
    /// Denies `resource` unless granted.
    fn system_granted(&mut self, resource: &str) -> Result<(), HostError> {
        if self.call.grants.system.allows(resource) {
            Ok(())
        } else {
            Err(self.call.deny(Capability::System, resource.to_owned()))
        }
    }
}

impl Host for HostState {
    async fn cpu(&mut self) -> Result<CpuTimes, HostError> {
        self.system_granted("cpu")?;
        off_thread(&self.call, None, read_cpu).await
    }

    async fn memory(&mut self) -> Result<MemoryInfo, HostError> {
        self.system_granted("memory")?;
        off_thread(&self.call, None, read_memory).await
    }

    async fn load(&mut self) -> Result<LoadAverage, HostError> {
        self.system_granted("load")?;
        off_thread(&self.call, None, read_load).await
    }

    async fn disk(&mut self, mount_point: String) -> Result<DiskUsage, HostError> {
        let Some((grant, path)) = disk_grant(&mount_point) else {
            // Not a path a grant can name (relative, `..`): nothing is granted for it.
            return Err(self
                .call
                .deny(Capability::System, format!("disk:{mount_point}")));
        };
        self.system_granted(&grant)?;
        off_thread(&self.call, Some(grant), move || read_disk(path)).await
    }

    async fn network(&mut self, interface: String) -> Result<NetworkCounters, HostError> {
        self.system_granted(&format!("network:{interface}"))?;
        off_thread(&self.call, None, move || read_network(interface)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_grants_are_normalised_like_the_config() {
        assert_eq!(
            disk_grant("/var/"),
            Some(("disk:/var".to_owned(), PathBuf::from("/var")))
        );
        assert_eq!(disk_grant("/").map(|(g, _)| g).as_deref(), Some("disk:/"));
        assert_eq!(disk_grant("var"), None);
        assert_eq!(disk_grant("/var/../etc"), None);
    }

    #[test]
    fn this_host_answers() {
        let cpu = read_cpu().unwrap();
        assert!(cpu.cpus >= 1 && cpu.idle_ms > 0, "{cpu:?}");
        let mem = read_memory().unwrap();
        assert!(mem.total_bytes >= mem.available_bytes && mem.available_bytes > 0);
        let load = read_load().unwrap();
        assert!(load.one >= 0.0);
        let root = read_disk(PathBuf::from("/")).unwrap();
        assert!(root.total_bytes >= root.used_bytes && root.total_bytes > 0);
        assert!(read_network("lo".into()).is_ok());
        assert!(read_network("no-such-if".into()).is_err());
        let HostError::Failed(why) = read_disk(PathBuf::from("/usr/lib")).unwrap_err() else {
            panic!("not failed")
        };
        assert!(why.contains("not a mount point"), "{why}");
    }
}
