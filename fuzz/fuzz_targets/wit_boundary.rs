//! Arbitrary arguments to every host import of the `wasm-state:state` WIT
//! interfaces (`state`, `state.bucket`, `sessions`), called directly on the
//! generated host traits as a guest's calls would arrive: keys and fields
//! of any text and size, huge and negative numbers, any TTL, etags,
//! cursors, globs, queries and session ids, and bucket handles that are
//! live, dropped or made up. A call on a live handle must return
//! `Ok(Ok(..))` or `Ok(Err(typed error))` (never a trap, never `internal`);
//! one on a dead or made-up handle may trap; none may panic.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wasm_state::bindings::state::{Host as StateHostTrait, HostBucket};
use wasm_state::bindings::{StateCtx, StateView, sessions, types};
use wasm_state::store::ScopeHandle;
use wasmtime::component::{Resource, ResourceTable};

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Handle {
    /// One of the buckets opened so far (live or dropped).
    Opened(u8),
    /// A made-up table index.
    Bogus(u32),
}

#[derive(Arbitrary, Debug, Clone)]
#[allow(clippy::enum_variant_names)] // as the WIT's condition
enum Cond {
    IfMatch(String),
    IfAbsent,
    IfExists,
}

impl Cond {
    fn get(self) -> types::Condition {
        match self {
            Cond::IfMatch(e) => types::Condition::IfMatch(e),
            Cond::IfAbsent => types::Condition::IfAbsent,
            Cond::IfExists => types::Condition::IfExists,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Mode {
    Always,
    Nx,
    Xx,
    Gt,
    Lt,
}

impl Mode {
    fn get(self) -> types::ExpireMode {
        match self {
            Mode::Always => types::ExpireMode::Always,
            Mode::Nx => types::ExpireMode::Nx,
            Mode::Xx => types::ExpireMode::Xx,
            Mode::Gt => types::ExpireMode::Gt,
            Mode::Lt => types::ExpireMode::Lt,
        }
    }
}

/// A key: mostly a few short ones (so calls meet each other's data), or
/// anything.
#[derive(Arbitrary, Debug, Clone)]
enum Key {
    Few(u8),
    Long(u16),
    Any(String),
}

impl Key {
    fn get(self) -> String {
        match self {
            Key::Few(n) => ["a", "b", "c", "", "k/1", "\u{0}"][n as usize % 6].to_string(),
            Key::Long(n) => "x".repeat(2040 + (n as usize % 16)),
            Key::Any(s) => s,
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum OpKind {
    Set {
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    },
    Delete,
    Increment(i64),
    Expire {
        seconds: i64,
        mode: Mode,
    },
    Persist,
    MapSet(Vec<(String, Vec<u8>)>),
    MapDelete(Vec<String>),
    MapIncrement {
        field: String,
        delta: i64,
    },
    ListAppend(Vec<Vec<u8>>),
    ListPrepend(Vec<Vec<u8>>),
    ListStartPop(u32),
    ListEndPop(u32),
    ListRemove {
        value: Vec<u8>,
        count: i64,
    },
    ListTrim {
        start: i64,
        stop: i64,
    },
    ListInsert {
        before: bool,
        pivot: Vec<u8>,
        value: Vec<u8>,
    },
    ListSet {
        index: i64,
        value: Vec<u8>,
    },
    Check,
}

fn entries(e: Vec<(String, Vec<u8>)>) -> Vec<types::MapEntry> {
    e.into_iter()
        .map(|(field, value)| types::MapEntry { field, value })
        .collect()
}

impl OpKind {
    fn get(self) -> types::OpKind {
        use types::OpKind as W;
        match self {
            OpKind::Set { value, ttl_ms } => W::Set(types::SetOp { value, ttl_ms }),
            OpKind::Delete => W::Delete,
            OpKind::Increment(d) => W::Increment(d),
            OpKind::Expire { seconds, mode } => W::Expire(types::ExpireOp {
                seconds,
                mode: mode.get(),
            }),
            OpKind::Persist => W::Persist,
            OpKind::MapSet(e) => W::MapSet(entries(e)),
            OpKind::MapDelete(f) => W::MapDelete(f),
            OpKind::MapIncrement { field, delta } => {
                W::MapIncrement(types::MapIncrementOp { field, delta })
            }
            OpKind::ListAppend(v) => W::ListAppend(v),
            OpKind::ListPrepend(v) => W::ListPrepend(v),
            OpKind::ListStartPop(n) => W::ListStartPop(n),
            OpKind::ListEndPop(n) => W::ListEndPop(n),
            OpKind::ListRemove { value, count } => {
                W::ListRemove(types::ListRemoveOp { value, count })
            }
            OpKind::ListTrim { start, stop } => W::ListTrim(types::Range { start, stop }),
            OpKind::ListInsert {
                before,
                pivot,
                value,
            } => W::ListInsert(types::ListInsertOp {
                before,
                pivot,
                value,
            }),
            OpKind::ListSet { index, value } => W::ListSet(types::ListSetOp { index, value }),
            OpKind::Check => W::Check,
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Call {
    Account,
    Instance,
    Session(String),
    /// A session id the host issued (the n-th created), or a made-up one.
    SessionCreated(u8),
    CurrentChange,
    SessionCreate(Option<u64>),
    SessionExtend(String, u64),
    SessionEnd(String),
    SessionInfo(String),
    Get(Handle, Key),
    GetEntry(Handle, Key),
    GetMany(Handle, Vec<Key>),
    Set(Handle, Key, Vec<u8>, Option<u64>, Option<Cond>),
    SetMany(Handle, Vec<(Key, Vec<u8>)>),
    Delete(Handle, Key),
    DeleteMany(Handle, Vec<Key>),
    Exists(Handle, Key),
    Info(Handle, Key),
    Increment(Handle, Key, i64),
    Expire(Handle, Key, i64, Mode),
    Persist(Handle, Key),
    Ttl(Handle, Key),
    Keys {
        h: Handle,
        prefix: Option<String>,
        start: Option<String>,
        end: Option<String>,
        reverse: bool,
        limit: Option<u32>,
        cursor: Option<String>,
    },
    DeletePrefix(Handle, String),
    Query(Handle, String),
    MapSet(Handle, Key, Vec<(String, Vec<u8>)>),
    MapGet(Handle, Key, String),
    MapGetMany(Handle, Key, Vec<String>),
    MapValues(Handle, Key),
    MapGetAll(Handle, Key),
    MapKeys(Handle, Key),
    MapDelete(Handle, Key, Vec<String>),
    MapExists(Handle, Key, String),
    MapLength(Handle, Key),
    MapIncrement(Handle, Key, String, i64),
    MapScan(Handle, Key, String, Option<String>, u32),
    ListAppend(Handle, Key, Vec<Vec<u8>>),
    ListPrepend(Handle, Key, Vec<Vec<u8>>),
    ListStartPop(Handle, Key, u32),
    ListEndPop(Handle, Key, u32),
    ListRemove(Handle, Key, Vec<u8>, i64),
    ListLength(Handle, Key),
    ListRange(Handle, Key, i64, i64),
    ListTrim(Handle, Key, i64, i64),
    ListInsert(Handle, Key, bool, Vec<u8>, Vec<u8>),
    ListIndex(Handle, Key, i64),
    ListSet(Handle, Key, i64, Vec<u8>),
    Commit(Handle, Vec<(Key, OpKind, Option<Cond>)>),
    Drop(Handle),
}

struct Harness {
    ctx: StateCtx,
    table: ResourceTable,
    /// Reps of the buckets opened, and whether each is still live.
    opened: Vec<(u32, bool)>,
    sessions: Vec<String>,
}

/// What one call returned: trapped (outer error) or not, and the guest's
/// error if any.
type Out<E> = wasmtime::Result<Result<(), E>>;

fn erase<T, E>(r: wasmtime::Result<Result<T, E>>) -> Out<E> {
    r.map(|r| r.map(|_| ()))
}

impl Harness {
    fn view(&mut self) -> StateView<'_> {
        StateView {
            ctx: &self.ctx,
            table: &mut self.table,
        }
    }

    /// The resource for `h` and whether the call must not trap.
    fn handle(&self, h: Handle) -> (Resource<ScopeHandle>, bool) {
        match h {
            Handle::Opened(i) if !self.opened.is_empty() => {
                let (rep, live) = self.opened[i as usize % self.opened.len()];
                (Resource::new_own(rep), live)
            }
            Handle::Opened(_) => (Resource::new_own(0), false),
            Handle::Bogus(rep) => {
                let live = self.opened.iter().any(|(r, l)| *r == rep && *l);
                (Resource::new_own(rep), live)
            }
        }
    }

    fn opened(&mut self, r: Resource<ScopeHandle>) {
        let rep = r.rep();
        self.opened.retain(|(x, _)| *x != rep);
        self.opened.push((rep, true));
    }

    async fn call(&mut self, call: Call) {
        let what: String = format!("{call:?}").chars().take(300).collect();
        let what = what.as_str();
        // (result, must it not trap?)
        let (r, live): (Out<types::Error>, bool) = match call {
            Call::Account => {
                let r = StateHostTrait::account(&mut self.view()).await;
                let r = r.map(|b| self.opened(b));
                (r.map(Ok), true)
            }
            Call::Instance => {
                let r = StateHostTrait::instance(&mut self.view()).await;
                let r = r.map(|b| self.opened(b));
                (r.map(Ok), true)
            }
            Call::Session(id) => {
                let r = StateHostTrait::session(&mut self.view(), id).await;
                let r = r.map(|r| r.map(|b| self.opened(b)));
                (r, true)
            }
            Call::SessionCreated(i) => {
                let id = if self.sessions.is_empty() {
                    "AAAAAAAAAAAAAAAAAAAAAA".to_string()
                } else {
                    self.sessions[i as usize % self.sessions.len()].clone()
                };
                let r = StateHostTrait::session(&mut self.view(), id).await;
                let r = r.map(|r| r.map(|b| self.opened(b)));
                (r, true)
            }
            Call::CurrentChange => {
                let r = StateHostTrait::current_change(&mut self.view()).await;
                (r.map(|_| Ok(())), true)
            }
            Call::SessionCreate(ttl) => {
                let r = sessions::Host::create(&mut self.view(), ttl).await;
                if let Ok(Ok(info)) = &r {
                    assert_eq!(info.id.len(), 22, "session ids are 22 characters");
                    self.sessions.push(info.id.clone());
                }
                (erase(r), true)
            }
            Call::SessionExtend(id, ttl) => (
                erase(sessions::Host::extend(&mut self.view(), id, ttl).await),
                true,
            ),
            Call::SessionEnd(id) => (erase(sessions::Host::end(&mut self.view(), id).await), true),
            Call::SessionInfo(id) => (
                erase(sessions::Host::info(&mut self.view(), id).await),
                true,
            ),
            Call::Commit(h, ops) => {
                let (b, live) = self.handle(h);
                let ops: Vec<types::Op> = ops
                    .into_iter()
                    .map(|(k, kind, c)| types::Op {
                        key: k.get(),
                        kind: kind.get(),
                        condition: c.map(Cond::get),
                    })
                    .collect();
                let n = ops.len();
                let r = HostBucket::commit(&mut self.view(), b, ops).await;
                match &r {
                    Ok(Ok(results)) => assert_eq!(results.len(), n, "{what}: results"),
                    Ok(Err(e)) => {
                        if let Some(i) = e.index {
                            assert!((i as usize) < n, "{what}: aborted at {i} of {n}");
                        }
                        if let types::Error::Internal(m) = &e.error {
                            panic!("{what}: internal error {m:?}");
                        }
                    }
                    Err(_) => {}
                }
                (r.map(|r| r.map(|_| ()).map_err(|e| e.error)), live)
            }
            Call::Drop(h) => {
                let (b, live) = self.handle(h);
                let rep = b.rep();
                let r = HostBucket::drop(&mut self.view(), b).await;
                if r.is_ok() {
                    for (x, l) in &mut self.opened {
                        if *x == rep {
                            *l = false;
                        }
                    }
                }
                (r.map(Ok), live)
            }
            call => self.bucket_call(call).await,
        };
        match r {
            Err(trap) => assert!(!live, "{what}: trapped on a live handle: {trap:?}"),
            Ok(Err(types::Error::Internal(m))) => panic!("{what}: internal error {m:?}"),
            Ok(_) => {}
        }
    }

    async fn bucket_call(&mut self, call: Call) -> (Out<types::Error>, bool) {
        let mut live = true;
        let mut b = |h: Handle, this: &Self| {
            let (b, l) = this.handle(h);
            live = l;
            b
        };
        let r = match call {
            Call::Get(h, k) => {
                let b = b(h, &*self);
                erase(HostBucket::get(&mut self.view(), b, k.get()).await)
            }
            Call::GetEntry(h, k) => {
                let b = b(h, &*self);
                erase(HostBucket::get_entry(&mut self.view(), b, k.get()).await)
            }
            Call::GetMany(h, ks) => {
                let b = b(h, &*self);
                let ks: Vec<String> = ks.into_iter().map(Key::get).collect();
                let n = ks.len();
                let r = HostBucket::get_many(&mut self.view(), b, ks).await;
                if let Ok(Ok(v)) = &r {
                    assert_eq!(v.len(), n, "get-many: one answer per key");
                }
                erase(r)
            }
            Call::Set(h, k, v, ttl_ms, c) => {
                let b = b(h, &*self);
                let options = types::SetOptions {
                    ttl_ms,
                    condition: c.map(Cond::get),
                };
                erase(HostBucket::set(&mut self.view(), b, k.get(), v, options).await)
            }
            Call::SetMany(h, items) => {
                let b = b(h, &*self);
                let items = items.into_iter().map(|(k, v)| (k.get(), v)).collect();
                erase(HostBucket::set_many(&mut self.view(), b, items).await)
            }
            Call::Delete(h, k) => {
                let b = b(h, &*self);
                erase(HostBucket::delete(&mut self.view(), b, k.get()).await)
            }
            Call::DeleteMany(h, ks) => {
                let b = b(h, &*self);
                let ks = ks.into_iter().map(Key::get).collect();
                erase(HostBucket::delete_many(&mut self.view(), b, ks).await)
            }
            Call::Exists(h, k) => {
                let b = b(h, &*self);
                erase(HostBucket::exists(&mut self.view(), b, k.get()).await)
            }
            Call::Info(h, k) => {
                let b = b(h, &*self);
                erase(HostBucket::info(&mut self.view(), b, k.get()).await)
            }
            Call::Increment(h, k, d) => {
                let b = b(h, &*self);
                erase(HostBucket::increment(&mut self.view(), b, k.get(), d).await)
            }
            Call::Expire(h, k, s, m) => {
                let b = b(h, &*self);
                erase(HostBucket::expire(&mut self.view(), b, k.get(), s, m.get()).await)
            }
            Call::Persist(h, k) => {
                let b = b(h, &*self);
                erase(HostBucket::persist(&mut self.view(), b, k.get()).await)
            }
            Call::Ttl(h, k) => {
                let b = b(h, &*self);
                erase(HostBucket::ttl(&mut self.view(), b, k.get()).await)
            }
            Call::Keys {
                h,
                prefix,
                start,
                end,
                reverse,
                limit,
                cursor,
            } => {
                let b = b(h, &*self);
                let listing = types::KeyListing {
                    prefix,
                    start,
                    end,
                    reverse,
                    limit,
                    cursor,
                };
                erase(HostBucket::keys(&mut self.view(), b, listing).await)
            }
            Call::DeletePrefix(h, p) => {
                let b = b(h, &*self);
                erase(HostBucket::delete_prefix(&mut self.view(), b, p).await)
            }
            Call::Query(h, q) => {
                let b = b(h, &*self);
                erase(HostBucket::query(&mut self.view(), b, q).await)
            }
            Call::MapSet(h, k, e) => {
                let b = b(h, &*self);
                erase(HostBucket::map_set(&mut self.view(), b, k.get(), entries(e)).await)
            }
            Call::MapGet(h, k, f) => {
                let b = b(h, &*self);
                erase(HostBucket::map_get(&mut self.view(), b, k.get(), f).await)
            }
            Call::MapGetMany(h, k, fs) => {
                let b = b(h, &*self);
                let n = fs.len();
                let r = HostBucket::map_get_many(&mut self.view(), b, k.get(), fs).await;
                if let Ok(Ok(v)) = &r {
                    assert_eq!(v.len(), n, "map-get-many: one answer per field");
                }
                erase(r)
            }
            Call::MapValues(h, k) => {
                let b = b(h, &*self);
                erase(HostBucket::map_values(&mut self.view(), b, k.get()).await)
            }
            Call::MapGetAll(h, k) => {
                let b = b(h, &*self);
                erase(HostBucket::map_get_all(&mut self.view(), b, k.get()).await)
            }
            Call::MapKeys(h, k) => {
                let b = b(h, &*self);
                erase(HostBucket::map_keys(&mut self.view(), b, k.get()).await)
            }
            Call::MapDelete(h, k, fs) => {
                let b = b(h, &*self);
                erase(HostBucket::map_delete(&mut self.view(), b, k.get(), fs).await)
            }
            Call::MapExists(h, k, f) => {
                let b = b(h, &*self);
                erase(HostBucket::map_exists(&mut self.view(), b, k.get(), f).await)
            }
            Call::MapLength(h, k) => {
                let b = b(h, &*self);
                erase(HostBucket::map_length(&mut self.view(), b, k.get()).await)
            }
            Call::MapIncrement(h, k, f, d) => {
                let b = b(h, &*self);
                erase(HostBucket::map_increment(&mut self.view(), b, k.get(), f, d).await)
            }
            Call::MapScan(h, k, c, p, n) => {
                let b = b(h, &*self);
                erase(HostBucket::map_scan(&mut self.view(), b, k.get(), c, p, n).await)
            }
            Call::ListAppend(h, k, v) => {
                let b = b(h, &*self);
                erase(HostBucket::list_append(&mut self.view(), b, k.get(), v).await)
            }
            Call::ListPrepend(h, k, v) => {
                let b = b(h, &*self);
                erase(HostBucket::list_prepend(&mut self.view(), b, k.get(), v).await)
            }
            Call::ListStartPop(h, k, n) => {
                let b = b(h, &*self);
                erase(HostBucket::list_start_pop(&mut self.view(), b, k.get(), n).await)
            }
            Call::ListEndPop(h, k, n) => {
                let b = b(h, &*self);
                erase(HostBucket::list_end_pop(&mut self.view(), b, k.get(), n).await)
            }
            Call::ListRemove(h, k, v, c) => {
                let b = b(h, &*self);
                erase(HostBucket::list_remove(&mut self.view(), b, k.get(), v, c).await)
            }
            Call::ListLength(h, k) => {
                let b = b(h, &*self);
                erase(HostBucket::list_length(&mut self.view(), b, k.get()).await)
            }
            Call::ListRange(h, k, s, e) => {
                let b = b(h, &*self);
                erase(HostBucket::list_range(&mut self.view(), b, k.get(), s, e).await)
            }
            Call::ListTrim(h, k, s, e) => {
                let b = b(h, &*self);
                erase(HostBucket::list_trim(&mut self.view(), b, k.get(), s, e).await)
            }
            Call::ListInsert(h, k, before, p, v) => {
                let b = b(h, &*self);
                erase(HostBucket::list_insert(&mut self.view(), b, k.get(), before, p, v).await)
            }
            Call::ListIndex(h, k, i) => {
                let b = b(h, &*self);
                erase(HostBucket::list_index(&mut self.view(), b, k.get(), i).await)
            }
            Call::ListSet(h, k, i, v) => {
                let b = b(h, &*self);
                erase(HostBucket::list_set(&mut self.view(), b, k.get(), i, v).await)
            }
            _ => unreachable!("handled in call()"),
        };
        (r, live)
    }
}

fuzz_target!(|calls: Vec<Call>| {
    let f = common::input_store();
    let (instance, account) = (common::unique("instance"), common::unique("account"));
    let mut h = Harness {
        ctx: StateCtx::new(f.store.clone(), instance.clone(), account.clone()),
        table: ResourceTable::new(),
        opened: Vec::new(),
        sessions: Vec::new(),
    };
    common::rt().block_on(async {
        for call in calls.into_iter().take(64) {
            h.call(call).await;
        }
        common::wipe(&f.store, Some(&instance), Some(&account)).await;
    });
});
