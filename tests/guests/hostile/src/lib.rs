//! A check that misbehaves on request, for hmrt's sandbox tests. `config.mode` picks what it
//! does; see `Mode`.

use hmrt_plugin::Config;
use hmrt_plugin::check::{CheckResult, Guest};
use hmrt_plugin::exec::{self, Command};
use hmrt_plugin::http::{self, Request};
use hmrt_plugin::log::{self, Level};
use hmrt_plugin::types::{Capability, Need, PluginInfo, Status, Task};
use hmrt_plugin::{supervisor, tcp};
use std::io::Write;

const KEYS: &[&str] = &[
    "mode",
    "message",
    "url",
    "program",
    "args",
    "address",
    "headers",
    "method",
    "count",
    "size",
    "times",
    "hide_needs",
    "secret",
    "poison_at",
];

/// What the guest does in `check`.
enum Mode {
    /// Healthy at once.
    Ok,
    /// Loops forever without calling the host (epoch interruption must stop it).
    Spin,
    /// Allocates and touches 1 MiB blocks forever (the memory limit must stop it).
    Alloc,
    /// Panics with `message`.
    Panic(String),
    /// GETs `url`; healthy iff 2xx.
    Http(String),
    /// Runs `program` with `args`; healthy iff exit 0.
    Exec(String, Vec<String>),
    /// Restarts supervisord program `program`.
    Restart(String),
    /// Connects to `address` (`host:port`).
    Tcp(String),
    /// Writes 100 MiB to stdout.
    StdoutFlood,
    /// Writes one log line at each level.
    Log,
    /// Healthy, with a 1 MiB message.
    HugeMessage,
    /// `http` with `method` (default GET) and `headers` (each "Name: value") of its choosing.
    Request(String, String, Vec<(String, String)>),
    /// GETs `url` with `count` distinct headers (default 40,000).
    ManyHeaders(String, usize),
    /// Forges a log line and terminal escapes in its message, a log line and a metric.
    Forge,
    /// Calls http::send with `url` padded to `size` bytes (default 4 MiB; `{filler}` in `url`
    /// marks where the padding goes, else it is appended) in a loop, until the host says
    /// timeout or after `count` calls (default 100,000).
    DenyLoop(String, usize, u64),
    /// Calls supervisor::restart(`program`) `times` times (default 3).
    RestartLoop(String, u32),
    /// A hostile validate(): it GETs `url` and runs `program` with `args` before answering;
    /// check() is healthy at once.
    ValidateActs(String, String, Vec<String>),
    /// Ends the guest with exit status 3: a death that is not a panic.
    Exit,
    /// Keeps what every call saw in the instance's memory and reports it: the calls this
    /// instance has served, the tasks and `secret`s it saw, and whether its memory is
    /// poisoned. At call `poison_at` (if set) it poisons its memory and traps, so a host that
    /// kept that instance would show the poison on the next call.
    Remember(String, Option<u64>),
}

impl Mode {
    fn from_json(json: &str) -> Result<Mode, String> {
        let c = Config::parse(json, KEYS)?;
        Ok(match c.required_string("mode")? {
            "ok" => Mode::Ok,
            "spin" => Mode::Spin,
            "alloc" => Mode::Alloc,
            "panic" => Mode::Panic(c.string("message")?.unwrap_or("hostile panic").to_owned()),
            "http" if c.value("headers").is_some() || c.value("method").is_some() => Mode::Request(
                c.required_string("url")?.to_owned(),
                c.string("method")?.unwrap_or("GET").to_owned(),
                headers(&c)?,
            ),
            "http" => Mode::Http(c.required_string("url")?.to_owned()),
            "exec" => Mode::Exec(c.required_string("program")?.to_owned(), c.strings("args")?),
            "restart" => Mode::Restart(c.required_string("program")?.to_owned()),
            "tcp" => Mode::Tcp(c.required_string("address")?.to_owned()),
            "stdout-flood" => Mode::StdoutFlood,
            "log" => Mode::Log,
            "huge-message" => Mode::HugeMessage,
            "many-headers" => Mode::ManyHeaders(
                c.required_string("url")?.to_owned(),
                number(&c, "count", 40_000)? as usize,
            ),
            "forge" => Mode::Forge,
            "deny-loop" => Mode::DenyLoop(
                c.required_string("url")?.to_owned(),
                number(&c, "size", 4 << 20)? as usize,
                number(&c, "count", 100_000)?,
            ),
            "restart-loop" => Mode::RestartLoop(
                c.required_string("program")?.to_owned(),
                number(&c, "times", 3)? as u32,
            ),
            "validate-acts" => Mode::ValidateActs(
                c.required_string("url")?.to_owned(),
                c.required_string("program")?.to_owned(),
                c.strings("args")?,
            ),
            "exit" => Mode::Exit,
            "remember" => Mode::Remember(
                c.string("secret")?.unwrap_or_default().to_owned(),
                c.value("poison_at")
                    .map(|_| number(&c, "poison_at", 0))
                    .transpose()?,
            ),
            other => return Err(format!("`mode`: unknown mode {other:?}")),
        })
    }

    fn needs(&self) -> Vec<Need> {
        match self {
            Mode::Http(url) => vec![Need::Http(url.clone())],
            Mode::Exec(program, _) => vec![Need::Exec(program.clone())],
            Mode::Restart(program) => vec![Need::Supervisor(program.clone())],
            Mode::Tcp(address) => vec![Need::Tcp(address.clone())],
            _ => vec![],
        }
    }
}

/// Healthy with `message` if `ok`, else unhealthy.
fn verdict(ok: bool, message: String) -> (Status, String) {
    (
        if ok {
            Status::Healthy
        } else {
            Status::Unhealthy
        },
        message,
    )
}

struct Hostile;

impl Guest for Hostile {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "hostile".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "Misbehaves on request, to test the sandbox.".to_owned(),
            capabilities: vec![
                Capability::Http,
                Capability::Exec,
                Capability::Supervisor,
                Capability::Tcp,
            ],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        let mode = Mode::from_json(&task.config)?;
        if let Mode::ValidateActs(url, program, args) = &mode {
            return validate_acts(url, program, args);
        }
        // A hostile plugin need not say what it will touch; the grants still hold at the call.
        if hides_needs(&task.config) {
            return Ok(vec![]);
        }
        Ok(mode.needs())
    }

    fn check(task: Task) -> CheckResult {
        let (status, message) = match Mode::from_json(&task.config) {
            Err(e) => (Status::Unknown, format!("invalid config: {e}")),
            Ok(mode) => run(&task.name, mode),
        };
        CheckResult {
            status,
            message,
            metrics: FORGED_METRICS.with(|m| m.take()),
        }
    }
}

fn run(task: &str, mode: Mode) -> (Status, String) {
    match mode {
        Mode::Ok => (Status::Healthy, "ok".to_owned()),
        Mode::HugeMessage => (Status::Healthy, "x".repeat(1 << 20)),
        Mode::Spin => {
            let mut n = 0u64;
            loop {
                // black_box keeps the loop from being optimised into nothing.
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        Mode::Alloc => {
            let mut blocks: Vec<Vec<u8>> = Vec::new();
            loop {
                // Non-zero fill writes every page, so the memory is really used.
                blocks.push(std::hint::black_box(vec![0xa5u8; 1 << 20]));
            }
        }
        Mode::Panic(message) => panic!("{}", message),
        Mode::Http(url) => match http::send(&Request {
            method: "GET".to_owned(),
            url: url.clone(),
            headers: vec![],
            body: None,
            timeout_ms: 5_000,
        }) {
            Ok(r) => verdict(
                (200..300).contains(&r.status),
                format!("GET {url}: {}", r.status),
            ),
            Err(e) => verdict(false, format!("GET {url}: {}", e.describe())),
        },
        Mode::Exec(program, args) => match exec::run(&Command {
            program: program.clone(),
            args,
            timeout_ms: 5_000,
            input: None,
        }) {
            Ok(out) => verdict(
                out.exit_code == Some(0),
                format!(
                    "{program}: exit {:?}, stdout {:?}",
                    out.exit_code,
                    String::from_utf8_lossy(&out.stdout)
                ),
            ),
            Err(e) => verdict(false, format!("{program}: {}", e.describe())),
        },
        Mode::Restart(program) => match supervisor::restart(&program) {
            Ok(s) => verdict(true, format!("restarted {program}: pid {:?}", s.pid)),
            Err(e) => verdict(false, format!("restart {program}: {}", e.describe())),
        },
        Mode::Tcp(address) => {
            let (host, port) = address.rsplit_once(':').unwrap_or((&address, ""));
            let port = port.parse().unwrap_or(0);
            match tcp::connect(host, port, 5_000) {
                Ok(us) => verdict(true, format!("connected to {address} in {us} us")),
                Err(e) => verdict(false, format!("connect {address}: {}", e.describe())),
            }
        }
        Mode::StdoutFlood => {
            let chunk = vec![b'x'; 64 * 1024];
            let mut stdout = std::io::stdout().lock();
            let mut written = 0usize;
            // The host may close or cap stdout; stop quietly then, the point is the attempt.
            while written < 100 << 20 && stdout.write_all(&chunk).is_ok() {
                written += chunk.len();
            }
            (Status::Healthy, format!("wrote {written} bytes to stdout"))
        }
        Mode::Log => {
            for (level, name) in [
                (Level::Trace, "trace"),
                (Level::Debug, "debug"),
                (Level::Info, "info"),
                (Level::Warn, "warn"),
                (Level::Error, "error"),
            ] {
                log::write(level, &format!("hostile log line at {name}"));
            }
            (Status::Healthy, "logged at every level".to_owned())
        }
        m @ (Mode::Request(..)
        | Mode::ManyHeaders(..)
        | Mode::Forge
        | Mode::DenyLoop(..)
        | Mode::RestartLoop(..)
        | Mode::ValidateActs(..)
        | Mode::Exit) => run_more(m),
        Mode::Remember(secret, poison_at) => remember(task, secret, poison_at),
    }
}

/// `headers`, each written "Name: value", as (name, value) pairs.
fn headers(c: &Config) -> Result<Vec<(String, String)>, String> {
    c.strings("headers")?
        .into_iter()
        .map(|h| match h.split_once(':') {
            Some((name, value)) => Ok((name.trim().to_owned(), value.trim().to_owned())),
            None => Err(format!("`headers`: {h:?} is not \"Name: value\"")),
        })
        .collect()
}

/// The non-negative integer at `key`, or `default`.
fn number(c: &Config, key: &str, default: u64) -> Result<u64, String> {
    match c.value(key) {
        None => Ok(default),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| format!("`{key}` must be a non-negative integer")),
    }
}

/// Whether `hide_needs = true`: validate() then says the config needs nothing.
fn hides_needs(json: &str) -> bool {
    Config::parse(json, KEYS)
        .ok()
        .and_then(|c| c.value("hide_needs").and_then(|v| v.as_bool()))
        .unwrap_or(false)
}

/// What `forge` writes everywhere a guest string goes: a fake log line, a carriage return,
/// and terminal escapes (clear screen, colour, window title).
const FORGED: &str =
    "forged\nERROR hmrt: task=other forged\r\u{1b}[2J\u{1b}[31mred\u{1b}]0;title\u{7} end";

thread_local! {
    /// Metrics the next check result carries (only `forge` sets any).
    static FORGED_METRICS: std::cell::RefCell<Vec<hmrt_plugin::types::Metric>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The modes appended after the first set; see `Mode`.
fn run_more(mode: Mode) -> (Status, String) {
    match mode {
        Mode::Request(url, method, headers) => send(&method, &url, headers),
        Mode::ManyHeaders(url, count) => {
            let headers = (0..count)
                .map(|i| (format!("x-hostile-{i}"), "v".to_owned()))
                .collect();
            send("GET", &url, headers)
        }
        Mode::Forge => {
            log::write(Level::Error, FORGED);
            FORGED_METRICS.with(|m| {
                m.borrow_mut().push(hmrt_plugin::types::Metric {
                    name: "forged\n\"metric\"".to_owned(),
                    value: 1.0,
                    unit: "\u{1b}[2J".to_owned(),
                })
            });
            (Status::Healthy, FORGED.to_owned())
        }
        Mode::DenyLoop(url, size, count) => deny_loop(&url, size, count),
        Mode::RestartLoop(program, times) => restart_loop(&program, times),
        Mode::ValidateActs(..) => (Status::Healthy, "check() touches nothing".to_owned()),
        Mode::Exit => std::process::exit(3),
        _ => unreachable!("run() handles the first set of modes"),
    }
}

/// One request with the guest's method and headers; healthy iff 2xx.
fn send(method: &str, url: &str, headers: Vec<(String, String)>) -> (Status, String) {
    let said = format!("{method} {url} with {} headers", headers.len());
    match http::send(&Request {
        method: method.to_owned(),
        url: url.to_owned(),
        headers,
        body: None,
        timeout_ms: 5_000,
    }) {
        Ok(r) => verdict(
            (200..300).contains(&r.status),
            format!("{said}: {}", r.status),
        ),
        Err(e) => verdict(false, format!("{said}: {}", e.describe())),
    }
}

fn deny_loop(url: &str, size: usize, count: u64) -> (Status, String) {
    let filler = "q".repeat(size.saturating_sub(url.len()));
    let url = match url.contains("{filler}") {
        true => url.replace("{filler}", &filler),
        false => format!("{url}{filler}"),
    };
    drop(filler);
    let request = Request {
        method: "GET".to_owned(),
        url,
        headers: vec![],
        body: None,
        timeout_ms: 1_000,
    };
    let mut calls = 0u64;
    let mut first = None;
    while calls < count {
        calls += 1;
        match http::send(&request) {
            Ok(r) => return verdict(false, format!("call {calls} went through: {}", r.status)),
            Err(hmrt_plugin::types::HostError::Timeout) => break,
            Err(e) => {
                first.get_or_insert_with(|| e.describe());
            }
        }
    }
    let first = first.unwrap_or_else(|| "timeout".to_owned());
    verdict(
        false,
        format!(
            "{calls} calls; the first answer: {}",
            hmrt_plugin::one_line(&first, 300)
        ),
    )
}

fn restart_loop(program: &str, times: u32) -> (Status, String) {
    let mut done = 0;
    for _ in 0..times {
        match supervisor::restart(program) {
            Ok(_) => done += 1,
            Err(e) => {
                let said = format!("{done} of {times} restarts of {program} succeeded");
                return verdict(false, format!("{said}; then: {}", e.describe()));
            }
        }
    }
    verdict(
        true,
        format!("{done} of {times} restarts of {program} succeeded"),
    )
}

/// validate() that acts before it answers: it must run with no grants, so both calls are
/// refused; if either went through, it says so in its answer.
fn validate_acts(url: &str, program: &str, args: &[String]) -> Result<Vec<Need>, String> {
    let mut reached = Vec::new();
    if let Ok(r) = http::send(&Request {
        method: "GET".to_owned(),
        url: url.to_owned(),
        headers: vec![],
        body: None,
        timeout_ms: 2_000,
    }) {
        reached.push(format!("GET {url}: {}", r.status));
    }
    if let Ok(out) = exec::run(&Command {
        program: program.to_owned(),
        args: args.to_vec(),
        timeout_ms: 2_000,
        input: None,
    }) {
        reached.push(format!("{program}: exit {:?}", out.exit_code));
    }
    if !reached.is_empty() {
        return Err(format!("validate() reached {}", reached.join("; ")));
    }
    Ok(vec![
        Need::Http(url.to_owned()),
        Need::Exec(program.to_owned()),
    ])
}

hmrt_plugin::export_check!(Hostile);

/// What the instance has seen, across its calls (see `Mode::Remember`).
static MEMORY: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
static POISONED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn remember(task: &str, secret: String, poison_at: Option<u64>) -> (Status, String) {
    let mut seen = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    seen.push(format!("{task}:{secret}"));
    let calls = seen.len() as u64;
    if poison_at == Some(calls) {
        POISONED.store(true, std::sync::atomic::Ordering::SeqCst);
        seen.push("POISON".to_owned());
        drop(seen);
        panic!("poisoned my own memory at call {calls}");
    }
    let poisoned = POISONED.load(std::sync::atomic::Ordering::SeqCst);
    (
        if poisoned {
            Status::Unhealthy
        } else {
            Status::Healthy
        },
        format!("calls={calls} poisoned={poisoned} seen={}", seen.join(",")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_match_the_mode() {
        let needs = |json: &str| Mode::from_json(json).map(|m| format!("{:?}", m.needs()));
        assert_eq!(needs(r#"{"mode": "spin"}"#), Ok("[]".into()));
        assert!(
            needs(r#"{"mode": "http", "url": "http://127.0.0.1:1/"}"#)
                .unwrap()
                .contains("Http")
        );
        assert!(
            needs(r#"{"mode": "exec", "program": "true"}"#)
                .unwrap()
                .contains("Exec")
        );
        assert!(
            needs(r#"{"mode": "restart", "program": "web"}"#)
                .unwrap()
                .contains("Supervisor")
        );
        assert!(
            needs(r#"{"mode": "tcp", "address": "127.0.0.1:1"}"#)
                .unwrap()
                .contains("Tcp")
        );
        assert!(needs(r#"{"mode": "fly"}"#).unwrap_err().contains("`mode`"));
        assert!(needs(r#"{"mode": "http"}"#).unwrap_err().contains("`url`"));
    }
}
