//! A visit counter that knows nothing of wasm-state: its only state API is
//! the standard `wasi:keyvalue@0.2.0-draft` (bindings generated here with
//! wit-bindgen), so the same `.wasm` runs on `wasm-state serve` (durable,
//! shared by every request) and on `wasmtime serve -S keyvalue` (an
//! in-memory copy per request).
//!
//! - `POST /hit`: `increment("hits", 1)`, answers the new count;
//! - `GET /hits`: the count (0 if none);
//! - `GET /keys`: every key of the bucket, one per line (paging with the
//!   cursor);
//! - `?bucket=NAME` picks the bucket (default `""`).

use wstd::http::{Body, Request, Response, StatusCode};

wit_bindgen::generate!({
    path: "../../../wit/keyvalue/0.2.0-draft",
    world: "wasi:keyvalue/imports",
    generate_all,
});

use wasi::keyvalue::{atomics, store};

fn text(status: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Body::from(body))
        .expect("a valid response")
}

fn describe(e: store::Error) -> (StatusCode, String) {
    match e {
        store::Error::NoSuchStore => (StatusCode::NOT_FOUND, "no such store\n".into()),
        store::Error::AccessDenied => (StatusCode::FORBIDDEN, "access denied\n".into()),
        store::Error::Other(m) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{m}\n")),
    }
}

fn handle(method: &str, path: &str, bucket: &str) -> Result<String, store::Error> {
    let b = store::open(bucket)?;
    match (method, path) {
        ("POST", "/hit") => Ok(format!("{}\n", atomics::increment(&b, "hits", 1)?)),
        ("GET", "/hits") => {
            let n = b
                .get("hits")?
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_else(|| "0".into());
            Ok(format!("{n}\n"))
        }
        ("GET", "/keys") => {
            let mut out = String::new();
            let mut cursor = None;
            loop {
                let page = b.list_keys(cursor)?;
                for k in page.keys {
                    out.push_str(&k);
                    out.push('\n');
                }
                match page.cursor {
                    Some(c) => cursor = Some(c),
                    None => return Ok(out),
                }
            }
        }
        _ => Err(store::Error::Other(String::new())),
    }
}

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, wstd::http::Error> {
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    if !matches!(
        (method.as_str(), path.as_str()),
        ("POST", "/hit") | ("GET", "/hits") | ("GET", "/keys")
    ) {
        return Ok(text(StatusCode::NOT_FOUND, "not found\n".into()));
    }
    let bucket = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("bucket=")))
        .unwrap_or("")
        .to_string();
    Ok(match handle(&method, &path, &bucket) {
        Ok(body) => text(StatusCode::OK, body),
        Err(e) => {
            let (status, body) = describe(e);
            text(status, body)
        }
    })
}
