//! [`MemoryStorage`]: Bot Framework's in-memory storage, with its exact
//! semantics (for unit tests).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use serde_json::Value;

use crate::error::{BotError, Result};
use crate::storage::{ANY_ETAG, ETAG, ETags, Storage, StoreItems, etag_of};

/// Items kept in memory as JSON text (so every read is a copy), with eTags
/// from one counter ("1", "2", …), exactly as botbuilder-js's
/// `MemoryStorage`:
///
/// - a write of an absent key, or with no eTag or `"*"`, always succeeds;
///   otherwise the eTag must equal the stored one;
/// - a batch is **not** atomic: every item that does not conflict is
///   written, and the first conflict is returned (Bot Framework's quirk —
///   [`StateStorage`](crate::StateStorage) is all or nothing);
/// - reads return the items with their `eTag`.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    memory: RefCell<HashMap<String, String>>,
    etag: Cell<u64>,
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> Self {
        MemoryStorage {
            memory: RefCell::default(),
            etag: Cell::new(1),
        }
    }

    /// A storage holding these items (JSON text by key, as botbuilder-js's
    /// constructor takes them).
    pub fn with_items(items: impl IntoIterator<Item = (String, String)>) -> Self {
        MemoryStorage {
            memory: RefCell::new(items.into_iter().collect()),
            etag: Cell::new(1),
        }
    }
}

impl Storage for MemoryStorage {
    fn read(&self, keys: &[&str]) -> Result<StoreItems> {
        let memory = self.memory.borrow();
        let mut out = StoreItems::new();
        for key in keys {
            if let Some(text) = memory.get(*key) {
                out.insert((*key).to_string(), serde_json::from_str(text)?);
            }
        }
        Ok(out)
    }

    fn write(&self, changes: StoreItems) -> Result<()> {
        self.write_tagged(changes).map(drop)
    }

    fn write_tagged(&self, changes: StoreItems) -> Result<ETags> {
        let mut tags = ETags::new();
        let mut first_conflict = None;
        for (key, item) in changes {
            let Some(obj) = item.as_object() else {
                return Err(BotError::NotAnObject { key });
            };
            let stored = self.memory.borrow().get(&key).cloned();
            let new_etag = etag_of(&item).filter(|e| !e.is_empty());
            let unconditional =
                stored.is_none() || new_etag.is_none() || new_etag == Some(ANY_ETAG);
            let ok = unconditional || {
                let old: Value = serde_json::from_str(stored.as_deref().unwrap_or("{}"))?;
                etag_of(&old) == new_etag
            };
            if ok {
                let mut clone = obj.clone();
                let n = self.etag.get();
                self.etag.set(n + 1);
                clone.insert(ETAG.into(), Value::String(n.to_string()));
                self.memory
                    .borrow_mut()
                    .insert(key.clone(), serde_json::to_string(&clone)?);
                tags.insert(key, n.to_string());
            } else if first_conflict.is_none() {
                first_conflict = Some(BotError::EtagConflict { key });
            }
        }
        first_conflict.map_or(Ok(tags), Err)
    }

    fn delete(&self, keys: &[&str]) -> Result<()> {
        let mut memory = self.memory.borrow_mut();
        for key in keys {
            memory.remove(*key);
        }
        Ok(())
    }
}
