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

/// Characters a terminal or a log reader acts on instead of showing: control characters
/// (newlines, carriage returns, ESC, C1 controls) and the bidirectional overrides that make
/// text read differently from what it is.
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` as one line a terminal or log shows as it is: control characters (newlines, ESC,
/// ...) and bidi overrides written as escapes (`\n`, `\u{1b}`), then cut to `max` bytes. Work
/// stops at the cap, so a multi-megabyte input costs no more than a short one.
pub fn one_line(text: &str, max: usize) -> String {
    if text.len() <= max && !text.chars().any(is_hidden) {
        return text.to_string();
    }
    let mut out = String::with_capacity(max.min(text.len()) + 4);
    for c in text.chars() {
        let before = out.len();
        if is_hidden(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        if out.len() > max {
            out.truncate(before);
            out.push('…');
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{one_line, truncate};

    #[test]
    fn one_line_escapes_controls() {
        assert_eq!(one_line("a\nb\x1b[2J", 100), "a\\nb\\u{1b}[2J");
        assert_eq!(one_line("a\r\u{202e}b\u{85}", 100), "a\\r\\u{202e}b\\u{85}");
        assert_eq!(one_line("plain", 3), "pla…");
        // An escape is never cut in half.
        assert_eq!(one_line("ab\n", 3), "ab…");
    }

    #[test]
    fn one_line_stops_at_the_cap() {
        let big = "\n".repeat(8 << 20);
        let line = one_line(&big, 100);
        assert!(line.len() <= 100 + '…'.len_utf8(), "{}", line.len());
        assert!(line.starts_with("\\n\\n"));
    }

    #[test]
    fn cuts_at_a_char_boundary() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("hello", 5), "hello");
        assert_eq!(one_line("héllo", 2), "h…");
    }
}
