//! Map (Redis hash) operations: one record per field under the key's field
//! prefix, the field count in the meta record.

use super::cx::WriteCx;
use super::keyspace::{expect, load, purge, store};
use super::value::parse_counter;
use crate::store::engine::FieldPage;
use crate::store::error::{Result, StateError};
use crate::store::kv::backend::RawRead;
use crate::store::kv::layout::{self, ScopeKeys, field_key};
use crate::store::kv::meta::{Body, Meta};
use crate::store::limits::ReplyBudget;
use crate::store::types::KeyKind;

fn map_len(m: &Meta) -> u64 {
    match m.body {
        Body::Map { len } => len,
        _ => 0,
    }
}

fn writable(old: Option<&Meta>) -> Result<Meta> {
    match old {
        None => Ok(Meta {
            version: 0,
            expires_at: 0,
            body: Body::Map { len: 0 },
        }),
        Some(m) => {
            expect(m, KeyKind::Map)?;
            Ok(m.clone())
        }
    }
}

/// HSET: returns (fields added, version).
pub fn set(
    cx: &mut WriteCx,
    sk: &ScopeKeys,
    key: &str,
    old: Option<&Meta>,
    entries: &[(String, Vec<u8>)],
) -> Result<(i64, u64)> {
    let mut meta = writable(old)?;
    let prefix = sk.fields(key);
    let mut added = 0;
    for (f, v) in entries {
        let fk = field_key(&prefix, f.as_bytes());
        if cx.r().value_len(&fk)?.is_none() {
            added += 1;
        }
        cx.put(&fk, v)?;
    }
    meta.body = Body::Map {
        len: map_len(&meta) + added as u64,
    };
    let v = store(cx, sk, key, old.map(|m| m.expires_at), &mut meta)?;
    Ok((added, v))
}

/// HDEL: returns (fields removed, version after; none if the map is gone).
pub fn delete(
    cx: &mut WriteCx,
    sk: &ScopeKeys,
    key: &str,
    old: Option<&Meta>,
    fields: &[String],
) -> Result<(i64, Option<u64>)> {
    let Some(m) = old else { return Ok((0, None)) };
    expect(m, KeyKind::Map)?;
    let prefix = sk.fields(key);
    let mut removed = 0u64;
    for f in fields {
        let fk = field_key(&prefix, f.as_bytes());
        if cx.r().value_len(&fk)?.is_some() {
            cx.delete(&fk)?;
            removed += 1;
        }
    }
    if removed == 0 {
        return Ok((0, Some(m.version)));
    }
    let len = map_len(m).saturating_sub(removed);
    if len == 0 {
        purge(cx, sk, key, m)?;
        return Ok((removed as i64, None));
    }
    let mut meta = m.clone();
    meta.body = Body::Map { len };
    let v = store(cx, sk, key, Some(m.expires_at), &mut meta)?;
    Ok((removed as i64, Some(v)))
}

/// HINCRBY: returns (new value, version).
pub fn increment(
    cx: &mut WriteCx,
    sk: &ScopeKeys,
    key: &str,
    old: Option<&Meta>,
    field: &str,
    delta: i64,
) -> Result<(i64, u64)> {
    let mut meta = writable(old)?;
    let fk = field_key(&sk.fields(key), field.as_bytes());
    let (current, new_field) = match cx.r().get(&fk)? {
        Some(b) => (parse_counter(&b)?, false),
        None => (0, true),
    };
    let n = current.checked_add(delta).ok_or(StateError::Overflow)?;
    cx.put(&fk, n.to_string().as_bytes())?;
    if new_field {
        meta.body = Body::Map {
            len: map_len(&meta) + 1,
        };
    }
    let v = store(cx, sk, key, old.map(|m| m.expires_at), &mut meta)?;
    Ok((n, v))
}

/// The live meta of a map key (`wrong-type` for others).
pub fn load_map(r: &dyn RawRead, sk: &ScopeKeys, key: &str, now: u64) -> Result<Option<Meta>> {
    let m = load(r, sk, key, now)?;
    if let Some(m) = &m {
        expect(m, KeyKind::Map)?;
    }
    Ok(m)
}

/// HGET.
pub fn get(
    r: &dyn RawRead,
    sk: &ScopeKeys,
    key: &str,
    field: &str,
    now: u64,
) -> Result<Option<Vec<u8>>> {
    if load_map(r, sk, key, now)?.is_none() {
        return Ok(None);
    }
    r.get(&field_key(&sk.fields(key), field.as_bytes()))
}

/// HMGET, in request order; `reply-too-large` once the values found add
/// up to more than `max_bytes`.
pub fn get_many(
    r: &dyn RawRead,
    sk: &ScopeKeys,
    key: &str,
    fields: &[String],
    now: u64,
    max_bytes: usize,
) -> Result<Vec<Option<Vec<u8>>>> {
    if load_map(r, sk, key, now)?.is_none() {
        return Ok(vec![None; fields.len()]);
    }
    let prefix = sk.fields(key);
    let mut budget = ReplyBudget::new(max_bytes);
    fields
        .iter()
        .map(|f| {
            let v = r.get(&field_key(&prefix, f.as_bytes()))?;
            budget.take(v.as_ref().map_or(0, Vec::len))?;
            Ok(v)
        })
        .collect()
}

/// HLEN.
pub fn length(r: &dyn RawRead, sk: &ScopeKeys, key: &str, now: u64) -> Result<u64> {
    Ok(load_map(r, sk, key, now)?.map_or(0, |m| map_len(&m)))
}

/// Up to `count` fields (with values) of the map after field `after` (from
/// the first if `None`), in field order, and the last field examined if
/// more remain: HGETALL and each step of HSCAN. The page also ends before a
/// field that would take its fields and values over `max_bytes` (it holds
/// one field at least).
pub fn fields(
    r: &dyn RawRead,
    sk: &ScopeKeys,
    key: &str,
    after: Option<&[u8]>,
    count: usize,
    max_bytes: usize,
    now: u64,
) -> Result<FieldPage> {
    if load_map(r, sk, key, now)?.is_none() {
        return Ok(FieldPage::default());
    }
    let prefix = sk.fields(key);
    let lower = match after {
        None => prefix.clone(),
        Some(f) => {
            let mut l = field_key(&prefix, f);
            l.push(0);
            l
        }
    };
    let end = layout::prefix_end(&prefix);
    let mut page = FieldPage::default();
    let mut examined = 0usize;
    let mut bytes = 0usize;
    let mut last: Option<Vec<u8>> = None;
    let mut err = None;
    r.scan(&lower, end.as_deref(), false, &mut |k, v| {
        let field = &k[prefix.len()..];
        // The first field is taken whatever its size: a page is never empty
        // while fields remain.
        bytes = bytes.saturating_add(field.len() + v.len());
        if examined == count || (examined > 0 && bytes > max_bytes) {
            page.last = last.take();
            return false;
        }
        examined += 1;
        last = Some(field.to_vec());
        match std::str::from_utf8(field) {
            Ok(f) => page.entries.push((f.to_string(), v.to_vec())),
            Err(_) => {
                err = Some(StateError::corrupt("map field"));
                return false;
            }
        }
        true
    })?;
    err.map_or(Ok(page), Err)
}
