//! {{name}}: a `wasi:http` handler with durable state, served by
//! `wasm-state serve` (see `wasm-state.toml`).
//!
//! - `GET /` counts visits in instance state: the count is kept across
//!   requests and restarts, until the instance is destroyed
//!   (`wasm-state instances destroy {{name}}`);
//! - `GET /session` counts visits per session, in session state: a request
//!   without a session (`x-session-id` header or `wasm_state_session`
//!   cookie) gets a new one (TTL 30 min), whose id comes back in both;
//! - `GET /echo?…` answers the request's method, path and query as JSON.

use std::time::Duration;

use wasm_state_sdk::{Error as StateError, Session, State};
use wstd::http::{Body, Request, Response, StatusCode};

/// The instance-state counter of `GET /`.
const VISITS: &str = "visits";
/// How long a session of `GET /session` lives.
const SESSION_TTL: Duration = Duration::from_secs(30 * 60);

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, wstd::http::Error> {
    let result = match (request.method().as_str(), request.uri().path()) {
        ("GET", "/") => visit(),
        ("GET", "/session") => session_visit(&request),
        ("GET", "/echo") => Ok(echo(&request)),
        _ => Ok(text(
            StatusCode::NOT_FOUND,
            "not found; try GET /, GET /session or GET /echo?msg=hi\n",
        )),
    };
    Ok(result.unwrap_or_else(|e: StateError| {
        text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the state operation failed: {e}\n"),
        )
    }))
}

/// `GET /`: one more visit, in instance state.
fn visit() -> Result<Response<Body>, StateError> {
    let visits = State::instance().increment(VISITS, 1)?;
    Ok(text(
        StatusCode::OK,
        format!("Hello from {{name}}! Visits: {visits}\n"),
    ))
}

/// `GET /session`: one more visit of this session, in session state.
fn session_visit(request: &Request<Body>) -> Result<Response<Body>, StateError> {
    let headers = request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()));
    let (session, created) = Session::from_request_or_create(headers, Some(SESSION_TTL))?;
    let visits = State::session(&session)?.increment(VISITS, 1)?;
    let mut resp = json(&serde_json::json!({ "session": session.id(), "visits": visits }));
    if created {
        let h = resp.headers_mut();
        h.insert(
            "set-cookie",
            session.cookie().parse().expect("cookie is a valid header"),
        );
        h.insert(
            Session::HEADER,
            session.id().parse().expect("ids are URL-safe"),
        );
    }
    Ok(resp)
}

/// `GET /echo?…`: the request, as JSON (query values as sent, not decoded).
fn echo(request: &Request<Body>) -> Response<Body> {
    let query: serde_json::Map<String, serde_json::Value> = request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k.to_string(), v.into())
        })
        .collect();
    json(&serde_json::json!({
        "method": request.method().as_str(),
        "path": request.uri().path(),
        "query": query,
    }))
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut resp = Response::new(Body::from(body.into()));
    *resp.status_mut() = status;
    resp
}

fn json(value: &serde_json::Value) -> Response<Body> {
    let mut resp = text(StatusCode::OK, format!("{value}\n"));
    resp.headers_mut().insert(
        "content-type",
        "application/json".parse().expect("static header"),
    );
    resp
}
