//! Shared by the fuzz targets: one tokio runtime per process and fresh
//! redb stores in temporary directories (on tmpfs where there is one).

#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use wasm_state::store::{ManualClock, RedbOptions, StateError, Store, StoreConfig};

/// Start of fuzz time: 2026-01-01T00:00:00Z in ms (as the conformance tests).
pub const T0: u64 = 1_767_225_600_000;

/// A current-thread runtime, created once per process.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// A fresh, empty store; keep the guard alive as long as the store.
pub struct Fresh {
    /// The store (no background sweeper, non-durable commits).
    pub store: Store,
    /// Its clock, standing at [`T0`].
    pub clock: ManualClock,
    /// Keeps the database directory alive (dropped last).
    pub dir: tempfile::TempDir,
}

/// A new store in a new temporary directory.
pub fn fresh() -> Fresh {
    let clock = ManualClock::new(T0);
    let config = StoreConfig {
        clock: Arc::new(clock.clone()),
        sweep_interval: None,
        redb: RedbOptions {
            durable: false,
            cache_bytes: 4 << 20,
            ..RedbOptions::default()
        },
        ..StoreConfig::default()
    };
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("wasm-state-fuzz")
            .tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("temporary directory");
    let store = Store::open(dir.path().join("state.redb"), config).expect("open store");
    Fresh { store, clock, dir }
}

/// An error is fine unless it says the engine has a bug or a damaged
/// database: `internal` is never a right answer to any input.
pub fn check_err(what: &str, e: &StateError) {
    if let StateError::Internal(m) = e.root() {
        panic!("{what}: internal error {m:?} (from {e:?})");
    }
}

/// [`check_err`] on a result.
pub fn ok_or_typed<T>(what: &str, r: &Result<T, StateError>) {
    if let Err(e) = r {
        check_err(what, e);
    }
}

/// A store for one input: by default one store per process (opening a
/// redb file costs more than most inputs), each input using scopes of
/// its own ([`unique`]) and wiping them after ([`wipe`]); with
/// `FUZZ_FRESH_STORE=1` a new store per input (to check that a crash
/// reproduces on its own).
pub enum InputStore {
    /// A store of this input's own.
    Own(Fresh),
    /// The process's store.
    Shared(&'static Fresh),
}

impl std::ops::Deref for InputStore {
    type Target = Fresh;
    fn deref(&self) -> &Fresh {
        match self {
            InputStore::Own(f) => f,
            InputStore::Shared(f) => f,
        }
    }
}

/// The store for this input, its clock set back to [`T0`].
pub fn input_store() -> InputStore {
    static SHARED: OnceLock<Fresh> = OnceLock::new();
    let s = if std::env::var_os("FUZZ_FRESH_STORE").is_some_and(|v| v == "1") {
        InputStore::Own(fresh())
    } else {
        InputStore::Shared(SHARED.get_or_init(fresh))
    };
    s.clock.set(T0);
    s
}

/// A name no other input of this process uses.
pub fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{n}")
}

/// Delete an instance (with its sessions) and every key of an account.
pub async fn wipe(store: &Store, instance: Option<&str>, account: Option<&str>) {
    if let Some(i) = instance {
        let r = store.destroy_instance(i).await;
        ok_or_typed("destroy-instance", &r);
    }
    if let Some(a) = account {
        let h = store.account(a).expect("account");
        for _ in 0..1000 {
            let page = match h.keys(wasm_state::store::KeyListing::default()).await {
                Ok(p) => p,
                Err(e) => {
                    check_err("keys", &e);
                    return;
                }
            };
            if page.keys.is_empty() {
                return;
            }
            for chunk in page.keys.chunks(100) {
                let keys: Vec<&str> = chunk.iter().map(String::as_str).collect();
                let r = h.delete_many(&keys).await;
                ok_or_typed("delete-many", &r);
            }
        }
    }
}
