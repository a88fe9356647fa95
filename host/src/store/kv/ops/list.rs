//! List operations with Redis semantics. Items are records keyed by a seq;
//! the meta holds `head..tail`, so index, set, pops and length cost O(log n)
//! whatever the list's size. Insert and remove move only the shorter side.

use super::cx::WriteCx;
use super::keyspace::{expect, load, purge, store};
use crate::store::error::{Result, StateError};
use crate::store::kv::backend::RawRead;
use crate::store::kv::layout::{ScopeKeys, item_key};
use crate::store::kv::meta::{Body, Meta};
use crate::store::limits::ReplyBudget;
use crate::store::types::KeyKind;

/// Redis LRANGE/LTRIM index rules: the inclusive span `(start, stop)` within
/// `0..len`, or `None` if it selects nothing.
pub fn span(len: i64, start: i64, stop: i64) -> Option<(i64, i64)> {
    let s = if start < 0 { len + start } else { start }.max(0);
    let e = if stop < 0 { len + stop } else { stop };
    if s > e || s >= len {
        return None;
    }
    Some((s, e.min(len - 1)))
}

/// LINDEX/LSET index rule: the offset within `0..len`, if any.
pub fn offset(len: i64, index: i64) -> Option<i64> {
    let i = if index < 0 { len + index } else { index };
    (0..len).contains(&i).then_some(i)
}

fn bounds(m: &Meta) -> (i64, i64) {
    match m.body {
        Body::List { head, tail } => (head, tail),
        _ => (0, 0),
    }
}

fn with_bounds(m: &Meta, head: i64, tail: i64) -> Meta {
    Meta {
        version: m.version,
        expires_at: m.expires_at,
        body: Body::List { head, tail },
    }
}

/// Items with seqs in `from..to`, in order.
fn items(r: &dyn RawRead, prefix: &[u8], from: i64, to: i64) -> Result<Vec<(i64, Vec<u8>)>> {
    items_within(r, prefix, from, to, &mut ReplyBudget::new(usize::MAX))
}

/// [`items`] for a reply: each item counts against `budget`, and past it
/// the read stops with `reply-too-large`.
fn items_within(
    r: &dyn RawRead,
    prefix: &[u8],
    from: i64,
    to: i64,
    budget: &mut ReplyBudget,
) -> Result<Vec<(i64, Vec<u8>)>> {
    let mut out = Vec::new();
    if from >= to {
        return Ok(out);
    }
    let mut seq = from;
    let mut over = None;
    r.scan(
        &item_key(prefix, from),
        Some(&item_key(prefix, to)),
        false,
        &mut |_, v| {
            if let Err(e) = budget.take(v.len()) {
                over = Some(e);
                return false;
            }
            out.push((seq, v.to_vec()));
            seq += 1;
            true
        },
    )?;
    match over {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

fn live_list(old: Option<&Meta>) -> Result<Option<&Meta>> {
    if let Some(m) = old {
        expect(m, KeyKind::List)?;
    }
    Ok(old)
}

/// Store the list with new bounds, or delete it if empty. Returns its version.
fn save(
    cx: &mut WriteCx,
    sk: &ScopeKeys,
    key: &str,
    m: &Meta,
    head: i64,
    tail: i64,
) -> Result<Option<u64>> {
    if head >= tail {
        purge(cx, sk, key, &with_bounds(m, head, tail))?;
        return Ok(None);
    }
    let mut new = with_bounds(m, head, tail);
    store(cx, sk, key, Some(m.expires_at), &mut new).map(Some)
}

/// RPUSH / LPUSH. Returns (new length, version).
pub fn push(
    cx: &mut WriteCx,
    sk: &ScopeKeys,
    key: &str,
    old: Option<&Meta>,
    values: &[Vec<u8>],
    at_end: bool,
) -> Result<(i64, u64)> {
    let fresh = Meta {
        version: 0,
        expires_at: 0,
        body: Body::List { head: 0, tail: 0 },
    };
    let m = live_list(old)?.cloned().unwrap_or(fresh);
    let (mut head, mut tail) = bounds(&m);
    let prefix = sk.items(key);
    for v in values {
        if at_end {
            cx.put_new(&item_key(&prefix, tail), v)?;
            tail += 1;
        } else {
            head -= 1;
            cx.put_new(&item_key(&prefix, head), v)?;
        }
    }
    let mut new = with_bounds(&m, head, tail);
    let v = store(cx, sk, key, old.map(|m| m.expires_at), &mut new)?;
    Ok((tail - head, v))
}

/// LPOP / RPOP with a count. Returns (values, version after).
pub fn pop(
    cx: &mut WriteCx,
    sk: &ScopeKeys,
    key: &str,
    old: Option<&Meta>,
    count: u64,
    from_end: bool,
) -> Result<(Vec<Vec<u8>>, Option<u64>)> {
    let Some(m) = live_list(old)? else {
        return Ok((Vec::new(), None));
    };
    let (mut head, mut tail) = bounds(m);
    let n = count.min((tail - head) as u64) as i64;
    if n == 0 {
        return Ok((Vec::new(), Some(m.version)));
    }
    let prefix = sk.items(key);
    let mut budget = cx.reply;
    let mut taken = if from_end {
        items_within(cx.r(), &prefix, tail - n, tail, &mut budget)?
    } else {
        items_within(cx.r(), &prefix, head, head + n, &mut budget)?
    };
    cx.reply = budget;
    if from_end {
        taken.reverse();
    }
    for (seq, _) in &taken {
        cx.delete(&item_key(&prefix, *seq))?;
    }
    if from_end {
        tail -= n;
    } else {
        head += n;
    }
    let v = save(cx, sk, key, m, head, tail)?;
    Ok((taken.into_iter().map(|(_, v)| v).collect(), v))
}

/// LTRIM. Returns the version after.
pub fn trim(
    cx: &mut WriteCx,
    sk: &ScopeKeys,
    key: &str,
    old: Option<&Meta>,
    start: i64,
    stop: i64,
) -> Result<Option<u64>> {
    let Some(m) = live_list(old)? else {
        return Ok(None);
    };
    let (head, tail) = bounds(m);
    let Some((s, e)) = span(tail - head, start, stop) else {
        purge(cx, sk, key, m)?;
        return Ok(None);
    };
    let (new_head, new_tail) = (head + s, head + e + 1);
    if (new_head, new_tail) == (head, tail) {
        return Ok(Some(m.version));
    }
    let prefix = sk.items(key);
    cx.delete_range(&item_key(&prefix, head), Some(&item_key(&prefix, new_head)))?;
    cx.delete_range(&item_key(&prefix, new_tail), Some(&item_key(&prefix, tail)))?;
    save(cx, sk, key, m, new_head, new_tail)
}

/// LREM. Returns (removed, version after).
pub fn remove(
    cx: &mut WriteCx,
    sk: &ScopeKeys,
    key: &str,
    old: Option<&Meta>,
    value: &[u8],
    count: i64,
) -> Result<(i64, Option<u64>)> {
    let Some(m) = live_list(old)? else {
        return Ok((0, None));
    };
    let (head, tail) = bounds(m);
    let prefix = sk.items(key);
    let limit = if count == 0 {
        u64::MAX
    } else {
        count.unsigned_abs()
    };
    let mut hits: Vec<i64> = Vec::new();
    let mut seq = if count < 0 { tail - 1 } else { head };
    cx.r().scan(
        &item_key(&prefix, head),
        Some(&item_key(&prefix, tail)),
        count < 0,
        &mut |_, v| {
            if v == value {
                hits.push(seq);
            }
            seq += if count < 0 { -1 } else { 1 };
            (hits.len() as u64) < limit
        },
    )?;
    if hits.is_empty() {
        return Ok((0, Some(m.version)));
    }
    hits.sort_unstable();
    let (lo, hi) = (hits[0], hits[hits.len() - 1]);
    let is_hit = |s: i64| hits.binary_search(&s).is_ok();
    let (new_head, new_tail) = if tail - lo <= hi - head + 1 {
        // Close the gaps by moving the tail side toward the head.
        let kept: Vec<_> = items(cx.r(), &prefix, lo, tail)?
            .into_iter()
            .filter(|(s, _)| !is_hit(*s))
            .collect();
        let mut at = lo;
        for (_, v) in &kept {
            cx.put(&item_key(&prefix, at), v)?;
            at += 1;
        }
        cx.delete_range(&item_key(&prefix, at), Some(&item_key(&prefix, tail)))?;
        (head, at)
    } else {
        // Move the head side toward the tail.
        let kept: Vec<_> = items(cx.r(), &prefix, head, hi + 1)?
            .into_iter()
            .filter(|(s, _)| !is_hit(*s))
            .collect();
        let new_head = hi + 1 - kept.len() as i64;
        for (i, (_, v)) in kept.iter().enumerate() {
            cx.put(&item_key(&prefix, new_head + i as i64), v)?;
        }
        cx.delete_range(&item_key(&prefix, head), Some(&item_key(&prefix, new_head)))?;
        (new_head, tail)
    };
    let v = save(cx, sk, key, m, new_head, new_tail)?;
    Ok((hits.len() as i64, v))
}

/// LINSERT. Returns (new length | -1 no pivot | 0 no list, version after).
pub fn insert(
    cx: &mut WriteCx,
    sk: &ScopeKeys,
    key: &str,
    old: Option<&Meta>,
    before: bool,
    pivot: &[u8],
    value: &[u8],
) -> Result<(i64, Option<u64>)> {
    let Some(m) = live_list(old)? else {
        return Ok((0, None));
    };
    let (head, tail) = bounds(m);
    let prefix = sk.items(key);
    let mut found = None;
    let mut seq = head;
    cx.r().scan(
        &item_key(&prefix, head),
        Some(&item_key(&prefix, tail)),
        false,
        &mut |_, v| {
            if v == pivot {
                found = Some(seq);
                return false;
            }
            seq += 1;
            true
        },
    )?;
    let Some(p) = found else {
        return Ok((-1, Some(m.version)));
    };
    // The new item takes offset `i`; items from there on move one place.
    let i = p - head + if before { 0 } else { 1 };
    let len = tail - head;
    let (new_head, new_tail) = if i <= len / 2 {
        for (s, v) in items(cx.r(), &prefix, head, head + i)? {
            cx.put(&item_key(&prefix, s - 1), &v)?;
        }
        cx.put(&item_key(&prefix, head + i - 1), value)?;
        (head - 1, tail)
    } else {
        for (s, v) in items(cx.r(), &prefix, head + i, tail)?.into_iter().rev() {
            cx.put(&item_key(&prefix, s + 1), &v)?;
        }
        cx.put(&item_key(&prefix, head + i), value)?;
        (head, tail + 1)
    };
    let v = save(cx, sk, key, m, new_head, new_tail)?;
    Ok((new_tail - new_head, v))
}

/// LSET. Returns the version after.
pub fn set(
    cx: &mut WriteCx,
    sk: &ScopeKeys,
    key: &str,
    old: Option<&Meta>,
    index: i64,
    value: &[u8],
) -> Result<u64> {
    let m = live_list(old)?.ok_or(StateError::NotFound)?;
    let (head, tail) = bounds(m);
    let i = offset(tail - head, index).ok_or(StateError::IndexOutOfRange {
        len: (tail - head) as u64,
    })?;
    cx.put(&item_key(&sk.items(key), head + i), value)?;
    let mut new = m.clone();
    store(cx, sk, key, Some(m.expires_at), &mut new)
}

/// The live meta of a list key (`wrong-type` for others).
fn load_list(r: &dyn RawRead, sk: &ScopeKeys, key: &str, now: u64) -> Result<Option<(i64, i64)>> {
    let m = load(r, sk, key, now)?;
    if let Some(m) = &m {
        expect(m, KeyKind::List)?;
    }
    Ok(m.as_ref().map(bounds))
}

/// LLEN.
pub fn length(r: &dyn RawRead, sk: &ScopeKeys, key: &str, now: u64) -> Result<u64> {
    match load_list(r, sk, key, now)? {
        None => Ok(0),
        Some((h, t)) => t
            .checked_sub(h)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| StateError::corrupt("list meta record")),
    }
}

/// LINDEX.
pub fn index(
    r: &dyn RawRead,
    sk: &ScopeKeys,
    key: &str,
    i: i64,
    now: u64,
) -> Result<Option<Vec<u8>>> {
    let Some((head, tail)) = load_list(r, sk, key, now)? else {
        return Ok(None);
    };
    match offset(tail - head, i) {
        Some(o) => r.get(&item_key(&sk.items(key), head + o)),
        None => Ok(None),
    }
}

/// LRANGE.
pub fn range(
    r: &dyn RawRead,
    sk: &ScopeKeys,
    key: &str,
    start: i64,
    stop: i64,
    now: u64,
    budget: &mut ReplyBudget,
) -> Result<Vec<Vec<u8>>> {
    let Some((head, tail)) = load_list(r, sk, key, now)? else {
        return Ok(Vec::new());
    };
    let Some((s, e)) = span(tail - head, start, stop) else {
        return Ok(Vec::new());
    };
    Ok(
        items_within(r, &sk.items(key), head + s, head + e + 1, budget)?
            .into_iter()
            .map(|(_, v)| v)
            .collect(),
    )
}
