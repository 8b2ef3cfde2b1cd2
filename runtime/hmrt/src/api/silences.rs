//! `POST /silences`, `GET /silences`, `DELETE /silences/{id}`: silences hold the notices of the
//! tasks they match (checks go on) until they end; what is still broken then is announced.
//! Making and ending one needs the API token and is audited.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmrt_policy::Timestamp;
use serde::Deserialize;

use super::control::{authorize, parse};
use super::{ApiState, error};
use crate::alerts::{Alerts, Silence};
use crate::clock::rfc3339;
use crate::events::Event;

/// The longest comment kept.
const MAX_COMMENT: usize = 512;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSilence {
    #[serde(default)]
    tasks: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    /// Instead of `ends_at`: how long from its start, in hmrt's duration grammar.
    duration: Option<String>,
    #[serde(default)]
    comment: String,
}

fn alerts(api: &ApiState) -> Result<&Arc<Alerts>, Box<Response>> {
    api.alerts.as_ref().ok_or_else(|| {
        Box::new(error(
            StatusCode::NOT_FOUND,
            "this hmrt has no [[alert]] routes: there are no notices to silence",
        ))
    })
}

fn parse_time(text: &str, key: &str) -> Result<Timestamp, String> {
    let t: jiff::Timestamp = text
        .parse()
        .map_err(|e| format!("{key}: {text:?} is not an RFC 3339 time ({e})"))?;
    u64::try_from(t.as_millisecond())
        .map(Timestamp)
        .map_err(|_| format!("{key}: {text:?} is before 1970"))
}

/// The silence the request describes, or what is wrong with it.
fn silence(body: NewSilence, now: Timestamp, author: &str) -> Result<Silence, String> {
    for (i, pattern) in body.tasks.iter().enumerate() {
        let plain = pattern.replace(['*', '?'], "x");
        if pattern.is_empty() || hmrt_domain::TaskName::new(&plain).is_err() {
            return Err(format!(
                "tasks[{i}]: {pattern:?} is not a task name or glob"
            ));
        }
    }
    if body.tasks.is_empty() && body.labels.is_empty() {
        return Err("say which tasks: `tasks` (names or globs) or `labels`".into());
    }
    let starts_at = match &body.starts_at {
        Some(text) => parse_time(text, "starts_at")?,
        None => now,
    };
    let ends_at = match (&body.ends_at, &body.duration) {
        (Some(text), None) => parse_time(text, "ends_at")?,
        (None, Some(text)) => {
            let d = hmrt_domain::duration::parse(text).map_err(|e| format!("duration: {e}"))?;
            starts_at.plus(d)
        }
        _ => return Err("give exactly one of `ends_at` and `duration`".into()),
    };
    if ends_at <= starts_at.max(now) {
        return Err("the silence ends before it begins, or in the past".into());
    }
    if ends_at.since(now) > hmrt_domain::duration::MAX {
        return Err("a silence lasts at most a year".into());
    }
    Ok(Silence {
        id: Alerts::new_silence_id(),
        tasks: body.tasks,
        labels: body.labels,
        starts_at,
        ends_at,
        comment: crate::text::one_line(&body.comment, MAX_COMMENT),
        author: author.to_string(),
    })
}

fn shown(s: &Silence) -> serde_json::Value {
    serde_json::json!({
        "id": s.id,
        "tasks": s.tasks,
        "labels": s.labels,
        "starts_at": rfc3339(s.starts_at),
        "ends_at": rfc3339(s.ends_at),
        "comment": s.comment,
        "author": s.author,
    })
}

fn matcher(s: &Silence) -> String {
    let mut parts = s.tasks.clone();
    parts.extend(s.labels.iter().map(|(k, v)| format!("{k}={v}")));
    parts.join(",")
}

pub(super) async fn create(
    State(api): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = match authorize(&api, &headers, "silence", peer) {
        Ok(token) => token,
        Err(response) => return *response,
    };
    let alerts = match alerts(&api) {
        Ok(alerts) => alerts,
        Err(response) => return *response,
    };
    let body: NewSilence = match parse(&body) {
        Ok(body) => body,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
    };
    let now = api.clock.now();
    let made = match silence(body, now, &token) {
        Ok(s) => alerts.silence(s),
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
    };
    api.events.emit(
        now,
        Event::Control {
            task: matcher(&made),
            command: "silence",
            by: token,
            from: peer.to_string(),
            outcome: format!(
                "silence {} until {}: {}",
                made.id,
                rfc3339(made.ends_at),
                made.comment
            ),
        },
    );
    (StatusCode::CREATED, Json(shown(&made))).into_response()
}

pub(super) async fn list(State(api): State<Arc<ApiState>>) -> Response {
    let alerts = match alerts(&api) {
        Ok(alerts) => alerts,
        Err(response) => return *response,
    };
    let now = api.clock.now();
    let silences: Vec<serde_json::Value> = alerts
        .silences()
        .iter()
        .filter(|s| s.ends_at > now)
        .map(shown)
        .collect();
    Json(serde_json::json!({ "silences": silences })).into_response()
}

pub(super) async fn delete(
    State(api): State<Arc<ApiState>>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let token = match authorize(&api, &headers, "unsilence", peer) {
        Ok(token) => token,
        Err(response) => return *response,
    };
    let alerts = match alerts(&api) {
        Ok(alerts) => alerts,
        Err(response) => return *response,
    };
    let Some(ended) = alerts.unsilence(&id) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no silence {:?}", crate::text::one_line(&id, 64)),
        );
    };
    api.events.emit(
        api.clock.now(),
        Event::Control {
            task: matcher(&ended),
            command: "unsilence",
            by: token,
            from: peer.to_string(),
            outcome: format!("silence {} ended", ended.id),
        },
    );
    Json(shown(&ended)).into_response()
}
