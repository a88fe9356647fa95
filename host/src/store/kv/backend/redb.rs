//! The embedded default backend: one redb file, one table of byte keys, and a
//! dedicated writer thread that group-commits queued requests.
//!
//! Reads open a redb read transaction (MVCC) and never wait for the writer.
//! Writes are [`WriteJob`]s sent to the writer thread, which drains its queue,
//! runs each job against its own [`Overlay`] inside one write transaction,
//! flushes only the jobs that succeeded, and commits (fsync) once for all.
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

use super::{Backend, Overlay, RawRead, RawWrite, WriteJob, unavailable};
use crate::store::error::{Result, StateError};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("wasm-state");

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
    /// fsync every commit (default). Off trades crash durability for speed.
    pub durable: bool,
    /// redb page cache in bytes.
    pub cache_bytes: usize,
    /// Where commit batch sizes and latencies are counted (set by
    /// [`Store::open`](crate::store::Store::open) to the store's metrics).
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            durable: true,
            cache_bytes: 256 << 20,
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
        let db = open_file(path, options.cache_bytes)?;
        let wtx = db.begin_write().map_err(unavailable)?;
        wtx.open_table(TABLE).map_err(unavailable)?;
        wtx.commit().map_err(unavailable)?;
        let db: Current = Arc::new(RwLock::new(Ok(Arc::new(db))));
        let (tx, rx) = mpsc::channel();
        let cache: Cache = Arc::new(Mutex::new((0, None)));
        let writer = Writer {
            db: db.clone(),
            cache: cache.clone(),
            path: path.to_path_buf(),
            options,
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

/// Open (or create) the file.
fn open_file(path: &Path, cache_bytes: usize) -> Result<Database> {
    Database::builder()
        .set_cache_size(cache_bytes)
        .create(path)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StateError::Unavailable(format!(
                "{} is in use by another process (a running `wasm-state serve`?) or store; stop that first",
                path.display()
            )),
            e => StateError::Unavailable(format!("cannot open {}: {e}", path.display())),
        })
}

/// What the writer thread owns.
struct Writer {
    db: Current,
    cache: Cache,
    path: PathBuf,
    options: RedbOptions,
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
        match open_file(&self.path, self.options.cache_bytes) {
            Ok(db) => {
                let db = Arc::new(db);
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
        // even when no write comes, so that reads resume too.
        let first = if writer.failed() {
            match rx.recv_timeout(REOPEN_EVERY) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = writer.database();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
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
                let outcome = commit_batch(&db, &mut batch, writer.options.durable);
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
    }
}

fn commit_batch(db: &Database, batch: &mut [Box<dyn WriteJob>], durable: bool) -> Result<()> {
    let mut wtx = db.begin_write().map_err(unavailable)?;
    if !durable {
        wtx.set_durability(Durability::None).map_err(unavailable)?;
    }
    {
        let mut table: TableRw<'_> = Tbl(wtx.open_table(TABLE).map_err(unavailable)?);
        for job in batch.iter_mut() {
            let mut overlay = Overlay::new(&mut table);
            let applied = catch_unwind(AssertUnwindSafe(|| job.apply(&mut overlay)));
            match applied {
                Ok(Ok(())) => overlay.flush()?,
                Ok(Err(_)) => {}
                Err(_) => tracing::error!("a write request panicked; its writes were discarded"),
            }
        }
    }
    wtx.commit().map_err(unavailable)
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
