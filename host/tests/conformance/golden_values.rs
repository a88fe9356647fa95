//! Golden cases for value, counter and whole-key operations (Redis-exact).

use std::collections::BTreeSet;
use std::time::Duration;

use wasm_state::store::{KeyKind, KeyListing, ScopeHandle, SetOptions, StateError};

use super::*;

/// Every key of a listing, following the cursor page by page.
async fn list_all(s: &ScopeHandle, q: KeyListing) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = None;
    for _ in 0..10_000 {
        let page = s
            .keys(KeyListing {
                cursor: cursor.clone(),
                ..q.clone()
            })
            .await
            .unwrap();
        if let Some(limit) = q.limit {
            assert!(page.keys.len() <= limit as usize, "page over its limit");
        }
        if page.cursor.is_some() {
            assert!(!page.keys.is_empty(), "an empty page with a cursor");
        }
        out.extend(page.keys);
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
    panic!("listing never ended");
}

fn prefix(p: &str) -> KeyListing {
    KeyListing {
        prefix: Some(p.into()),
        ..KeyListing::default()
    }
}

#[tokio::test]
async fn basic_round_trip() {
    let h = Harness::new();
    let s = h.instance("a");
    assert_eq!(s.get("k").await.unwrap(), None);
    assert!(!s.exists("k").await.unwrap());
    let e1 = s.set("k", b("v")).await.unwrap();
    assert_eq!(s.get("k").await.unwrap(), Some(b("v")));
    assert!(s.exists("k").await.unwrap());
    let e2 = s.set("k", b("w")).await.unwrap();
    assert_ne!(e1, e2);
    assert_eq!(s.get("k").await.unwrap(), Some(b("w")));
    assert_eq!(s.increment("n", 5).await.unwrap(), 5);
    assert_eq!(
        s.map_set("m", fv(&[("a", "1"), ("b", "2")])).await.unwrap(),
        2
    );
    assert_eq!(
        s.map_get_all("m").await.unwrap(),
        fv(&[("a", "1"), ("b", "2")])
    );
    assert_eq!(s.list_append("l", bs(&["a", "b"])).await.unwrap(), 2);
    assert_eq!(s.list_prepend("l", bs(&["x", "y"])).await.unwrap(), 4);
    assert_eq!(
        s.list_range("l", 0, -1).await.unwrap(),
        bs(&["y", "x", "a", "b"])
    );
    let page = s.keys(Default::default()).await.unwrap();
    assert_eq!(page.keys, vec!["k", "l", "m", "n"]);
    assert_eq!(page.cursor, None);
    assert!(s.delete("k").await.unwrap());
    assert!(!s.delete("k").await.unwrap());
    assert_eq!(s.get("k").await.unwrap(), None);
    assert!(!s.exists("k").await.unwrap());
    assert_eq!(s.info("k").await.unwrap(), None);
}

#[tokio::test]
async fn values_are_exact_bytes() {
    let h = Harness::new();
    let s = h.instance("a");
    let raw = vec![0u8, 255, 10, 13, 0, 1, 128];
    s.set("bin", raw.clone()).await.unwrap();
    assert_eq!(s.get("bin").await.unwrap(), Some(raw.clone()));
    // An empty value is a value (Redis SET k ""): the key exists.
    s.set("empty", Vec::new()).await.unwrap();
    assert_eq!(s.get("empty").await.unwrap(), Some(Vec::new()));
    assert!(s.exists("empty").await.unwrap());
    let entry = s.get_entry("bin").await.unwrap().unwrap();
    assert_eq!(entry.value, raw);
    assert_eq!(entry.ttl, None);
    assert_eq!(
        Some(entry.etag),
        s.info("bin").await.unwrap().map(|i| i.etag)
    );
    assert_eq!(s.info("bin").await.unwrap().unwrap().kind, KeyKind::Value);
}

#[tokio::test]
async fn delete_and_exists_on_every_type() {
    let h = Harness::new();
    let s = h.instance("a");
    s.set("v", b("1")).await.unwrap();
    s.map_set("m", fv(&[("f", "1")])).await.unwrap();
    s.list_append("l", bs(&["x"])).await.unwrap();
    for k in ["v", "m", "l"] {
        assert!(s.exists(k).await.unwrap(), "{k}");
        assert!(s.delete(k).await.unwrap(), "{k}");
        assert!(!s.exists(k).await.unwrap(), "{k}");
        assert!(!s.delete(k).await.unwrap(), "{k}");
    }
    assert_eq!(s.map_get_all("m").await.unwrap(), vec![]);
    assert_eq!(s.list_length("l").await.unwrap(), 0);
    assert!(s.keys(KeyListing::default()).await.unwrap().keys.is_empty());
}

#[tokio::test]
async fn get_many_in_request_order() {
    let h = Harness::new();
    let s = h.instance("a");
    s.set("a", b("A")).await.unwrap();
    s.set("c", b("C")).await.unwrap();
    s.map_set("m", fv(&[("f", "1")])).await.unwrap();
    s.list_append("l", bs(&["x"])).await.unwrap();
    let got = s
        .get_many(&["c", "missing", "a", "m", "l", "a"])
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![Some(b("C")), None, Some(b("A")), None, None, Some(b("A"))]
    );
    assert_eq!(s.get_many(&["zz"]).await.unwrap(), vec![None]);
    // The map and the list are untouched by being read as values.
    assert_eq!(s.map_get("m", "f").await.unwrap(), Some(b("1")));
    assert_eq!(s.list_range("l", 0, -1).await.unwrap(), bs(&["x"]));
}

#[tokio::test]
async fn set_many_and_delete_many_counts() {
    let h = Harness::new();
    let s = h.instance("a");
    s.set("a", b("old")).await.unwrap();
    s.set_many(fv(&[("a", "1"), ("b", "2"), ("c", "3")]))
        .await
        .unwrap();
    assert_eq!(
        s.get_many(&["a", "b", "c"]).await.unwrap(),
        vec![Some(b("1")), Some(b("2")), Some(b("3"))]
    );
    // The same key twice in one MSET: the last one wins.
    s.set_many(fv(&[("d", "first"), ("d", "last")]))
        .await
        .unwrap();
    assert_eq!(s.get("d").await.unwrap(), Some(b("last")));
    // set-many overwrites keys of other types too (MSET).
    s.map_set("m", fv(&[("f", "1")])).await.unwrap();
    s.set_many(fv(&[("m", "now a value")])).await.unwrap();
    assert_eq!(s.get("m").await.unwrap(), Some(b("now a value")));

    // DEL counts only keys that existed; a key named twice counts once.
    assert_eq!(s.delete_many(&["a", "nope", "b"]).await.unwrap(), 2);
    assert_eq!(s.delete_many(&["c", "c"]).await.unwrap(), 1);
    assert_eq!(s.delete_many(&["a", "b", "c"]).await.unwrap(), 0);
    s.list_append("l", bs(&["x"])).await.unwrap();
    s.map_set("m2", fv(&[("f", "1")])).await.unwrap();
    assert_eq!(s.delete_many(&["l", "m2", "d", "m"]).await.unwrap(), 4);
    assert!(s.keys(KeyListing::default()).await.unwrap().keys.is_empty());
}

#[tokio::test]
async fn set_replaces_a_map_and_its_fields() {
    let h = Harness::new();
    let s = h.instance("a");
    s.map_set("m", fv(&[("a", "1"), ("b", "2"), ("c", "3")]))
        .await
        .unwrap();
    s.set("m", b("plain")).await.unwrap();
    assert_eq!(s.get("m").await.unwrap(), Some(b("plain")));
    assert_eq!(s.info("m").await.unwrap().unwrap().kind, KeyKind::Value);
    assert_eq!(s.keys(KeyListing::default()).await.unwrap().keys, vec!["m"]);
    // Re-create the map: none of the old fields come back.
    assert!(s.delete("m").await.unwrap());
    assert_eq!(s.map_set("m", fv(&[("z", "26")])).await.unwrap(), 1);
    assert_eq!(s.map_get_all("m").await.unwrap(), fv(&[("z", "26")]));
    assert_eq!(s.map_length("m").await.unwrap(), 1);
    assert_eq!(s.map_get("m", "a").await.unwrap(), None);
    // HSET of an old field counts it as new.
    assert_eq!(s.map_set("m", fv(&[("a", "x")])).await.unwrap(), 1);
    assert_eq!(s.map_length("m").await.unwrap(), 2);
}

#[tokio::test]
async fn set_replaces_a_list_and_its_items() {
    let h = Harness::new();
    let s = h.instance("a");
    s.list_append("l", bs(&["a", "b", "c"])).await.unwrap();
    s.set("l", b("plain")).await.unwrap();
    assert_eq!(s.get("l").await.unwrap(), Some(b("plain")));
    assert_eq!(s.info("l").await.unwrap().unwrap().kind, KeyKind::Value);
    assert!(s.delete("l").await.unwrap());
    assert_eq!(s.list_append("l", bs(&["x"])).await.unwrap(), 1);
    assert_eq!(s.list_range("l", 0, -1).await.unwrap(), bs(&["x"]));
    assert_eq!(s.list_length("l").await.unwrap(), 1);
    assert_eq!(s.list_index("l", 1).await.unwrap(), None);
    assert_eq!(s.list_prepend("l", bs(&["w"])).await.unwrap(), 2);
    assert_eq!(s.list_range("l", 0, -1).await.unwrap(), bs(&["w", "x"]));
}

#[tokio::test]
async fn set_clears_a_ttl() {
    let h = Harness::new();
    let s = h.instance("a");
    s.set_with(
        "k",
        b("1"),
        SetOptions {
            ttl: Some(Duration::from_secs(10)),
            condition: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(s.ttl("k").await.unwrap(), Some(Duration::from_secs(10)));
    s.set("k", b("2")).await.unwrap();
    assert_eq!(s.ttl("k").await.unwrap(), None);
    h.advance(Duration::from_secs(20));
    assert_eq!(s.get("k").await.unwrap(), Some(b("2")));
}

#[tokio::test]
async fn increment_counts_from_zero_and_stores_decimal_text() {
    let h = Harness::new();
    let s = h.instance("a");
    assert_eq!(s.increment("n", 5).await.unwrap(), 5);
    assert_eq!(s.get("n").await.unwrap(), Some(b("5")));
    assert_eq!(s.increment("n", -7).await.unwrap(), -2);
    assert_eq!(s.get("n").await.unwrap(), Some(b("-2")));
    assert_eq!(s.increment("n", 0).await.unwrap(), -2);
    assert_eq!(s.increment("zero", 0).await.unwrap(), 0);
    assert_eq!(s.get("zero").await.unwrap(), Some(b("0")));
    s.set("n", b("41")).await.unwrap();
    assert_eq!(s.increment("n", 1).await.unwrap(), 42);
    assert_eq!(s.get("n").await.unwrap(), Some(b("42")));
    s.set("n", b("-9223372036854775808")).await.unwrap();
    assert_eq!(s.increment("n", 0).await.unwrap(), i64::MIN);
    s.set("n", b("0")).await.unwrap();
    assert_eq!(s.increment("n", i64::MAX).await.unwrap(), i64::MAX);
    assert_eq!(s.get("n").await.unwrap(), Some(b("9223372036854775807")));
    assert_eq!(s.increment("m", i64::MIN).await.unwrap(), i64::MIN);
    assert_eq!(s.get("m").await.unwrap(), Some(b("-9223372036854775808")));
    // An increment is a write: a new etag.
    let before = s.info("n").await.unwrap().unwrap().etag;
    s.increment("n", -1).await.unwrap();
    assert_ne!(s.info("n").await.unwrap().unwrap().etag, before);
}

#[tokio::test]
async fn increment_accepts_only_canonical_integers() {
    let h = Harness::new();
    let s = h.instance("a");
    let bad: &[&[u8]] = &[
        b"abc",
        b"1.5",
        b" 1",
        b"1 ",
        b"+1",
        b"01",
        b"",
        b"-0",
        b"-",
        b"0x10",
        b"1e3",
        b"9223372036854775808",
        b"-9223372036854775809",
        b"\"1\"",
        b"1\n",
        &[0xff, 0x31],
    ];
    for (i, value) in bad.iter().enumerate() {
        let key = format!("k{i}");
        s.set(&key, value.to_vec()).await.unwrap();
        let etag = s.info(&key).await.unwrap().unwrap().etag;
        let err = s.increment(&key, 1).await.unwrap_err();
        assert!(
            matches!(err, StateError::NotAnInteger),
            "{:?}: {err:?}",
            String::from_utf8_lossy(value)
        );
        assert_eq!(s.get(&key).await.unwrap(), Some(value.to_vec()));
        assert_eq!(s.info(&key).await.unwrap().unwrap().etag, etag);
    }
}

#[tokio::test]
async fn increment_overflow_changes_nothing() {
    let h = Harness::new();
    let s = h.instance("a");
    s.set("max", i64::MAX.to_string().into_bytes())
        .await
        .unwrap();
    let etag = s.info("max").await.unwrap().unwrap().etag;
    let err = s.increment("max", 1).await.unwrap_err();
    assert!(matches!(err, StateError::Overflow), "{err:?}");
    let err = s.increment("max", i64::MAX).await.unwrap_err();
    assert!(matches!(err, StateError::Overflow), "{err:?}");
    assert_eq!(s.get("max").await.unwrap(), Some(b("9223372036854775807")));
    assert_eq!(s.info("max").await.unwrap().unwrap().etag, etag);

    s.set("min", i64::MIN.to_string().into_bytes())
        .await
        .unwrap();
    let etag = s.info("min").await.unwrap().unwrap().etag;
    let err = s.increment("min", -1).await.unwrap_err();
    assert!(matches!(err, StateError::Overflow), "{err:?}");
    let err = s.increment("min", i64::MIN).await.unwrap_err();
    assert!(matches!(err, StateError::Overflow), "{err:?}");
    assert_eq!(s.get("min").await.unwrap(), Some(b("-9223372036854775808")));
    assert_eq!(s.info("min").await.unwrap().unwrap().etag, etag);

    s.set("one", b("-1")).await.unwrap();
    let err = s.increment("one", i64::MIN).await.unwrap_err();
    assert!(matches!(err, StateError::Overflow), "{err:?}");
    assert_eq!(s.get("one").await.unwrap(), Some(b("-1")));
    // Still usable within range.
    assert_eq!(s.increment("max", -1).await.unwrap(), i64::MAX - 1);
}

#[tokio::test]
async fn increment_keeps_an_existing_ttl() {
    let h = Harness::new();
    let s = h.instance("a");
    s.set_with(
        "n",
        b("10"),
        SetOptions {
            ttl: Some(Duration::from_secs(100)),
            condition: None,
        },
    )
    .await
    .unwrap();
    h.advance(Duration::from_secs(10));
    assert_eq!(s.increment("n", 5).await.unwrap(), 15);
    assert_eq!(s.ttl("n").await.unwrap(), Some(Duration::from_secs(90)));
    h.advance(Duration::from_secs(89));
    assert_eq!(s.get("n").await.unwrap(), Some(b("15")));
    h.advance(Duration::from_secs(1) + Duration::from_millis(1));
    assert_eq!(s.get("n").await.unwrap(), None);
    // Once expired, the counter starts again from 0, with no TTL.
    assert_eq!(s.increment("n", 1).await.unwrap(), 1);
    assert_eq!(s.ttl("n").await.unwrap(), None);
}

#[tokio::test]
async fn keys_are_ordered_by_bytes() {
    let h = Harness::new();
    let s = h.instance("a");
    let keys = [
        "b", "a", "B", "aa", "a\0", "ä", "é", "~", "Z", "10", "9", "1", "a b", "🦀", "A",
    ];
    for (i, k) in keys.iter().enumerate() {
        match i % 3 {
            0 => {
                s.set(k, b("v")).await.unwrap();
            }
            1 => {
                s.map_set(k, fv(&[("f", "v")])).await.unwrap();
            }
            _ => {
                s.list_append(k, bs(&["v"])).await.unwrap();
            }
        }
    }
    let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    want.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    assert_eq!(s.keys(KeyListing::default()).await.unwrap().keys, want);
    let rev = s
        .keys(KeyListing {
            reverse: true,
            ..KeyListing::default()
        })
        .await
        .unwrap()
        .keys;
    want.reverse();
    assert_eq!(rev, want);
}

#[tokio::test]
async fn keys_prefix_start_end_and_reverse() {
    let h = Harness::new();
    let s = h.instance("a");
    for k in [
        "a", "user", "user:1", "user:10", "user:2", "user:3", "user;", "usez", "v",
    ] {
        s.set(k, b("x")).await.unwrap();
    }
    let page = |q: KeyListing| {
        let s = s.clone();
        async move { s.keys(q).await.unwrap().keys }
    };
    assert_eq!(
        page(prefix("user:")).await,
        vec!["user:1", "user:10", "user:2", "user:3"]
    );
    assert_eq!(
        page(prefix("user")).await,
        vec!["user", "user:1", "user:10", "user:2", "user:3", "user;"]
    );
    assert!(page(prefix("nobody")).await.is_empty());
    // Empty bounds are bounds: no key lies before "" (end exclusive), and
    // every key has the prefix "" and starts at or after "".
    assert!(
        page(KeyListing {
            end: Some(String::new()),
            ..KeyListing::default()
        })
        .await
        .is_empty()
    );
    let every = page(KeyListing::default()).await;
    assert_eq!(page(prefix("")).await, every);
    assert_eq!(
        page(KeyListing {
            start: Some(String::new()),
            ..KeyListing::default()
        })
        .await,
        every
    );
    // start is inclusive, end exclusive.
    assert_eq!(
        page(KeyListing {
            start: Some("user:10".into()),
            end: Some("user:3".into()),
            ..KeyListing::default()
        })
        .await,
        vec!["user:10", "user:2"]
    );
    // start/end need not be keys.
    assert_eq!(
        page(KeyListing {
            start: Some("user:0".into()),
            end: Some("user:11".into()),
            ..KeyListing::default()
        })
        .await,
        vec!["user:1", "user:10"]
    );
    assert_eq!(
        page(KeyListing {
            start: Some("usez".into()),
            ..KeyListing::default()
        })
        .await,
        vec!["usez", "v"]
    );
    assert_eq!(
        page(KeyListing {
            end: Some("user".into()),
            ..KeyListing::default()
        })
        .await,
        vec!["a"]
    );
    // Prefix and range together: the intersection.
    assert_eq!(
        page(KeyListing {
            prefix: Some("user:".into()),
            start: Some("user:2".into()),
            ..KeyListing::default()
        })
        .await,
        vec!["user:2", "user:3"]
    );
    assert_eq!(
        page(KeyListing {
            prefix: Some("user:".into()),
            end: Some("user:2".into()),
            ..KeyListing::default()
        })
        .await,
        vec!["user:1", "user:10"]
    );
    // Reverse: the same set, descending.
    assert_eq!(
        page(KeyListing {
            prefix: Some("user:".into()),
            reverse: true,
            ..KeyListing::default()
        })
        .await,
        vec!["user:3", "user:2", "user:10", "user:1"]
    );
    assert_eq!(
        page(KeyListing {
            start: Some("user:10".into()),
            end: Some("user:3".into()),
            reverse: true,
            ..KeyListing::default()
        })
        .await,
        vec!["user:2", "user:10"]
    );
    // An empty range.
    assert!(
        page(KeyListing {
            start: Some("v".into()),
            end: Some("a".into()),
            ..KeyListing::default()
        })
        .await
        .is_empty()
    );
    assert!(
        page(KeyListing {
            start: Some("user:2".into()),
            end: Some("user:2".into()),
            ..KeyListing::default()
        })
        .await
        .is_empty()
    );
}

#[tokio::test]
async fn keys_pages_visit_every_key_once() {
    let h = Harness::new();
    let s = h.instance("a");
    let mut all: Vec<String> = (0..25).map(|i| format!("k{i:02}")).collect();
    for k in &all {
        s.set(k, b("x")).await.unwrap();
    }
    s.set("other", b("x")).await.unwrap();
    for limit in [1u32, 2, 3, 7, 24, 25, 26, 1000] {
        let got = list_all(
            &s,
            KeyListing {
                prefix: Some("k".into()),
                limit: Some(limit),
                ..KeyListing::default()
            },
        )
        .await;
        assert_eq!(got, all, "limit {limit}");
        let got = list_all(
            &s,
            KeyListing {
                prefix: Some("k".into()),
                limit: Some(limit),
                reverse: true,
                ..KeyListing::default()
            },
        )
        .await;
        let mut rev = all.clone();
        rev.reverse();
        assert_eq!(got, rev, "reverse, limit {limit}");
    }
    // A full first page: exactly `limit` keys and a cursor.
    let first = s
        .keys(KeyListing {
            limit: Some(10),
            ..KeyListing::default()
        })
        .await
        .unwrap();
    assert_eq!(first.keys, all[..10].to_vec());
    assert!(first.cursor.is_some());
    // The last page has no cursor.
    all.push("other".into());
    let last = s
        .keys(KeyListing {
            limit: Some(100),
            ..KeyListing::default()
        })
        .await
        .unwrap();
    assert_eq!(last.keys, all);
    assert_eq!(last.cursor, None);
    // Paging within a range.
    let got = list_all(
        &s,
        KeyListing {
            start: Some("k05".into()),
            end: Some("k15".into()),
            limit: Some(4),
            ..KeyListing::default()
        },
    )
    .await;
    assert_eq!(got, all[5..15].to_vec());
    let got = list_all(
        &s,
        KeyListing {
            start: Some("k05".into()),
            end: Some("k15".into()),
            limit: Some(4),
            reverse: true,
            ..KeyListing::default()
        },
    )
    .await;
    let mut want = all[5..15].to_vec();
    want.reverse();
    assert_eq!(got, want);
}

/// Page through the `k` keys three at a time, inserting and deleting keys
/// between pages. Returns the keys seen, in order, and the initial keys that
/// existed throughout.
async fn page_while_changing(s: &ScopeHandle, reverse: bool) -> (Vec<String>, BTreeSet<String>) {
    let initial: Vec<String> = (0..40).map(|i| format!("k{:03}", i * 10)).collect();
    for k in &initial {
        s.set(k, b("x")).await.unwrap();
    }
    let mut ever: BTreeSet<String> = initial.iter().cloned().collect();
    let mut deleted = BTreeSet::new();
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut page_no = 0;
    loop {
        let page = s
            .keys(KeyListing {
                prefix: Some("k".into()),
                limit: Some(3),
                reverse,
                cursor: cursor.clone(),
                ..KeyListing::default()
            })
            .await
            .unwrap();
        seen.extend(page.keys.iter().cloned());
        let Some(c) = page.cursor else { break };
        cursor = Some(c);
        page_no += 1;
        assert!(page_no < 1000, "listing never ended");
        // Insert keys on both sides of the cursor and next to it.
        let last = page.keys.last().unwrap().clone();
        let mut added = vec![format!("k{:03}", page_no), format!("k{:03}", 399 - page_no)];
        // (Bounded, or a listing could chase its own additions forever.)
        if last.len() < 8 {
            added.extend([format!("{last}\0"), format!("{last}5")]);
        }
        for k in added {
            s.set(&k, b("new")).await.unwrap();
            ever.insert(k);
        }
        // Delete the key the cursor names and one not yet reached.
        s.delete(&last).await.unwrap();
        deleted.insert(last.clone());
        let ahead = if reverse {
            ever.range(..last.clone()).rev().nth(3).cloned()
        } else {
            ever.range(last.clone()..).nth(3).cloned()
        };
        if let Some(a) = ahead
            && !deleted.contains(&a)
        {
            s.delete(&a).await.unwrap();
            deleted.insert(a);
        }
    }
    let throughout: BTreeSet<String> = initial
        .into_iter()
        .filter(|k| !deleted.contains(k))
        .collect();
    for k in &seen {
        assert!(ever.contains(k), "{k:?} never existed");
    }
    (seen, throughout)
}

#[tokio::test]
async fn keys_cursor_is_stable_under_inserts_and_deletes() {
    for reverse in [false, true] {
        let h = Harness::new();
        let s = h.instance("a");
        let (seen, throughout) = page_while_changing(&s, reverse).await;
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "a key came twice: {seen:?}");
        for k in &throughout {
            assert!(seen.contains(k), "reverse={reverse}: {k:?} skipped");
        }
        // Pages keep their order across the changes.
        let mut sorted = seen.clone();
        sorted.sort();
        if reverse {
            sorted.reverse();
        }
        assert_eq!(seen, sorted);
    }
}

#[tokio::test]
async fn keys_rejects_limit_zero_and_garbage_cursors() {
    let h = Harness::new();
    let s = h.instance("a");
    s.set("a", b("1")).await.unwrap();
    let err = s
        .keys(KeyListing {
            limit: Some(0),
            ..KeyListing::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::InvalidArgument(_)), "{err:?}");
    for cursor in ["garbage", "", "-1", "1!!!", "1====", "%%%", "0x10"] {
        for reverse in [false, true] {
            let err = s
                .keys(KeyListing {
                    cursor: Some(cursor.into()),
                    reverse,
                    ..KeyListing::default()
                })
                .await
                .unwrap_err();
            assert!(
                matches!(err, StateError::InvalidArgument(_)),
                "cursor {cursor:?}: {err:?}"
            );
        }
    }
    assert_eq!(s.get("a").await.unwrap(), Some(b("1")));
}

#[tokio::test]
async fn delete_prefix_counts_live_keys_of_every_type() {
    let h = Harness::new();
    let s = h.instance("a");
    s.set("user:1", b("x")).await.unwrap();
    s.set("user:2", b("x")).await.unwrap();
    s.map_set("user:m", fv(&[("a", "1"), ("b", "2")]))
        .await
        .unwrap();
    s.list_append("user:l", bs(&["a", "b"])).await.unwrap();
    s.set_with(
        "user:gone",
        b("x"),
        SetOptions {
            ttl: Some(Duration::from_secs(1)),
            condition: None,
        },
    )
    .await
    .unwrap();
    for k in ["user", "userx", "use", "a", "user;"] {
        s.set(k, b("keep")).await.unwrap();
    }
    // The same keys in other scopes are out of reach.
    let session = h.store.create_session("a", None).await.unwrap();
    let others = [
        h.instance("a2"),
        h.account("a"),
        h.store.session("a", &session.id).await.unwrap(),
    ];
    for o in &others {
        o.set("user:1", b("other")).await.unwrap();
    }
    h.advance(Duration::from_secs(2));
    assert_eq!(s.delete_prefix("user:").await.unwrap(), 4);
    assert_eq!(
        list_all(&s, KeyListing::default()).await,
        vec!["a", "use", "user", "user;", "userx"]
    );
    assert_eq!(s.delete_prefix("user:").await.unwrap(), 0);
    assert_eq!(s.delete_prefix("nothing").await.unwrap(), 0);
    for o in &others {
        assert_eq!(o.get("user:1").await.unwrap(), Some(b("other")));
        assert_eq!(
            o.keys(KeyListing::default()).await.unwrap().keys,
            vec!["user:1"]
        );
    }
    // The deleted map and list left nothing behind.
    assert_eq!(s.map_set("user:m", fv(&[("c", "3")])).await.unwrap(), 1);
    assert_eq!(s.map_get_all("user:m").await.unwrap(), fv(&[("c", "3")]));
    assert_eq!(s.list_append("user:l", bs(&["z"])).await.unwrap(), 1);
    assert_eq!(s.list_range("user:l", 0, -1).await.unwrap(), bs(&["z"]));
    // A prefix that is a whole key deletes it and its extensions.
    assert_eq!(s.delete_prefix("user").await.unwrap(), 5);
    assert_eq!(list_all(&s, KeyListing::default()).await, vec!["a", "use"]);
}

#[tokio::test]
async fn delete_prefix_rejects_the_empty_prefix() {
    let h = Harness::new();
    let s = h.instance("a");
    s.set("a", b("1")).await.unwrap();
    s.map_set("m", fv(&[("f", "1")])).await.unwrap();
    let err = s.delete_prefix("").await.unwrap_err();
    assert!(matches!(err, StateError::InvalidArgument(_)), "{err:?}");
    assert_eq!(list_all(&s, KeyListing::default()).await, vec!["a", "m"]);
    assert_eq!(s.get("a").await.unwrap(), Some(b("1")));
    assert_eq!(s.map_get("m", "f").await.unwrap(), Some(b("1")));
}
