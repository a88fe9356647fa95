//! The conformance suite on the Redis engine: a real `redis-server` on
//! loopback (no persistence), a fresh key namespace per test.

mod support {
    pub mod redis_backend;
    pub mod redis_server;
}

mod backend {
    pub use crate::support::redis_backend::{Guard, VOUCHES, never_issued, reopen};
    use crate::support::{redis_backend, redis_server};
    use wasm_state::store::{Store, StoreConfig};

    /// A fresh store: a new namespace on the shared server.
    pub fn fresh(config: StoreConfig) -> (Store, Guard) {
        redis_backend::fresh_on(redis_server::shared(), config)
    }
}

mod conformance;
