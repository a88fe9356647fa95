//! Transactions (SPEC.md "Transactions"): ops apply in order, all or nothing;
//! the failing op is reported by index; results per op; at most `max_ops`;
//! concurrent readers and group-committed writers never see half of one;
//! `set-many` / `delete-many` are atomic the same way.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wasm_state::store::{
    Condition, ExpireMode, KeyListing, Limits, Op, OpKind, OpOutput, OpResult, ScopeHandle,
    StateError,
};

use super::*;

/// Does an error have the expected cause?
type ErrorTest = fn(&StateError) -> bool;

fn set(key: &str, value: &str) -> Op {
    Op::new(
        key,
        OpKind::Set {
            value: b(value),
            ttl: None,
        },
    )
}

async fn all_keys(s: &ScopeHandle) -> Vec<String> {
    s.keys(KeyListing::default()).await.unwrap().keys
}

fn int_of(v: Option<Vec<u8>>) -> i64 {
    String::from_utf8(v.expect("value present"))
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_failing_fifth_op_leaves_the_first_four_invisible() {
    let h = Harness::new();
    let s = h.instance("a");
    s.set("text", b("hello")).await.unwrap();
    let err = s
        .commit(vec![
            set("v", "1"),
            Op::new("m", OpKind::MapSet(fv(&[("f", "1")]))),
            Op::new("l", OpKind::ListAppend(bs(&["x", "y"]))),
            Op::new("c", OpKind::Increment(10)),
            Op::new("text", OpKind::Increment(1)),
            set("after", "never reached"),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StateError::Aborted { index: 4, .. }),
        "{err:?}"
    );
    assert!(matches!(err.root(), StateError::NotAnInteger), "{err:?}");
    assert_eq!(s.get("v").await.unwrap(), None);
    assert_eq!(s.map_length("m").await.unwrap(), 0);
    assert_eq!(s.list_length("l").await.unwrap(), 0);
    assert_eq!(s.get("c").await.unwrap(), None);
    assert_eq!(s.get("after").await.unwrap(), None);
    assert_eq!(s.get("text").await.unwrap(), Some(b("hello")));
    assert_eq!(all_keys(&s).await, vec!["text"]);
}

#[tokio::test]
async fn a_failed_if_match_leaves_earlier_ops_on_existing_keys_undone() {
    let h = Harness::new();
    let s = h.instance("a");
    let ev = s.set("v", b("1")).await.unwrap();
    s.map_set("m", fv(&[("a", "1")])).await.unwrap();
    let em = s.info("m").await.unwrap().unwrap().etag;
    s.list_append("l", bs(&["x"])).await.unwrap();
    let el = s.info("l").await.unwrap().unwrap().etag;
    s.set("c", b("5")).await.unwrap();
    let ec = s.info("c").await.unwrap().unwrap().etag;
    let stale = s.set("guard", b("old")).await.unwrap();
    s.set("guard", b("new")).await.unwrap();

    let err = s
        .commit(vec![
            Op::new("v", OpKind::Delete),
            Op::new("m", OpKind::MapDelete(vec!["a".into()])),
            Op::new("l", OpKind::ListStartPop(1)),
            Op::new("c", OpKind::Increment(1)),
            set("guard", "mine").when(Condition::IfMatch(stale)),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StateError::Aborted { index: 4, .. }),
        "{err:?}"
    );
    assert!(matches!(err.root(), StateError::EtagMismatch), "{err:?}");
    assert_eq!(s.info("v").await.unwrap().unwrap().etag, ev);
    assert_eq!(s.get("v").await.unwrap(), Some(b("1")));
    assert_eq!(s.info("m").await.unwrap().unwrap().etag, em);
    assert_eq!(s.map_get_all("m").await.unwrap(), fv(&[("a", "1")]));
    assert_eq!(s.info("l").await.unwrap().unwrap().etag, el);
    assert_eq!(s.list_range("l", 0, -1).await.unwrap(), bs(&["x"]));
    assert_eq!(s.info("c").await.unwrap().unwrap().etag, ec);
    assert_eq!(s.get("c").await.unwrap(), Some(b("5")));
    assert_eq!(s.get("guard").await.unwrap(), Some(b("new")));
}

#[tokio::test]
async fn any_error_aborts_and_names_its_op() {
    let h = Harness::with_limits(Limits {
        max_value_bytes: 32,
        ..Limits::default()
    });
    let s = h.instance("a");
    s.map_set("m", fv(&[("a", "1")])).await.unwrap();
    s.list_append("l", bs(&["x"])).await.unwrap();
    s.set("max", b(&i64::MAX.to_string())).await.unwrap();

    let cases: Vec<(Op, usize, ErrorTest)> = vec![
        (Op::new("m", OpKind::Increment(1)), 1, |e| {
            matches!(e, StateError::WrongType { .. })
        }),
        (Op::new("max", OpKind::Increment(1)), 1, |e| {
            matches!(e, StateError::Overflow)
        }),
        (
            Op::new(
                "l",
                OpKind::ListSet {
                    index: 5,
                    value: b("z"),
                },
            ),
            1,
            |e| matches!(e, StateError::IndexOutOfRange { .. }),
        ),
        (set("big", &"x".repeat(33)), 1, |e| {
            matches!(e, StateError::ValueTooLarge { .. })
        }),
        (Op::new("l", OpKind::MapSet(fv(&[("f", "1")]))), 1, |e| {
            matches!(e, StateError::WrongType { .. })
        }),
        (Op::new("m", OpKind::ListAppend(bs(&["q"]))), 1, |e| {
            matches!(e, StateError::WrongType { .. })
        }),
    ];
    for (bad, index, is_right) in cases {
        let what = format!("{bad:?}");
        let err = s
            .commit(vec![set("first", "1"), bad, set("last", "2")])
            .await
            .unwrap_err();
        match &err {
            StateError::Aborted { index: i, .. } => assert_eq!(*i, index, "{what}"),
            other => panic!("{what}: expected Aborted, got {other:?}"),
        }
        assert!(is_right(err.root()), "{what}: {err:?}");
        assert!(!s.exists("first").await.unwrap(), "{what}");
        assert!(!s.exists("last").await.unwrap(), "{what}");
    }
    assert_eq!(s.map_get_all("m").await.unwrap(), fv(&[("a", "1")]));
    assert_eq!(s.list_range("l", 0, -1).await.unwrap(), bs(&["x"]));
    assert_eq!(s.get("max").await.unwrap(), Some(b(&i64::MAX.to_string())));
}

#[tokio::test]
async fn ops_apply_in_order() {
    let h = Harness::new();
    let s = h.instance("a");
    s.set("k1", b("one")).await.unwrap();
    let r = s
        .commit(vec![
            Op::new("k1", OpKind::Delete),
            set("k2", "two"),
            Op::new("k2", OpKind::Delete),
            set("k3", "three"),
        ])
        .await
        .unwrap();
    assert_eq!(r.len(), 4);
    assert_eq!(r[0].output, OpOutput::Bool(true));
    assert_eq!(r[0].etag, None);
    assert!(r[1].etag.is_some());
    assert_eq!(r[2].output, OpOutput::Bool(true), "op 2 saw op 1's write");
    assert_eq!(r[2].etag, None);
    let e3 = r[3].etag.clone().expect("etag of k3");
    assert_eq!(s.get("k1").await.unwrap(), None);
    assert_eq!(s.get("k2").await.unwrap(), None);
    assert_eq!(s.get("k3").await.unwrap(), Some(b("three")));
    assert_eq!(s.info("k3").await.unwrap().unwrap().etag, e3);
    assert_eq!(all_keys(&s).await, vec!["k3"]);

    // Conditions see earlier ops of the same transaction.
    let err = s
        .commit(vec![
            set("fresh", "1"),
            set("fresh", "2").when(Condition::IfAbsent),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StateError::Aborted { index: 1, .. }),
        "{err:?}"
    );
    assert!(matches!(err.root(), StateError::AlreadyExists), "{err:?}");
    assert!(!s.exists("fresh").await.unwrap());

    let r = s
        .commit(vec![
            Op::new("k3", OpKind::Delete),
            set("k3", "again").when(Condition::IfAbsent),
        ])
        .await
        .unwrap();
    assert_eq!(r[0].output, OpOutput::Bool(true));
    assert_eq!(s.get("k3").await.unwrap(), Some(b("again")));

    // An etag produced by an earlier op is the key's etag for later ops.
    let r = s
        .commit(vec![set("x", "1"), Op::new("x", OpKind::Increment(1))])
        .await
        .unwrap();
    let ex = r[1].etag.clone().unwrap();
    let r = s
        .commit(vec![
            Op::new("x", OpKind::Check).when(Condition::IfMatch(ex.clone())),
            set("x", "9").when(Condition::IfMatch(ex)),
        ])
        .await
        .unwrap();
    assert!(r[1].etag.is_some());
    assert_eq!(s.get("x").await.unwrap(), Some(b("9")));
}

#[tokio::test]
async fn each_op_reports_its_result() {
    let h = Harness::new();
    let s = h.instance("a");
    let r = s
        .commit(vec![
            Op::new("c", OpKind::Increment(5)),
            Op::new("c", OpKind::Increment(-2)),
            Op::new("l", OpKind::ListAppend(bs(&["a", "b", "c", "d"]))),
            Op::new("l", OpKind::ListPrepend(bs(&["y", "z"]))),
            Op::new("l", OpKind::ListStartPop(2)),
            Op::new("l", OpKind::ListEndPop(1)),
            Op::new(
                "l",
                OpKind::ListInsert {
                    before: false,
                    pivot: b("a"),
                    value: b("a2"),
                },
            ),
            Op::new(
                "l",
                OpKind::ListRemove {
                    value: b("b"),
                    count: 0,
                },
            ),
            Op::new("m", OpKind::MapSet(fv(&[("f", "1"), ("g", "2")]))),
            Op::new("m", OpKind::MapSet(fv(&[("f", "3"), ("h", "4")]))),
            Op::new("m", OpKind::MapDelete(vec!["g".into(), "zz".into()])),
            Op::new(
                "m",
                OpKind::MapIncrement {
                    field: "n".into(),
                    delta: 7,
                },
            ),
            Op::new(
                "c",
                OpKind::Expire {
                    seconds: 100,
                    mode: ExpireMode::Nx,
                },
            ),
            Op::new(
                "c",
                OpKind::Expire {
                    seconds: 100,
                    mode: ExpireMode::Nx,
                },
            ),
            Op::new("c", OpKind::Persist),
            Op::new("gone", OpKind::Delete),
            Op::new("l2", OpKind::ListAppend(bs(&["only"]))),
            Op::new("l2", OpKind::ListEndPop(5)),
            Op::new("l2", OpKind::ListStartPop(5)),
        ])
        .await
        .unwrap();
    let outputs: Vec<OpOutput> = r.iter().map(|r| r.output.clone()).collect();
    assert_eq!(
        outputs,
        vec![
            OpOutput::Int(5),
            OpOutput::Int(3),
            OpOutput::Int(4),
            OpOutput::Int(6),
            OpOutput::Values(bs(&["z", "y"])),
            OpOutput::Values(bs(&["d"])),
            OpOutput::Int(4),
            OpOutput::Int(1),
            OpOutput::Int(2),
            OpOutput::Int(1),
            OpOutput::Int(1),
            OpOutput::Int(7),
            OpOutput::Bool(true),
            OpOutput::Bool(false),
            OpOutput::Bool(true),
            OpOutput::Bool(false),
            OpOutput::Int(1),
            OpOutput::Values(bs(&["only"])),
            OpOutput::Values(vec![]),
        ]
    );
    // Every op that left its key in place reports a fresh etag; ops on a
    // key that is gone report none.
    let mut seen = HashSet::new();
    for (i, res) in r.iter().enumerate().take(15) {
        if i == 13 {
            continue; // a no-op expire keeps the etag of op 12
        }
        let e = res.etag.clone().unwrap_or_else(|| panic!("op {i} etag"));
        assert!(seen.insert(e), "op {i} reused an etag");
    }
    assert_eq!(r[13].etag, r[12].etag, "a no-op expire keeps the etag");
    assert_eq!(r[15].etag, None);
    assert_eq!(r[17].etag, None, "the emptied list is gone");
    assert_eq!(r[18].etag, None);
    // The state matches the results.
    assert_eq!(s.get("c").await.unwrap(), Some(b("3")));
    assert_eq!(s.ttl("c").await.unwrap(), None);
    assert_eq!(
        s.list_range("l", 0, -1).await.unwrap(),
        bs(&["a", "a2", "c"])
    );
    assert_eq!(
        s.map_get_all("m").await.unwrap(),
        fv(&[("f", "3"), ("h", "4"), ("n", "7")])
    );
    assert!(!s.exists("l2").await.unwrap());
    assert_eq!(
        s.info("c").await.unwrap().unwrap().etag,
        r[14].etag.clone().unwrap()
    );
    assert_eq!(
        s.info("l").await.unwrap().unwrap().etag,
        r[7].etag.clone().unwrap()
    );
    assert_eq!(
        s.info("m").await.unwrap().unwrap().etag,
        r[11].etag.clone().unwrap()
    );
}

#[tokio::test]
async fn an_empty_commit_succeeds_with_no_results() {
    let h = Harness::new();
    let s = h.instance("a");
    assert_eq!(s.commit(vec![]).await.unwrap(), Vec::<OpResult>::new());
    assert!(all_keys(&s).await.is_empty());
}

#[tokio::test]
async fn more_than_128_ops_is_refused_and_writes_nothing() {
    let h = Harness::new();
    let s = h.instance("a");
    let ops = |n: usize| -> Vec<Op> { (0..n).map(|i| set(&format!("k{i:03}"), "x")).collect() };
    let err = s.commit(ops(129)).await.unwrap_err();
    assert!(
        matches!(
            err,
            StateError::TooManyOperations {
                count: 129,
                max: 128
            }
        ),
        "{err:?}"
    );
    assert!(all_keys(&s).await.is_empty());

    let err = s.commit(ops(1000)).await.unwrap_err();
    assert!(
        matches!(err, StateError::TooManyOperations { count: 1000, .. }),
        "{err:?}"
    );
    assert!(all_keys(&s).await.is_empty());

    let entries: Vec<(String, Vec<u8>)> = (0..129).map(|i| (format!("s{i:03}"), b("x"))).collect();
    let err = s.set_many(entries).await.unwrap_err();
    assert!(
        matches!(
            err.root(),
            StateError::TooManyOperations {
                count: 129,
                max: 128
            }
        ),
        "{err:?}"
    );
    assert!(all_keys(&s).await.is_empty());

    // Exactly 128 is fine.
    let r = s.commit(ops(128)).await.unwrap();
    assert_eq!(r.len(), 128);
    assert_eq!(all_keys(&s).await.len(), 128);

    let names: Vec<String> = (0..129).map(|i| format!("k{i:03}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let err = s.delete_many(&refs).await.unwrap_err();
    assert!(
        matches!(
            err.root(),
            StateError::TooManyOperations {
                count: 129,
                max: 128
            }
        ),
        "{err:?}"
    );
    assert_eq!(all_keys(&s).await.len(), 128, "delete_many deleted some");
    assert_eq!(s.delete_many(&refs[..128]).await.unwrap(), 128);
    assert!(all_keys(&s).await.is_empty());
}

#[tokio::test]
async fn a_configured_op_limit_is_respected() {
    let h = Harness::with_limits(Limits {
        max_ops: 3,
        ..Limits::default()
    });
    let s = h.instance("a");
    let err = s
        .commit(vec![
            set("a", "1"),
            set("b", "1"),
            set("c", "1"),
            set("d", "1"),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StateError::TooManyOperations { count: 4, max: 3 }),
        "{err:?}"
    );
    assert!(all_keys(&s).await.is_empty());
    let err = s
        .set_many(vec![
            ("a".into(), b("1")),
            ("b".into(), b("1")),
            ("c".into(), b("1")),
            ("d".into(), b("1")),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.root(),
            StateError::TooManyOperations { count: 4, max: 3 }
        ),
        "{err:?}"
    );
    assert!(all_keys(&s).await.is_empty());

    s.commit(vec![set("a", "1"), set("b", "1"), set("c", "1")])
        .await
        .unwrap();
    s.set_many(vec![("d".into(), b("1")), ("e".into(), b("1"))])
        .await
        .unwrap();
    assert_eq!(all_keys(&s).await, vec!["a", "b", "c", "d", "e"]);
    let err = s.delete_many(&["a", "b", "c", "d"]).await.unwrap_err();
    assert!(
        matches!(
            err.root(),
            StateError::TooManyOperations { count: 4, max: 3 }
        ),
        "{err:?}"
    );
    assert_eq!(all_keys(&s).await.len(), 5);
    assert_eq!(s.delete_many(&["a", "b", "zz"]).await.unwrap(), 2);
    assert_eq!(all_keys(&s).await, vec!["c", "d", "e"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_readers_never_see_half_a_transaction() {
    const TOTAL: i64 = 1000;
    let h = Harness::new();
    let s = h.instance("a");
    s.set_many(vec![("a".into(), b("1000")), ("b".into(), b("0"))])
        .await
        .unwrap();
    s.map_set("m", fv(&[("x", "1000"), ("y", "0")]))
        .await
        .unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (s, done) = (s.clone(), done.clone());
        tokio::spawn(async move {
            let mut reads = 0u64;
            let mut states = BTreeSet::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                let v = s.get_many(&["a", "b"]).await.unwrap();
                let (a, bb) = (int_of(v[0].clone()), int_of(v[1].clone()));
                assert_eq!(a + bb, TOTAL, "saw half a transaction: a={a} b={bb}");
                let f = s.map_get_many("m", &["x", "y"]).await.unwrap();
                let (x, y) = (int_of(f[0].clone()), int_of(f[1].clone()));
                assert_eq!(x + y, TOTAL, "saw half a transaction: x={x} y={y}");
                states.insert(a);
                reads += 1;
                if finished {
                    return (reads, states.len());
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let mut writers = Vec::new();
    for w in 0..4i64 {
        let s = s.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..50i64 {
                let d = if (w + i) % 2 == 0 {
                    i % 7 + 1
                } else {
                    -(i % 5 + 1)
                };
                s.commit(vec![
                    Op::new("a", OpKind::Increment(-d)),
                    Op::new("b", OpKind::Increment(d)),
                    Op::new(
                        "m",
                        OpKind::MapIncrement {
                            field: "x".into(),
                            delta: -d,
                        },
                    ),
                    Op::new(
                        "m",
                        OpKind::MapIncrement {
                            field: "y".into(),
                            delta: d,
                        },
                    ),
                ])
                .await
                .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let (reads, states) = reader.await.unwrap();
    assert!(reads > 1, "the reader only read {reads} times");
    assert!(states >= 2, "the reader never saw a transaction land");
    let v = s.get_many(&["a", "b"]).await.unwrap();
    assert_eq!(int_of(v[0].clone()) + int_of(v[1].clone()), TOTAL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_committed_writers_keep_exactly_the_successful_ones() {
    let h = Harness::new();
    let s = h.instance("a");
    let stale = s.set("guard", b("0")).await.unwrap();
    let current = s.set("guard", b("1")).await.unwrap();

    let mut tasks = Vec::new();
    for i in 0..200usize {
        let s = s.clone();
        let cond = if i % 2 == 0 {
            current.clone()
        } else {
            stale.clone()
        };
        tasks.push(tokio::spawn(async move {
            let r = s
                .commit(vec![
                    set(&format!("k{i:03}"), &i.to_string()),
                    Op::new("total", OpKind::Increment(1)),
                    Op::new("m", OpKind::MapSet(fv(&[(&format!("f{i:03}"), "x")]))),
                    Op::new("l", OpKind::ListAppend(vec![b(&i.to_string())])),
                    Op::new("guard", OpKind::Check).when(Condition::IfMatch(cond)),
                ])
                .await;
            (i, r)
        }));
    }
    let mut etags = HashSet::new();
    for t in tasks {
        let (i, r) = t.await.unwrap();
        if i % 2 == 0 {
            let r = r.unwrap_or_else(|e| panic!("commit {i} failed: {e:?}"));
            assert_eq!(r.len(), 5);
            for op in &r[..4] {
                assert!(
                    etags.insert(op.etag.clone().expect("etag")),
                    "commit {i} got an etag another write also got"
                );
            }
        } else {
            let e = r.expect_err("a stale if-match committed");
            assert!(matches!(e, StateError::Aborted { index: 4, .. }), "{e:?}");
            assert!(matches!(e.root(), StateError::EtagMismatch), "{e:?}");
        }
    }
    assert_eq!(s.get("total").await.unwrap(), Some(b("100")));
    assert_eq!(s.map_length("m").await.unwrap(), 100);
    let fields: Vec<String> = (0..200).step_by(2).map(|i| format!("f{i:03}")).collect();
    assert_eq!(s.map_keys("m").await.unwrap(), fields);
    assert_eq!(s.list_length("l").await.unwrap(), 100);
    let mut items: Vec<usize> = s
        .list_range("l", 0, -1)
        .await
        .unwrap()
        .into_iter()
        .map(|v| String::from_utf8(v).unwrap().parse().unwrap())
        .collect();
    items.sort_unstable();
    assert_eq!(items, (0..200).step_by(2).collect::<Vec<usize>>());
    let mut expected: Vec<String> = (0..200).step_by(2).map(|i| format!("k{i:03}")).collect();
    expected.extend(["guard", "l", "m", "total"].map(String::from));
    expected.sort();
    assert_eq!(all_keys(&s).await, expected, "a failed commit left a key");
    for i in (0..200).step_by(2) {
        assert_eq!(
            s.get(&format!("k{i:03}")).await.unwrap(),
            Some(b(&i.to_string()))
        );
    }
    assert_eq!(s.get("guard").await.unwrap(), Some(b("1")));
    // Etags issued by the winners are unique among everything now present.
    for k in all_keys(&s).await {
        let e = s.info(&k).await.unwrap().unwrap().etag;
        if k != "guard" {
            assert!(etags.contains(&e), "{k} has an etag no commit reported");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_if_match_writers_have_exactly_one_winner() {
    let h = Harness::new();
    let s = h.instance("a");
    let e0 = s.set("c", b("0")).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (s, e0) = (s.clone(), e0.clone());
        tasks.push(tokio::spawn(async move {
            s.commit(vec![
                Op::new("c", OpKind::Increment(1)).when(Condition::IfMatch(e0)),
                Op::new("winners", OpKind::Increment(1)),
            ])
            .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(matches!(e, StateError::Aborted { index: 0, .. }), "{e:?}");
                assert!(matches!(e.root(), StateError::EtagMismatch), "{e:?}");
            }
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(s.get("c").await.unwrap(), Some(b("1")));
    assert_eq!(s.get("winners").await.unwrap(), Some(b("1")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn optimistic_retries_lose_no_update() {
    let h = Harness::new();
    let s = h.instance("a");
    s.set("n", b("0")).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                let mut tries = 0;
                loop {
                    tries += 1;
                    assert!(tries < 1000, "no progress");
                    let e = s.get_entry("n").await.unwrap().unwrap();
                    let n: i64 = String::from_utf8(e.value).unwrap().parse().unwrap();
                    let r = s
                        .commit(vec![
                            set("n", &(n + 1).to_string()).when(Condition::IfMatch(e.etag)),
                        ])
                        .await;
                    match r {
                        Ok(_) => break,
                        Err(err) => {
                            assert!(matches!(err.root(), StateError::EtagMismatch), "{err:?}")
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.get("n").await.unwrap(), Some(b("80")));
}

#[tokio::test]
async fn set_many_and_delete_many_are_atomic() {
    let h = Harness::with_limits(Limits {
        max_value_bytes: 16,
        max_key_bytes: 8,
        ..Limits::default()
    });
    let s = h.instance("a");
    let err = s
        .set_many(vec![
            ("a".into(), b("1")),
            ("b".into(), vec![b'x'; 17]),
            ("c".into(), b("3")),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err.root(), StateError::ValueTooLarge { len: 17, max: 16 }),
        "{err:?}"
    );
    assert!(all_keys(&s).await.is_empty(), "set_many wrote a part");

    let err = s
        .set_many(vec![("a".into(), b("1")), ("toolongkey".into(), b("2"))])
        .await
        .unwrap_err();
    assert!(
        matches!(err.root(), StateError::KeyTooLarge { len: 10, max: 8 }),
        "{err:?}"
    );
    assert!(all_keys(&s).await.is_empty(), "set_many wrote a part");

    s.set_many(vec![
        ("a".into(), b("1")),
        ("b".into(), b("2")),
        ("c".into(), b("3")),
    ])
    .await
    .unwrap();
    assert_eq!(
        s.get_many(&["a", "b", "c", "d"]).await.unwrap(),
        vec![Some(b("1")), Some(b("2")), Some(b("3")), None]
    );
    // A later entry for the same key wins, as ops apply in order.
    s.set_many(vec![("d".into(), b("first")), ("d".into(), b("second"))])
        .await
        .unwrap();
    assert_eq!(s.get("d").await.unwrap(), Some(b("second")));

    let err = s.delete_many(&["a", "toolongkey", "b"]).await.unwrap_err();
    assert!(
        matches!(err.root(), StateError::KeyTooLarge { .. }),
        "{err:?}"
    );
    assert_eq!(
        all_keys(&s).await,
        vec!["a", "b", "c", "d"],
        "delete_many deleted a part"
    );
    // Counts keys that existed; a repeated key counts once.
    assert_eq!(s.delete_many(&["a", "b", "a", "nope"]).await.unwrap(), 2);
    assert_eq!(all_keys(&s).await, vec!["c", "d"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_never_see_half_a_set_many() {
    let h = Harness::new();
    let s = h.instance("a");
    let keys = ["p", "q", "r", "s"];
    s.set_many(keys.iter().map(|k| (k.to_string(), b("0"))).collect())
        .await
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (s, done) = (s.clone(), done.clone());
        tokio::spawn(async move {
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) {
                let v = s.get_many(&keys).await.unwrap();
                assert!(
                    v.windows(2).all(|w| w[0] == w[1]),
                    "saw half a set_many: {v:?}"
                );
                reads += 1;
                tokio::task::yield_now().await;
            }
            reads
        })
    };
    for round in 1..=100 {
        let v = round.to_string();
        s.set_many(keys.iter().map(|k| (k.to_string(), b(&v))).collect())
            .await
            .unwrap();
    }
    done.store(true, Ordering::SeqCst);
    assert!(reader.await.unwrap() > 0);
}

#[tokio::test]
async fn transactions_work_in_sessions_and_are_scoped() {
    let h = Harness::new();
    let info = h.store.create_session("a", None).await.unwrap();
    let sess = h.store.session("a", &info.id).await.unwrap();
    let inst = h.instance("a");
    inst.set("k", b("instance")).await.unwrap();
    let r = sess
        .commit(vec![
            Op::new("k", OpKind::Check).when(Condition::IfAbsent),
            set("k", "session"),
        ])
        .await
        .unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(sess.get("k").await.unwrap(), Some(b("session")));
    assert_eq!(inst.get("k").await.unwrap(), Some(b("instance")));
    // An etag of the instance's key does not match the session's key.
    let ei = inst.info("k").await.unwrap().unwrap().etag;
    let err = sess
        .commit(vec![set("k", "x").when(Condition::IfMatch(ei))])
        .await
        .unwrap_err();
    assert!(matches!(err.root(), StateError::EtagMismatch), "{err:?}");
    assert_eq!(sess.get("k").await.unwrap(), Some(b("session")));
}
