//! Cursors of key listings and map scans: the last key (or field) returned,
//! as opaque URL-safe text. Shared by every engine.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::error::{Result, StateError};

/// A cursor naming a position after (or before) `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    format!("1{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The position a cursor made by [`encode`] names.
pub fn decode(cursor: &str) -> Result<Vec<u8>> {
    cursor
        .strip_prefix('1')
        .and_then(|c| URL_SAFE_NO_PAD.decode(c).ok())
        .ok_or_else(|| {
            StateError::invalid(format!(
                "cursor {cursor:?} is not one the store returned; pass it back unchanged"
            ))
        })
}
