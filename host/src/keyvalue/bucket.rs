//! A `wasi:keyvalue` bucket over one scope, and every operation of the
//! standard written once on it; the per-version modules only translate
//! types.
//!
//! - Values are the scope's value keys, byte for byte: what a guest sets
//!   here, `get` of our WIT, the SDK (as bytes), the CLI and the Dapr API
//!   read, and the other way round. A key holding a map or a list is not a
//!   value: `get` fails with the `wrong-type` message; `exists`, `delete`
//!   and `list-keys` see it as a key.
//! - `increment` is our counter (`increment` of the state API: decimal i64
//!   text, missing = 0, `not-an-integer`, `overflow`).
//! - `set-many` and `delete-many` are atomic (one transaction; at most the
//!   transaction limit of keys); `get-many` reads in chunks of that size
//!   and returns at most the host's reply limit (32 MiB by default), so a
//!   guest that asks for one large key thousands of times gets an error,
//!   not a host that runs out of memory.
//! - compare-and-swap is an `if-match` on the etag read when the CAS handle
//!   was made or by its last `current` (`if-absent` when the key was
//!   missing), so it is atomic with every other writer of the scope; a
//!   handle keeps no copy of the value.

use crate::store::{
    Condition, KeyListing, KeyPage, Op, OpKind, ReplyBudget, Scope, ScopeHandle, SetOptions,
    StateError,
};

type Result<T> = std::result::Result<T, StateError>;

/// One open bucket: a scope and a key prefix.
#[derive(Debug, Clone)]
pub struct KvBucket {
    scope: ScopeHandle,
    prefix: String,
    name: String,
}

/// A key held for compare-and-swap: its etag when last read (by
/// [`KvBucket::cas`] or [`KvCas::current`]). The value is not kept: a
/// guest holding many handles holds no copies of it in the host.
#[derive(Debug, Clone)]
pub struct KvCas {
    pub(crate) bucket: KvBucket,
    pub(crate) key: String,
    pub(crate) etag: Option<String>,
}

impl KvBucket {
    /// A bucket over `scope`, its keys stored under `prefix`, opened as `name`.
    pub fn new(scope: ScopeHandle, prefix: &str, name: &str) -> Self {
        KvBucket {
            scope,
            prefix: prefix.to_string(),
            name: name.to_string(),
        }
    }

    /// The identifier it was opened with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The scope it lives in.
    pub fn scope(&self) -> &Scope {
        self.scope.scope()
    }

    /// A string naming scope and prefix (for numeric cursors).
    pub(crate) fn identity(&self) -> String {
        format!("{}|{}", self.scope.scope(), self.prefix)
    }

    fn key(&self, key: &str) -> Result<String> {
        if key.is_empty() {
            return Err(StateError::invalid(
                "the key is empty; wasm-state keys are non-empty UTF-8",
            ));
        }
        Ok(format!("{}{key}", self.prefix))
    }

    fn max_ops(&self) -> usize {
        self.scope.store().limits().max_ops
    }

    /// The value of `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.scope.get(&self.key(key)?).await
    }

    /// Set `key` to `value` (any old type; clears a TTL).
    pub async fn set(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.scope.set(&self.key(key)?, value).await.map(drop)
    }

    /// Delete `key` (nothing if missing).
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.scope.delete(&self.key(key)?).await.map(drop)
    }

    /// Does `key` exist (any type)?
    pub async fn exists(&self, key: &str) -> Result<bool> {
        self.scope.exists(&self.key(key)?).await
    }

    /// One page of keys in key order after `cursor` (a cursor of this
    /// listing); keys without the bucket's prefix.
    pub async fn list(&self, cursor: Option<String>) -> Result<KeyPage> {
        let listing = KeyListing {
            prefix: (!self.prefix.is_empty()).then(|| self.prefix.clone()),
            cursor,
            ..KeyListing::default()
        };
        let mut page = self.scope.keys(listing).await?;
        let n = self.prefix.len();
        // The key that is the prefix itself is no key of the bucket (an
        // empty key is none anywhere): it is not listed.
        page.keys.retain(|k| k.len() > n);
        for k in &mut page.keys {
            k.drain(..n);
        }
        Ok(page)
    }

    /// Our counter: add `delta` (missing = 0); the new value.
    pub async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        self.scope.increment(&self.key(key)?, delta).await
    }

    /// The counter as an unsigned number (`wasi:keyvalue@0.2.0-draft`):
    /// like [`increment`](Self::increment), but a result below zero (only
    /// possible on a counter made negative through the state API) fails
    /// and changes nothing, as does a `delta` beyond the i64 range.
    pub async fn increment_unsigned(&self, key: &str, delta: u64) -> Result<u64> {
        let delta = i64::try_from(delta).map_err(|_| StateError::Overflow)?;
        let key = self.key(key)?;
        // One atomic commit: after the increment, adding i64::MIN overflows
        // exactly when the result is negative (which aborts it all); adding
        // i64::MAX and then 1 restores the result.
        let ops = [delta, i64::MIN, i64::MAX, 1]
            .into_iter()
            .map(|d| Op::new(key.clone(), OpKind::Increment(d)))
            .collect();
        match self.scope.commit(ops).await {
            Ok(results) => match results.last().map(|r| &r.output) {
                Some(crate::store::OpOutput::Int(n)) => Ok(*n as u64),
                _ => Err(StateError::Internal("increment gave no value".into())),
            },
            Err(StateError::Aborted { index: 1, .. }) => Err(StateError::invalid(format!(
                "the counter {key:?} would be negative after adding {delta}, and \
                 wasi:keyvalue@0.2.0-draft counters are unsigned; use @0.2.0-draft2 (s64) \
                 or the state API for negative counters"
            ))),
            Err(StateError::Aborted { source, .. }) => Err(*source),
            Err(e) => Err(e),
        }
    }

    /// Values of `keys` in request order (none for missing keys and for
    /// maps and lists), read `max_ops` keys at a time; `reply-too-large`
    /// once the values would add up to more than the host's reply limit.
    pub async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect::<Result<_>>()?;
        let mut budget = ReplyBudget::new(self.scope.store().limits().max_reply_bytes);
        let mut out = Vec::with_capacity(full.len());
        for chunk in full.chunks(self.max_ops().max(1)) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let values = self.scope.get_many(&refs).await?;
            for v in values.iter().flatten() {
                budget.take(v.len())?;
            }
            out.extend(values);
        }
        Ok(out)
    }

    /// Set every pair in one atomic transaction.
    pub async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<()> {
        let entries = entries
            .into_iter()
            .map(|(k, v)| Ok((self.key(&k)?, v)))
            .collect::<Result<_>>()?;
        self.scope.set_many(entries).await
    }

    /// Delete every key in one atomic transaction.
    pub async fn delete_many(&self, keys: &[String]) -> Result<()> {
        let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect::<Result<_>>()?;
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        self.scope.delete_many(&refs).await.map(drop)
    }

    /// Hold `key` for a later [`swap`](KvCas::swap): its etag now.
    pub async fn cas(&self, key: &str) -> Result<KvCas> {
        let entry = self.scope.get_entry(&self.key(key)?).await?;
        Ok(KvCas {
            bucket: self.clone(),
            key: key.to_string(),
            etag: entry.map(|e| e.etag),
        })
    }
}

impl KvCas {
    /// The key's value now (read again, as Spin does); a later swap
    /// succeeds only if the key is unchanged since this read.
    pub async fn current(&mut self) -> Result<Option<Vec<u8>>> {
        let key = self.bucket.key(&self.key)?;
        let entry = self.bucket.scope.get_entry(&key).await?;
        self.etag = entry.as_ref().map(|e| e.etag.clone());
        Ok(entry.map(|e| e.value))
    }

    /// Write `value` if the key is unchanged since the last read: `Ok(true)`
    /// written, `Ok(false)` changed meanwhile (nothing written).
    pub async fn swap(&self, value: Vec<u8>) -> Result<bool> {
        let condition = match &self.etag {
            Some(etag) => Condition::IfMatch(etag.clone()),
            None => Condition::IfAbsent,
        };
        let key = self.bucket.key(&self.key)?;
        let options = SetOptions {
            ttl: None,
            condition: Some(condition),
        };
        match self.bucket.scope.set_with(&key, value, options).await {
            Ok(_) => Ok(true),
            Err(StateError::EtagMismatch | StateError::AlreadyExists) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
