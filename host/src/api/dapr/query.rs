//! `POST|PUT /v1.0-alpha1/state/{store}/query`: the store's query engine
//! over the keys of the store's prefix, answered in Dapr's shape
//! `{"results": [{key, data, etag}], "token": …}`.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};
use serde::Serialize;
use serde_json::value::RawValue;

use super::error::ApiError;
use super::{Bound, empty, json_document};
use crate::store::StateError;
use crate::store::query::Query;

#[derive(Serialize)]
struct Answer {
    results: Vec<Hit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

#[derive(Serialize)]
struct Hit {
    key: String,
    data: Box<RawValue>,
    etag: String,
}

/// Run a query.
pub async fn query(bound: &Bound, body: &[u8]) -> Result<Response<Full<Bytes>>, ApiError> {
    let store = &bound.spec.name;
    let wrap = |m: &str| format!("state store {store} query failed: {m}");
    // Dapr answers a query it cannot parse with ERR_STATE_QUERY (and 500); it
    // is the client's mistake, so 400 here. Anything else failed in the store.
    let fail = |e: StateError| match e {
        StateError::InvalidArgument(m) => {
            ApiError::new(StatusCode::BAD_REQUEST, "ERR_STATE_QUERY", wrap(&m))
        }
        e => ApiError::from_state("ERR_STATE_QUERY", &e, wrap),
    };
    let query = Query::from_json(body).map_err(fail)?;
    let page = bound
        .handle
        .query_prefix(&bound.prefix, &query)
        .await
        .map_err(fail)?;
    let results = page
        .results
        .into_iter()
        .filter_map(|r| {
            // Results are JSON objects by construction; anything else is skipped.
            let data = RawValue::from_string(String::from_utf8(r.value).ok()?).ok()?;
            Some(Hit {
                key: r.key,
                data,
                etag: r.etag,
            })
        })
        .collect();
    let results: Vec<Hit> = results;
    if results.is_empty() {
        // As Dapr: no results is 204 without a body.
        return Ok(empty(StatusCode::NO_CONTENT));
    }
    json_document(
        StatusCode::OK,
        &Answer {
            results,
            token: page.token,
        },
    )
}
