//! Bot Framework's `BotState` for Rust guests of wasm-state: a
//! [`Storage`] with eTags, per-turn cached [`BotState`]s for conversations
//! and users, typed [`StatePropertyAccessor`]s, persisted in wasm-state
//! ([`StateStorage`]) with its etags and TTLs — or in memory for unit tests
//! ([`MemoryStorage`]).
//!
//! # From Bot Framework (botbuilder-js) to this crate
//!
//! | Bot Framework | here |
//! |---|---|
//! | `Storage`, `StoreItems`, `StoreItem.eTag` | [`Storage`], [`StoreItems`] (JSON objects), [`ETAG`] (`"eTag"`) |
//! | `MemoryStorage` | [`MemoryStorage`] (same semantics, non-atomic batches included) |
//! | `CosmosDbPartitionedStorage`, `BlobsStorage` … | [`StateStorage`] over a wasm-state scope (atomic batches, TTL) |
//! | `TurnContext`, `turnState` | [`TurnContext`] (the per-turn cache is inside) |
//! | `Activity`, `ChannelAccount`, `ConversationAccount` | [`Activity`], [`ChannelAccount`], [`ConversationAccount`] |
//! | `context.sendActivity(text)` (the reply's addressing) | [`Activity::reply`] |
//! | `BotState(storage, storageKey)` | [`BotState::new`] |
//! | `load(context, force)` / `saveChanges(context, force)` | [`BotState::load`] / [`BotState::save_changes`] |
//! | `clear(context)` / `delete(context)` / `get(context)` | [`BotState::clear`] / [`BotState::delete`] / [`BotState::get`] |
//! | `createProperty<T>(name)` | [`BotState::create_property`] |
//! | `StatePropertyAccessor.get(ctx, default)` / `set` / `delete` | [`StatePropertyAccessor::get`] / [`set`](StatePropertyAccessor::set) / [`delete`](StatePropertyAccessor::delete) |
//! | `ConversationState`, `UserState`, `PrivateConversationState` | [`ConversationState::new`], [`UserState::new`], [`PrivateConversationState::new`] (same keys) |
//! | `BotStateSet` (`loadAll`, `saveAllChanges`) | [`BotStateSet`] ([`load_all`](BotStateSet::load_all), [`save_all_changes`](BotStateSet::save_all_changes)) |
//! | `AutoSaveStateMiddleware` | [`auto_save`] |
//! | (none: last writer wins) | [`BotState::optimistic`]: conflicts are errors |
//! | (none) | [`StateStorage::with_ttl`] + [`BotState::renew_every_turn`]: idle state expires |
//!
//! # A turn
//!
//! ```no_run
//! use wasm_state_bot::{Activity, BotStateSet, ConversationState, StateStorage, TurnContext, UserState, auto_save};
//! use wasm_state_sdk::State;
//! # fn main() -> Result<(), wasm_state_bot::BotError> {
//! # let incoming: Activity = serde_json::from_str("{}").unwrap();
//! let conversation = ConversationState::new(StateStorage::new(State::instance()));
//! let user = UserState::new(StateStorage::new(State::instance()));
//! let turns = conversation.create_property::<u64>("turns");
//! let name = user.create_property::<String>("name");
//!
//! let turn = TurnContext::new(incoming);
//! let reply = auto_save(&turn, &BotStateSet::new([conversation, user]), |turn| {
//!     let n = turns.get(turn, Some(0))?.unwrap_or(0) + 1;
//!     turns.set(turn, &n)?;
//!     let who = name.get(turn, None)?.unwrap_or_else(|| "you".into());
//!     Ok::<_, wasm_state_bot::BotError>(turn.activity().reply(format!("{who}: turn {n}")))
//! })?;
//! # let _ = reply; Ok(()) }
//! ```
//!
//! # Checking a storage
//!
//! [`scenarios`] holds Bot Framework's storage base tests (and BotState's),
//! written once against the [`Storage`] trait; this crate runs them against
//! [`MemoryStorage`] natively, and wasm-state's tests run the same code
//! against [`StateStorage`] inside a guest component.

#![deny(missing_docs)]

mod activity;
mod bot_state;
mod error;
mod memory;
pub mod scenarios;
mod state_storage;
mod storage;
mod turn;

pub use activity::{Activity, ChannelAccount, ConversationAccount};
pub use bot_state::{
    BotState, BotStateSet, ConversationState, KeyFactory, PrivateConversationState,
    StatePropertyAccessor, UserState, auto_save,
};
pub use error::{BotError, Result};
pub use memory::MemoryStorage;
pub use state_storage::StateStorage;
pub use storage::{ABSENT_ETAG, ANY_ETAG, ETAG, ETags, Storage, StoreItems, etag_of, without_etag};
pub use turn::TurnContext;
