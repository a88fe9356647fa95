//! The writer thread: runs queued groups of requests over redb's last
//! commit and the groups logged since (layers), writes each group to the
//! commit log, hands it to the syncer and — with a log — to the applier,
//! which puts it into redb while the writer runs the next group; starts
//! checkpoints, which the applier runs while the writer goes on (the groups
//! logged meanwhile wait here until it is done); reopens the file after an
//! I/O error.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::Database;

use super::applier::{Applier, Land, Landed, Logged, Open, land};
use super::log::{CommitLog, LogPos, Record};
use super::syncer::{self, Committed, Finisher, Flight};
use super::table::{ReadTable, Sink, Snapshot, no_watchers};
use super::{RedbOptions, State, log_error, open_file, open_snapshot};
use crate::store::error::{Result, StateError};
use crate::store::kv::backend::{GroupCounter, Overlay, RawWrite, WriteJob, Writes};
use crate::store::kv::layout;

/// Most requests committed together.
const MAX_BATCH: usize = 256;

/// Groups committed and not yet answered by the syncer, at most (the
/// writer waits beyond that).
const IN_FLIGHT: usize = 4;

/// Groups logged during a checkpoint, at most, before the writer waits for
/// it to end: each is a layer every read walks and every later snapshot
/// lists, so a checkpoint that a slow disk draws out must not let them
/// grow without bound (normally a checkpoint sees a few hundred).
pub(super) const MAX_UNLANDED: usize = 1024;

/// How often an idle writer looks whether the running checkpoint is done.
const CHECKPOINT_POLL: Duration = Duration::from_millis(1);

/// A checkpoint the applier is running.
struct Running {
    started: Instant,
    /// Where the log goes on after the groups it holds.
    pos: LogPos,
}

/// What the writer thread owns.
pub(super) struct Writer {
    state: Arc<State>,
    options: RedbOptions,
    /// The commit log (durable stores).
    log: Option<CommitLog>,
    /// Which opening of the file the writer commits on.
    generation: u64,
    /// Where the last checkpoint the writer saw succeed left the log (none
    /// without a log).
    trusted: Option<LogPos>,
    /// The checkpoint on its way to the applier (the land it is busy with),
    /// if one is.
    checkpointing: Option<Running>,
    /// The groups logged while it runs, oldest first: answered once the
    /// log is synced, read as layers, and sent to the applier together once
    /// it is done.
    unlanded: Vec<(u64, Arc<Writes>)>,
    /// The syncer or the applier is gone: nothing can be answered any more.
    broken: bool,
    /// No reopen attempt before this.
    next_reopen: Instant,
    flights: SyncSender<Flight>,
    /// Flights sent to the syncer and not yet finished.
    in_flight: Arc<AtomicUsize>,
    /// What finishes flights: the syncer, or the writer when it is idle.
    finisher: Arc<Mutex<Finisher>>,
    syncer: JoinHandle<()>,
    /// Puts logged groups into redb (stores with a log).
    applier: Applier,
    /// The write transaction holding groups applied but not yet committed
    /// to redb, when the applier is not holding it (stores with a log; none
    /// right after a commit).
    open: Option<Open>,
    /// What requests read: redb's last commit as the writer knows it (none:
    /// take one first) and the groups logged since, oldest first — which
    /// requests read merged into one buffer (`merged`: the first group's own
    /// layer, shared, until a second one is merged in), one lookup however
    /// many there are. Each layer comes with the number of the last group
    /// it holds: one group's writes, or a chunk of several merged by the
    /// applier (`Landed::chunk`), which is what reads walk.
    base: Option<Arc<ReadTable>>,
    layers: Vec<(u64, Arc<Writes>)>,
    merged: Arc<Writes>,
    /// The number the next logged group gets (groups are numbered as they
    /// are logged).
    next_group: u64,
    /// The view holds no watch registration (see `Sink`).
    no_watchers: bool,
    /// The base moved: ask `no_watchers` again once the view is whole.
    rescan: bool,
    /// A checkpoint took in groups that reads still see as layers: publish
    /// the plain commit once nothing is in flight (unless a group comes
    /// first).
    flatten: bool,
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
        let applier = Applier::start(state.clone())?;
        Ok(Writer {
            state,
            options,
            trusted: log.as_ref().map(CommitLog::position),
            checkpointing: None,
            unlanded: Vec::new(),
            broken: false,
            log,
            generation,
            next_reopen: Instant::now(),
            flights,
            in_flight,
            finisher,
            syncer,
            applier,
            open: None,
            base: None,
            layers: Vec::new(),
            merged: Arc::default(),
            next_group: 0,
            no_watchers: false,
            rescan: false,
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
            } else if self.unlanded.len() >= MAX_UNLANDED {
                self.settle();
            }
        }
        self.checkpoint();
        self.settle();
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
            for mut job in flight.jobs {
                job.void();
                job.finish(Err(StateError::Internal(
                    "the store's syncer stopped: this write may or may not be applied; restart the process".into(),
                )));
            }
        }
    }

    /// The next request: waits, but retries reopening a closed file every
    /// `reopen_every` (so that reads resume too) and checkpoints once idle
    /// for `checkpoint_idle` with logged groups not in one. `None` once
    /// every sender is gone.
    fn next(&mut self, rx: &Receiver<Box<dyn WriteJob>>) -> Option<Box<dyn WriteJob>> {
        loop {
            if self.checkpointing.is_some() {
                match rx.recv_timeout(CHECKPOINT_POLL) {
                    Ok(job) => return Some(job),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        let _ = self.poll_checkpoint();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                }
            }
            if self.flatten && self.in_flight.load(Ordering::Acquire) == 0 {
                self.flatten = false;
                self.publish_committed();
            }
            let failed = self.state.failed();
            // A failure found while idle (a checkpoint's, or a sync's) asks
            // for a reopen at once (`close_for_replay`): not after a wait.
            if failed && !self.broken && Instant::now() >= self.next_reopen {
                let _ = self.database();
                continue;
            }
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
                self.options.reopen_every
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
                "the store's syncer or applier thread stopped; restart the process".into(),
            ));
        }
        let failed = match self.state.database() {
            Ok(db) => return Ok(db),
            Err(e) => e,
        };
        // Its groups are in the log: the reopen replays them.
        self.forget();
        if Instant::now() < self.next_reopen {
            return Err(failed);
        }
        self.next_reopen = Instant::now() + self.options.reopen_every;
        // Replay from the last checkpoint this writer saw succeed: the file
        // may claim a later one whose fsync failed.
        let path = self.state.path.clone();
        match open_file(&path, &self.options, self.trusted) {
            Ok((db, log)) => {
                let db = Arc::new(db);
                self.generation = self.state.opened(db.clone())?;
                self.trusted = log.as_ref().map(CommitLog::position);
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

    /// The file was closed (or is being reopened): drop what the writer
    /// held of it — after the group on its way to the applier has landed,
    /// since the applier holds the file open meanwhile. Every group it
    /// held is in the log: the reopen replays them.
    fn forget(&mut self) {
        let _ = self.applier.collect();
        if self.applier.gone() {
            self.broken = true;
        }
        self.checkpointing = None;
        self.unlanded.clear();
        self.open = None;
        self.base = None;
        self.layers.clear();
        self.merged = Arc::default();
    }

    /// A group given to the applier failed to land, or the applier is
    /// gone: redb lost the groups of its open transaction, which the log
    /// holds — close the file so that the reopen replays them (reads fail
    /// until then).
    fn lost_groups(&mut self, e: &StateError) {
        tracing::error!(error = %e, "applying logged groups to the state file failed");
        self.close_for_replay("a write to", e);
    }

    /// `what` (`a write to`, `a checkpoint of`) the file failed with `e`,
    /// and redb lost groups the log holds: close the file so that the
    /// reopen — tried at once — replays them (reads fail until then).
    fn close_for_replay(&mut self, what: &str, e: &StateError) {
        self.forget();
        self.state.fail(
            self.generation,
            format!(
                "{what} the state file {} failed ({e}); reopening it (the commit log holds every acknowledged write)",
                self.state.path.display()
            ),
        );
        self.next_reopen = Instant::now();
    }

    /// Take in what the group on its way to the applier left: its open
    /// transaction, or redb's new commit (dropping the layers it holds).
    /// `Err`: it failed (why), and the file is closed.
    fn collect(&mut self) -> Result<()> {
        match self.applier.collect() {
            None => Ok(()),
            Some(Ok(landed)) => {
                self.landed(landed);
                Ok(())
            }
            Some(Err(e)) => {
                if self.applier.gone() {
                    self.broken = true;
                }
                self.lost_groups(&e);
                Err(e)
            }
        }
    }

    /// A group landed: keep its open transaction (and take the applier's
    /// chunk in for the layers of its groups), or move the base to redb's
    /// new commit.
    fn landed(&mut self, landed: Landed) {
        self.open = landed.open;
        if let Some((first, last, chunk)) = landed.chunk {
            self.take_chunk(first, last, chunk);
        }
        let Some((through, base)) = landed.committed else {
            return;
        };
        let Some(base) = base else {
            // Committed, but reads could not be given the new state: close
            // the file, so that they fail until the reopen publishes it.
            self.forget();
            self.state.fail(
                self.generation,
                "no read snapshot could be taken after a commit; reopening the state file".into(),
            );
            return;
        };
        self.layers.retain(|(last, _)| *last > through);
        self.merged = Arc::default();
        for (_, layer) in &self.layers {
            merge(&mut self.merged, layer);
        }
        self.base = Some(base);
        // Asked again once the view is whole: the group being committed may
        // have written the first registration, not in `merged` yet.
        self.rescan = true;
    }

    /// The applier merged the writes of groups `first..=last` into
    /// `chunk`: reads walk it instead of their layers (the same writes,
    /// one lookup). Only when those layers are exactly the groups' own,
    /// one each: a commit or reopen since may have dropped some.
    fn take_chunk(&mut self, first: u64, last: u64, chunk: Arc<Writes>) {
        let Some(start) = self.layers.iter().position(|(l, _)| *l == first) else {
            return;
        };
        let Some(end) = self.layers.iter().position(|(l, _)| *l == last) else {
            return;
        };
        let span = usize::try_from(last - first).ok().map(|n| n + 1);
        if start > end || span != Some(end - start + 1) {
            return;
        }
        self.layers.splice(start..=end, [(last, chunk)]);
    }

    /// Whether the view holds a watch registration, asked again (a
    /// registration removed since the last scan stops costing lookups).
    fn rescan_watchers(&mut self) {
        self.rescan = false;
        self.no_watchers = match &self.base {
            Some(base) => no_watchers(&self.merged.over(&**base)).unwrap_or(false),
            None => false,
        };
    }

    /// Run the batch's jobs over redb's last commit and the groups logged
    /// since, and keep the ones that succeeded: with a log, the group is
    /// written to it, handed to the applier and read as a layer until redb
    /// commits it; without, it is committed to redb here (without an
    /// fsync). The group is what the syncer then finishes. A failure (of
    /// the log, or of the commit without a log) leaves nothing of this
    /// group.
    fn commit(&mut self, db: &Arc<Database>, batch: &mut [Box<dyn WriteJob>]) -> Result<Committed> {
        let base = match &self.base {
            Some(base) => base.clone(),
            None => {
                let base = open_snapshot(db)?;
                self.base = Some(base.clone());
                self.rescan_watchers();
                base
            }
        };
        let logging = self.log.is_some();
        let mut record = Record::default();
        let (writes, layer) = {
            let view = self.merged.over(&*base);
            let mut sink = Sink {
                view: &view,
                record: logging.then_some(&mut record),
                writes: 0,
                no_watchers: &mut self.no_watchers,
                counter: GroupCounter::default(),
            };
            // Each job runs straight over the group's overlay from a
            // savepoint, and its writes are kept only if it succeeds; so
            // what many jobs rewrite (the etag counter, an owner's usage)
            // reaches the log and redb once per group.
            let mut group = Overlay::new(&mut sink);
            for job in batch.iter_mut() {
                group.savepoint();
                let applied = catch_unwind(AssertUnwindSafe(|| job.apply(&mut group)));
                match applied {
                    Ok(Ok(())) => group.release(),
                    Ok(Err(_)) => group.rollback(),
                    Err(_) => {
                        group.rollback();
                        tracing::error!("a write request panicked; its writes were discarded");
                    }
                }
            }
            // The etag counter, once for the group (its requests left the
            // last version issued with the writer, not in the buffer).
            if let Some(GroupCounter { last: Some(v) }) = group.etag_counter().copied() {
                group.put(layout::COUNTER, &v.to_be_bytes())?;
            }
            let layer = group.flush_keep()?;
            (sink.writes, layer)
        };
        // The group before has landed by now, most often (it ran while this
        // one's requests did): take in its outcome — a new redb commit means
        // fewer layers for this group's readers. If it failed, this group's
        // requests read writes that never happened: none of their outcomes
        // stands, whether they wrote or not. (While a checkpoint runs, the
        // applier is not waited for: see whether it is done.)
        let polled = if self.checkpointing.is_some() {
            self.poll_checkpoint()
        } else {
            self.collect()
        };
        if let Err(e) = polled {
            for job in batch.iter_mut() {
                job.void();
            }
            return Err(StateError::Unavailable(format!(
                "a write to the state file {} failed ({e}); this request was not carried out, and the file is being reopened (the commit log holds every acknowledged write): retry",
                self.state.path.display()
            )));
        }
        if writes == 0 {
            return Ok(Committed::Unchanged);
        }
        // Reads must see this group's layer: no plain commit is published
        // in its place.
        self.flatten = false;
        let layer = Arc::new(layer);
        if self.base.is_none() {
            // It landed, but no snapshot could be taken: the file was
            // closed, and this group ran over a view the reopen rebuilds.
            return Err(StateError::Unavailable(format!(
                "the state file {} is being reopened; retry",
                self.state.path.display()
            )));
        }
        // Numbered once logged (or landed, without a log): numbers of the
        // groups in layers follow each other, as the applier's chunks
        // count them.
        let group = self.next_group;
        let Some(log) = self.log.as_mut() else {
            // No log: the group is in redb before it is answered, or fails.
            self.next_group += 1;
            let landed = land(&mut Land {
                db: db.clone(),
                open: None,
                layers: vec![(group, layer)],
                logged: None,
                pos: None,
                checkpoint: false,
                group,
            });
            return match landed {
                Ok(landed) => {
                    self.landed(landed);
                    if self.rescan {
                        self.rescan_watchers();
                    }
                    let snapshot = self.base.clone().map(|b| Arc::new(Snapshot::committed(b)));
                    Ok(Committed::Changed(None, snapshot, None))
                }
                Err(e) => {
                    tracing::error!(error = %e, jobs = batch.len(), "commit failed");
                    self.check(db, &e);
                    Err(e)
                }
            };
        };
        let appended = match log.write(&mut record) {
            Ok(appended) => appended,
            Err(e) => {
                // The group fails whole. Earlier groups keep their records
                // (the next record is written where this one failed) and
                // their place in the applier's transaction.
                let e = log_error(log.path(), &e);
                tracing::error!(error = %e, jobs = batch.len(), "commit failed");
                return Err(e);
            }
        };
        log.committed(appended);
        self.next_group += 1;
        let file = log.file().clone();
        let path = log.path_of(appended).to_path_buf();
        merge(&mut self.merged, &layer);
        self.layers.push((group, layer.clone()));
        if self.rescan {
            self.rescan_watchers();
        }
        let snapshot = self.base.clone().map(|base| {
            Arc::new(Snapshot {
                base,
                layers: self.layers.iter().map(|(_, l)| l.clone()).collect(),
            })
        });
        if self.checkpointing.is_some() {
            // The applier is busy with a checkpoint: the group is answered
            // once the log is synced, and lands after the checkpoint.
            self.unlanded.push((group, layer));
            return Ok(Committed::Changed(Some(file), snapshot, None));
        }
        // Durable once the log is synced; in redb at a later commit (with
        // the groups logged during the last checkpoint, if they wait).
        let (told, landing) = mpsc::channel();
        let logged = Logged {
            path,
            appended,
            generation: self.generation,
            told,
        };
        let mut layers = std::mem::take(&mut self.unlanded);
        layers.push((group, layer));
        let sent = self.applier.send(Land {
            db: db.clone(),
            open: self.open.take(),
            layers,
            logged: Some(logged),
            pos: Some(appended.next()),
            checkpoint: false,
            group,
        });
        if let Err(e) = sent {
            self.broken = true;
            self.lost_groups(&e);
        }
        Ok(Committed::Changed(Some(file), snapshot, Some(landing)))
    }

    /// Start a checkpoint: a durable redb commit of every group logged so
    /// far (the open transaction's, when there is one), run by the applier
    /// while the writer goes on in the other log file. A checkpoint still
    /// running is waited for first (its file still holds records the data
    /// file may not), and so are the groups on their way to redb. A
    /// failure closes the file (the reopen replays the log).
    fn checkpoint(&mut self) {
        self.settle();
        if !self.log.as_ref().is_some_and(CommitLog::pending) {
            return;
        }
        let Ok(db) = self.state.database() else {
            self.forget();
            return;
        };
        // Every logged group in the transaction first.
        if self.collect().is_err() {
            return;
        }
        if let Some(pos) = self.unlanded_pos() {
            let layers = std::mem::take(&mut self.unlanded);
            let group = layers.last().map_or(0, |(g, _)| *g);
            if self.send(&db, layers, pos, false, group).is_err() || self.collect().is_err() {
                return;
            }
        }
        let Some(log) = self.log.as_mut() else {
            return;
        };
        let pos = log.switch();
        let through = self.next_group.saturating_sub(1);
        if self.send(&db, Vec::new(), pos, true, through).is_ok() {
            self.checkpointing = Some(Running {
                started: Instant::now(),
                pos,
            });
        }
    }

    /// Where the log goes on after the last group in [`Writer::unlanded`]
    /// (none if none waits).
    fn unlanded_pos(&self) -> Option<LogPos> {
        self.unlanded.last()?;
        self.log.as_ref().map(CommitLog::position)
    }

    /// Send the applier `layers` (and `pos`, and a `checkpoint`) whose
    /// requests have been answered; `Err`: it is gone (the file is closed).
    fn send(
        &mut self,
        db: &Arc<Database>,
        layers: Vec<(u64, Arc<Writes>)>,
        pos: LogPos,
        checkpoint: bool,
        group: u64,
    ) -> Result<()> {
        let sent = self.applier.send(Land {
            db: db.clone(),
            open: self.open.take(),
            layers,
            logged: None,
            pos: Some(pos),
            checkpoint,
            group,
        });
        if let Err(e) = &sent {
            self.broken = true;
            self.lost_groups(e);
        }
        sent
    }

    /// Wait for the running checkpoint, if one is.
    fn settle(&mut self) {
        if self.checkpointing.is_some() {
            let outcome = self.applier.collect();
            // A failure closed the file: the reopen replays the log.
            let _ = self.checkpoint_done(outcome);
        }
    }

    /// Take in the running checkpoint's outcome if it is done (does not
    /// wait). `Err`: it failed (why), and the file is closed.
    fn poll_checkpoint(&mut self) -> Result<()> {
        match self.applier.try_collect() {
            None if self.applier.busy() => Ok(()),
            outcome => self.checkpoint_done(outcome),
        }
    }

    /// The running checkpoint ended with `outcome` (none: the applier had
    /// nothing on its way, which cannot be).
    fn checkpoint_done(&mut self, outcome: Option<Result<Landed>>) -> Result<()> {
        let Some(running) = self.checkpointing.take() else {
            return Ok(());
        };
        let outcome = outcome.unwrap_or_else(|| {
            Err(StateError::Internal(
                "a checkpoint was lost on its way to the applier".into(),
            ))
        });
        if let Some(m) = &self.options.metrics {
            m.checkpoint(running.started.elapsed());
        }
        match outcome {
            Ok(landed) => {
                self.trusted = Some(running.pos);
                // redb's commit holds every group through the checkpoint;
                // the layers left are the groups logged since.
                self.landed(landed);
                // With none, reads may drop their layers — once no group is
                // on its way to durability (its snapshot comes later).
                if self.layers.is_empty() && self.base.is_some() {
                    self.flatten = true;
                }
                Ok(())
            }
            Err(e) => {
                if self.applier.gone() {
                    self.broken = true;
                }
                tracing::error!(error = %e, "checkpoint failed");
                self.close_for_replay("a checkpoint of", &e);
                Err(e)
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
            self.next_reopen = Instant::now() + self.options.reopen_every;
        }
    }
}

/// Merge `layer`, the next group's writes (or a chunk's), into `merged`,
/// what requests read: over nothing, the layer itself is shared rather
/// than copied (a lone group, after a checkpoint, costs no copy); a shared
/// buffer is copied before it changes, so a layer never takes in another's
/// writes.
fn merge(merged: &mut Arc<Writes>, layer: &Arc<Writes>) {
    if merged.is_empty() {
        *merged = layer.clone();
    } else {
        Arc::make_mut(merged).merge(layer);
    }
}
