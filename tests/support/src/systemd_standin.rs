//! A stand-in for systemd's D-Bus API, on a real [`DbusDaemon`]: systemd cannot run as PID 1
//! here, so the tests of hmrt's `systemd` capability talk to this server instead, over the
//! same bus protocol and the same interface subset systemd has:
//!
//! - `org.freedesktop.systemd1` owns `/org/freedesktop/systemd1`, whose
//!   `org.freedesktop.systemd1.Manager` answers `GetUnit` (`NoSuchUnit` for a unit not
//!   loaded), `LoadUnit` (a `not-found` unit for a name it has no unit of), `StartUnit`,
//!   `StopUnit` and `RestartUnit` (a job's object path; the job runs after the reply, and its
//!   end is the `JobRemoved(id, job, unit, result)` signal), and `Subscribe`;
//! - each unit is an object at systemd's escaped path (`/org/freedesktop/systemd1/unit/
//!   nginx_2eservice`) with `org.freedesktop.systemd1.Unit` (`Id`, `LoadState`,
//!   `ActiveState`, `SubState`) and `org.freedesktop.systemd1.Service` (`Result`,
//!   `NRestarts`, `MainPID`);
//! - an alias resolves to its unit, whose `Id` is the unit's own name.
//!
//! A running unit has a real process (`sleep`), so its `MainPID` is a real pid. The test
//! drives units as systemd would see them happen: [`SystemdStandin::fail`] (the process died
//! and systemd gave up), [`SystemdStandin::crash`] (it died and `Restart=` brought it back,
//! counting `NRestarts`), [`SystemdStandin::fail_starts`] (the next starts fail).

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::Duration;

use zbus::object_server::{ObjectServer, SignalEmitter};
use zbus::{Connection, OwnedObjectPath, interface};

use crate::dbus::DbusDaemon;

/// systemd's bus name.
pub const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a job runs before it is removed (long enough that the reply comes first, as with
/// systemd, short enough for tests).
const JOB_TIME: Duration = Duration::from_millis(50);

/// A unit's state as the stand-in holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    /// `LoadState`.
    pub load_state: String,
    /// `ActiveState`.
    pub active_state: String,
    /// `SubState`.
    pub sub_state: String,
    /// `Result`.
    pub result: String,
    /// `NRestarts`.
    pub n_restarts: u32,
    /// `MainPID` (0: no process).
    pub main_pid: u32,
}

struct Unit {
    state: UnitState,
    process: Option<Child>,
    fail_starts: bool,
}

impl Unit {
    fn new(load_state: &str) -> Unit {
        Unit {
            state: UnitState {
                load_state: load_state.into(),
                active_state: "inactive".into(),
                sub_state: "dead".into(),
                result: "success".into(),
                n_restarts: 0,
                main_pid: 0,
            },
            process: None,
            fail_starts: false,
        }
    }

    fn set(&mut self, active: &str, sub: &str) {
        self.state.active_state = active.into();
        self.state.sub_state = sub.into();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.state.main_pid = 0;
    }

    /// Runs the unit's process: active (running), with a real main pid.
    fn run(&mut self) {
        self.kill();
        let child = Command::new("sleep")
            .arg("100000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sleep for a unit's main process");
        self.state.main_pid = child.id();
        self.process = Some(child);
        self.set("active", "running");
        self.state.result = "success".into();
    }

    fn fail(&mut self, result: &str) {
        self.kill();
        self.set("failed", "failed");
        self.state.result = result.into();
    }
}

#[derive(Default)]
struct Units {
    units: BTreeMap<String, Unit>,
    aliases: HashMap<String, String>,
    next_job: u32,
    jobs: Vec<(String, String)>,
}

impl Units {
    /// The unit `name` names: itself, or what it is an alias of.
    fn resolve(&self, name: &str) -> Option<String> {
        let id = self.aliases.get(name).map_or(name, String::as_str);
        self.units.contains_key(id).then(|| id.to_owned())
    }
}

type Shared = Arc<Mutex<Units>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Units> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// systemd's object path of a unit: `/org/freedesktop/systemd1/unit/` and the name with every
/// byte but ASCII letters and digits (and a leading digit) written `_xx`.
pub fn unit_path(name: &str) -> String {
    let mut path = String::from("/org/freedesktop/systemd1/unit/");
    if name.is_empty() {
        path.push('_');
    }
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphabetic() || (b.is_ascii_digit() && i > 0) {
            path.push(char::from(b));
        } else {
            path.push_str(&format!("_{b:02x}"));
        }
    }
    path
}

fn object_path(text: String) -> OwnedObjectPath {
    OwnedObjectPath::try_from(text).expect("a valid object path")
}

/// systemd's errors, as the stand-in raises them.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.freedesktop.systemd1")]
enum SystemdError {
    #[zbus(error)]
    ZBus(zbus::Error),
    NoSuchUnit(String),
}

/// What a job does to a unit.
#[derive(Debug, Clone, Copy)]
enum JobKind {
    Start,
    Stop,
    Restart,
}

struct Manager {
    shared: Shared,
}

impl Manager {
    fn queue(
        &self,
        kind: JobKind,
        method: &str,
        name: &str,
        mode: &str,
        emitter: SignalEmitter<'_>,
    ) -> Result<OwnedObjectPath, SystemdError> {
        const MODES: &[&str] = &[
            "replace",
            "fail",
            "isolate",
            "ignore-dependencies",
            "ignore-requirements",
        ];
        if !MODES.contains(&mode) {
            return Err(SystemdError::ZBus(
                zbus::fdo::Error::InvalidArgs(format!("Job mode {mode} invalid")).into(),
            ));
        }
        let mut units = lock(&self.shared);
        let id = units
            .resolve(name)
            .filter(|id| units.units[id].state.load_state == "loaded")
            .ok_or_else(|| SystemdError::NoSuchUnit(format!("Unit {name} not found.")))?;
        units.next_job += 1;
        let job = units.next_job;
        units.jobs.push((method.to_owned(), id.clone()));
        if let Some(unit) = units.units.get_mut(&id) {
            match kind {
                JobKind::Start | JobKind::Restart => unit.set("activating", "start"),
                JobKind::Stop => unit.set("deactivating", "stop-sigterm"),
            }
        }
        let job_path = object_path(format!("{MANAGER_PATH}/job/{job}"));
        let shared = self.shared.clone();
        let emitter = emitter.into_owned();
        let path = job_path.clone();
        tokio::spawn(async move {
            tokio::time::sleep(JOB_TIME).await;
            let result = finish(&shared, &id, kind);
            let _ = Manager::job_removed(&emitter, job, path, &id, result).await;
        });
        Ok(job_path)
    }
}

/// Ends a job on unit `id`: the unit's new state, and the job's result.
fn finish(shared: &Shared, id: &str, kind: JobKind) -> &'static str {
    let mut units = lock(shared);
    let Some(unit) = units.units.get_mut(id) else {
        return "canceled";
    };
    match kind {
        JobKind::Stop => {
            unit.kill();
            unit.set("inactive", "dead");
            "done"
        }
        JobKind::Start | JobKind::Restart if unit.fail_starts => {
            unit.fail("exit-code");
            "failed"
        }
        JobKind::Start | JobKind::Restart => {
            // A start asked for by a client (not `Restart=`) begins the count afresh.
            unit.state.n_restarts = 0;
            unit.run();
            "done"
        }
    }
}

#[interface(name = "org.freedesktop.systemd1.Manager")]
impl Manager {
    fn get_unit(&self, name: &str) -> Result<OwnedObjectPath, SystemdError> {
        let units = lock(&self.shared);
        match units.resolve(name) {
            Some(id) => Ok(object_path(unit_path(&id))),
            None => Err(SystemdError::NoSuchUnit(format!("Unit {name} not loaded."))),
        }
    }

    async fn load_unit(
        &self,
        name: &str,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<OwnedObjectPath, SystemdError> {
        let known = lock(&self.shared).resolve(name);
        if let Some(id) = known {
            return Ok(object_path(unit_path(&id)));
        }
        lock(&self.shared)
            .units
            .insert(name.to_owned(), Unit::new("not-found"));
        serve_unit(server, &self.shared, name)
            .await
            .map_err(SystemdError::ZBus)?;
        Ok(object_path(unit_path(name)))
    }

    fn start_unit(
        &self,
        name: &str,
        mode: &str,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<OwnedObjectPath, SystemdError> {
        self.queue(JobKind::Start, "StartUnit", name, mode, emitter)
    }

    fn stop_unit(
        &self,
        name: &str,
        mode: &str,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<OwnedObjectPath, SystemdError> {
        self.queue(JobKind::Stop, "StopUnit", name, mode, emitter)
    }

    fn restart_unit(
        &self,
        name: &str,
        mode: &str,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<OwnedObjectPath, SystemdError> {
        self.queue(JobKind::Restart, "RestartUnit", name, mode, emitter)
    }

    fn subscribe(&self) {}

    #[zbus(signal)]
    async fn job_removed(
        emitter: &SignalEmitter<'_>,
        id: u32,
        job: OwnedObjectPath,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
}

/// A unit's `org.freedesktop.systemd1.Unit` interface.
struct UnitObject {
    id: String,
    shared: Shared,
}

impl UnitObject {
    fn read<T>(&self, f: impl FnOnce(&UnitState) -> T) -> T {
        let units = lock(&self.shared);
        let unit = units.units.get(&self.id).expect("a served unit is kept");
        f(&unit.state)
    }
}

#[interface(name = "org.freedesktop.systemd1.Unit")]
impl UnitObject {
    #[zbus(property)]
    fn id(&self) -> String {
        self.id.clone()
    }

    #[zbus(property)]
    fn load_state(&self) -> String {
        self.read(|s| s.load_state.clone())
    }

    #[zbus(property)]
    fn active_state(&self) -> String {
        self.read(|s| s.active_state.clone())
    }

    #[zbus(property)]
    fn sub_state(&self) -> String {
        self.read(|s| s.sub_state.clone())
    }
}

/// A service's `org.freedesktop.systemd1.Service` interface.
struct ServiceObject(UnitObject);

#[interface(name = "org.freedesktop.systemd1.Service")]
impl ServiceObject {
    #[zbus(property)]
    fn result(&self) -> String {
        self.0.read(|s| s.result.clone())
    }

    #[zbus(property, name = "NRestarts")]
    fn n_restarts(&self) -> u32 {
        self.0.read(|s| s.n_restarts)
    }

    #[zbus(property, name = "MainPID")]
    fn main_pid(&self) -> u32 {
        self.0.read(|s| s.main_pid)
    }
}

async fn serve_unit(server: &ObjectServer, shared: &Shared, id: &str) -> zbus::Result<()> {
    let path = unit_path(id);
    let unit = || UnitObject {
        id: id.to_owned(),
        shared: shared.clone(),
    };
    server.at(path.as_str(), unit()).await?;
    if id.ends_with(".service") {
        server.at(path.as_str(), ServiceObject(unit())).await?;
    }
    Ok(())
}

/// The stand-in, serving on a [`DbusDaemon`] until dropped (its units' processes are killed
/// then).
pub struct SystemdStandin {
    runtime: Option<tokio::runtime::Runtime>,
    connection: Connection,
    shared: Shared,
    address: String,
}

impl SystemdStandin {
    /// Connects to `bus` as `org.freedesktop.systemd1` and serves the manager; panics (the
    /// test fails) if it cannot.
    pub fn start(bus: &DbusDaemon) -> SystemdStandin {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("systemd-standin")
            .enable_all()
            .build()
            .expect("a runtime for the systemd stand-in");
        let shared = Shared::default();
        let address = format!("unix:path={}", bus.socket().display());
        let manager = Manager {
            shared: shared.clone(),
        };
        let connect = zbus::connection::Builder::address(address.as_str())
            .name(SYSTEMD)
            .serve_at(MANAGER_PATH, manager)
            .build();
        let connection = wait(&runtime, connect)
            .unwrap_or_else(|e| panic!("the systemd stand-in cannot serve on {address}: {e}"));
        SystemdStandin {
            runtime: Some(runtime),
            connection,
            shared,
            address,
        }
    }

    /// The bus address, as `[systemd] bus` takes it.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Adds a loaded service unit, inactive (dead), as after boot with it not started.
    pub fn add_service(&self, name: &str) {
        assert!(name.ends_with(".service"), "{name} is not a service");
        lock(&self.shared)
            .units
            .insert(name.to_owned(), Unit::new("loaded"));
        let server = self.connection.object_server().clone();
        let shared = self.shared.clone();
        let id = name.to_owned();
        let runtime = self.runtime.as_ref().expect("running");
        wait(
            runtime,
            async move { serve_unit(&server, &shared, &id).await },
        )
        .unwrap_or_else(|e| panic!("serve {name}: {e}"));
    }

    /// Makes `alias` another name of `unit` (as a symlink in a unit directory does).
    pub fn alias(&self, alias: &str, unit: &str) {
        lock(&self.shared)
            .aliases
            .insert(alias.to_owned(), unit.to_owned());
    }

    fn with<T>(&self, name: &str, f: impl FnOnce(&mut Unit) -> T) -> T {
        let mut units = lock(&self.shared);
        let unit = units
            .units
            .get_mut(name)
            .unwrap_or_else(|| panic!("the stand-in has no unit {name}"));
        f(unit)
    }

    /// Starts `name` directly (as at boot): active (running) with a real main process.
    pub fn run(&self, name: &str) {
        self.with(name, Unit::run);
    }

    /// Its process died and systemd gave up: failed (failed), `Result` = `result`.
    pub fn fail(&self, name: &str, result: &str) {
        self.with(name, |u| u.fail(result));
    }

    /// Its process died and `Restart=` brought it back: `NRestarts` + 1, a new main process.
    pub fn crash(&self, name: &str) {
        self.with(name, |u| {
            u.state.n_restarts += 1;
            u.run();
        });
    }

    /// Sets its `ActiveState` and `SubState` as they are (the process is left as it is).
    pub fn set_state(&self, name: &str, active: &str, sub: &str) {
        self.with(name, |u| u.set(active, sub));
    }

    /// Whether its starts (and restarts) fail from now on.
    pub fn fail_starts(&self, name: &str, fail: bool) {
        self.with(name, |u| u.fail_starts = fail);
    }

    /// Its state now.
    pub fn state(&self, name: &str) -> UnitState {
        self.with(name, |u| u.state.clone())
    }

    /// The jobs asked for so far: (method, unit), oldest first.
    pub fn jobs(&self) -> Vec<(String, String)> {
        lock(&self.shared).jobs.clone()
    }
}

/// Runs `future` on `runtime` and waits for it from this thread, which may be inside another
/// runtime (a `#[tokio::test]`), where `Runtime::block_on` would panic.
fn wait<F>(runtime: &tokio::runtime::Runtime, future: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    runtime.spawn(async move {
        let _ = tx.send(future.await);
    });
    rx.recv_timeout(READY_TIMEOUT)
        .expect("the systemd stand-in answered in time")
}

impl Drop for SystemdStandin {
    fn drop(&mut self) {
        for unit in lock(&self.shared).units.values_mut() {
            unit.kill();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
