//! The Dapr-compatible API's request handler ([`DaprApi::handle`]) on
//! arbitrary requests (method, path, query, headers, body), up to 8 per
//! input over one keep-alive HTTP/1.1 connection on an in-memory pipe (no
//! socket), on a fresh store. Every request must get an answer; an answer
//! of 4xx/5xx must carry a JSON `{"errorCode","message"}` body, and a JSON
//! answer must be valid JSON. The input is text (see `common/http_text.rs`);
//! a first line `@token` serves the API with an API token (`secret`).

#![no_main]

#[path = "common/mod.rs"]
mod common;
#[path = "common/http_text.rs"]
mod http_text;

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;
use wasm_state::api::dapr::{DaprApi, DaprOptions, KeyPrefix, ScopeTarget, StoreKind, StoreSpec};

/// Check one answer of the handler.
fn check(status: StatusCode, headers: &hyper::HeaderMap, body: &[u8]) {
    let json = headers
        .get(hyper::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if status.is_client_error() || status.is_server_error() {
        assert!(json, "{status}: an error answer is not JSON");
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|e| {
            panic!(
                "{status}: the error body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(body)
            )
        });
        assert!(
            v.get("errorCode").is_some_and(|c| c.is_string())
                && v.get("message").is_some_and(|m| m.is_string()),
            "{status}: the error body lacks errorCode/message: {v}"
        );
    } else if json
        && !body.is_empty()
        && let Err(e) = serde_json::from_slice::<serde_json::Value>(body)
    {
        panic!(
            "{status}: a JSON answer is not JSON ({e}): {:?}",
            String::from_utf8_lossy(body)
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let (token, data) = match data.strip_prefix(b"@token\n") {
        Some(rest) => (Some("secret".to_string()), rest),
        None => (None, data),
    };
    let requests = http_text::requests(data, 8);
    if requests.is_empty() {
        return;
    }
    let f = common::input_store();
    let (instance, account) = (common::unique("shop"), common::unique("account"));
    let mut instance_store = StoreSpec::default_store();
    instance_store.name = "orders".into();
    instance_store.kind = StoreKind::Redb(ScopeTarget::Instance(instance.clone()));
    instance_store.key_prefix = KeyPrefix::None;
    let api = DaprApi::new(
        &f.store,
        &account,
        vec![StoreSpec::default_store(), instance_store],
        DaprOptions {
            app_id: Some("myapp".into()),
            api_token: token,
            max_body_bytes: 64 << 10,
            body_timeout: Duration::from_secs(5),
            ..DaprOptions::default()
        },
    )
    .expect("the API");
    let api = Arc::new(api);
    common::rt().block_on(async {
        let (client_io, server_io) = tokio::io::duplex(1 << 16);
        let service = hyper::service::service_fn(move |req| {
            let api = api.clone();
            async move {
                let resp = api.handle(req).await;
                let (parts, body) = resp.into_parts();
                let bytes = body.collect().await.expect("a full body").to_bytes();
                if std::env::var_os("FUZZ_DEBUG").is_some() {
                    eprintln!("-> {} {:?}", parts.status, String::from_utf8_lossy(&bytes));
                }
                check(parts.status, &parts.headers, &bytes);
                Ok::<_, std::convert::Infallible>(Response::from_parts(parts, Full::new(bytes)))
            }
        });
        let server = tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server_io), service),
        );
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client_io))
            .await
            .expect("handshake");
        let client = tokio::spawn(conn);
        for req in requests {
            let label = format!("{} {}", req.method(), req.uri());
            if sender.ready().await.is_err() {
                break;
            }
            let sent = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req));
            match sent.await {
                Err(_) => panic!("{label}: no answer within 10 s"),
                // The server closed the connection (hyper refused what it read).
                Ok(Err(_)) => break,
                Ok(Ok(resp)) => {
                    let _ = resp.into_body().collect().await;
                }
            }
        }
        drop(sender);
        let _ = tokio::time::timeout(Duration::from_secs(10), client).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        common::wipe(&f.store, Some(&instance), Some(&account)).await;
    });
});
