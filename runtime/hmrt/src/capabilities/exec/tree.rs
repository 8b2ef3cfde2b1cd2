//! The process tree of one exec call, and how all of it is killed.
//!
//! A process group is not enough: a descendant that calls `setsid` leaves the group (and the
//! session), and once its parent exits it is reparented to init, so neither `killpg` nor the
//! parent links in `/proc` lead to it any more.
//!
//! **A cgroup, where hmrt may make one.** Each call gets a cgroup of its own, below the one hmrt
//! runs in: in the cgroup-v1 `pids` hierarchy when there is one (its `pids.max` then also caps
//! the tree's tasks, a cap that, unlike `RLIMIT_NPROC`, holds for root and counts only this
//! tree), else in the cgroup-v2 hierarchy. The child joins it between `fork` and `exec` (a
//! `write` of `0` to `cgroup.procs`, async-signal-safe), so it and everything it ever starts are
//! members; no unprivileged process can leave, whatever it does with sessions and groups.
//! Killing is `cgroup.kill` (v2, Linux 5.14+) or SIGKILL to every member, repeated until the
//! cgroup is empty (`pids.max` bounds what can be forked meanwhile); each member is signalled
//! through a pidfd taken before checking that it is still a member, so a recycled pid is never
//! hit. The cgroup is removed once empty; one left by an hmrt process that died is emptied and
//! removed by the next one that runs a program.
//!
//! **Otherwise, a scan of `/proc`.** hmrt usually cannot make cgroups when it does not run as
//! root (unless its systemd unit delegates one), and a child that cannot join the cgroup made for
//! it is started again this way rather than not at all. The call then polls `/proc` while it runs
//! and remembers every process whose parent chain leads to the child or that is in the child's
//! process group, by pid and start time (so a recycled pid is not taken for one of them). The
//! child is made a child subreaper in `pre_exec`, so an orphan inside the tree is reparented to
//! it rather than to init and stays findable through its parent chain while the child lives
//! (the program may then see SIGCHLD for processes it did not start). This is weaker than a
//! cgroup: a process orphaned when the child itself exits, before any poll saw it, escapes.
//!
//! Making hmrt itself a subreaper was rejected: it is a property of the whole hmrt process (and
//! of a test binary using the library), orphans of concurrent calls become indistinguishable,
//! and reaping "any child" would race tokio's own reaping of its children.
//!
//! Either way the tree is killed when the program exits (so a descendant left behind cannot hold
//! its output pipes open or live on), at the timeout, and when the call is dropped. Zombies: the
//! direct child is reaped through tokio; a descendant is reparented to init (or the nearest
//! subreaper) when its parent dies, which reaps it; one reparented to hmrt itself (PID 1 of a
//! container, or under a subreaper) is reaped here, by its pid, as only hmrt can.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::libc;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

/// How long the end of a call waits for its processes to die after SIGKILL before giving up on
/// removing the cgroup (a process in uninterruptible sleep, on a hung NFS mount for example).
const SETTLE: Duration = Duration::from_secs(5);
/// How often `/proc` is scanned while a call runs, when there is no cgroup.
const SCAN_EVERY: Duration = Duration::from_millis(20);

/// The processes of one exec call.
pub(super) struct Tree {
    kind: Kind,
    /// The child's pid (and process group), once it runs.
    root: OnceLock<i32>,
    /// Every process seen in the tree, by pid and start time, so that one reparented to hmrt
    /// itself is reaped once killed (see [`Tree::reap_adopted`]).
    seen: Mutex<HashMap<i32, u64>>,
    /// Whether `finish` ran to the end (then `Drop` has nothing left to do).
    finished: AtomicBool,
}

enum Kind {
    Cgroup(Cgroup),
    Scan(Mutex<Scan>),
}

/// What the child does between `fork` and `exec` to enter its tree: plain data, `Copy`, so the
/// `pre_exec` closure allocates nothing.
#[derive(Debug, Clone, Copy)]
pub(super) enum Join {
    /// Write `0` to this open `cgroup.procs` (moves the writer into the cgroup).
    Cgroup(RawFd),
    /// Become a child subreaper, so orphans below stay in the tree.
    Subreaper,
}

impl Join {
    /// Runs in the forked child: only async-signal-safe calls, no allocation.
    pub(super) fn apply(self) -> std::io::Result<()> {
        let r = match self {
            // SAFETY: a write of one byte from a static buffer to an fd the parent keeps open.
            Join::Cgroup(fd) => unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) as libc::c_int },
            // SAFETY: prctl with integer arguments only.
            Join::Subreaper => unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Tree {
    /// Prepares the tree of a call about to start: a cgroup if one can be made (`max_tasks`
    /// becomes its `pids.max`), else a `/proc` scan.
    pub(super) fn prepare(max_tasks: u64) -> Tree {
        let kind = match Cgroup::create(max_tasks) {
            Ok(Some(cgroup)) => Kind::Cgroup(cgroup),
            Ok(None) => Kind::Scan(Mutex::default()),
            Err(e) => {
                static SAID: AtomicBool = AtomicBool::new(false);
                if !SAID.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "exec: cannot make a cgroup ({e}); programs' descendants are tracked \
                         through /proc instead, which a process orphaned as its program exits \
                         can escape"
                    );
                }
                Kind::Scan(Mutex::default())
            }
        };
        Tree::new(kind)
    }

    /// What the child must do in `pre_exec`.
    pub(super) fn join(&self) -> Join {
        match &self.kind {
            Kind::Cgroup(c) => Join::Cgroup(c.procs.as_raw_fd()),
            Kind::Scan(_) => Join::Subreaper,
        }
    }

    /// Whether `finish` ran: nothing of the tree is left.
    pub(super) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Relaxed)
    }

    /// Whether the tree is a cgroup (else a `/proc` scan).
    pub(super) fn is_cgroup(&self) -> bool {
        matches!(self.kind, Kind::Cgroup(_))
    }

    /// A tree tracked by `/proc` scans, for a child that could not join a cgroup.
    pub(super) fn scan_only() -> Tree {
        Tree::new(Kind::Scan(Mutex::default()))
    }

    fn new(kind: Kind) -> Tree {
        Tree {
            kind,
            root: OnceLock::new(),
            seen: Mutex::default(),
            finished: AtomicBool::new(false),
        }
    }

    /// A cgroup tree whose `cgroup.procs` cannot be written (open read-only), to test what
    /// happens when a child cannot join.
    #[cfg(test)]
    pub(super) fn unjoinable() -> Tree {
        let dir = std::env::temp_dir().join(format!("hmrt-unjoinable-{}", std::process::id()));
        Tree::new(Kind::Cgroup(Cgroup {
            dir,
            path: String::new(),
            v2: false,
            procs: File::open("/dev/null").expect("/dev/null"),
        }))
    }

    /// Records the child, once spawned.
    pub(super) fn started(&self, pid: Option<u32>) {
        if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
            let _ = self.root.set(pid);
            if let Kind::Scan(scan) = &self.kind {
                let mut scan = scan.lock().unwrap_or_else(|e| e.into_inner());
                scan.root = stat(pid).map(|s| (pid, s.start));
                scan.update();
            }
        }
    }

    /// Scans `/proc` for the tree every [`SCAN_EVERY`] while the call runs (never returns);
    /// with a cgroup there is nothing to watch.
    pub(super) async fn watch(&self) -> std::convert::Infallible {
        loop {
            match &self.kind {
                Kind::Scan(_) => {
                    self.scan();
                    tokio::time::sleep(SCAN_EVERY).await;
                }
                Kind::Cgroup(_) => std::future::pending::<()>().await,
            }
        }
    }

    fn scan(&self) {
        if let Kind::Scan(scan) = &self.kind {
            scan.lock().unwrap_or_else(|e| e.into_inner()).update();
        }
    }

    /// Sends SIGKILL to every process of the tree, and reaps the ones hmrt adopted; returns
    /// how many were still alive.
    pub(super) fn kill(&self) -> usize {
        let signalled = match &self.kind {
            Kind::Cgroup(c) => c.kill(),
            Kind::Scan(scan) => {
                if let Some(&root) = self.root.get() {
                    // The child's group (it is its leader): members not seen by a scan yet. A
                    // group id is not reused as a pid while the group has a member, so this
                    // reaches nobody else while it matters. (A cgroup needs no such guess.)
                    let _ = killpg(Pid::from_raw(root), Signal::SIGKILL);
                }
                let mut scan = scan.lock().unwrap_or_else(|e| e.into_inner());
                scan.update();
                scan.kill()
            }
        };
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for &pid in &signalled {
            if let Some(s) = stat(pid) {
                seen.entry(pid).or_insert(s.start);
            }
        }
        drop(seen);
        self.reap_adopted();
        signalled.len()
    }

    /// Reaps the killed processes that were reparented to hmrt itself: that happens only when
    /// hmrt is PID 1 (of a container) or a subreaper, but then nobody else would reap them. Only
    /// pids seen in this tree are waited for, never "any child", so tokio's own children (this
    /// call's child among them) are left to tokio.
    fn reap_adopted(&self) {
        let me = i32::try_from(std::process::id()).unwrap_or(0);
        let root = self.root.get().copied();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|&pid, &mut start| match stat(pid) {
            Some(s) if s.start == start => {
                let adopted = s.zombie && s.ppid == me && Some(pid) != root;
                if adopted {
                    let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
                }
                !adopted
            }
            // Gone, or the pid now names another process.
            _ => false,
        });
    }

    /// Kills the whole tree and waits (polling, at most [`SETTLE`]) until none of it is left,
    /// then removes the cgroup.
    pub(super) async fn finish(&self) {
        let deadline = Instant::now() + SETTLE;
        let mut pause = Duration::from_millis(1);
        while self.kill() > 0 && Instant::now() < deadline {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
        self.end();
    }

    /// [`Tree::finish`] for a thread of its own.
    fn finish_blocking(&self) {
        let deadline = Instant::now() + SETTLE;
        while self.kill() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.end();
    }

    fn end(&self) {
        if self.kill() > 0 {
            tracing::warn!("exec: processes of a program still ran {SETTLE:?} after SIGKILL");
        }
        // A process that left the cgroup's list as it died may have handed its children to
        // hmrt a moment later.
        self.reap_adopted();
        if let Kind::Cgroup(c) = &self.kind {
            c.remove();
        }
        self.finished.store(true, Ordering::Relaxed);
    }
}

impl Drop for Tree {
    /// The call was abandoned: kill what is left now. A process killed with SIGKILL is usually
    /// gone within a millisecond or two, so this waits that long (a short-lived `hmrt check`
    /// may exit right after); anything slower is left to a thread, so no runtime thread waits
    /// on a process stuck in the kernel.
    fn drop(&mut self) {
        if self.finished.load(Ordering::Relaxed) {
            return;
        }
        let deadline = Instant::now() + Duration::from_millis(50);
        while self.kill() > 0 {
            if Instant::now() >= deadline {
                return self.hand_to_thread();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.end();
    }
}

impl Tree {
    fn hand_to_thread(&mut self) {
        let rest = Tree {
            kind: std::mem::replace(&mut self.kind, Kind::Scan(Mutex::default())),
            root: std::mem::take(&mut self.root),
            seen: std::mem::take(&mut self.seen),
            // Its own Drop has nothing to do, even if the thread cannot be started.
            finished: AtomicBool::new(true),
        };
        let _ = std::thread::Builder::new()
            .name("hmrt-exec-reap".into())
            .spawn(move || rest.finish_blocking());
    }
}

/// A cgroup hierarchy hmrt may make per-call cgroups in.
#[derive(Debug)]
struct Hierarchy {
    /// hmrt's own cgroup in it, as a directory (mount point and hmrt's path below the mount).
    dir: PathBuf,
    /// hmrt's own cgroup as `/proc/PID/cgroup` names it.
    path: String,
    /// Whether it is cgroup v2 (else the v1 `pids` hierarchy).
    v2: bool,
}

/// The hierarchies to try, best first: v1 `pids` (it can cap the tree's tasks), then v2.
fn hierarchies() -> &'static [Hierarchy] {
    static FOUND: OnceLock<Vec<Hierarchy>> = OnceLock::new();
    FOUND.get_or_init(|| {
        let (Ok(mounts), Ok(own)) = (
            std::fs::read_to_string("/proc/self/mountinfo"),
            std::fs::read_to_string("/proc/self/cgroup"),
        ) else {
            return Vec::new();
        };
        let mut found: Vec<Hierarchy> = [false, true]
            .into_iter()
            .filter_map(|v2| hierarchy(&mounts, &own, v2))
            .collect();
        found.sort_by_key(|h| h.v2);
        found
    })
}

/// The v1 `pids` or the v2 hierarchy, if mounted and hmrt's cgroup is visible in the mount.
fn hierarchy(mountinfo: &str, own: &str, v2: bool) -> Option<Hierarchy> {
    let path = own.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let wanted = if v2 {
            id == "0" && controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == "pids")
        };
        wanted.then(|| path.to_string())
    })?;
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let left: Vec<&str> = left.split(' ').collect();
        let mut right = right.split(' ');
        let (fstype, options) = (right.next()?, right.nth(1)?);
        let ours = if v2 {
            fstype == "cgroup2"
        } else {
            fstype == "cgroup" && options.split(',').any(|o| o == "pids")
        };
        // Octal escapes (a space as \040) do not occur in cgroup mount points; skip any that has.
        let (root, mount) = (*left.get(3)?, *left.get(4)?);
        if !ours || mount.contains('\\') {
            return None;
        }
        let below = path.strip_prefix(root.trim_end_matches('/'))?;
        let below = below.trim_start_matches('/');
        Some(Hierarchy {
            dir: Path::new(mount).join(below),
            path: path.clone(),
            v2,
        })
    })
}

/// One call's cgroup.
struct Cgroup {
    dir: PathBuf,
    /// Its path as `/proc/PID/cgroup` names it, to check membership.
    path: String,
    v2: bool,
    /// `cgroup.procs`, open for writing, which the child writes itself into.
    procs: File,
}

impl Cgroup {
    /// A new, empty cgroup in the first hierarchy that lets hmrt make one; `None` when there is
    /// no hierarchy to try, `Err` when none of them let it.
    fn create(max_tasks: u64) -> std::io::Result<Option<Cgroup>> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let mut last_error = None;
        for h in hierarchies() {
            let name = format!(
                "hmrt-exec-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let dir = h.dir.join(&name);
            static SWEPT: OnceLock<()> = OnceLock::new();
            SWEPT.get_or_init(|| hierarchies().iter().for_each(sweep));
            if let Err(e) = std::fs::create_dir(&dir) {
                last_error = Some(e);
                continue;
            }
            let cgroup = Self::open(dir, h, &name, max_tasks);
            match cgroup {
                Ok(c) => return Ok(Some(c)),
                Err((dir, e)) => {
                    let _ = std::fs::remove_dir(dir);
                    last_error = Some(e);
                }
            }
        }
        last_error.map_or(Ok(None), Err)
    }

    fn open(
        dir: PathBuf,
        h: &Hierarchy,
        name: &str,
        max_tasks: u64,
    ) -> Result<Cgroup, (PathBuf, std::io::Error)> {
        // Absent in a v2 cgroup without the pids controller; the tree is then still contained,
        // only not capped (RLIMIT_NPROC still applies).
        if let Ok(mut max) = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("pids.max"))
        {
            let _ = write!(max, "{max_tasks}");
        }
        // std opens files close-on-exec: the program never inherits this descriptor.
        match std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))
        {
            Ok(procs) => Ok(Cgroup {
                path: format!("{}/{name}", h.path.trim_end_matches('/')),
                v2: h.v2,
                procs,
                dir,
            }),
            Err(e) => Err((dir, e)),
        }
    }

    fn members(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// SIGKILL to every member; returns the members (zombies are not listed).
    fn kill(&self) -> Vec<i32> {
        let members = self.members();
        // cgroup.kill (v2) kills every member at once, ones forked meanwhile included.
        if self.v2 && std::fs::write(self.dir.join("cgroup.kill"), "1").is_ok() {
            return members;
        }
        for &pid in &members {
            kill_checked(pid, |pid| self.holds(pid));
        }
        members
    }

    /// Whether `pid` is (still) a member.
    fn holds(&self, pid: i32) -> bool {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            return false;
        };
        text.lines().any(|line| {
            let mut fields = line.splitn(3, ':');
            let (id, controllers, path) = (fields.next(), fields.next(), fields.next());
            let hierarchy = if self.v2 {
                id == Some("0") && controllers == Some("")
            } else {
                controllers.is_some_and(|c| c.split(',').any(|c| c == "pids"))
            };
            hierarchy && path == Some(self.path.as_str())
        })
    }

    fn remove(&self) {
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            tracing::warn!("exec: cannot remove the cgroup {}: {e}", self.dir.display());
        }
    }
}

/// Removes the call cgroups of hmrt processes that are gone (killed themselves, or a short
/// `hmrt check` that exited while a dropped call's processes were still dying), killing what
/// still runs in them: nothing of a call may outlive it, not even when its hmrt dies first.
/// Only hmrt's own cgroup is looked in, where only hmrt processes make `hmrt-exec-PID-N`.
fn sweep(h: &Hierarchy) {
    let Ok(entries) = std::fs::read_dir(&h.dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let pid = name
            .strip_prefix("hmrt-exec-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        let Some(pid) = pid else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        // pids.max 0: nothing in it can fork while it is emptied.
        let Ok(stale) = Cgroup::open(entry.path(), h, name, 0) else {
            continue;
        };
        let deadline = Instant::now() + Duration::from_millis(100);
        while !stale.kill().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = std::fs::remove_dir(&stale.dir);
    }
}

/// SIGKILL to `pid` if `still_ours(pid)` holds once a pidfd pins the process: the check and the
/// signal then concern the same process even if the pid is recycled in between. Without pidfds
/// (Linux before 5.3) the check is made just before `kill`.
fn kill_checked(pid: i32, still_ours: impl Fn(i32) -> bool) {
    let Some(target) = rustix::process::Pid::from_raw(pid) else {
        return;
    };
    match rustix::process::pidfd_open(target, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => {
            if still_ours(pid) {
                let _ = rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::KILL);
            }
        }
        Err(e) if e == rustix::io::Errno::NOSYS && still_ours(pid) => {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        Err(_) => {}
    }
}

/// One process as `/proc/PID/stat` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    ppid: i32,
    pgrp: i32,
    /// In clock ticks since boot: with the pid, it names one process.
    start: u64,
    zombie: bool,
}

fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses `/proc/PID/stat`; the command name, in parentheses, may itself hold spaces and
/// parentheses, so the fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        zombie: *fields.first()? == "Z",
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// The descendants of a child found so far, by `/proc` scans.
#[derive(Debug, Default)]
struct Scan {
    /// The child's pid and start time.
    root: Option<(i32, u64)>,
    /// Pid and start time of every process seen in the tree (the child not included).
    known: HashMap<i32, u64>,
}

impl Scan {
    /// Adds every living process whose parent chain leads to the child or to a process already
    /// known, or that is in the child's process group; forgets the ones that are gone.
    fn update(&mut self) {
        let Some((root, root_start)) = self.root else {
            return;
        };
        let all: HashMap<i32, Stat> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(|pid| Some((pid, stat(pid)?)))
            .collect();
        self.known
            .retain(|pid, start| all.get(pid).is_some_and(|s| s.start == *start && !s.zombie));
        // Once the child is gone its pid may name another process, whose children are not ours.
        let root_lives = all.get(&root).is_some_and(|s| s.start == root_start);
        // Until nothing new is found: a parent may be listed after its children.
        loop {
            let before = self.known.len();
            for (&pid, s) in &all {
                let in_tree = (root_lives && s.ppid == root)
                    || s.pgrp == root
                    || self.known.contains_key(&s.ppid);
                if in_tree && !s.zombie && pid != root {
                    self.known.insert(pid, s.start);
                }
            }
            if self.known.len() == before {
                break;
            }
        }
    }

    /// SIGKILL to every known process still alive; returns them.
    fn kill(&self) -> Vec<i32> {
        let mut alive = Vec::new();
        for (&pid, &start) in &self.known {
            let ours = |pid| stat(pid).is_some_and(|s| s.start == start && !s.zombie);
            if ours(pid) {
                alive.push(pid);
                kill_checked(pid, ours);
            }
        }
        alive
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;

    /// Runs `script` with /bin/sh in `tree`, as exec.rs runs a program (the tests may use a
    /// shell; hmrt never does).
    fn spawn_in(tree: &Tree, script: &str) -> std::process::Child {
        let join = tree.join();
        let mut command = std::process::Command::new("/bin/sh");
        command
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        // SAFETY: Join::apply makes one async-signal-safe system call.
        unsafe {
            command.pre_exec(move || join.apply());
        }
        let child = command.spawn().expect("spawn /bin/sh");
        tree.started(Some(child.id()));
        child
    }

    /// Live `/bin/sleep ARG` processes (a zombie has no command line; `setsid` before its exec
    /// has its own name first).
    fn running_with(arg: &str) -> Vec<i32> {
        let wanted: Vec<u8> = ["/bin/sleep", arg]
            .iter()
            .flat_map(|a| a.bytes().chain([0]))
            .collect();
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
            .collect()
    }

    async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A marker argument for `sleep` unique to this test process and `n`.
    fn marker(n: u32) -> String {
        format!("600.{}{n}", std::process::id())
    }

    /// The script: an orphan in a session of its own (its parent, a subshell, exits at once),
    /// then the child itself goes on sleeping.
    fn escaping_script(orphan: &str, child: &str) -> String {
        format!("(/usr/bin/setsid /bin/sleep {orphan} &); exec /bin/sleep {child}")
    }

    async fn kill_and_check(tree: Tree, mut child: std::process::Child, markers: [&str; 2]) {
        tree.kill();
        let _ = child.kill();
        child.wait().expect("reap the child");
        tree.finish().await;
        for m in markers {
            wait_until(&format!("sleep {m} gone"), || running_with(m).is_empty()).await;
        }
    }

    #[tokio::test]
    async fn a_cgroup_holds_a_setsid_orphan() {
        let tree = Tree::prepare(64);
        if !tree.is_cgroup() {
            eprintln!("no cgroup can be made here; the /proc fallback is tested on its own");
            return;
        }
        let dir = match &tree.kind {
            Kind::Cgroup(c) => c.dir.clone(),
            Kind::Scan(_) => unreachable!(),
        };
        let (orphan, own) = (marker(1), marker(2));
        let child = spawn_in(&tree, &escaping_script(&orphan, &own));
        wait_until("the orphan runs", || running_with(&orphan).len() == 1).await;
        let pid = running_with(&orphan)[0];
        assert_ne!(stat(pid).unwrap().pgrp, child.id() as i32, "left the group");
        let Kind::Cgroup(c) = &tree.kind else {
            unreachable!()
        };
        assert!(c.holds(pid), "the orphan is still in the call's cgroup");
        kill_and_check(tree, child, [&orphan, &own]).await;
        assert!(!dir.exists(), "{} is removed", dir.display());
    }

    #[tokio::test]
    async fn an_orphan_reparented_to_hmrt_is_reaped() {
        // As if hmrt were PID 1 of a container: orphans come to this process. (It stays set for
        // the rest of this test binary, where it only means orphans of other tests come here.)
        // SAFETY: prctl with integer arguments.
        let set = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(set, 0, "{}", std::io::Error::last_os_error());
        let me = std::process::id() as i32;
        let tree = Tree::prepare(64);
        let (orphan, own) = (marker(5), marker(6));
        let child = spawn_in(&tree, &escaping_script(&orphan, &own));
        wait_until("the orphan runs", || running_with(&orphan).len() == 1).await;
        let pid = running_with(&orphan)[0];
        if tree.is_cgroup() {
            wait_until("the orphan is ours", || {
                stat(pid).is_some_and(|s| s.ppid == me)
            })
            .await;
        }
        kill_and_check(tree, child, [&orphan, &own]).await;
        // Not a zombie of this process: reaped, so its /proc entry is gone.
        wait_until("the orphan reaped", || {
            stat(pid).is_none_or(|s| s.ppid != me)
        })
        .await;
    }

    #[tokio::test]
    async fn the_proc_scan_finds_a_setsid_orphan_while_the_child_lives() {
        let tree = Tree::scan_only();
        let (orphan, own) = (marker(3), marker(4));
        let child = spawn_in(&tree, &escaping_script(&orphan, &own));
        wait_until("the orphan runs", || running_with(&orphan).len() == 1).await;
        let pid = running_with(&orphan)[0];
        // The child is a subreaper: the orphan's new parent is the child, not init.
        wait_until("the orphan is known", || {
            tree.scan();
            let Kind::Scan(scan) = &tree.kind else {
                unreachable!()
            };
            scan.lock().unwrap().known.contains_key(&pid)
        })
        .await;
        let parent = child.id() as i32;
        wait_until("the child adopts the orphan", || {
            stat(pid).is_some_and(|s| s.ppid == parent)
        })
        .await;
        kill_and_check(tree, child, [&orphan, &own]).await;
    }

    #[test]
    fn stat_lines_with_odd_names() {
        let line = "4242 (a b) c)) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 1 1";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                ppid: 1,
                pgrp: 4242,
                start: 98765,
                zombie: false
            })
        );
        assert!(parse_stat("4242 (x) Z").is_none());
    }

    #[test]
    fn hierarchies_from_mountinfo() {
        let mounts = "\
30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
35 25 0:31 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
36 25 0:32 / /sys/fs/cgroup/cpu rw,nosuid - cgroup cgroup rw,cpu
";
        let own = "8:pids:/svc/hmrt\n1:cpu:/\n0::/system.slice/hmrt.service\n";
        let v1 = hierarchy(mounts, own, false).unwrap();
        assert_eq!(v1.dir, Path::new("/sys/fs/cgroup/pids/svc/hmrt"));
        assert_eq!(v1.path, "/svc/hmrt");
        let v2 = hierarchy(mounts, own, true).unwrap();
        assert_eq!(
            v2.dir,
            Path::new("/sys/fs/cgroup/unified/system.slice/hmrt.service")
        );
        // A container that mounts only its own part of the hierarchy.
        let mounts = "40 30 0:31 /docker/abc /sys/fs/cgroup/pids ro - cgroup cgroup rw,pids\n";
        let own = "8:pids:/docker/abc\n";
        let h = hierarchy(mounts, own, false).unwrap();
        assert_eq!(h.dir, Path::new("/sys/fs/cgroup/pids/"));
        assert!(hierarchy(mounts, "8:pids:/elsewhere\n", false).is_none());
        assert!(hierarchy(mounts, own, true).is_none());
    }
}
