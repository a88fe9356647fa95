//! The Dapr-compatible state API over real HTTP on loopback: every
//! endpoint's success and error paths with their exact status and
//! `errorCode`, the reference document's examples (ETag walk-through,
//! transaction, query with token paging), TTL, token auth, concurrency, and
//! interop with guest data written through the SDK.

mod common;
mod dapr_support;
mod http_support;

use std::time::Duration;

use dapr_support::{Api, manual_store};
use http_support::{Reply, get, post, send};
use hyper::StatusCode;
use serde_json::{Value, json};
use wasm_state::api::dapr::{DaprOptions, KeyPrefix, ScopeTarget, StoreKind, StoreSpec};
use wasm_state::runtime::{Host, HostConfig};

const S: &str = "/v1.0/state/statestore";
const JSON: [(&str, &str); 1] = [("content-type", "application/json")];

fn body_json(r: &Reply) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", r.body))
}

/// Asserts a Dapr-shaped error with this status and code; returns the message.
#[track_caller]
fn dapr_error(r: &Reply, status: StatusCode, code: &str) -> String {
    assert_eq!(r.status, status, "{}", r.body);
    let v = body_json(r);
    assert_eq!(v["errorCode"], code, "{}", r.body);
    assert_eq!(
        r.headers["content-type"], "application/json",
        "error bodies are JSON"
    );
    v["message"].as_str().expect("message").to_owned()
}

fn etag_of(r: &Reply) -> String {
    r.headers
        .get("etag")
        .expect("an ETag header")
        .to_str()
        .unwrap()
        .to_owned()
}

async fn save(api: &Api, body: Value) -> Reply {
    post(api.addr, S, &JSON, &body.to_string()).await
}

async fn delete(api: &Api, key: &str, headers: &[(&str, &str)]) -> Reply {
    send(api.addr, "DELETE", &format!("{S}/{key}"), headers, "")
        .await
        .expect("DELETE")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etag_walkthrough_of_the_reference_document() {
    let dir = tempfile::tempdir().unwrap();
    let (mut api, _) = dapr_support::Api::default_in(dir.path()).await;
    // 1. Store an object.
    let r = save(&api, json!([{"key": "sampleData", "value": "1"}])).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert!(r.body.is_empty());
    // 2. Get it with its ETag.
    let r = get(api.addr, &format!("{S}/sampleData"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, r#""1""#);
    assert_eq!(r.headers["content-type"], "application/json");
    let etag = etag_of(&r);
    // A wrong etag (one the store issued, to another key) fails the update
    // and the delete with 409.
    save(&api, json!([{"key": "other", "value": 0}])).await;
    let wrong = etag_of(&get(api.addr, &format!("{S}/other"), &[]).await);
    let wrong = wrong.as_str();
    let r = save(
        &api,
        json!([{"key": "sampleData", "value": "2", "etag": wrong}]),
    )
    .await;
    let m = dapr_error(&r, StatusCode::CONFLICT, "ERR_STATE_SAVE");
    assert!(
        m.starts_with("failed saving state in state store statestore: possible etag mismatch"),
        "{m}"
    );
    let r = delete(&api, "sampleData", &[("If-Match", wrong)]).await;
    let m = dapr_error(&r, StatusCode::CONFLICT, "ERR_STATE_DELETE");
    assert!(
        m.starts_with("failed deleting state with key sampleData: possible etag mismatch"),
        "{m}"
    );
    // A malformed etag is 400.
    let r = save(
        &api,
        json!([{"key": "sampleData", "value": "2", "etag": "2"}]),
    )
    .await;
    let m = dapr_error(&r, StatusCode::BAD_REQUEST, "ERR_STATE_SAVE");
    assert!(m.contains("invalid etag value"), "{m}");
    let r = delete(&api, "sampleData", &[("If-Match", "5")]).await;
    dapr_error(&r, StatusCode::BAD_REQUEST, "ERR_STATE_DELETE");
    // Nothing changed.
    let r = get(api.addr, &format!("{S}/sampleData"), &[]).await;
    assert_eq!((r.body.as_str(), etag_of(&r)), (r#""1""#, etag.clone()));
    // 3. The right etag updates, and the value gets a new etag.
    let r = save(
        &api,
        json!([{"key": "sampleData", "value": "2", "etag": etag}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = get(api.addr, &format!("{S}/sampleData"), &[]).await;
    assert_eq!(r.body, r#""2""#);
    let new_etag = etag_of(&r);
    assert_ne!(new_etag, etag);
    // The old etag no longer deletes; the new one does.
    let r = delete(&api, "sampleData", &[("If-Match", &etag)]).await;
    dapr_error(&r, StatusCode::CONFLICT, "ERR_STATE_DELETE");
    let r = delete(&api, "sampleData", &[("If-Match", &new_etag)]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = get(api.addr, &format!("{S}/sampleData"), &[]).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::NO_CONTENT, ""));
    // Deleting a missing key is fine without an etag; with one it is a
    // mismatch (SPEC: if-match needs the key).
    assert_eq!(
        delete(&api, "sampleData", &[]).await.status,
        StatusCode::NO_CONTENT
    );
    let r = delete(&api, "sampleData", &[("If-Match", &new_etag)]).await;
    dapr_error(&r, StatusCode::CONFLICT, "ERR_STATE_DELETE");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_document_examples() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = manual_store(dir.path());
    let spec = StoreSpec {
        name: "starwars".into(),
        ..StoreSpec::default_store()
    };
    let mut api = Api::start(store, vec![spec], DaprOptions::default()).await;
    let sw = "/v1.0/state/starwars";
    // Save, as the document's first example: "weapon" carries etag "1234",
    // which this store could never have issued (and the key does not
    // exist): the whole save is refused and nothing is written.
    let example = r#"[
        {"key": "weapon", "value": "DeathStar", "etag": "1234"},
        {"key": "planet", "value": {"name": "Tatooine"}}
    ]"#;
    let r = post(
        api.addr,
        &format!("{sw}?metadata.contentType=application/json"),
        &JSON,
        example,
    )
    .await;
    dapr_error(&r, StatusCode::BAD_REQUEST, "ERR_STATE_SAVE");
    assert_eq!(
        get(api.addr, &format!("{sw}/planet"), &[]).await.status,
        StatusCode::NO_CONTENT,
        "a refused save writes nothing"
    );
    // Without the etag it saves both.
    let example = example.replace(r#", "etag": "1234""#, "");
    let r = post(
        api.addr,
        &format!("{sw}?metadata.contentType=application/json"),
        &JSON,
        &example,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    // Get, with and without metadata parameters.
    let r = get(
        api.addr,
        &format!("{sw}/planet?metadata.contentType=application/json"),
        &[],
    )
    .await;
    assert_eq!(body_json(&r), json!({"name": "Tatooine"}));
    let r = get(
        api.addr,
        &format!(
            "{sw}/planet?metadata.partitionKey=mypartitionKey&metadata.contentType=application/json"
        ),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // Bulk get: data and etag per key, a missing key with its key only.
    for method in ["POST", "PUT"] {
        let r = send(
            api.addr,
            method,
            &format!("{sw}/bulk?metadata.partitionKey=mypartitionKey"),
            &JSON,
            r#"{"keys": ["weapon", "planet", "nope"], "parallelism": 10}"#,
        )
        .await
        .unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let items = body_json(&r);
        assert_eq!(items[0]["key"], "weapon");
        assert_eq!(items[0]["data"], "DeathStar");
        assert!(items[0]["etag"].is_string());
        assert_eq!(items[1]["data"], json!({"name": "Tatooine"}));
        assert_eq!(items[2], json!({"key": "nope"}));
    }
    // The complete-options example: first-write with an etag it has.
    let etag = etag_of(&get(api.addr, &format!("{sw}/weapon"), &[]).await);
    let r = post(
        api.addr,
        sw,
        &JSON,
        &json!([{"key": "weapon", "value": "DeathStar", "etag": etag,
                 "options": {"concurrency": "first-write", "consistency": "strong"}}])
        .to_string(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    // Delete.
    let etag = etag_of(&get(api.addr, &format!("{sw}/planet"), &[]).await);
    let r = send(
        api.addr,
        "DELETE",
        &format!("{sw}/planet?metadata.contentType=application/json"),
        &[("If-Match", &etag)],
        "",
    )
    .await
    .unwrap();
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // The transaction example: upsert key1, delete key2, with metadata.
    post(api.addr, sw, &JSON, r#"[{"key": "key2", "value": 2}]"#).await;
    let r = post(
        api.addr,
        &format!("{sw}/transaction"),
        &JSON,
        r#"{"operations": [
            {"operation": "upsert", "request": {"key": "key1", "value": "myData"}},
            {"operation": "delete", "request": {"key": "key2"}}
        ], "metadata": {"partitionKey": "planet"}}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(
        get(api.addr, &format!("{sw}/key1"), &[]).await.body,
        r#""myData""#
    );
    assert_eq!(
        get(api.addr, &format!("{sw}/key2"), &[]).await.status,
        StatusCode::NO_CONTENT
    );
    api.stop().await;
}

/// The dataset of Dapr's query how-to.
fn employees() -> Value {
    let rows = [
        ("1", "Dev Ops", 1036, "Seattle", "WA"),
        ("2", "Hardware", 1028, "Portland", "OR"),
        ("3", "Finance", 1071, "Sacramento", "CA"),
        ("4", "Dev Ops", 1042, "Spokane", "WA"),
        ("5", "Hardware", 1007, "Los Angeles", "CA"),
        ("6", "Finance", 1094, "Eugene", "OR"),
        ("7", "Dev Ops", 1015, "San Francisco", "CA"),
        ("8", "Hardware", 1077, "Redmond", "WA"),
        ("9", "Finance", 1002, "San Diego", "CA"),
        ("10", "Dev Ops", 1054, "New York", "NY"),
    ];
    Value::Array(
        rows.iter()
            .map(|(k, org, id, city, st)| {
                json!({"key": k, "value": {"person": {"org": org, "id": id}, "city": city, "state": st}})
            })
            .collect(),
    )
}

const REFERENCE_QUERY: &str = r#"{
    "filter": {"OR": [
        {"EQ": {"person.org": "Dev Ops"}},
        {"AND": [{"EQ": {"person.org": "Finance"}}, {"IN": {"state": ["CA", "WA"]}}]}
    ]},
    "sort": [{"key": "state", "order": "DESC"}, {"key": "person.id"}],
    "page": {"limit": 3}
}"#;

fn result_keys(v: &Value) -> Vec<String> {
    v["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_of_the_reference_document_pages_by_token() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = manual_store(dir.path());
    // With an app id, keys are stored as `myapp||key`; the query sees only
    // this prefix and answers the client's keys.
    let options = DaprOptions {
        app_id: Some("myapp".into()),
        ..DaprOptions::default()
    };
    let mut api = Api::start(store.clone(), vec![StoreSpec::default_store()], options).await;
    assert_eq!(save(&api, employees()).await.status, StatusCode::NO_CONTENT);
    // Another app's object in the same scope is not a result.
    store
        .account("default")
        .unwrap()
        .set(
            "other||9",
            br#"{"person":{"org":"Dev Ops","id":1}}"#.to_vec(),
        )
        .await
        .unwrap();
    let q = "/v1.0-alpha1/state/statestore/query?metadata.contentType=application/json";
    let r = post(api.addr, q, &JSON, REFERENCE_QUERY).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let page = body_json(&r);
    assert_eq!(result_keys(&page), ["1", "4", "10"]);
    assert_eq!(
        page["results"][0]["data"],
        json!({"person": {"org": "Dev Ops", "id": 1036}, "city": "Seattle", "state": "WA"})
    );
    let etag = page["results"][0]["etag"].as_str().unwrap();
    assert_eq!(etag, etag_of(&get(api.addr, &format!("{S}/1"), &[]).await));
    let token = page["token"].as_str().expect("a token").to_owned();
    // The next page, by PUT this time.
    let mut next: Value = serde_json::from_str(REFERENCE_QUERY).unwrap();
    next["page"]["token"] = json!(token);
    let r = send(api.addr, "PUT", q, &JSON, &next.to_string())
        .await
        .unwrap();
    let page = body_json(&r);
    assert_eq!(result_keys(&page), ["9", "7", "3"]);
    assert!(page.get("token").is_none(), "the last page has no token");
    // No result: 204, as Dapr.
    let r = post(api.addr, q, &JSON, r#"{"filter":{"EQ":{"state":"ZZ"}}}"#).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::NO_CONTENT, ""));
    // Malformed queries: 400 (Dapr's code, ERR_STATE_QUERY) with what is wrong.
    let r = post(api.addr, q, &JSON, r#"{"filter":{"LIKE":{"a":1}}}"#).await;
    let m = dapr_error(&r, StatusCode::BAD_REQUEST, "ERR_STATE_QUERY");
    assert!(
        m.starts_with("state store statestore query failed: "),
        "{m}"
    );
    assert!(m.contains("LIKE") && m.contains("EQ, NEQ, IN"), "{m}");
    let r = post(api.addr, q, &JSON, r#"{"page":{"token":"nope"}}"#).await;
    dapr_error(&r, StatusCode::BAD_REQUEST, "ERR_STATE_QUERY");
    let r = post(api.addr, q, &JSON, "{").await;
    dapr_error(&r, StatusCode::BAD_REQUEST, "ERR_STATE_QUERY");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_of_every_json_type_read_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (mut api, _) = Api::default_in(dir.path()).await;
    let values = [
        r#"{"a":[1,2,{"b":null}],"c":"é☃"}"#,
        r#"[1,"two",3.5,true,null]"#,
        r#""a string with \"quotes\"""#,
        "42",
        "-1.25e-3",
        "18446744073709551615",
        "true",
        "null",
    ];
    for (i, v) in values.iter().enumerate() {
        let body = format!(r#"[{{"key":"k{i}","value":{v}}}]"#);
        let r = post(api.addr, S, &JSON, &body).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{v}: {}", r.body);
        let r = get(api.addr, &format!("{S}/k{i}"), &[]).await;
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, *v));
    }
    // A key with characters that need escaping in a path.
    let r = save(&api, json!([{"key": "a/b c?d#e", "value": 1}])).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = get(api.addr, &format!("{S}/a%2Fb%20c%3Fd%23e"), &[]).await;
    assert_eq!(r.body, "1");
    let r = get(api.addr, &format!("{S}/a/b%20c%3Fd%23e"), &[]).await;
    assert_eq!(r.body, "1", "a key's `/` may also be sent as is");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_daprs_errors_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut api, _) = Api::default_in(dir.path()).await;
    save(&api, json!([{"key": "keep", "value": 1}])).await;
    // Unknown store, on every route.
    for (method, path, body) in [
        ("POST", "/v1.0/state/nope", "[]"),
        ("GET", "/v1.0/state/nope/k", ""),
        ("DELETE", "/v1.0/state/nope/k", ""),
        ("POST", "/v1.0/state/nope/bulk", r#"{"keys":[]}"#),
        (
            "POST",
            "/v1.0/state/nope/transaction",
            r#"{"operations":[]}"#,
        ),
        ("POST", "/v1.0-alpha1/state/nope/query", "{}"),
    ] {
        let r = send(api.addr, method, path, &JSON, body).await.unwrap();
        let m = dapr_error(&r, StatusCode::BAD_REQUEST, "ERR_STATE_STORE_NOT_FOUND");
        assert!(m.starts_with("state store nope is not found"), "{m}");
        // Dapr's details: an ErrorInfo with the reason.
        let details = &body_json(&r)["details"][0];
        assert_eq!(details["reason"], "DAPR_STATE_NOT_FOUND");
        assert_eq!(details["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
    }
    // Malformed JSON bodies.
    for (path, body) in [
        (S.to_string(), "not json"),
        (S.to_string(), r#"{"key":"a"}"#),
        (S.to_string(), r#"[{"key":1}]"#),
        (
            S.to_string(),
            r#"[{"key":"a","metadata":{"ttlInSeconds":5}}]"#,
        ),
        (format!("{S}/bulk"), r#"{"keys":"a"}"#),
        (
            format!("{S}/transaction"),
            r#"{"operations":[{"operation":"upsert"}]}"#,
        ),
    ] {
        let r = post(api.addr, &path, &JSON, body).await;
        let m = dapr_error(&r, StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
        assert!(
            m.starts_with("failed deserializing HTTP body"),
            "{body}: {m}"
        );
    }
    // A key containing `||`, on every route that takes keys.
    let bad_key = [
        ("POST", S.to_string(), r#"[{"key":"a||b","value":1}]"#.to_string()),
        ("GET", format!("{S}/a%7C%7Cb"), String::new()),
        ("DELETE", format!("{S}/a||b"), String::new()),
        ("POST", format!("{S}/bulk"), r#"{"keys":["keep","a||b"]}"#.to_string()),
        (
            "POST",
            format!("{S}/transaction"),
            r#"{"operations":[{"operation":"upsert","request":{"key":"ok","value":1}},{"operation":"upsert","request":{"key":"a||b","value":1}}]}"#.to_string(),
        ),
    ];
    for (method, path, body) in bad_key {
        let r = send(api.addr, method, &path, &JSON, &body).await.unwrap();
        let m = dapr_error(&r, StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
        assert!(m.contains("can't contain '||'"), "{method} {path}: {m}");
    }
    // An empty or missing key, as Dapr words it.
    let r = save(&api, json!([{"key": "", "value": 1}])).await;
    let m = dapr_error(&r, StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
    assert_eq!(m, "\"key\" is a required field");
    let r = save(&api, json!([{"value": 1}])).await;
    dapr_error(&r, StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
    // `null` and `[]` save nothing.
    assert_eq!(
        post(api.addr, S, &JSON, "null").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        post(api.addr, S, &JSON, "[]").await.status,
        StatusCode::NO_CONTENT
    );
    // Bad ttlInSeconds, per item and as a parameter.
    let r = save(
        &api,
        json!([{"key": "t", "value": 1, "metadata": {"ttlInSeconds": "abc"}}]),
    )
    .await;
    let m = dapr_error(&r, StatusCode::BAD_REQUEST, "ERR_STATE_SAVE");
    assert!(m.contains("ttlInSeconds") && m.contains("'abc'"), "{m}");
    let r = post(
        api.addr,
        &format!("{S}?metadata.ttlInSeconds=-5"),
        &JSON,
        r#"[{"key":"t","value":1}]"#,
    )
    .await;
    dapr_error(&r, StatusCode::BAD_REQUEST, "ERR_STATE_SAVE");
    // Unknown concurrency / consistency.
    let r = save(
        &api,
        json!([{"key": "t", "value": 1, "options": {"concurrency": "first"}}]),
    )
    .await;
    let m = dapr_error(&r, StatusCode::BAD_REQUEST, "ERR_STATE_SAVE");
    assert!(m.contains("unrecognized concurrency model 'first'"), "{m}");
    let r = send(
        api.addr,
        "DELETE",
        &format!("{S}/keep?consistency=sometimes"),
        &[],
        "",
    )
    .await
    .unwrap();
    dapr_error(&r, StatusCode::BAD_REQUEST, "ERR_STATE_DELETE");
    // An unknown transaction operation.
    let r = post(
        api.addr,
        &format!("{S}/transaction"),
        &JSON,
        r#"{"operations":[{"operation":"upsert","request":{"key":"t","value":1}},{"operation":"merge","request":{"key":"t"}}]}"#,
    )
    .await;
    let m = dapr_error(
        &r,
        StatusCode::BAD_REQUEST,
        "ERR_NOT_SUPPORTED_STATE_OPERATION",
    );
    assert_eq!(
        m,
        "operation type merge not supported; use upsert or delete"
    );
    // Limits: a value over 1 MiB, more items than one commit takes, a body
    // over the 4 MiB limit.
    let big = "x".repeat((1 << 20) + 1);
    let r = save(&api, json!([{"key": "t", "value": big}])).await;
    let m = dapr_error(&r, StatusCode::BAD_REQUEST, "ERR_STATE_SAVE");
    assert!(m.contains("value too large"), "{m}");
    let many: Vec<Value> = (0..129)
        .map(|i| json!({"key": format!("m{i}"), "value": i}))
        .collect();
    let r = save(&api, Value::Array(many)).await;
    let m = dapr_error(&r, StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
    assert!(m.contains("129 items") && m.contains("128"), "{m}");
    // A transaction over the limit: Dapr's own code and details.
    let ops: Vec<Value> = (0..129)
        .map(|i| json!({"operation": "upsert", "request": {"key": format!("t{i}"), "value": i}}))
        .collect();
    let r = post(
        api.addr,
        &format!("{S}/transaction"),
        &JSON,
        &json!({ "operations": ops }).to_string(),
    )
    .await;
    let m = dapr_error(
        &r,
        StatusCode::BAD_REQUEST,
        "ERR_STATE_STORE_TOO_MANY_TRANSACTIONS",
    );
    assert!(m.contains("129 operations") && m.contains("128"), "{m}");
    let details = &body_json(&r)["details"][0];
    assert_eq!(details["reason"], "DAPR_STATE_TOO_MANY_TRANSACTIONS");
    assert_eq!(details["metadata"]["currentOpsTransaction"], "129");
    assert_eq!(details["metadata"]["maxOpsPerTransaction"], "128");
    let huge = format!(r#"[{{"key":"h","value":"{}"}}]"#, "y".repeat(5 << 20));
    let r = post(api.addr, S, &JSON, &huge).await;
    let m = dapr_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "ERR_MALFORMED_REQUEST");
    assert!(m.contains("4194304 bytes"), "{m}");
    // Routes: wrong method, unknown path.
    let r = send(api.addr, "PATCH", &format!("{S}/keep"), &[], "")
        .await
        .unwrap();
    dapr_error(&r, StatusCode::METHOD_NOT_ALLOWED, "ERR_METHOD_NOT_ALLOWED");
    let r = get(api.addr, "/v1.0/actors", &[]).await;
    dapr_error(&r, StatusCode::NOT_FOUND, "ERR_NOT_FOUND");
    // None of that changed anything.
    let st = api.store.account("default").unwrap();
    let keys = st.keys(Default::default()).await.unwrap().keys;
    assert_eq!(keys, ["keep"]);
    assert_eq!(st.get("keep").await.unwrap(), Some(b"1".to_vec()));
    // A bulk get whose answer would exceed the host's reply limit
    // (32 MiB): one ~1 MB value named 135 times in a small body.
    let r = save(
        &api,
        json!([{"key": "big", "value": "z".repeat(1_000_000)}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = post(
        api.addr,
        &format!("{S}/bulk"),
        &JSON,
        &json!({ "keys": vec!["big"; 135] }).to_string(),
    )
    .await;
    let m = dapr_error(&r, StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
    assert!(
        m.contains("bulk get of 135 keys") && m.contains("33554432 bytes"),
        "{m}"
    );
    // Within it, a key named twice is answered twice (read once).
    let r = post(
        api.addr,
        &format!("{S}/bulk"),
        &JSON,
        r#"{"keys":["keep","big","keep","nope"]}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let items = body_json(&r);
    let keys: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["keep", "big", "keep", "nope"]);
    assert_eq!(items[0]["data"], 1);
    assert_eq!(items[2]["data"], 1);
    assert_eq!(items[0]["etag"], items[2]["etag"]);
    assert_eq!(items[1]["data"].as_str().map(str::len), Some(1_000_000));
    assert!(items[3].get("data").is_none());
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_write_is_create_only_and_transactions_are_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut api, _) = Api::default_in(dir.path()).await;
    let fw =
        |v: i32| json!([{"key": "once", "value": v, "options": {"concurrency": "first-write"}}]);
    assert_eq!(save(&api, fw(1)).await.status, StatusCode::NO_CONTENT);
    let r = save(&api, fw(2)).await;
    dapr_error(&r, StatusCode::CONFLICT, "ERR_STATE_SAVE");
    assert_eq!(get(api.addr, &format!("{S}/once"), &[]).await.body, "1");
    // last-write without etag overwrites.
    let r = save(
        &api,
        json!([{"key": "once", "value": 3, "options": {"concurrency": "last-write"}}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    // A transaction whose second op has a stale etag leaves nothing.
    save(
        &api,
        json!([{"key": "a", "value": "a0"}, {"key": "b", "value": "b0"}]),
    )
    .await;
    let etag_b = etag_of(&get(api.addr, &format!("{S}/b"), &[]).await);
    save(&api, json!([{"key": "b", "value": "b1"}])).await;
    let r = post(
        api.addr,
        &format!("{S}/transaction"),
        &JSON,
        &json!({"operations": [
            {"operation": "upsert", "request": {"key": "a", "value": "a2"}},
            {"operation": "upsert", "request": {"key": "b", "value": "b2", "etag": etag_b}},
            {"operation": "delete", "request": {"key": "once"}},
        ]})
        .to_string(),
    )
    .await;
    let m = dapr_error(&r, StatusCode::CONFLICT, "ERR_STATE_TRANSACTION");
    assert!(
        m.starts_with("error while executing state transaction: key \"b\": possible etag mismatch"),
        "{m}"
    );
    assert_eq!(get(api.addr, &format!("{S}/a"), &[]).await.body, r#""a0""#);
    assert_eq!(get(api.addr, &format!("{S}/b"), &[]).await.body, r#""b1""#);
    assert_eq!(get(api.addr, &format!("{S}/once"), &[]).await.body, "3");
    // A save of several items is atomic too.
    let r = save(
        &api,
        json!([
            {"key": "a", "value": "a3"},
            {"key": "b", "value": "b3", "etag": etag_b},
        ]),
    )
    .await;
    let m = dapr_error(&r, StatusCode::CONFLICT, "ERR_STATE_SAVE");
    assert!(m.contains("key \"b\""), "{m}");
    assert_eq!(get(api.addr, &format!("{S}/a"), &[]).await.body, r#""a0""#);
    // With the right etags it all applies, deletes included.
    let etag_b = etag_of(&get(api.addr, &format!("{S}/b"), &[]).await);
    let etag_once = etag_of(&get(api.addr, &format!("{S}/once"), &[]).await);
    let r = post(
        api.addr,
        &format!("{S}/transaction"),
        &JSON,
        &json!({"operations": [
            {"operation": "upsert", "request": {"key": "a", "value": "a4", "metadata": {"ttlInSeconds": "100"}}},
            {"operation": "upsert", "request": {"key": "b", "value": "b4", "etag": etag_b}},
            {"operation": "delete", "request": {"key": "once", "etag": etag_once}},
        ]})
        .to_string(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(get(api.addr, &format!("{S}/b"), &[]).await.body, r#""b4""#);
    assert_eq!(
        get(api.addr, &format!("{S}/once"), &[]).await.status,
        StatusCode::NO_CONTENT
    );
    let r = get(api.addr, &format!("{S}/a"), &[]).await;
    assert!(r.headers.contains_key("metadata.ttlExpireTime"));
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_in_seconds_expires_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (mut api, clock) = Api::default_in(dir.path()).await;
    // Per item; a query parameter applies to every item and wins over the
    // item's own (as Dapr merges them).
    let r = post(
        api.addr,
        S,
        &JSON,
        r#"[{"key":"short","value":1,"metadata":{"ttlInSeconds":"10"}},{"key":"forever","value":3,"metadata":{"ttlInSeconds":"-1"}}]"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = post(
        api.addr,
        &format!("{S}?metadata.ttlInSeconds=100"),
        &JSON,
        r#"[{"key":"long","value":2,"metadata":{"ttlInSeconds":"5"}}]"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = get(api.addr, &format!("{S}/short"), &[]).await;
    // T0 + 10 s.
    assert_eq!(r.headers["metadata.ttlExpireTime"], "2026-01-01T00:00:10Z");
    assert!(
        !get(api.addr, &format!("{S}/forever"), &[])
            .await
            .headers
            .contains_key("metadata.ttlExpireTime")
    );
    clock.advance(Duration::from_secs(11));
    assert_eq!(
        get(api.addr, &format!("{S}/short"), &[]).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(get(api.addr, &format!("{S}/long"), &[]).await.body, "2");
    let r = post(
        api.addr,
        &format!("{S}/bulk"),
        &JSON,
        r#"{"keys":["short","long"]}"#,
    )
    .await;
    assert!(
        r.body.ends_with("]\n"),
        "Dapr's encoder ends with a newline"
    );
    let items = body_json(&r);
    assert_eq!(
        items,
        json!([{"key":"short"},{"key":"long","data":2,"etag":items[1]["etag"],"metadata":{"ttlExpireTime":"2026-01-01T00:01:40Z"}}])
    );
    clock.advance(Duration::from_secs(100));
    assert_eq!(
        get(api.addr, &format!("{S}/long"), &[]).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(get(api.addr, &format!("{S}/forever"), &[]).await.body, "3");
    // A new save without TTL clears an old one.
    post(
        api.addr,
        S,
        &JSON,
        r#"[{"key":"k","value":1,"metadata":{"ttlInSeconds":"5"}}]"#,
    )
    .await;
    post(api.addr, S, &JSON, r#"[{"key":"k","value":2}]"#).await;
    clock.advance(Duration::from_secs(10));
    assert_eq!(get(api.addr, &format!("{S}/k"), &[]).await.body, "2");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_token_is_required_except_for_health_checks() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = manual_store(dir.path());
    let options = DaprOptions {
        api_token: Some("s3cret".into()),
        ..DaprOptions::default()
    };
    let mut api = Api::start(store, vec![StoreSpec::default_store()], options).await;
    let body = r#"[{"key":"k","value":1}]"#;
    for headers in [
        vec![],
        vec![("dapr-api-token", "wrong")],
        vec![("dapr-api-token", "s3cre")],
    ] {
        let r = post(api.addr, S, &headers, body).await;
        dapr_error(&r, StatusCode::UNAUTHORIZED, "ERR_API_UNAUTHORIZED");
        let r = get(api.addr, "/v1.0/metadata", &headers).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        api.store
            .account("default")
            .unwrap()
            .get("k")
            .await
            .unwrap(),
        None
    );
    let ok = [("dapr-api-token", "s3cret")];
    assert_eq!(
        post(api.addr, S, &ok, body).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(get(api.addr, &format!("{S}/k"), &ok).await.body, "1");
    assert_eq!(
        get(api.addr, "/v1.0/healthz", &[]).await.status,
        StatusCode::NO_CONTENT
    );
    // The token is checked before routing (as Dapr): any other path, and a
    // health check by another method, need it too.
    assert_eq!(
        get(api.addr, "/v1.0/nope", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = post(api.addr, "/v1.0/healthz", &[], "").await;
    let m = dapr_error(&r, StatusCode::UNAUTHORIZED, "ERR_API_UNAUTHORIZED");
    assert!(m.starts_with("invalid api token"), "{m}");
    assert_eq!(
        get(api.addr, "/v1.0/healthz/outbound", &[]).await.status,
        StatusCode::NO_CONTENT
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_lists_the_stores_and_their_capabilities() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = manual_store(dir.path());
    let specs = vec![
        StoreSpec::default_store(),
        StoreSpec {
            name: "shop".into(),
            kind: StoreKind::Redb(ScopeTarget::Instance("shop".into())),
            key_prefix: KeyPrefix::None,
            source: None,
        },
    ];
    let options = DaprOptions {
        app_id: Some("myapp".into()),
        ..DaprOptions::default()
    };
    let mut api = Api::start(store, specs, options).await;
    let r = get(api.addr, "/v1.0/metadata", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = body_json(&r);
    assert_eq!(v["id"], "myapp");
    let caps = json!(["ETAG", "TRANSACTIONAL", "TTL", "QUERY_API"]);
    assert_eq!(
        v["components"],
        json!([
            {"name": "statestore", "type": "state.redb", "version": "v1", "capabilities": caps},
            {"name": "shop", "type": "state.redb", "version": "v1", "capabilities": caps},
        ])
    );
    // `shop` is an instance no deploy registered: its first write that
    // succeeds registers it (to the API's account), so it is listed,
    // exported and destroyed like a deployed one; a failed write does not.
    let r = post(api.addr, "/v1.0/state/shop", &JSON, r#"[{"key":""}]"#).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(api.store.instance_info("shop").await.unwrap().is_none());
    let r = post(
        api.addr,
        "/v1.0/state/shop",
        &JSON,
        r#"[{"key":"k","value":1}]"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let listed = api.store.list_instances().await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|i| (i.name.as_str(), i.account.as_str()))
            .collect::<Vec<_>>(),
        [("shop", "default")]
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_saves_with_one_etag_have_exactly_one_winner_per_round() {
    let dir = tempfile::tempdir().unwrap();
    let (mut api, _) = Api::default_in(dir.path()).await;
    save(&api, json!([{"key": "hot", "value": 0}])).await;
    const CLIENTS: usize = 200;
    for round in 1..=3 {
        let etag = etag_of(&get(api.addr, &format!("{S}/hot"), &[]).await);
        let mut tasks = tokio::task::JoinSet::new();
        for client in 0..CLIENTS {
            let (addr, etag) = (api.addr, etag.clone());
            tasks.spawn(async move {
                let body = json!([{"key": "hot", "value": client, "etag": etag}]).to_string();
                let r = post(addr, S, &JSON, &body).await;
                (client, r.status)
            });
        }
        let mut winners = Vec::new();
        while let Some(done) = tasks.join_next().await {
            let (client, status) = done.unwrap();
            match status {
                StatusCode::NO_CONTENT => winners.push(client),
                StatusCode::CONFLICT => {}
                other => panic!("round {round}: unexpected {other}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let r = get(api.addr, &format!("{S}/hot"), &[]).await;
        assert_eq!(
            r.body,
            winners[0].to_string(),
            "the winner's value is stored"
        );
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_and_api_clients_share_data_and_etags() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(HostConfig::new(dir.path())).unwrap();
    common::deploy_probes(&host, &["shop"]).await;
    // `statestore` is the account's state (no app id: no prefix); `shop`
    // is the instance's.
    let specs = vec![
        StoreSpec::default_store(),
        StoreSpec {
            name: "shop".into(),
            kind: StoreKind::Redb(ScopeTarget::Instance("shop".into())),
            key_prefix: KeyPrefix::None,
            source: None,
        },
    ];
    let mut api = Api::start(host.store().clone(), specs, DaprOptions::default()).await;
    // Guest → API: the SDK's JSON reads back as the same JSON.
    let out = common::probe(
        &host,
        "shop",
        &[
            r#"set order {"id": 7, "items": ["apple", "pear"], "paid": true}"#,
            "use-account",
            r#"set greeting "hello""#,
        ],
    )
    .await;
    let guest_etag = common::string(&out[0]);
    let r = get(api.addr, "/v1.0/state/shop/order", &[]).await;
    assert_eq!(
        body_json(&r),
        json!({"id": 7, "items": ["apple", "pear"], "paid": true})
    );
    assert_eq!(etag_of(&r), guest_etag, "one etag, whoever reads");
    assert_eq!(
        get(api.addr, &format!("{S}/greeting"), &[]).await.body,
        r#""hello""#
    );
    // An etag from the guest works as If-Match over the API…
    let r = post(
        api.addr,
        "/v1.0/state/shop",
        &JSON,
        &json!([{"key": "order", "value": {"id": 7, "paid": false}, "etag": guest_etag}])
            .to_string(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    // …and an etag from the API as if-match in the guest.
    let api_etag = etag_of(&get(api.addr, "/v1.0/state/shop/order", &[]).await);
    let out = common::probe(
        &host,
        "shop",
        &[
            "get order",
            &format!(r#"set-if-match order {guest_etag} "stale""#),
            &format!(r#"set-if-match order {api_etag} {{"id": 7, "paid": true}}"#),
        ],
    )
    .await;
    assert_eq!(common::json(&out[0]), json!({"id": 7, "paid": false}));
    assert_eq!(out[1], "error:etag-mismatch");
    let r = get(api.addr, "/v1.0/state/shop/order", &[]).await;
    assert_eq!(body_json(&r), json!({"id": 7, "paid": true}));
    assert_eq!(etag_of(&r), common::string(&out[2]));
    // API → guest.
    let r = post(
        api.addr,
        "/v1.0/state/shop",
        &JSON,
        r#"[{"key":"from-api","value":[1,{"x":"y"}]}]"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let out = common::probe(&host, "shop", &["get from-api"]).await;
    assert_eq!(common::json(&out[0]), json!([1, {"x": "y"}]));
    // A map or a list read through the value API: a clear error naming it.
    common::probe(
        &host,
        "shop",
        &["map-set cart apple 1", "list-append log \"x\""],
    )
    .await;
    let r = get(api.addr, "/v1.0/state/shop/cart", &[]).await;
    let m = dapr_error(&r, StatusCode::CONFLICT, "ERR_STATE_GET");
    assert!(
        m.contains("fail to get cart from state store shop") && m.contains("holds a map"),
        "{m}"
    );
    let r = get(api.addr, "/v1.0/state/shop/log", &[]).await;
    let m = dapr_error(&r, StatusCode::CONFLICT, "ERR_STATE_GET");
    assert!(m.contains("holds a list"), "{m}");
    let r = post(
        api.addr,
        "/v1.0/state/shop/bulk",
        &JSON,
        r#"{"keys":["cart","order"]}"#,
    )
    .await;
    let items = body_json(&r);
    assert!(
        items[0]["error"].as_str().unwrap().contains("holds a map"),
        "{items}"
    );
    assert!(items[0].get("data").is_none());
    assert_eq!(items[1]["data"]["paid"], true);
    api.stop().await;
}

/// Waits until something listens on `addr` (the child compiles first).
async fn wait_listening(addr: std::net::SocketAddr, child: &mut std::process::Child) {
    let started = std::time::Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve did not start listening on {addr}"
        );
        assert!(child.try_wait().unwrap().is_none(), "serve exited early");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The real `wasm-state serve` process with a guest app and the Dapr API
/// configured by a component file: the API reads what the guest wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_serve_answers_the_api_beside_a_guest_app() {
    let dir = tempfile::tempdir().unwrap();
    let components = dir.path().join("components");
    std::fs::create_dir(&components).unwrap();
    std::fs::write(
        components.join("customers.yaml"),
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: customers\nspec:\n  type: state.redb\n  version: v1\n  metadata:\n  - name: scope\n    value: instance\n  - name: instance\n    value: customers-http\n  - name: keyPrefix\n    value: none\n",
    )
    .unwrap();
    let (app, api) = (free_addr(), free_addr());
    let mut child = std::process::Command::new(common::binary("wasm-state"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .args([
            "serve",
            "--listen",
            &app.to_string(),
            wasm_state_e2e::CUSTOMERS_HTTP,
        ])
        .args(["--dapr-listen", &api.to_string(), "--app-id", "shop"])
        .arg("--components")
        .arg(&components)
        .env("DAPR_API_TOKEN", "tok")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start wasm-state serve");
    wait_listening(app, &mut child).await;
    wait_listening(api, &mut child).await;
    for _ in 0..3 {
        assert_eq!(post(app, "/visit", &[], "").await.status, StatusCode::OK);
    }
    let tok = [("dapr-api-token", "tok")];
    let r = get(api, "/v1.0/state/customers/visits", &tok).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "3"));
    assert_eq!(
        get(api, "/v1.0/state/customers/visits", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The API's write is what the guest's next increment builds on.
    let r = post(
        api,
        "/v1.0/state/customers",
        &tok,
        r#"[{"key":"visits","value":100}]"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = post(app, "/visit", &[], "").await;
    assert_eq!(body_json(&r)["visits"], 101);
    let r = get(api, "/v1.0/metadata", &tok).await;
    assert_eq!(body_json(&r)["id"], "shop");
    assert_eq!(body_json(&r)["components"][0]["name"], "customers");
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: sends SIGTERM to our own child process; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("Dapr state API at http://"), "{stderr}");
}

/// `serve --dapr-listen` alone is a state sidecar; a bad components file
/// stops it at start with the file and field named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_serve_as_a_sidecar_and_its_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_addr();
    let mut child = std::process::Command::new(common::binary("wasm-state"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(["serve", "--dapr-listen", &api.port().to_string()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start wasm-state serve");
    wait_listening(api, &mut child).await;
    let r = post(api, S, &JSON, r#"[{"key":"k","value":{"a":1}}]"#).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(get(api, &format!("{S}/k"), &[]).await.body, r#"{"a":1}"#);
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: sends SIGTERM to our own child process; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success());
    // The state is the account's: the CLI sees it.
    let data = dir.path().join("data");
    let cli = |args: &[&str]| {
        std::process::Command::new(common::binary("wasm-state"))
            .arg("--data")
            .arg(&data)
            .args(args)
            .output()
            .unwrap()
    };
    let out = cli(&["state", "get", "k", "--shared"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), r#"{"a":1}"#);

    // A flag for one field of the manifest's [dapr] keeps the others: the
    // address moved by --dapr-listen, the manifest's token still asked for.
    let manifest = dir.path().join("wasm-state.toml");
    std::fs::write(
        &manifest,
        "[store]\ndata = \"data\"\n[dapr]\nlisten = \"127.0.0.1:1\"\napi_token = \"s3cret\"\n",
    )
    .unwrap();
    let api = free_addr();
    let mut child = std::process::Command::new(common::binary("wasm-state"))
        .arg("--manifest")
        .arg(&manifest)
        .args(["serve", "--dapr-listen", &api.to_string()])
        .env_remove("DAPR_API_TOKEN")
        .env_remove("APP_ID")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start wasm-state serve");
    wait_listening(api, &mut child).await;
    let r = get(api, &format!("{S}/k"), &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let r = get(api, &format!("{S}/k"), &[("dapr-api-token", "s3cret")]).await;
    assert_eq!(r.body, r#"{"a":1}"#);
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let _ = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap();

    let components = dir.path().join("bad");
    std::fs::create_dir(&components).unwrap();
    std::fs::write(
        components.join("store.yaml"),
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\nspec:\n  type: state.redb\n  metadata:\n  - {name: scope, value: galaxy}\n",
    )
    .unwrap();
    let out = cli(&[
        "serve",
        "--dapr-listen",
        "127.0.0.1:0",
        "--components",
        components.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("store.yaml: spec.metadata scope: \"galaxy\" is not a scope; use `account` or `instance`"),
        "{stderr}"
    );
    // A bad manifest is refused before anything is served.
    let out = cli(&[
        "--manifest",
        components.join("store.yaml").to_str().unwrap(),
        "serve",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("store.yaml: line 1:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
