//! What may name an environment variable that holds a secret (an API token, a push token): a
//! config names the variable, never the secret itself, so the secret stays out of files and
//! logs.

/// Whether `name` is a portable environment variable name: ASCII letters, digits and `_`, not
/// starting with a digit, at most 128 bytes.
pub fn is_valid(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b == b'_' || b.is_ascii_alphabetic())
        && name.len() <= 128
        && bytes.all(|b| b == b'_' || b.is_ascii_alphanumeric())
}

/// Why `name` is refused, for an error message.
pub fn problem(name: &str) -> String {
    format!(
        "{name:?} is not an environment variable name (ASCII letters, digits and _, not starting with a digit)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["HMRT_TOKEN", "_x", "a1"] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A B", "É", &"A".repeat(129)] {
            assert!(!is_valid(bad), "{bad}");
        }
    }
}
