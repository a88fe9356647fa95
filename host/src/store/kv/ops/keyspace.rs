//! What every operation shares: loading a key's meta record (expired keys
//! read as absent), purging a key, writing a new meta with a fresh etag and
//! its expiry index, conditions, scope liveness, ordered listing and
//! delete-prefix.

use std::time::Duration;

use super::cx::WriteCx;
use crate::store::cursor;
use crate::store::error::{Result, StateError};
use crate::store::kv::backend::RawRead;
use crate::store::kv::layout::{self, ScopeKeys};
use crate::store::kv::meta::{Body, Meta, etag_of};
use crate::store::types::{Condition, Entry, KeyInfo, KeyKind, KeyListing, KeyPage, Scope};

/// The meta record of `key`, expired or not.
pub fn load_any(r: &dyn RawRead, sk: &ScopeKeys, key: &str) -> Result<Option<Meta>> {
    r.get(&sk.meta(key))?.map(|b| Meta::decode(&b)).transpose()
}

/// The meta record of `key` if it exists and has not expired at `now`.
pub fn load(r: &dyn RawRead, sk: &ScopeKeys, key: &str, now: u64) -> Result<Option<Meta>> {
    Ok(load_any(r, sk, key)?.filter(|m| !m.expired(now)))
}

/// For a write: the live meta of `key`; an expired key is purged first.
pub fn live(cx: &mut WriteCx, sk: &ScopeKeys, key: &str) -> Result<Option<Meta>> {
    let meta = cx.get_sized(&sk.meta(key))?;
    match meta.map(|b| Meta::decode(&b)).transpose()? {
        Some(m) if m.expired(cx.now) => {
            purge(cx, sk, key, &m)?;
            Ok(None)
        }
        m => Ok(m),
    }
}

/// `Err(wrong-type)` unless `meta` is of `kind`.
pub fn expect(meta: &Meta, kind: KeyKind) -> Result<()> {
    if meta.kind() == kind {
        Ok(())
    } else {
        Err(StateError::WrongType {
            expected: kind.name(),
            found: meta.kind().name(),
        })
    }
}

/// Delete a key and everything it owns.
pub fn purge(cx: &mut WriteCx, sk: &ScopeKeys, key: &str, meta: &Meta) -> Result<()> {
    let meta_key = sk.meta(key);
    if meta.expires_at != 0 {
        cx.delete(&layout::key_expiry(meta.expires_at, &meta_key))?;
    }
    cx.delete(&meta_key)?;
    let sub = match meta.body {
        Body::Value(_) => return Ok(()),
        Body::Map { .. } => sk.fields(key),
        Body::List { .. } => sk.items(key),
    };
    cx.delete_range(&sub, layout::prefix_end(&sub).as_deref())
}

/// Write `new` as the meta of `key` with a fresh etag version, keeping the
/// expiry index in step with `old_expiry`. Returns the new version.
pub fn store(
    cx: &mut WriteCx,
    sk: &ScopeKeys,
    key: &str,
    old_expiry: Option<u64>,
    new: &mut Meta,
) -> Result<u64> {
    new.version = cx.next_version()?;
    let meta_key = sk.meta(key);
    let old_expiry = old_expiry.unwrap_or(0);
    if old_expiry != new.expires_at {
        if old_expiry != 0 {
            cx.delete(&layout::key_expiry(old_expiry, &meta_key))?;
        }
        if new.expires_at != 0 {
            cx.put(&layout::key_expiry(new.expires_at, &meta_key), &[])?;
        }
    }
    cx.put_owned(meta_key, new.encode())?;
    Ok(new.version)
}

/// Check a write condition against the key's live meta.
pub fn check_condition(cx: &mut WriteCx, cond: &Condition, meta: Option<&Meta>) -> Result<()> {
    match cond {
        Condition::IfMatch(etag) => match (cx.etag_version(etag)?, meta) {
            (Some(v), Some(m)) if m.version == v => Ok(()),
            _ => Err(StateError::EtagMismatch),
        },
        Condition::IfAbsent if meta.is_some() => Err(StateError::AlreadyExists),
        Condition::IfExists if meta.is_none() => Err(StateError::NotFound),
        _ => Ok(()),
    }
}

/// The etag text of a live meta.
pub fn etag(meta: &Meta) -> String {
    etag_of(meta.version)
}

/// The entry of a live value's meta, with its etag (each engine writes its
/// etags its own way).
pub fn entry(m: Meta, now: u64, etag: String) -> Entry {
    Entry {
        etag,
        ttl: m.ttl_ms(now).map(Duration::from_millis),
        expires_at_ms: (m.expires_at != 0).then_some(m.expires_at),
        value: super::value::bytes(m),
    }
}

/// What a live key is, with its etag.
pub fn key_info(m: &Meta, now: u64, etag: String) -> KeyInfo {
    KeyInfo {
        kind: m.kind(),
        etag,
        ttl: m.ttl_ms(now).map(Duration::from_millis),
        expires_at_ms: m.ttl_ms(now).map(|t| now + t),
    }
}

/// The bytes `owner` (an owner record prefix) uses: its usage record, none
/// = 0.
pub fn usage(r: &dyn RawRead, owner: &[u8]) -> Result<u64> {
    Ok(r.get(&layout::usage_key(owner))?
        .and_then(|b| layout::be_u64(&b))
        .unwrap_or(0))
}

/// `Err(no-such-session)` unless the scope is alive at `now`.
pub fn ensure_scope(r: &dyn RawRead, scope: &Scope, now: u64) -> Result<()> {
    if let Scope::Session { instance, id } = scope {
        session_expiry(r, instance, id, now)?;
    }
    Ok(())
}

/// The expiry (Unix ms) of a live session, else `no-such-session`.
pub fn session_expiry(r: &dyn RawRead, instance: &str, id: &str, now: u64) -> Result<u64> {
    let rec = r
        .get(&layout::session_key(instance, id))?
        .ok_or(StateError::NoSuchSession)?;
    let at = layout::be_u64(&rec).ok_or_else(|| StateError::corrupt("session record"))?;
    if at < now {
        return Err(StateError::NoSuchSession);
    }
    Ok(at)
}

/// One page of keys of a scope, in key order.
pub fn keys(
    r: &dyn RawRead,
    sk: &ScopeKeys,
    q: &KeyListing,
    page: usize,
    now: u64,
) -> Result<KeyPage> {
    let base = sk.meta_prefix();
    let with = |s: &[u8]| [base.as_slice(), s].concat();
    let mut lower = base.clone();
    let mut upper = layout::prefix_end(&base);
    let tighten_upper = |upper: &mut Option<Vec<u8>>, cand: Option<Vec<u8>>| {
        if let Some(c) = cand
            && upper.as_ref().is_none_or(|u| &c < u)
        {
            *upper = Some(c);
        }
    };
    if let Some(p) = &q.prefix {
        lower = lower.max(with(p.as_bytes()));
        tighten_upper(&mut upper, layout::prefix_end(&with(p.as_bytes())));
    }
    if let Some(s) = &q.start {
        lower = lower.max(with(s.as_bytes()));
    }
    if let Some(e) = &q.end {
        tighten_upper(&mut upper, Some(with(e.as_bytes())));
    }
    if let Some(c) = &q.cursor {
        let after = cursor::decode(c)?;
        if q.reverse {
            tighten_upper(&mut upper, Some(with(&after)));
        } else {
            let mut next = with(&after);
            next.push(0);
            lower = lower.max(next);
        }
    }
    let mut out = KeyPage::default();
    if upper.as_ref().is_some_and(|u| *u <= lower) {
        return Ok(out);
    }
    let mut more = false;
    let mut err = None;
    r.scan(&lower, upper.as_deref(), q.reverse, &mut |k, v| {
        match Meta::decode(v) {
            Ok(m) if m.expired(now) => return true,
            Ok(_) => {}
            Err(e) => {
                err = Some(e);
                return false;
            }
        }
        if out.keys.len() == page {
            more = true;
            return false;
        }
        match std::str::from_utf8(&k[base.len()..]) {
            Ok(s) => out.keys.push(s.to_string()),
            Err(_) => {
                err = Some(StateError::corrupt("key"));
                return false;
            }
        }
        true
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    if more && let Some(last) = out.keys.last() {
        out.cursor = Some(cursor::encode(last.as_bytes()));
    }
    Ok(out)
}

/// Visit every live **value** key starting with `prefix` (empty: all), in
/// key order, with its etag version and bytes (borrowed: nothing is copied
/// for values the visitor drops), until the visitor returns false.
pub fn each_live_value(
    r: &dyn RawRead,
    sk: &ScopeKeys,
    prefix: &str,
    now: u64,
    visit: &mut dyn FnMut(&str, u64, &[u8]) -> bool,
) -> Result<()> {
    let start = sk.meta(prefix);
    let end = layout::prefix_end(&start);
    let mut err = None;
    r.scan(&start, end.as_deref(), false, &mut |k, v| match (
        sk.key_of_meta(k).map(std::str::from_utf8),
        Meta::peek(v),
    ) {
        (Some(Ok(key)), Some(head)) => match head.value {
            Some(value) if !head.expired(now) => visit(key, head.version, value),
            _ => true,
        },
        _ => {
            err = Some(StateError::corrupt("meta record"));
            false
        }
    })?;
    err.map_or(Ok(()), Err)
}

/// Delete every live key starting with `prefix`; returns how many.
pub fn delete_prefix(cx: &mut WriteCx, sk: &ScopeKeys, prefix: &str) -> Result<u64> {
    let start = sk.meta(prefix);
    let end = layout::prefix_end(&start);
    let mut found = Vec::new();
    let mut err = None;
    cx.r()
        .scan(&start, end.as_deref(), false, &mut |k, v| match (
            sk.key_of_meta(k).map(|b| String::from_utf8(b.to_vec())),
            Meta::decode(v),
        ) {
            (Some(Ok(key)), Ok(m)) => {
                found.push((key, m));
                true
            }
            _ => {
                err = Some(StateError::corrupt("meta record"));
                false
            }
        })?;
    if let Some(e) = err {
        return Err(e);
    }
    let mut live = 0;
    for (key, m) in found {
        if !m.expired(cx.now) {
            live += 1;
        }
        purge(cx, sk, &key, &m)?;
    }
    Ok(live)
}
