//! The engine seam: every operation of the state API, at the level of one
//! read, one commit, one session or instance change, or one sweep step.
//!
//! [`Store`](super::Store) and [`ScopeHandle`](super::ScopeHandle) check
//! every argument (key and value sizes, counts, cursors, globs, TTLs) and
//! then call an engine; an engine owns everything that depends on stored
//! state and applies each call atomically. Two engines implement it:
//!
//! - [`KvEngine`](super::kv::KvEngine): the semantics written once in Rust
//!   (`kv/ops`) over a byte-level [`Backend`](super::kv::Backend) — the
//!   embedded redb file;
//! - the Redis engine (`store/redis`): each write or scan is one call of a
//!   server-side Lua function (one round trip) mirroring `kv/ops` module for
//!   module; each point read is one `HMGET` read by `kv/ops` itself.
//!
//! Both pass one conformance suite (`host/tests/conformance`).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::error::Result;
use super::query::{PageBounds, Query, QueryPage};
use super::types::{Entry, KeyInfo, KeyListing, KeyPage, Op, OpResult, Scope, SessionInfo};
use super::watch::{ChangeBatch, QueueOwner, WatchTarget};
use super::{InstanceInfo, SweepStats};

/// What an engine call returns: a boxed future, so engines are objects.
pub type Fut<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Fields of a map, with the last field examined when more remain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPage {
    /// Field/value pairs in field order.
    pub entries: Vec<(String, Vec<u8>)>,
    /// The last field examined, if fields remain after it.
    pub last: Option<Vec<u8>>,
}

/// A state engine. Every scope call first checks that the scope is alive (a
/// session scope: `no-such-session` once ended or expired), atomically with
/// the operation. Times come from the store's clock, passed in by the
/// engine's owner; arguments arrive checked.
pub trait Engine: Send + Sync + 'static {
    /// A short name for logs and metadata (`redb`, `redis`).
    fn name(&self) -> &'static str;

    /// A number that changes with every commit (any scope, anyone) and
    /// never returns to an earlier value, read before any read that follows
    /// it: two equal readings saw the same state, so a value read in
    /// between is still current. `None` when the engine cannot vouch (a
    /// store shared with other processes).
    fn read_generation(&self) -> Option<u64> {
        None
    }

    // ---- reads of one scope ----

    /// Each key's value with etag and TTL, from one consistent view: `None`
    /// for a missing key, `Err(wrong-type)` for a map or a list. The whole
    /// read is `reply-too-large` once the values found add up to more than
    /// `max_bytes` (counted as they are read).
    fn get_entries<'a>(
        &'a self,
        scope: &'a Scope,
        keys: &'a [String],
        max_bytes: usize,
    ) -> Fut<'a, Vec<Result<Option<Entry>>>>;

    /// Kind, etag and TTL of a key of any type.
    fn info<'a>(&'a self, scope: &'a Scope, key: &'a str) -> Fut<'a, Option<KeyInfo>>;

    /// One page of at most `page` keys in key order.
    fn keys<'a>(
        &'a self,
        scope: &'a Scope,
        listing: &'a KeyListing,
        page: usize,
    ) -> Fut<'a, KeyPage>;

    /// Fields of a map in request order (`wrong-type` if `key` is no map);
    /// `reply-too-large` once the values found add up to more than
    /// `max_bytes`.
    fn map_get_many<'a>(
        &'a self,
        scope: &'a Scope,
        key: &'a str,
        fields: &'a [String],
        max_bytes: usize,
    ) -> Fut<'a, Vec<Option<Vec<u8>>>>;

    /// Number of fields of a map.
    fn map_length<'a>(&'a self, scope: &'a Scope, key: &'a str) -> Fut<'a, u64>;

    /// Up to `count` fields of a map after field `after` (from the start if
    /// `None`), in field order; the page ends early before a field that
    /// would take its fields and values over `max_bytes` (one field at
    /// least).
    fn map_fields<'a>(
        &'a self,
        scope: &'a Scope,
        key: &'a str,
        after: Option<Vec<u8>>,
        count: usize,
        max_bytes: usize,
    ) -> Fut<'a, FieldPage>;

    /// Number of items of a list.
    fn list_length<'a>(&'a self, scope: &'a Scope, key: &'a str) -> Fut<'a, u64>;

    /// Items `start..=stop` of a list (LRANGE indices); items over
    /// `max_bytes` together are `reply-too-large`, found before they are
    /// all read.
    fn list_range<'a>(
        &'a self,
        scope: &'a Scope,
        key: &'a str,
        start: i64,
        stop: i64,
        max_bytes: usize,
    ) -> Fut<'a, Vec<Vec<u8>>>;

    /// The item at `index` of a list (LINDEX index).
    fn list_index<'a>(
        &'a self,
        scope: &'a Scope,
        key: &'a str,
        index: i64,
    ) -> Fut<'a, Option<Vec<u8>>>;

    /// One page of `query` over the values of keys starting with `prefix`
    /// (results carry keys without it); pages hold at most `page` results.
    fn query<'a>(
        &'a self,
        scope: &'a Scope,
        prefix: &'a str,
        query: &'a Query,
        page: PageBounds,
    ) -> Fut<'a, QueryPage>;

    // ---- writes of one scope ----

    /// Apply `ops` in order, all or nothing; the first failure comes back as
    /// [`StateError::Aborted`](super::StateError::Aborted) with its index.
    /// `origin`: the watcher making the request, whose own changes are not
    /// queued for it.
    fn commit<'a>(
        &'a self,
        scope: &'a Scope,
        ops: Vec<Op>,
        origin: Option<&'a str>,
    ) -> Fut<'a, Vec<OpResult>>;

    /// Delete every live key starting with `prefix`; returns how many.
    fn delete_prefix<'a>(
        &'a self,
        scope: &'a Scope,
        prefix: &'a str,
        origin: Option<&'a str>,
    ) -> Fut<'a, u64>;

    // ---- sessions ----

    /// Create session `id` of `instance` living `ttl` from now; returns its
    /// expiry (Unix ms).
    fn create_session<'a>(&'a self, instance: &'a str, id: &'a str, ttl: Duration) -> Fut<'a, u64>;

    /// The expiry of a live session (`no-such-session` otherwise).
    fn session_expiry<'a>(&'a self, instance: &'a str, id: &'a str) -> Fut<'a, u64>;

    /// Give a live session `ttl` from now; returns the new expiry.
    fn extend_session<'a>(&'a self, instance: &'a str, id: &'a str, ttl: Duration) -> Fut<'a, u64>;

    /// Delete a session and its state; whether it was live.
    fn end_session<'a>(&'a self, instance: &'a str, id: &'a str) -> Fut<'a, bool>;

    /// The live sessions of an instance, by id.
    fn list_sessions<'a>(&'a self, instance: &'a str) -> Fut<'a, Vec<SessionInfo>>;

    /// How many live sessions an instance has, without listing them.
    fn session_count<'a>(&'a self, instance: &'a str) -> Fut<'a, u64>;

    // ---- instances ----

    /// Register `instance` as belonging to `account` (idempotent;
    /// `access-denied` if it belongs to another).
    fn register_instance<'a>(
        &'a self,
        instance: &'a str,
        account: &'a str,
    ) -> Fut<'a, InstanceInfo>;

    /// The registration of an instance.
    fn instance_info<'a>(&'a self, instance: &'a str) -> Fut<'a, Option<InstanceInfo>>;

    /// Every registered instance, by name.
    fn list_instances(&self) -> Fut<'_, Vec<InstanceInfo>>;

    /// Delete an instance's registration, state and sessions.
    fn destroy_instance<'a>(&'a self, instance: &'a str) -> Fut<'a, ()>;

    /// Bytes stored by an instance (with its sessions).
    fn instance_usage<'a>(&'a self, instance: &'a str) -> Fut<'a, u64>;

    // ---- etags across copies of a store ----

    /// The last etag version issued, when etags come from one store-wide
    /// counter (redb): an export carries it so that a store it is restored
    /// into never issues an etag a client of the source may still hold.
    /// `None` where each owner's etags carry a random nonce (Redis): no
    /// other store can repeat them.
    fn etag_floor(&self) -> Fut<'_, Option<u64>> {
        Box::pin(async { Ok(None) })
    }

    /// Make every etag issued from now on newer than version `floor` (an
    /// import of an export that carried one); nothing where etags carry a
    /// nonce per owner.
    fn raise_etag_floor(&self, floor: u64) -> Fut<'_, ()> {
        let _ = floor;
        Box::pin(async { Ok(()) })
    }

    // ---- maintenance ----

    /// Free at most `limit` expired keys and `limit` expired sessions.
    fn sweep_step(&self, limit: usize) -> Fut<'_, SweepStats>;

    // ---- watchers (see `store::watch`) ----

    /// Make `watcher` watch exactly `targets` (none: stop watching; its
    /// queues go). Queues of owners it keeps watching are kept.
    fn watch<'a>(&'a self, watcher: &'a str, targets: &'a [WatchTarget]) -> Fut<'a, ()>;

    /// The oldest `limit` changes waiting for `watcher` at `owner`. Where
    /// several hosts share the store, `holder` takes a lease on the queue
    /// (renewed by each call) and another live holder makes it `busy`.
    fn pending<'a>(
        &'a self,
        watcher: &'a str,
        owner: &'a QueueOwner,
        holder: &'a str,
        limit: usize,
    ) -> Fut<'a, ChangeBatch>;

    /// Forget the changes of `watcher` at `owner` up to seq `upto`
    /// (delivered).
    fn ack<'a>(&'a self, watcher: &'a str, owner: &'a QueueOwner, upto: u64) -> Fut<'a, ()>;
}
