//! The HTTP side of a call: one `POST /RPC2` with reqwest, over supervisord's unix socket or
//! TCP, with basic auth, and a cap on the answer that is enforced while it is read.
//!
//! The reqwest client is set up for exactly this: no proxy from the environment (a
//! `HTTP_PROXY` meant for the outside world must not see supervisord's credentials), no
//! redirects, no decompression (whatever compression features other crates in the build turn
//! on), no retries (startProcess is not idempotent), HTTP/1.1 only (supervisord speaks
//! nothing else) and no idle connections kept: every call gets its own connection, as
//! supervisorctl does, so a restarted supervisord never meets a stale one.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use hmrt_domain::ServerUrl;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;

use crate::error::{CallError, Error};

/// How one [`Client`](crate::Client) reaches supervisord. Cheap to clone (reqwest's client is
/// reference-counted).
#[derive(Clone)]
pub(crate) struct Transport {
    http: reqwest::Client,
    /// `http://<host:port>/RPC2`; over a unix socket the host is `localhost`, which supervisord
    /// ignores, as supervisorctl sends it.
    endpoint: reqwest::Url,
    credentials: Option<(String, String)>,
}

impl Transport {
    /// Sets up the HTTP client for `url`; nothing is contacted. `timeout` bounds connecting
    /// and the whole exchange.
    pub(crate) fn new(
        url: &ServerUrl,
        credentials: Option<(String, String)>,
        timeout: Duration,
    ) -> Result<Transport, Error> {
        let endpoint_text = format!("http://{}/RPC2", url.host_header());
        let endpoint = reqwest::Url::parse(&endpoint_text).map_err(|_| Error::InvalidUrl {
            url: url.to_string(),
            reason: "the host is not a host name or IP address an HTTP client can reach",
        })?;
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .no_gzip()
            .no_brotli()
            .no_zstd()
            .no_deflate()
            .referer(false)
            .http1_only()
            .pool_max_idle_per_host(0)
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(concat!("hmrt-supervisor/", env!("CARGO_PKG_VERSION")));
        if let ServerUrl::Unix(path) = url {
            builder = builder.unix_socket(path.clone());
        }
        let http = builder
            .build()
            .map_err(|e| Error::ClientSetup(error_chain(&e)))?;
        Ok(Transport {
            http,
            endpoint,
            credentials,
        })
    }

    /// Sends one XML-RPC request body and returns the body of a `200` answer, refusing (while
    /// reading, not after) a body larger than `max_body` bytes.
    pub(crate) async fn post(&self, body: String, max_body: usize) -> Result<Vec<u8>, CallError> {
        let mut request = self
            .http
            .post(self.endpoint.clone())
            .header(CONTENT_TYPE, "text/xml")
            .body(body);
        if let Some((user, password)) = &self.credentials {
            request = request.basic_auth(user, Some(password));
        }
        let mut response = request.send().await.map_err(classify)?;
        let status = response.status();
        if status != StatusCode::OK {
            let reason = status.canonical_reason().unwrap_or("(unknown status)");
            return Err(CallError::Http(status.as_u16(), reason.to_owned()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > max_body as u64)
        {
            return Err(too_large(max_body));
        }
        let mut out = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if chunk.len() > max_body - out.len() {
                return Err(too_large(max_body));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

fn too_large(max_body: usize) -> CallError {
    CallError::Malformed(format!("response body larger than {max_body} bytes"))
}

/// Sorts a reqwest error into what the operator needs to know: could not connect, no answer
/// in time, the connection broke, or what came back is not HTTP.
fn classify(err: reqwest::Error) -> CallError {
    if err.is_timeout() {
        return CallError::Timeout;
    }
    let io = find::<io::Error>(&err).map(copy_io);
    if err.is_connect() {
        return CallError::Connect(io.unwrap_or_else(|| io::Error::other(error_chain(&err))));
    }
    let hyper = find::<hyper::Error>(&err);
    // Closed before the head (hyper: incomplete message) or inside the body (hyper: an
    // UnexpectedEof I/O error): one message for both.
    if hyper.is_some_and(hyper::Error::is_incomplete_message)
        || io
            .as_ref()
            .is_some_and(|e| e.kind() == io::ErrorKind::UnexpectedEof)
    {
        return CallError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection closed before the answer was complete",
        ));
    }
    if let Some(hyper) = hyper
        && (hyper.is_parse() || hyper.is_parse_status())
    {
        return CallError::Malformed(format!("not an HTTP answer: {hyper}"));
    }
    CallError::Io(io.unwrap_or_else(|| io::Error::other(error_chain(&err))))
}

/// The first error of type `E` in `err`'s source chain.
fn find<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// An owned copy of an I/O error: the OS error itself where there is one, so it reads as
/// `No such file or directory (os error 2)`.
fn copy_io(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// The causes of `err`, innermost last, without reqwest's "error sending request for url"
/// preamble when there is something more specific.
fn error_chain(err: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut next = err.source();
    while let Some(e) = next {
        parts.push(e.to_string());
        next = e.source();
    }
    if parts.is_empty() {
        parts.push(err.to_string());
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> reqwest::Url {
        let url: ServerUrl = url.parse().unwrap();
        Transport::new(&url, None, Duration::from_secs(1))
            .unwrap()
            .endpoint
    }

    #[test]
    fn the_endpoint_is_rpc2_on_the_address_given() {
        let e = endpoint("unix:///tmp/supervisor.sock");
        assert_eq!(e.as_str(), "http://localhost/RPC2");

        let e = endpoint("http://127.0.0.1:9001");
        assert_eq!(e.as_str(), "http://127.0.0.1:9001/RPC2");

        // No port: 80, as supervisorctl takes it.
        let e = endpoint("http://127.0.0.2");
        assert_eq!(
            (e.host_str(), e.port_or_known_default(), e.path()),
            (Some("127.0.0.2"), Some(80), "/RPC2")
        );

        let e = endpoint("http://[::1]:9001/");
        assert_eq!(e.as_str(), "http://[::1]:9001/RPC2");
    }
}
