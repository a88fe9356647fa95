//! A watcher written with the SDK: it keeps, in its own instance scope,
//!
//! - `watch/audit`: one JSON line per change (`seq`, `scope`, `key`,
//!   `value` or null for a delete), exactly once per change: a change
//!   delivered again (delivery is at least once) has a seq not above
//!   `watch/last-seq/<queue>` and is skipped, in the same transaction;
//! - `watch/by-email`: a secondary index of the `user/<id>` values
//!   (`{"email": …}`) — email → id — kept up to date through sets and
//!   deletes (with `watch/email-of`, id → email).
//!
//! Its own writes are not reported back to it. For the tests: a change of
//! `slow/…` busy-waits the value's milliseconds first; a change of
//! `sleep/…` sleeps them (waiting in a host call, where the epoch deadline
//! cannot stop it); a change of `trap/…` counts the attempt (account
//! counter `trap-attempts`) and panics.
//!
//! It is also an HTTP handler: `POST /put?key=K` stores the body as the
//! value of K in the instance scope, `POST /del?key=K` deletes it, and
//! `GET /audit` answers the audit log, one line per change.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasm_state_sdk::State;
use wasm_state_sdk::watch::{Change, ChangedScope, Watcher};
use wstd::http::{Body, Request, Response, StatusCode};

struct Indexer;

impl Watcher for Indexer {
    fn on_change(change: Change) {
        let key = change.key().to_string();
        if key.starts_with("slow/") {
            let ms: u64 = change.value().ok().flatten().unwrap_or(0);
            let until = Instant::now() + Duration::from_millis(ms);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        }
        if key.starts_with("sleep/") {
            let ms: u64 = change.value().ok().flatten().unwrap_or(0);
            // Tests wait for this to know the call holds its slot.
            State::account()
                .increment("sleeps-started", 1)
                .expect("count the sleep");
            std::thread::sleep(Duration::from_millis(ms));
        }
        if key.starts_with("trap/") {
            State::account()
                .increment("trap-attempts", 1)
                .expect("count the attempt");
            panic!("asked to trap on {key}");
        }
        let (queue, scope) = match change.scope() {
            ChangedScope::Account => ("account", json!("account")),
            ChangedScope::Instance => ("instance", json!("instance")),
            ChangedScope::Session(id) => ("instance", json!({ "session": id })),
        };
        let value: Option<Value> = change.bytes().map(|b| {
            serde_json::from_slice(b).unwrap_or_else(|_| json!(String::from_utf8_lossy(b)))
        });
        let seq = change.seq();
        let last_key = format!("watch/last-seq/{queue}");
        let user = match change.scope() {
            ChangedScope::Instance => key.strip_prefix("user/").map(str::to_string),
            _ => None,
        };
        State::instance()
            .transaction(|tx| {
                let last: u64 = tx.get(&last_key)?.unwrap_or(0);
                if seq <= last {
                    return Ok(());
                }
                tx.set(&last_key, &seq);
                let line = json!({ "seq": seq, "scope": scope, "key": key, "value": value });
                tx.list_append("watch/audit", &[line.to_string()]);
                if let Some(id) = &user {
                    let old: Option<String> = tx.map_get_value("watch/email-of", id)?;
                    if let Some(old) = old {
                        tx.map_delete("watch/by-email", &[old.as_str()]);
                    }
                    match value.as_ref().and_then(|v| v["email"].as_str()) {
                        Some(email) => {
                            tx.map_set("watch/by-email", [(email, id.as_str())]);
                            tx.map_set("watch/email-of", [(id.as_str(), email)]);
                        }
                        None => {
                            tx.map_delete("watch/email-of", &[id.as_str()]);
                        }
                    }
                }
                Ok(())
            })
            .expect("record the change");
    }
}

wasm_state_sdk::export_watcher!(Indexer);

fn reply(status: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(body))
        .expect("a valid response")
}

#[wstd::http_server]
async fn main(mut request: Request<Body>) -> Result<Response<Body>, wstd::http::Error> {
    let path = request.uri().path().to_string();
    let key = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("key=")))
        .map(str::to_string);
    let state = State::instance();
    let result = match (request.method().as_str(), path.as_str(), key) {
        ("POST", "/put", Some(k)) => {
            let body = request.body_mut().contents().await?.to_vec();
            state.set_bytes(&k, &body).map(|_| String::new())
        }
        ("POST", "/del", Some(k)) => state.delete(&k).map(|d| format!("{d}\n")),
        ("GET", "/audit", None) => state
            .list_range::<String>("watch/audit", 0, -1)
            .map(|lines| lines.iter().map(|l| format!("{l}\n")).collect()),
        _ => return Ok(reply(StatusCode::NOT_FOUND, "not found\n".into())),
    };
    Ok(match result {
        Ok(body) => reply(StatusCode::OK, body),
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    })
}
