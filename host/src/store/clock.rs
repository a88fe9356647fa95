//! Time as the engine sees it: wall-clock milliseconds from a [`Clock`] the
//! embedder (and the tests) choose, so TTL tests move time instead of sleeping.

use std::sync::Arc;

use super::error::{Result, StateError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time in Unix milliseconds.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock standing at `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(now_ms)))
    }

    /// Move time forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    /// Set the time.
    pub fn set(&self, now_ms: u64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// `now + ttl` in Unix ms, or `invalid-argument` if `ttl` is zero or the
/// time is unrepresentable.
pub fn deadline(now: u64, ttl: Duration) -> Result<u64> {
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return Err(StateError::invalid("a TTL must be at least 1 millisecond"));
    }
    now.checked_add(ms)
        .filter(|&at| at <= i64::MAX as u64)
        .ok_or_else(|| StateError::invalid("the TTL is too large"))
}

/// The time `seconds` from `now` (Unix ms, may be in the past) for
/// `expire`, or `invalid-argument` if it cannot be represented (Redis
/// refuses such a time even for a missing key).
pub fn expire_at(now: u64, seconds: i64) -> Result<i64> {
    let bad_time = || StateError::invalid(format!("invalid expire time: {seconds} seconds"));
    let ms = seconds.checked_mul(1000).ok_or_else(bad_time)?;
    (now as i64).checked_add(ms).ok_or_else(bad_time)
}
