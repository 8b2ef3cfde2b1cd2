//! The guest side of hmrt's plugin contract: the Rust bindings of `wit/plugin.wit`, generated
//! once here, and helpers every plugin needs (reading a task's JSON config with messages that
//! name the offending key, humane durations, one-line messages, host errors as text).
//!
//! A check plugin implements [`check::Guest`] and exports it with
//! `hmrt_plugin::export_check!(MyCheck);`; an action implements [`action::Guest`] and uses
//! `hmrt_plugin::export_action!(MyAction);`. The capability interfaces ([`http`], [`exec`],
//! [`supervisor`], [`tcp`], [`smtp`], [`log`]) and the shared [`types`] are one set of Rust types for both
//! worlds.

/// Bindings of the `check` world. Owns the types and imports; use them through the re-exports
/// at the crate root.
#[doc(hidden)]
pub mod check_world {
    wit_bindgen::generate!({
        world: "check",
        path: "../../wit",
        // The export macro is expanded in the plugin's crate, which is also where the
        // component-type section describing the exports is emitted: a plugin exports only its
        // own world even though this crate has the bindings of both.
        pub_export_macro: true,
        export_macro_name: "export_check",
        default_bindings_module: "hmrt_plugin::check_world",
    });
}

/// Bindings of the `action` world: only its export; imports and types are the `check` world's.
#[doc(hidden)]
pub mod action_world {
    wit_bindgen::generate!({
        world: "action",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_action",
        default_bindings_module: "hmrt_plugin::action_world",
        with: {
            "hmrt:plugin/types@0.3.0": crate::check_world::hmrt::plugin::types,
            "hmrt:plugin/http@0.3.0": crate::check_world::hmrt::plugin::http,
            "hmrt:plugin/exec@0.3.0": crate::check_world::hmrt::plugin::exec,
            "hmrt:plugin/supervisor@0.3.0": crate::check_world::hmrt::plugin::supervisor,
            "hmrt:plugin/tcp@0.3.0": crate::check_world::hmrt::plugin::tcp,
            "hmrt:plugin/smtp@0.3.0": crate::check_world::hmrt::plugin::smtp,
            "hmrt:plugin/system@0.3.0": crate::check_world::hmrt::plugin::system,
            "hmrt:plugin/process@0.3.0": crate::check_world::hmrt::plugin::process,
            "hmrt:plugin/files@0.3.0": crate::check_world::hmrt::plugin::files,
            "hmrt:plugin/docker@0.3.0": crate::check_world::hmrt::plugin::docker,
            "hmrt:plugin/systemd@0.3.0": crate::check_world::hmrt::plugin::systemd,
            "hmrt:plugin/scratch@0.3.0": crate::check_world::hmrt::plugin::scratch,
            "hmrt:plugin/log@0.3.0": crate::check_world::hmrt::plugin::log,
        },
    });
}

/// `export_action!(MyAction)` exports `MyAction`, an [`action::Guest`], as the plugin's action.
pub use action_world::export_action;
/// `export_check!(MyCheck)` exports `MyCheck`, a [`check::Guest`], as the plugin's check.
pub use check_world::export_check;
pub use check_world::hmrt::plugin::{
    docker, exec, files, http, log, process, scratch, smtp, supervisor, system, systemd, tcp, types,
};

/// What a check plugin implements (`check-plugin`): [`check::Guest`] and its result type.
pub mod check {
    pub use crate::check_world::exports::hmrt::plugin::check_plugin::*;
}

/// What an action plugin implements (`action-plugin`): [`action::Guest`] and its trigger type.
pub mod action {
    pub use crate::action_world::exports::hmrt::plugin::action_plugin::*;
}

impl types::HostError {
    /// The error as plugins put it in their messages: `denied: …`, `invalid: …`, `timeout`,
    /// `failed: …`.
    pub fn describe(&self) -> String {
        match self {
            types::HostError::Denied(s) => format!("denied: {s}"),
            types::HostError::Invalid(s) => format!("invalid: {s}"),
            types::HostError::Timeout => "timeout".to_owned(),
            types::HostError::Failed(s) => format!("failed: {s}"),
        }
    }
}

use serde_json::{Map, Value};
use std::time::Duration;

/// A task's `config` object, checked against the keys a plugin knows.
#[derive(Debug, Clone, Default)]
pub struct Config {
    map: Map<String, Value>,
}

impl Config {
    /// Parses `json` (a JSON object; an empty string counts as `{}`) and rejects any key not in
    /// `known`, naming it.
    pub fn parse(json: &str, known: &[&str]) -> Result<Config, String> {
        if json.trim().is_empty() {
            return Ok(Config::default());
        }
        let value: Value =
            serde_json::from_str(json).map_err(|e| format!("config is not valid JSON: {e}"))?;
        let Value::Object(map) = value else {
            return Err(format!("config must be a table, not {}", kind(&value)));
        };
        // Sorted so that the message is the same from run to run.
        let mut unknown: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k))
            .collect();
        unknown.sort_unstable();
        if let Some(key) = unknown.first() {
            return Err(format!(
                "unknown config key `{key}` (known keys: {})",
                known.join(", ")
            ));
        }
        Ok(Config { map })
    }

    /// The raw value of `key`, if set.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }

    /// The string at `key`, if set.
    pub fn string(&self, key: &str) -> Result<Option<&str>, String> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!("`{key}` must be a string, not {}", kind(other))),
        }
    }

    /// The non-empty string at `key`, which must be set.
    pub fn required_string(&self, key: &str) -> Result<&str, String> {
        match self.string(key)? {
            None => Err(format!("missing required config key `{key}`")),
            Some(s) if s.trim().is_empty() => Err(format!("`{key}` must not be empty")),
            Some(s) => Ok(s),
        }
    }

    /// The list of strings at `key`; empty if unset.
    pub fn strings(&self, key: &str) -> Result<Vec<String>, String> {
        let items = match self.map.get(key) {
            None => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(other) => return Err(format!("`{key}` must be a list, not {}", kind(other))),
        };
        items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!(
                    "`{key}` must be a list of strings, but holds {}",
                    kind(other)
                )),
            })
            .collect()
    }

    /// The list of integers at `key`, if set.
    pub fn integers(&self, key: &str) -> Result<Option<Vec<i64>>, String> {
        let items = match self.map.get(key) {
            None => return Ok(None),
            Some(Value::Array(items)) => items,
            Some(other) => return Err(format!("`{key}` must be a list, not {}", kind(other))),
        };
        items
            .iter()
            .map(|item| {
                item.as_i64()
                    .ok_or_else(|| format!("`{key}` must be a list of integers, but holds {item}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// The table of strings at `key`, as (name, value) pairs sorted by name; empty if unset.
    pub fn string_table(&self, key: &str) -> Result<Vec<(String, String)>, String> {
        let table = match self.map.get(key) {
            None => return Ok(Vec::new()),
            Some(Value::Object(table)) => table,
            Some(other) => return Err(format!("`{key}` must be a table, not {}", kind(other))),
        };
        let mut pairs = table
            .iter()
            .map(|(name, value)| match value {
                Value::String(s) => Ok((name.clone(), s.clone())),
                other => Err(format!(
                    "`{key}.{name}` must be a string, not {}",
                    kind(other)
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        pairs.sort();
        Ok(pairs)
    }

    /// The humane duration at `key` (such as `"500ms"`), if set.
    pub fn duration(&self, key: &str) -> Result<Option<Duration>, String> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => parse_duration(s)
                .map(Some)
                .map_err(|e| format!("`{key}`: {e}")),
            Some(other) => Err(format!(
                "`{key}` must be a duration string such as \"5s\", not {}",
                kind(other)
            )),
        }
    }
}

/// A byte size as tasks.toml writes it (`"512KiB"`, `"200MiB"`, `"10MB"`, bytes): the config's
/// own grammar, so a threshold reads like a task's `memory`.
pub use hmrt_domain::size::parse as parse_size;

/// Parses a humane duration with hmrt's one duration grammar ([`hmrt_domain::duration`]), the
/// same `tasks.toml` uses: `"250ms"`, `"1.5s"`, `"1m30s"`, `"1min"`, up to one year.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    hmrt_domain::duration::parse(text).map_err(|e| e.to_string())
}

/// `d` in whole milliseconds, saturating at `u32::MAX` (the WIT's timeout type).
pub fn millis_u32(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// The first line of `text` after trimming, cut to `max_chars` characters (with `…` when cut).
pub fn one_line(text: &str, max_chars: usize) -> String {
    let line = text.trim().lines().next().unwrap_or("").trim();
    if line.chars().count() <= max_chars {
        return line.to_owned();
    }
    let mut cut: String = line.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `d` as a short human string for messages (`"500ms"`, `"5s"`, `"1s500ms"`): hmrt's one
/// duration formatter ([`hmrt_domain::duration::format`]).
pub fn show_duration(d: Duration) -> String {
    hmrt_domain::duration::format(d)
}

/// `micros` as milliseconds with one decimal (`"12.3 ms"`), without float formatting.
pub fn show_micros_as_ms(micros: u64) -> String {
    format!("{}.{} ms", micros / 1000, micros % 1000 / 100)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("500ms", 500),
            ("5s", 5_000),
            ("1.5s", 1_500),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("1m30s", 90_000),
            (" 1m 30s ", 90_000),
            ("0ms", 0),
            // What tasks.toml accepts, a guest accepts: one grammar.
            ("1min", 60_000),
            ("2 hours", 7_200_000),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in ["", "5", "ms", "5x", "-1s", "1..5s", "5 s s", "1e3s"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
        let err = parse_duration("400000000000y").unwrap_err();
        assert!(err.contains("longer than"), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse(r#"{"url": "x", "urll": "y"}"#, &["url"]).unwrap_err();
        assert!(err.contains("`urll`"), "{err}");
        assert!(Config::parse(r#"{"url": "x"}"#, &["url"]).is_ok());
        assert!(Config::parse("", &["url"]).is_ok());
        assert!(
            Config::parse("[1]", &["url"])
                .unwrap_err()
                .contains("table")
        );
    }

    #[test]
    fn typed_getters_name_the_key() {
        let c = Config::parse(
            r#"{"a": 5, "b": ["x", 1], "c": {"h": 2}, "d": "soon", "e": [200, "x"], "f": " "}"#,
            &["a", "b", "c", "d", "e", "f", "g"],
        )
        .unwrap();
        assert!(c.string("a").unwrap_err().contains("`a`"));
        assert!(c.strings("b").unwrap_err().contains("`b`"));
        assert!(c.string_table("c").unwrap_err().contains("`c.h`"));
        assert!(c.duration("d").unwrap_err().contains("`d`"));
        assert!(c.integers("e").unwrap_err().contains("`e`"));
        assert!(c.required_string("f").unwrap_err().contains("`f`"));
        assert!(c.required_string("g").unwrap_err().contains("`g`"));
        assert_eq!(c.duration("g"), Ok(None));
        assert_eq!(c.strings("g"), Ok(vec![]));
    }

    #[test]
    fn shown_durations() {
        assert_eq!(show_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(show_duration(Duration::from_secs(5)), "5s");
        assert_eq!(show_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(show_micros_as_ms(12_345), "12.3 ms");
        assert_eq!(show_micros_as_ms(999), "0.9 ms");
    }

    #[test]
    fn one_line_takes_the_first_line_and_cuts() {
        assert_eq!(one_line("\n  OK - all good \nmore", 80), "OK - all good");
        assert_eq!(one_line("abcdef", 4), "abc…");
        assert_eq!(one_line("", 4), "");
    }
}
