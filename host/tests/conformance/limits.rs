//! Limits (SPEC.md "Limits"): key, field and value sizes, ops per request,
//! and storage quotas per instance (with its sessions) and per account. Each
//! is a typed error, writes nothing, and leaves other owners unaffected;
//! deleting data frees quota.

use std::time::Duration;

use wasm_state::store::query::Query;
use wasm_state::store::{
    ExpireMode, KeyListing, Limits, Op, OpKind, ScopeHandle, SetOptions, StateError,
};

use super::*;

async fn all_keys(s: &ScopeHandle) -> Vec<String> {
    s.keys(KeyListing::default()).await.unwrap().keys
}

fn set(key: &str, value: Vec<u8>) -> Op {
    Op::new(key, OpKind::Set { value, ttl: None })
}

fn quota(bytes: u64) -> Harness {
    Harness::with_limits(Limits {
        instance_quota_bytes: bytes,
        ..Limits::default()
    })
}

fn is_quota(e: &StateError, limit: u64) -> bool {
    matches!(e.root(), StateError::QuotaExceeded { would_use, quota, .. }
        if *quota == limit && *would_use > limit)
}

#[tokio::test]
async fn a_key_over_2048_bytes_is_refused() {
    let h = Harness::new();
    let s = h.instance("a");
    let max = "k".repeat(2048);
    let over = "k".repeat(2049);
    // 683 three-byte characters: 683 chars but 2049 bytes.
    let over_utf8 = "€".repeat(683);
    s.set(&max, b("ok")).await.unwrap();
    assert_eq!(s.get(&max).await.unwrap(), Some(b("ok")));
    for key in [&over, &over_utf8] {
        let len = key.len();
        let check = |e: StateError, what: &str| {
            assert!(
                matches!(e.root(), StateError::KeyTooLarge { len: l, max: 2048 } if *l == len),
                "{what}: {e:?}"
            );
        };
        check(s.set(key, b("x")).await.unwrap_err(), "set");
        check(s.increment(key, 1).await.unwrap_err(), "increment");
        check(
            s.map_set(key, fv(&[("f", "1")])).await.unwrap_err(),
            "map_set",
        );
        check(
            s.list_append(key, bs(&["x"])).await.unwrap_err(),
            "list_append",
        );
        check(
            s.list_prepend(key, bs(&["x"])).await.unwrap_err(),
            "list_prepend",
        );
        check(
            s.map_increment(key, "f", 1).await.unwrap_err(),
            "map_increment",
        );
        check(
            s.set_many(vec![("fine".into(), b("1")), (key.clone(), b("2"))])
                .await
                .unwrap_err(),
            "set_many",
        );
        let err = s
            .commit(vec![set("fine", b("1")), set(key, b("2"))])
            .await
            .unwrap_err();
        assert!(
            matches!(err, StateError::Aborted { index: 1, .. }),
            "{err:?}"
        );
        check(err, "commit");
    }
    assert_eq!(all_keys(&s).await, vec![max.clone()]);
}

#[tokio::test]
async fn a_configured_key_limit_and_field_limit_apply() {
    let h = Harness::with_limits(Limits {
        max_key_bytes: 16,
        max_field_bytes: 8,
        ..Limits::default()
    });
    let s = h.instance("a");
    s.set(&"k".repeat(16), b("ok")).await.unwrap();
    let err = s.set(&"k".repeat(17), b("x")).await.unwrap_err();
    assert!(
        matches!(err, StateError::KeyTooLarge { len: 17, max: 16 }),
        "{err:?}"
    );
    s.map_set("m", fv(&[("ffffffff", "1")])).await.unwrap();
    let err = s
        .map_set("m", fv(&[("ok", "2"), ("fffffffff", "1")]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StateError::KeyTooLarge { len: 9, max: 8 }),
        "{err:?}"
    );
    let err = s.map_increment("m", "fffffffff", 1).await.unwrap_err();
    assert!(
        matches!(err, StateError::KeyTooLarge { len: 9, max: 8 }),
        "{err:?}"
    );
    assert_eq!(s.map_keys("m").await.unwrap(), vec!["ffffffff"]);
    assert_eq!(all_keys(&s).await, vec!["k".repeat(16), "m".to_string()]);
}

#[tokio::test]
async fn a_value_over_1_mib_is_refused() {
    let h = Harness::new();
    let s = h.instance("a");
    let max = vec![b'v'; 1 << 20];
    let over = vec![b'v'; (1 << 20) + 1];
    s.set("k", max.clone()).await.unwrap();
    assert_eq!(s.get("k").await.unwrap(), Some(max.clone()));
    let err = s.set("k", over.clone()).await.unwrap_err();
    assert!(
        matches!(err, StateError::ValueTooLarge { len, max } if len == (1 << 20) + 1 && max == 1 << 20),
        "{err:?}"
    );
    assert_eq!(s.get("k").await.unwrap(), Some(max), "the old value stays");
    let err = s.set("new", over).await.unwrap_err();
    assert!(matches!(err, StateError::ValueTooLarge { .. }), "{err:?}");
    assert!(!s.exists("new").await.unwrap());
}

#[tokio::test]
async fn a_configured_value_limit_applies_to_values_fields_and_items() {
    let h = Harness::with_limits(Limits {
        max_value_bytes: 64,
        ..Limits::default()
    });
    let s = h.instance("a");
    let ok = vec![b'x'; 64];
    let big = vec![b'x'; 65];
    let too_large =
        |e: &StateError| matches!(e.root(), StateError::ValueTooLarge { len: 65, max: 64 });

    s.set("v", ok.clone()).await.unwrap();
    s.map_set("m", vec![("f".into(), ok.clone())])
        .await
        .unwrap();
    s.list_append("l", vec![ok.clone(), b("pivot")])
        .await
        .unwrap();
    let before = (
        s.info("v").await.unwrap(),
        s.info("m").await.unwrap(),
        s.info("l").await.unwrap(),
    );

    let errors = vec![
        ("set", s.set("v", big.clone()).await.unwrap_err()),
        (
            "set_with ttl",
            s.set_with(
                "v",
                big.clone(),
                SetOptions {
                    ttl: Some(Duration::from_secs(5)),
                    condition: None,
                },
            )
            .await
            .unwrap_err(),
        ),
        (
            "map_set",
            s.map_set("m", vec![("g".into(), b("1")), ("h".into(), big.clone())])
                .await
                .unwrap_err(),
        ),
        (
            "list_append",
            s.list_append("l", vec![b("1"), big.clone()])
                .await
                .unwrap_err(),
        ),
        (
            "list_prepend",
            s.list_prepend("l", vec![big.clone()]).await.unwrap_err(),
        ),
        (
            "list_set",
            s.list_set("l", 0, big.clone()).await.unwrap_err(),
        ),
        (
            "list_insert",
            s.list_insert("l", true, b("pivot"), big.clone())
                .await
                .unwrap_err(),
        ),
        (
            "new list",
            s.list_append("l2", vec![big.clone()]).await.unwrap_err(),
        ),
        (
            "new map",
            s.map_set("m2", vec![("f".into(), big.clone())])
                .await
                .unwrap_err(),
        ),
    ];
    for (what, e) in errors {
        assert!(too_large(&e), "{what}: {e:?}");
    }
    let after = (
        s.info("v").await.unwrap(),
        s.info("m").await.unwrap(),
        s.info("l").await.unwrap(),
    );
    assert_eq!(before, after, "a refused write changed a key");
    assert_eq!(s.get("v").await.unwrap(), Some(ok.clone()));
    assert_eq!(
        s.map_get_all("m").await.unwrap(),
        vec![("f".into(), ok.clone())]
    );
    assert_eq!(
        s.list_range("l", 0, -1).await.unwrap(),
        vec![ok, b("pivot")]
    );
    assert_eq!(all_keys(&s).await, vec!["l", "m", "v"]);
}

#[tokio::test]
async fn too_many_operations_is_refused_whole() {
    let h = Harness::with_limits(Limits {
        max_ops: 4,
        ..Limits::default()
    });
    let s = h.instance("a");
    let ops: Vec<Op> = (0..5).map(|i| set(&format!("k{i}"), b("x"))).collect();
    let err = s.commit(ops).await.unwrap_err();
    assert!(
        matches!(err, StateError::TooManyOperations { count: 5, max: 4 }),
        "{err:?}"
    );
    let err = s
        .set_many((0..5).map(|i| (format!("k{i}"), b("x"))).collect())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.root(),
            StateError::TooManyOperations { count: 5, max: 4 }
        ),
        "{err:?}"
    );
    assert!(all_keys(&s).await.is_empty());
    // Another instance is not affected by A's refused request.
    h.instance("b")
        .commit((0..4).map(|i| set(&format!("k{i}"), b("x"))).collect())
        .await
        .unwrap();
    assert_eq!(all_keys(&h.instance("b")).await.len(), 4);
}

#[tokio::test]
async fn the_instance_quota_is_enforced_and_isolated() {
    const Q: u64 = 1000;
    let h = quota(Q);
    let a = h.instance("qa");
    let bb = h.instance("qb");
    a.set("big", vec![b'x'; 600]).await.unwrap();
    let used = h.store.instance_usage("qa").await.unwrap();
    assert!((600..=Q).contains(&used), "usage {used}");

    let err = a.set("big2", vec![b'x'; 600]).await.unwrap_err();
    assert!(is_quota(&err, Q), "{err:?}");
    match &err {
        StateError::QuotaExceeded { owner, .. } => {
            assert!(owner.contains("qa"), "the error names the owner: {owner}")
        }
        other => panic!("{other:?}"),
    }
    assert!(!a.exists("big2").await.unwrap(), "nothing written");
    assert_eq!(h.store.instance_usage("qa").await.unwrap(), used);

    // Every kind of write is held to it.
    let big_items = vec![vec![b'y'; 300], vec![b'y'; 300]];
    let refused = vec![
        (
            "increment",
            a.increment(&"n".repeat(700), 1).await.unwrap_err(),
        ),
        (
            "map_set",
            a.map_set("m", vec![("f".into(), vec![b'y'; 600])])
                .await
                .unwrap_err(),
        ),
        (
            "list_append",
            a.list_append("l", big_items.clone()).await.unwrap_err(),
        ),
        (
            "set_many",
            a.set_many(vec![
                ("s1".into(), vec![b'y'; 300]),
                ("s2".into(), vec![b'y'; 300]),
            ])
            .await
            .unwrap_err(),
        ),
        (
            "commit",
            a.commit(vec![set("c1", vec![b'y'; 300]), set("c2", vec![b'y'; 300])])
                .await
                .unwrap_err(),
        ),
    ];
    for (what, e) in refused {
        assert!(is_quota(&e, Q), "{what}: {e:?}");
    }
    assert_eq!(all_keys(&a).await, vec!["big"]);
    assert_eq!(h.store.instance_usage("qa").await.unwrap(), used);

    // Instance B has its own quota.
    bb.set("big", vec![b'x'; 600]).await.unwrap();
    assert_eq!(bb.get("big").await.unwrap(), Some(vec![b'x'; 600]));
    assert_eq!(h.store.instance_usage("qa").await.unwrap(), used);

    // Overwriting counts the new size, not the sum.
    a.set("big", vec![b'z'; 700]).await.unwrap();
    assert!(h.store.instance_usage("qa").await.unwrap() > used);
    a.set("big", vec![b'z'; 100]).await.unwrap();
    assert!(h.store.instance_usage("qa").await.unwrap() < used);
    a.set("big2", vec![b'x'; 600]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_at_its_quota_does_not_slow_others_in_a_group_commit() {
    const Q: u64 = 1000;
    let h = quota(Q);
    h.instance("full")
        .set("big", vec![b'x'; 900])
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..100usize {
        let (full, ok) = (h.instance("full"), h.instance(&format!("ok{}", i % 10)));
        tasks.push(tokio::spawn(async move {
            let e = full.set(&format!("k{i}"), vec![b'y'; 200]).await;
            let o = ok.set(&format!("k{i}"), vec![b'y'; 50]).await;
            (e, o)
        }));
    }
    for t in tasks {
        let (e, o) = t.await.unwrap();
        assert!(is_quota(&e.unwrap_err(), Q));
        o.unwrap();
    }
    assert_eq!(all_keys(&h.instance("full")).await, vec!["big"]);
    for j in 0..10 {
        assert_eq!(all_keys(&h.instance(&format!("ok{j}"))).await.len(), 10);
    }
}

#[tokio::test]
async fn a_transaction_is_held_to_its_net_effect() {
    const Q: u64 = 1000;
    let h = quota(Q);
    let a = h.instance("qa");
    a.set("old", vec![b'x'; 600]).await.unwrap();
    // Dropping one big value and writing another fits.
    a.commit(vec![
        Op::new("old", OpKind::Delete),
        set("new", vec![b'x'; 600]),
    ])
    .await
    .unwrap();
    assert_eq!(all_keys(&a).await, vec!["new"]);
    // Writing first and deleting after also fits: only the end state counts.
    a.commit(vec![
        set("newer", vec![b'x'; 600]),
        Op::new("new", OpKind::Delete),
    ])
    .await
    .unwrap();
    assert_eq!(all_keys(&a).await, vec!["newer"]);
}

#[tokio::test]
async fn sessions_count_towards_their_instance_quota() {
    const Q: u64 = 1000;
    let h = quota(Q);
    let a = h.instance("qa");
    a.set("big", vec![b'x'; 600]).await.unwrap();
    let s = h.store.create_session("qa", None).await.unwrap();
    let sh = h.store.session("qa", &s.id).await.unwrap();
    let err = sh.set("big", vec![b'x'; 600]).await.unwrap_err();
    assert!(is_quota(&err, Q), "{err:?}");
    assert!(!sh.exists("big").await.unwrap());
    // Another instance's session is unaffected.
    let other = h.store.create_session("qb", None).await.unwrap();
    let oh = h.store.session("qb", &other.id).await.unwrap();
    oh.set("big", vec![b'x'; 600]).await.unwrap();

    // Session data fills the instance too, and ending it frees the space.
    assert!(a.delete("big").await.unwrap());
    sh.set("big", vec![b'x'; 600]).await.unwrap();
    let err = a.set("big", vec![b'x'; 600]).await.unwrap_err();
    assert!(is_quota(&err, Q), "{err:?}");
    assert!(h.store.end_session("qa", &s.id).await.unwrap());
    a.set("big", vec![b'x'; 600]).await.unwrap();
}

#[tokio::test]
async fn deleting_data_frees_quota() {
    const Q: u64 = 3700;
    let h = quota(Q);
    let a = h.instance("qa");
    assert_eq!(h.store.instance_usage("qa").await.unwrap(), 0);
    a.set("v", vec![b'x'; 500]).await.unwrap();
    let after_v = h.store.instance_usage("qa").await.unwrap();
    a.map_set(
        "m",
        vec![("f".into(), vec![b'x'; 500]), ("g".into(), vec![b'x'; 500])],
    )
    .await
    .unwrap();
    let after_m = h.store.instance_usage("qa").await.unwrap();
    a.list_append("l", vec![vec![b'x'; 500], vec![b'x'; 500]])
        .await
        .unwrap();
    a.increment("n", 12345).await.unwrap();
    a.set("p/1", vec![b'x'; 300]).await.unwrap();
    a.set("p/2", vec![b'x'; 300]).await.unwrap();
    a.set_with(
        "e",
        vec![b'x'; 100],
        SetOptions {
            ttl: Some(Duration::from_secs(100)),
            condition: None,
        },
    )
    .await
    .unwrap();
    let full = h.store.instance_usage("qa").await.unwrap();
    // At least the bytes stored (values, fields, items).
    assert!((3205..=Q).contains(&full), "usage {full}");
    let err = a.set("more", vec![b'x'; 500]).await.unwrap_err();
    assert!(is_quota(&err, Q), "{err:?}");

    // Each kind of delete gives space back.
    let mut last = full;
    let mut shrank = |what: &str, now: u64| {
        assert!(now < last, "{what} freed nothing ({now} >= {last})");
        last = now;
    };
    assert_eq!(a.list_start_pop("l", 1).await.unwrap().len(), 1);
    shrank("list pop", h.store.instance_usage("qa").await.unwrap());
    assert_eq!(a.map_delete("m", &["g"]).await.unwrap(), 1);
    shrank("map_delete", h.store.instance_usage("qa").await.unwrap());
    assert_eq!(a.delete_prefix("p/").await.unwrap(), 2);
    shrank("delete_prefix", h.store.instance_usage("qa").await.unwrap());
    assert!(a.expire("e", 0, ExpireMode::Always).await.unwrap());
    shrank("expire 0", h.store.instance_usage("qa").await.unwrap());
    a.set("more", vec![b'x'; 500]).await.unwrap();
    assert!(a.delete("more").await.unwrap());

    assert_eq!(a.delete_many(&["l", "n"]).await.unwrap(), 2);
    assert_eq!(a.map_delete("m", &["f"]).await.unwrap(), 1);
    assert!(!a.exists("m").await.unwrap());
    assert_eq!(h.store.instance_usage("qa").await.unwrap(), after_v);
    assert!(a.delete("v").await.unwrap());
    assert_eq!(
        h.store.instance_usage("qa").await.unwrap(),
        0,
        "an empty instance uses nothing"
    );
    assert!(after_m > after_v);
}

#[tokio::test]
async fn the_quota_counts_map_fields_and_list_items() {
    const Q: u64 = 3000;
    let h = quota(Q);
    let a = h.instance("qa");
    let hundred = |tag: &str, n: usize| -> Vec<(String, Vec<u8>)> {
        (0..n)
            .map(|i| (format!("{tag}{i:02}"), vec![b'x'; 100]))
            .collect()
    };
    assert_eq!(a.map_set("m", hundred("f", 10)).await.unwrap(), 10);
    let after_map = h.store.instance_usage("qa").await.unwrap();
    assert!(after_map >= 1000, "map fields count: {after_map}");
    // Each field adds at least its bytes.
    a.map_set("m", hundred("g", 1)).await.unwrap();
    assert!(h.store.instance_usage("qa").await.unwrap() >= after_map + 100);

    let err = a.map_set("m", hundred("h", 20)).await.unwrap_err();
    assert!(is_quota(&err, Q), "{err:?}");
    assert_eq!(a.map_length("m").await.unwrap(), 11);

    let items = |n: usize| -> Vec<Vec<u8>> { (0..n).map(|_| vec![b'y'; 100]).collect() };
    let before_list = h.store.instance_usage("qa").await.unwrap();
    assert_eq!(a.list_append("l", items(10)).await.unwrap(), 10);
    let after_list = h.store.instance_usage("qa").await.unwrap();
    assert!(after_list >= before_list + 1000, "list items count");
    let err = a.list_prepend("l", items(10)).await.unwrap_err();
    assert!(is_quota(&err, Q), "{err:?}");
    assert_eq!(a.list_length("l").await.unwrap(), 10);
    let err = a
        .list_insert("l", true, vec![b'y'; 100], vec![b'z'; 900])
        .await
        .unwrap_err();
    assert!(is_quota(&err, Q), "{err:?}");
    let err = a.map_increment("m", &"k".repeat(900), 1).await.unwrap_err();
    assert!(is_quota(&err, Q), "{err:?}");
    assert_eq!(a.map_length("m").await.unwrap(), 11);
    assert_eq!(h.store.instance_usage("qa").await.unwrap(), after_list);

    // Freeing the map makes room for list items.
    assert!(a.delete("m").await.unwrap());
    assert_eq!(a.list_prepend("l", items(10)).await.unwrap(), 20);
}

#[tokio::test]
async fn the_account_quota_is_enforced_and_isolated() {
    const Q: u64 = 1000;
    let h = Harness::with_limits(Limits {
        account_quota_bytes: Q,
        ..Limits::default()
    });
    let acme = h.account("acme");
    acme.set("big", vec![b'x'; 600]).await.unwrap();
    let err = acme.set("big2", vec![b'x'; 600]).await.unwrap_err();
    assert!(is_quota(&err, Q), "{err:?}");
    match &err {
        StateError::QuotaExceeded { owner, .. } => {
            assert!(owner.contains("acme"), "the error names the owner: {owner}")
        }
        other => panic!("{other:?}"),
    }
    let err = acme
        .map_set("m", vec![("f".into(), vec![b'x'; 600])])
        .await
        .unwrap_err();
    assert!(is_quota(&err, Q), "{err:?}");
    let err = acme
        .list_append("l", vec![vec![b'x'; 600]])
        .await
        .unwrap_err();
    assert!(is_quota(&err, Q), "{err:?}");
    assert_eq!(all_keys(&acme).await, vec!["big"]);

    // Other accounts and instances are unaffected.
    h.account("other")
        .set("big", vec![b'x'; 600])
        .await
        .unwrap();
    let inst = h.instance("acme");
    inst.set("big", vec![b'x'; 600]).await.unwrap();
    inst.set("big2", vec![b'x'; 600]).await.unwrap();

    // Deleting frees the account's space.
    assert!(acme.delete("big").await.unwrap());
    acme.set("big2", vec![b'x'; 600]).await.unwrap();
    assert_eq!(all_keys(&acme).await, vec!["big2"]);
}

#[tokio::test]
async fn an_instance_has_at_most_max_sessions() {
    let h = Harness::with_limits(Limits {
        max_sessions: 3,
        ..Limits::default()
    });
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(h.store.create_session("qs", None).await.unwrap().id);
    }
    let err = h.store.create_session("qs", None).await.unwrap_err();
    assert!(
        matches!(&err, StateError::TooManySessions { instance, max: 3 } if instance == "qs"),
        "{err:?}"
    );
    assert_eq!(err.code(), "quota-exceeded");
    assert_eq!(h.store.list_sessions("qs").await.unwrap().len(), 3);
    // Another instance has its own limit.
    h.store.create_session("qt", None).await.unwrap();
    // Extending a session is no new session.
    h.store
        .extend_session("qs", &ids[0], Duration::from_secs(60))
        .await
        .unwrap();
    // Ending one makes room for one.
    assert!(h.store.end_session("qs", &ids[0]).await.unwrap());
    ids[0] = h.store.create_session("qs", None).await.unwrap().id;
    assert!(h.store.create_session("qs", None).await.is_err());
    // Expired sessions do not count, swept or not: at the limit a create
    // frees one first. At its last millisecond a session still counts.
    let short = Duration::from_secs(1);
    for id in &ids {
        h.store.extend_session("qs", id, short).await.unwrap();
    }
    h.clock.advance(short);
    assert!(h.store.create_session("qs", None).await.is_err());
    h.clock.advance(Duration::from_millis(1));
    for _ in 0..3 {
        h.store.create_session("qs", None).await.unwrap();
    }
    assert!(h.store.create_session("qs", None).await.is_err());
    assert_eq!(h.store.session_count("qs").await.unwrap(), 3);
    // Each create freed an expired one: the sweeper finds none left.
    assert_eq!(h.store.sweep().await.unwrap().sessions, 0);
    assert!(h.store.create_session("qs", None).await.is_err());
    assert_eq!(h.store.list_sessions("qs").await.unwrap().len(), 3);
    // Destroying the instance resets it.
    h.store.destroy_instance("qs").await.unwrap();
    for _ in 0..3 {
        h.store.create_session("qs", None).await.unwrap();
    }
    // The count survives a restart.
    let h = h.reopen();
    assert!(h.store.create_session("qs", None).await.is_err());
}

/// One reply holds at most `max_reply_bytes` (fields and values): a whole
/// read over it is `reply-too-large` (a guest's `value-too-large`), pops
/// over it — counted together for a transaction — change nothing, and a
/// map-scan page stops short of it instead. At the limit all works.
#[tokio::test]
async fn a_reply_over_the_reply_limit_is_refused_and_changes_nothing() {
    let h = Harness::with_limits(Limits {
        max_reply_bytes: 1000,
        ..Limits::default()
    });
    let s = h.instance("a");
    let is_over = |e: &StateError| matches!(e.root(), StateError::ReplyTooLarge { max: 1000 });

    // Ten items of 100 bytes: exactly the limit.
    let items: Vec<Vec<u8>> = (0..10u8).map(|i| vec![b'a' + i; 100]).collect();
    s.list_append("l", items.clone()).await.unwrap();
    assert_eq!(s.list_range("l", 0, -1).await.unwrap(), items);
    s.list_append("l", vec![b"z".to_vec()]).await.unwrap();
    let e = s.list_range("l", 0, -1).await.unwrap_err();
    assert!(is_over(&e), "{e:?}");
    assert_eq!(e.code(), "value-too-large");
    assert!(e.to_string().contains("1000 bytes"), "{e}");
    assert_eq!(s.list_range("l", 1, -1).await.unwrap().len(), 10);
    // A page halves its count until it fits: 16 items are over, 8 fit.
    assert_eq!(s.list_page("l", 0, 1000).await.unwrap(), items[..8]);
    assert_eq!(s.list_page("l", 8, 1000).await.unwrap().len(), 3);
    assert!(s.list_page("l", 11, 1000).await.unwrap().is_empty());

    // Pops over the limit change nothing, alone or together.
    let before = s.info("l").await.unwrap().unwrap().etag;
    let e = s.list_start_pop("l", 11).await.unwrap_err();
    assert!(is_over(&e), "{e:?}");
    let e = s
        .commit(vec![
            Op::new("l", OpKind::ListStartPop(6)),
            Op::new("l", OpKind::ListEndPop(5)),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(e, StateError::Aborted { index: 1, .. }) && is_over(&e),
        "{e:?}"
    );
    assert_eq!(s.info("l").await.unwrap().unwrap().etag, before);
    assert_eq!(s.list_length("l").await.unwrap(), 11);
    // Within it they work.
    assert_eq!(s.list_end_pop("l", 1).await.unwrap(), vec![b"z".to_vec()]);
    assert_eq!(s.list_start_pop("l", 10).await.unwrap(), items);

    // Maps count fields and values: ten fields of 2 + 98 bytes fit.
    let fields: Vec<(String, Vec<u8>)> =
        (0..10).map(|i| (format!("f{i}"), vec![b'v'; 98])).collect();
    s.map_set("m", fields.clone()).await.unwrap();
    assert_eq!(s.map_get_all("m").await.unwrap(), fields);
    s.map_set("m", vec![("g".into(), b"1".to_vec())])
        .await
        .unwrap();
    for e in [
        s.map_get_all("m").await.unwrap_err(),
        s.map_values("m").await.unwrap_err(),
        s.map_keys("m").await.unwrap_err(),
    ] {
        assert!(is_over(&e), "{e:?}");
    }
    // A scan's pages stop short of the limit and together hold every
    // field once; a field larger than the limit comes alone.
    s.map_set("m", vec![("f55".into(), vec![b'x'; 1500])])
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    let mut pages = Vec::new();
    loop {
        let page = s.map_scan("m", &cursor, None, 1000).await.unwrap();
        let bytes: usize = page.entries.iter().map(|(f, v)| f.len() + v.len()).sum();
        assert!(bytes <= 1000 || page.entries.len() == 1, "{bytes} bytes");
        pages.push(page.entries.len());
        seen.extend(page.entries.into_iter().map(|(f, _)| f));
        if page.cursor == "0" {
            break;
        }
        cursor = page.cursor;
    }
    let mut want: Vec<String> = (0..10).map(|i| format!("f{i}")).collect();
    want.push("f55".into());
    want.push("g".into());
    want.sort();
    assert_eq!(seen, want);
    // f0..f5 (600 bytes), then f55 alone (1503), then f6..f9 and g.
    assert_eq!(pages, vec![6, 1, 5]);

    // A query's pages stop short of the limit too, and together hold
    // every result once, in order.
    for i in 0..5 {
        let doc = format!(r#"{{"n":{i},"pad":"{}"}}"#, "x".repeat(300));
        s.set(&format!("q{i}"), doc.into_bytes()).await.unwrap();
    }
    let mut query =
        Query::from_json(br#"{"filter":{"GTE":{"n":0}},"sort":[{"key":"n"}]}"#).unwrap();
    let mut keys = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let page = s.query(&query).await.unwrap();
        let bytes: usize = page
            .results
            .iter()
            .map(|r| r.key.len() + r.value.len() + r.etag.len())
            .sum();
        assert!(bytes <= 1000, "{bytes} bytes");
        sizes.push(page.results.len());
        keys.extend(page.results.into_iter().map(|r| r.key));
        match page.token {
            Some(t) => query.token = Some(t),
            None => break,
        }
    }
    assert_eq!(keys, ["q0", "q1", "q2", "q3", "q4"]);
    assert!(sizes.len() > 1, "{sizes:?}");

    // A get-many (and the per-key get-entries) counts the values found:
    // 10 × 100 bytes fit, one byte more is over, and names that hold no
    // value count nothing.
    let names: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
    for n in &names {
        s.set(n, vec![b'v'; 100]).await.unwrap();
    }
    let mut asked: Vec<&str> = names.iter().map(String::as_str).collect();
    asked.extend(["nope", "m"]);
    let got = s.get_many(&asked).await.unwrap();
    assert_eq!(got.iter().flatten().count(), 10);
    assert_eq!(s.get_entries(names.clone()).await.unwrap().len(), 10);
    s.set("v0", vec![b'v'; 101]).await.unwrap();
    let e = s.get_many(&asked).await.unwrap_err();
    assert!(is_over(&e), "{e:?}");
    let e = s.get_entries(names.clone()).await.unwrap_err();
    assert!(is_over(&e), "{e:?}");
    // So does a map-get-many, by the sum of the values found: eleven
    // fields of 91 bytes, ten fit (910), eleven are over (1,001); a
    // missing field counts nothing.
    let fields: Vec<(String, Vec<u8>)> = (0..11)
        .map(|i| (format!("g{i:02}"), vec![b'w'; 91]))
        .collect();
    s.map_set("m2", fields.clone()).await.unwrap();
    let names: Vec<&str> = fields.iter().map(|(f, _)| f.as_str()).collect();
    let mut ten = names[..10].to_vec();
    ten.push("missing");
    assert_eq!(s.map_get_many("m2", &ten).await.unwrap().len(), 11);
    let e = s.map_get_many("m2", &names).await.unwrap_err();
    assert!(is_over(&e), "{e:?}");
    let e = s.map_get_many("m", &["f55", "f0"]).await.unwrap_err();
    assert!(is_over(&e), "{e:?}");
    assert_eq!(s.map_get("m", "f55").await.unwrap().unwrap().len(), 1500);
    // A single value is bounded by the value limit, not this one.
    s.set("big", vec![b'b'; 1500]).await.unwrap();
    assert_eq!(s.get("big").await.unwrap().unwrap().len(), 1500);
}
