//! [`StateStorage`]: Bot Framework storage on wasm-state, over any scope.

use std::time::Duration;

use serde_json::Value;
use wasm_state_sdk::{Condition, Error, SetOptions, State};

use crate::error::{BotError, Result};
use crate::storage::{
    ABSENT_ETAG, ANY_ETAG, ETAG, ETags, Storage, StoreItems, etag_of, without_etag,
};

/// Bot state kept in a wasm-state scope — [`State::instance`] (the
/// default), [`State::account`] or a [`State::session`] — with
/// wasm-state's etags and conditions:
///
/// - an item is stored as its JSON without `eTag` under `prefix + key`; a
///   read puts the key's etag in `eTag`;
/// - a write is **atomic**: all items or none (one wasm-state transaction;
///   Bot Framework's own storages write item by item); an item with an
///   eTag is written only if the key still has it (`if-match`), also when
///   the key is gone meanwhile (a conflict); without one, or with `"*"`, it
///   overwrites; with [`ABSENT_ETAG`] only if there is none yet;
/// - with [`with_ttl`](StateStorage::with_ttl), every write (and every
///   [`touch`](Storage::touch)) gives the items that TTL: state idle for
///   that long disappears; a touch gives the items new eTags (it returns
///   them);
/// - [`write_tagged`](Storage::write_tagged) returns the eTags the
///   transaction gave, not a second read's;
/// - an item larger than the host's value limit is
///   [`BotError::TooLarge`] naming its key.
///
/// ```no_run
/// use std::time::Duration;
/// use wasm_state_bot::{ConversationState, StateStorage};
/// use wasm_state_sdk::State;
///
/// let storage = StateStorage::new(State::instance())
///     .with_prefix("bot/")
///     .with_ttl(Duration::from_secs(30 * 60)); // forget idle conversations
/// let conversation = ConversationState::new(storage);
/// # let _ = conversation;
/// ```
#[derive(Debug)]
pub struct StateStorage {
    state: State,
    prefix: String,
    ttl: Option<Duration>,
}

impl StateStorage {
    /// Items in `state`'s scope.
    pub fn new(state: State) -> Self {
        StateStorage {
            state,
            prefix: String::new(),
            ttl: None,
        }
    }

    /// Keep items under keys starting with `prefix` (`"bot/"`), beside the
    /// scope's other data.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Items expire after `ttl` without a write or a touch.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

/// The key of the op at `index` of `keys`, for an error.
fn nth(keys: &[String], index: u32) -> String {
    keys.get(index as usize).cloned().unwrap_or_default()
}

impl Storage for StateStorage {
    fn read(&self, keys: &[&str]) -> Result<StoreItems> {
        let mut out = StoreItems::new();
        for key in keys {
            if let Some(entry) = self.state.get_entry::<Value>(&self.key(key))? {
                let mut item = match entry.value {
                    Value::Object(m) => m,
                    _ => {
                        return Err(BotError::NotAnObject {
                            key: (*key).to_string(),
                        });
                    }
                };
                item.insert(ETAG.into(), Value::String(entry.etag.into_string()));
                out.insert((*key).to_string(), Value::Object(item));
            }
        }
        Ok(out)
    }

    fn write(&self, changes: StoreItems) -> Result<()> {
        self.write_tagged(changes).map(drop)
    }

    /// The eTags come from the write's own results (one transaction), so
    /// no other writer's can slip in.
    fn write_tagged(&self, changes: StoreItems) -> Result<ETags> {
        if changes.is_empty() {
            return Ok(ETags::new());
        }
        let mut batch = self.state.batch();
        let mut keys = Vec::new();
        for (key, item) in &changes {
            if !item.is_object() {
                return Err(BotError::NotAnObject { key: key.clone() });
            }
            let body = without_etag(item);
            let condition = match etag_of(item).filter(|e| !e.is_empty()) {
                None | Some(ANY_ETAG) => None,
                Some(ABSENT_ETAG) => Some(Condition::IfAbsent),
                Some(e) => Some(Condition::IfMatch(e.into())),
            };
            let options = SetOptions {
                ttl: self.ttl,
                condition,
            };
            batch.set_with(&self.key(key), &body, options);
            keys.push(key.clone());
        }
        match batch.commit() {
            Ok(results) => Ok(tags_of(keys, results)),
            Err(Error::Transaction { index, source }) => {
                let key = nth(&keys, index);
                Err(match *source {
                    Error::EtagMismatch | Error::AlreadyExists | Error::InvalidEtag => {
                        BotError::EtagConflict { key }
                    }
                    Error::ValueTooLarge => {
                        let len = serde_json::to_vec(&without_etag(&changes[&key]))
                            .map(|v| v.len())
                            .unwrap_or(0);
                        BotError::TooLarge { key, len }
                    }
                    e => BotError::State(e),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    fn delete(&self, keys: &[&str]) -> Result<()> {
        let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        for chunk in keys.chunks(128) {
            self.state.delete_many(chunk)?;
        }
        Ok(())
    }

    fn touch_if(&self, key: &str, etag: &str) -> Result<Option<String>> {
        self.renew_if(key, etag)
    }

    /// Gives the items the storage's TTL again; a renewed item gets a new
    /// eTag (an expiry change is a write in wasm-state), returned here.
    fn touch(&self, keys: &[&str]) -> Result<ETags> {
        let mut tags = ETags::new();
        let Some(ttl) = self.ttl else {
            return Ok(tags);
        };
        for chunk in keys.chunks(128) {
            let mut batch = self.state.batch();
            for key in chunk {
                batch.expire(&self.key(key), ttl);
            }
            let names = chunk.iter().map(|k| (*k).to_string()).collect();
            tags.extend(tags_of(names, batch.commit()?));
        }
        Ok(tags)
    }
}

impl StateStorage {
    /// The renewal of [`touch_if`](Storage::touch_if): one commit, the
    /// expiry only if the key still has `etag`.
    fn renew_if(&self, key: &str, etag: &str) -> Result<Option<String>> {
        let Some(ttl) = self.ttl else {
            return Ok(Some(etag.to_string()));
        };
        let mut batch = self.state.batch();
        batch
            .expire(&self.key(key), ttl)
            .when(Condition::IfMatch(etag.into()));
        match batch.commit() {
            Ok(results) => Ok(tags_of(vec![key.to_string()], results).remove(key)),
            Err(Error::Transaction { source, .. })
                if matches!(*source, Error::EtagMismatch | Error::InvalidEtag) =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The eTag each key has after a committed batch (one op per key, in order).
fn tags_of(keys: Vec<String>, results: Vec<wasm_state_sdk::OpResult>) -> ETags {
    keys.into_iter()
        .zip(results)
        .filter_map(|(key, r)| r.etag.map(|e| (key, e.into_string())))
        .collect()
}
