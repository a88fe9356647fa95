//! The Redis engine: the state of many hosts in one Redis (or a Redis
//! Cluster). Each write of the engine seam, and each scan, is one call of
//! the engine's Lua function library (FCALL), one round trip, atomic on the
//! server; point reads are one `HMGET` read by the kv engine's own Rust read
//! functions (`read.rs`):
//!
//! - the script's modules (`lua/`) mirror the kv engine's Rust modules one
//!   for one — `value.lua` ↔ `kv/ops/value.rs`, `map.lua` ↔ `kv/ops/map.rs`
//!   … — over the same record layout, kept per owner in a hash and a sorted
//!   set (`keys.rs`); one conformance suite (and a differential property
//!   test) proves the two engines agree;
//! - every write is planned in an in-script overlay and applied only if the
//!   whole request succeeded, so a failing op leaves nothing (Redis has no
//!   rollback);
//! - each owner (an instance with its sessions, or an account) lives in one
//!   Cluster slot, so quota, session liveness and destroy stay atomic; keys
//!   are declared by this side (Cluster-safe);
//! - etags are an owner nonce plus a per-owner counter (no hot global key);
//! - expiry is stored and checked against the host's clock (`ManualClock`
//!   works), and a sweeper frees what expired;
//! - a write carries a request id: a retry after a lost answer gets the
//!   first answer, never a second application.
//!
//! Everything state-independent stays shared Rust (argument checks, cursors,
//! globs, TTL arithmetic, session ids, errors).

mod conn;
pub mod keys;
pub mod native;
mod read;
mod script;

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use redis::Value;

pub use conn::RedisUrl;
pub(crate) use conn::hide_password as conn_hide_password;

use super::clock::{Clock, deadline};
use super::engine::{Engine, FieldPage, Fut};
use super::error::{Result, StateError};
use super::kv::layout::{self, ScopeKeys};
use super::kv::meta::push_hex;
use super::kv::ops::{keyspace, list, map, value};
use super::kv::{self, watch as kv_watch};
use super::limits::Limits;
use super::query::{PageBounds, Query, QueryPage, Runner};
use super::types::{Entry, KeyInfo, KeyListing, KeyPage, Op, OpResult, Scope, SessionInfo};
use super::watch::{ChangeBatch, QueueOwner, WatchTarget};
use super::{InstanceInfo, SweepStats, cursor};
use conn::Conn;
use keys::Owner;
use script::{Reply, payload, read_time, scope_args, time};

/// How many values one script run hands a query at a time (fewer when
/// they are over the page's bytes).
const QUERY_BATCH: usize = 1000;

/// The Redis engine.
pub struct RedisEngine {
    conn: Conn,
    url: RedisUrl,
    clock: Arc<dyn Clock>,
    /// Owners this process has listed in the owners set, and when.
    known_owners: Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// When each owner's next key or session expires (store-clock ms), as
    /// its last sweep found; owners this process wrote since are absent
    /// (unknown). Other hosts' writes are caught by a full pass every
    /// [`FULL_SWEEP`].
    due: Mutex<std::collections::HashMap<String, u64>>,
    /// When the last full pass began.
    last_full: Mutex<Option<std::time::Instant>>,
    /// Whether writes go through wasm-state's Redis module: one of
    /// `MODULE_UNKNOWN`, `MODULE_YES`, `MODULE_NO`.
    module: AtomicU8,
    /// When (store-clock ms) the server last had no usable module
    /// (`u64::MAX`: never ask again).
    module_checked: AtomicU64,
    /// The longest argument the server takes (`proto-max-bulk-len`, read
    /// when the module is found): a write whose packed arguments are longer
    /// goes through the library, which takes them one by one.
    module_max_argument: AtomicU64,
    /// [`limit_args`] of `limits`.
    limit_args: [Vec<u8>; 5],
}

/// Not asked yet whether the server has the module.
const MODULE_UNKNOWN: u8 = 0;
/// The server has the module: commits run through it.
const MODULE_YES: u8 = 1;
/// No module (or `module=off`): commits run through the Lua library.
const MODULE_NO: u8 = 2;

/// How long a host goes on with the library before asking the server
/// again whether it has the module (so one loaded while the host runs is
/// taken up without a restart): store-clock ms.
const MODULE_RECHECK_MS: u64 = 30_000;

/// How long a host holds a watcher's queue after its last look (another
/// host takes over a queue whose holder stopped looking this long), at
/// least: with a `timeout_ms` above 5 s, three times that, so a renewal
/// every 5 s that takes the whole timeout still lands within the lease.
const WATCH_LEASE: Duration = Duration::from_secs(15);

/// How often the sweeper visits every owner, whatever it knows.
const FULL_SWEEP: Duration = Duration::from_secs(60);

/// How often a process lists again an owner it writes to in the owners set.
const OWNER_RELIST: Duration = Duration::from_secs(600);

impl std::fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngine")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The pause before asking again for a write whose answer was lost.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Unpredictable 64-bit numbers, cheaply: a per-process randomly keyed
/// hash (std seeds it from the OS) of a counter. Request ids and the nonce
/// of a new owner need uniqueness and unpredictability, not secrecy.
fn random_u64() -> u64 {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static KEY: LazyLock<std::collections::hash_map::RandomState> =
        LazyLock::new(std::collections::hash_map::RandomState::new);
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    KEY.hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The limits as the scripts take them (quotas, watch queue, sessions,
/// reply): the same for every write of an engine.
fn limit_args(limits: &Limits) -> [Vec<u8>; 5] {
    [
        limits.instance_quota_bytes.to_string().into_bytes(),
        limits.account_quota_bytes.to_string().into_bytes(),
        limits.watch_queue.max(1).to_string().into_bytes(),
        limits.max_sessions.to_string().into_bytes(),
        limits.max_reply_bytes.to_string().into_bytes(),
    ]
}

impl RedisEngine {
    /// Create (`screate`) or extend (`sextend`) a session to live `ttl`
    /// from now; its new expiry (Unix ms).
    async fn session_until(
        &self,
        function: &str,
        instance: &str,
        id: &str,
        ttl: Duration,
    ) -> Result<u64> {
        let now = self.now();
        let at = deadline(now, ttl)?;
        let mut args = vec![
            instance.as_bytes().to_vec(),
            id.as_bytes().to_vec(),
            time(now),
            time(at),
        ];
        args.extend(self.cx_args()?);
        let owner = Owner::instance(&self.url.namespace, instance);
        read_time(&self.write(&owner, function, args).await?.bytes()?)
    }

    /// Connect to the store at `url` and check Redis's settings.
    pub async fn connect(url: &str, clock: Arc<dyn Clock>, limits: Arc<Limits>) -> Result<Self> {
        let url = RedisUrl::parse(url)?;
        let conn = Conn::open(&url).await?;
        conn::check_settings(&conn, &url).await?;
        Ok(RedisEngine {
            conn,
            url,
            clock,
            limit_args: limit_args(&limits),
            known_owners: Mutex::default(),
            due: Mutex::default(),
            last_full: Mutex::default(),
            module: AtomicU8::new(MODULE_UNKNOWN),
            module_checked: AtomicU64::new(0),
            module_max_argument: AtomicU64::new(conn::DEFAULT_MAX_ARGUMENT),
        })
    }

    /// An engine that connects to a single Redis server on first use (no
    /// settings check): for synchronous callers inside a tokio runtime.
    pub fn lazy(url: &str, clock: Arc<dyn Clock>, limits: Arc<Limits>) -> Result<Self> {
        let url = RedisUrl::parse(url)?;
        Ok(RedisEngine {
            conn: Conn::lazy(&url)?,
            url,
            clock,
            limit_args: limit_args(&limits),
            known_owners: Mutex::default(),
            due: Mutex::default(),
            last_full: Mutex::default(),
            module: AtomicU8::new(MODULE_UNKNOWN),
            module_checked: AtomicU64::new(0),
            module_max_argument: AtomicU64::new(conn::DEFAULT_MAX_ARGUMENT),
        })
    }

    /// Whether commits run through wasm-state's Redis module (asked of the
    /// server at the first commit and, while it has none, again every
    /// [`MODULE_RECHECK_MS`]; never with `module=off` in the URL).
    async fn use_module(&self, deadline: Instant) -> Result<bool> {
        if !self.url.module {
            return Ok(false);
        }
        let state = self.module.load(Ordering::Relaxed);
        match state {
            MODULE_YES => Ok(true),
            MODULE_NO if !self.module_recheck_due() => Ok(false),
            _ => {
                // A quarter of the write's time (at least 250 ms): a node
                // that does not answer must leave the write time to run.
                let check_by = deadline
                    .min(Instant::now() + (self.url.timeout / 4).max(Duration::from_millis(250)));
                let has = match self
                    .conn
                    .has_command(&self.url, native::COMMAND, check_by)
                    .await
                {
                    Ok(has) => has,
                    // Refused for good (an ACL without COMMAND, or a server
                    // that renamed it away): use the library. Any other
                    // failure is this write's, and the next one asks again.
                    Err(StateError::Unavailable(m)) if m.contains(conn::NOT_OFFERED) => {
                        tracing::warn!(url = %self.url, "Redis refused COMMAND INFO ({m}); writes run through the Lua library");
                        self.module_off(false);
                        return Ok(false);
                    }
                    // A check that fails (a node that does not answer, in a
                    // cluster maybe another shard's) leaves the writes to
                    // the library until the next re-check.
                    Err(e) => {
                        tracing::debug!(url = %self.url, error = %e, "cannot ask Redis about the module; writes run through the Lua library until the next check");
                        self.module_off(true);
                        return Ok(false);
                    }
                };
                if has {
                    let max = self.conn.max_argument(&self.url, deadline).await;
                    self.module_max_argument.store(max, Ordering::Relaxed);
                    self.module.store(MODULE_YES, Ordering::Relaxed);
                    tracing::info!(url = %self.url, "Redis has wasm-state's module: writes run natively in Redis");
                } else {
                    self.module_off(true);
                }
                Ok(has)
            }
        }
    }

    /// The server has no usable module now: commits go to the library —
    /// until [`MODULE_RECHECK_MS`] from now if `recheck` (it has no such
    /// command: one may be loaded later), for good otherwise (an ACL
    /// refusing `COMMAND` or the module's command, a module of another
    /// build: asking again would only repeat the refusal and its warning).
    fn module_off(&self, recheck: bool) {
        let at = if recheck { self.now() } else { u64::MAX };
        self.module_checked.store(at, Ordering::Relaxed);
        self.module.store(MODULE_NO, Ordering::Relaxed);
    }

    /// Whether to ask the server about the module again (one caller per
    /// [`MODULE_RECHECK_MS`]; the others go on with the library).
    fn module_recheck_due(&self) -> bool {
        let (now, last) = (self.now(), self.module_checked.load(Ordering::Relaxed));
        now.saturating_sub(last) >= MODULE_RECHECK_MS
            && self
                .module_checked
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// One attempt of a write: through the module (commits, when the
    /// server has it) or the Lua library. A server that lost the module
    /// (restarted without it, or unloaded it), an ACL that refuses its
    /// command, or a module built from other sources refuses the command
    /// before running anything, so the write goes to the library instead,
    /// and so do the ones after it. Both answer packed (one bulk string
    /// instead of a reply value per field); the answer comes back unpacked.
    async fn write_once(
        &self,
        cmd: &str,
        keys: &[&str],
        args: &[Vec<u8>],
        deadline: Instant,
    ) -> Result<Value> {
        // A write larger than one argument may be (values of up to 1 MiB
        // each, a map set of any number of them) goes to the library, which
        // takes its arguments one by one.
        if cmd == "commit"
            && self.use_module(deadline).await?
            && native::packed_len(args) <= self.module_max_argument.load(Ordering::Relaxed)
        {
            let fingerprint = native::fingerprint();
            let packed = native::pack_args(args);
            match self
                .conn
                .module_by(
                    &self.url,
                    native::COMMAND,
                    keys,
                    fingerprint,
                    &packed,
                    deadline,
                )
                .await
            {
                Err(StateError::Unavailable(m))
                    if m.contains(conn::NOT_OFFERED) || m.contains(native::VERSION_MISMATCH) =>
                {
                    tracing::warn!(url = %self.url, "wasm-state's Redis module refused the write ({m}); writes run through the Lua library");
                    // Unloaded (or the server restarted without it): it
                    // may come back.
                    self.module_off(m.contains("unknown command"));
                }
                other => return native::answer_of(other?),
            }
        }
        native::answer_of(self.conn.script_by(&self.url, keys, args, deadline).await?)
    }

    /// The store URL (password hidden).
    pub fn url(&self) -> &RedisUrl {
        &self.url
    }

    fn owner(&self, scope: &Scope) -> Owner {
        Owner::of_scope(&self.url.namespace, scope)
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// One read on an owner: the command, then its arguments.
    async fn read(&self, owner: &Owner, mut args: Vec<Vec<u8>>) -> Result<Value> {
        args.insert(0, b"f".to_vec());
        let v = self
            .conn
            .read_script(&self.url, &[&owner.hash, &owner.zset], &args)
            .await?;
        payload(v)
    }

    /// A read of one scope: `cmd`, the scope and now, then `extra`.
    async fn read_scope(&self, cmd: &str, scope: &Scope, extra: Vec<Vec<u8>>) -> Result<Value> {
        let mut args = vec![cmd.as_bytes().to_vec()];
        args.extend(scope_args(scope));
        args.push(time(self.now()));
        args.extend(extra);
        self.read(&self.owner(scope), args).await
    }

    /// A point read of `scope`: one `HMGET` of the records `records` names
    /// (with the owner's etag counter and, for a session, its record), then
    /// the scope's liveness check and `f` — the kv engine's read functions —
    /// over them.
    async fn point_read<R, I: IntoIterator<Item = Vec<u8>>>(
        &self,
        scope: &Scope,
        records: impl FnOnce(&ScopeKeys) -> I,
        f: impl FnOnce(&read::Fetched, &ScopeKeys, u64) -> Result<R>,
    ) -> Result<R> {
        let now = self.now();
        let sk = ScopeKeys::new(scope);
        let r = self
            .fetch(&self.owner(scope), read::fields(scope, records(&sk)))
            .await?;
        keyspace::ensure_scope(&r, scope, now)?;
        f(&r, &sk, now)
    }

    /// The records `fields` of `owner`, with one `HMGET`.
    async fn fetch(&self, owner: &Owner, fields: Vec<Vec<u8>>) -> Result<read::Fetched> {
        let mut hmget = redis::cmd("HMGET");
        hmget.arg(&owner.hash);
        for field in &fields {
            hmget.arg(field.as_slice());
        }
        read::Fetched::new(fields, self.conn.cmd(&self.url, &hmget).await?)
    }

    /// List an owner in the owners set (the sweeper's work list) before
    /// its first write in this process, and again every [`OWNER_RELIST`]
    /// (a destroy on another host takes it off the set).
    async fn note_owner(&self, owner: &Owner, deadline: Instant) {
        let fresh = self
            .known_owners
            .lock()
            .map(|mut k| {
                let now = std::time::Instant::now();
                match k.get(&owner.tag) {
                    Some(at) if now.duration_since(*at) < OWNER_RELIST => false,
                    _ => {
                        k.insert(owner.tag.clone(), now);
                        true
                    }
                }
            })
            .unwrap_or(true);
        if fresh {
            let mut c = redis::cmd("SADD");
            c.arg(keys::owners_set(&self.url.namespace)).arg(&owner.tag);
            // The set lives in one slot: a shard that is down must not stop
            // the writes of owners elsewhere. The owner is listed at its
            // next write instead (its expired keys wait for that).
            if let Err(e) = self.conn.cmd_by(&self.url, &c, deadline).await {
                if let Ok(mut k) = self.known_owners.lock() {
                    k.remove(&owner.tag);
                }
                tracing::warn!(url = %self.url, error = %e, "cannot list an owner for the sweeper; it is listed at its next write");
            }
        }
    }

    /// A write on an owner: the command, now, nonce and quotas, then
    /// `extra`. It carries a request id; one retry after a lost answer
    /// returns the first answer. All of it within the store's timeout.
    async fn write(&self, owner: &Owner, cmd: &str, extra: Vec<Vec<u8>>) -> Result<Value> {
        let deadline = conn::deadline(&self.url);
        self.note_owner(owner, deadline).await;
        let mut request = String::with_capacity(24);
        push_hex(&mut request, random_u64(), 16);
        push_hex(&mut request, random_u64(), 8);
        let marker = owner.marker(&self.url.namespace, &request);
        let keys = [owner.hash.as_str(), owner.zset.as_str(), marker.as_str()];
        if let Ok(mut due) = self.due.lock() {
            due.remove(&owner.tag);
        }
        let mut args = vec![b"f".to_vec(), cmd.as_bytes().to_vec()];
        args.extend(extra);
        let first = self.write_once(cmd, &keys, &args, deadline).await;
        let v = match first {
            Err(StateError::Unavailable(m)) if conn::unanswered(&m) => {
                if Instant::now() + RETRY_PAUSE >= deadline {
                    return Err(StateError::Unavailable(format!(
                        "{m}; the write may or may not have been applied (all of it or none)"
                    )));
                }
                // The answer was lost: ask again with the same request id.
                tokio::time::sleep(RETRY_PAUSE).await;
                args[0] = b"R".to_vec();
                // Whatever Redis says now, the first attempt may have run:
                // say so (an answer of the write itself — a failed
                // condition — comes in the payload, not here).
                const LOST: &str = "an earlier attempt's answer was lost, so the write may or may not have been applied (all of it or none)";
                self.write_once(cmd, &keys, &args, deadline)
                    .await
                    .map_err(|e| match e {
                        StateError::Unavailable(m2) => {
                            StateError::Unavailable(format!("{m2}; {LOST}"))
                        }
                        StateError::Internal(m2) => StateError::Internal(format!("{m2}; {LOST}")),
                        e => e,
                    })?
            }
            other => other?,
        };
        payload(v)
    }

    /// The write context's arguments: the nonce a new owner gets, quotas,
    /// the watch queue bound, the sessions and reply limits, the origin
    /// (none).
    fn cx_args(&self) -> Result<Vec<Vec<u8>>> {
        self.cx_args_from(None)
    }

    /// The same, for a write made by the watcher `origin`.
    fn cx_args_from(&self, origin: Option<&str>) -> Result<Vec<Vec<u8>>> {
        let mut nonce = String::with_capacity(8);
        push_hex(&mut nonce, random_u64(), 8);
        let mut args = Vec::with_capacity(7);
        args.push(nonce.into_bytes());
        args.extend(self.limit_args.iter().cloned());
        args.push(opt_arg(origin));
        Ok(args)
    }

    /// The Redis owner of a queue owner.
    fn queue_owner(&self, owner: &QueueOwner) -> Owner {
        match owner {
            QueueOwner::Instance(i) => Owner::instance(&self.url.namespace, i),
            QueueOwner::Account(a) => {
                Owner::of_scope(&self.url.namespace, &Scope::Account(a.clone()))
            }
        }
    }

    /// Sweep one owner; returns what was freed.
    async fn sweep_owner(&self, owner: &Owner, limit: usize) -> Result<SweepStats> {
        let mut args = vec![time(self.now()), limit.to_string().into_bytes()];
        args.extend(self.cx_args()?);
        let r = self.write(owner, "sweep", args).await?.items()?;
        let mut it = r.into_iter();
        let keys = it.next().map(Reply::int).transpose()?.unwrap_or(0);
        let sessions = it.next().map(Reply::int).transpose()?.unwrap_or(0);
        let next = match it.next().and_then(Reply::opt) {
            Some(at) => read_time(&at.bytes()?)?,
            None => u64::MAX,
        };
        if let Ok(mut due) = self.due.lock() {
            due.insert(owner.tag.clone(), next);
        }
        Ok(SweepStats {
            keys: keys.max(0) as u64,
            sessions: sessions.max(0) as u64,
        })
    }
}

fn opt_bytes(v: Value) -> Result<Option<Vec<u8>>> {
    v.opt().map(Reply::bytes).transpose()
}

fn opt_arg(s: Option<&str>) -> Vec<u8> {
    s.map(|s| s.as_bytes().to_vec()).unwrap_or_default()
}

/// An optional argument of a read whose value may be empty (a map field or
/// a listing bound): empty for none, else `+` and the value (`present()` in
/// `lua/main.lua`), so that "after the field \"\"" is not "from the start".
fn present_arg(s: Option<&[u8]>) -> Vec<u8> {
    s.map(|s| [b"+", s].concat()).unwrap_or_default()
}

impl Engine for RedisEngine {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn get_entries<'a>(
        &'a self,
        scope: &'a Scope,
        keys: &'a [String],
        max_bytes: usize,
    ) -> Fut<'a, Vec<Result<Option<Entry>>>> {
        Box::pin(async move {
            let metas = |sk: &ScopeKeys| keys.iter().map(|k| sk.meta(k)).collect::<Vec<_>>();
            self.point_read(scope, metas, |r, sk, now| {
                value::get_entries(r, sk, keys, now, max_bytes, &|v| r.etag(v))
            })
            .await
        })
    }

    fn info<'a>(&'a self, scope: &'a Scope, key: &'a str) -> Fut<'a, Option<KeyInfo>> {
        Box::pin(async move {
            let meta = |sk: &ScopeKeys| [sk.meta(key)];
            self.point_read(scope, meta, |r, sk, now| {
                match keyspace::load(r, sk, key, now)? {
                    Some(m) => Ok(Some(keyspace::key_info(&m, now, r.etag(m.version)?))),
                    None => Ok(None),
                }
            })
            .await
        })
    }

    fn keys<'a>(
        &'a self,
        scope: &'a Scope,
        listing: &'a KeyListing,
        page: usize,
    ) -> Fut<'a, KeyPage> {
        Box::pin(async move {
            let after = listing.cursor.as_deref().map(cursor::decode).transpose()?;
            let args = vec![
                present_arg(listing.prefix.as_deref().map(str::as_bytes)),
                present_arg(listing.start.as_deref().map(str::as_bytes)),
                present_arg(listing.end.as_deref().map(str::as_bytes)),
                if listing.reverse {
                    b"1".to_vec()
                } else {
                    b"0".to_vec()
                },
                present_arg(after.as_deref()),
                page.to_string().into_bytes(),
            ];
            let mut it = self
                .read_scope("keys", scope, args)
                .await?
                .items()?
                .into_iter();
            let more = it
                .next()
                .ok_or_else(|| script::bad_reply("a flag"))?
                .int()?
                == 1;
            let keys: Vec<String> = it.map(Reply::text).collect::<Result<_>>()?;
            let cursor = match keys.last() {
                Some(last) if more => Some(cursor::encode(last.as_bytes())),
                _ => None,
            };
            Ok(KeyPage { keys, cursor })
        })
    }

    fn map_get_many<'a>(
        &'a self,
        scope: &'a Scope,
        key: &'a str,
        fields: &'a [String],
        max_bytes: usize,
    ) -> Fut<'a, Vec<Option<Vec<u8>>>> {
        Box::pin(async move {
            let records = |sk: &ScopeKeys| {
                let prefix = sk.fields(key);
                std::iter::once(sk.meta(key))
                    .chain(
                        fields
                            .iter()
                            .map(|f| layout::field_key(&prefix, f.as_bytes())),
                    )
                    .collect::<Vec<_>>()
            };
            self.point_read(scope, records, |r, sk, now| {
                map::get_many(r, sk, key, fields, now, max_bytes)
            })
            .await
        })
    }

    fn map_length<'a>(&'a self, scope: &'a Scope, key: &'a str) -> Fut<'a, u64> {
        Box::pin(async move {
            let meta = |sk: &ScopeKeys| [sk.meta(key)];
            self.point_read(scope, meta, |r, sk, now| map::length(r, sk, key, now))
                .await
        })
    }

    fn map_fields<'a>(
        &'a self,
        scope: &'a Scope,
        key: &'a str,
        after: Option<Vec<u8>>,
        count: usize,
        max_bytes: usize,
    ) -> Fut<'a, FieldPage> {
        Box::pin(async move {
            let count = count.min(i64::MAX as usize);
            let args = vec![
                key.as_bytes().to_vec(),
                present_arg(after.as_deref()),
                count.to_string().into_bytes(),
                max_bytes.to_string().into_bytes(),
            ];
            let mut it = self
                .read_scope("mfields", scope, args)
                .await?
                .items()?
                .into_iter();
            let last = opt_bytes(it.next().ok_or_else(|| script::bad_reply("a cursor"))?)?;
            let mut entries = Vec::new();
            while let (Some(f), Some(v)) = (it.next(), it.next()) {
                entries.push((f.text()?, v.bytes()?));
            }
            Ok(FieldPage { entries, last })
        })
    }

    fn list_length<'a>(&'a self, scope: &'a Scope, key: &'a str) -> Fut<'a, u64> {
        Box::pin(async move {
            let meta = |sk: &ScopeKeys| [sk.meta(key)];
            self.point_read(scope, meta, |r, sk, now| list::length(r, sk, key, now))
                .await
        })
    }

    fn list_range<'a>(
        &'a self,
        scope: &'a Scope,
        key: &'a str,
        start: i64,
        stop: i64,
        max_bytes: usize,
    ) -> Fut<'a, Vec<Vec<u8>>> {
        Box::pin(async move {
            let args = vec![
                key.as_bytes().to_vec(),
                start.to_string().into_bytes(),
                stop.to_string().into_bytes(),
                max_bytes.to_string().into_bytes(),
            ];
            let v = self.read_scope("lrange", scope, args).await?;
            v.items()?.into_iter().map(Reply::bytes).collect()
        })
    }

    fn list_index<'a>(
        &'a self,
        scope: &'a Scope,
        key: &'a str,
        index: i64,
    ) -> Fut<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let args = vec![key.as_bytes().to_vec(), index.to_string().into_bytes()];
            opt_bytes(self.read_scope("lindex", scope, args).await?)
        })
    }

    fn query<'a>(
        &'a self,
        scope: &'a Scope,
        prefix: &'a str,
        query: &'a Query,
        page: PageBounds,
    ) -> Fut<'a, QueryPage> {
        Box::pin(async move {
            // The values are read in batches (each one script run), so a
            // query sees each batch at one moment, not the whole scope.
            let mut runner = Runner::new(query, page)?;
            let mut after: Option<String> = None;
            loop {
                let args = vec![
                    prefix.as_bytes().to_vec(),
                    present_arg(after.as_deref().map(str::as_bytes)),
                    QUERY_BATCH.to_string().into_bytes(),
                    page.bytes.to_string().into_bytes(),
                ];
                let mut it = self
                    .read_scope("values", scope, args)
                    .await?
                    .items()?
                    .into_iter();
                let more = it
                    .next()
                    .ok_or_else(|| script::bad_reply("a flag"))?
                    .int()?
                    == 1;
                while let (Some(k), Some(e), Some(v)) = (it.next(), it.next(), it.next()) {
                    let key = k.text()?;
                    let etag = e.text()?;
                    let value = v.bytes()?;
                    if let Some(rest) = key.strip_prefix(prefix) {
                        runner.offer(rest, &value, || etag);
                    }
                    after = Some(key);
                }
                if !more || runner.failed() {
                    return runner.finish();
                }
            }
        })
    }

    fn commit<'a>(
        &'a self,
        scope: &'a Scope,
        ops: Vec<Op>,
        origin: Option<&'a str>,
    ) -> Fut<'a, Vec<OpResult>> {
        Box::pin(async move {
            let now = self.now();
            let mut args: Vec<Vec<u8>> = scope_args(scope).into();
            args.push(time(now));
            args.extend(self.cx_args_from(origin)?);
            script::op_args(&ops, now, &mut args)?;
            let v = self.write(&self.owner(scope), "commit", args).await?;
            script::op_results(v)
        })
    }

    fn delete_prefix<'a>(
        &'a self,
        scope: &'a Scope,
        prefix: &'a str,
        origin: Option<&'a str>,
    ) -> Fut<'a, u64> {
        Box::pin(async move {
            let now = self.now();
            let mut args: Vec<Vec<u8>> = scope_args(scope).into();
            args.push(time(now));
            args.extend(self.cx_args_from(origin)?);
            args.push(prefix.as_bytes().to_vec());
            let v = self.write(&self.owner(scope), "delprefix", args).await?;
            Ok(v.int()?.max(0) as u64)
        })
    }

    fn create_session<'a>(&'a self, instance: &'a str, id: &'a str, ttl: Duration) -> Fut<'a, u64> {
        Box::pin(self.session_until("screate", instance, id, ttl))
    }

    fn session_expiry<'a>(&'a self, instance: &'a str, id: &'a str) -> Fut<'a, u64> {
        Box::pin(async move {
            let now = self.now();
            let owner = Owner::instance(&self.url.namespace, instance);
            let r = self
                .fetch(&owner, vec![layout::session_key(instance, id)])
                .await?;
            keyspace::session_expiry(&r, instance, id, now)
        })
    }

    fn extend_session<'a>(&'a self, instance: &'a str, id: &'a str, ttl: Duration) -> Fut<'a, u64> {
        Box::pin(self.session_until("sextend", instance, id, ttl))
    }

    fn end_session<'a>(&'a self, instance: &'a str, id: &'a str) -> Fut<'a, bool> {
        Box::pin(async move {
            let now = self.now();
            let mut args = vec![
                instance.as_bytes().to_vec(),
                id.as_bytes().to_vec(),
                time(now),
            ];
            args.extend(self.cx_args()?);
            let owner = Owner::instance(&self.url.namespace, instance);
            Ok(self.write(&owner, "send", args).await?.int()? == 1)
        })
    }

    fn list_sessions<'a>(&'a self, instance: &'a str) -> Fut<'a, Vec<SessionInfo>> {
        Box::pin(async move {
            let args = vec![
                b"slist".to_vec(),
                instance.as_bytes().to_vec(),
                time(self.now()),
            ];
            let owner = Owner::instance(&self.url.namespace, instance);
            let mut it = self.read(&owner, args).await?.items()?.into_iter();
            let mut out = Vec::new();
            while let (Some(id), Some(at)) = (it.next(), it.next()) {
                out.push(SessionInfo {
                    instance: instance.to_string(),
                    id: id.text()?,
                    expires_at_ms: read_time(&at.bytes()?)?,
                });
            }
            Ok(out)
        })
    }

    fn session_count<'a>(&'a self, instance: &'a str) -> Fut<'a, u64> {
        Box::pin(async move {
            let args = vec![
                b"scount".to_vec(),
                instance.as_bytes().to_vec(),
                time(self.now()),
            ];
            let owner = Owner::instance(&self.url.namespace, instance);
            Ok(self.read(&owner, args).await?.int()?.max(0) as u64)
        })
    }

    fn register_instance<'a>(
        &'a self,
        instance: &'a str,
        account: &'a str,
    ) -> Fut<'a, InstanceInfo> {
        Box::pin(async move {
            let now = self.now();
            let mut args = vec![
                instance.as_bytes().to_vec(),
                account.as_bytes().to_vec(),
                time(now),
            ];
            args.extend(self.cx_args()?);
            let registry = Owner::registry(&self.url.namespace);
            let mut it = self
                .write(&registry, "register", args)
                .await?
                .items()?
                .into_iter();
            let account = it
                .next()
                .ok_or_else(|| script::bad_reply("an account"))?
                .text()?;
            let created = it
                .next()
                .ok_or_else(|| script::bad_reply("a time"))?
                .bytes()?;
            Ok(InstanceInfo {
                name: instance.to_string(),
                account,
                created_at_ms: read_time(&created)?,
            })
        })
    }

    fn instance_info<'a>(&'a self, instance: &'a str) -> Fut<'a, Option<InstanceInfo>> {
        Box::pin(async move {
            let registry = Owner::registry(&self.url.namespace);
            let r = self
                .fetch(&registry, vec![layout::instance_key(instance)])
                .await?;
            kv::instances::lookup(&r, instance)
        })
    }

    fn list_instances(&self) -> Fut<'_, Vec<InstanceInfo>> {
        Box::pin(async move {
            let registry = Owner::registry(&self.url.namespace);
            let mut it = self
                .read(&registry, vec![b"ilist".to_vec()])
                .await?
                .items()?
                .into_iter();
            let mut out = Vec::new();
            while let (Some(n), Some(a), Some(c)) = (it.next(), it.next(), it.next()) {
                out.push(InstanceInfo {
                    name: n.text()?,
                    account: a.text()?,
                    created_at_ms: read_time(&c.bytes()?)?,
                });
            }
            Ok(out)
        })
    }

    fn destroy_instance<'a>(&'a self, instance: &'a str) -> Fut<'a, ()> {
        Box::pin(async move {
            let now = self.now();
            let owner = Owner::instance(&self.url.namespace, instance);
            self.write(&owner, "destroy", Vec::new()).await?;
            // Off the sweeper's work list (a host still writing to a new
            // life of the instance lists it again within OWNER_RELIST).
            if let Ok(mut k) = self.known_owners.lock() {
                k.remove(&owner.tag);
            }
            let mut srem = redis::cmd("SREM");
            srem.arg(keys::owners_set(&self.url.namespace))
                .arg(&owner.tag);
            if let Err(e) = self.conn.cmd(&self.url, &srem).await {
                tracing::warn!(url = %self.url, error = %e, instance, "cannot take a destroyed instance off the sweeper's list; it is swept (finding nothing) until it is");
            }
            let registry = Owner::registry(&self.url.namespace);
            let mut args = vec![instance.as_bytes().to_vec(), time(now)];
            args.extend(self.cx_args()?);
            self.write(&registry, "iforget", args).await?;
            Ok(())
        })
    }

    fn instance_usage<'a>(&'a self, instance: &'a str) -> Fut<'a, u64> {
        Box::pin(async move {
            let owner = Owner::instance(&self.url.namespace, instance);
            let owner_record = layout::instance_owner(instance);
            let r = self
                .fetch(&owner, vec![layout::usage_key(&owner_record)])
                .await?;
            keyspace::usage(&r, &owner_record)
        })
    }

    fn sweep_step(&self, limit: usize) -> Fut<'_, SweepStats> {
        Box::pin(async move {
            let mut c = redis::cmd("SMEMBERS");
            c.arg(keys::owners_set(&self.url.namespace));
            let tags = self.conn.cmd(&self.url, &c).await?;
            let tags: Vec<Value> = match tags {
                Value::Set(v) | Value::Array(v) => v,
                Value::Nil => Vec::new(),
                _ => return Err(script::bad_reply("a set of owners")),
            };
            let now = self.now();
            let full = {
                let mut last = self
                    .last_full
                    .lock()
                    .map_err(|_| StateError::Internal("the sweeper's state was poisoned".into()))?;
                let full = last.is_none_or(|t| t.elapsed() >= FULL_SWEEP);
                if full {
                    *last = Some(std::time::Instant::now());
                }
                full
            };
            let mut total = SweepStats::default();
            let (mut swept, mut failed) = (0usize, None);
            for tag in tags {
                let tag = tag.text()?;
                let known = self.due.lock().ok().and_then(|d| d.get(&tag).copied());
                if !full && known.is_some_and(|at| at >= now) {
                    continue;
                }
                let owner = keys::owner_of_tag(&self.url.namespace, &tag);
                // One owner that fails (its shard down) does not stop the
                // others'; the step fails only if every owner did.
                match self.sweep_owner(&owner, limit).await {
                    Ok(s) => {
                        total.keys += s.keys;
                        total.sessions += s.sessions;
                        swept += 1;
                    }
                    Err(e) => {
                        tracing::warn!(url = %self.url, error = %e, "cannot sweep one owner; the others are swept");
                        failed.get_or_insert(e);
                    }
                }
            }
            match failed {
                Some(e) if swept == 0 => Err(e),
                _ => Ok(total),
            }
        })
    }

    fn watch<'a>(&'a self, watcher: &'a str, targets: &'a [WatchTarget]) -> Fut<'a, ()> {
        Box::pin(async move {
            // What it watched is kept with its instance; each owner's
            // registrations and queue with that owner (one slot each).
            let home = Owner::instance(&self.url.namespace, watcher);
            let mut args = vec![
                watcher.as_bytes().to_vec(),
                kv_watch::encode_targets(targets),
                time(self.now()),
            ];
            args.extend(self.cx_args()?);
            let old =
                kv_watch::decode_targets(&self.write(&home, "watching", args).await?.bytes()?)?;
            let mut owners: Vec<QueueOwner> =
                old.iter().chain(targets).map(WatchTarget::owner).collect();
            owners.sort();
            owners.dedup();
            for owner in owners {
                let (wanted, unwanted) = kv_watch::split_for_owner(&owner, &old, targets);
                let mut args = vec![
                    watcher.as_bytes().to_vec(),
                    kv_watch::owner_bytes(&owner),
                    time(self.now()),
                ];
                args.extend(self.cx_args()?);
                args.push(wanted.len().to_string().into_bytes());
                args.extend(wanted);
                args.extend(unwanted);
                self.write(&self.queue_owner(&owner), "wowner", args)
                    .await?;
            }
            Ok(())
        })
    }

    fn pending<'a>(
        &'a self,
        watcher: &'a str,
        owner: &'a QueueOwner,
        holder: &'a str,
        limit: usize,
    ) -> Fut<'a, ChangeBatch> {
        Box::pin(async move {
            let mut args = vec![
                watcher.as_bytes().to_vec(),
                kv_watch::owner_bytes(owner),
                holder.as_bytes().to_vec(),
                time(self.now()),
            ];
            args.extend(self.cx_args()?);
            let lease = WATCH_LEASE.max(self.url.timeout * 3);
            args.push(lease.as_millis().to_string().into_bytes());
            args.push(limit.to_string().into_bytes());
            let mut it = self
                .write(&self.queue_owner(owner), "wpending", args)
                .await?
                .items()?
                .into_iter();
            let busy = it
                .next()
                .ok_or_else(|| script::bad_reply("a flag"))?
                .int()?
                == 1;
            let dropped = it
                .next()
                .ok_or_else(|| script::bad_reply("a count"))?
                .int()?;
            let mut changes = Vec::new();
            while let (Some(seq), Some(entry)) = (it.next(), it.next()) {
                let seq = seq.int()?.max(0) as u64;
                changes.push(kv_watch::decode_entry(seq, &entry.bytes()?)?);
            }
            Ok(ChangeBatch {
                changes,
                dropped: dropped.max(0) as u64,
                busy,
            })
        })
    }

    fn ack<'a>(&'a self, watcher: &'a str, owner: &'a QueueOwner, upto: u64) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut args = vec![
                watcher.as_bytes().to_vec(),
                kv_watch::owner_bytes(owner),
                time(self.now()),
            ];
            args.extend(self.cx_args()?);
            // Lua numbers are exact to 2^53, far beyond any real seq.
            args.push(upto.min(1 << 53).to_string().into_bytes());
            self.write(&self.queue_owner(owner), "wack", args).await?;
            Ok(())
        })
    }
}
