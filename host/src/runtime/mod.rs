//! The runtime: components deployed as named instances and run with state.
//!
//! A [`Host`] owns a wasmtime engine (epoch interruption, optional pooling
//! allocator), a linker with WASI 0.2 and the state imports, the state
//! [`Store`], and the deployed instances. Each deployment is compiled once
//! and kept as an `InstancePre`; every call or run instantiates it afresh in
//! a new wasmtime store bounded by an epoch deadline and a memory limit, so a
//! guest that loops or allocates without end is stopped with a clear error
//! while the host goes on serving others.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wasm_state::runtime::HostError> {
//! use wasm_state::runtime::{Host, HostConfig};
//! use wasmtime::component::Val;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let host = Host::open(HostConfig::new(dir.path()))?;
//! // Any component works; this one is WAT text exporting `add`.
//! let adder = r#"(component
//!     (core module $m (func (export "add") (param i32 i32) (result i32)
//!         local.get 0 local.get 1 i32.add))
//!     (core instance $i (instantiate $m))
//!     (func (export "add") (param "a" u32) (param "b" u32) (result u32)
//!         (canon lift (core func $i "add"))))"#;
//! host.deploy("adder", adder.as_bytes()).await?;
//! assert_eq!(host.call("adder", "add", &[Val::U32(2), Val::U32(3)]).await?, [Val::U32(5)]);
//! host.destroy("adder").await?;
//! # Ok(()) }
//! ```

pub(crate) mod args;
pub mod cache;
mod ctx;
pub mod datadir;
mod epoch;
mod error;
pub mod watchers;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use wasmtime::component::{Component, InstancePre, Linker, ResourceTable, Val};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Trap};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

pub use cache::{CacheOutcome, ComponentCache};
pub use ctx::{Ctx, MemoryLimiter};
pub use error::HostError;

use crate::bindings::{self, StateCtx};
use crate::keyvalue::{self, BucketMap, Keyvalue};
use crate::store::{InstanceInfo, Store, StoreConfig, WatchTarget, WriteFence};
pub use watchers::{WatchScope, WatcherStatus};

/// How long a destroy waits for the writes its instance's calls have under
/// way (each is bounded by the store's own timeout: at most 60 s on Redis,
/// a lost answer's retry included).
const DESTROY_DRAIN: Duration = Duration::from_secs(120);

/// How long a call runs before it starts yielding at every epoch tick.
const YIELD_AFTER: Duration = Duration::from_millis(20);

/// Name of the environment variable through which a command guest learns the
/// session it was started with (`run --session ID`).
pub const SESSION_ENV: &str = "WASM_STATE_SESSION";

/// Bounds on every guest call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestLimits {
    /// Wall-clock time a call may run (default 10 s).
    pub deadline: Duration,
    /// Bytes a guest's linear memories may grow to, all of them together
    /// (default 64 MiB).
    pub memory_bytes: usize,
}

impl Default for GuestLimits {
    fn default() -> Self {
        GuestLimits {
            deadline: Duration::from_secs(10),
            memory_bytes: 64 << 20,
        }
    }
}

/// How a [`Host`] is set up.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Directory of the state database (`state.redb`); created if missing.
    /// Unused when `store_url` names a Redis store.
    pub data_dir: PathBuf,
    /// Keep the state in Redis instead: `redis://HOST:PORT[/DB]`,
    /// `rediss://…`, `redis+cluster://HOST:PORT,…` or
    /// `redis+sentinel://HOST:PORT,…/MASTER` (see
    /// [`RedisUrl`](crate::store::redis::RedisUrl)); open with
    /// [`Host::connect`]. `None`: the embedded redb file.
    pub store_url: Option<String>,
    /// Account that deployed instances belong to (default `default`).
    pub account: String,
    /// State engine settings.
    pub store: StoreConfig,
    /// Per-call deadline and memory limit.
    pub guest: GuestLimits,
    /// Use the pooling allocator with room for this many concurrent
    /// instances (faster instantiation; reserves address space up front).
    pub pooling: Option<u32>,
    /// `wasi:keyvalue` bucket names the operator mapped to scopes (beyond
    /// the built-in `""`, `default`, `account` and `session:<id>`).
    pub keyvalue_buckets: BucketMap,
    /// What each watcher (by instance name) watches; a watcher not named
    /// here watches its instance scope.
    pub watch: HashMap<String, Vec<WatchScope>>,
    /// Where compiled components are cached (default `DATA_DIR/cache`);
    /// `None` compiles every deploy.
    pub component_cache: Option<PathBuf>,
}

impl HostConfig {
    /// Defaults with state in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        HostConfig {
            component_cache: Some(data_dir.join("cache")),
            data_dir,
            store_url: None,
            account: "default".into(),
            store: StoreConfig::default(),
            guest: GuestLimits::default(),
            pooling: None,
            keyvalue_buckets: BucketMap::default(),
            watch: HashMap::new(),
        }
    }
}

/// How to run a command component.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Arguments after the program name.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// A session of the instance to hand to the guest (as `WASM_STATE_SESSION`).
    pub session: Option<String>,
    /// Capture stdout/stderr instead of inheriting the host's.
    pub capture: bool,
    /// What the guest reads from stdin: with `capture`, nothing if `None`;
    /// without, `None` inherits the host's stdin and `Some` replaces it.
    pub stdin: Option<Vec<u8>>,
    /// A deadline for this run instead of the host's.
    pub deadline: Option<Duration>,
    /// A lower memory limit in bytes for this run than the host's (more
    /// than the host's is [`HostError::InvalidRequest`]: the host's limit
    /// sizes its pool's slots).
    pub memory_bytes: Option<usize>,
}

/// An export's parameter types and result types.
pub type ExportTypes = (
    Vec<wasmtime::component::Type>,
    Vec<wasmtime::component::Type>,
);

/// What a command run ended with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOutput {
    /// Exit code (0 = success).
    pub exit_code: i32,
    /// Captured stdout (empty when inherited).
    pub stdout: Vec<u8>,
    /// Captured stderr (empty when inherited).
    pub stderr: Vec<u8>,
}

/// A component deployed as a named instance (held by whoever serves it, so
/// a redeploy does not pull it from under requests in flight).
pub struct Deployment {
    name: String,
    account: String,
    pre: InstancePre<Ctx>,
    /// Its `wasi:keyvalue/watcher` export, if it has one.
    watcher: Option<watchers::WatcherExport>,
    /// Its delivery tasks (a watcher), stopped when it goes.
    deliveries: std::sync::Mutex<Option<watchers::Deliveries>>,
    /// The write fence of this life of the instance (shared with the
    /// deployments it replaced and will be replaced by), closed by a
    /// destroy.
    fence: Arc<WriteFence>,
}

impl Deployment {
    /// The instance name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its delivery tasks, taken out (dropping them stops them).
    fn take_deliveries(&self) -> Option<watchers::Deliveries> {
        self.deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Stop its delivery tasks and wait until they have stopped.
    async fn stop_deliveries(&self) {
        if let Some(d) = self.take_deliveries() {
            d.stop().await;
        }
    }

    /// The pre-instantiated component.
    pub fn pre(&self) -> &InstancePre<Ctx> {
        &self.pre
    }
}

struct Inner {
    engine: Engine,
    linker: Linker<Ctx>,
    store: Store,
    config: HostConfig,
    keyvalue: Arc<Keyvalue>,
    deployments: RwLock<HashMap<String, Arc<Deployment>>>,
    /// The write fence of each instance's current life, while a deployment
    /// or a call still holds it.
    fences: std::sync::Mutex<HashMap<String, std::sync::Weak<WriteFence>>>,
    /// Installs and destroys of one name take turns.
    turns: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    _ticker: epoch::EpochTicker,
}

/// The embeddable wasm-state host; cheap to clone.
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("data_dir", &self.inner.config.data_dir)
            .finish_non_exhaustive()
    }
}

/// A first line for a component that does not compile, from its header.
fn what_is_wrong(wasm: &[u8]) -> &'static str {
    match (wasm.get(..4), wasm.get(4..8)) {
        (Some(b"\0asm"), Some([1, 0, 0, 0])) => {
            "this is a core wasm module, not a component; build it for wasm32-wasip2 (or wrap it with wasm-tools component new): "
        }
        (Some(b"\0asm"), _) => "",
        _ => "this is neither a .wasm binary nor WAT text: ",
    }
}

fn wasmtime_err(e: impl std::fmt::Display) -> HostError {
    HostError::Wasmtime(e.to_string())
}

impl Host {
    /// Open a host on the store `config` names: the redb file in
    /// `config.data_dir`, or the Redis store of `config.store_url`.
    pub async fn connect(config: HostConfig) -> Result<Host, HostError> {
        match &config.store_url {
            Some(url) => {
                let store = Store::connect(url, config.store.clone()).await?;
                Host::with_store(store, config)
            }
            None => Host::open(config),
        }
    }

    /// Open a host with its state database in `config.data_dir` (for a
    /// Redis store, use [`Host::connect`]).
    pub fn open(config: HostConfig) -> Result<Host, HostError> {
        if let Some(url) = &config.store_url {
            return Err(HostError::State(crate::store::StateError::invalid(
                format!("the store {url} is opened with Host::connect (async), not Host::open"),
            )));
        }
        datadir::prepare(&config.data_dir)?;
        let file = config.data_dir.join("state.redb");
        let created = !file.exists();
        let store = Store::open(&file, config.store.clone())?;
        datadir::secure_file(&file, created)?;
        Host::with_store(store, config)
    }

    /// A host over an already open state store (`config.data_dir` unused).
    pub fn with_store(store: Store, config: HostConfig) -> Result<Host, HostError> {
        let mut wc = Config::new();
        wc.epoch_interruption(true);
        if let Some(n) = config.pooling {
            let times = |k: u32| {
                n.checked_mul(k).ok_or_else(|| {
                    HostError::Wasmtime(format!(
                        "a pool of {n} instances is more than this host can count; use fewer"
                    ))
                })
            };
            let mut p = PoolingAllocationConfig::new();
            p.total_component_instances(n)
                .total_core_instances(times(4)?)
                .total_memories(times(2)?)
                .total_tables(times(4)?)
                // One component cannot take every slot of the pool.
                .max_core_instances_per_component((ctx::MAX_INSTANCES as u32).min(times(4)?))
                .max_memories_per_component((ctx::MAX_MEMORIES as u32).min(times(2)?))
                .max_tables_per_component((ctx::MAX_TABLES as u32).min(times(4)?))
                .max_memory_size(config.guest.memory_bytes)
                // Reset the first pages of a reused slot with memset (and,
                // where the kernel has PAGEMAP_SCAN, only the pages that
                // were touched) instead of madvise + page faults, and batch
                // the rest: each madvise of a slot costs a TLB shootdown
                // on every core (docs/benchmarks.md).
                .linear_memory_keep_resident(1 << 20)
                .table_keep_resident(64 << 10)
                .pagemap_scan(wasmtime::Enabled::Auto)
                .decommit_batch_size(16);
            wc.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
        }
        let engine = Engine::new(&wc).map_err(wasmtime_err)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wasmtime_err)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(wasmtime_err)?;
        bindings::add_to_linker(&mut linker).map_err(wasmtime_err)?;
        keyvalue::add_to_linker(&mut linker).map_err(wasmtime_err)?;
        let ticker = epoch::EpochTicker::start(engine.clone()).map_err(|source| HostError::Io {
            what: "cannot start the epoch thread".into(),
            source,
        })?;
        Ok(Host {
            inner: Arc::new(Inner {
                engine,
                linker,
                store,
                keyvalue: Arc::new(Keyvalue::new(config.keyvalue_buckets.clone())),
                config,
                deployments: RwLock::new(HashMap::new()),
                fences: std::sync::Mutex::default(),
                turns: std::sync::Mutex::default(),
                _ticker: ticker,
            }),
        })
    }

    /// The state store, for host-side reads and admin.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// How many instances can run at once: the pooling allocator's slots, or
    /// (on-demand allocation) a large number.
    pub fn max_concurrent_instances(&self) -> u32 {
        self.inner.config.pooling.unwrap_or(4096)
    }

    /// The deadline and memory limit of every call.
    pub fn guest_limits(&self) -> GuestLimits {
        self.inner.config.guest
    }

    /// The account deployed instances belong to.
    pub fn account(&self) -> &str {
        &self.inner.config.account
    }

    /// The data directory (the redb file, the component cache, the admin
    /// socket).
    pub fn data_dir(&self) -> &Path {
        &self.inner.config.data_dir
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Deploy `wasm` (a component binary or WAT text) as instance `name` of
    /// the host's account, replacing a deployment of the same name. The
    /// instance's state is kept across redeploys and restarts.
    pub async fn deploy(&self, name: &str, wasm: &[u8]) -> Result<InstanceInfo, HostError> {
        let account = self.inner.config.account.clone();
        self.deploy_as(name, &account, wasm).await
    }

    /// Deploy as an instance of `account`.
    pub async fn deploy_as(
        &self,
        name: &str,
        account: &str,
        wasm: &[u8],
    ) -> Result<InstanceInfo, HostError> {
        let pre = self.compile(wasm).await?;
        self.install(name, account, pre).await
    }

    /// Compile `wasm` (or load it from the component cache) and link it,
    /// without deploying it: a component that does not compile or link is
    /// refused here, before anything changes.
    pub async fn compile(&self, wasm: &[u8]) -> Result<InstancePre<Ctx>, HostError> {
        let engine = self.inner.engine.clone();
        let bytes = wasm.to_vec();
        let cache = self
            .inner
            .config
            .component_cache
            .clone()
            .map(cache::ComponentCache::new);
        let started = std::time::Instant::now();
        let (component, outcome) = tokio::task::spawn_blocking(move || match cache {
            Some(c) => c.load_or_compile(&engine, &bytes),
            None => Component::new(&engine, &bytes).map(|c| (c, cache::CacheOutcome::Compiled)),
        })
        .await
        .map_err(wasmtime_err)?
        .map_err(|e| HostError::InvalidComponent(format!("{}{e:#}", what_is_wrong(wasm))))?;
        tracing::debug!(
            ?outcome,
            ms = started.elapsed().as_millis() as u64,
            "component ready"
        );
        self.inner.linker.instantiate_pre(&component).map_err(|e| {
            HostError::InvalidComponent(format!(
                "{e:#}; a guest may import only WASI 0.2 (with wasi:http), wasm-state:state \
                 and wasi:keyvalue@0.2.0-draft or @0.2.0-draft2"
            ))
        })
    }

    /// The scopes a watcher deployed as `name` watches, as queue targets.
    fn watch_targets(&self, name: &str, account: &str) -> Vec<WatchTarget> {
        let scopes = self
            .inner
            .config
            .watch
            .get(name)
            .map_or(&[WatchScope::Instance][..], Vec::as_slice);
        watchers::targets(name, account, scopes)
    }

    /// Deploy a compiled component (see [`Host::compile`]) as instance
    /// `name` of `account`, replacing a deployment of the same name.
    pub async fn install(
        &self,
        name: &str,
        account: &str,
        pre: InstancePre<Ctx>,
    ) -> Result<InstanceInfo, HostError> {
        // One install or destroy of a name at a time: two at once would
        // each stop the old watcher and start their own, leaving two
        // deliverers of one queue.
        let _turn = self.turn_of(name).await;
        let info = self.inner.store.register_instance(name, account).await?;
        let watcher = watchers::WatcherExport::of(&pre);
        let targets = match &watcher {
            Some(_) => self.watch_targets(name, account),
            None => Vec::new(),
        };
        self.inner.store.watch(name, &targets).await?;
        // A deployment this one replaces stops delivering first: two
        // deliverers of one queue would repeat and reorder its changes.
        let replaced = self
            .inner
            .deployments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned();
        if let Some(old) = replaced {
            old.stop_deliveries().await;
        }
        let dep = Arc::new(Deployment {
            name: name.into(),
            account: account.into(),
            pre,
            watcher,
            deliveries: std::sync::Mutex::new(None),
            fence: self.fence_of(name),
        });
        if !targets.is_empty() {
            let d = watchers::start(self, &dep, &targets);
            *dep.deliveries.lock().unwrap_or_else(|p| p.into_inner()) = Some(d);
        }
        self.deployments_mut().insert(name.to_string(), dep);
        Ok(info)
    }

    /// Deploy the component file at `path`.
    pub async fn deploy_file(&self, name: &str, path: &Path) -> Result<InstanceInfo, HostError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| HostError::Io {
                what: format!("cannot read component {}", path.display()),
                source,
            })?;
        self.deploy(name, &bytes).await
    }

    /// Wait for `name`'s turn among the installs and destroys of that name.
    async fn turn_of(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut turns = self.inner.turns.lock().unwrap_or_else(|p| p.into_inner());
            // Names nobody waits on hold no lock.
            turns.retain(|_, l| Arc::strong_count(l) > 1);
            turns.entry(name.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// The write fence of `name`'s current life: the one its deployments
    /// and their calls hold, or a new one.
    fn fence_of(&self, name: &str) -> Arc<WriteFence> {
        let mut fences = self.inner.fences.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = fences.get(name).and_then(std::sync::Weak::upgrade) {
            return f;
        }
        fences.retain(|_, f| f.strong_count() > 0);
        let f = Arc::new(WriteFence::new(name));
        fences.insert(name.to_string(), Arc::downgrade(&f));
        f
    }

    /// Undeploy `name` and delete its state and sessions.
    ///
    /// Every call of the instance still running (an HTTP request, a
    /// watcher's delivery, a call of an earlier deployment or of one
    /// undeployed already) is refused its writes from now on
    /// (`unavailable`), and the writes already under way end before the
    /// state is deleted: nothing written by this life of the instance
    /// survives the destroy. A destroy that fails leaves the instance as it
    /// was, deployed again if it was.
    pub async fn destroy(&self, name: &str) -> Result<(), HostError> {
        let _turn = self.turn_of(name).await;
        let removed = self.deployments_mut().remove(name);
        let fence = self
            .inner
            .fences
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
            .and_then(|f| f.upgrade());
        // The fence closes and the writes under way end — the watcher's
        // too: stopping its task first would drop a write already sent
        // without waiting for it — then the watcher stops, then the state
        // goes. (A change the watcher handles meanwhile meets refused
        // writes; it is retried, and skipped only if the drain outlasts
        // its attempts.)
        if let Some(f) = &fence
            && !f.close(DESTROY_DRAIN).await
        {
            tracing::warn!(
                instance = name,
                writes = f.in_flight(),
                "writes of a destroyed instance still running after {DESTROY_DRAIN:?}; \
                 destroying its state anyway"
            );
        }
        if let Some(dep) = &removed {
            dep.stop_deliveries().await;
        }
        if let Err(e) = self.inner.store.destroy_instance(name).await {
            self.undo_destroy(name, removed, fence).await;
            return Err(e.into());
        }
        Ok(())
    }

    /// Put back what a failed [`destroy`](Host::destroy) took: the fence
    /// open, the deployment (unless another was installed meanwhile) and
    /// its watcher.
    async fn undo_destroy(
        &self,
        name: &str,
        removed: Option<Arc<Deployment>>,
        fence: Option<Arc<WriteFence>>,
    ) {
        if let Some(f) = fence {
            f.reopen();
            self.inner
                .fences
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(name.to_string())
                .or_insert_with(|| Arc::downgrade(&f));
        }
        let Some(dep) = removed else { return };
        if dep.watcher.is_some() {
            let targets = self.watch_targets(name, &dep.account);
            match self.inner.store.watch(name, &targets).await {
                Ok(()) => {
                    let d = watchers::start(self, &dep, &targets);
                    *dep.deliveries.lock().unwrap_or_else(|p| p.into_inner()) = Some(d);
                }
                Err(e) => tracing::warn!(
                    instance = name,
                    error = %e,
                    "a failed destroy left the instance deployed without its watcher; \
                     deploy it again once the store answers"
                ),
            }
        }
        self.deployments_mut()
            .entry(name.to_string())
            .or_insert(dep);
    }

    /// Stop serving `name` (its state, sessions and watcher queues stay;
    /// deploy it again to resume). Returns whether it was deployed.
    pub fn undeploy(&self, name: &str) -> bool {
        let removed = self.deployments_mut().remove(name);
        // Its watcher stops now, not when the last request holding the
        // deployment ends.
        if let Some(dep) = &removed {
            drop(dep.take_deliveries());
        }
        removed.is_some()
    }

    /// Names of the instances deployed in this host.
    pub fn deployed(&self) -> Vec<String> {
        let map = self
            .inner
            .deployments
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = map.keys().cloned().collect();
        names.sort();
        names
    }

    fn deployments_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Deployment>>> {
        self.inner
            .deployments
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn deployment(&self, name: &str) -> Result<Arc<Deployment>, HostError> {
        let map = self
            .inner
            .deployments
            .read()
            .unwrap_or_else(|p| p.into_inner());
        map.get(name)
            .cloned()
            .ok_or_else(|| HostError::NotDeployed(name.to_string()))
    }

    /// The deployment of `name`, as it is now (kept by whoever holds it
    /// across redeploys).
    pub(crate) fn deployment_of(&self, name: &str) -> Result<Arc<Deployment>, HostError> {
        self.deployment(name)
    }

    /// A fresh wasmtime store for one request to a deployment.
    pub(crate) fn request_store(&self, dep: &Deployment, wasi: WasiCtx) -> wasmtime::Store<Ctx> {
        self.new_store(dep, wasi)
    }

    /// How the watchers deployed here deliver, per queue.
    pub fn watcher_status(&self) -> Vec<watchers::WatcherStatus> {
        let map = self
            .inner
            .deployments
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for dep in map.values() {
            if let Some(d) = &*dep.deliveries.lock().unwrap_or_else(|p| p.into_inner()) {
                out.extend(d.status(&dep.name));
            }
        }
        out.sort_by(|a, b| (&a.instance, &a.owner).cmp(&(&b.instance, &b.owner)));
        out
    }

    fn new_store(&self, dep: &Deployment, wasi: WasiCtx) -> wasmtime::Store<Ctx> {
        self.new_store_with(dep, wasi, self.inner.config.guest)
    }

    fn new_store_with(
        &self,
        dep: &Deployment,
        wasi: WasiCtx,
        limits: GuestLimits,
    ) -> wasmtime::Store<Ctx> {
        let deadline = limits.deadline;
        let mut table = ResourceTable::new();
        table.set_max_capacity(ctx::MAX_HANDLES);
        let ctx = Ctx {
            wasi,
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            hooks: ctx::NoOutgoing,
            table,
            state: StateCtx::new(self.inner.store.clone(), &dep.name, &dep.account)
                .with_keyvalue(self.inner.keyvalue.clone())
                .with_fence(dep.fence.clone()),
            limiter: MemoryLimiter::new(limits.memory_bytes),
        };
        let mut store = wasmtime::Store::new(&self.inner.engine, ctx);
        store.limiter(|c| &mut c.limiter);
        // At every tick: past its deadline the guest traps; once it has run
        // for a while it yields to the async runtime at each tick, so a busy
        // guest never holds a tokio worker for long. Short calls (most
        // requests) never yield: a yield sends them to the back of the run
        // queue, which measurably hurt tail latency (docs/benchmarks.md).
        let started = std::time::Instant::now();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            let ran = started.elapsed();
            if ran >= deadline {
                Err(Trap::Interrupt.into())
            } else if ran >= YIELD_AFTER {
                Ok(wasmtime::UpdateDeadline::Yield(1))
            } else {
                Ok(wasmtime::UpdateDeadline::Continue(1))
            }
        });
        store
    }

    /// Turn a wasmtime failure during a call into the error a person can act on.
    /// Run `work` (a guest call) within `deadline` of wall-clock time. The
    /// epoch deadline stops running wasm; this also stops a guest waiting in
    /// a host call (a sleep, a read, a stalled client's body). Past it:
    /// `Deadline`, counted against `instance` in the metrics.
    pub(crate) async fn within_deadline<F: std::future::Future>(
        &self,
        instance: &str,
        deadline: Duration,
        work: F,
    ) -> Result<F::Output, HostError> {
        tokio::time::timeout(deadline, work).await.map_err(|_| {
            self.inner
                .store
                .metrics()
                .guest_failure(instance, "deadline");
            HostError::Deadline { limit: deadline }
        })
    }

    pub(crate) fn classify(&self, store: &wasmtime::Store<Ctx>, err: wasmtime::Error) -> HostError {
        // No slot to instantiate in: not the guest's failure.
        if err
            .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
            .is_some()
        {
            return HostError::Busy(format!("{err}"));
        }
        let limits = self.inner.config.guest;
        let (error, kind) = if store.data().limiter.exceeded {
            (
                HostError::MemoryLimit {
                    limit: store.data().limiter.limit(),
                },
                "memory-limit",
            )
        } else if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            (
                HostError::Deadline {
                    limit: limits.deadline,
                },
                "deadline",
            )
        } else {
            (HostError::Trap(format!("{err:#}")), "trap")
        };
        self.inner
            .store
            .metrics()
            .guest_failure(store.data().state.instance(), kind);
        error
    }

    /// Call an exported function (`name` or `interface#name`) of a fresh
    /// instance of `instance`.
    pub async fn call(
        &self,
        instance: &str,
        export: &str,
        args: &[Val],
    ) -> Result<Vec<Val>, HostError> {
        let dep = self.deployment(instance)?;
        self.call_deployment(&dep, export, args).await
    }

    async fn call_deployment(
        &self,
        dep: &Arc<Deployment>,
        export: &str,
        args: &[Val],
    ) -> Result<Vec<Val>, HostError> {
        let instance = dep.name.as_str();
        // The epoch deadline stops running wasm; this bounds the rest too
        // (an export waiting on a host future: a pollable, a slow store).
        let deadline = self.inner.config.guest.deadline;
        self.within_deadline(instance, deadline, self.call_fresh(dep, export, args))
            .await?
    }

    async fn call_fresh(
        &self,
        dep: &Arc<Deployment>,
        export: &str,
        args: &[Val],
    ) -> Result<Vec<Val>, HostError> {
        let instance = dep.name.as_str();
        let mut store = self.new_store(dep, WasiCtx::builder().build());
        let inst = match dep.pre.instantiate_async(&mut store).await {
            Ok(i) => i,
            Err(e) => return Err(self.classify(&store, e)),
        };
        let no_export = || HostError::NoSuchExport {
            instance: instance.into(),
            export: export.into(),
        };
        let index = match export.split_once('#') {
            Some((iface, func)) => {
                let parent = inst
                    .get_export_index(&mut store, None, iface)
                    .ok_or_else(no_export)?;
                inst.get_export_index(&mut store, Some(&parent), func)
                    .ok_or_else(no_export)?
            }
            None => inst
                .get_export_index(&mut store, None, export)
                .ok_or_else(no_export)?,
        };
        let func = inst.get_func(&mut store, index).ok_or_else(no_export)?;
        let ty = func.ty(&store);
        let params: Vec<_> = ty.params().map(|(_, t)| t).collect();
        if let Some(why) = args::mismatch(export, &params, args) {
            return Err(HostError::InvalidRequest(why));
        }
        let mut results = vec![Val::Bool(false); ty.results().len()];
        if let Err(e) = func.call_async(&mut store, args, &mut results).await {
            return Err(self.classify(&store, e));
        }
        Ok(results)
    }

    /// Run a `wasi:cli` command component deployed as `instance`.
    pub async fn run(&self, instance: &str, options: RunOptions) -> Result<RunOutput, HostError> {
        let dep = self.deployment(instance)?;
        self.run_deployment(&dep, options).await
    }

    /// Run `wasm` (a `wasi:cli` command) once as instance `name` of the
    /// host's account, without deploying it: whatever is deployed under
    /// that name keeps serving.
    pub async fn run_once(
        &self,
        name: &str,
        wasm: &[u8],
        options: RunOptions,
    ) -> Result<RunOutput, HostError> {
        // A run refused as asked registers nothing.
        self.run_limits(&options)?;
        let pre = self.compile(wasm).await?;
        let dep = self.transient(name, pre).await?;
        self.run_deployment(&dep, options).await
    }

    /// Call an export of `wasm` once as instance `name`, without deploying
    /// it (see [`Host::call`]).
    pub async fn call_once(
        &self,
        name: &str,
        wasm: &[u8],
        export: &str,
        args: &[Val],
    ) -> Result<Vec<Val>, HostError> {
        // A call refused for its arguments registers nothing.
        let pre = self.compile(wasm).await?;
        let (params, _) = self.types_of(&pre, export)?;
        if let Some(why) = args::mismatch(export, &params, args) {
            return Err(HostError::InvalidRequest(why));
        }
        let dep = self.transient(name, pre).await?;
        self.call_deployment(&dep, export, args).await
    }

    /// The parameter and result types of an export of `wasm`, to convert
    /// arguments for [`Host::call_once`].
    pub async fn export_types(&self, wasm: &[u8], export: &str) -> Result<ExportTypes, HostError> {
        let pre = self.compile(wasm).await?;
        self.types_of(&pre, export)
    }

    /// [`Host::export_types`] of a compiled component.
    fn types_of(&self, pre: &InstancePre<Ctx>, export: &str) -> Result<ExportTypes, HostError> {
        let no_export = || HostError::NoSuchExport {
            instance: "the component".into(),
            export: export.into(),
        };
        let ty = pre.component().component_type();
        let engine = &self.inner.engine;
        let item = match export.split_once('#') {
            Some((iface, func)) => match ty.get_export(engine, iface).map(|e| e.ty) {
                Some(wasmtime::component::types::ComponentItem::ComponentInstance(i)) => {
                    i.get_export(engine, func).map(|e| e.ty)
                }
                _ => None,
            },
            None => ty.get_export(engine, export).map(|e| e.ty),
        };
        match item {
            Some(wasmtime::component::types::ComponentItem::ComponentFunc(f)) => {
                Ok((f.params().map(|(_, t)| t).collect(), f.results().collect()))
            }
            _ => Err(no_export()),
        }
    }

    async fn transient(
        &self,
        name: &str,
        pre: InstancePre<Ctx>,
    ) -> Result<Arc<Deployment>, HostError> {
        let account = self.inner.config.account.clone();
        // Not in the middle of a destroy of the name: a new life after it.
        let _turn = self.turn_of(name).await;
        self.inner.store.register_instance(name, &account).await?;
        Ok(Arc::new(Deployment {
            name: name.into(),
            account,
            pre,
            watcher: None,
            deliveries: std::sync::Mutex::new(None),
            fence: self.fence_of(name),
        }))
    }

    /// The limits a run gets: the host's, or its own deadline and a lower
    /// memory limit.
    fn run_limits(&self, options: &RunOptions) -> Result<GuestLimits, HostError> {
        let host = self.inner.config.guest;
        if let Some(asked) = options.memory_bytes
            && (asked == 0 || asked > host.memory_bytes)
        {
            let mib = |b: usize| format!("{b} bytes ({} MiB)", b >> 20);
            return Err(HostError::InvalidRequest(format!(
                "a memory limit of {} for this run: it must be at least 1 and at most this \
                 host's {} (its instance slots are that size); ask for less, or raise the \
                 host's memory limit",
                mib(asked),
                mib(host.memory_bytes)
            )));
        }
        Ok(GuestLimits {
            deadline: options.deadline.unwrap_or(host.deadline),
            memory_bytes: options.memory_bytes.unwrap_or(host.memory_bytes),
        })
    }

    async fn run_deployment(
        &self,
        dep: &Arc<Deployment>,
        options: RunOptions,
    ) -> Result<RunOutput, HostError> {
        let instance = dep.name.as_str();
        let limits = self.run_limits(&options)?;
        let pre = CommandPre::new(dep.pre.clone()).map_err(|e| {
            HostError::InvalidComponent(format!("{instance:?} is not a wasi:cli command: {e:#}"))
        })?;
        if let Some(id) = &options.session {
            self.inner.store.session_info(instance, id).await?;
        }
        let mut b = WasiCtx::builder();
        let mut argv = vec![instance.to_string()];
        argv.extend(options.args.iter().cloned());
        b.args(&argv).envs(&options.env);
        if let Some(id) = &options.session {
            b.env(SESSION_ENV, id);
        }
        let (stdout, stderr) = (
            MemoryOutputPipe::new(16 << 20),
            MemoryOutputPipe::new(16 << 20),
        );
        if options.capture {
            b.stdout(stdout.clone()).stderr(stderr.clone());
        } else {
            b.inherit_stdio();
        }
        if let Some(input) = options.stdin {
            b.stdin(wasmtime_wasi::p2::pipe::MemoryInputPipe::new(input));
        }
        let deadline = limits.deadline;
        let mut store = self.new_store_with(dep, b.build(), limits);
        let classify = |store: &wasmtime::Store<Ctx>, e| match self.classify(store, e) {
            HostError::Deadline { .. } => HostError::Deadline { limit: deadline },
            other => other,
        };
        let command = match self
            .within_deadline(instance, deadline, pre.instantiate_async(&mut store))
            .await?
        {
            Ok(c) => c,
            Err(e) => return Err(classify(&store, e)),
        };
        let ran = self
            .within_deadline(
                instance,
                deadline,
                command.wasi_cli_run().call_run(&mut store),
            )
            .await;
        let exit_code = match ran {
            Err(e) => return Err(e),
            Ok(Ok(Ok(()))) => 0,
            Ok(Ok(Err(()))) => 1,
            Ok(Err(e)) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(exit) => exit.0,
                None => return Err(classify(&store, e)),
            },
        };
        drop(store);
        Ok(RunOutput {
            exit_code,
            stdout: stdout.contents().to_vec(),
            stderr: stderr.contents().to_vec(),
        })
    }
}
