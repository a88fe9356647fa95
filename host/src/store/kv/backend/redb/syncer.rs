//! The syncer thread: makes committed groups durable (one `fdatasync` of the
//! commit log for every group waiting), then publishes the newest snapshot
//! and answers the groups' requests, in commit order — while the writer
//! already runs the next group. When nothing is in flight and no request
//! waits, there is nothing to overlap: the writer finishes its group itself
//! (the same [`Finisher`]) and saves the hand-over.

use std::fs::File;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::State;
use super::applier::Landing;
use super::table::Snapshot;
use crate::metrics::Metrics;
use crate::store::error::{Result, StateError};
use crate::store::kv::backend::WriteJob;

/// One committed (or failed) group on its way to its requests.
pub(super) struct Flight {
    /// The group's requests.
    pub(super) jobs: Vec<Box<dyn WriteJob>>,
    /// The commit's outcome.
    pub(super) outcome: Result<()>,
    /// The log holding the group's record, to sync before answering (none:
    /// nothing was logged).
    pub(super) sync: Option<Arc<File>>,
    /// The state right after the commit, what reads see once it is durable.
    pub(super) snapshot: Option<Arc<Snapshot>>,
    /// Where the applier tells whether the group made it into redb's
    /// transaction (none: it was committed before the hand-over): it is
    /// answered only after, and fails if it did not.
    pub(super) landing: Option<Landing>,
    /// Which opening of the file the group was committed on.
    pub(super) generation: u64,
    /// Whether a commit was made (or tried): not for a group that wrote
    /// nothing, which the commit metrics leave out.
    pub(super) commit: bool,
    /// When the writer took the group, and how many requests still waited.
    pub(super) started: Instant,
    pub(super) waiting: usize,
}

/// What a commit leaves to the syncer.
pub(super) enum Committed {
    /// The group wrote something: the log file to sync (none without a
    /// log), the snapshot to publish once it is synced (none: none could be
    /// taken), and where the applier tells how applying it went (none: it
    /// is in redb already).
    Changed(Option<Arc<File>>, Option<Arc<Snapshot>>, Option<Landing>),
    /// The group wrote nothing (its requests failed or had nothing to
    /// write): no commit was made, nothing is synced or published — what
    /// reads see does not change — and its requests are still answered in
    /// order, after every group before them is durable.
    Unchanged,
}

impl Flight {
    /// The flight of `jobs`, committed (or not) on opening `generation`.
    pub(super) fn new(
        jobs: Vec<Box<dyn WriteJob>>,
        committed: Result<Committed>,
        generation: u64,
        (started, waiting): (Instant, usize),
    ) -> Self {
        let commit = !matches!(committed, Ok(Committed::Unchanged));
        let (outcome, (sync, snapshot, landing)) = match committed {
            Ok(Committed::Changed(sync, snapshot, landing)) => (Ok(()), (sync, snapshot, landing)),
            Ok(Committed::Unchanged) => (Ok(()), (None, None, None)),
            Err(e) => (Err(e), (None, None, None)),
        };
        Flight {
            jobs,
            outcome,
            sync,
            snapshot,
            landing,
            generation,
            commit,
            started,
            waiting,
        }
    }
}

/// Most groups answered after one sync.
const MAX_GROUPS: usize = 64;

/// Finish flights from `rx` until the writer is gone; `in_flight` counts
/// the flights sent and not yet finished.
pub(super) fn run(finisher: &Mutex<Finisher>, rx: &Receiver<Flight>, in_flight: &AtomicUsize) {
    while let Ok(first) = rx.recv() {
        let mut flights = vec![first];
        while flights.len() < MAX_GROUPS {
            match rx.try_recv() {
                Ok(f) => flights.push(f),
                Err(_) => break,
            }
        }
        let n = flights.len();
        // The finisher holds no invariant a panic could break (a panic in
        // it would have come from answering a request): go on.
        finisher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .finish(flights);
        in_flight.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Makes flights durable, publishes and answers them.
pub(super) struct Finisher {
    state: Arc<State>,
    metrics: Option<Arc<Metrics>>,
}

impl Finisher {
    /// The finisher of `state`'s flights.
    pub(super) fn new(state: Arc<State>, metrics: Option<Arc<Metrics>>) -> Self {
        Finisher { state, metrics }
    }

    /// Sync, publish and answer `flights` (in commit order; every earlier
    /// flight is finished).
    pub(super) fn finish(&mut self, mut flights: Vec<Flight>) {
        let state = &*self.state;
        // One sync per log file (a reopen between two groups makes two).
        let mut synced: Vec<&Arc<File>> = Vec::new();
        for f in flights.iter().filter(|f| f.outcome.is_ok()) {
            let Some(file) = &f.sync else { continue };
            if synced.iter().any(|s| Arc::ptr_eq(s, file)) {
                continue;
            }
            synced.push(file);
            if let Err(e) = file.sync_data() {
                tracing::error!(error = %e, path = %state.path.display(), "the commit log could not be synced; reopening the state file");
                state.log_lost(
                    f.generation,
                    format!(
                        "the commit log of {} could not be synced ({e}); writes are refused until the disk works again",
                        state.path.display()
                    ),
                );
            }
        }
        // A group the applier could not put into redb fails (its log
        // record was erased first); the ones after it were never logged.
        for f in &mut flights {
            if let Some(landing) = f.landing.take()
                && f.outcome.is_ok()
            {
                f.outcome = landing.recv().unwrap_or_else(|_| {
                    Err(StateError::Internal(
                        "the store's applier thread stopped: this write may or may not be applied; restart the process".into(),
                    ))
                });
            }
        }
        // What reads see, before anyone hears of these groups.
        if let Some((f, snap)) = flights
            .iter()
            .rev()
            .filter(|f| f.outcome.is_ok() && !state.lost(f.generation))
            .find_map(|f| f.snapshot.as_ref().map(|s| (f, s)))
        {
            state.publish(f.generation, snap.clone());
        }
        for mut f in flights {
            let outcome = match f.outcome {
                Ok(()) if state.lost(f.generation) => Err(StateError::Unavailable(format!(
                    "the commit log of {} could not be synced: this write may or may not be applied when the store is next opened",
                    state.path.display()
                ))),
                outcome => outcome,
            };
            // A group that failed as a whole: a request of it that failed
            // on its own may have failed over an earlier request's writes,
            // which never happened — every request hears the group's
            // failure.
            if outcome.is_err() {
                for job in &mut f.jobs {
                    job.void();
                }
            }
            if let Some(m) = &self.metrics
                && f.commit
            {
                m.commit(f.jobs.len(), f.started.elapsed(), f.waiting);
            }
            for job in f.jobs {
                job.finish(outcome.clone());
            }
        }
    }
}
