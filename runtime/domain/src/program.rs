//! What may name a supervisord program in a task's `program`, a `supervisor` grant or a call to
//! the supervisor capability. supervisord reads `group:name` as one process of a group, `grp:`
//! (and `grp:*`) as every process of `grp`, and expands `*`: a grant must name exactly one
//! process, so a trailing `:`, a `*`, whitespace and control characters are refused.

/// Why `name` cannot name one supervisord program, or `None` if it can.
pub fn problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("a program name must not be empty")
    } else if name.contains('*') {
        Some("a program name must not contain '*' (supervisord expands it to many processes)")
    } else if name.ends_with(':') {
        Some("a program name must not end with ':' (supervisord reads \"grp:\" as the whole group)")
    } else if name.starts_with(':') {
        Some("a program name must not start with ':'")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("a program name must not contain whitespace or control characters")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_only() {
        for good in ["web", "grp:web", "web_1", "a.b-c"] {
            assert_eq!(problem(good), None, "{good}");
        }
        for bad in ["", "grp:", "grp:*", "*", "a b", ":web", "w\neb"] {
            assert!(problem(bad).is_some(), "{bad:?}");
        }
    }
}
