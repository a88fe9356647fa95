//! [`BotState`] and its scopes ([`ConversationState`], [`UserState`],
//! [`PrivateConversationState`]), [`BotStateSet`] and [`auto_save`].

use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{BotError, Result};
use crate::storage::{ABSENT_ETAG, ANY_ETAG, ETAG, Storage, StoreItems};
use crate::turn::{Cached, TurnContext};

/// Computes the storage key of a turn's state (`StorageKeyFactory`).
pub type KeyFactory = dyn Fn(&TurnContext) -> Result<String>;

struct Inner {
    id: u64,
    storage: Rc<dyn Storage>,
    key: Rc<KeyFactory>,
    optimistic: bool,
    renew: bool,
}

/// The change hash of a state: its JSON without a top-level `eTag` (Bot
/// Framework hashes the same text; only "changed or not" matters).
fn change_hash(state: &Map<String, Value>) -> String {
    let mut m = state.clone();
    m.remove(ETAG);
    Value::Object(m).to_string()
}

/// A state object loaded from [`Storage`] once per turn, cached on the
/// [`TurnContext`], and written back by [`save_changes`](BotState::save_changes)
/// only if it changed (Bot Framework's `BotState`). Cheap to clone; clones
/// share one cache slot.
///
/// Usually made by [`ConversationState::new`], [`UserState::new`] or
/// [`PrivateConversationState::new`], and read and written through
/// [`StatePropertyAccessor`]s from [`create_property`](BotState::create_property).
///
/// Beyond Bot Framework:
/// - [`optimistic`](BotState::optimistic): `save_changes` writes with the
///   eTag read at load and returns [`BotError::EtagConflict`] if another
///   turn wrote the state meanwhile (Bot Framework always writes `"*"`, so
///   the last writer silently wins); retry the turn on a conflict. A state
///   the turn never read (a [`clear`](BotState::clear) or a forced save
///   without a load) has no eTag to check and overwrites, as Bot
///   Framework's `clear` + `saveChanges` does; a save writes with the eTag
///   the turn's previous save got from the write itself;
/// - [`renew_every_turn`](BotState::renew_every_turn): with a storage that
///   expires idle items ([`StateStorage::with_ttl`](crate::StateStorage::with_ttl)),
///   a turn that changes nothing still renews the state's expiry, so the
///   state expires after that long without *turns*, not without changes.
///   A renewal gives the state a new eTag (an expiry change is a write in
///   wasm-state): with `optimistic` too, it renews only a state nobody
///   wrote since the turn loaded it (else it renews nothing, and the
///   turn's next save conflicts), the renewing turn's later saves use the
///   new eTag, and a concurrent turn that loaded before the renewal gets
///   a conflict and is retried like any other.
#[derive(Clone)]
pub struct BotState {
    inner: Rc<Inner>,
}

impl std::fmt::Debug for BotState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotState")
            .field("id", &self.inner.id)
            .field("optimistic", &self.inner.optimistic)
            .finish_non_exhaustive()
    }
}

fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl BotState {
    /// A state kept in `storage` under the key `key` computes for a turn.
    pub fn new(
        storage: impl Storage + 'static,
        key: impl Fn(&TurnContext) -> Result<String> + 'static,
    ) -> BotState {
        BotState::shared(Rc::new(storage), key)
    }

    /// [`BotState::new`] on a storage shared with other states.
    pub fn shared(
        storage: Rc<dyn Storage>,
        key: impl Fn(&TurnContext) -> Result<String> + 'static,
    ) -> BotState {
        BotState {
            inner: Rc::new(Inner {
                id: next_id(),
                storage,
                key: Rc::new(key),
                optimistic: false,
                renew: false,
            }),
        }
    }

    /// This state changed by `f`; it keeps its cache slot, so accessors
    /// made before the change and clones share the turn's state with it.
    fn with(self, f: impl FnOnce(&mut Inner)) -> BotState {
        let mut inner = Inner {
            id: self.inner.id,
            storage: self.inner.storage.clone(),
            key: self.inner.key.clone(),
            optimistic: self.inner.optimistic,
            renew: self.inner.renew,
        };
        f(&mut inner);
        BotState {
            inner: Rc::new(inner),
        }
    }

    /// Write with the eTag read at load: a concurrent write is a conflict,
    /// not lost.
    pub fn optimistic(self) -> BotState {
        self.with(|i| i.optimistic = true)
    }

    /// Renew the state's expiry on every saved turn, changed or not.
    pub fn renew_every_turn(self) -> BotState {
        self.with(|i| i.renew = true)
    }

    /// The storage key of this turn's state.
    pub fn storage_key(&self, turn: &TurnContext) -> Result<String> {
        (self.inner.key)(turn)
    }

    /// Read the state into the turn's cache unless it is there (or
    /// `force`); a missing state is `{}`.
    pub fn load(&self, turn: &TurnContext, force: bool) -> Result<()> {
        if !force && turn.cached(self.inner.id).is_some() {
            return Ok(());
        }
        let key = self.storage_key(turn)?;
        let mut items = self.inner.storage.read(&[&key])?;
        let (state, etag) = match items.remove(&key) {
            Some(Value::Object(mut m)) => {
                let etag = match m.remove(ETAG) {
                    Some(Value::String(e)) => Some(e),
                    _ => None,
                };
                (m, etag)
            }
            Some(_) => return Err(BotError::NotAnObject { key }),
            None => (Map::new(), None),
        };
        let hash = change_hash(&state);
        turn.set_cached(
            self.inner.id,
            Cached {
                state,
                hash,
                etag,
                read: true,
            },
        );
        Ok(())
    }

    /// A copy of the cached state, if loaded this turn.
    pub fn get(&self, turn: &TurnContext) -> Option<Map<String, Value>> {
        turn.cached(self.inner.id).map(|c| c.state)
    }

    /// Change the cached state (loading it first).
    pub fn update<R>(
        &self,
        turn: &TurnContext,
        f: impl FnOnce(&mut Map<String, Value>) -> R,
    ) -> Result<R> {
        self.load(turn, false)?;
        turn.with_cached(self.inner.id, |c| match c {
            Some(c) => Ok(f(&mut c.state)),
            None => Err(BotError::State(wasm_state_sdk::Error::Internal(
                "the turn's state cache lost a loaded state".into(),
            ))),
        })
    }

    /// Write the state back if it changed since load (or if `force`; with
    /// nothing cached a forced save writes `{}`). Without
    /// [`optimistic`](BotState::optimistic), the write overwrites (`"*"`),
    /// as Bot Framework does.
    pub fn save_changes(&self, turn: &TurnContext, force: bool) -> Result<()> {
        let cached = turn.cached(self.inner.id);
        let changed = cached
            .as_ref()
            .is_some_and(|c| c.hash != change_hash(&c.state));
        if !force && !changed {
            if self.inner.renew
                && let Some(c) = &cached
            {
                let key = self.storage_key(turn)?;
                let renewed = match (&c.etag, self.inner.optimistic) {
                    // Optimistic: renewed only if nobody wrote since the
                    // load; else the eTag stays, and the turn's next save
                    // conflicts instead of overwriting that write.
                    (Some(etag), true) => self.inner.storage.touch_if(&key, etag)?,
                    (None, true) => None,
                    (_, false) => self.inner.storage.touch(&[&key])?.remove(&key),
                };
                // A renewal that gave the state a new eTag: the turn's next
                // save writes with it (not a conflict with itself).
                if let Some(etag) = renewed {
                    turn.with_cached(self.inner.id, |c| {
                        if let Some(c) = c {
                            c.etag = Some(etag);
                        }
                    });
                }
            }
            return Ok(());
        }
        let key = self.storage_key(turn)?;
        let mut c = cached.unwrap_or_else(|| Cached {
            hash: String::new(),
            ..Cached::default()
        });
        let etag = match (&c.etag, self.inner.optimistic) {
            (_, false) => ANY_ETAG.to_string(),
            (Some(e), true) => e.clone(),
            // Read this turn and absent: create-only.
            (None, true) if c.read => ABSENT_ETAG.to_string(),
            // Never read this turn (a `clear` or a forced save without a
            // load): nothing to be optimistic about; it overwrites, as Bot
            // Framework's `clear` + `saveChanges` does.
            (None, true) => ANY_ETAG.to_string(),
        };
        let mut item = c.state.clone();
        item.insert(ETAG.into(), Value::String(etag));
        let items = StoreItems::from([(key.clone(), Value::Object(item))]);
        if self.inner.optimistic {
            // The eTag this write gave, for the turn's next save.
            c.etag = self.inner.storage.write_tagged(items)?.remove(&key);
            c.read = true;
        } else {
            self.inner.storage.write(items)?;
        }
        c.hash = change_hash(&c.state);
        turn.set_cached(self.inner.id, c);
        Ok(())
    }

    /// Empty the state; the next [`save_changes`](BotState::save_changes)
    /// writes `{}`.
    pub fn clear(&self, turn: &TurnContext) {
        let (etag, read) = turn
            .cached(self.inner.id)
            .map_or((None, false), |c| (c.etag, c.read));
        turn.set_cached(
            self.inner.id,
            Cached {
                state: Map::new(),
                hash: String::new(),
                etag,
                read,
            },
        );
    }

    /// Delete the state from the turn's cache and from storage.
    pub fn delete(&self, turn: &TurnContext) -> Result<()> {
        turn.remove_cached(self.inner.id);
        let key = self.storage_key(turn)?;
        self.inner.storage.delete(&[&key])
    }

    /// An accessor for the member `name` of the state, as a `T`.
    pub fn create_property<T>(&self, name: impl Into<String>) -> StatePropertyAccessor<T> {
        StatePropertyAccessor {
            state: self.clone(),
            name: name.into(),
            _t: PhantomData,
        }
    }
}

/// One member of a [`BotState`], typed (Bot Framework's
/// `StatePropertyAccessor`). Changes live in the turn's cache until the
/// state's [`save_changes`](BotState::save_changes).
pub struct StatePropertyAccessor<T> {
    state: BotState,
    name: String,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for StatePropertyAccessor<T> {
    fn clone(&self) -> Self {
        StatePropertyAccessor {
            state: self.state.clone(),
            name: self.name.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for StatePropertyAccessor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatePropertyAccessor")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<T: Serialize + DeserializeOwned> StatePropertyAccessor<T> {
    /// The property's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value, loading the state if needed. If it is missing and a
    /// `default` is given, the default is stored into the state (so it is
    /// saved with it, as Bot Framework does) and returned.
    pub fn get(&self, turn: &TurnContext, default: Option<T>) -> Result<Option<T>> {
        let stored = self.state.update(turn, |s| -> Result<Option<Value>> {
            match (s.get(&self.name), default) {
                (Some(v), _) => Ok(Some(v.clone())),
                (None, Some(d)) => {
                    let v = serde_json::to_value(d)?;
                    s.insert(self.name.clone(), v.clone());
                    Ok(Some(v))
                }
                (None, None) => Ok(None),
            }
        })??;
        stored
            .map(|v| serde_json::from_value(v).map_err(BotError::from))
            .transpose()
    }

    /// Set the value.
    pub fn set(&self, turn: &TurnContext, value: &T) -> Result<()> {
        let v = serde_json::to_value(value)?;
        self.state.update(turn, |s| {
            s.insert(self.name.clone(), v);
        })
    }

    /// Remove the property.
    pub fn delete(&self, turn: &TurnContext) -> Result<()> {
        self.state.update(turn, |s| {
            s.remove(&self.name);
        })
    }
}

fn channel(turn: &TurnContext) -> Result<&str> {
    Some(turn.activity().channel_id.as_str())
        .filter(|c| !c.is_empty())
        .ok_or(BotError::MissingField("activity.channelId"))
}

fn conversation(turn: &TurnContext) -> Result<&str> {
    turn.activity()
        .conversation
        .as_ref()
        .map(|c| c.id.as_str())
        .filter(|c| !c.is_empty())
        .ok_or(BotError::MissingField("activity.conversation.id"))
}

fn user(turn: &TurnContext) -> Result<&str> {
    turn.activity()
        .from
        .as_ref()
        .map(|c| c.id.as_str())
        .filter(|c| !c.is_empty())
        .ok_or(BotError::MissingField("activity.from.id"))
}

/// State per conversation: key `{channelId}/conversations/{conversation.id}/{namespace}`
/// (Bot Framework's `ConversationState`; the default namespace is empty, so
/// the key ends with `/`, as botbuilder-js writes it).
#[derive(Debug)]
pub struct ConversationState;

// `new` returns the BotState itself: the scope is only how its key is made.
#[allow(clippy::new_ret_no_self)]
impl ConversationState {
    /// Conversation state in `storage`.
    pub fn new(storage: impl Storage + 'static) -> BotState {
        ConversationState::with_namespace(storage, "")
    }

    /// Conversation state with a namespace (several bots in one storage).
    pub fn with_namespace(storage: impl Storage + 'static, namespace: &str) -> BotState {
        let ns = namespace.to_string();
        BotState::new(storage, move |t| {
            Ok(format!(
                "{}/conversations/{}/{ns}",
                channel(t)?,
                conversation(t)?
            ))
        })
    }

    /// The key of a turn's conversation state (`getStorageKey`).
    pub fn storage_key(turn: &TurnContext, namespace: &str) -> Result<String> {
        Ok(format!(
            "{}/conversations/{}/{namespace}",
            channel(turn)?,
            conversation(turn)?
        ))
    }
}

/// State per user, across conversations of a channel: key
/// `{channelId}/users/{from.id}/{namespace}` (Bot Framework's `UserState`).
#[derive(Debug)]
pub struct UserState;

// `new` returns the BotState itself: the scope is only how its key is made.
#[allow(clippy::new_ret_no_self)]
impl UserState {
    /// User state in `storage`.
    pub fn new(storage: impl Storage + 'static) -> BotState {
        UserState::with_namespace(storage, "")
    }

    /// User state with a namespace.
    pub fn with_namespace(storage: impl Storage + 'static, namespace: &str) -> BotState {
        let ns = namespace.to_string();
        BotState::new(storage, move |t| {
            Ok(format!("{}/users/{}/{ns}", channel(t)?, user(t)?))
        })
    }
}

/// State per user within a conversation: key
/// `{channelId}/conversations/{conversation.id}/users/{from.id}/{namespace}`
/// (Bot Framework's `PrivateConversationState`).
#[derive(Debug)]
pub struct PrivateConversationState;

// `new` returns the BotState itself: the scope is only how its key is made.
#[allow(clippy::new_ret_no_self)]
impl PrivateConversationState {
    /// Private conversation state in `storage`.
    pub fn new(storage: impl Storage + 'static) -> BotState {
        PrivateConversationState::with_namespace(storage, "")
    }

    /// Private conversation state with a namespace.
    pub fn with_namespace(storage: impl Storage + 'static, namespace: &str) -> BotState {
        let ns = namespace.to_string();
        BotState::new(storage, move |t| {
            Ok(format!(
                "{}/conversations/{}/users/{}/{ns}",
                channel(t)?,
                conversation(t)?,
                user(t)?
            ))
        })
    }
}

/// Several states loaded and saved together (Bot Framework's
/// `BotStateSet`); no transaction spans them.
#[derive(Debug, Clone, Default)]
pub struct BotStateSet {
    states: Vec<BotState>,
}

impl BotStateSet {
    /// A set of `states`.
    pub fn new(states: impl IntoIterator<Item = BotState>) -> Self {
        BotStateSet {
            states: states.into_iter().collect(),
        }
    }

    /// Add states.
    pub fn add(&mut self, states: impl IntoIterator<Item = BotState>) -> &mut Self {
        self.states.extend(states);
        self
    }

    /// The states.
    pub fn states(&self) -> &[BotState] {
        &self.states
    }

    /// Load every state.
    pub fn load_all(&self, turn: &TurnContext, force: bool) -> Result<()> {
        self.states.iter().try_for_each(|s| s.load(turn, force))
    }

    /// Save every state that changed (every one if `force`); all are tried,
    /// the first failure is returned.
    pub fn save_all_changes(&self, turn: &TurnContext, force: bool) -> Result<()> {
        let mut first = None;
        for s in &self.states {
            if let Err(e) = s.save_changes(turn, force)
                && first.is_none()
            {
                first = Some(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Run a turn's logic, then save the states that changed — only if it
/// succeeded (Bot Framework's `AutoSaveStateMiddleware`).
pub fn auto_save<R, E>(
    turn: &TurnContext,
    states: &BotStateSet,
    logic: impl FnOnce(&TurnContext) -> std::result::Result<R, E>,
) -> std::result::Result<R, E>
where
    E: From<BotError>,
{
    let r = logic(turn)?;
    states.save_all_changes(turn, false)?;
    Ok(r)
}
