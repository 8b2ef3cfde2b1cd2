//! Every route, once: method, path, what it does, who may call it and what it answers. The
//! router mounts each row's handler on its method and path, and the OpenAPI document describes
//! the same rows.

use std::sync::Arc;

use axum::routing::{MethodFilter, MethodRouter, on};

use super::{ApiState, control, openapi, read, silences};

/// An HTTP method a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// DELETE.
    Delete,
}

impl Method {
    /// axum's filter for it.
    pub fn filter(self) -> MethodFilter {
        match self {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
            Method::Delete => MethodFilter::DELETE,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone who can reach the address.
    Open,
    /// The bearer token from `[api] token_env`; each call is audited.
    ApiToken,
    /// The task's own push token (its `config.token_env`).
    PushToken,
}

/// The body a route reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// None.
    None,
    /// Optional JSON `{"reason": "..."}`, written to the audit log.
    Reason,
    /// Optional JSON `{"status": "healthy"|"degraded"|"unhealthy", "message": "..."}`.
    Ping,
    /// JSON `{"tasks": [...], "labels": {...}, "duration" | "ends_at", "starts_at", "comment"}`.
    Silence,
}

/// One route.
pub struct Route {
    /// Its method.
    pub method: Method,
    /// Its path, with `{task}` for the task's name.
    pub path: &'static str,
    /// What it does, in a sentence.
    pub summary: &'static str,
    /// Who may call it.
    pub access: Access,
    /// What it reads.
    pub body: Body,
    /// Its status codes and what each means.
    pub responses: &'static [(u16, &'static str)],
    /// The media types of its success response.
    pub produces: &'static [&'static str],
    /// Mounts the handler on a method.
    pub mount: fn(MethodFilter) -> MethodRouter<Arc<ApiState>>,
}

const JSON: &[&str] = &["application/json"];

const UNKNOWN_TASK: (u16, &str) = (404, "No such task; the body lists the known names.");
const CONTROL_RESPONSES: &[(u16, &str)] = &[
    (200, "Done; the body says what came of it."),
    (
        400,
        "The body is not the JSON this route reads; the body says what is wrong.",
    ),
    (
        401,
        "No valid bearer token (every call here needs `[api] token_env`'s token).",
    ),
    UNKNOWN_TASK,
    (409, "The task is not in a state this applies to."),
    (413, "The body is larger than 16 KiB."),
    (502, "The action ran and failed."),
    (
        503,
        "The task is busy with other requests, or hmrt is stopping.",
    ),
];

/// The routes, in the order the OpenAPI document lists them.
pub const ROUTES: &[Route] = &[
    Route {
        method: Method::Get,
        path: "/",
        summary: "The status page: every task, refreshed every few seconds.",
        access: Access::Open,
        body: Body::None,
        responses: &[(200, "The page.")],
        produces: &["text/html"],
        mount: |m| on(m, read::page),
    },
    Route {
        method: Method::Get,
        path: "/health",
        summary: "200 when no task is unhealthy or failed, else 503; every task's health and a count per state.",
        access: Access::Open,
        body: Body::None,
        responses: &[
            (200, "No task is unhealthy or failed."),
            (503, "Some task is unhealthy or failed."),
        ],
        produces: JSON,
        mount: |m| on(m, read::health),
    },
    Route {
        method: Method::Get,
        path: "/health/{task}",
        summary: "One task's health: 200 unless it is unhealthy or failed (503).",
        access: Access::Open,
        body: Body::None,
        responses: &[
            (200, "The task is not unhealthy or failed."),
            UNKNOWN_TASK,
            (503, "The task is unhealthy or failed."),
        ],
        produces: JSON,
        mount: |m| on(m, read::health_of),
    },
    Route {
        method: Method::Get,
        path: "/livez",
        summary: "Liveness: 200 while every task's loop keeps its schedule, 503 once one is stuck.",
        access: Access::Open,
        body: Body::None,
        responses: &[
            (200, "The scheduler is alive."),
            (503, "A task loop is past its bound; the body names it."),
        ],
        produces: JSON,
        mount: |m| on(m, read::livez),
    },
    Route {
        method: Method::Get,
        path: "/readyz",
        summary: "Readiness: 200 once the config is loaded, the plugins compiled and every task has run once.",
        access: Access::Open,
        body: Body::None,
        responses: &[
            (200, "Ready."),
            (503, "Some task has not run yet; the body names them."),
        ],
        produces: JSON,
        mount: |m| on(m, read::readyz),
    },
    Route {
        method: Method::Get,
        path: "/tasks",
        summary: "Every task: state, counters, backoff, budget, last result with metrics, recent checks and actions.",
        access: Access::Open,
        body: Body::None,
        responses: &[(200, "The tasks.")],
        produces: JSON,
        mount: |m| on(m, read::tasks),
    },
    Route {
        method: Method::Get,
        path: "/tasks/{task}",
        summary: "One task, as in /tasks.",
        access: Access::Open,
        body: Body::None,
        responses: &[(200, "The task."), UNKNOWN_TASK],
        produces: JSON,
        mount: |m| on(m, read::task),
    },
    Route {
        method: Method::Get,
        path: "/tasks/{task}/history",
        summary: "The task's recent results and actions: JSON Lines as `hmrt simulate --results` reads them, or CSV with `Accept: text/csv`.",
        access: Access::Open,
        body: Body::None,
        responses: &[(200, "The history, oldest first."), UNKNOWN_TASK],
        produces: &["application/x-ndjson", "text/csv"],
        mount: |m| on(m, read::history),
    },
    Route {
        method: Method::Post,
        path: "/tasks/{task}/restart",
        summary: "Runs the task's on_failure action now, with its grants, audited; it does not count against the restart budget.",
        access: Access::ApiToken,
        body: Body::Reason,
        responses: CONTROL_RESPONSES,
        produces: JSON,
        mount: |m| on(m, control::restart),
    },
    Route {
        method: Method::Post,
        path: "/tasks/{task}/rearm",
        summary: "Re-arms a failed task: its restart budget and backoff start over.",
        access: Access::ApiToken,
        body: Body::Reason,
        responses: CONTROL_RESPONSES,
        produces: JSON,
        mount: |m| on(m, control::rearm),
    },
    Route {
        method: Method::Post,
        path: "/tasks/{task}/pause",
        summary: "Pauses the task's actions: its checks go on and are recorded, its actions wait; survives a restart of hmrt.",
        access: Access::ApiToken,
        body: Body::Reason,
        responses: CONTROL_RESPONSES,
        produces: JSON,
        mount: |m| on(m, control::pause),
    },
    Route {
        method: Method::Post,
        path: "/tasks/{task}/resume",
        summary: "Resumes a paused task's actions; what is due happens at once.",
        access: Access::ApiToken,
        body: Body::Reason,
        responses: CONTROL_RESPONSES,
        produces: JSON,
        mount: |m| on(m, control::resume),
    },
    Route {
        method: Method::Post,
        path: "/push/{task}",
        summary: "A heartbeat's ping: the task is healthy while pinged at least once per period. A body may report a failure.",
        access: Access::PushToken,
        body: Body::Ping,
        responses: &[
            (200, "Recorded, and the task judged at once."),
            (
                400,
                "The body is not the JSON this route reads; the body says what is wrong.",
            ),
            (401, "No valid bearer token (the task's own push token)."),
            UNKNOWN_TASK,
            (409, "The task is not a heartbeat."),
            (413, "The body is larger than 16 KiB."),
            (
                503,
                "The task is busy with other requests, or hmrt is stopping.",
            ),
        ],
        produces: JSON,
        mount: |m| on(m, control::push),
    },
    Route {
        method: Method::Post,
        path: "/silences",
        summary: "Makes a silence: notices of the matching tasks are held (checks go on) until it ends; what is still broken then is announced. Durable.",
        access: Access::ApiToken,
        body: Body::Silence,
        responses: &[
            (201, "Made; the body is the silence with its id."),
            (
                400,
                "The body is not a valid silence; the body says what is wrong.",
            ),
            (401, "No valid bearer token."),
            (404, "This hmrt has no [[alert]] routes."),
            (413, "The body is larger than 16 KiB."),
        ],
        produces: JSON,
        mount: |m| on(m, silences::create),
    },
    Route {
        method: Method::Get,
        path: "/silences",
        summary: "The silences not yet ended.",
        access: Access::Open,
        body: Body::None,
        responses: &[
            (200, "The silences."),
            (404, "This hmrt has no [[alert]] routes."),
        ],
        produces: JSON,
        mount: |m| on(m, silences::list),
    },
    Route {
        method: Method::Delete,
        path: "/silences/{id}",
        summary: "Ends a silence now; what it held and is still broken is announced.",
        access: Access::ApiToken,
        body: Body::None,
        responses: &[
            (200, "Ended; the body is the silence."),
            (401, "No valid bearer token."),
            (404, "No such silence, or no [[alert]] routes."),
        ],
        produces: JSON,
        mount: |m| on(m, silences::delete),
    },
    Route {
        method: Method::Get,
        path: "/metrics",
        summary: "Prometheus metrics: OpenMetrics when asked for (as Prometheus does), else the classic text format.",
        access: Access::Open,
        body: Body::None,
        responses: &[(200, "The metrics.")],
        produces: &["application/openmetrics-text", "text/plain"],
        mount: |m| on(m, read::metrics),
    },
    Route {
        method: Method::Get,
        path: "/openapi.json",
        summary: "This document.",
        access: Access::Open,
        body: Body::None,
        responses: &[(200, "The OpenAPI 3.1 document.")],
        produces: JSON,
        mount: |m| on(m, openapi::document),
    },
];
