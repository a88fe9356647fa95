//! Sessions (create with TTL, open by id, extend, end, list): ids and TTL
//! rules here, records in the engine.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::error::{Result, StateError};
use super::handle::ScopeHandle;
use super::types::{Scope, SessionInfo};
use super::{Store, check_name};

/// A new session id: 128 random bits as 22 URL-safe characters.
fn new_session_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| StateError::Internal(format!("no randomness for a session id: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Is `id` shaped like an id we issue? (Anything else cannot name a session.)
pub fn plausible_id(id: &str) -> bool {
    id.len() == 22
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

impl Store {
    /// Create a session of `instance` living `ttl` (default: the configured 7 days).
    pub async fn create_session(
        &self,
        instance: &str,
        ttl: Option<Duration>,
    ) -> Result<SessionInfo> {
        check_name("instance", instance)?;
        let ttl = ttl.unwrap_or(self.inner.default_session_ttl);
        self.limits().check_session_ttl(ttl)?;
        let id = new_session_id()?;
        let at = self.engine().create_session(instance, &id, ttl).await?;
        Ok(SessionInfo {
            instance: instance.into(),
            id,
            expires_at_ms: at,
        })
    }

    /// Re-create a session with a given id and expiry (import): live until
    /// `expires_at_ms` (the store's clock). A live session of that id is
    /// moved to the new expiry and keeps its state; an expired one not yet
    /// swept is ended first, so none of its old state comes back.
    pub async fn restore_session(
        &self,
        instance: &str,
        id: &str,
        expires_at_ms: u64,
    ) -> Result<SessionInfo> {
        check_name("instance", instance)?;
        if !plausible_id(id) {
            return Err(StateError::invalid(format!(
                "{id:?} is not a session id (22 URL-safe base64 characters)"
            )));
        }
        let now = self.now_ms();
        if expires_at_ms <= now {
            return Err(StateError::invalid(format!(
                "session {id} expired at {expires_at_ms} ms, before now ({now} ms); it cannot be restored"
            )));
        }
        let ttl = Duration::from_millis(expires_at_ms - now);
        self.limits().check_session_ttl(ttl)?;
        let at = match self.engine().session_expiry(instance, id).await {
            Ok(_) => self.engine().extend_session(instance, id, ttl).await?,
            Err(StateError::NoSuchSession) => {
                self.engine().end_session(instance, id).await?;
                self.engine().create_session(instance, id, ttl).await?
            }
            Err(e) => return Err(e),
        };
        self.changed();
        Ok(SessionInfo {
            instance: instance.into(),
            id: id.into(),
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
        check_name("instance", instance)?;
        if !plausible_id(id) {
            return Err(StateError::NoSuchSession);
        }
        let at = self.engine().session_expiry(instance, id).await?;
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
        check_name("instance", instance)?;
        if !plausible_id(id) {
            return Err(StateError::NoSuchSession);
        }
        self.limits().check_session_ttl(ttl)?;
        let at = self.engine().extend_session(instance, id, ttl).await?;
        Ok(SessionInfo {
            instance: instance.into(),
            id: id.into(),
            expires_at_ms: at,
        })
    }

    /// End a session now, deleting its state. Returns whether it was live.
    pub async fn end_session(&self, instance: &str, id: &str) -> Result<bool> {
        check_name("instance", instance)?;
        if !plausible_id(id) {
            return Ok(false);
        }
        let live = self.engine().end_session(instance, id).await?;
        self.changed();
        Ok(live)
    }

    /// The live sessions of an instance, by id.
    pub async fn list_sessions(&self, instance: &str) -> Result<Vec<SessionInfo>> {
        check_name("instance", instance)?;
        self.engine().list_sessions(instance).await
    }

    /// How many live sessions an instance has, without listing them (what
    /// `/metrics` reports on every scrape).
    pub async fn session_count(&self, instance: &str) -> Result<u64> {
        check_name("instance", instance)?;
        self.engine().session_count(instance).await
    }

    /// Delete an instance's registration, state and all its sessions (and
    /// its watches, with their queues); nothing else.
    pub async fn destroy_instance(&self, instance: &str) -> Result<()> {
        check_name("instance", instance)?;
        self.engine().watch(instance, &[]).await?;
        self.engine().destroy_instance(instance).await
    }
}
