//! [`ScopeHandle`]: every operation on one scope's key space, as async
//! methods. Arguments are checked here (shared by every engine); the
//! engine does the rest atomically.

use std::time::Duration;

use super::engine::Engine;
use super::error::{Result, StateError};
use super::fence::{FencePass, WriteFence};
use super::glob::Glob;
use super::query::{PageBounds, Query, QueryPage};
use super::types::*;
use super::{Store, cursor, validate};

/// One scope's key space (account, instance or session).
#[derive(Clone, Debug)]
pub struct ScopeHandle {
    store: Store,
    scope: Scope,
    origin: Option<std::sync::Arc<str>>,
    fence: Option<std::sync::Arc<WriteFence>>,
}

fn owned(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

impl ScopeHandle {
    pub(crate) fn new(store: Store, scope: Scope) -> Self {
        ScopeHandle {
            store,
            scope,
            origin: None,
            fence: None,
        }
    }

    /// The same scope, its writes let through `fence` (refused once the
    /// fence is closed: see [`WriteFence`]).
    pub fn with_fence(mut self, fence: std::sync::Arc<WriteFence>) -> Self {
        self.fence = Some(fence);
        self
    }

    /// Pass this handle's write fence, if it has one.
    fn pass(&self) -> Result<Option<FencePass<'_>>> {
        self.fence.as_deref().map(WriteFence::enter).transpose()
    }

    /// The same scope, its writes marked as made by `watcher` while it
    /// handles a change: they are not queued for that watcher again.
    pub fn with_origin(mut self, watcher: &str) -> Self {
        self.origin = Some(watcher.into());
        self
    }

    /// The store this scope lives in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Which scope this is.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    fn engine(&self) -> &dyn Engine {
        self.store.engine()
    }

    /// Count a read in the store's metrics.
    fn counted<T>(&self, op: &'static str, r: Result<T>) -> Result<T> {
        self.store
            .metrics()
            .state_op(op, r.as_ref().map_or_else(StateError::code, |_| "ok"));
        r
    }

    fn check_key(&self, key: &str) -> Result<()> {
        self.store.limits().check_key(key)
    }

    /// Apply ops atomically; errors of op `i` come back as `Aborted { index: i }`.
    /// Every op's arguments are checked first (an argument error of any op is
    /// reported before any op runs), then the ops run in order.
    pub async fn commit(&self, ops: Vec<Op>) -> Result<Vec<OpResult>> {
        let names: Vec<&'static str> = ops.iter().map(|op| op.kind.name()).collect();
        let results = match validate::commit(self.store.limits(), self.store.now_ms(), &ops) {
            Ok(()) => match self.pass() {
                Ok(_pass) => {
                    self.engine()
                        .commit(&self.scope, ops, self.origin.as_deref())
                        .await
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let metrics = self.store.metrics();
        let result = results.as_ref().map_or_else(StateError::code, |_| "ok");
        for name in names {
            metrics.state_op(name, result);
        }
        let results = results?;
        self.store.changed();
        Ok(results)
    }

    /// Apply one op; its error comes back as is.
    pub async fn apply(&self, op: Op) -> Result<OpResult> {
        let mut results = self.commit_plain(vec![op]).await?;
        results
            .pop()
            .ok_or_else(|| StateError::Internal("a commit of one op gave no result".into()))
    }

    /// A commit whose error is the failing op's own (batches, single ops).
    async fn commit_plain(&self, ops: Vec<Op>) -> Result<Vec<OpResult>> {
        self.commit(ops).await.map_err(|e| match e {
            StateError::Aborted { source, .. } => *source,
            e => e,
        })
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
        Ok(self.get_entry(key).await?.map(|e| e.value))
    }

    /// The value with its etag and remaining TTL.
    pub async fn get_entry(&self, key: &str) -> Result<Option<Entry>> {
        self.check_key(key)?;
        let keys = [key.to_string()];
        // One value: bounded by the value limit.
        let read = self.engine().get_entries(&self.scope, &keys, usize::MAX);
        self.counted("get", read.await)?.pop().unwrap_or(Ok(None))
    }

    /// Several keys' values with etag and TTL, read from one consistent view,
    /// each with its own outcome (`wrong-type` for a map or list,
    /// `key-too-large` …), in request order; `reply-too-large` as a whole
    /// past [`Limits::max_reply_bytes`](super::Limits::max_reply_bytes) of values.
    pub async fn get_entries(&self, keys: Vec<String>) -> Result<Vec<Result<Option<Entry>>>> {
        let limits = self.store.limits();
        let (ok, bad): (Vec<usize>, Vec<usize>) =
            (0..keys.len()).partition(|&i| limits.check_key(&keys[i]).is_ok());
        let valid: Vec<String> = ok.iter().map(|&i| keys[i].clone()).collect();
        let mut read = self
            .counted(
                "get",
                self.engine()
                    .get_entries(&self.scope, &valid, limits.max_reply_bytes)
                    .await,
            )?
            .into_iter();
        let mut out: Vec<Result<Option<Entry>>> = Vec::with_capacity(keys.len());
        let mut bad = bad.into_iter().peekable();
        for (i, k) in keys.iter().enumerate() {
            if bad.peek() == Some(&i) {
                bad.next();
                out.push(limits.check_key(k).map(|()| None));
            } else {
                out.push(read.next().unwrap_or(Ok(None)));
            }
        }
        Ok(out)
    }

    /// Values of several keys in request order (none for missing or
    /// non-value keys); `reply-too-large` past
    /// [`Limits::max_reply_bytes`](super::Limits::max_reply_bytes) of values, changing nothing.
    pub async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>> {
        let limits = self.store.limits();
        limits.check_ops(keys.len())?;
        for k in keys {
            self.check_key(k)?;
        }
        let keys = owned(keys);
        let read = self
            .engine()
            .get_entries(&self.scope, &keys, limits.max_reply_bytes);
        self.counted("get", read.await)?
            .into_iter()
            .map(|r| match r {
                Ok(e) => Ok(e.map(|e| e.value)),
                Err(StateError::WrongType { .. }) => Ok(None),
                Err(e) => Err(e),
            })
            .collect()
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
        self.commit_plain(ops).await.map(|_| ())
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
        let results = self.commit_plain(ops).await?;
        Ok(results
            .iter()
            .filter(|r| r.output == OpOutput::Bool(true))
            .count() as u64)
    }

    /// Does the key exist (any type)?
    pub async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.info(key).await?.is_some())
    }

    /// Kind, etag and TTL of a key of any type.
    pub async fn info(&self, key: &str) -> Result<Option<KeyInfo>> {
        self.check_key(key)?;
        self.counted("info", self.engine().info(&self.scope, key).await)
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
        Ok(self.info(key).await?.ok_or(StateError::NotFound)?.ttl)
    }

    /// One page of keys in key order.
    pub async fn keys(&self, listing: KeyListing) -> Result<KeyPage> {
        let page = self.store.limits().page(listing.limit)?;
        if let Some(c) = &listing.cursor {
            cursor::decode(c)?;
        }
        self.counted(
            "keys",
            self.engine().keys(&self.scope, &listing, page).await,
        )
    }

    /// Delete every key starting with `prefix` (non-empty). Returns how many.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        if prefix.is_empty() {
            return Err(StateError::invalid(
                "delete-prefix needs a non-empty prefix",
            ));
        }
        self.check_key(prefix)?;
        let _pass = self.pass()?;
        let n = self
            .engine()
            .delete_prefix(&self.scope, prefix, self.origin.as_deref())
            .await?;
        self.store.changed();
        Ok(n)
    }

    /// One page of a query over the JSON object values of this scope
    /// (Dapr's query language; see [`query`](super::query)).
    pub async fn query(&self, query: &Query) -> Result<QueryPage> {
        self.query_prefix("", query).await
    }

    /// [`query`](Self::query) over the keys starting with `prefix` only;
    /// results carry their keys without it.
    pub async fn query_prefix(&self, prefix: &str, query: &Query) -> Result<QueryPage> {
        let limits = self.store.limits();
        let page = PageBounds {
            results: limits.max_page,
            bytes: limits.max_reply_bytes,
        };
        self.counted(
            "query",
            self.engine().query(&self.scope, prefix, query, page).await,
        )
    }

    // ---- maps ----

    /// Set fields. Returns how many were new.
    pub async fn map_set(&self, key: &str, entries: Vec<(String, Vec<u8>)>) -> Result<u64> {
        self.int(key, OpKind::MapSet(entries))
            .await
            .map(|n| n as u64)
    }

    /// One field's value (bounded by the value limit).
    pub async fn map_get(&self, key: &str, field: &str) -> Result<Option<Vec<u8>>> {
        let read = self.map_get_within(key, &[field], usize::MAX).await?;
        Ok(read.into_iter().next().flatten())
    }

    /// Several fields' values, in request order; `reply-too-large` past
    /// [`Limits::max_reply_bytes`](super::Limits::max_reply_bytes) of
    /// values.
    pub async fn map_get_many(&self, key: &str, fields: &[&str]) -> Result<Vec<Option<Vec<u8>>>> {
        let max = self.store.limits().max_reply_bytes;
        self.map_get_within(key, fields, max).await
    }

    async fn map_get_within(
        &self,
        key: &str,
        fields: &[&str],
        max_bytes: usize,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        self.check_key(key)?;
        self.store.limits().check_ops(fields.len())?;
        let fields = owned(fields);
        let read = self
            .engine()
            .map_get_many(&self.scope, key, &fields, max_bytes);
        self.counted("map-get", read.await)
    }

    /// All field/value pairs in field order; over
    /// [`Limits::max_reply_bytes`](super::Limits::max_reply_bytes) together,
    /// `reply-too-large` (read such a map with [`ScopeHandle::map_scan`]).
    pub async fn map_get_all(&self, key: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.check_key(key)?;
        let max = self.store.limits().max_reply_bytes;
        let read = self
            .engine()
            .map_fields(&self.scope, key, None, usize::MAX, max)
            .await
            .and_then(|page| {
                let bytes = page.entries.iter().map(|(f, v)| f.len() + v.len());
                if page.last.is_some() || bytes.sum::<usize>() > max {
                    return Err(StateError::ReplyTooLarge { max });
                }
                Ok(page.entries)
            });
        self.counted("map-get-all", read)
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
        self.check_key(key)?;
        self.counted(
            "map-length",
            self.engine().map_length(&self.scope, key).await,
        )
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
    /// `count` fields are examined (Redis HSCAN: work, not results); those
    /// matching `pattern` are returned. A pattern is at most as long as a
    /// field may be (`key-too-large`).
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
        let glob = pattern.map(Glob::new).transpose()?;
        let after = match cursor {
            "0" => None,
            c => Some(cursor::decode(c)?),
        };
        if count == 0 {
            return Err(StateError::invalid("map-scan count must be at least 1"));
        }
        let limits = self.store.limits();
        let count = (count as usize).min(limits.max_page);
        let page = self.counted(
            "map-scan",
            self.engine()
                .map_fields(&self.scope, key, after, count, limits.max_reply_bytes)
                .await,
        )?;
        Ok(ScanPage {
            cursor: page
                .last
                .map_or_else(|| "0".to_string(), |f| cursor::encode(&f)),
            entries: page
                .entries
                .into_iter()
                .filter(|(f, _)| glob.as_ref().is_none_or(|g| g.matches(f.as_bytes())))
                .collect(),
        })
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
        self.check_key(key)?;
        self.counted(
            "list-length",
            self.engine().list_length(&self.scope, key).await,
        )
    }

    /// Items `start..=stop` (LRANGE indices); over
    /// [`Limits::max_reply_bytes`](super::Limits::max_reply_bytes) together,
    /// `reply-too-large` (read such a list in smaller ranges).
    pub async fn list_range(&self, key: &str, start: i64, stop: i64) -> Result<Vec<Vec<u8>>> {
        self.check_key(key)?;
        let max = self.store.limits().max_reply_bytes;
        self.counted(
            "list-range",
            self.engine()
                .list_range(&self.scope, key, start, stop, max)
                .await,
        )
    }

    /// Up to `count` items from index `at`, for reading a long list in
    /// pages: fewer when `count` items would be over
    /// [`Limits::max_reply_bytes`](super::Limits::max_reply_bytes) (halved
    /// until they fit; one item always does), none past the end.
    pub async fn list_page(&self, key: &str, at: u64, count: u64) -> Result<Vec<Vec<u8>>> {
        let at = i64::try_from(at).map_err(|_| StateError::invalid("a list index over 2^63"))?;
        let mut count = i64::try_from(count.max(1)).unwrap_or(i64::MAX);
        loop {
            let stop = at.saturating_add(count - 1);
            match self.list_range(key, at, stop).await {
                Err(StateError::ReplyTooLarge { .. }) if count > 1 => count = (count + 1) / 2,
                r => return r,
            }
        }
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
        self.check_key(key)?;
        self.counted(
            "list-index",
            self.engine().list_index(&self.scope, key, index).await,
        )
    }

    /// Replace the item at an index.
    pub async fn list_set(&self, key: &str, index: i64, value: Vec<u8>) -> Result<()> {
        self.op(key, OpKind::ListSet { index, value })
            .await
            .map(|_| ())
    }
}
