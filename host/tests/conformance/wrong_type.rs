//! Every map, list and value operation on a key of another type fails with
//! `wrong-type` and changes nothing (Redis WRONGTYPE).

use std::time::Duration;

use wasm_state::store::{
    ExpireMode, KeyInfo, KeyKind, Op, OpKind, Result, ScopeHandle, StateError,
};

use super::*;

/// Everything observable about a key: its info (kind, etag, TTL) and content.
#[derive(Debug, PartialEq)]
struct Snapshot {
    info: Option<KeyInfo>,
    value: Option<Vec<u8>>,
    fields: Vec<(String, Vec<u8>)>,
    items: Vec<Vec<u8>>,
}

async fn snapshot(s: &ScopeHandle, key: &str) -> Snapshot {
    let info = s.info(key).await.unwrap();
    let kind = info.as_ref().map(|i| i.kind);
    Snapshot {
        value: match kind {
            Some(KeyKind::Value) => s.get(key).await.unwrap(),
            _ => None,
        },
        fields: match kind {
            Some(KeyKind::Map) => s.map_get_all(key).await.unwrap(),
            _ => Vec::new(),
        },
        items: match kind {
            Some(KeyKind::List) => s.list_range(key, 0, -1).await.unwrap(),
            _ => Vec::new(),
        },
        info,
    }
}

/// A scope with value "v", map "m" and list "l", each with a TTL.
async fn setup(h: &Harness) -> ScopeHandle {
    let s = h.instance("a");
    s.set("v", b("12")).await.unwrap();
    s.map_set("m", fv(&[("f", "1"), ("g", "x")])).await.unwrap();
    s.list_append("l", bs(&["a", "b", "a"])).await.unwrap();
    for k in ["v", "m", "l"] {
        assert!(s.expire(k, 1000, ExpireMode::Always).await.unwrap());
    }
    h.advance(Duration::from_secs(1));
    s
}

fn kind_name(s: &Snapshot) -> &'static str {
    s.info.as_ref().expect("key exists").kind.name()
}

/// Assert `result` is wrong-type (needing `expected`) and `key` unchanged.
async fn assert_wrong_type<T: std::fmt::Debug>(
    s: &ScopeHandle,
    key: &str,
    before: &Snapshot,
    expected: &str,
    what: &str,
    result: Result<T>,
) {
    match result {
        Err(StateError::WrongType {
            expected: e,
            found: f,
        }) => {
            assert_eq!(e, expected, "{what} on {key}: expected kind");
            assert_eq!(f, kind_name(before), "{what} on {key}: found kind");
        }
        other => panic!("{what} on {key}: want wrong-type, got {other:?}"),
    }
    assert_eq!(&snapshot(s, key).await, before, "{what} changed {key}");
}

#[tokio::test]
async fn map_ops_on_values_and_lists() {
    let h = Harness::new();
    let s = setup(&h).await;
    for key in ["v", "l"] {
        let before = snapshot(&s, key).await;
        macro_rules! check {
            ($what:expr, $call:expr) => {
                assert_wrong_type(&s, key, &before, "map", $what, $call.await).await
            };
        }
        check!("map_set", s.map_set(key, fv(&[("f", "2")])));
        check!("map_set new field", s.map_set(key, fv(&[("new", "2")])));
        check!("map_get", s.map_get(key, "f"));
        check!("map_get_many", s.map_get_many(key, &["f", "zz"]));
        check!("map_get_all", s.map_get_all(key));
        check!("map_values", s.map_values(key));
        check!("map_keys", s.map_keys(key));
        check!("map_delete", s.map_delete(key, &["f"]));
        check!("map_delete missing field", s.map_delete(key, &["zz"]));
        check!("map_exists", s.map_exists(key, "f"));
        check!("map_length", s.map_length(key));
        check!("map_increment", s.map_increment(key, "f", 1));
        check!("map_increment 0", s.map_increment(key, "n", 0));
        check!("map_scan", s.map_scan(key, "0", None, 10));
        check!("map_scan pattern", s.map_scan(key, "0", Some("*"), 1));
    }
}

#[tokio::test]
async fn list_ops_on_values_and_maps() {
    let h = Harness::new();
    let s = setup(&h).await;
    for key in ["v", "m"] {
        let before = snapshot(&s, key).await;
        macro_rules! check {
            ($what:expr, $call:expr) => {
                assert_wrong_type(&s, key, &before, "list", $what, $call.await).await
            };
        }
        check!("list_append", s.list_append(key, bs(&["x"])));
        check!("list_prepend", s.list_prepend(key, bs(&["x"])));
        check!("list_start_pop", s.list_start_pop(key, 1));
        check!("list_start_pop 0", s.list_start_pop(key, 0));
        check!("list_end_pop", s.list_end_pop(key, 1));
        check!("list_end_pop 0", s.list_end_pop(key, 0));
        check!("list_remove", s.list_remove(key, b("a"), 0));
        check!("list_remove absent", s.list_remove(key, b("zz"), 1));
        check!("list_length", s.list_length(key));
        check!("list_range", s.list_range(key, 0, -1));
        check!("list_range empty span", s.list_range(key, 5, 1));
        check!("list_trim", s.list_trim(key, 0, 0));
        check!("list_trim deleting", s.list_trim(key, 2, 1));
        check!("list_insert", s.list_insert(key, true, b("a"), b("x")));
        check!(
            "list_insert no pivot",
            s.list_insert(key, false, b("zz"), b("x"))
        );
        check!("list_index", s.list_index(key, 0));
        check!("list_index out of range", s.list_index(key, 100));
        check!("list_set", s.list_set(key, 0, b("x")));
        check!("list_set out of range", s.list_set(key, 100, b("x")));
    }
}

#[tokio::test]
async fn value_ops_on_maps_and_lists() {
    let h = Harness::new();
    let s = setup(&h).await;
    for key in ["m", "l"] {
        let before = snapshot(&s, key).await;
        assert_wrong_type(&s, key, &before, "value", "get", s.get(key).await).await;
        assert_wrong_type(
            &s,
            key,
            &before,
            "value",
            "get_entry",
            s.get_entry(key).await,
        )
        .await;
        assert_wrong_type(
            &s,
            key,
            &before,
            "value",
            "increment",
            s.increment(key, 1).await,
        )
        .await;
        assert_wrong_type(
            &s,
            key,
            &before,
            "value",
            "increment 0",
            s.increment(key, 0).await,
        )
        .await;
    }
}

#[tokio::test]
async fn wrong_type_in_a_transaction_aborts_it() {
    let h = Harness::new();
    let s = setup(&h).await;
    let before: Vec<Snapshot> = snapshots(&s, &["v", "m", "l"]).await;
    let err = s
        .commit(vec![
            Op::new(
                "new",
                OpKind::Set {
                    value: b("1"),
                    ttl: None,
                },
            ),
            Op::new("v", OpKind::ListAppend(bs(&["x"]))),
            Op::new("m", OpKind::Increment(1)),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StateError::Aborted { index: 1, .. }),
        "{err:?}"
    );
    assert!(
        matches!(
            err.root(),
            StateError::WrongType {
                expected: "list",
                found: "value"
            }
        ),
        "{err:?}"
    );
    assert!(!s.exists("new").await.unwrap());
    assert_eq!(snapshots(&s, &["v", "m", "l"]).await, before);
}

async fn snapshots(s: &ScopeHandle, keys: &[&str]) -> Vec<Snapshot> {
    let mut out = Vec::new();
    for k in keys {
        out.push(snapshot(s, k).await);
    }
    out
}

#[tokio::test]
async fn whole_key_ops_work_on_every_type() {
    let h = Harness::new();
    let s = setup(&h).await;
    // exists, info, ttl, expire, persist and delete take any type.
    for key in ["v", "m", "l"] {
        assert!(s.exists(key).await.unwrap());
        assert_eq!(s.ttl(key).await.unwrap(), Some(Duration::from_secs(999)));
        assert!(s.persist(key).await.unwrap());
        assert_eq!(s.ttl(key).await.unwrap(), None);
        assert!(s.expire(key, 5, ExpireMode::Nx).await.unwrap());
        assert_eq!(s.ttl(key).await.unwrap(), Some(Duration::from_secs(5)));
    }
    // set overwrites a map or a list (Redis SET).
    s.set("m", b("now a value")).await.unwrap();
    assert_eq!(s.get("m").await.unwrap(), Some(b("now a value")));
    assert_eq!(s.ttl("m").await.unwrap(), None);
    for key in ["v", "m", "l"] {
        assert!(s.delete(key).await.unwrap());
        assert!(!s.exists(key).await.unwrap());
    }
    // Once deleted, the key takes any type.
    assert_eq!(s.list_append("v", bs(&["x"])).await.unwrap(), 1);
    assert_eq!(s.map_set("l", fv(&[("f", "1")])).await.unwrap(), 1);
    assert_eq!(s.increment("m", 1).await.unwrap(), 1);
}

#[tokio::test]
async fn an_expired_key_of_another_type_is_no_obstacle() {
    let h = Harness::new();
    let s = setup(&h).await;
    h.advance(Duration::from_secs(999) + Duration::from_millis(1));
    // All three expired: any type may take their names.
    assert_eq!(s.map_get("v", "f").await.unwrap(), None);
    assert_eq!(s.list_length("m").await.unwrap(), 0);
    assert_eq!(s.get("l").await.unwrap(), None);
    assert_eq!(s.map_set("v", fv(&[("f", "1")])).await.unwrap(), 1);
    assert_eq!(s.list_append("m", bs(&["x"])).await.unwrap(), 1);
    assert_eq!(s.increment("l", 3).await.unwrap(), 3);
    assert_eq!(s.info("v").await.unwrap().unwrap().kind, KeyKind::Map);
    assert_eq!(s.info("m").await.unwrap().unwrap().kind, KeyKind::List);
    assert_eq!(s.info("l").await.unwrap().unwrap().kind, KeyKind::Value);
    for k in ["v", "m", "l"] {
        assert_eq!(s.ttl(k).await.unwrap(), None, "{k}");
    }
    assert_eq!(s.map_get_all("v").await.unwrap(), fv(&[("f", "1")]));
    assert_eq!(s.list_range("m", 0, -1).await.unwrap(), bs(&["x"]));
}
