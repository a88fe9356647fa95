//! Explicit atomic batches: [`Batch`].

use std::fmt;

use crate::error::{Result, from_commit_error};
use crate::host::Host;
use crate::ops::{OpQueue, queue_methods};
use crate::types::OpResult;

/// Operations applied together, in order, all or nothing, by one
/// [`commit`](Batch::commit) (the WIT `bucket.commit`). Made by
/// [`State::batch`](crate::State::batch).
///
/// Each method queues one operation on the batch's bucket and returns the
/// batch for chaining; [`when`](Batch::when) puts a [`Condition`](crate::Condition)
/// on the operation just queued, and [`check`](Batch::check) asserts a
/// condition without writing. Every operation sees the effects of the earlier
/// ones; the first that fails aborts the batch with
/// [`Error::Transaction`](crate::Error::Transaction) naming its index, and
/// nothing is applied. At most 128 operations by default.
///
/// ```no_run
/// use wasm_state_sdk::{Condition, State};
/// # fn main() -> wasm_state_sdk::Result<()> {
/// let state = State::instance();
/// let etag = state.set("config", &serde_json::json!({"v": 1}))?;
/// let results = state
///     .batch()
///     .set("config", &serde_json::json!({"v": 2}))
///     .when(Condition::IfMatch(etag))        // only if nobody changed it
///     .map_set("audit", [("config", &"v2")])
///     .list_append("events", &["config updated"])
///     .increment("config-version", 1)
///     .commit()?;
/// assert_eq!(results.len(), 4);
/// let version = results[3].output.as_integer();
/// # let _ = version; Ok(()) }
/// ```
pub struct Batch<'a> {
    host: &'a dyn Host,
    ops: OpQueue,
}

impl<'a> Batch<'a> {
    pub(crate) fn new(host: &'a dyn Host) -> Self {
        Batch {
            host,
            ops: OpQueue::default(),
        }
    }

    /// Number of operations queued so far.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no operation is queued.
    pub fn is_empty(&self) -> bool {
        self.ops.len() == 0
    }

    queue_methods!();

    /// Applies the queued operations atomically and returns one
    /// [`OpResult`] per operation, in order (the key's new etag and the
    /// operation's output). The batch is empty afterwards.
    ///
    /// Fails with [`Error::Transaction`](crate::Error::Transaction)
    /// `{ index, source }` if operation `index` failed (nothing applied), with
    /// [`Error::Json`](crate::Error::Json) if a value did not serialize
    /// (nothing sent), and with `TooManyOperations`, `Unavailable` or
    /// `Internal` as such. An empty batch succeeds without calling the host.
    pub fn commit(&mut self) -> Result<Vec<OpResult>> {
        let ops = self.ops.take()?;
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        match self.host.commit(&ops) {
            Ok(results) => Ok(results.into_iter().map(OpResult::from).collect()),
            Err(e) => Err(from_commit_error(e, 0)),
        }
    }
}

impl fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch").field("ops", &self.ops).finish()
    }
}
