//! Small text helpers for messages that reach logs and state.

/// `text` cut to at most `max` bytes at a character boundary, with "…" when cut.
pub fn truncate(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…", &text[..end]))
}

/// `text` as one line a terminal or log shows as it is: control characters (newlines, ESC,
/// ...) written as escapes (`\n`, `\u{1b}`), then cut to `max` bytes.
pub fn one_line(text: &str, max: usize) -> String {
    let escaped: String = if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        text.to_string()
    };
    truncate(&escaped, max).into_owned()
}

#[cfg(test)]
mod tests {
    use super::{one_line, truncate};

    #[test]
    fn one_line_escapes_controls() {
        assert_eq!(one_line("a\nb\x1b[2J", 100), "a\\nb\\u{1b}[2J");
        assert_eq!(one_line("plain", 3), "pla…");
    }

    #[test]
    fn cuts_at_a_char_boundary() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("hello", 5), "hello");
    }
}
