//! Located errors: every problem in a config names its file, line, column and key.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A place in a config file. `line` and `column` are 1-based; the column counts characters, not
/// bytes, as editors do. Both are 0 when the error concerns the whole file (it cannot be read).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// The config file, as it was given to the loader.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Location {
    /// A location that stands for the whole file (line and column 0).
    pub fn whole_file(file: &Path) -> Location {
        Location {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
        }
    }
}

/// One problem in a config, at a place and a key.
///
/// Keys are written one way everywhere: a setting of a task is scoped by the task's name
/// (`task "web"`) and then named by its dotted path inside the task (`restart.backoff`,
/// `grants.http[0]`); everything else is a dotted path from the top of the file
/// (`runtime.listen`, `defaults.restart.factor`). A task whose name is missing or invalid is
/// named by its 0-based position among the `[[task]]` tables instead (`task[2].check`).
///
/// Displays as `tasks.toml:12:11: task "web": restart.backoff: invalid duration ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the problem is.
    pub location: Location,
    /// The name of the task the problem belongs to, if any.
    pub task: Option<String>,
    /// The dotted key path (relative to the task when `task` is set); empty when no key applies,
    /// as for a TOML syntax error.
    pub key: String,
    /// What is wrong, in one sentence.
    pub message: String,
}

impl ConfigError {
    /// An error at `location` about `key`. The host uses this (with [`ConfigError::in_task`]) so
    /// that the problems it finds later, such as an unknown check name or a URL the grants do not
    /// cover, read exactly like the ones found while loading.
    pub fn new(location: Location, key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            location,
            task: None,
            key: key.into(),
            message: message.into(),
        }
    }

    /// The same error, scoped to the task named `task` (its key is then relative to the task).
    pub fn in_task(mut self, task: impl Into<String>) -> Self {
        self.task = Some(task.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.location)?;
        if let Some(task) = &self.task {
            write!(f, "task {task:?}: ")?;
        }
        if !self.key.is_empty() {
            // A quoted TOML key may hold any character: escaped, so one error stays one line
            // and a config cannot forge another error's line.
            for c in self.key.chars() {
                if c.is_control() {
                    write!(f, "{}", c.escape_default())?;
                } else {
                    write!(f, "{c}")?;
                }
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a config, in file order. Displays one error per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", display_lines(.errors))]
pub struct ConfigErrors {
    errors: Vec<ConfigError>,
}

fn display_lines(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigErrors {
    /// Collects `errors`, sorted by line and column (stable, so errors at the same place keep
    /// the order they were found in).
    pub fn new(mut errors: Vec<ConfigError>) -> Self {
        errors.sort_by(|a, b| {
            (&a.location.file, a.location.line, a.location.column).cmp(&(
                &b.location.file,
                b.location.line,
                b.location.column,
            ))
        });
        ConfigErrors { errors }
    }

    /// The errors, in file order.
    pub fn errors(&self) -> &[ConfigError] {
        &self.errors
    }

    /// How many errors there are.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Whether there are none (never true for an error returned by the loader).
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The errors, by value.
    pub fn into_vec(self) -> Vec<ConfigError> {
        self.errors
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors::new(vec![error])
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

/// Maps byte offsets in a text to 1-based line and column.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    file: &'a Path,
    /// Byte offset at which each line starts.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str, file: &'a Path) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, file, starts }
    }

    /// The location of the first byte of `span`.
    pub(crate) fn locate(&self, span: &Range<usize>) -> Location {
        let mut offset = span.start.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&start| start <= offset);
        let start = self.starts[line.saturating_sub(1)];
        Location {
            file: self.file.to_path_buf(),
            line,
            column: self.text[start..offset].chars().count() + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_lines_and_character_columns() {
        let text = "a = 1\nbé = \"x\"\n\nlast";
        let index = LineIndex::new(text, Path::new("t.toml"));
        let at = |offset: usize| {
            let l = index.locate(&(offset..offset + 1));
            (l.line, l.column)
        };
        assert_eq!(at(0), (1, 1));
        assert_eq!(at(4), (1, 5));
        assert_eq!(at(5), (1, 6)); // the newline itself
        assert_eq!(at(6), (2, 1));
        // "é" is two bytes: the '=' after it is the 4th character of line 2.
        assert_eq!(at(text.find(" = \"x").unwrap() + 1), (2, 4));
        assert_eq!(at(text.find("last").unwrap()), (4, 1));
        // Past the end clamps to the end rather than panicking.
        assert_eq!(at(1000), (4, 5));
    }

    #[test]
    fn display_has_task_scope_and_key() {
        let loc = Location {
            file: PathBuf::from("x/tasks.toml"),
            line: 12,
            column: 11,
        };
        let e = ConfigError::new(loc.clone(), "restart.backoff", "invalid duration").in_task("web");
        assert_eq!(
            e.to_string(),
            "x/tasks.toml:12:11: task \"web\": restart.backoff: invalid duration"
        );
        let e = ConfigError::new(loc, "", "syntax");
        assert_eq!(e.to_string(), "x/tasks.toml:12:11: syntax");
        let whole = ConfigError::new(Location::whole_file(Path::new("a.toml")), "", "gone");
        assert_eq!(whole.to_string(), "a.toml: gone");
    }
}
