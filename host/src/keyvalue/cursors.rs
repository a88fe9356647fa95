//! Numeric cursors for `wasi:keyvalue@0.2.0-draft`'s `list-keys`.
//!
//! That version's cursor is a `u64`, too small to carry a position in an
//! ordered key space. The host keeps each listing's real (stable, key-based)
//! cursor here and hands the guest a random number naming it. A number is
//! good for [`TTL`] after it was issued, only for the bucket it came from;
//! the table holds at most [`CAPACITY`] cursors (the oldest go first).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a numeric cursor stays valid.
pub const TTL: Duration = Duration::from_secs(600);
/// How many numeric cursors are kept at most.
pub const CAPACITY: usize = 65_536;

#[derive(Debug)]
struct Saved {
    issued: Instant,
    bucket: String,
    cursor: String,
}

/// The table of numeric cursors of one host.
#[derive(Debug, Default)]
pub struct Cursors {
    saved: Mutex<HashMap<u64, Saved>>,
    fallback: AtomicU64,
}

impl Cursors {
    /// Keep `cursor` of `bucket` (an identity string of scope and prefix)
    /// and return the number that names it.
    pub fn issue(&self, bucket: &str, cursor: String) -> u64 {
        let mut saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
        if saved.len() >= CAPACITY {
            saved.retain(|_, s| s.issued.elapsed() < TTL);
        }
        if saved.len() >= CAPACITY
            && let Some(oldest) = saved.iter().min_by_key(|(_, s)| s.issued).map(|(k, _)| *k)
        {
            saved.remove(&oldest);
        }
        let token = loop {
            let mut b = [0u8; 8];
            // Without an entropy source, numbers are only unique, not secret:
            // a cursor names a position in the guest's own bucket anyway.
            let t = match getrandom::fill(&mut b) {
                Ok(()) => u64::from_le_bytes(b),
                Err(_) => self.fallback.fetch_add(1, Ordering::Relaxed) + 1,
            };
            if t != 0 && !saved.contains_key(&t) {
                break t;
            }
        };
        saved.insert(
            token,
            Saved {
                issued: Instant::now(),
                bucket: bucket.to_string(),
                cursor,
            },
        );
        token
    }

    /// The cursor `token` names, if it is live and was issued for `bucket`.
    pub fn redeem(&self, bucket: &str, token: u64) -> Option<String> {
        let saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
        saved
            .get(&token)
            .filter(|s| s.bucket == bucket && s.issued.elapsed() < TTL)
            .map(|s| s.cursor.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_cursor_for_their_bucket_only() {
        let c = Cursors::default();
        let t = c.issue("instance \"a\"", "1abc".into());
        assert_eq!(c.redeem("instance \"a\"", t).as_deref(), Some("1abc"));
        assert_eq!(c.redeem("instance \"b\"", t), None);
        assert_eq!(c.redeem("instance \"a\"", t.wrapping_add(1)), None);
        // Redeeming does not consume: a guest may retry a page.
        assert_eq!(c.redeem("instance \"a\"", t).as_deref(), Some("1abc"));
    }

    #[test]
    fn the_table_is_bounded() {
        let c = Cursors::default();
        let first = c.issue("b", "first".into());
        for i in 0..CAPACITY {
            c.issue("b", i.to_string());
        }
        assert!(c.saved.lock().unwrap().len() <= CAPACITY);
        assert_eq!(c.redeem("b", first), None, "the oldest cursor was evicted");
    }
}
