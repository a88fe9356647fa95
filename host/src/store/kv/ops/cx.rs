//! The context one write request runs in: its atomic view of the key space,
//! the time, the limits, etag issuing, and per-owner storage accounting that
//! enforces quotas before anything is kept.

use std::collections::BTreeMap;

use crate::store::error::{Result, StateError};
use crate::store::kv::backend::{RawRead, RawWrite};
use crate::store::kv::layout::{self, COUNTER};
use crate::store::kv::watch::{self, Capture};
use crate::store::limits::Limits;

/// A write request's view: reads see its own writes.
pub struct WriteCx<'a> {
    raw: &'a mut dyn RawWrite,
    /// The request's time, Unix ms.
    pub now: u64,
    /// Limits in force.
    pub limits: &'a Limits,
    /// Last etag version issued (loaded on first use) and whether it moved.
    counter: Option<(u64, bool)>,
    /// Bytes added (or freed) per owner.
    deltas: BTreeMap<Vec<u8>, i64>,
    /// Value changes of watched scopes, queued for their watchers at the end.
    pub watch: Capture,
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
            counter: None,
            deltas: BTreeMap::new(),
            watch: Capture::default(),
        }
    }

    /// Read access to the request's view.
    pub fn r(&self) -> &dyn RawRead {
        &*self.raw
    }

    fn account(&mut self, key: &[u8], delta: i64) {
        if let Some(owner) = layout::owner_of(key) {
            *self.deltas.entry(owner.to_vec()).or_default() += delta;
        }
    }

    /// Store a record.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if layout::owner_of(key).is_some() {
            self.watch.meta_write(&*self.raw, key, Some(value))?;
            let old = self.raw.value_len(key)?.map_or(0, |n| record_size(key, n));
            self.account(key, record_size(key, value.len()) - old);
        }
        self.raw.put(key, value)
    }

    /// Delete a record.
    pub fn delete(&mut self, key: &[u8]) -> Result<()> {
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
                *self.deltas.entry(owner).or_default() -= n;
            }
        }
        self.raw.delete_range(start, end)
    }

    /// The last etag version issued so far.
    pub fn last_version(&mut self) -> Result<u64> {
        if self.counter.is_none() {
            let v = match self.raw.get(COUNTER)? {
                Some(b) => layout::be_u64(&b).ok_or_else(|| StateError::corrupt("etag counter"))?,
                None => 0,
            };
            self.counter = Some((v, false));
        }
        Ok(self.counter.map_or(0, |c| c.0))
    }

    /// Issue a new etag version.
    pub fn next_version(&mut self) -> Result<u64> {
        let v = self.last_version()? + 1;
        self.counter = Some((v, true));
        Ok(v)
    }

    /// Check quotas and record usage and the etag counter. Called once, after
    /// the request's ops succeeded; an error here discards the whole request.
    pub fn finish(mut self) -> Result<()> {
        let capture = std::mem::take(&mut self.watch);
        watch::flush(&mut self, capture)?;
        if let Some((v, true)) = self.counter {
            self.raw.put(COUNTER, &v.to_be_bytes())?;
        }
        for (owner, delta) in std::mem::take(&mut self.deltas) {
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
        Ok(())
    }
}
