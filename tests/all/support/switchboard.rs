//! A loopback HTTP server a test flips: `GET /health/{name}` answers 200 or 500 as the test set
//! `name`, and `POST /hook` records each notice a webhook receiver delivers (answering 200, or
//! 503 while the test has the receiver down). It runs on a runtime of its own, so tests that
//! drive a real `hmrt run` process stay plain blocking tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};

#[derive(Default)]
struct Shared {
    broken: Mutex<HashMap<String, bool>>,
    checked: Mutex<HashMap<String, u32>>,
    receiver_down: AtomicBool,
    hooks: Mutex<Vec<(Instant, serde_json::Value)>>,
    refused: Mutex<u32>,
}

/// The server.
pub struct Switchboard {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _runtime: tokio::runtime::Runtime,
}

impl Switchboard {
    pub fn start() -> Switchboard {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .route(
                "/health/{name}",
                get(
                    |State(s): State<Arc<Shared>>, Path(name): Path<String>| async move {
                        *s.checked.lock().unwrap().entry(name.clone()).or_default() += 1;
                        let broken = s
                            .broken
                            .lock()
                            .unwrap()
                            .get(&name)
                            .copied()
                            .unwrap_or(false);
                        if broken {
                            (StatusCode::INTERNAL_SERVER_ERROR, "broken")
                        } else {
                            (StatusCode::OK, "ok")
                        }
                    },
                ),
            )
            .route(
                "/hook",
                post(|State(s): State<Arc<Shared>>, body: String| async move {
                    if s.receiver_down.load(Ordering::SeqCst) {
                        *s.refused.lock().unwrap() += 1;
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let json =
                        serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
                    s.hooks.lock().unwrap().push((Instant::now(), json));
                    StatusCode::OK
                }),
            )
            .with_state(shared.clone());
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Switchboard {
            addr,
            shared,
            _runtime: runtime,
        }
    }

    /// The origin, for grants.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How often `/health/{name}` was asked: the checks hmrt made of `name`.
    pub fn checks(&self, name: &str) -> u32 {
        self.shared
            .checked
            .lock()
            .unwrap()
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Waits (up to `timeout`) until every one of `names` has been checked `more` times since
    /// this call: proof that hmrt went on judging, before a test asserts nothing more came.
    pub fn wait_checks(&self, names: &[&str], more: u32, timeout: Duration) {
        let from: Vec<u32> = names.iter().map(|n| self.checks(n)).collect();
        let deadline = Instant::now() + timeout;
        while names
            .iter()
            .zip(&from)
            .any(|(n, f)| self.checks(n) < f + more)
        {
            assert!(
                Instant::now() < deadline,
                "{names:?} were not checked {more} more times in {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Breaks (`true`) or repairs `/health/{name}`.
    pub fn broken(&self, name: &str, broken: bool) {
        self.shared
            .broken
            .lock()
            .unwrap()
            .insert(name.to_string(), broken);
    }

    /// Takes the receiver down (503) or up.
    pub fn receiver_down(&self, down: bool) {
        self.shared.receiver_down.store(down, Ordering::SeqCst);
    }

    /// How many deliveries were refused while down.
    pub fn refused(&self) -> u32 {
        *self.shared.refused.lock().unwrap()
    }

    /// The notices received so far (each webhook body's `notice`), with when.
    pub fn notices(&self) -> Vec<(Instant, serde_json::Value)> {
        self.shared
            .hooks
            .lock()
            .unwrap()
            .iter()
            .map(|(at, body)| (*at, body["notice"].clone()))
            .collect()
    }

    /// Every body received at `/hook`, as JSON (a body that is not JSON as a string).
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.shared
            .hooks
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| body.clone())
            .collect()
    }

    /// (task, kind) of each notice so far.
    pub fn kinds(&self) -> Vec<(String, String)> {
        self.notices()
            .iter()
            .map(|(_, n)| {
                (
                    n["task"].as_str().unwrap_or("").to_string(),
                    n["kind"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// Waits until `done` holds for the (task, kind) list; panics after `timeout`.
    pub fn wait(&self, what: &str, timeout: Duration, done: impl Fn(&[(String, String)]) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let kinds = self.kinds();
            if done(&kinds) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: got {kinds:?} after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `(task, kind)` pairs, for comparisons.
pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(t, k)| (t.to_string(), k.to_string()))
        .collect()
}
