//! Where the last run stopped, kept in the task's `scratch` store between runs: which log
//! (its path as configured and its inode) and how far into it, with the start of a line that
//! had no newline yet.

/// Where reading goes on from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Position {
    /// The configured path (a changed config starts over).
    pub path: String,
    /// The inode of the file read last: a rotation moves it to another name.
    pub inode: u64,
    /// Bytes of it already read.
    pub offset: u64,
    /// The last line read so far, without its newline yet (at most [`CARRY_BYTES`]).
    pub carry: Vec<u8>,
}

/// The most kept of a line that has no newline yet; the rest of a longer line is not matched.
pub const CARRY_BYTES: usize = 4096;
/// The key in the task's scratch store.
pub const KEY: &str = "log-scan.position";
const MAGIC: &[u8; 4] = b"lsp1";

impl Position {
    /// The stored form: magic, inode, offset, path length (little-endian), path, carry.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.path.len() + self.carry.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.inode.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        let len = u32::try_from(self.path.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(self.path.as_bytes());
        let carry = self.carry.get(..CARRY_BYTES).unwrap_or(&self.carry);
        out.extend_from_slice(carry);
        out
    }

    /// The position `bytes` hold, or `None` if they are not one (a first run).
    pub fn decode(bytes: &[u8]) -> Option<Position> {
        let rest = bytes.strip_prefix(MAGIC)?;
        let (inode, rest) = take_u64(rest)?;
        let (offset, rest) = take_u64(rest)?;
        let (len, rest) = rest.split_at_checked(4)?;
        let len = usize::try_from(u32::from_le_bytes(len.try_into().ok()?)).ok()?;
        let (path, carry) = rest.split_at_checked(len)?;
        Some(Position {
            path: String::from_utf8(path.to_vec()).ok()?,
            inode,
            offset,
            carry: carry.get(..CARRY_BYTES).unwrap_or(carry).to_vec(),
        })
    }
}

fn take_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (head, rest) = bytes.split_at_checked(8)?;
    Some((u64::from_le_bytes(head.try_into().ok()?), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_junk() {
        let p = Position {
            path: "/var/log/app.log".into(),
            inode: 42,
            offset: 1 << 40,
            carry: b"half a li".to_vec(),
        };
        assert_eq!(Position::decode(&p.encode()), Some(p));
        assert_eq!(Position::decode(b""), None);
        assert_eq!(Position::decode(b"lsp1\x01"), None);
        let mut long = Position::default().encode();
        long.truncate(10);
        assert_eq!(Position::decode(&long), None);
    }
}
