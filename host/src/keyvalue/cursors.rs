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
//! first when it asks for more), and the table at most [`CAPACITY`]. When
//! the table is full, a cursor goes from an instance holding at least its
//! fair share (the capacity over the instances holding cursors): the
//! asking instance's own oldest if it holds that much, else the oldest of
//! such an instance. A guest that lists in a loop only ever evicts its own
//! cursors or those of instances holding at least a fair share; a quiet
//! instance's only listing goes only when more than half the capacity's
//! worth of instances hold cursors (a fair share of one). Issuing walks the
//! issue order past the cursors of instances below their share: at most
//! the table, a few milliseconds under its lock.

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
    /// How many live tokens each instance holds (no entry for none).
    live: HashMap<String, usize>,
}

impl Table {
    fn remove(&mut self, token: u64) {
        if let Some(s) = self.saved.remove(&token)
            && let Some(n) = self.live.get_mut(&s.instance)
        {
            *n -= 1;
            if *n == 0 {
                self.live.remove(&s.instance);
            }
        }
    }

    /// The live tokens `instance` holds.
    fn held(&self, instance: &str) -> usize {
        self.live.get(instance).copied().unwrap_or(0)
    }

    /// Remove `instance`'s oldest live token; whether there was one.
    fn evict_own(&mut self, instance: &str) -> bool {
        while let Some(t) = self
            .by_instance
            .get_mut(instance)
            .and_then(VecDeque::pop_front)
        {
            if self.saved.contains_key(&t) {
                self.remove(t);
                return true;
            }
        }
        false
    }

    /// The table is full: make room for `instance` from an instance
    /// holding at least its fair share. One such instance always exists
    /// (the shares add up to the capacity), so the walk ends; a token
    /// passed over goes to the back of the issue order, live. Whether one
    /// went (the callers stop if not, rather than loop under the lock).
    fn evict_for(&mut self, instance: &str) -> bool {
        let holders = self.live.len() + usize::from(self.held(instance) == 0);
        let fair = (CAPACITY / holders.max(1)).max(1);
        if self.held(instance) >= fair {
            return self.evict_own(instance);
        }
        // Each live token is looked at once at most.
        for _ in 0..self.order.len() {
            let Some(t) = self.order.pop_front() else {
                break;
            };
            let Some(held) = self.saved.get(&t).map(|s| self.held(&s.instance)) else {
                continue;
            };
            if held >= fair {
                self.remove(t);
                return true;
            }
            self.order.push_back(t);
        }
        false
    }

    /// Make room for one more cursor of `instance`.
    fn room(&mut self, instance: &str) {
        // Forget its tokens that are gone or expired, oldest first.
        while let Some(&t) = self.by_instance.get(instance).and_then(VecDeque::front) {
            match self.saved.get(&t) {
                Some(s) if s.issued.elapsed() < TTL => break,
                Some(_) => self.remove(t),
                None => {}
            }
            if let Some(mine) = self.by_instance.get_mut(instance) {
                mine.pop_front();
            }
        }
        // Still at its share: its own oldest goes.
        while self.held(instance) >= PER_INSTANCE && self.evict_own(instance) {}
        while self.saved.len() >= CAPACITY && self.evict_for(instance) {}
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
        *table.live.entry(instance.to_string()).or_default() += 1;
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
    fn a_full_table_takes_from_those_holding_the_most() {
        let c = Cursors::default();
        // A quiet instance lists first; then 64 busy ones fill the table.
        let quiet = c.issue("quiet", "b", "kept".into());
        let busy: Vec<String> = (0..64).map(|i| format!("busy{i}")).collect();
        let mut oldest_busy = Vec::new();
        for round in 0..PER_INSTANCE {
            for b in &busy {
                let t = c.issue(b, "b", round.to_string());
                if round == 0 {
                    oldest_busy.push(t);
                }
            }
        }
        assert_eq!(c.len(), CAPACITY);
        // The quiet instance's only cursor outlived every busy one's
        // oldest: the table took from the instances holding the most.
        assert_eq!(c.redeem("quiet", "b", quiet).as_deref(), Some("kept"));
        // The last issue (busy63's 1,024th) found the table full, busy63
        // at its fair share (1,023 ≥ 65,536 / 65): its own oldest went,
        // every other busy instance's stayed.
        for (i, &t) in oldest_busy.iter().enumerate() {
            assert_eq!(
                c.redeem(&busy[i], "b", t).is_none(),
                i == 63,
                "{}'s oldest",
                busy[i]
            );
        }
        // A newcomer takes room from a busy instance, not from quiet.
        let new = c.issue("new", "b", "n".into());
        assert_eq!(c.redeem("new", "b", new).as_deref(), Some("n"));
        assert_eq!(c.redeem("quiet", "b", quiet).as_deref(), Some("kept"));
        // A busy instance at its share evicts its own.
        let before: usize = c.table.lock().unwrap().held("busy1");
        c.issue("busy1", "b", "more".into());
        assert_eq!(c.table.lock().unwrap().held("busy1"), before);
        assert_eq!(c.redeem("quiet", "b", quiet).as_deref(), Some("kept"));
        assert_eq!(c.len(), CAPACITY);
        // The live counts agree with the table.
        let t = c.table.lock().unwrap();
        assert_eq!(t.live.values().sum::<usize>(), t.saved.len());
    }

    #[test]
    fn the_table_is_bounded() {
        let c = Cursors::default();
        let first = c.issue("i0", "b", "first".into());
        for i in 0..CAPACITY {
            c.issue(&format!("i{}", i % 100), "b", i.to_string());
        }
        assert!(c.len() <= CAPACITY);
        // The last issue (i35's) found the table full and i35 at its fair
        // share: its own oldest went, and i0's first is still there…
        assert_eq!(c.redeem("i0", "b", first).as_deref(), Some("first"));
        // …until i0, at its share too, asks for more.
        c.issue("i0", "b", "more".into());
        assert_eq!(c.redeem("i0", "b", first), None, "i0's oldest was evicted");
        let t = c.table.lock().unwrap();
        assert!(t.order.len() <= 2 * CAPACITY + 1);
        assert_eq!(t.live.values().sum::<usize>(), t.saved.len());
    }
}
