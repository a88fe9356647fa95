//! Numeric cursors for `wasi:keyvalue@0.2.0-draft`'s `list-keys`.
//!
//! That version's cursor is a `u64`, too small to carry a position in an
//! ordered key space. The host keeps each listing's real (stable, key-based)
//! cursor here and hands the guest a random number naming it. A number is
//! good for [`TTL`] after it was issued, only for the bucket and the guest
//! instance it came from.
//!
//! The table is shared by every guest of the host, so each calling instance
//! has its own share: at most [`PER_INSTANCE`] live cursors (its oldest go
//! first when it asks for more), and the table at most [`CAPACITY`] (the
//! oldest of all go first). A guest that lists in a loop only ever evicts
//! its own cursors, and every step is O(1) (amortized).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a numeric cursor stays valid.
pub const TTL: Duration = Duration::from_secs(600);
/// How many numeric cursors are kept at most.
pub const CAPACITY: usize = 65_536;
/// How many numeric cursors one calling instance keeps at most.
pub const PER_INSTANCE: usize = 1024;

#[derive(Debug)]
struct Saved {
    issued: Instant,
    instance: String,
    bucket: String,
    cursor: String,
}

#[derive(Debug, Default)]
struct Table {
    saved: HashMap<u64, Saved>,
    /// Every issued token in issue order (some already gone: skipped).
    order: VecDeque<u64>,
    /// Each instance's tokens in issue order (some already gone).
    by_instance: HashMap<String, VecDeque<u64>>,
}

impl Table {
    fn remove(&mut self, token: u64) {
        self.saved.remove(&token);
    }

    /// Make room for one more cursor of `instance`.
    fn room(&mut self, instance: &str) {
        let Table {
            saved, by_instance, ..
        } = self;
        if let Some(mine) = by_instance.get_mut(instance) {
            // Forget tokens that are gone or expired, oldest first.
            while let Some(&t) = mine.front() {
                match saved.get(&t) {
                    Some(s) if s.issued.elapsed() < TTL => break,
                    Some(_) => {
                        saved.remove(&t);
                        mine.pop_front();
                    }
                    None => {
                        mine.pop_front();
                    }
                }
            }
            // Still over its share: its own oldest goes.
            while mine.len() >= PER_INSTANCE {
                if let Some(t) = mine.pop_front() {
                    saved.remove(&t);
                }
            }
        }
        while self.saved.len() >= CAPACITY {
            match self.order.pop_front() {
                Some(t) => self.remove(t),
                None => break,
            }
        }
        // Drop gone tokens from the queues before they outgrow the table.
        if self.order.len() > 2 * CAPACITY {
            let saved = &self.saved;
            self.order.retain(|t| saved.contains_key(t));
            for q in self.by_instance.values_mut() {
                q.retain(|t| saved.contains_key(t));
            }
            self.by_instance.retain(|_, q| !q.is_empty());
        }
    }
}

/// The table of numeric cursors of one host.
#[derive(Debug, Default)]
pub struct Cursors {
    table: Mutex<Table>,
    fallback: AtomicU64,
}

impl Cursors {
    /// Keep `cursor` of `bucket` (an identity string of scope and prefix),
    /// asked for by the guest running as `instance`, and return the number
    /// that names it.
    pub fn issue(&self, instance: &str, bucket: &str, cursor: String) -> u64 {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.room(instance);
        let token = loop {
            let mut b = [0u8; 8];
            // Without an entropy source, numbers are only unique, not secret:
            // a cursor names a position in the guest's own bucket anyway.
            let t = match getrandom::fill(&mut b) {
                Ok(()) => u64::from_le_bytes(b),
                Err(_) => self.fallback.fetch_add(1, Ordering::Relaxed) + 1,
            };
            if t != 0 && !table.saved.contains_key(&t) {
                break t;
            }
        };
        table.saved.insert(
            token,
            Saved {
                issued: Instant::now(),
                instance: instance.to_string(),
                bucket: bucket.to_string(),
                cursor,
            },
        );
        table.order.push_back(token);
        table
            .by_instance
            .entry(instance.to_string())
            .or_default()
            .push_back(token);
        token
    }

    /// The cursor `token` names, if it is live and was issued to `instance`
    /// for `bucket`.
    pub fn redeem(&self, instance: &str, bucket: &str, token: u64) -> Option<String> {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table
            .saved
            .get(&token)
            .filter(|s| s.instance == instance && s.bucket == bucket && s.issued.elapsed() < TTL)
            .map(|s| s.cursor.clone())
    }

    /// How many cursors the table holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.lock().unwrap().saved.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_cursor_for_their_bucket_only() {
        let c = Cursors::default();
        let t = c.issue("a", "instance \"a\"", "1abc".into());
        assert_eq!(c.redeem("a", "instance \"a\"", t).as_deref(), Some("1abc"));
        assert_eq!(c.redeem("a", "instance \"b\"", t), None);
        assert_eq!(c.redeem("b", "instance \"a\"", t), None);
        assert_eq!(c.redeem("a", "instance \"a\"", t.wrapping_add(1)), None);
        // Redeeming does not consume: a guest may retry a page.
        assert_eq!(c.redeem("a", "instance \"a\"", t).as_deref(), Some("1abc"));
    }

    #[test]
    fn a_guest_listing_in_a_loop_evicts_only_its_own_cursors() {
        let c = Cursors::default();
        let other = c.issue("quiet", "b", "kept".into());
        let first = c.issue("busy", "b", "first".into());
        for i in 0..3 * PER_INSTANCE {
            c.issue("busy", "b", i.to_string());
        }
        assert_eq!(c.redeem("quiet", "b", other).as_deref(), Some("kept"));
        assert_eq!(c.redeem("busy", "b", first), None, "its oldest went");
        assert_eq!(c.len(), PER_INSTANCE + 1);
    }

    #[test]
    fn the_table_is_bounded() {
        let c = Cursors::default();
        let first = c.issue("i0", "b", "first".into());
        for i in 0..CAPACITY {
            c.issue(&format!("i{}", i % 100), "b", i.to_string());
        }
        assert!(c.len() <= CAPACITY);
        assert_eq!(
            c.redeem("i0", "b", first),
            None,
            "the oldest cursor was evicted"
        );
        let t = c.table.lock().unwrap();
        assert!(t.order.len() <= 2 * CAPACITY + 1);
    }
}
