//! Golden cases for list operations (Redis list semantics, index rules exact).

use std::collections::VecDeque;

use wasm_state::store::{ExpireMode, ScopeHandle, StateError};

use super::*;

const ABCDE: &[&str] = &["a", "b", "c", "d", "e"];

/// A fresh list `key` holding `items` (the key must not exist).
async fn make(s: &ScopeHandle, key: &str, items: &[&str]) {
    assert!(!s.exists(key).await.unwrap());
    assert_eq!(
        s.list_append(key, bs(items)).await.unwrap(),
        items.len() as u64
    );
}

async fn all(s: &ScopeHandle, key: &str) -> Vec<Vec<u8>> {
    s.list_range(key, 0, -1).await.unwrap()
}

async fn etag(s: &ScopeHandle, key: &str) -> Option<String> {
    s.info(key).await.unwrap().map(|i| i.etag)
}

/// (start, stop, what LRANGE/LTRIM keep of [a,b,c,d,e]).
fn index_cases() -> Vec<(i64, i64, &'static [&'static str])> {
    vec![
        (0, -1, ABCDE),
        (-3, -1, &["c", "d", "e"]),
        (-100, 100, ABCDE),
        (2, 1, &[]),
        (5, 10, &[]),
        (4, 10, &["e"]),
        (-1, -5, &[]),
        (i64::MIN, i64::MAX, ABCDE),
        (i64::MIN, i64::MIN, &[]),
        (i64::MAX, i64::MAX, &[]),
        (i64::MAX, i64::MIN, &[]),
        (i64::MIN, 0, &["a"]),
        (0, 0, &["a"]),
        (-1, -1, &["e"]),
        (4, 4, &["e"]),
        (1, 3, &["b", "c", "d"]),
        (-5, -5, &["a"]),
        (-6, 0, &["a"]),
        (-6, -6, &[]),
        (3, -3, &[]),
        (2, -3, &["c"]),
        (0, -6, &[]),
        (-2, 100, &["d", "e"]),
        (1, -2, &["b", "c", "d"]),
    ]
}

#[tokio::test]
async fn range_follows_lrange_index_rules() {
    let h = Harness::new();
    let s = h.instance("a");
    make(&s, "l", ABCDE).await;
    for (start, stop, want) in index_cases() {
        assert_eq!(
            s.list_range("l", start, stop).await.unwrap(),
            bs(want),
            "LRANGE l {start} {stop}"
        );
    }
    assert_eq!(all(&s, "l").await, bs(ABCDE));
    assert!(s.list_range("missing", 0, -1).await.unwrap().is_empty());
    assert!(!s.exists("missing").await.unwrap());
}

#[tokio::test]
async fn trim_follows_ltrim_index_rules() {
    let h = Harness::new();
    let s = h.instance("a");
    for (i, (start, stop, want)) in index_cases().into_iter().enumerate() {
        let key = format!("l{i}");
        make(&s, &key, ABCDE).await;
        s.list_trim(&key, start, stop).await.unwrap();
        assert_eq!(all(&s, &key).await, bs(want), "LTRIM {start} {stop}");
        assert_eq!(s.list_length(&key).await.unwrap(), want.len() as u64);
        assert_eq!(
            s.exists(&key).await.unwrap(),
            !want.is_empty(),
            "LTRIM {start} {stop}: an emptied list is deleted"
        );
        if let (Some(first), Some(last)) = (want.first(), want.last()) {
            assert_eq!(s.list_index(&key, 0).await.unwrap(), Some(b(first)));
            assert_eq!(s.list_index(&key, -1).await.unwrap(), Some(b(last)));
            // The trimmed list still grows at both ends.
            s.list_append(&key, bs(&["z"])).await.unwrap();
            s.list_prepend(&key, bs(&["y"])).await.unwrap();
            let mut grown = vec!["y"];
            grown.extend_from_slice(want);
            grown.push("z");
            assert_eq!(all(&s, &key).await, bs(&grown));
        }
    }
    // Trimming a missing list is a no-op that creates nothing.
    s.list_trim("missing", 0, 1).await.unwrap();
    assert!(!s.exists("missing").await.unwrap());
}

#[tokio::test]
async fn trim_that_deletes_the_list_leaves_no_items_behind() {
    let h = Harness::new();
    let s = h.instance("a");
    make(&s, "l", ABCDE).await;
    s.list_trim("l", 2, 1).await.unwrap();
    assert!(!s.exists("l").await.unwrap());
    assert_eq!(s.list_length("l").await.unwrap(), 0);
    assert_eq!(s.list_index("l", 0).await.unwrap(), None);
    make(&s, "l", &["x"]).await;
    assert_eq!(all(&s, "l").await, bs(&["x"]));
    assert_eq!(s.list_index("l", 1).await.unwrap(), None);
    assert_eq!(s.list_index("l", -2).await.unwrap(), None);
}

#[tokio::test]
async fn insert_before_and_after_pivots() {
    let h = Harness::new();
    let s = h.instance("a");
    // No list: 0, and nothing is created.
    assert_eq!(
        s.list_insert("missing", true, b("a"), b("x"))
            .await
            .unwrap(),
        0
    );
    assert!(!s.exists("missing").await.unwrap());

    make(&s, "l", &["a", "b", "c"]).await;
    // No pivot: -1, nothing changes.
    let before = etag(&s, "l").await;
    assert_eq!(s.list_insert("l", true, b("zz"), b("x")).await.unwrap(), -1);
    assert_eq!(
        s.list_insert("l", false, b("zz"), b("x")).await.unwrap(),
        -1
    );
    assert_eq!(all(&s, "l").await, bs(&["a", "b", "c"]));
    assert_eq!(etag(&s, "l").await, before);

    assert_eq!(s.list_insert("l", true, b("a"), b("h")).await.unwrap(), 4);
    assert_eq!(all(&s, "l").await, bs(&["h", "a", "b", "c"]));
    assert_eq!(s.list_insert("l", false, b("c"), b("t")).await.unwrap(), 5);
    assert_eq!(all(&s, "l").await, bs(&["h", "a", "b", "c", "t"]));
    assert_eq!(s.list_insert("l", false, b("h"), b("h2")).await.unwrap(), 6);
    assert_eq!(s.list_insert("l", true, b("t"), b("t0")).await.unwrap(), 7);
    assert_eq!(
        all(&s, "l").await,
        bs(&["h", "h2", "a", "b", "c", "t0", "t"])
    );
    assert_eq!(s.list_length("l").await.unwrap(), 7);
    assert_eq!(s.list_index("l", 0).await.unwrap(), Some(b("h")));
    assert_eq!(s.list_index("l", -1).await.unwrap(), Some(b("t")));
    assert_eq!(s.list_index("l", 5).await.unwrap(), Some(b("t0")));
}

#[tokio::test]
async fn insert_uses_the_first_occurrence_of_the_pivot() {
    let h = Harness::new();
    let s = h.instance("a");
    make(&s, "l", &["a", "p", "b", "p", "c", "p"]).await;
    assert_eq!(s.list_insert("l", false, b("p"), b("X")).await.unwrap(), 7);
    assert_eq!(all(&s, "l").await, bs(&["a", "p", "X", "b", "p", "c", "p"]));
    assert_eq!(s.list_insert("l", true, b("p"), b("Y")).await.unwrap(), 8);
    assert_eq!(
        all(&s, "l").await,
        bs(&["a", "Y", "p", "X", "b", "p", "c", "p"])
    );
    // The value inserted can itself be the pivot value.
    assert_eq!(s.list_insert("l", true, b("c"), b("p")).await.unwrap(), 9);
    assert_eq!(
        all(&s, "l").await,
        bs(&["a", "Y", "p", "X", "b", "p", "p", "c", "p"])
    );
}

#[tokio::test]
async fn insert_near_head_and_near_tail_of_a_long_list() {
    let h = Harness::new();
    let s = h.instance("a");
    let items: Vec<String> = (0..40).map(|i| format!("i{i}")).collect();
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    make(&s, "l", &refs).await;
    let mut model: Vec<String> = items.clone();
    let steps: &[(bool, &str, &str)] = &[
        (true, "i0", "n0"),
        (false, "i0", "n1"),
        (true, "i1", "n2"),
        (false, "i39", "n3"),
        (true, "i39", "n4"),
        (false, "i38", "n5"),
        (true, "i20", "n6"),
        (false, "i19", "n7"),
        (false, "i20", "n8"),
        (true, "i21", "n9"),
        (false, "n3", "n10"),
        (true, "n0", "n11"),
    ];
    for &(before, pivot, value) in steps {
        let at = model.iter().position(|x| x == pivot).unwrap() + usize::from(!before);
        model.insert(at, value.to_string());
        let n = s
            .list_insert("l", before, b(pivot), b(value))
            .await
            .unwrap();
        assert_eq!(n, model.len() as i64);
        let want: Vec<Vec<u8>> = model.iter().map(|x| b(x)).collect();
        assert_eq!(
            all(&s, "l").await,
            want,
            "insert {value} before={before} {pivot}"
        );
        assert_eq!(s.list_index("l", 0).await.unwrap(), Some(want[0].clone()));
        assert_eq!(s.list_index("l", -1).await.unwrap(), want.last().cloned());
    }
    // Pops at both ends still see the right items.
    assert_eq!(
        s.list_start_pop("l", 2).await.unwrap(),
        vec![b(&model[0]), b(&model[1])]
    );
    let n = model.len();
    assert_eq!(
        s.list_end_pop("l", 2).await.unwrap(),
        vec![b(&model[n - 1]), b(&model[n - 2])]
    );
    assert_eq!(s.list_length("l").await.unwrap(), (n - 4) as u64);
}

/// LREM on a model.
fn lrem(list: &mut Vec<String>, value: &str, count: i64) -> u64 {
    let limit = if count == 0 {
        usize::MAX
    } else {
        count.unsigned_abs() as usize
    };
    let mut hits: Vec<usize> = list
        .iter()
        .enumerate()
        .filter(|(_, x)| *x == value)
        .map(|(i, _)| i)
        .collect();
    if count < 0 {
        hits.reverse();
    }
    hits.truncate(limit);
    hits.sort_unstable();
    for &i in hits.iter().rev() {
        list.remove(i);
    }
    hits.len() as u64
}

#[tokio::test]
async fn remove_with_positive_negative_and_zero_counts() {
    let h = Harness::new();
    let s = h.instance("a");
    let base = &["a", "b", "a", "c", "a", "b", "a"];
    let cases: &[(&str, i64, u64, &[&str])] = &[
        ("a", 1, 1, &["b", "a", "c", "a", "b", "a"]),
        ("a", 2, 2, &["b", "c", "a", "b", "a"]),
        ("a", -1, 1, &["a", "b", "a", "c", "a", "b"]),
        ("a", -2, 2, &["a", "b", "a", "c", "b"]),
        ("a", 0, 4, &["b", "c", "b"]),
        ("a", 10, 4, &["b", "c", "b"]),
        ("a", -10, 4, &["b", "c", "b"]),
        ("b", 0, 2, &["a", "a", "c", "a", "a"]),
        ("b", -1, 1, &["a", "b", "a", "c", "a", "a"]),
        ("c", 1, 1, &["a", "b", "a", "a", "b", "a"]),
        ("zz", 0, 0, &["a", "b", "a", "c", "a", "b", "a"]),
        ("zz", -3, 0, &["a", "b", "a", "c", "a", "b", "a"]),
    ];
    for (i, &(value, count, removed, want)) in cases.iter().enumerate() {
        let key = format!("l{i}");
        make(&s, &key, base).await;
        let before = etag(&s, &key).await;
        assert_eq!(
            s.list_remove(&key, b(value), count).await.unwrap(),
            removed,
            "LREM {value} {count}"
        );
        assert_eq!(all(&s, &key).await, bs(want), "LREM {value} {count}");
        assert_eq!(s.list_length(&key).await.unwrap(), want.len() as u64);
        // Only a removal is a write.
        assert_eq!(etag(&s, &key).await == before, removed == 0);
    }
    // Removing every item deletes the key.
    make(&s, "x", &["x", "x", "x"]).await;
    assert_eq!(s.list_remove("x", b("x"), 0).await.unwrap(), 3);
    assert!(!s.exists("x").await.unwrap());
    make(&s, "y", &["y", "y"]).await;
    assert_eq!(s.list_remove("y", b("y"), -5).await.unwrap(), 2);
    assert!(!s.exists("y").await.unwrap());
    // On a missing list: 0, nothing created.
    assert_eq!(s.list_remove("missing", b("a"), 0).await.unwrap(), 0);
    assert!(!s.exists("missing").await.unwrap());
}

/// A small deterministic generator (no dependencies, same run every time).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test]
async fn remove_matches_the_model_on_long_lists() {
    let h = Harness::new();
    let s = h.instance("a");
    let mut rng = Lcg(7);
    let letters = ["a", "b", "c", "d"];
    for round in 0..30 {
        let key = format!("l{round}");
        let len = 1 + rng.below(50) as usize;
        let mut model: Vec<String> = (0..len)
            .map(|_| letters[rng.below(4) as usize].to_string())
            .collect();
        let refs: Vec<&str> = model.iter().map(String::as_str).collect();
        make(&s, &key, &refs).await;
        while !model.is_empty() {
            let value = letters[rng.below(4) as usize];
            let count = rng.below(9) as i64 - 4;
            let want = lrem(&mut model, value, count);
            let got = s.list_remove(&key, b(value), count).await.unwrap();
            assert_eq!(got, want, "round {round}: LREM {value} {count}");
            let expect: Vec<Vec<u8>> = model.iter().map(|x| b(x)).collect();
            assert_eq!(all(&s, &key).await, expect, "round {round}");
            assert_eq!(s.list_length(&key).await.unwrap(), model.len() as u64);
            if let Some(last) = model.last() {
                assert_eq!(s.list_index(&key, -1).await.unwrap(), Some(b(last)));
                assert_eq!(s.list_index(&key, 0).await.unwrap(), Some(b(&model[0])));
            }
        }
        assert!(!s.exists(&key).await.unwrap());
    }
}

#[tokio::test]
async fn set_by_index() {
    let h = Harness::new();
    let s = h.instance("a");
    make(&s, "l", &["a", "b", "c"]).await;
    s.list_set("l", 0, b("x")).await.unwrap();
    s.list_set("l", -1, b("z")).await.unwrap();
    s.list_set("l", -2, b("y")).await.unwrap();
    assert_eq!(all(&s, "l").await, bs(&["x", "y", "z"]));
    s.list_set("l", -3, b("first")).await.unwrap();
    s.list_set("l", 2, b("last")).await.unwrap();
    assert_eq!(all(&s, "l").await, bs(&["first", "y", "last"]));

    let before = etag(&s, "l").await;
    for index in [3, -4, 100, -100, i64::MAX, i64::MIN] {
        let err = s.list_set("l", index, b("nope")).await.unwrap_err();
        assert!(
            matches!(err, StateError::IndexOutOfRange { len: 3 }),
            "LSET {index}: {err:?}"
        );
    }
    assert_eq!(all(&s, "l").await, bs(&["first", "y", "last"]));
    assert_eq!(etag(&s, "l").await, before);

    // LSET on a missing key: no such key.
    let err = s.list_set("missing", 0, b("x")).await.unwrap_err();
    assert!(matches!(err, StateError::NotFound), "{err:?}");
    assert!(!s.exists("missing").await.unwrap());

    // A write: a new etag.
    s.list_set("l", 1, b("Y")).await.unwrap();
    assert_ne!(etag(&s, "l").await, before);
}

#[tokio::test]
async fn pops_with_counts() {
    let h = Harness::new();
    let s = h.instance("a");
    // A missing list: empty, and nothing is created.
    assert!(s.list_start_pop("missing", 3).await.unwrap().is_empty());
    assert!(s.list_end_pop("missing", 3).await.unwrap().is_empty());
    assert!(s.list_start_pop("missing", 0).await.unwrap().is_empty());
    assert!(!s.exists("missing").await.unwrap());

    make(&s, "l", &["a", "b", "c", "d", "e", "f"]).await;
    // Count 0: nothing popped, the list unchanged (and so its etag).
    let before = etag(&s, "l").await;
    assert!(s.list_start_pop("l", 0).await.unwrap().is_empty());
    assert!(s.list_end_pop("l", 0).await.unwrap().is_empty());
    assert_eq!(all(&s, "l").await, bs(&["a", "b", "c", "d", "e", "f"]));
    assert_eq!(etag(&s, "l").await, before);

    assert_eq!(s.list_start_pop("l", 1).await.unwrap(), bs(&["a"]));
    assert_eq!(s.list_end_pop("l", 1).await.unwrap(), bs(&["f"]));
    assert_eq!(s.list_start_pop("l", 2).await.unwrap(), bs(&["b", "c"]));
    // The end pops tail first.
    make(&s, "m", &["a", "b", "c", "d"]).await;
    assert_eq!(s.list_end_pop("m", 2).await.unwrap(), bs(&["d", "c"]));
    assert_eq!(all(&s, "m").await, bs(&["a", "b"]));
    assert_eq!(all(&s, "l").await, bs(&["d", "e"]));

    // A count larger than the list pops all and deletes the key.
    assert_eq!(s.list_end_pop("l", 10).await.unwrap(), bs(&["e", "d"]));
    assert!(!s.exists("l").await.unwrap());
    assert_eq!(s.list_start_pop("m", 3).await.unwrap(), bs(&["a", "b"]));
    assert!(!s.exists("m").await.unwrap());
    make(&s, "n", &["x", "y"]).await;
    assert_eq!(s.list_start_pop("n", 2).await.unwrap(), bs(&["x", "y"]));
    assert!(!s.exists("n").await.unwrap());
    assert!(s.list_end_pop("n", 1).await.unwrap().is_empty());
    // A list emptied by pops loses its TTL; pushed again it is a new list.
    make(&s, "t", &["x", "y"]).await;
    assert!(s.expire("t", 100, ExpireMode::Always).await.unwrap());
    assert_eq!(s.list_end_pop("t", 2).await.unwrap(), bs(&["y", "x"]));
    assert!(!s.exists("t").await.unwrap());
    make(&s, "t", &["z"]).await;
    assert_eq!(s.ttl("t").await.unwrap(), None);
    assert_eq!(all(&s, "t").await, bs(&["z"]));
}

#[tokio::test]
async fn prepend_puts_the_last_value_first() {
    let h = Harness::new();
    let s = h.instance("a");
    assert_eq!(s.list_prepend("l", bs(&["a", "b", "c"])).await.unwrap(), 3);
    assert_eq!(all(&s, "l").await, bs(&["c", "b", "a"]));
    assert_eq!(s.list_prepend("l", bs(&["x", "y"])).await.unwrap(), 5);
    assert_eq!(all(&s, "l").await, bs(&["y", "x", "c", "b", "a"]));
    assert_eq!(s.list_append("l", bs(&["1", "2"])).await.unwrap(), 7);
    assert_eq!(all(&s, "l").await, bs(&["y", "x", "c", "b", "a", "1", "2"]));
    assert_eq!(s.list_prepend("l", bs(&["z"])).await.unwrap(), 8);
    assert_eq!(s.list_index("l", 0).await.unwrap(), Some(b("z")));
    // Duplicates are kept.
    assert_eq!(s.list_append("l", bs(&["2", "2"])).await.unwrap(), 10);
    assert_eq!(
        s.list_range("l", -3, -1).await.unwrap(),
        bs(&["2", "2", "2"])
    );
}

#[tokio::test]
async fn index_and_length() {
    let h = Harness::new();
    let s = h.instance("a");
    make(&s, "l", &["a", "b", "c"]).await;
    let cases: &[(i64, Option<&str>)] = &[
        (0, Some("a")),
        (1, Some("b")),
        (2, Some("c")),
        (3, None),
        (-1, Some("c")),
        (-3, Some("a")),
        (-4, None),
        (i64::MIN, None),
        (i64::MAX, None),
    ];
    for &(i, want) in cases {
        assert_eq!(
            s.list_index("l", i).await.unwrap(),
            want.map(b),
            "LINDEX {i}"
        );
    }
    assert_eq!(s.list_length("l").await.unwrap(), 3);
    assert_eq!(s.list_length("missing").await.unwrap(), 0);
    assert_eq!(s.list_index("missing", 0).await.unwrap(), None);
    assert!(!s.exists("missing").await.unwrap());
}

#[tokio::test]
async fn long_mixed_sequences_keep_order() {
    let h = Harness::new();
    let s = h.instance("a");
    let mut rng = Lcg(42);
    let mut model: VecDeque<String> = VecDeque::new();
    let mut next = 0u64;
    let mut fresh = |n: u64| -> Vec<String> {
        (0..n)
            .map(|_| {
                next += 1;
                format!("v{next}")
            })
            .collect()
    };
    for step in 0..600 {
        // Now and then a trim or a remove, with the Redis rules applied to the model.
        if step % 25 == 24 && !model.is_empty() {
            let len = model.len() as i64;
            let start = rng.below(7) as i64 - 3;
            let stop = len - 1 - rng.below(4) as i64 + if rng.below(2) == 0 { 0 } else { -len };
            let (mut from, mut to) = (start, stop);
            if from < 0 {
                from += len;
            }
            if to < 0 {
                to += len;
            }
            from = from.max(0);
            to = to.min(len - 1);
            model = if from > to {
                VecDeque::new()
            } else {
                model.range(from as usize..=to as usize).cloned().collect()
            };
            s.list_trim("l", start, stop).await.unwrap();
        } else if step % 25 == 12 && !model.is_empty() {
            let victim = model[rng.below(model.len() as u64) as usize].clone();
            let mut v: Vec<String> = model.iter().cloned().collect();
            let count = rng.below(3) as i64 - 1;
            let want = lrem(&mut v, &victim, count);
            model = v.into();
            assert_eq!(s.list_remove("l", b(&victim), count).await.unwrap(), want);
        }
        match rng.below(10) {
            0..=2 => {
                let vals = fresh(1 + rng.below(4));
                for v in &vals {
                    model.push_back(v.clone());
                }
                let n = s
                    .list_append("l", vals.iter().map(|v| b(v)).collect())
                    .await
                    .unwrap();
                assert_eq!(n, model.len() as u64);
            }
            3..=5 => {
                let vals = fresh(1 + rng.below(4));
                for v in &vals {
                    model.push_front(v.clone());
                }
                let n = s
                    .list_prepend("l", vals.iter().map(|v| b(v)).collect())
                    .await
                    .unwrap();
                assert_eq!(n, model.len() as u64);
            }
            6 => {
                let n = rng.below(4);
                let want: Vec<Vec<u8>> = (0..n)
                    .filter_map(|_| model.pop_front())
                    .map(|v| b(&v))
                    .collect();
                assert_eq!(s.list_start_pop("l", n).await.unwrap(), want);
            }
            7 => {
                let n = rng.below(4);
                let want: Vec<Vec<u8>> = (0..n)
                    .filter_map(|_| model.pop_back())
                    .map(|v| b(&v))
                    .collect();
                assert_eq!(s.list_end_pop("l", n).await.unwrap(), want);
            }
            8 if !model.is_empty() => {
                let i = rng.below(model.len() as u64) as usize;
                let v = fresh(1).remove(0);
                model[i] = v.clone();
                let index = if rng.below(2) == 0 {
                    i as i64
                } else {
                    i as i64 - model.len() as i64
                };
                s.list_set("l", index, b(&v)).await.unwrap();
            }
            _ if !model.is_empty() => {
                let i = rng.below(model.len() as u64) as usize;
                let before = rng.below(2) == 0;
                let pivot = model[i].clone();
                let v = fresh(1).remove(0);
                model.insert(if before { i } else { i + 1 }, v.clone());
                let n = s.list_insert("l", before, b(&pivot), b(&v)).await.unwrap();
                assert_eq!(n, model.len() as i64);
            }
            _ => {}
        }
        assert_eq!(
            s.list_length("l").await.unwrap(),
            model.len() as u64,
            "step {step}"
        );
        assert_eq!(s.exists("l").await.unwrap(), !model.is_empty());
        if let (Some(first), Some(last)) = (model.front(), model.back()) {
            assert_eq!(s.list_index("l", 0).await.unwrap(), Some(b(first)));
            assert_eq!(s.list_index("l", -1).await.unwrap(), Some(b(last)));
        }
        if step % 10 == 0 {
            let want: Vec<Vec<u8>> = model.iter().map(|v| b(v)).collect();
            assert_eq!(all(&s, "l").await, want, "step {step}");
        }
    }
    let want: Vec<Vec<u8>> = model.iter().map(|v| b(v)).collect();
    assert_eq!(all(&s, "l").await, want);
}
