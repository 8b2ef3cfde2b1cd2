//! `hmrt status` and `hmrt ctl`: a running daemon, through its HTTP API.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::text::one_line;

/// Nagios UNKNOWN: the daemon could not be asked.
const UNREACHABLE: u8 = 3;
/// The daemon refused or could not carry out the request.
const REFUSED: u8 = 1;

#[derive(Deserialize)]
struct TasksBody {
    tasks: Vec<TaskRow>,
}

#[derive(Deserialize)]
struct TaskRow {
    name: String,
    state: String,
    status: Option<String>,
    message: String,
    paused: bool,
    held: Vec<String>,
    last_check: Option<String>,
    restarts: u64,
}

fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .context("cannot build the HTTP client")
}

fn endpoint(url: &str, path: &str) -> String {
    format!("{}{path}", url.trim_end_matches('/'))
}

fn unreachable(url: &str, e: &reqwest::Error) -> ExitCode {
    eprintln!("hmrt: cannot reach the daemon at {url}: {e}");
    ExitCode::from(UNREACHABLE)
}

/// `hmrt status`: a table of the daemon's tasks; exits as `hmrt check` does (0 healthy,
/// 1 degraded, 2 unhealthy or failed), 3 when the daemon cannot be reached.
pub(super) async fn status(url: &str, json: bool) -> anyhow::Result<ExitCode> {
    let response = match client()?.get(endpoint(url, "/tasks")).send().await {
        Ok(response) => response,
        Err(e) => return Ok(unreachable(url, &e)),
    };
    if !response.status().is_success() {
        eprintln!("hmrt: {url} answered {} to GET /tasks", response.status());
        return Ok(ExitCode::from(UNREACHABLE));
    }
    let text = match response.text().await {
        Ok(text) => text,
        Err(e) => return Ok(unreachable(url, &e)),
    };
    if json {
        println!("{text}");
    }
    let body: TasksBody = serde_json::from_str(&text)
        .with_context(|| format!("{url}/tasks did not answer as hmrt does"))?;
    if !json {
        print!("{}", table(&body.tasks, std::io::stdout().is_terminal()));
    }
    let worst = body
        .tasks
        .iter()
        .map(|t| match t.state.as_str() {
            "unhealthy" | "failed" => 2,
            "degraded" => 1,
            _ => 0,
        })
        .max()
        .unwrap_or(0);
    Ok(ExitCode::from(worst))
}

fn table(tasks: &[TaskRow], colour: bool) -> String {
    let width = tasks.iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
    let mut out = format!(
        "{:width$}  {:10}  {:9}  {:24}  {:>8}  MESSAGE\n",
        "TASK", "STATE", "CHECK", "LAST CHECK", "RESTARTS"
    );
    for t in tasks {
        let mut state = t.state.clone();
        if t.paused {
            state.push('*');
        }
        let painted = paint(&format!("{state:10}"), &t.state, colour);
        let mut message = t.message.clone();
        if !t.held.is_empty() {
            message = format!("[held: {}] {message}", t.held.join("; "));
        }
        out.push_str(&format!(
            "{:width$}  {painted}  {:9}  {:24}  {:>8}  {}\n",
            one_line(&t.name, 64),
            t.status.as_deref().unwrap_or("-"),
            t.last_check.as_deref().unwrap_or("-"),
            t.restarts,
            one_line(&message, 120),
        ));
    }
    if tasks.iter().any(|t| t.paused) {
        out.push_str("* paused: checks go on, actions wait\n");
    }
    out
}

fn paint(text: &str, state: &str, colour: bool) -> String {
    if !colour {
        return text.to_string();
    }
    let code = match state {
        "healthy" => "32",
        "degraded" => "33",
        "unhealthy" | "failed" => "31",
        "restarting" => "34",
        _ => "90",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// `hmrt ctl COMMAND TASK`: sends a control request with the token from `token_env`.
/// What `hmrt ctl` sends.
pub(super) struct CtlRequest<'a> {
    /// `restart`, `rearm`, `pause`, `resume`, `silence` or `unsilence`.
    pub command: &'a str,
    /// The task (for `unsilence`: the silence's id).
    pub target: &'a str,
    /// Why, for the audit log (a silence's comment).
    pub reason: Option<&'a str>,
    /// How long a silence lasts.
    pub duration: &'a str,
}

pub(super) async fn ctl(
    url: &str,
    request: CtlRequest<'_>,
    token_env: &str,
) -> anyhow::Result<ExitCode> {
    let CtlRequest {
        command,
        target: task,
        reason,
        duration,
    } = request;
    let token = match std::env::var(token_env) {
        Ok(token) if !token.trim().is_empty() => token,
        _ => {
            eprintln!(
                "hmrt: set {token_env} to the daemon's API token (the variable its [api] token_env names), or pick another with --token-env"
            );
            return Ok(ExitCode::from(REFUSED));
        }
    };
    let client = client()?;
    let request = match command {
        "silence" => client.post(endpoint(url, "/silences")).body(
            serde_json::json!({
                "tasks": [task],
                "duration": duration,
                "comment": reason.unwrap_or_default(),
            })
            .to_string(),
        ),
        "unsilence" => client.delete(endpoint(url, &format!("/silences/{}", url_segment(task)))),
        _ => {
            let body = match reason {
                Some(reason) => serde_json::json!({ "reason": reason }),
                None => serde_json::json!({}),
            };
            let path = format!("/tasks/{}/{command}", url_segment(task));
            client.post(endpoint(url, &path)).body(body.to_string())
        }
    };
    let sent = request
        .bearer_auth(token.trim())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(e) => return Ok(unreachable(url, &e)),
    };
    let status = response.status();
    let answer: serde_json::Value = match response.text().await {
        Ok(text) => serde_json::from_str(&text).unwrap_or_default(),
        Err(e) => return Ok(unreachable(url, &e)),
    };
    if status.is_success() {
        let done = match command {
            "silence" => format!(
                "silence {} until {}",
                answer["id"].as_str().unwrap_or("?"),
                answer["ends_at"].as_str().unwrap_or("?")
            ),
            "unsilence" => format!("silence {task} ended"),
            _ => answer["done"].as_str().unwrap_or("done").to_string(),
        };
        println!("{}", one_line(&done, 500));
        return Ok(ExitCode::SUCCESS);
    }
    let mut message = answer["error"].as_str().unwrap_or("").to_string();
    if let Some(known) = answer["known"].as_array() {
        let names: Vec<&str> = known.iter().filter_map(|v| v.as_str()).collect();
        message.push_str(&format!(" (known tasks: {})", names.join(", ")));
    }
    eprintln!(
        "hmrt: {command} {task}: {status}: {}",
        one_line(&message, 500)
    );
    Ok(ExitCode::from(REFUSED))
}

/// A task name as one path segment: task names are plain, but a typo must not become a path.
fn url_segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
