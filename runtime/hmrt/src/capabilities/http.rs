//! `http`: outbound requests to the origins a task grants. Redirects are followed by hand so
//! every hop is checked against the grants; bodies are read up to a cap.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, Url};

use super::Capability;
use crate::sandbox::HostState;
use crate::sandbox::bindings::http::{Host, Request, Response};
use crate::sandbox::bindings::types::HostError;
use crate::sandbox::untrusted;

/// The one HTTP client: no proxy from the environment (a grant names where traffic goes), no
/// transparent decompression (the body cap applies to bytes on the wire), no automatic
/// redirects (each hop must pass the grants).
pub(super) fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .dns_resolver(std::sync::Arc::new(super::addr::VettingResolver))
        .user_agent(concat!("hmrt/", env!("CARGO_PKG_VERSION")))
        .build()
}

fn origin(url: &Url) -> String {
    match url.port_or_known_default() {
        Some(port) => format!(
            "{}://{}:{}",
            url.scheme(),
            url.host_str().unwrap_or(""),
            port
        ),
        None => format!("{}://{}", url.scheme(), url.host_str().unwrap_or("")),
    }
}

fn parse_url(raw: &str) -> Result<Url, HostError> {
    let shown = || untrusted::line(raw, untrusted::ASKED);
    let url =
        Url::parse(raw).map_err(|e| HostError::Invalid(format!("bad URL {}: {e}", shown())))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(HostError::Invalid(format!(
            "bad URL {}: only absolute http and https URLs are supported",
            shown()
        )));
    }
    Ok(url)
}

/// Headers a guest may set on one request.
const MAX_HEADERS: usize = 64;
/// Bytes of header names and values a guest may set on one request.
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Headers the host owns. `Host` would let one grant reach every virtual host behind the
/// granted socket; the framing and hop-by-hop ones would let a guest smuggle a second request
/// or change the connection under the next caller; `Proxy-*` is not a guest's business.
fn host_owned(name: &str) -> bool {
    const OWNED: &[&str] = &[
        "host",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "content-length",
        "transfer-encoding",
        "keep-alive",
        "expect",
        "http2-settings",
    ];
    let name = name.to_ascii_lowercase();
    OWNED.contains(&name.as_str()) || name.starts_with("proxy-")
}

/// The guest's headers, refused whole if any is host-owned, malformed, or past the caps: a
/// request is sent as the guest wrote it or not at all.
fn guest_headers(headers: &[(String, String)]) -> Result<reqwest::header::HeaderMap, HostError> {
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
    if headers.len() > MAX_HEADERS {
        return Err(HostError::Invalid(format!(
            "{} headers; at most {MAX_HEADERS} per request",
            headers.len()
        )));
    }
    let bytes: usize = headers.iter().map(|(n, v)| n.len() + v.len()).sum();
    if bytes > MAX_HEADER_BYTES {
        return Err(HostError::Invalid(format!(
            "{bytes} bytes of headers; at most {MAX_HEADER_BYTES} per request"
        )));
    }
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let shown = || untrusted::line(name, 64);
        if host_owned(name) {
            return Err(HostError::Invalid(format!(
                "header {} is set by hmrt, not by a plugin",
                shown()
            )));
        }
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| HostError::Invalid(format!("bad header name {}", shown())))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| HostError::Invalid(format!("bad value for header {name}")))?;
        map.append(name, value);
    }
    Ok(map)
}

impl Host for HostState {
    async fn send(&mut self, req: Request) -> Result<Response, HostError> {
        let call = &mut self.call;
        let mut url = parse_url(&req.url)?;
        if !call.grants.http.allows(&url) {
            return Err(call.deny(Capability::Http, format!("origin {}", origin(&url))));
        }
        let mut method = Method::from_bytes(req.method.as_bytes()).map_err(|_| {
            HostError::Invalid(format!(
                "bad HTTP method {}",
                untrusted::line(&req.method, 32)
            ))
        })?;
        let headers = guest_headers(&req.headers)?;
        let mut body = req.body;
        let timeout = call.timeout(req.timeout_ms).ok_or(HostError::Timeout)?;
        let limits = call.backends.limits;
        let client = call.backends.http.clone();
        let started = Instant::now();
        let exchange = async {
            let mut redirects = 0;
            loop {
                let mut builder = client
                    .request(method.clone(), url.clone())
                    .headers(headers.clone());
                if let Some(body) = &body {
                    builder = builder.body(body.clone());
                }
                let response = builder
                    .send()
                    .await
                    .map_err(|e| HostError::Failed(describe(&e)))?;
                let status = response.status();
                if status.is_redirection()
                    && let Some(location) = response.headers().get(reqwest::header::LOCATION)
                {
                    redirects += 1;
                    if redirects > limits.http_max_redirects {
                        return Err(HostError::Failed(format!(
                            "more than {} redirects",
                            limits.http_max_redirects
                        )));
                    }
                    let location = location.to_str().map_err(|_| {
                        HostError::Failed("redirect with a non-text Location".into())
                    })?;
                    let next = url.join(location).map_err(|e| {
                        HostError::Failed(format!("bad redirect {location:?}: {e}"))
                    })?;
                    if !matches!(next.scheme(), "http" | "https") {
                        return Err(HostError::Failed(format!(
                            "redirect to unsupported URL {next}"
                        )));
                    }
                    if !call.grants.http.allows(&next) {
                        return Err(call.deny(
                            Capability::Http,
                            format!(
                                "origin {} (a redirect from {})",
                                origin(&next),
                                origin(&url)
                            ),
                        ));
                    }
                    // As browsers do: 303, and 301/302 after a POST, continue as a GET.
                    if status == StatusCode::SEE_OTHER
                        || (method == Method::POST
                            && matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND))
                    {
                        method = Method::GET;
                        body = None;
                    }
                    url = next;
                    continue;
                }
                return read_response(response, limits.http_body_bytes, started).await;
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(HostError::Timeout),
        }
    }
}

async fn read_response(
    mut response: reqwest::Response,
    cap: usize,
    started: Instant,
) -> Result<Response, HostError> {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
        .collect();
    let mut body = Vec::new();
    let mut truncated = false;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| HostError::Failed(describe(&e)))?
    {
        let room = cap - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status,
        headers,
        body,
        truncated,
        elapsed_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
    })
}

/// reqwest's Display stops at the outermost error ("error sending request"); the cause chain
/// says what actually happened ("connection refused").
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, value: &str) -> (String, String) {
        (name.to_string(), value.to_string())
    }

    #[test]
    fn the_host_owns_host_framing_and_proxy_headers() {
        for name in [
            "Host",
            "host",
            "Connection",
            "Upgrade",
            "TE",
            "Content-Length",
            "Transfer-Encoding",
            "Proxy-Authorization",
            "proxy-connection",
            "Keep-Alive",
        ] {
            let refused = guest_headers(&[header(name, "x")]);
            assert!(
                matches!(&refused, Err(HostError::Invalid(m)) if m.contains("set by hmrt")),
                "{name}: {refused:?}"
            );
        }
        let ok = guest_headers(&[header("Accept", "text/plain"), header("X-Probe", "1")]).unwrap();
        assert_eq!(ok.len(), 2);
    }

    #[test]
    fn many_or_big_headers_are_refused_without_a_panic() {
        // 40,000 distinct names once made `HeaderMap::append` panic inside the host call.
        let many: Vec<_> = (0..40_000)
            .map(|i| header(&format!("x-{i}"), "v"))
            .collect();
        assert!(matches!(guest_headers(&many), Err(HostError::Invalid(_))));
        let big = vec![header("x-big", &"v".repeat(MAX_HEADER_BYTES))];
        assert!(matches!(guest_headers(&big), Err(HostError::Invalid(_))));
        let bad = vec![header("bad\nname", "v")];
        let refused = guest_headers(&bad);
        assert!(
            matches!(&refused, Err(HostError::Invalid(m)) if m.contains("bad\\nname")),
            "{refused:?}"
        );
    }
}
