//! `serverurl` parsing: the two forms supervisorctl's `-s` accepts that make sense here.

use std::path::PathBuf;

use crate::Error;

/// Where supervisord listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServerUrl {
    /// `unix:///abs/path.sock`
    Unix(PathBuf),
    /// `http://host:port`; `host` is without IPv6 brackets.
    Http { host: String, port: u16 },
}

impl ServerUrl {
    pub(crate) fn parse(url: &str) -> Result<ServerUrl, Error> {
        let invalid = |reason| Error::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid("contains whitespace or control characters"));
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
        if let Some(rest) = url.strip_prefix("http://") {
            // supervisorctl users write "http://127.0.0.1:9001" or with a trailing slash;
            // anything else after the authority would be silently ignored, so refuse it.
            let authority = rest.strip_suffix('/').unwrap_or(rest);
            if authority.contains(['/', '?', '#']) {
                return Err(invalid("must not have a path, query or fragment"));
            }
            if authority.contains('@') {
                return Err(invalid(
                    "credentials in the URL are not supported; give username/password separately",
                ));
            }
            let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
                let Some((host, after)) = bracketed.split_once(']') else {
                    return Err(invalid("unterminated [IPv6] host"));
                };
                let Some(port) = after.strip_prefix(':') else {
                    return Err(invalid("a port is required (http://host:port)"));
                };
                (host, port)
            } else {
                let Some((host, port)) = authority.rsplit_once(':') else {
                    return Err(invalid("a port is required (http://host:port)"));
                };
                if host.contains(':') {
                    return Err(invalid(
                        "IPv6 hosts must be in brackets (http://[::1]:port)",
                    ));
                }
                (host, port)
            };
            if host.is_empty() {
                return Err(invalid("the host is empty"));
            }
            let port = match port.parse::<u16>() {
                Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
                _ => return Err(invalid("the port must be a number from 1 to 65535")),
            };
            return Ok(ServerUrl::Http {
                host: host.to_owned(),
                port,
            });
        }
        Err(invalid("unsupported scheme"))
    }

    /// The value for the HTTP `Host` header.
    pub(crate) fn host_header(&self) -> String {
        match self {
            // supervisord ignores Host; "localhost" is what its own client sends over unix.
            ServerUrl::Unix(_) => "localhost".to_owned(),
            ServerUrl::Http { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            ServerUrl::Http { host, port } => format!("{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_unix_and_http_forms() {
        assert_eq!(
            ServerUrl::parse("unix:///tmp/supervisor.sock").unwrap(),
            ServerUrl::Unix("/tmp/supervisor.sock".into())
        );
        assert_eq!(
            ServerUrl::parse("http://127.0.0.1:9001").unwrap(),
            ServerUrl::Http {
                host: "127.0.0.1".into(),
                port: 9001
            }
        );
        assert_eq!(
            ServerUrl::parse("http://localhost:9001/").unwrap(),
            ServerUrl::Http {
                host: "localhost".into(),
                port: 9001
            }
        );
        let v6 = ServerUrl::parse("http://[::1]:9001").unwrap();
        assert_eq!(
            v6,
            ServerUrl::Http {
                host: "::1".into(),
                port: 9001
            }
        );
        assert_eq!(v6.host_header(), "[::1]:9001");
    }

    #[test]
    fn rejects_everything_else_with_a_reason() {
        for bad in [
            "",
            "/tmp/supervisor.sock",
            "unix://tmp/supervisor.sock",
            "unix://",
            "unix:///",
            "unix:///tmp/dir/",
            "https://127.0.0.1:9001",
            "http://127.0.0.1",
            "http://127.0.0.1:",
            "http://127.0.0.1:0",
            "http://127.0.0.1:65536",
            "http://127.0.0.1:+80",
            "http://:9001",
            "http://::1:9001",
            "http://[::1]",
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
