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

const KEYS: &[&str] = &["mode", "message", "url", "program", "args", "address"];

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
}

impl Mode {
    fn from_json(json: &str) -> Result<Mode, String> {
        let c = Config::parse(json, KEYS)?;
        Ok(match c.required_string("mode")? {
            "ok" => Mode::Ok,
            "spin" => Mode::Spin,
            "alloc" => Mode::Alloc,
            "panic" => Mode::Panic(c.string("message")?.unwrap_or("hostile panic").to_owned()),
            "http" => Mode::Http(c.required_string("url")?.to_owned()),
            "exec" => Mode::Exec(c.required_string("program")?.to_owned(), c.strings("args")?),
            "restart" => Mode::Restart(c.required_string("program")?.to_owned()),
            "tcp" => Mode::Tcp(c.required_string("address")?.to_owned()),
            "stdout-flood" => Mode::StdoutFlood,
            "log" => Mode::Log,
            "huge-message" => Mode::HugeMessage,
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
        Ok(Mode::from_json(&task.config)?.needs())
    }

    fn check(task: Task) -> CheckResult {
        let (status, message) = match Mode::from_json(&task.config) {
            Err(e) => (Status::Unknown, format!("invalid config: {e}")),
            Ok(mode) => run(mode),
        };
        CheckResult {
            status,
            message,
            metrics: vec![],
        }
    }
}

fn run(mode: Mode) -> (Status, String) {
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
    }
}

hmrt_plugin::export_check!(Hostile);

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
