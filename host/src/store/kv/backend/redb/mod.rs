//! The embedded default backend: one redb file, one table of byte keys, its
//! commit log (`<file>.wal`), and two threads that group-commit queued
//! requests.
//!
//! Reads use the newest **durable** snapshot, published by the syncer, and
//! never wait for the writer. Writes are [`WriteJob`]s sent to the
//! [`writer`] thread, which drains its queue, runs each job against its own
//! [`Overlay`](super::Overlay) inside one write transaction, keeps only the
//! jobs that succeeded, writes the group's byte-level writes to the commit
//! log ([`log`]), commits to redb without an fsync, and hands the group to
//! the [`syncer`] thread — then goes on with the next group while the
//! syncer fsyncs the log, publishes the snapshot taken right after the
//! group's commit, and only then answers the group's requests. So the
//! fsync of one group overlaps the work of the next, and no reader or
//! caller ever sees a write before it is durable. A checkpoint (a durable
//! redb commit) every so often lets the log start again, and opening the
//! file replays what a crash left in the log.
//!
//! After an I/O error (a full disk, a file-size limit, a failed fsync), redb
//! or the log refuses writes until the file is reopened. The writer then
//! drops the database and reopens it — redb's recovery and the log's replay
//! bring back every acknowledged write — failing requests with
//! `Unavailable` meanwhile and retrying at most every [`writer::REOPEN_EVERY`],
//! so the store recovers by itself when space returns.

mod log;
mod syncer;
mod table;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use self::log::CommitLog;
use self::table::{Pinned, Snapshot, TABLE, Tbl};
use super::{Backend, RawRead, WriteJob, unavailable};
use crate::store::error::{Result, StateError};

/// The commit log's id (`id`: which log belongs to this file) and the
/// sequence number of the last logged group a checkpoint holds (`seq`).
const LOG_TABLE: TableDefinition<&str, u64> = TableDefinition::new("wasm-state-log");

/// Options of the redb backend.
#[derive(Debug, Clone)]
pub struct RedbOptions {
    /// Every acknowledged write survives a crash (default): each group
    /// commit is fsynced through the commit log before it is answered or
    /// seen. Off trades crash durability for speed (no log, no fsync).
    pub durable: bool,
    /// redb page cache in bytes.
    pub cache_bytes: usize,
    /// A checkpoint (a durable commit of the data file, after which the
    /// commit log starts again) is made once the writer has been idle this
    /// long with logged writes not yet in one (default 100 ms); a log three
    /// quarters full and every 1,024 groups also make one.
    pub checkpoint_idle: Duration,
    /// Where commit batch sizes and latencies are counted (set by
    /// [`Store::open`](crate::store::Store::open) to the store's metrics).
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            durable: true,
            cache_bytes: 256 << 20,
            checkpoint_idle: Duration::from_millis(100),
            metrics: None,
        }
    }
}

/// What the backend, its writer and its syncer share.
pub(super) struct State {
    /// The open database, or the error that closed it until it is reopened.
    db: RwLock<std::result::Result<Arc<Database>, String>>,
    /// The newest durable snapshot, shared by reads until the next one is
    /// published.
    published: Mutex<Option<Arc<Snapshot>>>,
    /// Which opening of the file `db` is (a snapshot of an earlier one is
    /// never published).
    generation: AtomicU64,
    path: PathBuf,
}

impl State {
    /// The open database.
    fn database(&self) -> Result<Arc<Database>> {
        match &*self.db.read().map_err(unavailable)? {
            Ok(db) => Ok(db.clone()),
            Err(e) => Err(StateError::Unavailable(e.clone())),
        }
    }

    /// Whether the file is closed after an I/O error.
    fn failed(&self) -> bool {
        self.db.read().map_or(true, |db| db.is_err())
    }

    /// Make `snap` (of opening `generation`) what reads see.
    fn publish(&self, generation: u64, snap: Option<Arc<Snapshot>>) {
        if generation == self.generation.load(Ordering::Acquire)
            && let Ok(mut p) = self.published.lock()
        {
            *p = snap;
        }
    }

    /// Close the file after an I/O error: writes and reads fail with
    /// `message` until the writer reopens it.
    fn fail(&self, message: String) {
        if let Ok(mut slot) = self.db.write() {
            if let Ok(mut p) = self.published.lock() {
                *p = None; // it holds the old file open
            }
            *slot = Err(message);
        }
    }

    /// The database was (re)opened: it is what reads and writes use now.
    fn opened(&self, db: Arc<Database>) -> Result<u64> {
        let snap = open_snapshot(&db)?;
        let mut slot = self.db.write().map_err(unavailable)?;
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        *self.published.lock().map_err(unavailable)? = Some(snap);
        *slot = Ok(db);
        Ok(generation)
    }
}

/// A read-only snapshot of the newest commit of `db`.
fn open_snapshot(db: &Database) -> Result<Arc<Snapshot>> {
    let rtx = db.begin_read().map_err(unavailable)?;
    Ok(Arc::new(Tbl(rtx.open_table(TABLE).map_err(unavailable)?)))
}

/// The redb backend.
pub struct RedbBackend {
    state: Arc<State>,
    queue: Mutex<Option<Sender<Box<dyn WriteJob>>>>,
    /// Jobs sent and not yet taken by the writer.
    queued: Arc<AtomicUsize>,
    writer: Option<JoinHandle<()>>,
}

impl RedbBackend {
    /// Open (or create) the database file at `path`.
    pub fn open(path: &Path, options: RedbOptions) -> Result<Self> {
        let (db, log) = open_file(path, &options)?;
        let state = Arc::new(State {
            db: RwLock::new(Err("not open yet".into())),
            published: Mutex::new(None),
            generation: AtomicU64::new(0),
            path: path.to_path_buf(),
        });
        let generation = state.opened(Arc::new(db))?;
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let writer = writer::Writer::start(state.clone(), options, log, generation)?;
        let writer_queued = queued.clone();
        let writer = std::thread::Builder::new()
            .name("wasm-state-writer".into())
            .spawn(move || writer.run(&rx, &writer_queued))
            .map_err(|e| StateError::Internal(format!("cannot start the writer thread: {e}")))?;
        Ok(RedbBackend {
            state,
            queue: Mutex::new(Some(tx)),
            queued,
            writer: Some(writer),
        })
    }
}

impl Drop for RedbBackend {
    fn drop(&mut self) {
        if let Ok(mut q) = self.queue.lock() {
            q.take();
        }
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl Backend for RedbBackend {
    fn snapshot(&self) -> Result<Box<dyn RawRead + Send>> {
        if let Some(snap) = &*self.state.published.lock().map_err(unavailable)? {
            return Ok(Box::new(Pinned(snap.clone())));
        }
        // Only while the file is closed after an I/O error (then this
        // fails) or if a snapshot could not be taken after a commit.
        let db = self.state.database()?;
        Ok(Box::new(Pinned(open_snapshot(&db)?)))
    }

    fn submit(&self, job: Box<dyn WriteJob>) {
        let queue = self.queue.lock().ok().and_then(|q| q.clone());
        match queue {
            Some(q) => {
                self.queued.fetch_add(1, Ordering::Relaxed);
                if let Err(mpsc::SendError(job)) = q.send(job) {
                    self.queued.fetch_sub(1, Ordering::Relaxed);
                    job.finish(Err(StateError::Unavailable("the store is closed".into())));
                }
            }
            None => job.finish(Err(StateError::Unavailable("the store is closed".into()))),
        }
    }
}

/// Open (or create) the file, replay what its commit log holds past the last
/// checkpoint, and make that a checkpoint; the log to write to when
/// `options.durable`. A non-durable store still replays a log left by a
/// durable one (it never creates one).
fn open_file(path: &Path, options: &RedbOptions) -> Result<(Database, Option<CommitLog>)> {
    let db = Database::builder()
        .set_cache_size(options.cache_bytes)
        .create(path)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StateError::Unavailable(format!(
                "{} is in use by another process (a running `wasm-state serve`?) or store; stop that first",
                path.display()
            )),
            e => StateError::Unavailable(format!("cannot open {}: {e}", path.display())),
        })?;
    let wtx = db.begin_write().map_err(unavailable)?;
    let mut table = Tbl(wtx.open_table(TABLE).map_err(unavailable)?);
    let log = if options.durable || log::path_for(path).exists() {
        let mut meta = wtx.open_table(LOG_TABLE).map_err(unavailable)?;
        let id = meta.get("id").map_err(unavailable)?.map(|g| g.value());
        let id = match id {
            Some(id) => id,
            None => {
                let mut b = [0u8; 8];
                getrandom::fill(&mut b).map_err(|e| {
                    StateError::Unavailable(format!("no randomness for the commit log id: {e}"))
                })?;
                let id = u64::from_le_bytes(b);
                meta.insert("id", id).map_err(unavailable)?;
                id
            }
        };
        let checkpoint = meta
            .get("seq")
            .map_err(unavailable)?
            .map_or(0, |s| s.value());
        let (mut log, replay) = CommitLog::open(path, id, checkpoint)
            .map_err(|e| log_error(&log::path_for(path), &e))?;
        for payload in &replay {
            for entry in log::entries(payload).map_err(StateError::Unavailable)? {
                table.apply(entry)?;
            }
        }
        if !replay.is_empty() {
            meta.insert("seq", log.last_seq()).map_err(unavailable)?;
            // An operator wants to know the last stop was not clean.
            tracing::warn!(
                groups = replay.len(),
                log = %log.path().display(),
                "replayed the commit log after an unclean stop"
            );
        }
        log.checkpointed();
        options.durable.then_some(log)
    } else {
        None
    };
    drop(table);
    wtx.commit().map_err(unavailable)?;
    Ok((db, log))
}

/// An I/O error of the commit log at `log`, as the store reports it.
fn log_error(log: &Path, e: &std::io::Error) -> StateError {
    StateError::Unavailable(format!(
        "the commit log {} could not be written ({e}); free space or raise the limit",
        log.display()
    ))
}
