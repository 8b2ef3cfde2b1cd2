//! `hmrt run`: the daemon until SIGTERM or SIGINT, with the HTTP API when `[runtime] listen` is
//! set.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use hmrt_config::Config;
use std::net::TcpListener;

use super::{load_config, setup};
use crate::alerts::Alerts;
use crate::api::{ApiState, Tokens};
use crate::clock::{Clock, SystemClock};
use crate::daemon::Daemon;
use crate::events::{AuditLog, Board, Counters, Event, LogSubscriber, Metrics, Subscriber};
use crate::tasks::{BoundTask, bind};

/// The exit code of a config that `run` refuses (as `load_config` uses).
const CONFIG_ERROR: u8 = 2;

pub(super) async fn run(file: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(file) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let (sandbox, registry) = setup(&config, true).await?;
    // What `hmrt validate` refuses, `run` refuses too, with the same messages: a daemon that
    // starts on a wrong config would only leave tasks `unknown` forever.
    let findings = crate::validate::validate(&config, &sandbox, &registry).await;
    if !findings.config.is_empty() {
        for finding in &findings.config {
            eprintln!("{finding}");
        }
        eprintln!(
            "{}: {} error(s); not starting",
            file.display(),
            findings.config.len()
        );
        return Ok(ExitCode::from(CONFIG_ERROR));
    }
    let tasks = match bind(&config, &registry) {
        Ok(tasks) => tasks,
        Err(errors) => {
            for error in errors {
                eprintln!("{error}");
            }
            return Ok(ExitCode::from(CONFIG_ERROR));
        }
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut subscribers: Vec<Arc<dyn Subscriber>> = vec![
        Arc::new(LogSubscriber::new()),
        Arc::new(Counters::default()),
    ];
    let api = match Surface::prepare(&config, &tasks).await {
        Ok(api) => api,
        Err(message) => {
            eprintln!("{}: {message}; not starting", file.display());
            return Ok(ExitCode::from(CONFIG_ERROR));
        }
    };
    if let Some(api) = &api {
        subscribers.extend(api.subscribers());
    }
    let alerts = match open_alerts(&config, &registry) {
        Ok(alerts) => alerts,
        Err(message) => {
            eprintln!("{}: {message}; not starting", file.display());
            return Ok(ExitCode::from(CONFIG_ERROR));
        }
    };
    if let Some(alerts) = &alerts {
        subscribers.push(alerts.clone());
    }
    let readiness = crate::notify::wanted().then(|| {
        crate::notify::Readiness::new(
            tasks
                .iter()
                .filter(|t| t.config.check != crate::heartbeat::CHECK_NAME)
                .map(|t| t.name().to_string()),
        )
    });
    if let Some(readiness) = &readiness {
        subscribers.push(readiness.clone());
    }
    let daemon = Daemon::new(&config, sandbox.clone(), tasks, subscribers, clock.clone())?;
    for problem in registry.problems() {
        daemon.events().emit(
            clock.now(),
            Event::PluginFailed {
                problem: problem.to_string(),
            },
        );
    }
    let (stop_api, api_stopped) = tokio::sync::watch::channel(false);
    let watchdog_stop = api_stopped.clone();
    let server = match api {
        Some(api) => Some(
            api.serve(&daemon, clock.clone(), alerts.clone(), api_stopped.clone())
                .context("cannot start the HTTP API's thread")?,
        ),
        None => None,
    };
    let delivering = alerts.map(|alerts| {
        alerts.seed(&daemon.states());
        let events = daemon.events().clone();
        tokio::spawn(alerts.deliver(sandbox, events, clock.clone(), api_stopped))
    });
    if let Some(readiness) = readiness {
        tokio::spawn(readiness.at_the_latest());
    }
    let watchdog = tokio::spawn(crate::notify::watchdog(
        daemon.liveness(),
        clock.clone(),
        watchdog_stop,
    ));
    daemon
        .run(async {
            crate::daemon::shutdown_signal().await;
            crate::notify::stopping();
        })
        .await?;
    let _ = stop_api.send(true);
    let _ = watchdog.await;
    if let Some(delivering) = delivering {
        delivering
            .await
            .context("the alert dispatcher ended abnormally")?;
    }
    if let Some(server) = server {
        let served = tokio::task::spawn_blocking(move || server.join())
            .await
            .context("waiting for the HTTP API")?;
        match served {
            Ok(result) => result.context("the HTTP API")?,
            Err(_) => anyhow::bail!("the HTTP API's thread panicked"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The alert output, when the config has routes: receivers bound, the outbox read.
fn open_alerts(
    config: &Config,
    registry: &crate::registry::Registry,
) -> Result<Option<Arc<Alerts>>, String> {
    if config.alerts.is_empty() {
        return Ok(None);
    }
    let receivers = crate::alerts::receivers::bind(config, registry).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let alerts =
        Alerts::open(config, receivers, &config.runtime.state_dir).map_err(|e| e.to_string())?;
    Ok(Some(Arc::new(alerts)))
}

/// The HTTP API, prepared before the daemon starts so that every reason not to start (a
/// missing token, an address in use) stops hmrt before it touches anything.
struct Surface {
    listener: TcpListener,
    tokens: Tokens,
    board: Arc<Board>,
    metrics: Arc<Metrics>,
    audit: Arc<AuditLog>,
}

impl Surface {
    async fn prepare(config: &Config, tasks: &[BoundTask]) -> Result<Option<Surface>, String> {
        let Some(addr) = config.runtime.listen else {
            return Ok(None);
        };
        let tokens =
            Tokens::from_env(config.api.token_env.as_deref(), tasks).map_err(|e| e.to_string())?;
        let listener = TcpListener::bind(addr)
            .map_err(|e| format!("runtime.listen: cannot listen on {addr}: {e}"))?;
        let audit = AuditLog::open(&config.runtime.state_dir).map_err(|e| {
            format!(
                "cannot open the audit log in {}: {e}",
                config.runtime.state_dir.display()
            )
        })?;
        let policies = crate::simulate::policies(config);
        Ok(Some(Surface {
            listener,
            tokens,
            board: Arc::new(Board::new(policies.clone())),
            metrics: Arc::new(Metrics::new(policies)),
            audit: Arc::new(audit),
        }))
    }

    fn subscribers(&self) -> Vec<Arc<dyn Subscriber>> {
        vec![self.board.clone(), self.metrics.clone(), self.audit.clone()]
    }

    /// Serves on a thread of its own until `shutdown` turns true; the board starts from the
    /// states the daemon restored.
    fn serve(
        self,
        daemon: &Daemon,
        clock: Arc<dyn Clock>,
        alerts: Option<Arc<Alerts>>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> std::io::Result<std::thread::JoinHandle<std::io::Result<()>>> {
        self.board.seed(daemon.states());
        let addr = self.listener.local_addr().ok();
        let state = Arc::new(ApiState {
            board: self.board,
            metrics: self.metrics,
            control: daemon.control(),
            liveness: daemon.liveness(),
            tokens: self.tokens,
            clock,
            events: daemon.events().clone(),
            alerts,
        });
        if let Some(addr) = addr {
            tracing::info!(event = "listening", %addr, "HTTP API and /metrics on http://{addr}/");
        }
        crate::api::spawn(self.listener, state, shutdown)
    }
}
