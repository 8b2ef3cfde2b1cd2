//! supervisord's address, as supervisorctl's `-s` (and `[supervisorctl] serverurl`) takes it:
//! `unix:///abs/path.sock` or `http://host[:port]`. Parsed once, by the config; the client
//! connects to what it holds.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where supervisord listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerUrl {
    /// `unix:///abs/path.sock`: supervisord's `[unix_http_server]`.
    Unix(PathBuf),
    /// `http://host[:port]`: supervisord's `[inet_http_server]`. `host` is without IPv6
    /// brackets. A missing port is 80, as supervisorctl takes it.
    Http {
        /// The host name or address.
        host: String,
        /// The port.
        port: u16,
    },
}

/// Why a text is not a supervisord address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrlError {
    /// The text given.
    pub url: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for ServerUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid supervisord serverurl {:?}: {} (write unix:///path/to/supervisor.sock or http://host:port)",
            self.url, self.reason
        )
    }
}

impl std::error::Error for ServerUrlError {}

impl ServerUrl {
    /// The port supervisorctl uses when an `http://` URL names none.
    pub const DEFAULT_HTTP_PORT: u16 = 80;

    /// Reads `url`.
    pub fn parse(url: &str) -> Result<ServerUrl, ServerUrlError> {
        let invalid = |reason| ServerUrlError {
            url: url.to_owned(),
            reason,
        };
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid("it contains whitespace or control characters"));
        }
        if let Some(path) = url.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(invalid("the socket path must be absolute (unix:///path)"));
            }
            if path.len() < 2 || path.ends_with('/') {
                return Err(invalid("the socket path must name a file"));
            }
            return Ok(ServerUrl::Unix(PathBuf::from(path)));
        }
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(invalid("the scheme must be unix:// or http://"));
        };
        // "http://127.0.0.1:9001" or with a trailing slash; anything else after the authority
        // would be silently ignored, so it is refused.
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(invalid("it must not have a path, query or fragment"));
        }
        if authority.contains('@') {
            return Err(invalid(
                "credentials in the URL are not supported; set username and password instead",
            ));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let Some((host, after)) = bracketed.split_once(']') else {
                return Err(invalid("unterminated [IPv6] host"));
            };
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(invalid("only :port may follow an [IPv6] host")),
                },
            }
        } else {
            match authority.split_once(':') {
                None => (authority, None),
                Some((_, port)) if port.contains(':') => {
                    return Err(invalid(
                        "IPv6 hosts must be in brackets (http://[::1]:port)",
                    ));
                }
                Some((host, port)) => (host, Some(port)),
            }
        };
        if host.is_empty() {
            return Err(invalid("the host is empty"));
        }
        let port = match port {
            None => Self::DEFAULT_HTTP_PORT,
            Some(port) => match port.parse::<u16>() {
                Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
                _ => return Err(invalid("the port must be a number from 1 to 65535")),
            },
        };
        Ok(ServerUrl::Http {
            host: host.to_owned(),
            port,
        })
    }

    /// The value for the HTTP `Host` header.
    pub fn host_header(&self) -> String {
        match self {
            // supervisord ignores Host; "localhost" is what its own client sends over unix.
            ServerUrl::Unix(_) => "localhost".to_owned(),
            ServerUrl::Http { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            ServerUrl::Http { host, port } => format!("{host}:{port}"),
        }
    }
}

impl FromStr for ServerUrl {
    type Err = ServerUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServerUrl::parse(s)
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerUrl::Unix(path) => write!(f, "unix://{}", path.display()),
            ServerUrl::Http { .. } => write!(f, "http://{}", self.host_header()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(host: &str, port: u16) -> ServerUrl {
        ServerUrl::Http {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn accepts_what_supervisorctl_accepts() {
        assert_eq!(
            ServerUrl::parse("unix:///tmp/supervisor.sock"),
            Ok(ServerUrl::Unix("/tmp/supervisor.sock".into()))
        );
        assert_eq!(
            ServerUrl::parse("http://127.0.0.1:9001"),
            Ok(http("127.0.0.1", 9001))
        );
        assert_eq!(
            ServerUrl::parse("http://localhost:9001/"),
            Ok(http("localhost", 9001))
        );
        // supervisorctl connects to port 80 when none is given.
        assert_eq!(
            ServerUrl::parse("http://127.0.0.1"),
            Ok(http("127.0.0.1", 80))
        );
        assert_eq!(
            ServerUrl::parse("http://127.0.0.2/"),
            Ok(http("127.0.0.2", 80))
        );
        assert_eq!(ServerUrl::parse("http://[::1]"), Ok(http("::1", 80)));
        let v6 = ServerUrl::parse("http://[::1]:9001").unwrap();
        assert_eq!(v6, http("::1", 9001));
        assert_eq!(v6.host_header(), "[::1]:9001");
        assert_eq!(v6.to_string(), "http://[::1]:9001");
    }

    #[test]
    fn refuses_everything_else_with_a_reason() {
        for bad in [
            "",
            "/tmp/supervisor.sock",
            "unix://tmp/supervisor.sock",
            "unix://",
            "unix:///",
            "unix:///tmp/dir/",
            "https://127.0.0.1:9001",
            "tcp://h:1",
            "http://127.0.0.1:",
            "http://127.0.0.1:0",
            "http://127.0.0.1:65536",
            "http://127.0.0.1:+80",
            "http://:9001",
            "http://",
            "http://::1:9001",
            "http://[::1]x",
            "http://127.0.0.1:9001/RPC2",
            "http://user:pw@127.0.0.1:9001",
            "http://127.0.0.1:9001?x",
            "unix:///tmp/a b.sock",
        ] {
            let err = ServerUrl::parse(bad).expect_err(bad);
            let msg = err.to_string();
            assert!(msg.contains("invalid supervisord serverurl"), "{msg}");
            assert!(msg.contains(&format!("{bad:?}")), "{msg}");
        }
    }
}
