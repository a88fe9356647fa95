//! Plain data types of the public API and their conversions to and from the
//! WIT types.

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::bindings::types as w;
use crate::error::Result;

/// An entity tag: an opaque string naming one version of one key.
///
/// Every write to a key gives it a new etag (see the WIT docs of `bucket` for
/// which calls count as writes); a missing key has none. Compare etags only
/// for equality and pass them back in [`Condition::IfMatch`]; do not parse or
/// build them. An etag can be kept as text (for example sent to a client and
/// received back) with [`Etag::as_str`] / [`Etag::from`]; it serializes as a
/// plain JSON string.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Etag(String);

impl Etag {
    /// The etag's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The etag's text, by value.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Etag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Etag {
    fn from(s: String) -> Self {
        Etag(s)
    }
}

impl From<&str> for Etag {
    fn from(s: &str) -> Self {
        Etag(s.to_owned())
    }
}

impl From<Etag> for String {
    fn from(e: Etag) -> Self {
        e.0
    }
}

/// A precondition on a write, checked atomically with it: if it fails the
/// write fails and nothing changes. No condition means last-write-wins. An
/// expired key counts as absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The key must exist with exactly this etag; otherwise
    /// [`Error::EtagMismatch`](crate::Error::EtagMismatch).
    IfMatch(Etag),
    /// The key must not exist (first write wins); otherwise
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists).
    IfAbsent,
    /// The key must exist (any type); otherwise
    /// [`Error::NotFound`](crate::Error::NotFound).
    IfExists,
}

impl Condition {
    pub(crate) fn to_wit(&self) -> w::Condition {
        match self {
            Condition::IfMatch(etag) => w::Condition::IfMatch(etag.0.clone()),
            Condition::IfAbsent => w::Condition::IfAbsent,
            Condition::IfExists => w::Condition::IfExists,
        }
    }
}

/// Options of [`State::set_with`](crate::State::set_with). The default is an
/// unconditional write without expiry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetOptions {
    /// Expire the key after this long (rounded up to whole milliseconds;
    /// zero is rejected with `InvalidArgument`). `None` = no expiry, and any
    /// TTL the key had is cleared (Redis SET semantics).
    pub ttl: Option<Duration>,
    /// Precondition on the key's current state; `None` = last-write-wins.
    pub condition: Option<Condition>,
}

impl SetOptions {
    /// Options with only a TTL.
    pub fn ttl(ttl: Duration) -> Self {
        SetOptions {
            ttl: Some(ttl),
            condition: None,
        }
    }

    /// Options with only a condition.
    pub fn condition(condition: Condition) -> Self {
        SetOptions {
            ttl: None,
            condition: Some(condition),
        }
    }

    /// These options with a TTL.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// These options with a condition.
    pub fn with_condition(mut self, condition: Condition) -> Self {
        self.condition = Some(condition);
        self
    }

    pub(crate) fn to_wit(&self) -> w::SetOptions {
        w::SetOptions {
            ttl_ms: self.ttl.map(duration_to_ms),
            condition: self.condition.as_ref().map(Condition::to_wit),
        }
    }
}

/// When [`State::expire_with`](crate::State::expire_with) applies a new TTL
/// (Redis EXPIRE options). A key without TTL counts as having an infinite one
/// when comparing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ExpireMode {
    /// Always apply (EXPIRE without option).
    #[default]
    Always,
    /// Only if the key has no TTL (NX).
    Nx,
    /// Only if the key already has a TTL (XX).
    Xx,
    /// Only if the new expiry is later than the current one (GT); never
    /// applies to a key without TTL.
    Gt,
    /// Only if the new expiry is earlier than the current one (LT); always
    /// applies to a key without TTL.
    Lt,
}

impl ExpireMode {
    pub(crate) fn to_wit(self) -> w::ExpireMode {
        match self {
            ExpireMode::Always => w::ExpireMode::Always,
            ExpireMode::Nx => w::ExpireMode::Nx,
            ExpireMode::Xx => w::ExpireMode::Xx,
            ExpireMode::Gt => w::ExpireMode::Gt,
            ExpireMode::Lt => w::ExpireMode::Lt,
        }
    }
}

/// The type of data a key holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// A value written with `set` (or a counter from `increment`).
    Value,
    /// A map (Redis hash).
    Map,
    /// A list (Redis list).
    List,
}

impl From<w::KeyKind> for KeyKind {
    fn from(k: w::KeyKind) -> Self {
        match k {
            w::KeyKind::Value => KeyKind::Value,
            w::KeyKind::Map => KeyKind::Map,
            w::KeyKind::List => KeyKind::List,
        }
    }
}

/// Metadata of a key of any type ([`State::info`](crate::State::info)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// Whether the key holds a value, a map or a list.
    pub kind: KeyKind,
    /// The key's current etag.
    pub etag: Etag,
    /// Remaining time to live (whole milliseconds, rounded down), or `None`
    /// if the key never expires.
    pub ttl: Option<Duration>,
}

impl From<w::KeyInfo> for KeyInfo {
    fn from(i: w::KeyInfo) -> Self {
        KeyInfo {
            kind: i.kind.into(),
            etag: Etag(i.etag),
            ttl: i.ttl_ms.map(Duration::from_millis),
        }
    }
}

/// A value read with its etag and remaining TTL
/// ([`State::get_entry`](crate::State::get_entry)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<T> {
    /// The stored value.
    pub value: T,
    /// The key's current etag, for [`Condition::IfMatch`].
    pub etag: Etag,
    /// Remaining time to live (whole milliseconds, rounded down), or `None`
    /// if the key never expires.
    pub ttl: Option<Duration>,
}

/// Where [`State::list_insert`](crate::State::list_insert) puts the new item
/// relative to the pivot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Position {
    /// Just before the pivot.
    Before,
    /// Just after the pivot.
    After,
}

/// Which keys [`State::keys`](crate::State::keys) lists: keys of every type,
/// ordered by their UTF-8 bytes, expired keys never included. All bounds
/// combine. The default lists every key in ascending order.
///
/// Build it with the methods (`KeyListing::prefix("user:").reverse()`) or as
/// a struct literal with `..Default::default()`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyListing {
    /// Only keys starting with this; `None` = no prefix filter.
    pub prefix: Option<String>,
    /// Only keys `>=` this one (inclusive lower bound, whatever the
    /// direction).
    pub start: Option<String>,
    /// Only keys `<` this one (exclusive upper bound, whatever the
    /// direction).
    pub end: Option<String>,
    /// `false` = ascending byte order, `true` = descending.
    pub reverse: bool,
    /// Keys fetched per host call (WIT `limit`): default and maximum 1000
    /// (the host's page limit); 0 is rejected with `InvalidArgument`. The
    /// iterator of [`State::keys`](crate::State::keys) still goes through
    /// every page: use `.take(n)` to stop early.
    pub page_size: Option<u32>,
    /// Where to continue: `None` for the first page, else the
    /// [`KeyPage::cursor`] of the previous page with the other fields
    /// unchanged. Only needed with [`State::keys_page`](crate::State::keys_page).
    pub cursor: Option<String>,
}

impl KeyListing {
    /// Every key, ascending (the default).
    pub fn all() -> Self {
        KeyListing::default()
    }

    /// Keys starting with `prefix`.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        KeyListing {
            prefix: Some(prefix.into()),
            ..KeyListing::default()
        }
    }

    /// Keys in `[start, end)`.
    pub fn range(start: impl Into<String>, end: impl Into<String>) -> Self {
        KeyListing {
            start: Some(start.into()),
            end: Some(end.into()),
            ..KeyListing::default()
        }
    }

    /// This listing restricted to keys `>= start`.
    pub fn start(mut self, start: impl Into<String>) -> Self {
        self.start = Some(start.into());
        self
    }

    /// This listing restricted to keys `< end`.
    pub fn end(mut self, end: impl Into<String>) -> Self {
        self.end = Some(end.into());
        self
    }

    /// This listing in descending order.
    pub fn reverse(mut self) -> Self {
        self.reverse = true;
        self
    }

    /// This listing fetching `n` keys per host call.
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = Some(n);
        self
    }

    /// This listing continuing after a previous page.
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    pub(crate) fn to_wit(&self) -> w::KeyListing {
        w::KeyListing {
            prefix: self.prefix.clone(),
            start: self.start.clone(),
            end: self.end.clone(),
            reverse: self.reverse,
            limit: self.page_size,
            cursor: self.cursor.clone(),
        }
    }
}

impl From<&str> for KeyListing {
    /// A listing of the keys starting with this prefix.
    fn from(prefix: &str) -> Self {
        KeyListing::prefix(prefix)
    }
}

impl From<String> for KeyListing {
    /// A listing of the keys starting with this prefix.
    fn from(prefix: String) -> Self {
        KeyListing::prefix(prefix)
    }
}

/// One page of [`State::keys_page`](crate::State::keys_page).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// The keys of this page, in the listing's order.
    pub keys: Vec<String>,
    /// Pass it back as [`KeyListing::cursor`] for the next page; `None` when
    /// the listing is finished. A short or empty page does not by itself
    /// mean the end.
    pub cursor: Option<String>,
}

impl From<w::KeyPage> for KeyPage {
    fn from(p: w::KeyPage) -> Self {
        KeyPage {
            keys: p.keys,
            cursor: p.cursor,
        }
    }
}

/// The result of one operation of a committed batch
/// ([`Batch::commit`](crate::Batch::commit)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpResult {
    /// The key's etag right after this operation; `None` if the key does not
    /// exist after it. For a `check`, the key's current etag.
    pub etag: Option<Etag>,
    /// What the operation produced.
    pub output: OpOutput,
}

impl From<w::OpResult> for OpResult {
    fn from(r: w::OpResult) -> Self {
        OpResult {
            etag: r.etag.map(Etag),
            output: match r.output {
                w::OpOutput::None => OpOutput::None,
                w::OpOutput::Boolean(b) => OpOutput::Boolean(b),
                w::OpOutput::Integer(i) => OpOutput::Integer(i),
                w::OpOutput::Values(v) => OpOutput::Values(v),
            },
        }
    }
}

/// What one batch operation produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpOutput {
    /// No output: `set`, `list_trim`, `list_set`, `check`.
    None,
    /// A yes/no answer: `delete` (whether the key existed), `expire`
    /// (whether the TTL was applied), `persist` (whether a TTL was removed).
    Boolean(bool),
    /// A count, a new length or a counter's new value: `increment`,
    /// `map_set`, `map_delete`, `map_increment`, `list_append`,
    /// `list_prepend`, `list_remove`, `list_insert`.
    Integer(i64),
    /// Popped list items as stored JSON bytes, in pop order
    /// (`list_start_pop`, `list_end_pop`); see [`OpOutput::values`].
    Values(Vec<Vec<u8>>),
}

impl OpOutput {
    /// The answer of a `Boolean` output.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            OpOutput::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The number of an `Integer` output.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            OpOutput::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The popped items of a `Values` output, deserialized from JSON (empty
    /// for any other output).
    pub fn values<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        match self {
            OpOutput::Values(items) => items.iter().map(|b| from_json(b)).collect(),
            _ => Ok(Vec::new()),
        }
    }
}

/// A duration as whole milliseconds, rounded up so that a non-zero duration
/// never becomes 0; saturates at `u64::MAX`.
pub(crate) fn duration_to_ms(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// A duration as whole seconds, rounded up so that a non-zero duration never
/// becomes 0.
pub(crate) fn duration_to_secs(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() != 0))
}

/// Serializes a value to JSON bytes.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(value)?)
}

/// Deserializes JSON bytes.
pub(crate) fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    Ok(serde_json::from_slice(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_up() {
        assert_eq!(duration_to_ms(Duration::ZERO), 0);
        assert_eq!(duration_to_ms(Duration::from_nanos(1)), 1);
        assert_eq!(duration_to_ms(Duration::from_millis(1500)), 1500);
        assert_eq!(duration_to_ms(Duration::from_micros(1500)), 2);
        assert_eq!(duration_to_ms(Duration::MAX), u64::MAX);
        assert_eq!(duration_to_secs(Duration::ZERO), 0);
        assert_eq!(duration_to_secs(Duration::from_millis(1)), 1);
        assert_eq!(duration_to_secs(Duration::from_secs(60)), 60);
        assert_eq!(duration_to_secs(Duration::from_millis(60_001)), 61);
        assert_eq!(duration_to_secs(Duration::MAX), u64::MAX);
    }

    #[test]
    fn set_options_convert() {
        let o = SetOptions::ttl(Duration::from_secs(2))
            .with_condition(Condition::IfMatch(Etag::from("e1")))
            .to_wit();
        assert_eq!(o.ttl_ms, Some(2000));
        assert!(matches!(o.condition, Some(w::Condition::IfMatch(ref e)) if e == "e1"));
        let o = SetOptions::default().to_wit();
        assert!(o.ttl_ms.is_none() && o.condition.is_none());
    }

    #[test]
    fn listing_builder_converts() {
        let l = KeyListing::prefix("user:")
            .start("user:b")
            .end("user:y")
            .reverse()
            .page_size(10)
            .cursor("c")
            .to_wit();
        assert_eq!(l.prefix.as_deref(), Some("user:"));
        assert_eq!(l.start.as_deref(), Some("user:b"));
        assert_eq!(l.end.as_deref(), Some("user:y"));
        assert!(l.reverse);
        assert_eq!(l.limit, Some(10));
        assert_eq!(l.cursor.as_deref(), Some("c"));
        assert_eq!(KeyListing::from("p:"), KeyListing::prefix("p:"));
    }

    #[test]
    fn etag_is_a_transparent_string() {
        let e = Etag::from("abc");
        assert_eq!(serde_json::to_string(&e).unwrap(), "\"abc\"");
        assert_eq!(e.to_string(), "abc");
        let back: Etag = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn op_output_helpers() {
        assert_eq!(OpOutput::Boolean(true).as_bool(), Some(true));
        assert_eq!(OpOutput::Integer(3).as_integer(), Some(3));
        assert_eq!(OpOutput::None.as_integer(), None);
        let popped = OpOutput::Values(vec![b"\"a\"".to_vec(), b"\"b\"".to_vec()]);
        assert_eq!(popped.values::<String>().unwrap(), ["a", "b"]);
        assert!(
            OpOutput::Values(vec![b"nope".to_vec()])
                .values::<String>()
                .is_err()
        );
    }
}
