//! # wasm-state's Redis module
//!
//! Loaded into `redis-server` (`--loadmodule libwasm_state_redis.so`, or
//! `loadmodule` in redis.conf), it adds one command, `wasmstate.commit`,
//! which runs a write of the Redis engine — the kv engine's Rust ops over
//! the owner's records — natively inside Redis instead of through the Lua
//! function library (`wasm_state::store::redis::native`). Hosts find it by
//! themselves (`COMMAND INFO`) and use it; without it they use the Lua
//! library, with the same records and answers.

#[cfg(panic = "abort")]
compile_error!(
    "the module catches panics so that none takes Redis down: build it with panic = \"unwind\""
);

mod keys;

use redis_module::raw::ModuleOptions;
use redis_module::{
    Context, RedisError, RedisResult, RedisString, RedisValue, Status, redis_module,
};
use wasm_state::store::redis::native;

/// `wasmstate.commit HASH ZSET MARKER FINGERPRINT ARGS…`.
fn commit(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() < 5 {
        return Err(RedisError::WrongArity);
    }
    // A host built from other sources would expect other semantics: it is
    // refused before anything runs, and falls back to its Lua library.
    let theirs = args[4].as_slice();
    if theirs != native::fingerprint().as_bytes() {
        return Err(RedisError::String(format!(
            "{} this module is wasm-state {}, the host is {}; load the module built with the host (nothing was written)",
            native::VERSION_MISMATCH,
            native::fingerprint(),
            String::from_utf8_lossy(theirs)
        )));
    }
    // Three distinct keys: two handles on one key could free what the other
    // still points to.
    let (hash, zset, marker) = (args[1].as_slice(), args[2].as_slice(), args[3].as_slice());
    if hash == zset || hash == marker || zset == marker {
        return Err(RedisError::Str(
            "ERR wasmstate.commit takes three different keys: the owner's hash, its sorted set, the request's marker",
        ));
    }
    let bytes: Vec<&[u8]> = args[5..].iter().map(RedisString::as_slice).collect();
    // A panic must not take Redis down: it becomes an error answer (and,
    // as every write is buffered until the request succeeded, writes
    // nothing).
    let answer =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match keys::Keys::open(ctx, [&args[1], &args[2], &args[3]]) {
                Ok(keys) => native::run(&keys, &bytes),
                Err(e) => native::packed_error(&e),
            }
        }))
        .map_err(|_| {
            RedisError::Str(
                "ERR the wasm-state module failed unexpectedly (a bug: please report it); it writes only after every check and op succeeded, so a failure in them wrote nothing",
            )
        })?;
    // One bulk string (the answer packed as the marker keeps it): one value
    // for Redis to send and for the host to parse, where the answer's
    // nested arrays were a reply value per result field.
    Ok(RedisValue::StringBuffer(answer))
}

/// At load: keys opened for writing are not taken as modified when closed;
/// `keys.rs` signals the ones a command really changed (as the library's
/// commands do), so a client `WATCH`ing an owner's keys is disturbed only
/// by real changes.
fn init(ctx: &Context, _args: &[RedisString]) -> Status {
    ctx.set_module_options(ModuleOptions::NO_IMPLICIT_SIGNAL_MODIFIED);
    Status::Ok
}

redis_module! {
    name: "wasmstate",
    version: 1,
    // The module's allocations live only while a command runs: mimalloc,
    // not Redis's allocator and its per-allocation accounting (~5% of a
    // commit's Redis CPU, measured).
    allocator: (mimalloc::MiMalloc, mimalloc::MiMalloc),
    data_types: [],
    init: init,
    commands: [
        ["wasmstate.commit", commit, "write deny-oom", 1, 3, 1, ""],
    ],
}
