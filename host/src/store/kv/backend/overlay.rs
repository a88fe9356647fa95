//! A write buffer over a [`RawWrite`]: reads see the buffered writes, and
//! nothing reaches the base until [`Overlay::flush`]. A backend that commits
//! many requests in one transaction gives each its own overlay, so a request
//! that fails is simply dropped and leaves no trace.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::{RawRead, RawWrite};
use crate::store::error::Result;

/// Buffered writes over a base.
pub struct Overlay<'a> {
    base: &'a mut dyn RawWrite,
    /// Point writes: `Some` = put, `None` = delete.
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Range deletes, applied to the base before `pending` on flush.
    cleared: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// A buffered write: key and value (`None` = deleted).
type Pending<'p> = (&'p Vec<u8>, &'p Option<Vec<u8>>);

fn in_range(k: &[u8], start: &[u8], end: Option<&[u8]>) -> bool {
    k >= start && end.is_none_or(|e| k < e)
}

impl<'a> Overlay<'a> {
    /// An empty buffer over `base`.
    pub fn new(base: &'a mut dyn RawWrite) -> Self {
        Overlay {
            base,
            pending: BTreeMap::new(),
            cleared: Vec::new(),
        }
    }

    fn cleared(&self, k: &[u8]) -> bool {
        self.cleared
            .iter()
            .any(|(s, e)| in_range(k, s, e.as_deref()))
    }

    /// Apply every buffered write to the base.
    pub fn flush(self) -> Result<()> {
        for (s, e) in &self.cleared {
            self.base.delete_range(s, e.as_deref())?;
        }
        for (k, v) in &self.pending {
            match v {
                Some(v) => self.base.put(k, v)?,
                None => self.base.delete(k)?,
            }
        }
        Ok(())
    }
}

impl RawRead for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.pending.get(key) {
            return Ok(v.clone());
        }
        if self.cleared(key) {
            return Ok(None);
        }
        self.base.get(key)
    }

    fn value_len(&self, key: &[u8]) -> Result<Option<usize>> {
        if let Some(v) = self.pending.get(key) {
            return Ok(v.as_ref().map(Vec::len));
        }
        if self.cleared(key) {
            return Ok(None);
        }
        self.base.value_len(key)
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let upper = match end {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        let range = self
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
            if self.cleared(k) {
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

impl RawWrite for Overlay<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.pending.insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.pending.insert(key.to_vec(), None);
        Ok(())
    }

    fn delete_range(&mut self, start: &[u8], end: Option<&[u8]>) -> Result<()> {
        let doomed: Vec<Vec<u8>> = self
            .pending
            .keys()
            .filter(|k| in_range(k, start, end))
            .cloned()
            .collect();
        for k in doomed {
            self.pending.remove(&k);
        }
        self.cleared.push((start.to_vec(), end.map(<[u8]>::to_vec)));
        Ok(())
    }
}
