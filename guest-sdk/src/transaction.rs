//! Read-modify-write transactions with optimistic concurrency:
//! [`Transaction`] and the retry loop behind
//! [`State::transaction`](crate::State::transaction).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;

use crate::bindings::types as w;
use crate::error::{Error, Result, from_commit_error};
use crate::host::Host;
use crate::ops::{OpQueue, queue_methods};
use crate::types::{KeyInfo, KeyKind, from_json};

/// Default number of attempts of [`State::transaction`](crate::State::transaction).
pub const DEFAULT_TRANSACTION_ATTEMPTS: u32 = 8;

/// One attempt of a read-modify-write transaction, handed to the closure of
/// [`State::transaction`](crate::State::transaction).
///
/// Reads (`get`, `exists`, `map_get_value`, `list_range`, …) go to the store
/// at once and record the etag each key had (a missing key is recorded as
/// must-be-absent). Writes (`set`, `increment`, `map_set`, `list_append`,
/// `when`, `check`, …, the same as [`Batch`](crate::Batch)'s) are only queued.
/// When the closure returns `Ok`, one atomic commit applies a `check` per
/// read key (its etag still matches, or it is still absent) followed by the
/// queued writes. If a read key changed meanwhile, the closure runs again on
/// fresh data.
///
/// Reads see the store, not the writes queued earlier in the same attempt.
/// The closure may run several times: keep side effects other than state
/// operations out of it, or make them idempotent.
pub struct Transaction<'a> {
    host: &'a dyn Host,
    /// Read keys and the etag each had (`None` = absent), in key order.
    reads: BTreeMap<String, Option<String>>,
    /// A key read twice showed two different etags: this attempt cannot
    /// commit.
    conflicted: bool,
    ops: OpQueue,
}

impl<'a> Transaction<'a> {
    fn new(host: &'a dyn Host) -> Self {
        Transaction {
            host,
            reads: BTreeMap::new(),
            conflicted: false,
            ops: OpQueue::default(),
        }
    }

    fn observe(&mut self, key: &str, etag: Option<&str>) {
        match self.reads.get(key) {
            Some(seen) => self.conflicted |= seen.as_deref() != etag,
            None => {
                self.reads.insert(key.to_owned(), etag.map(str::to_owned));
            }
        }
    }

    /// Records `key`'s etag through `info` and returns its kind, or `None`
    /// if it does not exist. Fails with `WrongType` if it exists with
    /// another kind than `want`.
    fn observe_kind(&mut self, key: &str, want: Option<KeyKind>) -> Result<Option<KeyKind>> {
        let info = self.host.info(key)?;
        self.observe(key, info.as_ref().map(|i| i.etag.as_str()));
        let kind = info.map(|i| KeyKind::from(i.kind));
        match (kind, want) {
            (Some(k), Some(w)) if k != w => Err(Error::WrongType),
            _ => Ok(kind),
        }
    }

    /// Reads the value at `key` (JSON) and records its etag; `None` if
    /// missing (recorded as must-be-absent).
    pub fn get<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>> {
        self.get_bytes(key)?.map(|b| from_json(&b)).transpose()
    }

    /// Reads the raw bytes at `key` and records its etag.
    pub fn get_bytes(&mut self, key: &str) -> Result<Option<Vec<u8>>> {
        let entry = self.host.get_entry(key)?;
        self.observe(key, entry.as_ref().map(|e| e.etag.as_str()));
        Ok(entry.map(|e| e.value))
    }

    /// Whether `key` exists (any type), recording its etag or absence.
    pub fn exists(&mut self, key: &str) -> Result<bool> {
        Ok(self.observe_kind(key, None)?.is_some())
    }

    /// Type, etag and TTL of `key` (any type), recording its etag.
    pub fn info(&mut self, key: &str) -> Result<Option<KeyInfo>> {
        let info = self.host.info(key)?;
        self.observe(key, info.as_ref().map(|i| i.etag.as_str()));
        Ok(info.map(KeyInfo::from))
    }

    /// One field of the map at `map` (JSON), recording the map's etag.
    pub fn map_get_value<T: DeserializeOwned>(
        &mut self,
        map: &str,
        field: &str,
    ) -> Result<Option<T>> {
        if self.observe_kind(map, Some(KeyKind::Map))?.is_none() {
            return Ok(None);
        }
        self.host
            .map_get(map, field)?
            .map(|b| from_json(&b))
            .transpose()
    }

    /// All fields and values of the map at `map` (JSON), recording its etag.
    pub fn map_get_all<T: DeserializeOwned>(&mut self, map: &str) -> Result<BTreeMap<String, T>> {
        if self.observe_kind(map, Some(KeyKind::Map))?.is_none() {
            return Ok(BTreeMap::new());
        }
        self.host
            .map_get_all(map)?
            .into_iter()
            .map(|e| Ok((e.field, from_json(&e.value)?)))
            .collect()
    }

    /// All field names of the map at `map`, recording its etag.
    pub fn map_keys(&mut self, map: &str) -> Result<Vec<String>> {
        if self.observe_kind(map, Some(KeyKind::Map))?.is_none() {
            return Ok(Vec::new());
        }
        Ok(self.host.map_keys(map)?)
    }

    /// Number of fields of the map at `map`, recording its etag.
    pub fn map_length(&mut self, map: &str) -> Result<u64> {
        if self.observe_kind(map, Some(KeyKind::Map))?.is_none() {
            return Ok(0);
        }
        Ok(self.host.map_length(map)?)
    }

    /// Items `start..=stop` of the list at `list` (JSON; negative indices
    /// count from the end), recording its etag.
    pub fn list_range<T: DeserializeOwned>(
        &mut self,
        list: &str,
        start: i64,
        stop: i64,
    ) -> Result<Vec<T>> {
        if self.observe_kind(list, Some(KeyKind::List))?.is_none() {
            return Ok(Vec::new());
        }
        self.host
            .list_range(list, start, stop)?
            .iter()
            .map(|b| from_json(b))
            .collect()
    }

    /// Length of the list at `list`, recording its etag.
    pub fn list_length(&mut self, list: &str) -> Result<u64> {
        if self.observe_kind(list, Some(KeyKind::List))?.is_none() {
            return Ok(0);
        }
        Ok(self.host.list_length(list)?)
    }

    /// The item at `index` of the list at `list` (JSON), recording its etag.
    pub fn list_index<T: DeserializeOwned>(&mut self, list: &str, index: i64) -> Result<Option<T>> {
        if self.observe_kind(list, Some(KeyKind::List))?.is_none() {
            return Ok(None);
        }
        self.host
            .list_index(list, index)?
            .map(|b| from_json(&b))
            .transpose()
    }

    queue_methods!();

    /// The `check` ops asserting every read (one per key, in key order).
    fn checks(&self) -> Vec<w::Op> {
        self.reads
            .iter()
            .map(|(key, etag)| w::Op {
                key: key.clone(),
                kind: w::OpKind::Check,
                condition: Some(match etag {
                    Some(e) => w::Condition::IfMatch(e.clone()),
                    None => w::Condition::IfAbsent,
                }),
            })
            .collect()
    }
}

impl fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("reads", &self.reads)
            .field("conflicted", &self.conflicted)
            .field("ops", &self.ops)
            .finish()
    }
}

/// What committing one attempt came to.
enum Outcome {
    Committed,
    /// A read key changed: run the closure again.
    Conflict,
    Failed(Error),
}

/// Commits `checks` followed by `writes`. A failed check (etag-mismatch,
/// already-exists, not-found at a check's index) is a conflict; a failed
/// write is reported with its index among `writes`.
fn commit(host: &dyn Host, checks: Vec<w::Op>, writes: Vec<w::Op>) -> Outcome {
    let n_checks = checks.len();
    let mut ops = checks;
    ops.extend(writes);
    if ops.is_empty() {
        return Outcome::Committed;
    }
    match host.commit(&ops) {
        Ok(_) => Outcome::Committed,
        Err(e) if e.index.is_some_and(|i| (i as usize) < n_checks) => match e.error {
            w::Error::EtagMismatch | w::Error::AlreadyExists | w::Error::NotFound => {
                Outcome::Conflict
            }
            other => Outcome::Failed(Error::from(other)),
        },
        Err(e) => Outcome::Failed(from_commit_error(
            e,
            u32::try_from(n_checks).unwrap_or(u32::MAX),
        )),
    }
}

/// Runs `f` as a read-modify-write transaction on `host`, at most
/// `max_attempts` times (at least once).
pub(crate) fn run<R>(
    host: &dyn Host,
    max_attempts: u32,
    mut f: impl FnMut(&mut Transaction<'_>) -> Result<R>,
) -> Result<R> {
    let attempts = max_attempts.max(1);
    for _ in 0..attempts {
        let mut tx = Transaction::new(host);
        let result = f(&mut tx);
        if tx.conflicted {
            continue;
        }
        let checks = tx.checks();
        match result {
            Ok(value) => {
                let writes = tx.ops.take()?;
                match commit(host, checks, writes) {
                    Outcome::Committed => return Ok(value),
                    Outcome::Conflict => continue,
                    Outcome::Failed(e) => return Err(e),
                }
            }
            Err(e) => {
                // The closure may have failed because its reads were
                // inconsistent (a concurrent write between two of them):
                // only report its error if the reads still hold.
                if checks.is_empty() {
                    return Err(e);
                }
                match commit(host, checks, Vec::new()) {
                    Outcome::Conflict => continue,
                    Outcome::Committed | Outcome::Failed(_) => return Err(e),
                }
            }
        }
    }
    Err(Error::Conflict { attempts })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_host::FakeHost;
    use crate::{Condition, SetOptions};

    #[test]
    fn reads_become_checks_before_the_writes() {
        let host = FakeHost::default();
        host.put("a", b"1");
        let n: i64 = run(&host, 8, |tx| {
            let a: i64 = tx.get("a")?.unwrap_or(0);
            let b: Option<i64> = tx.get("b")?;
            assert_eq!(b, None);
            tx.set("b", &(a + 1)).increment("c", 5);
            Ok(a + 1)
        })
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(host.value("b").as_deref(), Some(&b"2"[..]));
        assert_eq!(host.value("c").as_deref(), Some(&b"5"[..]));
        let commits = host.commits();
        assert_eq!(commits.len(), 1);
        let ops = &commits[0];
        assert_eq!(ops.len(), 4);
        assert_eq!(ops[0].key, "a");
        assert!(matches!(ops[0].kind, w::OpKind::Check));
        assert!(matches!(&ops[0].condition, Some(w::Condition::IfMatch(e)) if e == "e1"));
        assert_eq!(ops[1].key, "b");
        assert!(matches!(ops[1].condition, Some(w::Condition::IfAbsent)));
        assert!(matches!(ops[2].kind, w::OpKind::Set(_)));
        assert!(matches!(ops[3].kind, w::OpKind::Increment(5)));
    }

    #[test]
    fn a_conflict_reruns_the_closure_on_fresh_data() {
        let host = FakeHost::default();
        host.put("n", b"10");
        host.interfere_on_read("n", 2); // two concurrent writers sneak in
        let mut runs = 0;
        let n = run(&host, 8, |tx| {
            runs += 1;
            let n: i64 = tx.get("n")?.unwrap();
            tx.set("n", &(n + 1));
            Ok(n + 1)
        })
        .unwrap();
        assert_eq!(runs, 3);
        // Each interference rewrote "n" with its own bytes + bumped etag; the
        // final attempt read the last of them and committed on top.
        assert_eq!(n, 11);
        assert_eq!(host.value("n").as_deref(), Some(&b"11"[..]));
        assert_eq!(host.commits().len(), 3);
    }

    #[test]
    fn gives_up_after_the_attempt_budget() {
        let host = FakeHost::default();
        host.put("n", b"1");
        host.interfere_on_read("n", u32::MAX);
        let mut runs = 0;
        let err = run(&host, 3, |tx| {
            runs += 1;
            let n: i64 = tx.get("n")?.unwrap();
            tx.set("n", &(n + 1));
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(err, Error::Conflict { attempts: 3 }));
        assert_eq!(runs, 3);
        // Zero attempts still runs once.
        let err = run(&host, 0, |tx| tx.get::<i64>("n").map(drop)).unwrap_err();
        assert!(matches!(err, Error::Conflict { attempts: 1 }));
    }

    #[test]
    fn a_failed_write_reports_its_index_among_the_writes() {
        let host = FakeHost::default();
        host.put("taken", b"1");
        let err = run(&host, 8, |tx| {
            tx.get::<i64>("x")?;
            tx.get::<i64>("y")?;
            tx.increment("z", 1)
                .set_with("taken", &2, SetOptions::condition(Condition::IfAbsent));
            Ok(())
        })
        .unwrap_err();
        match err {
            Error::Transaction { index, source } => {
                assert_eq!(index, 1);
                assert!(matches!(*source, Error::AlreadyExists));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(host.commits().len(), 1);
        assert_eq!(host.value("z"), None, "nothing applied");
    }

    #[test]
    fn closure_errors_are_checked_against_concurrent_writes() {
        let host = FakeHost::default();
        host.put("balance", b"5");
        host.interfere_on_read("balance", 1);
        let mut runs = 0;
        let err = run(&host, 8, |tx| {
            runs += 1;
            let balance: i64 = tx.get("balance")?.unwrap();
            if balance < 100 {
                return Err(Error::InvalidArgument(format!("balance {balance}")));
            }
            Ok(())
        })
        .unwrap_err();
        // First attempt's read was overtaken: its error is not trusted and
        // the closure ran again; the second attempt's error stands.
        assert_eq!(runs, 2);
        assert!(matches!(err, Error::InvalidArgument(_)));
        let commits = host.commits();
        assert_eq!(commits.len(), 2);
        assert!(commits.iter().all(|ops| ops.len() == 1));
    }

    #[test]
    fn read_only_and_empty_transactions() {
        let host = FakeHost::default();
        host.put("a", b"\"x\"");
        let a: Option<String> = run(&host, 8, |tx| tx.get("a")).unwrap();
        assert_eq!(a.as_deref(), Some("x"));
        assert_eq!(host.commits().len(), 1, "reads validated by one commit");
        let v = run(&host, 8, |_| Ok(7)).unwrap();
        assert_eq!(v, 7);
        assert_eq!(host.commits().len(), 1, "nothing to commit: no host call");
    }

    #[test]
    fn a_key_read_twice_with_different_etags_retries_without_committing() {
        let host = FakeHost::default();
        host.put("k", b"1");
        host.interfere_on_read("k", 1);
        let mut runs = 0;
        run(&host, 8, |tx| {
            runs += 1;
            tx.get::<i64>("k")?;
            tx.get::<i64>("k")?;
            Ok(())
        })
        .unwrap();
        assert_eq!(runs, 2);
        assert_eq!(host.commits().len(), 1);
    }

    #[test]
    fn serialization_errors_fail_without_commit() {
        let host = FakeHost::default();
        let mut bad = std::collections::HashMap::new();
        bad.insert(vec![1], 1);
        let err = run(&host, 8, |tx| {
            tx.set("k", &bad);
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(err, Error::Json(_)));
        assert!(host.commits().is_empty());
    }

    #[test]
    fn map_and_list_reads_record_info_etags() {
        let host = FakeHost::default();
        host.put_kind("m", w::KeyKind::Map);
        host.put_kind("l", w::KeyKind::List);
        let err = run(&host, 8, |tx| {
            assert_eq!(tx.map_length("m")?, 0);
            assert_eq!(tx.list_length("l")?, 0);
            assert_eq!(tx.map_get_value::<i64>("missing", "f")?, None);
            tx.list_range::<i64>("m", 0, -1)
        })
        .unwrap_err();
        assert!(matches!(err, Error::WrongType));
        let ops = &host.commits()[0];
        let keys: Vec<_> = ops.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["l", "m", "missing"]);
        assert!(matches!(ops[2].condition, Some(w::Condition::IfAbsent)));
    }
}
