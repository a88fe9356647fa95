//! The VCR State sample over HTTP, as a `wasi:http` handler served by
//! `wasm-state serve`:
//!
//! - `POST /add-customer` with a JSON customer stores it in instance state,
//!   in the map `customers` keyed by phone number (VCR's `mapSet`);
//! - `GET /on-phone-call?number=…` answers the customer's name (`mapGetValue`);
//! - `POST /cart/add?item=…` and `GET /cart`: a cart in session state. The
//!   session comes from the request (`x-session-id` header or the
//!   `wasm_state_session` cookie); a request without one gets a new session
//!   (TTL 30 min) whose id comes back in both;
//! - `POST /visit`: one read and one durable write of instance state.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasm_state_sdk::{Error as StateError, Session, State};
use wstd::http::{Body, Request, Response, StatusCode};

/// TTL of a cart session.
const CART_TTL: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Serialize, Deserialize)]
struct Customer {
    phone: String,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
}

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, wstd::http::Error> {
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let result = match (method.as_str(), path.as_str()) {
        ("POST", "/add-customer") => add_customer(request).await,
        ("GET", "/on-phone-call") => on_phone_call(&request),
        ("POST", "/cart/add") => cart_add(&request),
        ("GET", "/cart") => cart_show(&request),
        ("POST", "/visit") => visit(),
        _ => Ok(reply(StatusCode::NOT_FOUND, "not found\n")),
    };
    Ok(result.unwrap_or_else(|e| {
        let status = match e {
            StateError::NoSuchSession => StatusCode::NOT_FOUND,
            StateError::InvalidArgument(_)
            | StateError::KeyTooLarge
            | StateError::ValueTooLarge => StatusCode::BAD_REQUEST,
            // Out of storage or sessions: the operator's limits.
            StateError::QuotaExceeded => StatusCode::INSUFFICIENT_STORAGE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        reply(status, format!("{e}\n"))
    }))
}

fn reply(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut resp = Response::new(Body::from(body.into()));
    *resp.status_mut() = status;
    resp
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut resp = reply(status, value.to_string());
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

async fn add_customer(mut request: Request<Body>) -> Result<Response<Body>, StateError> {
    let customer: Customer = match request.body_mut().json().await {
        Ok(c) => c,
        Err(e) => {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                format!("expected a JSON customer {{\"phone\",\"name\"}}: {e}\n"),
            ));
        }
    };
    if customer.phone.is_empty() {
        return Ok(reply(
            StatusCode::BAD_REQUEST,
            "the customer needs a phone number\n",
        ));
    }
    State::instance().map_set("customers", [(customer.phone.as_str(), &customer)])?;
    Ok(reply(StatusCode::OK, "OK\n"))
}

fn on_phone_call(request: &Request<Body>) -> Result<Response<Body>, StateError> {
    let Some(number) = query(request, "number") else {
        return Ok(reply(StatusCode::BAD_REQUEST, "pass ?number=…\n"));
    };
    let number = number.replace("%2B", "+");
    match State::instance().map_get_value::<Customer>("customers", &number)? {
        Some(c) => Ok(reply(StatusCode::OK, c.name)),
        None => Ok(reply(
            StatusCode::NOT_FOUND,
            format!("no customer with number {number}\n"),
        )),
    }
}

fn headers(request: &Request<Body>) -> impl Iterator<Item = (&str, &[u8])> {
    request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
}

fn cart_view(session: &Session, created: bool) -> Result<Response<Body>, StateError> {
    let cart = State::session(session)?;
    let items: Vec<String> = cart.list_range("items", 0, -1)?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let body = serde_json::json!({
        "session": session.id(),
        "items": items,
        "ttl_seconds": session.expires_at_ms().saturating_sub(now_ms) / 1000,
    });
    let mut resp = json(StatusCode::OK, &body);
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

fn cart_add(request: &Request<Body>) -> Result<Response<Body>, StateError> {
    let Some(item) = query(request, "item").filter(|i| !i.is_empty()) else {
        return Ok(reply(StatusCode::BAD_REQUEST, "pass ?item=…\n"));
    };
    let (session, created) = Session::from_request_or_create(headers(request), Some(CART_TTL))?;
    State::session(&session)?.list_append("items", &[item])?;
    cart_view(&session, created)
}

fn cart_show(request: &Request<Body>) -> Result<Response<Body>, StateError> {
    match Session::from_request(headers(request))? {
        Some(session) => cart_view(&session, false),
        None => Ok(reply(
            StatusCode::NOT_FOUND,
            "no session: add an item first\n",
        )),
    }
}

fn visit() -> Result<Response<Body>, StateError> {
    let state = State::instance();
    let before: i64 = state.get("visits")?.unwrap_or(0);
    let now = state.increment("visits", 1)?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "before": before, "visits": now }),
    ))
}
