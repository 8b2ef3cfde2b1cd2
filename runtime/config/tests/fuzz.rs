//! Property-based fuzzing (proptest) of the config loader and of the grant matchers.
//!
//! - The loader (`Config::parse`, `Config::load`) is fed arbitrary strings, TOML-shaped noise,
//!   lines of hmrt's own keys and edge-case values, and mutations of the seed corpus in
//!   `tests/corpus/` (bit flips, byte and token inserts, deletes, line duplications, deletions
//!   and swaps, value replacements, inserted lines, splices of two files). It must never panic;
//!   what it refuses must be located inside the text and displayed one error per line; what it
//!   accepts must keep only locations inside the text, and well-formed grants.
//! - The matchers (`HttpGrants::allows`/`origin_for`, `TcpGrants::allows`,
//!   `SupervisorGrants::allows`), built through the loader, are checked against an exact-match
//!   model and against where a request really goes, on URLs and hosts spelled to confuse them.
//! - HTTP grants (`grants = { http = [...] }`) are built from parts and must be refused whenever
//!   a part makes them more than an origin; a refused grant refuses the whole config.
//!
//! Each property runs a bounded number of cases so that the file takes a few seconds in a debug
//! build; `PROPTEST_CASES` replaces every count for a longer run (`PROPTEST_CASES=200000 cargo
//! test -p hmrt-config --test fuzz`, about a minute). A failing case's seed is saved in
//! `proptest-regressions/fuzz.txt` and replayed first by every later run: commit it with the fix.

use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use hmrt_config::{Config, ConfigErrors, Grants, HttpGrants, Location, TcpGrants, Url};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{FileFailurePersistence, TestCaseResult, TestRunner};

// --- running ------------------------------------------------------------------------------

const REGRESSIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proptest-regressions/fuzz.txt");

/// The proptest config of a property: `cases` cases unless `PROPTEST_CASES` says otherwise
/// (`ProptestConfig::default()` has read it), failures saved in `proptest-regressions/`.
fn proptest_config(cases: u32) -> ProptestConfig {
    let base = ProptestConfig::default();
    ProptestConfig {
        cases: match std::env::var_os("PROPTEST_CASES") {
            Some(_) => base.cases,
            None => cases,
        },
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        ..base
    }
}

/// Runs `test` on `cases` values of `strategy`; on a failure, panics with the shrunk input.
fn check<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> TestCaseResult) {
    let mut runner = TestRunner::new(proptest_config(cases));
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

/// A temporary directory holding `tasks.toml` (rewritten for each case) and `bin/probe`, an
/// executable that is the whole `PATH` the loader sees, so the exec grant `probe` resolves.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let probe = bin.join("probe");
        std::fs::write(&probe, "#!/bin/sh\nexit 0\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Fixture { dir }
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("tasks.toml")
    }

    fn path_env(&self) -> OsString {
        self.dir.path().join("bin").into_os_string()
    }

    fn parse(&self, text: &str) -> Result<Config, ConfigErrors> {
        Config::parse(text, &self.file(), Some(&self.path_env()))
    }

    fn load(&self, bytes: &[u8]) -> Result<Config, ConfigErrors> {
        std::fs::write(self.file(), bytes).unwrap();
        Config::load(&self.file(), Some(&self.path_env()))
    }
}

/// Config text, shown as text (escaped) when a case fails.
#[derive(Clone, PartialEq)]
struct Input(Vec<u8>);

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(text) => write!(f, "{text:?}"),
            Err(_) => write!(f, "b\"{}\"", self.0.escape_ascii()),
        }
    }
}

// --- the seed corpus ----------------------------------------------------------------------

/// `tests/corpus/*.toml`, by file name: `valid-*` must load, `invalid-*` must be refused.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "the corpus in {} is too small",
        dir.display()
    );
    files
}

#[test]
fn the_corpus_is_what_its_names_say() {
    let fx = Fixture::new();
    for (name, bytes) in corpus() {
        let result = fx.load(&bytes);
        let text = std::str::from_utf8(&bytes).unwrap();
        assert_eq!(result, fx.parse(text), "{name}: load and parse disagree");
        if name.starts_with("valid-") {
            if let Err(e) = &result {
                panic!("{name} is refused:\n{e}");
            }
        } else {
            assert!(
                name.starts_with("invalid-"),
                "{name}: name it valid-* or invalid-*"
            );
            assert!(result.is_err(), "{name} is accepted");
        }
        if let Err(e) = outcome_holds(&bytes, &fx.file(), &result) {
            panic!("{name}: {e}");
        }
    }
}

// --- what every outcome of the loader must satisfy ----------------------------------------

/// Whether `loc` names `file` and a place in `bytes`: a line that exists (1-based) and a column
/// from 1 to one past the line's last character (the end of the text or of the line can be the
/// place: an unclosed array is reported where the text ends).
fn within(bytes: &[u8], file: &Path, loc: &Location) -> Result<(), String> {
    if loc.file != file {
        return Err(format!("{loc} names another file than {}", file.display()));
    }
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if loc.line == 0 || loc.line > lines.len() {
        return Err(format!("{loc}: line outside 1..={}", lines.len()));
    }
    let chars = String::from_utf8_lossy(lines[loc.line - 1]).chars().count();
    if loc.column == 0 || loc.column > chars + 1 {
        return Err(format!(
            "{loc}: column outside 1..={} on line {}",
            chars + 1,
            loc.line
        ));
    }
    Ok(())
}

/// Every location the resolved config keeps for the host's later errors.
fn locations(config: &Config) -> Vec<&Location> {
    fn grants<'c>(g: &'c Grants, out: &mut Vec<&'c Location>) {
        out.extend(g.http.origins.iter().map(|o| &o.location));
        out.extend(g.exec.programs.iter().map(|p| &p.location));
        out.extend(g.supervisor.programs.iter().map(|p| &p.location));
        out.extend(g.tcp.endpoints.iter().map(|e| &e.location));
        out.extend(g.smtp.endpoints.iter().map(|e| &e.location));
    }
    fn action<'c>(a: &'c hmrt_config::ActionConfig, out: &mut Vec<&'c Location>) {
        out.push(&a.location);
        out.extend(a.config.locations.values());
        grants(&a.grants, out);
    }
    let mut out = Vec::new();
    out.extend(config.supervisor.iter().map(|s| &s.location));
    for t in &config.tasks {
        out.extend([&t.location, &t.name_location, &t.check_location]);
        out.extend(t.program_location.iter());
        out.extend(t.config.locations.values());
        grants(&t.grants, &mut out);
        if let Some(a) = &t.on_failure {
            action(a, &mut out);
        }
    }
    for r in &config.alerts {
        out.push(&r.location);
        action(&r.receiver, &mut out);
        if let Some(a) = &r.escalate_to {
            action(a, &mut out);
        }
    }
    out.extend(config.maintenance.iter().map(|m| &m.location));
    out
}

/// The grants of every check and action of `config`.
fn all_grants(config: &Config) -> Vec<&Grants> {
    let mut out = Vec::new();
    for t in &config.tasks {
        out.push(&t.grants);
        out.extend(t.on_failure.iter().map(|a| &a.grants));
    }
    for r in &config.alerts {
        out.push(&r.receiver.grants);
        out.extend(r.escalate_to.iter().map(|a| &a.grants));
    }
    out
}

/// What holds of grants the loader accepted, whatever the text.
fn grants_hold(g: &Grants) -> Result<(), String> {
    for o in &g.http.origins {
        if !matches!(o.scheme.as_str(), "http" | "https") {
            return Err(format!("origin with scheme {:?}", o.scheme));
        }
        if o.host.is_empty() || o.host != o.host.to_ascii_lowercase() {
            return Err(format!(
                "origin host {:?} is empty or not lowercase",
                o.host
            ));
        }
        // An origin allows requests to itself.
        let url = format!("{}://{}:{}/", o.scheme, o.host, o.port);
        let url = Url::parse(&url).map_err(|e| format!("origin {url}: {e}"))?;
        if !g.http.allows(&url) || g.http.origin_for(&url).is_none() {
            return Err(format!("origin {url} does not allow itself"));
        }
    }
    for e in g.tcp.endpoints.iter().chain(&g.smtp.endpoints) {
        if e.port == 0
            || e.host.is_empty()
            || e.host != e.host.to_ascii_lowercase()
            || e.host.chars().any(|c| c.is_whitespace() || c == '/')
        {
            return Err(format!("endpoint {:?}:{} accepted", e.host, e.port));
        }
    }
    if !g
        .tcp
        .endpoints
        .iter()
        .all(|e| g.tcp.allows(&e.host, e.port))
        || !g
            .smtp
            .endpoints
            .iter()
            .all(|e| g.smtp.allows(&e.host, e.port))
    {
        return Err("an endpoint does not allow itself".to_string());
    }
    for p in &g.supervisor.programs {
        if hmrt_domain::program::problem(&p.name).is_some() || !g.supervisor.allows(&p.name) {
            return Err(format!("supervisor grant {:?} accepted", p.name));
        }
    }
    for p in &g.exec.programs {
        if !p.path.is_absolute() || g.exec.resolve(&p.name) != Some(p.path.as_path()) {
            return Err(format!("exec grant {:?} -> {}", p.name, p.path.display()));
        }
    }
    Ok(())
}

/// What every outcome of loading `bytes` from `file` must satisfy.
///
/// Accepted: every kept location is in the text and the grants are well formed. Refused: at
/// least one error, in file order, each at a place in the text, with a message that is one
/// non-empty line, displayed as `file:line:column: ...`; `ConfigErrors` displays one error per
/// line. Only the key can break a line today: see
/// `a_key_with_a_newline_breaks_the_one_line_display`.
fn outcome_holds(
    bytes: &[u8],
    file: &Path,
    result: &Result<Config, ConfigErrors>,
) -> Result<(), String> {
    match result {
        Ok(config) => {
            if config.file != file {
                return Err(format!("config.file is {}", config.file.display()));
            }
            for loc in locations(config) {
                within(bytes, file, loc)?;
            }
            for g in all_grants(config) {
                grants_hold(g)?;
            }
        }
        Err(errors) => {
            if errors.is_empty() {
                return Err("refused with no error".to_string());
            }
            let order = |e: &hmrt_config::ConfigError| (e.location.line, e.location.column);
            if errors
                .errors()
                .windows(2)
                .any(|w| order(&w[0]) > order(&w[1]))
            {
                return Err(format!("errors not in file order:\n{errors}"));
            }
            for e in errors {
                within(bytes, file, &e.location).map_err(|why| format!("{why}\nerror: {e:?}"))?;
                if e.message.trim().is_empty() || e.message.contains(['\n', '\r']) {
                    return Err(format!("message is empty or not one line: {e:?}"));
                }
                let shown = e.to_string();
                let prefix = format!(
                    "{}:{}:{}: ",
                    file.display(),
                    e.location.line,
                    e.location.column
                );
                if !shown.starts_with(&prefix) || !shown.ends_with(&e.message) {
                    return Err(format!("displayed as {shown:?}: {e:?}"));
                }
                if shown.contains(['\n', '\r']) {
                    return Err(format!("displayed on more than one line: {shown:?}"));
                }
            }
            let lines: Vec<String> = errors.errors().iter().map(|e| e.to_string()).collect();
            if errors.to_string() != lines.join("\n") {
                return Err("ConfigErrors does not display one error per line".to_string());
            }
        }
    }
    Ok(())
}

/// Loads `bytes` (through `parse` when it is UTF-8, else through `load`, which must refuse it
/// at its first bad byte) and checks the outcome. `load` and `parse` agree on UTF-8 text: see
/// `the_corpus_is_what_its_names_say` (writing a file per case would be most of the run time).
fn loader_holds(fx: &Fixture, bytes: &[u8]) -> TestCaseResult {
    let result = match std::str::from_utf8(bytes) {
        Ok(text) => fx.parse(text),
        Err(e) => {
            let loaded = fx.load(bytes);
            let errors = loaded.as_ref().expect_err("invalid UTF-8 accepted");
            prop_assert_eq!(errors.len(), 1);
            let valid = &bytes[..e.valid_up_to()];
            let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let column = std::str::from_utf8(&valid[line_start..])
                .unwrap()
                .chars()
                .count()
                + 1;
            let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
            let at = &errors.errors()[0].location;
            prop_assert_eq!((at.line, at.column), (line, column));
            loaded
        }
    };
    if let Err(why) = outcome_holds(bytes, &fx.file(), &result) {
        return Err(TestCaseError::fail(why));
    }
    Ok(())
}

// --- the loader on generated text ---------------------------------------------------------

#[test]
fn loader_arbitrary_strings() {
    let fx = Fixture::new();
    check(2000, any::<String>(), |text| {
        loader_holds(&fx, text.as_bytes())
    });
}

#[test]
fn loader_toml_shaped_noise() {
    let fx = Fixture::new();
    let noise = "[\\[\\]{}=\"',.#\\\\ \t\r\na-z0-9_:/@+-]{0,300}";
    check(2000, noise, |text| loader_holds(&fx, text.as_bytes()));
}

/// Section headers, hmrt's keys (and near misses), and values at the edges of every type and
/// range, so that generated text gets past the TOML parser into every part of the walk.
#[rustfmt::skip]
const SECTIONS: &[&str] = &[
    "[runtime]", "[api]", "[supervisor]", "[defaults]", "[defaults.restart]",
    "[defaults.flapping]", "[[task]]", "[task]", "[task.restart]", "[task.on_failure]",
    "[task.grants]", "[task.config]", "[[task.depends_on]]", "[[alert]]", "[alert.receiver]",
    "[[maintenance]]",
];
#[rustfmt::skip]
const KEYS: &[&str] = &[
    "runtime", "api", "supervisor", "defaults", "task", "alert", "maintenance", "tasks",
    "plugins_dir", "state_dir", "listen", "max_concurrency", "token_env", "serverurl", "username",
    "password", "name", "program", "check", "config", "grants", "on_failure", "depends_on",
    "labels", "interval", "timeout", "failure_threshold", "success_threshold", "failure_window",
    "memory", "start_period", "restart", "flapping", "backoff", "max_backoff", "factor", "jitter",
    "max_restarts", "window", "reset_after", "rearm_after", "changes", "http", "exec", "smtp",
    "tcp", "action", "events", "receiver", "remind_every", "group_wait", "send_resolved",
    "give_up_after", "escalate_after", "escalate_to", "weekdays", "from", "to", "timezone",
    "restart.backoff", "grants.http", "chekc", "\"\"", "\"k\u{e9}y\"", "'x y'",
];
#[rustfmt::skip]
const VALUES: &[&str] = &[
    "\"web\"", "\"db-*\"", "\"*\"", "\"grp:\"", "\"http\"", "\"supervisor-restart\"", "\"5s\"",
    "\"0s\"", "\"1.5s\"", "\"-1s\"", "\"1h30m\"", "\"1e400s\"", "\"2y\"",
    "\"18446744073709551615s\"", "\"99999999999999999999ms\"", "\"512KiB\"", "\"10MB\"",
    "\"99999999999999GiB\"", "\"127.0.0.1:9187\"", "\"0.0.0.0:1\"", "\"[::1]:0\"",
    "\"unix:///tmp/s.sock\"", "\"unix://rel.sock\"", "\"http://h:9001\"", "\"sun\"", "\"02:00\"",
    "\"24:00\"", "\"23:59:60\"", "\"Europe/Berlin\"", "\"\"", "\" \"", "\"\u{e9}\u{1f600}\"",
    "\"a\\u0000b\"", "\"unhealthy\"", "\"HMRT_TOKEN\"", "0", "1", "-1", "4294967295",
    "4294967296", "9223372036854775807", "-9223372036854775808", "0.5", "1.0", "-0.0", "1e308",
    "nan", "inf", "-inf", "true", "false", "1979-05-27T07:32:00Z", "07:32:00", "1979-05-27",
    "[]", "[\"web\"]", "[\"web\", \"web\"]", "[1, \"a\"]", "[\"http://127.0.0.1:80\"]",
    "[\"http://u@h/p?q#f\"]", "[\"sun\", \"funday\"]", "{}", "{ action = \"webhook\" }",
    "{ http = [\"http://h\"], tcp = [\"h:1\"] }", "{ exec = [\"probe\", \"./x\"] }",
    "{ supervisor = [\"web\", \"*\"] }", "{ backoff = \"1s\", factor = 2.0, jitter = 0.99 }",
    "{ changes = 1, window = \"1s\" }", "{ team = \"a\" }", "{ url = \"http://h/\", n = nan }",
    "{ exec = [{ program = \"probe\", args = [\"-x\", \"*\", \"**\"] }] }",
    "{ exec = [{ program = \"probe\", args = [\"**\", \"*\"] }, { args = [1] }, 2] }",
];
/// Bits of TOML that change what follows them.
#[rustfmt::skip]
const TOKENS: &[&str] = &[
    "[", "]", "[[", "]]", "{", "}", "\"", "'", "\"\"\"", "'''", "=", ",", ".", "#", "\\", "\\u",
    "\\U0010FFFF", "\\n", "\n", "\r\n", "\r", "\t", " ", "\0", "\u{feff}", "\u{e9}", "\u{1f600}",
    "\u{2028}", "[[task]]\n", "[defaults]\n", "name = \"web\"\n", "nan", "inf", "-0", "1e400",
    "99999999999999999999", "0x7f", "1979-05-27T07:32:00Z", "\"a\\nb\" = 1\n", "*", ":", "@",
];

/// A line of hmrt's vocabulary: a section header or `key = value`.
fn vocabulary_line() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => prop::sample::select(SECTIONS).prop_map(str::to_string),
        4 => (prop::sample::select(KEYS), prop::sample::select(VALUES))
            .prop_map(|(k, v)| format!("{k} = {v}")),
    ]
}

#[test]
fn loader_vocabulary() {
    let fx = Fixture::new();
    let text = prop::collection::vec(vocabulary_line(), 0..24).prop_map(|lines| {
        let mut text = lines.join("\n");
        text.push('\n');
        text
    });
    check(2000, text, |text| loader_holds(&fx, text.as_bytes()));
}

// --- the loader on mutations of the corpus ------------------------------------------------

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    InsertBytes(Index, Vec<u8>),
    InsertToken(Index, &'static str),
    Delete(Index, usize),
    DuplicateLine(Index),
    DeleteLine(Index),
    SwapLines(Index, Index),
    /// This text up to a point, then another corpus file from a point.
    Splice(Index, Index, Index),
    /// The value of a `key = value` line replaced.
    ReplaceValue(Index, &'static str),
    /// A line of hmrt's vocabulary inserted before a line.
    InsertLine(Index, String),
}

/// Mutations weighted toward ones that keep the text UTF-8 and mostly TOML, so that most inputs
/// get past the TOML parser (byte-level noise mostly stops at the UTF-8 check or the parser).
fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<Index>;
    let byte = prop_oneof![3 => 0u8..0x80, 1 => any::<u8>()];
    prop_oneof![
        1 => (at(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        1 => (at(), byte.clone()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        1 => (at(), prop::collection::vec(byte, 1..8))
            .prop_map(|(i, b)| Mutation::InsertBytes(i, b)),
        4 => (at(), prop::sample::select(TOKENS)).prop_map(|(i, t)| Mutation::InsertToken(i, t)),
        2 => (at(), 1usize..32).prop_map(|(i, n)| Mutation::Delete(i, n)),
        3 => at().prop_map(Mutation::DuplicateLine),
        3 => at().prop_map(Mutation::DeleteLine),
        2 => (at(), at()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        2 => (at(), at(), at()).prop_map(|(f, a, b)| Mutation::Splice(f, a, b)),
        4 => (at(), prop::sample::select(VALUES)).prop_map(|(i, v)| Mutation::ReplaceValue(i, v)),
        3 => (at(), vocabulary_line()).prop_map(|(i, l)| Mutation::InsertLine(i, l)),
    ]
}

/// Byte ranges of the lines of `bytes`, each with its newline.
fn line_ranges(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            out.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < bytes.len() {
        out.push(start..bytes.len());
    }
    out
}

fn apply(mut bytes: Vec<u8>, m: &Mutation, corpus: &[(String, Vec<u8>)]) -> Vec<u8> {
    // An index into `bytes` where something can be inserted (0..=len).
    let point = |bytes: &Vec<u8>, i: &Index| i.index(bytes.len() + 1);
    match m {
        Mutation::FlipBit(i, bit) if !bytes.is_empty() => {
            let at = i.index(bytes.len());
            bytes[at] ^= 1 << bit;
        }
        Mutation::SetByte(i, b) if !bytes.is_empty() => {
            let at = i.index(bytes.len());
            bytes[at] = *b;
        }
        Mutation::InsertBytes(i, new) => {
            let at = point(&bytes, i);
            bytes.splice(at..at, new.iter().copied());
        }
        Mutation::InsertToken(i, t) => {
            let at = point(&bytes, i);
            bytes.splice(at..at, t.bytes());
        }
        Mutation::Delete(i, n) => {
            let at = point(&bytes, i);
            let end = (at + n).min(bytes.len());
            bytes.drain(at..end);
        }
        Mutation::DuplicateLine(i) | Mutation::DeleteLine(i) => {
            let lines = line_ranges(&bytes);
            if !lines.is_empty() {
                let r = lines[i.index(lines.len())].clone();
                if matches!(m, Mutation::DuplicateLine(_)) {
                    let line = bytes[r.clone()].to_vec();
                    bytes.splice(r.end..r.end, line);
                } else {
                    bytes.drain(r);
                }
            }
        }
        Mutation::SwapLines(a, b) => {
            let lines = line_ranges(&bytes);
            if !lines.is_empty() {
                let (a, b) = (a.index(lines.len()), b.index(lines.len()));
                let mut pieces: Vec<Vec<u8>> =
                    lines.iter().map(|r| bytes[r.clone()].to_vec()).collect();
                pieces.swap(a, b);
                bytes = pieces.concat();
            }
        }
        Mutation::Splice(f, a, b) => {
            let other = &corpus[f.index(corpus.len())].1;
            let cut = point(&bytes, a);
            let from = b.index(other.len() + 1);
            bytes.truncate(cut);
            bytes.extend_from_slice(&other[from..]);
        }
        Mutation::ReplaceValue(i, value) => {
            let values: Vec<_> = line_ranges(&bytes)
                .into_iter()
                .filter_map(|r| {
                    let line = &bytes[r.clone()];
                    let eq = line.windows(3).position(|w| w == b" = ")?;
                    let eol = line
                        .iter()
                        .rev()
                        .take_while(|b| matches!(b, b'\n' | b'\r'))
                        .count();
                    Some(r.start + eq + 3..r.end - eol)
                })
                .filter(|r| r.start <= r.end)
                .collect();
            if !values.is_empty() {
                let r = values[i.index(values.len())].clone();
                bytes.splice(r, value.bytes());
            }
        }
        Mutation::InsertLine(i, line) => {
            let starts: Vec<usize> = std::iter::once(0)
                .chain(line_ranges(&bytes).iter().map(|r| r.end))
                .collect();
            let at = starts[i.index(starts.len())];
            let mut line = line.clone().into_bytes();
            if at == bytes.len() && !bytes.is_empty() && !bytes.ends_with(b"\n") {
                line.insert(0, b'\n');
            }
            line.push(b'\n');
            bytes.splice(at..at, line);
        }
        Mutation::FlipBit(..) | Mutation::SetByte(..) => {}
    }
    bytes
}

#[test]
fn loader_corpus_mutations() {
    let fx = Fixture::new();
    let corpus = corpus();
    let seeds = corpus.clone();
    let inputs = (0..corpus.len(), prop::collection::vec(mutation(), 1..4)).prop_map(
        move |(seed, mutations)| {
            let bytes = mutations
                .iter()
                .fold(seeds[seed].1.clone(), |b, m| apply(b, m, &seeds));
            Input(bytes)
        },
    );
    check(10000, inputs, |input| loader_holds(&fx, &input.0));
}

/// Found by the mutation test above: a quoted TOML key may hold a newline (`"a\nb" = 1`), and
/// errors once put the key into their display unescaped, so one error spanned two lines (against
/// `ConfigErrors`' "one error per line", which `hmrt validate` prints and `tests/cases`
/// compares) and a config could forge a line that reads like another error.
#[test]
fn a_key_with_a_newline_keeps_the_one_line_display() {
    let fx = Fixture::new();
    for text in [
        "\"a\\nb\" = 1\n",
        "[runtime]\n\"x\\rtasks.toml:1:1: forged\" = 1\n",
        "[[task]]\nname = \"web\"\ncheck = \"http\"\nconfig = { \"a\\nb\" = nan }\n",
    ] {
        let errors = fx.parse(text).unwrap_err();
        let shown = errors.to_string();
        assert_eq!(
            shown.split(['\n', '\r']).count(),
            errors.len(),
            "{text:?} displays as {shown:?}"
        );
    }
}

// --- the HTTP matcher ---------------------------------------------------------------------

/// The HTTP origins the matcher tests grant, as written in a config.
const HTTP_GRANTS: &[&str] = &[
    "http://127.0.0.1:18080",
    "http://127.0.0.1",
    "https://Example.COM",
    "http://[::1]:8080/",
    "https://ex\u{e4}mple.com:8443",
    "http://api.example.com.",
];

/// A config whose task `web` grants the kinds written in `grants` (a TOML inline table body).
fn task_with_grants(grants: &str) -> String {
    format!("[[task]]\nname = \"web\"\ncheck = \"http\"\ngrants = {{ {grants} }}\n")
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_list(items: &[&str]) -> String {
    let items: Vec<String> = items.iter().map(|s| toml_string(s)).collect();
    format!("[{}]", items.join(", "))
}

fn loaded_grants(fx: &Fixture, grants: &str) -> Grants {
    let text = task_with_grants(grants);
    match fx.parse(&text) {
        Ok(config) => config.tasks[0].grants.clone(),
        Err(e) => panic!("{text}: {e}"),
    }
}

fn http_grants(fx: &Fixture) -> HttpGrants {
    let g = loaded_grants(fx, &format!("http = {}", toml_list(HTTP_GRANTS))).http;
    assert_eq!(g.origins.len(), HTTP_GRANTS.len());
    g
}

/// Where a request to `url` goes, as an address when the host is one.
#[derive(Debug, PartialEq)]
enum Dest {
    Ip(IpAddr),
    Name(String),
}

fn dest_of_host(host: &url::Host<&str>) -> Dest {
    match host {
        url::Host::Ipv4(a) => Dest::Ip(IpAddr::V4(*a)),
        url::Host::Ipv6(a) => Dest::Ip(IpAddr::V6(*a)),
        url::Host::Domain(d) => Dest::Name(d.to_ascii_lowercase()),
    }
}

/// Where a granted origin's host points, read back independently of the matcher.
fn dest_of_grant(host: &str) -> Dest {
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match unbracketed.parse::<IpAddr>() {
        Ok(ip) => Dest::Ip(ip),
        Err(_) => Dest::Name(host.to_ascii_lowercase()),
    }
}

/// What must hold of the HTTP matcher for any URL: `allows` and `origin_for` agree; the origin
/// found equals the URL's scheme, lowercased host and port exactly; a URL is allowed exactly when
/// some grant matches so; and an allowed URL goes to the granted host (same address, or same
/// name), on the granted scheme and port.
fn http_matcher_holds(g: &HttpGrants, url: &Url) -> TestCaseResult {
    let allowed = g.allows(url);
    let found = g.origin_for(url);
    prop_assert_eq!(
        allowed,
        found.is_some(),
        "allows and origin_for disagree on {}",
        url
    );
    let host = url.host_str().map(str::to_ascii_lowercase);
    let port = url.port_or_known_default();
    let exact = |o: &hmrt_config::HttpOrigin| {
        o.scheme == url.scheme() && Some(&o.host) == host.as_ref() && Some(o.port) == port
    };
    prop_assert_eq!(allowed, g.origins.iter().any(exact), "{}", url);
    if let Some(o) = found {
        prop_assert!(exact(o), "{} allowed by {:?}", url, o);
        let dest = dest_of_host(&url.host().expect("allowed without a host"));
        prop_assert_eq!(
            &dest,
            &dest_of_grant(&o.host),
            "{} goes elsewhere than {:?}",
            url,
            o
        );
        prop_assert!(matches!(url.scheme(), "http" | "https"));
    }
    Ok(())
}

/// URLs built to confuse an origin check: scheme case and separators, userinfo that looks like
/// a granted host, hosts granted and not in every spelling (case, IDNA, percent-encoding,
/// trailing dots, IPv4 in decimal, hex and octal, IPv6 forms), default and odd ports, and paths,
/// queries and fragments holding `@` and backslashes, wrapped in whitespace.
fn tricky_url() -> impl Strategy<Value = String> {
    #[rustfmt::skip]
    const SCHEMES: &[&str] = &[
        "http", "https", "HTTP", "HtTpS", "ftp", "ws", "file", "httpx",
    ];
    const SEPARATORS: &[&str] = &["://", ":/", ":", ":\\\\", ":///", "://\t", "://\\"];
    #[rustfmt::skip]
    const USERINFO: &[&str] = &[
        "", "", "", "user@", "user:pass@", "127.0.0.1@", "127.0.0.1:18080@", "example.com@",
        "evil.com:443@", ":@", "@", "a%40b@", "[::1]:8080@", "http://127.0.0.1@",
    ];
    #[rustfmt::skip]
    const HOSTS: &[&str] = &[
        "127.0.0.1", "2130706433", "0x7f000001", "0x7F.0.0.1", "0177.0.0.1", "0177.1", "127.1",
        "127.0.0.01", "127.000.000.001", "127.0.0.1.", "127.0.0.2", "0", "0x0", "10.0.0.1", "[::1]",
        "[0:0:0:0:0:0:0:1]", "[::ffff:127.0.0.1]", "[::1%25eth0]", "[::]", "localhost", "LOCALHOST",
        "example.com", "EXAMPLE.COM", "example.com.", "ex%61mple.com", "ex\u{e4}mple.com",
        "EX\u{c4}MPLE.com", "xn--exmple-cua.com", "XN--EXMPLE-CUA.COM",
        "\u{ff45}\u{ff58}\u{ff41}\u{ff4d}\u{ff50}\u{ff4c}\u{ff45}.com", "exa\tmple.com",
        "exa mple.com", "evil.com", "evil.com#@example.com", "evil.com?@example.com",
        "example.com.evil.com", "evil.com\\@example.com", "example.com%00", "example.com%2F",
        "api.example.com", "api.example.com.", "API.EXAMPLE.COM.", "api.example.com..",
        "api.example.com%2E", "127.0.0.1%2F",
    ];
    #[rustfmt::skip]
    const PORTS: &[&str] = &[
        "", "", ":", ":80", ":080", ":443", ":8080", ":18080", ":8443", ":65535", ":65536", ":0",
        ":+80", ":1_0", ":0x50",
    ];
    #[rustfmt::skip]
    const RESTS: &[&str] = &[
        "", "/", "/x", "?q", "#f", "/@evil.com", "\\@evil.com", "?@evil.com", "#@evil.com",
        "/..\\..", "/%2e%2e/", "@evil.com", ":80@evil.com",
    ];
    const WHITESPACE: &[&str] = &["", "", "", " ", "\t", "\n", "\u{0}", "\u{1f}", "\u{a0}"];
    let pick = |list: &'static [&'static str]| prop::sample::select(list);
    (
        pick(WHITESPACE),
        pick(SCHEMES),
        pick(SEPARATORS),
        pick(USERINFO),
        pick(HOSTS),
        pick(PORTS),
        pick(RESTS),
        pick(WHITESPACE),
    )
        .prop_map(|(a, s, sep, u, h, p, r, z)| format!("{a}{s}{sep}{u}{h}{p}{r}{z}"))
}

#[test]
fn http_matcher_on_tricky_urls() {
    let fx = Fixture::new();
    let g = http_grants(&fx);
    check(5000, tricky_url(), |text| {
        // A URL the parser refuses is never requested.
        match Url::parse(&text) {
            Ok(url) => http_matcher_holds(&g, &url),
            Err(_) => Ok(()),
        }
    });
}

#[test]
fn http_matcher_on_arbitrary_urls() {
    let fx = Fixture::new();
    let g = http_grants(&fx);
    let text = "(https?|HTTP|ftp):(//)?[a-zA-Z0-9.:@\\[\\]%/\\\\?#_~ -]{0,40}";
    check(2000, text, |text| match Url::parse(&text) {
        Ok(url) => http_matcher_holds(&g, &url),
        Err(_) => Ok(()),
    });
}

/// An IPv4 address written in one of the forms URL parsers accept.
fn ipv4_spelling(ip: Ipv4Addr, form: u8) -> String {
    let n = u32::from(ip);
    let [a, b, c, d] = ip.octets();
    match form % 6 {
        0 => ip.to_string(),
        1 => n.to_string(),
        2 => format!("0x{n:x}"),
        3 => format!("0{a:o}.0{b:o}.0{c:o}.0{d:o}"),
        4 => format!(
            "{a}.{}",
            (u32::from(b) << 16) | (u32::from(c) << 8) | u32::from(d)
        ),
        _ => format!("0x{a:X}.{b}.0{c:o}.{d}"),
    }
}

#[test]
fn http_matcher_ipv4_spellings_allow_only_the_granted_address() {
    let fx = Fixture::new();
    let g = http_grants(&fx);
    let granted: [(Ipv4Addr, u16); 2] = [(Ipv4Addr::LOCALHOST, 18080), (Ipv4Addr::LOCALHOST, 80)];
    let ip = prop_oneof![
        Just(Ipv4Addr::LOCALHOST),
        Just(Ipv4Addr::new(127, 0, 0, 2)),
        Just(Ipv4Addr::new(127, 1, 0, 1)),
        any::<u32>().prop_map(Ipv4Addr::from),
    ];
    let port = prop_oneof![Just(80u16), Just(18080), Just(443), any::<u16>()];
    check(2000, (ip, any::<u8>(), port), |(ip, form, port)| {
        let text = format!("http://{}:{port}/health", ipv4_spelling(ip, form));
        let url = Url::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(url.host(), Some(url::Host::Ipv4(ip)), "{}", text);
        prop_assert_eq!(g.allows(&url), granted.contains(&(ip, port)), "{}", text);
        http_matcher_holds(&g, &url)
    });
}

/// The tricks one by one, with the answer each must get.
#[test]
fn http_matcher_known_tricks() {
    let fx = Fixture::new();
    let g = http_grants(&fx);
    for (text, allowed) in [
        ("http://127.0.0.1:18080/health", true),
        ("http://127.0.0.1/", true),
        ("http://127.0.0.1:80/", true),
        ("http://127.0.0.1:18080@evil.com/", false),
        ("http://127.0.0.1:80@evil.com/", false),
        ("http://127.0.0.1@evil.com:18080/", false),
        ("http://evil.com#@127.0.0.1:18080/", false),
        ("http://evil.com?@127.0.0.1:18080/", false),
        ("http://evil.com\\@127.0.0.1:18080/", false),
        ("http://evil.com/@127.0.0.1:18080/", false),
        ("http://2130706433:18080/", true),
        ("http://0x7f000001:18080/", true),
        ("http://0177.0.0.1:18080/", true),
        ("http://127.1:18080/", true),
        ("http://2130706434:18080/", false),
        // A trailing dot after an IPv4 address is dropped: the same address.
        ("http://127.0.0.1.:18080/", true),
        ("https://127.0.0.1:18080/", false),
        ("http://127.0.0.1:18081/", false),
        ("http://localhost:18080/", false),
        ("http://[::ffff:127.0.0.1]:18080/", false),
        ("https://EXAMPLE.com/", true),
        ("https://example.com:443/", true),
        ("https://ex%61mple.com/", true),
        ("https://example.com./", false),
        ("http://example.com/", false),
        ("https://example.com:8443/", false),
        ("https://xn--exmple-cua.com:8443/", true),
        ("https://EX\u{c4}MPLE.com:8443/", true),
        ("https://exmple.com:8443/", false),
        ("http://[::1]:8080/", true),
        ("http://[0:0:0:0:0:0:0:1]:8080/", true),
        ("http://[::1]/", false),
        ("http://api.example.com./", true),
        ("http://API.EXAMPLE.COM./", true),
        ("http://api.example.com/", false),
        ("  http://127.0.0.1:18080/\n", true),
        ("http://127.0.0.1:1\t8080/", true),
    ] {
        let url = Url::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(g.allows(&url), allowed, "{text:?} (parsed as {url})");
        assert_eq!(g.origin_for(&url).is_some(), allowed, "{text:?}");
    }
}

// --- HTTP grants: only origins --------------------------------------------------------------

/// An HTTP grant written from parts, and whether the parts make it more than an origin.
#[derive(Debug, Clone)]
struct GrantParts {
    text: String,
    /// A non-http(s) scheme, userinfo, a path, a query or a fragment: must be refused.
    not_an_origin: bool,
    /// Every part is one an origin may have: must be accepted.
    origin: bool,
}

fn grant_parts() -> impl Strategy<Value = GrantParts> {
    // (text, whether an origin may have it)
    #[rustfmt::skip]
    const SCHEMES: &[(&str, bool)] = &[
        ("http", true), ("https", true), ("HTTP", true), ("Https", true), ("ftp", false),
        ("ws", false), ("wss", false), ("file", false), ("javascript", false), ("gopher", false),
        ("httpx", false), ("data", false),
    ];
    #[rustfmt::skip]
    const USERINFO: &[(&str, bool)] = &[
        ("", true), ("", true), ("u@", false), ("u:p@", false), (":p@", false),
        ("127.0.0.1@", false), ("%40@", false),
    ];
    #[rustfmt::skip]
    const HOSTS: &[&str] = &[
        "h", "127.0.0.1", "2130706433", "[::1]", "Example.COM", "ex\u{e4}mple.com", "example.com.",
    ];
    const PORTS: &[&str] = &["", ":80", ":443", ":8080", ":65535"];
    const PATHS: &[(&str, bool)] = &[
        ("", true),
        ("/", true),
        ("/x", false),
        ("/health", false),
        ("//", false),
        ("/a/b/", false),
        ("/%20", false),
        ("/@evil", false),
        ("\\x", false),
    ];
    const QUERIES: &[(&str, bool)] = &[("", true), ("", true), ("?", false), ("?x=1", false)];
    const FRAGMENTS: &[(&str, bool)] = &[("", true), ("", true), ("#", false), ("#f", false)];
    let pick = |list: &'static [(&'static str, bool)]| prop::sample::select(list);
    (
        pick(SCHEMES),
        pick(USERINFO),
        prop::sample::select(HOSTS),
        prop::sample::select(PORTS),
        pick(PATHS),
        pick(QUERIES),
        pick(FRAGMENTS),
    )
        .prop_map(|(s, u, h, p, path, q, f)| {
            let parts = [s, u, path, q, f];
            GrantParts {
                text: format!("{}://{}{h}{p}{}{}{}", s.0, u.0, path.0, q.0, f.0),
                not_an_origin: parts.iter().any(|(_, ok)| !ok),
                origin: parts.iter().all(|(_, ok)| *ok),
            }
        })
}

/// The grant `text` next to a good one, through the loader: refused with an error at the grant
/// itself, or accepted as an origin that is exactly what the URL parser reads in `text`.
fn http_grant_holds(fx: &Fixture, text: &str) -> Result<Option<Grants>, TestCaseError> {
    let config = task_with_grants(&format!(
        "http = [\"http://127.0.0.1:18080\", {}]",
        toml_string(text)
    ));
    let result = fx.parse(&config);
    if let Err(why) = outcome_holds(config.as_bytes(), &fx.file(), &result) {
        return Err(TestCaseError::fail(why));
    }
    match result {
        Ok(config) => {
            let g = config.tasks[0].grants.clone();
            prop_assert_eq!(g.http.origins.len(), 2);
            let o = &g.http.origins[1];
            let url = Url::parse(text).map_err(|e| TestCaseError::fail(format!("{e}")))?;
            prop_assert!(url.username().is_empty() && url.password().is_none());
            prop_assert_eq!(url.path(), "/");
            prop_assert!(url.query().is_none() && url.fragment().is_none());
            prop_assert_eq!(&o.scheme, url.scheme());
            prop_assert_eq!(
                Some(o.host.clone()),
                url.host_str().map(str::to_ascii_lowercase)
            );
            prop_assert_eq!(Some(o.port), url.port_or_known_default());
            prop_assert!(g.http.allows(&url));
            Ok(Some(g))
        }
        Err(errors) => {
            // Refused as a whole (no origin escapes) and named at the grant, not elsewhere.
            let (line, column) = (4, config.lines().nth(3).unwrap().find(", ").unwrap() + 3);
            prop_assert!(
                errors
                    .errors()
                    .iter()
                    .all(|e| e.task.as_deref() == Some("web")
                        && e.key == "grants.http[1]"
                        && (e.location.line, e.location.column) == (line, column)),
                "{}",
                errors
            );
            Ok(None)
        }
    }
}

#[test]
fn http_grants_must_be_origins() {
    let fx = Fixture::new();
    check(2000, grant_parts(), |parts| {
        let accepted = http_grant_holds(&fx, &parts.text)?.is_some();
        if parts.not_an_origin {
            prop_assert!(!accepted, "{:?} accepted", parts.text);
        }
        if parts.origin {
            prop_assert!(accepted, "{:?} refused", parts.text);
        }
        Ok(())
    });
}

#[test]
fn http_grants_arbitrary_text() {
    let fx = Fixture::new();
    let text = prop_oneof![
        any::<String>(),
        "(https?|HTTP|ftp|ws)?:?(//)?[a-zA-Z0-9.:@\\[\\]%/\\\\?#_~ \t-]{0,40}",
    ];
    check(2000, text, |text| http_grant_holds(&fx, &text).map(|_| ()));
}

// --- the TCP and supervisor matchers ------------------------------------------------------

const TCP_GRANTS: &[&str] = &[
    "db.local:5432",
    "DB2.Local:5433",
    "[::1]:6379",
    "127.0.0.1:80",
    "mail.example.com:25",
];

/// Host strings near the granted ones: case changes, brackets, trailing dots, whitespace,
/// NULs, ports and userinfo glued on, other spellings of the same address.
fn tricky_host() -> impl Strategy<Value = String> {
    #[rustfmt::skip]
    const BASES: &[&str] = &[
        "db.local", "db2.local", "::1", "127.0.0.1", "mail.example.com", "2130706433", "0x7f000001",
        "127.1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "localhost", "db", "local", "evil.com",
        "xn--db-local", "d\u{e9}.local", "DB.LOCAL", "\u{130}.local",
    ];
    #[rustfmt::skip]
    const AROUND: &[(&str, &str)] = &[
        ("", ""), ("", ""), ("", ""), ("[", "]"), ("[[", "]]"), ("[", ""), ("", "]"), ("", "."),
        ("", ".."), (" ", ""), ("", " "), ("", "\n"), ("", "\0"), ("\t", ""), ("", ":5432"),
        ("", ":80"), ("evil.com@", ""), ("", "@evil.com"), ("", "%00"), ("", "/"), ("x.", ""),
        ("", ".x"),
    ];
    (
        prop::sample::select(BASES),
        prop::sample::select(AROUND),
        any::<u64>(),
    )
        .prop_map(|(base, (before, after), case)| {
            let base: String = base
                .chars()
                .enumerate()
                .map(|(i, c)| match case >> (i % 64) & 1 {
                    1 => c.to_ascii_uppercase(),
                    _ => c,
                })
                .collect();
            format!("{before}{base}{after}")
        })
}

fn tcp_matcher_holds(g: &TcpGrants, host: &str, port: u16) -> TestCaseResult {
    let allowed = g.allows(host, port);
    // The model: one pair of brackets around the whole host may be dropped, ASCII case is
    // ignored, nothing else is normalised.
    let bare = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => inner,
        None => host,
    };
    let matching = g
        .endpoints
        .iter()
        .find(|e| e.port == port && e.host == bare.to_ascii_lowercase());
    prop_assert_eq!(allowed, matching.is_some(), "{:?}:{}", host, port);
    if let Some(e) = matching {
        prop_assert!(!bare.contains(|c: char| c.is_whitespace() || c.is_control()));
        if let Ok(ip) = bare.parse::<IpAddr>() {
            prop_assert_eq!(Ok(ip), e.host.parse::<IpAddr>(), "{:?}", host);
        }
    }
    Ok(())
}

#[test]
fn tcp_matcher_on_tricky_hosts() {
    let fx = Fixture::new();
    let g = loaded_grants(
        &fx,
        &format!(
            "tcp = {}, smtp = {}",
            toml_list(TCP_GRANTS),
            toml_list(TCP_GRANTS)
        ),
    );
    assert_eq!(g.tcp.endpoints.len(), TCP_GRANTS.len());
    let pairs = |g: &TcpGrants| -> Vec<(String, u16)> {
        g.endpoints
            .iter()
            .map(|e| (e.host.clone(), e.port))
            .collect()
    };
    assert_eq!(pairs(&g.tcp), pairs(&g.smtp));
    let port = prop_oneof![
        prop::sample::select(&[0u16, 25, 80, 5432, 5433, 6379][..]),
        any::<u16>(),
    ];
    check(5000, (tricky_host(), port), |(host, port)| {
        tcp_matcher_holds(&g.tcp, &host, port)?;
        tcp_matcher_holds(&g.smtp, &host, port)
    });
    for (host, port, allowed) in [
        ("db.local", 5432, true),
        ("DB.LOCAL", 5432, true),
        ("db.local", 5433, false),
        ("db.local.", 5432, false),
        ("db.local ", 5432, false),
        ("[db.local]", 5432, true),
        ("[::1]", 6379, true),
        ("::1", 6379, true),
        ("[[::1]]", 6379, false),
        ("0:0:0:0:0:0:0:1", 6379, false),
        ("2130706433", 80, false),
        ("127.0.0.1", 80, true),
        ("127.0.0.1:80", 80, false),
        ("evil.com@127.0.0.1", 80, false),
        ("localhost", 80, false),
    ] {
        assert_eq!(g.tcp.allows(host, port), allowed, "{host:?}:{port}");
    }
}

#[test]
fn tcp_grants_arbitrary_text() {
    let fx = Fixture::new();
    let text = prop_oneof![
        any::<String>(),
        "\\[?[a-zA-Z0-9.:%@ \t/_-]{0,24}\\]?(:[0-9+-]{0,7})?",
        tricky_host().prop_map(|h| format!("{h}:80")),
    ];
    check(2000, text, |text| {
        let config = task_with_grants(&format!("tcp = [{}]", toml_string(&text)));
        let result = fx.parse(&config);
        if let Err(why) = outcome_holds(config.as_bytes(), &fx.file(), &result) {
            return Err(TestCaseError::fail(why));
        }
        if let Ok(config) = result {
            let e = &config.tasks[0].grants.tcp.endpoints[0];
            // The grant's host is the text before the port, lowercased, without brackets.
            let (host, port) = text.rsplit_once(':').unwrap();
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            prop_assert_eq!(&e.host, &host.to_ascii_lowercase());
            prop_assert_eq!(Ok(e.port), port.parse::<u16>());
            prop_assert!(config.tasks[0].grants.tcp.allows(host, e.port));
        }
        Ok(())
    });
}

#[test]
fn supervisor_matcher_is_exact() {
    let fx = Fixture::new();
    let granted = ["web", "grp:api", "Web2", "a.b-c_d"];
    let g = loaded_grants(&fx, &format!("supervisor = {}", toml_list(&granted))).supervisor;
    assert_eq!(g.programs.len(), granted.len());
    #[rustfmt::skip]
    const NEAR: &[&str] = &[
        "web", "grp:api", "Web2", "a.b-c_d", "WEB", "web2", "Web", "grp:", "grp:*", "*", "", "api",
        ":api", "grp:api:", "web ", " web", "web\0", "web\n", "grp:web", "w\u{e9}b", "a.b-c_d.",
        "grp", "grp:ap",
    ];
    let name = prop_oneof![
        prop::sample::select(NEAR).prop_map(str::to_string),
        (prop::sample::select(NEAR), prop::sample::select(NEAR))
            .prop_map(|(a, b)| format!("{a}{b}")),
        any::<String>(),
    ];
    check(2000, name, |name| {
        prop_assert_eq!(
            g.allows(&name),
            granted.contains(&name.as_str()),
            "{:?}",
            name
        );
        Ok(())
    });
    // Through the loader: a name is either refused where it is written or granted verbatim.
    check(
        2000,
        prop_oneof![
            prop::sample::select(NEAR).prop_map(str::to_string),
            any::<String>()
        ],
        |name| {
            let config = task_with_grants(&format!("supervisor = [{}]", toml_string(&name)));
            let result = fx.parse(&config);
            if let Err(why) = outcome_holds(config.as_bytes(), &fx.file(), &result) {
                return Err(TestCaseError::fail(why));
            }
            prop_assert_eq!(
                result.is_ok(),
                hmrt_domain::program::problem(&name).is_none()
            );
            if let Ok(config) = result {
                let g = &config.tasks[0].grants.supervisor;
                prop_assert_eq!(&g.programs[0].name, &name);
                prop_assert!(g.allows(&name));
            }
            Ok(())
        },
    );
}
