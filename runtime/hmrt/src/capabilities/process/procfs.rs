//! A process's figures from `/proc/<pid>`: the parsers are pure (tested on fixed text), the
//! readers cap what they read and count.

use std::path::Path;

use crate::capabilities::system::{kb_field, read_proc, ticks_per_second, ticks_to_ms, uptime_ms};
use crate::sandbox::bindings::process::ProcessStats;
use crate::sandbox::bindings::types::HostError;

/// Open file descriptors counted at most; a process with more reads as this many.
pub(crate) const FDS_COUNTED: u32 = 1 << 20;
/// `/proc` entries scanned at most for children when the kernel has no `children` files.
const PROC_ENTRIES_SCANNED: usize = 1 << 18;

/// The fields of `/proc/<pid>/stat` this capability uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) state: char,
    pub(crate) ppid: u32,
    /// user + system time, in clock ticks.
    pub(crate) cpu_ticks: u64,
    pub(crate) threads: u32,
    /// When it started, in clock ticks after boot.
    pub(crate) start_ticks: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may itself hold
/// `)` and spaces, so the fields are counted from the last `)`.
pub(crate) fn parse_stat(text: &str) -> Result<Stat, String> {
    let bad = || {
        format!(
            "unexpected /proc stat line: {:?}",
            crate::text::one_line(text, 200)
        )
    };
    let after = text
        .rfind(')')
        .and_then(|i| text.get(i + 1..))
        .ok_or_else(bad)?;
    let fields: Vec<&str> = after.split_ascii_whitespace().collect();
    // fields[0] is field 3 (state) of proc(5); field n is fields[n - 3].
    let num = |n: usize| -> Result<u64, String> {
        fields
            .get(n - 3)
            .and_then(|w| w.parse().ok())
            .ok_or_else(bad)
    };
    let state = fields
        .first()
        .and_then(|s| s.chars().next())
        .ok_or_else(bad)?;
    Ok(Stat {
        state,
        ppid: u32::try_from(num(4)?).map_err(|_| bad())?,
        cpu_ticks: num(14)?.saturating_add(num(15)?),
        threads: u32::try_from(num(20)?).unwrap_or(u32::MAX),
        start_ticks: num(22)?,
    })
}

/// The figures of process `pid`, read now. Failed when it is gone or a zombie.
pub(crate) fn read_stats(pid: u32) -> Result<ProcessStats, HostError> {
    let dir = Path::new("/proc").join(pid.to_string());
    let gone = |e: HostError| match e {
        HostError::Failed(_) if !dir.exists() => {
            HostError::Failed(format!("process {pid} does not run (it exited)"))
        }
        other => other,
    };
    let stat =
        parse_stat(&read_proc(&dir.join("stat")).map_err(gone)?).map_err(HostError::Failed)?;
    if matches!(stat.state, 'Z' | 'X') {
        return Err(HostError::Failed(format!(
            "process {pid} does not run (it exited and was not reaped yet)"
        )));
    }
    let status = read_proc(&dir.join("status")).map_err(gone)?;
    let hz = ticks_per_second();
    let since_boot =
        uptime_ms(&read_proc(Path::new("/proc/uptime"))?).map_err(HostError::Failed)?;
    Ok(ProcessStats {
        pid,
        // Kernel threads have no VmRSS line: nothing resident of their own.
        rss_bytes: kb_field(&status, "VmRSS").unwrap_or(0),
        cpu_ms: ticks_to_ms(stat.cpu_ticks, hz),
        open_fds: count_fds(&dir, pid)?,
        threads: stat.threads,
        uptime_ms: since_boot.saturating_sub(ticks_to_ms(stat.start_ticks, hz)),
        children: count_children(&dir, pid),
    })
}

/// The entries of `/proc/<pid>/fd`, counted up to [`FDS_COUNTED`].
fn count_fds(dir: &Path, pid: u32) -> Result<u32, HostError> {
    let entries = std::fs::read_dir(dir.join("fd")).map_err(|e| {
        HostError::Failed(format!(
            "reading /proc/{pid}/fd: {e} (hmrt counts a process's open files only when it runs \
             as the same user or as root)"
        ))
    })?;
    let mut n = 0u32;
    for _ in entries.flatten() {
        n += 1;
        if n >= FDS_COUNTED {
            break;
        }
    }
    Ok(n)
}

/// Direct children of `pid`: from the kernel's `task/*/children` lists where it has them
/// (CONFIG_PROC_CHILDREN), else by a capped scan of every process's parent.
fn count_children(dir: &Path, pid: u32) -> u32 {
    if let Some(n) = children_from_tasks(dir) {
        return n;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut n = 0u32;
    for entry in entries.flatten().take(PROC_ENTRIES_SCANNED) {
        let name = entry.file_name();
        let Some(child) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue; // exited while we looked
        };
        if child != pid && parse_stat(&text).is_ok_and(|s| s.ppid == pid) {
            n = n.saturating_add(1);
        }
    }
    n
}

fn children_from_tasks(dir: &Path) -> Option<u32> {
    let tasks = std::fs::read_dir(dir.join("task")).ok()?;
    let mut n = 0u32;
    let mut any = false;
    for task in tasks.flatten().take(PROC_ENTRIES_SCANNED) {
        let Ok(text) = read_proc(&task.path().join("children")) else {
            continue;
        };
        any = true;
        let count = text.split_ascii_whitespace().count();
        n = n.saturating_add(u32::try_from(count).unwrap_or(u32::MAX));
    }
    any.then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_the_last_paren() {
        let line = "4242 (my (odd) prog) S 17 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 30 0 0 20 0 3 0 123456 10000 500 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            s,
            Stat {
                state: 'S',
                ppid: 17,
                cpu_ticks: 280,
                threads: 3,
                start_ticks: 123456
            }
        );
        assert!(parse_stat("4242 (x) S 1 2").is_err());
        assert!(parse_stat("").is_err());
        assert!(parse_stat("1 (x)").is_err());
    }

    #[test]
    fn this_process_reads_itself() {
        let me = std::process::id();
        let s = read_stats(me).unwrap();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let rss = kb_field(&status, "VmRSS").unwrap();
        assert!(
            s.rss_bytes > 0 && s.rss_bytes.abs_diff(rss) < rss / 5,
            "{s:?} vs {rss}"
        );
        assert!(s.threads >= 1 && s.open_fds >= 3, "{s:?}");
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let with_child = read_stats(me).unwrap();
        assert!(with_child.children >= 1, "{with_child:?}");
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        let HostError::Failed(why) = read_stats(u32::MAX - 1).unwrap_err() else {
            panic!()
        };
        assert!(why.contains("does not run"), "{why}");
    }
}
