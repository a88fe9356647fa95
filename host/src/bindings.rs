//! The guest-facing bindings: `bindgen!` over `wit/` plus the host trait
//! implementations, each a thin translation between WIT types and
//! [`crate::store`] types. The shape follows wasmtime's `wasi-keyvalue`: a
//! context ([`StateCtx`]), a view over it and the resource table
//! ([`StateView`]), and [`add_to_linker`].
//!
//! A guest reaches only its own account, its own instance and the sessions
//! of its own instance: every bucket it opens is built here from
//! [`StateCtx`], never from a name the guest passes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::keyvalue::Keyvalue;
use crate::store::{self, ScopeHandle, StateError, Store, WriteFence};

#[allow(missing_docs)]
mod generated {
    wasmtime::component::bindgen!({
        world: "state-guest",
        path: "../wit",
        // `read-stamp` reads no state: a plain (synchronous) host call,
        // the cheapest crossing there is.
        imports: {
            "wasm-state:state/state.read-stamp": trappable,
            default: async | trappable,
        },
        with: { "wasm-state:state/state.bucket": crate::store::ScopeHandle },
    });
}

pub use generated::StateGuest;
pub use generated::wasm_state::state::{sessions, state, types};

use types::{CommitError, Error};

/// Who a guest is, for its state calls.
#[derive(Clone, Debug)]
pub struct StateCtx {
    store: Store,
    instance: String,
    account: String,
    backend_down: Arc<AtomicBool>,
    keyvalue: Arc<Keyvalue>,
    /// Set while the guest handles a change notification.
    change: Option<types::ChangeInfo>,
    /// The write fence of the deployment the guest runs in, if any.
    fence: Option<Arc<WriteFence>>,
}

impl StateCtx {
    /// The context of a guest running as `instance` of `account`.
    pub fn new(store: Store, instance: impl Into<String>, account: impl Into<String>) -> Self {
        StateCtx {
            store,
            instance: instance.into(),
            account: account.into(),
            backend_down: Arc::default(),
            keyvalue: Arc::default(),
            change: None,
            fence: None,
        }
    }

    /// The same context, every write it makes let through `fence` (closed
    /// when the instance is destroyed: see [`WriteFence`]).
    pub fn with_fence(mut self, fence: Arc<WriteFence>) -> Self {
        self.fence = Some(fence);
        self
    }

    /// Pass the write fence for a write that is not on a scope handle (a
    /// session's creation, extension or end).
    fn pass(&self) -> Result<Option<store::FencePass<'_>>, StateError> {
        self.fence.as_deref().map(WriteFence::enter).transpose()
    }

    /// The context of a watcher handling `change` (in `scope`, queue
    /// position `seq`): its writes are not queued for itself again, and
    /// `state.current-change` answers the change.
    pub fn delivering(mut self, scope: &store::Scope, seq: u64) -> Self {
        let scope = match scope {
            store::Scope::Account(_) => types::ChangedScope::Account,
            store::Scope::Instance(_) => types::ChangedScope::Instance,
            store::Scope::Session { id, .. } => types::ChangedScope::Session(id.clone()),
        };
        self.change = Some(types::ChangeInfo { scope, seq });
        self
    }

    /// A scope handle as this guest's writes must use it: through its
    /// deployment's write fence, and marked with the watcher's name while
    /// it handles a change.
    pub fn scope(&self, handle: ScopeHandle) -> ScopeHandle {
        let handle = match &self.fence {
            Some(f) => handle.with_fence(f.clone()),
            None => handle,
        };
        match self.change {
            Some(_) => handle.with_origin(&self.instance),
            None => handle,
        }
    }

    /// The same context with the host's `wasi:keyvalue` settings.
    pub fn with_keyvalue(mut self, keyvalue: Arc<Keyvalue>) -> Self {
        self.keyvalue = keyvalue;
        self
    }

    /// Set once a state call of this guest found the storage backend
    /// unreachable (`unavailable`): the HTTP server then answers a failed
    /// request `503` (retry later) rather than `500`.
    pub fn backend_down(&self) -> Arc<AtomicBool> {
        self.backend_down.clone()
    }

    pub(crate) fn note(&self, e: &StateError) {
        if matches!(e.root(), StateError::Unavailable(_)) {
            self.backend_down.store(true, Ordering::Relaxed);
        }
    }

    /// The instance the guest runs as.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The account of the instance.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The state store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The host's `wasi:keyvalue` settings.
    pub fn keyvalue(&self) -> &Keyvalue {
        &self.keyvalue
    }
}

/// A guest's state context with the store's resource table.
pub struct StateView<'a> {
    /// The guest's identity and store.
    pub ctx: &'a StateCtx,
    /// Where bucket resources live.
    pub table: &'a mut ResourceTable,
}

/// Implemented by a wasmtime store's data to expose [`StateView`].
pub trait StateHost: Send {
    /// The view the state imports use.
    fn state(&mut self) -> StateView<'_>;
}

struct HasState;

impl HasData for HasState {
    type Data<'a> = StateView<'a>;
}

/// Add the `state` and `sessions` imports to a linker.
pub fn add_to_linker<T: StateHost + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    StateGuest::add_to_linker::<T, HasState>(linker, |t| t.state())
}

impl From<StateError> for Error {
    fn from(e: StateError) -> Self {
        match e {
            StateError::WrongType { .. } => Error::WrongType,
            StateError::NotAnInteger => Error::NotAnInteger,
            StateError::Overflow => Error::Overflow,
            StateError::IndexOutOfRange { .. } => Error::IndexOutOfRange,
            StateError::EtagMismatch => Error::EtagMismatch,
            StateError::InvalidEtag(_) => Error::InvalidEtag,
            StateError::AlreadyExists => Error::AlreadyExists,
            StateError::NotFound => Error::NotFound,
            StateError::NoSuchSession => Error::NoSuchSession,
            StateError::AccessDenied(_) => Error::AccessDenied,
            StateError::KeyTooLarge { .. } => Error::KeyTooLarge,
            StateError::ValueTooLarge { .. } | StateError::ReplyTooLarge { .. } => {
                Error::ValueTooLarge
            }
            StateError::TooManyOperations { .. } => Error::TooManyOperations,
            StateError::QuotaExceeded { .. } | StateError::TooManySessions { .. } => {
                Error::QuotaExceeded
            }
            StateError::InvalidArgument(m) => Error::InvalidArgument(m),
            StateError::Unavailable(m) => Error::Unavailable(m),
            StateError::Internal(m) => Error::Internal(m),
            StateError::Aborted { source, .. } => Error::from(*source),
        }
    }
}

/// A store result as a WIT result (the outer `Ok` = no trap); notes an
/// unreachable backend for the caller (see [`StateCtx::backend_down`]).
fn wit<T, U>(
    ctx: &StateCtx,
    r: Result<T, StateError>,
    f: impl FnOnce(T) -> U,
) -> wasmtime::Result<Result<U, Error>> {
    if let Err(e) = &r {
        ctx.note(e);
    }
    Ok(r.map(f).map_err(Error::from))
}

fn ttl(ms: Option<u64>) -> Option<Duration> {
    ms.map(Duration::from_millis)
}

fn stamp_of(s: store::ReadStamp) -> types::Stamp {
    types::Stamp {
        generation: s.generation,
        now_ms: s.now_ms,
    }
}

fn ms(d: Option<Duration>) -> Option<u64> {
    d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl From<types::Condition> for store::Condition {
    fn from(c: types::Condition) -> Self {
        match c {
            types::Condition::IfMatch(e) => store::Condition::IfMatch(e),
            types::Condition::IfAbsent => store::Condition::IfAbsent,
            types::Condition::IfExists => store::Condition::IfExists,
        }
    }
}

impl From<types::ExpireMode> for store::ExpireMode {
    fn from(m: types::ExpireMode) -> Self {
        match m {
            types::ExpireMode::Always => store::ExpireMode::Always,
            types::ExpireMode::Nx => store::ExpireMode::Nx,
            types::ExpireMode::Xx => store::ExpireMode::Xx,
            types::ExpireMode::Gt => store::ExpireMode::Gt,
            types::ExpireMode::Lt => store::ExpireMode::Lt,
        }
    }
}

impl From<store::KeyKind> for types::KeyKind {
    fn from(k: store::KeyKind) -> Self {
        match k {
            store::KeyKind::Value => types::KeyKind::Value,
            store::KeyKind::Map => types::KeyKind::Map,
            store::KeyKind::List => types::KeyKind::List,
        }
    }
}

fn entries(e: Vec<types::MapEntry>) -> Vec<(String, Vec<u8>)> {
    e.into_iter().map(|e| (e.field, e.value)).collect()
}

fn map_entries(e: Vec<(String, Vec<u8>)>) -> Vec<types::MapEntry> {
    e.into_iter()
        .map(|(field, value)| types::MapEntry { field, value })
        .collect()
}

impl From<types::Op> for store::Op {
    fn from(op: types::Op) -> Self {
        use store::OpKind as S;
        use types::OpKind as W;
        let kind = match op.kind {
            W::Set(s) => S::Set {
                value: s.value,
                ttl: ttl(s.ttl_ms),
            },
            W::Delete => S::Delete,
            W::Increment(d) => S::Increment(d),
            W::Expire(e) => S::Expire {
                seconds: e.seconds,
                mode: e.mode.into(),
            },
            W::Persist => S::Persist,
            W::MapSet(e) => S::MapSet(entries(e)),
            W::MapDelete(f) => S::MapDelete(f),
            W::MapIncrement(m) => S::MapIncrement {
                field: m.field,
                delta: m.delta,
            },
            W::ListAppend(v) => S::ListAppend(v),
            W::ListPrepend(v) => S::ListPrepend(v),
            W::ListStartPop(n) => S::ListStartPop(n.into()),
            W::ListEndPop(n) => S::ListEndPop(n.into()),
            W::ListRemove(r) => S::ListRemove {
                value: r.value,
                count: r.count,
            },
            W::ListTrim(r) => S::ListTrim {
                start: r.start,
                stop: r.stop,
            },
            W::ListInsert(i) => S::ListInsert {
                before: i.before,
                pivot: i.pivot,
                value: i.value,
            },
            W::ListSet(s) => S::ListSet {
                index: s.index,
                value: s.value,
            },
            W::Check => S::Check,
        };
        store::Op {
            key: op.key,
            kind,
            condition: op.condition.map(Into::into),
        }
    }
}

impl From<store::OpResult> for types::OpResult {
    fn from(r: store::OpResult) -> Self {
        let output = match r.output {
            store::OpOutput::None => types::OpOutput::None,
            store::OpOutput::Bool(b) => types::OpOutput::Boolean(b),
            store::OpOutput::Int(n) => types::OpOutput::Integer(n),
            store::OpOutput::Values(v) => types::OpOutput::Values(v),
        };
        types::OpResult {
            etag: r.etag,
            output,
        }
    }
}

fn commit_error(e: StateError) -> CommitError {
    match e {
        StateError::Aborted { index, source } => CommitError {
            index: u32::try_from(index).ok(),
            error: (*source).into(),
        },
        e => CommitError {
            index: None,
            error: e.into(),
        },
    }
}

fn session_info(s: store::SessionInfo) -> types::SessionInfo {
    types::SessionInfo {
        id: s.id,
        expires_at_ms: s.expires_at_ms,
    }
}

impl types::Host for StateView<'_> {}

impl state::Host for StateView<'_> {
    async fn account(&mut self) -> wasmtime::Result<Resource<ScopeHandle>> {
        let bucket = self.ctx.scope(self.ctx.store.account(&self.ctx.account)?);
        Ok(self.table.push(bucket)?)
    }

    async fn instance(&mut self) -> wasmtime::Result<Resource<ScopeHandle>> {
        let bucket = self.ctx.scope(self.ctx.store.instance(&self.ctx.instance)?);
        Ok(self.table.push(bucket)?)
    }

    async fn current_change(&mut self) -> wasmtime::Result<Option<types::ChangeInfo>> {
        Ok(self.ctx.change.clone())
    }

    fn read_stamp(&mut self) -> wasmtime::Result<Option<types::Stamp>> {
        Ok(self.ctx.store.read_stamp().map(stamp_of))
    }

    async fn session(
        &mut self,
        id: String,
    ) -> wasmtime::Result<Result<Resource<ScopeHandle>, Error>> {
        match self.ctx.store.session(&self.ctx.instance, &id).await {
            Ok(bucket) => Ok(Ok(self.table.push(self.ctx.scope(bucket))?)),
            Err(e) => {
                self.ctx.note(&e);
                Ok(Err(e.into()))
            }
        }
    }
}

impl sessions::Host for StateView<'_> {
    async fn create(
        &mut self,
        ttl_seconds: Option<u64>,
    ) -> wasmtime::Result<Result<types::SessionInfo, Error>> {
        let ttl = ttl_seconds.map(Duration::from_secs);
        let r = match self.ctx.pass() {
            Ok(_pass) => self.ctx.store.create_session(&self.ctx.instance, ttl).await,
            Err(e) => Err(e),
        };
        wit(self.ctx, r, session_info)
    }

    async fn extend(
        &mut self,
        id: String,
        ttl_seconds: u64,
    ) -> wasmtime::Result<Result<types::SessionInfo, Error>> {
        let ttl = Duration::from_secs(ttl_seconds);
        let r = match self.ctx.pass() {
            Ok(_pass) => {
                self.ctx
                    .store
                    .extend_session(&self.ctx.instance, &id, ttl)
                    .await
            }
            Err(e) => Err(e),
        };
        wit(self.ctx, r, session_info)
    }

    async fn end(&mut self, id: String) -> wasmtime::Result<Result<bool, Error>> {
        let r = match self.ctx.pass() {
            Ok(_pass) => self.ctx.store.end_session(&self.ctx.instance, &id).await,
            Err(e) => Err(e),
        };
        wit(self.ctx, r, |b| b)
    }

    async fn info(&mut self, id: String) -> wasmtime::Result<Result<types::SessionInfo, Error>> {
        wit(
            self.ctx,
            self.ctx.store.session_info(&self.ctx.instance, &id).await,
            session_info,
        )
    }
}

type Res<T> = wasmtime::Result<Result<T, Error>>;
type Bucket = Resource<ScopeHandle>;

impl state::HostBucket for StateView<'_> {
    async fn get(&mut self, b: Bucket, key: String) -> Res<Option<Vec<u8>>> {
        wit(self.ctx, self.table.get(&b)?.get(&key).await, |v| v)
    }

    async fn get_entry(&mut self, b: Bucket, key: String) -> Res<Option<types::Entry>> {
        wit(self.ctx, self.table.get(&b)?.get_entry(&key).await, |e| {
            e.map(|e| types::Entry {
                value: e.value,
                etag: e.etag,
                ttl_ms: ms(e.ttl),
            })
        })
    }

    async fn get_stamped(&mut self, b: Bucket, key: String) -> Res<types::StampedValue> {
        let handle = self.table.get(&b)?;
        // A session can end by time alone, which no generation shows: its
        // reads are never vouched for.
        let stamp = match handle.scope() {
            store::Scope::Session { .. } => None,
            _ => self.ctx.store.read_stamp(),
        };
        wit(self.ctx, handle.get_entry(&key).await, |e| {
            let (value, expires_at_ms) = match e {
                Some(e) => (Some(e.value), e.expires_at_ms),
                None => (None, None),
            };
            types::StampedValue {
                value,
                expires_at_ms,
                stamp: stamp.map(stamp_of),
            }
        })
    }

    async fn get_many(&mut self, b: Bucket, keys: Vec<String>) -> Res<Vec<Option<Vec<u8>>>> {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        wit(self.ctx, self.table.get(&b)?.get_many(&keys).await, |v| v)
    }

    async fn set(
        &mut self,
        b: Bucket,
        key: String,
        value: Vec<u8>,
        options: types::SetOptions,
    ) -> Res<String> {
        let options = store::SetOptions {
            ttl: ttl(options.ttl_ms),
            condition: options.condition.map(Into::into),
        };
        wit(
            self.ctx,
            self.table.get(&b)?.set_with(&key, value, options).await,
            |e| e,
        )
    }

    async fn set_many(&mut self, b: Bucket, items: Vec<(String, Vec<u8>)>) -> Res<()> {
        wit(self.ctx, self.table.get(&b)?.set_many(items).await, |v| v)
    }

    async fn delete(&mut self, b: Bucket, key: String) -> Res<bool> {
        wit(self.ctx, self.table.get(&b)?.delete(&key).await, |v| v)
    }

    async fn delete_many(&mut self, b: Bucket, keys: Vec<String>) -> Res<u32> {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        wit(
            self.ctx,
            self.table.get(&b)?.delete_many(&keys).await,
            |n| n as u32,
        )
    }

    async fn exists(&mut self, b: Bucket, key: String) -> Res<bool> {
        wit(self.ctx, self.table.get(&b)?.exists(&key).await, |v| v)
    }

    async fn info(&mut self, b: Bucket, key: String) -> Res<Option<types::KeyInfo>> {
        wit(self.ctx, self.table.get(&b)?.info(&key).await, |i| {
            i.map(|i| types::KeyInfo {
                kind: i.kind.into(),
                etag: i.etag,
                ttl_ms: ms(i.ttl),
            })
        })
    }

    async fn increment(&mut self, b: Bucket, key: String, delta: i64) -> Res<i64> {
        wit(
            self.ctx,
            self.table.get(&b)?.increment(&key, delta).await,
            |v| v,
        )
    }

    async fn expire(
        &mut self,
        b: Bucket,
        key: String,
        seconds: i64,
        mode: types::ExpireMode,
    ) -> Res<bool> {
        wit(
            self.ctx,
            self.table.get(&b)?.expire(&key, seconds, mode.into()).await,
            |v| v,
        )
    }

    async fn persist(&mut self, b: Bucket, key: String) -> Res<bool> {
        wit(self.ctx, self.table.get(&b)?.persist(&key).await, |v| v)
    }

    async fn ttl(&mut self, b: Bucket, key: String) -> Res<Option<u64>> {
        wit(self.ctx, self.table.get(&b)?.ttl(&key).await, ms)
    }

    async fn keys(&mut self, b: Bucket, l: types::KeyListing) -> Res<types::KeyPage> {
        let listing = store::KeyListing {
            prefix: l.prefix,
            start: l.start,
            end: l.end,
            reverse: l.reverse,
            limit: l.limit,
            cursor: l.cursor,
        };
        wit(self.ctx, self.table.get(&b)?.keys(listing).await, |p| {
            types::KeyPage {
                keys: p.keys,
                cursor: p.cursor,
            }
        })
    }

    async fn delete_prefix(&mut self, b: Bucket, prefix: String) -> Res<u32> {
        wit(
            self.ctx,
            self.table.get(&b)?.delete_prefix(&prefix).await,
            |n| u32::try_from(n).unwrap_or(u32::MAX),
        )
    }

    async fn query(&mut self, b: Bucket, query: String) -> Res<types::QueryPage> {
        let handle = self.table.get(&b)?;
        let run = async {
            handle.store().limits().check_value(query.as_bytes())?;
            handle
                .query(&store::query::Query::from_json(query.as_bytes())?)
                .await
        };
        wit(self.ctx, run.await, |page| types::QueryPage {
            results: page
                .results
                .into_iter()
                .map(|r| types::QueryResult {
                    key: r.key,
                    value: r.value,
                    etag: r.etag,
                })
                .collect(),
            token: page.token,
        })
    }

    async fn map_set(&mut self, b: Bucket, key: String, e: Vec<types::MapEntry>) -> Res<u32> {
        wit(
            self.ctx,
            self.table.get(&b)?.map_set(&key, entries(e)).await,
            |n| n as u32,
        )
    }

    async fn map_get(&mut self, b: Bucket, key: String, field: String) -> Res<Option<Vec<u8>>> {
        wit(
            self.ctx,
            self.table.get(&b)?.map_get(&key, &field).await,
            |v| v,
        )
    }

    async fn map_get_many(
        &mut self,
        b: Bucket,
        key: String,
        fields: Vec<String>,
    ) -> Res<Vec<Option<Vec<u8>>>> {
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        wit(
            self.ctx,
            self.table.get(&b)?.map_get_many(&key, &fields).await,
            |v| v,
        )
    }

    async fn map_values(&mut self, b: Bucket, key: String) -> Res<Vec<Vec<u8>>> {
        wit(self.ctx, self.table.get(&b)?.map_values(&key).await, |v| v)
    }

    async fn map_get_all(&mut self, b: Bucket, key: String) -> Res<Vec<types::MapEntry>> {
        wit(
            self.ctx,
            self.table.get(&b)?.map_get_all(&key).await,
            map_entries,
        )
    }

    async fn map_keys(&mut self, b: Bucket, key: String) -> Res<Vec<String>> {
        wit(self.ctx, self.table.get(&b)?.map_keys(&key).await, |v| v)
    }

    async fn map_delete(&mut self, b: Bucket, key: String, fields: Vec<String>) -> Res<u32> {
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        wit(
            self.ctx,
            self.table.get(&b)?.map_delete(&key, &fields).await,
            |n| n as u32,
        )
    }

    async fn map_exists(&mut self, b: Bucket, key: String, field: String) -> Res<bool> {
        wit(
            self.ctx,
            self.table.get(&b)?.map_exists(&key, &field).await,
            |v| v,
        )
    }

    async fn map_length(&mut self, b: Bucket, key: String) -> Res<u64> {
        wit(self.ctx, self.table.get(&b)?.map_length(&key).await, |v| v)
    }

    async fn map_increment(
        &mut self,
        b: Bucket,
        key: String,
        field: String,
        delta: i64,
    ) -> Res<i64> {
        wit(
            self.ctx,
            self.table.get(&b)?.map_increment(&key, &field, delta).await,
            |v| v,
        )
    }

    async fn map_scan(
        &mut self,
        b: Bucket,
        key: String,
        cursor: String,
        pattern: Option<String>,
        count: u32,
    ) -> Res<types::ScanPage> {
        wit(
            self.ctx,
            self.table
                .get(&b)?
                .map_scan(&key, &cursor, pattern.as_deref(), count)
                .await,
            |p| types::ScanPage {
                cursor: p.cursor,
                entries: map_entries(p.entries),
            },
        )
    }

    async fn list_append(&mut self, b: Bucket, key: String, values: Vec<Vec<u8>>) -> Res<u64> {
        wit(
            self.ctx,
            self.table.get(&b)?.list_append(&key, values).await,
            |v| v,
        )
    }

    async fn list_prepend(&mut self, b: Bucket, key: String, values: Vec<Vec<u8>>) -> Res<u64> {
        wit(
            self.ctx,
            self.table.get(&b)?.list_prepend(&key, values).await,
            |v| v,
        )
    }

    async fn list_start_pop(&mut self, b: Bucket, key: String, count: u32) -> Res<Vec<Vec<u8>>> {
        wit(
            self.ctx,
            self.table.get(&b)?.list_start_pop(&key, count.into()).await,
            |v| v,
        )
    }

    async fn list_end_pop(&mut self, b: Bucket, key: String, count: u32) -> Res<Vec<Vec<u8>>> {
        wit(
            self.ctx,
            self.table.get(&b)?.list_end_pop(&key, count.into()).await,
            |v| v,
        )
    }

    async fn list_remove(
        &mut self,
        b: Bucket,
        key: String,
        value: Vec<u8>,
        count: i64,
    ) -> Res<u64> {
        wit(
            self.ctx,
            self.table.get(&b)?.list_remove(&key, value, count).await,
            |v| v,
        )
    }

    async fn list_length(&mut self, b: Bucket, key: String) -> Res<u64> {
        wit(self.ctx, self.table.get(&b)?.list_length(&key).await, |v| v)
    }

    async fn list_range(
        &mut self,
        b: Bucket,
        key: String,
        start: i64,
        stop: i64,
    ) -> Res<Vec<Vec<u8>>> {
        wit(
            self.ctx,
            self.table.get(&b)?.list_range(&key, start, stop).await,
            |v| v,
        )
    }

    async fn list_trim(&mut self, b: Bucket, key: String, start: i64, stop: i64) -> Res<()> {
        wit(
            self.ctx,
            self.table.get(&b)?.list_trim(&key, start, stop).await,
            |v| v,
        )
    }

    async fn list_insert(
        &mut self,
        b: Bucket,
        key: String,
        before: bool,
        pivot: Vec<u8>,
        value: Vec<u8>,
    ) -> Res<i64> {
        wit(
            self.ctx,
            self.table
                .get(&b)?
                .list_insert(&key, before, pivot, value)
                .await,
            |v| v,
        )
    }

    async fn list_index(&mut self, b: Bucket, key: String, index: i64) -> Res<Option<Vec<u8>>> {
        wit(
            self.ctx,
            self.table.get(&b)?.list_index(&key, index).await,
            |v| v,
        )
    }

    async fn list_set(&mut self, b: Bucket, key: String, index: i64, value: Vec<u8>) -> Res<()> {
        wit(
            self.ctx,
            self.table.get(&b)?.list_set(&key, index, value).await,
            |v| v,
        )
    }

    async fn commit(
        &mut self,
        b: Bucket,
        ops: Vec<types::Op>,
    ) -> wasmtime::Result<Result<Vec<types::OpResult>, CommitError>> {
        let ops = ops.into_iter().map(store::Op::from).collect();
        let r = self.table.get(&b)?.commit(ops).await;
        // An unavailable store makes the request a 503, as for every call.
        if let Err(e) = &r {
            self.ctx.note(e);
        }
        Ok(r.map(|rs| rs.into_iter().map(Into::into).collect())
            .map_err(commit_error))
    }

    async fn drop(&mut self, b: Bucket) -> wasmtime::Result<()> {
        self.table.delete(b)?;
        Ok(())
    }
}
