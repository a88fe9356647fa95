//! `wasi:http` serving: components deployed as named instances, mounted at
//! path prefixes, one fresh instance per request (from a cached `ProxyPre`,
//! bounded by the host's deadline and memory limit), graceful shutdown that
//! finishes in-flight requests, and an access log through `tracing`.
//!
//! A guest trap answers `500` and a deadline `504`, with a short body that
//! reveals nothing of the host; details go to the log. The server keeps
//! serving either way.

mod routes;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

pub use routes::normalize_prefix;

use crate::runtime::{Ctx, Host, HostError};

/// How long shutdown waits for in-flight requests.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

struct Mount {
    prefix: String,
    instance: String,
    pre: ProxyPre<Ctx>,
}

/// Serves deployed `wasi:http` components over HTTP/1.1.
pub struct HttpServer {
    host: Host,
    mounts: Vec<Mount>,
    grace: Duration,
    /// One permit per instance the host can run at once: requests beyond
    /// that wait for a slot instead of failing.
    slots: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mounts: Vec<_> = self
            .mounts
            .iter()
            .map(|m| (&m.prefix, &m.instance))
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

impl HttpServer {
    /// A server with nothing mounted.
    pub fn new(host: Host) -> Self {
        let slots = host.max_concurrent_instances() as usize;
        HttpServer {
            host,
            mounts: Vec::new(),
            grace: DEFAULT_GRACE,
            slots: Arc::new(tokio::sync::Semaphore::new(slots)),
        }
    }

    /// How long shutdown waits for in-flight requests (default 30 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Serve the deployed `instance` (a `wasi:http/proxy` component) under
    /// `prefix` (`/` for everything); the guest sees paths with the prefix
    /// removed. The longest matching prefix wins.
    pub fn mount(&mut self, prefix: &str, instance: &str) -> Result<(), HostError> {
        let pre = ProxyPre::new(self.host.instance_pre(instance)?).map_err(|e| {
            HostError::InvalidComponent(format!(
                "{instance:?} is not a wasi:http handler (it must export wasi:http/incoming-handler): {e:#}"
            ))
        })?;
        let prefix = normalize_prefix(prefix)?;
        self.mounts.retain(|m| m.prefix != prefix);
        self.mounts.push(Mount {
            prefix,
            instance: instance.into(),
            pre,
        });
        self.mounts
            .sort_by_key(|m| std::cmp::Reverse(m.prefix.len()));
        Ok(())
    }

    /// Accept connections on `listener` until `shutdown` completes, then stop
    /// accepting, let in-flight requests finish (up to the grace period), and
    /// return.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let grace = self.grace;
        let this = Arc::new(self);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut conns = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => {
                    let (stream, _peer) = match accepted {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            continue;
                        }
                    };
                    let (this, mut stop) = (this.clone(), stop_rx.clone());
                    conns.spawn(async move {
                        let svc = service_fn(move |req| {
                            let this = this.clone();
                            async move { Ok::<_, Infallible>(this.handle(req).await) }
                        });
                        let conn = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), svc);
                        tokio::pin!(conn);
                        let done = tokio::select! {
                            r = conn.as_mut() => r,
                            _ = stop.changed() => {
                                conn.as_mut().graceful_shutdown();
                                conn.await
                            }
                        };
                        if let Err(e) = done {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        drop(listener);
        tracing::info!(
            connections = conns.len(),
            "shutting down: finishing in-flight requests"
        );
        let _ = stop_tx.send(true);
        let drained =
            tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                connections = conns.len(),
                "grace period over; dropping the rest"
            );
            conns.abort_all();
        }
        Ok(())
    }

    fn route(&self, path: &str) -> Option<(&Mount, String)> {
        self.mounts
            .iter()
            .find_map(|m| routes::strip(&m.prefix, path).map(|rest| (m, rest)))
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<HyperOutgoingBody> {
        let started = Instant::now();
        let (method, path) = (req.method().clone(), req.uri().path().to_string());
        let (resp, instance) = match self.route(&path) {
            None => (
                text(StatusCode::NOT_FOUND, "no app is mounted at this path\n"),
                None,
            ),
            Some((mount, rest)) => {
                let instance = mount.instance.clone();
                (self.call(mount, req, &rest).await, Some(instance))
            }
        };
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
        let mut store = match self
            .host
            .request_store(&mount.instance, WasiCtx::builder().build())
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(instance = %mount.instance, error = %e, "cannot serve");
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "this app is not available\n",
                );
            }
        };
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
        let (pre, host) = (mount.pre.clone(), self.host.clone());
        let task = tokio::spawn(async move {
            let _slot = slot;
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
        });
        match rx.await {
            Ok(Ok(resp)) => resp,
            Ok(Err(code)) => {
                tracing::warn!(instance = %mount.instance, error = ?code, "the guest answered with an error");
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
                match err {
                    HostError::Deadline { .. } => {
                        text(StatusCode::GATEWAY_TIMEOUT, "the handler took too long\n")
                    }
                    _ => text(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n"),
                }
            }
        }
    }
}
