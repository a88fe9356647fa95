//! The bot crate's one error type.

use std::fmt;

/// Why a storage or state operation failed. The messages follow Bot
/// Framework's where it has one (`Storage: error writing "k" due to eTag
/// conflict.`, `missing activity.channelId`…).
#[derive(Debug)]
#[non_exhaustive]
pub enum BotError {
    /// A write carried an eTag that is no longer the item's: someone wrote
    /// it since it was read. Read it again and retry the turn.
    EtagConflict {
        /// The item's key.
        key: String,
    },
    /// The activity lacks a field the storage key is built from
    /// (`activity.channelId`, `activity.conversation.id`, `activity.from.id`).
    MissingField(&'static str),
    /// A custom key factory gave no key.
    NoKey(String),
    /// A state is larger than the host stores in one value.
    TooLarge {
        /// The item's key.
        key: String,
        /// Its size as JSON, in bytes.
        len: usize,
    },
    /// An item is not a JSON object (Bot Framework items are objects).
    NotAnObject {
        /// The item's key.
        key: String,
    },
    /// A state property did not (de)serialize as the requested type.
    Json(serde_json::Error),
    /// The state store failed (see the SDK's error).
    State(wasm_state_sdk::Error),
}

impl fmt::Display for BotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BotError::EtagConflict { key } => {
                write!(f, "Storage: error writing \"{key}\" due to eTag conflict.")
            }
            BotError::MissingField(field) => write!(f, "missing {field}"),
            BotError::NoKey(msg) => f.write_str(msg),
            BotError::TooLarge { key, len } => write!(
                f,
                "the state at \"{key}\" is {len} bytes of JSON, more than the host stores in one value; keep less in bot state (store large data under its own keys)"
            ),
            BotError::NotAnObject { key } => write!(
                f,
                "the item at \"{key}\" is not a JSON object; Bot Framework store items are objects"
            ),
            BotError::Json(e) => write!(f, "a state property does not match its type: {e}"),
            BotError::State(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BotError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BotError::Json(e) => Some(e),
            BotError::State(e) => Some(e),
            _ => None,
        }
    }
}

impl From<serde_json::Error> for BotError {
    fn from(e: serde_json::Error) -> Self {
        BotError::Json(e)
    }
}

impl From<wasm_state_sdk::Error> for BotError {
    fn from(e: wasm_state_sdk::Error) -> Self {
        BotError::State(e)
    }
}

/// A result of the bot crate.
pub type Result<T, E = BotError> = std::result::Result<T, E>;
