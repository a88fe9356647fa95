//! Frees the space of expired keys and sessions. Correctness never waits for
//! it: reads check expiry themselves. Each step is one bounded write request
//! on the writer, so a large backlog never holds the writer for long.

use std::sync::Weak;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use super::error::Result;
use super::layout::{self, ScopeKeys};
use super::meta::Meta;
use super::ops::cx::WriteCx;
use super::ops::keyspace::purge;
use super::sessions::drop_session;
use super::{Inner, Store};

/// What a sweep freed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepStats {
    /// Expired keys deleted.
    pub keys: u64,
    /// Expired sessions deleted.
    pub sessions: u64,
}

/// Index entries with a time before `now` under `tag`, at most `limit`
/// (a key dies once its expiry has passed, as in Redis).
fn due(cx: &WriteCx, tag: u8, now: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
    let end = [&[tag][..], &now.to_be_bytes()].concat();
    let mut out = Vec::new();
    cx.r().scan(&[tag], Some(&end), false, &mut |k, _| {
        if let Some(at) = layout::be_u64(&k[1..]) {
            out.push((at, k.to_vec()));
        }
        out.len() < limit
    })?;
    Ok(out)
}

/// One bounded sweep step.
fn sweep_step(cx: &mut WriteCx, limit: usize) -> Result<SweepStats> {
    let mut stats = SweepStats::default();
    let now = cx.now;
    for (at, index_key) in due(cx, layout::KEY_EXPIRY, now, limit)? {
        let meta_key = &index_key[9..];
        if let Some((sk, key)) = ScopeKeys::from_meta_key(meta_key)
            && let Some(raw) = cx.r().get(meta_key)?
        {
            let m = Meta::decode(&raw)?;
            if m.expires_at == at && m.expired(now) {
                purge(cx, &sk, &key, &m)?;
                stats.keys += 1;
            }
        }
        cx.delete(&index_key)?;
    }
    for (at, index_key) in due(cx, layout::SESSION_EXPIRY, now, limit)? {
        if let Some((instance, id)) = layout::split_pair(&index_key[9..]) {
            let rec = cx.r().get(&layout::session_key(&instance, &id))?;
            if rec.as_deref().and_then(layout::be_u64) == Some(at) {
                drop_session(cx, &instance, &id, at)?;
                stats.sessions += 1;
                continue;
            }
        }
        cx.delete(&index_key)?;
    }
    Ok(stats)
}

impl Store {
    /// Free everything that has expired by now; returns what was freed.
    pub async fn sweep(&self) -> Result<SweepStats> {
        let mut total = SweepStats::default();
        let limit = self.inner.sweep_batch;
        loop {
            let step = self.write(move |cx| sweep_step(cx, limit)).await?;
            total.keys += step.keys;
            total.sessions += step.sessions;
            if step == SweepStats::default() {
                return Ok(total);
            }
        }
    }
}

/// The background sweeper thread.
pub(crate) struct Sweeper {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Sweeper {
    /// Sweep every `every` until the store is dropped.
    pub(crate) fn start(store: Weak<Inner>, every: Duration) -> Sweeper {
        let (stop, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("wasm-state-sweeper".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                    let Some(inner) = store.upgrade() else { return };
                    let store = Store { inner };
                    let limit = store.inner.sweep_batch;
                    loop {
                        let (job, rx) = super::job::Job::new(
                            move |cx| sweep_step(cx, limit),
                            store.inner.clock.clone(),
                            store.inner.limits.clone(),
                        );
                        store.inner.backend.submit(job);
                        match rx.blocking_recv() {
                            Ok(Ok(s)) if s != SweepStats::default() => {
                                tracing::debug!(keys = s.keys, sessions = s.sessions, "swept");
                            }
                            Ok(Ok(_)) => break,
                            Ok(Err(e)) => {
                                tracing::warn!(error = %e, "sweep failed; will retry");
                                break;
                            }
                            Err(_) => return,
                        }
                    }
                }
            })
            .expect("spawning the sweeper thread");
        Sweeper { stop, thread }
    }

    /// Stop the thread (unless called from it) and wait for it.
    pub(crate) fn stop(self) {
        drop(self.stop);
        if self.thread.thread().id() != std::thread::current().id() {
            let _ = self.thread.join();
        }
    }
}
