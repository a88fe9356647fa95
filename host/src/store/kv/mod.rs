//! The kv engine: the state semantics written once in Rust ([`ops`]) over a
//! byte-level ordered key space ([`Backend`]) — the embedded redb file by
//! default.
//!
//! Point reads run inline on a fresh MVCC snapshot (about a microsecond);
//! scans run on tokio's blocking pool; every write is a job for the
//! backend's single writer, which group-commits what is queued, each job
//! from a savepoint of the group's overlay (a failing job is rolled back and
//! leaves no trace) and answers only once the commit is durable.

pub mod backend;
pub(crate) mod instances;
mod job;
pub mod layout;
pub mod meta;
pub mod ops;
mod sessions;
mod sweep;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

pub use backend::redb::{RedbBackend, RedbOptions};
pub use backend::{Backend, RawRead, RawWrite, WriteJob};

use super::clock::{Clock, deadline};
use super::engine::{Engine, FieldPage, Fut};
use super::error::{Result, StateError};
use super::limits::{Limits, ReplyBudget};
use super::query::{PageBounds, Query, QueryPage, Runner};
use super::types::{Entry, KeyInfo, KeyListing, KeyPage, Op, OpResult, Scope, SessionInfo};
use super::watch::{ChangeBatch, QueueOwner, WatchTarget};
use super::{InstanceInfo, SweepStats};
use job::Job;
use layout::ScopeKeys;
use meta::etag_of;
use ops::cx::WriteCx;
use ops::keyspace::{self, ensure_scope, load, session_expiry};
use ops::{list, map, value};

/// The kv engine over a [`Backend`].
pub struct KvEngine {
    backend: Box<dyn Backend>,
    clock: Arc<dyn Clock>,
    limits: Arc<Limits>,
}

impl KvEngine {
    /// An engine over `backend`, with the store's clock and limits.
    pub fn new(backend: Box<dyn Backend>, clock: Arc<dyn Clock>, limits: Arc<Limits>) -> Self {
        KvEngine {
            backend,
            clock,
            limits,
        }
    }

    /// Run `work` on the writer as one atomic request.
    async fn write<R: Send + 'static>(
        &self,
        work: impl FnOnce(&mut WriteCx) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let (job, rx) = Job::new(work, self.clock.clone(), self.limits.clone());
        self.backend.submit(job);
        rx.await
            .unwrap_or_else(|_| Err(StateError::Unavailable("the store's writer stopped".into())))
    }

    /// A short read on a fresh snapshot, inline.
    fn read<R>(&self, f: impl FnOnce(&dyn RawRead, u64) -> Result<R>) -> Result<R> {
        let snap = self.backend.snapshot()?;
        f(&*snap, self.clock.now_ms())
    }

    /// A short read of a live scope, inline.
    fn read_scope<R>(
        &self,
        scope: &Scope,
        f: impl FnOnce(&dyn RawRead, &ScopeKeys, u64) -> Result<R>,
    ) -> Result<R> {
        self.read(|r, now| {
            ensure_scope(r, scope, now)?;
            f(r, &ScopeKeys::new(scope), now)
        })
    }

    /// A long read (a scan) on a blocking thread.
    async fn read_blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn RawRead, u64) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let snap = self.backend.snapshot()?;
        let now = self.clock.now_ms();
        tokio::task::spawn_blocking(move || f(&*snap, now))
            .await
            .unwrap_or_else(|e| Err(StateError::Internal(format!("read task failed: {e}"))))
    }

    /// A scan of a live scope on a blocking thread.
    async fn scan_scope<R: Send + 'static>(
        &self,
        scope: &Scope,
        f: impl FnOnce(&dyn RawRead, &ScopeKeys, u64) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let scope = scope.clone();
        self.read_blocking(move |r, now| {
            ensure_scope(r, &scope, now)?;
            f(r, &ScopeKeys::new(&scope), now)
        })
        .await
    }

    /// A write to a live scope.
    async fn write_scope<R: Send + 'static>(
        &self,
        scope: &Scope,
        f: impl FnOnce(&mut WriteCx, &ScopeKeys) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        // The scope's key prefix is built here, on the caller's thread,
        // not by the writer, which runs the requests one by one.
        let (scope, sk) = (scope.clone(), ScopeKeys::new(scope));
        self.write(move |cx| {
            ensure_scope(cx.r(), &scope, cx.now)?;
            f(cx, &sk)
        })
        .await
    }
}

impl Engine for KvEngine {
    fn name(&self) -> &'static str {
        "redb"
    }

    fn read_generation(&self) -> Option<u64> {
        self.backend.generation()
    }

    fn get_entries<'a>(
        &'a self,
        scope: &'a Scope,
        keys: &'a [String],
        max_bytes: usize,
    ) -> Fut<'a, Vec<Result<Option<Entry>>>> {
        let read = move |r: &dyn RawRead, sk: &ScopeKeys, now: u64, keys: &[String]| {
            value::get_entries(r, sk, keys, now, max_bytes, &|v| Ok(etag_of(v)))
        };
        if keys.len() <= 16 {
            return Box::pin(
                async move { self.read_scope(scope, |r, sk, now| read(r, sk, now, keys)) },
            );
        }
        let keys = keys.to_vec();
        Box::pin(self.scan_scope(scope, move |r, sk, now| read(r, sk, now, &keys)))
    }

    fn info<'a>(&'a self, scope: &'a Scope, key: &'a str) -> Fut<'a, Option<KeyInfo>> {
        Box::pin(async move {
            self.read_scope(scope, |r, sk, now| {
                Ok(load(r, sk, key, now)?.map(|m| keyspace::key_info(&m, now, etag_of(m.version))))
            })
        })
    }

    fn keys<'a>(
        &'a self,
        scope: &'a Scope,
        listing: &'a KeyListing,
        page: usize,
    ) -> Fut<'a, KeyPage> {
        let listing = listing.clone();
        Box::pin(self.scan_scope(scope, move |r, sk, now| {
            keyspace::keys(r, sk, &listing, page, now)
        }))
    }

    fn map_get_many<'a>(
        &'a self,
        scope: &'a Scope,
        key: &'a str,
        fields: &'a [String],
        max_bytes: usize,
    ) -> Fut<'a, Vec<Option<Vec<u8>>>> {
        Box::pin(async move {
            self.read_scope(scope, |r, sk, now| {
                map::get_many(r, sk, key, fields, now, max_bytes)
            })
        })
    }

    fn map_length<'a>(&'a self, scope: &'a Scope, key: &'a str) -> Fut<'a, u64> {
        Box::pin(async move { self.read_scope(scope, |r, sk, now| map::length(r, sk, key, now)) })
    }

    fn map_fields<'a>(
        &'a self,
        scope: &'a Scope,
        key: &'a str,
        after: Option<Vec<u8>>,
        count: usize,
        max_bytes: usize,
    ) -> Fut<'a, FieldPage> {
        let key = key.to_string();
        Box::pin(self.scan_scope(scope, move |r, sk, now| {
            map::fields(r, sk, &key, after.as_deref(), count, max_bytes, now)
        }))
    }

    fn list_length<'a>(&'a self, scope: &'a Scope, key: &'a str) -> Fut<'a, u64> {
        Box::pin(async move { self.read_scope(scope, |r, sk, now| list::length(r, sk, key, now)) })
    }

    fn list_range<'a>(
        &'a self,
        scope: &'a Scope,
        key: &'a str,
        start: i64,
        stop: i64,
        max_bytes: usize,
    ) -> Fut<'a, Vec<Vec<u8>>> {
        let key = key.to_string();
        Box::pin(self.scan_scope(scope, move |r, sk, now| {
            let mut budget = ReplyBudget::new(max_bytes);
            list::range(r, sk, &key, start, stop, now, &mut budget)
        }))
    }

    fn list_index<'a>(
        &'a self,
        scope: &'a Scope,
        key: &'a str,
        index: i64,
    ) -> Fut<'a, Option<Vec<u8>>> {
        Box::pin(
            async move { self.read_scope(scope, |r, sk, now| list::index(r, sk, key, index, now)) },
        )
    }

    fn query<'a>(
        &'a self,
        scope: &'a Scope,
        prefix: &'a str,
        query: &'a Query,
        page: PageBounds,
    ) -> Fut<'a, QueryPage> {
        let (query, prefix) = (query.clone(), prefix.to_string());
        Box::pin(self.scan_scope(scope, move |r, sk, now| {
            let mut runner = Runner::new(&query, page)?;
            keyspace::each_live_value(r, sk, &prefix, now, &mut |key, version, value| {
                runner.offer(&key[prefix.len()..], value, || etag_of(version));
                !runner.failed()
            })?;
            runner.finish()
        }))
    }

    fn commit<'a>(
        &'a self,
        scope: &'a Scope,
        ops: Vec<Op>,
        origin: Option<&'a str>,
    ) -> Fut<'a, Vec<OpResult>> {
        let origin = origin.map(str::to_owned);
        Box::pin(self.write_scope(scope, move |cx, sk| {
            cx.watch.origin = origin;
            ops::apply_all(cx, sk, &ops)
        }))
    }

    fn delete_prefix<'a>(
        &'a self,
        scope: &'a Scope,
        prefix: &'a str,
        origin: Option<&'a str>,
    ) -> Fut<'a, u64> {
        let (prefix, origin) = (prefix.to_string(), origin.map(str::to_owned));
        Box::pin(self.write_scope(scope, move |cx, sk| {
            cx.watch.origin = origin;
            keyspace::delete_prefix(cx, sk, &prefix)
        }))
    }

    fn create_session<'a>(&'a self, instance: &'a str, id: &'a str, ttl: Duration) -> Fut<'a, u64> {
        let (inst, sid) = (instance.to_string(), id.to_string());
        Box::pin(self.write(move |cx| {
            let at = deadline(cx.now, ttl)?;
            sessions::put(cx, &inst, &sid, None, at)?;
            Ok(at)
        }))
    }

    fn session_expiry<'a>(&'a self, instance: &'a str, id: &'a str) -> Fut<'a, u64> {
        Box::pin(async move { self.read(|r, now| session_expiry(r, instance, id, now)) })
    }

    fn extend_session<'a>(&'a self, instance: &'a str, id: &'a str, ttl: Duration) -> Fut<'a, u64> {
        let (inst, sid) = (instance.to_string(), id.to_string());
        Box::pin(self.write(move |cx| {
            let old = session_expiry(cx.r(), &inst, &sid, cx.now)?;
            let at = deadline(cx.now, ttl)?;
            sessions::put(cx, &inst, &sid, Some(old), at)?;
            Ok(at)
        }))
    }

    fn end_session<'a>(&'a self, instance: &'a str, id: &'a str) -> Fut<'a, bool> {
        let (inst, sid) = (instance.to_string(), id.to_string());
        Box::pin(self.write(move |cx| {
            let Some(at) = sessions::stored_expiry(cx.r(), &inst, &sid)? else {
                return Ok(false);
            };
            sessions::drop(cx, &inst, &sid, at)?;
            Ok(at >= cx.now)
        }))
    }

    fn list_sessions<'a>(&'a self, instance: &'a str) -> Fut<'a, Vec<SessionInfo>> {
        let inst = instance.to_string();
        Box::pin(self.read_blocking(move |r, now| sessions::list(r, &inst, now)))
    }

    fn session_count<'a>(&'a self, instance: &'a str) -> Fut<'a, u64> {
        let inst = instance.to_string();
        Box::pin(self.read_blocking(move |r, now| sessions::live_count(r, &inst, now)))
    }

    fn register_instance<'a>(
        &'a self,
        instance: &'a str,
        account: &'a str,
    ) -> Fut<'a, InstanceInfo> {
        let (inst, acct) = (instance.to_string(), account.to_string());
        Box::pin(self.write(move |cx| instances::register(cx, &inst, &acct)))
    }

    fn etag_floor(&self) -> Fut<'_, Option<u64>> {
        // Through the writer: the counter as of every write answered so far.
        Box::pin(self.write(|cx| cx.last_version().map(Some)))
    }

    fn raise_etag_floor(&self, floor: u64) -> Fut<'_, ()> {
        Box::pin(self.write(move |cx| cx.raise_version(floor).map(drop)))
    }

    fn instance_info<'a>(&'a self, instance: &'a str) -> Fut<'a, Option<InstanceInfo>> {
        Box::pin(async move { self.read(|r, _| instances::lookup(r, instance)) })
    }

    fn list_instances(&self) -> Fut<'_, Vec<InstanceInfo>> {
        Box::pin(self.read_blocking(|r, _| instances::list(r)))
    }

    fn destroy_instance<'a>(&'a self, instance: &'a str) -> Fut<'a, ()> {
        let inst = instance.to_string();
        Box::pin(self.write(move |cx| instances::destroy(cx, &inst)))
    }

    fn instance_usage<'a>(&'a self, instance: &'a str) -> Fut<'a, u64> {
        let owner = layout::instance_owner(instance);
        Box::pin(async move { self.read(|r, _| keyspace::usage(r, &owner)) })
    }

    fn sweep_step(&self, limit: usize) -> Fut<'_, SweepStats> {
        Box::pin(self.write(move |cx| sweep::step(cx, limit)))
    }

    fn watch<'a>(&'a self, watcher: &'a str, targets: &'a [WatchTarget]) -> Fut<'a, ()> {
        let (w, targets) = (watcher.to_string(), targets.to_vec());
        Box::pin(self.write(move |cx| watch::watch(cx, &w, &targets)))
    }

    // One process owns the redb file, so there is nobody to lease against.
    fn pending<'a>(
        &'a self,
        watcher: &'a str,
        owner: &'a QueueOwner,
        _holder: &'a str,
        limit: usize,
    ) -> Fut<'a, ChangeBatch> {
        let (w, owner) = (watcher.to_string(), owner.clone());
        Box::pin(self.read_blocking(move |r, _| watch::pending(r, &w, &owner, limit)))
    }

    fn ack<'a>(&'a self, watcher: &'a str, owner: &'a QueueOwner, upto: u64) -> Fut<'a, ()> {
        let (w, owner) = (watcher.to_string(), owner.clone());
        Box::pin(self.write(move |cx| watch::ack(cx, &w, &owner, upto)))
    }
}
