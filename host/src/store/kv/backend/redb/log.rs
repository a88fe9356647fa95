//! The commit log of the redb backend: two files next to the data file,
//! `<file>.wal` and `<file>.1.wal`, written in turn.
//!
//! A durable redb commit writes every page the commit touched and fsyncs the
//! file: ≈ 0.6–0.9 ms for a group of 32–64 writes here, against ≈ 0.15 ms
//! for one `fdatasync` of a few kilobytes written in place. So a group
//! commit is made durable by its **log record** instead: the writer runs the
//! group, writes its byte-level writes (puts, deletes, range deletes) to
//! this log, the applier puts them into redb's write transaction and
//! commits it every few groups without an fsync (`Durability::None`), and
//! the syncer fsyncs the log before anyone sees or hears of the group (see
//! `super`). A group that cannot be put into redb has its record erased
//! (`retract`) before its callers hear that it failed.
//!
//! Every so often (a file three quarters full, many commits, or the writer
//! idle) a **checkpoint** — a durable redb commit that also records where
//! the log goes on after the last group it holds ([`LogPos`]) — makes the
//! data file complete up to there. The writer switches to the other file
//! as the checkpoint starts ([`CommitLog::switch`]) and goes on logging
//! groups while the applier runs it; the file it left is written again
//! only after the checkpoint is durable, so a record is never overwritten
//! before the data file holds its writes.
//!
//! After a crash redb comes back at its last durable commit, and the
//! records after its position are replayed in order (they are idempotent
//! byte writes): through the rest of that file, then — where the next
//! record is not found in place — from the start of the other one. The
//! files are preallocated and overwritten in place (no metadata changes per
//! fsync); a record is valid only with the right magic, the data file's
//! log id, the next sequence number and a matching CRC-32, so a torn tail,
//! the records of an earlier round and a log that belongs to another data
//! file all end the replay. (A sequence number is written whole once per
//! round — a write that failed left at most a torn record, which its CRC
//! rejects, and the number goes to the next record, in place or at the
//! other file's start — so a valid record with the expected number is the
//! one.)
//!
//! Record: `magic u32 | payload length u32 | log id u64 | seq u64 | crc32
//! u32 | payload`, little-endian; the CRC covers length, id, seq and
//! payload. Payload: entries `1 key value` (put), `2 key` (delete), `3
//! start end?` (range delete; `end` absent = unbounded), each byte string
//! as `u32 length | bytes`, `end?` as a presence byte then the string.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MAGIC: u32 = 0x474c_5357; // "WSLG"
const HEADER: usize = 28;

/// Bytes each of the two log files is preallocated to (written with zeros
/// once, so that a record written later changes no file metadata; a record
/// that does not fit in the rest grows the file).
pub(super) const CAPACITY: u64 = 8 << 20;

/// Records after which a checkpoint is due even if the log has room. redb
/// frees the pages of the last durable state that non-durable commits
/// replaced only at a durable one (pages of non-durable commits are freed at
/// once); a checkpoint writes every page dirtied since the last one — so
/// the log's size, not a count, is what mostly paces checkpoints, and this
/// only bounds the number of records a replay walks.
pub(super) const CHECKPOINT_RECORDS: u64 = 16_384;

const PUT: u8 = 1;
const DELETE: u8 = 2;
const DELETE_RANGE: u8 = 3;

/// One byte-level write of a logged group.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Entry<'a> {
    /// `put(key, value)`.
    Put(&'a [u8], &'a [u8]),
    /// `delete(key)`.
    Delete(&'a [u8]),
    /// `delete_range(start, end)`.
    DeleteRange(&'a [u8], Option<&'a [u8]>),
}

/// The writes of one group, encoded as a record being built.
pub(super) struct Record {
    buf: Vec<u8>,
}

impl Default for Record {
    fn default() -> Self {
        Record {
            buf: vec![0; HEADER],
        }
    }
}

impl Record {
    /// Add one write.
    pub(super) fn push(&mut self, entry: Entry<'_>) {
        match entry {
            Entry::Put(k, v) => {
                self.buf.push(PUT);
                self.bytes(k);
                self.bytes(v);
            }
            Entry::Delete(k) => {
                self.buf.push(DELETE);
                self.bytes(k);
            }
            Entry::DeleteRange(start, end) => {
                self.buf.push(DELETE_RANGE);
                self.bytes(start);
                match end {
                    Some(e) => {
                        self.buf.push(1);
                        self.bytes(e);
                    }
                    None => self.buf.push(0),
                }
            }
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        // Keys and values are bounded far below 4 GiB by the store's limits.
        self.buf
            .extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_le_bytes());
        self.buf.extend_from_slice(b);
    }

    /// Fill in the header for `id` and `seq`; the record's bytes.
    fn seal(&mut self, id: u64, seq: u64) -> io::Result<&[u8]> {
        let len = u32::try_from(self.buf.len() - HEADER).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a commit of more than 4 GiB cannot be logged",
            )
        })?;
        self.buf[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        self.buf[4..8].copy_from_slice(&len.to_le_bytes());
        self.buf[8..16].copy_from_slice(&id.to_le_bytes());
        self.buf[16..24].copy_from_slice(&seq.to_le_bytes());
        let crc = checksum(&self.buf[4..24], &self.buf[HEADER..]);
        self.buf[24..28].copy_from_slice(&crc.to_le_bytes());
        Ok(&self.buf)
    }
}

fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(header);
    h.update(payload);
    h.finalize()
}

/// Where a record was written, and its sequence number.
#[derive(Debug, Clone, Copy)]
pub(super) struct Appended {
    file: usize,
    offset: u64,
    len: u64,
    /// Its sequence number.
    pub(super) seq: u64,
}

impl Appended {
    /// The log's position right after this record.
    pub(super) fn next(&self) -> LogPos {
        LogPos {
            seq: self.seq,
            file: self.file,
            offset: self.offset + self.len,
        }
    }
}

/// A place in the log: record `seq` is the last one before it, and the
/// next record (`seq + 1`) is at `offset` of file `file` — or, if not
/// found there, at the start of the other file (the writer switched files
/// at a checkpoint). What a data file records it holds
/// ([`layout::LOG_SEQ`](crate::store::kv::layout::LOG_SEQ)): where its
/// replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LogPos {
    /// The last record before this place (0: none yet).
    pub(super) seq: u64,
    file: usize,
    offset: u64,
}

impl LogPos {
    /// The start of the log: no record yet.
    pub(super) const START: LogPos = LogPos {
        seq: 0,
        file: 0,
        offset: 0,
    };

    /// Where a round of the log starts: at the beginning of the first
    /// file, record `seq` the last one before it.
    pub(super) fn round_start(seq: u64) -> LogPos {
        LogPos {
            seq,
            file: 0,
            offset: 0,
        }
    }

    /// As stored: `seq` (big-endian u64), the file (one byte), the offset
    /// (big-endian u64).
    pub(super) fn encode(&self) -> [u8; 17] {
        let mut b = [0u8; 17];
        b[..8].copy_from_slice(&self.seq.to_be_bytes());
        b[8] = self.file as u8;
        b[9..].copy_from_slice(&self.offset.to_be_bytes());
        b
    }

    /// Read what [`LogPos::encode`] wrote — or the sequence number alone,
    /// which versions with one log file wrote (their next record was at the
    /// start of `<file>.wal`).
    pub(super) fn decode(b: &[u8]) -> Option<LogPos> {
        let word = |r: std::ops::Range<usize>| Some(u64::from_be_bytes(b.get(r)?.try_into().ok()?));
        match b.len() {
            8 => Some(LogPos {
                seq: word(0..8)?,
                file: 0,
                offset: 0,
            }),
            17 if b[8] < 2 => Some(LogPos {
                seq: word(0..8)?,
                file: usize::from(b[8]),
                offset: word(9..17)?,
            }),
            _ => None,
        }
    }
}

/// The open log of one data file.
pub(super) struct CommitLog {
    files: [Arc<File>; 2],
    paths: [PathBuf; 2],
    id: u64,
    /// Sequence number of the last record whose commit happened.
    last_seq: u64,
    /// The file the next record goes to, and where in it.
    current: usize,
    offset: u64,
    /// Records since the writer switched to the current file.
    records: u64,
}

/// The log files of the data file at `data`: `<data>.wal` and
/// `<data>.1.wal`.
pub(super) fn paths_for(data: &Path) -> [PathBuf; 2] {
    let with = |suffix: &str| {
        let mut name = data.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [with(".wal"), with(".1.wal")]
}

/// Open (or create) one log file, preallocated to [`CAPACITY`].
fn open_preallocated(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    let len = file.metadata()?.len();
    if len < CAPACITY {
        // Zeros up to the capacity, written (not just allocated), so that
        // later records only overwrite data blocks.
        let zeros = vec![0u8; 1 << 20];
        let mut at = len;
        while at < CAPACITY {
            let n = (CAPACITY - at).min(zeros.len() as u64) as usize;
            file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
    }
    // Every time, not only when the zeros were written: an earlier open
    // may have written them and failed before its syncs.
    file.sync_all()?;
    // The new file's name must survive a crash as well as its bytes.
    sync_parent(path)?;
    Ok(file)
}

/// Make the directory entry of `path` durable (fsync of its directory).
pub(super) fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

impl CommitLog {
    /// Open (or create) the log of the data file whose log id is `id` and
    /// whose last checkpoint is at `checkpoint`; the payloads of the records
    /// to replay, in order. The log then writes from the start of its first
    /// file, at [`CommitLog::position`] (the caller renews the id and makes
    /// that the data file's checkpoint).
    pub(super) fn open(
        data: &Path,
        id: u64,
        checkpoint: LogPos,
    ) -> io::Result<(CommitLog, Vec<Vec<u8>>)> {
        let paths = paths_for(data);
        let files = [
            Arc::new(open_preallocated(&paths[0])?),
            Arc::new(open_preallocated(&paths[1])?),
        ];
        let replay = valid_records([Some(&*files[0]), Some(&*files[1])], id, checkpoint)?;
        let last_seq = checkpoint.seq + replay.len() as u64;
        Ok((
            CommitLog {
                files,
                paths,
                id,
                last_seq,
                current: 0,
                offset: 0,
                records: 0,
            },
            replay,
        ))
    }

    /// The path of the file the next record goes to (for messages).
    pub(super) fn path(&self) -> &Path {
        &self.paths[self.current]
    }

    /// The path of the file `appended` is in.
    pub(super) fn path_of(&self, appended: Appended) -> &Path {
        &self.paths[appended.file]
    }

    /// Sequence number of the last record whose commit happened.
    #[cfg(test)]
    pub(super) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Where the next record goes, after the last one committed.
    pub(super) fn position(&self) -> LogPos {
        LogPos {
            seq: self.last_seq,
            file: self.current,
            offset: self.offset,
        }
    }

    /// Write `record` as the next one (not yet synced: see
    /// [`CommitLog::file`]).
    pub(super) fn write(&mut self, record: &mut Record) -> io::Result<Appended> {
        let seq = self.last_seq + 1;
        let bytes = record.seal(self.id, seq)?;
        self.files[self.current].write_all_at(bytes, self.offset)?;
        Ok(Appended {
            file: self.current,
            offset: self.offset,
            len: bytes.len() as u64,
            seq,
        })
    }

    /// The commit of `appended` happened: the next record follows it.
    pub(super) fn committed(&mut self, appended: Appended) {
        self.offset = appended.offset + appended.len;
        self.last_seq = appended.seq;
        self.records += 1;
    }

    /// The file the last record went to, for the syncer's `fdatasync`
    /// (which makes every record written to it before durable).
    pub(super) fn file(&self) -> &Arc<File> {
        &self.files[self.current]
    }
}

/// The payloads of the records a replay from `from` takes from the log
/// files of the data file at `data` that exist (a missing one holds none),
/// read only: for a store that writes no log of its own.
pub(super) fn replay(data: &Path, id: u64, from: LogPos) -> io::Result<Vec<Vec<u8>>> {
    let open = |path: &Path| match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    };
    let [first, second] = paths_for(data);
    let files = [open(&first)?, open(&second)?];
    valid_records([files[0].as_ref(), files[1].as_ref()], id, from)
}

/// A group in the log at `path` failed to reach redb: erase its record
/// `appended`, durably, so that no replay applies it (the next record
/// would overwrite it anyway, but a crash or a reopen could come first).
/// Through a file of its own: a sync reports a failed writeback once per
/// open file, and this one must not take the error that belongs to the
/// syncer's groups.
pub(super) fn retract(path: &Path, appended: Appended) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.write_all_at(&[0u8; HEADER], appended.offset)?;
    file.sync_data()
}

impl CommitLog {
    /// Write later records under `id`: each opening starts a round of its
    /// own, so that records of an earlier round left further into the files
    /// (a crash can tear a round anywhere) never pass for this one's.
    pub(super) fn renew_id(&mut self, id: u64) {
        self.id = id;
    }

    /// Whether a checkpoint is due: many records, or the current file three
    /// quarters full.
    pub(super) fn wants_checkpoint(&self) -> bool {
        self.records >= CHECKPOINT_RECORDS || self.offset >= CAPACITY / 4 * 3
    }

    /// Whether records were committed since the writer switched to the
    /// current file (that no checkpoint holds yet).
    pub(super) fn pending(&self) -> bool {
        self.records > 0
    }

    /// The next record gets sequence number `seq + 1` (used when the data
    /// file claims a later checkpoint than the records replayed reach).
    pub(super) fn continue_after(&mut self, seq: u64) {
        self.last_seq = seq;
    }

    /// A checkpoint starts: later records go to the start of the other
    /// file; the position to record in it. Only once the checkpoint before
    /// is durable: the other file holds records until then.
    pub(super) fn switch(&mut self) -> LogPos {
        self.current = 1 - self.current;
        self.offset = 0;
        self.records = 0;
        self.position()
    }
}

/// The payloads of the valid records from `from`: sequence numbers
/// `from.seq + 1, + 2, …` of log `id`, stopping at the first that is
/// neither in place nor at the start of the other file.
///
/// Read record by record (a clean stop leaves none valid: one header read
/// per file), not the whole preallocated files.
fn valid_records(files: [Option<&File>; 2], id: u64, from: LogPos) -> io::Result<Vec<Vec<u8>>> {
    let len = |f: Option<&File>| f.map_or(Ok(0), |f| f.metadata().map(|m| m.len()));
    let lens = [len(files[0])?, len(files[1])?];
    let mut out = Vec::new();
    let (mut file, mut at) = (from.file, from.offset);
    let mut expect = from.seq + 1;
    let mut switched = false;
    loop {
        let record = match files[file] {
            Some(f) => read_record(f, lens[file], at, id, expect)?,
            None => None,
        };
        match record {
            Some(payload) => {
                at += HEADER as u64 + payload.len() as u64;
                out.push(payload);
                expect += 1;
                switched = false;
            }
            // Not in place: the writer went on in the other file (once per
            // record: a file's start that does not hold it ends the replay).
            None if !switched => {
                file = 1 - file;
                at = 0;
                switched = true;
            }
            None => return Ok(out),
        }
    }
}

/// The payload of record `seq` of log `id` at `at` in `file` (`len`
/// bytes long), if a valid one is there.
fn read_record(file: &File, len: u64, at: u64, id: u64, seq: u64) -> io::Result<Option<Vec<u8>>> {
    let mut h = [0u8; HEADER];
    // `at` comes from the data file: checked, never trusted to add.
    let Some(body) = at.checked_add(HEADER as u64).filter(|&b| b <= len) else {
        return Ok(None);
    };
    file.read_exact_at(&mut h, at)?;
    let word = |r: std::ops::Range<usize>| {
        let mut b = [0u8; 8];
        b[..r.len()].copy_from_slice(&h[r]);
        u64::from_le_bytes(b)
    };
    let size = word(4..8);
    if word(0..4) != u64::from(MAGIC)
        || word(8..16) != id
        || word(16..24) != seq
        || body.checked_add(size).is_none_or(|end| end > len)
    {
        return Ok(None);
    }
    let mut payload = vec![0u8; size as usize];
    file.read_exact_at(&mut payload, body)?;
    if u64::from(checksum(&h[4..24], &payload)) != word(24..28) || entries(&payload).is_err() {
        return Ok(None);
    }
    Ok(Some(payload))
}

/// The entries of a record's payload.
pub(super) fn entries(payload: &[u8]) -> Result<Vec<Entry<'_>>, String> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let bad = || "a damaged commit log record".to_string();
    let bytes = |at: &mut usize| -> Result<&[u8], String> {
        let len = payload.get(*at..*at + 4).ok_or_else(bad)?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let b = payload.get(*at + 4..*at + 4 + len).ok_or_else(bad)?;
        *at += 4 + len;
        Ok(b)
    };
    while at < payload.len() {
        let tag = payload[at];
        at += 1;
        out.push(match tag {
            PUT => {
                let k = bytes(&mut at)?;
                Entry::Put(k, bytes(&mut at)?)
            }
            DELETE => Entry::Delete(bytes(&mut at)?),
            DELETE_RANGE => {
                let start = bytes(&mut at)?;
                let end = match payload.get(at) {
                    Some(0) => {
                        at += 1;
                        None
                    }
                    Some(1) => {
                        at += 1;
                        Some(bytes(&mut at)?)
                    }
                    _ => return Err(bad()),
                };
                Entry::DeleteRange(start, end)
            }
            _ => return Err(bad()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(entries: &[Entry<'_>]) -> Record {
        let mut r = Record::default();
        for e in entries {
            r.push(match e {
                Entry::Put(k, v) => Entry::Put(k, v),
                Entry::Delete(k) => Entry::Delete(k),
                Entry::DeleteRange(s, e) => Entry::DeleteRange(s, *e),
            });
        }
        r
    }

    /// Write and sync, as the writer and the syncer do.
    fn write(log: &mut CommitLog, r: &mut Record) -> io::Result<Appended> {
        let a = log.write(r)?;
        log.file().sync_data()?;
        Ok(a)
    }

    /// Log `n` groups of one put each (same size), committed.
    fn put_groups(log: &mut CommitLog, n: u8) {
        for i in 0..n {
            let mut r = record(&[Entry::Put(b"k", &[i; 40])]);
            let ap = write(log, &mut r).unwrap();
            log.committed(ap);
        }
    }

    #[test]
    fn entries_round_trip() {
        let es = [
            Entry::Put(b"k", b"v"),
            Entry::Put(b"", b""),
            Entry::Delete(b"gone"),
            Entry::DeleteRange(b"a", Some(b"b")),
            Entry::DeleteRange(b"z", None),
        ];
        let r = record(&es);
        assert_eq!(entries(&r.buf[HEADER..]).unwrap(), es);
        assert!(entries(&[9]).is_err());
        assert!(entries(&[PUT, 5, 0, 0, 0, b'a']).is_err());
        assert!(entries(&[DELETE_RANGE, 0, 0, 0, 0, 7]).is_err());
    }

    /// A record position or size near the top of u64 (a damaged data
    /// file or log) is no record, not an overflow.
    #[test]
    fn a_position_or_size_near_the_top_of_u64_is_no_record() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("state.redb");
        let (mut log, _) = CommitLog::open(&data, 7, LogPos::round_start(0)).unwrap();
        let mut r = record(&[Entry::Put(b"a", b"1")]);
        let ap = write(&mut log, &mut r).unwrap();
        let file = File::open(&paths_for(&data)[0]).unwrap();
        for at in [u64::MAX, u64::MAX - HEADER as u64 + 1, CAPACITY] {
            assert_eq!(read_record(&file, CAPACITY, at, 7, ap.seq).unwrap(), None);
        }
        // A header claiming a size that overflows past the position.
        let mut h = r.buf[..HEADER].to_vec();
        h[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let bad = dir.path().join("bad");
        std::fs::write(&bad, &h).unwrap();
        let f = File::open(&bad).unwrap();
        assert_eq!(read_record(&f, HEADER as u64, 0, 7, ap.seq).unwrap(), None);
        // The real one reads.
        assert!(
            read_record(&file, CAPACITY, 0, 7, ap.seq)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn replay_takes_the_committed_records_in_order_and_stops_at_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("state.redb");
        let (mut log, replay) = CommitLog::open(&data, 7, LogPos::round_start(10)).unwrap();
        assert!(replay.is_empty());
        for path in paths_for(&data) {
            assert_eq!(std::fs::metadata(path).unwrap().len(), CAPACITY);
        }
        let mut a = record(&[Entry::Put(b"a", b"1")]);
        let ap = write(&mut log, &mut a).unwrap();
        assert_eq!(ap.seq, 11);
        log.committed(ap);
        let mut b = record(&[Entry::Delete(b"a"), Entry::Put(b"b", b"2")]);
        let bp = write(&mut log, &mut b).unwrap();
        log.committed(bp);
        // A third that did not reach redb is erased.
        let mut c = record(&[Entry::Put(b"c", b"3")]);
        let cp = write(&mut log, &mut c).unwrap();
        log.committed(cp);
        retract(log.path(), cp).unwrap();
        drop(log);

        let (log, replay) = CommitLog::open(&data, 7, LogPos::round_start(10)).unwrap();
        assert_eq!(replay.len(), 2);
        assert_eq!(log.last_seq(), 12);
        assert_eq!(entries(&replay[0]).unwrap(), [Entry::Put(b"a", b"1")]);
        assert_eq!(
            entries(&replay[1]).unwrap(),
            [Entry::Delete(b"a"), Entry::Put(b"b", b"2")]
        );
        drop(log);
        // A checkpoint past the first: only the second, which is not next.
        assert!(
            CommitLog::open(&data, 7, LogPos::round_start(11))
                .unwrap()
                .1
                .is_empty()
        );
        // Already checkpointed: nothing.
        assert!(
            CommitLog::open(&data, 7, LogPos::round_start(12))
                .unwrap()
                .1
                .is_empty()
        );
        // Another data file's log: nothing.
        assert!(
            CommitLog::open(&data, 8, LogPos::round_start(10))
                .unwrap()
                .1
                .is_empty()
        );

        // A torn second record ends the replay after the first.
        let [path, _] = paths_for(&data);
        let mut bytes = std::fs::read(&path).unwrap();
        let second = a.buf.len();
        bytes[second + HEADER + 3] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, replay) = CommitLog::open(&data, 7, LogPos::round_start(10)).unwrap();
        assert_eq!(replay.len(), 1);
    }

    /// The payloads' first entries, as `(key, first value byte)` of puts
    /// and `(key, none)` of deletes.
    fn firsts(replay: &[Vec<u8>]) -> Vec<(Vec<u8>, Option<u8>)> {
        replay
            .iter()
            .map(|p| match &entries(p).unwrap()[0] {
                Entry::Put(k, v) => (k.to_vec(), v.first().copied()),
                Entry::Delete(k) | Entry::DeleteRange(k, _) => (k.to_vec(), None),
            })
            .collect()
    }

    /// Checkpoints switch files: a replay from any checkpoint's position
    /// runs through the rest of its file and on at the other file's start,
    /// in order, and never takes the records a later round of a file wrote
    /// over.
    #[test]
    fn a_replay_follows_the_records_across_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("state.redb");
        let (mut log, _) = CommitLog::open(&data, 1, LogPos::START).unwrap();
        put_groups(&mut log, 3); // 1..=3 in the first file
        assert!(log.pending());
        let p3 = log.switch(); // a checkpoint of 1..=3 starts
        assert_eq!(p3.seq, 3);
        assert!(!log.pending());
        let mut r = record(&[Entry::Delete(b"k4")]);
        let ap = write(&mut log, &mut r).unwrap();
        assert_eq!(ap.seq, 4);
        log.committed(ap);
        let mut r = record(&[Entry::Delete(b"k5")]);
        let ap = write(&mut log, &mut r).unwrap();
        log.committed(ap);
        let p5 = log.switch(); // that one is durable; the next starts
        // Record 6 over record 1, at the start of the first file.
        let mut r = record(&[Entry::Delete(b"k6")]);
        let ap = write(&mut log, &mut r).unwrap();
        log.committed(ap);
        let after6 = ap.next();
        drop(log);

        let keys = |from: LogPos| {
            let (log, replay) = CommitLog::open(&data, 1, from).unwrap();
            assert_eq!(log.last_seq(), from.seq + replay.len() as u64);
            firsts(&replay)
                .into_iter()
                .map(|(k, _)| String::from_utf8(k).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(p3), ["k4", "k5", "k6"]);
        assert_eq!(keys(p5), ["k6"]);
        assert!(keys(after6).is_empty());
        // From the very start, record 1 is gone (record 6 is there).
        assert!(keys(LogPos::START).is_empty());
        // A torn record 5 ends the replay after 4.
        let [_, second] = paths_for(&data);
        let mut bytes = std::fs::read(&second).unwrap();
        let fifth = HEADER + entries_len(&bytes[..HEADER]);
        bytes[fifth + HEADER + 2] ^= 0xff;
        std::fs::write(&second, &bytes).unwrap();
        assert_eq!(keys(p3), ["k4"]);
    }

    /// The payload length in a record's header.
    fn entries_len(header: &[u8]) -> usize {
        u32::from_le_bytes(header[4..8].try_into().unwrap()) as usize
    }

    #[test]
    fn positions_read_back_as_written_and_old_sequence_numbers_start_the_first_file() {
        let p = LogPos {
            seq: 0x0102_0304_0506_0708,
            file: 1,
            offset: 12_345,
        };
        assert_eq!(LogPos::decode(&p.encode()), Some(p));
        assert_eq!(
            LogPos::decode(&42u64.to_be_bytes()),
            Some(LogPos::round_start(42))
        );
        let mut bad = p.encode();
        bad[8] = 2;
        assert_eq!(LogPos::decode(&bad), None);
        assert_eq!(LogPos::decode(&[1, 2, 3]), None);
        assert_eq!(LogPos::decode(&[0; 16]), None);
    }

    /// A crash tore the first record of a round but later ones reached the
    /// disk; the next opening starts a round at the beginning. Under the
    /// same id its records would run on into the old round's (same sizes,
    /// consecutive numbers); under a new id they never do.
    #[test]
    fn a_new_round_never_runs_on_into_an_older_rounds_records() {
        for (renewed, replayed) in [(2, 1), (1, 3)] {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("state.redb");
            let (mut log, _) = CommitLog::open(&data, 1, LogPos::START).unwrap();
            put_groups(&mut log, 3);
            drop(log);
            let [path, _] = paths_for(&data);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[HEADER + 5] ^= 0xff; // the first record's payload
            std::fs::write(&path, &bytes).unwrap();

            let (mut log, replay) = CommitLog::open(&data, 1, LogPos::START).unwrap();
            assert!(replay.is_empty());
            // What opening the data file does next: a round, written from
            // the start of the first file.
            log.continue_after(0);
            log.renew_id(renewed);
            assert_eq!(log.position(), LogPos::START);
            let mut r = record(&[Entry::Put(b"k", &[9; 40])]);
            let ap = write(&mut log, &mut r).unwrap();
            log.committed(ap);
            drop(log);
            let (_, replay) = CommitLog::open(&data, renewed, LogPos::START).unwrap();
            assert_eq!(replay.len(), replayed, "round id {renewed}");
        }
    }

    #[test]
    fn a_checkpoint_is_due_when_full_or_after_many_records() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = CommitLog::open(&dir.path().join("d"), 1, LogPos::START).unwrap();
        assert!(!log.wants_checkpoint());
        let mut r = record(&[Entry::Put(b"k", b"v")]);
        let ap = write(&mut log, &mut r).unwrap();
        log.committed(ap);
        assert!(!log.wants_checkpoint());
        log.records = CHECKPOINT_RECORDS;
        assert!(log.wants_checkpoint());
        log.switch();
        assert!(!log.wants_checkpoint());
        // A big group that fills most of the log.
        let big = vec![7u8; (CAPACITY / 4 * 3) as usize];
        let mut r = record(&[Entry::Put(b"k", &big)]);
        let ap = write(&mut log, &mut r).unwrap();
        log.committed(ap);
        assert!(log.wants_checkpoint());
    }
}
