//! # wasm-state's Redis module
//!
//! Loaded into `redis-server` (`--loadmodule libwasm_state_redis.so`, or
//! `loadmodule` in redis.conf), it adds one command, `wasmstate.commit`,
//! which runs a write of the Redis engine — the kv engine's Rust ops over
//! the owner's records — natively inside Redis instead of through the Lua
//! function library (`wasm_state::store::redis::native`). Hosts find it by
//! themselves (`COMMAND INFO`) and use it; without it they use the Lua
//! library, with the same records and answers.

mod keys;

use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue, redis_module};
use wasm_state::store::redis::native;

/// The reply to the client: redis-rs values as module values.
fn reply_of(v: redis::Value) -> RedisValue {
    match v {
        redis::Value::Nil => RedisValue::Null,
        redis::Value::Int(n) => RedisValue::Integer(n),
        redis::Value::BulkString(b) => RedisValue::StringBuffer(b),
        redis::Value::Array(items) => RedisValue::Array(items.into_iter().map(reply_of).collect()),
        other => RedisValue::StringBuffer(format!("{other:?}").into_bytes()),
    }
}

/// `wasmstate.commit HASH ZSET MARKER ARGS…`.
fn commit(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() < 4 {
        return Err(RedisError::WrongArity);
    }
    let bytes: Vec<&[u8]> = args[4..].iter().map(RedisString::as_slice).collect();
    // A panic must not take Redis down: it becomes an error answer (and,
    // as every write is buffered until the request succeeded, writes
    // nothing).
    let answer =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match keys::Keys::open(ctx, [&args[1], &args[2], &args[3]]) {
                Ok(keys) => native::run(&keys, &bytes),
                Err(e) => native::error_answer(&e),
            }
        }))
        .map_err(|_| {
            RedisError::Str("ERR the wasm-state module failed unexpectedly; nothing was written")
        })?;
    Ok(reply_of(answer))
}

redis_module! {
    name: "wasmstate",
    version: 1,
    // The module's allocations live only while a command runs: mimalloc,
    // not Redis's allocator (whose per-allocation accounting was a sixth
    // of a commit's CPU, measured).
    allocator: (mimalloc::MiMalloc, mimalloc::MiMalloc),
    data_types: [],
    commands: [
        ["wasmstate.commit", commit, "write deny-oom", 1, 3, 1, ""],
    ],
}
