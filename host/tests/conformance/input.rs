//! Hostile input: every bad argument gives a typed error (never a panic) and
//! changes nothing; odd but valid input just works.

use std::time::Duration;

use wasm_state::store::{
    Condition, ExpireMode, KeyInfo, KeyKind, KeyListing, Op, OpKind, ScopeHandle, SetOptions,
    StateError,
};

use super::*;

/// One key with everything observable about it.
#[derive(Debug, PartialEq)]
struct KeyDump {
    key: String,
    info: KeyInfo,
    value: Option<Vec<u8>>,
    fields: Vec<(String, Vec<u8>)>,
    items: Vec<Vec<u8>>,
}

/// Every key of the scope with its type, etag, TTL and content.
async fn dump(s: &ScopeHandle) -> Vec<KeyDump> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .keys(KeyListing {
                cursor: cursor.clone(),
                ..KeyListing::default()
            })
            .await
            .unwrap();
        for key in page.keys {
            let info = s.info(&key).await.unwrap().expect("listed key exists");
            out.push(KeyDump {
                value: match info.kind {
                    KeyKind::Value => s.get(&key).await.unwrap(),
                    _ => None,
                },
                fields: match info.kind {
                    KeyKind::Map => s.map_get_all(&key).await.unwrap(),
                    _ => Vec::new(),
                },
                items: match info.kind {
                    KeyKind::List => s.list_range(&key, 0, -1).await.unwrap(),
                    _ => Vec::new(),
                },
                key,
                info,
            });
        }
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

/// A scope holding a value "v", a counter "n", a map "m" and a list "l".
async fn populated(h: &Harness) -> ScopeHandle {
    let s = h.instance("a");
    s.set("v", b("value")).await.unwrap();
    s.increment("n", 7).await.unwrap();
    s.map_set("m", fv(&[("f", "1"), ("g", "2")])).await.unwrap();
    s.list_append("l", bs(&["a", "b", "a", "c"])).await.unwrap();
    assert!(s.expire("v", 100, ExpireMode::Always).await.unwrap());
    s
}

/// `$call` fails with an error matching `$pat` (after unwrapping an abort)
/// and the scope is exactly as before.
macro_rules! rejects {
    ($s:expr, $pat:pat, $call:expr) => {{
        let before = dump(&$s).await;
        let result = $call.await;
        match &result {
            Err(e) if matches!(e.root(), $pat) => {}
            other => panic!(
                "{}: want {}, got {other:?}",
                stringify!($call),
                stringify!($pat)
            ),
        }
        assert_eq!(
            dump(&$s).await,
            before,
            "{} changed the scope",
            stringify!($call)
        );
    }};
}

#[tokio::test]
async fn empty_key_is_invalid_argument_everywhere() {
    let h = Harness::new();
    let s = populated(&h).await;
    let k = "";
    use StateError::InvalidArgument as IA;
    rejects!(s, IA(_), s.get(k));
    rejects!(s, IA(_), s.get_entry(k));
    rejects!(s, IA(_), s.get_many(&[k]));
    rejects!(s, IA(_), s.get_many(&["v", k]));
    rejects!(s, IA(_), s.set(k, b("x")));
    rejects!(s, IA(_), s.set_many(fv(&[("new", "1"), (k, "2")])));
    rejects!(s, IA(_), s.delete(k));
    rejects!(s, IA(_), s.delete_many(&["v", k]));
    rejects!(s, IA(_), s.exists(k));
    rejects!(s, IA(_), s.info(k));
    rejects!(s, IA(_), s.ttl(k));
    rejects!(s, IA(_), s.increment(k, 1));
    rejects!(s, IA(_), s.expire(k, 10, ExpireMode::Always));
    rejects!(s, IA(_), s.persist(k));
    rejects!(s, IA(_), s.map_set(k, fv(&[("f", "1")])));
    rejects!(s, IA(_), s.map_get(k, "f"));
    rejects!(s, IA(_), s.map_get_many(k, &["f"]));
    rejects!(s, IA(_), s.map_get_all(k));
    rejects!(s, IA(_), s.map_keys(k));
    rejects!(s, IA(_), s.map_values(k));
    rejects!(s, IA(_), s.map_delete(k, &["f"]));
    rejects!(s, IA(_), s.map_exists(k, "f"));
    rejects!(s, IA(_), s.map_length(k));
    rejects!(s, IA(_), s.map_increment(k, "f", 1));
    rejects!(s, IA(_), s.map_scan(k, "0", None, 10));
    rejects!(s, IA(_), s.list_append(k, bs(&["x"])));
    rejects!(s, IA(_), s.list_prepend(k, bs(&["x"])));
    rejects!(s, IA(_), s.list_start_pop(k, 1));
    rejects!(s, IA(_), s.list_end_pop(k, 1));
    rejects!(s, IA(_), s.list_remove(k, b("a"), 0));
    rejects!(s, IA(_), s.list_length(k));
    rejects!(s, IA(_), s.list_range(k, 0, -1));
    rejects!(s, IA(_), s.list_trim(k, 0, 1));
    rejects!(s, IA(_), s.list_insert(k, true, b("a"), b("x")));
    rejects!(s, IA(_), s.list_index(k, 0));
    rejects!(s, IA(_), s.list_set(k, 0, b("x")));
    rejects!(s, IA(_), s.delete_prefix(k));
    rejects!(
        s,
        IA(_),
        s.commit(vec![
            Op::new("new", OpKind::Increment(1)),
            Op::new(k, OpKind::Delete),
        ])
    );
    let err = s
        .commit(vec![
            Op::new("new", OpKind::Increment(1)),
            Op::new(k, OpKind::Check),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StateError::Aborted { index: 1, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn oversized_keys_are_key_too_large() {
    let h = Harness::new();
    let s = populated(&h).await;
    let ascii = "k".repeat(2049);
    // 2047 ASCII bytes and a 2-byte character: 2049 bytes, 2048 chars.
    let multi = format!("{}é", "k".repeat(2047));
    assert_eq!(multi.len(), 2049);
    for k in [ascii.as_str(), multi.as_str()] {
        use StateError::KeyTooLarge as KTL;
        rejects!(
            s,
            KTL {
                len: 2049,
                max: 2048
            },
            s.set(k, b("x"))
        );
        rejects!(s, KTL { len: 2049, .. }, s.get(k));
        rejects!(s, KTL { len: 2049, .. }, s.exists(k));
        rejects!(s, KTL { len: 2049, .. }, s.delete(k));
        rejects!(s, KTL { len: 2049, .. }, s.increment(k, 1));
        rejects!(s, KTL { len: 2049, .. }, s.get_many(&["v", k]));
        rejects!(
            s,
            KTL { len: 2049, .. },
            s.set_many(vec![("new".into(), b("1")), (k.into(), b("2"))])
        );
        rejects!(s, KTL { len: 2049, .. }, s.delete_many(&["v", k]));
        rejects!(s, KTL { len: 2049, .. }, s.map_set(k, fv(&[("f", "1")])));
        rejects!(s, KTL { len: 2049, .. }, s.map_get(k, "f"));
        rejects!(s, KTL { len: 2049, .. }, s.map_increment(k, "f", 1));
        rejects!(s, KTL { len: 2049, .. }, s.list_append(k, bs(&["x"])));
        rejects!(s, KTL { len: 2049, .. }, s.list_range(k, 0, -1));
        rejects!(s, KTL { len: 2049, .. }, s.list_start_pop(k, 1));
        rejects!(
            s,
            KTL { len: 2049, .. },
            s.expire(k, 10, ExpireMode::Always)
        );
        rejects!(s, KTL { len: 2049, .. }, s.delete_prefix(k));
        // A map field over the field limit.
        rejects!(
            s,
            KTL { len: 2049, .. },
            s.map_set("m", vec![(k.into(), b("1"))])
        );
        rejects!(s, KTL { len: 2049, .. }, s.map_increment("m", k, 1));
    }
    // Exactly at the limit is fine, for every type.
    let max = "k".repeat(2048);
    s.set(&max, b("x")).await.unwrap();
    assert_eq!(s.get(&max).await.unwrap(), Some(b("x")));
    assert!(s.delete(&max).await.unwrap());
    s.map_set(&max, vec![(max.clone(), b("y"))]).await.unwrap();
    assert_eq!(s.map_get(&max, &max).await.unwrap(), Some(b("y")));
    assert!(s.delete(&max).await.unwrap());
    s.list_append(&max, bs(&["z"])).await.unwrap();
    assert_eq!(s.list_range(&max, 0, -1).await.unwrap(), bs(&["z"]));
    let page = s.keys(KeyListing::default()).await.unwrap();
    assert!(page.keys.contains(&max));
}

#[tokio::test]
async fn odd_bytes_in_keys_work_and_stay_distinct() {
    let h = Harness::new();
    let s = h.instance("a");
    let keys = [
        "a", "a/b", "a|b", "a\0b", "a\0", "\0", "|", "/", "🦀", "a🦀", "a/", "a|", "a\u{1}",
        "\u{7f}", "M", "L",
    ];
    for (i, k) in keys.iter().enumerate() {
        s.set(k, format!("{i}").into_bytes()).await.unwrap();
        let m = format!("M{k}");
        s.map_set(&m, vec![(k.to_string(), format!("{i}").into_bytes())])
            .await
            .unwrap();
        let l = format!("L{k}");
        s.list_append(&l, vec![format!("{i}").into_bytes()])
            .await
            .unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        let want = format!("{i}").into_bytes();
        assert_eq!(s.get(k).await.unwrap(), Some(want.clone()), "{k:?}");
        let m = format!("M{k}");
        assert_eq!(
            s.map_get_all(&m).await.unwrap(),
            vec![(k.to_string(), want.clone())],
            "{m:?}"
        );
        let l = format!("L{k}");
        assert_eq!(s.list_range(&l, 0, -1).await.unwrap(), vec![want], "{l:?}");
    }
    let mut all: Vec<String> = keys
        .iter()
        .flat_map(|k| [k.to_string(), format!("M{k}"), format!("L{k}")])
        .collect();
    all.sort();
    all.dedup();
    let listed = s.keys(KeyListing::default()).await.unwrap().keys;
    assert_eq!(listed, all);
    // A prefix with a NUL byte deletes exactly the keys that start with it.
    assert_eq!(s.delete_prefix("a\0").await.unwrap(), 2);
    assert_eq!(s.get("a\0b").await.unwrap(), None);
    assert_eq!(s.get("a").await.unwrap(), Some(b("0")));
    assert_eq!(s.get("a\u{1}").await.unwrap(), Some(b("12")));
    assert_eq!(s.get("\0").await.unwrap(), Some(b("5")));
    // Deleting a map or list whose name prefixes another leaves that one alone.
    assert!(s.delete("Ma").await.unwrap());
    assert_eq!(
        s.map_get_all("Ma/b").await.unwrap(),
        vec![("a/b".to_string(), b("1"))]
    );
    assert!(s.delete("La").await.unwrap());
    assert_eq!(s.list_range("La\0b", 0, -1).await.unwrap(), bs(&["3"]));
}

#[tokio::test]
async fn odd_bytes_in_scope_names_stay_apart() {
    let h = Harness::new();
    let names = ["x", "x/y", "x|y", "x\0y", "x\0", "🦀", "xI", "x\0I"];
    for (i, n) in names.iter().enumerate() {
        h.instance(n)
            .set("k", format!("{i}").into_bytes())
            .await
            .unwrap();
        h.account(n)
            .set("k", format!("acct{i}").into_bytes())
            .await
            .unwrap();
    }
    for (i, n) in names.iter().enumerate() {
        let inst = h.instance(n);
        assert_eq!(
            inst.get("k").await.unwrap(),
            Some(format!("{i}").into_bytes())
        );
        assert_eq!(
            inst.keys(KeyListing::default()).await.unwrap().keys,
            vec!["k"]
        );
        assert_eq!(
            h.account(n).get("k").await.unwrap(),
            Some(format!("acct{i}").into_bytes())
        );
    }
}

#[tokio::test]
async fn bad_scope_names_are_invalid_argument() {
    let h = Harness::new();
    let long = "x".repeat(10 * 1024);
    for name in ["", long.as_str()] {
        let err = h.store.instance(name).unwrap_err();
        assert!(matches!(err, StateError::InvalidArgument(_)), "{err:?}");
        let err = h.store.account(name).unwrap_err();
        assert!(matches!(err, StateError::InvalidArgument(_)), "{err:?}");
        let err = h.store.create_session(name, None).await.unwrap_err();
        assert!(matches!(err, StateError::InvalidArgument(_)), "{err:?}");
    }
    assert!(h.store.list_sessions("x").await.unwrap().is_empty());
}

#[tokio::test]
async fn huge_pop_counts() {
    let h = Harness::new();
    let s = h.instance("a");
    s.list_append("l", bs(&["a", "b", "c"])).await.unwrap();
    assert_eq!(
        s.list_start_pop("l", u64::MAX).await.unwrap(),
        bs(&["a", "b", "c"])
    );
    assert!(!s.exists("l").await.unwrap());
    s.list_append("l", bs(&["a", "b", "c"])).await.unwrap();
    assert_eq!(
        s.list_end_pop("l", u64::MAX).await.unwrap(),
        bs(&["c", "b", "a"])
    );
    assert!(!s.exists("l").await.unwrap());
    assert!(s.list_start_pop("l", u64::MAX).await.unwrap().is_empty());
    assert!(s.list_end_pop("l", u64::MAX).await.unwrap().is_empty());
    assert!(!s.exists("l").await.unwrap());
    let out = s
        .commit(vec![
            Op::new("t", OpKind::ListAppend(bs(&["x", "y"]))),
            Op::new("t", OpKind::ListEndPop(u64::MAX)),
        ])
        .await
        .unwrap();
    assert_eq!(
        out[1].output,
        wasm_state::store::OpOutput::Values(bs(&["y", "x"]))
    );
    assert!(!s.exists("t").await.unwrap());
}

#[tokio::test]
async fn extreme_list_indices() {
    let h = Harness::new();
    let s = h.instance("a");
    let abc = bs(&["a", "b", "a", "c"]);
    s.list_append("l", abc.clone()).await.unwrap();
    for (start, stop) in [(i64::MIN, i64::MAX), (i64::MIN, -1), (0, i64::MAX)] {
        assert_eq!(s.list_range("l", start, stop).await.unwrap(), abc);
    }
    for (start, stop) in [
        (i64::MAX, i64::MIN),
        (i64::MIN, i64::MIN),
        (i64::MAX, i64::MAX),
        (i64::MAX, -1),
        (0, i64::MIN),
    ] {
        assert!(s.list_range("l", start, stop).await.unwrap().is_empty());
    }
    for i in [i64::MIN, i64::MAX, i64::MIN + 1, i64::MAX - 1] {
        assert_eq!(s.list_index("l", i).await.unwrap(), None);
        rejects!(
            s,
            StateError::IndexOutOfRange { len: 4 },
            s.list_set("l", i, b("x"))
        );
    }
    // Trim over the whole range keeps everything.
    s.list_trim("l", i64::MIN, i64::MAX).await.unwrap();
    assert_eq!(s.list_range("l", 0, -1).await.unwrap(), abc);
    s.list_trim("l", 1, i64::MAX).await.unwrap();
    assert_eq!(
        s.list_range("l", 0, -1).await.unwrap(),
        bs(&["b", "a", "c"])
    );
    s.list_trim("l", i64::MIN, -2).await.unwrap();
    assert_eq!(s.list_range("l", 0, -1).await.unwrap(), bs(&["b", "a"]));
    // An empty span deletes the list.
    s.list_trim("l", i64::MAX, i64::MIN).await.unwrap();
    assert!(!s.exists("l").await.unwrap());
    s.list_append("l", abc.clone()).await.unwrap();
    s.list_trim("l", i64::MIN, i64::MIN).await.unwrap();
    assert!(!s.exists("l").await.unwrap());

    // LREM with extreme counts: all from the head / all from the tail.
    s.list_append("l", abc.clone()).await.unwrap();
    assert_eq!(s.list_remove("l", b("a"), i64::MAX).await.unwrap(), 2);
    assert_eq!(s.list_range("l", 0, -1).await.unwrap(), bs(&["b", "c"]));
    s.list_append("l", bs(&["b"])).await.unwrap();
    assert_eq!(s.list_remove("l", b("b"), i64::MIN).await.unwrap(), 2);
    assert_eq!(s.list_range("l", 0, -1).await.unwrap(), bs(&["c"]));
    assert_eq!(s.list_remove("l", b("c"), i64::MIN).await.unwrap(), 1);
    assert!(!s.exists("l").await.unwrap());
}

#[tokio::test]
async fn extreme_expire_times() {
    let h = Harness::new();
    let s = populated(&h).await;
    let modes = [
        ExpireMode::Always,
        ExpireMode::Nx,
        ExpireMode::Xx,
        ExpireMode::Gt,
        ExpireMode::Lt,
    ];
    // Redis: "invalid expire time" when seconds × 1000 or now + that overflows.
    for seconds in [i64::MAX, i64::MIN, i64::MAX / 1000, i64::MIN / 1000 - 1] {
        for mode in modes {
            for key in ["v", "m", "l", "n"] {
                rejects!(
                    s,
                    StateError::InvalidArgument(_),
                    s.expire(key, seconds, mode)
                );
            }
        }
    }
    // A far but representable expiry is kept.
    assert!(
        s.expire("n", 1_000_000_000_000, ExpireMode::Always)
            .await
            .unwrap()
    );
    assert_eq!(
        s.ttl("n").await.unwrap(),
        Some(Duration::from_secs(1_000_000_000_000))
    );
    // The most negative accepted time is in the past: the key is deleted.
    assert!(
        s.expire("m", i64::MIN / 1000, ExpireMode::Always)
            .await
            .unwrap()
    );
    assert!(!s.exists("m").await.unwrap());

    // A TTL that is zero or does not fit.
    for ttl in [
        Duration::ZERO,
        Duration::MAX,
        Duration::from_secs(u64::MAX / 1000),
    ] {
        rejects!(
            s,
            StateError::InvalidArgument(_),
            s.set_with(
                "v",
                b("new"),
                SetOptions {
                    ttl: Some(ttl),
                    condition: None,
                }
            )
        );
    }
}

#[tokio::test]
async fn extreme_expire_times_on_a_missing_key() {
    // Redis checks the time before looking up the key.
    let h = Harness::new();
    let s = populated(&h).await;
    for seconds in [i64::MAX, i64::MIN] {
        rejects!(
            s,
            StateError::InvalidArgument(_),
            s.expire("missing", seconds, ExpireMode::Always)
        );
    }
    assert!(!s.exists("missing").await.unwrap());
}

#[tokio::test]
async fn garbage_etags_are_invalid_etag() {
    let h = Harness::new();
    let s = populated(&h).await;
    let real = s.info("v").await.unwrap().unwrap().etag;
    let never_issued = crate::backend::never_issued(&real);
    let garbage = [
        String::new(),
        "zz".into(),
        "not-an-etag".into(),
        "ffffffffffffffff".into(),
        "0000000000000000".into(),
        never_issued,
        format!(" {real}"),
        format!("{real} "),
        format!("0{real}"),
        real[1..].to_string(),
        format!("\"{real}\""),
        "x".repeat(10_000),
    ];
    for etag in garbage {
        let cond = Condition::IfMatch(etag.clone());
        for key in ["v", "m", "missing"] {
            rejects!(
                s,
                StateError::InvalidEtag(_),
                s.set_with(
                    key,
                    b("new"),
                    SetOptions {
                        ttl: None,
                        condition: Some(cond.clone()),
                    }
                )
            );
            rejects!(
                s,
                StateError::InvalidEtag(_),
                s.delete_if(key, cond.clone())
            );
            rejects!(
                s,
                StateError::InvalidEtag(_),
                s.commit(vec![
                    Op::new("new", OpKind::Increment(1)),
                    Op::new(key, OpKind::Check).when(cond.clone()),
                ])
            );
            rejects!(
                s,
                StateError::InvalidEtag(_),
                s.apply(Op::new(key, OpKind::ListAppend(bs(&["x"]))).when(cond.clone()))
            );
        }
    }
    // The real etag still works.
    s.set_with(
        "v",
        b("new"),
        SetOptions {
            ttl: None,
            condition: Some(Condition::IfMatch(real)),
        },
    )
    .await
    .unwrap();
    assert_eq!(s.get("v").await.unwrap(), Some(b("new")));
}

#[tokio::test]
async fn garbage_session_ids_are_no_such_session() {
    let h = Harness::new();
    let a = populated(&h).await;
    let other = h.store.create_session("b", None).await.unwrap();
    let sb = h.store.session("b", &other.id).await.unwrap();
    sb.set("secret", b("b's")).await.unwrap();
    let ended = h.store.create_session("a", None).await.unwrap();
    assert!(h.store.end_session("a", &ended.id).await.unwrap());

    let long = "A".repeat(10 * 1024);
    let ids = [
        "garbage",
        "",
        long.as_str(),
        other.id.as_str(),
        ended.id.as_str(),
        "AAAAAAAAAAAAAAAAAAAAAA",
        "../b/sessions",
        "a|b",
        "\0",
    ];
    let before_a = dump(&a).await;
    let before_b = dump(&sb).await;
    for id in ids {
        let err = h.store.session("a", id).await.unwrap_err();
        assert!(matches!(err, StateError::NoSuchSession), "{id:?}: {err:?}");
        let err = h.store.session_info("a", id).await.unwrap_err();
        assert!(matches!(err, StateError::NoSuchSession), "{id:?}: {err:?}");
        let err = h
            .store
            .extend_session("a", id, Duration::from_secs(60))
            .await
            .unwrap_err();
        assert!(matches!(err, StateError::NoSuchSession), "{id:?}: {err:?}");
        assert!(!h.store.end_session("a", id).await.unwrap(), "{id:?}");
    }
    // Nothing changed: b's session is alive with its data, a's state intact.
    assert_eq!(dump(&a).await, before_a);
    assert_eq!(dump(&sb).await, before_b);
    assert_eq!(h.store.session_info("b", &other.id).await.unwrap(), other);
    let live: Vec<String> = h
        .store
        .list_sessions("b")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(live, vec![other.id.clone()]);
    assert!(h.store.list_sessions("a").await.unwrap().is_empty());
}

#[tokio::test]
async fn malformed_globs_and_garbage_cursors() {
    let h = Harness::new();
    let s = populated(&h).await;
    for pattern in ["abc[", "x\\", "[", "\\", "[a-", "[^", "[\\"] {
        for key in ["m", "missing"] {
            rejects!(
                s,
                StateError::InvalidArgument(_),
                s.map_scan(key, "0", Some(pattern), 10)
            );
        }
    }
    // A pattern longer than any field could be is refused before matching.
    let huge = "*a".repeat(5_000);
    rejects!(
        s,
        StateError::KeyTooLarge { .. },
        s.map_scan("m", "0", Some(&huge), 10)
    );
    let long = "1".repeat(10_000) + "!";
    for cursor in [
        "garbage",
        "",
        "-1",
        "1!!!",
        "%%%",
        "\0",
        "0 ",
        long.as_str(),
    ] {
        rejects!(
            s,
            StateError::InvalidArgument(_),
            s.map_scan("m", cursor, None, 10)
        );
        rejects!(
            s,
            StateError::InvalidArgument(_),
            s.keys(KeyListing {
                cursor: Some(cursor.to_string()),
                ..KeyListing::default()
            })
        );
    }
    rejects!(
        s,
        StateError::InvalidArgument(_),
        s.map_scan("m", "0", None, 0)
    );
    rejects!(
        s,
        StateError::InvalidArgument(_),
        s.keys(KeyListing {
            limit: Some(0),
            ..KeyListing::default()
        })
    );
    // A huge count or limit is clamped, not an error.
    assert_eq!(
        s.map_scan("m", "0", None, u32::MAX).await.unwrap().entries,
        fv(&[("f", "1"), ("g", "2")])
    );
    assert_eq!(
        s.keys(KeyListing {
            limit: Some(u32::MAX),
            ..KeyListing::default()
        })
        .await
        .unwrap()
        .keys,
        vec!["l", "m", "n", "v"]
    );
}

#[tokio::test]
async fn empty_pushes_and_map_sets_are_rejected() {
    // RPUSH, LPUSH and HSET need at least one element.
    let h = Harness::new();
    let s = populated(&h).await;
    for key in ["l", "new"] {
        rejects!(
            s,
            StateError::InvalidArgument(_),
            s.list_append(key, vec![])
        );
        rejects!(
            s,
            StateError::InvalidArgument(_),
            s.list_prepend(key, vec![])
        );
    }
    for key in ["m", "new"] {
        rejects!(s, StateError::InvalidArgument(_), s.map_set(key, vec![]));
    }
}
