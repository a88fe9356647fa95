//! Sessions (create with TTL, open by id, extend, end, list) and instance
//! destruction. A session is a record with its expiry plus a scope prefix;
//! ending one or destroying an instance is a range delete.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::error::{Result, StateError};
use super::handle::ScopeHandle;
use super::layout;
use super::ops::cx::WriteCx;
use super::ops::keyspace::session_expiry;
use super::ops::value::deadline;
use super::types::{Scope, SessionInfo};
use super::{RawRead, Store};

/// A new session id: 128 random bits as 22 URL-safe characters.
fn new_session_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| StateError::Internal(format!("no randomness for a session id: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Is `id` shaped like an id we issue? (Anything else cannot name a session.)
fn plausible_id(id: &str) -> bool {
    id.len() == 22
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// Write (or move) a session's record and expiry index.
fn put_session(
    cx: &mut WriteCx,
    instance: &str,
    id: &str,
    old: Option<u64>,
    at: u64,
) -> Result<()> {
    if let Some(old) = old {
        cx.delete(&layout::session_expiry(old, instance, id))?;
    }
    cx.put(&layout::session_key(instance, id), &at.to_be_bytes())?;
    cx.put(&layout::session_expiry(at, instance, id), &[])
}

/// Delete a session's record, index entry and data.
pub(crate) fn drop_session(cx: &mut WriteCx, instance: &str, id: &str, at: u64) -> Result<()> {
    cx.delete(&layout::session_key(instance, id))?;
    cx.delete(&layout::session_expiry(at, instance, id))?;
    let prefix = layout::scope_prefix(&Scope::Session {
        instance: instance.into(),
        id: id.into(),
    });
    cx.delete_range(&prefix, layout::prefix_end(&prefix).as_deref())
}

fn stored_expiry(r: &dyn RawRead, instance: &str, id: &str) -> Result<Option<u64>> {
    match r.get(&layout::session_key(instance, id))? {
        Some(b) => layout::be_u64(&b)
            .map(Some)
            .ok_or_else(|| StateError::corrupt("session record")),
        None => Ok(None),
    }
}

impl Store {
    /// Create a session of `instance` living `ttl` (default: the configured 7 days).
    pub async fn create_session(
        &self,
        instance: &str,
        ttl: Option<Duration>,
    ) -> Result<SessionInfo> {
        layout::check_name("instance", instance)?;
        let ttl = ttl.unwrap_or(self.inner.default_session_ttl);
        let id = new_session_id()?;
        let (inst, sid) = (instance.to_string(), id.clone());
        let at = self
            .write(move |cx| {
                cx.limits.check_session_ttl(ttl)?;
                let at = deadline(cx.now, ttl)?;
                put_session(cx, &inst, &sid, None, at)?;
                Ok(at)
            })
            .await?;
        Ok(SessionInfo {
            instance: instance.into(),
            id,
            expires_at_ms: at,
        })
    }

    /// The state of a live session of `instance`; `no-such-session` otherwise.
    pub async fn session(&self, instance: &str, id: &str) -> Result<ScopeHandle> {
        self.session_info(instance, id).await?;
        Ok(ScopeHandle::new(
            self.clone(),
            Scope::Session {
                instance: instance.into(),
                id: id.into(),
            },
        ))
    }

    /// When a live session expires.
    pub async fn session_info(&self, instance: &str, id: &str) -> Result<SessionInfo> {
        layout::check_name("instance", instance)?;
        if !plausible_id(id) {
            return Err(StateError::NoSuchSession);
        }
        let at = self.read(|r, now| session_expiry(r, instance, id, now))?;
        Ok(SessionInfo {
            instance: instance.into(),
            id: id.into(),
            expires_at_ms: at,
        })
    }

    /// Give a live session a new TTL from now.
    pub async fn extend_session(
        &self,
        instance: &str,
        id: &str,
        ttl: Duration,
    ) -> Result<SessionInfo> {
        layout::check_name("instance", instance)?;
        if !plausible_id(id) {
            return Err(StateError::NoSuchSession);
        }
        let (inst, sid) = (instance.to_string(), id.to_string());
        let at = self
            .write(move |cx| {
                let old = session_expiry(cx.r(), &inst, &sid, cx.now)?;
                cx.limits.check_session_ttl(ttl)?;
                let at = deadline(cx.now, ttl)?;
                put_session(cx, &inst, &sid, Some(old), at)?;
                Ok(at)
            })
            .await?;
        Ok(SessionInfo {
            instance: instance.into(),
            id: id.into(),
            expires_at_ms: at,
        })
    }

    /// End a session now, deleting its state. Returns whether it was live.
    pub async fn end_session(&self, instance: &str, id: &str) -> Result<bool> {
        layout::check_name("instance", instance)?;
        if !plausible_id(id) {
            return Ok(false);
        }
        let (inst, sid) = (instance.to_string(), id.to_string());
        self.write(move |cx| {
            let Some(at) = stored_expiry(cx.r(), &inst, &sid)? else {
                return Ok(false);
            };
            drop_session(cx, &inst, &sid, at)?;
            Ok(at >= cx.now)
        })
        .await
    }

    /// The live sessions of an instance, by id.
    pub async fn list_sessions(&self, instance: &str) -> Result<Vec<SessionInfo>> {
        layout::check_name("instance", instance)?;
        let prefix = layout::sessions_of(instance);
        let inst = instance.to_string();
        self.read_blocking(move |r, now| {
            let mut out = Vec::new();
            r.scan(
                &prefix,
                layout::prefix_end(&prefix).as_deref(),
                false,
                &mut |k, v| {
                    if let (Some((_, id)), Some(at)) =
                        (layout::split_pair(&k[1..]), layout::be_u64(v))
                        && at > now
                    {
                        out.push(SessionInfo {
                            instance: inst.clone(),
                            id,
                            expires_at_ms: at,
                        });
                    }
                    true
                },
            )?;
            Ok(out)
        })
        .await
    }

    /// Delete an instance's registration, state and all its sessions; nothing else.
    pub async fn destroy_instance(&self, instance: &str) -> Result<()> {
        layout::check_name("instance", instance)?;
        let inst = instance.to_string();
        self.write(move |cx| {
            let data = layout::instance_data_prefix(&inst);
            cx.delete_range(&data, layout::prefix_end(&data).as_deref())?;
            let sessions = layout::sessions_of(&inst);
            cx.delete_range(&sessions, layout::prefix_end(&sessions).as_deref())?;
            cx.delete(&layout::instance_key(&inst))
        })
        .await
    }
}
