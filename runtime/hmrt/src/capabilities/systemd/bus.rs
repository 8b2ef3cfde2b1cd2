//! systemd's D-Bus API, the few calls the capability makes: `Manager.GetUnit`/`LoadUnit` for a
//! unit's object, `Properties.GetAll` for its state, and `Manager.StartUnit`/`StopUnit`/
//! `RestartUnit` followed by the job's `JobRemoved` signal.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use futures_util::StreamExt as _;
use zbus::message::Type;
use zbus::{Connection, MatchRule, Message, MessageStream, OwnedObjectPath, OwnedVariant};

use super::unit::{UnitProps, type_interface};

/// systemd's bus name.
pub(crate) const DESTINATION: &str = "org.freedesktop.systemd1";
/// The manager object.
pub(crate) const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
/// The manager interface.
pub(crate) const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT: &str = "org.freedesktop.systemd1.Unit";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
/// `GetUnit`'s answer for a unit systemd has not loaded (`LoadUnit` loads it).
const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";
/// `JobRemoved` signals kept while a job runs; other jobs finishing at the same time are read
/// and skipped, so this only has to cover a burst.
const QUEUED: NonZeroUsize = NonZeroUsize::new(256).expect("256 is not zero");

/// A state change systemd carries out as a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Job {
    Start,
    Stop,
    Restart,
}

impl Job {
    fn method(self) -> &'static str {
        match self {
            Job::Start => "StartUnit",
            Job::Stop => "StopUnit",
            Job::Restart => "RestartUnit",
        }
    }
}

/// Connects to `bus` (a D-Bus address), or to the system bus, and subscribes to systemd's
/// signals (systemd sends `JobRemoved` to subscribers and to the job's own requester).
pub(crate) async fn connect(bus: Option<&str>) -> zbus::Result<Connection> {
    let conn = match bus {
        Some(address) => zbus::connection::Builder::address(address).build().await?,
        None => Connection::system().await?,
    };
    // Already subscribed, or an older systemd that refuses: the job's requester still hears.
    let _ = call(&conn, MANAGER_PATH, MANAGER, "Subscribe", &()).await;
    Ok(conn)
}

async fn call<B>(
    conn: &Connection,
    path: &str,
    interface: &str,
    method: &str,
    body: &B,
) -> zbus::Result<Message>
where
    B: serde::Serialize + zbus::DynamicType,
{
    conn.call_method(Some(DESTINATION), path, Some(interface), method, body)
        .await
}

/// The object path of `name`: `GetUnit`, or `LoadUnit` when systemd has not loaded it.
async fn unit_path(conn: &Connection, name: &str) -> zbus::Result<OwnedObjectPath> {
    let reply = match call(conn, MANAGER_PATH, MANAGER, "GetUnit", &(name,)).await {
        Err(zbus::Error::MethodError(error, _, _)) if error.as_str() == NO_SUCH_UNIT => {
            call(conn, MANAGER_PATH, MANAGER, "LoadUnit", &(name,)).await?
        }
        other => other?,
    };
    reply.body().deserialize()
}

type Properties = HashMap<String, OwnedVariant>;

async fn get_all(
    conn: &Connection,
    path: &OwnedObjectPath,
    interface: &str,
) -> zbus::Result<Properties> {
    let reply = call(conn, path.as_str(), PROPERTIES, "GetAll", &(interface,)).await?;
    reply.body().deserialize()
}

fn text(props: &Properties, key: &str) -> Option<String> {
    props
        .get(key)
        .and_then(|v| <&str>::try_from(v).ok())
        .map(str::to_owned)
}

fn number(props: &Properties, key: &str) -> Option<u32> {
    props.get(key).and_then(|v| u32::try_from(v).ok())
}

/// What systemd says about `name` now (alias and load state are judged by the caller).
pub(crate) async fn read(conn: &Connection, name: &str) -> zbus::Result<UnitProps> {
    let path = unit_path(conn, name).await?;
    let unit = get_all(conn, &path, UNIT).await?;
    let mut props = UnitProps {
        id: text(&unit, "Id").unwrap_or_default(),
        load_state: text(&unit, "LoadState").unwrap_or_default(),
        active_state: text(&unit, "ActiveState").unwrap_or_default(),
        sub_state: text(&unit, "SubState").unwrap_or_default(),
        ..UnitProps::default()
    };
    if let Some(interface) = type_interface(name) {
        match get_all(conn, &path, interface).await {
            Ok(kind) => {
                props.result = text(&kind, "Result");
                props.n_restarts = number(&kind, "NRestarts");
                props.main_pid = number(&kind, "MainPID");
            }
            // A unit systemd could not load has no type properties to read; the caller
            // refuses it by its load state.
            Err(_) if props.load_state != "loaded" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(props)
}

/// Queues `job` for `name` in mode `replace` and waits for systemd to remove the job (done,
/// failed, canceled, ...); returns the job's result. The caller bounds the wait.
pub(crate) async fn run_job(conn: &Connection, job: Job, name: &str) -> zbus::Result<String> {
    // Listen first: a quick job can be removed before its path is known here.
    let rule = MatchRule::builder()
        .msg_type(Type::Signal)
        .sender(DESTINATION)
        .path(MANAGER_PATH)
        .interface(MANAGER)
        .member("JobRemoved")
        .build()?;
    let mut removed = MessageStream::for_match_rule(rule, conn, Some(QUEUED)).await?;
    let reply = call(
        conn,
        MANAGER_PATH,
        MANAGER,
        job.method(),
        &(name, "replace"),
    )
    .await?;
    let job_path: OwnedObjectPath = reply.body().deserialize()?;
    // Only systemd's own signal counts: another client on the bus can emit one too.
    let systemd = reply.header().sender().map(|s| s.as_str().to_owned());
    while let Some(signal) = removed.next().await {
        let signal = signal?;
        if signal.header().sender().map(|s| s.as_str()) != systemd.as_deref() {
            continue;
        }
        let Ok((_id, path, _unit, result)) = signal
            .body()
            .deserialize::<(u32, OwnedObjectPath, String, String)>()
        else {
            continue;
        };
        if path == job_path {
            return Ok(result);
        }
    }
    Err(zbus::Error::Failure(
        "the bus connection closed while the job ran".into(),
    ))
}

/// Whether `error` means the connection itself is gone (so the next call connects again).
pub(crate) fn is_broken(error: &zbus::Error) -> bool {
    matches!(
        error,
        zbus::Error::InputOutput(_) | zbus::Error::Handshake(_)
    )
}

/// `error` as one line for the guest: a D-Bus error's name and text, or zbus's description.
pub(crate) fn describe(error: &zbus::Error) -> String {
    let text = match error {
        zbus::Error::MethodError(name, Some(text), _) => format!("{}: {text}", name.as_str()),
        zbus::Error::MethodError(name, None, _) => name.as_str().to_owned(),
        other => other.to_string(),
    };
    crate::sandbox::untrusted::line(&text, 512)
}
