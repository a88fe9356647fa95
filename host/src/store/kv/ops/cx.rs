//! The context one write request runs in: its atomic view of the key space,
//! the time, the limits, etag issuing, and per-owner storage accounting that
//! enforces quotas before anything is kept.

use std::collections::BTreeMap;

use crate::store::error::{Result, StateError};
use crate::store::kv::backend::{RawRead, RawWrite};
use crate::store::kv::layout::{self, COUNTER};
use crate::store::kv::meta;
use crate::store::kv::watch::{self, Capture};
use crate::store::limits::{Limits, ReplyBudget};

/// How a store numbers and names etags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Etags {
    /// One database-wide counter (the `COUNTER` record: a u64, big-endian);
    /// an etag is 16 hex digits of a version (the redb engine).
    Global,
    /// A counter per owner (the `COUNTER` record of the owner: an 8-byte
    /// nonce, then the u64), the nonce chosen at random when the owner is
    /// first written; an etag is the nonce and 16 hex digits, so an etag of
    /// another owner, or of an owner destroyed and re-created, never
    /// matches (the Redis engine). `nonce`: the one a new owner gets.
    Owner {
        /// The nonce (8 lower-case hex digits) if the owner has none yet.
        nonce: [u8; 8],
    },
}

/// A write request's view: reads see its own writes.
pub struct WriteCx<'a> {
    raw: &'a mut dyn RawWrite,
    /// The request's time, Unix ms.
    pub now: u64,
    /// Limits in force.
    pub limits: &'a Limits,
    /// How etags are numbered and named.
    etags: Etags,
    /// Last etag version issued (loaded on first use) and whether it moved.
    counter: Option<(u64, bool)>,
    /// The owner's etag nonce in use (loaded with the counter; `Etags::Owner`).
    nonce: [u8; 8],
    /// Bytes added (or freed) per owner (a request touches one owner, or
    /// a few: looked up in order).
    deltas: Vec<(Vec<u8>, i64)>,
    /// Value changes of watched scopes, queued for their watchers at the end.
    pub watch: Capture,
    /// The last record read by [`WriteCx::get_sized`] and its size (`None`:
    /// absent), until a write to it: the write that usually follows needs
    /// the old size for the owner's usage, and need not look it up again.
    sized: Option<(Vec<u8>, Option<usize>)>,
    /// What the request's pops may still return
    /// ([`Limits::max_reply_bytes`], for all its ops together).
    pub reply: ReplyBudget,
}

fn record_size(key: &[u8], value_len: usize) -> i64 {
    (key.len() + value_len) as i64
}

impl<'a> WriteCx<'a> {
    /// A context over `raw`.
    pub fn new(raw: &'a mut dyn RawWrite, now: u64, limits: &'a Limits) -> Self {
        WriteCx {
            raw,
            now,
            limits,
            etags: Etags::Global,
            counter: None,
            nonce: [0; 8],
            deltas: Vec::new(),
            watch: Capture::default(),
            sized: None,
            reply: ReplyBudget::new(limits.max_reply_bytes),
        }
    }

    /// The same context numbering etags per owner (`Etags::Owner`).
    pub fn with_etags(mut self, etags: Etags) -> Self {
        self.etags = etags;
        self
    }

    /// Read access to the request's view.
    pub fn r(&self) -> &dyn RawRead {
        &*self.raw
    }

    fn account(&mut self, key: &[u8], delta: i64) {
        if let Some(owner) = layout::owner_of(key) {
            self.account_owner(owner, delta);
        }
    }

    fn account_owner(&mut self, owner: &[u8], delta: i64) {
        match self.deltas.iter_mut().find(|(o, _)| o == owner) {
            Some((_, d)) => *d += delta,
            None => self.deltas.push((owner.to_vec(), delta)),
        }
    }

    /// Read a record, keeping its size for a write of it that follows.
    pub fn get_sized(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let v = self.raw.get(key)?;
        self.sized = Some((key.to_vec(), v.as_ref().map(Vec::len)));
        Ok(v)
    }

    /// The stored size of `key` (`None`: absent), before a write to it.
    fn old_size(&mut self, key: &[u8]) -> Result<Option<usize>> {
        match self.sized.take() {
            Some((k, n)) if k == key => Ok(n),
            _ => self.raw.value_len(key),
        }
    }

    /// Store a record.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.before_put(key, value)?;
        self.raw.put(key, value)
    }

    /// [`WriteCx::put`], handing over the buffers (a record built for the
    /// write is not copied again).
    pub fn put_owned(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.before_put(&key, &value)?;
        self.raw.put_owned(key, value)
    }

    /// What a put of `value` under `key` tells the watchers and the
    /// owner's usage.
    fn before_put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if layout::owner_of(key).is_some() {
            self.watch.meta_write(&*self.raw, key, Some(value))?;
            let old = self.old_size(key)?.map_or(0, |n| record_size(key, n));
            self.account(key, record_size(key, value.len()) - old);
        } else if self.sized.as_ref().is_some_and(|(k, _)| k == key) {
            self.sized = None;
        }
        Ok(())
    }

    /// Store a record known not to exist — a list item past either end of
    /// its list (items live only between the list's head and tail; every
    /// op that moves them deletes what falls outside): its size counts for
    /// the owner without a lookup of an old one.
    pub fn put_new(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if layout::owner_of(key).is_some() {
            self.account(key, record_size(key, value.len()));
        }
        if self.sized.as_ref().is_some_and(|(k, _)| k == key) {
            self.sized = None;
        }
        self.raw.put(key, value)
    }

    /// Delete a record.
    pub fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.sized = None;
        if layout::owner_of(key).is_some()
            && let Some(n) = self.raw.value_len(key)?
        {
            self.watch.meta_write(&*self.raw, key, None)?;
            self.account(key, -record_size(key, n));
        }
        self.raw.delete(key)
    }

    /// Delete every record in `start..end`.
    pub fn delete_range(&mut self, start: &[u8], end: Option<&[u8]>) -> Result<()> {
        self.sized = None;
        if start.first() == Some(&layout::DATA) {
            self.watch.range_delete(&*self.raw, start, end)?;
            let mut freed: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
            self.raw.scan(start, end, false, &mut |k, v| {
                if let Some(owner) = layout::owner_of(k) {
                    *freed.entry(owner.to_vec()).or_default() += record_size(k, v.len());
                }
                true
            })?;
            for (owner, n) in freed {
                self.account_owner(&owner, -n);
            }
        }
        self.raw.delete_range(start, end)
    }

    /// The last etag version issued so far.
    pub fn last_version(&mut self) -> Result<u64> {
        if self.counter.is_none()
            && self.etags == Etags::Global
            && let Some(v) = self.raw.etag_counter().and_then(|c| c.last)
        {
            self.counter = Some((v, false));
        }
        if self.counter.is_none() {
            let record = self.raw.get(COUNTER)?;
            let v = match (self.etags, record) {
                (Etags::Global, Some(b)) => layout::be_u64(&b),
                (Etags::Owner { .. }, Some(b)) => b.split_first_chunk::<8>().and_then(|(n, v)| {
                    self.nonce = *n;
                    layout::be_u64(v)
                }),
                (Etags::Global, None) => Some(0),
                (Etags::Owner { nonce }, None) => {
                    self.nonce = nonce;
                    Some(0)
                }
            };
            let v = v.ok_or_else(|| StateError::corrupt("etag counter"))?;
            self.counter = Some((v, false));
        }
        Ok(self.counter.map_or(0, |c| c.0))
    }

    /// Make the last version issued at least `floor` (the next one is
    /// newer); whether it moved.
    pub fn raise_version(&mut self, floor: u64) -> Result<bool> {
        if self.last_version()? >= floor {
            return Ok(false);
        }
        self.counter = Some((floor, true));
        Ok(true)
    }

    /// Issue a new etag version.
    pub fn next_version(&mut self) -> Result<u64> {
        let v = self
            .last_version()?
            .checked_add(1)
            .ok_or_else(|| StateError::corrupt("etag counter at its largest value"))?;
        self.counter = Some((v, true));
        Ok(v)
    }

    /// The etag text of `version`.
    pub fn etag_of(&mut self, version: u64) -> Result<String> {
        Ok(match self.etags {
            Etags::Global => meta::etag_of(version),
            Etags::Owner { .. } => {
                self.last_version()?;
                let mut e = String::from_utf8_lossy(&self.nonce).into_owned();
                e.push_str(&meta::etag_of(version));
                e
            }
        })
    }

    /// The version an `if-match` etag names: `invalid-etag` if it is not of
    /// the form this store issues or names a version not issued yet; `None`
    /// if it is another owner's (or another life's), which matches nothing.
    pub fn etag_version(&mut self, etag: &str) -> Result<Option<u64>> {
        let invalid = || StateError::InvalidEtag(etag.to_string());
        let (nonce, version) = match self.etags {
            Etags::Global => (None, etag),
            Etags::Owner { .. } => {
                let nonce = etag.get(..8).filter(|n| {
                    etag.len() == 24 && n.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
                });
                (Some(nonce.ok_or_else(invalid)?), &etag[8..])
            }
        };
        let v = meta::parse_etag(version).ok_or_else(invalid)?;
        let last = self.last_version()?;
        if nonce.is_some_and(|n| n.as_bytes() != self.nonce) {
            return Ok(None);
        }
        if v > last {
            return Err(invalid());
        }
        Ok(Some(v))
    }

    /// Check quotas and record usage and the etag counter. Called once, after
    /// the request's ops succeeded; an error here discards the whole request.
    pub fn finish(mut self) -> Result<()> {
        let capture = std::mem::take(&mut self.watch);
        watch::flush(&mut self, capture)?;
        // In owner order, as the quota error names the first owner over.
        let mut deltas = std::mem::take(&mut self.deltas);
        deltas.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (owner, delta) in deltas {
            if delta == 0 {
                continue;
            }
            let key = layout::usage_key(&owner);
            let used = match self.raw.get(&key)? {
                Some(b) => layout::be_u64(&b).ok_or_else(|| StateError::corrupt("usage record"))?,
                None => 0,
            };
            let now_used = (used as i64).saturating_add(delta).max(0) as u64;
            let quota = if layout::owner_is_account(&owner) {
                self.limits.account_quota_bytes
            } else {
                self.limits.instance_quota_bytes
            };
            if delta > 0 && now_used > quota {
                return Err(StateError::QuotaExceeded {
                    owner: layout::owner_name(&owner),
                    would_use: now_used,
                    quota,
                });
            }
            if now_used == 0 {
                self.raw.delete(&key)?;
            } else {
                self.raw.put(&key, &now_used.to_be_bytes())?;
            }
        }
        // Last, so that only a request that succeeds moves its group's
        // counter.
        if let Some((v, true)) = self.counter {
            match self.etags {
                Etags::Global => match self.raw.etag_counter() {
                    Some(group) => group.last = Some(v),
                    None => self.raw.put(COUNTER, &v.to_be_bytes())?,
                },
                Etags::Owner { .. } => {
                    let mut record = self.nonce.to_vec();
                    record.extend_from_slice(&v.to_be_bytes());
                    self.raw.put(COUNTER, &record)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::store::kv::backend::GroupCounter;
    use crate::store::kv::layout::ScopeKeys;
    use crate::store::types::Scope;

    /// Records in memory, with the etag counter a writer keeps for its
    /// group (or none).
    #[derive(Default)]
    struct Mem {
        records: BTreeMap<Vec<u8>, Vec<u8>>,
        group: Option<GroupCounter>,
    }

    impl RawRead for Mem {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            Ok(self.records.get(key).cloned())
        }

        fn scan(
            &self,
            start: &[u8],
            end: Option<&[u8]>,
            _reverse: bool,
            visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> Result<()> {
            for (k, v) in &self.records {
                if k.as_slice() >= start && end.is_none_or(|e| k.as_slice() < e) && !visit(k, v) {
                    break;
                }
            }
            Ok(())
        }
    }

    impl RawWrite for Mem {
        fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
            self.records.insert(key.to_vec(), value.to_vec());
            Ok(())
        }

        fn delete(&mut self, key: &[u8]) -> Result<()> {
            self.records.remove(key);
            Ok(())
        }

        fn delete_range(&mut self, start: &[u8], end: Option<&[u8]>) -> Result<()> {
            self.records
                .retain(|k, _| !(k.as_slice() >= start && end.is_none_or(|e| k.as_slice() < e)));
            Ok(())
        }

        fn etag_counter(&mut self) -> Option<&mut GroupCounter> {
            self.group.as_mut()
        }
    }

    /// A request that issues a version and writes `bytes` bytes of value
    /// under an instance with `quota` bytes; its outcome and version.
    fn request(mem: &mut Mem, quota: u64, bytes: usize) -> (Result<()>, u64) {
        let limits = Limits {
            instance_quota_bytes: quota,
            ..Limits::default()
        };
        let mut cx = WriteCx::new(mem, 0, &limits);
        let v = cx.next_version().unwrap();
        let key = ScopeKeys::new(&Scope::Instance("i".into())).meta("k");
        cx.put(&key, &vec![b'x'; bytes]).unwrap();
        (cx.finish(), v)
    }

    #[test]
    fn a_request_that_succeeds_leaves_its_version_with_the_group_not_in_the_record() {
        let mut mem = Mem {
            group: Some(GroupCounter { last: Some(41) }),
            ..Mem::default()
        };
        let (done, v) = request(&mut mem, 1 << 20, 10);
        assert!(done.is_ok());
        assert_eq!(
            v, 42,
            "the group's last version, not the record's, is the base"
        );
        assert_eq!(mem.group, Some(GroupCounter { last: Some(42) }));
        assert_eq!(mem.records.get(COUNTER), None, "the writer writes it once");
    }

    #[test]
    fn a_request_that_fails_leaves_the_group_counter_as_it_was() {
        let before = GroupCounter { last: Some(41) };
        let mut mem = Mem {
            group: Some(before),
            ..Mem::default()
        };
        let (done, v) = request(&mut mem, 8, 100);
        assert!(matches!(done, Err(StateError::QuotaExceeded { .. })));
        assert_eq!(v, 42);
        assert_eq!(mem.group, Some(before));
        // Not read yet in the group: the record is the base, and a failing
        // request does not fill the group's counter either.
        let mut mem = Mem {
            group: Some(GroupCounter::default()),
            ..Mem::default()
        };
        mem.records
            .insert(COUNTER.to_vec(), 7u64.to_be_bytes().to_vec());
        let (done, v) = request(&mut mem, 8, 100);
        assert!(done.is_err());
        assert_eq!(v, 8);
        assert_eq!(mem.group, Some(GroupCounter::default()));
    }

    #[test]
    fn without_a_group_counter_the_record_is_read_and_written() {
        let mut mem = Mem::default();
        mem.records
            .insert(COUNTER.to_vec(), 7u64.to_be_bytes().to_vec());
        let (done, v) = request(&mut mem, 1 << 20, 10);
        assert!(done.is_ok());
        assert_eq!(v, 8);
        assert_eq!(mem.records.get(COUNTER), Some(&8u64.to_be_bytes().to_vec()));
    }
}
