//! Readers for single values. Each takes the table and key, reads the value if it is written,
//! and on a wrong type or an out-of-range value records an error at the value's own span and
//! returns `None`, so the walk goes on and reports everything in one pass.

use std::path::PathBuf;
use std::time::Duration;

use hmrt_domain::duration;
use toml::de::DeValue;

use super::{At, Parser, Scope, Table, Value};
use crate::values::parse_size;

fn kind(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The candidate closest to `name`, if it is close enough to be the one meant: at most two
/// edits away and fewer than half the candidate's length, so that a short unrelated word is not
/// offered. Optimal string alignment distance counts a swap of two neighbouring letters, the
/// commonest typo, as one edit.
pub(super) fn closest<'c>(
    name: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (strsim::osa_distance(name, c), c))
        .filter(|&(d, c)| d <= 2.min(c.chars().count() / 2))
        .min()
        .map(|(_, c)| c)
}

impl Parser<'_> {
    pub(super) fn type_error(&mut self, value: &Value<'_>, scope: &Scope, key: &str, want: &str) {
        let found = kind(value.get_ref());
        self.error(
            &value.span(),
            scope,
            key,
            format!("expected {want}, found {found}"),
        );
    }

    /// Reports every key of `table` not in `allowed`, with the allowed key it is probably a
    /// typo of; `special` may give a better message for a key that is known but misplaced.
    pub(super) fn check_keys(
        &mut self,
        table: &Table<'_, '_>,
        allowed: &[&str],
        special: impl Fn(&str) -> Option<String>,
    ) {
        for (key, _) in table.map.iter() {
            let name: &str = key.get_ref();
            if allowed.contains(&name) {
                continue;
            }
            let message =
                special(name).unwrap_or_else(|| match closest(name, allowed.iter().copied()) {
                    Some(a) => format!("unknown key; did you mean {a:?}?"),
                    None => format!("unknown key; expected one of: {}", allowed.join(", ")),
                });
            self.error(&key.span(), &table.scope, name, message);
        }
    }

    pub(super) fn table<'t, 'i>(
        &mut self,
        table: &Table<'t, 'i>,
        key: &str,
    ) -> Option<Table<'t, 'i>> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::Table(map) => Some(Table {
                map,
                span: value.span(),
                scope: table.scope.child(key),
            }),
            _ => {
                self.type_error(value, &table.scope, key, "a table");
                None
            }
        }
    }

    pub(super) fn string(&mut self, table: &Table<'_, '_>, key: &str) -> Option<At<String>> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some(At {
                v: s.to_string(),
                span: value.span(),
            }),
            _ => {
                self.type_error(value, &table.scope, key, "a string");
                None
            }
        }
    }

    pub(super) fn nonempty_string(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
    ) -> Option<At<String>> {
        let s = self.string(table, key)?;
        if s.v.trim().is_empty() {
            self.error(&s.span, &table.scope, key, "must not be empty");
            return None;
        }
        Some(s)
    }

    pub(super) fn required_string(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
    ) -> Option<At<String>> {
        if table.get(key).is_none() {
            self.error(&table.span, &table.scope, key, "missing required key");
            return None;
        }
        self.nonempty_string(table, key)
    }

    /// An integer from `min` to `max`.
    pub(super) fn count(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
        min: u32,
        max: u32,
    ) -> Option<At<u32>> {
        let value = table.get(key)?;
        let DeValue::Integer(int) = value.get_ref() else {
            self.type_error(value, &table.scope, key, "an integer");
            return None;
        };
        let span = value.span();
        let message = match i64::from_str_radix(int.as_str(), int.radix()) {
            Ok(n) if n < i64::from(min) => format!("must be at least {min} (found {n})"),
            Ok(n) if n > i64::from(max) => format!("must be at most {max} (found {n})"),
            Ok(n) => return u32::try_from(n).ok().map(|v| At { v, span }),
            Err(_) => format!("must be at most {max}"),
        };
        self.error(&span, &table.scope, key, message);
        None
    }

    /// A number (a TOML float, or an integer where a whole number is meant) that is finite.
    pub(super) fn float(&mut self, table: &Table<'_, '_>, key: &str) -> Option<At<f64>> {
        let value = table.get(key)?;
        let span = value.span();
        let parsed = match value.get_ref() {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            _ => {
                self.type_error(value, &table.scope, key, "a number");
                return None;
            }
        };
        match parsed {
            Some(v) if v.is_finite() => Some(At { v, span }),
            _ => {
                self.error(&span, &table.scope, key, "must be a finite number");
                None
            }
        }
    }

    /// A duration in hmrt's one grammar, which also bounds it (at a year): a config cannot hand
    /// the scheduler or the policy a duration that overflows when added to an instant.
    /// `nonzero` refuses `"0s"`, for the settings where zero would mean "never" or "always".
    pub(super) fn duration(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
        nonzero: bool,
    ) -> Option<At<Duration>> {
        let value = table.get(key)?;
        let DeValue::String(text) = value.get_ref() else {
            self.type_error(value, &table.scope, key, "a duration string such as \"5s\"");
            return None;
        };
        let span = value.span();
        let message = match duration::parse(text) {
            Ok(d) if d.is_zero() && nonzero => format!("must be longer than 0 (found {text:?})"),
            Ok(v) => return Some(At { v, span }),
            Err(e) => e.to_string(),
        };
        self.error(&span, &table.scope, key, message);
        None
    }

    /// A memory size: a size string or a plain number of bytes, larger than 0.
    pub(super) fn memory(&mut self, table: &Table<'_, '_>, key: &str) -> Option<At<u64>> {
        let value = table.get(key)?;
        let span = value.span();
        let size = match value.get_ref() {
            DeValue::String(text) => parse_size(text),
            DeValue::Integer(int) => u64::from_str_radix(int.as_str(), int.radix()).map_err(|_| {
                format!(
                    "invalid size {}: must be a positive number of bytes",
                    int.as_str()
                )
            }),
            _ => {
                let want = "a size such as \"64MiB\" or a number of bytes";
                self.type_error(value, &table.scope, key, want);
                return None;
            }
        };
        let message = match size {
            Ok(0) => "must be larger than 0".to_string(),
            Ok(v) => return Some(At { v, span }),
            Err(message) => message,
        };
        self.error(&span, &table.scope, key, message);
        None
    }

    /// An array of strings; each element with its index (so an error at one element does not
    /// shift the others' key paths).
    pub(super) fn string_list(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
    ) -> Vec<(usize, At<String>)> {
        let Some(value) = table.get(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.type_error(value, &table.scope, key, "an array of strings");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            match item.get_ref() {
                DeValue::String(s) if s.trim().is_empty() => {
                    self.error(&item.span(), &table.scope, &item_key, "must not be empty");
                }
                DeValue::String(s) => out.push((
                    i,
                    At {
                        v: s.to_string(),
                        span: item.span(),
                    },
                )),
                _ => self.type_error(item, &table.scope, &item_key, "a string"),
            }
        }
        out
    }

    /// A directory: absolute as written, or relative to the config file's directory.
    pub(super) fn path(&mut self, table: &Table<'_, '_>, key: &str, default: &str) -> PathBuf {
        let written = self.nonempty_string(table, key);
        let path = written.map_or_else(|| PathBuf::from(default), |s| PathBuf::from(s.v));
        if path.is_absolute() {
            path
        } else {
            self.dir.join(path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn suggestions() {
        let keys = ["interval", "timeout", "memory", "restart"];
        assert_eq!(closest("intervall", keys), Some("interval"));
        // A swap of two neighbours is one edit: two swaps are two edits, not four.
        assert_eq!(closest("tiemuot", keys), Some("timeout"));
        assert_eq!(closest("mmeory", keys), Some("memory"));
        // Too far from anything, or too short to guess from.
        assert_eq!(closest("zzz", keys), None);
        assert_eq!(closest("ab", ["a", "b"]), None);
        assert_eq!(closest("x", std::iter::empty()), None);
    }
}
