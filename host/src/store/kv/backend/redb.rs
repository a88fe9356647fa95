//! The embedded default backend: one redb file, one table of byte keys, and a
//! dedicated writer thread that group-commits queued requests.
//!
//! Reads open a redb read transaction (MVCC) and never wait for the writer.
//! Writes are [`WriteJob`]s sent to the writer thread, which drains its queue,
//! runs each job against its own [`Overlay`] inside one write transaction,
//! flushes only the jobs that succeeded, and makes the group durable once for
//! all: it appends the group's writes to the commit log (`<file>.wal`, see
//! [`super::log`]) and fsyncs that, then commits to redb without an fsync;
//! a checkpoint (a durable redb commit) every so often empties the log, and
//! opening the file replays what a crash left in it.
//!
//! After an I/O error (a full disk, a file-size limit), redb refuses every
//! later write until the file is reopened. The writer then drops the database
//! and reopens it — redb's recovery brings back the last commit — failing
//! requests with `Unavailable` meanwhile and retrying at most every
//! [`REOPEN_EVERY`], so the store recovers by itself when space returns.

use std::ops::Bound;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::log::{self, CommitLog, Entry, Record};
use super::{Backend, Overlay, RawRead, RawWrite, WriteJob, unavailable};
use crate::store::error::{Result, StateError};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("wasm-state");

/// The commit log's id (`id`: which log belongs to this file) and the
/// sequence number of the last logged group a checkpoint holds (`seq`).
const LOG_TABLE: TableDefinition<&str, u64> = TableDefinition::new("wasm-state-log");

/// Most requests committed together.
const MAX_BATCH: usize = 256;

/// How often the writer retries reopening the file after an I/O error.
const REOPEN_EVERY: Duration = Duration::from_millis(200);

/// The newest committed snapshot, shared by reads until the next commit, and
/// the number of commits so far (a snapshot is cached only if no commit
/// happened while it was being opened, so a read that starts after a write
/// was acknowledged always sees it).
type Cache = Arc<Mutex<(u64, Option<Arc<Snapshot>>)>>;

/// The open database, or `None` while it is being reopened after an I/O
/// error (with the error).
type Current = Arc<RwLock<std::result::Result<Arc<Database>, String>>>;

/// Options of the redb backend.
#[derive(Debug, Clone)]
pub struct RedbOptions {
    /// Every acknowledged write survives a crash (default): each group
    /// commit is fsynced through the commit log. Off trades crash
    /// durability for speed (no log, no fsync).
    pub durable: bool,
    /// redb page cache in bytes.
    pub cache_bytes: usize,
    /// A checkpoint (a durable commit of the data file, after which the
    /// commit log starts again) is made once the writer has been idle this
    /// long with logged writes not yet in one (default 100 ms); full logs
    /// and every 1,024 groups also make one.
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

/// The redb backend.
pub struct RedbBackend {
    db: Current,
    cache: Cache,
    queue: Mutex<Option<Sender<Box<dyn WriteJob>>>>,
    /// Jobs sent and not yet taken by the writer.
    queued: Arc<AtomicUsize>,
    writer: Option<JoinHandle<()>>,
}

impl RedbBackend {
    /// Open (or create) the database file at `path`.
    pub fn open(path: &Path, options: RedbOptions) -> Result<Self> {
        let (db, log) = open_file(path, &options)?;
        let db: Current = Arc::new(RwLock::new(Ok(Arc::new(db))));
        let (tx, rx) = mpsc::channel();
        let cache: Cache = Arc::new(Mutex::new((0, None)));
        let writer = Writer {
            db: db.clone(),
            cache: cache.clone(),
            path: path.to_path_buf(),
            options,
            log,
            next_reopen: Instant::now(),
        };
        let queued = Arc::new(AtomicUsize::new(0));
        let writer_queued = queued.clone();
        let writer = std::thread::Builder::new()
            .name("wasm-state-writer".into())
            .spawn(move || writer_loop(writer, &rx, &writer_queued))
            .map_err(|e| StateError::Internal(format!("cannot start the writer thread: {e}")))?;
        Ok(RedbBackend {
            db,
            queue: Mutex::new(Some(tx)),
            queued,
            cache,
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
        let seen = {
            let cache = self.cache.lock().map_err(unavailable)?;
            if let Some(snap) = &cache.1 {
                return Ok(Box::new(Shared(snap.clone())));
            }
            cache.0
        };
        let db = match &*self.db.read().map_err(unavailable)? {
            Ok(db) => db.clone(),
            Err(e) => return Err(StateError::Unavailable(e.clone())),
        };
        let rtx = db.begin_read().map_err(unavailable)?;
        let snap = Arc::new(Tbl(rtx.open_table(TABLE).map_err(unavailable)?));
        let mut cache = self.cache.lock().map_err(unavailable)?;
        if cache.0 == seen && cache.1.is_none() {
            cache.1 = Some(snap.clone());
        }
        Ok(Box::new(Shared(snap)))
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
        let (mut log, replay) =
            CommitLog::open(path, id, checkpoint).map_err(|e| log_error(path, &e))?;
        for payload in &replay {
            for entry in log::entries(payload).map_err(StateError::Unavailable)? {
                table.apply(entry)?;
            }
        }
        if !replay.is_empty() {
            meta.insert("seq", log.last_seq()).map_err(unavailable)?;
            tracing::info!(
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

/// An I/O error of the commit log, as the store reports it.
fn log_error(data: &Path, e: &std::io::Error) -> StateError {
    StateError::Unavailable(format!(
        "the commit log {} could not be written ({e}); free space or raise the limit",
        log::path_for(data).display()
    ))
}

/// What the writer thread owns.
struct Writer {
    db: Current,
    cache: Cache,
    path: PathBuf,
    options: RedbOptions,
    /// The commit log (durable stores).
    log: Option<CommitLog>,
    /// No reopen attempt before this.
    next_reopen: Instant,
}

impl Writer {
    /// Whether the file is closed after an I/O error.
    fn failed(&self) -> bool {
        self.db.read().map_or(true, |db| db.is_err())
    }

    /// The database to commit on, reopening it if an I/O error closed it.
    fn database(&mut self) -> Result<Arc<Database>> {
        let failed = match &*self.db.read().map_err(unavailable)? {
            Ok(db) => return Ok(db.clone()),
            Err(e) => e.clone(),
        };
        if Instant::now() < self.next_reopen {
            return Err(StateError::Unavailable(failed));
        }
        self.next_reopen = Instant::now() + REOPEN_EVERY;
        // Readers may still hold the old file for a moment (its lock too):
        // then this attempt fails with "in use" and the next one succeeds.
        match open_file(&self.path, &self.options) {
            Ok((db, log)) => {
                let db = Arc::new(db);
                self.log = log;
                *self.db.write().map_err(unavailable)? = Ok(db.clone());
                tracing::warn!(path = %self.path.display(), "reopened the state file after an I/O error; writes resume");
                Ok(db)
            }
            Err(e) => {
                tracing::debug!(error = %e, "reopening the state file failed; will retry");
                Err(StateError::Unavailable(failed))
            }
        }
    }

    /// After a failed commit: if redb now refuses writes because of an I/O
    /// error, close the database so that it is reopened (and recovered).
    fn check(&mut self, db: Arc<Database>, error: &StateError) {
        let poisoned = matches!(
            db.begin_write(),
            Err(redb::TransactionError::Storage(
                redb::StorageError::PreviousIo
            ))
        );
        if poisoned && let Ok(mut slot) = self.db.write() {
            tracing::error!(error = %error, path = %self.path.display(), "the state file failed to write; reopening it (writes fail until it works again)");
            if let Ok(mut cache) = self.cache.lock() {
                cache.0 += 1;
                cache.1 = None; // it holds the old file open
            }
            *slot = Err(format!(
                "the state file {} could not be written ({error}); writes are refused until the disk accepts them again — free space or raise the limit",
                self.path.display()
            ));
            self.next_reopen = Instant::now() + REOPEN_EVERY;
        }
    }
}

fn writer_loop(mut writer: Writer, rx: &Receiver<Box<dyn WriteJob>>, queued: &AtomicUsize) {
    loop {
        // While the file is closed after an I/O error, retry reopening it
        // even when no write comes, so that reads resume too; while logged
        // groups wait for a checkpoint, make one when no write comes.
        let failed = writer.failed();
        let pending = writer.log.as_ref().is_some_and(CommitLog::pending);
        let first = if failed || pending {
            let wait = if failed {
                REOPEN_EVERY
            } else {
                writer.options.checkpoint_idle
            };
            match rx.recv_timeout(wait) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if failed {
                        let _ = writer.database();
                    } else {
                        writer.checkpoint();
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    writer.checkpoint();
                    return;
                }
            }
        } else {
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
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
        let outcome = match writer.database() {
            Ok(db) => {
                let outcome = commit_batch(&db, &mut batch, writer.log.as_mut(), &writer.path);
                if let Err(e) = &outcome {
                    tracing::error!(error = %e, jobs = batch.len(), "commit failed");
                    writer.check(db, e);
                }
                outcome
            }
            Err(e) => Err(e),
        };
        if let Some(m) = &writer.options.metrics {
            m.commit(batch.len(), started.elapsed(), waiting);
        }
        // Before anyone hears of the commit, retire the cached snapshot.
        if let Ok(mut cache) = writer.cache.lock() {
            cache.0 += 1;
            cache.1 = None;
        }
        for job in batch {
            job.finish(outcome.clone());
        }
        if writer.log.as_ref().is_some_and(CommitLog::wants_checkpoint) {
            writer.checkpoint();
        }
    }
}

impl Writer {
    /// Make the logged groups part of a durable redb commit, so that the log
    /// can start again. A failure leaves the log as it is (a reopen replays
    /// it) and is retried at the next occasion.
    fn checkpoint(&mut self) {
        let Some(log) = self.log.as_mut().filter(|l| l.pending()) else {
            return;
        };
        let Ok(Ok(db)) = self.db.read().map(|db| db.clone()) else {
            return;
        };
        let started = Instant::now();
        let done = (|| -> Result<()> {
            let wtx = db.begin_write().map_err(unavailable)?;
            {
                let mut meta = wtx.open_table(LOG_TABLE).map_err(unavailable)?;
                meta.insert("seq", log.last_seq()).map_err(unavailable)?;
            }
            wtx.commit().map_err(unavailable)
        })();
        match done {
            Ok(()) => {
                log.checkpointed();
                tracing::trace!(took = ?started.elapsed(), "checkpoint");
            }
            Err(e) => {
                tracing::error!(error = %e, "checkpoint failed");
                self.check(db, &e);
            }
        }
    }
}

/// Run the batch's jobs in one write transaction and make the ones that
/// succeeded durable together: through the commit log when there is one
/// (then the redb commit itself skips the fsync), else not durable at all.
fn commit_batch(
    db: &Database,
    batch: &mut [Box<dyn WriteJob>],
    log: Option<&mut CommitLog>,
    path: &Path,
) -> Result<()> {
    let mut wtx = db.begin_write().map_err(unavailable)?;
    wtx.set_durability(Durability::None).map_err(unavailable)?;
    let mut record = Record::default();
    {
        let mut table: TableRw<'_> = Tbl(wtx.open_table(TABLE).map_err(unavailable)?);
        let mut logged = Logged {
            table: &mut table,
            record: log.is_some().then_some(&mut record),
        };
        for job in batch.iter_mut() {
            let mut overlay = Overlay::new(&mut logged);
            let applied = catch_unwind(AssertUnwindSafe(|| job.apply(&mut overlay)));
            match applied {
                Ok(Ok(())) => overlay.flush()?,
                Ok(Err(_)) => {}
                Err(_) => tracing::error!("a write request panicked; its writes were discarded"),
            }
        }
    }
    let Some(log) = log.filter(|_| !record.is_empty()) else {
        return wtx.commit().map_err(unavailable);
    };
    // Durable first, visible second: nobody sees the group before its record
    // is on disk. If the log write fails, dropping `wtx` aborts the group.
    let appended = log.append(&mut record).map_err(|e| log_error(path, &e))?;
    match wtx.commit() {
        Ok(()) => {
            log.committed(appended);
            Ok(())
        }
        Err(e) => match log.retract(appended) {
            Ok(()) => Err(unavailable(e)),
            Err(r) => Err(StateError::Unavailable(format!(
                "storage: {e}; and the commit log {} could not be corrected ({r}): the writes of this request may or may not be applied when the store is next opened",
                log.path().display()
            ))),
        },
    }
}

/// The writer's table, recording every write into the group's log record.
struct Logged<'a, 't> {
    table: &'a mut TableRw<'t>,
    record: Option<&'a mut Record>,
}

impl RawRead for Logged<'_, '_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.table.get(key)
    }

    fn value_len(&self, key: &[u8]) -> Result<Option<usize>> {
        self.table.value_len(key)
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        self.table.scan(start, end, reverse, visit)
    }
}

impl Logged<'_, '_> {
    fn record(&mut self, entry: Entry<'_>) -> Result<()> {
        if let Some(r) = self.record.as_mut() {
            r.push(entry);
        }
        Ok(())
    }
}

impl RawWrite for Logged<'_, '_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.table.put(key, value)?;
        self.record(Entry::Put(key, value))
    }

    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.table.delete(key)?;
        self.record(Entry::Delete(key))
    }

    fn delete_range(&mut self, start: &[u8], end: Option<&[u8]>) -> Result<()> {
        self.table.delete_range(start, end)?;
        self.record(Entry::DeleteRange(start, end))
    }
}

fn bounds<'a>(start: &'a [u8], end: Option<&'a [u8]>) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    (
        Bound::Included(start),
        end.map_or(Bound::Unbounded, Bound::Excluded),
    )
}

fn scan_table(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    start: &[u8],
    end: Option<&[u8]>,
    reverse: bool,
    visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<()> {
    if end.is_some_and(|e| e <= start) {
        return Ok(());
    }
    let range = table
        .range::<&[u8]>(bounds(start, end))
        .map_err(unavailable)?;
    let mut step = |item: std::result::Result<_, redb::StorageError>| -> Result<bool> {
        let (k, v): (redb::AccessGuard<&[u8]>, redb::AccessGuard<&[u8]>) =
            item.map_err(unavailable)?;
        Ok(visit(k.value(), v.value()))
    };
    if reverse {
        for item in range.rev() {
            if !step(item)? {
                break;
            }
        }
    } else {
        for item in range {
            if !step(item)? {
                break;
            }
        }
    }
    Ok(())
}

/// A redb table (read-only snapshot or the writer's table) as the engine's
/// byte-key space.
struct Tbl<T>(T);

type Snapshot = Tbl<redb::ReadOnlyTable<&'static [u8], &'static [u8]>>;

/// A snapshot shared with other reads.
struct Shared(Arc<Snapshot>);

impl RawRead for Shared {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.0.get(key)
    }

    fn value_len(&self, key: &[u8]) -> Result<Option<usize>> {
        self.0.value_len(key)
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        self.0.scan(start, end, reverse, visit)
    }
}
type TableRw<'t> = Tbl<redb::Table<'t, &'static [u8], &'static [u8]>>;

impl<T: ReadableTable<&'static [u8], &'static [u8]>> RawRead for Tbl<T> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .0
            .get(key)
            .map_err(unavailable)?
            .map(|g| g.value().to_vec()))
    }

    fn value_len(&self, key: &[u8]) -> Result<Option<usize>> {
        Ok(self
            .0
            .get(key)
            .map_err(unavailable)?
            .map(|g| g.value().len()))
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        scan_table(&self.0, start, end, reverse, visit)
    }
}

impl TableRw<'_> {
    /// Replay one logged write.
    fn apply(&mut self, entry: Entry<'_>) -> Result<()> {
        match entry {
            Entry::Put(k, v) => self.put(k, v),
            Entry::Delete(k) => self.delete(k),
            Entry::DeleteRange(start, end) => self.delete_range(start, end),
        }
    }
}

impl RawWrite for TableRw<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.0.insert(key, value).map_err(unavailable)?;
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.0.remove(key).map_err(unavailable)?;
        Ok(())
    }

    fn delete_range(&mut self, start: &[u8], end: Option<&[u8]>) -> Result<()> {
        if end.is_some_and(|e| e <= start) {
            return Ok(());
        }
        self.0
            .retain_in::<&[u8], _>(bounds(start, end), |_, _| false)
            .map_err(unavailable)
    }
}
