//! A `wasi:http` handler that abuses its host on demand, for
//! `tests/tests/abuse.rs` (docs/reliability.md):
//!
//! - `/loop`: an infinite loop (the deadline stops it);
//! - `/bomb`: allocates without end (the memory limit stops it);
//! - `/recurse`: unbounded recursion (the wasm stack limit stops it);
//! - `/fill`: writes 64 KiB values under new keys (never used before) until
//!   the instance quota refuses one; answers how many were written and the
//!   error;
//! - `/sessions`: creates sessions until refused; answers the count and the
//!   error;
//! - `/bigtx`: one transaction beyond the op limit and one whose values
//!   exceed the quota; answers a JSON report of how each was refused and how
//!   many of its keys are visible afterwards (must be none);
//! - `/stream`: a response body streamed without end;
//! - `/slurp`: reads the request body to its end and answers its size;
//! - `/sleep?ms=N`: waits N ms in a host call (no guest code runs meanwhile);
//!   with `&then=KEY`, then sets instance key KEY to `late` and answers how
//!   that went (a write that outlives its instance's destroy);
//! - `/reset`: deletes what `/fill` and `/bigtx` wrote;
//! - `/ok`: a normal request (one state read).
//!
//! State errors answer with a status for their kind (quota → 507, too many
//! operations or too large → 413, …) and the error's text.

use std::convert::Infallible;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use serde_json::{Value, json};
use wasm_state_sdk::{Error as StateError, KeyListing, Session, State};
use wstd::http::body::{Bytes, Frame, HttpBody};
use wstd::http::{Body, BodyExt, Request, Response, StatusCode};

/// Size of each value `/fill` and `/bigtx` write, and of each chunk of
/// `/stream`.
const CHUNK: usize = 64 << 10;
/// How many writes `/fill` tries before giving up on being refused.
const FILL_CAP: u32 = 100_000;
/// How many sessions `/sessions` tries before giving up on being refused.
const SESSION_CAP: u32 = 100_000;
/// Operations of the `/bigtx` transaction that is too long (the host's
/// default limit is 128).
const BIGTX_OPS: u32 = 200;
/// Values (of [`CHUNK`] bytes) of the `/bigtx` transaction that is too
/// large: 6.25 MiB, beyond a quota of up to 6 MiB, and within the op limit.
const BIGTX_VALUES: u32 = 100;

static DATA: [u8; CHUNK] = [b'x'; CHUNK];

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, wstd::http::Error> {
    let path = request.uri().path().to_string();
    let result = match path.as_str() {
        "/ok" => ok(),
        "/loop" => spin(),
        "/bomb" => bomb(),
        "/recurse" => Ok(reply(
            StatusCode::OK,
            format!("{}\n", recurse(black_box(0))),
        )),
        "/fill" => fill(),
        "/sessions" => sessions(),
        "/bigtx" => bigtx(),
        "/reset" => reset(),
        "/stream" => Ok(Response::new(Body::from_http_body(Endless))),
        "/slurp" => return Ok(slurp(request).await),
        "/sleep" => {
            let ms = query(&request, "ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000);
            wstd::task::sleep(Duration::from_millis(ms).into()).await;
            match query(&request, "then") {
                Some(key) => State::instance()
                    .set(key, "late")
                    .map(|_| reply(StatusCode::OK, format!("slept {ms} ms, then wrote {key}\n"))),
                None => Ok(reply(StatusCode::OK, format!("slept {ms} ms\n"))),
            }
        }
        _ => Ok(reply(StatusCode::NOT_FOUND, "not found\n")),
    };
    Ok(result.unwrap_or_else(|e| reply(status_of(&e), format!("{e}\n"))))
}

/// The status a state error answers with.
fn status_of(e: &StateError) -> StatusCode {
    match e {
        StateError::QuotaExceeded => StatusCode::INSUFFICIENT_STORAGE,
        StateError::TooManyOperations | StateError::ValueTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        StateError::KeyTooLarge | StateError::InvalidArgument(_) | StateError::Json(_) => {
            StatusCode::BAD_REQUEST
        }
        StateError::NoSuchSession | StateError::NotFound => StatusCode::NOT_FOUND,
        StateError::Conflict { .. } | StateError::EtagMismatch | StateError::AlreadyExists => {
            StatusCode::CONFLICT
        }
        StateError::AccessDenied => StatusCode::FORBIDDEN,
        StateError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        StateError::Transaction { source, .. } => status_of(source),
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The error's kind, for the JSON reports.
fn kind_of(e: &StateError) -> String {
    match e {
        StateError::Transaction { source, .. } => kind_of(source),
        other => {
            let debug = format!("{other:?}");
            debug.split('(').next().unwrap_or_default().to_string()
        }
    }
}

fn reply(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut resp = Response::new(Body::from(body.into()));
    *resp.status_mut() = status;
    resp
}

fn json_reply(status: StatusCode, value: &Value) -> Response<Body> {
    let mut resp = reply(status, format!("{value}\n"));
    resp.headers_mut().insert(
        "content-type",
        "application/json".parse().expect("static header"),
    );
    resp
}

fn query<'a>(request: &'a Request<Body>, name: &str) -> Option<&'a str> {
    request.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then_some(v)
    })
}

/// A normal request: one read of instance state.
fn ok() -> Result<Response<Body>, StateError> {
    let state = State::instance();
    let filled = state
        .keys(KeyListing::prefix("fill/"))
        .next()
        .transpose()?
        .is_some();
    Ok(json_reply(
        StatusCode::OK,
        &json!({ "ok": true, "filled": filled }),
    ))
}

fn spin() -> Result<Response<Body>, StateError> {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn bomb() -> Result<Response<Body>, StateError> {
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        held.push(black_box(vec![1u8; 1 << 20]));
    }
}

/// Recursion without end: small frames on the wasm call stack (nothing in
/// linear memory), each call kept opaque so it is not turned into a loop.
fn recurse(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return 0;
    }
    black_box(recurse(black_box(depth + 1))).wrapping_add(1)
}

/// 64 KiB values under new keys until a write is refused.
fn fill() -> Result<Response<Body>, StateError> {
    let state = State::instance();
    // Keys no earlier request used: every write adds to the stored bytes.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut written = 0u32;
    while written < FILL_CAP {
        if let Err(e) = state.set_bytes(&format!("fill/{run}/{written:05}"), &DATA) {
            return Ok(json_reply(
                status_of(&e),
                &json!({
                    "written": written,
                    "bytes": written as u64 * CHUNK as u64,
                    "kind": kind_of(&e),
                    "error": e.to_string(),
                }),
            ));
        }
        written += 1;
    }
    Ok(json_reply(
        StatusCode::OK,
        &json!({ "written": written, "error": null }),
    ))
}

/// Sessions until one is refused.
fn sessions() -> Result<Response<Body>, StateError> {
    let mut created = 0u32;
    while created < SESSION_CAP {
        if let Err(e) = Session::create(Some(Duration::from_secs(600))) {
            return Ok(json_reply(
                status_of(&e),
                &json!({
                    "created": created,
                    "kind": kind_of(&e),
                    "error": e.to_string(),
                }),
            ));
        }
        created += 1;
    }
    Ok(json_reply(
        StatusCode::OK,
        &json!({ "created": created, "error": null }),
    ))
}

/// How many keys start with `prefix`.
fn count(state: &State, prefix: &str) -> Result<usize, StateError> {
    let mut n = 0;
    for key in state.keys(KeyListing::prefix(prefix)) {
        key?;
        n += 1;
    }
    Ok(n)
}

/// Two transactions the host must refuse whole, and proof that nothing of
/// either was written.
fn bigtx() -> Result<Response<Body>, StateError> {
    let state = State::instance();
    let report = |queued: u32, bytes: u64, result: Result<(), StateError>, prefix: &str| {
        let visible = count(&state, prefix)?;
        Ok::<_, StateError>(match result {
            Ok(()) => json!({
                "queued": queued, "bytes": bytes, "committed": true,
                "visible": visible,
            }),
            Err(e) => json!({
                "queued": queued, "bytes": bytes, "committed": false,
                "kind": kind_of(&e), "error": e.to_string(), "visible": visible,
            }),
        })
    };
    // Beyond the op limit: small values, too many of them.
    let ops = state.transaction_with_retries(1, |tx| {
        for i in 0..BIGTX_OPS {
            tx.set_bytes(&format!("bigtx/ops/{i:05}"), b"1");
        }
        Ok(())
    });
    let ops = report(BIGTX_OPS, u64::from(BIGTX_OPS), ops, "bigtx/ops/")?;
    // Within the op limit, beyond the quota: the first values fit, the
    // later ones do not.
    let quota = state.transaction_with_retries(1, |tx| {
        for i in 0..BIGTX_VALUES {
            tx.set_bytes(&format!("bigtx/quota/{i:05}"), &DATA);
        }
        Ok(())
    });
    let bytes = u64::from(BIGTX_VALUES) * CHUNK as u64;
    let quota = report(BIGTX_VALUES, bytes, quota, "bigtx/quota/")?;
    Ok(json_reply(
        StatusCode::OK,
        &json!({ "ops": ops, "quota": quota }),
    ))
}

/// Deletes what `/fill` and `/bigtx` wrote.
fn reset() -> Result<Response<Body>, StateError> {
    let state = State::instance();
    let mut deleted = 0;
    for prefix in ["fill/", "bigtx/"] {
        deleted += state.delete_prefix(prefix)?;
    }
    // And a write succeeds again.
    state.set("reset", &deleted)?;
    Ok(json_reply(StatusCode::OK, &json!({ "deleted": deleted })))
}

/// A response body that never ends: 64 KiB chunks, as fast as the host
/// takes them.
struct Endless;

impl HttpBody for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&DATA)))))
    }
}

/// Reads the request body frame by frame (nothing kept) and answers its size.
async fn slurp(request: Request<Body>) -> Response<Body> {
    let mut body = request.into_body().into_boxed_body();
    let mut bytes: u64 = 0;
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    bytes += data.len() as u64;
                }
            }
            Some(Err(e)) => {
                return json_reply(
                    StatusCode::BAD_REQUEST,
                    &json!({ "bytes": bytes, "error": format!("{e:#}") }),
                );
            }
        }
    }
    json_reply(StatusCode::OK, &json!({ "bytes": bytes }))
}
