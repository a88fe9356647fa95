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

use std::mem::ManuallyDrop;
use std::os::raw::c_int;

use redis_module::raw::ModuleOptions;
use redis_module::{
    Context, RedisError, RedisResult, RedisString, RedisValue, Status, raw, redis_module,
};
use wasm_state::store::redis::native;

/// The command's name and flags (`write deny-oom`; keys: arguments 1 to 3).
const COMMAND: &std::ffi::CStr = c"wasmstate.commit";
const FLAGS: &std::ffi::CStr = c"write deny-oom";

/// What Redis calls for `wasmstate.commit`. The arguments are borrowed for
/// the call, not retained and freed one by one as `redis_module!`'s
/// wrapper does (~4 % of a `set`'s Redis instructions, measured).
extern "C" fn commit_command(
    ctx: *mut raw::RedisModuleCtx,
    argv: *mut *mut raw::RedisModuleString,
    argc: c_int,
) -> c_int {
    let context = Context::new(ctx);
    let argv: &[*mut raw::RedisModuleString] = match usize::try_from(argc) {
        // SAFETY: Redis passes `argc` strings that live until the command
        // returns; they stay Redis's (never freed here: `ManuallyDrop`).
        Ok(n) if !argv.is_null() => unsafe { std::slice::from_raw_parts(argv, n) },
        _ => &[],
    };
    let args: Vec<ManuallyDrop<RedisString>> = argv
        .iter()
        .map(|&s| ManuallyDrop::new(RedisString::from_redis_module_string(ctx, s)))
        .collect();
    // A panic must not unwind into Redis (it would abort it): `commit`
    // catches its own, and an error text a reply cannot carry
    // (redis-module-rs' `Context::reply` panics on one) becomes this fixed
    // one.
    let replied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        context.reply(commit(&context, &args))
    }));
    match replied {
        Ok(status) => status as c_int,
        Err(_) => {
            // SAFETY: the function table is filled when the module loads;
            // a static C string.
            if let Some(reply_error) = unsafe { raw::RedisModule_ReplyWithError } {
                unsafe {
                    reply_error(ctx, c"ERR the wasm-state module could not answer (a bug: please report it); nothing was written".as_ptr())
                };
            }
            raw::REDISMODULE_OK as c_int
        }
    }
}

/// `wasmstate.commit HASH ZSET MARKER FINGERPRINT ARGS` (`ARGS`: the
/// write's arguments packed into one, `native::pack_args`).
fn commit(ctx: &Context, args: &[ManuallyDrop<RedisString>]) -> RedisResult {
    if args.len() < 5 {
        return Err(RedisError::WrongArity);
    }
    // A host built from other sources would expect other semantics: it is
    // refused before anything runs, and falls back to its Lua library.
    let theirs = args[4].as_slice();
    if theirs != native::fingerprint().as_bytes() {
        // Quoted escaped: an error reply carries ASCII only (any other
        // character would be cut to a byte, a NUL among them).
        return Err(RedisError::String(format!(
            "{} this module is wasm-state {}, the host is {}; load the module built with the host (nothing was written)",
            native::VERSION_MISMATCH,
            native::fingerprint(),
            theirs.escape_ascii()
        )));
    }
    // Checked after the fingerprint, so that a host of another build hears
    // of the mismatch whatever form of arguments it sends.
    if args.len() != 6 {
        return Err(RedisError::WrongArity);
    }
    // Three distinct keys: two handles on one key could free what the other
    // still points to.
    let (hash, zset, marker) = (args[1].as_slice(), args[2].as_slice(), args[3].as_slice());
    if hash == zset || hash == marker || zset == marker {
        return Err(RedisError::Str(
            "ERR wasmstate.commit takes three different keys: the owner's hash, its sorted set, the request's marker",
        ));
    }
    let Some(bytes) = native::unpack_args(args[5].as_slice()) else {
        return Err(RedisError::Str(
            "ERR wasmstate.commit takes the write's arguments packed into one (a MessagePack array of binary strings); nothing was written",
        ));
    };
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
/// by real changes. Then the command is created.
fn init(ctx: &Context, _args: &[RedisString]) -> Status {
    ctx.set_module_options(ModuleOptions::NO_IMPLICIT_SIGNAL_MODIFIED);
    // SAFETY: the function table is filled before `init` runs; the name and
    // flags are static C strings; the handler lives as long as the module.
    let created = unsafe { raw::RedisModule_CreateCommand }.is_some_and(|create| unsafe {
        create(
            ctx.ctx,
            COMMAND.as_ptr(),
            Some(commit_command),
            FLAGS.as_ptr(),
            1,
            3,
            1,
        ) == raw::REDISMODULE_OK as c_int
    });
    if created {
        Status::Ok
    } else {
        ctx.log_warning("wasm-state: the command wasmstate.commit could not be created");
        Status::Err
    }
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
}
