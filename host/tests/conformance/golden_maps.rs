//! Golden cases for map operations (Redis hash semantics, HSCAN included).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use wasm_state::store::{ExpireMode, KeyListing, ScopeHandle, StateError};

use super::*;

async fn etag(s: &ScopeHandle, key: &str) -> Option<String> {
    s.info(key).await.unwrap().map(|i| i.etag)
}

/// A full HSCAN: cursor "0" until "0". Returns every page's entries in order.
async fn scan_all(
    s: &ScopeHandle,
    key: &str,
    pattern: Option<&str>,
    count: u32,
) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut cursor = "0".to_string();
    for _ in 0..10_000 {
        let page = s.map_scan(key, &cursor, pattern, count).await.unwrap();
        out.extend(page.entries);
        if page.cursor == "0" {
            return out;
        }
        cursor = page.cursor;
    }
    panic!("map-scan never returned cursor \"0\"");
}

fn fields_of(entries: &[(String, Vec<u8>)]) -> Vec<String> {
    entries.iter().map(|(f, _)| f.clone()).collect()
}

#[tokio::test]
async fn set_counts_new_fields_only() {
    let h = Harness::new();
    let s = h.instance("a");
    assert_eq!(
        s.map_set("m", fv(&[("a", "1"), ("b", "2")])).await.unwrap(),
        2
    );
    assert_eq!(
        s.map_set("m", fv(&[("a", "10"), ("c", "3")]))
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.map_set("m", fv(&[("a", "100")])).await.unwrap(), 0);
    // The same field twice in one HSET: counted once, the last value wins.
    assert_eq!(
        s.map_set("m", fv(&[("d", "first"), ("d", "last")]))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.map_set("m", fv(&[("a", "x"), ("a", "y"), ("e", "5")]))
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.map_get("m", "d").await.unwrap(), Some(b("last")));
    assert_eq!(s.map_get("m", "a").await.unwrap(), Some(b("y")));
    assert_eq!(s.map_length("m").await.unwrap(), 5);
    assert_eq!(
        s.map_get_all("m").await.unwrap(),
        fv(&[
            ("a", "y"),
            ("b", "2"),
            ("c", "3"),
            ("d", "last"),
            ("e", "5")
        ])
    );
    // An overwrite is a write: a new etag.
    let before = etag(&s, "m").await;
    assert_eq!(s.map_set("m", fv(&[("b", "2")])).await.unwrap(), 0);
    assert_ne!(etag(&s, "m").await, before);
}

#[tokio::test]
async fn get_and_get_many_in_request_order() {
    let h = Harness::new();
    let s = h.instance("a");
    s.map_set("m", fv(&[("a", "A"), ("b", "B"), ("c", "C")]))
        .await
        .unwrap();
    assert_eq!(s.map_get("m", "b").await.unwrap(), Some(b("B")));
    assert_eq!(s.map_get("m", "zz").await.unwrap(), None);
    assert_eq!(s.map_get("missing", "a").await.unwrap(), None);
    assert_eq!(
        s.map_get_many("m", &["c", "zz", "a", "c", "b"])
            .await
            .unwrap(),
        vec![Some(b("C")), None, Some(b("A")), Some(b("C")), Some(b("B"))]
    );
    assert_eq!(
        s.map_get_many("missing", &["a", "b", "c"]).await.unwrap(),
        vec![None, None, None]
    );
    assert!(!s.exists("missing").await.unwrap());
}

#[tokio::test]
async fn get_all_keys_and_values_in_field_order() {
    let h = Harness::new();
    let s = h.instance("a");
    let fields = ["b", "a", "B", "aa", "ä", "10", "9", "", "a\0", "🦀", "~"];
    let entries: Vec<(String, Vec<u8>)> = fields
        .iter()
        .map(|f| (f.to_string(), format!("v:{f}").into_bytes()))
        .collect();
    assert_eq!(
        s.map_set("m", entries.clone()).await.unwrap(),
        fields.len() as u64
    );
    let mut want = entries.clone();
    want.sort_by(|x, y| x.0.as_bytes().cmp(y.0.as_bytes()));
    assert_eq!(s.map_get_all("m").await.unwrap(), want);
    assert_eq!(s.map_keys("m").await.unwrap(), fields_of(&want));
    assert_eq!(
        s.map_values("m").await.unwrap(),
        want.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>()
    );
    assert_eq!(s.map_length("m").await.unwrap(), fields.len() as u64);
    assert!(s.map_get_all("missing").await.unwrap().is_empty());
    assert!(s.map_keys("missing").await.unwrap().is_empty());
    assert!(s.map_values("missing").await.unwrap().is_empty());
}

#[tokio::test]
async fn delete_counts_and_the_last_field_deletes_the_key() {
    let h = Harness::new();
    let s = h.instance("a");
    s.map_set("m", fv(&[("a", "1"), ("b", "2"), ("c", "3")]))
        .await
        .unwrap();
    assert_eq!(s.map_delete("m", &["a", "zz"]).await.unwrap(), 1);
    let before = etag(&s, "m").await;
    assert_eq!(s.map_delete("m", &["a"]).await.unwrap(), 0);
    assert_eq!(
        etag(&s, "m").await,
        before,
        "HDEL of absent fields is no write"
    );
    // A field named twice counts once.
    assert_eq!(s.map_delete("m", &["b", "b"]).await.unwrap(), 1);
    assert_eq!(s.map_get_all("m").await.unwrap(), fv(&[("c", "3")]));
    assert_eq!(s.map_length("m").await.unwrap(), 1);
    assert_eq!(s.map_delete("m", &["c", "zz"]).await.unwrap(), 1);
    assert!(!s.exists("m").await.unwrap());
    assert_eq!(s.info("m").await.unwrap(), None);
    assert_eq!(s.map_length("m").await.unwrap(), 0);
    assert!(s.keys(KeyListing::default()).await.unwrap().keys.is_empty());
    assert_eq!(s.map_delete("m", &["c"]).await.unwrap(), 0);
    assert_eq!(s.map_delete("missing", &["a"]).await.unwrap(), 0);
    assert!(!s.exists("missing").await.unwrap());
    // Re-created, it holds only the new fields.
    assert_eq!(s.map_set("m", fv(&[("d", "4")])).await.unwrap(), 1);
    assert_eq!(s.map_get_all("m").await.unwrap(), fv(&[("d", "4")]));
    // A map emptied by map-delete loses its TTL with it.
    assert!(s.expire("m", 100, ExpireMode::Always).await.unwrap());
    assert_eq!(s.map_delete("m", &["d"]).await.unwrap(), 1);
    assert!(!s.exists("m").await.unwrap());
    assert_eq!(s.map_set("m", fv(&[("e", "5")])).await.unwrap(), 1);
    assert_eq!(s.ttl("m").await.unwrap(), None);
    assert_eq!(s.map_get_all("m").await.unwrap(), fv(&[("e", "5")]));
    // Deleting several at once down to nothing.
    s.map_set("n", fv(&[("x", "1"), ("y", "2")])).await.unwrap();
    assert_eq!(s.map_delete("n", &["x", "y", "z"]).await.unwrap(), 2);
    assert!(!s.exists("n").await.unwrap());
}

#[tokio::test]
async fn exists_and_length() {
    let h = Harness::new();
    let s = h.instance("a");
    assert!(!s.map_exists("m", "a").await.unwrap());
    assert_eq!(s.map_length("m").await.unwrap(), 0);
    s.map_set("m", fv(&[("a", "1"), ("", "empty field")]))
        .await
        .unwrap();
    assert!(s.map_exists("m", "a").await.unwrap());
    assert!(s.map_exists("m", "").await.unwrap());
    assert!(!s.map_exists("m", "b").await.unwrap());
    assert_eq!(s.map_length("m").await.unwrap(), 2);
    // A field with an empty value exists.
    s.map_set("m", fv(&[("b", "")])).await.unwrap();
    assert!(s.map_exists("m", "b").await.unwrap());
    assert_eq!(s.map_get("m", "b").await.unwrap(), Some(Vec::new()));
    assert_eq!(s.map_length("m").await.unwrap(), 3);
}

#[tokio::test]
async fn increment_fields() {
    let h = Harness::new();
    let s = h.instance("a");
    // Missing map and field count from 0.
    assert_eq!(s.map_increment("m", "n", 5).await.unwrap(), 5);
    assert_eq!(s.map_get("m", "n").await.unwrap(), Some(b("5")));
    assert_eq!(s.map_length("m").await.unwrap(), 1);
    assert_eq!(s.map_increment("m", "n", -8).await.unwrap(), -3);
    assert_eq!(s.map_get("m", "n").await.unwrap(), Some(b("-3")));
    assert_eq!(s.map_increment("m", "other", 0).await.unwrap(), 0);
    assert_eq!(s.map_get("m", "other").await.unwrap(), Some(b("0")));
    assert_eq!(s.map_length("m").await.unwrap(), 2);
    s.map_set("m", fv(&[("x", "41")])).await.unwrap();
    assert_eq!(s.map_increment("m", "x", 1).await.unwrap(), 42);
    assert_eq!(s.map_get("m", "x").await.unwrap(), Some(b("42")));
    assert_eq!(s.map_length("m").await.unwrap(), 3);
}

#[tokio::test]
async fn increment_rejects_non_integer_fields() {
    let h = Harness::new();
    let s = h.instance("a");
    let bad = [
        "abc",
        "1.5",
        " 1",
        "1 ",
        "+1",
        "01",
        "",
        "-0",
        "1e3",
        "9223372036854775808",
    ];
    for (i, value) in bad.iter().enumerate() {
        let field = format!("f{i}");
        s.map_set("m", fv(&[(&field, value)])).await.unwrap();
        let before = (etag(&s, "m").await, s.map_get_all("m").await.unwrap());
        let err = s.map_increment("m", &field, 1).await.unwrap_err();
        assert!(
            matches!(err, StateError::NotAnInteger),
            "{value:?}: {err:?}"
        );
        let after = (etag(&s, "m").await, s.map_get_all("m").await.unwrap());
        assert_eq!(before, after);
    }
}

#[tokio::test]
async fn increment_overflow_changes_nothing() {
    let h = Harness::new();
    let s = h.instance("a");
    s.map_set(
        "m",
        vec![
            ("max".into(), i64::MAX.to_string().into_bytes()),
            ("min".into(), i64::MIN.to_string().into_bytes()),
        ],
    )
    .await
    .unwrap();
    let before = (etag(&s, "m").await, s.map_get_all("m").await.unwrap());
    for (field, delta) in [
        ("max", 1),
        ("max", i64::MAX),
        ("min", -1),
        ("min", i64::MIN),
    ] {
        let err = s.map_increment("m", field, delta).await.unwrap_err();
        assert!(
            matches!(err, StateError::Overflow),
            "{field} {delta}: {err:?}"
        );
    }
    assert_eq!(
        (etag(&s, "m").await, s.map_get_all("m").await.unwrap()),
        before
    );
    assert_eq!(s.map_increment("m", "max", -1).await.unwrap(), i64::MAX - 1);
    assert_eq!(
        s.map_increment("m", "new", i64::MIN).await.unwrap(),
        i64::MIN
    );
    assert_eq!(
        s.map_get("m", "new").await.unwrap(),
        Some(b("-9223372036854775808"))
    );
}

#[tokio::test]
async fn map_writes_keep_the_ttl() {
    let h = Harness::new();
    let s = h.instance("a");
    s.map_set("m", fv(&[("a", "1")])).await.unwrap();
    assert!(s.expire("m", 100, ExpireMode::Always).await.unwrap());
    h.advance(Duration::from_secs(10));
    s.map_set("m", fv(&[("b", "2")])).await.unwrap();
    s.map_increment("m", "n", 1).await.unwrap();
    s.map_delete("m", &["a"]).await.unwrap();
    assert_eq!(s.ttl("m").await.unwrap(), Some(Duration::from_secs(90)));
    h.advance(Duration::from_secs(90) + Duration::from_millis(1));
    assert!(!s.exists("m").await.unwrap());
    assert!(s.map_get_all("m").await.unwrap().is_empty());
}

#[tokio::test]
async fn scan_visits_every_field_exactly_once() {
    let h = Harness::new();
    let s = h.instance("a");
    let entries: Vec<(String, Vec<u8>)> = (0..57)
        .map(|i| (format!("field:{i}"), format!("{i}").into_bytes()))
        .collect();
    s.map_set("m", entries.clone()).await.unwrap();
    let mut want = entries.clone();
    want.sort();
    for count in [1u32, 2, 3, 56, 57, 58, 1000] {
        let got = scan_all(&s, "m", None, count).await;
        assert_eq!(got, want, "count {count}");
    }
    // A page never holds more than `count` entries.
    let mut cursor = "0".to_string();
    loop {
        let page = s.map_scan("m", &cursor, None, 3).await.unwrap();
        assert!(page.entries.len() <= 3);
        if page.cursor == "0" {
            break;
        }
        cursor = page.cursor;
    }
    // A missing map: done at once.
    let page = s.map_scan("missing", "0", None, 10).await.unwrap();
    assert_eq!(page.cursor, "0");
    assert!(page.entries.is_empty());
    assert!(!s.exists("missing").await.unwrap());
}

/// The empty field is a field like any other: a scan that stops right
/// after it resumes after it (the Redis engines once read "after the field
/// \"\"" as "from the start" and returned it for ever).
#[tokio::test]
async fn scan_pages_past_the_empty_field() {
    let h = Harness::new();
    let s = h.instance("a");
    let entries = vec![
        (String::new(), b"empty".to_vec()),
        ("a".to_string(), b"1".to_vec()),
        ("b".to_string(), b"2".to_vec()),
    ];
    s.map_set("m", entries.clone()).await.unwrap();
    for count in [1u32, 2, 3] {
        assert_eq!(
            scan_all(&s, "m", None, count).await,
            entries,
            "count {count}"
        );
    }
    let first = s.map_scan("m", "0", None, 1).await.unwrap();
    assert_eq!(fields_of(&first.entries), [""]);
    let next = s.map_scan("m", &first.cursor, None, 1).await.unwrap();
    assert_eq!(fields_of(&next.entries), ["a"]);
    assert_eq!(s.map_get("m", "").await.unwrap(), Some(b"empty".to_vec()));
}

#[tokio::test]
async fn scan_filters_fields_by_glob() {
    let h = Harness::new();
    let s = h.instance("a");
    let fields = [
        "a", "b", "c", "d", "ab", "abc", "ba", "a*", "*", "x", "-", "xyz", "a?", "[", "A", "é",
    ];
    let entries: Vec<(String, Vec<u8>)> = fields
        .iter()
        .map(|f| (f.to_string(), format!("v{f}").into_bytes()))
        .collect();
    s.map_set("m", entries).await.unwrap();
    let sorted = |mut v: Vec<&str>| {
        v.sort();
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("*", fields.to_vec()),
        // Globs match characters (the engine's documented choice): `?` is "é".
        ("?", vec!["a", "b", "c", "d", "*", "x", "-", "[", "A", "é"]),
        ("a?", vec!["ab", "a*", "a?"]),
        ("[abc]", vec!["a", "b", "c"]),
        ("[^a]", vec!["b", "c", "d", "*", "x", "-", "[", "A", "é"]),
        ("[A-Z]", vec!["A"]),
        ("A*", vec!["A"]),
        ("é", vec!["é"]),
        ("[a-c]", vec!["a", "b", "c"]),
        ("[c-a]", vec!["a", "b", "c"]),
        ("[a-c]*", vec!["a", "b", "c", "ab", "abc", "ba", "a*", "a?"]),
        ("a\\*", vec!["a*"]),
        ("a\\?", vec!["a?"]),
        ("\\*", vec!["*"]),
        ("\\[", vec!["["]),
        ("a*", vec!["a", "ab", "abc", "a*", "a?"]),
        ("*c", vec!["c", "abc"]),
        ("*b*", vec!["b", "ab", "abc", "ba"]),
        ("x*z", vec!["xyz"]),
        ("??", vec!["ab", "ba", "a*", "a?"]),
        ("nomatch", vec![]),
        ("", vec![]),
    ];
    for (pattern, want) in cases {
        let want = sorted(want);
        for count in [1u32, 4, 1000] {
            let got = scan_all(&s, "m", Some(pattern), count).await;
            assert_eq!(fields_of(&got), want, "pattern {pattern:?}, count {count}");
            for (f, v) in &got {
                assert_eq!(v, &format!("v{f}").into_bytes());
            }
        }
    }
}

#[tokio::test]
async fn scan_is_stable_while_the_map_changes() {
    let h = Harness::new();
    let s = h.instance("a");
    for count in [1u32, 3, 7] {
        let key = format!("m{count}");
        let initial: Vec<String> = (0..40).map(|i| format!("f{:03}", i * 10)).collect();
        s.map_set(&key, initial.iter().map(|f| (f.clone(), b("x"))).collect())
            .await
            .unwrap();
        let mut ever: BTreeSet<String> = initial.iter().cloned().collect();
        let mut deleted = BTreeSet::new();
        let mut seen: Vec<String> = Vec::new();
        let mut cursor = "0".to_string();
        let mut page_no = 0;
        loop {
            let page = s.map_scan(&key, &cursor, None, count).await.unwrap();
            seen.extend(fields_of(&page.entries));
            if page.cursor == "0" {
                break;
            }
            cursor = page.cursor;
            page_no += 1;
            assert!(page_no < 10_000, "scan never ended");
            // Add fields before, after and right next to the position reached.
            let last = seen.last().cloned().unwrap_or_default();
            let mut added = vec![
                format!("f{:03}", page_no % 400),
                format!("f{:03}", 399 - page_no % 400),
            ];
            // (Bounded, or a scan could chase its own additions forever.)
            if last.len() < 8 {
                added.extend([format!("{last}\0"), format!("{last}5")]);
            }
            s.map_set(&key, added.iter().map(|f| (f.clone(), b("new"))).collect())
                .await
                .unwrap();
            ever.extend(added);
            // Delete the last field returned and one still ahead.
            let mut gone = vec![last.clone()];
            if let Some(a) = ever.range(last.clone()..).nth(5) {
                gone.push(a.clone());
            }
            let refs: Vec<&str> = gone.iter().map(String::as_str).collect();
            s.map_delete(&key, &refs).await.unwrap();
            deleted.extend(gone);
        }
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "count {count}: a field came twice"
        );
        for f in &initial {
            if !deleted.contains(f) {
                assert!(seen.contains(f), "count {count}: {f:?} skipped");
            }
        }
        for f in &seen {
            assert!(ever.contains(f), "{f:?} never existed");
        }
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted, "count {count}: entries out of field order");
    }
}

#[tokio::test]
async fn scan_rejects_bad_arguments() {
    let h = Harness::new();
    let s = h.instance("a");
    s.map_set("m", fv(&[("a", "1"), ("b", "2")])).await.unwrap();
    let before = (etag(&s, "m").await, s.map_get_all("m").await.unwrap());
    for key in ["m", "missing"] {
        for pattern in ["abc[", "x\\", "[", "\\", "[a-", "[^"] {
            let err = s.map_scan(key, "0", Some(pattern), 10).await.unwrap_err();
            assert!(
                matches!(err, StateError::InvalidArgument(_)),
                "{key} pattern {pattern:?}: {err:?}"
            );
        }
        for cursor in ["garbage", "", "-1", "1!!!", "%%%", "0x1", " 0"] {
            let err = s.map_scan(key, cursor, None, 10).await.unwrap_err();
            assert!(
                matches!(err, StateError::InvalidArgument(_)),
                "{key} cursor {cursor:?}: {err:?}"
            );
        }
        let err = s.map_scan(key, "0", None, 0).await.unwrap_err();
        assert!(
            matches!(err, StateError::InvalidArgument(_)),
            "{key} count 0: {err:?}"
        );
    }
    assert_eq!(
        (etag(&s, "m").await, s.map_get_all("m").await.unwrap()),
        before
    );
    assert!(!s.exists("missing").await.unwrap());
}

#[tokio::test]
async fn fields_of_different_maps_stay_apart() {
    let h = Harness::new();
    let s = h.instance("a");
    // Map names that are prefixes of each other, and fields that look like them.
    let maps = ["m", "m\0", "mm", "m\0a", "m/"];
    for (i, m) in maps.iter().enumerate() {
        s.map_set(m, fv(&[("a", &i.to_string()), ("\0a", "z")]))
            .await
            .unwrap();
    }
    for (i, m) in maps.iter().enumerate() {
        let want: BTreeMap<String, Vec<u8>> = [
            ("\0a".to_string(), b("z")),
            ("a".to_string(), i.to_string().into_bytes()),
        ]
        .into_iter()
        .collect();
        let got: BTreeMap<String, Vec<u8>> = s.map_get_all(m).await.unwrap().into_iter().collect();
        assert_eq!(got, want, "map {m:?}");
        assert_eq!(s.map_length(m).await.unwrap(), 2);
    }
    assert!(s.delete("m").await.unwrap());
    for m in &maps[1..] {
        assert_eq!(s.map_length(m).await.unwrap(), 2, "map {m:?}");
    }
}
