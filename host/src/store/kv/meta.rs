//! The meta record of a key: its kind, etag version, expiry, and for a value
//! the bytes themselves; for a map its field count; for a list the seq range
//! of its items, which makes index/set/pop/length O(log n).

use crate::store::error::{Result, StateError};
use crate::store::types::KeyKind;

/// What a key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A value, inline.
    Value(Vec<u8>),
    /// A map with `len` field records.
    Map {
        /// Number of fields.
        len: u64,
    },
    /// A list whose items have seqs `head..tail`.
    List {
        /// Seq of the first item.
        head: i64,
        /// One past the seq of the last item.
        tail: i64,
    },
}

impl Body {
    /// The bytes of a value (0 for a map or a list): what a read returns.
    pub fn value_len(&self) -> usize {
        match self {
            Body::Value(b) => b.len(),
            _ => 0,
        }
    }
}

/// A decoded meta record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Etag version (db-wide monotonic).
    pub version: u64,
    /// Unix ms at which the key dies, 0 = never.
    pub expires_at: u64,
    /// The data.
    pub body: Body,
}

impl Meta {
    /// The kind of the body.
    pub fn kind(&self) -> KeyKind {
        match self.body {
            Body::Value(_) => KeyKind::Value,
            Body::Map { .. } => KeyKind::Map,
            Body::List { .. } => KeyKind::List,
        }
    }

    /// Has it expired at `now`? (Past its expiry time, as Redis: at the exact
    /// millisecond it still lives with a TTL of 0.)
    pub fn expired(&self, now: u64) -> bool {
        self.expires_at != 0 && self.expires_at < now
    }

    /// Remaining TTL in ms at `now`, if any.
    pub fn ttl_ms(&self, now: u64) -> Option<u64> {
        (self.expires_at != 0).then(|| self.expires_at.saturating_sub(now))
    }

    /// Encode for storage.
    pub fn encode(&self) -> Vec<u8> {
        let (tag, body) = match &self.body {
            Body::Value(b) => (0u8, b.len()),
            Body::Map { .. } => (1, 8),
            Body::List { .. } => (2, 16),
        };
        let mut v = Vec::with_capacity(17 + body);
        v.push(tag);
        v.extend_from_slice(&self.version.to_be_bytes());
        v.extend_from_slice(&self.expires_at.to_be_bytes());
        match &self.body {
            Body::Value(b) => v.extend_from_slice(b),
            Body::Map { len } => v.extend_from_slice(&len.to_be_bytes()),
            Body::List { head, tail } => {
                v.extend_from_slice(&head.to_be_bytes());
                v.extend_from_slice(&tail.to_be_bytes());
            }
        }
        v
    }

    /// Decode a stored record.
    pub fn decode(b: &[u8]) -> Result<Meta> {
        let bad = || StateError::corrupt("meta record");
        let word = |at: usize| -> Result<[u8; 8]> {
            b.get(at..at + 8)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(bad)
        };
        let version = u64::from_be_bytes(word(1)?);
        let expires_at = u64::from_be_bytes(word(9)?);
        let body = match b[0] {
            0 => Body::Value(b[17..].to_vec()),
            1 => Body::Map {
                len: u64::from_be_bytes(word(17)?),
            },
            2 => Body::List {
                head: i64::from_be_bytes(word(17)?),
                tail: i64::from_be_bytes(word(25)?),
            },
            _ => return Err(bad()),
        };
        Ok(Meta {
            version,
            expires_at,
            body,
        })
    }
}

/// A stored meta record read in place: its header, and a value's bytes
/// borrowed from the record.
#[derive(Debug, Clone, Copy)]
pub struct MetaHead<'a> {
    /// Etag version.
    pub version: u64,
    /// Unix ms at which the key dies, 0 = never.
    pub expires_at: u64,
    /// The bytes, for a value; `None` for a map or a list.
    pub value: Option<&'a [u8]>,
}

impl MetaHead<'_> {
    /// Has it expired at `now`? (As [`Meta::expired`].)
    pub fn expired(&self, now: u64) -> bool {
        self.expires_at != 0 && self.expires_at < now
    }
}

impl Meta {
    /// Read a stored record's header without copying it; `None` if damaged.
    pub fn peek(b: &[u8]) -> Option<MetaHead<'_>> {
        let word = |at: usize| -> Option<u64> {
            Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
        };
        Some(MetaHead {
            version: word(1)?,
            expires_at: word(9)?,
            value: match b.first()? {
                0 => Some(&b[17..]),
                1 | 2 => None,
                _ => return None,
            },
        })
    }
}

/// The etag text of a version: 16 lower-case hex digits. (Every read
/// makes one: built directly, one allocation — `format!` with padding grew
/// the string a character at a time, a sixth of a hot guest read.)
pub fn etag_of(version: u64) -> String {
    let mut etag = String::with_capacity(16);
    push_hex(&mut etag, version, 16);
    etag
}

/// The low `digits` hex digits of `v` (lower case, as `format!("{v:0N$x}")`
/// writes them), appended to `out` without the formatting machinery.
pub fn push_hex(out: &mut String, v: u64, digits: u32) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out.push(char::from(DIGITS[((v >> (i * 4)) & 0xf) as usize]));
    }
}

/// Parse an etag; `None` if it is not of the form the store issues.
pub fn parse_etag(etag: &str) -> Option<u64> {
    if etag.len() != 16
        || !etag
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return None;
    }
    u64::from_str_radix(etag, 16).ok().filter(|&v| v > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digits_as_format_writes_them() {
        for v in [0, 1, 0xabc, 0xdead_beef, u64::MAX, 0x0123_4567_89ab_cdef] {
            let mut s = String::new();
            push_hex(&mut s, v, 16);
            push_hex(&mut s, v, 8);
            push_hex(&mut s, v, 1);
            assert_eq!(s, format!("{v:016x}{:08x}{:x}", v as u32, v & 0xf));
        }
    }

    #[test]
    fn etags_are_16_hex_digits_and_parse_back() {
        for v in [1, 9, 10, 0xabc, 0x0123_4567_89ab_cdef, 1 << 63, u64::MAX] {
            let e = etag_of(v);
            assert_eq!(e, format!("{v:016x}"));
            assert_eq!(parse_etag(&e), Some(v));
        }
        assert_eq!(etag_of(0), "0000000000000000");
    }
}
