//! Configurable limits (SPEC.md "Limits") and the checks that enforce them.

use super::error::{Result, StateError};

/// Limits on what a request may carry and how much an owner may store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest key in bytes (default 2 KiB).
    pub max_key_bytes: usize,
    /// Longest map field in bytes (default 2 KiB).
    pub max_field_bytes: usize,
    /// Largest value, map field value or list item in bytes (default 1 MiB).
    pub max_value_bytes: usize,
    /// Most ops in one transaction or batch (default 128).
    pub max_ops: usize,
    /// Most keys (or scanned fields) per page (default 1000).
    pub max_page: usize,
    /// Bytes an instance (with its sessions) may store (default 1 GiB).
    pub instance_quota_bytes: u64,
    /// Bytes an account scope may store (default 1 GiB).
    pub account_quota_bytes: u64,
    /// Longest TTL a session may be given (default 365 days).
    pub max_session_ttl: std::time::Duration,
    /// Most undelivered changes kept for one watcher per owner (its
    /// instance with its sessions, or its account); past it — or past the
    /// owner's quota in bytes — the oldest are dropped and counted
    /// (default 10 000).
    pub watch_queue: usize,
    /// Most sessions an instance may have at once (default 100 000): at the
    /// limit, a create frees one of its expired sessions not yet swept if
    /// it finds one, else it is `quota-exceeded`, so clients that never
    /// send their session back cannot grow the store without bound.
    pub max_sessions: u64,
    /// Most bytes (fields and values) one whole-map or whole-list read
    /// returns, or one transaction's pops (default 32 MiB): past it the
    /// call fails with `value-too-large` and changes nothing, so a guest
    /// cannot make the host build a reply as large as its whole quota. A
    /// `map-scan` page stops short of it instead (at least one field).
    pub max_reply_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: 2048,
            max_field_bytes: 2048,
            max_value_bytes: 1 << 20,
            max_ops: 128,
            max_page: 1000,
            instance_quota_bytes: 1 << 30,
            account_quota_bytes: 1 << 30,
            max_session_ttl: std::time::Duration::from_secs(365 * 24 * 3600),
            watch_queue: 10_000,
            max_sessions: 100_000,
            max_reply_bytes: 32 << 20,
        }
    }
}

impl Limits {
    /// A key must be non-empty and within the limit.
    pub fn check_key(&self, key: &str) -> Result<()> {
        if key.is_empty() {
            return Err(StateError::invalid(
                "the key is empty; keys are 1 or more bytes of UTF-8",
            ));
        }
        if key.len() > self.max_key_bytes {
            return Err(StateError::KeyTooLarge {
                len: key.len(),
                max: self.max_key_bytes,
            });
        }
        Ok(())
    }

    /// A map field may be empty but not over the limit.
    pub fn check_field(&self, field: &str) -> Result<()> {
        if field.len() > self.max_field_bytes {
            return Err(StateError::KeyTooLarge {
                len: field.len(),
                max: self.max_field_bytes,
            });
        }
        Ok(())
    }

    /// A value, field value or list item within the limit.
    pub fn check_value(&self, value: &[u8]) -> Result<()> {
        if value.len() > self.max_value_bytes {
            return Err(StateError::ValueTooLarge {
                len: value.len(),
                max: self.max_value_bytes,
            });
        }
        Ok(())
    }

    /// A request of `count` ops (or batch items).
    pub fn check_ops(&self, count: usize) -> Result<()> {
        if count > self.max_ops {
            return Err(StateError::TooManyOperations {
                count,
                max: self.max_ops,
            });
        }
        Ok(())
    }

    /// A session TTL within the limit.
    pub fn check_session_ttl(&self, ttl: std::time::Duration) -> Result<()> {
        if ttl > self.max_session_ttl {
            return Err(StateError::invalid(format!(
                "a session TTL of {} s is over this host's maximum of {} s",
                ttl.as_secs(),
                self.max_session_ttl.as_secs()
            )));
        }
        Ok(())
    }

    /// A page size: `None` → the maximum; 0 is invalid; larger is clamped.
    pub fn page(&self, limit: Option<u32>) -> Result<usize> {
        match limit {
            None => Ok(self.max_page),
            Some(0) => Err(StateError::invalid("limit must be at least 1")),
            Some(n) => Ok((n as usize).min(self.max_page)),
        }
    }
}

/// What one reply may still hold ([`Limits::max_reply_bytes`]): reads and
/// pops count the bytes they return here as they go, so a reply over the
/// limit is refused before it is built whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyBudget {
    max: usize,
    used: usize,
}

impl ReplyBudget {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> Self {
        ReplyBudget { max, used: 0 }
    }

    /// Whether `n` more bytes fit.
    pub fn fits(&self, n: usize) -> bool {
        self.used.saturating_add(n) <= self.max
    }

    /// Count `n` more bytes: past the limit, `reply-too-large`.
    pub fn take(&mut self, n: usize) -> Result<()> {
        if !self.fits(n) {
            return Err(StateError::ReplyTooLarge { max: self.max });
        }
        self.used += n;
        Ok(())
    }
}
