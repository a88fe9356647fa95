//! The applier thread: applies logged groups to redb's open write
//! transaction, and commits it every [`MAX_LAYERS`] groups — while the
//! writer already runs the next group, reading the groups not yet in a redb
//! commit as layers. Inserting a group's writes into redb's B-tree was
//! 40 % of the writer's instructions per write at 64 writers (callgrind);
//! here it overlaps with the next group's requests.
//!
//! One land is on its way at a time (the writer collects the one before
//! it sends the next), so the writer's layers stay bounded. A group reaches
//! the applier once it is in the commit log, and is answered only once it
//! is in redb's transaction too ([`Landing`]): a group that does not fit
//! (a full disk) fails as it did when the writer applied it itself — its
//! log record is erased first, and the next group, which read its writes,
//! is never logged. The earlier groups the dropped transaction held are
//! in the log: the writer closes the file and the reopen replays them.
//!
//! Checkpoints run here too: a durable commit of the open transaction,
//! which takes 100–170 ms under sustained writes. The writer does not wait
//! for it: the groups it logs meanwhile (in the other log file) are
//! answered once the log is synced and wait in the writer, read as layers,
//! until the checkpoint is done; then they come here together. They cannot
//! fail on their own any more — a failure to put them into redb closes the
//! file, and the reopen replays them as it replays the groups of a dropped
//! transaction. Stores without a log apply each group on the writer thread
//! instead ([`land`]), and a failure there fails the group.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use redb::{Database, Durability, WriteTransaction};

use super::log::{self, Appended, LogPos};
use super::table::{ReadTable, TABLE, TableRw, Tbl};
use super::{State, open_snapshot};
use crate::store::error::{Result, StateError};
use crate::store::kv::backend::{RawWrite, Writes, unavailable};
use crate::store::kv::layout;

/// Groups applied to the open transaction, at most, before one redb commit
/// takes them in (stores with a commit log). A redb commit — allocating,
/// checksumming and flushing the copied pages of every table it touched —
/// cost more than the group's own writes; the log already makes each group
/// durable, so redb commits only every few groups, and reads see the
/// groups in between through their buffered writes. (Every 32 groups
/// rather than 8, with [`CHUNK`]s for reads: +9 % writes/s at 64 writers,
/// measured.)
pub(super) const MAX_LAYERS: usize = 32;

/// Groups whose writes the applier merges into one layer for reads
/// ([`Landed::chunk`]), so that a read walks at most
/// `MAX_LAYERS / CHUNK - 1 + CHUNK` layers (11) however many groups redb
/// has not committed yet.
pub(super) const CHUNK: usize = 8;

/// Bytes those groups' writes may hold at most before the commit.
pub(super) const MAX_LAYER_BYTES: usize = 8 << 20;

/// A write transaction kept open across groups (stores with a log), and
/// how much it holds that redb has not committed.
pub(super) struct Open {
    pub(super) wtx: WriteTransaction,
    groups: usize,
    bytes: usize,
    /// The writes of the groups applied since the last chunk, merged, and
    /// the number of the first of them.
    chunk: Writes,
    chunk_first: Option<u64>,
}

impl Open {
    /// A new transaction over the newest commit of `db`.
    pub(super) fn begin(db: &Database) -> Result<Self> {
        let mut wtx = db.begin_write().map_err(unavailable)?;
        wtx.set_durability(Durability::None).map_err(unavailable)?;
        Ok(Open {
            wtx,
            groups: 0,
            bytes: 0,
            chunk: Writes::default(),
            chunk_first: None,
        })
    }
}

/// Where the applier tells the syncer whether a logged group made it into
/// redb's transaction.
pub(super) type Landing = Receiver<Result<()>>;

/// A group's place in the commit log.
pub(super) struct Logged {
    /// The log file.
    pub(super) path: PathBuf,
    /// The group's record.
    pub(super) appended: Appended,
    /// Which opening of the data file it was logged on.
    pub(super) generation: u64,
    /// Where the group's outcome goes ([`Landing`]).
    pub(super) told: Sender<Result<()>>,
}

/// Groups for redb (one, most often), or a checkpoint.
pub(super) struct Land {
    pub(super) db: Arc<Database>,
    /// The transaction to apply them in (none: begin one).
    pub(super) open: Option<Open>,
    /// The groups' writes with the writer's numbers, oldest first: one
    /// group, or the groups logged while a checkpoint ran (already
    /// answered), maybe with one more; none for a checkpoint.
    pub(super) layers: Vec<(u64, Arc<Writes>)>,
    /// The last group's commit log record, when its requests wait to hear
    /// that it landed (none: no log, or answered already).
    pub(super) logged: Option<Logged>,
    /// Where the log goes on after the last group (none: no log; then the
    /// groups are committed at once).
    pub(super) pos: Option<LogPos>,
    /// Commit durably (a checkpoint): the data file then holds every group
    /// through `pos`, and the log can be written over up to there.
    pub(super) checkpoint: bool,
    /// The writer's number of the last group redb holds after this.
    pub(super) group: u64,
}

/// What applying a group left.
pub(super) struct Landed {
    /// The transaction, still open (none: it was committed).
    pub(super) open: Option<Open>,
    /// It was committed: every group through this one is in redb's last
    /// commit, and a snapshot of it (none: none could be taken).
    pub(super) committed: Option<(u64, Option<Arc<ReadTable>>)>,
    /// Not committed, but the last of [`CHUNK`] groups: the writes of
    /// groups `first..=last` merged into one layer, which reads like the
    /// groups' own layers in order (`Writes::merge`).
    pub(super) chunk: Option<(u64, u64, Arc<Writes>)>,
}

/// Apply `l.layers` (and the log's position) in `l.open` or a new
/// transaction; commit it (without an fsync: the log or the store's choice
/// makes it durable) when the store has no log, or it holds [`MAX_LAYERS`]
/// groups or [`MAX_LAYER_BYTES`] — or durably, for a checkpoint. On an
/// error the transaction is dropped: redb holds none of its groups.
pub(super) fn land(l: &mut Land) -> Result<Landed> {
    let mut open = match l.open.take() {
        Some(open) => open,
        None => Open::begin(&l.db)?,
    };
    {
        let mut table: TableRw<'_> = Tbl(open.wtx.open_table(TABLE).map_err(unavailable)?);
        for (_, layer) in &l.layers {
            layer.apply_to(&mut table)?;
        }
        // Whatever makes this commit durable (a checkpoint, redb closing
        // the file) records where the log goes on after it.
        if let Some(pos) = l.pos {
            table.put(layout::LOG_SEQ, &pos.encode())?;
        }
    }
    open.groups += l.layers.len();
    open.bytes += l.layers.iter().map(|(_, w)| w.bytes()).sum::<usize>();
    if l.checkpoint {
        open.wtx
            .set_durability(Durability::Immediate)
            .map_err(unavailable)?;
    } else if l.pos.is_some() && open.groups < MAX_LAYERS && open.bytes < MAX_LAYER_BYTES {
        let mut chunk = None;
        if let [(group, layer)] = l.layers.as_slice() {
            // Merged here, while the writer runs the next group: the writer
            // only swaps the chunk in for the groups' layers. (Not the last
            // chunk before the commit: the commit drops those layers
            // anyway.)
            if open.groups <= MAX_LAYERS - CHUNK {
                open.chunk.merge(layer);
                let first = *open.chunk_first.get_or_insert(*group);
                if open.groups % CHUNK == 0 {
                    open.chunk_first = None;
                    chunk = Some((first, *group, Arc::new(std::mem::take(&mut open.chunk))));
                }
            }
        } else {
            // Several groups at once: their layers stay as they are until
            // the commit, and the next chunk starts after them.
            open.chunk = Writes::default();
            open.chunk_first = None;
        }
        return Ok(Landed {
            open: Some(open),
            committed: None,
            chunk,
        });
    }
    open.wtx.commit().map_err(unavailable)?;
    let base = open_snapshot(&l.db)
        .inspect_err(|e| tracing::warn!(error = %e, "no snapshot after a commit"))
        .ok();
    Ok(Landed {
        open: None,
        committed: Some((l.group, base)),
        chunk: None,
    })
}

/// The applier thread and the one group on its way to it.
pub(super) struct Applier {
    lands: Option<SyncSender<Land>>,
    landed: Receiver<Result<Landed>>,
    thread: Option<JoinHandle<()>>,
    /// A group was sent and its outcome not yet collected.
    busy: bool,
    /// The thread is gone.
    gone: bool,
}

impl Applier {
    /// Start the thread (for `state`'s file).
    pub(super) fn start(state: Arc<State>) -> Result<Self> {
        let (lands, rx) = mpsc::sync_channel::<Land>(1);
        let (tx, landed) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("wasm-state-applier".into())
            .spawn(move || {
                while let Ok(mut l) = rx.recv() {
                    held(&state, &l);
                    let outcome = if injected_failure(&state, &l) {
                        Err(StateError::Unavailable("an injected failure".into()))
                    } else {
                        catch_unwind(AssertUnwindSafe(|| land(&mut l))).unwrap_or_else(|_| {
                            Err(StateError::Internal(
                                "applying a group to the state file panicked".into(),
                            ))
                        })
                    };
                    // The file's handle goes before the writer hears: after
                    // a failure it reopens the file, which redb refuses
                    // while another handle on it lives.
                    let Land {
                        db,
                        logged,
                        open,
                        layers,
                        ..
                    } = l;
                    drop((open, layers, db));
                    let outcome = match (outcome, logged) {
                        (outcome, None) => outcome,
                        (Ok(landed), Some(logged)) => {
                            let _ = logged.told.send(Ok(()));
                            Ok(landed)
                        }
                        (Err(e), Some(logged)) => {
                            let e = erase(&state, logged, e);
                            Err(e)
                        }
                    };
                    if tx.send(outcome).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| StateError::Internal(format!("cannot start the applier thread: {e}")))?;
        Ok(Applier {
            lands: Some(lands),
            landed,
            thread: Some(thread),
            busy: false,
            gone: false,
        })
    }

    /// The outcome of the group on its way, once it has landed (waits);
    /// none if nothing was on its way.
    pub(super) fn collect(&mut self) -> Option<Result<Landed>> {
        if !std::mem::take(&mut self.busy) {
            return None;
        }
        Some(self.landed.recv().unwrap_or_else(|_| {
            self.gone = true;
            Err(StateError::Internal(
                "the store's applier thread stopped; restart the process".into(),
            ))
        }))
    }

    /// The outcome of the land on its way if it has landed (does not
    /// wait); none if it has not, or nothing was on its way.
    pub(super) fn try_collect(&mut self) -> Option<Result<Landed>> {
        if !self.busy {
            return None;
        }
        let outcome = match self.landed.try_recv() {
            Ok(outcome) => outcome,
            Err(mpsc::TryRecvError::Empty) => return None,
            Err(mpsc::TryRecvError::Disconnected) => {
                self.gone = true;
                Err(StateError::Internal(
                    "the store's applier thread stopped; restart the process".into(),
                ))
            }
        };
        self.busy = false;
        Some(outcome)
    }

    /// Whether a land is on its way and not collected yet.
    pub(super) fn busy(&self) -> bool {
        self.busy
    }

    /// Whether the thread is gone (nothing can be applied any more).
    pub(super) fn gone(&self) -> bool {
        self.gone
    }

    /// Send `l` (after [`collect`](Applier::collect)ing the one before).
    /// `Err`: the thread is gone.
    pub(super) fn send(&mut self, l: Land) -> Result<()> {
        debug_assert!(!self.busy, "one group on its way at a time");
        let sent = self.lands.as_ref().is_some_and(|s| s.send(l).is_ok());
        if !sent {
            self.gone = true;
            return Err(StateError::Internal(
                "the store's applier thread stopped; restart the process".into(),
            ));
        }
        self.busy = true;
        Ok(())
    }
}

/// Tests make the applier fail a land as a full disk would: the next one
/// that writes a given key, or the next checkpoint.
fn injected_failure(state: &State, land: &Land) -> bool {
    #[cfg(test)]
    {
        let mut key = state
            .fail_land_writing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let hit = key.as_deref().is_some_and(|k| {
            land.layers.iter().any(|(_, l)| l.touches(k))
                || (land.checkpoint && k == CHECKPOINT_KEY)
        });
        if hit {
            *key = None;
        }
        hit
    }
    #[cfg(not(test))]
    {
        let _ = (state, land);
        false
    }
}

/// Tests hold a checkpoint: the next one waits for the word (see
/// `State::hold_checkpoint`).
fn held(state: &State, land: &Land) {
    #[cfg(test)]
    if land.checkpoint {
        let gate = state
            .hold_checkpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some((holding, go)) = gate {
            let _ = holding.send(());
            let _ = go.recv();
        }
    }
    #[cfg(not(test))]
    let _ = (state, land);
}

/// Tests: what [`injected_failure`] takes for "the next checkpoint".
#[cfg(test)]
pub(super) const CHECKPOINT_KEY: &[u8] = b"(checkpoint)";

/// `logged` failed to land with `e`: erase its record, then fail it. If
/// the record cannot be erased, nothing logged on that opening of the file
/// can be vouched for (`State::log_lost`).
fn erase(state: &State, logged: Logged, e: StateError) -> StateError {
    let e = match log::retract(&logged.path, logged.appended) {
        Ok(()) => e,
        Err(r) => {
            let message = format!(
                "{e}; and the commit log {} could not be corrected ({r}): the writes of this request may or may not be applied when the store is next opened",
                logged.path.display()
            );
            state.log_lost(logged.generation, message.clone());
            StateError::Unavailable(message)
        }
    };
    let _ = logged.told.send(Err(e.clone()));
    e
}

impl Drop for Applier {
    fn drop(&mut self) {
        self.lands.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
