//! The HTTP surface on `[runtime] listen`: health and probes, the tasks' view and history,
//! Prometheus metrics, the status page, control (restart, re-arm, pause, resume) and heartbeat
//! pings. It reads what the event stream's subscribers keep (the [`Board`], the [`Metrics`])
//! and sends changes to the daemon as commands ([`Control`]); it never calls the scheduler or
//! the policy.
//!
//! Every route is declared once, in [`routes::ROUTES`]: the router is built from that table and
//! so is `GET /openapi.json`, so the two cannot disagree.

mod auth;
mod control;
mod openapi;
mod read;
pub mod routes;
mod silences;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

pub use auth::{Token, TokenError, Tokens};

use crate::clock::Clock;
use crate::daemon::{Control, Liveness};
use crate::events::{Board, Metrics};

/// The largest request body accepted; larger ones get 413.
pub const MAX_BODY: usize = 16 * 1024;

/// What the handlers share.
pub struct ApiState {
    /// The tasks as the events left them.
    pub board: Arc<Board>,
    /// The Prometheus registry.
    pub metrics: Arc<Metrics>,
    /// Sends commands to the tasks.
    pub control: Control,
    /// The task loops' progress bounds.
    pub liveness: Arc<Liveness>,
    /// The tokens of the mutating routes and the pings.
    pub tokens: Tokens,
    /// The daemon's clock.
    pub clock: Arc<dyn Clock>,
    /// The event stream, for what the API itself changes (silences).
    pub events: crate::events::Events,
    /// The alert output, when the config has routes (silences live there).
    pub alerts: Option<Arc<crate::alerts::Alerts>>,
}

/// The router over `state`.
pub fn router(state: Arc<ApiState>) -> Router {
    let mut router = Router::new();
    for route in routes::ROUTES {
        router = router.route(route.path, (route.mount)(route.method.filter()));
    }
    router
        .fallback(no_such_route)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Serves the API on a thread of its own, with a one-thread runtime, until `shutdown` turns
/// true: a flood of requests can take that thread, never the workers that run the checks.
pub fn spawn(
    listener: std::net::TcpListener,
    state: Arc<ApiState>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<std::io::Result<()>>> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("hmrt-api".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener)?;
                serve(listener, state, async move {
                    let _ = shutdown.wait_for(|stop| *stop).await;
                })
                .await
            })
        })
}

/// The most connections served at once; more are closed as they come, so idle or slow
/// clients cannot take every file descriptor.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a client may take to send a request's head; a slower one is disconnected.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long requests in flight get to finish when hmrt stops.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Serves the API on `listener` until `shutdown` resolves: HTTP/1.1, at most
/// [`MAX_CONNECTIONS`] at once, each request's head within [`HEADER_READ_TIMEOUT`].
pub async fn serve(
    listener: TcpListener,
    state: Arc<ApiState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of descriptors or a connection reset before accept: the listener is
                // fine; wait a little rather than spin.
                Err(e) => {
                    tracing::warn!(event = "api_accept_failed", "cannot accept a connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(event = "api_busy", peer = %peer, "{MAX_CONNECTIONS} connections are open: this one is closed");
            continue;
        };
        let app = app.clone();
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                // A router is always ready, so it may be called without polling readiness.
                tower_service::Service::call(&mut app.clone(), request)
            },
        );
        let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away or breaks the protocol ends only its own connection.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
    Ok(())
}

/// A JSON error body: `{"error": "..."}` plus whatever else helps.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": message.into() });
    (status, Json(body)).into_response()
}

async fn no_such_route(uri: axum::http::Uri) -> Response {
    let known: Vec<String> = routes::ROUTES
        .iter()
        .map(|r| format!("{} {}", r.method.as_str(), r.path))
        .collect();
    let body = serde_json::json!({
        "error": format!("no route {}", crate::text::one_line(uri.path(), 200)),
        "routes": known,
    });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}
