//! Plain data types of the state API: scopes, conditions, transaction ops and
//! their results. They mirror `wit/` one to one.

use std::time::Duration;

/// The kind of data a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// Bytes (JSON in the SDK); counters are values too.
    Value,
    /// A hash of field → bytes.
    Map,
    /// A list of byte strings.
    List,
}

impl KeyKind {
    /// Lower-case name, as in the WIT and error messages.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Value => "value",
            KeyKind::Map => "map",
            KeyKind::List => "list",
        }
    }
}

/// Where a key lives. Destroying an instance deletes its scope and its sessions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Shared by every instance of the account.
    Account(String),
    /// Private to one instance.
    Instance(String),
    /// One session of an instance; dies at its TTL.
    Session {
        /// The owning instance.
        instance: String,
        /// The session id.
        id: String,
    },
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Account(a) => write!(f, "account {a:?}"),
            Scope::Instance(i) => write!(f, "instance {i:?}"),
            Scope::Session { instance, id } => write!(f, "session {id} of instance {instance:?}"),
        }
    }
}

/// A write (or `check`) precondition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The key must exist with exactly this etag.
    IfMatch(String),
    /// The key must not exist (first write).
    IfAbsent,
    /// The key must exist.
    IfExists,
}

/// When `expire` applies (Redis EXPIRE flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpireMode {
    /// Always.
    #[default]
    Always,
    /// Only if the key has no TTL.
    Nx,
    /// Only if the key has a TTL.
    Xx,
    /// Only if the new expiry is later (no TTL counts as infinite).
    Gt,
    /// Only if the new expiry is sooner (no TTL counts as infinite).
    Lt,
}

/// Options of `set`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetOptions {
    /// Expire the key after this long; `None` = no TTL (and clears an old one).
    pub ttl: Option<Duration>,
    /// Only write if this holds.
    pub condition: Option<Condition>,
}

/// A moment of the store, for reads a caller keeps
/// ([`Store::read_stamp`](super::Store::read_stamp)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadStamp {
    /// Changes with every commit and never returns to an earlier value.
    pub generation: u64,
    /// The store's clock at the stamp (Unix ms).
    pub now_ms: u64,
}

/// A value with its etag and remaining TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The bytes stored.
    pub value: Vec<u8>,
    /// The key's current etag.
    pub etag: String,
    /// Remaining time to live, if any.
    pub ttl: Option<Duration>,
    /// When the key expires (Unix ms on the store's clock; it still lives
    /// during that millisecond), if it does.
    pub expires_at_ms: Option<u64>,
}

/// What a key is, without its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Value, map or list.
    pub kind: KeyKind,
    /// The key's current etag.
    pub etag: String,
    /// Remaining time to live, if any.
    pub ttl: Option<Duration>,
    /// When it expires (ms since the epoch, the store's clock), if it does.
    pub expires_at_ms: Option<u64>,
}

/// A request for one page of ordered key listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyListing {
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// Only keys ≥ this.
    pub start: Option<String>,
    /// Only keys < this.
    pub end: Option<String>,
    /// Descending order.
    pub reverse: bool,
    /// Page size (default and maximum: the configured page limit).
    pub limit: Option<u32>,
    /// Continue after the page that returned this cursor.
    pub cursor: Option<String>,
}

/// One page of keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// Keys in order.
    pub keys: Vec<String>,
    /// Pass back to get the next page; `None` when there is none.
    pub cursor: Option<String>,
}

/// One page of a `map-scan`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// `"0"` when the scan is complete.
    pub cursor: String,
    /// Field/value pairs in field order.
    pub entries: Vec<(String, Vec<u8>)>,
}

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The owning instance.
    pub instance: String,
    /// 128-bit random, URL-safe id (22 characters).
    pub id: String,
    /// Unix time in milliseconds at which the session dies.
    pub expires_at_ms: u64,
}

/// What one transaction operation does to its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// Overwrite with a value (any old type), optionally with a TTL.
    Set {
        /// The bytes.
        value: Vec<u8>,
        /// Optional TTL; none clears any old TTL.
        ttl: Option<Duration>,
    },
    /// Delete the key (any type). Output: whether it existed.
    Delete,
    /// Add to a counter. Output: the new value.
    Increment(i64),
    /// Set a TTL in seconds (≤ 0 deletes). Output: whether it applied.
    Expire {
        /// Seconds from now.
        seconds: i64,
        /// When to apply.
        mode: ExpireMode,
    },
    /// Remove the TTL. Output: whether there was one.
    Persist,
    /// Set map fields. Output: fields added.
    MapSet(Vec<(String, Vec<u8>)>),
    /// Delete map fields. Output: fields removed.
    MapDelete(Vec<String>),
    /// Add to a counter in a map field. Output: the new value.
    MapIncrement {
        /// The field.
        field: String,
        /// The amount.
        delta: i64,
    },
    /// Push at the tail. Output: new length.
    ListAppend(Vec<Vec<u8>>),
    /// Push at the head, LPUSH order. Output: new length.
    ListPrepend(Vec<Vec<u8>>),
    /// Pop up to n from the head. Output: the values.
    ListStartPop(u64),
    /// Pop up to n from the tail. Output: the values (tail first).
    ListEndPop(u64),
    /// Remove occurrences of a value (LREM). Output: removed.
    ListRemove {
        /// The value to remove.
        value: Vec<u8>,
        /// > 0 from the head, < 0 from the tail, 0 all.
        count: i64,
    },
    /// Keep only `start..=stop` (LTRIM indices).
    ListTrim {
        /// First index kept.
        start: i64,
        /// Last index kept.
        stop: i64,
    },
    /// Insert next to a pivot (LINSERT). Output: length, -1 no pivot, 0 no list.
    ListInsert {
        /// Before (true) or after the pivot.
        before: bool,
        /// The value to find.
        pivot: Vec<u8>,
        /// The value to insert.
        value: Vec<u8>,
    },
    /// Replace the item at an index (LSET).
    ListSet {
        /// Index, negative from the end.
        index: i64,
        /// The new item.
        value: Vec<u8>,
    },
    /// Assert the op's condition without writing.
    Check,
}

impl OpKind {
    /// The operation's name, as in the WIT (`set`, `map-set`, …).
    pub fn name(&self) -> &'static str {
        match self {
            OpKind::Set { .. } => "set",
            OpKind::Delete => "delete",
            OpKind::Increment(_) => "increment",
            OpKind::Expire { .. } => "expire",
            OpKind::Persist => "persist",
            OpKind::MapSet(_) => "map-set",
            OpKind::MapDelete(_) => "map-delete",
            OpKind::MapIncrement { .. } => "map-increment",
            OpKind::ListAppend(_) => "list-append",
            OpKind::ListPrepend(_) => "list-prepend",
            OpKind::ListStartPop(_) => "list-start-pop",
            OpKind::ListEndPop(_) => "list-end-pop",
            OpKind::ListRemove { .. } => "list-remove",
            OpKind::ListTrim { .. } => "list-trim",
            OpKind::ListInsert { .. } => "list-insert",
            OpKind::ListSet { .. } => "list-set",
            OpKind::Check => "check",
        }
    }
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The key it acts on.
    pub key: String,
    /// What it does.
    pub kind: OpKind,
    /// Only apply (and let the transaction go on) if this holds.
    pub condition: Option<Condition>,
}

impl Op {
    /// An unconditional op.
    pub fn new(key: impl Into<String>, kind: OpKind) -> Self {
        Op {
            key: key.into(),
            kind,
            condition: None,
        }
    }

    /// The same op with a condition.
    pub fn when(mut self, condition: Condition) -> Self {
        self.condition = Some(condition);
        self
    }
}

/// The output of one op.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OpOutput {
    /// Nothing to report.
    #[default]
    None,
    /// A yes/no answer.
    Bool(bool),
    /// A count, length or counter value.
    Int(i64),
    /// Popped values.
    Values(Vec<Vec<u8>>),
}

/// The result of one op of a committed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpResult {
    /// The key's etag after the op; `None` if the key no longer exists.
    pub etag: Option<String>,
    /// What the op returns.
    pub output: OpOutput,
}
