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

fn as_str<'v>(value: &'v DeValue<'_>) -> Option<&'v str> {
    match value {
        DeValue::String(s) => Some(s.as_ref()),
        _ => None,
    }
}

pub(super) fn nonempty(s: &str) -> Result<String, String> {
    match s.trim().is_empty() {
        true => Err("must not be empty".to_string()),
        false => Ok(s.to_string()),
    }
}

impl Parser<'_> {
    pub(super) fn type_error(&mut self, value: &Value<'_>, scope: &Scope, key: &str, want: &str) {
        let found = kind(value.get_ref());
        let message = format!("expected {want}, found {found}");
        self.error(&value.span(), scope, key, message);
    }

    /// `at`'s value, or its error recorded at the value's span.
    pub(super) fn ok<T>(
        &mut self,
        at: At<Result<T, String>>,
        scope: &Scope,
        key: &str,
    ) -> Option<At<T>> {
        match at.v {
            Ok(v) => Some(At { v, span: at.span }),
            Err(message) => {
                self.error(&at.span, scope, key, message);
                None
            }
        }
    }

    /// The value of `key` if it is written: `pick` gives `None` for a value of the wrong type
    /// (reported as not `want`) and `Err` for one it refuses, both reported at the value.
    fn typed<'t, T>(
        &mut self,
        table: &Table<'t>,
        key: &str,
        want: &str,
        pick: impl FnOnce(&'t DeValue<'t>) -> Option<Result<T, String>>,
    ) -> Option<At<T>> {
        let value = table.get(key)?;
        let Some(v) = pick(value.get_ref()) else {
            self.type_error(value, &table.scope, key, want);
            return None;
        };
        self.ok(At::new(v, value.span()), &table.scope, key)
    }

    /// Reports every key of `table` not in `allowed`, with the allowed key it is probably a
    /// typo of; `special` may give a better message for a key that is known but misplaced.
    pub(super) fn check_keys(
        &mut self,
        table: &Table<'_>,
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

    pub(super) fn table<'t>(&mut self, table: &Table<'t>, key: &str) -> Option<Table<'t>> {
        let map = self.typed(table, key, "a table", |v| match v {
            DeValue::Table(map) => Some(Ok(map)),
            _ => None,
        })?;
        let scope = table.scope.child(key);
        Some(Table {
            map: map.v,
            span: map.span,
            scope,
        })
    }

    pub(super) fn string(&mut self, table: &Table<'_>, key: &str) -> Option<At<String>> {
        self.typed(table, key, "a string", |v| {
            as_str(v).map(|s| Ok(s.to_string()))
        })
    }

    pub(super) fn boolean(&mut self, table: &Table<'_>, key: &str) -> Option<bool> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.type_error(value, &table.scope, key, "true or false");
                None
            }
        }
    }

    pub(super) fn nonempty_string(&mut self, table: &Table<'_>, key: &str) -> Option<At<String>> {
        self.typed(table, key, "a string", |v| as_str(v).map(nonempty))
    }

    pub(super) fn required_string(&mut self, table: &Table<'_>, key: &str) -> Option<At<String>> {
        if table.get(key).is_none() {
            self.error(&table.span, &table.scope, key, "missing required key");
            return None;
        }
        self.nonempty_string(table, key)
    }

    /// An integer from `min` to `max`.
    pub(super) fn count(
        &mut self,
        table: &Table<'_>,
        key: &str,
        min: u32,
        max: u32,
    ) -> Option<At<u32>> {
        self.typed(table, key, "an integer", |v| {
            let DeValue::Integer(int) = v else {
                return None;
            };
            Some(match i64::from_str_radix(int.as_str(), int.radix()) {
                Ok(n) if n < i64::from(min) => Err(format!("must be at least {min} (found {n})")),
                Ok(n) if n > i64::from(max) => Err(format!("must be at most {max} (found {n})")),
                Ok(n) => u32::try_from(n).map_err(|e| e.to_string()),
                Err(_) => Err(format!("must be at most {max}")),
            })
        })
    }

    /// A number (a TOML float, or an integer where a whole number is meant) that is finite.
    pub(super) fn float(&mut self, table: &Table<'_>, key: &str) -> Option<At<f64>> {
        self.typed(table, key, "a number", |v| {
            let n = match v {
                DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
                DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                    .ok()
                    .map(|n| n as f64),
                _ => return None,
            };
            Some(
                n.filter(|n| n.is_finite())
                    .ok_or_else(|| "must be a finite number".to_string()),
            )
        })
    }

    /// A duration in hmrt's one grammar, which also bounds it (at a year): a config cannot hand
    /// the scheduler or the policy a duration that overflows when added to an instant.
    /// `nonzero` refuses `"0s"`, for the settings where zero would mean "never" or "always".
    pub(super) fn duration(
        &mut self,
        table: &Table<'_>,
        key: &str,
        nonzero: bool,
    ) -> Option<At<Duration>> {
        self.typed(table, key, "a duration string such as \"5s\"", |v| {
            let text = as_str(v)?;
            Some(match duration::parse(text) {
                Ok(d) if d.is_zero() && nonzero => {
                    Err(format!("must be longer than 0 (found {text:?})"))
                }
                d => d.map_err(|e| e.to_string()),
            })
        })
    }

    /// A memory size: a size string or a plain number of bytes, larger than 0.
    pub(super) fn memory(&mut self, table: &Table<'_>, key: &str) -> Option<At<u64>> {
        let want = "a size such as \"64MiB\" or a number of bytes";
        self.typed(table, key, want, |v| {
            let size = match v {
                DeValue::String(text) => parse_size(text),
                DeValue::Integer(int) => {
                    u64::from_str_radix(int.as_str(), int.radix()).map_err(|_| {
                        format!(
                            "invalid size {}: must be a positive number of bytes",
                            int.as_str()
                        )
                    })
                }
                _ => return None,
            };
            Some(match size {
                Ok(0) => Err("must be larger than 0".to_string()),
                size => size,
            })
        })
    }

    /// An array of strings; each element with its index (so an error at one element does not
    /// shift the others' key paths).
    pub(super) fn string_list(&mut self, table: &Table<'_>, key: &str) -> Vec<(usize, At<String>)> {
        let want = "an array of strings";
        let Some(items) = self.typed(table, key, want, |v| match v {
            DeValue::Array(items) => Some(Ok(items)),
            _ => None,
        }) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.v.iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            let Some(v) = as_str(item.get_ref()) else {
                self.type_error(item, &table.scope, &item_key, "a string");
                continue;
            };
            let at = At {
                v,
                span: item.span(),
            }
            .map(nonempty);
            out.extend(self.ok(at, &table.scope, &item_key).map(|s| (i, s)));
        }
        out
    }

    /// A directory: absolute as written, or relative to the config file's directory.
    pub(super) fn path(&mut self, table: &Table<'_>, key: &str, default: &str) -> PathBuf {
        let written = self.nonempty_string(table, key);
        let path = written.map_or_else(|| PathBuf::from(default), |s| PathBuf::from(s.v));
        self.dir.join(path)
    }
}
