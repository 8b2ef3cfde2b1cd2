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

use std::net::SocketAddr;
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

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ApiState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
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
