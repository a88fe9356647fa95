//! A Dapr-compatible state API over HTTP: any program — curl, the official
//! Dapr SDKs in HTTP mode — saves, reads, queries and transacts on the same
//! state the guests use, with the store's etags, TTLs and atomicity.
//!
//! Routes (Dapr's state API v1.0 and its alpha query API):
//!
//! | route | does |
//! |---|---|
//! | `POST /v1.0/state/{store}` | save `[{key, value, etag?, metadata?, options?}]`, atomically |
//! | `GET /v1.0/state/{store}/{key}` | the value (`ETag` header), `204` if missing |
//! | `POST\|PUT /v1.0/state/{store}/bulk` | `{keys, parallelism}` → `[{key, data?, etag?, error?}]` |
//! | `DELETE /v1.0/state/{store}/{key}` | delete (`If-Match` for an etag) |
//! | `POST\|PUT /v1.0/state/{store}/transaction` | upserts and deletes, all or nothing |
//! | `POST\|PUT /v1.0-alpha1/state/{store}/query` | Dapr's query language |
//! | `GET /v1.0/healthz`, `/v1.0/healthz/outbound` | `204` |
//! | `GET /v1.0/metadata` | the app id and the stores with their capabilities |
//!
//! Stores come from Dapr component files ([`components`]) or are the one
//! default `statestore` (the host's account scope). `docs/dapr.md` has the
//! mapping and every difference from Dapr.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use wasm_state::api::dapr::{DaprApi, DaprOptions, StoreSpec};
//! use wasm_state::store::{Store, StoreConfig};
//!
//! let store = Store::open("state.redb", StoreConfig::default())?;
//! let api = DaprApi::new(&store, "default", vec![StoreSpec::default_store()], DaprOptions::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3500").await?;
//! api.serve(listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod components;
mod error;
pub mod keys;
mod meta;
mod query;
mod request;
mod state;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;

pub use components::{ComponentError, ScopeTarget, StoreKind, StoreSpec};
pub use error::ApiError;
pub use keys::KeyPrefix;

use crate::server::{self, ConnLimits};
use crate::store::{ScopeHandle, StateError, Store};
use request::{Params, Route};

/// The header carrying the API token.
pub const TOKEN_HEADER: &str = "dapr-api-token";

/// How the API behaves.
#[derive(Debug, Clone)]
pub struct DaprOptions {
    /// The app id: Dapr's `keyPrefix: appid` puts it before every key, and
    /// `/v1.0/metadata` reports it (`None`: no app id, no prefix).
    pub app_id: Option<String>,
    /// The namespace for `keyPrefix: namespace` (Dapr reads `NAMESPACE`).
    pub namespace: Option<String>,
    /// Require this token in the `dapr-api-token` header of every request
    /// but the health checks (`401` otherwise), as Dapr's `DAPR_API_TOKEN`.
    pub api_token: Option<String>,
    /// Largest request body in bytes (default 4 MiB, Dapr's default).
    pub max_body_bytes: usize,
    /// Time a client has to send a whole body (default 30 s).
    pub body_timeout: Duration,
    /// Connection limits and timeouts.
    pub limits: ConnLimits,
}

impl Default for DaprOptions {
    fn default() -> Self {
        DaprOptions {
            app_id: None,
            namespace: None,
            api_token: None,
            max_body_bytes: 4 << 20,
            body_timeout: Duration::from_secs(30),
            limits: ConnLimits::default(),
        }
    }
}

/// One store as the API serves it: a scope and a key prefix.
struct Bound {
    spec: StoreSpec,
    handle: ScopeHandle,
    prefix: String,
    /// For an instance-scope store: the account its instance is registered
    /// to after a write, and when it was last found registered.
    account: String,
    registered: std::sync::Mutex<Option<Instant>>,
}

/// How long an instance found registered is taken as registered (it may be
/// destroyed meanwhile; a write after that registers it again).
const REGISTERED_FOR: Duration = Duration::from_secs(10);

impl Bound {
    /// After a write that succeeded: an instance-scope store's instance is
    /// registered (to the API's account) if nothing had registered it, so
    /// its state is listed, exported and destroyed like any deployed
    /// instance's. Looked up at most every [`REGISTERED_FOR`] (so a write
    /// after a destroy registers it again); a failure is logged (the write
    /// stands) and tried again on the next write.
    async fn written(&self) {
        let (StoreKind::Redb(ScopeTarget::Instance(name))
        | StoreKind::Redis {
            target: ScopeTarget::Instance(name),
            ..
        }) = &self.spec.kind
        else {
            return;
        };
        let fresh = |at: &Option<Instant>| at.is_some_and(|t| t.elapsed() < REGISTERED_FOR);
        if fresh(&self.registered.lock().unwrap_or_else(|p| p.into_inner())) {
            return;
        }
        let store = self.handle.store();
        let done = async {
            // Registered already (a deployed app's instance, whatever its
            // account): nothing to do.
            if store.instance_info(name).await?.is_none() {
                store.register_instance(name, &self.account).await?;
            }
            Ok::<(), StateError>(())
        }
        .await;
        if done.is_ok() {
            *self.registered.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
        if let Err(e) = done {
            tracing::warn!(target: "wasm_state::dapr", store = %self.spec.name, instance = %name, error = %e, "cannot register the instance of an instance-scope store; its state is kept but not listed");
        }
    }

    /// The stored key of a client key: checked (not empty, no `||`) and
    /// prefixed.
    fn key(&self, key: &str) -> Result<String, ApiError> {
        if key.is_empty() {
            return Err(ApiError::malformed("\"key\" is a required field"));
        }
        if key.contains(keys::SEPARATOR) {
            return Err(ApiError::malformed(format!(
                "input key/keyPrefix '{key}' can't contain '{}'",
                keys::SEPARATOR
            ))
            .with_reason("DAPR_STATE_ILLEGAL_KEY", serde_json::Value::Null));
        }
        Ok(format!("{}{key}", self.prefix))
    }
}

/// The Dapr-compatible state API of one store.
pub struct DaprApi {
    stores: Vec<Bound>,
    options: DaprOptions,
    started: Instant,
}

impl std::fmt::Debug for DaprApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.stores.iter().map(|s| s.spec.name.as_str()).collect();
        f.debug_struct("DaprApi")
            .field("stores", &names)
            .field("app_id", &self.options.app_id)
            .finish_non_exhaustive()
    }
}

/// A JSON document as Dapr encodes its answers (`json.Encoder`: a newline
/// at the end).
fn json_document(
    status: StatusCode,
    doc: &impl serde::Serialize,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let mut body = serde_json::to_vec(doc).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERROR",
            format!("cannot encode the answer: {e}"),
        )
    })?;
    body.push(b'\n');
    Ok(json_response(status, body))
}

fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

impl ApiError {
    fn response(&self) -> Response<Full<Bytes>> {
        let mut resp = json_response(self.status, self.body());
        if let Some(methods) = self.allow {
            resp.headers_mut()
                .insert(hyper::header::ALLOW, HeaderValue::from_static(methods));
        }
        resp
    }
}

impl DaprApi {
    /// Serve `specs` on `store` (the host's own); `account` is the account of
    /// account-scope stores that name none. `state.redis` stores need
    /// [`DaprApi::open`].
    pub fn new(
        store: &Store,
        account: &str,
        specs: Vec<StoreSpec>,
        options: DaprOptions,
    ) -> Result<DaprApi, StateError> {
        DaprApi::build(store, &HashMap::new(), account, specs, options)
    }

    /// [`DaprApi::new`], connecting the Redis store of every `state.redis`
    /// component first (one connection per distinct URL), with `config`.
    pub async fn open(
        store: &Store,
        account: &str,
        specs: Vec<StoreSpec>,
        options: DaprOptions,
        config: crate::store::StoreConfig,
    ) -> Result<DaprApi, StateError> {
        let mut redis: HashMap<String, Store> = HashMap::new();
        for spec in &specs {
            if let StoreKind::Redis { url, .. } = &spec.kind
                && !redis.contains_key(url)
            {
                redis.insert(url.clone(), Store::connect(url, config.clone()).await?);
            }
        }
        DaprApi::build(store, &redis, account, specs, options)
    }

    fn build(
        store: &Store,
        redis: &HashMap<String, Store>,
        account: &str,
        specs: Vec<StoreSpec>,
        options: DaprOptions,
    ) -> Result<DaprApi, StateError> {
        let scope = |store: &Store, target: &ScopeTarget| match target {
            ScopeTarget::Account(a) => store.account(a.as_deref().unwrap_or(account)),
            ScopeTarget::Instance(i) => store.instance(i),
        };
        let stores = specs
            .into_iter()
            .map(|spec| {
                let handle = match &spec.kind {
                    StoreKind::Redb(target) => scope(store, target)?,
                    StoreKind::Redis { url, target } => {
                        let s = redis.get(url).ok_or_else(|| {
                            StateError::invalid(format!(
                                "store {}: a state.redis store is opened with DaprApi::open",
                                spec.name
                            ))
                        })?;
                        scope(s, target)?
                    }
                };
                let prefix = spec.key_prefix.resolve(
                    &spec.name,
                    options.app_id.as_deref(),
                    options.namespace.as_deref(),
                );
                Ok(Bound {
                    spec,
                    handle,
                    prefix,
                    account: account.to_string(),
                    registered: std::sync::Mutex::new(None),
                })
            })
            .collect::<Result<_, StateError>>()?;
        Ok(DaprApi {
            stores,
            options,
            started: Instant::now(),
        })
    }

    /// How long shutdown waits for in-flight requests.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.options.limits.grace = grace;
        self
    }

    /// The names of the stores served.
    pub fn store_names(&self) -> Vec<&str> {
        self.stores.iter().map(|s| s.spec.name.as_str()).collect()
    }

    fn bound(&self, name: &str) -> Result<&Bound, ApiError> {
        self.stores
            .iter()
            .find(|s| s.spec.name == name)
            .ok_or_else(|| {
                let app_id = self.options.app_id.as_deref().unwrap_or_default();
                if self.stores.is_empty() {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "ERR_STATE_STORE_NOT_CONFIGURED",
                        format!("state store {name} is not configured"),
                    )
                    .with_reason(
                        "DAPR_STATE_NOT_CONFIGURED",
                        serde_json::json!({ "appID": app_id }),
                    )
                } else {
                    ApiError::store_not_found(name, &self.store_names(), app_id)
                }
            })
    }

    /// Accept connections until `shutdown` completes, then let in-flight
    /// requests finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let limits = self.options.limits;
        let this = Arc::new(self);
        server::serve(listener, shutdown, limits, move |req| {
            let this = this.clone();
            async move { this.handle(req).await }
        })
        .await
    }

    fn authorized(&self, req: &Request<Incoming>) -> bool {
        let Some(token) = &self.options.api_token else {
            return true;
        };
        let sent = req
            .headers()
            .get(TOKEN_HEADER)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        subtle::ConstantTimeEq::ct_eq(sent, token.as_bytes()).into()
    }

    /// Answer one request.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        let resp = match self.dispatch(req).await {
            Ok(resp) => resp,
            Err(e) => {
                if e.status.is_server_error() {
                    tracing::warn!(target: "wasm_state::dapr", %method, path, code = e.code, message = %e.message, "request failed");
                }
                e.response()
            }
        };
        tracing::info!(
            target: "wasm_state::access",
            api = "dapr",
            %method,
            path,
            status = resp.status().as_u16(),
            us = started.elapsed().as_micros() as u64,
        );
        resp
    }

    async fn dispatch(&self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, ApiError> {
        if !request::is_public(req.method(), req.uri().path()) && !self.authorized(&req) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "ERR_API_UNAUTHORIZED",
                format!("invalid api token: send the token in the {TOKEN_HEADER} header"),
            ));
        }
        let route = request::route(req.method(), req.uri().path())?;
        let params = Params::parse(req.uri().query());
        match route {
            Route::Healthz | Route::HealthzOutbound => Ok(empty(StatusCode::NO_CONTENT)),
            Route::Metadata => json_document(StatusCode::OK, &meta::metadata(self)),
            Route::Get(store, key) => state::get(self.bound(&store)?, &key, &params).await,
            Route::Delete(store, key) => {
                let if_match = req
                    .headers()
                    .get(hyper::header::IF_MATCH)
                    .map(|v| v.to_str().map(str::to_owned))
                    .transpose()
                    .map_err(|_| ApiError::malformed("the If-Match header is not ASCII text"))?;
                state::delete(self.bound(&store)?, &key, if_match, &params).await
            }
            Route::Save(store) => {
                let bound = self.bound(&store)?;
                let body = self.body(req).await?;
                let resp = state::save(bound, &body, &params).await?;
                bound.written().await;
                Ok(resp)
            }
            Route::Bulk(store) => {
                let bound = self.bound(&store)?;
                let body = self.body(req).await?;
                state::bulk(bound, &body).await
            }
            Route::Transaction(store) => {
                let bound = self.bound(&store)?;
                let body = self.body(req).await?;
                let resp = state::transaction(bound, &body, &params).await?;
                bound.written().await;
                Ok(resp)
            }
            Route::Query(store) => {
                let bound = self.bound(&store)?;
                let body = self.body(req).await?;
                query::query(bound, &body).await
            }
        }
    }

    async fn body(&self, req: Request<Incoming>) -> Result<Bytes, ApiError> {
        request::body(
            req.into_body(),
            self.options.max_body_bytes,
            self.options.body_timeout,
        )
        .await
    }
}
