//! The storage backend contract: an ordered byte-key space with consistent
//! snapshots for reads and one serial writer for writes.
//!
//! The engine's semantics (Redis rules, etags, TTL, quota) live above this
//! trait, in [`crate::store::kv::ops`]; a backend only stores bytes. A second
//! backend implements [`Backend`] and runs the same conformance suite.

mod overlay;
pub mod redb;

pub use overlay::{Layers, Overlay, Writes};

use crate::store::error::{Result, StateError};

/// Read access to one consistent view of the key space.
pub trait RawRead {
    /// The value stored under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// The length of the value under `key`, without copying it.
    fn value_len(&self, key: &[u8]) -> Result<Option<usize>> {
        Ok(self.get(key)?.map(|v| v.len()))
    }

    /// Visit entries with `start <= key < end` (`end` none = unbounded), in
    /// key order or reversed, until `visit` returns `false`.
    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()>;

    /// Whether the view may hold a key whose first byte is `first`: `false`
    /// only when it is known to hold none without a lookup (the redb
    /// writer's view knows when the file holds no watch registration), so
    /// that a request can skip asking for keys of a kind that is not there.
    fn may_hold(&self, first: u8) -> bool {
        let _ = first;
        true
    }
}

/// A view shared with other readers reads as the view itself (a published
/// snapshot handed to many reads).
impl<T: RawRead + ?Sized> RawRead for std::sync::Arc<T> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        (**self).get(key)
    }

    fn may_hold(&self, first: u8) -> bool {
        (**self).may_hold(first)
    }

    fn value_len(&self, key: &[u8]) -> Result<Option<usize>> {
        (**self).value_len(key)
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        (**self).scan(start, end, reverse, visit)
    }
}

/// The database-wide etag counter as the requests of one group leave it,
/// kept by the writer for them (see [`RawWrite::etag_counter`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCounter {
    /// The last etag version a request of the group that succeeded issued;
    /// the writer writes the counter record with it once, when the group
    /// ends. `None`: none did — read the record.
    pub last: Option<u64>,
}

/// Write access inside one atomic request.
pub trait RawWrite: RawRead {
    /// Store `value` under `key`.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
    /// Remove `key` (no error if absent).
    fn delete(&mut self, key: &[u8]) -> Result<()>;
    /// Remove every key in `start..end` (`end` none = unbounded).
    fn delete_range(&mut self, start: &[u8], end: Option<&[u8]>) -> Result<()>;

    /// [`RawWrite::put`], handing over the buffers: a write buffer keeps
    /// them instead of copying them (the default borrows them).
    fn put_owned(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.put(&key, &value)
    }

    /// [`RawWrite::delete`], handing over the key's buffer.
    fn delete_owned(&mut self, key: Vec<u8>) -> Result<()> {
        self.delete(&key)
    }

    /// The database-wide etag counter of the group this request runs in,
    /// when its writer keeps one: a request that succeeds leaves the last
    /// version it issued there instead of rewriting the counter record,
    /// and the next request of the group reads it there instead of looking
    /// the record up; the writer writes the record once, after the group's
    /// last request. `None` (the default): read and write the record.
    ///
    /// A savepoint's rollback does not restore it: a request moves it only
    /// as the very last step of a request that succeeds
    /// (`WriteCx::finish`), after which nothing of the request can fail.
    fn etag_counter(&mut self) -> Option<&mut GroupCounter> {
        None
    }
}

/// One request for the writer: its writes are applied atomically if and only
/// if [`WriteJob::apply`] returns `Ok`, even when it shares a commit with others.
pub trait WriteJob: Send {
    /// Make the request's writes.
    fn apply(&mut self, tx: &mut dyn RawWrite) -> Result<()>;
    /// Told once the commit holding the request is durable (`Ok`) or failed.
    fn finish(self: Box<Self>, committed: Result<()>);
    /// The view the request ran over turned out not to hold (an earlier
    /// group it read failed to reach the file): forget the request's own
    /// outcome, so that [`finish`](WriteJob::finish) reports the group's
    /// failure instead.
    fn void(&mut self) {}
}

/// A storage backend.
pub trait Backend: Send + Sync + 'static {
    /// A consistent read-only snapshot of the whole key space.
    fn snapshot(&self) -> Result<Box<dyn RawRead + Send>>;
    /// Queue a write request; the backend calls its `finish` exactly once.
    fn submit(&self, job: Box<dyn WriteJob>);
    /// A number that changes whenever what [`snapshot`](Backend::snapshot)
    /// returns may change (never back to an earlier value), read before the
    /// snapshot: equal numbers mean equal state. `None` if the backend
    /// cannot tell.
    fn generation(&self) -> Option<u64> {
        None
    }
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> StateError {
    StateError::Unavailable(format!("storage: {e}"))
}
