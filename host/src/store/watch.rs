//! Change notifications: what a watcher watches, and the changes waiting
//! for it. Shared by every engine (each keeps the queues with the data,
//! written in the same atomic request as the change).
//!
//! A watcher (a deployed instance exporting `wasi:keyvalue/watcher`) sees
//! the **value keys** of the scopes it watches: a change is a key that
//! now holds a (new) value — `set`, `increment`, a transaction's writes —
//! or a key that held a value and no longer does — `delete`, expiry (when
//! the sweeper frees the key), a session ended or expired, a value replaced
//! by a map or list. `expire` and `persist` change no value and notify
//! nothing. Several writes of one key in one request notify once, with
//! the final state. Changes a watcher makes itself (while it handles a
//! notification) are not sent back to it.
//!
//! Each watcher has one queue per owner it watches (its instance with the
//! instance's sessions; an account), kept in commit order and holding at
//! most [`Limits::watch_queue`](super::Limits::watch_queue) changes: past
//! that, the oldest are dropped and counted, so a stalled watcher never
//! stalls writers or grows the store without bound. (A change being
//! delivered when it is dropped is still delivered, and counted as both.)

use super::types::Scope;

/// What a watcher may watch (always of its own instance or account).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WatchTarget {
    /// The instance scope of an instance.
    Instance(String),
    /// Every session of an instance.
    Sessions(String),
    /// The account scope of an account.
    Account(String),
}

/// Whose records a queue lives with: an instance (with its sessions) or an
/// account. One queue per watcher and owner.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueueOwner {
    /// An instance and its sessions.
    Instance(String),
    /// An account.
    Account(String),
}

impl WatchTarget {
    /// The owner whose queue collects this target's changes.
    pub fn owner(&self) -> QueueOwner {
        match self {
            WatchTarget::Instance(i) | WatchTarget::Sessions(i) => QueueOwner::Instance(i.clone()),
            WatchTarget::Account(a) => QueueOwner::Account(a.clone()),
        }
    }
}

impl std::fmt::Display for WatchTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WatchTarget::Instance(i) => write!(f, "instance {i:?}"),
            WatchTarget::Sessions(i) => write!(f, "sessions of instance {i:?}"),
            WatchTarget::Account(a) => write!(f, "account {a:?}"),
        }
    }
}

/// One change of a value key, as queued for a watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Position in its queue (increasing in commit order).
    pub seq: u64,
    /// The scope of the key.
    pub scope: Scope,
    /// The key.
    pub key: String,
    /// The new value; `None`: the key no longer holds a value.
    pub value: Option<Vec<u8>>,
}

/// The oldest changes waiting in one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeBatch {
    /// Changes in commit order.
    pub changes: Vec<Change>,
    /// Changes dropped from this queue so far because it was full.
    pub dropped: u64,
    /// Another host is delivering this queue (shared stores only).
    pub busy: bool,
}

impl super::Store {
    /// A receiver whose value moves after every write of this process
    /// made while a receiver exists (a watcher's dispatcher waits on it
    /// rather than polling fast; it reads the queues after subscribing, so
    /// writes before that need no signal).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Note that a write happened. Without a receiver there is nobody to
    /// wake, and the signal (a lock and eight wake-up lists) is skipped.
    pub(crate) fn changed(&self) {
        if self.inner.changes.receiver_count() > 0 {
            self.inner.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Make instance `watcher` watch exactly `targets` (which must be its
    /// own instance, its sessions or its account); none stops it watching
    /// and drops its queues.
    pub async fn watch(&self, watcher: &str, targets: &[WatchTarget]) -> super::Result<()> {
        super::check_name("instance", watcher)?;
        for t in targets {
            let (WatchTarget::Instance(n) | WatchTarget::Sessions(n) | WatchTarget::Account(n)) = t;
            super::check_name("watched scope", n)?;
        }
        self.engine().watch(watcher, targets).await
    }

    /// The oldest `limit` changes waiting for `watcher` at `owner` (see
    /// [`Engine::pending`](super::Engine::pending) for `holder`).
    pub async fn watch_pending(
        &self,
        watcher: &str,
        owner: &QueueOwner,
        holder: &str,
        limit: usize,
    ) -> super::Result<ChangeBatch> {
        self.engine()
            .pending(watcher, owner, holder, limit.max(1))
            .await
    }

    /// Forget delivered changes of `watcher` at `owner`, up to seq `upto`.
    pub async fn watch_ack(
        &self,
        watcher: &str,
        owner: &QueueOwner,
        upto: u64,
    ) -> super::Result<()> {
        self.engine().ack(watcher, owner, upto).await
    }
}
