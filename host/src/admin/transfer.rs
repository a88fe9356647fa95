//! Export and import of state as JSON lines (`wasm-state export|import`),
//! between data dirs and between engines (redb ↔ Redis).
//!
//! # Format
//!
//! UTF-8 text, one JSON object per line (blank lines are ignored):
//!
//! 1. the header, first: `{"wasm_state_export":2,"exported_at_ms":N,"engine":"redb"|"redis"}`
//!    (`wasm_state_export` is the format version; this module writes 2
//!    and reads 1 and 2);
//! 2. `{"instance":"NAME","account":"ACCOUNT"}` — an instance, registered
//!    to its account on import;
//! 3. `{"session":"ID","instance":"NAME","expires_at_ms":N}` — a live
//!    session, re-created with the same id and the same absolute expiry
//!    (after its instance's line);
//! 4. a key: `{"scope":S,"key":"K","type":"value"|"map"|"list","expires_at_ms":N|null,…}`
//!    with `"value":V` (a value), `"fields":[["F",V],…]` (a map, in field
//!    order) or `"items":[V,…]` (a list, head first). `S` is
//!    `{"instance":"X"}`, `{"instance":"X","session":"ID"}` or
//!    `{"account":"A"}`. A map or list of more than 1000 elements carries
//!    the first 1000 on its line; the next lines, each for the same scope
//!    and key, carry `"more":true` and the next (up to) 1000 in order
//!    (`"fields"` or `"items"` only), so no line is unbounded;
//! 5. last (version 2): `{"end":true,"lines":N,"instances":N,"sessions":N,"keys":N,"skipped_expired":N}`
//!    — `lines` counts the lines between header and end; the rest are the
//!    export's counts — and, from a store whose etags come from one
//!    store-wide counter (redb), `"etag_floor":N`, the last etag version
//!    it had issued when the export ended. An export cut short (one that
//!    failed, or a copy that stopped) has no such line, or one after other
//!    lines that do not add up, and is refused whole. Version 1 files (from
//!    before the end line) are read without it.
//!
//! `V` is a JSON string when the bytes are valid UTF-8, else
//! `{"base64":"…"}` (standard alphabet, padded). Times are absolute: ms
//! since the epoch by the store's clock ([`Store::now_ms`]). Fields other
//! than these are ignored.
//!
//! An export writes, per instance: its line, then each live session's line
//! followed by that session's keys, then the instance scope's keys (keys in
//! key order, instances and sessions by name and id). [`Selection::All`]
//! then adds the account scopes of the accounts its instances belong to:
//! the store keeps no list of accounts, so an account scope no instance
//! belongs to is not exported (export it by name with
//! [`Selection::Account`]). An export of a store in use is not a snapshot:
//! each key is read as it is reached, and a key or session that expires or
//! is deleted before it is read is left out (and counted).
//!
//! # Import
//!
//! [`parse`] reads and checks the whole input first; [`import`] then checks
//! it against the target store's limits and registrations, still before
//! writing anything. Any bad line is an error naming its line, and nothing
//! is written: text that is not JSON or not an object, a missing header, a
//! second header or another format version, an unknown line or `type`,
//! bad base64, an empty or invalid name, an id that is not a session id,
//! an empty `fields`/`items`, a `more` line that does not directly follow a
//! line of the same map or list, a session or key of an instance or
//! session that no earlier line declares, an instance declared with two
//! accounts or registered to another account in the target, a key, field,
//! value or session TTL over the target's limits, an expiry past what the
//! store can hold, a version 2 input without its end line or with lines
//! after it.
//!
//! Then the records are applied in order, after the target's etag counter
//! is raised past the export's `etag_floor` (so a client's etag from the
//! source store never matches a key written here; a store whose etags
//! carry a nonce per owner needs nothing):
//! - an instance is registered (already registered to the same account:
//!   nothing happens);
//! - a session is re-created with its id, live until its expiry (a live
//!   session of that id moves to that expiry and keeps its other keys);
//! - each key is replaced atomically by its first line: one commit deletes
//!   what the key held and writes the line's elements and its TTL (a line
//!   over 16 MiB, or over about `max_ops`² elements, takes more commits,
//!   the later ones only while the key still exists); `more`
//!   lines are appended in following commits, each only while the key
//!   still exists.
//!
//! A key or session whose expiry has passed is skipped and counted in
//! [`ImportCounts::skipped_expired`] (so are the keys of a skipped
//! session). A value's TTL is re-created to the millisecond; a map's or
//! list's is set in whole seconds, rounded up: it may expire up to a second
//! later than in the source, never earlier. Keys of the target that are not
//! in the input are left alone.
//!
//! Applying is idempotent: importing the same input again gives the same
//! state, so an import interrupted (or stopped by an error such as a full
//! quota) is resumed by running it again.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as J, json};

use crate::store::{
    ExpireMode, KeyKind, KeyListing, Op, OpKind, Scope, ScopeHandle, StateError, Store, check_name,
};

/// Elements of a map or list per line.
pub const CHUNK: usize = 1000;

/// The latest expiry an import takes (ms): a day short of what a store
/// keeps, so the time left re-created from it always fits.
const LATEST_MS: u64 = i64::MAX as u64 - 86_400_000;

/// Most bytes of elements one import commit carries (at least one op).
const COMMIT_BYTES: usize = 16 << 20;

/// The format version this module writes (it reads this and 1).
const VERSION: u64 = 2;

/// The first format version with an end line.
const END_SINCE: u64 = 2;

/// What to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// An instance with its sessions.
    Instance(String),
    /// An account's shared scope.
    Account(String),
    /// Every instance with its sessions, and their accounts' scopes.
    All,
}

/// Why an export or import failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// A line of the input is not valid; nothing was imported.
    #[error("line {line}: {message}; nothing was imported")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong, and what was expected.
        message: String,
    },
    /// The store refused an operation.
    #[error(transparent)]
    State(#[from] StateError),
    /// Writing the output failed.
    #[error("cannot write the export: {0}")]
    Output(String),
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportCounts {
    /// Instances.
    pub instances: u64,
    /// Sessions.
    pub sessions: u64,
    /// Keys.
    pub keys: u64,
    /// Keys and sessions listed that had expired (or were deleted) by the
    /// time they were read.
    pub skipped_expired: u64,
}

/// What an import applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportCounts {
    /// Instances registered.
    pub instances: u64,
    /// Sessions re-created.
    pub sessions: u64,
    /// Keys written.
    pub keys: u64,
    /// Keys and sessions skipped because they had expired (with the keys
    /// of expired sessions).
    pub skipped_expired: u64,
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An instance.
    Instance {
        /// Its line in the input (1-based).
        line: usize,
        /// Its name.
        name: String,
        /// Its account.
        account: String,
    },
    /// A session.
    Session {
        /// Its line in the input (1-based).
        line: usize,
        /// Its instance.
        instance: String,
        /// Its id.
        id: String,
        /// When it expires.
        expires_at_ms: u64,
    },
    /// The source store's last etag version (from the end line; parsed
    /// first, so it is applied before any key).
    EtagFloor {
        /// Its line in the input (1-based).
        line: usize,
        /// The version.
        floor: u64,
    },
    /// A key (or, with `more`, the next elements of one).
    Key {
        /// Its line in the input (1-based).
        line: usize,
        /// Its scope.
        scope: Scope,
        /// The key.
        key: String,
        /// Its content (or the next part of it).
        content: Content,
        /// When it expires (`None` on a `more` line).
        expires_at_ms: Option<u64>,
        /// A continuation of the previous line of this key.
        more: bool,
    },
}

impl Record {
    /// The record's line in the input (1-based).
    pub fn line(&self) -> usize {
        match self {
            Record::Instance { line, .. }
            | Record::Session { line, .. }
            | Record::EtagFloor { line, .. }
            | Record::Key { line, .. } => *line,
        }
    }
}

/// A key's content (or part of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A value.
    Value(Vec<u8>),
    /// Map fields, in order.
    Map(Vec<(String, Vec<u8>)>),
    /// List items, head first.
    List(Vec<Vec<u8>>),
}

impl Content {
    fn kind(&self) -> KeyKind {
        match self {
            Content::Value(_) => KeyKind::Value,
            Content::Map(_) => KeyKind::Map,
            Content::List(_) => KeyKind::List,
        }
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

// ---- export ----

fn encode(bytes: &[u8]) -> J {
    match std::str::from_utf8(bytes) {
        Ok(s) => J::String(s.to_string()),
        Err(_) => json!({ "base64": b64().encode(bytes) }),
    }
}

fn scope_json(scope: &Scope) -> J {
    match scope {
        Scope::Instance(i) => json!({ "instance": i }),
        Scope::Session { instance, id } => json!({ "instance": instance, "session": id }),
        Scope::Account(a) => json!({ "account": a }),
    }
}

/// One emitted line's progress: ready once the line has been handed on —
/// for a client, once its response has room for it (so a slow reader slows
/// the producer down instead of making it buffer the whole store).
pub type Emitted = std::pin::Pin<Box<dyn Future<Output = Result<(), TransferError>> + Send>>;

/// Where streamed lines go: called once per line (without its newline).
pub type Emit<'a> = dyn FnMut(String) -> Emitted + Send + 'a;

/// An [`Emitted`] that is already settled (for sinks that write at once).
pub fn emitted(result: Result<(), TransferError>) -> Emitted {
    Box::pin(std::future::ready(result))
}

struct Exporter<'a, 'e> {
    store: &'a Store,
    emit: &'a mut Emit<'e>,
    counts: ExportCounts,
    /// Lines written after the header.
    lines: u64,
}

impl Exporter<'_, '_> {
    async fn line(&mut self, v: J) -> Result<(), TransferError> {
        (self.emit)(v.to_string()).await?;
        self.lines += 1;
        Ok(())
    }

    /// The end line: how many lines came before it, the counts, and the
    /// store's etag floor (read now, after every key was read).
    async fn end(&mut self) -> Result<(), TransferError> {
        let c = &self.counts;
        let mut end = json!({
            "end": true,
            "lines": self.lines,
            "instances": c.instances,
            "sessions": c.sessions,
            "keys": c.keys,
            "skipped_expired": c.skipped_expired,
        });
        if let Some(floor) = self.store.etag_floor().await? {
            end["etag_floor"] = floor.into();
        }
        (self.emit)(end.to_string()).await
    }

    /// A key's first line (with its type and expiry) or a `more` line.
    async fn key_line(
        &mut self,
        scope: &Scope,
        key: &str,
        head: Option<(KeyKind, Option<u64>)>,
        name: &str,
        content: J,
    ) -> Result<(), TransferError> {
        let mut l = Map::new();
        l.insert("scope".into(), scope_json(scope));
        l.insert("key".into(), key.into());
        match head {
            Some((kind, expires)) => {
                l.insert("type".into(), kind.name().into());
                l.insert("expires_at_ms".into(), expires.into());
            }
            None => {
                l.insert("more".into(), true.into());
            }
        }
        l.insert(name.into(), content);
        self.line(J::Object(l)).await
    }

    /// Write one key; `false` if it was gone by the time it was read.
    async fn key(
        &mut self,
        scope: &Scope,
        h: &ScopeHandle,
        key: &str,
    ) -> Result<bool, TransferError> {
        let Some(info) = h.info(key).await? else {
            return Ok(false);
        };
        let head = (info.kind, info.expires_at_ms);
        match info.kind {
            KeyKind::Value => {
                let Some(v) = h.get(key).await? else {
                    return Ok(false);
                };
                self.key_line(scope, key, Some(head), "value", encode(&v))
                    .await?;
            }
            KeyKind::Map => {
                // Scan pages as they come, lines of exactly CHUNK fields.
                let mut buf: Vec<(String, Vec<u8>)> = Vec::new();
                let mut first = true;
                let mut cursor = "0".to_string();
                loop {
                    let page = h.map_scan(key, &cursor, None, CHUNK as u32).await?;
                    buf.extend(page.entries);
                    let done = page.cursor == "0";
                    while buf.len() >= CHUNK || (done && !buf.is_empty()) {
                        let rest = buf.split_off(buf.len().min(CHUNK));
                        let fields: Vec<J> =
                            buf.iter().map(|(f, v)| json!([f, encode(v)])).collect();
                        self.key_line(
                            scope,
                            key,
                            first.then_some(head),
                            "fields",
                            J::Array(fields),
                        )
                        .await?;
                        first = false;
                        buf = rest;
                    }
                    if done {
                        break;
                    }
                    cursor = page.cursor;
                }
                if first {
                    return Ok(false);
                }
            }
            KeyKind::List => {
                let mut at = 0u64;
                loop {
                    // Lines of CHUNK items, or fewer where so many are over
                    // the store's reply limit.
                    let items = h.list_page(key, at, CHUNK as u64).await?;
                    if items.is_empty() {
                        if at == 0 {
                            return Ok(false);
                        }
                        break;
                    }
                    let n = items.len();
                    let items: Vec<J> = items.iter().map(|v| encode(v)).collect();
                    self.key_line(
                        scope,
                        key,
                        (at == 0).then_some(head),
                        "items",
                        J::Array(items),
                    )
                    .await?;
                    at += n as u64;
                }
            }
        }
        Ok(true)
    }

    /// Every key of a scope, in key order.
    async fn scope(&mut self, scope: &Scope, h: &ScopeHandle) -> Result<(), TransferError> {
        let mut cursor = None;
        loop {
            let page = h
                .keys(KeyListing {
                    cursor,
                    limit: Some(CHUNK as u32),
                    ..KeyListing::default()
                })
                .await?;
            for key in &page.keys {
                if self.key(scope, h, key).await? {
                    self.counts.keys += 1;
                } else {
                    self.counts.skipped_expired += 1;
                }
            }
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(()),
            }
        }
    }

    async fn instance(&mut self, name: &str, account: &str) -> Result<(), TransferError> {
        self.line(json!({ "instance": name, "account": account }))
            .await?;
        self.counts.instances += 1;
        for s in self.store.list_sessions(name).await? {
            // Ended or expired since it was listed: left out.
            let Ok(info) = self.store.session_info(name, &s.id).await else {
                self.counts.skipped_expired += 1;
                continue;
            };
            self.line(json!({
                "session": s.id,
                "instance": name,
                "expires_at_ms": info.expires_at_ms,
            }))
            .await?;
            self.counts.sessions += 1;
            let scope = Scope::Session {
                instance: name.into(),
                id: s.id.clone(),
            };
            let h = ScopeHandle::new(self.store.clone(), scope.clone());
            self.scope(&scope, &h).await?;
        }
        let h = self.store.instance(name)?;
        self.scope(&Scope::Instance(name.into()), &h).await
    }
}

/// Export `selection` of `store`, one line at a time (without its newline)
/// to `emit`; an error from `emit` stops the export and is returned.
pub async fn export(
    store: &Store,
    selection: &Selection,
    emit: &mut Emit<'_>,
) -> Result<ExportCounts, TransferError> {
    let mut x = Exporter {
        store,
        emit,
        counts: ExportCounts::default(),
        lines: 0,
    };
    let header = json!({
        "wasm_state_export": VERSION,
        "exported_at_ms": store.now_ms(),
        "engine": store.engine_name(),
    })
    .to_string();
    match selection {
        Selection::Instance(name) => {
            let Some(info) = store.instance_info(name).await? else {
                return Err(StateError::InvalidArgument(format!(
                    "no instance named {name:?} to export; `wasm-state instances list` shows them"
                ))
                .into());
            };
            (x.emit)(header).await?;
            x.instance(name, &info.account).await?;
        }
        Selection::Account(a) => {
            let h = store.account(a)?;
            (x.emit)(header).await?;
            x.scope(&Scope::Account(a.clone()), &h).await?;
        }
        Selection::All => {
            (x.emit)(header).await?;
            let instances = store.list_instances().await?;
            let mut accounts: Vec<String> = Vec::new();
            for i in &instances {
                x.instance(&i.name, &i.account).await?;
                accounts.push(i.account.clone());
            }
            accounts.sort();
            accounts.dedup();
            for a in accounts {
                let h = store.account(&a)?;
                x.scope(&Scope::Account(a.clone()), &h).await?;
            }
        }
    }
    x.end().await?;
    Ok(x.counts)
}

// ---- parse ----

/// What the JSON of a value should look like, for messages.
const V_SHAPE: &str = "a string or {\"base64\":\"…\"}";

fn decode(v: &J) -> Result<Vec<u8>, String> {
    match v {
        J::String(s) => Ok(s.as_bytes().to_vec()),
        J::Object(o) if o.len() == 1 && o.contains_key("base64") => match &o["base64"] {
            J::String(s) => b64().decode(s).map_err(|e| {
                format!("bad base64 {s:?} ({e}); expected standard base64 with padding")
            }),
            other => Err(format!("\"base64\" must be a string, not {other}")),
        },
        other => Err(format!("{other} is not {V_SHAPE}")),
    }
}

fn text(o: &Map<String, J>, name: &str) -> Result<String, String> {
    match o.get(name) {
        Some(J::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(other) => Err(format!(
            "\"{name}\" must be a non-empty string, not {other}"
        )),
        None => Err(format!("\"{name}\" is missing")),
    }
}

/// A name that becomes part of a scope (account, instance).
fn name(o: &Map<String, J>, field: &str, what: &str) -> Result<String, String> {
    let n = text(o, field)?;
    check_name(what, &n).map_err(|e| e.to_string())?;
    Ok(n)
}

fn time(o: &Map<String, J>, name: &str) -> Result<Option<u64>, String> {
    match o.get(name) {
        None | Some(J::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            // The latest time a store keeps (its times are i64 ms), less a
            // day: a TTL re-created from it must fit whatever the clock.
            Some(t) if t <= LATEST_MS => Ok(Some(t)),
            Some(t) => Err(format!(
                "\"{name}\" {t} is later than any time a store keeps ({LATEST_MS})"
            )),
            None => Err(format!(
                "\"{name}\" must be a time in ms since the epoch (or null), not {v}"
            )),
        },
    }
}

/// Is `id` shaped like a session id (22 URL-safe base64 characters)?
fn session_id(id: &str) -> bool {
    id.len() == 22
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// What parsing has seen so far.
#[derive(Default)]
struct Seen {
    /// Instances declared, with their accounts.
    instances: HashMap<String, String>,
    /// Sessions declared.
    sessions: HashSet<(String, String)>,
    /// The scope, key and kind of the previous line if it was a map or
    /// list line (a `more` line must continue it).
    last: Option<(Scope, String, KeyKind)>,
}

fn parse_scope(s: &J, seen: &Seen) -> Result<Scope, String> {
    let shape =
        "{\"instance\":\"X\"}, {\"instance\":\"X\",\"session\":\"ID\"} or {\"account\":\"A\"}";
    let J::Object(s) = s else {
        return Err(format!("\"scope\" {s} is not {shape}"));
    };
    let scope = match (
        s.len(),
        s.contains_key("session"),
        s.contains_key("account"),
    ) {
        (1, false, false) if s.contains_key("instance") => {
            Scope::Instance(name(s, "instance", "instance")?)
        }
        (2, true, false) if s.contains_key("instance") => Scope::Session {
            instance: name(s, "instance", "instance")?,
            id: text(s, "session")?,
        },
        (1, false, true) => Scope::Account(name(s, "account", "account")?),
        _ => return Err(format!("\"scope\" {} is not {shape}", J::Object(s.clone()))),
    };
    match &scope {
        Scope::Instance(i) if !seen.instances.contains_key(i) => Err(format!(
            "a key of instance {i:?}, which no earlier line declares; \
             expected its {{\"instance\":{i:?},\"account\":…}} line before its keys"
        )),
        Scope::Session { instance, id }
            if !seen.sessions.contains(&(instance.clone(), id.clone())) =>
        {
            Err(format!(
                "a key of session {id:?} of instance {instance:?}, which no earlier line declares; \
                 expected its {{\"session\":…}} line before its keys"
            ))
        }
        _ => Ok(scope),
    }
}

fn parse_key(o: &Map<String, J>, seen: &Seen, line: usize) -> Result<Record, String> {
    let scope = parse_scope(&o["scope"], seen)?;
    let key = text(o, "key")?;
    let more = match o.get("more") {
        None | Some(J::Bool(false)) => false,
        Some(J::Bool(true)) => true,
        Some(other) => return Err(format!("\"more\" must be true or false, not {other}")),
    };
    let typed = match o.get("type") {
        None => None,
        Some(J::String(t)) if t == "value" => Some(KeyKind::Value),
        Some(J::String(t)) if t == "map" => Some(KeyKind::Map),
        Some(J::String(t)) if t == "list" => Some(KeyKind::List),
        Some(other) => {
            return Err(format!(
                "unknown \"type\" {other}; expected \"value\", \"map\" or \"list\""
            ));
        }
    };
    let kind = if more {
        match &seen.last {
            Some((s, k, kind)) if *s == scope && *k == key => {
                if typed.is_some_and(|t| t != *kind) {
                    return Err(format!(
                        "a \"more\" line of type {:?} continues a {}",
                        typed.map_or("", KeyKind::name),
                        kind.name()
                    ));
                }
                *kind
            }
            _ => {
                return Err(format!(
                    "\"more\" for key {key:?} of {scope}, but the line before is not a line of that map or list; \
                     a \"more\" line must directly follow the lines of its key"
                ));
            }
        }
    } else {
        typed.ok_or("\"type\" is missing; expected \"value\", \"map\" or \"list\"")?
    };
    let content = match kind {
        KeyKind::Value => Content::Value(decode(
            o.get("value")
                .ok_or(format!("\"value\" is missing; expected {V_SHAPE}"))?,
        )?),
        KeyKind::Map => {
            let shape = format!("an array of [\"field\", value] pairs, each value {V_SHAPE}");
            let Some(J::Array(fields)) = o.get("fields") else {
                return Err(format!("\"fields\" must be {shape}"));
            };
            if fields.is_empty() {
                return Err(format!(
                    "\"fields\" is empty; expected {shape}, at least one"
                ));
            }
            Content::Map(
                fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| match f.as_array().map(Vec::as_slice) {
                        Some([J::String(name), v]) => Ok((name.clone(), decode(v)?)),
                        _ => Err(format!("field {i}: {f} is not a [\"field\", value] pair")),
                    })
                    .collect::<Result<_, String>>()?,
            )
        }
        KeyKind::List => {
            let Some(J::Array(items)) = o.get("items") else {
                return Err(format!(
                    "\"items\" must be an array of values, each {V_SHAPE}"
                ));
            };
            if items.is_empty() {
                return Err("\"items\" is empty; expected at least one item".into());
            }
            Content::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| decode(v).map_err(|e| format!("item {i}: {e}")))
                    .collect::<Result<_, _>>()?,
            )
        }
    };
    Ok(Record::Key {
        line,
        scope,
        key,
        content,
        expires_at_ms: if more {
            None
        } else {
            time(o, "expires_at_ms")?
        },
        more,
    })
}

fn parse_line(o: &Map<String, J>, seen: &Seen, line: usize) -> Result<Record, String> {
    if o.contains_key("wasm_state_export") {
        return Err("a second header; an input holds one export".into());
    }
    if o.contains_key("scope") {
        return parse_key(o, seen, line);
    }
    if o.contains_key("session") {
        let id = text(o, "session")?;
        if !session_id(&id) {
            return Err(format!(
                "{id:?} is not a session id; expected 22 URL-safe base64 characters"
            ));
        }
        let instance = name(o, "instance", "instance")?;
        if !seen.instances.contains_key(&instance) {
            return Err(format!(
                "session {id:?} of instance {instance:?}, which no earlier line declares; \
                 expected its {{\"instance\":{instance:?},\"account\":…}} line first"
            ));
        }
        let expires_at_ms = time(o, "expires_at_ms")?
            .ok_or("\"expires_at_ms\" is missing; a session line needs its expiry")?;
        return Ok(Record::Session {
            line,
            instance,
            id,
            expires_at_ms,
        });
    }
    if o.contains_key("instance") {
        let name_ = name(o, "instance", "instance")?;
        let account = name(o, "account", "account")?;
        if let Some(other) = seen.instances.get(&name_)
            && *other != account
        {
            return Err(format!(
                "instance {name_:?} of account {account:?}, but an earlier line puts it in account {other:?}"
            ));
        }
        return Ok(Record::Instance {
            line,
            name: name_,
            account,
        });
    }
    Err(
        "not a line of an export: expected an instance ({\"instance\",\"account\"}), \
         a session ({\"session\",…}) or a key ({\"scope\",\"key\",…})"
            .into(),
    )
}

/// Parse and check a whole export (see the module docs); the first bad line
/// is an error and nothing is returned.
pub fn parse(text: &str) -> Result<Vec<Record>, TransferError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut seen = Seen::default();
    let mut header = false;
    // The version read, and where its end line was (version 2).
    let mut version = 0;
    let mut ended: Option<usize> = None;
    let mut last = 0;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let bad = |message: String| TransferError::Line { line: n, message };
        if line.trim().is_empty() {
            continue;
        }
        last = n;
        if let Some(end) = ended {
            return Err(bad(format!(
                "a line after the end line (line {end}); an export ends with its end line"
            )));
        }
        let v: J = serde_json::from_str(line)
            .map_err(|e| bad(format!("not JSON ({e}); expected one JSON object per line")))?;
        let J::Object(o) = v else {
            return Err(bad(format!(
                "{} is not a JSON object; expected one JSON object per line",
                short(line)
            )));
        };
        if !header {
            match o.get("wasm_state_export") {
                Some(v) if v.as_u64().is_some_and(|v| (1..=VERSION).contains(&v)) => {
                    header = true;
                    version = v.as_u64().unwrap_or(VERSION);
                    continue;
                }
                Some(v) => {
                    return Err(bad(format!(
                        "export format version {v}; this wasm-state reads versions 1 to {VERSION}"
                    )));
                }
                None => {
                    return Err(bad(
                        "not a wasm-state export: the first line must be its header \
                         {\"wasm_state_export\":2,…}"
                            .into(),
                    ));
                }
            }
        }
        if version >= END_SINCE && o.contains_key("end") {
            let lines = o.get("lines").and_then(J::as_u64);
            if o.get("end") != Some(&J::Bool(true)) || lines.is_none() {
                return Err(bad("an end line is {\"end\":true,\"lines\":N,…}".into()));
            }
            if lines != Some(out.len() as u64) {
                return Err(bad(format!(
                    "the end line counts {} lines, but {} came before it: lines are missing \
                     (the export was damaged or put together from parts)",
                    lines.unwrap_or(0),
                    out.len()
                )));
            }
            match o.get("etag_floor") {
                None => {}
                Some(v) => match v.as_u64() {
                    // Applied before any key: first. (A store's versions
                    // count up by one per write: never near 2^63.)
                    Some(floor) if floor <= i64::MAX as u64 => {
                        out.insert(0, Record::EtagFloor { line: n, floor })
                    }
                    _ => {
                        return Err(bad(format!(
                            "\"etag_floor\" must be a whole number up to {}, not {v}",
                            i64::MAX
                        )));
                    }
                },
            }
            ended = Some(n);
            continue;
        }
        let r = parse_line(&o, &seen, n).map_err(bad)?;
        seen.last = None;
        match &r {
            Record::Instance { name, account, .. } => {
                seen.instances.insert(name.clone(), account.clone());
            }
            Record::Session { instance, id, .. } => {
                seen.sessions.insert((instance.clone(), id.clone()));
            }
            Record::Key {
                scope,
                key,
                content,
                ..
            } => {
                if content.kind() != KeyKind::Value {
                    seen.last = Some((scope.clone(), key.clone(), content.kind()));
                }
            }
            Record::EtagFloor { .. } => {}
        }
        out.push(r);
    }
    if !header {
        return Err(TransferError::Line {
            line: 1,
            message: "the input is empty; an export starts with its header line \
                      {\"wasm_state_export\":2,…}"
                .into(),
        });
    }
    if version >= END_SINCE && ended.is_none() {
        return Err(TransferError::Line {
            line: last + 1,
            message: format!(
                "the export ends after line {last} without its end line \
                 {{\"end\":true,…}}: it was cut short (an export that failed or was \
                 stopped, or a partial copy); export again"
            ),
        });
    }
    Ok(out)
}

/// The start of a long line, for messages.
fn short(line: &str) -> String {
    match line.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

// ---- import ----

/// Check the records against the target's limits and registrations,
/// before anything is written ([`import`] does it first too).
pub async fn check(store: &Store, records: &[Record]) -> Result<(), TransferError> {
    let limits = store.limits();
    let now = store.now_ms();
    let mut known: HashSet<&str> = HashSet::new();
    for r in records {
        let bad = |message: String| TransferError::Line {
            line: r.line(),
            message,
        };
        match r {
            Record::Instance { name, account, .. } => {
                if !known.insert(name.as_str()) {
                    continue;
                }
                if let Some(info) = store.instance_info(name).await?
                    && info.account != *account
                {
                    return Err(bad(format!(
                        "instance {name:?} belongs to account {:?} in this store, not {account:?}; \
                         an instance keeps its account for life (destroy it first, or import it under another name)",
                        info.account
                    )));
                }
            }
            Record::EtagFloor { .. } => {}
            Record::Session {
                id, expires_at_ms, ..
            } => {
                if *expires_at_ms > now {
                    limits
                        .check_session_ttl(Duration::from_millis(expires_at_ms - now))
                        .map_err(|e| bad(format!("session {id}: {e}")))?;
                }
            }
            Record::Key {
                scope,
                key,
                content,
                ..
            } => {
                let what = |e: StateError| bad(format!("key {:?} of {scope}: {e}", short(key)));
                limits.check_key(key).map_err(what)?;
                match content {
                    Content::Value(v) => limits.check_value(v).map_err(what)?,
                    Content::Map(fields) => {
                        for (f, v) in fields {
                            limits.check_field(f).map_err(what)?;
                            limits.check_value(v).map_err(what)?;
                        }
                    }
                    Content::List(items) => {
                        for v in items {
                            limits.check_value(v).map_err(what)?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn op_bytes(op: &Op) -> usize {
    match &op.kind {
        OpKind::Set { value, .. } => value.len(),
        OpKind::MapSet(fields) => fields.iter().map(|(f, v)| f.len() + v.len()).sum(),
        OpKind::ListAppend(items) => items.iter().map(Vec::len).sum(),
        _ => 0,
    }
}

/// Split `elements` into groups of at most `max` elements and (but for a
/// group of one) at most [`COMMIT_BYTES`].
fn groups<T>(elements: Vec<T>, max: usize, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut bytes = 0;
    for e in elements {
        let b = size(&e);
        if !cur.is_empty() && (cur.len() >= max || bytes + b > COMMIT_BYTES) {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        bytes += b;
        cur.push(e);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The ops that write `content` to `key`, each within the op limit (which
/// also counts map fields and list items).
fn content_ops(key: &str, content: Content, max_ops: usize) -> Vec<Op> {
    match content {
        Content::Value(value) => vec![Op::new(key, OpKind::Set { value, ttl: None })],
        Content::Map(fields) => groups(fields, max_ops, |(f, v)| f.len() + v.len())
            .into_iter()
            .map(|g| Op::new(key, OpKind::MapSet(g)))
            .collect(),
        Content::List(items) => groups(items, max_ops, Vec::len)
            .into_iter()
            .map(|g| Op::new(key, OpKind::ListAppend(g)))
            .collect(),
    }
}

/// How a key line went.
enum Applied {
    /// Written.
    Done,
    /// Its key (or session) was gone before all of it was written.
    Gone,
}

/// Is `e` the key or session having gone meanwhile (a continuation's
/// `if-exists`, a session that expired during the import)?
fn gone(e: &StateError) -> bool {
    matches!(e.root(), StateError::NotFound | StateError::NoSuchSession)
}

/// Write one key line: the first (replacing the key, in one commit when it
/// fits) or a `more` line (appending, while the key exists).
async fn apply_key(
    store: &Store,
    scope: Scope,
    key: &str,
    content: Content,
    expires_at_ms: Option<u64>,
    more: bool,
) -> Result<Applied, StateError> {
    let max_ops = store.limits().max_ops.max(1);
    let h = ScopeHandle::new(store.clone(), scope);
    let mut ops = content_ops(key, content, max_ops);
    if !more {
        let now = store.now_ms();
        let ttl_ms = expires_at_ms.map(|at| at.saturating_sub(now).max(1));
        match (ops.first_mut(), ttl_ms) {
            (
                Some(Op {
                    kind: OpKind::Set { ttl, .. },
                    ..
                }),
                Some(ms),
            ) => *ttl = Some(Duration::from_millis(ms)),
            // Whole seconds, rounded up, but never past the latest time the
            // store keeps (an expiry within a second of it).
            (Some(_), Some(ms)) => ops.insert(
                1,
                Op::new(
                    key,
                    OpKind::Expire {
                        seconds: ms.div_ceil(1000).min((i64::MAX as u64 - now) / 1000) as i64,
                        mode: ExpireMode::Always,
                    },
                ),
            ),
            _ => {}
        }
        // A map or list starts from nothing (a value's set replaces all).
        if !matches!(ops.first().map(|o| &o.kind), Some(OpKind::Set { .. })) {
            ops.insert(0, Op::new(key, OpKind::Delete));
        }
    }
    for (i, mut commit) in groups(ops, max_ops, op_bytes).into_iter().enumerate() {
        if more || i > 0 {
            // Only while the key lives: appending to an expired key would
            // create a partial one without its TTL.
            let first = commit.remove(0);
            commit.insert(0, first.when(crate::store::Condition::IfExists));
        }
        match h.commit(commit).await {
            Ok(_) => {}
            Err(e) if gone(&e) => return Ok(Applied::Gone),
            Err(e) => return Err(e),
        }
    }
    Ok(Applied::Done)
}

/// Apply parsed records to `store` (see the module docs): first checked
/// against the store's limits and registrations (a problem is a
/// [`TransferError::Line`] and nothing is written), then applied in order.
/// `progress` gets the number of records handled so far after each one.
pub async fn import(
    store: &Store,
    records: Vec<Record>,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<ImportCounts, TransferError> {
    check(store, &records).await?;
    let mut counts = ImportCounts::default();
    // Sessions skipped as expired: their keys are skipped too.
    let mut expired_sessions: HashSet<(String, String)> = HashSet::new();
    // The current key was skipped or is gone: skip its `more` lines.
    let mut skipping = false;
    for (done, r) in records.into_iter().enumerate() {
        match r {
            Record::EtagFloor { floor, .. } => store.raise_etag_floor(floor).await?,
            Record::Instance { name, account, .. } => {
                store.register_instance(&name, &account).await?;
                counts.instances += 1;
            }
            Record::Session {
                instance,
                id,
                expires_at_ms,
                ..
            } => {
                if expires_at_ms <= store.now_ms() {
                    expired_sessions.insert((instance, id));
                    counts.skipped_expired += 1;
                } else {
                    store.restore_session(&instance, &id, expires_at_ms).await?;
                    counts.sessions += 1;
                }
            }
            Record::Key {
                scope,
                key,
                content,
                expires_at_ms,
                more,
                ..
            } => {
                if more {
                    if !skipping
                        && let Applied::Gone =
                            apply_key(store, scope, &key, content, None, true).await?
                    {
                        skipping = true;
                    }
                } else {
                    let session_gone = match &scope {
                        Scope::Session { instance, id } => {
                            expired_sessions.contains(&(instance.clone(), id.clone()))
                        }
                        _ => false,
                    };
                    skipping = session_gone
                        || expires_at_ms.is_some_and(|at| at <= store.now_ms())
                        || matches!(
                            apply_key(store, scope, &key, content, expires_at_ms, false).await?,
                            Applied::Gone
                        );
                    if skipping {
                        counts.skipped_expired += 1;
                    } else {
                        counts.keys += 1;
                    }
                }
            }
        }
        progress(done as u64 + 1);
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "AAAAAAAAAAAAAAAAAAAAAA";

    fn lines(body: &[&str]) -> String {
        let mut s =
            String::from("{\"wasm_state_export\":1,\"exported_at_ms\":0,\"engine\":\"redb\"}\n");
        for l in body {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    fn line_of(text: &str) -> (usize, String) {
        match parse(text) {
            Err(TransferError::Line { line, message }) => (line, message),
            other => panic!("expected a line error, got {other:?}"),
        }
    }

    #[test]
    fn a_good_input_parses() {
        let text = lines(&[
            r#"{"instance":"shop","account":"acme"}"#,
            &format!(r#"{{"session":"{ID}","instance":"shop","expires_at_ms":5}}"#),
            &format!(
                r#"{{"scope":{{"instance":"shop","session":"{ID}"}},"key":"cart","type":"list","expires_at_ms":null,"items":["a",{{"base64":"AP8="}}]}}"#
            ),
            &format!(
                r#"{{"scope":{{"instance":"shop","session":"{ID}"}},"key":"cart","more":true,"items":["b"]}}"#
            ),
            "",
            r#"{"scope":{"account":"acme"},"key":"m","type":"map","expires_at_ms":9,"fields":[["f","v"]]}"#,
            r#"{"scope":{"instance":"shop"},"key":"v","type":"value","expires_at_ms":null,"value":""}"#,
        ]);
        let r = parse(&text).unwrap();
        assert_eq!(r.len(), 6);
        assert_eq!(r[5].line(), 8);
        assert_eq!(
            r[2],
            Record::Key {
                line: 4,
                scope: Scope::Session {
                    instance: "shop".into(),
                    id: ID.into()
                },
                key: "cart".into(),
                content: Content::List(vec![b"a".to_vec(), vec![0, 255]]),
                expires_at_ms: None,
                more: false,
            }
        );
    }

    #[test]
    fn bad_lines_are_named() {
        let inst = r#"{"instance":"shop","account":"acme"}"#;
        let cases: &[(&[&str], usize, &str)] = &[
            (&[inst, "{nope"], 3, "not JSON"),
            (&[inst, "[1]"], 3, "not a JSON object"),
            (&[r#"{"what":1}"#], 2, "not a line of an export"),
            (
                &[r#"{"scope":{"instance":"x"},"key":"k","type":"value","value":"v"}"#],
                2,
                "no earlier line declares",
            ),
            (
                &[
                    inst,
                    r#"{"scope":{"instance":"shop"},"key":"k","type":"set","value":"v"}"#,
                ],
                3,
                "unknown \"type\"",
            ),
            (
                &[
                    inst,
                    r#"{"scope":{"instance":"shop"},"key":"k","type":"value","value":{"base64":"@@"}}"#,
                ],
                3,
                "bad base64",
            ),
            (
                &[
                    inst,
                    r#"{"scope":{"instance":"shop"},"key":"k","more":true,"items":["a"]}"#,
                ],
                3,
                "\"more\"",
            ),
            (
                &[
                    inst,
                    r#"{"session":"short","instance":"shop","expires_at_ms":1}"#,
                ],
                3,
                "not a session id",
            ),
            (
                &[inst, r#"{"instance":"shop","account":"other"}"#],
                3,
                "earlier line",
            ),
            (
                &[
                    inst,
                    r#"{"scope":{"instance":"shop"},"key":"k","type":"list","items":[]}"#,
                ],
                3,
                "empty",
            ),
            (&[r#"{"wasm_state_export":1}"#], 2, "second header"),
            (
                &[
                    inst,
                    r#"{"scope":{"instance":"shop"},"key":"k","type":"value","expires_at_ms":18446744073709551615,"value":"v"}"#,
                ],
                3,
                "later than any time a store keeps",
            ),
        ];
        for (body, line, needle) in cases {
            let (l, m) = line_of(&lines(body));
            assert_eq!((l, m.contains(needle)), (*line, true), "{body:?}: {m}");
        }
        assert_eq!(line_of("").0, 1);
        assert!(
            line_of(r#"{"wasm_state_export":3}"#)
                .1
                .contains("version 3")
        );
        assert!(
            line_of(r#"{"instance":"a","account":"b"}"#)
                .1
                .contains("header")
        );
    }

    #[test]
    fn version_2_needs_its_end_line_and_nothing_after_it() {
        let v2 = |body: &[&str]| {
            let mut s = String::from("{\"wasm_state_export\":2,\"engine\":\"redb\"}\n");
            for l in body {
                s.push_str(l);
                s.push('\n');
            }
            s
        };
        let inst = r#"{"instance":"shop","account":"acme"}"#;
        let key = r#"{"scope":{"instance":"shop"},"key":"k","type":"value","expires_at_ms":null,"value":"v"}"#;
        let end =
            r#"{"end":true,"lines":2,"instances":1,"sessions":0,"keys":1,"skipped_expired":0}"#;
        assert_eq!(parse(&v2(&[inst, key, end])).unwrap().len(), 2);
        // Cut after any line: refused whole, naming where it ends.
        let (l, m) = line_of(&v2(&[inst, key]));
        assert_eq!(l, 4, "{m}");
        assert!(m.contains("cut short") && m.contains("after line 3"), "{m}");
        assert_eq!(line_of(&v2(&[])).0, 2);
        // An end line that does not add up, or lines after it.
        let (l, m) = line_of(&v2(&[inst, end]));
        assert_eq!(l, 3);
        assert!(m.contains("counts 2 lines, but 1 came before it"), "{m}");
        let (l, m) = line_of(&v2(&[inst, key, end, key]));
        assert_eq!(l, 5);
        assert!(m.contains("after the end line (line 4)"), "{m}");
        let floor = |f: &str| {
            format!(
                r#"{{"end":true,"lines":2,"instances":1,"sessions":0,"keys":1,"skipped_expired":0,"etag_floor":{f}}}"#
            )
        };
        // The etag floor is applied first, whatever its line.
        let records = parse(&v2(&[inst, key, &floor("77")])).unwrap();
        assert_eq!(records[0], Record::EtagFloor { line: 4, floor: 77 });
        assert_eq!(records.len(), 3);
        for bad in ["18446744073709551615", "-1", "\"7\""] {
            let (l, m) = line_of(&v2(&[inst, key, &floor(bad)]));
            assert_eq!(l, 4);
            assert!(m.contains("etag_floor"), "{m}");
        }
        let (l, m) = line_of(&v2(&[inst, key, r#"{"end":"yes","lines":2}"#]));
        assert_eq!(l, 4);
        assert!(m.contains("an end line is"), "{m}");
        // Version 1 (before the end line) has none and needs none.
        assert_eq!(parse(&lines(&[inst, key])).unwrap().len(), 2);
    }

    #[test]
    fn groups_respect_counts_and_bytes() {
        let g = groups((0..10).collect(), 4, |_| 1);
        assert_eq!(g.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
        let big = groups(vec![COMMIT_BYTES, 1, COMMIT_BYTES], 100, |n| *n);
        assert_eq!(big.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 1]);
    }
}
