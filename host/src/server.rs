//! The HTTP/1.1 accept loop every listener of the host shares (guest
//! serving, the Dapr-compatible API): connection limits and timeouts against
//! slow or idle clients, and a graceful shutdown that lets in-flight requests
//! finish.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Bounds on the connections of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Most connections open at once; more wait in the accept queue.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (default 10 s); a
    /// slower one is disconnected.
    pub header_timeout: Duration,
    /// Most bytes of request line and headers (default 64 KiB); more gets
    /// `431`.
    pub max_header_bytes: usize,
    /// How long shutdown waits for in-flight requests (default 30 s).
    pub grace: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 64 << 10,
            grace: Duration::from_secs(30),
        }
    }
}

/// A listening socket the accept loop can take connections from: TCP, or
/// a Unix socket (the admin API).
pub trait Accept: Send {
    /// A connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next connection.
    fn accept(&self) -> impl Future<Output = std::io::Result<Self::Io>> + Send;
}

impl Accept for TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> std::io::Result<Self::Io> {
        TcpListener::accept(self).await.map(|(s, _)| s)
    }
}

impl Accept for UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&self) -> std::io::Result<Self::Io> {
        UnixListener::accept(self).await.map(|(s, _)| s)
    }
}

/// Accept connections on `listener` and answer each request with `handle`
/// until `shutdown` completes; then stop accepting, let in-flight requests
/// finish (up to `limits.grace`) and return.
pub async fn serve<L, H, F, B>(
    listener: L,
    shutdown: impl Future<Output = ()>,
    limits: ConnLimits,
    handle: H,
) -> std::io::Result<()>
where
    L: Accept,
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let handle = Arc::new(handle);
    let (stop_tx, stop_rx) = watch::channel(false);
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Wait for room before accepting, so excess clients queue in the
        // kernel's backlog instead of holding memory here.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = open.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        // e.g. out of file descriptors: do not spin.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (handle, mut stop) = (handle.clone(), stop_rx.clone());
                conns.spawn(async move {
                    let _permit = permit;
                    let svc = service_fn(move |req| {
                        let fut = handle(req);
                        async move { Ok::<_, std::convert::Infallible>(fut.await) }
                    });
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(limits.header_timeout)
                        .max_buf_size(limits.max_header_bytes.max(8192))
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc);
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
    let drained = tokio::time::timeout(limits.grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = conns.len(),
            "grace period over; dropping the rest"
        );
        conns.abort_all();
    }
    Ok(())
}
