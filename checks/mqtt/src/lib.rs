//! hmrt's built-in `mqtt` check: sends an MQTT 3.1.1 CONNECT (clean session, optional user
//! name and password) followed by DISCONNECT, and judges the broker's CONNACK: return code 0 is
//! healthy, a refusal is unhealthy with the code's name, anything else is not MQTT.

#[path = "../../tcp/src/probe.rs"]
mod probe;

use hmrt_plugin::Config;
use hmrt_plugin::check::{CheckResult, Guest};
use hmrt_plugin::types::{Capability, Need, PluginInfo, Status, Task};
use probe::{Address, Exchange, invalid_config, ms_metric, result, show_bytes, slow};
use std::time::Duration;

const KEYS: &[&str] = &[
    "address",
    "client_id",
    "username",
    "password",
    "timeout",
    "degraded_after",
];

/// Keep-alive announced in CONNECT, in seconds (the probe disconnects at once).
const KEEP_ALIVE: u16 = 30;
/// Longest client id every MQTT 3.1.1 broker must accept.
const CLIENT_ID_MAX: usize = 23;

/// The check's settings, read from a task's config.
#[derive(Debug)]
struct Settings {
    address: Address,
    client_id: Option<String>,
    username: Option<String>,
    password: Option<String>,
    timeout: Duration,
    degraded_after: Option<Duration>,
}

impl Settings {
    fn from_json(json: &str) -> Result<Settings, String> {
        let c = Config::parse(json, KEYS)?;
        let client_id = probe::non_empty(&c, "client_id")?;
        if client_id.as_ref().is_some_and(|id| id.len() > 65535) {
            return Err("`client_id` is too long".to_owned());
        }
        let username = probe::non_empty(&c, "username")?;
        let password = c.string("password")?.map(str::to_owned);
        if password.is_some() && username.is_none() {
            return Err("`password` needs `username` (MQTT 3.1.1 sends no password alone)".into());
        }
        for (key, value) in [("username", &username), ("password", &password)] {
            if value.as_ref().is_some_and(|v| v.len() > 65535) {
                return Err(format!("`{key}` is too long"));
            }
        }
        Ok(Settings {
            address: Address::from_config(&c)?,
            client_id,
            username,
            password,
            timeout: c.duration("timeout")?.unwrap_or(Duration::from_secs(5)),
            degraded_after: c.duration("degraded_after")?,
        })
    }

    /// The client id: as configured, else `hmrt-` and the clock's nanoseconds in hex (a
    /// broker drops an older connection with the same id, so each probe has its own).
    fn client_id(&self) -> String {
        if let Some(id) = &self.client_id {
            return id.clone();
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mut id = format!("hmrt-{nanos:x}");
        id.truncate(CLIENT_ID_MAX);
        id
    }
}

/// CONNECT (protocol level 4, clean session) then DISCONNECT.
fn connect_packet(client_id: &str, username: Option<&str>, password: Option<&str>) -> Vec<u8> {
    let mut flags = 0x02u8; // clean session
    let mut payload = Vec::new();
    put_string(&mut payload, client_id.as_bytes());
    if let Some(user) = username {
        flags |= 0x80;
        put_string(&mut payload, user.as_bytes());
    }
    if let Some(pass) = password {
        flags |= 0x40;
        put_string(&mut payload, pass.as_bytes());
    }
    let mut body = Vec::new();
    put_string(&mut body, b"MQTT");
    body.push(4);
    body.push(flags);
    body.extend_from_slice(&KEEP_ALIVE.to_be_bytes());
    body.extend_from_slice(&payload);
    let mut packet = vec![0x10];
    put_remaining_length(&mut packet, body.len());
    packet.extend_from_slice(&body);
    packet.extend_from_slice(&[0xe0, 0x00]);
    packet
}

/// A length-prefixed string; the config's caps keep it within 65535 bytes.
fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.get(..usize::from(len)).unwrap_or(s));
}

/// MQTT's variable-length "remaining length".
fn put_remaining_length(out: &mut Vec<u8>, mut len: usize) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
}

/// What the answer says.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Accepted,
    /// Refused with this return code.
    Refused(u8),
    NotMqtt,
}

fn judge(received: &[u8]) -> Verdict {
    match received {
        [0x20, 0x02, flags, 0, ..] if flags & 0xfe == 0 => Verdict::Accepted,
        [0x20, 0x02, 0, code @ 1..=5, ..] => Verdict::Refused(*code),
        _ => Verdict::NotMqtt,
    }
}

/// MQTT 3.1.1's names of the refusal codes.
fn refusal(code: u8) -> &'static str {
    match code {
        1 => "unacceptable protocol version",
        2 => "identifier rejected",
        3 => "server unavailable",
        4 => "bad user name or password",
        5 => "not authorized",
        _ => "refused",
    }
}

struct Mqtt;

impl Guest for Mqtt {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "mqtt".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "Connects to an MQTT broker (3.1.1 CONNECT, optional user name and \
                      password) and expects it to accept."
                .to_owned(),
            capabilities: vec![Capability::Tcp],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        let s = Settings::from_json(&task.config)?;
        Ok(vec![Need::Tcp(s.address.text)])
    }

    fn check(task: Task) -> CheckResult {
        let s = match Settings::from_json(&task.config) {
            Ok(s) => s,
            Err(e) => return invalid_config(e),
        };
        let send = connect_packet(&s.client_id(), s.username.as_deref(), s.password.as_deref());
        // A CONNACK is 4 bytes: reading stops there, whatever else a server would say.
        let response = match (Exchange {
            address: &s.address,
            tls: None,
            send,
            read_max: 4,
            until: None,
            timeout: s.timeout,
        })
        .run()
        {
            Ok(r) => r,
            Err(e) => return result(Status::Unhealthy, e, vec![]),
        };
        let metrics = vec![ms_metric("latency_ms", response.elapsed_us)];
        let a = &s.address.text;
        let got = &response.received;
        match judge(got) {
            Verdict::Accepted => {
                let took = hmrt_plugin::show_micros_as_ms(response.elapsed_us);
                let message = format!("{a} accepted an MQTT connection in {took}");
                match slow(s.degraded_after, response.elapsed_us) {
                    Some(slower) => result(Status::Degraded, message + &slower, metrics),
                    None => result(Status::Healthy, message, metrics),
                }
            }
            Verdict::Refused(code) => {
                let message = format!(
                    "{a} refused the MQTT connection: {} (CONNACK code {code})",
                    refusal(code)
                );
                result(Status::Unhealthy, message, metrics)
            }
            Verdict::NotMqtt if got.is_empty() => {
                let message = format!("{a} closed the connection without a CONNACK: not MQTT");
                result(Status::Unhealthy, message, metrics)
            }
            Verdict::NotMqtt => {
                let message = format!(
                    "{a} does not answer as an MQTT broker: {}",
                    show_bytes(got, 40)
                );
                result(Status::Unhealthy, message, metrics)
            }
        }
    }
}

hmrt_plugin::export_check!(Mqtt);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connect_packet() {
        // The anonymous CONNECT of the MQTT 3.1.1 spec's layout, with client id "a".
        assert_eq!(
            connect_packet("a", None, None),
            [
                0x10, 0x0d, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x1e, 0x00, 0x01,
                b'a', 0xe0, 0x00
            ]
        );
        let p = connect_packet("a", Some("u"), Some("pw"));
        assert_eq!(p[9], 0xc2, "user name, password and clean session flags");
        assert!(p.ends_with(&[0x00, 0x01, b'u', 0x00, 0x02, b'p', b'w', 0xe0, 0x00]));
        let mut long = Vec::new();
        put_remaining_length(&mut long, 321);
        assert_eq!(long, [0xc1, 0x02]);
    }

    #[test]
    fn connacks() {
        assert_eq!(judge(&[0x20, 0x02, 0x00, 0x00]), Verdict::Accepted);
        assert_eq!(judge(&[0x20, 0x02, 0x01, 0x00]), Verdict::Accepted);
        assert_eq!(judge(&[0x20, 0x02, 0x00, 0x05]), Verdict::Refused(5));
        for other in [
            &b""[..],
            b"\x20\x02\x00",
            b"-ERR",
            b"HTTP",
            b"\x20\x02\x00\x09",
        ] {
            assert_eq!(judge(other), Verdict::NotMqtt, "{other:?}");
        }
        assert_eq!(refusal(4), "bad user name or password");
    }

    #[test]
    fn client_ids_fit_every_broker() {
        let s = Settings::from_json(r#"{"address": "h:1883"}"#).unwrap();
        let id = s.client_id();
        assert!(id.starts_with("hmrt-") && id.len() <= CLIENT_ID_MAX, "{id}");
        let s = Settings::from_json(r#"{"address": "h:1883", "client_id": "mon"}"#).unwrap();
        assert_eq!(s.client_id(), "mon");
    }

    #[test]
    fn config() {
        for (json, key) in [
            (r#"{}"#, "`address`"),
            (r#"{"address": "h:1", "password": "x"}"#, "`password`"),
            (r#"{"address": "h:1", "client_id": ""}"#, "`client_id`"),
            (r#"{"address": "h:1", "user": "x"}"#, "`user`"),
        ] {
            let err = Settings::from_json(json).unwrap_err();
            assert!(err.contains(key), "{json}: {err}");
        }
    }
}
