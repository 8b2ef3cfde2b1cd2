//! A minimal HTTP/1.0 POST to `/RPC2`.
//!
//! HTTP/1.0 on purpose: supervisord (medusa) then closes the connection after the answer and
//! never uses chunked transfer coding (it only chunks HTTP/1.1 responses without a
//! Content-Length; XML-RPC answers always carry one). So the body is exactly Content-Length
//! bytes, or everything up to EOF when that header is absent.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::error::CallError;
use crate::url::ServerUrl;

/// Larger status line + headers than this is not supervisord.
const MAX_HEAD: usize = 16 * 1024;

/// Sends one XML-RPC request body and returns the response body of a `200` answer.
pub(crate) async fn post(
    url: &ServerUrl,
    authorization: Option<&str>,
    body: &str,
    max_body: usize,
) -> Result<Vec<u8>, CallError> {
    let request = build_request(url, authorization, body);
    match url {
        ServerUrl::Unix(path) => {
            let stream = UnixStream::connect(path)
                .await
                .map_err(CallError::Connect)?;
            exchange(stream, &request, max_body).await
        }
        ServerUrl::Http { host, port } => {
            let stream = TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(CallError::Connect)?;
            // Requests are small and written at once; no point waiting for Nagle.
            stream.set_nodelay(true).map_err(CallError::Connect)?;
            exchange(stream, &request, max_body).await
        }
    }
}

fn build_request(url: &ServerUrl, authorization: Option<&str>, body: &str) -> Vec<u8> {
    let mut head = format!(
        "POST /RPC2 HTTP/1.0\r\nHost: {}\r\nUser-Agent: hmrt-supervisor/{}\r\n\
         Content-Type: text/xml\r\nContent-Length: {}\r\n",
        url.host_header(),
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    if let Some(auth) = authorization {
        head.push_str("Authorization: ");
        head.push_str(auth);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body.as_bytes());
    request
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
    max_body: usize,
) -> Result<Vec<u8>, CallError> {
    stream.write_all(request).await.map_err(CallError::Io)?;
    stream.flush().await.map_err(CallError::Io)?;
    read_response(stream, max_body).await
}

/// Reads and checks one response; generic so it can be tested against in-memory streams.
pub(crate) async fn read_response<S: AsyncRead + Unpin>(
    mut stream: S,
    max_body: usize,
) -> Result<Vec<u8>, CallError> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 8192];

    // Head: up to the blank line.
    let head_end = loop {
        if let Some(pos) = find_head_end(&buf) {
            break pos;
        }
        if buf.len() > MAX_HEAD {
            return Err(CallError::Malformed(format!(
                "HTTP response head longer than {MAX_HEAD} bytes"
            )));
        }
        let n = stream.read(&mut chunk).await.map_err(CallError::Io)?;
        if n == 0 {
            return Err(CallError::Malformed(if buf.is_empty() {
                "connection closed without an answer".to_owned()
            } else {
                "connection closed inside the HTTP response head".to_owned()
            }));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = Head::parse(&buf[..head_end])?;
    if head.status != 200 {
        return Err(CallError::Http(head.status, head.reason));
    }
    if head.chunked {
        return Err(CallError::Malformed(
            "unexpected chunked transfer coding in an HTTP/1.0 exchange".to_owned(),
        ));
    }
    if let Some(len) = head.content_length
        && len > max_body
    {
        return Err(too_large(max_body));
    }

    let mut body = buf.split_off(head_end + 4);
    let wanted = head.content_length.unwrap_or(max_body + 1);
    while body.len() < wanted {
        let room = (wanted - body.len()).min(chunk.len());
        let n = stream
            .read(&mut chunk[..room])
            .await
            .map_err(CallError::Io)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    match head.content_length {
        Some(len) if body.len() < len => Err(CallError::Malformed(format!(
            "body truncated: got {} of {len} bytes",
            body.len()
        ))),
        // Anything after Content-Length bytes is not ours; ignore it.
        Some(len) => {
            body.truncate(len);
            Ok(body)
        }
        None if body.len() > max_body => Err(too_large(max_body)),
        None => Ok(body),
    }
}

fn too_large(max_body: usize) -> CallError {
    CallError::Malformed(format!("response body larger than {max_body} bytes"))
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

struct Head {
    status: u16,
    reason: String,
    content_length: Option<usize>,
    chunked: bool,
}

impl Head {
    fn parse(raw: &[u8]) -> Result<Head, CallError> {
        let text = std::str::from_utf8(raw)
            .map_err(|_| CallError::Malformed("HTTP response head is not UTF-8".to_owned()))?;
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let bad_status =
            || CallError::Malformed(format!("bad HTTP status line {:?}", truncate(status_line)));
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(bad_status());
        }
        let status = parts
            .next()
            .filter(|s| s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(bad_status)?;
        let reason = truncate(parts.next().unwrap_or_default().trim()).to_owned();

        let mut content_length = None;
        let mut chunked = false;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                return Err(CallError::Malformed(format!(
                    "bad HTTP header line {:?}",
                    truncate(line)
                )));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                let len = value
                    .parse::<usize>()
                    .ok()
                    .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        CallError::Malformed(format!("bad Content-Length {:?}", truncate(value)))
                    })?;
                if content_length.is_some_and(|prev| prev != len) {
                    return Err(CallError::Malformed(
                        "conflicting Content-Length headers".to_owned(),
                    ));
                }
                content_length = Some(len);
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                && !value.eq_ignore_ascii_case("identity")
            {
                chunked = true;
            }
        }
        Ok(Head {
            status,
            reason,
            content_length,
            chunked,
        })
    }
}

/// Keeps hostile junk out of error messages.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `Basic` credentials for the Authorization header.
pub(crate) fn basic_auth(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for group in input.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(raw: &[u8], max: usize) -> Result<Vec<u8>, CallError> {
        read_response(raw, max).await
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
        assert_eq!(basic_auth("user", "p:w"), "Basic dXNlcjpwOnc=");
    }

    #[test]
    fn request_is_http10_post_with_length_and_auth() {
        let url = ServerUrl::Http {
            host: "127.0.0.1".into(),
            port: 9001,
        };
        let req = build_request(&url, Some("Basic eA=="), "<x/>");
        let text = String::from_utf8(req).unwrap();
        assert!(text.starts_with("POST /RPC2 HTTP/1.0\r\nHost: 127.0.0.1:9001\r\n"));
        assert!(text.contains("\r\nContent-Length: 4\r\n"));
        assert!(text.contains("\r\nAuthorization: Basic eA==\r\n"));
        assert!(text.ends_with("\r\n\r\n<x/>"));
    }

    #[tokio::test]
    async fn reads_content_length_body_and_ignores_trailing_bytes() {
        let body = read(
            b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 5\r\n\r\nhelloEXTRA",
            100,
        )
        .await
        .unwrap();
        assert_eq!(body, b"hello");
    }

    #[tokio::test]
    async fn reads_to_eof_without_content_length() {
        let body = read(b"HTTP/1.0 200 OK\r\n\r\nall of it", 100)
            .await
            .unwrap();
        assert_eq!(body, b"all of it");
    }

    #[tokio::test]
    async fn enforces_the_size_cap() {
        let big = format!("HTTP/1.0 200 OK\r\n\r\n{}", "x".repeat(101));
        assert!(
            matches!(read(big.as_bytes(), 100).await, Err(CallError::Malformed(m)) if m.contains("larger than 100"))
        );
        let declared = b"HTTP/1.0 200 OK\r\nContent-Length: 101\r\n\r\n";
        assert!(
            matches!(read(declared, 100).await, Err(CallError::Malformed(m)) if m.contains("larger than 100"))
        );
        let exact = format!("HTTP/1.0 200 OK\r\n\r\n{}", "x".repeat(100));
        assert_eq!(read(exact.as_bytes(), 100).await.unwrap().len(), 100);
        let endless_head = format!("HTTP/1.0 200 OK\r\n{}", "X-A: b\r\n".repeat(10_000));
        assert!(
            matches!(read(endless_head.as_bytes(), 100).await, Err(CallError::Malformed(m)) if m.contains("head longer"))
        );
    }

    #[tokio::test]
    async fn reports_status_truncation_and_garbage() {
        assert!(matches!(
            read(b"HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\n\r\n", 100).await,
            Err(CallError::Http(401, r)) if r == "Unauthorized"
        ));
        assert!(matches!(
            read(b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nshort", 100).await,
            Err(CallError::Malformed(m)) if m.contains("truncated")
        ));
        assert!(
            matches!(read(b"", 100).await, Err(CallError::Malformed(m)) if m.contains("without an answer"))
        );
        assert!(
            matches!(read(b"SSH-2.0-OpenSSH\r\n\r\n", 100).await, Err(CallError::Malformed(m)) if m.contains("status line"))
        );
        assert!(matches!(
            read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 100).await,
            Err(CallError::Malformed(m)) if m.contains("chunked")
        ));
        assert!(matches!(
            read(b"HTTP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n", 100).await,
            Err(CallError::Malformed(m)) if m.contains("Content-Length")
        ));
    }
}
