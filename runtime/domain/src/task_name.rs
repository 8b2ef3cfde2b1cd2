//! What may name a task. A task's name is also the stem of its state file and appears in logs,
//! metrics labels and URLs, so the rule is narrow: `[A-Za-z0-9_.-]+`, at most
//! [`TaskName::MAX_LEN`] bytes, and not `.` or `..`.

use std::fmt;
use std::str::FromStr;

/// A valid task name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskName(String);

/// Why a text is not a task name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskNameError {
    /// The text given.
    pub name: String,
}

impl fmt::Display for TaskNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a valid task name: use 1 to {} letters, digits, '_', '.' or '-' (not \".\" or \"..\")",
            self.name,
            TaskName::MAX_LEN
        )
    }
}

impl std::error::Error for TaskNameError {}

impl TaskName {
    /// The longest name accepted, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Whether `name` follows the rule.
    pub fn is_valid(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= Self::MAX_LEN
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    }

    /// `name` as a task name, if it follows the rule.
    pub fn new(name: &str) -> Result<TaskName, TaskNameError> {
        if TaskName::is_valid(name) {
            Ok(TaskName(name.to_string()))
        } else {
            Err(TaskNameError {
                name: name.to_string(),
            })
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TaskName {
    type Err = TaskNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskName::new(s)
    }
}

impl fmt::Display for TaskName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TaskName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for TaskName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for TaskName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for TaskName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        for good in ["web", "db-1", "a.b_c", "X", &"a".repeat(128)] {
            assert!(TaskName::new(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a b", "a/b", "é", "a:b", &"a".repeat(129)] {
            let err = TaskName::new(bad).expect_err(bad);
            assert!(err.to_string().contains("not a valid task name"), "{err}");
        }
    }
}
