//! A loopback HTTP server that records the head of every request it receives, for tests that
//! must show what did not reach the network: a forged `Host`, a header the host should have
//! refused, a request a denied call should never have made.
//!
//! Plain threads and blocking sockets: it serves while the test blocks on a child process.
//! `GET /redirect/HOST:PORT/REST` answers 302 to `http://HOST:PORT/REST`; anything else 200 "ok".
//! It listens on two ports ([`RecordingServer::addr`] and [`RecordingServer::other`]) that share
//! one record, so a redirect from one origin to the other is seen if it is followed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The most of one request head kept (a request with 40,000 headers is cut, not buffered).
const MAX_HEAD: usize = 1 << 20;

/// See the module docs. Its threads live as long as the test process.
pub struct RecordingServer {
    /// The first listener.
    pub addr: SocketAddr,
    /// The second listener (another origin, same record).
    pub other: SocketAddr,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl RecordingServer {
    /// Binds both listeners on 127.0.0.1 and serves them.
    pub fn start() -> RecordingServer {
        let seen = Arc::new(Mutex::new(Vec::new()));
        RecordingServer {
            addr: listen(seen.clone()),
            other: listen(seen.clone()),
            seen,
        }
    }

    /// Every request head received so far, in arrival order, as text.
    pub fn seen(&self) -> String {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&seen).into_owned()
    }
}

fn listen(seen: Arc<Mutex<Vec<u8>>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the recording server");
    let addr = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || serve(stream, &seen));
        }
    });
    addr
}

fn serve(mut stream: TcpStream, seen: &Mutex<Vec<u8>>) {
    // A client that connects and says nothing (a TCP probe) must not hold a thread forever.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while head.len() < MAX_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    {
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.extend_from_slice(&head);
        seen.extend_from_slice(b"\n--\n");
    }
    let text = String::from_utf8_lossy(&head);
    let path = text.split(' ').nth(1).unwrap_or("/");
    let response = match path.strip_prefix("/redirect/") {
        Some(rest) => {
            let (target, tail) = rest.split_once('/').unwrap_or((rest, ""));
            format!(
                "HTTP/1.1 302 Found\r\nLocation: http://{target}/{tail}\r\nContent-Length: 0\r\n\
                 Connection: close\r\n\r\n"
            )
        }
        None => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_owned(),
    };
    let _ = stream.write_all(response.as_bytes());
}
