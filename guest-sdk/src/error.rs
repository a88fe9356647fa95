//! The SDK's single error type.

use std::fmt;

use crate::bindings::types as w;

/// Why a state operation failed.
///
/// One case per case of the WIT `error` variant (same meaning: a failed call
/// changed nothing, except where [`Error::Unavailable`] says otherwise), plus
/// the SDK's own cases: [`Error::Json`] for values that do not (de)serialize,
/// [`Error::Transaction`] for the operation of a batch or transaction that
/// made the whole commit fail, and [`Error::Conflict`] for a transaction that
/// kept conflicting with concurrent writers.
///
/// The [`Display`](fmt::Display) text says what went wrong and what to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A map operation was used on a key holding a value or a list, a list
    /// operation on a key holding a value or a map, or a value read (`get`,
    /// `get_entry`, `increment`) on a key holding a map or a list.
    WrongType,
    /// `increment` / `map_increment` found a stored value that is not the
    /// canonical decimal text of an `i64` (for example a JSON string or a
    /// float).
    NotAnInteger,
    /// `increment` / `map_increment` (or `decrement`) would leave the `i64`
    /// range.
    Overflow,
    /// `list_set` was given an index outside the list.
    IndexOutOfRange,
    /// An [`IfMatch`](crate::Condition::IfMatch) condition failed: the key's
    /// etag is a different one now, or the key no longer exists.
    EtagMismatch,
    /// An etag passed in [`IfMatch`](crate::Condition::IfMatch) is not one the
    /// store could have issued.
    InvalidEtag,
    /// An [`IfAbsent`](crate::Condition::IfAbsent) condition failed: the key
    /// already exists.
    AlreadyExists,
    /// An [`IfExists`](crate::Condition::IfExists) condition failed, or an
    /// operation that needs an existing key found none (`ttl`, `list_set`).
    NotFound,
    /// The session is not a live session of this instance: never created,
    /// expired, ended, malformed, or another instance's.
    NoSuchSession,
    /// The host's policy does not allow this instance this scope or
    /// operation (for example account state disabled).
    AccessDenied,
    /// A key or map field is longer than the host's limit (2048 bytes by
    /// default).
    KeyTooLarge,
    /// A value, map value or list item is larger than the host's limit
    /// (1 MiB by default); or a whole-map read, a list range or the pops of
    /// one call are over the host's reply limit (32 MiB by default).
    ValueTooLarge,
    /// A batch, transaction, `get_many`, `set_many` or `delete_many` holds
    /// more items than the host's limit (128 by default) — so does one
    /// `map_set`, `map_delete`, `map_get_multiple`, `list_append` or
    /// `list_prepend` call with more entries. In
    /// [`State::transaction`](crate::State::transaction) each key read
    /// counts as one op too (its check), next to the queued writes.
    TooManyOperations,
    /// The write would take this instance's stored data beyond its quota
    /// (or a new session beyond the instance's session limit).
    QuotaExceeded,
    /// An argument is invalid in a way the other cases do not cover; the
    /// string says which and why.
    InvalidArgument(String),
    /// The storage backend could not be reached or timed out; a retry may
    /// succeed. A write that failed this way may or may not have been applied
    /// (all of it or none of it).
    Unavailable(String),
    /// A bug or unexpected state in the host; the string is for the operator.
    Internal(String),
    /// A value could not be serialized to JSON, or stored bytes could not be
    /// deserialized as the requested type.
    Json(serde_json::Error),
    /// Operation `index` (0-based) of a batch or transaction failed, so
    /// nothing of it was applied. For a [`transaction`](crate::State::transaction)
    /// the index counts the writes the closure queued, in order.
    Transaction {
        /// Position of the failed operation.
        index: u32,
        /// Why it failed.
        source: Box<Error>,
    },
    /// A [`transaction`](crate::State::transaction) gave up: the keys it read
    /// changed before it could commit, on every one of `attempts` attempts.
    Conflict {
        /// How many times the closure ran.
        attempts: u32,
    },
}

impl Error {
    /// Whether this is a failed write condition (`EtagMismatch`,
    /// `AlreadyExists` or `NotFound` from a condition), possibly inside
    /// [`Error::Transaction`]. Re-reading and retrying may succeed.
    ///
    /// `NotFound` also comes from calls without a condition on a missing
    /// key (`ttl`, `list_set`): this answers `true` for those too, so a
    /// retry loop on it should also re-check that the key exists.
    pub fn is_condition_failed(&self) -> bool {
        match self {
            Error::EtagMismatch | Error::AlreadyExists | Error::NotFound => true,
            Error::Transaction { source, .. } => source.is_condition_failed(),
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::WrongType => f.write_str(
                "the key holds another type (value, map or list) than this operation works on; \
                 nothing changed. Check its kind with `info`, delete it, or use another key",
            ),
            Error::NotAnInteger => f.write_str(
                "the stored value is not an integer counter (canonical decimal i64); nothing \
                 changed. Only increment keys written by `increment` or set to a JSON integer",
            ),
            Error::Overflow => f.write_str(
                "the counter would leave the i64 range; nothing changed. Reset it with `set` \
                 or use a smaller delta",
            ),
            Error::IndexOutOfRange => f.write_str(
                "the list index is outside the list; nothing changed. Check `list_length` \
                 first (negative indices count from the end)",
            ),
            Error::EtagMismatch => f.write_str(
                "the key changed since its etag was read (or no longer exists); nothing \
                 changed. Read it again and retry, or use `transaction`, which retries for you",
            ),
            Error::InvalidEtag => f.write_str(
                "the etag is not one this store issued; nothing changed. Pass etags back \
                 exactly as `set`, `get_entry` or `info` returned them",
            ),
            Error::AlreadyExists => f.write_str(
                "the key already exists (if-absent condition); nothing changed. Read it, \
                 or write without the condition to overwrite it",
            ),
            Error::NotFound => f.write_str(
                "the key does not exist (if-exists condition, `ttl` or `list_set` on a missing \
                 key); nothing changed. Create it first or check with `exists`",
            ),
            Error::NoSuchSession => f.write_str(
                "the session is not a live session of this instance (never created, expired, \
                 ended or another instance's); start a new one with `Session::create`",
            ),
            Error::AccessDenied => f.write_str(
                "the host does not allow this instance this scope or operation; nothing \
                 changed. Ask the operator to enable it (e.g. account state)",
            ),
            Error::KeyTooLarge => f.write_str(
                "the key or map field is longer than the host's limit (2048 bytes by \
                 default); nothing changed. Use a shorter key, for example a hash of it",
            ),
            Error::ValueTooLarge => f.write_str(
                "the value is larger than the host's limit (1 MiB by default), or the reply \
                 would be over the host's reply limit (32 MiB by default); nothing changed. \
                 Split a value over several keys, map fields or list items; read a large map \
                 with map_scan and a long list in smaller ranges",
            ),
            Error::TooManyOperations => f.write_str(
                "more items than the host allows in one call (128 by default for batches, \
                 transactions, get_many, set_many, delete_many); nothing changed. Split the call",
            ),
            Error::QuotaExceeded => f.write_str(
                "this instance's storage quota (or, when creating a session, its session \
                 limit) is used up; nothing changed. Delete data, give keys a TTL or end \
                 sessions, or ask the operator for a larger limit",
            ),
            Error::InvalidArgument(why) => {
                write!(
                    f,
                    "invalid argument: {why}; nothing changed. Fix the argument"
                )
            }
            Error::Unavailable(why) => write!(
                f,
                "the state backend is unavailable ({why}); retry later. A write that failed \
                 this way may or may not have been applied: use conditions to make retries safe"
            ),
            Error::Internal(why) => write!(
                f,
                "internal error in the state host ({why}); retrying is unlikely to help, \
                 report it to the operator"
            ),
            Error::Json(e) => write!(
                f,
                "the value is not JSON of the requested type ({e}); read it as the type it was \
                 written with, or with `get_bytes` for the raw bytes"
            ),
            Error::Transaction { index, source } => write!(
                f,
                "operation {index} of the batch or transaction failed, nothing of it was \
                 applied: {source}"
            ),
            Error::Conflict { attempts } => write!(
                f,
                "the transaction gave up after {attempts} attempts because the keys it read \
                 kept changing; retry later, allow more attempts with \
                 `transaction_with_retries`, or reduce contention on those keys"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Json(e) => Some(e),
            Error::Transaction { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Json(e)
    }
}

impl From<w::Error> for Error {
    fn from(e: w::Error) -> Self {
        match e {
            w::Error::WrongType => Error::WrongType,
            w::Error::NotAnInteger => Error::NotAnInteger,
            w::Error::Overflow => Error::Overflow,
            w::Error::IndexOutOfRange => Error::IndexOutOfRange,
            w::Error::EtagMismatch => Error::EtagMismatch,
            w::Error::InvalidEtag => Error::InvalidEtag,
            w::Error::AlreadyExists => Error::AlreadyExists,
            w::Error::NotFound => Error::NotFound,
            w::Error::NoSuchSession => Error::NoSuchSession,
            w::Error::AccessDenied => Error::AccessDenied,
            w::Error::KeyTooLarge => Error::KeyTooLarge,
            w::Error::ValueTooLarge => Error::ValueTooLarge,
            w::Error::TooManyOperations => Error::TooManyOperations,
            w::Error::QuotaExceeded => Error::QuotaExceeded,
            w::Error::InvalidArgument(s) => Error::InvalidArgument(s),
            w::Error::Unavailable(s) => Error::Unavailable(s),
            w::Error::Internal(s) => Error::Internal(s),
        }
    }
}

/// Turns a rejected commit into an [`Error`]. `offset` is subtracted from the
/// reported index (a transaction's leading `check` ops). Failures not tied to
/// one operation (`too-many-operations`, `quota-exceeded`, `unavailable`,
/// `internal`) come back bare rather than wrapped in [`Error::Transaction`].
pub(crate) fn from_commit_error(e: w::CommitError, offset: u32) -> Error {
    let source = Error::from(e.error);
    match e.index {
        Some(index) => Error::Transaction {
            index: index.saturating_sub(offset),
            source: Box::new(source),
        },
        None => source,
    }
}

/// `Result` with the SDK's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wit_case_maps_to_its_own_case() {
        let cases = [
            (w::Error::WrongType, "WrongType"),
            (w::Error::NotAnInteger, "NotAnInteger"),
            (w::Error::Overflow, "Overflow"),
            (w::Error::IndexOutOfRange, "IndexOutOfRange"),
            (w::Error::EtagMismatch, "EtagMismatch"),
            (w::Error::InvalidEtag, "InvalidEtag"),
            (w::Error::AlreadyExists, "AlreadyExists"),
            (w::Error::NotFound, "NotFound"),
            (w::Error::NoSuchSession, "NoSuchSession"),
            (w::Error::AccessDenied, "AccessDenied"),
            (w::Error::KeyTooLarge, "KeyTooLarge"),
            (w::Error::ValueTooLarge, "ValueTooLarge"),
            (w::Error::TooManyOperations, "TooManyOperations"),
            (w::Error::QuotaExceeded, "QuotaExceeded"),
            (
                w::Error::InvalidArgument("a".into()),
                "InvalidArgument(\"a\")",
            ),
            (w::Error::Unavailable("b".into()), "Unavailable(\"b\")"),
            (w::Error::Internal("c".into()), "Internal(\"c\")"),
        ];
        for (wit, debug) in cases {
            let e = Error::from(wit);
            assert_eq!(format!("{e:?}"), debug);
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn commit_errors_carry_the_op_index() {
        let e = from_commit_error(
            w::CommitError {
                index: Some(5),
                error: w::Error::EtagMismatch,
            },
            2,
        );
        match &e {
            Error::Transaction { index: 3, source } => {
                assert!(matches!(**source, Error::EtagMismatch))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(e.is_condition_failed());
        assert!(e.to_string().starts_with("operation 3 "));

        let e = from_commit_error(
            w::CommitError {
                index: None,
                error: w::Error::TooManyOperations,
            },
            0,
        );
        assert!(matches!(e, Error::TooManyOperations));
    }
}
