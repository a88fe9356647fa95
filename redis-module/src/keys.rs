//! One owner's keys through Redis's key API: the records hash, the sorted
//! set that orders them, and the request's answer marker. No command is
//! called inside Redis (`RedisModule_Call` cost ~3 µs of Redis CPU each,
//! measured: three per `set`), and every write is also propagated to the
//! append-only file and replicas (`RedisModule_Replicate`; Redis wraps one
//! command's propagated writes in MULTI/EXEC), signalled as modified to
//! clients that `WATCH` the key, and announced to keyspace notification
//! subscribers — only where it changed something, as the commands the Lua
//! library calls would (`hset`, `zadd`, `hdel`, `zrem`, `set`, `expire`).
//!
//! The unsafe code is the calls into Redis's module API: each key is opened
//! once per command and closed when `Keys` is dropped; every string Redis
//! returns is copied and freed at once.

use std::os::raw::{c_int, c_void};
use std::ptr;

use redis_module::{Context, NotifyEvent, RedisString, raw};
use wasm_state::store::StateError;
use wasm_state::store::redis::native::{MARKER_MS, OwnerKeys};

type Result<T> = std::result::Result<T, StateError>;

/// `REDISMODULE_HASH_DELETE` (a macro bindgen does not carry): the value
/// that deletes a field.
const HASH_DELETE: *mut raw::RedisModuleString = ptr::without_provenance_mut(1);

fn wrong_type(what: &str) -> StateError {
    StateError::Internal(format!(
        "the owner's {what} in Redis is not of the type wasm-state keeps there; was it written by something else?"
    ))
}

fn missing_api(name: &str) -> StateError {
    StateError::Internal(format!(
        "this Redis does not offer {name} to modules (Redis 7.0 or later is needed)"
    ))
}

macro_rules! api {
    ($name:ident) => {
        // SAFETY: the function table is filled once when the module loads
        // and never written again; the value is copied out.
        unsafe { raw::$name }.ok_or_else(|| missing_api(stringify!($name)))?
    };
}

/// An open key, closed on drop.
struct Key(*mut raw::RedisModuleKey);

impl Drop for Key {
    fn drop(&mut self) {
        raw::close_key(self.0);
    }
}

impl Key {
    fn open(ctx: &Context, name: &RedisString, write: bool) -> Key {
        let mode = if write {
            raw::KeyMode::READ | raw::KeyMode::WRITE
        } else {
            raw::KeyMode::READ
        };
        Key(raw::open_key(ctx.ctx, name.inner, mode))
    }

    fn kind(&self) -> raw::KeyType {
        // SAFETY: `self.0` is an open key.
        unsafe { raw::RedisModule_KeyType.map_or(0, |f| f(self.0)) }.into()
    }
}

/// The owner's keys for one command.
pub struct Keys<'c> {
    ctx: &'c Context,
    names: [&'c RedisString; 3],
    hash: Key,
    zset: Key,
}

impl<'c> Keys<'c> {
    /// Open the owner's hash and sorted set (`names`: hash, sorted set,
    /// marker).
    pub fn open(ctx: &'c Context, names: [&'c RedisString; 3]) -> Result<Keys<'c>> {
        let keys = Keys {
            ctx,
            names,
            hash: Key::open(ctx, names[0], true),
            zset: Key::open(ctx, names[1], true),
        };
        if !matches!(keys.hash.kind(), raw::KeyType::Empty | raw::KeyType::Hash) {
            return Err(wrong_type("records hash"));
        }
        if !matches!(keys.zset.kind(), raw::KeyType::Empty | raw::KeyType::ZSet) {
            return Err(wrong_type("records order (sorted set)"));
        }
        Ok(keys)
    }

    fn string(&self, b: &[u8]) -> RedisString {
        RedisString::create_from_slice(self.ctx.ctx, b)
    }

    /// Copy and free a string Redis handed over.
    fn take(&self, s: *mut raw::RedisModuleString) -> Vec<u8> {
        RedisString::from_redis_module_string(self.ctx.ctx, s)
            .as_slice()
            .to_vec()
    }

    /// Propagate `cmd` with `args`: the strings the write itself used, so
    /// Redis only takes a reference to each (no copy per argument).
    fn replicate(&self, cmd: &str, args: &[&RedisString]) {
        self.ctx.replicate(cmd, args);
    }

    /// Key `which` (0 the hash, 1 the sorted set, 2 the marker) changed:
    /// signal it as modified (to clients that `WATCH` it; the module turned
    /// the implicit signal of every key opened for writing off) and
    /// announce `event` to keyspace notification subscribers (Redis does
    /// nothing unless `notify-keyspace-events` asks for the kind).
    fn changed(&self, kind: NotifyEvent, event: &str, which: usize) {
        // SAFETY: the function table is filled once when the module loads;
        // a live context and key name.
        if let Some(signal) = unsafe { raw::RedisModule_SignalModifiedKey } {
            unsafe { signal(self.ctx.ctx, self.names[which].inner) };
        }
        let _ = self
            .ctx
            .notify_keyspace_event(kind, event, self.names[which]);
    }
}

impl OwnerKeys for Keys<'_> {
    fn get(&self, fields: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        let hash_get = api!(RedisModule_HashGet);
        fields
            .iter()
            .map(|f| {
                let field = self.string(f);
                let mut value: *mut raw::RedisModuleString = ptr::null_mut();
                // SAFETY: an open key, a live field string, one out pointer,
                // and the NULL that ends the variadic list.
                let status = unsafe {
                    hash_get(
                        self.hash.0,
                        raw::REDISMODULE_HASH_NONE as c_int,
                        field.inner,
                        &mut value as *mut *mut raw::RedisModuleString,
                        ptr::null_mut::<c_void>(),
                    )
                };
                if status != raw::REDISMODULE_OK as c_int {
                    return Err(wrong_type("records hash"));
                }
                Ok((!value.is_null()).then(|| self.take(value)))
            })
            .collect()
    }

    fn members(&self, lo: &[u8], hi: &[u8], reverse: bool, limit: usize) -> Result<Vec<Vec<u8>>> {
        if self.zset.kind() == raw::KeyType::Empty {
            return Ok(Vec::new());
        }
        let (min, max) = (self.string(lo), self.string(hi));
        let start = if reverse {
            api!(RedisModule_ZsetLastInLexRange)
        } else {
            api!(RedisModule_ZsetFirstInLexRange)
        };
        let step = if reverse {
            api!(RedisModule_ZsetRangePrev)
        } else {
            api!(RedisModule_ZsetRangeNext)
        };
        let (ended, current, stop) = (
            api!(RedisModule_ZsetRangeEndReached),
            api!(RedisModule_ZsetRangeCurrentElement),
            api!(RedisModule_ZsetRangeStop),
        );
        let mut out = Vec::new();
        // SAFETY: an open sorted set and live range strings; the range is
        // stopped before the strings are dropped.
        unsafe {
            if start(self.zset.0, min.inner, max.inner) != raw::REDISMODULE_OK as c_int {
                return Err(StateError::Internal(format!(
                    "bad range {:?}..{:?} of the records order",
                    String::from_utf8_lossy(lo),
                    String::from_utf8_lossy(hi)
                )));
            }
            while out.len() < limit && ended(self.zset.0) == 0 {
                let e = current(self.zset.0, ptr::null_mut());
                if e.is_null() {
                    break;
                }
                out.push(self.take(e));
                if step(self.zset.0) == 0 {
                    break;
                }
            }
            stop(self.zset.0);
        }
        Ok(out)
    }

    fn put(&self, records: &[(&[u8], &[u8])], fresh: &[&[u8]]) -> Result<()> {
        let (hash_set, zset_add) = (api!(RedisModule_HashSet), api!(RedisModule_ZsetAdd));
        let strings: Vec<RedisString> = records
            .iter()
            .flat_map(|(k, v)| [self.string(k), self.string(v)])
            .collect();
        for pair in strings.chunks_exact(2) {
            // SAFETY: an open key opened for writing, live strings, NULL end.
            // (It cannot fail: the key was checked to be a hash or empty.)
            // Redis copies the field and the value.
            unsafe {
                hash_set(
                    self.hash.0,
                    raw::REDISMODULE_HASH_NONE as c_int,
                    pair[0].inner,
                    pair[1].inner,
                    ptr::null_mut::<c_void>(),
                );
            }
        }
        let hset: Vec<&RedisString> = std::iter::once(self.names[0]).chain(&strings).collect();
        self.replicate("HSET", &hset);
        self.changed(NotifyEvent::HASH, "hset", 0);
        if !fresh.is_empty() {
            let score = self.string(b"0");
            let members: Vec<RedisString> = fresh.iter().map(|m| self.string(m)).collect();
            let mut zadd: Vec<&RedisString> = vec![self.names[1]];
            let mut added = false;
            for member in &members {
                let mut flags: c_int = 0;
                // SAFETY: an open key opened for writing, a live string.
                let status = unsafe { zset_add(self.zset.0, 0.0, member.inner, &mut flags) };
                if status != raw::REDISMODULE_OK as c_int {
                    return Err(wrong_type("records order (sorted set)"));
                }
                added |= flags & raw::REDISMODULE_ZADD_ADDED as c_int != 0;
                zadd.extend([&score, member]);
            }
            self.replicate("ZADD", &zadd);
            // `ZADD` announces only a member added (or a score changed).
            if added {
                self.changed(NotifyEvent::ZSET, "zadd", 1);
            }
        }
        Ok(())
    }

    fn delete(&self, fields: &[&[u8]]) -> Result<()> {
        let (hash_set, zset_rem) = (api!(RedisModule_HashSet), api!(RedisModule_ZsetRem));
        let hash_exists = self.hash.kind() != raw::KeyType::Empty;
        let zset_exists = self.zset.kind() != raw::KeyType::Empty;
        let (mut hdel, mut zrem) = (0, 0);
        let strings: Vec<RedisString> = fields.iter().map(|f| self.string(f)).collect();
        for field in &strings {
            // SAFETY: open keys opened for writing, a live string, NULL end.
            unsafe {
                if hash_exists {
                    hdel += hash_set(
                        self.hash.0,
                        raw::REDISMODULE_HASH_NONE as c_int,
                        field.inner,
                        HASH_DELETE,
                        ptr::null_mut::<c_void>(),
                    );
                }
                if zset_exists {
                    let mut deleted: c_int = 0;
                    zset_rem(self.zset.0, field.inner, &mut deleted);
                    zrem += deleted;
                }
            }
        }
        // As `HDEL` and `ZREM` announce: only when they removed something.
        // (Neither key empties here — the owner's etag counter record stays
        // once written — so the `del` they would then announce never comes
        // up.)
        if hdel > 0 {
            self.changed(NotifyEvent::HASH, "hdel", 0);
        }
        if zrem > 0 {
            self.changed(NotifyEvent::ZSET, "zrem", 1);
        }
        let mut args: Vec<&RedisString> = vec![self.names[0]];
        args.extend(&strings);
        self.replicate("HDEL", &args);
        args[0] = self.names[1];
        self.replicate("ZREM", &args);
        Ok(())
    }

    fn answer(&self) -> Result<Option<Vec<u8>>> {
        let key = Key::open(self.ctx, self.names[2], false);
        if key.kind() != raw::KeyType::String {
            return Ok(None);
        }
        let mut len = 0;
        let p = raw::string_dma(key.0, &mut len, raw::KeyMode::READ);
        if p.is_null() {
            return Ok(None);
        }
        // SAFETY: Redis gave `len` readable bytes at `p`, valid while the key
        // is open; they are copied before it closes.
        Ok(Some(
            unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) }.to_vec(),
        ))
    }

    fn keep_answer(&self, answer: &[u8]) -> Result<()> {
        let key = Key::open(self.ctx, self.names[2], true);
        let value = self.string(answer);
        if raw::string_set(key.0, value.inner) != raw::Status::Ok
            || raw::set_expire(key.0, MARKER_MS) != raw::Status::Ok
        {
            return Err(wrong_type("answer marker"));
        }
        // Replicas and the append-only file get the absolute time, as
        // Redis propagates a client's `SET … PX`.
        // SAFETY: the function table is filled once when the module loads.
        let now = unsafe { raw::RedisModule_Milliseconds }.map_or(0, |f| unsafe { f() });
        let (pxat, at) = (
            self.string(b"PXAT"),
            self.string((now + MARKER_MS).to_string().as_bytes()),
        );
        self.replicate("SET", &[self.names[2], &value, &pxat, &at]);
        self.changed(NotifyEvent::STRING, "set", 2);
        self.changed(NotifyEvent::GENERIC, "expire", 2);
        Ok(())
    }
}
