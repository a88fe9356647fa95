//! The conformance suite: behaviour every backend must show, written against
//! the [`Store`] API only. A test binary includes this module after defining
//! `crate::backend` (see `redb_conformance.rs`, `redis_conformance.rs`), so a
//! new backend runs the same cases unchanged by adding its own binary. The
//! backend module provides `fresh`, `reopen`, and one hook for the only
//! engine-specific facts the cases need: `never_issued(etag)`, an etag of the
//! engine's own shape that it has not issued (yet), and `VOUCHES`, whether
//! the engine gives read stamps.

#![allow(dead_code)]

pub mod background;
pub mod etags;
pub mod golden_lists;
pub mod golden_maps;
pub mod golden_values;
pub mod input;
pub mod limits;
pub mod model;
pub mod persistence;
pub mod scopes;
pub mod stamps;
pub mod transactions;
pub mod ttl;
pub mod watch;
pub mod wrong_type;

use std::time::Duration;

use wasm_state::store::{Limits, ManualClock, ScopeHandle, Store, StoreConfig};

/// Start of test time: 2026-01-01T00:00:00Z in ms.
pub const T0: u64 = 1_767_225_600_000;

/// A store under test with a clock the test moves.
pub struct Harness {
    /// The store.
    pub store: Store,
    /// Its clock.
    pub clock: ManualClock,
    config: StoreConfig,
    guard: crate::backend::Guard,
}

impl Harness {
    /// A fresh empty store with default limits and no background sweeper.
    pub fn new() -> Harness {
        Harness::with_limits(Limits::default())
    }

    /// A fresh empty store with `limits`.
    pub fn with_limits(limits: Limits) -> Harness {
        Harness::with_config(|c| c.limits = limits)
    }

    /// A fresh empty store whose config `tweak` adjusts.
    pub fn with_config(tweak: impl FnOnce(&mut StoreConfig)) -> Harness {
        let clock = ManualClock::new(T0);
        let mut config = StoreConfig {
            clock: std::sync::Arc::new(clock.clone()),
            sweep_interval: None,
            ..StoreConfig::default()
        };
        tweak(&mut config);
        let (store, guard) = crate::backend::fresh(config.clone());
        Harness {
            store,
            clock,
            config,
            guard,
        }
    }

    /// Close the store and open the same data again (same clock).
    pub fn reopen(self) -> Harness {
        let Harness {
            store,
            clock,
            config,
            guard,
        } = self;
        drop(store);
        let (store, guard) = crate::backend::reopen(guard, config.clone());
        Harness {
            store,
            clock,
            config,
            guard,
        }
    }

    /// Move time forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// The state of instance `name`.
    pub fn instance(&self, name: &str) -> ScopeHandle {
        self.store.instance(name).expect("valid instance name")
    }

    /// The state of account `name`.
    pub fn account(&self, name: &str) -> ScopeHandle {
        self.store.account(name).expect("valid account name")
    }
}

/// `b"..."` as a Vec.
pub fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Several byte strings.
pub fn bs(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| b(s)).collect()
}

/// Field/value pairs.
pub fn fv(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    pairs.iter().map(|(f, v)| (f.to_string(), b(v))).collect()
}
