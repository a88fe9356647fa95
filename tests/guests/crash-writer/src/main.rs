//! The guest of the crash-safety harness (`tests/tests/crash.rs`): a
//! wasi:http handler where every write request does ONE durable operation
//! on the instance scope and answers 200 only after it returned `Ok`.
//!
//! Writers (`W` a writer id, `N` its sequence number for that kind, 1, 2, 3…):
//!
//! - `POST /set?w=W&n=N`: value `v/W/N` = "N";
//! - `POST /map?w=W&n=N`: field `N` of map `m/W` = "N";
//! - `POST /list?w=W&n=N`: appends "N" to list `l/W`;
//! - `POST /tx?w=W&n=N`: one transaction that reads `a/W` (it must be N-1:
//!   transactions of one writer apply in sequence, else 409 and nothing
//!   changes), sets `a/W` = N and `b/W` = N and increments `tx/W`; after k
//!   committed transactions a/W == b/W == tx/W == k, and any partly applied
//!   one breaks that;
//! - `POST /incr?w=W`: increments counter `c/W`, answers the new value;
//! - `POST /fail?w=W&n=N`: a batch that appends "fail-N" to `l/W`, adds 1000
//!   to `c/W`, sets `f/W` and field `fail` of `m/W`, then checks that
//!   `guard/W` exists — it never does, so the batch must fail (409) and leave
//!   no trace.
//!
//! A failed operation answers with header `x-op-failed: definite` when the
//! SDK guarantees it changed nothing (every error but `Unavailable`, which
//! answers 503 without it: such a write may or may not have been applied).
//!
//! Readers: `GET /check?w=W` (everything of writer W, reading the
//! transaction keys and the counter in one atomic `get_many`) and
//! `GET /txsnap?w=W` (`[a, b, tx]`, atomically).
//!
//! For the sweeper and quota trials:
//!
//! - `POST /ttl?w=W&n=N&count=C&ttl_ms=T`: one batch setting the durable
//!   `k/W/NNNNNN` and C keys `e/W/N/i` that expire after T ms;
//! - `GET /ttlcheck`: the durable `k/` keys by writer and how many `e/` keys
//!   are visible (with a few names);
//! - `POST /copy?w=W&upto=K`: sets `k/W/1..=K` as `/ttl` would (a control
//!   instance holding exactly the survivors, to compare usage);
//! - `POST /fill?size=S`: sets `fill/i` values of S bytes until the quota
//!   stops it; answers how many were accepted.
//!
//! And for the destroy trial: `POST /bulk?from=F&count=C` sets `d/…` values,
//! map fields of `dm` and items of `dl`, in one batch.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use wasm_state_sdk::{Condition, Error, SetOptions, State};
use wstd::http::{Body, Request, Response, StatusCode};

/// Keys per `get_many` call (the host's default limit).
const CHUNK: usize = 128;

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, wstd::http::Error> {
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let q = Query(request.uri().query().unwrap_or_default().to_string());
    let state = State::instance();
    let result = match (method.as_str(), path.as_str()) {
        ("POST", "/set") => set(&state, &q),
        ("POST", "/map") => map(&state, &q),
        ("POST", "/list") => list(&state, &q),
        ("POST", "/tx") => tx(&state, &q),
        ("POST", "/incr") => incr(&state, &q),
        ("POST", "/fail") => fail(&state, &q),
        ("GET", "/check") => check(&state, &q),
        ("GET", "/txsnap") => txsnap(&state, &q),
        ("POST", "/ttl") => ttl(&state, &q),
        ("GET", "/ttlcheck") => ttlcheck(&state),
        ("POST", "/copy") => copy(&state, &q),
        ("POST", "/fill") => fill(&state, &q),
        ("POST", "/bulk") => bulk(&state, &q),
        _ => return Ok(reply(StatusCode::NOT_FOUND, "not found\n".into())),
    };
    Ok(match result {
        Ok(body) => reply(StatusCode::OK, body),
        Err(Failure::BadRequest(m)) => reply(StatusCode::BAD_REQUEST, m),
        Err(Failure::State(e)) => {
            let status = match &e {
                Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                Error::QuotaExceeded => StatusCode::INSUFFICIENT_STORAGE,
                e if e.is_condition_failed() => StatusCode::CONFLICT,
                Error::InvalidArgument(_) => StatusCode::CONFLICT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let mut resp = reply(status, format!("{e}\n"));
            if !matches!(e, Error::Unavailable(_)) {
                resp.headers_mut()
                    .insert("x-op-failed", "definite".parse().expect("static header"));
            }
            resp
        }
    })
}

enum Failure {
    BadRequest(String),
    State(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::State(e)
    }
}

type Answer = Result<String, Failure>;

fn reply(status: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(body))
        .expect("a valid response")
}

/// The request's query string.
struct Query(String);

impl Query {
    fn str(&self, name: &str) -> Result<&str, Failure> {
        self.0
            .split('&')
            .find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k == name).then_some(v)
            })
            .ok_or_else(|| Failure::BadRequest(format!("missing query parameter {name}\n")))
    }

    fn num(&self, name: &str) -> Result<u64, Failure> {
        self.str(name)?
            .parse()
            .map_err(|_| Failure::BadRequest(format!("{name} must be a number\n")))
    }
}

fn set(state: &State, q: &Query) -> Answer {
    let (w, n) = (q.str("w")?, q.num("n")?);
    state.set(&format!("v/{w}/{n}"), &n.to_string())?;
    Ok(String::new())
}

fn map(state: &State, q: &Query) -> Answer {
    let (w, n) = (q.str("w")?, q.num("n")?);
    let n = n.to_string();
    state.map_set(&format!("m/{w}"), [(n.as_str(), &n)])?;
    Ok(String::new())
}

fn list(state: &State, q: &Query) -> Answer {
    let (w, n) = (q.str("w")?, q.num("n")?);
    state.list_append(&format!("l/{w}"), &[n.to_string()])?;
    Ok(String::new())
}

fn tx(state: &State, q: &Query) -> Answer {
    let (w, n) = (q.str("w")?, q.num("n")?);
    let (a, b, c) = (format!("a/{w}"), format!("b/{w}"), format!("tx/{w}"));
    state.transaction(|t| {
        let prev: u64 = t.get(&a)?.unwrap_or(0);
        if prev + 1 != n {
            return Err(Error::InvalidArgument(format!(
                "transaction {n} out of sequence: {a} is {prev}"
            )));
        }
        t.set(&a, &n).set(&b, &n).increment(&c, 1);
        Ok(())
    })?;
    Ok(String::new())
}

fn incr(state: &State, q: &Query) -> Answer {
    let w = q.str("w")?;
    Ok(state.increment(&format!("c/{w}"), 1)?.to_string())
}

fn fail(state: &State, q: &Query) -> Answer {
    let (w, n) = (q.str("w")?, q.num("n")?);
    state
        .batch()
        .list_append(&format!("l/{w}"), &[format!("fail-{n}")])
        .increment(&format!("c/{w}"), 1000)
        .set(&format!("f/{w}"), &n)
        .map_set(&format!("m/{w}"), [("fail", &n)])
        .check(&format!("guard/{w}"), Condition::IfExists)
        .commit()?;
    Ok("the failing batch committed\n".into())
}

/// Reads `keys` with `get_many`, `CHUNK` at a time.
fn get_all(state: &State, keys: &[String]) -> Result<Vec<Option<Value>>, Error> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(CHUNK) {
        out.extend(state.get_many::<Value, _>(chunk)?);
    }
    Ok(out)
}

fn check(state: &State, q: &Query) -> Answer {
    let w = q.str("w")?;
    let prefix = format!("v/{w}/");
    let keys = state.keys(prefix.as_str()).collect::<Result<Vec<_>, _>>()?;
    let values = get_all(state, &keys)?;
    let sets: Vec<Value> = keys
        .iter()
        .zip(values)
        .map(|(k, v)| json!([&k[prefix.len()..], v]))
        .collect();
    let map: BTreeMap<String, Value> = state.map_get_all(&format!("m/{w}"))?;
    let list: Vec<Value> = state.list_range(&format!("l/{w}"), 0, -1)?;
    let singles = [
        format!("a/{w}"),
        format!("b/{w}"),
        format!("tx/{w}"),
        format!("c/{w}"),
        format!("f/{w}"),
    ];
    let s: Vec<Option<Value>> = state.get_many(&singles)?;
    let guard = state.exists(&format!("guard/{w}"))?;
    Ok(json!({
        "sets": sets, "map": map, "list": list,
        "a": s[0], "b": s[1], "tx": s[2], "c": s[3], "f": s[4], "guard": guard,
    })
    .to_string())
}

fn txsnap(state: &State, q: &Query) -> Answer {
    let w = q.str("w")?;
    let keys = [format!("a/{w}"), format!("b/{w}"), format!("tx/{w}")];
    let s: Vec<Option<i64>> = state.get_many(&keys)?;
    Ok(json!(s).to_string())
}

/// The durable key of `/ttl` and `/copy`, and its value (fixed sizes).
fn durable(w: &str, n: u64) -> (String, String) {
    (format!("k/{w}/{n:06}"), format!("durable-{n:06}"))
}

fn ttl(state: &State, q: &Query) -> Answer {
    let (w, n) = (q.str("w")?, q.num("n")?);
    let count = q.num("count")?.min(120);
    let ttl = Duration::from_millis(q.num("ttl_ms")?);
    let (key, value) = durable(w, n);
    let mut batch = state.batch();
    batch.set(&key, &value);
    for i in 0..count {
        batch.set_with(
            &format!("e/{w}/{n:06}/{i:03}"),
            &format!("expiring-{n:06}-{i:03}"),
            SetOptions::ttl(ttl),
        );
    }
    batch.commit()?;
    Ok(String::new())
}

fn ttlcheck(state: &State) -> Answer {
    let mut durable: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for key in state.keys("k/") {
        let key = key?;
        let mut parts = key.splitn(3, '/').skip(1);
        let (Some(w), Some(n)) = (parts.next(), parts.next()) else {
            continue;
        };
        durable.entry(w.to_string()).or_default().push(json!(n));
    }
    let mut expiring = 0u64;
    let mut sample = Vec::new();
    for key in state.keys("e/") {
        let key = key?;
        expiring += 1;
        if sample.len() < 5 {
            sample.push(key);
        }
    }
    Ok(json!({ "durable": durable, "expiring": expiring, "sample": sample }).to_string())
}

fn copy(state: &State, q: &Query) -> Answer {
    let (w, upto) = (q.str("w")?, q.num("upto")?);
    let pairs: Vec<(String, String)> = (1..=upto).map(|n| durable(w, n)).collect();
    for chunk in pairs.chunks(CHUNK) {
        state.set_many(chunk.iter().map(|(k, v)| (k.clone(), v)))?;
    }
    Ok(String::new())
}

fn fill(state: &State, q: &Query) -> Answer {
    let size = usize::try_from(q.num("size")?).unwrap_or(usize::MAX);
    let value = vec![b'x'; size];
    let mut accepted = 0u64;
    loop {
        match state.set_bytes(&format!("fill/{accepted:06}"), &value) {
            Ok(_) => accepted += 1,
            Err(Error::QuotaExceeded) => return Ok(accepted.to_string()),
            Err(e) => return Err(e.into()),
        }
    }
}

fn bulk(state: &State, q: &Query) -> Answer {
    let (from, count) = (q.num("from")?, q.num("count")?.min(120));
    let ids: Vec<String> = (from..from + count).map(|i| format!("{i:06}")).collect();
    let mut batch = state.batch();
    for id in &ids {
        batch.set(&format!("d/{id}"), &format!("destroy-me-{id}"));
    }
    batch
        .map_set("dm", ids.iter().map(|id| (id.as_str(), id)))
        .list_append("dl", &ids)
        .commit()?;
    Ok(String::new())
}
