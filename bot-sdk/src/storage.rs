//! Bot Framework's `Storage`: items (JSON objects) read, written and deleted
//! by key, with eTags for optimistic concurrency.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::Result;

/// Items by key (Bot Framework's `StoreItems`). Each item is a JSON object;
/// its `eTag` member is the item's version.
pub type StoreItems = BTreeMap<String, Value>;

/// The eTag each item got, by key (from [`Storage::write_tagged`] and
/// [`Storage::touch`]).
pub type ETags = BTreeMap<String, String>;

/// The name of an item's version member, as Bot Framework spells it.
pub const ETAG: &str = "eTag";

/// The eTag that overwrites whatever is stored (last writer wins).
pub const ANY_ETAG: &str = "*";

/// An eTag that means "only if there is no item yet" (create-only). Bot
/// Framework has none; [`BotState`](crate::BotState)'s optimistic mode uses
/// it for a state that did not exist when the turn loaded it. With
/// [`MemoryStorage`](crate::MemoryStorage) it behaves the same way: an
/// absent item is written, an existing one conflicts.
pub const ABSENT_ETAG: &str = "#absent";

/// A store of bot state (Bot Framework's `Storage`).
///
/// - `read` returns the items found (with their `eTag`); missing keys are
///   simply absent from the result.
/// - `write` stores each item: without an `eTag`, or with `"*"`, it
///   overwrites; with another eTag it succeeds only if that is still the
///   item's eTag, else it fails with
///   [`BotError::EtagConflict`](crate::BotError::EtagConflict) naming the
///   key. Every write gives the item a new eTag.
/// - `delete` removes items; unknown keys are fine.
///
/// Keys may hold any characters.
pub trait Storage {
    /// Read items by key.
    fn read(&self, keys: &[&str]) -> Result<StoreItems>;
    /// Write items.
    fn write(&self, changes: StoreItems) -> Result<()>;
    /// Write items and return the eTag each got (what
    /// [`BotState`](crate::BotState)'s optimistic mode writes with next).
    /// The default writes, then reads the items back — another writer in
    /// between would hand back *its* eTag; both storages of this crate
    /// override it with the eTags the write itself gave.
    fn write_tagged(&self, changes: StoreItems) -> Result<ETags> {
        let keys: Vec<String> = changes.keys().cloned().collect();
        self.write(changes)?;
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        Ok(self
            .read(&refs)?
            .iter()
            .filter_map(|(k, item)| etag_of(item).map(|e| (k.clone(), e.to_string())))
            .collect())
    }
    /// Delete items.
    fn delete(&self, keys: &[&str]) -> Result<()>;
    /// Note that items are still in use (a storage with an idle expiry
    /// renews it) and return the new eTag of each item the renewal gave
    /// one; by default nothing is renewed and no eTag changes.
    fn touch(&self, keys: &[&str]) -> Result<ETags> {
        let _ = keys;
        Ok(ETags::new())
    }
    /// [`touch`](Storage::touch) one item only if it still has `etag`: its
    /// new eTag, `Ok(None)` if another writer changed it since (nothing
    /// renewed: the caller's next conditional write then conflicts, as it
    /// should). By default a plain touch when the item still has `etag` —
    /// for storages whose touch gives no new eTag, the same thing.
    fn touch_if(&self, key: &str, etag: &str) -> Result<Option<String>> {
        let now = self.read(&[key])?;
        if now.get(key).and_then(etag_of) != Some(etag) {
            return Ok(None);
        }
        Ok(Some(
            self.touch(&[key])?
                .remove(key)
                .unwrap_or_else(|| etag.to_string()),
        ))
    }
}

/// The eTag of an item, if it has one.
pub fn etag_of(item: &Value) -> Option<&str> {
    item.get(ETAG).and_then(Value::as_str)
}

/// The item without its `eTag` (what is stored and what change detection
/// looks at).
pub fn without_etag(item: &Value) -> Map<String, Value> {
    let mut m = item.as_object().cloned().unwrap_or_default();
    m.remove(ETAG);
    m
}
