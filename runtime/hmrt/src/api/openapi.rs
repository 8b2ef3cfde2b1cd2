//! `GET /openapi.json`: an OpenAPI 3.1 document built from [`super::routes::ROUTES`], the same
//! table the router is built from.

use axum::Json;
use serde_json::{Map, Value, json};

use super::routes::{Access, Body, ROUTES, Route};

pub(super) async fn document() -> Json<Value> {
    Json(build())
}

/// The document.
pub fn build() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        if let Some(methods) = entry.as_object_mut() {
            methods.insert(route.method.as_str().to_ascii_lowercase(), operation(route));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "hmrt",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "hmrt's HTTP API: health, probes, tasks, history, metrics, control and heartbeat pings.",
        },
        "components": {
            "securitySchemes": {
                "apiToken": { "type": "http", "scheme": "bearer", "description": "The token in the environment variable `[api] token_env` names." },
                "pushToken": { "type": "http", "scheme": "bearer", "description": "The heartbeat task's own token, from the variable its `config.token_env` names." },
            },
        },
        "paths": paths,
    })
}

fn operation(route: &Route) -> Value {
    let mut op = Map::new();
    op.insert("summary".into(), route.summary.into());
    op.insert(
        "operationId".into(),
        operation_id(route.method.as_str(), route.path).into(),
    );
    if route.path.contains("{id}") {
        op.insert(
            "parameters".into(),
            json!([{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }]),
        );
    }
    if route.path.contains("{task}") {
        op.insert(
            "parameters".into(),
            json!([{ "name": "task", "in": "path", "required": true, "schema": { "type": "string" } }]),
        );
    }
    match route.access {
        Access::Open => {}
        Access::ApiToken => {
            op.insert("security".into(), json!([{ "apiToken": [] }]));
        }
        Access::PushToken => {
            op.insert("security".into(), json!([{ "pushToken": [] }]));
        }
    }
    if let Some(schema) = body_schema(route.body) {
        op.insert(
            "requestBody".into(),
            json!({ "required": false, "content": { "application/json": { "schema": schema } } }),
        );
    }
    let mut responses = Map::new();
    for (code, description) in route.responses {
        let mut response = json!({ "description": description });
        if (200..300).contains(code) {
            let content: Map<String, Value> = route
                .produces
                .iter()
                .map(|media| (media.to_string(), json!({})))
                .collect();
            response["content"] = Value::Object(content);
        }
        responses.insert(code.to_string(), response);
    }
    op.insert("responses".into(), Value::Object(responses));
    Value::Object(op)
}

fn body_schema(body: Body) -> Option<Value> {
    match body {
        Body::None => None,
        Body::Reason => Some(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": { "reason": { "type": "string", "description": "Why, for the audit log." } },
        })),
        Body::Silence => Some(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "tasks": { "type": "array", "items": { "type": "string" }, "description": "Task names or globs." },
                "labels": { "type": "object", "additionalProperties": { "type": "string" } },
                "starts_at": { "type": "string", "format": "date-time" },
                "ends_at": { "type": "string", "format": "date-time" },
                "duration": { "type": "string", "description": "Instead of ends_at, such as \"2h\"." },
                "comment": { "type": "string" },
            },
        })),
        Body::Ping => Some(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "status": { "type": "string", "enum": ["healthy", "degraded", "unhealthy"], "default": "healthy" },
                "message": { "type": "string" },
            },
        })),
    }
}

/// `GET /tasks/{task}/history` → `get_tasks_task_history`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        id.push('_');
        id.extend(
            part.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .map(|c| c.to_ascii_lowercase()),
        );
    }
    if path == "/" {
        id.push_str("_page");
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_document_once() {
        let doc = build();
        let paths = doc["paths"].as_object().unwrap();
        let mut ids = std::collections::BTreeSet::new();
        for route in ROUTES {
            let op = &paths[route.path][route.method.as_str().to_ascii_lowercase()];
            assert!(op.is_object(), "{} {}", route.method.as_str(), route.path);
            assert!(ids.insert(op["operationId"].as_str().unwrap().to_string()));
        }
        let count: usize = paths.values().map(|m| m.as_object().unwrap().len()).sum();
        assert_eq!(count, ROUTES.len());
    }
}
