//! [`ScopeHandle`]: every operation on one scope's key space, as async
//! methods. Writes are single-op transactions on the writer; point reads run
//! inline on a snapshot; scans run on a blocking thread.

use std::time::Duration;

use super::error::{Result, StateError};
use super::layout::ScopeKeys;
use super::meta::etag_of;
use super::ops::keyspace::{self, ensure_scope, load};
use super::ops::{self, list, map, value};
use super::types::*;
use super::{RawRead, Store};

/// One scope's key space (account, instance or session).
#[derive(Clone, Debug)]
pub struct ScopeHandle {
    store: Store,
    scope: Scope,
    keys: ScopeKeys,
}

fn owned(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

impl ScopeHandle {
    pub(crate) fn new(store: Store, scope: Scope) -> Self {
        let keys = ScopeKeys::new(&scope);
        ScopeHandle { store, scope, keys }
    }

    /// Which scope this is.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    fn check_key(&self, key: &str) -> Result<()> {
        self.store.limits().check_key(key)
    }

    /// A point read on a fresh snapshot, after checking the scope is alive.
    fn read<R>(
        &self,
        key: &str,
        f: impl FnOnce(&dyn RawRead, &ScopeKeys, u64) -> Result<R>,
    ) -> Result<R> {
        self.check_key(key)?;
        self.store.read(|r, now| {
            ensure_scope(r, &self.scope, now)?;
            f(r, &self.keys, now)
        })
    }

    /// A scan on a blocking thread.
    async fn scan<R: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn RawRead, &ScopeKeys, u64) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let (scope, keys) = (self.scope.clone(), self.keys.clone());
        self.store
            .read_blocking(move |r, now| {
                ensure_scope(r, &scope, now)?;
                f(r, &keys, now)
            })
            .await
    }

    /// Apply ops atomically; errors of op `i` come back as `Aborted { index: i }`.
    pub async fn commit(&self, ops: Vec<Op>) -> Result<Vec<OpResult>> {
        self.store.limits().check_ops(ops.len())?;
        let (scope, keys) = (self.scope.clone(), self.keys.clone());
        self.store
            .write(move |cx| {
                ensure_scope(cx.r(), &scope, cx.now)?;
                ops::apply_all(cx, &keys, &ops)
            })
            .await
    }

    /// Apply one op; its error comes back as is.
    pub async fn apply(&self, op: Op) -> Result<OpResult> {
        let (scope, keys) = (self.scope.clone(), self.keys.clone());
        self.store
            .write(move |cx| {
                ensure_scope(cx.r(), &scope, cx.now)?;
                ops::apply(cx, &keys, &op)
            })
            .await
    }

    async fn op(&self, key: &str, kind: OpKind) -> Result<OpResult> {
        self.apply(Op::new(key, kind)).await
    }

    async fn int(&self, key: &str, kind: OpKind) -> Result<i64> {
        match self.op(key, kind).await?.output {
            OpOutput::Int(n) => Ok(n),
            other => Err(StateError::Internal(format!(
                "expected a count, got {other:?}"
            ))),
        }
    }

    async fn boolean(&self, key: &str, kind: OpKind) -> Result<bool> {
        Ok(self.op(key, kind).await?.output == OpOutput::Bool(true))
    }

    async fn values(&self, key: &str, kind: OpKind) -> Result<Vec<Vec<u8>>> {
        match self.op(key, kind).await?.output {
            OpOutput::Values(v) => Ok(v),
            other => Err(StateError::Internal(format!(
                "expected values, got {other:?}"
            ))),
        }
    }

    // ---- values ----

    /// The value of `key`, if any (`wrong-type` for a map or list).
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.read(key, |r, sk, now| {
            Ok(value::get_value(r, sk, key, now)?.map(value::bytes))
        })
    }

    /// The value with its etag and remaining TTL.
    pub async fn get_entry(&self, key: &str) -> Result<Option<Entry>> {
        self.read(key, |r, sk, now| {
            Ok(value::get_value(r, sk, key, now)?.map(|m| Entry {
                etag: etag_of(m.version),
                ttl: m.ttl_ms(now).map(Duration::from_millis),
                value: value::bytes(m),
            }))
        })
    }

    /// Values of several keys in request order (none for missing or non-value keys).
    pub async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>> {
        self.store.limits().check_ops(keys.len())?;
        for k in keys {
            self.check_key(k)?;
        }
        self.store.read(|r, now| {
            ensure_scope(r, &self.scope, now)?;
            keys.iter()
                .map(|k| {
                    Ok(load(r, &self.keys, k, now)?
                        .filter(|m| m.kind() == KeyKind::Value)
                        .map(value::bytes))
                })
                .collect()
        })
    }

    /// Set a value (clears any TTL). Returns the new etag.
    pub async fn set(&self, key: &str, value: Vec<u8>) -> Result<String> {
        self.set_with(key, value, SetOptions::default()).await
    }

    /// Set a value with a TTL and/or condition. Returns the new etag.
    pub async fn set_with(&self, key: &str, value: Vec<u8>, options: SetOptions) -> Result<String> {
        let op = Op {
            key: key.into(),
            kind: OpKind::Set {
                value,
                ttl: options.ttl,
            },
            condition: options.condition,
        };
        self.apply(op)
            .await?
            .etag
            .ok_or_else(|| StateError::Internal("set gave no etag".into()))
    }

    /// Set several values atomically.
    pub async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<()> {
        let ops = entries
            .into_iter()
            .map(|(k, v)| {
                Op::new(
                    k,
                    OpKind::Set {
                        value: v,
                        ttl: None,
                    },
                )
            })
            .collect();
        self.commit_batch(ops).await.map(|_| ())
    }

    /// Delete a key of any type. Returns whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        self.boolean(key, OpKind::Delete).await
    }

    /// Delete a key only if `condition` holds.
    pub async fn delete_if(&self, key: &str, condition: Condition) -> Result<bool> {
        let r = self
            .apply(Op::new(key, OpKind::Delete).when(condition))
            .await?;
        Ok(r.output == OpOutput::Bool(true))
    }

    /// Delete several keys atomically. Returns how many existed.
    pub async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        let ops = owned(keys)
            .into_iter()
            .map(|k| Op::new(k, OpKind::Delete))
            .collect();
        let results = self.commit_batch(ops).await?;
        Ok(results
            .iter()
            .filter(|r| r.output == OpOutput::Bool(true))
            .count() as u64)
    }

    /// A batch is atomic like a transaction but reports the plain error.
    async fn commit_batch(&self, ops: Vec<Op>) -> Result<Vec<OpResult>> {
        self.commit(ops).await.map_err(|e| match e {
            StateError::Aborted { source, .. } => *source,
            e => e,
        })
    }

    /// Does the key exist (any type)?
    pub async fn exists(&self, key: &str) -> Result<bool> {
        self.read(key, |r, sk, now| Ok(load(r, sk, key, now)?.is_some()))
    }

    /// Kind, etag and TTL of a key of any type.
    pub async fn info(&self, key: &str) -> Result<Option<KeyInfo>> {
        self.read(key, |r, sk, now| {
            Ok(load(r, sk, key, now)?.map(|m| KeyInfo {
                kind: m.kind(),
                etag: etag_of(m.version),
                ttl: m.ttl_ms(now).map(Duration::from_millis),
            }))
        })
    }

    /// Add `delta` to a counter (missing = 0). Returns the new value.
    pub async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        self.int(key, OpKind::Increment(delta)).await
    }

    /// Set a TTL in seconds (≤ 0 deletes) if `mode` allows. Returns whether it applied.
    pub async fn expire(&self, key: &str, seconds: i64, mode: ExpireMode) -> Result<bool> {
        self.boolean(key, OpKind::Expire { seconds, mode }).await
    }

    /// Remove a key's TTL. Returns whether it had one.
    pub async fn persist(&self, key: &str) -> Result<bool> {
        self.boolean(key, OpKind::Persist).await
    }

    /// Remaining TTL: `None` if the key has none; `not-found` if there is no key.
    pub async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        self.read(key, |r, sk, now| {
            let m = load(r, sk, key, now)?.ok_or(StateError::NotFound)?;
            Ok(m.ttl_ms(now).map(Duration::from_millis))
        })
    }

    /// One page of keys in key order.
    pub async fn keys(&self, listing: KeyListing) -> Result<KeyPage> {
        let page = self.store.limits().page(listing.limit)?;
        self.scan(move |r, sk, now| keyspace::keys(r, sk, &listing, page, now))
            .await
    }

    /// Delete every key starting with `prefix` (non-empty). Returns how many.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        if prefix.is_empty() {
            return Err(StateError::invalid(
                "delete-prefix needs a non-empty prefix",
            ));
        }
        self.check_key(prefix)?;
        let (scope, keys, prefix) = (self.scope.clone(), self.keys.clone(), prefix.to_string());
        self.store
            .write(move |cx| {
                ensure_scope(cx.r(), &scope, cx.now)?;
                keyspace::delete_prefix(cx, &keys, &prefix)
            })
            .await
    }

    // ---- maps ----

    /// Set fields. Returns how many were new.
    pub async fn map_set(&self, key: &str, entries: Vec<(String, Vec<u8>)>) -> Result<u64> {
        self.int(key, OpKind::MapSet(entries))
            .await
            .map(|n| n as u64)
    }

    /// One field's value.
    pub async fn map_get(&self, key: &str, field: &str) -> Result<Option<Vec<u8>>> {
        self.read(key, |r, sk, now| map::get(r, sk, key, field, now))
    }

    /// Several fields' values, in request order.
    pub async fn map_get_many(&self, key: &str, fields: &[&str]) -> Result<Vec<Option<Vec<u8>>>> {
        self.store.limits().check_ops(fields.len())?;
        self.read(key, |r, sk, now| {
            map::get_many(r, sk, key, &owned(fields), now)
        })
    }

    /// All field/value pairs in field order.
    pub async fn map_get_all(&self, key: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.check_key(key)?;
        let key = key.to_string();
        self.scan(move |r, sk, now| map::get_all(r, sk, &key, now))
            .await
    }

    /// All values in field order.
    pub async fn map_values(&self, key: &str) -> Result<Vec<Vec<u8>>> {
        Ok(self
            .map_get_all(key)
            .await?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// All fields in order.
    pub async fn map_keys(&self, key: &str) -> Result<Vec<String>> {
        Ok(self
            .map_get_all(key)
            .await?
            .into_iter()
            .map(|(f, _)| f)
            .collect())
    }

    /// Delete fields. Returns how many existed.
    pub async fn map_delete(&self, key: &str, fields: &[&str]) -> Result<u64> {
        self.int(key, OpKind::MapDelete(owned(fields)))
            .await
            .map(|n| n as u64)
    }

    /// Does the field exist?
    pub async fn map_exists(&self, key: &str, field: &str) -> Result<bool> {
        Ok(self.map_get(key, field).await?.is_some())
    }

    /// Number of fields (0 if no map).
    pub async fn map_length(&self, key: &str) -> Result<u64> {
        self.read(key, |r, sk, now| map::length(r, sk, key, now))
    }

    /// Add to a field counter. Returns the new value.
    pub async fn map_increment(&self, key: &str, field: &str, delta: i64) -> Result<i64> {
        self.int(
            key,
            OpKind::MapIncrement {
                field: field.into(),
                delta,
            },
        )
        .await
    }

    /// One step of a cursor scan (start with `"0"`, done when `"0"` comes back).
    /// A pattern is at most as long as a field may be (`key-too-large`).
    pub async fn map_scan(
        &self,
        key: &str,
        cursor: &str,
        pattern: Option<&str>,
        count: u32,
    ) -> Result<ScanPage> {
        self.check_key(key)?;
        if let Some(p) = pattern {
            // A pattern longer than any field only costs matching time.
            self.store.limits().check_field(p)?;
        }
        let count = (count as usize).min(self.store.limits().max_page);
        let (key, cursor, pattern) = (
            key.to_string(),
            cursor.to_string(),
            pattern.map(str::to_string),
        );
        self.scan(move |r, sk, now| map::scan(r, sk, &key, &cursor, pattern.as_deref(), count, now))
            .await
    }

    // ---- lists ----

    /// Push at the tail. Returns the new length.
    pub async fn list_append(&self, key: &str, values: Vec<Vec<u8>>) -> Result<u64> {
        self.int(key, OpKind::ListAppend(values))
            .await
            .map(|n| n as u64)
    }

    /// Push at the head (the last value ends up first). Returns the new length.
    pub async fn list_prepend(&self, key: &str, values: Vec<Vec<u8>>) -> Result<u64> {
        self.int(key, OpKind::ListPrepend(values))
            .await
            .map(|n| n as u64)
    }

    /// Pop up to `count` from the head.
    pub async fn list_start_pop(&self, key: &str, count: u64) -> Result<Vec<Vec<u8>>> {
        self.values(key, OpKind::ListStartPop(count)).await
    }

    /// Pop up to `count` from the tail (tail first).
    pub async fn list_end_pop(&self, key: &str, count: u64) -> Result<Vec<Vec<u8>>> {
        self.values(key, OpKind::ListEndPop(count)).await
    }

    /// Remove occurrences of `value` (LREM). Returns how many.
    pub async fn list_remove(&self, key: &str, value: Vec<u8>, count: i64) -> Result<u64> {
        self.int(key, OpKind::ListRemove { value, count })
            .await
            .map(|n| n as u64)
    }

    /// Number of items (0 if no list).
    pub async fn list_length(&self, key: &str) -> Result<u64> {
        self.read(key, |r, sk, now| list::length(r, sk, key, now))
    }

    /// Items `start..=stop` (LRANGE indices).
    pub async fn list_range(&self, key: &str, start: i64, stop: i64) -> Result<Vec<Vec<u8>>> {
        self.check_key(key)?;
        let key = key.to_string();
        self.scan(move |r, sk, now| list::range(r, sk, &key, start, stop, now))
            .await
    }

    /// Keep only `start..=stop` (LTRIM indices).
    pub async fn list_trim(&self, key: &str, start: i64, stop: i64) -> Result<()> {
        self.op(key, OpKind::ListTrim { start, stop })
            .await
            .map(|_| ())
    }

    /// Insert before/after the first `pivot`. Returns length, -1 (no pivot) or 0 (no list).
    pub async fn list_insert(
        &self,
        key: &str,
        before: bool,
        pivot: Vec<u8>,
        value: Vec<u8>,
    ) -> Result<i64> {
        self.int(
            key,
            OpKind::ListInsert {
                before,
                pivot,
                value,
            },
        )
        .await
    }

    /// The item at an index (negative from the end).
    pub async fn list_index(&self, key: &str, index: i64) -> Result<Option<Vec<u8>>> {
        self.read(key, |r, sk, now| list::index(r, sk, key, index, now))
    }

    /// Replace the item at an index.
    pub async fn list_set(&self, key: &str, index: i64, value: Vec<u8>) -> Result<()> {
        self.op(key, OpKind::ListSet { index, value })
            .await
            .map(|_| ())
    }
}
