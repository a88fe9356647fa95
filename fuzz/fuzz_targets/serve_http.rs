//! The `serve` request path (`wasm_state::http::HttpServer`): arbitrary
//! requests (method, path, query, headers incl. `x-session-id` and the
//! `wasm_state_session` cookie, body), up to 8 per input on one keep-alive
//! connection, through the server's accept loop, prefix routing, request
//! hand-over and response path to a real guest: `customers-http` (the
//! example app with instance state and session-scoped carts, whose SDK
//! reads the session header and cookie), mounted at `/` and `/api/v1`.
//!
//! `HttpServer` only serves a `TcpListener`, so the server listens on
//! 127.0.0.1 (an ephemeral port), started once per process with its host
//! and store: state carries over between inputs (a crash may need the
//! inputs before it; replay the whole corpus to reproduce). The guest is
//! built by `scripts/fuzz.sh` into `fuzz/target/guests` (or named by
//! `WASM_STATE_FUZZ_GUEST`). Every request must get an answer; a `5xx`
//! must be one the host or guest meant (the host's own texts or the
//! guest's), and a guest trap is reported on stderr. The first line of
//! each request is also fed to `normalize_prefix` (the mount routing's
//! parser), which must be idempotent and give an absolute path.

#![no_main]

#[path = "common/mod.rs"]
mod common;
#[path = "common/http_text.rs"]
mod http_text;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;
use wasm_state::http::{HttpServer, normalize_prefix};
use wasm_state::runtime::{GuestLimits, Host, HostConfig};

const GUEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/target/guests/wasm32-wasip2/release/customers-http.wasm"
);

struct Served {
    addr: SocketAddr,
}

static TRAPS: AtomicU64 = AtomicU64::new(0);

fn served() -> &'static Served {
    static S: OnceLock<Served> = OnceLock::new();
    S.get_or_init(|| {
        let path = std::env::var("WASM_STATE_FUZZ_GUEST").unwrap_or_else(|_| GUEST.into());
        let wasm = std::fs::read(&path).unwrap_or_else(|e| {
            panic!("cannot read the guest {path} ({e}); scripts/fuzz.sh builds it")
        });
        // The server runs on a thread (and runtime) of its own.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("serve".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("server runtime");
                let f = common::fresh();
                let mut config = HostConfig::new(f.dir.path().join("host"));
                config.guest = GuestLimits {
                    deadline: Duration::from_secs(5),
                    memory_bytes: 64 << 20,
                };
                config.component_cache = None;
                let host = Host::with_store(f.store.clone(), config).expect("host");
                rt.block_on(async {
                    host.deploy("shop", &wasm).await.expect("deploy the guest");
                    let mut server = HttpServer::new(host.clone());
                    server.mount("/", "shop").expect("mount /");
                    server.mount("/api/v1", "shop").expect("mount /api/v1");
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind 127.0.0.1");
                    tx.send(listener.local_addr().expect("address"))
                        .expect("send the address");
                    server
                        .serve(listener, std::future::pending())
                        .await
                        .expect("serve");
                });
                drop(f);
            })
            .expect("server thread");
        Served {
            addr: rx.recv().expect("the server's address"),
        }
    })
}

/// `normalize_prefix`: an absolute path, idempotent.
fn check_prefix(p: &str) {
    if let Ok(n) = normalize_prefix(p) {
        assert!(n.starts_with('/'), "{p:?} → {n:?}");
        assert!(n == "/" || !n.ends_with('/'), "{p:?} → {n:?}");
        assert_eq!(
            normalize_prefix(&n).ok().as_deref(),
            Some(n.as_str()),
            "normalize_prefix is not idempotent on {p:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(line) = data.split(|&b| b == b'\n').next()
        && let Ok(line) = std::str::from_utf8(line)
    {
        check_prefix(line.split_once(' ').map_or(line, |(_, t)| t));
    }
    let requests = http_text::requests(data, 8);
    if requests.is_empty() {
        return;
    }
    let s = served();
    common::rt().block_on(async {
        let stream = tokio::net::TcpStream::connect(s.addr)
            .await
            .expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        let client = tokio::spawn(conn);
        for mut req in requests {
            // wasi:http needs an authority: HTTP/1.1 clients always send
            // `Host` (a request without one is answered 400 before any
            // guest runs).
            if !req.headers().contains_key(hyper::header::HOST) {
                let host = hyper::header::HeaderValue::from_str(&s.addr.to_string())
                    .expect("an address is a header value");
                req.headers_mut().insert(hyper::header::HOST, host);
            }
            let label = format!("{} {}", req.method(), req.uri());
            let debug = std::env::var_os("FUZZ_DEBUG").is_some();
            let sent_headers = if debug {
                format!("{:?} body {:?}", req.headers(), req.body())
            } else {
                String::new()
            };
            if sender.ready().await.is_err() {
                break;
            }
            let sent = tokio::time::timeout(Duration::from_secs(15), sender.send_request(req));
            let resp = match sent.await {
                Err(_) => panic!("{label}: no answer within 15 s"),
                Ok(Err(_)) => break,
                Ok(Ok(resp)) => resp,
            };
            let status = resp.status();
            let body =
                match tokio::time::timeout(Duration::from_secs(15), resp.into_body().collect())
                    .await
                {
                    Err(_) => panic!("{label}: the body did not end within 15 s"),
                    // A body cut short: the handler failed while streaming.
                    Ok(Err(_)) => {
                        eprintln!("serve_http: {label}: {status}, body cut short");
                        break;
                    }
                    Ok(Ok(b)) => b.to_bytes(),
                };
            if debug {
                eprintln!(
                    "{label} {sent_headers} -> {status} {:?}",
                    String::from_utf8_lossy(&body)
                );
            }
            if status == StatusCode::INTERNAL_SERVER_ERROR
                && &body[..] == b"internal server error\n"
            {
                let n = TRAPS.fetch_add(1, Ordering::Relaxed);
                if n < 20 {
                    eprintln!("serve_http: {label}: the guest failed (500) [{}]", n + 1);
                }
            }
            if status == StatusCode::GATEWAY_TIMEOUT {
                panic!("{label}: the guest hit the deadline");
            }
        }
        drop(sender);
        let _ = tokio::time::timeout(Duration::from_secs(10), client).await;
    });
});
