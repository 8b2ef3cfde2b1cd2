//! The `system` check's config: which resources to judge and their thresholds.

use hmrt_plugin::Config;
use hmrt_plugin::types::Need;
use serde_json::{Map, Value};

use crate::judge::{Limits, as_table, bytes, number, only_keys, percent};

/// Most disks or interfaces one task judges (each adds metrics; a result keeps 64).
pub const MAX_ENTRIES: usize = 6;

const KEYS: &[&str] = &["cpu", "memory", "swap", "load", "disks", "network"];

/// One disk to judge.
#[derive(Debug, Clone, PartialEq)]
pub struct Disk {
    /// The mount point, normalised as the grant parser does (`/var/` is `/var`).
    pub mount: String,
    /// Percent of the space used.
    pub used: Limits,
    /// Percent of the inodes used, if judged.
    pub inodes: Option<Limits>,
}

/// One interface to watch.
#[derive(Debug, Clone, PartialEq)]
pub struct Interface {
    pub name: String,
    /// Bytes received per second.
    pub rx: Limits,
    /// Bytes sent per second.
    pub tx: Limits,
    /// New receive and send errors since the last run.
    pub errors: Limits,
}

/// What to judge; a resource left out is not read at all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// Percent busy over the interval since the last run.
    pub cpu: Option<Limits>,
    /// Percent of memory used (1 - available / total).
    pub memory: Option<Limits>,
    /// Percent of swap used.
    pub swap: Option<Limits>,
    /// The 1-minute load average, per CPU when `per_cpu`.
    pub load: Option<Limits>,
    pub load_per_cpu: bool,
    pub disks: Vec<Disk>,
    pub network: Vec<Interface>,
}

impl Settings {
    pub fn from_json(json: &str) -> Result<Settings, String> {
        let c = Config::parse(json, KEYS)?;
        let top: Map<String, Value> = KEYS
            .iter()
            .filter_map(|k| c.value(k).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        let mut s = Settings {
            cpu: Limits::read(&top, "cpu", percent, &[])?.map(|(l, _)| l),
            memory: Limits::read(&top, "memory", percent, &[])?.map(|(l, _)| l),
            swap: Limits::read(&top, "swap", percent, &[])?.map(|(l, _)| l),
            ..Settings::default()
        };
        if let Some((limits, table)) = Limits::read(&top, "load", number, &["per_cpu"])? {
            s.load = Some(limits);
            s.load_per_cpu = match table.get("per_cpu") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(format!("`load.per_cpu` must be true or false, not {other}"));
                }
            };
        }
        s.disks = entries(&top, "disks")?
            .iter()
            .enumerate()
            .map(|(i, t)| disk(&format!("disks[{i}]"), t))
            .collect::<Result<_, _>>()?;
        s.network = entries(&top, "network")?
            .iter()
            .enumerate()
            .map(|(i, t)| interface(&format!("network[{i}]"), t))
            .collect::<Result<_, _>>()?;
        if s == Settings::default() {
            return Err(format!(
                "nothing to judge: set at least one of {}",
                KEYS.join(", ")
            ));
        }
        Ok(s)
    }

    /// The `system` grants a run reads: exactly what is configured (`per_cpu` load reads the
    /// CPU count, so it needs `cpu` too).
    pub fn needs(&self) -> Vec<Need> {
        self.need_names().into_iter().map(Need::System).collect()
    }

    fn need_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        if self.cpu.is_some() || (self.load.is_some() && self.load_per_cpu) {
            names.push("cpu".into());
        }
        if self.memory.is_some() || self.swap.is_some() {
            names.push("memory".into());
        }
        if self.load.is_some() {
            names.push("load".into());
        }
        names.extend(self.disks.iter().map(|d| format!("disk:{}", d.mount)));
        names.extend(self.network.iter().map(|n| format!("network:{}", n.name)));
        let mut seen = Vec::new();
        names.retain(|n| {
            let new = !seen.contains(n);
            seen.push(n.clone());
            new
        });
        names
    }
}

/// The list of tables at `key`, at most [`MAX_ENTRIES`].
fn entries<'a>(
    top: &'a Map<String, Value>,
    key: &str,
) -> Result<Vec<&'a Map<String, Value>>, String> {
    let items = match top.get(key) {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(format!(
                "`{key}` must be a list of tables, such as [{{ ... }}]"
            ));
        }
    };
    if items.len() > MAX_ENTRIES {
        return Err(format!(
            "`{key}` lists {} entries; at most {MAX_ENTRIES} per task",
            items.len()
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| as_table(&format!("{key}[{i}]"), item))
        .collect()
}

fn disk(key: &str, t: &Map<String, Value>) -> Result<Disk, String> {
    only_keys(key, t, &["mount", "warn", "critical", "inodes"])?;
    let mount = match t.get("mount") {
        Some(Value::String(m)) => normalise_mount(m).map_err(|e| format!("`{key}.mount`: {e}"))?,
        Some(_) => return Err(format!("`{key}.mount` must be a string such as \"/\"")),
        None => {
            return Err(format!(
                "`{key}` needs `mount`, such as {{ mount = \"/\", critical = 90 }}"
            ));
        }
    };
    let mut used_table = t.clone();
    used_table.retain(|k, _| k == "warn" || k == "critical");
    let wrapped: Map<String, Value> = [(key.to_owned(), Value::Object(used_table))]
        .into_iter()
        .collect();
    let used = Limits::read(&wrapped, key, percent, &[])?
        .map(|(l, _)| l)
        .unwrap_or_default();
    let inodes = Limits::read(t, "inodes", percent, &[])
        .map_err(|e| e.replace("`inodes", &format!("`{key}.inodes")))?
        .map(|(l, _)| l);
    Ok(Disk {
        mount,
        used,
        inodes,
    })
}

fn interface(key: &str, t: &Map<String, Value>) -> Result<Interface, String> {
    only_keys(key, t, &["interface", "rx", "tx", "errors"])?;
    let name = match t.get("interface") {
        Some(Value::String(n)) if valid_interface(n) => n.clone(),
        Some(Value::String(n)) => {
            return Err(format!("`{key}.interface`: {n:?} is not an interface name"));
        }
        Some(_) => {
            return Err(format!(
                "`{key}.interface` must be a string such as \"eth0\""
            ));
        }
        None => {
            return Err(format!(
                "`{key}` needs `interface`, such as {{ interface = \"eth0\" }}"
            ));
        }
    };
    let named = |e: String, what: &str| e.replace(&format!("`{what}"), &format!("`{key}.{what}"));
    let read = |what: &str, how| {
        Limits::read(t, what, how, &[])
            .map_err(|e| named(e, what))
            .map(|l| l.map(|(l, _)| l).unwrap_or_default())
    };
    Ok(Interface {
        name,
        rx: read("rx", bytes)?,
        tx: read("tx", bytes)?,
        errors: read("errors", number)?,
    })
}

/// As Linux names interfaces: 1 to 15 bytes, no `/`, `:` or whitespace.
fn valid_interface(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

/// An absolute path without `.` or `..`, its trailing `/` removed (the root stays `/`).
fn normalise_mount(text: &str) -> Result<String, String> {
    if !text.starts_with('/') {
        return Err(format!("{text:?} is not an absolute path"));
    }
    let parts: Vec<&str> = text.split('/').filter(|p| !p.is_empty()).collect();
    if parts.iter().any(|p| *p == "." || *p == "..") || text.contains('\0') {
        return Err(format!(
            "{text:?} contains `.` or `..`; write the path it stands for"
        ));
    }
    Ok(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_are_exactly_what_is_read() {
        let s = Settings::from_json(
            r#"{"cpu": {"warn": 80, "critical": 95}, "memory": {"critical": 90}, "swap": {},
                "load": {"warn": 4.0, "critical": 8.0}, "disks": [{"mount": "/var/", "critical": 90}],
                "network": [{"interface": "lo", "rx": {"warn": "10MiB"}}]}"#,
        )
        .unwrap();
        let names = s.need_names();
        assert_eq!(names, ["cpu", "memory", "load", "disk:/var", "network:lo"]);
        assert_eq!(s.network[0].rx.warn, Some(10.0 * 1048576.0));
        assert_eq!(s.disks[0].used.critical, Some(90.0));
        let load = Settings::from_json(r#"{"load": {"critical": 2, "per_cpu": true}}"#).unwrap();
        assert_eq!(load.need_names(), ["cpu", "load"]);
        let swap = Settings::from_json(r#"{"swap": {"warn": 10}}"#).unwrap();
        assert_eq!(swap.need_names(), ["memory"]);
    }

    #[test]
    fn errors_name_the_key() {
        for (json, key) in [
            (r#"{}"#, "nothing to judge"),
            (r#"{"cpus": {}}"#, "`cpus`"),
            (r#"{"cpu": {"warn": 120}}"#, "`cpu.warn`"),
            (
                r#"{"memory": {"warn": 95, "critical": 90}}"#,
                "`memory.warn`",
            ),
            (r#"{"memory": 90}"#, "`memory`"),
            (r#"{"load": {"per_cpu": "yes"}}"#, "`load.per_cpu`"),
            (r#"{"disks": [{"warn": 1}]}"#, "`disks[0]` needs `mount`"),
            (r#"{"disks": [{"mount": "var"}]}"#, "`disks[0].mount`"),
            (r#"{"disks": [{"mount": "/a/../b"}]}"#, "`disks[0].mount`"),
            (
                r#"{"disks": [{"mount": "/", "critical": 101}]}"#,
                "`disks[0].critical`",
            ),
            (
                r#"{"disks": [{"mount": "/", "inodes": {"warn": "x"}}]}"#,
                "`disks[0].inodes.warn`",
            ),
            (
                r#"{"disks": [{"mount": "/", "size": 1}]}"#,
                "`disks[0].size`",
            ),
            (r#"{"disks": {"mount": "/"}}"#, "`disks`"),
            (
                r#"{"network": [{"interface": "a/b"}]}"#,
                "`network[0].interface`",
            ),
            (
                r#"{"network": [{"interface": "lo", "rx": {"warn": "1 parsec"}}]}"#,
                "`network[0].rx.warn`",
            ),
            (
                r#"{"network": [{"interface": "lo", "errors": {"critical": -1}}]}"#,
                "`network[0].errors.critical`",
            ),
        ] {
            let err = Settings::from_json(json).unwrap_err();
            assert!(err.contains(key), "{json}: {err}");
        }
        let many = format!(r#"{{"disks": [{}]}}"#, [r#"{"mount": "/"}"#; 7].join(","));
        assert!(
            Settings::from_json(&many)
                .unwrap_err()
                .contains("at most 6")
        );
    }

    #[test]
    fn mounts_are_normalised() {
        assert_eq!(normalise_mount("/"), Ok("/".into()));
        assert_eq!(normalise_mount("/var/lib/"), Ok("/var/lib".into()));
        assert_eq!(normalise_mount("//data"), Ok("/data".into()));
    }
}
