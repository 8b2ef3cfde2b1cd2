//! One run of the scan: from where the last run stopped to the end of the log (or `max_read`
//! bytes), following a rotation.
//!
//! - Same inode, not smaller than the offset: the lines appended since.
//! - Same inode, smaller than the offset: truncated in place (copytruncate): from the start.
//! - Another inode (renamed away and a new file made): the old file is looked up by its inode
//!   among the entries of the log's directory, its rest is read from the saved offset, then
//!   the new file from its start.

use hmrt_plugin::files::{FileKind, FileStat};
use hmrt_plugin::types::HostError;
use regex::bytes::Regex;

use crate::position::{CARRY_BYTES, Position};

/// The most one `files.read` call asks for (the host's cap).
const READ_CHUNK: u64 = 1 << 20;
/// The most kept of the newest matching line.
const NEWEST_BYTES: usize = 1024;

/// The file calls the scan makes: the host's `files`, or the file system in tests.
pub trait Files {
    /// What `path` is.
    fn stat(&self, path: &str) -> Result<FileStat, HostError>;
    /// Up to `max` bytes of `path` from `offset`.
    fn read(&self, path: &str, offset: u64, max: u32) -> Result<Vec<u8>, HostError>;
    /// The entries of the directory `dir`, with their stats.
    fn entries(&self, dir: &str) -> Result<Vec<(String, FileStat)>, HostError>;
}

/// Lines counted and matched, fed in chunks that need not end at a newline.
pub struct Tally<'a> {
    regex: &'a Regex,
    /// Matching lines.
    pub matches: u64,
    /// Complete lines read.
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// The newest matching line (cut at [`NEWEST_BYTES`]).
    pub newest: Option<Vec<u8>>,
    /// The line read so far without its newline.
    carry: Vec<u8>,
}

impl<'a> Tally<'a> {
    /// A tally that goes on from `carry`.
    pub fn new(regex: &'a Regex, carry: Vec<u8>) -> Tally<'a> {
        Tally {
            regex,
            matches: 0,
            lines: 0,
            bytes: 0,
            newest: None,
            carry,
        }
    }

    /// Reads `chunk`: every line it completes is counted and matched; the unfinished end is
    /// kept for the next chunk.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        let mut rest = chunk;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(newline);
            if self.carry.is_empty() {
                self.line(line);
            } else {
                self.keep(line);
                let whole = std::mem::take(&mut self.carry);
                self.line(&whole);
            }
            rest = after.get(1..).unwrap_or_default();
        }
        self.keep(rest);
    }

    /// Counts the unfinished line as a line: the end of a rotated file, which gets no more.
    pub fn flush(&mut self) {
        if !self.carry.is_empty() {
            let whole = std::mem::take(&mut self.carry);
            self.line(&whole);
        }
    }

    /// Forgets the unfinished line (its file was truncated or lost).
    pub fn drop_carry(&mut self) {
        self.carry.clear();
    }

    /// The unfinished line, to keep for the next run.
    pub fn carry(&self) -> &[u8] {
        &self.carry
    }

    fn keep(&mut self, part: &[u8]) {
        let room = CARRY_BYTES.saturating_sub(self.carry.len());
        self.carry
            .extend_from_slice(part.get(..room).unwrap_or(part));
    }

    fn line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.lines += 1;
        if self.regex.is_match(line) {
            self.matches += 1;
            self.newest = Some(line.get(..NEWEST_BYTES).unwrap_or(line).to_vec());
        }
    }
}

/// What a run found.
pub struct Scan<'a> {
    /// The lines read.
    pub tally: Tally<'a>,
    /// Where the next run goes on from; `None`: keep nothing (the log does not exist yet).
    pub next: Option<Position>,
    /// Things worth saying (a rotation, a truncation, bytes left for the next run).
    pub notes: Vec<String>,
    /// Whether the log is missing.
    pub missing: bool,
    /// Whether this run only took the starting point (`from = "end"` on a first run).
    pub started: bool,
}

/// Where a first run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// At the end: history is not counted.
    End,
    /// At the start: every line in the log counts.
    Start,
}

/// What one run reads.
pub struct Plan<'a> {
    /// The log's path.
    pub path: &'a str,
    /// The pattern.
    pub regex: &'a Regex,
    /// Bytes a run reads at most.
    pub max_read: u64,
    /// Where a first run starts.
    pub from: From,
}

/// Runs the scan from `saved` (the last run's position, if any). An error is a log that
/// cannot be looked at (denied, not a file, a failed stat).
pub fn run<'a>(
    fs: &dyn Files,
    plan: &Plan<'a>,
    saved: Option<Position>,
) -> Result<Scan<'a>, HostError> {
    let current = match fs.stat(plan.path) {
        Ok(stat) if stat.kind == FileKind::File => Some(stat),
        Ok(_) => {
            return Err(HostError::Invalid(format!(
                "{} is not a regular file",
                plan.path
            )));
        }
        Err(HostError::Failed(m)) if m.ends_with("does not exist") => None,
        Err(e) => return Err(e),
    };
    let saved = saved.filter(|p| p.path == plan.path);
    let mut scan = Scan {
        tally: Tally::new(plan.regex, Vec::new()),
        next: None,
        notes: Vec::new(),
        missing: current.is_none(),
        started: false,
    };
    let mut reader = Reader {
        fs,
        budget: plan.max_read,
    };
    match (saved, current) {
        (None, None) => {}
        (None, Some(cur)) => {
            let start = match plan.from {
                From::End => cur.size,
                From::Start => 0,
            };
            scan.started = plan.from == From::End;
            let offset = reader.drain(plan.path, start, &mut scan.tally)?;
            scan.next = Some(position(plan.path, cur.inode, offset, &scan.tally));
            reader.left(cur.size, offset, &mut scan.notes);
        }
        (Some(p), Some(cur)) if p.inode == cur.inode => {
            scan.tally = Tally::new(plan.regex, p.carry);
            let mut start = p.offset;
            if cur.size < p.offset {
                scan.notes.push(format!(
                    "{} shrank ({} bytes, was {}): truncated, read from its start",
                    plan.path, cur.size, p.offset
                ));
                scan.tally.drop_carry();
                start = 0;
            }
            let offset = reader.drain(plan.path, start, &mut scan.tally)?;
            scan.next = Some(position(plan.path, cur.inode, offset, &scan.tally));
            reader.left(cur.size, offset, &mut scan.notes);
        }
        (Some(p), current) => rotated(&mut reader, plan, p, current, &mut scan)?,
    }
    Ok(scan)
}

/// The log at `plan.path` is another file than last time (or gone): finish the old one, found
/// by its inode beside the path, then read the new one from its start.
fn rotated<'a>(
    reader: &mut Reader<'_>,
    plan: &Plan<'a>,
    p: Position,
    current: Option<FileStat>,
    scan: &mut Scan<'a>,
) -> Result<(), HostError> {
    let mut kept = Position {
        carry: Vec::new(),
        ..p.clone()
    };
    scan.tally = Tally::new(plan.regex, p.carry);
    match find_by_inode(reader.fs, plan.path, p.inode) {
        Ok(Some((old, stat))) => {
            let start = if stat.size < p.offset { 0 } else { p.offset };
            let end = reader.drain(&old, start, &mut scan.tally)?;
            if end < stat.size {
                // Out of budget inside the old file: the next run goes on there.
                scan.next = Some(position(plan.path, p.inode, end, &scan.tally));
                reader.left(stat.size, end, &mut scan.notes);
                return Ok(());
            }
            scan.tally.flush();
            scan.notes.push(format!("rotated: read the rest of {old}"));
            kept.offset = end;
        }
        Ok(None) => {
            scan.tally.drop_carry();
            scan.notes.push(format!(
                "rotated: the old file is not beside {} any more; lines written to it since the last run are not counted",
                plan.path
            ));
        }
        Err(e) => {
            scan.tally.drop_carry();
            scan.notes.push(format!(
                "rotated: cannot look for the old file ({}); grant the log's directory with a trailing `/`",
                e.describe()
            ));
        }
    }
    match current {
        Some(cur) => {
            let offset = reader.drain(plan.path, 0, &mut scan.tally)?;
            scan.next = Some(position(plan.path, cur.inode, offset, &scan.tally));
            reader.left(cur.size, offset, &mut scan.notes);
        }
        // Renamed away, no new file yet: stay with the old one.
        None => scan.next = Some(kept),
    }
    Ok(())
}

fn position(path: &str, inode: u64, offset: u64, tally: &Tally<'_>) -> Position {
    Position {
        path: path.to_owned(),
        inode,
        offset,
        carry: tally.carry().to_vec(),
    }
}

/// The file in `path`'s directory (other than `path`) whose inode is `inode`.
fn find_by_inode(
    fs: &dyn Files,
    path: &str,
    inode: u64,
) -> Result<Option<(String, FileStat)>, HostError> {
    let (dir, own) = path.rsplit_once('/').unwrap_or(("", path));
    let dir = if dir.is_empty() { "/" } else { dir };
    let found = fs
        .entries(dir)?
        .into_iter()
        .find(|(name, stat)| name != own && stat.inode == inode && stat.kind == FileKind::File);
    Ok(found.map(|(name, stat)| (format!("{}/{name}", dir.trim_end_matches('/')), stat)))
}

/// Reads files in chunks within one run's budget.
struct Reader<'f> {
    fs: &'f dyn Files,
    budget: u64,
}

impl Reader<'_> {
    /// Reads `path` from `from` to its end or the budget's, into `tally`; returns the offset
    /// reached.
    fn drain(&mut self, path: &str, from: u64, tally: &mut Tally<'_>) -> Result<u64, HostError> {
        let mut offset = from;
        while self.budget > 0 {
            let want = u32::try_from(self.budget.min(READ_CHUNK)).unwrap_or(u32::MAX);
            let bytes = self.fs.read(path, offset, want)?;
            if bytes.is_empty() {
                break;
            }
            tally.feed(&bytes);
            offset += bytes.len() as u64;
            self.budget = self.budget.saturating_sub(bytes.len() as u64);
        }
        Ok(offset)
    }

    /// Notes what is left unread because the budget ran out.
    fn left(&self, size: u64, offset: u64, notes: &mut Vec<String>) {
        if self.budget == 0 && size > offset {
            notes.push(format!(
                "{} bytes left for the next run (max_read)",
                size - offset
            ));
        }
    }
}
