//! `wasi:http` serving: components deployed as named instances, mounted at
//! path prefixes, one fresh instance per request (from a cached `ProxyPre`,
//! bounded by the host's deadline and memory limit), graceful shutdown that
//! finishes in-flight requests, and an access log through `tracing`.
//!
//! A guest trap answers `500` and a deadline `504`, with a short body that
//! reveals nothing of the host; details go to the log. The server keeps
//! serving either way.

mod apps;
mod routes;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

pub use apps::{AppInfo, Apps};
pub use routes::normalize_prefix;

use crate::runtime::{Ctx, Deployment, Host, HostError};
use crate::server::{self, ConnLimits};

#[derive(Clone)]
pub(crate) struct Mount {
    prefix: String,
    instance: String,
    pre: ProxyPre<Ctx>,
    dep: Arc<Deployment>,
}

/// Serves deployed `wasi:http` components over HTTP/1.1.
pub struct HttpServer {
    host: Host,
    apps: Apps,
    limits: ConnLimits,
    /// One permit per instance the host can run at once: requests beyond
    /// that wait for a slot instead of failing.
    slots: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mounts: Vec<_> = self
            .apps
            .table()
            .iter()
            .map(|m| (m.prefix.clone(), m.instance.clone()))
            .collect();
        f.debug_struct("HttpServer")
            .field("mounts", &mounts)
            .finish_non_exhaustive()
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<HyperOutgoingBody> {
    let body = http_body_util::Full::new(Bytes::from_static(body.as_bytes()))
        .map_err(|never: Infallible| match never {})
        .boxed_unsync();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A guest's response body that ends in an error (so the client sees a
/// cut response, not a complete one) when the handler failed while
/// streaming it.
struct Checked {
    inner: HyperOutgoingBody,
    failed: Arc<AtomicBool>,
}

impl Checked {
    fn wrap(inner: HyperOutgoingBody, failed: Arc<AtomicBool>) -> HyperOutgoingBody {
        Checked { inner, failed }.boxed_unsync()
    }
}

impl hyper::body::Body for Checked {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, wasmtime_wasi_http::Error>>> {
        match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
            std::task::Poll::Ready(None) if self.failed.load(Ordering::SeqCst) => {
                std::task::Poll::Ready(Some(Err(wasmtime_wasi_http::Error::InternalError(Some(
                    "the handler failed while sending its response".into(),
                )))))
            }
            other => other,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The path the browser sees for the app mounted at `prefix`: behind a
/// reverse proxy that strips a path prefix and says so in
/// `X-Forwarded-Prefix` (Traefik, Spring, nginx set up that way), that
/// prefix comes first. A header that is no plain absolute path is ignored.
fn public_path(prefix: &str, forwarded: Option<&hyper::header::HeaderValue>) -> String {
    let forwarded = forwarded
        .and_then(|v| v.to_str().ok())
        .map(|f| f.trim_end_matches('/'))
        .filter(|f| {
            f.starts_with('/')
                && f.len() <= 256
                && f.bytes()
                    .all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b','))
        })
        .unwrap_or("");
    match (forwarded, prefix) {
        ("", p) => p.to_string(),
        (f, "/") => f.to_string(),
        (f, p) => format!("{f}{p}"),
    }
}

/// The SDK's session cookie (`Session::cookie`, `Path=/`) in an answer of
/// the app the browser sees at `prefix` ([`public_path`]) is scoped to
/// that path: apps on one server each keep their own session cookie
/// instead of replacing each other's (a browser sends the longest-path
/// cookie first, which the SDK reads). A cookie with any other path is
/// left as the guest set it.
fn scope_session_cookie(headers: &mut hyper::HeaderMap, prefix: &str) {
    use hyper::header::{HeaderValue, SET_COOKIE};
    if prefix == "/" {
        return;
    }
    let cookie = format!("{SESSION_COOKIE}=");
    let mut scoped = Vec::new();
    let mut touched = false;
    for v in headers.get_all(SET_COOKIE) {
        let text = v.to_str().unwrap_or_default();
        let ours =
            text.starts_with(&cookie) && text.split(';').skip(1).any(|a| a.trim() == "Path=/");
        if ours {
            let attrs: Vec<String> = text
                .split(';')
                .map(|a| {
                    if a.trim() == "Path=/" {
                        format!(" Path={prefix}")
                    } else {
                        a.to_string()
                    }
                })
                .collect();
            match HeaderValue::from_str(&attrs.join(";")) {
                Ok(h) => {
                    scoped.push(h);
                    touched = true;
                }
                Err(_) => scoped.push(v.clone()),
            }
        } else {
            scoped.push(v.clone());
        }
    }
    if touched {
        headers.remove(SET_COOKIE);
        for v in scoped {
            headers.append(SET_COOKIE, v);
        }
    }
}

/// The session cookie's name, as the guest SDK writes it
/// (`wasm_state_sdk::Session::COOKIE`).
const SESSION_COOKIE: &str = "wasm_state_session";

/// `503` with `Retry-After`: the state store could not be reached.
fn store_unavailable() -> Response<HyperOutgoingBody> {
    retry_later("the state store is unavailable; retry later\n")
}

/// `503` with `Retry-After: 1` and `message`.
fn retry_later(message: &'static str) -> Response<HyperOutgoingBody> {
    let mut resp = text(StatusCode::SERVICE_UNAVAILABLE, message);
    resp.headers_mut().insert(
        hyper::header::RETRY_AFTER,
        hyper::header::HeaderValue::from_static("1"),
    );
    resp
}

impl HttpServer {
    /// A server with nothing mounted.
    pub fn new(host: Host) -> Self {
        let slots = host.max_concurrent_instances() as usize;
        HttpServer {
            apps: Apps::new(host.clone()),
            host,
            limits: ConnLimits::default(),
            slots: Arc::new(tokio::sync::Semaphore::new(slots)),
        }
    }

    /// How long shutdown waits for in-flight requests (default 30 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.limits.grace = grace;
        self
    }

    /// Connection limits and timeouts (see [`ConnLimits`]).
    pub fn limits(mut self, limits: ConnLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Serve the deployed `instance` (a `wasi:http/proxy` component) under
    /// `prefix` (`/` for everything); the guest sees paths with the prefix
    /// removed. The longest matching prefix wins.
    pub fn mount(&mut self, prefix: &str, instance: &str) -> Result<(), HostError> {
        self.apps.mount(prefix, instance)
    }

    /// The handle that deploys, lists and undeploys apps while the server
    /// runs (the admin API's `apps` endpoints).
    pub fn apps(&self) -> Apps {
        self.apps.clone()
    }

    /// Accept connections on `listener` until `shutdown` completes, then stop
    /// accepting, let in-flight requests finish (up to the grace period), and
    /// return.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let limits = self.limits;
        let this = Arc::new(self);
        server::serve(listener, shutdown, limits, move |req| {
            this.clone().handle(req)
        })
        .await
    }

    /// The mount serving `path` now (a request keeps the component it
    /// was routed to, even if a deploy swaps it meanwhile).
    fn route(&self, path: &str) -> Option<(Mount, String)> {
        self.apps
            .table()
            .iter()
            .find_map(|m| routes::strip(&m.prefix, path).map(|rest| (m.clone(), rest)))
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<HyperOutgoingBody> {
        let started = Instant::now();
        let (method, path) = (req.method().clone(), req.uri().path().to_string());
        let (resp, instance) = match self.route(&path) {
            // wasi:http hands the guest the request's authority; one that
            // is not `host[:port]` is the client's mistake, not the guest's.
            Some(_) if !valid_host(&req) => (
                text(
                    StatusCode::BAD_REQUEST,
                    "the Host header is not a valid host[:port]\n",
                ),
                None,
            ),
            None => (
                text(StatusCode::NOT_FOUND, "no app is mounted at this path\n"),
                None,
            ),
            Some((mount, rest)) => {
                let instance = mount.instance.clone();
                (self.call(&mount, req, &rest).await, Some(instance))
            }
        };
        self.host.store().metrics().request(
            instance.as_deref().unwrap_or("-"),
            resp.status().as_u16(),
            started.elapsed(),
        );
        tracing::info!(
            target: "wasm_state::access",
            %method,
            path,
            status = resp.status().as_u16(),
            us = started.elapsed().as_micros() as u64,
            instance = instance.as_deref().unwrap_or("-"),
        );
        resp
    }

    async fn call(
        &self,
        mount: &Mount,
        mut req: Request<Incoming>,
        rest: &str,
    ) -> Response<HyperOutgoingBody> {
        let query = req
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let cookie_path = public_path(&mount.prefix, req.headers().get("x-forwarded-prefix"));
        match format!("{rest}{query}").parse() {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => return text(StatusCode::BAD_REQUEST, "bad request path\n"),
        }
        // Wait for an instance slot first, so waiting does not count
        // against the handler's deadline.
        let Ok(slot) = self.slots.clone().acquire_owned().await else {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down\n",
            );
        };
        let mut store = self
            .host
            .request_store(&mount.dep, WasiCtx::builder().build());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let prepared = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)
            .and_then(|r| Ok((r, store.data_mut().http().new_response_outparam(tx)?)));
        let (incoming, out) = match prepared {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot pass the request to the guest");
                return text(StatusCode::BAD_REQUEST, "bad request\n");
            }
        };
        let backend_down = store.data().state.backend_down();
        let (pre, host) = (mount.pre.clone(), self.host.clone());
        // Set when the handler failed (trap, deadline), before its store —
        // and with it a response body still streaming — is dropped: the
        // body then ends in an error instead of looking complete.
        let failed = Arc::new(AtomicBool::new(false));
        let task_failed = failed.clone();
        let deadline = self.host.guest_limits().deadline;
        let instance = mount.instance.clone();
        let task = tokio::spawn(async move {
            let _slot = slot;
            let work = async {
                let proxy = match pre.instantiate_async(&mut store).await {
                    Ok(p) => p,
                    Err(e) => return Err(host.classify(&store, e)),
                };
                match proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, incoming, out)
                    .await
                {
                    Ok(()) => Ok(()),
                    Err(e) => Err(host.classify(&store, e)),
                }
            };
            // No request holds its slot past the deadline, even waiting in a
            // host call.
            let result = host
                .within_deadline(&instance, deadline, work)
                .await
                .and_then(|r| r);
            if result.is_err() {
                task_failed.store(true, Ordering::SeqCst);
            }
            result
        });
        let unavailable = || backend_down.load(std::sync::atomic::Ordering::Relaxed);
        let rx = async {
            let mut r = rx.await;
            if let Ok(Ok(resp)) = &mut r {
                scope_session_cookie(resp.headers_mut(), &cookie_path);
            }
            r
        };
        match rx.await {
            // A handler that failed because the state store was unreachable
            // answers 503 (retry later), not 500, whatever it chose.
            Ok(Ok(mut resp))
                if resp.status() == StatusCode::INTERNAL_SERVER_ERROR && unavailable() =>
            {
                *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                resp.headers_mut().insert(
                    hyper::header::RETRY_AFTER,
                    hyper::header::HeaderValue::from_static("1"),
                );
                resp.map(|b| Checked::wrap(b, failed))
            }
            Ok(Ok(resp)) => resp.map(|b| Checked::wrap(b, failed)),
            Ok(Err(code)) => {
                tracing::warn!(instance = %mount.instance, error = ?code, "the guest answered with an error");
                if unavailable() {
                    return store_unavailable();
                }
                text(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n")
            }
            Err(_) => {
                let err = match task.await {
                    Ok(Err(e)) => e,
                    Ok(Ok(())) => {
                        HostError::Trap("the handler returned without setting a response".into())
                    }
                    Err(e) => HostError::Trap(format!("the handler task failed: {e}")),
                };
                tracing::warn!(instance = %mount.instance, error = %err, "request failed");
                if unavailable() {
                    return store_unavailable();
                }
                match err {
                    HostError::Deadline { .. } => {
                        text(StatusCode::GATEWAY_TIMEOUT, "the handler took too long\n")
                    }
                    // Every instance slot taken (watcher calls share them):
                    // nothing ran, the client retries.
                    HostError::Busy(_) => retry_later("the server is busy; retry\n"),
                    _ => text(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n"),
                }
            }
        }
    }
}

/// Whether the request's authority (its Host header, when it has one) is a
/// valid, non-empty `host[:port]`, sent once.
fn valid_host<B>(req: &Request<B>) -> bool {
    if req
        .headers()
        .get_all(hyper::http::header::HOST)
        .iter()
        .count()
        > 1
    {
        return false;
    }
    match req.headers().get(hyper::http::header::HOST) {
        None => true,
        Some(h) => h
            .to_str()
            .ok()
            .filter(|s| !s.is_empty())
            .is_some_and(|s| s.parse::<hyper::http::uri::Authority>().is_ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdks_session_cookie_is_scoped_to_the_apps_route() {
        use hyper::header::{HeaderValue, SET_COOKIE};
        let mut h = hyper::HeaderMap::new();
        let sdk = "wasm_state_session=abc; Max-Age=60; Path=/; HttpOnly; SameSite=Lax";
        h.append(SET_COOKIE, HeaderValue::from_static(sdk));
        h.append(SET_COOKIE, HeaderValue::from_static("theme=dark; Path=/"));
        h.append(
            SET_COOKIE,
            HeaderValue::from_static("wasm_state_session=x; Path=/custom"),
        );
        let mut root = h.clone();
        scope_session_cookie(&mut root, "/");
        assert_eq!(root, h);
        scope_session_cookie(&mut h, "/shop");
        let got: Vec<&str> = h
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            got,
            [
                "wasm_state_session=abc; Max-Age=60; Path=/shop; HttpOnly; SameSite=Lax",
                "theme=dark; Path=/",
                "wasm_state_session=x; Path=/custom",
            ]
        );
    }

    #[test]
    fn a_proxys_forwarded_prefix_comes_first_in_the_cookie_path() {
        use hyper::header::HeaderValue;
        let h = |v: &'static str| HeaderValue::from_static(v);
        assert_eq!(public_path("/shop", None), "/shop");
        assert_eq!(public_path("/shop", Some(&h("/public"))), "/public/shop");
        assert_eq!(public_path("/shop", Some(&h("/public/"))), "/public/shop");
        assert_eq!(public_path("/", Some(&h("/public"))), "/public");
        assert_eq!(public_path("/", Some(&h("/"))), "/");
        // Not a plain absolute path: ignored.
        for bad in ["public", "/a;b", "/a b", "/a,b"] {
            assert_eq!(public_path("/shop", Some(&h(bad))), "/shop", "{bad}");
        }
    }
}
