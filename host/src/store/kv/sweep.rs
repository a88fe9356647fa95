//! One bounded sweep step of the kv engine: walk the key and session expiry
//! indexes up to now and free what is really expired (an index entry whose
//! key's expiry has since changed is just dropped).

use super::layout::{self, ScopeKeys};
use super::meta::Meta;
use super::ops::cx::WriteCx;
use super::ops::keyspace::purge;
use super::sessions;
use crate::store::SweepStats;
use crate::store::error::Result;

/// Index entries with a time before `now` under `tag`, at most `limit`
/// (a key dies once its expiry has passed, as in Redis).
fn due(cx: &WriteCx, tag: u8, now: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
    let end = [&[tag][..], &now.to_be_bytes()].concat();
    let mut out = Vec::new();
    cx.r().scan(&[tag], Some(&end), false, &mut |k, _| {
        if let Some(at) = layout::be_u64(&k[1..]) {
            out.push((at, k.to_vec()));
        }
        out.len() < limit
    })?;
    Ok(out)
}

/// Free at most `limit` expired keys and `limit` expired sessions.
pub fn step(cx: &mut WriteCx, limit: usize) -> Result<SweepStats> {
    let mut stats = SweepStats::default();
    let now = cx.now;
    for (at, index_key) in due(cx, layout::KEY_EXPIRY, now, limit)? {
        let meta_key = &index_key[9..];
        if let Some((sk, key)) = ScopeKeys::from_meta_key(meta_key)
            && let Some(raw) = cx.r().get(meta_key)?
        {
            let m = Meta::decode(&raw)?;
            if m.expires_at == at && m.expired(now) {
                purge(cx, &sk, &key, &m)?;
                stats.keys += 1;
            }
        }
        cx.delete(&index_key)?;
    }
    for (at, index_key) in due(cx, layout::SESSION_EXPIRY, now, limit)? {
        if let Some((instance, id)) = layout::split_pair(&index_key[9..]) {
            let rec = sessions::stored_expiry(cx.r(), &instance, &id)?;
            if rec == Some(at) {
                sessions::drop(cx, &instance, &id, at)?;
                stats.sessions += 1;
                continue;
            }
        }
        cx.delete(&index_key)?;
    }
    Ok(stats)
}
