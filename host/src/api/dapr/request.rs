//! What a request carries: its route, its query-string parameters
//! (`metadata.*`, `consistency`, `concurrency`), and a size-limited body.

use std::collections::BTreeMap;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, StatusCode};

use super::error::ApiError;

/// The routes of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /v1.0/healthz`.
    Healthz,
    /// `GET /v1.0/healthz/outbound`.
    HealthzOutbound,
    /// `GET /v1.0/metadata`.
    Metadata,
    /// `POST /v1.0/state/{store}`.
    Save(String),
    /// `POST|PUT /v1.0/state/{store}/bulk`.
    Bulk(String),
    /// `POST|PUT /v1.0/state/{store}/transaction`.
    Transaction(String),
    /// `GET /v1.0/state/{store}/{key}`.
    Get(String, String),
    /// `DELETE /v1.0/state/{store}/{key}`.
    Delete(String, String),
    /// `POST|PUT /v1.0-alpha1/state/{store}/query`.
    Query(String),
}

/// Is this request answered without the API token? Only `GET` of the two
/// health checks, as Dapr (checked before routing, so a wrong token gets
/// `401` whatever the path).
pub fn is_public(method: &Method, path: &str) -> bool {
    (*method == Method::GET || *method == Method::HEAD)
        && matches!(
            path.trim_matches('/'),
            "v1.0/healthz" | "v1.0/healthz/outbound"
        )
}

/// Decode a path segment as Dapr does (Go's `url.QueryUnescape`: `%XX`
/// escapes, and `+` is a space).
fn decode(segment: &str) -> Result<String, ApiError> {
    let segment = segment.replace('+', " ");
    percent_encoding::percent_decode_str(&segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::malformed("the path is not valid UTF-8 once percent-decoded"))
}

/// `405` with the methods the path takes, in the message and the `Allow`
/// header (RFC 9110 requires it).
fn not_allowed(method: &Method, allow: &'static str, hint: &str) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "ERR_METHOD_NOT_ALLOWED",
        format!("{method} is not allowed here; use {hint}"),
    )
    .with_allow(allow)
}

/// Is `segments` the path of a route that takes no key?
fn keyless(segments: &[&str], post_put: bool) -> bool {
    match segments {
        ["v1.0", "healthz" | "metadata"]
        | ["v1.0", "healthz", "outbound"]
        | ["v1.0-alpha1", "state", _, "query"] => true,
        ["v1.0", "state", store] => !store.is_empty(),
        ["v1.0", "state", _, "bulk" | "transaction"] => post_put,
        _ => false,
    }
}

/// Route a request by method and (still percent-encoded) path.
pub fn route(method: &Method, path: &str) -> Result<Route, ApiError> {
    let mut segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let post_put = *method == Method::POST || *method == Method::PUT;
    // Dapr's router strips a trailing slash; so does this one on the routes
    // that take no key (on a key's route `k/` is the key `k/`: keys may
    // hold `/`).
    if segments.len() > 1
        && segments.last() == Some(&"")
        && keyless(&segments[..segments.len() - 1], post_put)
    {
        segments.pop();
    }
    match segments.as_slice() {
        ["v1.0", "healthz"] => match *method {
            Method::GET | Method::HEAD => Ok(Route::Healthz),
            _ => Err(not_allowed(method, "GET, HEAD", "GET")),
        },
        ["v1.0", "healthz", "outbound"] => match *method {
            Method::GET | Method::HEAD => Ok(Route::HealthzOutbound),
            _ => Err(not_allowed(method, "GET, HEAD", "GET")),
        },
        ["v1.0", "metadata"] => match *method {
            Method::GET => Ok(Route::Metadata),
            _ => Err(not_allowed(method, "GET", "GET")),
        },
        ["v1.0", "state", store] if !store.is_empty() => match *method {
            Method::POST | Method::PUT => Ok(Route::Save(decode(store)?)),
            _ => Err(not_allowed(
                method,
                "POST, PUT",
                "POST or PUT to save state",
            )),
        },
        ["v1.0", "state", store, "bulk"] if post_put => Ok(Route::Bulk(decode(store)?)),
        ["v1.0", "state", store, "transaction"] if post_put => {
            Ok(Route::Transaction(decode(store)?))
        }
        ["v1.0", "state", store, rest @ ..] if !store.is_empty() && !rest.is_empty() => {
            let key = rest
                .iter()
                .map(|s| decode(s))
                .collect::<Result<Vec<_>, _>>()?
                .join("/");
            match *method {
                Method::GET => Ok(Route::Get(decode(store)?, key)),
                Method::DELETE => Ok(Route::Delete(decode(store)?, key)),
                // `…/bulk` and `…/transaction` are also the keys `bulk` and
                // `transaction` (as in Dapr's router).
                _ if matches!(rest, ["bulk" | "transaction"]) => Err(not_allowed(
                    method,
                    "GET, DELETE, POST, PUT",
                    "POST or PUT (GET or DELETE for the key of that name)",
                )),
                _ => Err(not_allowed(
                    method,
                    "GET, DELETE",
                    "GET or DELETE for a key (POST/PUT only for …/bulk and …/transaction)",
                )),
            }
        }
        ["v1.0-alpha1", "state", store, "query"] if !store.is_empty() => {
            if post_put {
                Ok(Route::Query(decode(store)?))
            } else {
                Err(not_allowed(method, "POST, PUT", "POST or PUT"))
            }
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ERR_NOT_FOUND",
            format!(
                "no API at {path}; this server answers Dapr's state API: /v1.0/state/{{store}}[/{{key}}|/bulk|/transaction], /v1.0-alpha1/state/{{store}}/query, /v1.0/healthz, /v1.0/metadata"
            ),
        )),
    }
}

/// Query-string parameters of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// `metadata.X=Y` pairs, by X.
    pub metadata: BTreeMap<String, String>,
    /// Every other parameter.
    pub other: BTreeMap<String, String>,
}

impl Params {
    /// Parse a query string (`None`: none).
    pub fn parse(query: Option<&str>) -> Params {
        let mut p = Params::default();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match k.strip_prefix("metadata.") {
                // A parameter given twice: the first counts, as in Dapr
                // (Go's `Query().Get`).
                Some(name) => p.metadata.entry(name.to_string()).or_insert(v.into_owned()),
                None => p.other.entry(k.into_owned()).or_insert(v.into_owned()),
            };
        }
        p
    }
}

/// Parse Dapr's `ttlInSeconds` metadata: a whole number of seconds; `-1`
/// (or `0`) means no expiry. `Ok(None)` when absent or empty.
pub fn ttl(metadata: &BTreeMap<String, String>) -> Result<Option<Option<Duration>>, String> {
    let Some(v) = metadata.get("ttlInSeconds").filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let n: i64 = v
        .parse()
        .map_err(|_| format!("ttlInSeconds value must be a valid integer: actual is '{v}'"))?;
    match n {
        ..-1 => Err(format!(
            "ttlInSeconds value must be -1 (no expiry) or more: actual is '{v}'"
        )),
        -1 | 0 => Ok(Some(None)),
        n => Ok(Some(Some(Duration::from_secs(n as u64)))),
    }
}

/// Read a whole body of at most `max` bytes (`413` beyond, and within
/// `timeout`: a client trickling a body is cut off with `408`).
pub async fn body(body: Incoming, max: usize, timeout: Duration) -> Result<Bytes, ApiError> {
    let read = Limited::new(body, max).collect();
    match tokio::time::timeout(timeout, read).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "ERR_MALFORMED_REQUEST",
            format!(
                "the request body did not arrive within {} s",
                timeout.as_secs()
            ),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ERR_MALFORMED_REQUEST",
            format!(
                "the request body is larger than this server's limit of {max} bytes; send less per request"
            ),
        )),
        Ok(Err(e)) => Err(ApiError::malformed(format!(
            "failed reading the request body: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = |m: Method, p: &str| route(&m, p);
        assert_eq!(r(Method::GET, "/v1.0/healthz"), Ok(Route::Healthz));
        assert_eq!(
            r(Method::POST, "/v1.0/state/s"),
            Ok(Route::Save("s".into()))
        );
        assert_eq!(
            r(Method::PUT, "/v1.0/state/s/bulk"),
            Ok(Route::Bulk("s".into()))
        );
        assert_eq!(
            r(Method::GET, "/v1.0/state/s/bulk"),
            Ok(Route::Get("s".into(), "bulk".into()))
        );
        assert_eq!(
            r(Method::GET, "/v1.0/state/s/a%2Fb/c%20d"),
            Ok(Route::Get("s".into(), "a/b/c d".into()))
        );
        assert_eq!(
            r(Method::DELETE, "/v1.0/state/s/k"),
            Ok(Route::Delete("s".into(), "k".into()))
        );
        assert_eq!(
            r(Method::POST, "/v1.0-alpha1/state/s/query"),
            Ok(Route::Query("s".into()))
        );
        assert_eq!(
            r(Method::GET, "/nope").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
        let e = r(Method::PATCH, "/v1.0/state/s/k").unwrap_err();
        assert_eq!(
            (e.status, e.allow),
            (StatusCode::METHOD_NOT_ALLOWED, Some("GET, DELETE"))
        );
        let e = r(Method::PATCH, "/v1.0/state/s/bulk").unwrap_err();
        assert_eq!(e.allow, Some("GET, DELETE, POST, PUT"));
        let e = r(Method::GET, "/v1.0/state/s").unwrap_err();
        assert_eq!(e.allow, Some("POST, PUT"));
        let e = r(Method::TRACE, "/v1.0/healthz").unwrap_err();
        assert_eq!(e.allow, Some("GET, HEAD"));
        assert_eq!(
            r(Method::GET, "/v1.0/state/s/%ff").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        // `+` is a space, as Go's url.QueryUnescape reads it; `%2B` a plus.
        assert_eq!(
            r(Method::GET, "/v1.0/state/s/a+b%2Bc"),
            Ok(Route::Get("s".into(), "a b+c".into()))
        );
        // A trailing slash is stripped on routes without a key (Dapr's
        // router does); on a key's route it is part of the key.
        assert_eq!(r(Method::GET, "/v1.0/healthz/"), Ok(Route::Healthz));
        assert_eq!(r(Method::GET, "/v1.0/metadata/"), Ok(Route::Metadata));
        assert_eq!(
            r(Method::POST, "/v1.0/state/s/"),
            Ok(Route::Save("s".into()))
        );
        assert_eq!(
            r(Method::POST, "/v1.0/state/s/transaction/"),
            Ok(Route::Transaction("s".into()))
        );
        assert_eq!(
            r(Method::POST, "/v1.0-alpha1/state/s/query/"),
            Ok(Route::Query("s".into()))
        );
        assert_eq!(
            r(Method::GET, "/v1.0/state/s/k/"),
            Ok(Route::Get("s".into(), "k/".into()))
        );
        assert_eq!(
            r(Method::GET, "/v1.0/state/s/bulk/"),
            Ok(Route::Get("s".into(), "bulk/".into()))
        );
        assert!(is_public(&Method::GET, "/v1.0/healthz/"));
        assert!(!is_public(&Method::POST, "/v1.0/healthz"));
        assert!(!is_public(&Method::GET, "/v1.0/metadata"));
    }

    #[test]
    fn params_and_ttl() {
        let p = Params::parse(Some(
            "metadata.ttlInSeconds=5&consistency=strong&metadata.a%20b=c",
        ));
        assert_eq!(p.metadata["ttlInSeconds"], "5");
        assert_eq!(p.metadata["a b"], "c");
        assert_eq!(p.other["consistency"], "strong");
        // Given twice, the first counts (as Go's `Query().Get`).
        let twice = Params::parse(Some(
            "metadata.ttlInSeconds=60&metadata.ttlInSeconds=-1&consistency=eventual&consistency=strong",
        ));
        assert_eq!(twice.metadata["ttlInSeconds"], "60");
        assert_eq!(twice.other["consistency"], "eventual");
        assert_eq!(ttl(&p.metadata), Ok(Some(Some(Duration::from_secs(5)))));
        let m = |v: &str| BTreeMap::from([("ttlInSeconds".to_string(), v.to_string())]);
        assert_eq!(ttl(&m("-1")), Ok(Some(None)));
        assert_eq!(ttl(&m("")), Ok(None));
        assert!(ttl(&m("abc")).unwrap_err().contains("valid integer"));
        assert!(ttl(&m("-2")).is_err());
        assert!(ttl(&m("1.5")).is_err());
    }
}
