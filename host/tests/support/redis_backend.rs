//! The conformance suite's backend hooks for the Redis engine, shared by the
//! binaries that run it on Redis (`redis_conformance.rs`, without the
//! module; `redis_module_conformance.rs`, with it): each store gets a fresh
//! key namespace on a shared server.

#![allow(dead_code)]

use std::sync::Arc;

use wasm_state::store::redis::RedisEngine;
use wasm_state::store::{Store, StoreConfig};

use super::redis_server::RedisServer;

/// Other hosts write to the same Redis without telling this one: no read
/// stamps.
pub const VOUCHES: bool = false;

/// The namespace of a store (reopening uses the same).
pub struct Guard(String);

/// A store on `url`.
pub fn open(url: &str, config: StoreConfig) -> Store {
    let engine = RedisEngine::lazy(url, config.clock.clone(), Arc::new(config.limits.clone()))
        .expect("redis engine");
    Store::with_engine(Box::new(engine), config)
}

/// A fresh store: a new namespace on `server`.
pub fn fresh_on(server: &RedisServer, config: StoreConfig) -> (Store, Guard) {
    let url = server.url();
    (open(&url, config), Guard(url))
}

/// An etag of this engine's shape (8 hex digits of owner nonce, 16 of a
/// per-owner version) far above `real`, of the same owner: never issued.
pub fn never_issued(real: &str) -> String {
    let (nonce, version) = real.split_at(8);
    let version = u64::from_str_radix(version, 16).expect("redis etags end in 16 hex digits");
    format!("{nonce}{:016x}", version + 1_000_000)
}

/// The same namespace again (the old store has been dropped).
pub fn reopen(guard: Guard, config: StoreConfig) -> (Store, Guard) {
    (open(&guard.0, config), guard)
}
