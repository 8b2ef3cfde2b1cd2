//! `http`: outbound requests to the origins a task grants. Redirects are followed by hand so
//! every hop is checked against the grants; bodies are read up to a cap.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, Url};

use super::Capability;
use crate::sandbox::HostState;
use crate::sandbox::bindings::http::{Host, Request, Response};
use crate::sandbox::bindings::types::HostError;

/// The one HTTP client: no proxy from the environment (a grant names where traffic goes), no
/// transparent decompression (the body cap applies to bytes on the wire), no automatic
/// redirects (each hop must pass the grants).
pub(super) fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
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
    let url = Url::parse(raw).map_err(|e| HostError::Invalid(format!("bad URL {raw:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(HostError::Invalid(format!(
            "bad URL {raw:?}: only absolute http and https URLs are supported"
        )));
    }
    Ok(url)
}

impl Host for HostState {
    async fn send(&mut self, req: Request) -> Result<Response, HostError> {
        let call = &mut self.call;
        let mut url = parse_url(&req.url)?;
        if !call.grants.http.allows(&url) {
            return Err(call.deny(Capability::Http, format!("origin {}", origin(&url))));
        }
        let mut method = Method::from_bytes(req.method.as_bytes())
            .map_err(|_| HostError::Invalid(format!("bad HTTP method {:?}", req.method)))?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &req.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HostError::Invalid(format!("bad header name {name:?}")))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| HostError::Invalid(format!("bad value for header {name}")))?;
            headers.append(name, value);
        }
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
