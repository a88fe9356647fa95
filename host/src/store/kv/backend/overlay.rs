//! A write buffer over a [`RawWrite`]: reads see the buffered writes, and
//! nothing reaches the base until [`Overlay::flush`]. A backend that commits
//! many requests in one transaction runs each from a savepoint of the
//! group's overlay ([`Overlay::savepoint`]), so a request that fails is
//! rolled back and leaves no trace.
//!
//! The buffer itself ([`Writes`]) reads the same over any base: the redb
//! backend keeps the writes of groups logged but not yet committed to redb
//! as [`Layers`] over the last commit's snapshot, so reads see them through
//! the very merge a request sees its own writes with.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use super::{RawRead, RawWrite};
use crate::store::error::Result;

/// Buffered writes: point writes and range deletes, read over a base with
/// [`Writes::over`].
#[derive(Clone, Debug, Default)]
pub struct Writes {
    /// Point writes: `Some` = put, `None` = delete.
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Range deletes, applied to the base before `pending`: start → end
    /// (`None` = to the end of the key space), disjoint and merged, so that
    /// a lookup is one search however many there were.
    cleared: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Bytes of keys and values held (what the buffer costs in memory).
    bytes: usize,
    /// The first bytes of the keys put here, one bit each: the buffer holds
    /// no key starting with a byte whose bit is clear.
    firsts: [u64; 4],
}

/// A buffered write: key and value (`None` = deleted).
type Pending<'p> = (&'p Vec<u8>, &'p Option<Vec<u8>>);

/// A buffered write, owned.
type Pended = (Vec<u8>, Option<Vec<u8>>);

/// A key and what a buffer held for it before a write (`None`: nothing).
type Before = (Vec<u8>, Option<Option<Vec<u8>>>);

fn in_range(k: &[u8], start: &[u8], end: Option<&[u8]>) -> bool {
    k >= start && end.is_none_or(|e| k < e)
}

/// The later of two range ends (`None`: the end of the key space).
fn max_end(a: Option<Vec<u8>>, b: Option<Vec<u8>>) -> Option<Vec<u8>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    }
}

impl Writes {
    /// Bytes of keys and values held (an estimate of the memory used).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// No writes are buffered.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.cleared.is_empty()
    }

    /// These writes read over `base`.
    pub fn over<'a>(&'a self, base: &'a dyn RawRead) -> Over<'a> {
        Over { writes: self, base }
    }

    /// Whether a range delete covers `k`: the one range starting at or
    /// before it (they are disjoint) must reach past it.
    fn cleared(&self, k: &[u8]) -> bool {
        self.cleared
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(k)))
            .next_back()
            .is_some_and(|(s, e)| in_range(k, s, e.as_deref()))
    }

    /// Add the range delete `[start, end)`, merged with the ones it
    /// overlaps or touches. Returns what undoes it: the start of the range
    /// it put, and the ranges it took in (removed).
    fn clear(&mut self, start: &[u8], end: Option<&[u8]>) -> Cleared {
        let mut absorbed = Vec::new();
        let (mut start, mut end) = (start.to_vec(), end.map(<[u8]>::to_vec));
        // A range starting before `start` that reaches it absorbs it.
        if let Some((s, e)) = self
            .cleared
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(start.as_slice())))
            .next_back()
            && e.as_deref().is_none_or(|e| e >= start.as_slice())
        {
            let (s, e) = (s.clone(), e.clone());
            self.cleared.remove(&s);
            start = s.clone();
            end = max_end(end, e.clone());
            absorbed.push((s, e));
        }
        // Ranges starting inside the new one are absorbed too.
        let inside: Vec<Vec<u8>> = self
            .cleared
            .range::<[u8], _>((Bound::Included(start.as_slice()), Bound::Unbounded))
            .take_while(|(s, _)| end.as_deref().is_none_or(|e| s.as_slice() <= e))
            .map(|(s, _)| s.clone())
            .collect();
        for s in inside {
            if let Some(e) = self.cleared.remove(&s) {
                end = max_end(end, e.clone());
                absorbed.push((s, e));
            }
        }
        self.bytes += start.len() + end.as_ref().map_or(0, Vec::len);
        self.cleared.insert(start.clone(), end);
        Cleared {
            put: start,
            absorbed,
        }
    }

    /// Whether a key starting with `first` may be put here (see
    /// [`RawRead::may_hold`]).
    fn may_hold(&self, first: u8) -> bool {
        self.firsts[usize::from(first / 64)] & (1 << (first % 64)) != 0
    }

    /// Buffer a put (`Some`) or delete (`None`) of `key`.
    fn write(&mut self, key: &[u8], value: Option<&[u8]>) {
        self.write_owned(key.to_vec(), value.map(<[u8]>::to_vec));
    }

    /// [`Writes::write`], keeping the buffers handed over. Returns what
    /// was buffered for `key` before (`None`: nothing).
    fn write_owned(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) -> Option<Option<Vec<u8>>> {
        self.bytes += key.len() + value.as_ref().map_or(0, Vec::len);
        if let (Some(&first), Some(_)) = (key.first(), &value) {
            self.firsts[usize::from(first / 64)] |= 1 << (first % 64);
        }
        self.pending.insert(key, value)
    }

    /// Buffer the range delete `[start, end)`. Returns the point writes it
    /// dropped from the buffer.
    fn write_range(&mut self, start: &[u8], end: Option<&[u8]>) -> (Vec<Pended>, Option<Cleared>) {
        if end.is_some_and(|e| e <= start) {
            return (Vec::new(), None); // empty
        }
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        let doomed: Vec<Vec<u8>> = self
            .pending
            .range::<[u8], _>((Bound::Included(start), upper))
            .map(|(k, _)| k.clone())
            .collect();
        let dropped = doomed
            .into_iter()
            .filter_map(|k| self.pending.remove(&k).map(|v| (k, v)))
            .collect();
        let cleared = self.clear(start, end);
        (dropped, Some(cleared))
    }

    /// Whether these writes put or delete `key` (tests: the applier's
    /// injected failure).
    #[cfg(test)]
    pub fn touches(&self, key: &[u8]) -> bool {
        self.pending.contains_key(key)
    }

    /// Take in `later`'s writes, as if they were made after these: one
    /// buffer that reads like the two as layers, with one lookup.
    pub fn merge(&mut self, later: &Writes) {
        for (s, e) in &later.cleared {
            self.write_range(s, e.as_deref());
        }
        for (k, v) in &later.pending {
            self.write(k, v.as_deref());
        }
    }

    /// [`Writes::apply_to`], handing `base` the buffers (a request's writes
    /// moving into its group's buffer are not copied again).
    pub fn apply_into(self, base: &mut dyn RawWrite) -> Result<()> {
        for (s, e) in &self.cleared {
            base.delete_range(s, e.as_deref())?;
        }
        for (k, v) in self.pending {
            match v {
                Some(v) => base.put_owned(k, v)?,
                None => base.delete_owned(k)?,
            }
        }
        Ok(())
    }

    /// Apply every buffered write to `base`: the range deletes, then the
    /// point writes.
    pub fn apply_to(&self, base: &mut dyn RawWrite) -> Result<()> {
        for (s, e) in &self.cleared {
            base.delete_range(s, e.as_deref())?;
        }
        for (k, v) in &self.pending {
            match v {
                Some(v) => base.put(k, v)?,
                None => base.delete(k)?,
            }
        }
        Ok(())
    }
}

/// Buffered writes read over a base.
pub struct Over<'a> {
    writes: &'a Writes,
    base: &'a dyn RawRead,
}

impl RawRead for Over<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.writes.pending.get(key) {
            return Ok(v.clone());
        }
        if self.writes.cleared(key) {
            return Ok(None);
        }
        self.base.get(key)
    }

    fn value_len(&self, key: &[u8]) -> Result<Option<usize>> {
        if let Some(v) = self.writes.pending.get(key) {
            return Ok(v.as_ref().map(Vec::len));
        }
        if self.writes.cleared(key) {
            return Ok(None);
        }
        self.base.value_len(key)
    }

    fn may_hold(&self, first: u8) -> bool {
        self.writes.may_hold(first) || self.base.may_hold(first)
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        // An empty range (as the tables treat it; a BTreeMap range would
        // panic on it).
        if end.is_some_and(|e| e <= start) {
            return Ok(());
        }
        let upper = match end {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        let range = self
            .writes
            .pending
            .range::<[u8], _>((Bound::Included(start), upper));
        let mut mine: Box<dyn Iterator<Item = Pending<'_>>> = if reverse {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        let mut next_mine = mine.next();
        // `before(a, b)`: does a come first in scan order?
        let before = |a: &[u8], b: &[u8]| if reverse { a > b } else { a < b };
        let mut go_on = true;
        self.base.scan(start, end, reverse, &mut |k, v| {
            // Emit buffered entries that come before this base entry.
            while let Some((mk, mv)) = next_mine {
                if !before(mk, k) {
                    break;
                }
                if let Some(mv) = mv
                    && !visit(mk, mv)
                {
                    go_on = false;
                    return false;
                }
                next_mine = mine.next();
            }
            if let Some((mk, mv)) = next_mine
                && mk.as_slice() == k
            {
                next_mine = mine.next();
                if let Some(mv) = mv {
                    go_on = visit(mk, mv);
                }
                return go_on;
            }
            if self.writes.cleared(k) {
                return true;
            }
            go_on = visit(k, v);
            go_on
        })?;
        if !go_on {
            return Ok(());
        }
        while let Some((mk, mv)) = next_mine {
            if let Some(mv) = mv
                && !visit(mk, mv)
            {
                break;
            }
            next_mine = mine.next();
        }
        Ok(())
    }
}

/// Groups of buffered writes over a base, oldest first: what reads see of
/// writes made durable (logged) but not yet in the base.
pub struct Layers<'a> {
    /// The writes, oldest first.
    pub layers: &'a [Arc<Writes>],
    /// What they were written over.
    pub base: &'a dyn RawRead,
}

impl Layers<'_> {
    /// The newest layer over the others (`None`: no layer, read the base).
    fn split(&self) -> Option<(&Writes, Layers<'_>)> {
        let (top, rest) = self.layers.split_last()?;
        Some((
            top,
            Layers {
                layers: rest,
                base: self.base,
            },
        ))
    }
}

impl RawRead for Layers<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.split() {
            Some((top, rest)) => top.over(&rest).get(key),
            None => self.base.get(key),
        }
    }

    fn value_len(&self, key: &[u8]) -> Result<Option<usize>> {
        match self.split() {
            Some((top, rest)) => top.over(&rest).value_len(key),
            None => self.base.value_len(key),
        }
    }

    fn may_hold(&self, first: u8) -> bool {
        self.layers.iter().any(|l| l.may_hold(first)) || self.base.may_hold(first)
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        match self.split() {
            Some((top, rest)) => top.over(&rest).scan(start, end, reverse, visit),
            None => self.base.scan(start, end, reverse, visit),
        }
    }
}

/// Buffered writes over a base they reach on [`Overlay::flush`].
pub struct Overlay<'a> {
    base: &'a mut dyn RawWrite,
    writes: Writes,
    /// What undoes the writes since the savepoint, while one is held.
    undo: Undo,
}

/// How one range delete changed a buffer's range deletes: the range it
/// put, and those it took in (removed) — what a rollback undoes.
#[derive(Debug)]
struct Cleared {
    put: Vec<u8>,
    absorbed: Vec<Pended>,
}

/// What undoes an overlay's writes since its savepoint: each write's
/// previous state, restored newest first.
#[derive(Debug, Default)]
struct Undo {
    /// A savepoint is held: writes are recorded.
    held: bool,
    /// Each point write since (a range delete's dropped writes count as
    /// point writes): its key and what the buffer held for it before
    /// (`None`: nothing). Kept allocated from one savepoint to the next.
    points: Vec<Before>,
    /// Each range delete since: how it changed the buffer's ranges.
    cleared: Vec<Cleared>,
    /// The buffer's byte count and first-byte bits at the savepoint.
    bytes: usize,
    firsts: [u64; 4],
}

impl<'a> Overlay<'a> {
    /// An empty buffer over `base`.
    pub fn new(base: &'a mut dyn RawWrite) -> Self {
        Overlay {
            base,
            writes: Writes::default(),
            undo: Undo::default(),
        }
    }

    /// Mark the buffer as it is, so that [`Overlay::rollback`] can return
    /// to it: the writer runs each request of a group straight over the
    /// group's buffer this way, and drops the writes of one that fails (a
    /// buffer of its own per request, flushed into the group's, costs a
    /// second copy and lookup of every record). Savepoints do not nest:
    /// the one held is released or rolled back first.
    pub fn savepoint(&mut self) {
        debug_assert!(
            !self.undo.held,
            "a savepoint is held: release or roll it back first"
        );
        self.undo.held = true;
        self.undo.points.clear();
        self.undo.cleared.clear();
        self.undo.bytes = self.writes.bytes;
        self.undo.firsts = self.writes.firsts;
    }

    /// Keep every write since the savepoint, and hold none.
    pub fn release(&mut self) {
        self.undo.held = false;
        self.undo.points.clear();
        self.undo.cleared.clear();
    }

    /// Undo every write since the savepoint — the buffer reads and flushes
    /// as it did then — and hold none. Without a savepoint, nothing.
    pub fn rollback(&mut self) {
        if !self.undo.held {
            return;
        }
        let w = &mut self.writes;
        for (key, before) in self.undo.points.drain(..).rev() {
            match before {
                Some(v) => w.pending.insert(key, v),
                None => w.pending.remove(&key),
            };
        }
        for c in self.undo.cleared.drain(..).rev() {
            w.cleared.remove(&c.put);
            w.cleared.extend(c.absorbed);
        }
        w.bytes = self.undo.bytes;
        w.firsts = self.undo.firsts;
        self.undo.held = false;
    }

    /// Buffer a point write, recorded for a rollback while a savepoint is
    /// held.
    fn write(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        if self.undo.held {
            let before = self.writes.write_owned(key.clone(), value);
            self.undo.points.push((key, before));
        } else {
            self.writes.write_owned(key, value);
        }
    }

    /// Apply every buffered write to the base.
    pub fn flush(self) -> Result<()> {
        self.writes.apply_into(self.base)
    }

    /// Apply every buffered write to the base, and keep them (to read over
    /// another base that does not have them yet).
    pub fn flush_keep(self) -> Result<Writes> {
        self.writes.apply_to(self.base)?;
        Ok(self.writes)
    }
}

impl RawRead for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.writes.over(&*self.base).get(key)
    }

    fn value_len(&self, key: &[u8]) -> Result<Option<usize>> {
        self.writes.over(&*self.base).value_len(key)
    }

    fn may_hold(&self, first: u8) -> bool {
        self.writes.over(&*self.base).may_hold(first)
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        self.writes
            .over(&*self.base)
            .scan(start, end, reverse, visit)
    }
}

impl RawWrite for Overlay<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.write(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    fn put_owned(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.write(key, Some(value));
        Ok(())
    }

    fn delete_owned(&mut self, key: Vec<u8>) -> Result<()> {
        self.write(key, None);
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.write(key.to_vec(), None);
        Ok(())
    }

    fn etag_counter(&mut self) -> Option<&mut super::GroupCounter> {
        self.base.etag_counter()
    }

    fn delete_range(&mut self, start: &[u8], end: Option<&[u8]>) -> Result<()> {
        let (dropped, cleared) = self.writes.write_range(start, end);
        if self.undo.held {
            self.undo
                .points
                .extend(dropped.into_iter().map(|(k, v)| (k, Some(v))));
            self.undo.cleared.extend(cleared);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A base held in memory.
    #[derive(Default)]
    struct Mem(BTreeMap<Vec<u8>, Vec<u8>>);

    impl RawRead for Mem {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            Ok(self.0.get(key).cloned())
        }

        /// Exactly: a base that knows which kinds of keys it holds.
        fn may_hold(&self, first: u8) -> bool {
            self.0.keys().any(|k| k.first() == Some(&first))
        }

        fn scan(
            &self,
            start: &[u8],
            end: Option<&[u8]>,
            reverse: bool,
            visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> Result<()> {
            if end.is_some_and(|e| e <= start) {
                return Ok(());
            }
            let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
            let range = self.0.range::<[u8], _>((Bound::Included(start), upper));
            let items: Vec<_> = if reverse {
                range.rev().collect()
            } else {
                range.collect()
            };
            for (k, v) in items {
                if !visit(k, v) {
                    break;
                }
            }
            Ok(())
        }
    }

    impl RawWrite for Mem {
        fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
            self.0.insert(key.to_vec(), value.to_vec());
            Ok(())
        }

        fn delete(&mut self, key: &[u8]) -> Result<()> {
            self.0.remove(key);
            Ok(())
        }

        fn delete_range(&mut self, start: &[u8], end: Option<&[u8]>) -> Result<()> {
            // Written out here rather than with the overlay's `in_range`.
            self.0.retain(|k, _| {
                let inside = k.as_slice() >= start && end.is_none_or(|e| k.as_slice() < e);
                !inside
            });
            Ok(())
        }
    }

    #[derive(Debug, Clone)]
    enum Step {
        Put(Vec<u8>, u8),
        Delete(Vec<u8>),
        Range(Vec<u8>, Option<Vec<u8>>),
        Get(Vec<u8>),
        Scan(Vec<u8>, Option<Vec<u8>>, bool, usize),
    }

    fn key() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(b'a'..b'f', 0..3)
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => (key(), any::<u8>()).prop_map(|(k, v)| Step::Put(k, v)),
            1 => key().prop_map(Step::Delete),
            2 => (key(), proptest::option::weighted(0.8, key())).prop_map(|(s, e)| Step::Range(s, e)),
            3 => key().prop_map(Step::Get),
            2 => (key(), proptest::option::of(key()), any::<bool>(), 1..8usize)
                .prop_map(|(s, e, r, n)| Step::Scan(s, e, r, n)),
        ]
    }

    fn scan_all(
        r: &dyn RawRead,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        limit: usize,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        r.scan(start, end, reverse, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            out.len() < limit
        })
        .unwrap();
        out
    }

    /// Apply a write step to `w`; `false` for a read step.
    fn write_step(w: &mut dyn RawWrite, s: &Step) -> bool {
        match s {
            Step::Put(k, v) => w.put(k, &[*v]).unwrap(),
            Step::Delete(k) => w.delete(k).unwrap(),
            Step::Range(s, e) => w.delete_range(s, e.as_deref()).unwrap(),
            Step::Get(_) | Step::Scan(..) => return false,
        }
        true
    }

    /// `r` reads like `model` where the step looks: its scan, or a point
    /// read (value and length) of its key; and it never denies holding a
    /// kind of key (a first byte) that the model holds.
    fn same_reads(r: &dyn RawRead, model: &Mem, s: &Step) -> Result<(), TestCaseError> {
        for first in b'a'..b'f' {
            if model.may_hold(first) {
                prop_assert!(
                    r.may_hold(first),
                    "denies holding keys starting with {first}"
                );
            }
        }
        match s {
            Step::Scan(s, e, reverse, n) => prop_assert_eq!(
                scan_all(r, s, e.as_deref(), *reverse, *n),
                scan_all(model, s, e.as_deref(), *reverse, *n)
            ),
            Step::Get(k) | Step::Put(k, _) | Step::Delete(k) | Step::Range(k, _) => {
                prop_assert_eq!(r.get(k).unwrap(), model.get(k).unwrap());
                prop_assert_eq!(
                    r.value_len(k).unwrap(),
                    model.get(k).unwrap().map(|v| v.len())
                );
            }
        }
        Ok(())
    }

    /// A view tells it holds no key of a kind only when no layer put one:
    /// a delete or a range delete does not make it say otherwise.
    #[test]
    fn may_hold_follows_the_puts_of_every_layer() {
        let mut base = Mem::default();
        base.put(b"a1", b"x").unwrap();
        let mut overlay = Overlay::new(&mut base);
        assert!(overlay.may_hold(b'a'));
        assert!(!overlay.may_hold(b'v'));
        overlay.delete(b"v1").unwrap();
        overlay.delete_range(b"v", Some(b"w")).unwrap();
        assert!(!overlay.may_hold(b'v'));
        let mut inner = Overlay::new(&mut overlay);
        inner.put(b"v2", b"y").unwrap();
        assert!(inner.may_hold(b'v'));
        let kept = inner.flush_keep().unwrap();
        assert!(overlay.may_hold(b'v'));
        let (empty, base) = (Writes::default(), Mem::default());
        let layers = [Arc::new(empty), Arc::new(kept)];
        assert!(
            Layers {
                layers: &layers,
                base: &base
            }
            .may_hold(b'v')
        );
        assert!(
            !Layers {
                layers: &layers[..1],
                base: &base
            }
            .may_hold(b'v')
        );
        let mut merged = Writes::default();
        merged.merge(&layers[1]);
        assert!(merged.over(&base).may_hold(b'v'));
        assert!(!merged.over(&base).may_hold(b'a'));
    }

    /// The model and the base of a property test, both holding `initial`
    /// (one-byte values).
    fn bases(initial: BTreeMap<Vec<u8>, u8>) -> (Mem, Mem) {
        let initial: BTreeMap<Vec<u8>, Vec<u8>> =
            initial.into_iter().map(|(k, v)| (k, vec![v])).collect();
        (Mem(initial.clone()), Mem(initial))
    }

    proptest! {
        /// Any mix of puts, deletes and (overlapping, touching, empty,
        /// unbounded) range deletes over any base: reads and scans through
        /// the overlay see what the same writes applied directly show, and
        /// the flush leaves the base exactly so.
        #[test]
        fn an_overlay_reads_and_flushes_like_the_writes_applied_directly(
            initial in proptest::collection::btree_map(key(), any::<u8>(), 0..12),
            steps in proptest::collection::vec(step(), 0..40),
        ) {
            let (mut model, mut base) = bases(initial);
            let mut overlay = Overlay::new(&mut base);
            for s in steps {
                if write_step(&mut overlay, &s) {
                    write_step(&mut model, &s);
                } else {
                    same_reads(&overlay, &model, &s)?;
                }
            }
            overlay.flush().unwrap();
            prop_assert_eq!(base.0, model.0);
        }

        /// A request's buffer flushed into its group's (the buffers handed
        /// over, not copied): the group's buffer then reads like the writes
        /// applied directly, and flushes so.
        #[test]
        fn an_overlay_flushed_into_another_hands_over_exactly_its_writes(
            initial in proptest::collection::btree_map(key(), any::<u8>(), 0..12),
            before in proptest::collection::vec(step(), 0..20),
            steps in proptest::collection::vec(step(), 0..30),
        ) {
            let (mut model, mut base) = bases(initial);
            let mut group = Overlay::new(&mut base);
            for s in before.iter().chain(&steps) {
                write_step(&mut model, s);
            }
            for s in &before {
                write_step(&mut group, s);
            }
            let mut request = Overlay::new(&mut group);
            for s in &steps {
                write_step(&mut request, s);
            }
            request.flush().unwrap();
            for s in &steps {
                same_reads(&group, &model, s)?;
            }
            prop_assert_eq!(scan_all(&group, b"", None, false, usize::MAX), scan_all(&model, b"", None, false, usize::MAX));
            group.flush().unwrap();
            prop_assert_eq!(base.0, model.0);
        }

        /// Requests run straight over one buffer from savepoints (how the
        /// writer runs a group's requests), each released or rolled back:
        /// while one runs, the buffer reads like the requests kept before
        /// it plus its own writes so far; one rolled back leaves nothing —
        /// the buffer reads, scans and flushes like the kept requests'
        /// writes applied directly.
        #[test]
        fn savepoints_keep_exactly_the_writes_of_the_requests_released(
            initial in proptest::collection::btree_map(key(), any::<u8>(), 0..12),
            before in proptest::collection::vec(step(), 0..12),
            requests in proptest::collection::vec(
                (proptest::collection::vec(step(), 0..16), any::<bool>()),
                0..8,
            ),
        ) {
            let (mut model, mut base) = bases(initial);
            let mut group = Overlay::new(&mut base);
            for s in &before {
                write_step(&mut group, s);
                write_step(&mut model, s);
            }
            for (steps, keep) in &requests {
                let mut scratch = Mem(model.0.clone());
                group.savepoint();
                for s in steps {
                    if write_step(&mut group, s) {
                        write_step(&mut scratch, s);
                    }
                    same_reads(&group, &scratch, s)?;
                }
                if *keep {
                    group.release();
                    model = scratch;
                } else {
                    group.rollback();
                }
                let all = |r: &dyn RawRead| scan_all(r, b"", None, false, usize::MAX);
                prop_assert_eq!(all(&group), all(&model));
                for s in steps {
                    same_reads(&group, &model, s)?;
                }
            }
            // A rollback without a savepoint held changes nothing.
            group.rollback();
            group.flush().unwrap();
            prop_assert_eq!(base.0, model.0);
        }

        /// Groups of such writes kept as layers over a base that never
        /// received them read like the base with every group applied in
        /// order: point reads, lengths, and scans in both directions with
        /// any limit — and so do the groups merged into one buffer, and
        /// the oldest `chunk` of them merged into one under the others
        /// as layers (how the redb applier's chunks stand in for groups).
        #[test]
        fn layers_read_like_their_groups_applied_in_order(
            initial in proptest::collection::btree_map(key(), any::<u8>(), 0..12),
            groups in proptest::collection::vec(proptest::collection::vec(step(), 0..12), 0..6),
            reads in proptest::collection::vec(step(), 1..24),
            chunk in 0usize..7,
        ) {
            let (mut model, base) = bases(initial);
            let mut layers = Vec::new();
            for steps in groups {
                let mut overlay = Overlay::new(&mut model);
                for s in &steps {
                    write_step(&mut overlay, s);
                }
                layers.push(Arc::new(overlay.flush_keep().unwrap()));
            }
            let view = Layers { layers: &layers, base: &base };
            let mut merged = Writes::default();
            for layer in &layers {
                merged.merge(layer);
            }
            let chunk = chunk.min(layers.len());
            let mut first = Writes::default();
            for layer in &layers[..chunk] {
                first.merge(layer);
            }
            let mixed: Vec<Arc<Writes>> = std::iter::once(Arc::new(first))
                .chain(layers[chunk..].iter().cloned())
                .collect();
            let mixed = Layers { layers: &mixed, base: &base };
            for r in &reads {
                same_reads(&view, &model, r)?;
                same_reads(&merged.over(&base), &model, r)?;
                same_reads(&mixed, &model, r)?;
            }
        }
    }
}
