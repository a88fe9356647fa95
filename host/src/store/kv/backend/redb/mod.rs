//! The embedded default backend: one redb file, one table of byte keys, its
//! commit log (`<file>.wal` and `<file>.1.wal`), and three threads that
//! group-commit queued requests.
//!
//! Reads use the newest **durable** snapshot, published by the syncer, and
//! never wait for the writer. Writes are [`WriteJob`]s sent to the
//! `writer` thread, which drains its queue, runs each job against its own
//! [`Overlay`](super::Overlay) over redb's last commit and the groups
//! logged since, keeps only the jobs that succeeded, writes the group's
//! byte-level writes to the commit log (`log`), and hands the group to the
//! `applier` thread (which puts it into redb's open write transaction and
//! commits every few groups, without an fsync) and to the `syncer` thread —
//! then goes on with the next group while the syncer fsyncs the log,
//! publishes the group's view, and answers the group's requests once the
//! applier has it too. So the fsync and the B-tree work of one group
//! overlap the next group's requests, and no reader or caller ever sees a
//! write before it is durable. A checkpoint (a durable redb commit) every
//! so often lets the log start again, and opening the file replays what a
//! crash left in the log. A store without a log commits each group on the
//! writer.
//!
//! After an I/O error (a full disk, a file-size limit, a failed fsync), redb
//! or the log refuses writes until the file is reopened. The writer then
//! drops the database and reopens it — redb's recovery and the log's replay
//! bring back every acknowledged write — failing requests with
//! `Unavailable` meanwhile and retrying at most every `RedbOptions::reopen_every`,
//! so the store recovers by itself when space returns.

mod applier;
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

use self::log::{CommitLog, LogPos};
use self::table::{ReadTable, Snapshot, TABLE, Tbl};
use super::{Backend, RawRead, RawWrite, WriteJob, unavailable};
use crate::store::error::{Result, StateError};
use crate::store::kv::layout;

/// The commit log's id (`id`: which log belongs to this file). The place in
/// the log after the newest logged group the file holds ([`LogPos`]) is a
/// record of the main table ([`layout::LOG_SEQ`]), written with every
/// group, next to the etag counter: a second table touched by every commit
/// is one more table root to update and checksum per commit.
const LOG_TABLE: TableDefinition<&str, u64> = TableDefinition::new("wasm-state-log");

/// The place in the log the file holds everything before (the start: none
/// yet).
fn held_pos(table: &dyn RawRead) -> Result<LogPos> {
    match table.get(layout::LOG_SEQ)? {
        Some(b) => LogPos::decode(&b).ok_or_else(|| StateError::corrupt("commit log position")),
        None => Ok(LogPos::START),
    }
}

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
    /// log file it covers is written again) is made once the writer has
    /// been idle this long with logged writes not yet in one (default
    /// 100 ms); a log file three quarters full (6 MiB) and every 16,384
    /// groups also make one.
    pub checkpoint_idle: Duration,
    /// After an I/O error closed the file, how often a reopen is tried while
    /// it fails (default 200 ms); the first is tried at once.
    pub reopen_every: Duration,
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
            reopen_every: Duration::from_millis(200),
            metrics: None,
        }
    }
}

/// What the backend, its writer and its syncer share.
pub(super) struct State {
    /// The open database, or the error that closed it until it is reopened.
    db: RwLock<std::result::Result<Arc<Database>, String>>,
    /// The newest durable snapshot, shared by reads until the next one is
    /// published, and how many times it changed.
    published: Mutex<Published>,
    /// Which opening of the file `db` is (a snapshot of an earlier one is
    /// never published).
    generation: AtomicU64,
    /// The newest opening whose commit log failed to sync (0: none): its
    /// groups not yet answered are not known to be durable.
    lost_through: AtomicU64,
    path: PathBuf,
    /// Tests: the applier fails the next group that writes this key, as a
    /// full disk would.
    #[cfg(test)]
    fail_land_writing: Mutex<Option<Vec<u8>>>,
    /// Tests: the applier holds the next checkpoint — it says so on the
    /// first channel, and runs it once the second one gives the word.
    #[cfg(test)]
    hold_checkpoint: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
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

    /// Make `snap` (of opening `generation`) what reads see — unless the
    /// file was reopened since (checked under the lock `opened` publishes
    /// under).
    fn publish(&self, generation: u64, snap: Arc<Snapshot>) {
        // The same lock order as `fail` and `opened`: db, then published.
        let Ok(slot) = self.db.read() else { return };
        if slot.is_ok()
            && generation == self.generation.load(Ordering::Acquire)
            && let Ok(mut p) = self.published.lock()
        {
            p.set(Some(snap));
        }
    }

    /// Close opening `generation` of the file after an I/O error (nothing
    /// if it was reopened since): writes and reads fail with `message`
    /// until the writer reopens it.
    fn fail(&self, generation: u64, message: String) {
        let old = {
            let Ok(mut slot) = self.db.write() else {
                return;
            };
            if generation != self.generation.load(Ordering::Acquire) {
                return;
            }
            if let Ok(mut p) = self.published.lock() {
                p.set(None); // it holds the old file open
            }
            std::mem::replace(&mut *slot, Err(message))
        };
        // Closing redb may commit and sync: not under the lock.
        drop(old);
    }

    /// The commit log of opening `generation` failed to sync: none of its
    /// groups not yet answered can be vouched for, and the file is closed
    /// (and reopened: the replay brings back what did reach the disk).
    fn log_lost(&self, generation: u64, message: String) {
        self.lost_through.fetch_max(generation, Ordering::AcqRel);
        self.fail(generation, message);
    }

    /// Whether the groups of opening `generation` not yet answered are lost.
    fn lost(&self, generation: u64) -> bool {
        generation <= self.lost_through.load(Ordering::Acquire)
    }

    /// The database was (re)opened: it is what reads and writes use now.
    fn opened(&self, db: Arc<Database>) -> Result<u64> {
        let snap = Arc::new(Snapshot::committed(open_snapshot(&db)?));
        let mut slot = self.db.write().map_err(unavailable)?;
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.published.lock().map_err(unavailable)?.set(Some(snap));
        *slot = Ok(db);
        Ok(generation)
    }
}

/// What reads see: the newest durable snapshot (none while the file is
/// closed after an I/O error), and a count of its changes — the backend's
/// [`generation`](Backend::generation), changed under the same lock, so a
/// reading of it and a snapshot taken after it agree.
#[derive(Default)]
struct Published {
    snap: Option<Arc<Snapshot>>,
    changes: u64,
}

impl Published {
    fn set(&mut self, snap: Option<Arc<Snapshot>>) {
        self.snap = snap;
        self.changes += 1;
    }
}

/// A read-only snapshot of the newest commit of `db`.
fn open_snapshot(db: &Database) -> Result<Arc<ReadTable>> {
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
        let (db, log) = open_file(path, &options, None)?;
        let state = Arc::new(State {
            db: RwLock::new(Err("not open yet".into())),
            published: Mutex::default(),
            generation: AtomicU64::new(0),
            lost_through: AtomicU64::new(0),
            #[cfg(test)]
            fail_land_writing: Mutex::new(None),
            #[cfg(test)]
            hold_checkpoint: Mutex::new(None),
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
        if let Some(snap) = &self.state.published.lock().map_err(unavailable)?.snap {
            return Ok(Box::new(snap.clone()));
        }
        // Only while the file is closed after an I/O error. Never a fresh
        // read of the open file: it may hold commits not yet durable.
        self.state.database()?;
        Err(StateError::Unavailable(
            "the state file is being reopened; retry".into(),
        ))
    }

    fn generation(&self) -> Option<u64> {
        self.state.published.lock().ok().map(|p| p.changes)
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

/// Ask the kernel to drop the cached pages of `path` (clean ones are
/// dropped, dirty ones are written first), so that the next reads come
/// from the disk. A file that is missing or cannot be opened has none that
/// matter; a refusal leaves the reads as they were.
fn forget_cached_pages(path: &Path) {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(path) else {
        return;
    };
    // Dirty pages must reach the disk before they can be dropped.
    let _ = file.sync_data();
    // SAFETY: `file` is an open descriptor for the whole call; the advice
    // changes no memory of this process.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        tracing::warn!(
            file = %path.display(),
            error = %std::io::Error::from_raw_os_error(rc),
            "could not drop the file's cached pages before reopening it"
        );
    }
}

/// Open (or create) the file, replay what its commit log holds past the last
/// checkpoint, and make that a checkpoint; the log to write to when
/// `options.durable`. A non-durable store still replays a log left by a
/// durable one (it never creates one).
///
/// `trusted`: when the writer reopens the file after an I/O error, where
/// the last checkpoint it saw succeed left the log. The file may claim
/// a newer one — a commit whose fsync failed leaves its pages in the page
/// cache, clean but maybe never written — so the replay starts after
/// `trusted` (the log was not restarted since, and replaying writes the
/// file already holds changes nothing: they are blind byte writes, in
/// order).
fn open_file(
    path: &Path,
    options: &RedbOptions,
    trusted: Option<LogPos>,
) -> Result<(Database, Option<CommitLog>)> {
    if trusted.is_some() {
        // A reopen after an I/O error: a failed fsync leaves the pages it
        // could not write in the page cache, marked clean. Read as they
        // are, the file would look newer than the disk holds (redb would
        // trust a header or tree pages that never reached it, and this
        // reopen's own commit would skip writing them). Drop the cached
        // pages of the file and its log first, so both are read from disk.
        let [wal, second] = log::paths_for(path);
        for file in [path, wal.as_path(), second.as_path()] {
            forget_cached_pages(file);
        }
    }
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
    let [wal, second] = log::paths_for(path);
    let log = if options.durable || wal.exists() || second.exists() {
        let mut meta = wtx.open_table(LOG_TABLE).map_err(unavailable)?;
        let id = match meta.get("id").map_err(unavailable)?.map(|g| g.value()) {
            Some(id) => id,
            None => new_log_id()?,
        };
        let claimed = held_pos(&table)?;
        let from = match trusted {
            Some(t) if t.seq < claimed.seq => t,
            _ => claimed,
        };
        // A durable store opens (or creates) both files; one that is not
        // only reads those a durable one left.
        let (mut log, mut replay) = if options.durable {
            let (log, replay) = CommitLog::open(path, id, from).map_err(|e| log_error(&wal, &e))?;
            (Some(log), replay)
        } else {
            (
                None,
                log::replay(path, id, from).map_err(|e| log_error(&wal, &e))?,
            )
        };
        let replayed_through = from.seq + replay.len() as u64;
        // From a checkpoint older than the file claims (a reopen after an
        // I/O error), the replay must reach what the file claims: a shorter
        // one would rewind some keys and not others.
        if replayed_through < claimed.seq {
            tracing::error!(
                from = from.seq,
                claimed = claimed.seq,
                records = replay.len(),
                log = %wal.display(),
                "the commit log ends before what the state file holds; not replaying it"
            );
            replay.clear();
        }
        for payload in &replay {
            for entry in log::entries(payload).map_err(StateError::Unavailable)? {
                table.apply(entry)?;
            }
        }
        // Never hand out a sequence number the file already claims; and a
        // new round of the log under a new id, from the beginning of the
        // first file.
        let next = replayed_through.max(claimed.seq);
        let round = new_log_id()?;
        meta.insert("id", round).map_err(unavailable)?;
        if let Some(log) = &mut log {
            log.continue_after(next);
            log.renew_id(round);
            debug_assert_eq!(log.position(), LogPos::round_start(next));
        }
        table.put(layout::LOG_SEQ, &LogPos::round_start(next).encode())?;
        if !replay.is_empty() {
            // An operator wants to know the last stop was not clean.
            tracing::warn!(
                groups = replay.len(),
                log = %wal.display(),
                "replayed the commit log (the last stop was not clean, or a write failed)"
            );
        }
        log
    } else {
        None
    };
    drop(table);
    wtx.commit().map_err(unavailable)?;
    // The data file's own name must survive a crash: it holds the log's
    // id, without which no logged write can be replayed.
    if options.durable {
        log::sync_parent(path).map_err(|e| {
            StateError::Unavailable(format!(
                "cannot sync the directory of {}: {e}",
                path.display()
            ))
        })?;
    }
    Ok((db, log))
}

/// A random commit log id.
fn new_log_id() -> Result<u64> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| {
        StateError::Unavailable(format!("no randomness for the commit log id: {e}"))
    })?;
    Ok(u64::from_le_bytes(b))
}

/// An I/O error of the commit log at `log`, as the store reports it.
fn log_error(log: &Path, e: &std::io::Error) -> StateError {
    StateError::Unavailable(format!(
        "the commit log {} could not be written ({e}); free space or raise the limit",
        log.display()
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::mpsc;

    use super::*;

    /// A byte-level write: put, delete, or delete the range `key..value`.
    enum W {
        Put(&'static [u8], &'static [u8]),
        Delete(&'static [u8]),
        Range(&'static [u8], &'static [u8]),
    }

    struct Job(Vec<W>, mpsc::Sender<Result<()>>);

    impl WriteJob for Job {
        fn apply(&mut self, tx: &mut dyn RawWrite) -> Result<()> {
            for w in &self.0 {
                match w {
                    W::Put(k, v) => tx.put(k, v)?,
                    W::Delete(k) => tx.delete(k)?,
                    W::Range(s, e) => tx.delete_range(s, Some(e))?,
                }
            }
            Ok(())
        }

        fn finish(self: Box<Self>, committed: Result<()>) {
            let _ = self.1.send(committed);
        }
    }

    fn write(b: &RedbBackend, ws: Vec<W>) {
        let (tx, rx) = mpsc::channel();
        b.submit(Box::new(Job(ws, tx)));
        rx.recv().unwrap().unwrap();
    }

    /// A key and its value.
    type Pair = (Vec<u8>, Vec<u8>);

    /// The generation moves with every group that writes and with nothing
    /// else: a group that writes nothing (a sweeper tick that found
    /// nothing, a failed request) makes no commit — durable store or not —
    /// and is still answered; a failed request leaves nothing.
    #[test]
    fn only_groups_that_write_move_the_generation() {
        struct Fails(mpsc::Sender<Result<()>>);
        impl WriteJob for Fails {
            fn apply(&mut self, tx: &mut dyn RawWrite) -> Result<()> {
                tx.put(b"never", b"1")?;
                Err(StateError::NotFound)
            }
            fn finish(self: Box<Self>, committed: Result<()>) {
                let _ = self.0.send(committed);
            }
        }
        for durable in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let options = RedbOptions {
                durable,
                ..RedbOptions::default()
            };
            let b = RedbBackend::open(&dir.path().join("s.redb"), options).unwrap();
            write(&b, vec![W::Put(b"a", b"1")]);
            let g = b.generation().unwrap();
            write(&b, vec![]);
            assert_eq!(b.generation(), Some(g), "durable {durable}: an empty group");
            let (tx, rx) = mpsc::channel();
            b.submit(Box::new(Fails(tx)));
            assert!(rx.recv().unwrap().is_ok(), "the group itself committed");
            assert_eq!(
                b.generation(),
                Some(g),
                "durable {durable}: a failed request"
            );
            assert_eq!(b.snapshot().unwrap().get(b"never").unwrap(), None);
            write(&b, vec![W::Delete(b"a")]);
            assert!(b.generation().unwrap() > g, "durable {durable}: a delete");
            assert_eq!(b.snapshot().unwrap().get(b"a").unwrap(), None);
        }
    }

    /// A durable store at `dir/s.redb` that checkpoints only when closed
    /// (so that its groups stay in layers and the log), its path and
    /// options.
    fn durable(dir: &Path) -> (PathBuf, RedbOptions, RedbBackend) {
        let path = dir.join("s.redb");
        let options = RedbOptions {
            checkpoint_idle: Duration::from_secs(3600),
            ..RedbOptions::default()
        };
        let b = RedbBackend::open(&path, options.clone()).unwrap();
        (path, options, b)
    }

    /// A request that reads one key (and writes nothing).
    struct Reads(&'static [u8], mpsc::Sender<Option<Vec<u8>>>);

    impl WriteJob for Reads {
        fn apply(&mut self, tx: &mut dyn RawWrite) -> Result<()> {
            let _ = self.1.send(tx.get(self.0)?);
            Ok(())
        }

        fn finish(self: Box<Self>, _: Result<()>) {}
    }

    /// The writer answers "no watch registration" without a lookup while
    /// the file holds none; the first one written is read back by the next
    /// request, whichever group it lands in — including the one during
    /// which redb commits the groups before it (the check is asked again
    /// only once the view holds the new group).
    #[test]
    fn the_first_watch_registration_is_seen_at_once_wherever_it_falls() {
        const REGISTRATION: &[u8] = b"v-some-scope";
        for before in 0..=applier::MAX_LAYERS + 1 {
            let dir = tempfile::tempdir().unwrap();
            let (_, _, b) = durable(dir.path());
            for _ in 0..before {
                write(&b, vec![W::Put(b"k", b"1")]);
            }
            write(&b, vec![W::Put(REGISTRATION, b"names")]);
            for _ in 0..3 {
                let (tx, rx) = mpsc::channel();
                b.submit(Box::new(Reads(REGISTRATION, tx)));
                assert_eq!(
                    rx.recv().unwrap(),
                    Some(b"names".to_vec()),
                    "after {before} groups"
                );
            }
        }
    }

    /// A request that tells whether its view may hold a watch registration
    /// (and writes nothing).
    struct MayHoldWatchers(mpsc::Sender<bool>);

    impl WriteJob for MayHoldWatchers {
        fn apply(&mut self, tx: &mut dyn RawWrite) -> Result<()> {
            let _ = self.0.send(tx.may_hold(layout::WATCHERS));
            Ok(())
        }

        fn finish(self: Box<Self>, _: Result<()>) {}
    }

    fn may_hold_watchers(b: &RedbBackend) -> bool {
        let (tx, rx) = mpsc::channel();
        b.submit(Box::new(MayHoldWatchers(tx)));
        rx.recv().unwrap()
    }

    /// A request's view says it holds no watch registration only while
    /// none exists: not once one was written, neither by an earlier request
    /// of its own group (still in the group's buffer) nor by an earlier
    /// group, nor after a restart.
    #[test]
    fn a_view_denies_watch_registrations_only_while_there_are_none() {
        const REGISTRATION: &[u8] = b"v-some-scope";
        let dir = tempfile::tempdir().unwrap();
        let (path, options, b) = durable(dir.path());
        write(&b, vec![W::Put(b"k", b"1")]);
        assert!(!may_hold_watchers(&b), "a file without registrations");
        // One group: the writer is held by a slow request meanwhile.
        let ((started, running), (slow, slow_done)) = (mpsc::channel(), mpsc::channel());
        b.submit(Box::new(Slow(b"s", started, slow)));
        running.recv().unwrap();
        let (put, put_done) = mpsc::channel();
        b.submit(Box::new(Job(vec![W::Put(REGISTRATION, b"names")], put)));
        let (tx, asked) = mpsc::channel();
        b.submit(Box::new(MayHoldWatchers(tx)));
        slow_done.recv().unwrap().unwrap();
        put_done.recv().unwrap().unwrap();
        assert!(
            asked.recv().unwrap(),
            "after a registration in its own group"
        );
        assert!(
            may_hold_watchers(&b),
            "after a registration in an earlier group"
        );
        drop(b);
        let b = RedbBackend::open(&path, options).unwrap();
        assert!(may_hold_watchers(&b), "after a restart");
        write(&b, vec![W::Delete(REGISTRATION)]);
        drop(b);
        let b = RedbBackend::open(&dir.path().join("s.redb"), RedbOptions::default()).unwrap();
        assert!(
            !may_hold_watchers(&b),
            "once the last one is gone, after a restart"
        );
    }

    /// A request that puts `key` after a pause (so that requests sent
    /// meanwhile form the next group), or that fails if `key` exists —
    /// answering its own failure first, as a store request does.
    struct Slow(&'static [u8], mpsc::Sender<()>, mpsc::Sender<Result<()>>);

    impl WriteJob for Slow {
        fn apply(&mut self, tx: &mut dyn RawWrite) -> Result<()> {
            let _ = self.1.send(());
            std::thread::sleep(Duration::from_millis(100));
            tx.put(self.0, b"1")
        }

        fn finish(self: Box<Self>, committed: Result<()>) {
            let _ = self.2.send(committed);
        }
    }

    struct IfAbsent(&'static [u8], Option<Result<()>>, mpsc::Sender<Result<()>>);

    impl WriteJob for IfAbsent {
        fn apply(&mut self, tx: &mut dyn RawWrite) -> Result<()> {
            let own = match tx.get(self.0)? {
                Some(_) => Err(StateError::AlreadyExists),
                None => tx.put(self.0, b"2"),
            };
            self.1 = Some(own.clone());
            own
        }

        fn void(&mut self) {
            self.1 = None;
        }

        fn finish(self: Box<Self>, committed: Result<()>) {
            let answer = match (self.1, committed) {
                (Some(Err(e)), _) | (_, Err(e)) => Err(e),
                (Some(Ok(())), Ok(())) => Ok(()),
                (None, Ok(())) => Err(StateError::Internal("never ran".into())),
            };
            let _ = self.2.send(answer);
        }
    }

    /// A group the applier cannot put into redb (a full disk) fails, and
    /// its log record is erased; the next group, which ran over its writes,
    /// fails whole — a request of it that failed on its own over them
    /// included; the groups before it survive the reopen and a restart.
    #[test]
    fn a_group_that_fails_to_land_fails_with_the_group_that_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let (path, options, b) = durable(dir.path());
        write(&b, vec![W::Put(b"a", b"1")]);
        write(&b, vec![W::Put(b"b", b"1")]);
        *b.state.fail_land_writing.lock().unwrap() = Some(b"x".to_vec());
        let ((started, running), (tx, first)) = (mpsc::channel(), mpsc::channel());
        b.submit(Box::new(Slow(b"x", started, tx)));
        // The writer has taken its group: the next request is a group of
        // its own.
        running.recv().unwrap();
        let (tx, second) = mpsc::channel();
        b.submit(Box::new(IfAbsent(b"x", None, tx)));
        assert!(
            first.recv().unwrap().is_err(),
            "the group that did not land"
        );
        let second = second.recv().unwrap();
        assert!(
            matches!(second, Err(StateError::Unavailable(_))),
            "the group that read it: {second:?} (not its own answer over a write that never happened)"
        );
        // The writer reopens the file; what was acknowledged is there.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let snap = loop {
            match b.snapshot() {
                Ok(s) => break s,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("not reopened: {e}"),
            }
        };
        let want = vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"1".to_vec()),
        ];
        assert_eq!(contents(&*snap), want, "after the reopen");
        write(&b, vec![W::Put(b"c", b"1")]);
        drop(b);
        let (db, _) = open_file(&path, &options, None).unwrap();
        let mut want = want;
        want.push((b"c".to_vec(), b"1".to_vec()));
        assert_eq!(
            contents(&*open_snapshot(&db).unwrap()),
            want,
            "after a restart"
        );
    }

    /// Within one group too: when the group fails to land, a request of it
    /// that failed on its own over an earlier request's writes hears the
    /// group's failure, not its own answer about a write that never
    /// happened.
    #[test]
    fn every_request_of_a_group_that_fails_to_land_hears_its_failure() {
        let dir = tempfile::tempdir().unwrap();
        let b = RedbBackend::open(&dir.path().join("s.redb"), RedbOptions::default()).unwrap();
        write(&b, vec![W::Put(b"a", b"1")]);
        *b.state.fail_land_writing.lock().unwrap() = Some(b"x".to_vec());
        // While the writer runs a slow group, two requests queue: they
        // become the next group, the second failing over the first's put.
        let ((started, running), (tx, slow)) = (mpsc::channel(), mpsc::channel());
        b.submit(Box::new(Slow(b"y", started, tx)));
        running.recv().unwrap();
        let (tx, first) = mpsc::channel();
        b.submit(Box::new(IfAbsent(b"x", None, tx)));
        let (tx, second) = mpsc::channel();
        b.submit(Box::new(IfAbsent(b"x", None, tx)));
        assert!(slow.recv().unwrap().is_ok());
        for (which, rx) in [("first", first), ("second", second)] {
            let answer = rx.recv().unwrap();
            assert!(
                matches!(answer, Err(StateError::Unavailable(_))),
                "the {which} request: {answer:?}"
            );
        }
    }

    /// `write`, and its answer within 5 s (a panic if none comes).
    fn write_soon(b: &RedbBackend, ws: Vec<W>) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        b.submit(Box::new(Job(ws, tx)));
        rx.recv_timeout(Duration::from_secs(5))
            .expect("no answer within 5 s")
    }

    /// A durable store at `dir/s.redb` whose idle checkpoint comes after
    /// 20 ms, and whose next checkpoint the applier holds: it says so on
    /// the receiver, and runs it once the sender gives the word.
    fn holding_checkpoint(
        dir: &Path,
    ) -> (
        PathBuf,
        RedbOptions,
        RedbBackend,
        mpsc::Receiver<()>,
        mpsc::Sender<()>,
    ) {
        let path = dir.join("s.redb");
        let options = RedbOptions {
            checkpoint_idle: Duration::from_millis(20),
            // A reopen on the timer would take a minute: one that comes
            // at once is told from it by time alone, on any machine.
            reopen_every: Duration::from_secs(60),
            ..RedbOptions::default()
        };
        let b = RedbBackend::open(&path, options.clone()).unwrap();
        let ((holding, held), (go, told)) = (mpsc::channel(), mpsc::channel());
        *b.state.hold_checkpoint.lock().unwrap() = Some((holding, told));
        (path, options, b, held, go)
    }

    /// Wait until the applier holds the checkpoint that the writer makes
    /// once idle.
    fn held(holding: &mpsc::Receiver<()>) {
        holding
            .recv_timeout(Duration::from_secs(10))
            .expect("the idle checkpoint starts");
    }

    /// A write of `key` is not answered while the writer waits for the
    /// held checkpoint, and is once `go` lets it run.
    fn waits_for_the_checkpoint(b: &RedbBackend, go: &mpsc::Sender<()>, key: &'static [u8]) {
        let (tx, after) = mpsc::channel();
        b.submit(Box::new(Job(vec![W::Put(key, b"1")], tx)));
        assert!(
            after.recv_timeout(Duration::from_millis(300)).is_err(),
            "answered while the writer should wait for the checkpoint"
        );
        go.send(()).unwrap();
        after
            .recv_timeout(Duration::from_secs(10))
            .expect("answered once the checkpoint is done")
            .unwrap();
    }

    /// Close `b` (cleanly) and open its file again: what it holds.
    fn restarted(b: RedbBackend, path: &Path, options: &RedbOptions) -> Vec<Pair> {
        drop(b);
        let (db, _) = open_file(path, options, None).unwrap();
        contents(&*open_snapshot(&db).unwrap())
    }

    /// A crash image: the data file and the log files numbered `logs`
    /// copied to `dir/<name>/s.redb` (and its logs); the copy's path.
    fn image(path: &Path, name: &str, logs: &[usize]) -> PathBuf {
        let image = path.parent().unwrap().join(name);
        std::fs::create_dir(&image).unwrap();
        let copy = image.join("s.redb");
        std::fs::copy(path, &copy).unwrap();
        let (from, to) = (log::paths_for(path), log::paths_for(&copy));
        for &i in logs {
            std::fs::copy(&from[i], &to[i]).unwrap();
        }
        copy
    }

    /// What a crash now leaves: the data file (and both log files, if
    /// `with_logs`) copied to `dir/<name>/s.redb`, opened.
    fn crash_contents(
        path: &Path,
        options: &RedbOptions,
        name: &str,
        with_logs: bool,
    ) -> Vec<Pair> {
        let logs: &[usize] = if with_logs { &[0, 1] } else { &[] };
        let (db, _) = open_file(&image(path, name, logs), options, None).unwrap();
        contents(&*open_snapshot(&db).unwrap())
    }

    /// What a store opened without durability reads from a crash image of
    /// the data file and the second log file only.
    fn second_log_contents(path: &Path, options: &RedbOptions, name: &str) -> Vec<Pair> {
        let copy = image(path, name, &[1]);
        let options = RedbOptions {
            durable: false,
            ..options.clone()
        };
        let (db, log) = open_file(&copy, &options, None).unwrap();
        let [first, _] = log::paths_for(&copy);
        assert!(log.is_none() && !first.exists(), "it wrote a log");
        contents(&*open_snapshot(&db).unwrap())
    }

    /// A key of two bytes, `'static` (one leaked per key).
    fn key2(a: u8, b: u8) -> &'static [u8] {
        Box::leak(Box::new([a, b]))
    }

    /// A checkpoint runs on the applier while the writer goes on: groups
    /// logged meanwhile (in the other log file) are answered before it
    /// ends and read as layers, and a crash at that moment replays them
    /// across both files. Once it is done they reach redb with the next
    /// group, the next checkpoint holds them — the data file alone has them
    /// all — and reads are left no layers.
    #[test]
    fn groups_logged_while_a_checkpoint_runs_are_answered_and_survive() {
        let dir = tempfile::tempdir().unwrap();
        let (path, options, b, holding, go) = holding_checkpoint(dir.path());
        write(&b, vec![W::Put(b"a", b"1")]);
        write(&b, vec![W::Put(b"b", b"1"), W::Delete(b"a")]);
        held(&holding);
        let mut want = BTreeMap::from([(b"b".to_vec(), b"1".to_vec())]);
        let groups = 2 * applier::CHUNK as u8 + 3;
        for i in 0..groups {
            let key = key2(b'c', i);
            write_soon(&b, vec![W::Put(key, b"2"), W::Delete(b"b")])
                .expect("answered while the checkpoint runs");
            want.remove(b"b".as_slice());
            want.insert(key.to_vec(), b"2".to_vec());
        }
        let want_now: Vec<Pair> = want.clone().into_iter().collect();
        assert_eq!(contents(&*b.snapshot().unwrap()), want_now, "reads");
        assert!(layers(&b) >= usize::from(groups), "{} layers", layers(&b));
        assert_eq!(
            crash_contents(&path, &options, "during", true),
            want_now,
            "a crash while the checkpoint runs"
        );
        go.send(()).unwrap();
        // The groups that waited reach redb with the next group; reads and
        // a crash see every group meanwhile.
        for i in 0..4 {
            let key = key2(b'd', i);
            write_soon(&b, vec![W::Put(key, b"3")]).unwrap();
            want.insert(key.to_vec(), b"3".to_vec());
            let want: Vec<Pair> = want.clone().into_iter().collect();
            assert_eq!(contents(&*b.snapshot().unwrap()), want, "reads, group d{i}");
        }
        let want: Vec<Pair> = want.into_iter().collect();
        assert_eq!(
            crash_contents(&path, &options, "landing", true),
            want,
            "a crash after they landed"
        );
        // The data file's position is in the second log file by now: a
        // store opened without durability replays it, the first one gone.
        assert_eq!(
            second_log_contents(&path, &options, "second log only"),
            want,
            "opened without durability, from the second log file alone"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while layers(&b) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(layers(&b), 0, "after the next idle checkpoint");
        assert_eq!(contents(&*b.snapshot().unwrap()), want, "reads after");
        assert_eq!(
            crash_contents(&path, &options, "after", false),
            want,
            "the data file alone, after the next checkpoint"
        );
        assert_eq!(restarted(b, &path, &options), want, "a restart");
    }

    /// A checkpoint that fails (a full disk) closes the file; the reopen
    /// replays the log — the groups the checkpoint held and those answered
    /// while it ran, across both files — and nothing acknowledged is lost.
    #[test]
    fn a_checkpoint_that_fails_loses_none_of_the_groups_answered_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let (path, options, b, holding, go) = holding_checkpoint(dir.path());
        *b.state.fail_land_writing.lock().unwrap() = Some(applier::CHECKPOINT_KEY.to_vec());
        write(&b, vec![W::Put(b"a", b"1")]);
        held(&holding);
        let mut want = vec![(b"a".to_vec(), b"1".to_vec())];
        for i in 0..5 {
            let key = key2(b'c', i);
            write_soon(&b, vec![W::Put(key, b"2")]).expect("answered while the checkpoint runs");
            want.push((key.to_vec(), b"2".to_vec()));
        }
        let opened = b.state.generation.load(Ordering::Acquire);
        go.send(()).unwrap();
        let failed_at = std::time::Instant::now();
        // It fails; the writer, idle, closes the file and reopens it at once.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let snap = loop {
            let reopened = b.state.generation.load(Ordering::Acquire) > opened;
            match b.snapshot() {
                Ok(s) if reopened => break s,
                _ if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => panic!("not reopened after the failed checkpoint"),
            }
        };
        // Not after `reopen_every` (the retry period, a minute here) with
        // nothing to do.
        let took = failed_at.elapsed();
        assert!(took < Duration::from_secs(20), "reopened after {took:?}");
        assert_eq!(contents(&*snap), want, "after the reopen");
        assert_eq!(
            crash_contents(&path, &options, "reopened", false),
            want,
            "the reopen's replay is in the data file"
        );
        write_soon(&b, vec![W::Put(b"d", b"1")]).unwrap();
        want.push((b"d".to_vec(), b"1".to_vec()));
        assert_eq!(restarted(b, &path, &options), want, "a restart");
    }

    /// While a checkpoint runs, the writer fills the other log file up to
    /// three quarters at most, then waits for it: the file the checkpoint
    /// still needs is never written over, and a crash at any moment
    /// replays every acknowledged group.
    #[test]
    fn a_full_log_file_waits_for_the_running_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (path, options, b, holding, go) = holding_checkpoint(dir.path());
        write(&b, vec![W::Put(b"a", b"1")]);
        held(&holding);
        let big: &'static [u8] =
            Box::leak(vec![7u8; log::CAPACITY as usize / 4 * 3].into_boxed_slice());
        write_soon(&b, vec![W::Put(b"big", big)]).expect("answered while the checkpoint runs");
        // The other file is three quarters full: the writer waits.
        waits_for_the_checkpoint(&b, &go, b"next");
        let want = vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"big".to_vec(), big.to_vec()),
            (b"next".to_vec(), b"1".to_vec()),
        ];
        assert_eq!(
            crash_contents(&path, &options, "image", true),
            want,
            "a crash"
        );
        assert_eq!(restarted(b, &path, &options), want, "a restart");
    }

    /// A checkpoint the disk draws out does not let the groups logged
    /// meanwhile grow without bound: after `MAX_UNLANDED` of them the writer
    /// waits for it, and they all survive.
    #[test]
    fn the_writer_waits_for_a_long_checkpoint_after_many_groups() {
        let dir = tempfile::tempdir().unwrap();
        let (path, options, b, holding, go) = holding_checkpoint(dir.path());
        write(&b, vec![W::Put(b"a", b"1")]);
        held(&holding);
        let mut want = BTreeMap::from([(b"a".to_vec(), b"1".to_vec())]);
        for i in 0..writer::MAX_UNLANDED {
            let key: &'static [u8] = Box::leak(format!("q{i:05}").into_bytes().into_boxed_slice());
            write_soon(&b, vec![W::Put(key, b"1")]).expect("answered while the checkpoint runs");
            want.insert(key.to_vec(), b"1".to_vec());
        }
        waits_for_the_checkpoint(&b, &go, b"z");
        want.insert(b"z".to_vec(), b"1".to_vec());
        let want: Vec<Pair> = want.into_iter().collect();
        assert_eq!(contents(&*b.snapshot().unwrap()), want, "reads");
        assert_eq!(
            crash_contents(&path, &options, "image", true),
            want,
            "a crash"
        );
        assert_eq!(restarted(b, &path, &options), want, "a restart");
    }

    /// The layers reads see over redb's last commit now.
    fn layers(b: &RedbBackend) -> usize {
        let published = b.state.published.lock().unwrap();
        published.snap.as_ref().map_or(0, |s| s.layers.len())
    }

    /// With a log, redb commits only every `MAX_LAYERS` groups: the groups
    /// in between are read from their layers (the file's own last commit
    /// lacks them) — every `CHUNK` of them merged into one by the applier,
    /// so that reads walk at most `MAX_LAYERS / CHUNK - 1 + CHUNK` — a
    /// crash image of that moment (data file and log) replays them, and an
    /// idle checkpoint leaves reads no layers.
    #[test]
    fn groups_between_redb_commits_are_read_from_layers_and_survive_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let (path, options, b) = durable(dir.path());
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut deepest = 0;
        const KEYS: [&[u8]; 7] = [b"k0", b"k1", b"k2", b"k3", b"k4", b"k5", b"k6"];
        const GROUPS: usize = applier::MAX_LAYERS + 2 * applier::CHUNK + 3;
        const READ_LAYERS: usize = applier::MAX_LAYERS / applier::CHUNK - 1 + applier::CHUNK;
        for i in 0..GROUPS as u8 {
            // (`W` holds `'static` bytes: one byte leaked per group.)
            let value: &'static [u8] = Box::leak(Box::new([i]));
            let key = KEYS[usize::from(i % 7)];
            let mut ws = vec![W::Put(key, value)];
            model.insert(key.to_vec(), value.to_vec());
            if i % 5 == 4 {
                ws.push(W::Range(b"k2", b"k4"));
                model.retain(|k, _| {
                    !(k.as_slice() >= b"k2".as_slice() && k.as_slice() < b"k4".as_slice())
                });
            }
            if i % 6 == 5 {
                ws.push(W::Delete(b"k0"));
                model.remove(b"k0".as_slice());
            }
            write(&b, ws);
            let want: Vec<Pair> = model.clone().into_iter().collect();
            let snapshot = b.snapshot().unwrap();
            assert_eq!(contents(&*snapshot), want, "after group {i}");
            for key in KEYS {
                assert_eq!(
                    snapshot.get(key).unwrap().as_deref(),
                    model.get(key).map(Vec::as_slice),
                    "{key:?} after group {i}"
                );
            }
            let n = layers(&b);
            // Groups since redb's last commit, oldest chunks merged.
            let since = usize::from(i) % applier::MAX_LAYERS;
            let chunks = since / applier::CHUNK;
            assert_eq!(
                n,
                chunks + since - chunks * applier::CHUNK + 1,
                "layers after group {i}"
            );
            assert!(n <= READ_LAYERS, "{n} layers after group {i}");
            if since + 1 < applier::MAX_LAYERS {
                // redb's own last commit does not have the newest group
                // (the applier commits when a group makes MAX_LAYERS).
                let db = b.state.database().unwrap();
                assert_ne!(contents(&*open_snapshot(&db).unwrap()), want, "group {i}");
            }
            deepest = deepest.max(n);
        }
        assert_eq!(deepest, READ_LAYERS);
        // A crash now: the data file as it is, and its log.
        let image = dir.path().join("image");
        std::fs::create_dir(&image).unwrap();
        std::fs::copy(&path, image.join("s.redb")).unwrap();
        for (from, to) in log::paths_for(&path)
            .iter()
            .zip(log::paths_for(&image.join("s.redb")))
        {
            std::fs::copy(from, to).unwrap();
        }
        let want: Vec<Pair> = model.into_iter().collect();
        let (db, _) = open_file(&image.join("s.redb"), &options, None).unwrap();
        assert_eq!(
            contents(&*open_snapshot(&db).unwrap()),
            want,
            "the crash image"
        );
        drop(b);
        // A checkpoint when idle leaves reads no layers.
        let b = RedbBackend::open(
            &path,
            RedbOptions {
                checkpoint_idle: Duration::from_millis(10),
                ..RedbOptions::default()
            },
        )
        .unwrap();
        assert_eq!(contents(&*b.snapshot().unwrap()), want, "reopened");
        write(&b, vec![W::Put(b"z", b"1")]);
        assert_eq!(layers(&b), 1);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while layers(&b) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(layers(&b), 0, "after an idle checkpoint");
        assert_eq!(
            b.snapshot().unwrap().get(b"z").unwrap(),
            Some(b"1".to_vec())
        );
    }

    /// A request that issues one etag version (through a write context, as
    /// the kv ops do), writes `key`, tells its version, and then fails or
    /// finishes.
    struct Issues {
        key: &'static [u8],
        fail: bool,
        version: mpsc::Sender<u64>,
        done: mpsc::Sender<Result<()>>,
    }

    impl WriteJob for Issues {
        fn apply(&mut self, tx: &mut dyn RawWrite) -> Result<()> {
            let limits = crate::store::limits::Limits::default();
            let mut cx = crate::store::kv::ops::cx::WriteCx::new(tx, 0, &limits);
            let v = cx.next_version()?;
            cx.put(self.key, &v.to_be_bytes())?;
            let _ = self.version.send(v);
            if self.fail {
                return Err(StateError::NotFound);
            }
            cx.finish()
        }

        fn finish(self: Box<Self>, committed: Result<()>) {
            let _ = self.done.send(committed);
        }
    }

    /// Holds the writer inside its group until told to go on.
    struct Gate(mpsc::Sender<()>, mpsc::Receiver<()>);

    impl WriteJob for Gate {
        fn apply(&mut self, tx: &mut dyn RawWrite) -> Result<()> {
            let _ = self.0.send(());
            let _ = self.1.recv();
            tx.put(b"gate", b"1")
        }

        fn finish(self: Box<Self>, _: Result<()>) {}
    }

    /// The writer keeps the etag counter for the requests of one group: a
    /// request that fails in the middle of the group leaves it where the
    /// one before left it, the next one carries on from there, and the
    /// record holds the last version a kept request issued — also after a
    /// reopen.
    #[test]
    fn a_groups_etag_counter_skips_the_requests_that_failed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let b = RedbBackend::open(&path, RedbOptions::default()).unwrap();
        let (entered, wait_entered) = mpsc::channel();
        let (open_gate, gate) = mpsc::channel();
        b.submit(Box::new(Gate(entered, gate)));
        wait_entered.recv().unwrap();
        // Queued behind the gate's group: the writer takes them as one.
        let (version, versions) = mpsc::channel();
        let (done, outcomes) = mpsc::channel();
        for (key, fail) in [(&b"one"[..], false), (b"failed", true), (b"two", false)] {
            b.submit(Box::new(Issues {
                key,
                fail,
                version: version.clone(),
                done: done.clone(),
            }));
        }
        open_gate.send(()).unwrap();
        let v: Vec<u64> = (0..3).map(|_| versions.recv().unwrap()).collect();
        for _ in 0..3 {
            assert!(outcomes.recv().unwrap().is_ok(), "the group committed");
        }
        assert_eq!(
            v[1],
            v[0] + 1,
            "the failing request issued the next version"
        );
        assert_eq!(v[2], v[0] + 1, "and the next request issued it again");
        let counter = |b: &RedbBackend| {
            let c = b.snapshot().unwrap().get(layout::COUNTER).unwrap();
            layout::be_u64(&c.expect("the counter record"))
        };
        assert_eq!(counter(&b), Some(v[2]));
        let snap = b.snapshot().unwrap();
        assert_eq!(snap.get(b"failed").unwrap(), None);
        assert_eq!(snap.get(b"two").unwrap(), Some(v[2].to_be_bytes().to_vec()));
        drop((snap, b));
        let b = RedbBackend::open(&path, RedbOptions::default()).unwrap();
        assert_eq!(counter(&b), Some(v[2]), "after a reopen");
        b.submit(Box::new(Issues {
            key: b"three",
            fail: false,
            version,
            done,
        }));
        assert_eq!(versions.recv().unwrap(), v[2] + 1);
        assert!(outcomes.recv().unwrap().is_ok());
    }

    /// The checkpoints `m` has counted.
    fn checkpoints(m: &crate::metrics::Metrics) -> u64 {
        m.encode()
            .lines()
            .find_map(|l| l.strip_prefix("wasm_state_checkpoint_duration_seconds_count "))
            .and_then(|n| n.trim().parse().ok())
            .expect("the checkpoint metric")
    }

    /// Each checkpoint's time reaches the `checkpoint_duration_seconds`
    /// metric, once per checkpoint made: a durable store's idle checkpoint
    /// counts, an idle writer with nothing logged makes none, and a store
    /// without a log never checkpoints.
    #[test]
    fn checkpoints_are_timed_in_the_metrics() {
        for durable in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let metrics = crate::metrics::Metrics::new();
            let b = RedbBackend::open(
                &dir.path().join("s.redb"),
                RedbOptions {
                    durable,
                    checkpoint_idle: Duration::from_millis(10),
                    metrics: Some(metrics.clone()),
                    ..RedbOptions::default()
                },
            )
            .unwrap();
            write(&b, vec![W::Put(b"a", b"1")]);
            let want = u64::from(durable);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while checkpoints(&metrics) < want && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(
                checkpoints(&metrics),
                want,
                "durable {durable}: one idle checkpoint"
            );
            // Idle with everything checkpointed: no more.
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(
                checkpoints(&metrics),
                want,
                "durable {durable}: nothing to checkpoint"
            );
            write(&b, vec![W::Put(b"b", b"2")]);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while checkpoints(&metrics) < 2 * want && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(
                checkpoints(&metrics),
                2 * want,
                "durable {durable}: the next write's"
            );
        }
    }

    /// The pages of `path` in the page cache (mincore of a mapping).
    fn cached_pages(path: &Path) -> usize {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(path).unwrap();
        let len = file.metadata().unwrap().len() as usize;
        // SAFETY: a read-only shared mapping of an open file, unmapped
        // below; mincore writes one byte per page into `vec`.
        unsafe {
            let at = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            );
            assert_ne!(at, libc::MAP_FAILED);
            let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
            let mut vec = vec![0u8; len.div_ceil(page)];
            assert_eq!(libc::mincore(at, len, vec.as_mut_ptr()), 0);
            libc::munmap(at, len);
            vec.iter().filter(|&&b| b & 1 == 1).count()
        }
    }

    /// A reopen after an I/O error reads the disk: the file's pages are
    /// dropped from the page cache first (those a failed fsync left there,
    /// clean but maybe never written, would be trusted otherwise).
    #[test]
    fn a_reopen_drops_the_files_cached_pages() {
        // Beside the test binary, on a disk: /tmp may be a tmpfs, whose
        // pages are its storage and are never dropped.
        let exe = std::env::current_exe().unwrap();
        let dir = tempfile::tempdir_in(exe.parent().unwrap()).unwrap();
        let path = dir.path().join("s.redb");
        std::fs::write(&path, vec![7u8; 1 << 20]).unwrap();
        std::fs::read(&path).unwrap();
        let before = cached_pages(&path);
        assert!(before > 0, "a file just written and read is cached");
        forget_cached_pages(&path);
        let after = cached_pages(&path);
        assert!(after < before / 4, "{before} pages cached, {after} after");
    }

    /// Everything but the backend's own record.
    fn contents(r: &dyn RawRead) -> Vec<Pair> {
        let mut out = Vec::new();
        r.scan(b"", None, false, &mut |k, v| {
            if k != layout::LOG_SEQ {
                out.push((k.to_vec(), v.to_vec()));
            }
            true
        })
        .unwrap();
        out
    }

    /// A reopen after an I/O error replays from the last checkpoint the
    /// writer saw succeed, over a file that may already hold what follows:
    /// the log's writes are blind and in order, so that changes nothing.
    #[test]
    fn replaying_over_a_state_that_already_holds_the_records_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (path, options, want) = four_groups(dir.path());
        // The log restarted at the checkpoint made when the file was
        // created (0): a writer that saw no later one succeed replays all
        // four; a plain open replays none.
        for trusted in [Some(LogPos::START), None] {
            let (db, log) = open_file(&path, &options, trusted).unwrap();
            assert_eq!(log.unwrap().last_seq(), 4, "{trusted:?}");
            let snap = open_snapshot(&db).unwrap();
            assert_eq!(contents(&*snap), want, "{trusted:?}");
        }
    }

    /// A replay from an older checkpoint that does not reach what the file
    /// claims would rewind some keys and not others: it is not applied.
    #[test]
    fn a_replay_that_stops_short_of_what_the_file_holds_is_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        let (path, options, want) = four_groups(dir.path());
        let [wal, _] = log::paths_for(&path);
        let mut bytes = std::fs::read(&wal).unwrap();
        let third = third_record_offset(&bytes);
        bytes[third + 30] ^= 0xff; // the third record's payload
        std::fs::write(&wal, &bytes).unwrap();
        let (db, log) = open_file(&path, &options, Some(LogPos::START)).unwrap();
        assert_eq!(log.unwrap().last_seq(), 4);
        let snap = open_snapshot(&db).unwrap();
        assert_eq!(contents(&*snap), want);
    }

    /// Where the third record starts: past two records' headers (28 bytes)
    /// and payloads (length at bytes 4..8 of a header).
    fn third_record_offset(log: &[u8]) -> usize {
        let len = |at: usize| u32::from_le_bytes(log[at + 4..at + 8].try_into().unwrap()) as usize;
        let second = 28 + len(0);
        second + 28 + len(second)
    }

    /// A durable file holding four logged groups (closed cleanly), its
    /// options, and what it holds.
    fn four_groups(dir: &Path) -> (PathBuf, RedbOptions, Vec<Pair>) {
        let (path, options, b) = durable(dir);
        write(
            &b,
            vec![W::Put(b"a", b"1"), W::Put(b"b", b"1"), W::Put(b"c", b"1")],
        );
        write(&b, vec![W::Delete(b"a"), W::Put(b"b", b"2")]);
        write(&b, vec![W::Range(b"b", b"c"), W::Put(b"d", b"1")]);
        write(&b, vec![W::Put(b"a", b"3"), W::Put(b"bb", b"1")]);
        let want = contents(&*b.snapshot().unwrap());
        assert_eq!(
            want,
            [
                (b"a".to_vec(), b"3".to_vec()),
                (b"bb".to_vec(), b"1".to_vec()),
                (b"c".to_vec(), b"1".to_vec()),
                (b"d".to_vec(), b"1".to_vec()),
            ]
        );
        drop(b); // a clean close: a checkpoint holding all four records
        (path, options, want)
    }
}
