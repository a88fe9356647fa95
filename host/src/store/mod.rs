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

mod clock;
pub mod cursor;
pub mod engine;
mod error;
mod fence;
mod glob;
mod handle;
mod instances;
pub mod kv;
mod limits;
pub mod query;
pub mod redis;
mod sessions;
mod sweeper;
mod types;
pub mod validate;
pub mod watch;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use clock::{Clock, ManualClock, SystemClock, deadline, expire_at};
pub use engine::Engine;
pub use error::{Result, StateError};
pub use fence::{FencePass, WriteFence};
pub use glob::Glob;
pub use handle::ScopeHandle;
pub use instances::InstanceInfo;
pub use kv::{Backend, KvEngine, RawRead, RawWrite, RedbBackend, RedbOptions, WriteJob};
pub use limits::{Limits, ReplyBudget};
pub use sweeper::SweepStats;
pub use types::*;
pub use watch::{Change, ChangeBatch, QueueOwner, WatchTarget};

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
    /// Where operations and commits are counted.
    pub metrics: Arc<crate::metrics::Metrics>,
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
            metrics: crate::metrics::Metrics::new(),
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
    engine: Box<dyn Engine>,
    clock: Arc<dyn Clock>,
    limits: Arc<Limits>,
    default_session_ttl: Duration,
    sweep_batch: usize,
    sweeper: std::sync::Mutex<Option<sweeper::Sweeper>>,
    /// Bumped after every write (watchers wait on it).
    changes: tokio::sync::watch::Sender<u64>,
    metrics: Arc<crate::metrics::Metrics>,
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
            .field("engine", &self.inner.engine.name())
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Open (or create) a redb database file.
    pub fn open(path: impl AsRef<Path>, config: StoreConfig) -> Result<Store> {
        let mut options = config.redb.clone();
        options.metrics = Some(config.metrics.clone());
        let backend = RedbBackend::open(path.as_ref(), options)?;
        Ok(Store::with_backend(Box::new(backend), config))
    }

    /// A store over any byte-level backend (the kv engine).
    pub fn with_backend(backend: Box<dyn Backend>, config: StoreConfig) -> Store {
        let engine = KvEngine::new(
            backend,
            config.clock.clone(),
            Arc::new(config.limits.clone()),
        );
        Store::with_engine(Box::new(engine), config)
    }

    /// `location` with any password in it replaced by `***` (for messages).
    pub fn redacted(location: &str) -> String {
        redis::conn_hide_password(location)
    }

    /// Is `location` a Redis store URL (`redis://`, `rediss://`,
    /// `redis+cluster://`, `rediss+cluster://`, `redis+sentinel://`,
    /// `rediss+sentinel://`)?
    pub fn is_redis_url(location: &str) -> bool {
        [
            "redis://",
            "rediss://",
            "redis+cluster://",
            "rediss+cluster://",
            "redis+sentinel://",
            "rediss+sentinel://",
        ]
        .iter()
        .any(|s| location.starts_with(s))
    }

    /// Open the store a URL names: `redis://…`, `rediss://…`,
    /// `redis+cluster://…` or `redis+sentinel://…` (see [`redis::RedisUrl`])
    /// for the Redis engine;
    /// anything else is a path to a redb file.
    pub async fn connect(location: &str, config: StoreConfig) -> Result<Store> {
        if location.contains("://") {
            let engine = redis::RedisEngine::connect(
                location,
                config.clock.clone(),
                Arc::new(config.limits.clone()),
            )
            .await?;
            Ok(Store::with_engine(Box::new(engine), config))
        } else {
            Store::open(location, config)
        }
    }

    /// A store over any engine (built with this config's clock and limits).
    pub fn with_engine(engine: Box<dyn Engine>, config: StoreConfig) -> Store {
        let store = Store {
            inner: Arc::new(Inner {
                engine,
                clock: config.clock,
                limits: Arc::new(config.limits),
                default_session_ttl: config.default_session_ttl,
                sweep_batch: config.sweep_batch.max(1),
                sweeper: std::sync::Mutex::new(None),
                changes: tokio::sync::watch::Sender::new(0),
                metrics: config.metrics,
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

    /// Where operations and commits are counted.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.inner.metrics
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The current time by the store's clock (Unix ms).
    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// The store's generation and clock, for reads a caller keeps: a value
    /// read after a stamp is still what a new read would return while
    /// later stamps show the same generation and the key has not expired
    /// (see [`Engine::read_generation`]). `None` when the engine cannot
    /// vouch (Redis: other hosts write without telling this one).
    pub fn read_stamp(&self) -> Option<ReadStamp> {
        let generation = self.inner.engine.read_generation()?;
        Some(ReadStamp {
            generation,
            now_ms: self.inner.clock.now_ms(),
        })
    }

    /// The engine's name (`redb`, `redis`).
    pub fn engine_name(&self) -> &'static str {
        self.inner.engine.name()
    }

    pub(crate) fn engine(&self) -> &dyn Engine {
        &*self.inner.engine
    }

    /// The state shared by every instance of `account`.
    pub fn account(&self, account: &str) -> Result<ScopeHandle> {
        check_name("account", account)?;
        Ok(ScopeHandle::new(
            self.clone(),
            Scope::Account(account.to_string()),
        ))
    }

    /// The private state of `instance`.
    pub fn instance(&self, instance: &str) -> Result<ScopeHandle> {
        check_name("instance", instance)?;
        Ok(ScopeHandle::new(
            self.clone(),
            Scope::Instance(instance.to_string()),
        ))
    }

    /// Bytes stored by an instance (with its sessions).
    pub async fn instance_usage(&self, instance: &str) -> Result<u64> {
        check_name("instance", instance)?;
        self.engine().instance_usage(instance).await
    }

    /// The last etag version issued, where one store-wide counter issues
    /// them (redb); `None` where etags carry a nonce per owner (Redis).
    /// An export carries it ([`crate::admin::transfer`]).
    pub async fn etag_floor(&self) -> Result<Option<u64>> {
        self.engine().etag_floor().await
    }

    /// Issue only etags newer than version `floor` from now on (an import
    /// of a copy: a client's etag from the source never matches here).
    pub async fn raise_etag_floor(&self, floor: u64) -> Result<()> {
        self.engine().raise_etag_floor(floor).await
    }
}

/// Check a name (account, instance) that becomes part of a scope.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 {
        return Err(StateError::invalid(format!(
            "{what} name must be 1 to 255 bytes, got {}",
            name.len()
        )));
    }
    Ok(())
}
