//! The few messages of PostgreSQL's protocol 3.0 the probe sends and reads.

use std::fmt;

/// Terminate ('X'): the session ends without an error in the server's log.
pub const TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];

/// Longest plausible authentication request (SASL lists its mechanisms).
const AUTH_LEN_MAX: u32 = 2048;
/// Longest plausible error or other message this probe reads.
const MESSAGE_LEN_MAX: u32 = 64 * 1024;

/// A StartupMessage (protocol 3.0) for `user`, optionally naming `database`.
pub fn startup(user: &str, database: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes());
    let mut param = |key: &str, value: &str| {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    };
    param("user", user);
    if let Some(db) = database {
        param("database", db);
    }
    param("application_name", "hmrt");
    body.push(0);
    let len = u32::try_from(body.len() + 4).unwrap_or(u32::MAX);
    let mut msg = len.to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    msg
}

/// An ErrorResponse's fields that matter here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PgError {
    /// `FATAL`, `ERROR`, ...
    pub severity: String,
    /// The SQLSTATE, such as `3D000`.
    pub code: String,
    /// The primary message.
    pub message: String,
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.severity, self.code, self.message)
    }
}

/// One message from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// An authentication request ('R') with its code: 0 is "ok".
    Auth(u32),
    /// An ErrorResponse ('E').
    Error(PgError),
    /// ReadyForQuery ('Z').
    Ready,
    /// Any other type byte, or bytes that are no message at all.
    Other(u8),
}

/// Everything the server said, as messages where it parses.
#[derive(Debug)]
pub struct Answer {
    pub raw: Vec<u8>,
    pub messages: Vec<Message>,
    pub elapsed_us: u64,
}

impl Answer {
    /// Reads `raw` as a sequence of messages, stopping at the first that is not one; the
    /// last may be cut short (the probe reads only so far).
    pub fn parse(raw: &[u8], elapsed_us: u64) -> Answer {
        let mut messages = Vec::new();
        let mut rest = raw;
        while let [kind, a, b, c, d, body @ ..] = rest {
            let len = u32::from_be_bytes([*a, *b, *c, *d]);
            let max = if *kind == b'R' {
                AUTH_LEN_MAX
            } else {
                MESSAGE_LEN_MAX
            };
            if !(4..=max).contains(&len) {
                messages.push(Message::Other(*kind));
                break;
            }
            let body_len = (len - 4) as usize;
            let this = body.get(..body_len).unwrap_or(body);
            match (kind, this) {
                (b'R', [a, b, c, d, ..]) if len >= 8 => {
                    messages.push(Message::Auth(u32::from_be_bytes([*a, *b, *c, *d])));
                }
                (b'R', _) => break,
                (b'E', fields) => messages.push(Message::Error(error_fields(fields))),
                (b'Z', _) => messages.push(Message::Ready),
                (other, _) => messages.push(Message::Other(*other)),
            }
            rest = body.get(body_len..).unwrap_or_default();
        }
        Answer {
            raw: raw.to_vec(),
            messages,
            elapsed_us,
        }
    }

    /// Whether the first message is an error (whose text may still be cut off).
    pub fn first_is_error(&self) -> bool {
        matches!(self.messages.first(), Some(Message::Error(_)))
    }

    /// Whether a ReadyForQuery came.
    pub fn ready(&self) -> bool {
        self.messages.contains(&Message::Ready)
    }

    /// The first error that came, if any.
    pub fn error(&self) -> Option<&PgError> {
        self.messages.iter().find_map(|m| match m {
            Message::Error(e) => Some(e),
            _ => None,
        })
    }
}

/// An ErrorResponse's body: fields of a type byte and a NUL-terminated string, then a NUL.
fn error_fields(body: &[u8]) -> PgError {
    let mut e = PgError::default();
    for field in body.split(|&b| b == 0) {
        let Some((&kind, value)) = field.split_first() else {
            break;
        };
        let text = || String::from_utf8_lossy(value).chars().take(200).collect();
        match kind {
            // 'V' is the severity never localised; 'S' the fallback before protocol 9.6.
            b'V' => e.severity = text(),
            b'S' if e.severity.is_empty() => e.severity = text(),
            b'C' => e.code = text(),
            b'M' => e.message = text(),
            _ => {}
        }
    }
    e
}

/// What an authentication request asks for.
pub fn auth_name(code: u32) -> &'static str {
    match code {
        0 => "lets the user in without a password",
        2 => "asks for Kerberos V5 authentication",
        3 => "asks for a clear-text password",
        5 => "asks for an MD5 password",
        7 => "asks for GSSAPI authentication",
        9 => "asks for SSPI authentication",
        10 => "asks for SASL (SCRAM) authentication",
        _ => "asks for authentication",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_startup_message() {
        let m = startup("u", Some("d"));
        let len = u32::from_be_bytes([m[0], m[1], m[2], m[3]]) as usize;
        assert_eq!(len, m.len());
        assert_eq!(&m[4..8], &[0, 3, 0, 0]);
        assert!(m.ends_with(b"user\0u\0database\0d\0application_name\0hmrt\0\0"));
    }

    #[test]
    fn messages() {
        let a = Answer::parse(
            b"R\0\0\0\x08\0\0\0\0S\0\0\0\x06a\0K\0\0\0\x04Z\0\0\0\x05I",
            1,
        );
        assert_eq!(a.messages[0], Message::Auth(0));
        assert!(a.ready());
        // Cut after the code of a SASL request: still read.
        let a = Answer::parse(b"R\0\0\0\x17\0\0\0\x0aSCR", 1);
        assert_eq!(a.messages, [Message::Auth(10)]);
        let a = Answer::parse(
            b"E\0\0\0\x2aSFATAL\0VFATAL\0C3D000\0Mdb \"x\" missing\0\0",
            1,
        );
        let e = a.error().unwrap();
        assert_eq!(e.to_string(), "FATAL 3D000: db \"x\" missing");
        assert!(Answer::parse(b"E\0\0\0\x2aSFAT", 1).first_is_error());
        assert_eq!(
            Answer::parse(b"HTTP/1.1 400", 1).messages,
            [Message::Other(b'H')]
        );
        assert_eq!(
            Answer::parse(b"RFB 003.008\n", 1).messages,
            [Message::Other(b'R')]
        );
        assert!(Answer::parse(b"R\0\0", 1).messages.is_empty());
    }
}
