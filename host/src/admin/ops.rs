//! What the admin commands do, written once over a [`Host`]: the CLI calls
//! these directly when it opens the data dir itself, and the admin API
//! calls them for a client on the socket, so both give the same answers.

use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::runtime::{Host, HostError, RunOptions};
use crate::store::{KeyKind, KeyListing, ScopeHandle, SetOptions, StateError, Store};

/// Which scope a state request is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeRef {
    /// An instance (its instance scope, or with `session` a session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// A session of `instance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// An account's shared scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request itself is wrong (arguments, names, body).
    #[error("{0}")]
    BadRequest(String),
    /// What it names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A state operation failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Deploying or running a component failed.
    #[error(transparent)]
    Host(#[from] HostError),
}

impl AdminError {
    /// The error code of the admin API (docs/admin-api.md).
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::BadRequest(_) => "bad-request",
            AdminError::NotFound(_) => "not-found",
            AdminError::State(e) | AdminError::Host(HostError::State(e)) => match e.root() {
                StateError::NoSuchSession | StateError::NotFound => "not-found",
                StateError::EtagMismatch | StateError::AlreadyExists => "conflict",
                StateError::QuotaExceeded { .. } => "quota-exceeded",
                StateError::Unavailable(_) => "unavailable",
                StateError::Internal(_) => "internal",
                _ => "bad-request",
            },
            AdminError::Host(HostError::InvalidComponent(_) | HostError::InvalidMount(_)) => {
                "invalid-component"
            }
            AdminError::Host(HostError::InvalidRequest(_)) => "bad-request",
            AdminError::Host(HostError::NotDeployed(_) | HostError::NoSuchExport { .. }) => {
                "not-found"
            }
            AdminError::Host(_) => "internal",
        }
    }

    /// The HTTP status of [`AdminError::code`].
    pub fn status(&self) -> u16 {
        match self.code() {
            "bad-request" | "invalid-component" => 400,
            "not-found" => 404,
            "conflict" => 409,
            "quota-exceeded" => 507,
            "unavailable" => 503,
            _ => 500,
        }
    }
}

/// A result of an admin operation.
pub type AdminResult<T> = std::result::Result<T, AdminError>;

/// An instance, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRow {
    /// Its name.
    pub name: String,
    /// Its account.
    pub account: String,
    /// Bytes of state it uses (what its quota counts).
    pub bytes: u64,
    /// Whether this host has it deployed now.
    pub deployed: bool,
}

/// A live session, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRow {
    /// Its id.
    pub id: String,
    /// When it expires (ms since the epoch).
    pub expires_at_ms: u64,
    /// Time left, in ms.
    pub ttl_ms: u64,
}

/// A key, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRow {
    /// The key.
    pub key: String,
    /// `value`, `map` or `list`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Time left, in ms, if it expires.
    pub ttl_ms: Option<u64>,
    /// Its etag.
    pub etag: String,
}

/// One page of keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysPage {
    /// The keys, in order.
    pub keys: Vec<KeyRow>,
    /// Pass it back for the next page; `None` after the last.
    pub cursor: Option<String>,
}

/// A key's content, paged for maps and lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    /// The key.
    pub key: String,
    /// `value`, `map` or `list`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its etag.
    pub etag: String,
    /// Time left, in ms, if it expires.
    pub ttl_ms: Option<u64>,
    /// A value's text (when it is UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A value's bytes (when it is not UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    /// A page of a map's fields, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<(String, String)>>,
    /// A page of a list's items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<String>>,
    /// A map's or list's length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// The offset of the next page, if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<u64>,
}

/// Arguments of a command run through the admin API.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunRequest {
    /// The component's bytes, base64.
    pub component_base64: String,
    /// The instance to run it as.
    pub instance: String,
    /// A session to hand to it.
    #[serde(default)]
    pub session: Option<String>,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// What it reads from stdin, base64.
    #[serde(default)]
    pub stdin_base64: Option<String>,
    /// Its deadline in seconds (default: the server's).
    #[serde(default)]
    pub deadline_seconds: Option<u64>,
    /// Its memory limit in MiB (default: the server's, which is also the
    /// most it may ask for).
    #[serde(default)]
    pub memory_mib: Option<usize>,
}

/// What a command run through the admin API ended with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResponse {
    /// Its exit code.
    pub exit_code: i32,
    /// Its stdout, base64.
    pub stdout_base64: String,
    /// Its stderr, base64.
    pub stderr_base64: String,
}

/// Arguments of a function call through the admin API.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CallRequest {
    /// The component's bytes, base64.
    pub component_base64: String,
    /// The instance to run it as.
    pub instance: String,
    /// The export: `name` or `interface#name`.
    pub function: String,
    /// Its arguments, as text (converted by the parameter types).
    #[serde(default)]
    pub args: Vec<String>,
}

/// The results of a call, as text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallResponse {
    /// One per result; a `result<T, E>` is `{"ok":…}` / `{"err":…}` JSON.
    pub results: Vec<serde_json::Value>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn decode_b64(what: &str, s: &str) -> AdminResult<Vec<u8>> {
    b64()
        .decode(s)
        .map_err(|e| AdminError::BadRequest(format!("{what} is not valid base64: {e}")))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A stored value as JSON: itself if it is JSON, else a string.
fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| serde_json::Value::String(text(bytes)))
}

/// The admin operations of one host.
#[derive(Clone, Debug)]
pub struct Admin {
    host: Host,
}

impl Admin {
    /// Admin over `host`.
    pub fn new(host: Host) -> Self {
        Admin { host }
    }

    /// The host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    fn store(&self) -> &Store {
        self.host.store()
    }

    /// The scope `r` names.
    pub async fn scope(&self, r: &ScopeRef) -> AdminResult<ScopeHandle> {
        let store = self.store();
        match (&r.instance, &r.session, &r.account) {
            (None, None, Some(a)) => Ok(store.account(a)?),
            (Some(i), Some(id), None) => match store.session(i, id).await {
                Ok(h) => Ok(h),
                Err(StateError::NoSuchSession) => Err(AdminError::NotFound(format!(
                    "no live session {id:?} of instance {i:?}; `wasm-state sessions list -i {i}` shows them"
                ))),
                Err(e) => Err(e.into()),
            },
            (Some(i), None, None) => Ok(store.instance(i)?),
            _ => Err(AdminError::BadRequest(
                "say which state: instance=NAME, instance=NAME&session=ID, or account=NAME".into(),
            )),
        }
    }

    /// Every instance with its account and usage.
    pub async fn instances(&self) -> AdminResult<Vec<InstanceRow>> {
        let deployed = self.host.deployed();
        let mut out = Vec::new();
        for i in self.store().list_instances().await? {
            let bytes = self.store().instance_usage(&i.name).await?;
            out.push(InstanceRow {
                deployed: deployed.contains(&i.name),
                name: i.name,
                account: i.account,
                bytes,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Destroy an instance: its state, its sessions, its deployment.
    pub async fn destroy(&self, name: &str) -> AdminResult<()> {
        if self.store().instance_info(name).await?.is_none() {
            return Err(AdminError::NotFound(format!(
                "no instance named {name:?}; `wasm-state instances list` shows them"
            )));
        }
        self.host.destroy(name).await?;
        Ok(())
    }

    /// The live sessions of an instance.
    pub async fn sessions(&self, instance: &str) -> AdminResult<Vec<SessionRow>> {
        let now = self.store().now_ms();
        Ok(self
            .store()
            .list_sessions(instance)
            .await?
            .into_iter()
            .map(|s| SessionRow {
                ttl_ms: s.expires_at_ms.saturating_sub(now),
                expires_at_ms: s.expires_at_ms,
                id: s.id,
            })
            .collect())
    }

    /// End a session now.
    pub async fn end_session(&self, instance: &str, id: &str) -> AdminResult<()> {
        if !self.store().end_session(instance, id).await? {
            return Err(AdminError::NotFound(format!(
                "no live session {id:?} of instance {instance:?}; `wasm-state sessions list -i {instance}` shows them"
            )));
        }
        Ok(())
    }

    /// One page of keys with their type, TTL and etag.
    pub async fn keys(
        &self,
        scope: &ScopeRef,
        prefix: Option<String>,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> AdminResult<KeysPage> {
        let h = self.scope(scope).await?;
        let page = h
            .keys(KeyListing {
                prefix: prefix.filter(|p| !p.is_empty()),
                cursor: cursor.filter(|c| !c.is_empty()),
                limit: Some(limit.unwrap_or(100).clamp(1, 1000)),
                ..KeyListing::default()
            })
            .await?;
        let mut keys = Vec::with_capacity(page.keys.len());
        for k in page.keys {
            // A key that expired between the listing and now is left out.
            if let Some(info) = h.info(&k).await? {
                keys.push(KeyRow {
                    key: k,
                    kind: info.kind.name().into(),
                    ttl_ms: info.ttl.map(|t| t.as_millis() as u64),
                    etag: info.etag,
                });
            }
        }
        Ok(KeysPage {
            keys,
            cursor: page.cursor,
        })
    }

    /// Every key of a scope (in pages of 1000).
    pub async fn all_keys(
        &self,
        scope: &ScopeRef,
        prefix: Option<String>,
    ) -> AdminResult<Vec<String>> {
        let h = self.scope(scope).await?;
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = h
                .keys(KeyListing {
                    prefix: prefix.clone(),
                    cursor,
                    limit: Some(1000),
                    ..KeyListing::default()
                })
                .await?;
            out.extend(page.keys);
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// A key's content; maps and lists paged by `offset`/`limit`.
    pub async fn key(
        &self,
        scope: &ScopeRef,
        key: &str,
        offset: u64,
        limit: u64,
    ) -> AdminResult<KeyView> {
        let h = self.scope(scope).await?;
        let Some(info) = h.info(key).await? else {
            return Err(AdminError::NotFound(format!(
                "no key {key:?} in {}",
                h.scope()
            )));
        };
        let limit = limit.clamp(1, 1000);
        let mut view = KeyView {
            key: key.into(),
            kind: info.kind.name().into(),
            etag: info.etag,
            ttl_ms: info.ttl.map(|t| t.as_millis() as u64),
            ..KeyView::default()
        };
        match info.kind {
            KeyKind::Value => {
                let bytes = h.get(key).await?.unwrap_or_default();
                match String::from_utf8(bytes) {
                    Ok(s) => view.value = Some(s),
                    Err(e) => view.value_base64 = Some(b64().encode(e.as_bytes())),
                }
            }
            KeyKind::Map => {
                let length = h.map_length(key).await?;
                let mut fields = Vec::new();
                let mut skipped = 0u64;
                let mut cursor = "0".to_string();
                'scan: loop {
                    let page = h.map_scan(key, &cursor, None, 1000).await?;
                    for (f, v) in page.entries {
                        if skipped < offset {
                            skipped += 1;
                            continue;
                        }
                        if fields.len() as u64 == limit {
                            break 'scan;
                        }
                        fields.push((f, text(&v)));
                    }
                    if page.cursor == "0" {
                        break;
                    }
                    cursor = page.cursor;
                }
                let end = offset + fields.len() as u64;
                view.next_offset = (end < length).then_some(end);
                view.fields = Some(fields);
                view.length = Some(length);
            }
            KeyKind::List => {
                let length = h.list_length(key).await?;
                let items: Vec<String> = if offset >= length {
                    Vec::new()
                } else {
                    // A page that fits the store's reply limit (fewer
                    // items when they are large).
                    h.list_page(key, offset, limit.min(length - offset))
                        .await?
                        .iter()
                        .map(|v| text(v))
                        .collect()
                };
                let end = offset + items.len() as u64;
                view.next_offset = (end < length).then_some(end);
                view.items = Some(items);
                view.length = Some(length);
            }
        }
        Ok(view)
    }

    /// A value's raw bytes (`state get`).
    pub async fn get(&self, scope: &ScopeRef, key: &str) -> AdminResult<Vec<u8>> {
        let h = self.scope(scope).await?;
        match h.get(key).await {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(AdminError::NotFound(format!(
                "no key {key:?} in {}",
                h.scope()
            ))),
            Err(StateError::WrongType { found, .. }) => Err(AdminError::BadRequest(format!(
                "{key:?} is a {found}, not a value; `wasm-state state dump` shows it"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Set a value; returns its etag and the scope's description.
    pub async fn set(
        &self,
        scope: &ScopeRef,
        key: &str,
        value: Vec<u8>,
        ttl_seconds: Option<u64>,
    ) -> AdminResult<(String, String)> {
        let h = self.scope(scope).await?;
        let options = SetOptions {
            ttl: ttl_seconds.map(Duration::from_secs),
            condition: None,
        };
        let etag = h.set_with(key, value, options).await?;
        // An instance written to before any deploy is registered (to the
        // host's account), so it is listed, exported and destroyed like
        // any other; one registered already keeps its account.
        if let (Some(i), None) = (&scope.instance, &scope.session)
            && self.store().instance_info(i).await?.is_none()
        {
            self.store()
                .register_instance(i, self.host.account())
                .await?;
        }
        Ok((etag, h.scope().to_string()))
    }

    /// Delete a key of any type; whether it existed.
    pub async fn delete(&self, scope: &ScopeRef, key: &str) -> AdminResult<bool> {
        let h = self.scope(scope).await?;
        Ok(h.delete(key).await?)
    }

    /// One `state dump` line per key: key, type, etag, TTL, content as JSON.
    /// Each line is awaited (a slow client slows the dump down); a line
    /// that cannot be handed on (the client went away) ends the dump.
    pub async fn dump(
        &self,
        scope: &ScopeRef,
        emit: &mut crate::admin::transfer::Emit<'_>,
    ) -> AdminResult<()> {
        let h = self.scope(scope).await?;
        let mut cursor = None;
        loop {
            let page = h
                .keys(KeyListing {
                    cursor,
                    limit: Some(1000),
                    ..KeyListing::default()
                })
                .await?;
            for k in &page.keys {
                let Some(info) = h.info(k).await? else {
                    continue;
                };
                let value = match info.kind {
                    KeyKind::Value => h.get(k).await?.map(|v| json(&v)).unwrap_or_default(),
                    // Read in pages: a collection over the store's reply
                    // limit is dumped whole all the same.
                    KeyKind::Map => {
                        let mut fields = serde_json::Map::new();
                        let mut cursor = "0".to_string();
                        loop {
                            let page = h.map_scan(k, &cursor, None, 1000).await?;
                            fields.extend(page.entries.into_iter().map(|(f, v)| (f, json(&v))));
                            if page.cursor == "0" {
                                break;
                            }
                            cursor = page.cursor;
                        }
                        serde_json::Value::Object(fields)
                    }
                    KeyKind::List => {
                        let mut items = Vec::new();
                        loop {
                            let page = h.list_page(k, items.len() as u64, 1000).await?;
                            if page.is_empty() {
                                break;
                            }
                            items.extend(page.iter().map(|v| json(v)));
                        }
                        serde_json::Value::Array(items)
                    }
                };
                let line = serde_json::json!({
                    "key": k,
                    "type": info.kind.name(),
                    "etag": info.etag,
                    "ttl_ms": info.ttl.map(|t| t.as_millis() as u64),
                    "value": value,
                });
                if emit(line.to_string()).await.is_err() {
                    return Ok(());
                }
            }
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(()),
            }
        }
    }

    /// Run a command component once (through the admin API: output
    /// captured, stdin given).
    pub async fn run(&self, req: RunRequest) -> AdminResult<RunResponse> {
        let wasm = decode_b64("component_base64", &req.component_base64)?;
        let stdin = req
            .stdin_base64
            .as_deref()
            .map(|s| decode_b64("stdin_base64", s))
            .transpose()?;
        let options = RunOptions {
            args: req.args,
            session: req.session,
            capture: true,
            stdin,
            deadline: req.deadline_seconds.map(Duration::from_secs),
            memory_bytes: req.memory_mib.map(|m| m.saturating_mul(1 << 20)),
            ..RunOptions::default()
        };
        let out = self.host.run_once(&req.instance, &wasm, options).await?;
        Ok(RunResponse {
            exit_code: out.exit_code,
            stdout_base64: b64().encode(&out.stdout),
            stderr_base64: b64().encode(&out.stderr),
        })
    }

    /// Call an exported function of a component once.
    pub async fn call(&self, req: CallRequest) -> AdminResult<CallResponse> {
        let wasm = decode_b64("component_base64", &req.component_base64)?;
        let (params, _) = self.host.export_types(&wasm, &req.function).await?;
        if let Some(why) = crate::runtime::args::arity(&req.function, params.len(), req.args.len())
        {
            return Err(AdminError::BadRequest(why));
        }
        let args = params
            .iter()
            .zip(&req.args)
            .enumerate()
            .map(|(i, (ty, s))| {
                super::vals::parse(ty, s)
                    .map_err(|e| AdminError::BadRequest(format!("argument {}: {e}", i + 1)))
            })
            .collect::<AdminResult<Vec<_>>>()?;
        let results = self
            .host
            .call_once(&req.instance, &wasm, &req.function, &args)
            .await?;
        Ok(CallResponse {
            results: results.iter().map(super::vals::to_json).collect(),
        })
    }
}
