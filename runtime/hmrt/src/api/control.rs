//! The routes that change something: restart, re-arm, pause, resume (the API token, audited)
//! and heartbeat pings (the task's own push token).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmrt_policy::Status;
use serde::Deserialize;

use super::{ApiState, error, read::unknown_task};
use crate::daemon::{Caller, Command, ControlError};
use crate::heartbeat::Ping;

/// The longest `reason` kept for the audit log.
const MAX_REASON: usize = 256;

/// The optional body of a control route.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    /// Why, for the audit log.
    #[serde(default)]
    reason: Option<String>,
}

/// The optional body of a ping.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PingBody {
    #[serde(default)]
    status: Option<PingStatus>,
    #[serde(default)]
    message: Option<String>,
}

/// What a job may report: `unknown` is not among them (a job that ran knows how it went).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum PingStatus {
    Healthy,
    Degraded,
    Unhealthy,
}

/// An empty body is the same as `{}`; anything else must be the route's JSON. The error says
/// what is wrong, for a 400.
pub(super) fn parse<T: Default + serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| format!("the body is not valid: {e}"))
}

pub(super) async fn restart(
    api: State<Arc<ApiState>>,
    task: Path<String>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    command(api, task, peer, headers, body, Command::Restart).await
}

pub(super) async fn rearm(
    api: State<Arc<ApiState>>,
    task: Path<String>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    command(api, task, peer, headers, body, Command::Rearm).await
}

pub(super) async fn pause(
    api: State<Arc<ApiState>>,
    task: Path<String>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    command(api, task, peer, headers, body, Command::Pause).await
}

pub(super) async fn resume(
    api: State<Arc<ApiState>>,
    task: Path<String>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    command(api, task, peer, headers, body, Command::Resume).await
}

/// A control request: the token first (so nothing about the tasks leaks without it), then the
/// body, then the task's loop carries it out and publishes it (the audit log is a subscriber).
async fn command(
    State(api): State<Arc<ApiState>>,
    Path(task): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
    command: Command,
) -> Response {
    let mut by = match authorize(&api, &headers, command.name(), peer) {
        Ok(by) => by,
        Err(response) => return *response,
    };
    let body: ReasonBody = match parse(&body) {
        Ok(body) => body,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
    };
    if let Some(reason) = body.reason.filter(|r| !r.trim().is_empty()) {
        by = format!("{by} ({})", crate::text::one_line(&reason, MAX_REASON));
    }
    let caller = Caller {
        by,
        from: peer.to_string(),
    };
    let done = api.control.send(&task, command, caller).await;
    answer(&api, &task, done)
}

pub(super) async fn push(
    State(api): State<Arc<ApiState>>,
    Path(task): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = api.tokens.push.get(&task) else {
        if api.board.has(&task) {
            return error(
                StatusCode::CONFLICT,
                format!("task {task:?} is not a heartbeat"),
            );
        }
        return unknown_task(&api, &task);
    };
    if !token.admits(&headers) {
        tracing::warn!(task = %task, event = "unauthorized", from = %peer, "a ping without the task's push token was refused");
        return unauthorized(
            "the task's push token is required as `Authorization: Bearer <token>`",
        );
    }
    let body: PingBody = match parse(&body) {
        Ok(body) => body,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
    };
    let status = match body.status {
        None | Some(PingStatus::Healthy) => Status::Healthy,
        Some(PingStatus::Degraded) => Status::Degraded,
        Some(PingStatus::Unhealthy) => Status::Unhealthy,
    };
    let ping = Ping::new(
        api.clock.now(),
        status,
        body.message.as_deref().unwrap_or_default(),
    );
    let caller = Caller {
        by: token.name.clone(),
        from: peer.to_string(),
    };
    let done = api.control.send(&task, Command::Push(ping), caller).await;
    answer(&api, &task, done)
}

/// The API token's variable name if `headers` carry the token; else the 401 to answer.
pub(super) fn authorize(
    api: &ApiState,
    headers: &HeaderMap,
    command: &str,
    peer: SocketAddr,
) -> Result<String, Box<Response>> {
    let Some(token) = api.tokens.api.as_ref() else {
        return Err(Box::new(unauthorized(
            "this hmrt has no API token: set [api] token_env to change things through the API",
        )));
    };
    if !token.admits(headers) {
        tracing::warn!(event = "unauthorized", command, from = %peer, "a request without a valid token was refused");
        return Err(Box::new(unauthorized(
            "a valid `Authorization: Bearer <token>` header is required",
        )));
    }
    Ok(token.name.clone())
}

fn unauthorized(message: &str) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        axum::http::header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer"),
    );
    response
}

fn answer(api: &ApiState, task: &str, done: Result<String, ControlError>) -> Response {
    match done {
        Ok(message) => Json(serde_json::json!({ "task": task, "done": message })).into_response(),
        Err(ControlError::UnknownTask { name }) => unknown_task(api, &name),
        Err(e @ ControlError::Conflict(_)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e @ ControlError::ActionFailed(_)) => error(StatusCode::BAD_GATEWAY, e.to_string()),
        Err(e @ (ControlError::Busy(_) | ControlError::Stopped)) => {
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
    }
}
