//! Watchers in the kv engine (see [`crate::store::watch`]): registrations,
//! capturing the value changes of watched scopes inside a write request,
//! and each watcher's bounded change queue, written with the change.

use std::collections::BTreeMap;

use super::layout;
use super::meta::Meta;
use super::ops::cx::WriteCx;
use crate::store::error::{Result, StateError};
use crate::store::kv::backend::RawRead;
use crate::store::watch::{Change, ChangeBatch, QueueOwner, WatchTarget};

/// The changes of one write request to value keys of watched scopes.
#[derive(Debug, Default)]
pub struct Capture {
    /// The watcher making this request (its own changes are not queued for it).
    pub origin: Option<String>,
    /// The current op changes only a key's expiry (`expire`, `persist`).
    pub meta_only: bool,
    /// Watchers by watch prefix, read once per request.
    watchers: BTreeMap<Vec<u8>, Vec<String>>,
    /// Changes in first-touch order: meta key, scope prefix length, value.
    changes: Vec<(Vec<u8>, usize, Option<Vec<u8>>)>,
    /// Meta key → position in `changes` (a key changed twice notifies once).
    index: BTreeMap<Vec<u8>, usize>,
}

fn decode_names(b: &[u8]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = b;
    while !rest.is_empty() {
        let (name, r) = layout::take_lp16_prefix(rest)
            .ok_or_else(|| StateError::corrupt("watch registration"))?;
        out.push(String::from_utf8_lossy(name).into_owned());
        rest = r;
    }
    Ok(out)
}

fn encode_names(names: &[String]) -> Vec<u8> {
    let mut v = Vec::new();
    for n in names {
        layout::put_lp16(&mut v, n.as_bytes());
    }
    v
}

/// The watchers of a watch prefix.
fn watchers(r: &dyn RawRead, watch_prefix: &[u8]) -> Result<Vec<String>> {
    match r.get(&layout::watchers_key(watch_prefix))? {
        Some(b) => decode_names(&b),
        None => Ok(Vec::new()),
    }
}

impl Capture {
    fn watched(&mut self, r: &dyn RawRead, scope_prefix: &[u8]) -> Result<bool> {
        if !r.may_hold(layout::WATCHERS) {
            return Ok(false);
        }
        let wp = layout::watch_prefix_of(scope_prefix);
        if !self.watchers.contains_key(wp) {
            let names = watchers(r, wp)?;
            self.watchers.insert(wp.to_vec(), names);
        }
        Ok(self.watchers.get(wp).is_some_and(|w| !w.is_empty()))
    }

    fn note(&mut self, meta_key: &[u8], scope_len: usize, value: Option<Vec<u8>>) {
        match self.index.get(meta_key) {
            Some(&i) => self.changes[i].2 = value,
            None => {
                self.index.insert(meta_key.to_vec(), self.changes.len());
                self.changes.push((meta_key.to_vec(), scope_len, value));
            }
        }
    }

    /// A meta record is about to be written (`new` = its bytes) or deleted
    /// (`None`); `r` still shows the old record.
    pub fn meta_write(&mut self, r: &dyn RawRead, key: &[u8], new: Option<&[u8]>) -> Result<()> {
        let Some(scope_len) = layout::meta_scope_len(key) else {
            return Ok(());
        };
        if !self.watched(r, &key[..scope_len])? {
            return Ok(());
        }
        let old = r.get(key)?;
        let old = old.as_deref().and_then(Meta::peek);
        let new = new.and_then(Meta::peek);
        let change = match (old.and_then(|m| m.value), new.and_then(|m| m.value)) {
            // Expiry changes of a live value change no value.
            (Some(a), Some(b)) if self.meta_only && a == b => None,
            (_, Some(b)) => Some(Some(b.to_vec())),
            (Some(_), None) => Some(None),
            (None, None) => None,
        };
        if let Some(value) = change {
            self.note(key, scope_len, value);
        }
        Ok(())
    }

    /// Every record in `start..end` is about to be deleted.
    pub fn range_delete(
        &mut self,
        r: &dyn RawRead,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<()> {
        let mut doomed = Vec::new();
        let mut err = None;
        r.scan(start, end, false, &mut |k, v| {
            if let Some(scope_len) = layout::meta_scope_len(k)
                && Meta::peek(v).is_some_and(|m| m.value.is_some())
            {
                match self.watched(r, &k[..scope_len]) {
                    Ok(true) => doomed.push((k.to_vec(), scope_len)),
                    Ok(false) => {}
                    Err(e) => {
                        err = Some(e);
                        return false;
                    }
                }
            }
            true
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        for (k, scope_len) in doomed {
            self.note(&k, scope_len, None);
        }
        Ok(())
    }
}

/// Queue entry: lp16 scope prefix, lp32 key, 1 + value (a set) or 0 (a delete).
fn encode_entry(scope_prefix: &[u8], key: &[u8], value: Option<&[u8]>) -> Vec<u8> {
    let mut v = Vec::with_capacity(scope_prefix.len() + key.len() + 8);
    layout::put_lp16(&mut v, scope_prefix);
    layout::put_lp32(&mut v, key);
    match value {
        Some(b) => {
            v.push(1);
            v.extend_from_slice(b);
        }
        None => v.push(0),
    }
    v
}

/// Decode a queue entry of seq `seq`.
pub fn decode_entry(seq: u64, b: &[u8]) -> Result<Change> {
    let bad = || StateError::corrupt("change queue entry");
    let (prefix, rest) = layout::take_lp16_prefix(b).ok_or_else(bad)?;
    let (key, rest) = layout::take_lp32_prefix(rest).ok_or_else(bad)?;
    let value = match rest.split_first().ok_or_else(bad)? {
        (1, v) => Some(v.to_vec()),
        (0, []) => None,
        _ => return Err(bad()),
    };
    Ok(Change {
        seq,
        scope: layout::scope_of_prefix(prefix).ok_or_else(bad)?,
        key: String::from_utf8(key.to_vec()).map_err(|_| bad())?,
        value,
    })
}

/// A queue head: next seq, length, dropped so far, and the bytes of its
/// entries (a head written before that count reads as 0 bytes).
#[derive(Debug, Clone, Copy)]
struct Head {
    next: u64,
    len: u64,
    dropped: u64,
    bytes: u64,
}

fn read_head(r: &dyn RawRead, key: &[u8]) -> Result<Head> {
    match r.get(key)? {
        None => Ok(Head {
            next: 1,
            len: 0,
            dropped: 0,
            bytes: 0,
        }),
        Some(b) => {
            let word = |i: usize| layout::be_u64(b.get(i * 8..).unwrap_or_default());
            match (word(0), word(1), word(2)) {
                (Some(next), Some(len), Some(dropped)) => Ok(Head {
                    next,
                    len,
                    dropped,
                    bytes: word(3).unwrap_or(0),
                }),
                _ => Err(StateError::corrupt("change queue head")),
            }
        }
    }
}

fn write_head(cx: &mut WriteCx, key: &[u8], h: Head) -> Result<()> {
    let mut v = h.next.to_be_bytes().to_vec();
    v.extend_from_slice(&h.len.to_be_bytes());
    v.extend_from_slice(&h.dropped.to_be_bytes());
    v.extend_from_slice(&h.bytes.to_be_bytes());
    cx.put(key, &v)
}

/// One queued entry as stored: (record key, seq, encoded change).
type QueueEntry = (Vec<u8>, u64, Vec<u8>);

/// The first `limit` entries of a queue.
fn first_entries(r: &dyn RawRead, prefix: &[u8], limit: usize) -> Result<Vec<QueueEntry>> {
    let mut out = Vec::new();
    r.scan(
        prefix,
        layout::prefix_end(prefix).as_deref(),
        false,
        &mut |k, v| {
            if let Some(seq) = layout::be_u64(&k[prefix.len()..]) {
                out.push((k.to_vec(), seq, v.to_vec()));
            }
            out.len() < limit
        },
    )?;
    Ok(out)
}

/// Queue the request's changes for their watchers (called once, when the
/// request's ops succeeded).
pub fn flush(cx: &mut WriteCx, cap: Capture) -> Result<()> {
    let max = cx.limits.watch_queue.max(1) as u64;
    for (meta_key, scope_len, value) in &cap.changes {
        let scope_prefix = &meta_key[..*scope_len];
        let Some(owner) = layout::owner_of(meta_key).map(<[u8]>::to_vec) else {
            continue;
        };
        let entry = encode_entry(scope_prefix, &meta_key[scope_len + 1..], value.as_deref());
        let wp = layout::watch_prefix_of(scope_prefix);
        for watcher in cap.watchers.get(wp).into_iter().flatten() {
            if cap.origin.as_deref() == Some(watcher.as_str()) {
                continue;
            }
            let head_key = layout::queue_head_key(&owner, watcher);
            let mut head = read_head(cx.r(), &head_key)?;
            cx.put(&layout::queue_key(&owner, watcher, head.next), &entry)?;
            head.next += 1;
            head.len += 1;
            head.bytes = head.bytes.saturating_add(entry.len() as u64);
            // Past the bounds (entries, and the bytes the owner may store)
            // the oldest go. A queue is its seqs `next - len .. next`
            // (entries leave only from the front: acks and this), so the
            // oldest is found without a scan — a scan would walk every
            // entry this request already dropped (M²/2 for M changes into
            // a full queue).
            let max_bytes = if layout::owner_is_account(&owner) {
                cx.limits.account_quota_bytes
            } else {
                cx.limits.instance_quota_bytes
            };
            while head.len > max || (head.len > 1 && head.bytes > max_bytes) {
                let oldest = layout::queue_key(&owner, watcher, head.next - head.len);
                let size = cx.r().get(&oldest)?.map_or(0, |v| v.len() as u64);
                cx.delete(&oldest)?;
                head.len -= 1;
                head.bytes = head.bytes.saturating_sub(size);
                head.dropped += 1;
            }
            write_head(cx, &head_key, head)?;
        }
    }
    Ok(())
}

/// The owner record prefix of a queue owner.
pub fn owner_bytes(owner: &QueueOwner) -> Vec<u8> {
    match owner {
        QueueOwner::Instance(i) => layout::instance_owner(i),
        QueueOwner::Account(a) => layout::account_owner(a),
    }
}

/// The watch prefix of a target.
pub fn target_prefix(t: &WatchTarget) -> Vec<u8> {
    match t {
        WatchTarget::Instance(i) => layout::scope_prefix(&crate::store::Scope::Instance(i.clone())),
        WatchTarget::Sessions(i) => layout::sessions_watch_prefix(i),
        WatchTarget::Account(a) => layout::scope_prefix(&crate::store::Scope::Account(a.clone())),
    }
}

/// Encode a watcher's targets (its `V` record).
pub fn encode_targets(targets: &[WatchTarget]) -> Vec<u8> {
    let mut v = Vec::new();
    for t in targets {
        let (tag, name) = match t {
            WatchTarget::Instance(n) => (b'i', n),
            WatchTarget::Sessions(n) => (b's', n),
            WatchTarget::Account(n) => (b'a', n),
        };
        v.push(tag);
        layout::put_lp16(&mut v, name.as_bytes());
    }
    v
}

/// Decode a watcher's targets.
pub fn decode_targets(b: &[u8]) -> Result<Vec<WatchTarget>> {
    let bad = || StateError::corrupt("watcher registration");
    let mut out = Vec::new();
    let mut rest = b;
    while let Some((&tag, r)) = rest.split_first() {
        let (name, r) = layout::take_lp16_prefix(r).ok_or_else(bad)?;
        let name = String::from_utf8_lossy(name).into_owned();
        out.push(match tag {
            b'i' => WatchTarget::Instance(name),
            b's' => WatchTarget::Sessions(name),
            b'a' => WatchTarget::Account(name),
            _ => return Err(bad()),
        });
        rest = r;
    }
    Ok(out)
}

/// Record what `watcher` watches now; returns what it watched before.
pub fn set_watching(
    cx: &mut WriteCx,
    watcher: &str,
    targets: &[WatchTarget],
) -> Result<Vec<WatchTarget>> {
    let key = layout::watching_key(watcher);
    let old = match cx.r().get(&key)? {
        Some(b) => decode_targets(&b)?,
        None => Vec::new(),
    };
    if targets.is_empty() {
        cx.delete(&key)?;
    } else {
        cx.put(&key, &encode_targets(targets))?;
    }
    Ok(old)
}

/// At one owner, register `watcher` for the watch prefixes `wanted` and
/// unregister it from `unwanted`; with nothing wanted, its queue there
/// goes too.
pub fn set_owner(
    cx: &mut WriteCx,
    watcher: &str,
    owner: &[u8],
    wanted: &[Vec<u8>],
    unwanted: &[Vec<u8>],
) -> Result<()> {
    for (prefix, add) in wanted
        .iter()
        .map(|p| (p, true))
        .chain(unwanted.iter().map(|p| (p, false)))
    {
        let key = layout::watchers_key(prefix);
        let mut names = watchers(cx.r(), prefix)?;
        names.retain(|n| n != watcher);
        if add {
            names.push(watcher.to_string());
        }
        if names.is_empty() {
            cx.delete(&key)?;
        } else {
            cx.put(&key, &encode_names(&names))?;
        }
    }
    if wanted.is_empty() {
        let prefix = layout::queue_prefix(owner, watcher);
        cx.delete_range(&prefix, layout::prefix_end(&prefix).as_deref())?;
        // The head stays with its next seq: a queue made again later goes
        // on from there, so a watcher that skips seqs it has seen (as the
        // docs suggest) skips none of the new ones, and a late ack of the
        // old queue cannot take new entries.
        let head_key = layout::queue_head_key(owner, watcher);
        let head = read_head(cx.r(), &head_key)?;
        if head.next > 1 {
            write_head(
                cx,
                &head_key,
                Head {
                    next: head.next,
                    len: 0,
                    dropped: 0,
                    bytes: 0,
                },
            )?;
        }
    }
    Ok(())
}

/// Register `watcher` for exactly `targets` (in one request, at every owner).
pub fn watch(cx: &mut WriteCx, watcher: &str, targets: &[WatchTarget]) -> Result<()> {
    let old = set_watching(cx, watcher, targets)?;
    let mut owners: Vec<QueueOwner> = old.iter().chain(targets).map(WatchTarget::owner).collect();
    owners.sort();
    owners.dedup();
    for owner in owners {
        let (wanted, unwanted) = split_for_owner(&owner, &old, targets);
        set_owner(cx, watcher, &owner_bytes(&owner), &wanted, &unwanted)?;
    }
    Ok(())
}

/// The watch prefixes of `owner` to register (in `new`) and to drop (only
/// in `old`).
pub fn split_for_owner(
    owner: &QueueOwner,
    old: &[WatchTarget],
    new: &[WatchTarget],
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let of = |ts: &[WatchTarget]| -> Vec<Vec<u8>> {
        ts.iter()
            .filter(|t| &t.owner() == owner)
            .map(target_prefix)
            .collect()
    };
    let wanted = of(new);
    let unwanted = of(old)
        .into_iter()
        .filter(|p| !wanted.contains(p))
        .collect();
    (wanted, unwanted)
}

/// The oldest `limit` changes of `watcher`'s queue at `owner`.
pub fn pending(
    r: &dyn RawRead,
    watcher: &str,
    owner: &QueueOwner,
    limit: usize,
) -> Result<ChangeBatch> {
    let owner = owner_bytes(owner);
    let head = read_head(r, &layout::queue_head_key(&owner, watcher))?;
    let prefix = layout::queue_prefix(&owner, watcher);
    let changes = first_entries(r, &prefix, limit)?
        .into_iter()
        .map(|(_, seq, b)| decode_entry(seq, &b))
        .collect::<Result<_>>()?;
    Ok(ChangeBatch {
        changes,
        dropped: head.dropped,
        busy: false,
    })
}

/// Forget the changes of `watcher`'s queue at `owner` up to seq `upto`.
pub fn ack(cx: &mut WriteCx, watcher: &str, owner: &QueueOwner, upto: u64) -> Result<()> {
    let owner = owner_bytes(owner);
    let prefix = layout::queue_prefix(&owner, watcher);
    let end = layout::queue_key(&owner, watcher, upto.saturating_add(1));
    let mut done = Vec::new();
    let mut freed = 0u64;
    cx.r().scan(&prefix, Some(&end), false, &mut |k, v| {
        done.push(k.to_vec());
        freed += v.len() as u64;
        true
    })?;
    if done.is_empty() {
        return Ok(());
    }
    let head_key = layout::queue_head_key(&owner, watcher);
    let mut head = read_head(cx.r(), &head_key)?;
    for k in &done {
        cx.delete(k)?;
    }
    head.len = head.len.saturating_sub(done.len() as u64);
    head.bytes = head.bytes.saturating_sub(freed);
    write_head(cx, &head_key, head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let scope = crate::store::Scope::Session {
            instance: "app".into(),
            id: "s1".into(),
        };
        let prefix = layout::scope_prefix(&scope);
        for value in [Some(&b"v"[..]), Some(&b""[..]), None] {
            let e = encode_entry(&prefix, "k/1".as_bytes(), value);
            let c = decode_entry(7, &e).unwrap();
            assert_eq!(c.scope, scope);
            assert_eq!(c.key, "k/1");
            assert_eq!(c.value.as_deref(), value);
        }
        assert_eq!(layout::QUEUE, b'w');
    }

    #[test]
    fn targets_round_trip() {
        let t = vec![
            WatchTarget::Instance("a".into()),
            WatchTarget::Sessions("a".into()),
            WatchTarget::Account("acc".into()),
        ];
        assert_eq!(decode_targets(&encode_targets(&t)).unwrap(), t);
    }
}
