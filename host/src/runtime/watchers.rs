//! Delivering changes to deployed watchers.
//!
//! A component that exports `wasi:keyvalue/watcher` (`@0.2.0-draft` or
//! `@0.2.0-draft2`) is registered as a watcher when deployed, of its
//! instance scope by default ([`WatchScope`]). For each owner it watches
//! (its instance with its sessions; its account) one task takes the
//! oldest changes from the queue the store keeps with the data
//! (`store::watch`), calls `on-set` / `on-delete` for each in order, each
//! in a fresh instance under the usual deadline and memory limit, and
//! acknowledges them after the calls returned:
//!
//! - **after durability**: a change is queued in the same commit as the
//!   write, and read only once committed;
//! - **in commit order per queue**, **at least once**: a host that stops
//!   (or a call in flight when a redeploy replaces the watcher) leaves the
//!   change queued, and it is delivered again; `state.current-change`
//!   gives its `seq` to skip repeats;
//! - **never blocking writers**: writers only append to the bounded queue
//!   (oldest dropped beyond `Limits::watch_queue`, counted in
//!   [`WatcherStatus::dropped`]);
//! - a call that traps or runs out of time is retried
//!   ([`ATTEMPTS`] times in all, with a pause), then skipped and counted
//!   in [`WatcherStatus::failed`] (and logged).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use wasmtime_wasi::WasiCtx;

use super::{Ctx, Deployment, Host, HostError, Inner};
use crate::keyvalue::{KvBucket, draft, draft2};
use crate::store::{Change, QueueOwner, Scope, ScopeHandle, WatchTarget};

/// Delivery attempts of one change before it is skipped.
pub const ATTEMPTS: u32 = 3;
/// Changes taken from a queue at a time.
const BATCH: usize = 64;
/// How long a task waits for a local write before looking anyway (other
/// hosts' writes on a shared store; renewing the queue lease).
const POLL: Duration = Duration::from_millis(500);
/// How long a delivery waits for a free instance slot before the wait
/// counts as a failed attempt.
const BUSY_WAIT: Duration = Duration::from_secs(30);
/// How often a task delivering a batch renews its queue's lease (a third
/// of the Redis engine's 15 s lease), during a change too: a batch of slow
/// calls, or one slow change, keeps it, so
/// no other host takes the queue and delivers the same changes meanwhile.
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// What a watcher may watch, relative to itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatchScope {
    /// Its instance scope (the default).
    Instance,
    /// Every session of its instance.
    Sessions,
    /// Its account scope.
    Account,
}

impl std::str::FromStr for WatchScope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "instance" => Ok(WatchScope::Instance),
            "sessions" => Ok(WatchScope::Sessions),
            "account" => Ok(WatchScope::Account),
            other => Err(format!(
                "unknown watch scope {other:?} (instance, sessions or account)"
            )),
        }
    }
}

/// Which `watcher` export a component has.
#[derive(Clone)]
pub(crate) enum WatcherExport {
    Draft(draft::WatchServicePre<Ctx>),
    Draft2(draft2::WatchServicePre<Ctx>),
}

impl WatcherExport {
    /// The watcher export of a pre-instantiated component, if any.
    pub(crate) fn of(pre: &wasmtime::component::InstancePre<Ctx>) -> Option<WatcherExport> {
        if let Ok(p) = draft2::WatchServicePre::new(pre.clone()) {
            return Some(WatcherExport::Draft2(p));
        }
        draft::WatchServicePre::new(pre.clone())
            .ok()
            .map(WatcherExport::Draft)
    }
}

/// Counters of one delivery task.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

/// How a watcher's deliveries go, per queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherStatus {
    /// The watching instance.
    pub instance: String,
    /// The queue: its instance (with sessions) or its account.
    pub owner: QueueOwner,
    /// Changes delivered (calls that returned) by this host.
    pub delivered: u64,
    /// Changes skipped after [`ATTEMPTS`] failed calls.
    pub failed: u64,
    /// Changes the queue dropped because it was full (as last seen).
    pub dropped: u64,
}

/// The delivery tasks of one deployment; they stop when it is dropped, or
/// when [`stop`](Deliveries::stop)ped (a redeploy, undeploy or destroy
/// stops them at once: a task delivering a batch holds its deployment, so
/// waiting for the drop would let it finish the batch).
pub(crate) struct Deliveries {
    tasks: Vec<(QueueOwner, Arc<Counters>, tokio::task::JoinHandle<()>)>,
}

impl Drop for Deliveries {
    fn drop(&mut self) {
        for (_, _, t) in &self.tasks {
            t.abort();
        }
    }
}

impl Deliveries {
    /// Stop every task and wait until each has (a call in flight is
    /// dropped; its change stays queued and is delivered again).
    pub(crate) async fn stop(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for (_, _, t) in &tasks {
            t.abort();
        }
        for (_, _, t) in tasks {
            let _ = t.await;
        }
    }

    pub(crate) fn status(&self, instance: &str) -> Vec<WatcherStatus> {
        self.tasks
            .iter()
            .map(|(owner, c, _)| WatcherStatus {
                instance: instance.to_string(),
                owner: owner.clone(),
                delivered: c.delivered.load(Ordering::Relaxed),
                failed: c.failed.load(Ordering::Relaxed),
                dropped: c.dropped.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// The store targets of `scopes` for instance `name` of `account`.
pub(crate) fn targets(name: &str, account: &str, scopes: &[WatchScope]) -> Vec<WatchTarget> {
    let mut out: Vec<WatchTarget> = scopes
        .iter()
        .map(|s| match s {
            WatchScope::Instance => WatchTarget::Instance(name.into()),
            WatchScope::Sessions => WatchTarget::Sessions(name.into()),
            WatchScope::Account => WatchTarget::Account(account.into()),
        })
        .collect();
    out.dedup();
    out
}

/// Start one delivery task per owner of `targets`.
pub(crate) fn start(host: &Host, dep: &Arc<Deployment>, targets: &[WatchTarget]) -> Deliveries {
    let mut owners: Vec<QueueOwner> = targets.iter().map(WatchTarget::owner).collect();
    owners.sort();
    owners.dedup();
    let holder = format!("{}-{:08x}", std::process::id(), rand_u32());
    let tasks = owners
        .into_iter()
        .map(|owner| {
            let counters = Arc::new(Counters::default());
            let task = tokio::spawn(deliver_queue(
                Arc::downgrade(&host.inner),
                Arc::downgrade(dep),
                owner.clone(),
                holder.clone(),
                counters.clone(),
            ));
            (owner, counters, task)
        })
        .collect();
    Deliveries { tasks }
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    u32::from_le_bytes(b)
}

/// The bucket identifier a change is reported in (the session may have
/// ended since: its bucket then answers `no-such-store`).
fn bucket_name(scope: &Scope) -> String {
    match scope {
        Scope::Instance(_) => String::new(),
        Scope::Account(_) => "account".to_string(),
        Scope::Session { id, .. } => format!("session:{id}"),
    }
}

/// One call of the watcher for one change, in a fresh instance.
async fn call(
    host: &Host,
    dep: &Deployment,
    export: &WatcherExport,
    change: &Change,
) -> Result<(), HostError> {
    let mut store = host.new_store(dep, WasiCtx::builder().build());
    let ctx = &mut store.data_mut().state;
    *ctx = ctx.clone().delivering(&change.scope, change.seq);
    let handle = ScopeHandle::new(host.store().clone(), change.scope.clone());
    let bucket = KvBucket::new(
        store.data().state.scope(handle),
        "",
        &bucket_name(&change.scope),
    );
    let resource = store
        .data_mut()
        .table
        .push(bucket)
        .map_err(|e| HostError::Wasmtime(e.to_string()))?;
    let instance = store.data().state.instance().to_string();
    // The two drafts' bindings are distinct types with the same calls.
    macro_rules! on_change {
        ($pre:expr) => {
            match $pre.instantiate_async(&mut store).await {
                Ok(w) => {
                    let w = w.wasi_keyvalue_watcher();
                    match &change.value {
                        Some(v) => w.call_on_set(&mut store, resource, &change.key, v).await,
                        None => w.call_on_delete(&mut store, resource, &change.key).await,
                    }
                }
                Err(e) => Err(e),
            }
        };
    }
    let run = async {
        match export {
            WatcherExport::Draft(pre) => on_change!(pre),
            WatcherExport::Draft2(pre) => on_change!(pre),
        }
    };
    // A watcher waiting in a host call past the deadline would otherwise
    // hold up its whole queue.
    let deadline = host.inner.config.guest.deadline;
    host.within_deadline(&instance, deadline, run)
        .await?
        .map_err(|e| host.classify(&store, e))
}

/// Deliver one queue until the deployment or the host goes.
async fn deliver_queue(
    host: Weak<Inner>,
    dep: Weak<Deployment>,
    owner: QueueOwner,
    holder: String,
    counters: Arc<Counters>,
) {
    let mut wake = match host.upgrade() {
        Some(inner) => inner.store.changes(),
        None => return,
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        wake.borrow_and_update();
        let (Some(inner), Some(dep)) = (host.upgrade(), dep.upgrade()) else {
            return;
        };
        let host_ = Host { inner };
        let Some(export) = dep.watcher.clone() else {
            return;
        };
        let name = dep.name.clone();
        match host_
            .store()
            .watch_pending(&name, &owner, &holder, BATCH)
            .await
        {
            Ok(batch) => {
                backoff = Duration::from_millis(100);
                let before = counters.dropped.swap(batch.dropped, Ordering::Relaxed);
                if batch.dropped > before {
                    tracing::warn!(
                        watcher = %name, queue = ?owner, dropped = batch.dropped - before,
                        "the watcher fell behind: its queue was full and the oldest changes were dropped"
                    );
                }
                if !batch.changes.is_empty() {
                    let mut last = None;
                    // The lease is renewed every RENEW_EVERY while the
                    // batch runs, beside the deliveries (a change's three
                    // attempts, or a wait for a free slot, outlast the
                    // lease; a renewal that waits on the store does not
                    // pause the guest). Still this host's queue? (A lease
                    // renewed; on a store without leases, a read.) If not,
                    // the change under way ends (delivered at least once)
                    // and the holder delivers the rest.
                    let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
                    let _keeper = KeepLease(tokio::spawn(keep_lease(
                        host_.store().clone(),
                        name.clone(),
                        owner.clone(),
                        holder.clone(),
                        lost.clone(),
                    )));
                    for change in &batch.changes {
                        deliver_one(&host_, &dep, &export, change, &counters).await;
                        last = Some(change.seq);
                        if lost.load(Ordering::Relaxed) {
                            break;
                        }
                    }
                    if let Some(seq) = last
                        && let Err(e) = host_.store().watch_ack(&name, &owner, seq).await
                    {
                        tracing::warn!(watcher = %name, error = %e, "cannot acknowledge delivered changes; they will be delivered again");
                    }
                    continue;
                }
            }
            Err(e) => {
                tracing::warn!(watcher = %name, error = %e, "cannot read the watcher's queue; retrying");
                drop((host_, dep));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        }
        drop((host_, dep));
        let _ = tokio::time::timeout(POLL, wake.changed()).await;
    }
}

/// Renews a queue's lease every [`RENEW_EVERY`] until aborted; sets `lost`
/// and ends once the queue is another host's or the store fails.
async fn keep_lease(
    store: crate::store::Store,
    name: String,
    owner: QueueOwner,
    holder: String,
    lost: Arc<std::sync::atomic::AtomicBool>,
) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        match store.watch_pending(&name, &owner, &holder, 1).await {
            Ok(b) if !b.busy => {}
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(watcher = %name, error = %e, "cannot renew the queue's lease; the rest of the batch is delivered later");
                break;
            }
        }
    }
    lost.store(true, Ordering::Relaxed);
}

/// Stops a [`keep_lease`] task when the batch ends (or its delivery task is
/// stopped).
struct KeepLease(tokio::task::JoinHandle<()>);

impl Drop for KeepLease {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn deliver_one(
    host: &Host,
    dep: &Deployment,
    export: &WatcherExport,
    change: &Change,
    counters: &Counters,
) {
    let mut pause = Duration::from_millis(50);
    let mut attempt = 0;
    let mut busy_since: Option<std::time::Instant> = None;
    while attempt < ATTEMPTS {
        attempt += 1;
        match call(host, dep, export, change).await {
            Ok(()) => {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            // No instance slot free (HTTP requests hold them all): nothing
            // ran, so it is no attempt; wait for a slot instead of skipping
            // the change (at least once) — for up to BUSY_WAIT, then it
            // counts (a component the pool can never fit is not waited
            // for forever).
            Err(HostError::Busy(_))
                if busy_since
                    .get_or_insert_with(std::time::Instant::now)
                    .elapsed()
                    < BUSY_WAIT =>
            {
                attempt -= 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) if attempt == ATTEMPTS => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    watcher = %dep.name, key = %change.key, seq = change.seq, error = %e,
                    "the watcher failed {ATTEMPTS} times on this change; skipping it"
                );
            }
            Err(e) => {
                tracing::debug!(watcher = %dep.name, seq = change.seq, error = %e, attempt, "watcher call failed; retrying");
                tokio::time::sleep(pause).await;
                pause *= 10;
            }
        }
    }
}
