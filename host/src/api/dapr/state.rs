//! Save, get, bulk get, delete and transaction: Dapr's request shapes turned
//! into the store's operations (one atomic commit per save or transaction).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, ETAG, HeaderValue};
use hyper::{Response, StatusCode};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::error::ApiError;
use super::request::{self, Params};
use super::{Bound, empty, json_document, json_response};
use crate::store::{Condition, Entry, Op, OpKind, StateError};

/// A `T` read from a JSON object only. serde's derive also reads a struct
/// from an array of its fields in order (`["k", 1]` as an item), which
/// Dapr's decoder refuses and the API's contract does not allow.
#[derive(Debug)]
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Only<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Only<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Only(std::marker::PhantomData))
            .map(Object)
    }
}

/// `#[serde(deserialize_with)]` of an optional object member (`null` is none).
fn optional_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Ok(Option::<Object<T>>::deserialize(d)?.map(|o| o.0))
}

/// `#[serde(deserialize_with)]` of an object member.
fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Object::<T>::deserialize(d)?.0)
}

/// Dapr's `options` of a write.
#[derive(Debug, Default, Deserialize)]
struct WriteOptions {
    #[serde(default)]
    concurrency: Option<String>,
    #[serde(default)]
    consistency: Option<String>,
}

/// One item of a save, or the `request` of a transaction operation.
#[derive(Debug, Deserialize)]
struct Item {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: Option<Box<RawValue>>,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "optional_object")]
    options: Option<WriteOptions>,
}

fn check_consistency(c: Option<&str>) -> Result<(), String> {
    match c {
        None | Some("" | "strong" | "eventual") => Ok(()),
        Some(other) => Err(format!(
            "unrecognized consistency model '{other}'; use strong or eventual"
        )),
    }
}

/// Is this `first-write` concurrency? (Checks the value.)
fn first_write(c: Option<&str>) -> Result<bool, String> {
    match c {
        None | Some("" | "last-write") => Ok(false),
        Some("first-write") => Ok(true),
        Some(other) => Err(format!(
            "unrecognized concurrency model '{other}'; use first-write or last-write"
        )),
    }
}

/// The condition of a write: an etag (non-empty) must match; without one,
/// `first-write` means create-only; otherwise last write wins.
fn condition(
    etag: Option<&str>,
    options: Option<&WriteOptions>,
) -> Result<Option<Condition>, String> {
    let (concurrency, consistency) = options
        .map(|o| (o.concurrency.as_deref(), o.consistency.as_deref()))
        .unwrap_or_default();
    check_consistency(consistency)?;
    let first = first_write(concurrency)?;
    Ok(match etag.filter(|e| !e.is_empty()) {
        Some(e) => Some(Condition::IfMatch(e.to_owned())),
        None if first => Some(Condition::IfAbsent),
        None => None,
    })
}

impl Item {
    /// The upsert op of this item; `url` is the query string's metadata,
    /// which wins over the item's own, as in Dapr.
    fn upsert(&self, bound: &Bound, url: &BTreeMap<String, String>) -> Result<Op, ItemError> {
        let key = bound.key(&self.key).map_err(ItemError::Request)?;
        let mut metadata = self.metadata.clone().unwrap_or_default();
        // The item's own TTL must be valid even where the query string's
        // wins (Dapr would pass it over unread).
        request::ttl(&metadata).map_err(ItemError::Store)?;
        metadata.extend(url.clone());
        let ttl = request::ttl(&metadata).map_err(ItemError::Store)?.flatten();
        let condition =
            condition(self.etag.as_deref(), self.options.as_ref()).map_err(ItemError::Store)?;
        let value = self
            .value
            .as_ref()
            .map_or(b"null".to_vec(), |v| v.get().as_bytes().to_vec());
        Ok(Op {
            key,
            kind: OpKind::Set { value, ttl },
            condition,
        })
    }

    /// The delete op of this item.
    fn delete(&self, bound: &Bound) -> Result<Op, ItemError> {
        let key = bound.key(&self.key).map_err(ItemError::Request)?;
        let condition = condition(self.etag.as_deref(), self.options.as_ref())
            .map_err(ItemError::Store)?
            .filter(|c| *c != Condition::IfAbsent);
        Ok(Op {
            key,
            kind: OpKind::Delete,
            condition,
        })
    }
}

/// Why an item could not become an op: a malformed request (`||` in a key,
/// an empty key), or options the store refuses (reported under the
/// operation's own error code, as Dapr's stores do).
enum ItemError {
    Request(ApiError),
    Store(String),
}

impl ItemError {
    fn into_api(self, code: &'static str, wrap: impl FnOnce(&str) -> String) -> ApiError {
        match self {
            ItemError::Request(e) => e,
            ItemError::Store(m) => ApiError::new(StatusCode::BAD_REQUEST, code, wrap(&m)),
        }
    }
}

fn too_many(what: &str, count: usize, max: usize) -> ApiError {
    ApiError::malformed(format!(
        "{count} {what} in one request; the limit is {max}: split it into requests of at most {max}"
    ))
}

/// The client's view of a stored key (the prefix removed).
fn client_key<'a>(bound: &Bound, stored: &'a str) -> &'a str {
    stored.strip_prefix(bound.prefix.as_str()).unwrap_or(stored)
}

/// A query-string `metadata.ttlInSeconds` must be valid whatever the body
/// holds (also with no item or no upsert to apply it to).
fn check_url_ttl(
    params: &Params,
    code: &'static str,
    wrap: impl FnOnce(&str) -> String,
) -> Result<(), ApiError> {
    request::ttl(&params.metadata)
        .map(drop)
        .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, code, wrap(&m)))
}

/// `POST /v1.0/state/{store}`: every item in one atomic commit.
pub async fn save(
    bound: &Bound,
    body: &[u8],
    params: &Params,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let store = &bound.spec.name;
    let wrap = |m: &str| format!("failed saving state in state store {store}: {m}");
    check_url_ttl(params, "ERR_STATE_SAVE", wrap)?;
    let items: Vec<Item> = serde_json::from_slice::<Option<Vec<Object<Item>>>>(body)
        .map_err(ApiError::bad_body)?
        .unwrap_or_default()
        .into_iter()
        .map(|o| o.0)
        .collect();
    if items.is_empty() {
        return Ok(empty(StatusCode::NO_CONTENT));
    }
    let max = bound.handle.store().limits().max_ops;
    if items.len() > max {
        return Err(too_many("items", items.len(), max));
    }
    let ops = items
        .iter()
        .map(|i| i.upsert(bound, &params.metadata))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.into_api("ERR_STATE_SAVE", wrap))?;
    match bound.handle.commit(ops.clone()).await {
        Ok(_) => Ok(empty(StatusCode::NO_CONTENT)),
        Err(e) => Err(op_error("ERR_STATE_SAVE", &e, bound, &ops, wrap)),
    }
}

/// An error of a commit, naming the key of the op that failed.
fn op_error(
    code: &'static str,
    e: &StateError,
    bound: &Bound,
    ops: &[Op],
    wrap: impl FnOnce(&str) -> String,
) -> ApiError {
    let key = match e {
        StateError::Aborted { index, .. } if ops.len() > 1 => {
            ops.get(*index).map(|op| client_key(bound, &op.key))
        }
        _ => None,
    };
    ApiError::from_state(code, e.root(), |m| match key {
        Some(k) => wrap(&format!("key {k:?}: {m}")),
        None => wrap(m),
    })
}

/// When a key with `ttl` left expires, as Dapr's `ttlExpireTime` metadata.
fn expire_time(now_ms: u64, ttl: Option<Duration>) -> Option<String> {
    let at_ms = now_ms.saturating_add(u64::try_from(ttl?.as_millis()).unwrap_or(u64::MAX));
    Some(rfc3339(at_ms / 1000))
}

/// Is this valid JSON text?
fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

/// A stored value as JSON for a bulk answer: the JSON itself, UTF-8 text
/// that is not JSON as a JSON string; binary is an error.
fn bulk_data(bytes: Vec<u8>) -> Result<Box<RawValue>, String> {
    if is_json(&bytes) {
        let text = String::from_utf8(bytes).map_err(|e| e.to_string())?;
        return RawValue::from_string(text).map_err(|e| e.to_string());
    }
    match String::from_utf8(bytes) {
        Ok(text) => serde_json::value::to_raw_value(&text).map_err(|e| e.to_string()),
        Err(e) => Err(format!(
            "the value is {} bytes of binary, not JSON; read it with the wasm-state CLI or a guest",
            e.as_bytes().len()
        )),
    }
}

/// Unix seconds as RFC 3339 UTC (`2026-01-01T00:00:00Z`).
pub(crate) fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `GET /v1.0/state/{store}/{key}`: the JSON value with its `ETag`; `204`
/// when there is none.
pub async fn get(
    bound: &Bound,
    key: &str,
    params: &Params,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let stored = bound.key(key)?;
    check_consistency(params.other.get("consistency").map(String::as_str))
        .map_err(ApiError::malformed)?;
    let store = &bound.spec.name;
    let entry = bound.handle.get_entry(&stored).await.map_err(|e| {
        ApiError::from_state("ERR_STATE_GET", &e, |m| {
            format!("fail to get {key} from state store {store}: {m}")
        })
    })?;
    let Some(entry) = entry else {
        return Ok(empty(StatusCode::NO_CONTENT));
    };
    let json = is_json(&entry.value);
    let mut resp = json_response(StatusCode::OK, entry.value);
    if !json {
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    if let Ok(etag) = HeaderValue::from_str(&entry.etag) {
        resp.headers_mut().insert(ETAG, etag);
    }
    if let Some(at) = expire_time(bound.handle.store().now_ms(), entry.ttl)
        .and_then(|t| HeaderValue::from_str(&t).ok())
    {
        resp.headers_mut().insert("metadata.ttlExpireTime", at);
    }
    Ok(resp)
}

/// Dapr's bulk get request.
#[derive(Debug, Deserialize)]
struct BulkRequest {
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    parallelism: Option<serde_json::Number>,
    /// Checked for its shape (string values), as Dapr decodes it.
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Option<BTreeMap<String, String>>,
}

/// Is `n` a whole number in `0..=i64::MAX`? `10.0` is 10, as JSON (and
/// JSON Schema's `integer`) has it; Dapr reads `parallelism` as a Go `int`.
fn whole_non_negative(n: &serde_json::Number) -> bool {
    match (n.as_i64(), n.as_f64()) {
        (Some(i), _) => i >= 0,
        _ if n.is_u64() => false,
        // 2^63 as f64 is exactly i64::MAX + 1.
        (None, Some(f)) => f.fract() == 0.0 && (0.0..i64::MAX as f64).contains(&f),
        (None, None) => false,
    }
}

/// One item of a bulk get answer.
#[derive(Debug, Serialize)]
struct BulkItem<'a> {
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<BulkMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The metadata of a bulk item: when its TTL ends.
#[derive(Debug, Serialize)]
struct BulkMeta {
    #[serde(rename = "ttlExpireTime")]
    ttl_expire_time: String,
}

/// `POST|PUT /v1.0/state/{store}/bulk`: `[{key, data, etag}]` in request
/// order; a missing key has only `key`, a key that cannot be read `error`.
pub async fn bulk(bound: &Bound, body: &[u8]) -> Result<Response<Full<Bytes>>, ApiError> {
    let Object(req): Object<BulkRequest> =
        serde_json::from_slice(body).map_err(ApiError::bad_body)?;
    if req
        .parallelism
        .as_ref()
        .is_some_and(|p| !whole_non_negative(p))
    {
        return Err(ApiError::malformed(
            "parallelism must be a whole number from 0 to 9223372036854775807",
        ));
    }

    let stored = req
        .keys
        .iter()
        .map(|k| bound.key(k))
        .collect::<Result<Vec<_>, _>>()?;
    let store = &bound.spec.name;
    let now = bound.handle.store().now_ms();
    // Each distinct key is read once, and the answer's values may add up to
    // the host's reply limit: a small body naming one large key many times
    // gets a 400, not a server that runs out of memory.
    let limits = bound.handle.store().limits();
    let budget = limits.max_reply_bytes;
    let mut slot: HashMap<&str, usize> = HashMap::new();
    let mut distinct: Vec<String> = Vec::new();
    let mut uses: Vec<usize> = Vec::new();
    let at: Vec<usize> = stored
        .iter()
        .map(|k| {
            let i = *slot.entry(k.as_str()).or_insert_with(|| {
                distinct.push(k.clone());
                uses.push(0);
                distinct.len() - 1
            });
            uses[i] += 1;
            i
        })
        .collect();
    let mut entries: Vec<Result<Option<Entry>, String>> = Vec::with_capacity(distinct.len());
    let mut total = 0usize;
    // A transaction's worth of keys at a time: at most one more of them
    // is held past the budget before the answer is refused.
    let too_much = || {
        ApiError::malformed(format!(
            "a bulk get of {} keys would answer more than {budget} bytes of values (this \
             host's reply limit); ask for fewer keys at a time",
            req.keys.len(),
        ))
    };
    for chunk in distinct.chunks(limits.max_ops.max(1)) {
        let read = bound
            .handle
            .get_entries(chunk.to_vec())
            .await
            .map_err(|e| match e {
                // The distinct values alone are over it.
                StateError::ReplyTooLarge { .. } => too_much(),
                e => ApiError::from_state("ERR_STATE_BULK_GET", &e, |m| {
                    format!("failed getting bulk state from state store {store}: {m}")
                }),
            })?;
        for r in read {
            if let Ok(Some(e)) = &r {
                total = total.saturating_add(e.value.len().saturating_mul(uses[entries.len()]));
            }
            entries.push(r.map_err(|e| e.to_string()));
        }
        if total > budget {
            return Err(too_much());
        }
    }
    let items: Vec<BulkItem> = req
        .keys
        .iter()
        .zip(at)
        .map(|(key, i)| match entries[i].clone() {
            Ok(Some(e)) => {
                let metadata = expire_time(now, e.ttl).map(|t| BulkMeta { ttl_expire_time: t });
                match bulk_data(e.value) {
                    Ok(data) => BulkItem {
                        key,
                        data: Some(data),
                        etag: Some(e.etag),
                        metadata,
                        error: None,
                    },
                    Err(why) => BulkItem {
                        key,
                        data: None,
                        etag: Some(e.etag),
                        metadata,
                        error: Some(why),
                    },
                }
            }
            Ok(None) => BulkItem {
                key,
                data: None,
                etag: None,
                metadata: None,
                error: None,
            },
            Err(e) => BulkItem {
                key,
                data: None,
                etag: None,
                metadata: None,
                error: Some(e),
            },
        })
        .collect();
    json_document(StatusCode::OK, &items)
}

/// `DELETE /v1.0/state/{store}/{key}` (`If-Match`: only that version).
pub async fn delete(
    bound: &Bound,
    key: &str,
    if_match: Option<String>,
    params: &Params,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let item = Item {
        key: key.to_owned(),
        value: None,
        etag: if_match,
        metadata: None,
        options: Some(WriteOptions {
            concurrency: params.other.get("concurrency").cloned(),
            consistency: params.other.get("consistency").cloned(),
        }),
    };
    let wrap = |m: &str| format!("failed deleting state with key {key}: {m}");
    let op = item
        .delete(bound)
        .map_err(|e| e.into_api("ERR_STATE_DELETE", wrap))?;
    match bound.handle.apply(op).await {
        Ok(_) => Ok(empty(StatusCode::NO_CONTENT)),
        Err(e) => Err(ApiError::from_state("ERR_STATE_DELETE", &e, wrap)),
    }
}

/// One operation of a transaction.
#[derive(Debug, Deserialize)]
struct TxOp {
    #[serde(default)]
    operation: String,
    #[serde(deserialize_with = "object")]
    request: Item,
}

/// Dapr's transaction request.
#[derive(Debug, Deserialize)]
struct TxRequest {
    #[serde(default)]
    operations: Vec<Object<TxOp>>,
    /// Checked for its shape (string values), as Dapr decodes it.
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Option<BTreeMap<String, String>>,
}

/// `POST|PUT /v1.0/state/{store}/transaction`: upserts and deletes applied
/// all or nothing, in order.
pub async fn transaction(
    bound: &Bound,
    body: &[u8],
    params: &Params,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let wrap = |m: &str| format!("error while executing state transaction: {m}");
    check_url_ttl(params, "ERR_STATE_TRANSACTION", wrap)?;
    let Object(req): Object<TxRequest> =
        serde_json::from_slice(body).map_err(ApiError::bad_body)?;
    if req.operations.is_empty() {
        return Ok(empty(StatusCode::NO_CONTENT));
    }
    let max = bound.handle.store().limits().max_ops;
    if req.operations.len() > max {
        // Dapr's own error for a transaction over the store's limit.
        let count = req.operations.len();
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ERR_STATE_STORE_TOO_MANY_TRANSACTIONS",
            format!(
                "the transaction contains {count} operations, which is more than what the \
                 state store supports: {max}; split it into transactions of at most {max}"
            ),
        )
        .with_reason(
            "DAPR_STATE_TOO_MANY_TRANSACTIONS",
            serde_json::json!({
                "currentOpsTransaction": count.to_string(),
                "maxOpsPerTransaction": max.to_string(),
            }),
        ));
    }
    // As in Dapr, the body's `metadata` belongs to the transaction as a
    // whole (it is accepted and has no effect here); each operation sees its
    // own metadata and the query string's.
    let defaults = params.metadata.clone();
    let ops = req
        .operations
        .iter()
        .map(|Object(o)| match o.operation.as_str() {
            "upsert" => o.request.upsert(bound, &defaults),
            "delete" => o.request.delete(bound),
            other => Err(ItemError::Request(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ERR_NOT_SUPPORTED_STATE_OPERATION",
                format!("operation type {other} not supported; use upsert or delete"),
            ))),
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.into_api("ERR_STATE_TRANSACTION", wrap))?;
    match bound.handle.commit(ops.clone()).await {
        Ok(_) => Ok(empty(StatusCode::NO_CONTENT)),
        Err(e) => Err(op_error("ERR_STATE_TRANSACTION", &e, bound, &ops, wrap)),
    }
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400 + 86_399), "2000-02-29T23:59:59Z");
    }
}
