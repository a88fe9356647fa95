//! [`TurnContext`]: one turn of a bot — the incoming activity and the
//! states cached for the turn.

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::activity::Activity;

/// What a [`BotState`](crate::BotState) keeps for a turn: the state, the
/// change hash at load (or last save) and the eTag it was read with.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cached {
    pub(crate) state: Map<String, Value>,
    pub(crate) hash: String,
    pub(crate) etag: Option<String>,
    /// Read from storage (or written) this turn: `etag: None` then means
    /// the state did not exist; otherwise it was never read.
    pub(crate) read: bool,
}

/// One turn: the incoming activity and the per-turn cache of every
/// [`BotState`](crate::BotState) used in it (Bot Framework's `TurnContext`
/// with its `turnState`). Make a new one for every incoming activity.
#[derive(Debug)]
pub struct TurnContext {
    activity: Activity,
    cache: RefCell<HashMap<u64, Cached>>,
}

impl TurnContext {
    /// A turn for an incoming activity.
    pub fn new(activity: Activity) -> Self {
        TurnContext {
            activity,
            cache: RefCell::default(),
        }
    }

    /// The incoming activity.
    pub fn activity(&self) -> &Activity {
        &self.activity
    }

    pub(crate) fn cached(&self, id: u64) -> Option<Cached> {
        self.cache.borrow().get(&id).cloned()
    }

    pub(crate) fn with_cached<R>(&self, id: u64, f: impl FnOnce(Option<&mut Cached>) -> R) -> R {
        f(self.cache.borrow_mut().get_mut(&id))
    }

    pub(crate) fn set_cached(&self, id: u64, c: Cached) {
        self.cache.borrow_mut().insert(id, c);
    }

    pub(crate) fn remove_cached(&self, id: u64) {
        self.cache.borrow_mut().remove(&id);
    }
}
