//! The admin API over HTTP/1.1 (`docs/admin-api.md`): JSON in and out, on
//! the data dir's Unix socket and, when asked, a loopback TCP listener
//! (which also answers `/metrics` and the state explorer page at `/`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine as _;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use tokio::sync::mpsc;

use super::ops::{Admin, AdminError, AdminResult, CallRequest, RunRequest, ScopeRef};
use super::transfer::{self, Selection, TransferError};
use crate::http::Apps;
use crate::metrics::InstanceGauges;
use crate::runtime::Host;
use crate::server::{self, Accept, ConnLimits};
use crate::store::StateError;

/// The header every request that changes something must carry.
pub const ADMIN_HEADER: &str = "x-wasm-state-admin";

/// The media type of a streamed answer (JSON lines).
pub const NDJSON: &str = "application/x-ndjson";

/// An import's failure as an API error: the store's own, else the input's.
fn import_error(e: TransferError) -> AdminError {
    match e {
        TransferError::State(s) => AdminError::State(s),
        other => bad(other.to_string()),
    }
}

/// Largest request body (a component to deploy or run, an import).
const MAX_BODY: usize = 512 << 20;

/// The state explorer page.
const EXPLORER: &str = include_str!("explorer.html");

/// A response body: whole, or streamed (dumps, exports).
pub struct AdminBody(BodyKind);

enum BodyKind {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

/// Lines a streamed answer (dump, export) may have made ahead of its
/// client; the producer waits for room beyond that.
const STREAM_LINES: usize = 256;

/// An emitter sending each line (with its newline) into `tx`, waiting for
/// room; an error once the client went away.
fn line_sender(tx: &mpsc::Sender<Bytes>) -> impl FnMut(String) -> transfer::Emitted + Send + use<> {
    let tx = tx.clone();
    move |line: String| {
        let tx = tx.clone();
        Box::pin(async move {
            tx.send(Bytes::from(line + "\n"))
                .await
                .map_err(|_| TransferError::Output("the client went away".into()))
        })
    }
}

impl hyper::body::Body for AdminBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.0 {
            BodyKind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            BodyKind::Stream(rx) => rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))),
        }
    }
}

fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<AdminBody> {
    let mut resp = Response::new(AdminBody(BodyKind::Full(Some(body.into()))));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

fn ndjson(rx: mpsc::Receiver<Bytes>) -> Response<AdminBody> {
    let mut resp = Response::new(AdminBody(BodyKind::Stream(rx)));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(NDJSON),
    );
    resp
}

fn ok_json<T: Serialize>(value: &T) -> Response<AdminBody> {
    match serde_json::to_vec(value) {
        Ok(body) => respond(200, "application/json", body),
        Err(e) => error_json(500, "internal", &format!("cannot encode the answer: {e}")),
    }
}

fn error_json(status: u16, code: &str, message: &str) -> Response<AdminBody> {
    let body = serde_json::json!({ "error": code, "message": message });
    respond(status, "application/json", body.to_string())
}

fn error(e: &AdminError) -> Response<AdminBody> {
    error_json(e.status(), e.code(), &e.to_string())
}

fn bad(msg: impl Into<String>) -> AdminError {
    AdminError::BadRequest(msg.into())
}

/// Query parameters, decoded.
struct Query(Vec<(String, String)>);

impl Query {
    fn of(req: &Request<Incoming>) -> Query {
        Query(
            form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
    fn num(&self, name: &str) -> AdminResult<Option<u64>> {
        self.get(name)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| bad(format!("{name}={v:?} is not a whole number")))
            })
            .transpose()
    }
    fn scope(&self) -> ScopeRef {
        ScopeRef {
            instance: self.get("instance"),
            session: self.get("session"),
            account: self.get("account"),
        }
    }
    fn key(&self) -> AdminResult<String> {
        self.get("key")
            .ok_or_else(|| bad("say which key: key=NAME"))
    }
}

/// Where a request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    Socket,
    Tcp,
}

/// The admin API of a running host.
#[derive(Clone, Debug)]
pub struct AdminApi {
    admin: Admin,
    apps: Option<Apps>,
    /// The bearer token the TCP listener's API asks for, and its port.
    tcp_token: Option<(std::sync::Arc<str>, u16)>,
}

impl AdminApi {
    /// The API over `host`, deploying apps into `apps` if given (a server
    /// that serves HTTP apps).
    pub fn new(host: Host, apps: Option<Apps>) -> Self {
        AdminApi {
            admin: Admin::new(host),
            apps,
            tcp_token: None,
        }
    }

    /// Serve on the admin socket until `shutdown`.
    pub async fn serve_socket(
        self,
        listener: tokio::net::UnixListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        self.serve_on(listener, Listener::Socket, shutdown).await
    }

    /// Serve on a TCP listener (it should be loopback) until `shutdown`,
    /// with `/metrics` and the state explorer. Every request but the
    /// explorer page and `/metrics` must carry `Authorization: Bearer
    /// TOKEN` ([`token::create`](super::token::create) makes one).
    pub async fn serve_tcp(
        mut self,
        listener: tokio::net::TcpListener,
        token: String,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let port = listener.local_addr()?.port();
        self.tcp_token = Some((token.into(), port));
        self.serve_on(listener, Listener::Tcp, shutdown).await
    }

    async fn serve_on<L: Accept>(
        self,
        listener: L,
        on: Listener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let this = std::sync::Arc::new(self);
        let limits = ConnLimits {
            max_connections: 256,
            grace: std::time::Duration::from_secs(5),
            ..ConnLimits::default()
        };
        server::serve(listener, shutdown, limits, move |req| {
            let this = this.clone();
            async move { this.handle(req, on).await }
        })
        .await
    }

    async fn handle(&self, req: Request<Incoming>, on: Listener) -> Response<AdminBody> {
        let (method, path) = (req.method().clone(), req.uri().path().to_string());
        if on == Listener::Tcp && !loopback_host(&req) {
            return error_json(
                403,
                "forbidden",
                "the admin listener answers only requests addressed to a loopback name (localhost, 127.0.0.1, [::1])",
            );
        }
        // The page and the metrics hold no state; everything else on the
        // TCP listener needs its token (another local user could reach the
        // listener, but not read the token file).
        if on == Listener::Tcp
            && !(method == Method::GET && matches!(path.as_str(), "/" | "/metrics"))
            && !self.tcp_token.as_ref().is_some_and(|(t, _)| {
                super::token::matches(
                    req.headers()
                        .get(hyper::header::AUTHORIZATION)
                        .map(|v| v.as_bytes()),
                    t,
                )
            })
        {
            let port = self.tcp_token.as_ref().map_or(0, |(_, p)| *p);
            let mut resp = error_json(
                401,
                "unauthorized",
                &format!(
                    "the admin listener needs `Authorization: Bearer TOKEN`; the token is in the \
                     data dir's admin-{port}.token (readable only by the server's user, new at \
                     every start); open the state explorer at http://HOST:{port}/#token=TOKEN"
                ),
            );
            resp.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer"),
            );
            return resp;
        }
        if method != Method::GET
            && method != Method::HEAD
            && req.headers().get(ADMIN_HEADER).is_none_or(|v| v != "1")
        {
            return error_json(
                403,
                "forbidden",
                &format!(
                    "a request that changes something must carry the header `{ADMIN_HEADER}: 1`"
                ),
            );
        }
        let resp = match self.route(req, on).await {
            Ok(r) => r,
            Err(e) => error(&e),
        };
        tracing::debug!(target: "wasm_state::admin", %method, path, status = resp.status().as_u16());
        resp
    }

    async fn route(
        &self,
        req: Request<Incoming>,
        on: Listener,
    ) -> AdminResult<Response<AdminBody>> {
        let q = Query::of(&req);
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let segs: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let a = &self.admin;
        Ok(match (&method, segs.as_slice()) {
            (&Method::GET, [""]) if on == Listener::Tcp => explorer_page(),
            (&Method::GET, ["metrics"]) => self.metrics().await?,
            (&Method::GET, ["v1", "health"]) => ok_json(&serde_json::json!({
                "ok": true,
                "pid": std::process::id(),
                "data": std::path::absolute(a.host().data_dir()).unwrap_or_else(|_| a.host().data_dir().to_path_buf()),
                "engine": a.host().store().engine_name(),
                "version": env!("CARGO_PKG_VERSION"),
            })),
            (&Method::GET, ["v1", "instances"]) => ok_json(&a.instances().await?),
            (&Method::DELETE, ["v1", "instances", name]) => {
                // Its HTTP routes go first, so no new request writes into
                // the state being deleted; the destroy then stops its
                // watcher and waits for it. A destroy that fails puts the
                // routes back.
                let routes = match &self.apps {
                    Some(apps) if a.host().store().instance_info(name).await?.is_some() => {
                        apps.unroute(name)
                    }
                    _ => Vec::new(),
                };
                if let Err(e) = a.destroy(name).await {
                    if let Some(apps) = &self.apps {
                        apps.reroute(routes);
                    }
                    return Err(e);
                }
                if let Some(apps) = &self.apps {
                    apps.unroute_stale(name);
                }
                ok_json(&serde_json::json!({ "destroyed": name }))
            }
            (&Method::GET, ["v1", "instances", name, "sessions"]) => {
                ok_json(&a.sessions(name).await?)
            }
            (&Method::DELETE, ["v1", "instances", name, "sessions", id]) => {
                a.end_session(name, id).await?;
                ok_json(&serde_json::json!({ "ended": id }))
            }
            (&Method::GET, ["v1", "keys"]) => {
                let limit = q.num("limit")?.map(|n| n.min(1000) as u32);
                ok_json(
                    &a.keys(&q.scope(), q.get("prefix"), q.get("cursor"), limit)
                        .await?,
                )
            }
            (&Method::GET, ["v1", "key"]) => {
                let offset = q.num("offset")?.unwrap_or(0);
                let limit = q.num("limit")?.unwrap_or(100);
                ok_json(&a.key(&q.scope(), &q.key()?, offset, limit).await?)
            }
            (&Method::GET, ["v1", "value"]) => respond(
                200,
                "application/octet-stream",
                a.get(&q.scope(), &q.key()?).await?,
            ),
            (&Method::PUT, ["v1", "key"]) => {
                let (scope, key, ttl) = (q.scope(), q.key()?, q.num("ttl")?);
                let body = body_bytes(req).await?;
                let (etag, scope) = a.set(&scope, &key, body.to_vec(), ttl).await?;
                ok_json(&serde_json::json!({ "etag": etag, "scope": scope }))
            }
            (&Method::DELETE, ["v1", "key"]) => {
                ok_json(&serde_json::json!({ "deleted": a.delete(&q.scope(), &q.key()?).await? }))
            }
            (&Method::GET, ["v1", "keys", "all"]) => {
                ok_json(&a.all_keys(&q.scope(), q.get("prefix")).await?)
            }
            (&Method::GET, ["v1", "dump"]) => {
                let scope = q.scope();
                a.scope(&scope).await?;
                let (tx, rx) = mpsc::channel(STREAM_LINES);
                let admin = a.clone();
                tokio::spawn(async move {
                    let mut emit = line_sender(&tx);
                    if let Err(e) = admin.dump(&scope, &mut emit).await {
                        let line =
                            serde_json::json!({ "error": e.code(), "message": e.to_string() });
                        let _ = tx.send(Bytes::from(format!("{line}\n"))).await;
                    }
                });
                ndjson(rx)
            }
            (&Method::GET, ["v1", "export"]) => {
                let selection = match (q.get("instance"), q.get("account"), q.get("all")) {
                    (Some(i), None, None) => Selection::Instance(i),
                    (None, Some(acct), None) => Selection::Account(acct),
                    (None, None, Some(_)) => Selection::All,
                    _ => {
                        return Err(bad(
                            "say what to export: instance=NAME, account=NAME or all=1",
                        ));
                    }
                };
                if let Selection::Instance(i) = &selection
                    && a.host().store().instance_info(i).await?.is_none()
                {
                    return Err(AdminError::NotFound(format!(
                        "no instance named {i:?}; `wasm-state instances list` shows them"
                    )));
                }
                let (tx, rx) = mpsc::channel(STREAM_LINES);
                let store = a.host().store().clone();
                tokio::spawn(async move {
                    let mut emit = line_sender(&tx);
                    if let Err(e) = transfer::export(&store, &selection, &mut emit).await {
                        let line = serde_json::json!({ "error": "export-failed", "message": e.to_string() });
                        let _ = tx.send(Bytes::from(format!("{line}\n"))).await;
                    }
                });
                ndjson(rx)
            }
            (&Method::POST, ["v1", "import"]) => {
                let streamed = req
                    .headers()
                    .get(hyper::header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains(NDJSON));
                let body = body_bytes(req).await?;
                // Parsing a large input is CPU work: off the async workers.
                let records = tokio::task::spawn_blocking(move || {
                    let text = std::str::from_utf8(&body)
                        .map_err(|e| bad(format!("the import is not UTF-8 text: {e}")))?;
                    transfer::parse(text).map_err(|e| bad(e.to_string()))
                })
                .await
                .map_err(|e| {
                    AdminError::State(StateError::Internal(format!(
                        "the import's parser failed: {e}"
                    )))
                })??;
                let store = a.host().store().clone();
                transfer::check(&store, &records)
                    .await
                    .map_err(import_error)?;
                if !streamed {
                    // One JSON answer, as before streaming (older CLIs).
                    let counts = transfer::import(&store, records, &mut |_| {})
                        .await
                        .map_err(import_error)?;
                    return Ok(ok_json(&counts));
                }
                // Checked; applying takes a commit per key, so the answer
                // streams (`Accept: application/x-ndjson`): progress lines
                // at most once a second (a client can tell a long import
                // from a stuck one), then the counts or the error.
                let (tx, rx) = mpsc::channel(STREAM_LINES);
                let of = records.len();
                tokio::spawn(async move {
                    let progress_tx = tx.clone();
                    let mut last = std::time::Instant::now();
                    let mut progress = move |done: u64| {
                        if last.elapsed() >= std::time::Duration::from_secs(1) {
                            last = std::time::Instant::now();
                            let line = serde_json::json!({ "done": done, "of": of });
                            let _ = progress_tx.try_send(Bytes::from(format!("{line}\n")));
                        }
                    };
                    let line = match transfer::import(&store, records, &mut progress).await {
                        Ok(counts) => serde_json::json!({ "counts": counts }),
                        Err(e) => {
                            serde_json::json!({ "error": "import-failed", "message": e.to_string() })
                        }
                    };
                    let _ = tx.send(Bytes::from(format!("{line}\n"))).await;
                });
                ndjson(rx)
            }
            (&Method::GET, ["v1", "apps"]) => ok_json(&self.apps()?.list()),
            (&Method::PUT, ["v1", "apps", name]) => {
                let apps = self.apps()?.clone();
                let route = q.get("route");
                let body = body_bytes(req).await?;
                let info = apps.deploy(name, &body, route.as_deref()).await?;
                tracing::info!(app = %name, routes = ?info.routes, "deployed");
                ok_json(&info)
            }
            (&Method::DELETE, ["v1", "apps", name]) => {
                if !self.apps()?.undeploy(name) {
                    return Err(AdminError::NotFound(format!(
                        "no app named {name:?} is served; `wasm-state apps list` shows them"
                    )));
                }
                ok_json(&serde_json::json!({ "undeployed": name }))
            }
            (&Method::POST, ["v1", "run"]) => {
                let body = body_bytes(req).await?;
                let r: RunRequest = serde_json::from_slice(&body)
                    .map_err(|e| bad(format!("the run request is not valid JSON: {e}")))?;
                ok_json(&a.run(r).await?)
            }
            (&Method::POST, ["v1", "call"]) => {
                let body = body_bytes(req).await?;
                let r: CallRequest = serde_json::from_slice(&body)
                    .map_err(|e| bad(format!("the call request is not valid JSON: {e}")))?;
                ok_json(&a.call(r).await?)
            }
            _ => {
                return Err(AdminError::NotFound(format!(
                    "no admin endpoint {method} {path}; see docs/admin-api.md"
                )));
            }
        })
    }

    fn apps(&self) -> AdminResult<&Apps> {
        self.apps.as_ref().ok_or_else(|| {
            bad("this server does not serve HTTP apps (it was started without an app listener)")
        })
    }

    async fn metrics(&self) -> AdminResult<Response<AdminBody>> {
        let store = self.admin.host().store();
        let mut instances = Vec::new();
        for i in store.list_instances().await? {
            instances.push(InstanceGauges {
                sessions: store.session_count(&i.name).await?,
                bytes: store.instance_usage(&i.name).await?,
                instance: i.name,
            });
        }
        Ok(respond(
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            store.metrics().encode_with(&instances),
        ))
    }
}

/// The explorer page, under a policy that allows only its own inline
/// script and style and requests to this origin, and no framing (so no
/// other site can trick clicks on its delete buttons).
fn explorer_page() -> Response<AdminBody> {
    use sha2::{Digest, Sha256};
    fn between<'a>(s: &'a str, open: &str, close: &str) -> &'a str {
        let Some(start) = s
            .find(open)
            .and_then(|i| s[i..].find('>').map(|j| i + j + 1))
        else {
            return "";
        };
        s[start..]
            .find(close)
            .map_or("", |end| &s[start..start + end])
    }
    let hash =
        |s: &str| base64::engine::general_purpose::STANDARD.encode(Sha256::digest(s.as_bytes()));
    let csp = format!(
        "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hash(between(EXPLORER, "<script", "</script>")),
        hash(between(EXPLORER, "<style", "</style>")),
    );
    let mut resp = respond(200, "text/html; charset=utf-8", EXPLORER);
    if let Ok(v) = hyper::header::HeaderValue::from_str(&csp) {
        resp.headers_mut()
            .insert(hyper::header::CONTENT_SECURITY_POLICY, v);
    }
    resp.headers_mut().insert(
        hyper::header::X_CONTENT_TYPE_OPTIONS,
        hyper::header::HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Is the request addressed to a loopback name (against DNS rebinding)?
fn loopback_host(req: &Request<Incoming>) -> bool {
    let Some(host) = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    let name = match host.rsplit_once(':') {
        Some((n, port)) if port.chars().all(|c| c.is_ascii_digit()) => n,
        _ => host,
    };
    matches!(name, "localhost" | "[::1]")
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn body_bytes(req: Request<Incoming>) -> AdminResult<Bytes> {
    Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| {
            bad(format!(
                "cannot read the request body (at most {} MiB): {e}",
                MAX_BODY >> 20
            ))
        })
}

/// Decode base64 (the CLI side of run/call).
pub fn b64_decode(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::STANDARD.decode(s)
}
