//! Values a [`State`](crate::State) of the instance or the account scope
//! keeps from its reads, so that reading a key again costs one cheap host
//! call (`read-stamp`, which reads no state) instead of a full read.
//!
//! A kept value is exactly what a new read would return: the host stamps
//! every read with the store's generation, which changes with every commit
//! to the store (by this guest, another instance, another request, anyone)
//! and never comes back; a kept value is answered only while the current
//! stamp shows the generation it was read in and a time before the key's
//! expiry. Otherwise (any commit since, a store that cannot vouch — Redis —
//! or a session scope, which can end by time alone) the read goes to the
//! host as before. Only `get` and `get_bytes` use it; etag reads
//! (`get_entry`), `get_many` and transactions always ask the host.

use std::collections::HashMap;

use crate::bindings::state as ws;
use crate::bindings::types as w;

type R<T> = Result<T, w::Error>;

/// Keys kept at most per [`State`](crate::State) (a full cache starts again).
const MAX_KEYS: usize = 64;
/// Longest value kept (longer ones are read from the host each time): a
/// `State` keeps at most 256 KiB of values.
const MAX_VALUE: usize = 4 * 1024;

/// The host calls the cache makes: the WIT bucket (with the state
/// interface's `read-stamp`), or a model in the tests.
pub(crate) trait StampHost {
    /// The store's current generation and clock (none: it cannot vouch).
    fn read_stamp(&self) -> Option<w::Stamp>;
    /// A read of `key` with a stamp taken before it and the key's expiry.
    fn get_stamped(&self, key: &str) -> R<w::StampedValue>;
}

impl StampHost for ws::Bucket {
    fn read_stamp(&self) -> Option<w::Stamp> {
        ws::read_stamp()
    }

    fn get_stamped(&self, key: &str) -> R<w::StampedValue> {
        ws::Bucket::get_stamped(self, key)
    }
}

/// A kept read.
struct Kept {
    /// The value (none: the key did not exist).
    value: Option<Vec<u8>>,
    /// The key's expiry (Unix ms on the store's clock; alive through it).
    expires_at_ms: Option<u64>,
    /// The store's clock at the read's stamp: a clock set back before it
    /// could bring back a key that had expired (but was not yet swept)
    /// when it was read as absent.
    read_at_ms: u64,
}

/// The values one `State` keeps, all read in one generation of the store.
#[derive(Default)]
pub(crate) struct ReadCache {
    generation: u64,
    kept: HashMap<String, Kept>,
}

impl ReadCache {
    /// The value of `key`, as `get` returns it: kept if still current,
    /// else read from `host` (and kept if the host vouches for it).
    pub(crate) fn get(&mut self, host: &dyn StampHost, key: &str) -> R<Option<Vec<u8>>> {
        if let Some(kept) = self.kept.get(key) {
            match host.read_stamp() {
                Some(s) if s.generation == self.generation => {
                    // Strictly before the expiry (a stamp's millisecond
                    // may be the last one the key lives, or not), and not
                    // before the read.
                    if kept.expires_at_ms.is_none_or(|at| s.now_ms < at)
                        && s.now_ms >= kept.read_at_ms
                    {
                        return Ok(kept.value.clone());
                    }
                    self.kept.remove(key);
                }
                _ => self.kept.clear(),
            }
        }
        let read = host.get_stamped(key)?;
        if let Some(stamp) = read.stamp {
            self.keep(stamp, key, &read);
        }
        Ok(read.value)
    }

    fn keep(&mut self, stamp: w::Stamp, key: &str, read: &w::StampedValue) {
        if stamp.generation != self.generation {
            self.kept.clear();
            self.generation = stamp.generation;
        }
        if read.value.as_ref().is_some_and(|v| v.len() > MAX_VALUE) {
            return;
        }
        if self.kept.len() >= MAX_KEYS && !self.kept.contains_key(key) {
            self.kept.clear();
        }
        self.kept.insert(
            key.to_owned(),
            Kept {
                value: read.value.clone(),
                expires_at_ms: read.expires_at_ms,
                read_at_ms: stamp.now_ms,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// A store as the contract describes it: a value or a map per key, an
    /// expiry (alive through its millisecond), a generation that every
    /// commit moves, a clock. Counts its calls.
    /// A key's value (none: a map) and expiry.
    type Stored = (Option<Vec<u8>>, Option<u64>);

    #[derive(Default)]
    struct Model {
        keys: RefCell<BTreeMap<String, Stored>>,
        generation: Cell<u64>,
        now: Cell<u64>,
        vouches: Cell<bool>,
        reads: Cell<u32>,
        /// A commit that lands between the next read's stamp and its read.
        racing: RefCell<Option<(String, Option<Vec<u8>>)>>,
    }

    impl Model {
        fn new() -> Self {
            let m = Model::default();
            m.now.set(1_000);
            m.vouches.set(true);
            m
        }

        /// A commit by anyone. `value` none: a map.
        fn write(&self, key: &str, value: Option<Vec<u8>>, expires: Option<u64>) {
            self.keys
                .borrow_mut()
                .insert(key.to_owned(), (value, expires));
            self.generation.set(self.generation.get() + 1);
        }

        fn delete(&self, key: &str) {
            self.keys.borrow_mut().remove(key);
            self.generation.set(self.generation.get() + 1);
        }

        /// What a read returns now.
        fn read(&self, key: &str) -> R<Stored> {
            match self.keys.borrow().get(key) {
                Some((_, Some(at))) if *at < self.now.get() => Ok((None, None)),
                Some((None, _)) => Err(w::Error::WrongType),
                Some((Some(v), at)) => Ok((Some(v.clone()), *at)),
                None => Ok((None, None)),
            }
        }
    }

    impl StampHost for Model {
        fn read_stamp(&self) -> Option<w::Stamp> {
            self.vouches.get().then(|| w::Stamp {
                generation: self.generation.get(),
                now_ms: self.now.get(),
            })
        }

        fn get_stamped(&self, key: &str) -> R<w::StampedValue> {
            self.reads.set(self.reads.get() + 1);
            let stamp = self.read_stamp();
            if let Some((k, v)) = self.racing.borrow_mut().take() {
                self.write(&k, v, None);
            }
            let (value, expires_at_ms) = self.read(key)?;
            Ok(w::StampedValue {
                value,
                expires_at_ms,
                stamp,
            })
        }
    }

    #[test]
    fn a_state_can_still_be_shared() {
        fn shared<T: Send + Sync>() {}
        shared::<crate::State>();
    }

    #[test]
    fn a_kept_value_costs_no_read_until_anything_is_committed() {
        let m = Model::new();
        let mut c = ReadCache::default();
        m.write("k", Some(b"1".to_vec()), None);
        m.write("other", Some(b"x".to_vec()), None);
        for _ in 0..5 {
            assert_eq!(c.get(&m, "k").unwrap(), Some(b"1".to_vec()));
            assert_eq!(c.get(&m, "missing").unwrap(), None);
        }
        assert_eq!(m.reads.get(), 2, "one read per key");
        // A commit to another key still invalidates: the generation is the
        // whole store's.
        m.write("other", Some(b"y".to_vec()), None);
        assert_eq!(c.get(&m, "k").unwrap(), Some(b"1".to_vec()));
        assert_eq!(m.reads.get(), 3);
        m.write("k", Some(b"2".to_vec()), None);
        assert_eq!(c.get(&m, "k").unwrap(), Some(b"2".to_vec()));
        m.delete("k");
        assert_eq!(c.get(&m, "k").unwrap(), None);
    }

    #[test]
    fn a_kept_value_ends_before_its_key_expires() {
        let m = Model::new();
        let mut c = ReadCache::default();
        m.write("k", Some(b"v".to_vec()), Some(1_010));
        assert_eq!(c.get(&m, "k").unwrap(), Some(b"v".to_vec()));
        m.now.set(1_009);
        assert_eq!(c.get(&m, "k").unwrap(), Some(b"v".to_vec()));
        assert_eq!(m.reads.get(), 1);
        // At the expiry's millisecond the key still lives, but the cache
        // asks the host rather than decide it.
        m.now.set(1_010);
        assert_eq!(c.get(&m, "k").unwrap(), Some(b"v".to_vec()));
        assert_eq!(m.reads.get(), 2);
        m.now.set(1_011);
        assert_eq!(c.get(&m, "k").unwrap(), None);
    }

    #[test]
    fn a_store_that_cannot_vouch_is_read_every_time() {
        let m = Model::new();
        m.vouches.set(false);
        let mut c = ReadCache::default();
        m.write("k", Some(b"v".to_vec()), None);
        for _ in 0..3 {
            assert_eq!(c.get(&m, "k").unwrap(), Some(b"v".to_vec()));
        }
        assert_eq!(m.reads.get(), 3);
    }

    #[test]
    fn errors_and_large_values_are_not_kept() {
        let m = Model::new();
        let mut c = ReadCache::default();
        m.write("map", None, None);
        m.write("big", Some(vec![7; MAX_VALUE + 1]), None);
        for _ in 0..2 {
            assert!(matches!(c.get(&m, "map"), Err(w::Error::WrongType)));
            assert_eq!(
                c.get(&m, "big").unwrap().map(|v| v.len()),
                Some(MAX_VALUE + 1)
            );
        }
        assert_eq!(m.reads.get(), 4);
    }

    #[test]
    fn the_cache_stays_small() {
        let m = Model::new();
        let mut c = ReadCache::default();
        for i in 0..(MAX_KEYS * 3) {
            m.write(&format!("k{i}"), Some(vec![1]), None);
        }
        for i in 0..(MAX_KEYS * 3) {
            c.get(&m, &format!("k{i}")).unwrap();
            assert!(c.kept.len() <= MAX_KEYS);
        }
    }

    #[derive(Debug, Clone)]
    enum Step {
        Write(u8, Option<u8>, Option<u16>),
        /// A write that commits between the next read's stamp and read.
        Racing(u8, u8),
        Delete(u8),
        Advance(u16),
        /// The clock set back (an NTP step, `ManualClock::set`).
        Back(u16),
        Vouch(bool),
        Get(u8),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            2 => (0..6u8, proptest::option::weighted(0.9, any::<u8>()), proptest::option::of(0..40u16))
                .prop_map(|(k, v, t)| Step::Write(k, v, t)),
            1 => (0..6u8, any::<u8>()).prop_map(|(k, v)| Step::Racing(k, v)),
            1 => (0..6u8).prop_map(Step::Delete),
            2 => (0..25u16).prop_map(Step::Advance),
            1 => (0..25u16).prop_map(Step::Back),
            1 => any::<bool>().prop_map(Step::Vouch),
            8 => (0..6u8).prop_map(Step::Get),
        ]
    }

    proptest! {
        /// Whatever happens between reads — commits (also between a read's
        /// stamp and the read), time passing or set back, a store that
        /// stops vouching — a read through the cache returns what a read of
        /// the store returns at that moment.
        #[test]
        fn reads_through_the_cache_match_the_store(steps in proptest::collection::vec(step(), 1..120)) {
            let m = Model::new();
            let mut c = ReadCache::default();
            for s in steps {
                match s {
                    Step::Write(k, v, ttl) => m.write(
                        &format!("k{k}"),
                        v.map(|b| vec![b]),
                        ttl.map(|t| m.now.get() + u64::from(t)),
                    ),
                    Step::Racing(k, v) => {
                        *m.racing.borrow_mut() = Some((format!("k{k}"), Some(vec![v])));
                    }
                    Step::Delete(k) => m.delete(&format!("k{k}")),
                    Step::Advance(ms) => m.now.set(m.now.get() + u64::from(ms)),
                    Step::Back(ms) => m.now.set(m.now.get().saturating_sub(u64::from(ms))),
                    Step::Vouch(v) => m.vouches.set(v),
                    Step::Get(k) => {
                        let key = format!("k{k}");
                        let got = c.get(&m, &key);
                        // After the call: a racing commit lands inside it
                        // (a read from the host then sees it).
                        let want = m.read(&key).map(|(v, _)| v);
                        prop_assert_eq!(format!("{got:?}"), format!("{want:?}"));
                    }
                }
            }
        }
    }
}
