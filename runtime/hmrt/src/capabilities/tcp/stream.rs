//! One exchange on the wire: dial a vetted address, optionally shake hands in TLS, send, and
//! read until the guest's marker, the byte cap, the server's close or the deadline.

use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::{Instant as Deadline, timeout_at};

use super::{READ_MAX, SEND_MAX, micros_since, tls};
use crate::sandbox::bindings::tcp::{Certificate, ExchangeRequest, ExchangeResponse};
use crate::sandbox::bindings::types::HostError;

/// Bytes read per `read` call at most (the buffer is no larger than what is still wanted).
const CHUNK: usize = 16 * 1024;

/// A checked exchange request: caps applied, the TLS name parsed.
#[derive(Debug)]
pub(super) struct Plan {
    host: String,
    port: u16,
    tls: Option<tls::Settings>,
    send: Vec<u8>,
    collect: Collector,
    pub(super) timeout_ms: u32,
}

impl Plan {
    /// Checks `req` against the caps; what no exchange could do is `invalid`.
    pub(super) fn from_request(req: ExchangeRequest) -> Result<Plan, HostError> {
        if req.send.len() > SEND_MAX {
            return Err(HostError::Invalid(format!(
                "send is {} bytes; at most {SEND_MAX} are sent",
                req.send.len()
            )));
        }
        let read_max = usize::try_from(req.read_max)
            .unwrap_or(READ_MAX)
            .min(READ_MAX);
        let until = req.until.filter(|u| !u.is_empty());
        if until.as_ref().is_some_and(|u| u.len() > READ_MAX) {
            return Err(HostError::Invalid(format!(
                "until is longer than the {READ_MAX} bytes an exchange reads"
            )));
        }
        let tls = match req.tls {
            None => None,
            Some(t) => Some(tls::Settings::new(&req.host, t.server_name, t.verify)?),
        };
        Ok(Plan {
            host: req.host,
            port: req.port,
            tls,
            send: req.send,
            collect: Collector::new(read_max, until),
            timeout_ms: req.timeout_ms,
        })
    }
}

/// Dials `host:port`, at the vetted addresses only: a second lookup could answer otherwise.
pub(super) async fn dial(host: &str, port: u16) -> Result<TcpStream, HostError> {
    let addrs = super::super::addr::resolve(host, port)
        .await
        .map_err(HostError::Failed)?;
    TcpStream::connect(addrs.as_slice())
        .await
        .map_err(|e| HostError::Failed(format!("connect to {host}:{port}: {e}")))
}

/// Runs `plan` by `deadline`. A timeout before the connection (and handshake) stands, or
/// before anything was read, is `timeout`; one later returns what came, marked `timed-out`.
pub(super) async fn run(plan: Plan, deadline: Deadline) -> Result<ExchangeResponse, HostError> {
    let started = Instant::now();
    let Plan {
        host,
        port,
        tls,
        send,
        mut collect,
        ..
    } = plan;
    let tcp = timeout_at(deadline, dial(&host, port))
        .await
        .map_err(|_| HostError::Timeout)??;
    let Some(settings) = tls else {
        let mut tcp = tcp;
        let read = talk(&mut tcp, &send, &mut collect, deadline, false).await?;
        return Ok(read.response(collect, micros_since(started), None));
    };
    let mut stream = timeout_at(deadline, tls::handshake(&settings, tcp))
        .await
        .map_err(|_| HostError::Timeout)?
        .map_err(|e| HostError::Failed(format!("TLS handshake with {host}:{port}: {e}")))?;
    let certificate = tls::leaf_certificate(stream.get_ref().1);
    // The handshake is an answer: a timeout after it still reports the certificate.
    let read = talk(&mut stream, &send, &mut collect, deadline, true).await?;
    let elapsed = micros_since(started);
    Ok(read.response(collect, elapsed, certificate))
}

/// How reading ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The marker came, or the cap was reached (or nothing was to be read).
    Enough,
    /// The server closed the connection (or broke it after sending something).
    Closed,
    /// The deadline came first.
    TimedOut,
}

impl Ended {
    fn response(
        self,
        collect: Collector,
        elapsed_us: u64,
        certificate: Option<Certificate>,
    ) -> ExchangeResponse {
        ExchangeResponse {
            received: collect.into_bytes(),
            closed: self == Ended::Closed,
            timed_out: self == Ended::TimedOut,
            elapsed_us,
            certificate,
        }
    }
}

/// Sends `send` and reads into `collect` by `deadline`. `answered`: whether the server has
/// already said something (a TLS handshake), so that a timeout without bytes is a response.
async fn talk<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    send: &[u8],
    collect: &mut Collector,
    deadline: Deadline,
    answered: bool,
) -> Result<Ended, HostError> {
    let timed_out = |collect: &Collector| {
        if answered || !collect.is_empty() {
            Ok(Ended::TimedOut)
        } else {
            Err(HostError::Timeout)
        }
    };
    if !send.is_empty() {
        let write = async {
            stream.write_all(send).await?;
            stream.flush().await
        };
        match timeout_at(deadline, write).await {
            Err(_) => return timed_out(collect),
            // What it said before hanging up may still be there to read.
            Ok(Err(e)) if hung_up(&e) => {}
            Ok(Err(e)) => return Err(HostError::Failed(format!("send: {e}"))),
            Ok(Ok(())) => {}
        }
    }
    let mut buf = vec![0u8; collect.room().min(CHUNK)];
    while !collect.done() {
        let want = collect.room().min(buf.len());
        let Some(space) = buf.get_mut(..want) else {
            break;
        };
        match timeout_at(deadline, stream.read(space)).await {
            Err(_) => return timed_out(collect),
            Ok(Ok(0)) => return Ok(Ended::Closed),
            Ok(Ok(n)) => collect.push(space.get(..n).unwrap_or_default()),
            // A reset or a TLS stream cut without close_notify is the server hanging up:
            // how it ends the answer, or its answer to what it did not understand.
            Ok(Err(e)) if hung_up(&e) || answered || !collect.is_empty() => {
                return Ok(Ended::Closed);
            }
            Ok(Err(e)) => return Err(HostError::Failed(format!("read: {e}"))),
        }
    }
    Ok(Ended::Enough)
}

/// Whether a read error means the server closed the connection.
fn hung_up(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | UnexpectedEof | BrokenPipe
    )
}

/// What has been read, and whether it is enough: `max` bytes, or `until` seen.
#[derive(Debug)]
pub(super) struct Collector {
    received: Vec<u8>,
    max: usize,
    until: Option<Vec<u8>>,
    found: bool,
}

impl Collector {
    /// Collects up to `max` bytes, stopping early once `until` (non-empty) appears.
    pub(super) fn new(max: usize, until: Option<Vec<u8>>) -> Collector {
        Collector {
            received: Vec::new(),
            max,
            until,
            found: false,
        }
    }

    /// Bytes still wanted.
    fn room(&self) -> usize {
        self.max.saturating_sub(self.received.len())
    }

    fn is_empty(&self) -> bool {
        self.received.is_empty()
    }

    /// Whether reading may stop.
    fn done(&self) -> bool {
        self.found || self.room() == 0
    }

    /// Adds `chunk` (cut to the room left) and looks for the marker where it could newly
    /// appear: in the chunk and the marker's length less one before it.
    fn push(&mut self, chunk: &[u8]) {
        let take = chunk.len().min(self.room());
        let before = self.received.len();
        self.received
            .extend_from_slice(chunk.get(..take).unwrap_or_default());
        if let Some(until) = &self.until {
            let from = before.saturating_sub(until.len().saturating_sub(1));
            let tail = self.received.get(from..).unwrap_or_default();
            self.found = self.found || tail.windows(until.len()).any(|w| w == until.as_slice());
        }
    }

    fn into_bytes(self) -> Vec<u8> {
        self.received
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::bindings::tcp::Tls;

    fn request() -> ExchangeRequest {
        ExchangeRequest {
            host: "127.0.0.1".into(),
            port: 6379,
            tls: None,
            send: b"PING\r\n".to_vec(),
            read_max: 100,
            until: Some(b"\r\n".to_vec()),
            timeout_ms: 1000,
        }
    }

    #[test]
    fn the_marker_is_found_across_chunks() {
        let mut c = Collector::new(100, Some(b"\r\n".to_vec()));
        c.push(b"+PONG\r");
        assert!(!c.done());
        c.push(b"\nrest");
        assert!(c.done());
        assert_eq!(c.into_bytes(), b"+PONG\r\nrest");
    }

    #[test]
    fn reading_stops_at_the_cap_and_keeps_no_more() {
        let mut c = Collector::new(4, None);
        c.push(b"abcdef");
        assert!(c.done());
        assert_eq!(c.room(), 0);
        assert_eq!(c.into_bytes(), b"abcd");
        let c = Collector::new(0, None);
        assert!(c.done(), "read_max 0 reads nothing");
    }

    #[test]
    fn a_marker_past_the_cap_is_not_found() {
        let mut c = Collector::new(3, Some(b"xyz".to_vec()));
        c.push(b"abxyz");
        assert!(!c.found);
        assert!(c.done(), "done by the cap");
    }

    #[test]
    fn caps_are_applied_and_bad_requests_are_invalid() {
        let mut req = request();
        req.read_max = u32::MAX;
        let plan = Plan::from_request(req).unwrap();
        assert_eq!(plan.collect.max, READ_MAX);
        let mut req = request();
        req.send = vec![0; SEND_MAX + 1];
        assert!(matches!(
            Plan::from_request(req),
            Err(HostError::Invalid(_))
        ));
        let mut req = request();
        req.until = Some(vec![]);
        assert!(Plan::from_request(req).unwrap().collect.until.is_none());
        let mut req = request();
        req.tls = Some(Tls {
            server_name: Some("not a name!".into()),
            verify: true,
        });
        assert!(matches!(
            Plan::from_request(req),
            Err(HostError::Invalid(_))
        ));
    }

    /// A server that answers and one that says nothing, on loopback.
    #[tokio::test]
    async fn reads_until_the_marker_and_times_out_on_silence() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for answer in [&b"+PONG\r\nmore"[..], b""] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 6];
                let _ = s.read_exact(&mut buf).await;
                let _ = s.write_all(answer).await;
                // Holds the connection open until the client is gone.
                let _ = s.read(&mut buf).await;
            }
        });
        let mut req = request();
        req.port = port;
        let soon = || Deadline::now() + std::time::Duration::from_millis(500);
        let got = run(Plan::from_request(req.clone()).unwrap(), soon())
            .await
            .unwrap();
        assert!(got.received.starts_with(b"+PONG\r\n"), "{got:?}");
        assert!(!got.timed_out && !got.closed);
        let silent = run(Plan::from_request(req).unwrap(), soon()).await;
        assert!(matches!(silent, Err(HostError::Timeout)), "{silent:?}");
    }
}
