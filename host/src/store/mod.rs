//! The state engine: scopes, values, maps, lists, counters, TTL, etags and
//! transactions over a pluggable [`Backend`] (redb by default). It knows
//! nothing of wasm; the bindings, HTTP API and CLI all call it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wasm_state::store::StateError> {
//! use wasm_state::store::{Store, StoreConfig};
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path().join("state.redb"), StoreConfig::default())?;
//! let customers = store.instance("shop")?;
//! customers.map_set("customers", vec![("+4412345".into(), br#"{"name":"Ada"}"#.to_vec())]).await?;
//! assert_eq!(customers.map_get("customers", "+4412345").await?, Some(br#"{"name":"Ada"}"#.to_vec()));
//! # Ok(()) }
//! ```

pub mod backend;
mod clock;
mod error;
mod glob;
mod handle;
mod instances;
mod job;
pub mod layout;
mod limits;
pub mod meta;
pub mod ops;
mod sessions;
mod sweeper;
mod types;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use backend::redb::{RedbBackend, RedbOptions};
pub use backend::{Backend, RawRead, RawWrite, WriteJob};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Result, StateError};
pub use glob::Glob;
pub use handle::ScopeHandle;
pub use instances::InstanceInfo;
pub use limits::Limits;
pub use sweeper::SweepStats;
pub use types::*;

use job::Job;
use ops::cx::WriteCx;

/// How a [`Store`] behaves.
#[derive(Clone)]
pub struct StoreConfig {
    /// Request and quota limits.
    pub limits: Limits,
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
    /// TTL of a session created without one (default 7 days).
    pub default_session_ttl: Duration,
    /// How often the background sweeper frees expired keys and sessions;
    /// `None` = no background sweeper (call [`Store::sweep`]).
    pub sweep_interval: Option<Duration>,
    /// Most expired keys or sessions one sweep step frees.
    pub sweep_batch: usize,
    /// redb options (used by [`Store::open`]).
    pub redb: RedbOptions,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            limits: Limits::default(),
            clock: Arc::new(SystemClock),
            default_session_ttl: Duration::from_secs(604_800),
            sweep_interval: Some(Duration::from_secs(1)),
            sweep_batch: 512,
            redb: RedbOptions::default(),
        }
    }
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("limits", &self.limits)
            .field("default_session_ttl", &self.default_session_ttl)
            .field("sweep_interval", &self.sweep_interval)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    backend: Box<dyn Backend>,
    clock: Arc<dyn Clock>,
    limits: Arc<Limits>,
    default_session_ttl: Duration,
    sweep_batch: usize,
    sweeper: std::sync::Mutex<Option<sweeper::Sweeper>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(s) = self.sweeper.get_mut().ok().and_then(Option::take) {
            s.stop();
        }
    }
}

/// A handle on the state engine; cheap to clone, shared by all callers.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Open (or create) a redb database file.
    pub fn open(path: impl AsRef<Path>, config: StoreConfig) -> Result<Store> {
        let backend = RedbBackend::open(path.as_ref(), config.redb.clone())?;
        Ok(Store::with_backend(Box::new(backend), config))
    }

    /// A store over any backend.
    pub fn with_backend(backend: Box<dyn Backend>, config: StoreConfig) -> Store {
        let store = Store {
            inner: Arc::new(Inner {
                backend,
                clock: config.clock,
                limits: Arc::new(config.limits),
                default_session_ttl: config.default_session_ttl,
                sweep_batch: config.sweep_batch.max(1),
                sweeper: std::sync::Mutex::new(None),
            }),
        };
        if let Some(every) = config.sweep_interval {
            let s = sweeper::Sweeper::start(Arc::downgrade(&store.inner), every);
            if let Ok(mut slot) = store.inner.sweeper.lock() {
                *slot = Some(s);
            }
        }
        store
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The current time by the store's clock (Unix ms).
    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// The state shared by every instance of `account`.
    pub fn account(&self, account: &str) -> Result<ScopeHandle> {
        layout::check_name("account", account)?;
        Ok(ScopeHandle::new(
            self.clone(),
            Scope::Account(account.to_string()),
        ))
    }

    /// The private state of `instance`.
    pub fn instance(&self, instance: &str) -> Result<ScopeHandle> {
        layout::check_name("instance", instance)?;
        Ok(ScopeHandle::new(
            self.clone(),
            Scope::Instance(instance.to_string()),
        ))
    }

    /// Bytes stored by an instance (with its sessions).
    pub async fn instance_usage(&self, instance: &str) -> Result<u64> {
        let key = layout::usage_key(&layout::instance_owner(instance));
        self.read(move |r, _| Ok(r.get(&key)?.and_then(|b| layout::be_u64(&b)).unwrap_or(0)))
    }

    /// Run `work` on the writer as one atomic request.
    pub(crate) async fn write<R: Send + 'static>(
        &self,
        work: impl FnOnce(&mut WriteCx) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let (job, rx) = Job::new(work, self.inner.clock.clone(), self.inner.limits.clone());
        self.inner.backend.submit(job);
        rx.await
            .unwrap_or_else(|_| Err(StateError::Unavailable("the store's writer stopped".into())))
    }

    /// Run a short read on a fresh snapshot, inline.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&dyn RawRead, u64) -> Result<R>) -> Result<R> {
        let snap = self.inner.backend.snapshot()?;
        f(&*snap, self.inner.clock.now_ms())
    }

    /// Run a long read (a scan) on a blocking thread.
    pub(crate) async fn read_blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn RawRead, u64) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read(f))
            .await
            .unwrap_or_else(|e| Err(StateError::Internal(format!("read task failed: {e}"))))
    }
}
