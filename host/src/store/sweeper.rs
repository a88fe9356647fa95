//! Frees the space of expired keys and sessions. Correctness never waits for
//! it: reads check expiry themselves. Each step is one bounded write request
//! on the writer, so a large backlog never holds the writer for long.

use std::sync::Weak;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use super::error::Result;
use super::{Inner, Store};

/// What a sweep freed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepStats {
    /// Expired keys deleted.
    pub keys: u64,
    /// Expired sessions deleted.
    pub sessions: u64,
}

impl Store {
    /// Free everything that has expired by now; returns what was freed.
    pub async fn sweep(&self) -> Result<SweepStats> {
        let mut total = SweepStats::default();
        let limit = self.inner.sweep_batch;
        loop {
            let step = self.engine().sweep_step(limit).await?;
            total.keys += step.keys;
            total.sessions += step.sessions;
            if step == SweepStats::default() {
                return Ok(total);
            }
            self.changed();
        }
    }
}

/// The background sweeper: a task on the runtime that opened the store when
/// there is one, else a thread of its own.
///
/// On the opener's runtime the engine's connections (the Redis engine's
/// connection manager and its reconnects) are driven by that runtime's
/// workers; a private runtime would drive a shared reconnect only while a
/// sweep is in flight, leaving every other caller waiting on it.
pub(crate) enum Sweeper {
    /// A tokio task on the opener's runtime.
    Task(tokio::task::JoinHandle<()>),
    /// A thread with a small runtime of its own (store opened outside tokio).
    Thread {
        stop: Sender<()>,
        thread: JoinHandle<()>,
    },
    /// No sweeper could be started (logged); `Store::sweep` still works.
    Off,
}

/// Sweep until nothing more has expired; logs instead of failing.
async fn sweep_all(store: &Store) {
    let limit = store.inner.sweep_batch;
    loop {
        match store.engine().sweep_step(limit).await {
            Ok(s) if s != SweepStats::default() => {
                tracing::debug!(keys = s.keys, sessions = s.sessions, "swept");
                store.changed();
            }
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, "sweep failed; will retry");
                break;
            }
        }
    }
}

impl Sweeper {
    /// Sweep every `every` until the store is dropped.
    pub(crate) fn start(store: Weak<Inner>, every: Duration) -> Sweeper {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            return Sweeper::Task(handle.spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await; // the first tick is immediate
                loop {
                    tick.tick().await;
                    let Some(inner) = store.upgrade() else { return };
                    sweep_all(&Store { inner }).await;
                }
            }));
        }
        let (stop, rx) = mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("wasm-state-sweeper".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    tracing::error!(
                        "cannot start the sweeper's runtime; expired data is freed only by `sweep`"
                    );
                    return;
                };
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                    let Some(inner) = store.upgrade() else { return };
                    rt.block_on(sweep_all(&Store { inner }));
                }
            });
        match spawned {
            Ok(thread) => Sweeper::Thread { stop, thread },
            Err(e) => {
                tracing::error!(error = %e, "cannot start the sweeper thread; expired data is freed only by `sweep`");
                Sweeper::Off
            }
        }
    }

    /// Stop the sweeper (waiting for the thread unless called from it).
    pub(crate) fn stop(self) {
        match self {
            Sweeper::Task(task) => task.abort(),
            Sweeper::Off => {}
            Sweeper::Thread { stop, thread } => {
                drop(stop);
                if thread.thread().id() != std::thread::current().id() {
                    let _ = thread.join();
                }
            }
        }
    }
}
