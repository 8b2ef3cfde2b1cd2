//! Grants that would launder one capability into another: an `http` or `tcp` grant to
//! supervisord's own control port is a supervisor grant to every program it runs, and one to
//! hmrt's own `listen` address is a way around the API's token and audit. Both are refused at
//! the grant's line, whatever the plugin says it needs.

use std::net::IpAddr;

use hmrt_config::{Config, ConfigError, Grants, ServerUrl};

/// A control port of hmrt's or supervisord's, and what it is called in the error.
struct Guarded {
    host: String,
    port: u16,
    what: &'static str,
}

impl Guarded {
    fn reached_by(&self, host: &str, port: u16) -> bool {
        if port != self.port {
            return false;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.eq_ignore_ascii_case(&self.host) {
            return true;
        }
        let local = |h: &str| {
            h.eq_ignore_ascii_case("localhost")
                || h.parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
        };
        // `listen = "0.0.0.0:P"` and loopback names are all the same socket from here.
        let guarded_ip = self.host.parse::<IpAddr>().ok();
        (local(&self.host) || guarded_ip.is_some_and(|ip| ip.is_unspecified())) && local(host)
    }
}

fn guarded(config: &Config) -> Vec<Guarded> {
    let mut ports = Vec::new();
    if let Some(listen) = config.runtime.listen {
        ports.push(Guarded {
            host: listen.ip().to_string(),
            port: listen.port(),
            what: "hmrt's own API (runtime.listen); use hmrt's control routes, which need the token",
        });
    }
    if let Some(supervisor) = &config.supervisor
        && let ServerUrl::Http { host, port } = &supervisor.serverurl
    {
        ports.push(Guarded {
            host: host.clone(),
            port: *port,
            what: "supervisord's control port (supervisor.serverurl); grant supervisor programs instead",
        });
    }
    ports
}

/// Every grant of every task, action and receiver that reaches a guarded port.
pub(super) fn laundering(config: &Config) -> Vec<ConfigError> {
    let ports = guarded(config);
    if ports.is_empty() {
        return Vec::new();
    }
    let mut errors = Vec::new();
    for task in &config.tasks {
        let mut found = check(&ports, &task.grants, "grants");
        if let Some(action) = &task.on_failure {
            found.extend(check(&ports, &action.grants, "on_failure.grants"));
        }
        errors.extend(found.into_iter().map(|e| e.in_task(&task.name)));
    }
    for (i, route) in config.alerts.iter().enumerate() {
        errors.extend(check(
            &ports,
            &route.receiver.grants,
            &format!("alert[{i}].receiver.grants"),
        ));
        if let Some(second) = &route.escalate_to {
            errors.extend(check(
                &ports,
                &second.grants,
                &format!("alert[{i}].escalate_to.grants"),
            ));
        }
    }
    errors
}

fn check(ports: &[Guarded], grants: &Grants, key: &str) -> Vec<ConfigError> {
    let http = grants
        .http
        .origins
        .iter()
        .map(|o| (o.host.as_str(), o.port, &o.location, "http"));
    let tcp = grants
        .tcp
        .endpoints
        .iter()
        .chain(&grants.smtp.endpoints)
        .map(|e| (e.host.as_str(), e.port, &e.location, "tcp"));
    let mut errors = Vec::new();
    for (host, port, location, kind) in http.chain(tcp) {
        if let Some(port_of) = ports.iter().find(|g| g.reached_by(host, port)) {
            errors.push(ConfigError::new(
                location.clone(),
                format!("{key}.{kind}"),
                format!(
                    "{host}:{port} is {}: a {kind} grant must not reach it",
                    port_of.what
                ),
            ));
        }
    }
    errors
}

/// Whether `addr` is one `listen` can be reached at (for tests of this module).
#[cfg(test)]
fn reaches(listen: std::net::SocketAddr, host: &str, port: u16) -> bool {
    Guarded {
        host: listen.ip().to_string(),
        port: listen.port(),
        what: "",
    }
    .reached_by(host, port)
}

#[cfg(test)]
mod tests {
    use super::reaches;

    #[test]
    fn every_local_spelling_of_a_guarded_port_is_caught() {
        let listen = "127.0.0.1:9090".parse().unwrap();
        assert!(reaches(listen, "127.0.0.1", 9090));
        assert!(reaches(listen, "localhost", 9090));
        assert!(reaches(listen, "[::1]", 9090));
        assert!(!reaches(listen, "127.0.0.1", 9091));
        assert!(!reaches(listen, "10.0.0.1", 9090));
        let any = "0.0.0.0:9090".parse().unwrap();
        assert!(reaches(any, "127.0.0.2", 9090));
        let public = "10.0.0.1:9090".parse().unwrap();
        assert!(reaches(public, "10.0.0.1", 9090));
        assert!(!reaches(public, "127.0.0.1", 9090));
    }
}
