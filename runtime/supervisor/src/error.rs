//! The error type, with messages written for the operator who reads them in a log.

use std::fmt;
use std::io;
use std::time::Duration;

/// Numeric XML-RPC fault codes supervisord returns (from `supervisor/xmlrpc.py`).
pub mod fault {
    /// The method does not exist.
    pub const UNKNOWN_METHOD: i32 = 1;
    /// Wrong number of parameters.
    pub const INCORRECT_PARAMETERS: i32 = 2;
    /// Parameters of the wrong type.
    pub const BAD_ARGUMENTS: i32 = 3;
    /// The signature is not supported.
    pub const SIGNATURE_UNSUPPORTED: i32 = 4;
    /// supervisord is shutting down.
    pub const SHUTDOWN_STATE: i32 = 6;
    /// No such process (or group).
    pub const BAD_NAME: i32 = 10;
    /// No such signal.
    pub const BAD_SIGNAL: i32 = 11;
    /// The program's command was not found.
    pub const NO_FILE: i32 = 20;
    /// The program's command is not executable.
    pub const NOT_EXECUTABLE: i32 = 21;
    /// The operation failed (the message says why).
    pub const FAILED: i32 = 30;
    /// The process exited before it reached RUNNING.
    pub const ABNORMAL_TERMINATION: i32 = 40;
    /// The process could not be spawned, or exited too quickly.
    pub const SPAWN_ERROR: i32 = 50;
    /// The process is already running.
    pub const ALREADY_STARTED: i32 = 60;
    /// The process is not running.
    pub const NOT_RUNNING: i32 = 70;

    /// The symbolic name supervisord uses for `code`, if it is one of the known ones.
    pub fn name(code: i32) -> Option<&'static str> {
        Some(match code {
            UNKNOWN_METHOD => "UNKNOWN_METHOD",
            INCORRECT_PARAMETERS => "INCORRECT_PARAMETERS",
            BAD_ARGUMENTS => "BAD_ARGUMENTS",
            SIGNATURE_UNSUPPORTED => "SIGNATURE_UNSUPPORTED",
            SHUTDOWN_STATE => "SHUTDOWN_STATE",
            BAD_NAME => "BAD_NAME",
            BAD_SIGNAL => "BAD_SIGNAL",
            NO_FILE => "NO_FILE",
            NOT_EXECUTABLE => "NOT_EXECUTABLE",
            FAILED => "FAILED",
            ABNORMAL_TERMINATION => "ABNORMAL_TERMINATION",
            SPAWN_ERROR => "SPAWN_ERROR",
            ALREADY_STARTED => "ALREADY_STARTED",
            NOT_RUNNING => "NOT_RUNNING",
            _ => return None,
        })
    }
}

/// The only XML-RPC methods this crate calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `supervisor.getProcessInfo`
    GetProcessInfo,
    /// `supervisor.startProcess`
    StartProcess,
    /// `supervisor.stopProcess`
    StopProcess,
    /// `supervisor.signalProcess`
    SignalProcess,
}

impl Method {
    /// The XML-RPC method name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::GetProcessInfo => "supervisor.getProcessInfo",
            Method::StartProcess => "supervisor.startProcess",
            Method::StopProcess => "supervisor.stopProcess",
            Method::SignalProcess => "supervisor.signalProcess",
        }
    }

    /// The operator's word for it.
    pub fn verb(self) -> &'static str {
        match self {
            Method::GetProcessInfo => "status",
            Method::StartProcess => "start",
            Method::StopProcess => "stop",
            Method::SignalProcess => "signal",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can go wrong talking to supervisord.
///
/// Every variant that comes from a call names the server (as its `serverurl`), so the
/// `Display` text stands on its own in a log line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The [`ServerUrl`](crate::ServerUrl) given to [`Client::new`](crate::Client::new) parsed,
    /// but cannot be reached over HTTP (its host is not one an HTTP URL can carry).
    #[error(
        "invalid supervisord serverurl {url:?}: {reason} \
         (expected unix:///absolute/path.sock or http://host:port)"
    )]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Some other [`Client::new`](crate::Client::new) argument is not usable.
    #[error("invalid supervisord client setting: {0}")]
    InvalidSetting(&'static str),
    /// The HTTP client could not be set up (nothing was contacted).
    #[error("cannot set up the HTTP client for supervisord: {0}")]
    ClientSetup(String),
    /// A program name (or signal) that is refused before anything is sent.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidArgument {
        /// "program name" or "signal".
        what: &'static str,
        /// The value as given.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Could not connect to the socket or port.
    #[error("supervisord at {server}: cannot connect: {source}")]
    Connect {
        /// The server URL.
        server: String,
        /// The underlying error (e.g. no such file, connection refused, permission denied).
        #[source]
        source: io::Error,
    },
    /// Connected, but the exchange failed part-way (e.g. connection reset).
    #[error("supervisord at {server}: connection failed during {method}: {source}")]
    Io {
        /// The server URL.
        server: String,
        /// The XML-RPC method being called.
        method: Method,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// No complete answer within the client's timeout.
    #[error("supervisord at {server}: no complete answer to {method} within {timeout:?}")]
    Timeout {
        /// The server URL.
        server: String,
        /// The XML-RPC method being called.
        method: Method,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// An HTTP status other than 200.
    #[error("supervisord at {server}: HTTP {status} {reason}{}", http_hint(*status))]
    Http {
        /// The server URL.
        server: String,
        /// The HTTP status code.
        status: u16,
        /// The reason phrase of the status line.
        reason: String,
    },
    /// The answer is not the HTTP / XML-RPC that was expected.
    #[error("supervisord at {server}: malformed response to {method}: {what}")]
    Malformed {
        /// The server URL.
        server: String,
        /// The XML-RPC method being called.
        method: Method,
        /// What was wrong with it.
        what: String,
    },
    /// supervisord answered with an XML-RPC fault.
    #[error("supervisord at {server}: {}", FaultSentence { code: *code, name, message, process, method: *method, detail })]
    Fault {
        /// The server URL.
        server: String,
        /// The XML-RPC method that faulted.
        method: Method,
        /// The program name the call was about.
        process: String,
        /// The numeric fault code (see [`fault`]).
        code: i32,
        /// The symbolic name (`BAD_NAME`, ...), or `code N` for codes this crate does not know.
        name: String,
        /// supervisord's faultString, verbatim (e.g. `BAD_NAME: web`).
        message: String,
        /// What a follow-up `getProcessInfo` said about a failed start (state, exit status,
        /// supervisord's spawn error, log file), when it could be fetched.
        detail: Option<String>,
    },
}

impl Error {
    /// The fault code if this is an XML-RPC fault.
    pub fn fault_code(&self) -> Option<i32> {
        match self {
            Error::Fault { code, .. } => Some(*code),
            _ => None,
        }
    }
}

fn http_hint(status: u16) -> &'static str {
    match status {
        401 => " (check the supervisor username/password)",
        404 => {
            " (is this supervisord's XML-RPC interface? [rpcinterface:supervisor] must be configured)"
        }
        _ => "",
    }
}

/// Renders a fault as an operator-readable sentence, e.g. `no such process "web" (BAD_NAME)`.
struct FaultSentence<'a> {
    code: i32,
    name: &'a str,
    message: &'a str,
    process: &'a str,
    method: Method,
    detail: &'a Option<String>,
}

impl fmt::Display for FaultSentence<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fault::*;
        let p = self.process;
        match self.code {
            BAD_NAME => write!(f, "no such process {p:?}")?,
            BAD_SIGNAL => write!(f, "bad signal for {p:?}")?,
            NO_FILE => write!(f, "cannot start {p:?}: its command was not found")?,
            NOT_EXECUTABLE => write!(f, "cannot start {p:?}: its command is not executable")?,
            FAILED => write!(f, "{} of {p:?} failed", self.method.verb())?,
            ABNORMAL_TERMINATION => write!(
                f,
                "could not start {p:?}: it exited before it was fully started"
            )?,
            SPAWN_ERROR => write!(f, "could not start {p:?}")?,
            ALREADY_STARTED => write!(f, "{p:?} is already started")?,
            NOT_RUNNING => write!(f, "{p:?} is not running")?,
            SHUTDOWN_STATE => write!(
                f,
                "{} of {p:?} refused: supervisord is shutting down",
                self.method.verb()
            )?,
            _ => write!(f, "{} of {p:?} failed", self.method.verb())?,
        }
        write!(f, " ({})", self.name)?;
        // supervisord's faultString is "NAME" or "NAME: extra"; the extra is worth showing
        // unless it only repeats the process name.
        let extra = self
            .message
            .strip_prefix(self.name)
            .map(|rest| rest.trim_start_matches(':').trim())
            .unwrap_or(self.message);
        if !extra.is_empty() && extra != p {
            write!(f, ": {extra}")?;
        }
        if let Some(detail) = self.detail {
            write!(f, "; {detail}")?;
        }
        Ok(())
    }
}

/// A failure below the [`Client`](crate::Client), before the server/method context is added.
#[derive(Debug)]
pub(crate) enum CallError {
    Connect(io::Error),
    Io(io::Error),
    Timeout,
    Http(u16, String),
    Malformed(String),
    Fault(i32, String),
}

impl CallError {
    pub(crate) fn into_error(
        self,
        server: &str,
        method: Method,
        process: &str,
        timeout: Duration,
    ) -> Error {
        let server = server.to_owned();
        match self {
            CallError::Connect(source) => Error::Connect { server, source },
            CallError::Io(source) => Error::Io {
                server,
                method,
                source,
            },
            CallError::Timeout => Error::Timeout {
                server,
                method,
                timeout,
            },
            CallError::Http(status, reason) => Error::Http {
                server,
                status,
                reason,
            },
            CallError::Malformed(what) => Error::Malformed {
                server,
                method,
                what,
            },
            CallError::Fault(code, message) => Error::Fault {
                server,
                method,
                process: process.to_owned(),
                code,
                name: fault::name(code)
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("code {code}")),
                message,
                detail: None,
            },
        }
    }
}
