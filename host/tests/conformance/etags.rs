//! Etags and write conditions (SPEC.md "Etags and conditions"): every write
//! changes the key's etag, reads never do, `if-match` / `if-absent` /
//! `if-exists` guard writes and change nothing when they fail, and an etag the
//! store never issued is `invalid-etag`.

use std::collections::HashSet;
use std::time::Duration;

use wasm_state::store::{
    Condition, Entry, ExpireMode, KeyKind, KeyListing, Op, OpKind, OpOutput, ScopeHandle,
    SetOptions, StateError,
};

use super::*;

/// The current etag of `key` (which must exist).
async fn tag(s: &ScopeHandle, key: &str) -> String {
    s.info(key)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{key} should exist"))
        .etag
}

fn set_op(value: &str) -> OpKind {
    OpKind::Set {
        value: b(value),
        ttl: None,
    }
}

fn if_match(etag: &str) -> SetOptions {
    SetOptions {
        ttl: None,
        condition: Some(Condition::IfMatch(etag.to_string())),
    }
}

fn when(condition: Condition) -> SetOptions {
    SetOptions {
        ttl: None,
        condition: Some(condition),
    }
}

/// Run `$write`, then check the etag of `$key` moved to one never seen before.
macro_rules! changes {
    ($s:expr, $seen:expr, $key:expr, $what:expr, $write:expr) => {{
        let before = tag(&$s, $key).await;
        $write;
        let after = tag(&$s, $key).await;
        assert_ne!(
            before, after,
            "{} did not change the etag of {}",
            $what, $key
        );
        assert!(
            $seen.insert(after.clone()),
            "{} gave {} an etag issued before ({after})",
            $what,
            $key
        );
    }};
}

/// Run `$read` and check the etag of `$key` did not move.
macro_rules! keeps {
    ($s:expr, $key:expr, $what:expr, $op:expr) => {{
        let before = tag(&$s, $key).await;
        let _ = $op;
        let after = tag(&$s, $key).await;
        assert_eq!(before, after, "{} changed the etag of {}", $what, $key);
    }};
}

#[tokio::test]
async fn every_value_write_changes_the_etag() {
    let h = Harness::new();
    let s = h.instance("a");
    let mut seen = HashSet::new();
    let first = s.set("v", b("1")).await.unwrap();
    assert_eq!(first, tag(&s, "v").await, "set returns the key's etag");
    seen.insert(first);

    changes!(s, seen, "v", "set", s.set("v", b("2")).await.unwrap());
    changes!(
        s,
        seen,
        "v",
        "set of the same bytes",
        s.set("v", b("2")).await.unwrap()
    );
    changes!(
        s,
        seen,
        "v",
        "set with ttl",
        s.set_with(
            "v",
            b("3"),
            SetOptions {
                ttl: Some(Duration::from_secs(100)),
                condition: None,
            }
        )
        .await
        .unwrap()
    );
    changes!(
        s,
        seen,
        "v",
        "expire",
        assert!(s.expire("v", 500, ExpireMode::Always).await.unwrap())
    );
    changes!(
        s,
        seen,
        "v",
        "expire GT",
        assert!(s.expire("v", 900, ExpireMode::Gt).await.unwrap())
    );
    changes!(
        s,
        seen,
        "v",
        "expire LT",
        assert!(s.expire("v", 50, ExpireMode::Lt).await.unwrap())
    );
    changes!(
        s,
        seen,
        "v",
        "expire XX",
        assert!(s.expire("v", 60, ExpireMode::Xx).await.unwrap())
    );
    changes!(
        s,
        seen,
        "v",
        "persist",
        assert!(s.persist("v").await.unwrap())
    );
    changes!(
        s,
        seen,
        "v",
        "expire NX",
        assert!(s.expire("v", 60, ExpireMode::Nx).await.unwrap())
    );

    s.set("n", b("0")).await.unwrap();
    changes!(
        s,
        seen,
        "n",
        "increment",
        assert_eq!(s.increment("n", 5).await.unwrap(), 5)
    );
    changes!(
        s,
        seen,
        "n",
        "decrement",
        assert_eq!(s.increment("n", -7).await.unwrap(), -2)
    );
}

#[tokio::test]
async fn every_map_write_changes_the_etag() {
    let h = Harness::new();
    let s = h.instance("a");
    let mut seen = HashSet::new();
    s.map_set("m", fv(&[("a", "1"), ("b", "2"), ("c", "3")]))
        .await
        .unwrap();
    seen.insert(tag(&s, "m").await);

    changes!(
        s,
        seen,
        "m",
        "map_set of a new field",
        assert_eq!(s.map_set("m", fv(&[("d", "4")])).await.unwrap(), 1)
    );
    changes!(
        s,
        seen,
        "m",
        "map_set overwriting a field",
        assert_eq!(s.map_set("m", fv(&[("a", "9")])).await.unwrap(), 0)
    );
    changes!(
        s,
        seen,
        "m",
        "map_delete",
        assert_eq!(s.map_delete("m", &["b", "zz"]).await.unwrap(), 1)
    );
    changes!(
        s,
        seen,
        "m",
        "map_increment of a new field",
        assert_eq!(s.map_increment("m", "n", 3).await.unwrap(), 3)
    );
    changes!(
        s,
        seen,
        "m",
        "map_increment of a field",
        assert_eq!(s.map_increment("m", "n", 3).await.unwrap(), 6)
    );
    changes!(
        s,
        seen,
        "m",
        "expire of a map",
        assert!(s.expire("m", 100, ExpireMode::Always).await.unwrap())
    );
    changes!(
        s,
        seen,
        "m",
        "persist of a map",
        assert!(s.persist("m").await.unwrap())
    );
}

#[tokio::test]
async fn every_list_write_changes_the_etag() {
    let h = Harness::new();
    let s = h.instance("a");
    let mut seen = HashSet::new();
    s.list_append("l", bs(&["a", "b", "c", "d", "e"]))
        .await
        .unwrap();
    seen.insert(tag(&s, "l").await);

    changes!(
        s,
        seen,
        "l",
        "list_append",
        assert_eq!(s.list_append("l", bs(&["f"])).await.unwrap(), 6)
    );
    changes!(
        s,
        seen,
        "l",
        "list_prepend",
        assert_eq!(s.list_prepend("l", bs(&["z"])).await.unwrap(), 7)
    );
    changes!(
        s,
        seen,
        "l",
        "list_start_pop",
        assert_eq!(s.list_start_pop("l", 1).await.unwrap(), bs(&["z"]))
    );
    changes!(
        s,
        seen,
        "l",
        "list_end_pop",
        assert_eq!(s.list_end_pop("l", 1).await.unwrap(), bs(&["f"]))
    );
    changes!(
        s,
        seen,
        "l",
        "list_set",
        s.list_set("l", 0, b("A")).await.unwrap()
    );
    changes!(
        s,
        seen,
        "l",
        "list_set to the same bytes",
        s.list_set("l", 0, b("A")).await.unwrap()
    );
    changes!(
        s,
        seen,
        "l",
        "list_insert",
        assert_eq!(s.list_insert("l", true, b("c"), b("x")).await.unwrap(), 6)
    );
    changes!(
        s,
        seen,
        "l",
        "list_remove",
        assert_eq!(s.list_remove("l", b("x"), 0).await.unwrap(), 1)
    );
    changes!(
        s,
        seen,
        "l",
        "list_trim",
        s.list_trim("l", 1, -1).await.unwrap()
    );
    assert_eq!(
        s.list_range("l", 0, -1).await.unwrap(),
        bs(&["b", "c", "d", "e"])
    );
    changes!(
        s,
        seen,
        "l",
        "expire of a list",
        assert!(s.expire("l", 100, ExpireMode::Always).await.unwrap())
    );
    changes!(
        s,
        seen,
        "l",
        "persist of a list",
        assert!(s.persist("l").await.unwrap())
    );
}

#[tokio::test]
async fn writes_in_a_transaction_change_the_etag_and_report_it() {
    let h = Harness::new();
    let s = h.instance("a");
    let e0 = s.set("k", b("1")).await.unwrap();
    let results = s
        .commit(vec![
            Op::new("k", OpKind::Increment(1)),
            Op::new("k", OpKind::Increment(1)),
        ])
        .await
        .unwrap();
    let e1 = results[0].etag.clone().expect("etag after op 0");
    let e2 = results[1].etag.clone().expect("etag after op 1");
    assert_ne!(e0, e1);
    assert_ne!(e1, e2);
    assert_ne!(e0, e2);
    assert_eq!(tag(&s, "k").await, e2, "the last op's etag is the key's");
    assert_eq!(s.get("k").await.unwrap(), Some(b("3")));
}

#[tokio::test]
async fn reads_do_not_change_the_etag() {
    let h = Harness::new();
    let s = h.instance("a");
    s.set_with(
        "v",
        b("1"),
        SetOptions {
            ttl: Some(Duration::from_secs(60)),
            condition: None,
        },
    )
    .await
    .unwrap();
    s.map_set("m", fv(&[("a", "1"), ("b", "2")])).await.unwrap();
    s.list_append("l", bs(&["x", "y"])).await.unwrap();

    keeps!(s, "v", "get", s.get("v").await.unwrap());
    keeps!(s, "v", "get_entry", s.get_entry("v").await.unwrap());
    keeps!(s, "v", "get_many", s.get_many(&["v", "m"]).await.unwrap());
    keeps!(s, "v", "exists", s.exists("v").await.unwrap());
    keeps!(s, "v", "ttl", s.ttl("v").await.unwrap());
    keeps!(s, "v", "info", s.info("v").await.unwrap());
    keeps!(s, "v", "keys", s.keys(KeyListing::default()).await.unwrap());
    keeps!(
        s,
        "v",
        "check in a commit",
        s.commit(vec![Op::new("v", OpKind::Check).when(Condition::IfExists)])
            .await
            .unwrap()
    );

    keeps!(s, "m", "map_get", s.map_get("m", "a").await.unwrap());
    keeps!(
        s,
        "m",
        "map_get_many",
        s.map_get_many("m", &["a", "b"]).await.unwrap()
    );
    keeps!(s, "m", "map_get_all", s.map_get_all("m").await.unwrap());
    keeps!(s, "m", "map_keys", s.map_keys("m").await.unwrap());
    keeps!(s, "m", "map_values", s.map_values("m").await.unwrap());
    keeps!(s, "m", "map_exists", s.map_exists("m", "a").await.unwrap());
    keeps!(s, "m", "map_length", s.map_length("m").await.unwrap());
    keeps!(
        s,
        "m",
        "map_scan",
        s.map_scan("m", "0", None, 10).await.unwrap()
    );

    keeps!(
        s,
        "l",
        "list_range",
        s.list_range("l", 0, -1).await.unwrap()
    );
    keeps!(s, "l", "list_index", s.list_index("l", 1).await.unwrap());
    keeps!(s, "l", "list_length", s.list_length("l").await.unwrap());
}

#[tokio::test]
async fn writes_that_change_nothing_keep_the_etag() {
    // Redis only signals a modification when a command changes the key.
    let h = Harness::new();
    let s = h.instance("a");
    s.set("v", b("1")).await.unwrap();
    s.map_set("m", fv(&[("a", "1")])).await.unwrap();
    s.list_append("l", bs(&["x", "y"])).await.unwrap();

    keeps!(
        s,
        "m",
        "map_delete of a missing field",
        assert_eq!(s.map_delete("m", &["nope"]).await.unwrap(), 0)
    );
    keeps!(
        s,
        "l",
        "list_remove of a missing item",
        assert_eq!(s.list_remove("l", b("nope"), 0).await.unwrap(), 0)
    );
    keeps!(
        s,
        "l",
        "list_insert with a missing pivot",
        assert_eq!(
            s.list_insert("l", true, b("nope"), b("z")).await.unwrap(),
            -1
        )
    );
    keeps!(
        s,
        "v",
        "persist without a TTL",
        assert!(!s.persist("v").await.unwrap())
    );
    keeps!(
        s,
        "v",
        "expire XX without a TTL",
        assert!(!s.expire("v", 10, ExpireMode::Xx).await.unwrap())
    );
    keeps!(
        s,
        "v",
        "expire GT without a TTL",
        assert!(!s.expire("v", 10, ExpireMode::Gt).await.unwrap())
    );
    s.expire("v", 100, ExpireMode::Always).await.unwrap();
    keeps!(
        s,
        "v",
        "expire NX with a TTL",
        assert!(!s.expire("v", 10, ExpireMode::Nx).await.unwrap())
    );
    keeps!(
        s,
        "v",
        "expire LT with a later time",
        assert!(!s.expire("v", 1000, ExpireMode::Lt).await.unwrap())
    );
}

#[tokio::test]
async fn a_stale_if_match_fails_and_changes_nothing() {
    let h = Harness::new();
    let s = h.instance("a");
    let stale = s
        .set_with(
            "k",
            b("old"),
            SetOptions {
                ttl: Some(Duration::from_secs(100)),
                condition: None,
            },
        )
        .await
        .unwrap();
    let current = s
        .set_with(
            "k",
            b("new"),
            SetOptions {
                ttl: Some(Duration::from_secs(100)),
                condition: None,
            },
        )
        .await
        .unwrap();
    assert_ne!(stale, current);

    let err = s.set_with("k", b("x"), if_match(&stale)).await.unwrap_err();
    assert!(matches!(err, StateError::EtagMismatch), "{err:?}");
    let err = s
        .delete_if("k", Condition::IfMatch(stale.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::EtagMismatch), "{err:?}");
    for kind in [
        OpKind::Increment(1),
        OpKind::Persist,
        OpKind::Expire {
            seconds: 5,
            mode: ExpireMode::Always,
        },
        OpKind::Delete,
        set_op("y"),
    ] {
        let err = s
            .apply(Op::new("k", kind.clone()).when(Condition::IfMatch(stale.clone())))
            .await
            .unwrap_err();
        assert!(matches!(err, StateError::EtagMismatch), "{kind:?}: {err:?}");
    }
    assert_eq!(
        s.get_entry("k").await.unwrap(),
        Some(Entry {
            value: b("new"),
            etag: current.clone(),
            ttl: Some(Duration::from_secs(100)),
            expires_at_ms: Some(T0 + 100_000),
        }),
        "failed conditional writes changed the key"
    );

    // Maps and lists are guarded the same way.
    s.map_set("m", fv(&[("a", "1")])).await.unwrap();
    let m_stale = tag(&s, "m").await;
    s.map_set("m", fv(&[("b", "2")])).await.unwrap();
    let m_now = tag(&s, "m").await;
    for kind in [
        OpKind::MapSet(fv(&[("c", "3")])),
        OpKind::MapDelete(vec!["a".into()]),
        OpKind::MapIncrement {
            field: "n".into(),
            delta: 1,
        },
    ] {
        let err = s
            .apply(Op::new("m", kind.clone()).when(Condition::IfMatch(m_stale.clone())))
            .await
            .unwrap_err();
        assert!(matches!(err, StateError::EtagMismatch), "{kind:?}: {err:?}");
    }
    assert_eq!(
        s.map_get_all("m").await.unwrap(),
        fv(&[("a", "1"), ("b", "2")])
    );
    assert_eq!(tag(&s, "m").await, m_now);

    s.list_append("l", bs(&["a"])).await.unwrap();
    let l_stale = tag(&s, "l").await;
    s.list_append("l", bs(&["b"])).await.unwrap();
    let l_now = tag(&s, "l").await;
    for kind in [
        OpKind::ListAppend(bs(&["c"])),
        OpKind::ListPrepend(bs(&["c"])),
        OpKind::ListStartPop(1),
        OpKind::ListEndPop(1),
        OpKind::ListSet {
            index: 0,
            value: b("z"),
        },
        OpKind::ListTrim { start: 1, stop: 1 },
        OpKind::ListRemove {
            value: b("a"),
            count: 0,
        },
        OpKind::ListInsert {
            before: true,
            pivot: b("a"),
            value: b("z"),
        },
    ] {
        let err = s
            .apply(Op::new("l", kind.clone()).when(Condition::IfMatch(l_stale.clone())))
            .await
            .unwrap_err();
        assert!(matches!(err, StateError::EtagMismatch), "{kind:?}: {err:?}");
    }
    assert_eq!(s.list_range("l", 0, -1).await.unwrap(), bs(&["a", "b"]));
    assert_eq!(tag(&s, "l").await, l_now);
}

#[tokio::test]
async fn if_match_on_a_deleted_key_is_a_mismatch() {
    let h = Harness::new();
    let s = h.instance("a");
    let e = s.set("k", b("1")).await.unwrap();
    assert!(s.delete("k").await.unwrap());
    assert_eq!(
        s.info("k").await.unwrap(),
        None,
        "a deleted key has no etag"
    );
    let err = s.set_with("k", b("2"), if_match(&e)).await.unwrap_err();
    assert!(matches!(err, StateError::EtagMismatch), "{err:?}");
    assert!(!s.exists("k").await.unwrap());
    // An etag of another key never matches.
    let other = s.set("other", b("1")).await.unwrap();
    s.set("k", b("3")).await.unwrap();
    let err = s.set_with("k", b("4"), if_match(&other)).await.unwrap_err();
    assert!(matches!(err, StateError::EtagMismatch), "{err:?}");
    assert_eq!(s.get("k").await.unwrap(), Some(b("3")));
}

#[tokio::test]
async fn if_match_with_the_current_etag_succeeds() {
    let h = Harness::new();
    let s = h.instance("a");
    let e1 = s.set("k", b("1")).await.unwrap();
    let e2 = s.set_with("k", b("2"), if_match(&e1)).await.unwrap();
    assert_ne!(e1, e2);
    assert_eq!(s.get("k").await.unwrap(), Some(b("2")));
    assert_eq!(tag(&s, "k").await, e2);

    let r = s
        .apply(Op::new("k", OpKind::Increment(5)).when(Condition::IfMatch(e2.clone())))
        .await
        .unwrap();
    assert_eq!(r.output, OpOutput::Int(7));
    let e3 = r.etag.unwrap();
    assert_eq!(tag(&s, "k").await, e3);

    s.map_set("m", fv(&[("a", "1")])).await.unwrap();
    let em = tag(&s, "m").await;
    let r = s
        .apply(Op::new("m", OpKind::MapSet(fv(&[("b", "2")]))).when(Condition::IfMatch(em)))
        .await
        .unwrap();
    assert_eq!(r.output, OpOutput::Int(1));
    assert_eq!(s.map_length("m").await.unwrap(), 2);

    assert!(s.delete_if("k", Condition::IfMatch(e3)).await.unwrap());
    assert!(!s.exists("k").await.unwrap());
}

#[tokio::test]
async fn if_absent_is_first_write_wins() {
    let h = Harness::new();
    let s = h.instance("a");
    let e = s
        .set_with("k", b("first"), when(Condition::IfAbsent))
        .await
        .unwrap();
    let err = s
        .set_with("k", b("second"), when(Condition::IfAbsent))
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::AlreadyExists), "{err:?}");
    assert_eq!(s.get("k").await.unwrap(), Some(b("first")));
    assert_eq!(tag(&s, "k").await, e, "a failed if-absent changed the etag");

    // A map or list counts as present too.
    s.map_set("m", fv(&[("a", "1")])).await.unwrap();
    let err = s
        .set_with("m", b("x"), when(Condition::IfAbsent))
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::AlreadyExists), "{err:?}");
    assert_eq!(s.map_get_all("m").await.unwrap(), fv(&[("a", "1")]));

    // After a delete the key is absent again.
    assert!(s.delete("k").await.unwrap());
    s.set_with("k", b("again"), when(Condition::IfAbsent))
        .await
        .unwrap();
    assert_eq!(s.get("k").await.unwrap(), Some(b("again")));
}

#[tokio::test]
async fn if_absent_under_contention_has_one_winner() {
    let h = Harness::new();
    let s = h.instance("a");
    let mut tasks = Vec::new();
    for i in 0..32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.set_with("lock", b(&format!("{i}")), when(Condition::IfAbsent))
                .await
                .map(|_| i)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(i) => winners.push(i),
            Err(e) => assert!(matches!(e, StateError::AlreadyExists), "{e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(
        s.get("lock").await.unwrap(),
        Some(b(&format!("{}", winners[0])))
    );
}

#[tokio::test]
async fn if_exists_on_a_missing_key_is_not_found() {
    let h = Harness::new();
    let s = h.instance("a");
    let err = s
        .set_with("k", b("x"), when(Condition::IfExists))
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::NotFound), "{err:?}");
    assert!(!s.exists("k").await.unwrap());
    let err = s
        .apply(Op::new("k", OpKind::Increment(1)).when(Condition::IfExists))
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::NotFound), "{err:?}");
    let err = s
        .apply(Op::new("m", OpKind::MapSet(fv(&[("a", "1")]))).when(Condition::IfExists))
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::NotFound), "{err:?}");
    let err = s
        .apply(Op::new("l", OpKind::ListAppend(bs(&["a"]))).when(Condition::IfExists))
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::NotFound), "{err:?}");
    assert_eq!(
        s.keys(KeyListing::default()).await.unwrap().keys,
        Vec::<String>::new()
    );

    s.set("k", b("1")).await.unwrap();
    let e = s
        .set_with("k", b("2"), when(Condition::IfExists))
        .await
        .unwrap();
    assert_eq!(s.get("k").await.unwrap(), Some(b("2")));
    assert_eq!(tag(&s, "k").await, e);
}

#[tokio::test]
async fn an_etag_the_store_never_issued_is_invalid() {
    let h = Harness::new();
    let s = h.instance("a");
    // On an empty store, before any etag was issued.
    let err = s
        .set_with("k", b("x"), if_match("ffffffffffffffff"))
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::InvalidEtag(_)), "{err:?}");
    assert!(!s.exists("k").await.unwrap());

    let real = s.set("k", b("v")).await.unwrap();
    let bogus = [
        "ffffffffffffffff".to_string(),
        "garbage".to_string(),
        String::new(),
        " ".to_string(),
        format!("{real}0"),
        format!(" {real}"),
        "0000000000000000000000000000".to_string(),
        "zzzzzzzzzzzzzzzz".to_string(),
    ];
    for etag in &bogus {
        assert_ne!(etag, &real);
        let err = s.set_with("k", b("x"), if_match(etag)).await.unwrap_err();
        assert!(
            matches!(err, StateError::InvalidEtag(_)),
            "set if-match {etag:?}: {err:?}"
        );
        let err = s
            .delete_if("k", Condition::IfMatch(etag.clone()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StateError::InvalidEtag(_)),
            "delete if-match {etag:?}: {err:?}"
        );
        // On a missing key too.
        let err = s
            .set_with("missing", b("x"), if_match(etag))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StateError::InvalidEtag(_)),
            "missing key, if-match {etag:?}: {err:?}"
        );
        // In a transaction: the op that carries it is reported.
        let err = s
            .commit(vec![
                Op::new("t", set_op("1")),
                Op::new("k", OpKind::Check).when(Condition::IfMatch(etag.clone())),
            ])
            .await
            .unwrap_err();
        assert!(
            matches!(err, StateError::Aborted { index: 1, .. }),
            "{err:?}"
        );
        assert!(
            matches!(err.root(), StateError::InvalidEtag(_)),
            "commit check {etag:?}: {err:?}"
        );
    }
    assert_eq!(s.get("k").await.unwrap(), Some(b("v")));
    assert_eq!(tag(&s, "k").await, real);
    assert!(!s.exists("missing").await.unwrap());
    assert!(!s.exists("t").await.unwrap());
}

#[tokio::test]
async fn a_recreated_key_never_gets_an_old_etag() {
    let h = Harness::new();
    let s = h.instance("a");
    let mut all: Vec<String> = Vec::new();
    for round in 0..20 {
        all.push(s.set("k", b(&format!("{round}"))).await.unwrap());
        all.push(s.set("k", b(&format!("{round}b"))).await.unwrap());
        assert!(s.delete("k").await.unwrap());
        s.map_set("k", fv(&[("f", "1")])).await.unwrap();
        all.push(tag(&s, "k").await);
        assert_eq!(s.map_delete("k", &["f"]).await.unwrap(), 1);
        assert!(!s.exists("k").await.unwrap(), "an emptied map is deleted");
        s.list_append("k", bs(&["x"])).await.unwrap();
        all.push(tag(&s, "k").await);
        assert_eq!(s.list_start_pop("k", 1).await.unwrap(), bs(&["x"]));
        assert!(!s.exists("k").await.unwrap(), "an emptied list is deleted");
        s.increment("k", 1).await.unwrap();
        all.push(tag(&s, "k").await);
        assert!(s.expire("k", 0, ExpireMode::Always).await.unwrap());
        assert!(!s.exists("k").await.unwrap());
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "an etag was issued twice: {all:?}");

    // None of the old etags matches the key as it is now.
    let now = s.set("k", b("final")).await.unwrap();
    assert!(!all.contains(&now));
    for old in &all {
        let err = s.set_with("k", b("x"), if_match(old)).await.unwrap_err();
        assert!(matches!(err, StateError::EtagMismatch), "{old}: {err:?}");
    }
    assert_eq!(s.get("k").await.unwrap(), Some(b("final")));
}

#[tokio::test]
async fn check_in_a_commit_asserts_without_writing() {
    let h = Harness::new();
    let s = h.instance("a");
    let stale = s.set("k", b("1")).await.unwrap();
    let current = s.set("k", b("2")).await.unwrap();

    let results = s
        .commit(vec![
            Op::new("k", OpKind::Check).when(Condition::IfMatch(current.clone())),
            Op::new("out", set_op("done")),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].output, OpOutput::None);
    assert_eq!(results[0].etag.as_deref(), Some(current.as_str()));
    assert_eq!(tag(&s, "k").await, current, "check wrote the key");
    assert_eq!(s.get("k").await.unwrap(), Some(b("2")));
    assert_eq!(s.get("out").await.unwrap(), Some(b("done")));

    // A stale check aborts everything, wherever it is.
    let err = s
        .commit(vec![
            Op::new("out", set_op("again")),
            Op::new("k", OpKind::Check).when(Condition::IfMatch(stale.clone())),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StateError::Aborted { index: 1, .. }),
        "{err:?}"
    );
    assert!(matches!(err.root(), StateError::EtagMismatch), "{err:?}");
    assert_eq!(s.get("out").await.unwrap(), Some(b("done")));

    let err = s
        .commit(vec![
            Op::new("new", set_op("x")),
            Op::new("k", OpKind::Check).when(Condition::IfAbsent),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StateError::Aborted { index: 1, .. }),
        "{err:?}"
    );
    assert!(matches!(err.root(), StateError::AlreadyExists), "{err:?}");
    assert!(!s.exists("new").await.unwrap());

    let err = s
        .commit(vec![
            Op::new("new", set_op("x")),
            Op::new("nope", OpKind::Check).when(Condition::IfExists),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StateError::Aborted { index: 1, .. }),
        "{err:?}"
    );
    assert!(matches!(err.root(), StateError::NotFound), "{err:?}");
    assert!(!s.exists("new").await.unwrap());
    assert!(!s.exists("nope").await.unwrap(), "check created a key");

    // Passing checks of absence and presence.
    let results = s
        .commit(vec![
            Op::new("nope", OpKind::Check).when(Condition::IfAbsent),
            Op::new("k", OpKind::Check).when(Condition::IfExists),
            Op::new("new", set_op("y")),
        ])
        .await
        .unwrap();
    assert_eq!(results[0].etag, None);
    assert!(!s.exists("nope").await.unwrap());
    assert_eq!(s.get("new").await.unwrap(), Some(b("y")));
}

#[tokio::test]
async fn read_modify_write_with_checks_detects_interference() {
    let h = Harness::new();
    let s = h.instance("a");
    s.set("balance", b("100")).await.unwrap();
    s.map_set("ledger", fv(&[("count", "0")])).await.unwrap();
    let eb = tag(&s, "balance").await;
    let el = tag(&s, "ledger").await;
    // Someone else writes the ledger between our read and our commit.
    s.map_increment("ledger", "count", 1).await.unwrap();
    let err = s
        .commit(vec![
            Op::new("balance", OpKind::Check).when(Condition::IfMatch(eb.clone())),
            Op::new("ledger", OpKind::Check).when(Condition::IfMatch(el)),
            Op::new("balance", set_op("90")),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StateError::Aborted { index: 1, .. }),
        "{err:?}"
    );
    assert!(matches!(err.root(), StateError::EtagMismatch));
    assert_eq!(s.get("balance").await.unwrap(), Some(b("100")));
    // Re-read and retry.
    let el = tag(&s, "ledger").await;
    s.commit(vec![
        Op::new("balance", OpKind::Check).when(Condition::IfMatch(eb)),
        Op::new("ledger", OpKind::Check).when(Condition::IfMatch(el)),
        Op::new("balance", set_op("90")),
    ])
    .await
    .unwrap();
    assert_eq!(s.get("balance").await.unwrap(), Some(b("90")));
}

#[tokio::test]
async fn get_entry_returns_value_etag_and_ttl() {
    let h = Harness::new();
    let s = h.instance("a");
    assert_eq!(s.get_entry("k").await.unwrap(), None);
    let e = s.set("k", b("v")).await.unwrap();
    assert_eq!(
        s.get_entry("k").await.unwrap(),
        Some(Entry {
            value: b("v"),
            etag: e.clone(),
            ttl: None,
            expires_at_ms: None,
        })
    );
    let e2 = s
        .set_with(
            "k",
            b("w"),
            SetOptions {
                ttl: Some(Duration::from_secs(30)),
                condition: Some(Condition::IfMatch(e)),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        s.get_entry("k").await.unwrap(),
        Some(Entry {
            value: b("w"),
            etag: e2.clone(),
            ttl: Some(Duration::from_secs(30)),
            expires_at_ms: Some(T0 + 30_000),
        })
    );
    h.advance(Duration::from_secs(10));
    let entry = s.get_entry("k").await.unwrap().unwrap();
    assert_eq!(entry.ttl, Some(Duration::from_secs(20)));
    assert_eq!(
        entry.expires_at_ms,
        Some(T0 + 30_000),
        "time passing moves no expiry"
    );
    assert_eq!(entry.etag, e2, "time passing is not a write");
    let info = s.info("k").await.unwrap().unwrap();
    assert_eq!(info.kind, KeyKind::Value);
    assert_eq!(info.etag, e2);
    assert_eq!(info.ttl, Some(Duration::from_secs(20)));
    // The etag from get_entry is usable as a condition.
    s.set_with("k", b("z"), if_match(&entry.etag))
        .await
        .unwrap();
    h.advance(Duration::from_secs(3600));
    assert_eq!(
        s.get_entry("k").await.unwrap().map(|e| e.ttl),
        Some(None),
        "plain set cleared the TTL"
    );
}

#[tokio::test]
async fn etags_are_per_key_not_per_scope_content() {
    // Two keys holding the same bytes have different etags; the same key in
    // two scopes has different etags.
    let h = Harness::new();
    let a = h.instance("a");
    let bb = h.instance("b");
    let e1 = a.set("x", b("same")).await.unwrap();
    let e2 = a.set("y", b("same")).await.unwrap();
    let e3 = bb.set("x", b("same")).await.unwrap();
    assert_ne!(e1, e2);
    assert_ne!(e1, e3);
    // The etag of instance a's key does not match instance b's key.
    let err = bb.set_with("x", b("new"), if_match(&e1)).await.unwrap_err();
    assert!(matches!(err, StateError::EtagMismatch), "{err:?}");
    assert_eq!(bb.get("x").await.unwrap(), Some(b("same")));
}
