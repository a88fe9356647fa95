//! Session records of the kv engine: a record with its expiry plus an
//! expiry index entry; a session's state is the range of its scope prefix,
//! so ending one (or destroying its instance) is a range delete.

use super::backend::RawRead;
use super::layout;
use super::ops::cx::WriteCx;
use crate::store::error::{Result, StateError};
use crate::store::types::{Scope, SessionInfo};

/// How many session records an instance holds (live or not yet swept):
/// the count record, or (a database written before it existed) a count.
fn held(r: &dyn RawRead, instance: &str) -> Result<u64> {
    let prefix = layout::sessions_of(instance);
    if let Some(b) = r.get(&prefix)? {
        return layout::be_u64(&b).ok_or_else(|| StateError::corrupt("session count"));
    }
    let mut n = 0u64;
    r.scan(
        &prefix,
        layout::prefix_end(&prefix).as_deref(),
        false,
        &mut |k, _| {
            if layout::split_pair(&k[1..]).is_some() {
                n += 1;
            }
            true
        },
    )?;
    Ok(n)
}

/// How many entries of the expiry index a create at the session limit
/// looks at for an expired session of its instance to free.
const RECLAIM_LOOK: usize = 256;

/// The sessions of `instance` that expired before `now` and are not yet
/// swept, as (expiry, id), among the first `look` due entries of the
/// expiry index: an entry counts only while its session's record still
/// says that expiry, as the sweeper checks (one left by an earlier life of
/// the instance, or by an extended session, does not).
fn expired(r: &dyn RawRead, instance: &str, now: u64, look: usize) -> Result<Vec<(u64, String)>> {
    let end = [&[layout::SESSION_EXPIRY][..], &now.to_be_bytes()].concat();
    let mut due = Vec::new();
    let mut looked = 0;
    r.scan(&[layout::SESSION_EXPIRY], Some(&end), false, &mut |k, _| {
        looked += 1;
        if let (Some(at), Some((i, id))) = (
            k.get(1..9).and_then(layout::be_u64),
            k.get(9..).and_then(layout::split_pair),
        ) && i == instance
        {
            due.push((at, id));
        }
        looked < look
    })?;
    let mut out = Vec::new();
    for (at, id) in due {
        if stored_expiry(r, instance, &id)? == Some(at) {
            out.push((at, id));
        }
    }
    Ok(out)
}

/// Free one session of `instance` that expired before now and is not yet
/// swept, as the sweeper would, if one is among the first [`RECLAIM_LOOK`]
/// entries of the expiry index that are due: whether one was freed.
fn reclaim_one(cx: &mut WriteCx, instance: &str) -> Result<bool> {
    match expired(cx.r(), instance, cx.now, RECLAIM_LOOK)?.first() {
        Some((at, id)) => drop(cx, instance, id, *at).map(|()| true),
        None => Ok(false),
    }
}

/// Write (or move) a session's record and expiry index; a new session
/// counts against [`Limits::max_sessions`](crate::store::Limits::max_sessions).
/// At the limit, one of the instance's expired sessions not yet swept is
/// freed first (if one is found: [`reclaim_one`]), so the limit is on live
/// sessions and the records stay within it.
pub fn put(cx: &mut WriteCx, instance: &str, id: &str, old: Option<u64>, at: u64) -> Result<()> {
    if let Some(old) = old {
        cx.delete(&layout::session_expiry(old, instance, id))?;
    } else if stored_expiry(cx.r(), instance, id)?.is_none() {
        let mut n = held(cx.r(), instance)?;
        if n >= cx.limits.max_sessions && reclaim_one(cx, instance)? {
            n = held(cx.r(), instance)?;
        }
        if n >= cx.limits.max_sessions {
            return Err(StateError::TooManySessions {
                instance: instance.into(),
                max: cx.limits.max_sessions,
            });
        }
        cx.put(&layout::sessions_of(instance), &(n + 1).to_be_bytes())?;
    }
    cx.put(&layout::session_key(instance, id), &at.to_be_bytes())?;
    cx.put(&layout::session_expiry(at, instance, id), &[])
}

/// Delete a session's record, index entry and data.
pub fn drop(cx: &mut WriteCx, instance: &str, id: &str, at: u64) -> Result<()> {
    let n = held(cx.r(), instance)?;
    cx.put(
        &layout::sessions_of(instance),
        &n.saturating_sub(1).to_be_bytes(),
    )?;
    cx.delete(&layout::session_key(instance, id))?;
    cx.delete(&layout::session_expiry(at, instance, id))?;
    let prefix = layout::scope_prefix(&Scope::Session {
        instance: instance.into(),
        id: id.into(),
    });
    cx.delete_range(&prefix, layout::prefix_end(&prefix).as_deref())
}

/// The stored expiry of a session, live or not.
pub fn stored_expiry(r: &dyn RawRead, instance: &str, id: &str) -> Result<Option<u64>> {
    match r.get(&layout::session_key(instance, id))? {
        Some(b) => layout::be_u64(&b)
            .map(Some)
            .ok_or_else(|| StateError::corrupt("session record")),
        None => Ok(None),
    }
}

/// How many live sessions an instance has at `now`, without listing them:
/// the records it holds less those expired and not yet swept (the expiry
/// index before `now`, which the sweeper keeps short; an entry counts only
/// while its session's record still says that expiry, as the sweeper
/// checks: one left by an earlier life of the instance does not). At its
/// last millisecond a session still lives, as a key does.
pub fn live_count(r: &dyn RawRead, instance: &str, now: u64) -> Result<u64> {
    let held = held(r, instance)?;
    let expired = expired(r, instance, now, usize::MAX)?.len() as u64;
    Ok(held.saturating_sub(expired))
}

/// The live sessions of an instance at `now` (a session lives through its
/// last millisecond), by id.
pub fn list(r: &dyn RawRead, instance: &str, now: u64) -> Result<Vec<SessionInfo>> {
    let prefix = layout::sessions_of(instance);
    let mut out = Vec::new();
    r.scan(
        &prefix,
        layout::prefix_end(&prefix).as_deref(),
        false,
        &mut |k, v| {
            if let (Some((_, id)), Some(at)) = (layout::split_pair(&k[1..]), layout::be_u64(v))
                && at >= now
            {
                out.push(SessionInfo {
                    instance: instance.to_string(),
                    id,
                    expires_at_ms: at,
                });
            }
            true
        },
    )?;
    Ok(out)
}
