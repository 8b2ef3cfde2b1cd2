//! A minimal blocking HTTP/1.1 client over `std::net::TcpStream`, for tests that talk to
//! hmrt's API, its `/metrics`, Prometheus, or a test service on loopback.
//!
//! Why not a crate: the tests need one request per connection and nothing else, and a
//! client of our own has no async runtime to share with the server under test and no
//! connection pool that could hide a server that forgets to close or to finish a response.
//!
//! Each request opens a connection, sends `Connection: close`, and reads one response, whose
//! body is framed by `Transfer-Encoding: chunked` (what hyper/axum send for streamed bodies),
//! else by `Content-Length`, else by the server closing the connection. Interim `1xx`
//! responses are skipped. The whole exchange, connecting included, has one deadline
//! ([`TIMEOUT`] unless [`request_timeout`] says otherwise), so a server that hangs or trickles
//! fails the test instead of hanging it.

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The deadline for one whole exchange made by [`get`] and [`request`].
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Bodies and header sections larger than this are refused: in a test they mean a bug
/// (a runaway stream), and a limit keeps it from eating the machine's memory.
const MAX_BODY: usize = 64 * 1024 * 1024;
const MAX_HEADER_LINE: usize = 64 * 1024;

/// One HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The header fields in the order received (names as sent; compare them with
    /// [`Response::header`], which ignores case).
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (invalid UTF-8 replaced, so a test's assertion message still shows
    /// what came back).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header with this name, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body)
            .map_err(|e| format!("body is not JSON ({e}): {}", self.text()))
    }
}

/// `GET path` with no extra headers.
pub fn get(addr: SocketAddr, path: &str) -> Result<Response, String> {
    request(addr, "GET", path, &[], &[])
}

/// One request with the default deadline ([`TIMEOUT`]). `Host`, `Connection: close` and (for
/// a body, or a method that usually has one) `Content-Length` are added unless `headers`
/// has them.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, String> {
    request_timeout(addr, method, path, headers, body, TIMEOUT)
}

/// [`request`] with its own deadline for the whole exchange.
pub fn request_timeout(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Response, String> {
    let what = format!("{method} http://{addr}{path}");
    exchange(addr, method, path, headers, body, timeout).map_err(|e| format!("{what}: {e}"))
}

fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Response, String> {
    let deadline = Instant::now() + timeout;
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    // Small requests: send them at once rather than wait for an ACK (Nagle).
    stream.set_nodelay(true).map_err(|e| e.to_string())?;

    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !has("host") {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    if !has("connection") {
        head.push_str("Connection: close\r\n");
    }
    let usually_has_body = matches!(method, "POST" | "PUT" | "PATCH");
    if (usually_has_body || !body.is_empty()) && !has("content-length") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");

    let mut writer = &stream;
    set_deadline(&stream, deadline, Direction::Write)?;
    writer
        .write_all(head.as_bytes())
        .and_then(|()| writer.write_all(body))
        .and_then(|()| writer.flush())
        .map_err(|e| format!("send: {e}"))?;

    let mut reader = BufReader::new(DeadlineReader {
        stream: &stream,
        deadline,
    });
    loop {
        let (status, headers) = read_head(&mut reader)?;
        // 1xx responses (100 Continue, 103 Early Hints) precede the real one and have no body.
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let body = if method == "HEAD" || status == 204 || status == 304 || status == 101 {
            Vec::new()
        } else {
            read_body(&mut reader, &headers)?
        };
        return Ok(Response {
            status,
            headers,
            body,
        });
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Read,
    Write,
}

/// Sets the socket's timeout to what is left until `deadline` (an error once it passed:
/// a zero timeout would mean "block forever" to std).
fn set_deadline(stream: &TcpStream, deadline: Instant, dir: Direction) -> Result<(), String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err("timed out".into());
    }
    match dir {
        Direction::Read => stream.set_read_timeout(Some(left)),
        Direction::Write => stream.set_write_timeout(Some(left)),
    }
    .map_err(|e| e.to_string())
}

/// Reads from the stream with each read's timeout cut to what is left of the deadline, so
/// the deadline holds for the whole response and not per read.
struct DeadlineReader<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        set_deadline(self.stream, self.deadline, Direction::Read)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::TimedOut, e))?;
        let mut stream = self.stream;
        stream.read(buf)
    }
}

/// One CRLF- (or LF-) terminated line without its terminator; `None` at a clean EOF.
fn read_line(reader: &mut impl std::io::BufRead) -> Result<Option<String>, String> {
    let mut line = Vec::new();
    let n = Read::take(&mut *reader, MAX_HEADER_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("receive: {e}"))?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(if n > MAX_HEADER_LINE {
            "header line too long".into()
        } else {
            "connection closed in the middle of a line".into()
        });
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| "a header line is not UTF-8".into())
}

type Head = (u16, Vec<(String, String)>);

fn read_head(reader: &mut impl std::io::BufRead) -> Result<Head, String> {
    let status_line = read_line(reader)?.ok_or("connection closed before a response")?;
    // "HTTP/1.1 200 OK"; the reason phrase may be empty or missing.
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x status line: {status_line:?}"));
    }
    let status = code
        .parse::<u16>()
        .map_err(|_| format!("bad status line: {status_line:?}"))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or("connection closed in the header section")?;
        if line.is_empty() {
            return Ok((status, headers));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line: {line:?}"))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
}

fn read_body(
    reader: &mut impl std::io::BufRead,
    headers: &[(String, String)],
) -> Result<Vec<u8>, String> {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    // Chunked wins over Content-Length (RFC 9112 §6.3).
    if let Some(te) = get("transfer-encoding") {
        let last = te.rsplit(',').next().unwrap_or_default().trim();
        if last.eq_ignore_ascii_case("chunked") {
            return read_chunked(reader);
        }
    }
    if let Some(len) = get("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad Content-Length: {len:?}"))?;
        if len > MAX_BODY {
            return Err(format!("Content-Length {len} is over the limit"));
        }
        let mut body = vec![0; len];
        reader
            .read_exact(&mut body)
            .map_err(|e| format!("body shorter than its Content-Length {len}: {e}"))?;
        return Ok(body);
    }
    // Neither: the body ends when the server closes the connection.
    let mut body = Vec::new();
    Read::take(&mut *reader, MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("receive body: {e}"))?;
    if body.len() > MAX_BODY {
        return Err("body is over the limit".into());
    }
    Ok(body)
}

fn read_chunked(reader: &mut impl std::io::BufRead) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or("connection closed before the last chunk")?;
        // "1a;name=value": the size in hex, then optional extensions, which we ignore.
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| format!("bad chunk size line: {line:?}"))?;
        if size == 0 {
            break;
        }
        if body.len() + size > MAX_BODY {
            return Err("chunked body is over the limit".into());
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader
            .read_exact(&mut body[start..])
            .map_err(|e| format!("chunk shorter than its size {size}: {e}"))?;
        let end = read_line(reader)?;
        if end.as_deref() != Some("") {
            return Err(format!("chunk of size {size} not followed by CRLF"));
        }
    }
    // Trailer fields, up to the empty line. We drop them; nothing here sends any we need.
    while let Some(line) = read_line(reader)? {
        if line.is_empty() {
            break;
        }
    }
    Ok(body)
}

/// A one-thread HTTP server for this crate's own tests: answers every connection with the
/// bytes a closure returns for the request it read, then closes.
#[cfg(test)]
pub(crate) mod test_server {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::net::{SocketAddr, TcpListener};
    use std::sync::mpsc;

    /// A request as the server saw it: the request line, the header lines, the body.
    pub(crate) struct Seen {
        pub(crate) request_line: String,
        pub(crate) headers: Vec<String>,
        pub(crate) body: Vec<u8>,
    }

    /// Starts the server; the receiver gets each request it read. The thread lives as long
    /// as the test binary (blocked in accept), which costs nothing.
    pub(crate) fn start(
        respond: impl Fn(&Seen) -> Vec<u8> + Send + 'static,
    ) -> (SocketAddr, mpsc::Receiver<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let Some(seen) = read_request(&mut conn) else {
                    continue;
                };
                let reply = respond(&seen);
                let _ = conn.write_all(&reply);
                let _ = tx.send(seen);
                // Dropping `conn` closes it, which ends a body framed by the close.
            }
        });
        (addr, rx)
    }

    fn read_request(conn: &mut std::net::TcpStream) -> Option<Seen> {
        let mut reader = BufReader::new(conn.try_clone().ok()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).ok()?;
        let mut headers = Vec::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let line = line.trim_end().to_string();
            if line.is_empty() {
                break;
            }
            if let Some((n, v)) = line.split_once(':')
                && n.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().ok()?;
            }
            headers.push(line);
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()?;
        Some(Seen {
            request_line: request_line.trim_end().to_string(),
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::test_server::start;
    use super::*;

    fn fixed(reply: &'static str) -> SocketAddr {
        start(move |_| reply.as_bytes().to_vec()).0
    }

    #[test]
    fn content_length_body_and_the_request_it_sent() {
        let (addr, seen) = start(|_| {
            b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
                .to_vec()
        });
        let resp = request(
            addr,
            "POST",
            "/v1/tasks/web/pause?x=1",
            &[("Authorization", "Bearer t")],
            b"{\"a\":1}",
        )
        .unwrap();
        assert_eq!(resp.status, 201);
        assert_eq!(resp.text(), "hello");
        assert_eq!(resp.header("content-type"), Some("text/plain"));
        assert_eq!(resp.header("X-Missing"), None);

        let req = seen.recv().unwrap();
        assert_eq!(req.request_line, "POST /v1/tasks/web/pause?x=1 HTTP/1.1");
        assert!(req.headers.contains(&"Connection: close".to_string()));
        assert!(req.headers.contains(&format!("Host: {addr}")));
        assert!(req.headers.contains(&"Authorization: Bearer t".to_string()));
        assert!(req.headers.contains(&"Content-Length: 7".to_string()));
        assert_eq!(req.body, b"{\"a\":1}");
    }

    #[test]
    fn get_sends_no_content_length() {
        let (addr, seen) = start(|_| b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec());
        let resp = get(addr, "/metrics").unwrap();
        assert_eq!((resp.status, resp.body.len()), (200, 0));
        let req = seen.recv().unwrap();
        assert_eq!(req.request_line, "GET /metrics HTTP/1.1");
        assert!(!req.headers.iter().any(|h| h.starts_with("Content-Length")));
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let addr = fixed(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\ncontent-type: application/json\r\n\r\n\
             4\r\n{\"a\"\r\n\
             a;ext=1\r\n:[1,2,3]}\n\r\n\
             0\r\nX-Trailer: yes\r\n\r\n",
        );
        let resp = get(addr, "/").unwrap();
        assert_eq!(resp.text(), "{\"a\":[1,2,3]}\n");
        assert_eq!(resp.json().unwrap()["a"][2], 3);
    }

    #[test]
    fn body_framed_by_close() {
        let addr = fixed("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it");
        assert_eq!(get(addr, "/").unwrap().text(), "all of it");
    }

    #[test]
    fn interim_100_continue_is_skipped_and_head_has_no_body() {
        let addr = fixed(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!",
        );
        let resp = get(addr, "/x").unwrap();
        assert_eq!((resp.status, resp.text().as_str()), (404, "no!"));

        // HEAD: Content-Length describes the GET body; none follows.
        let addr = fixed("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
        let resp = request(addr, "HEAD", "/", &[], &[]).unwrap();
        assert_eq!((resp.status, resp.body.len()), (200, 0));
        assert_eq!(resp.header("content-length"), Some("100"));
    }

    #[test]
    fn truncated_and_malformed_responses_are_errors() {
        let addr = fixed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort");
        let err = get(addr, "/").unwrap_err();
        assert!(err.contains("shorter than its Content-Length"), "{err}");

        let addr = fixed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
        let err = get(addr, "/").unwrap_err();
        assert!(err.contains("chunk shorter"), "{err}");

        let addr = fixed("SSH-2.0-OpenSSH\r\n");
        let err = get(addr, "/").unwrap_err();
        assert!(err.contains("not an HTTP/1.x status line"), "{err}");

        let addr = fixed("");
        let err = get(addr, "/").unwrap_err();
        assert!(err.contains("closed before a response"), "{err}");
    }

    #[test]
    fn a_server_that_never_answers_times_out() {
        // Accepts (the kernel does, via the backlog) but never reads or writes.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let started = Instant::now();
        let err =
            request_timeout(addr, "GET", "/", &[], &[], Duration::from_millis(300)).unwrap_err();
        let took = started.elapsed();
        assert!(err.starts_with(&format!("GET http://{addr}/: ")), "{err}");
        assert!(took < Duration::from_secs(5), "took {took:?}: {err}");
        drop(listener);
    }

    #[test]
    fn connection_refused_is_an_error() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let err = get(addr, "/").unwrap_err();
        assert!(err.contains("connect"), "{err}");
    }
}
