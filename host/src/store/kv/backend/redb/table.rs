//! The redb table as the engine's byte-key space: read-only snapshots (with
//! the groups logged after them), the writer's table, and the writer's table
//! recording into a log record.

use std::ops::Bound;
use std::sync::Arc;

use redb::{ReadableTable, TableDefinition};

use super::log::{Entry, Record};
use crate::store::error::Result;
use crate::store::kv::backend::{GroupCounter, Layers, RawRead, RawWrite, Writes, unavailable};
use crate::store::kv::layout;

/// The one table of byte keys.
pub(super) const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("wasm-state");

/// A redb table (read-only snapshot or the writer's table).
pub(super) struct Tbl<T>(pub(super) T);

/// A read-only snapshot of the table as redb last committed it.
pub(super) type ReadTable = Tbl<redb::ReadOnlyTable<&'static [u8], &'static [u8]>>;

/// What reads see: the table as redb last committed it, and the writes of
/// the groups logged (durable) since that redb has not committed yet (the
/// applier may hold them in its open transaction), oldest first.
pub(super) struct Snapshot {
    pub(super) base: Arc<ReadTable>,
    pub(super) layers: Vec<Arc<Writes>>,
}

impl Snapshot {
    /// redb's last commit, nothing over it.
    pub(super) fn committed(base: Arc<ReadTable>) -> Self {
        Snapshot {
            base,
            layers: Vec::new(),
        }
    }

    fn view(&self) -> Layers<'_> {
        Layers {
            layers: &self.layers,
            base: &*self.base,
        }
    }
}

impl RawRead for Snapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.view().get(key)
    }

    fn value_len(&self, key: &[u8]) -> Result<Option<usize>> {
        self.view().value_len(key)
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        self.view().scan(start, end, reverse, visit)
    }
}

/// The writer's table inside a write transaction.
pub(super) type TableRw<'t> = Tbl<redb::Table<'t, &'static [u8], &'static [u8]>>;

fn bounds<'a>(start: &'a [u8], end: Option<&'a [u8]>) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    (
        Bound::Included(start),
        end.map_or(Bound::Unbounded, Bound::Excluded),
    )
}

fn scan_table(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    start: &[u8],
    end: Option<&[u8]>,
    reverse: bool,
    visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<()> {
    if end.is_some_and(|e| e <= start) {
        return Ok(());
    }
    let range = table
        .range::<&[u8]>(bounds(start, end))
        .map_err(unavailable)?;
    let mut step = |item: std::result::Result<_, redb::StorageError>| -> Result<bool> {
        let (k, v): (redb::AccessGuard<&[u8]>, redb::AccessGuard<&[u8]>) =
            item.map_err(unavailable)?;
        Ok(visit(k.value(), v.value()))
    };
    if reverse {
        for item in range.rev() {
            if !step(item)? {
                break;
            }
        }
    } else {
        for item in range {
            if !step(item)? {
                break;
            }
        }
    }
    Ok(())
}

impl<T: ReadableTable<&'static [u8], &'static [u8]>> RawRead for Tbl<T> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .0
            .get(key)
            .map_err(unavailable)?
            .map(|g| g.value().to_vec()))
    }

    fn value_len(&self, key: &[u8]) -> Result<Option<usize>> {
        Ok(self
            .0
            .get(key)
            .map_err(unavailable)?
            .map(|g| g.value().len()))
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        scan_table(&self.0, start, end, reverse, visit)
    }
}

impl TableRw<'_> {
    /// Replay one logged write.
    pub(super) fn apply(&mut self, entry: Entry<'_>) -> Result<()> {
        match entry {
            Entry::Put(k, v) => self.put(k, v),
            Entry::Delete(k) => self.delete(k),
            Entry::DeleteRange(start, end) => self.delete_range(start, end),
        }
    }
}

impl RawWrite for TableRw<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.0.insert(key, value).map_err(unavailable)?;
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.0.remove(key).map_err(unavailable)?;
        Ok(())
    }

    fn delete_range(&mut self, start: &[u8], end: Option<&[u8]>) -> Result<()> {
        if end.is_some_and(|e| e <= start) {
            return Ok(());
        }
        self.0
            .retain_in::<&[u8], _>(bounds(start, end), |_, _| false)
            .map_err(unavailable)
    }
}

/// What a group's requests write to: reads see `view` (redb's last commit
/// and the groups logged since, as the writer knows them), and every write
/// is recorded into the group's log record (when the store keeps a log) —
/// redb gets the group later, from the applier.
pub(super) struct Sink<'a> {
    pub(super) view: &'a dyn RawRead,
    pub(super) record: Option<&'a mut Record>,
    /// Writes made so far (logged or not).
    pub(super) writes: usize,
    /// No watch registration exists in the view (nor was one written since
    /// that was found): every request asks for its scope's watchers, and
    /// this answers none without a B-tree lookup. Cleared by the first
    /// registration written; set again only by a new scan
    /// ([`no_watchers`]).
    pub(super) no_watchers: &'a mut bool,
    /// The etag counter as the group's requests leave it
    /// ([`RawWrite::etag_counter`]).
    pub(super) counter: GroupCounter,
}

/// Whether `view` holds no watch registration (a key under
/// [`layout::WATCHERS`]).
pub(super) fn no_watchers(view: &dyn RawRead) -> Result<bool> {
    let mut found = false;
    view.scan(
        &[layout::WATCHERS],
        Some(&[layout::WATCHERS + 1]),
        false,
        &mut |_, _| {
            found = true;
            false
        },
    )?;
    Ok(!found)
}

impl Sink<'_> {
    /// `key` is a watch registration known to be absent.
    fn known_absent(&self, key: &[u8]) -> bool {
        *self.no_watchers && key.first() == Some(&layout::WATCHERS)
    }

    fn record(&mut self, entry: Entry<'_>) -> Result<()> {
        self.writes += 1;
        if let Some(r) = self.record.as_mut() {
            r.push(entry);
        }
        Ok(())
    }
}

impl RawRead for Sink<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.known_absent(key) {
            return Ok(None);
        }
        self.view.get(key)
    }

    fn value_len(&self, key: &[u8]) -> Result<Option<usize>> {
        if self.known_absent(key) {
            return Ok(None);
        }
        self.view.value_len(key)
    }

    fn may_hold(&self, first: u8) -> bool {
        !self.known_absent(&[first]) && self.view.may_hold(first)
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        self.view.scan(start, end, reverse, visit)
    }
}

impl RawWrite for Sink<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if key.first() == Some(&layout::WATCHERS) {
            *self.no_watchers = false;
        }
        self.record(Entry::Put(key, value))
    }

    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.record(Entry::Delete(key))
    }

    fn delete_range(&mut self, start: &[u8], end: Option<&[u8]>) -> Result<()> {
        self.record(Entry::DeleteRange(start, end))
    }

    fn etag_counter(&mut self) -> Option<&mut GroupCounter> {
        Some(&mut self.counter)
    }
}
