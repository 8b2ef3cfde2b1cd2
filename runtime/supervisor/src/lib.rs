//! A small async client for supervisord's XML-RPC interface, for hmrt's `supervisor`
//! capability: status, start, stop and restart of one named program.
//!
//! It deliberately calls only `supervisor.getProcessInfo`, `supervisor.startProcess`,
//! `supervisor.stopProcess` and `supervisor.signalProcess`, always for a single process: no
//! `system.multicall`, no `*AllProcesses`, no group, config or log methods, and names with `*`
//! (which supervisord expands to a whole group) are refused before anything is sent.
//!
//! The transport is reqwest: `POST /RPC2` over a unix socket (`unix:///path.sock`) or TCP
//! (`http://host[:port]`), as a typed [`ServerUrl`] (parsed once, by the config), one
//! connection per call, with optional basic auth, a per-call timeout and a cap on the response
//! size enforced while reading. Proxies from the environment, redirects and decompression are
//! off. The timeout needs a tokio runtime with the time driver enabled.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use hmrt_supervisor::{Client, ServerUrl};
//! let url: ServerUrl = "unix:///tmp/supervisor.sock".parse()?;
//! let client = Client::new(&url, None, Duration::from_secs(10))?;
//! let info = client.restart("web").await?;
//! println!("web is {} with pid {:?}", info.state, info.pid);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod error;
mod process;
mod transport;
mod xmlrpc;

use std::fmt;
use std::time::Duration;

pub use error::{Error, Method, fault};
pub use hmrt_domain::ServerUrl;
pub use process::{ProcessInfo, ProcessState};

use error::CallError;
use transport::Transport;
use xmlrpc::{Param, Value};

/// Default cap on the size of a response body (supervisord's answers are a few KiB).
pub const DEFAULT_MAX_RESPONSE: usize = 1024 * 1024;

const GET_PROCESS_INFO: Method = Method::GetProcessInfo;
const START_PROCESS: Method = Method::StartProcess;
const STOP_PROCESS: Method = Method::StopProcess;
const SIGNAL_PROCESS: Method = Method::SignalProcess;

/// What [`Client::stop`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// It was running and is now stopped.
    Stopped,
    /// It was not running (supervisord said NOT_RUNNING); nothing was done.
    WasNotRunning,
}

/// A supervisord XML-RPC client. Cheap to clone; each call uses its own connection.
#[derive(Clone)]
pub struct Client {
    url: ServerUrl,
    /// `url` as text, which every error names.
    server: String,
    transport: Transport,
    has_auth: bool,
    timeout: Duration,
    max_response: usize,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the credentials.
        f.debug_struct("Client")
            .field("serverurl", &self.server)
            .field("auth", &self.has_auth.then_some("<redacted>"))
            .field("timeout", &self.timeout)
            .field("max_response", &self.max_response)
            .finish()
    }
}

impl Client {
    /// Creates a client for supervisord at `serverurl` (`unix:///abs/path.sock` or
    /// `http://host[:port]`, as supervisorctl's `-s` takes it; a missing port is 80), with
    /// optional `(username, password)` basic auth and a timeout that bounds each XML-RPC call
    /// from connect to the last byte.
    ///
    /// Nothing is contacted here. Note that `start`/`restart` wait until supervisord considers
    /// the program started (`startsecs`), so the timeout must be longer than that.
    pub fn new(
        serverurl: &ServerUrl,
        auth: Option<(String, String)>,
        timeout: Duration,
    ) -> Result<Client, Error> {
        if timeout.is_zero() {
            return Err(Error::InvalidSetting(
                "the timeout must be longer than zero",
            ));
        }
        if auth.as_ref().is_some_and(|(user, _)| user.contains(':')) {
            return Err(Error::InvalidSetting(
                "the username must not contain ':' (basic auth cannot carry it)",
            ));
        }
        let has_auth = auth.is_some();
        let transport = Transport::new(serverurl, auth, timeout)?;
        Ok(Client {
            url: serverurl.clone(),
            server: serverurl.to_string(),
            transport,
            has_auth,
            timeout,
            max_response: DEFAULT_MAX_RESPONSE,
        })
    }

    /// Replaces the response size cap ([`DEFAULT_MAX_RESPONSE`] by default).
    pub fn with_max_response(mut self, bytes: usize) -> Client {
        self.max_response = bytes;
        self
    }

    /// The server URL as given to [`Client::new`].
    pub fn serverurl(&self) -> &ServerUrl {
        &self.url
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The state of program `name` (`supervisor.getProcessInfo`).
    pub async fn status(&self, name: &str) -> Result<ProcessInfo, Error> {
        check_name(name)?;
        let value = self
            .call(GET_PROCESS_INFO, name, &[Param::Str(name)])
            .await?;
        ProcessInfo::from_value(&value)
            .map_err(|e| e.into_error(&self.server, GET_PROCESS_INFO, name, self.timeout))
    }

    /// Starts program `name` and waits until supervisord considers it started
    /// (`supervisor.startProcess(name, wait=true)`).
    ///
    /// A program that is already running is an error (`ALREADY_STARTED`). When the start
    /// fails with SPAWN_ERROR or ABNORMAL_TERMINATION, the error's `detail` carries what
    /// `getProcessInfo` said afterwards (state, exit status, spawn error, log file).
    pub async fn start(&self, name: &str) -> Result<(), Error> {
        check_name(name)?;
        match self
            .call(START_PROCESS, name, &[Param::Str(name), Param::Bool(true)])
            .await
        {
            Ok(value) => self.expect_true(START_PROCESS, name, &value),
            Err(mut err) => {
                if let Error::Fault { code, detail, .. } = &mut err
                    && matches!(*code, fault::SPAWN_ERROR | fault::ABNORMAL_TERMINATION)
                    && let Ok(info) = self.status(name).await
                {
                    *detail = Some(describe_failed_start(&info));
                }
                Err(err)
            }
        }
    }

    /// Stops program `name` and waits until it has stopped
    /// (`supervisor.stopProcess(name, wait=true)`). A program that was not running is not an
    /// error: it is reported as [`StopOutcome::WasNotRunning`].
    pub async fn stop(&self, name: &str) -> Result<StopOutcome, Error> {
        check_name(name)?;
        match self
            .call(STOP_PROCESS, name, &[Param::Str(name), Param::Bool(true)])
            .await
        {
            Ok(value) => {
                self.expect_true(STOP_PROCESS, name, &value)?;
                Ok(StopOutcome::Stopped)
            }
            Err(err) if err.fault_code() == Some(fault::NOT_RUNNING) => {
                Ok(StopOutcome::WasNotRunning)
            }
            Err(err) => Err(err),
        }
    }

    /// Restarts program `name`: [`stop`](Client::stop) (fine if it was not running), then
    /// [`start`](Client::start), and returns its status afterwards.
    ///
    /// If something else started it between the two calls (supervisord's own `autorestart`),
    /// the resulting ALREADY_STARTED is accepted: the program is up with a new process, which
    /// is what a restart is for.
    pub async fn restart(&self, name: &str) -> Result<ProcessInfo, Error> {
        self.stop(name).await?;
        match self.start(name).await {
            Ok(()) => {}
            Err(err) if err.fault_code() == Some(fault::ALREADY_STARTED) => {}
            Err(err) => return Err(err),
        }
        self.status(name).await
    }

    /// Sends `signal` (a name such as `HUP`, `USR1`, or a number) to program `name`
    /// (`supervisor.signalProcess`).
    pub async fn signal(&self, name: &str, signal: &str) -> Result<(), Error> {
        check_name(name)?;
        if signal.is_empty()
            || signal.len() > 16
            || !signal.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(Error::InvalidArgument {
                what: "signal",
                value: signal.to_owned(),
                reason: "expected a signal name like HUP or a number",
            });
        }
        let value = self
            .call(
                SIGNAL_PROCESS,
                name,
                &[Param::Str(name), Param::Str(signal)],
            )
            .await?;
        self.expect_true(SIGNAL_PROCESS, name, &value)
    }

    fn expect_true(&self, method: Method, name: &str, value: &Value) -> Result<(), Error> {
        match value {
            Value::Bool(true) => Ok(()),
            other => {
                Err(
                    CallError::Malformed(format!("expected boolean true, got {other:?}"))
                        .into_error(&self.server, method, name, self.timeout),
                )
            }
        }
    }

    async fn call(
        &self,
        method: Method,
        process: &str,
        params: &[Param<'_>],
    ) -> Result<Value, Error> {
        let body = xmlrpc::encode_call(method.as_str(), params);
        let exchange = async {
            let raw = self.transport.post(body, self.max_response).await?;
            let text = std::str::from_utf8(&raw)
                .map_err(|_| CallError::Malformed("response body is not UTF-8".to_owned()))?;
            xmlrpc::parse_response(text)
        };
        let result = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_elapsed) => Err(CallError::Timeout),
        };
        result.map_err(|e| e.into_error(&self.server, method, process, self.timeout))
    }
}

/// Refuses, before anything is sent, a name that would not address exactly one process
/// (hmrt-domain's rule, shared with the config and the grants) or is longer than supervisord's
/// names get.
fn check_name(name: &str) -> Result<(), Error> {
    let reason = if let Some(problem) = hmrt_domain::program::problem(name) {
        problem
    } else if name.len() > 255 {
        "a program name must not be longer than 255 bytes"
    } else {
        return Ok(());
    };
    Err(Error::InvalidArgument {
        what: "program name",
        value: name.to_owned(),
        reason,
    })
}

fn describe_failed_start(info: &ProcessInfo) -> String {
    let mut parts = vec![format!("now {}", info.state)];
    // supervisord forgets the exit status of a too-quick exit (reports 0), so only an
    // EXITED process has a meaningful one.
    if info.state == ProcessState::Exited {
        parts.push(format!("last exit status {}", info.exitstatus));
    }
    if !info.spawnerr.is_empty() {
        parts.push(format!("supervisord says: {}", info.spawnerr));
    }
    let log = if info.stderr_logfile.is_empty() {
        &info.stdout_logfile
    } else {
        &info.stderr_logfile
    };
    if !log.is_empty() {
        parts.push(format!("see {log}"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_widen_the_call_are_refused() {
        for bad in [
            "",
            "web:*",
            "*",
            "grp:",
            ":web",
            "a b",
            "we\nb",
            &"x".repeat(256),
        ] {
            let err = check_name(bad).expect_err(bad);
            assert!(
                matches!(
                    err,
                    Error::InvalidArgument {
                        what: "program name",
                        ..
                    }
                ),
                "{err:?}"
            );
        }
        assert!(
            check_name(&"x".repeat(256))
                .unwrap_err()
                .to_string()
                .contains("255 bytes")
        );
        for good in ["web", "grp:web_00", "a-b.c", &"x".repeat(255)] {
            check_name(good).unwrap();
        }
    }

    #[test]
    fn client_new_validates_and_redacts() {
        let unix: ServerUrl = "unix:///tmp/s.sock".parse().unwrap();
        let c = Client::new(
            &unix,
            Some(("u".into(), "secret".into())),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(c.serverurl(), &unix);
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("secret") && !dbg.contains("c2VjcmV0"),
            "{dbg}"
        );
        assert!(dbg.contains("<redacted>"), "{dbg}");
        assert!(matches!(
            Client::new(&unix, None, Duration::ZERO),
            Err(Error::InvalidSetting(_))
        ));
        assert!(matches!(
            Client::new(
                &unix,
                Some(("a:b".into(), "p".into())),
                Duration::from_secs(1)
            ),
            Err(Error::InvalidSetting(_))
        ));
        // A ServerUrl built by hand, past ServerUrl::parse, with a host no URL can carry.
        let odd = ServerUrl::Http {
            host: "exa mple".into(),
            port: 9001,
        };
        assert!(matches!(
            Client::new(&odd, None, Duration::from_secs(1)),
            Err(Error::InvalidUrl { .. })
        ));
    }

    #[test]
    fn fault_messages_read_well() {
        let e = CallError::Fault(fault::BAD_NAME, "BAD_NAME: web".into()).into_error(
            "unix:///tmp/x.sock",
            GET_PROCESS_INFO,
            "web",
            Duration::from_secs(1),
        );
        assert_eq!(
            e.to_string(),
            "supervisord at unix:///tmp/x.sock: no such process \"web\" (BAD_NAME)"
        );
        let e = CallError::Fault(fault::NO_FILE, "NO_FILE: can't find command 'nope'".into())
            .into_error("unix:///s", START_PROCESS, "web", Duration::from_secs(1));
        assert_eq!(
            e.to_string(),
            "supervisord at unix:///s: cannot start \"web\": its command was not found (NO_FILE): can't find command 'nope'"
        );
        let e = CallError::Fault(99, "WEIRD: thing".into()).into_error(
            "unix:///s",
            STOP_PROCESS,
            "web",
            Duration::from_secs(1),
        );
        assert_eq!(e.fault_code(), Some(99));
        assert_eq!(
            e.to_string(),
            "supervisord at unix:///s: stop of \"web\" failed (code 99): WEIRD: thing"
        );
    }
}
