//! The conformance suite on the embedded redb backend: real database files
//! in a temporary directory.

mod backend {
    use tempfile::TempDir;
    use wasm_state::store::{Store, StoreConfig};

    /// The embedded file has one writer, this process: it vouches for
    /// kept reads.
    pub const VOUCHES: bool = true;

    /// Keeps the database directory alive.
    pub struct Guard(TempDir);

    /// A fresh store in a new temporary directory.
    pub fn fresh(config: StoreConfig) -> (Store, Guard) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path().join("state.redb"), config).expect("open store");
        (store, Guard(dir))
    }

    /// An etag of this engine's shape (16 hex digits of a db-wide version)
    /// far above `real`: never issued.
    pub fn never_issued(real: &str) -> String {
        let version = u64::from_str_radix(real, 16).expect("redb etags are 16 hex digits");
        format!("{:016x}", version + 1_000_000)
    }

    /// Reopen the same file (the old store has been dropped).
    pub fn reopen(guard: Guard, config: StoreConfig) -> (Store, Guard) {
        let store = Store::open(guard.0.path().join("state.redb"), config).expect("reopen store");
        (store, guard)
    }
}

mod conformance;
