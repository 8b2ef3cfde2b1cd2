//! The routes that only read: health, probes, tasks, history, metrics, the status page.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::{
    ACCEPT, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use hmrt_policy::State as TaskStateKind;

use super::ApiState;
use crate::state::HistoryEntry;

/// The status page, served from the binary.
const PAGE: &str = include_str!("page.html");

const STATES: [TaskStateKind; 6] = [
    TaskStateKind::Unknown,
    TaskStateKind::Healthy,
    TaskStateKind::Degraded,
    TaskStateKind::Unhealthy,
    TaskStateKind::Restarting,
    TaskStateKind::Failed,
];

/// Whether a task in `state` makes `/health` fail.
fn is_down(state: TaskStateKind) -> bool {
    matches!(state, TaskStateKind::Unhealthy | TaskStateKind::Failed)
}

fn summary(states: impl Iterator<Item = TaskStateKind> + Clone) -> BTreeMap<&'static str, usize> {
    STATES
        .iter()
        .map(|s| (s.as_str(), states.clone().filter(|t| t == s).count()))
        .collect()
}

fn up_or_down(down: bool) -> (StatusCode, &'static str) {
    if down {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
    } else {
        (StatusCode::OK, "ok")
    }
}

/// 404 for a task that does not exist, naming the ones that do.
pub(super) fn unknown_task(api: &ApiState, name: &str) -> Response {
    let body = serde_json::json!({
        "error": format!("no task named {:?}", crate::text::one_line(name, 128)),
        "known": api.board.names(),
    });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// `/health`'s body, serialized as it is (no intermediate JSON tree: it is the hot route).
#[derive(serde::Serialize)]
struct HealthBody {
    status: &'static str,
    summary: BTreeMap<&'static str, usize>,
    tasks: Vec<crate::events::HealthRow>,
}

pub(super) async fn health(State(api): State<Arc<ApiState>>) -> Response {
    let rows = api.board.health(None);
    let (code, status) = up_or_down(rows.iter().any(|t| is_down(t.state)));
    let body = HealthBody {
        status,
        summary: summary(rows.iter().map(|r| r.state)),
        tasks: rows,
    };
    (code, Json(body)).into_response()
}

pub(super) async fn health_of(
    State(api): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Response {
    let Some(row) = api.board.health(Some(&name)).pop() else {
        return unknown_task(&api, &name);
    };
    let (code, status) = up_or_down(is_down(row.state));
    let mut body = serde_json::to_value(row).unwrap_or_default();
    if let Some(object) = body.as_object_mut() {
        object.insert("health".into(), status.into());
    }
    (code, Json(body)).into_response()
}

pub(super) async fn livez(State(api): State<Arc<ApiState>>) -> Response {
    let stalled = api.liveness.stalled(api.clock.now());
    let code = if stalled.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({ "alive": stalled.is_empty(), "stalled": stalled });
    (code, Json(body)).into_response()
}

pub(super) async fn readyz(State(api): State<Arc<ApiState>>) -> Response {
    // The config is loaded and the plugins compiled before the API starts listening, so only
    // the first round is left to wait for.
    let waiting = api.board.not_yet_checked();
    let code = if waiting.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({ "ready": waiting.is_empty(), "not_yet_checked": waiting });
    (code, Json(body)).into_response()
}

/// Adds what the alert outbox holds for each task.
fn with_pending(api: &ApiState, tasks: &mut [crate::events::TaskInfo]) {
    if let Some(alerts) = &api.alerts {
        let pending = alerts.pending_by_task();
        for task in tasks {
            task.notices_pending = pending.get(&task.name).copied().unwrap_or(0);
        }
    }
}

pub(super) async fn tasks(State(api): State<Arc<ApiState>>) -> Response {
    let now = api.clock.now();
    let mut tasks = api.board.tasks(now);
    with_pending(&api, &mut tasks);
    let body = serde_json::json!({
        "generated_at": crate::clock::rfc3339(now),
        "summary": summary(tasks.iter().map(|t| t.state)),
        "tasks": tasks,
    });
    Json(body).into_response()
}

pub(super) async fn task(State(api): State<Arc<ApiState>>, Path(name): Path<String>) -> Response {
    match api.board.task(&name, api.clock.now()) {
        Some(task) => {
            let mut one = [task];
            with_pending(&api, &mut one);
            let [task] = one;
            Json(task).into_response()
        }
        None => unknown_task(&api, &name),
    }
}

pub(super) async fn history(
    State(api): State<Arc<ApiState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(state) = api.board.state(&name) else {
        return unknown_task(&api, &name);
    };
    let entries = crate::state::history(&state);
    if accepts(&headers, "text/csv") {
        return ([(CONTENT_TYPE, "text/csv; charset=utf-8")], csv(&entries)).into_response();
    }
    let mut out = String::new();
    for entry in &entries {
        if let Ok(line) = serde_json::to_string(entry) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    ([(CONTENT_TYPE, "application/x-ndjson")], out).into_response()
}

/// Whether the request's `Accept` names `media` (parameters and quality ignored).
fn accepts(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            part.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case(media))
        })
}

/// The history as CSV (RFC 4180): `at,kind,status,attempt,message`, times as RFC 3339.
fn csv(entries: &[HistoryEntry]) -> String {
    let mut out = String::from("at,kind,status,attempt,message\r\n");
    for entry in entries {
        let at = crate::clock::rfc3339(hmrt_policy::Timestamp(entry.at()));
        let (kind, status, attempt, message) = match entry {
            HistoryEntry::Result {
                status, message, ..
            } => ("check", status.as_str(), String::new(), message.as_str()),
            HistoryEntry::Action {
                action,
                message,
                attempt,
                ..
            } => ("action", *action, attempt.to_string(), message.as_str()),
        };
        out.push_str(&format!(
            "{at},{kind},{status},{attempt},{}\r\n",
            csv_field(message)
        ));
    }
    out
}

/// A CSV field, quoted when it must be. A leading `=`, `+`, `-` or `@` is prefixed with `'`
/// so a spreadsheet never runs a guest's message as a formula.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

pub(super) async fn metrics(State(api): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if accepts(&headers, "application/openmetrics-text") {
        let body = api.metrics.openmetrics();
        return (
            [(
                CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response();
    }
    let body = api.metrics.prometheus_text();
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        body,
    )
        .into_response()
}

/// What the page may do: its own inline script and style, and fetch from this origin; nothing
/// else (no other origin, no frames, no forms), so even text that slipped into the DOM could
/// neither load nor send anything.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub(super) async fn page() -> Response {
    (
        [
            (CACHE_CONTROL, "no-cache"),
            (CONTENT_SECURITY_POLICY, PAGE_POLICY),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (REFERRER_POLICY, "no-referrer"),
        ],
        Html(PAGE),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
    }

    #[test]
    fn accept_is_matched_by_media_type() {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, "application/json, text/csv;q=0.9".parse().unwrap());
        assert!(accepts(&h, "text/csv"));
        assert!(!accepts(&h, "text/plain"));
    }
}
