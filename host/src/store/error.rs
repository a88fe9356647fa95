//! The one error type of the state engine: every case a guest, an HTTP client or
//! an operator can cause, each with a message that says what to do next.

use thiserror::Error;

/// Everything that can go wrong in a state operation.
///
/// A failed operation changes nothing: the engine discards every write of a
/// request that returns one of these.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StateError {
    /// A map or list operation hit a key of another type (or a value operation a map/list).
    #[error(
        "wrong type: key holds a {found}, but this operation needs a {expected}; use another key or delete it first"
    )]
    WrongType {
        /// The kind the operation needs.
        expected: &'static str,
        /// The kind the key holds.
        found: &'static str,
    },
    /// `increment` on a value that is not the decimal text of an i64.
    #[error(
        "not an integer: the stored value is not a decimal 64-bit integer, so it cannot be incremented; set it to a number first"
    )]
    NotAnInteger,
    /// `increment` would leave the i64 range.
    #[error("overflow: the increment would take the counter outside the 64-bit signed range")]
    Overflow,
    /// `list-set` on an index the list does not have.
    #[error("index out of range: the list has {len} items; valid indices are -{len}..{len}")]
    IndexOutOfRange {
        /// The list's length at the time.
        len: u64,
    },
    /// An `if-match` condition named an etag the key no longer has.
    #[error(
        "etag mismatch: the key changed since you read it (or is gone); read it again and retry"
    )]
    EtagMismatch,
    /// An etag the store could never have issued.
    #[error("invalid etag {0:?}: pass an etag exactly as the store returned it")]
    InvalidEtag(String),
    /// An `if-absent` condition found the key present.
    #[error("already exists: the key is present and the write required it to be absent")]
    AlreadyExists,
    /// An `if-exists` condition (or an op that needs the key) found it absent.
    #[error("not found: the key does not exist (or has expired)")]
    NotFound,
    /// A session id that is unknown, expired, ended, or of another instance.
    #[error("no such session: the session id is unknown, ended or expired; create a new session")]
    NoSuchSession,
    /// The caller may not open that scope.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// A key (or map field) over the configured limit, or empty.
    #[error("key too large: {len} bytes, the limit is {max}; use a shorter key")]
    KeyTooLarge {
        /// Length of the offending key in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A value over the configured limit.
    #[error("value too large: {len} bytes, the limit is {max}; split the value or raise the limit")]
    ValueTooLarge {
        /// Length of the offending value in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A whole-map or whole-list read, or a transaction's popped values,
    /// over [`Limits::max_reply_bytes`](super::Limits::max_reply_bytes);
    /// reported to guests as `value-too-large`. Nothing changed.
    #[error(
        "reply too large: it would hold over {max} bytes, this host's limit for one reply; read it in pages (list-range over a smaller index range, map-scan, fewer items per pop) or raise the limit"
    )]
    ReplyTooLarge {
        /// The limit in bytes.
        max: usize,
    },
    /// A transaction or batch with more operations than allowed.
    #[error(
        "too many operations: {count} in one request, the limit is {max}; split it into smaller batches"
    )]
    TooManyOperations {
        /// Operations in the request.
        count: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The write would take the scope owner's storage over its quota.
    #[error(
        "quota exceeded: {owner} would use {would_use} bytes, its quota is {quota}; delete data or raise the quota"
    )]
    QuotaExceeded {
        /// The instance or account whose quota it is.
        owner: String,
        /// Bytes the owner would use after the write.
        would_use: u64,
        /// The owner's quota in bytes.
        quota: u64,
    },
    /// An instance already has as many sessions as it may
    /// ([`Limits::max_sessions`](super::Limits::max_sessions)); reported to
    /// guests as `quota-exceeded`.
    #[error(
        "instance {instance:?} already has {max} sessions, the most it may have; end some (or let them expire) or raise the limit"
    )]
    TooManySessions {
        /// The instance.
        instance: String,
        /// The limit.
        max: u64,
    },
    /// An argument that can never be valid (empty key, malformed glob or cursor…).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The backend could not be reached; retrying may succeed.
    #[error("unavailable: {0}; retry later")]
    Unavailable(String),
    /// A bug or a damaged database; the message says which.
    #[error("internal error: {0}")]
    Internal(String),
    /// Operation `index` of a transaction failed; nothing of the transaction was applied.
    #[error("operation {index} of the transaction failed, nothing was applied: {source}")]
    Aborted {
        /// Zero-based index of the failing operation.
        index: usize,
        /// Why it failed.
        source: Box<StateError>,
    },
}

impl StateError {
    /// A short kebab-case name of the error (the WIT's error case), for
    /// metrics and logs; an aborted transaction is named after its cause.
    pub fn code(&self) -> &'static str {
        match self.root() {
            StateError::WrongType { .. } => "wrong-type",
            StateError::NotAnInteger => "not-an-integer",
            StateError::Overflow => "overflow",
            StateError::IndexOutOfRange { .. } => "index-out-of-range",
            StateError::EtagMismatch => "etag-mismatch",
            StateError::InvalidEtag(_) => "invalid-etag",
            StateError::AlreadyExists => "already-exists",
            StateError::NotFound => "not-found",
            StateError::NoSuchSession => "no-such-session",
            StateError::AccessDenied(_) => "access-denied",
            StateError::KeyTooLarge { .. } => "key-too-large",
            StateError::ValueTooLarge { .. } | StateError::ReplyTooLarge { .. } => {
                "value-too-large"
            }
            StateError::TooManyOperations { .. } => "too-many-operations",
            StateError::QuotaExceeded { .. } | StateError::TooManySessions { .. } => {
                "quota-exceeded"
            }
            StateError::InvalidArgument(_) => "invalid-argument",
            StateError::Unavailable(_) => "unavailable",
            StateError::Internal(_) | StateError::Aborted { .. } => "internal",
        }
    }

    /// The error itself, or the cause inside an [`StateError::Aborted`].
    pub fn root(&self) -> &StateError {
        match self {
            StateError::Aborted { source, .. } => source.root(),
            e => e,
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        StateError::InvalidArgument(msg.into())
    }

    pub(crate) fn corrupt(what: &str) -> Self {
        StateError::Internal(format!(
            "damaged record ({what}); the database file may be corrupt"
        ))
    }
}

/// Result of a state operation.
pub type Result<T, E = StateError> = std::result::Result<T, E>;
