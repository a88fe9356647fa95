//! The writer thread: runs queued groups of requests in write transactions,
//! logs them and commits them to redb (without an fsync) — with a log, only
//! every [`MAX_LAYERS`] groups, reads seeing the groups in between as
//! layers over redb's last commit — hands each group to the syncer, and
//! makes checkpoints; reopens the file after an I/O error.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, Durability, WriteTransaction};

use super::log::{CommitLog, Record};
use super::syncer::{self, Committed, Finisher, Flight};
use super::table::{Logged, ReadTable, Snapshot, TABLE, TableRw, Tbl, no_watchers};
use super::{RedbOptions, State, log_error, open_file, open_snapshot};
use crate::store::error::{Result, StateError};
use crate::store::kv::backend::{Overlay, RawWrite, WriteJob, Writes, unavailable};
use crate::store::kv::layout;

/// Most requests committed together.
const MAX_BATCH: usize = 256;

/// Groups committed and not yet answered by the syncer, at most (the
/// writer waits beyond that).
const IN_FLIGHT: usize = 4;

/// Groups logged and applied to the writer's open transaction, at most,
/// before one redb commit takes them in (stores with a commit log). A redb
/// commit — allocating, checksumming and flushing the copied pages of every
/// table it touched — cost more than the group's own writes; the log already
/// makes each group durable, so redb commits only every few groups, and reads
/// see the groups in between through their buffered writes.
pub(super) const MAX_LAYERS: usize = 8;

/// Bytes those groups' buffered writes may hold at most before the commit.
const MAX_LAYER_BYTES: usize = 8 << 20;

/// How often the writer retries reopening the file after an I/O error.
pub(super) const REOPEN_EVERY: Duration = Duration::from_millis(200);

/// What the writer thread owns.
pub(super) struct Writer {
    state: Arc<State>,
    options: RedbOptions,
    /// The commit log (durable stores).
    log: Option<CommitLog>,
    /// Which opening of the file the writer commits on.
    generation: u64,
    /// Sequence number of the last checkpoint the writer saw succeed (none
    /// without a log).
    trusted: Option<u64>,
    /// The syncer is gone: nothing can be answered any more.
    broken: bool,
    /// No reopen attempt before this.
    next_reopen: Instant,
    flights: SyncSender<Flight>,
    /// Flights sent to the syncer and not yet finished.
    in_flight: Arc<AtomicUsize>,
    /// What finishes flights: the syncer, or the writer when it is idle.
    finisher: Arc<Mutex<Finisher>>,
    syncer: JoinHandle<()>,
    /// The write transaction holding groups logged but not yet committed to
    /// redb (stores with a log; none right after a commit).
    open: Option<Open>,
    /// A checkpoint took in groups that reads still see as layers: publish
    /// the plain commit once nothing is in flight (unless a group comes
    /// first).
    flatten: bool,
}

/// A write transaction kept open across groups: redb's last commit, and
/// the writes of the groups applied to the transaction since (logged,
/// oldest first) — what reads see.
pub(super) struct Open {
    wtx: WriteTransaction,
    base: Arc<ReadTable>,
    layers: Vec<Arc<Writes>>,
    bytes: usize,
    /// The transaction holds no watch registration (see `Logged`).
    no_watchers: bool,
}

impl Open {
    /// A new transaction over the newest commit of `db`.
    fn begin(db: &Database) -> Result<Self> {
        let base = open_snapshot(db)?;
        let mut wtx = db.begin_write().map_err(unavailable)?;
        wtx.set_durability(Durability::None).map_err(unavailable)?;
        // The writer is the file's only writer: what its last commit holds
        // is what the new transaction starts from.
        let no_watchers = no_watchers(&*base)?;
        Ok(Open {
            wtx,
            base,
            layers: Vec::new(),
            bytes: 0,
            no_watchers,
        })
    }
}

impl Writer {
    /// The writer of the file `state` has open, and its syncer thread.
    pub(super) fn start(
        state: Arc<State>,
        options: RedbOptions,
        log: Option<CommitLog>,
        generation: u64,
    ) -> Result<Self> {
        let (flights, rx) = mpsc::sync_channel(IN_FLIGHT);
        let finisher = Arc::new(Mutex::new(Finisher::new(
            state.clone(),
            options.metrics.clone(),
        )));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (f, n) = (finisher.clone(), in_flight.clone());
        let syncer = std::thread::Builder::new()
            .name("wasm-state-syncer".into())
            .spawn(move || syncer::run(&f, &rx, &n))
            .map_err(|e| StateError::Internal(format!("cannot start the syncer thread: {e}")))?;
        Ok(Writer {
            state,
            options,
            trusted: log.as_ref().map(CommitLog::last_seq),
            broken: false,
            log,
            generation,
            next_reopen: Instant::now(),
            flights,
            in_flight,
            finisher,
            syncer,
            open: None,
            flatten: false,
        })
    }

    /// Take groups from `rx` until every sender is gone; then checkpoint and
    /// wait for the syncer to answer what is in flight.
    pub(super) fn run(mut self, rx: &Receiver<Box<dyn WriteJob>>, queued: &AtomicUsize) {
        while let Some(first) = self.next(rx) {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let waiting = queued
                .fetch_sub(batch.len(), Ordering::Relaxed)
                .saturating_sub(batch.len());
            let started = Instant::now();
            let committed = match self.database() {
                Ok(db) => self.commit(&db, &mut batch),
                Err(e) => Err(e),
            };
            let flight = Flight::new(batch, committed, self.generation, (started, waiting));
            self.hand_over(flight, queued);
            if self.log.as_ref().is_some_and(CommitLog::wants_checkpoint) {
                self.checkpoint();
            }
        }
        self.checkpoint();
        drop(self.flights);
        let _ = self.syncer.join();
    }

    /// Let the syncer finish `flight` while the writer goes on — or finish
    /// it here when there is nothing to go on with (no request waiting,
    /// nothing in flight before it).
    fn hand_over(&mut self, flight: Flight, queued: &AtomicUsize) {
        if queued.load(Ordering::Relaxed) == 0 && self.in_flight.load(Ordering::Acquire) == 0 {
            self.finisher
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .finish(vec![flight]);
            return;
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        if let Err(mpsc::SendError(flight)) = self.flights.send(flight) {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            // The syncer is gone (it panicked): nobody can vouch for these
            // writes, or publish any; stop for good.
            self.broken = true;
            self.state.fail(
                self.generation,
                "the store's syncer stopped; restart the process".into(),
            );
            for job in flight.jobs {
                job.finish(Err(StateError::Internal(
                    "the store's syncer stopped: this write may or may not be applied; restart the process".into(),
                )));
            }
        }
    }

    /// The next request: waits, but retries reopening a closed file every
    /// [`REOPEN_EVERY`] (so that reads resume too) and checkpoints once idle
    /// for `checkpoint_idle` with logged groups not in one. `None` once
    /// every sender is gone.
    fn next(&mut self, rx: &Receiver<Box<dyn WriteJob>>) -> Option<Box<dyn WriteJob>> {
        loop {
            if self.flatten && self.in_flight.load(Ordering::Acquire) == 0 {
                self.flatten = false;
                self.publish_committed();
            }
            let failed = self.state.failed();
            let pending = self.log.as_ref().is_some_and(CommitLog::pending);
            // A group in flight may yet fail the file (its sync): then the
            // writer must wake to reopen it even if no write comes.
            let busy = self.in_flight.load(Ordering::Acquire) > 0;
            if !failed && !pending && !busy {
                return rx.recv().ok();
            }
            let wait = if pending && !failed {
                self.options.checkpoint_idle
            } else {
                REOPEN_EVERY
            };
            match rx.recv_timeout(wait) {
                Ok(job) => return Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) if failed => {
                    let _ = self.database();
                }
                Err(mpsc::RecvTimeoutError::Timeout) if pending => self.checkpoint(),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// The database to commit on, reopening it if an I/O error closed it.
    fn database(&mut self) -> Result<Arc<Database>> {
        if self.broken {
            return Err(StateError::Internal(
                "the store's syncer stopped; restart the process".into(),
            ));
        }
        let failed = match self.state.database() {
            Ok(db) => return Ok(db),
            Err(e) => e,
        };
        // Its groups are in the log: the reopen replays them.
        self.open = None;
        if Instant::now() < self.next_reopen {
            return Err(failed);
        }
        self.next_reopen = Instant::now() + REOPEN_EVERY;
        // Replay from the last checkpoint this writer saw succeed: the file
        // may claim a later one whose fsync failed.
        let path = self.state.path.clone();
        match open_file(&path, &self.options, self.trusted) {
            Ok((db, log)) => {
                let db = Arc::new(db);
                self.generation = self.state.opened(db.clone())?;
                self.trusted = log.as_ref().map(CommitLog::last_seq);
                self.log = log;
                tracing::warn!(path = %path.display(), "reopened the state file after an I/O error; writes resume");
                Ok(db)
            }
            Err(e) => {
                tracing::debug!(error = %e, "reopening the state file failed; will retry");
                Err(failed)
            }
        }
    }

    /// Run the batch's jobs in the open write transaction (or a new one) and
    /// keep the ones that succeeded, logged (when the store keeps a log) but
    /// not yet synced: what the syncer finishes. With a log, redb commits
    /// only every [`MAX_LAYERS`] groups (or [`MAX_LAYER_BYTES`]).
    fn commit(&mut self, db: &Database, batch: &mut [Box<dyn WriteJob>]) -> Result<Committed> {
        let open = match self.open.take() {
            Some(open) => open,
            None => match Open::begin(db) {
                Ok(open) => open,
                Err(e) => {
                    tracing::error!(error = %e, jobs = batch.len(), "no write transaction");
                    self.check(db, &e);
                    return Err(e);
                }
            },
        };
        let earlier = !open.layers.is_empty();
        self.flatten = false;
        let lost_with = (&*self.state, self.generation);
        let committed = commit_batch(db, open, batch, self.log.as_mut(), lost_with);
        match committed {
            Err(e) => {
                tracing::error!(error = %e, jobs = batch.len(), "commit failed");
                if earlier {
                    // The transaction held earlier groups, logged and maybe
                    // answered: the reopen replays them from the log.
                    self.state.fail(
                        self.generation,
                        format!(
                            "a write to the state file {} failed ({e}); reopening it (the commit log holds every acknowledged write)",
                            self.state.path.display()
                        ),
                    );
                    self.next_reopen = Instant::now();
                } else {
                    self.check(db, &e);
                }
                Err(e)
            }
            Ok((committed, open)) => {
                self.open = open;
                // Committed, but reads could not be given the new state:
                // close the file, so that they fail until the reopen
                // publishes it.
                if let Committed::Changed(_, None) = committed {
                    self.state.fail(
                        self.generation,
                        "no read snapshot could be taken after a commit; reopening the state file"
                            .into(),
                    );
                }
                Ok(committed)
            }
        }
    }

    /// Make the logged groups part of a durable redb commit (the open
    /// transaction's, when there is one), so that the log can start again.
    /// A failure leaves the log as it is (a reopen replays it) and is
    /// retried at the next occasion.
    fn checkpoint(&mut self) {
        let Some(log) = self.log.as_mut().filter(|l| l.pending()) else {
            return;
        };
        let Ok(db) = self.state.database() else {
            self.open = None;
            return;
        };
        let open = self.open.take();
        let earlier = open.as_ref().is_some_and(|o| !o.layers.is_empty());
        let done = (|| -> Result<()> {
            let mut wtx = match open {
                Some(open) => open.wtx,
                None => db.begin_write().map_err(unavailable)?,
            };
            wtx.set_durability(Durability::Immediate)
                .map_err(unavailable)?;
            Tbl(wtx.open_table(TABLE).map_err(unavailable)?)
                .put(layout::LOG_SEQ, &log.last_seq().to_be_bytes())?;
            wtx.commit().map_err(unavailable)
        })();
        match done {
            Ok(()) => {
                self.trusted = Some(log.last_seq());
                log.checkpointed();
                // Reads may drop the layers now — or, while a group is still
                // on its way to durability (its snapshot comes later), once
                // it has arrived.
                if earlier {
                    self.flatten = true;
                    if self.in_flight.load(Ordering::Acquire) == 0 {
                        self.flatten = false;
                        self.publish_committed();
                    }
                }
            }
            Err(e) if earlier => {
                tracing::error!(error = %e, "checkpoint failed");
                self.state.fail(
                    self.generation,
                    format!(
                        "a checkpoint of the state file {} failed ({e}); reopening it (the commit log holds every acknowledged write)",
                        self.state.path.display()
                    ),
                );
                self.next_reopen = Instant::now();
            }
            Err(e) => {
                tracing::error!(error = %e, "checkpoint failed");
                self.check(&db, &e);
            }
        }
    }

    /// Publish redb's last commit as it is, no layers: only when every
    /// group it holds is durable and answered (nothing in flight) and no
    /// group came after it.
    fn publish_committed(&self) {
        if let Ok(db) = self.state.database()
            && let Ok(base) = open_snapshot(&db)
        {
            self.state
                .publish(self.generation, Arc::new(Snapshot::committed(base)));
        }
    }

    /// After a failed commit: if redb now refuses writes (an I/O error, or
    /// a failed commit that discarded its allocator state), close the
    /// database so that it is reopened (and recovered).
    fn check(&mut self, db: &Database, error: &StateError) {
        if let Err(refused) = db.begin_write() {
            tracing::error!(error = %error, refused = %refused, path = %self.state.path.display(), "the state file failed to write; reopening it (writes fail until it works again)");
            self.state.fail(self.generation, format!(
                "the state file {} could not be written ({error}); writes are refused until the disk accepts them again — free space or raise the limit",
                self.state.path.display()
            ));
            self.next_reopen = Instant::now() + REOPEN_EVERY;
        }
    }
}

/// Run the batch's jobs in `open` and keep the ones that succeeded, after
/// writing their writes to the log (when there is one); commit them to redb
/// without an fsync — or, with a log and fewer than [`MAX_LAYERS`] groups in
/// the transaction, keep it open and let reads see the group as a layer. A
/// failure (of a write, the log or the commit) leaves nothing of this
/// group: the transaction is dropped, a logged record erased (the caller
/// recovers the earlier groups it held). A group that wrote nothing (the
/// sweeper's tick when nothing expired, failed requests) makes no commit:
/// what reads see, and the store's generation, stay as they are.
///
/// If the erasing fails, its fsync may have taken the error of another
/// group's record (Linux reports a failed writeback once per file): then
/// opening `generation`'s log is lost (`State::log_lost`), so that the
/// syncer vouches for none of its groups still in flight.
fn commit_batch(
    db: &Database,
    open: Open,
    batch: &mut [Box<dyn WriteJob>],
    log: Option<&mut CommitLog>,
    (state, generation): (&State, u64),
) -> Result<(Committed, Option<Open>)> {
    let Open {
        wtx,
        base,
        mut layers,
        mut bytes,
        mut no_watchers,
    } = open;
    let mut record = Record::default();
    let (wrote, layer) = {
        let mut table: TableRw<'_> = Tbl(wtx.open_table(TABLE).map_err(unavailable)?);
        let mut logged = Logged {
            table: &mut table,
            record: log.is_some().then_some(&mut record),
            writes: 0,
            no_watchers: &mut no_watchers,
        };
        // Each job runs on its own overlay, kept only if it succeeds; the
        // kept ones gather in the group's overlay, so that what many jobs
        // rewrite (the etag counter, an owner's usage) reaches the table and
        // the log once per group.
        let mut group = Overlay::new(&mut logged);
        for job in batch.iter_mut() {
            let mut overlay = Overlay::new(&mut group);
            let applied = catch_unwind(AssertUnwindSafe(|| job.apply(&mut overlay)));
            match applied {
                Ok(Ok(())) => overlay.flush()?,
                Ok(Err(_)) => {}
                Err(_) => tracing::error!("a write request panicked; its writes were discarded"),
            }
        }
        let layer = group.flush_keep()?;
        let wrote = logged.writes > 0;
        // Whatever makes this commit durable (a checkpoint, redb closing the
        // file) records which log record it holds.
        if let Some(log) = log.as_deref()
            && !record.is_empty()
        {
            table.put(layout::LOG_SEQ, &(log.last_seq() + 1).to_be_bytes())?;
        }
        (wrote, layer)
    };
    if !wrote {
        if layers.is_empty() {
            wtx.abort().map_err(unavailable)?;
            return Ok((Committed::Unchanged, None));
        }
        let open = Open {
            wtx,
            base,
            layers,
            bytes,
            no_watchers,
        };
        return Ok((Committed::Unchanged, Some(open)));
    }
    let (mut log, appended) = match log {
        Some(log) if !record.is_empty() => {
            let appended = log
                .write(&mut record)
                .map_err(|e| log_error(log.path(), &e))?;
            (Some(log), Some(appended))
        }
        _ => (None, None),
    };
    bytes += layer.bytes();
    layers.push(Arc::new(layer));
    if let (Some(log), Some(appended)) = (log.as_deref_mut(), appended)
        && layers.len() < MAX_LAYERS
        && bytes < MAX_LAYER_BYTES
    {
        // Durable once the log is synced; in redb at a later commit.
        log.committed(appended);
        let snapshot = Arc::new(Snapshot {
            base: base.clone(),
            layers: layers.clone(),
        });
        let open = Open {
            wtx,
            base,
            layers,
            bytes,
            no_watchers,
        };
        return Ok((
            Committed::Changed(Some(log.file().clone()), Some(snapshot)),
            Some(open),
        ));
    }
    if let Err(e) = wtx.commit() {
        if let (Some(log), Some(appended)) = (log, appended)
            && let Err(r) = log.retract(appended)
        {
            let message = format!(
                "storage: {e}; and the commit log {} could not be corrected ({r}): the writes of this request may or may not be applied when the store is next opened",
                log.path().display()
            );
            state.log_lost(generation, message.clone());
            return Err(StateError::Unavailable(message));
        }
        return Err(unavailable(e));
    }
    let sync = match (log, appended) {
        (Some(log), Some(appended)) => {
            log.committed(appended);
            Some(log.file().clone())
        }
        _ => None,
    };
    // If no snapshot can be taken, `Writer::commit` closes the file: reads
    // fail until the reopen publishes one.
    let snapshot = open_snapshot(db)
        .inspect_err(|e| tracing::warn!(error = %e, "no snapshot after a commit"))
        .ok()
        .map(|base| Arc::new(Snapshot::committed(base)));
    Ok((Committed::Changed(sync, snapshot), None))
}
