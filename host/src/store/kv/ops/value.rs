//! Value and whole-key operations: set, delete, increment (counters), expire,
//! persist, and the reads get / get-entry / info / ttl.

use std::time::Duration;

use super::cx::WriteCx;
use super::keyspace::{expect, load, purge, store};
use crate::store::clock::{deadline, expire_at};
use crate::store::error::{Result, StateError};
use crate::store::kv::backend::RawRead;
use crate::store::kv::layout::ScopeKeys;
use crate::store::kv::meta::{Body, Meta};
use crate::store::limits::ReplyBudget;
use crate::store::types::{Entry, ExpireMode, KeyKind};

/// SET: overwrite (any old type), clear or set the TTL.
pub fn set(
    cx: &mut WriteCx,
    sk: &ScopeKeys,
    key: &str,
    old: Option<&Meta>,
    value: &[u8],
    ttl: Option<Duration>,
) -> Result<u64> {
    let expires_at = ttl.map(|t| deadline(cx.now, t)).transpose()?.unwrap_or(0);
    let old_expiry = match old {
        Some(m) if m.kind() != KeyKind::Value => {
            purge(cx, sk, key, m)?;
            None
        }
        Some(m) => Some(m.expires_at),
        None => None,
    };
    let mut meta = Meta {
        version: 0,
        expires_at,
        body: Body::Value(value.to_vec()),
    };
    store(cx, sk, key, old_expiry, &mut meta)
}

/// Parse a stored counter: the canonical decimal text of an i64.
pub fn parse_counter(b: &[u8]) -> Result<i64> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse::<i64>().ok().filter(|n| n.to_string() == s))
        .ok_or(StateError::NotAnInteger)
}

/// INCRBY: a missing key counts as 0; keeps the TTL.
pub fn increment(
    cx: &mut WriteCx,
    sk: &ScopeKeys,
    key: &str,
    old: Option<&Meta>,
    delta: i64,
) -> Result<(i64, u64)> {
    let (current, expires_at) = match old {
        None => (0, 0),
        Some(m) => match &m.body {
            Body::Value(b) => (parse_counter(b)?, m.expires_at),
            _ => {
                return Err(StateError::WrongType {
                    expected: "value",
                    found: m.kind().name(),
                });
            }
        },
    };
    let n = current.checked_add(delta).ok_or(StateError::Overflow)?;
    let mut meta = Meta {
        version: 0,
        expires_at,
        body: Body::Value(n.to_string().into_bytes()),
    };
    let v = store(cx, sk, key, old.map(|m| m.expires_at), &mut meta)?;
    Ok((n, v))
}

/// EXPIRE with NX/XX/GT/LT; seconds ≤ 0 deletes. Returns whether it applied
/// and the key's version afterwards.
pub fn expire(
    cx: &mut WriteCx,
    sk: &ScopeKeys,
    key: &str,
    old: Option<&Meta>,
    seconds: i64,
    mode: ExpireMode,
) -> Result<(bool, Option<u64>)> {
    // Like Redis, an unrepresentable time is an error even for a missing key.
    let at = expire_at(cx.now, seconds)?;
    let Some(m) = old else {
        return Ok((false, None));
    };
    let cur = m.expires_at;
    let applies = match mode {
        ExpireMode::Always => true,
        ExpireMode::Nx => cur == 0,
        ExpireMode::Xx => cur != 0,
        ExpireMode::Gt => cur != 0 && at > cur as i64,
        ExpireMode::Lt => cur == 0 || at < cur as i64,
    };
    if !applies {
        return Ok((false, Some(m.version)));
    }
    if seconds <= 0 {
        purge(cx, sk, key, m)?;
        return Ok((true, None));
    }
    let mut new = m.clone();
    new.expires_at = at as u64;
    let v = store(cx, sk, key, Some(cur), &mut new)?;
    Ok((true, Some(v)))
}

/// PERSIST: drop the TTL. Returns whether there was one.
pub fn persist(
    cx: &mut WriteCx,
    sk: &ScopeKeys,
    key: &str,
    old: Option<&Meta>,
) -> Result<(bool, Option<u64>)> {
    match old {
        Some(m) if m.expires_at != 0 => {
            let mut new = m.clone();
            new.expires_at = 0;
            let v = store(cx, sk, key, Some(m.expires_at), &mut new)?;
            Ok((true, Some(v)))
        }
        m => Ok((false, m.map(|m| m.version))),
    }
}

/// The live meta of a value key (`wrong-type` for maps and lists).
pub fn get_value(r: &dyn RawRead, sk: &ScopeKeys, key: &str, now: u64) -> Result<Option<Meta>> {
    let m = load(r, sk, key, now)?;
    if let Some(m) = &m {
        expect(m, KeyKind::Value)?;
    }
    Ok(m)
}

/// GET of several keys, each with its own outcome (`wrong-type` for a map
/// or a list), in request order; the whole read is `reply-too-large` once
/// the values found add up to more than `max_bytes`. `etag` writes a
/// version as the engine's etag.
pub fn get_entries(
    r: &dyn RawRead,
    sk: &ScopeKeys,
    keys: &[String],
    now: u64,
    max_bytes: usize,
    etag: &dyn Fn(u64) -> Result<String>,
) -> Result<Vec<Result<Option<Entry>>>> {
    let mut budget = ReplyBudget::new(max_bytes);
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        out.push(match get_value(r, sk, k, now) {
            Ok(Some(m)) => {
                budget.take(m.body.value_len())?;
                etag(m.version).map(|e| Some(super::keyspace::entry(m, now, e)))
            }
            other => other.map(|_| None),
        });
    }
    Ok(out)
}

/// The bytes of a value meta.
pub fn bytes(meta: Meta) -> Vec<u8> {
    match meta.body {
        Body::Value(b) => b,
        _ => Vec::new(),
    }
}
