//! The conformance suite on the Redis engine: a real `redis-server` on
//! loopback (no persistence), a fresh key namespace per test.

mod support {
    pub mod redis_server;
}

mod backend {
    use std::sync::Arc;

    use wasm_state::store::redis::RedisEngine;
    use wasm_state::store::{Store, StoreConfig};

    use crate::support::redis_server;

    /// Other hosts write to the same Redis without telling this one: no
    /// read stamps.
    pub const VOUCHES: bool = false;

    /// The namespace of a store (reopening uses the same).
    pub struct Guard(String);

    fn open(url: &str, config: StoreConfig) -> Store {
        let engine = RedisEngine::lazy(url, config.clock.clone(), Arc::new(config.limits.clone()))
            .expect("redis engine");
        Store::with_engine(Box::new(engine), config)
    }

    /// A fresh store: a new namespace on the shared server.
    pub fn fresh(config: StoreConfig) -> (Store, Guard) {
        let url = redis_server::shared().url();
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
}

mod conformance;
