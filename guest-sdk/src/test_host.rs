//! An in-memory stand-in for the host, for the native unit tests of the
//! transaction loop, batches and paging iterators. It implements just enough
//! of the contract (etags, conditions, a few op kinds, paging) for them.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::bindings::types as w;
use crate::host::Host;

type R<T> = Result<T, w::Error>;

#[derive(Clone)]
struct Item {
    kind: w::KeyKind,
    value: Vec<u8>,
    fields: BTreeMap<String, Vec<u8>>,
    etag: String,
}

#[derive(Default)]
struct Inner {
    keys: BTreeMap<String, Item>,
    version: u64,
    /// Key rewritten (same bytes, new etag) after each of the next n reads.
    interfere: Option<(String, u32)>,
    commits: Vec<Vec<w::Op>>,
    keys_calls: u32,
}

impl Inner {
    fn next_etag(&mut self) -> String {
        self.version += 1;
        format!("e{}", self.version)
    }

    fn after_read(&mut self, key: &str) {
        if let Some((k, n)) = &mut self.interfere
            && k == key
            && *n > 0
        {
            *n -= 1;
            let etag = self.next_etag();
            if let Some(item) = self.keys.get_mut(key) {
                item.etag = etag;
            }
        }
    }
}

#[derive(Default)]
pub(crate) struct FakeHost {
    inner: RefCell<Inner>,
}

impl FakeHost {
    fn insert(&self, key: &str, kind: w::KeyKind, value: &[u8], fields: BTreeMap<String, Vec<u8>>) {
        let mut inner = self.inner.borrow_mut();
        let etag = inner.next_etag();
        inner.keys.insert(
            key.to_owned(),
            Item {
                kind,
                value: value.to_vec(),
                fields,
                etag,
            },
        );
    }

    pub(crate) fn put(&self, key: &str, value: &[u8]) {
        self.insert(key, w::KeyKind::Value, value, BTreeMap::new());
    }

    pub(crate) fn put_kind(&self, key: &str, kind: w::KeyKind) {
        self.insert(key, kind, b"", BTreeMap::new());
    }

    pub(crate) fn put_map<'f>(
        &self,
        key: &str,
        fields: impl IntoIterator<Item = (&'f str, String)>,
    ) {
        let fields = fields
            .into_iter()
            .map(|(f, v)| (f.to_owned(), v.into_bytes()))
            .collect();
        self.insert(key, w::KeyKind::Map, b"", fields);
    }

    pub(crate) fn value(&self, key: &str) -> Option<Vec<u8>> {
        self.inner.borrow().keys.get(key).map(|i| i.value.clone())
    }

    pub(crate) fn interfere_on_read(&self, key: &str, times: u32) {
        self.inner.borrow_mut().interfere = Some((key.to_owned(), times));
    }

    pub(crate) fn commits(&self) -> Vec<Vec<w::Op>> {
        self.inner.borrow().commits.clone()
    }

    pub(crate) fn keys_calls(&self) -> u32 {
        self.inner.borrow().keys_calls
    }

    fn item(&self, key: &str) -> Option<Item> {
        self.inner.borrow().keys.get(key).cloned()
    }

    fn map(&self, key: &str) -> R<BTreeMap<String, Vec<u8>>> {
        match self.item(key) {
            None => Ok(BTreeMap::new()),
            Some(i) if i.kind == w::KeyKind::Map => Ok(i.fields),
            Some(_) => Err(w::Error::WrongType),
        }
    }
}

fn apply(inner: &mut Inner, op: &w::Op) -> R<w::OpResult> {
    let current = inner.keys.get(&op.key);
    match &op.condition {
        Some(w::Condition::IfMatch(e)) if current.map(|i| &i.etag) != Some(e) => {
            return Err(w::Error::EtagMismatch);
        }
        Some(w::Condition::IfAbsent) if current.is_some() => return Err(w::Error::AlreadyExists),
        Some(w::Condition::IfExists) if current.is_none() => return Err(w::Error::NotFound),
        None if matches!(op.kind, w::OpKind::Check) => {
            return Err(w::Error::InvalidArgument("check needs a condition".into()));
        }
        _ => {}
    }
    let output = match &op.kind {
        w::OpKind::Check => w::OpOutput::None,
        w::OpKind::Set(s) => {
            let etag = inner.next_etag();
            inner.keys.insert(
                op.key.clone(),
                Item {
                    kind: w::KeyKind::Value,
                    value: s.value.clone(),
                    fields: BTreeMap::new(),
                    etag,
                },
            );
            w::OpOutput::None
        }
        w::OpKind::Delete => w::OpOutput::Boolean(inner.keys.remove(&op.key).is_some()),
        w::OpKind::Increment(d) => {
            let old: i64 = match inner.keys.get(&op.key) {
                None => 0,
                Some(i) => std::str::from_utf8(&i.value)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or(w::Error::NotAnInteger)?,
            };
            let new = old.checked_add(*d).ok_or(w::Error::Overflow)?;
            let etag = inner.next_etag();
            inner.keys.insert(
                op.key.clone(),
                Item {
                    kind: w::KeyKind::Value,
                    value: new.to_string().into_bytes(),
                    fields: BTreeMap::new(),
                    etag,
                },
            );
            w::OpOutput::Integer(new)
        }
        other => return Err(w::Error::Internal(format!("fake host: {other:?}"))),
    };
    Ok(w::OpResult {
        etag: inner.keys.get(&op.key).map(|i| i.etag.clone()),
        output,
    })
}

impl Host for FakeHost {
    fn get_entry(&self, key: &str) -> R<Option<w::Entry>> {
        let entry = match self.item(key) {
            None => None,
            Some(i) if i.kind != w::KeyKind::Value => return Err(w::Error::WrongType),
            Some(i) => Some(w::Entry {
                value: i.value,
                etag: i.etag,
                ttl_ms: None,
            }),
        };
        self.inner.borrow_mut().after_read(key);
        Ok(entry)
    }

    fn info(&self, key: &str) -> R<Option<w::KeyInfo>> {
        let info = self.item(key).map(|i| w::KeyInfo {
            kind: i.kind,
            etag: i.etag,
            ttl_ms: None,
        });
        self.inner.borrow_mut().after_read(key);
        Ok(info)
    }

    fn map_get(&self, key: &str, field: &str) -> R<Option<Vec<u8>>> {
        Ok(self.map(key)?.remove(field))
    }

    fn map_get_all(&self, key: &str) -> R<Vec<w::MapEntry>> {
        Ok(self
            .map(key)?
            .into_iter()
            .map(|(field, value)| w::MapEntry { field, value })
            .collect())
    }

    fn map_keys(&self, key: &str) -> R<Vec<String>> {
        Ok(self.map(key)?.into_keys().collect())
    }

    fn map_length(&self, key: &str) -> R<u64> {
        Ok(self.map(key)?.len() as u64)
    }

    fn list_range(&self, _key: &str, _start: i64, _stop: i64) -> R<Vec<Vec<u8>>> {
        Ok(Vec::new())
    }

    fn list_length(&self, _key: &str) -> R<u64> {
        Ok(0)
    }

    fn list_index(&self, _key: &str, _index: i64) -> R<Option<Vec<u8>>> {
        Ok(None)
    }

    /// Examines `limit` keys after the cursor and returns those under the
    /// prefix (so pages may be short or empty before the end).
    fn keys(&self, listing: &w::KeyListing) -> R<w::KeyPage> {
        let limit = listing.limit.unwrap_or(1000) as usize;
        if limit == 0 {
            return Err(w::Error::InvalidArgument("limit 0".into()));
        }
        let mut inner = self.inner.borrow_mut();
        inner.keys_calls += 1;
        let after: Vec<&String> = inner
            .keys
            .keys()
            .filter(|k| listing.cursor.as_ref().is_none_or(|c| *k > c))
            .collect();
        let examined = &after[..limit.min(after.len())];
        let keys = examined
            .iter()
            .filter(|k| {
                listing
                    .prefix
                    .as_ref()
                    .is_none_or(|p| k.starts_with(p.as_str()))
            })
            .map(|k| (*k).clone())
            .collect();
        let cursor = (after.len() > limit).then(|| examined[limit - 1].clone());
        Ok(w::KeyPage { keys, cursor })
    }

    fn map_scan(
        &self,
        key: &str,
        cursor: &str,
        _pattern: Option<&str>,
        count: u32,
    ) -> R<w::ScanPage> {
        if count == 0 {
            // As the host: a page of nothing is a caller's mistake.
            return Err(w::Error::InvalidArgument("count must be at least 1".into()));
        }
        let map = self.map(key)?;
        let after: Vec<(String, Vec<u8>)> = map
            .into_iter()
            .filter(|(f, _)| cursor == "0" || f.as_str() > cursor)
            .collect();
        let n = (count as usize).min(after.len());
        let cursor = if after.len() > n {
            after[n - 1].0.clone()
        } else {
            "0".to_owned()
        };
        let entries = after[..n]
            .iter()
            .map(|(field, value)| w::MapEntry {
                field: field.clone(),
                value: value.clone(),
            })
            .collect();
        Ok(w::ScanPage { cursor, entries })
    }

    fn commit(&self, ops: &[w::Op]) -> Result<Vec<w::OpResult>, w::CommitError> {
        let mut inner = self.inner.borrow_mut();
        inner.commits.push(ops.to_vec());
        let saved = inner.keys.clone();
        let mut results = Vec::new();
        for (index, op) in ops.iter().enumerate() {
            match apply(&mut inner, op) {
                Ok(r) => results.push(r),
                Err(error) => {
                    inner.keys = saved;
                    return Err(w::CommitError {
                        index: Some(index as u32),
                        error,
                    });
                }
            }
        }
        Ok(results)
    }
}
