//! TTL (SPEC.md "Value operations", Redis EXPIRE/SET/PERSIST/TTL): keys with
//! a TTL vanish at once when it passes (no sweep needed), SET clears a TTL,
//! EXPIRE honours NX/XX/GT/LT, seconds ≤ 0 delete, TTL covers whole maps and
//! lists, and the sweeper frees exactly what has expired.

use std::time::Duration;

use wasm_state::store::{
    Condition, ExpireMode, KeyListing, Op, OpKind, ScopeHandle, SetOptions, StateError, SweepStats,
};

use super::*;

fn ttl(secs: u64) -> SetOptions {
    SetOptions {
        ttl: Some(Duration::from_secs(secs)),
        condition: None,
    }
}

fn secs(n: u64) -> Option<Duration> {
    Some(Duration::from_secs(n))
}

async fn all_keys(s: &ScopeHandle) -> Vec<String> {
    s.keys(KeyListing::default()).await.unwrap().keys
}

fn not_found<T: std::fmt::Debug>(r: Result<T, StateError>) {
    match r {
        Err(StateError::NotFound) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn set_with_a_ttl_reports_and_counts_down() {
    let h = Harness::new();
    let s = h.instance("a");
    s.set_with("k", b("v"), ttl(10)).await.unwrap();
    assert_eq!(s.ttl("k").await.unwrap(), secs(10));
    h.advance(Duration::from_millis(2500));
    assert_eq!(s.ttl("k").await.unwrap(), Some(Duration::from_millis(7500)));
    assert_eq!(
        s.info("k").await.unwrap().unwrap().ttl,
        Some(Duration::from_millis(7500))
    );
    h.advance(Duration::from_millis(7499));
    assert_eq!(s.get("k").await.unwrap(), Some(b("v")));
    assert_eq!(s.ttl("k").await.unwrap(), Some(Duration::from_millis(1)));
    h.advance(Duration::from_millis(2));
    assert_eq!(s.get("k").await.unwrap(), None);
    not_found(s.ttl("k").await);

    // Millisecond TTLs are kept as given.
    s.set_with(
        "ms",
        b("v"),
        SetOptions {
            ttl: Some(Duration::from_millis(1500)),
            condition: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        s.ttl("ms").await.unwrap(),
        Some(Duration::from_millis(1500))
    );
}

#[tokio::test]
async fn a_zero_ttl_on_set_is_invalid_and_writes_nothing() {
    // Redis: SET k v EX 0 → "invalid expire time".
    let h = Harness::new();
    let s = h.instance("a");
    s.set("k", b("old")).await.unwrap();
    for key in ["k", "new"] {
        let err = s
            .set_with(
                key,
                b("x"),
                SetOptions {
                    ttl: Some(Duration::ZERO),
                    condition: None,
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StateError::InvalidArgument(_)), "{err:?}");
    }
    assert_eq!(s.get("k").await.unwrap(), Some(b("old")));
    assert_eq!(s.ttl("k").await.unwrap(), None);
    assert!(!s.exists("new").await.unwrap());
}

#[tokio::test]
async fn expired_keys_are_invisible_at_once() {
    let h = Harness::new();
    let s = h.instance("a");
    s.set("a", b("live")).await.unwrap();
    s.set_with("b", b("dies"), ttl(10)).await.unwrap();
    s.set("c", b("live")).await.unwrap();
    s.set_with("d", b("dies"), ttl(10)).await.unwrap();
    s.set("e", b("live")).await.unwrap();
    s.increment("n", 5).await.unwrap();
    s.expire("n", 10, ExpireMode::Always).await.unwrap();
    s.map_set("m", fv(&[("f", "1"), ("g", "2")])).await.unwrap();
    s.expire("m", 10, ExpireMode::Always).await.unwrap();
    s.list_append("l", bs(&["x", "y"])).await.unwrap();
    s.expire("l", 10, ExpireMode::Always).await.unwrap();
    h.advance(Duration::from_secs(11));

    // No sweep has run.
    for k in ["b", "d", "n", "m", "l"] {
        assert!(!s.exists(k).await.unwrap(), "{k}");
        assert_eq!(s.info(k).await.unwrap(), None, "{k}");
        not_found(s.ttl(k).await);
    }
    for k in ["b", "d", "n"] {
        assert_eq!(s.get(k).await.unwrap(), None, "{k}");
        assert_eq!(s.get_entry(k).await.unwrap(), None, "{k}");
    }
    assert_eq!(
        s.get_many(&["a", "b", "n"]).await.unwrap(),
        vec![Some(b("live")), None, None]
    );
    assert_eq!(all_keys(&s).await, vec!["a", "c", "e"]);
    assert_eq!(
        s.keys(KeyListing {
            reverse: true,
            ..KeyListing::default()
        })
        .await
        .unwrap()
        .keys,
        vec!["e", "c", "a"]
    );
    // Pages skip expired keys without coming up short or repeating.
    let p1 = s
        .keys(KeyListing {
            limit: Some(2),
            ..KeyListing::default()
        })
        .await
        .unwrap();
    assert_eq!(p1.keys, vec!["a", "c"]);
    let p2 = s
        .keys(KeyListing {
            limit: Some(2),
            cursor: p1.cursor.clone(),
            ..KeyListing::default()
        })
        .await
        .unwrap();
    assert_eq!(p2.keys, vec!["e"]);
    assert_eq!(p2.cursor, None);

    assert_eq!(s.map_get("m", "f").await.unwrap(), None);
    assert_eq!(
        s.map_get_many("m", &["f", "g"]).await.unwrap(),
        vec![None, None]
    );
    assert_eq!(s.map_get_all("m").await.unwrap(), vec![]);
    assert_eq!(s.map_keys("m").await.unwrap(), Vec::<String>::new());
    assert_eq!(s.map_values("m").await.unwrap(), Vec::<Vec<u8>>::new());
    assert!(!s.map_exists("m", "f").await.unwrap());
    assert_eq!(s.map_length("m").await.unwrap(), 0);
    let page = s.map_scan("m", "0", None, 10).await.unwrap();
    assert_eq!(page.cursor, "0");
    assert!(page.entries.is_empty());

    assert_eq!(
        s.list_range("l", 0, -1).await.unwrap(),
        Vec::<Vec<u8>>::new()
    );
    assert_eq!(s.list_length("l").await.unwrap(), 0);
    assert_eq!(s.list_index("l", 0).await.unwrap(), None);

    // Writes see it as absent too.
    assert!(!s.delete("b").await.unwrap(), "DEL of an expired key is 0");
    assert_eq!(s.delete_many(&["d", "a"]).await.unwrap(), 1);
    assert_eq!(
        s.list_start_pop("l", 1).await.unwrap(),
        Vec::<Vec<u8>>::new()
    );
    assert_eq!(s.map_delete("m", &["f"]).await.unwrap(), 0);
    assert!(!s.persist("n").await.unwrap());
    assert!(!s.expire("n", 100, ExpireMode::Always).await.unwrap());
    assert!(!s.exists("n").await.unwrap(), "expire revived a key");
    let err = s
        .set_with(
            "n",
            b("x"),
            SetOptions {
                ttl: None,
                condition: Some(Condition::IfExists),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::NotFound), "{err:?}");
    s.set_with(
        "n",
        b("first"),
        SetOptions {
            ttl: None,
            condition: Some(Condition::IfAbsent),
        },
    )
    .await
    .unwrap();
    assert_eq!(s.get("n").await.unwrap(), Some(b("first")));
    let err = s
        .commit(vec![Op::new("m", OpKind::Check).when(Condition::IfExists)])
        .await
        .unwrap_err();
    assert!(matches!(err.root(), StateError::NotFound), "{err:?}");
}

#[tokio::test]
async fn delete_prefix_counts_only_live_keys() {
    let h = Harness::new();
    let s = h.instance("a");
    s.set("p/1", b("x")).await.unwrap();
    s.set_with("p/2", b("x"), ttl(5)).await.unwrap();
    s.set_with("p/3", b("x"), ttl(5)).await.unwrap();
    s.set("q", b("x")).await.unwrap();
    h.advance(Duration::from_secs(6));
    assert_eq!(s.delete_prefix("p/").await.unwrap(), 1);
    assert_eq!(all_keys(&s).await, vec!["q"]);
}

#[tokio::test]
async fn set_clears_the_ttl_and_other_writes_keep_it() {
    let h = Harness::new();
    let s = h.instance("a");
    s.set_with("k", b("1"), ttl(10)).await.unwrap();
    s.set("k", b("2")).await.unwrap();
    assert_eq!(s.ttl("k").await.unwrap(), None);
    h.advance(Duration::from_secs(20));
    assert_eq!(s.get("k").await.unwrap(), Some(b("2")));

    // A new TTL replaces the old one.
    s.set_with("r", b("1"), ttl(10)).await.unwrap();
    s.set_with("r", b("2"), ttl(100)).await.unwrap();
    assert_eq!(s.ttl("r").await.unwrap(), secs(100));
    // SET over a map or list with a TTL clears it as well.
    s.map_set("m", fv(&[("f", "1")])).await.unwrap();
    s.expire("m", 10, ExpireMode::Always).await.unwrap();
    s.set("m", b("value now")).await.unwrap();
    assert_eq!(s.ttl("m").await.unwrap(), None);

    // INCRBY, HSET, RPUSH… keep the key's TTL (Redis).
    s.set_with("n", b("1"), ttl(10)).await.unwrap();
    assert_eq!(s.increment("n", 1).await.unwrap(), 2);
    assert_eq!(s.ttl("n").await.unwrap(), secs(10));
    s.map_set("h", fv(&[("f", "1")])).await.unwrap();
    s.expire("h", 10, ExpireMode::Always).await.unwrap();
    s.map_set("h", fv(&[("g", "2")])).await.unwrap();
    s.map_increment("h", "c", 1).await.unwrap();
    s.map_delete("h", &["f"]).await.unwrap();
    assert_eq!(s.ttl("h").await.unwrap(), secs(10));
    s.list_append("l", bs(&["a", "b", "c"])).await.unwrap();
    s.expire("l", 10, ExpireMode::Always).await.unwrap();
    s.list_prepend("l", bs(&["z"])).await.unwrap();
    s.list_set("l", 0, b("y")).await.unwrap();
    s.list_start_pop("l", 1).await.unwrap();
    s.list_trim("l", 0, 1).await.unwrap();
    s.list_insert("l", true, b("a"), b("0")).await.unwrap();
    s.list_remove("l", b("0"), 0).await.unwrap();
    assert_eq!(s.ttl("l").await.unwrap(), secs(10));

    h.advance(Duration::from_secs(11));
    for k in ["n", "h", "l"] {
        assert!(!s.exists(k).await.unwrap(), "{k} outlived its TTL");
    }
}

#[tokio::test]
async fn expire_modes_on_a_key_without_a_ttl() {
    // Redis: no TTL counts as infinite for GT/LT.
    let h = Harness::new();
    let s = h.instance("a");
    let cases = [
        (ExpireMode::Always, true),
        (ExpireMode::Nx, true),
        (ExpireMode::Xx, false),
        (ExpireMode::Gt, false),
        (ExpireMode::Lt, true),
    ];
    for (mode, applies) in cases {
        s.set("k", b("v")).await.unwrap();
        assert_eq!(s.expire("k", 50, mode).await.unwrap(), applies, "{mode:?}");
        let expected = if applies { secs(50) } else { None };
        assert_eq!(s.ttl("k").await.unwrap(), expected, "{mode:?}");
    }
}

#[tokio::test]
async fn expire_modes_on_a_key_with_a_ttl() {
    let h = Harness::new();
    let s = h.instance("a");
    // (mode, new seconds, applies, ttl after) with a current TTL of 100 s.
    let cases = [
        (ExpireMode::Always, 50, true, 50),
        (ExpireMode::Always, 500, true, 500),
        (ExpireMode::Nx, 50, false, 100),
        (ExpireMode::Xx, 50, true, 50),
        (ExpireMode::Xx, 500, true, 500),
        (ExpireMode::Gt, 50, false, 100),
        (ExpireMode::Gt, 100, false, 100),
        (ExpireMode::Gt, 101, true, 101),
        (ExpireMode::Lt, 500, false, 100),
        (ExpireMode::Lt, 100, false, 100),
        (ExpireMode::Lt, 99, true, 99),
    ];
    for (mode, seconds, applies, after) in cases {
        s.set_with("k", b("v"), ttl(100)).await.unwrap();
        assert_eq!(
            s.expire("k", seconds, mode).await.unwrap(),
            applies,
            "{mode:?} {seconds}"
        );
        assert_eq!(s.ttl("k").await.unwrap(), secs(after), "{mode:?} {seconds}");
        assert_eq!(s.get("k").await.unwrap(), Some(b("v")));
    }
    // The same rules on maps and lists.
    s.map_set("m", fv(&[("f", "1")])).await.unwrap();
    assert!(s.expire("m", 100, ExpireMode::Nx).await.unwrap());
    assert!(!s.expire("m", 100, ExpireMode::Nx).await.unwrap());
    assert!(s.expire("m", 200, ExpireMode::Gt).await.unwrap());
    assert_eq!(s.ttl("m").await.unwrap(), secs(200));
    s.list_append("l", bs(&["x"])).await.unwrap();
    assert!(!s.expire("l", 100, ExpireMode::Xx).await.unwrap());
    assert!(s.expire("l", 100, ExpireMode::Lt).await.unwrap());
    assert!(s.expire("l", 10, ExpireMode::Lt).await.unwrap());
    assert_eq!(s.ttl("l").await.unwrap(), secs(10));
}

#[tokio::test]
async fn expire_on_a_missing_key_is_false_in_every_mode() {
    let h = Harness::new();
    let s = h.instance("a");
    for mode in [
        ExpireMode::Always,
        ExpireMode::Nx,
        ExpireMode::Xx,
        ExpireMode::Gt,
        ExpireMode::Lt,
    ] {
        for seconds in [-1, 0, 10] {
            assert!(
                !s.expire("nope", seconds, mode).await.unwrap(),
                "{mode:?} {seconds}"
            );
            assert!(!s.exists("nope").await.unwrap());
        }
    }
    assert!(!s.persist("nope").await.unwrap());
    assert!(all_keys(&s).await.is_empty());
}

#[tokio::test]
async fn expire_with_seconds_at_or_below_zero_deletes_when_the_mode_allows() {
    let h = Harness::new();
    let s = h.instance("a");
    // (has a TTL, mode, seconds, deleted)
    let cases = [
        (false, ExpireMode::Always, 0, true),
        (false, ExpireMode::Always, -5, true),
        (true, ExpireMode::Always, 0, true),
        (false, ExpireMode::Nx, -1, true),
        (true, ExpireMode::Nx, -1, false),
        (false, ExpireMode::Xx, 0, false),
        (true, ExpireMode::Xx, 0, true),
        (false, ExpireMode::Gt, -1, false),
        (true, ExpireMode::Gt, -1, false),
        (false, ExpireMode::Lt, -1, true),
        (true, ExpireMode::Lt, 0, true),
    ];
    for (with_ttl, mode, seconds, deleted) in cases {
        let what = format!("ttl={with_ttl} {mode:?} {seconds}");
        if with_ttl {
            s.set_with("k", b("v"), ttl(100)).await.unwrap();
        } else {
            s.set("k", b("v")).await.unwrap();
        }
        assert_eq!(
            s.expire("k", seconds, mode).await.unwrap(),
            deleted,
            "{what}"
        );
        assert_eq!(s.exists("k").await.unwrap(), !deleted, "{what}");
        if !deleted {
            let expected = if with_ttl { secs(100) } else { None };
            assert_eq!(s.ttl("k").await.unwrap(), expected, "{what}");
        }
    }
    // At the very moment a key expires it is still live (it expires once
    // the clock is past its time): `lt` with a time before now deletes it,
    // `lt` with now itself does not (now is not before its expiry).
    for (seconds, deleted) in [(0, false), (-5, true)] {
        s.set_with("k", b("v"), ttl(2)).await.unwrap();
        h.advance(Duration::from_secs(2));
        assert!(s.exists("k").await.unwrap(), "live at its expiry time");
        assert_eq!(
            s.expire("k", seconds, ExpireMode::Lt).await.unwrap(),
            deleted,
            "lt {seconds} at the expiry time"
        );
        assert_eq!(s.exists("k").await.unwrap(), !deleted, "lt {seconds}");
        s.delete("k").await.unwrap();
    }
    // Maps and lists go whole, items and all.
    s.map_set("m", fv(&[("a", "1"), ("b", "2")])).await.unwrap();
    assert!(s.expire("m", 0, ExpireMode::Always).await.unwrap());
    assert!(!s.exists("m").await.unwrap());
    assert_eq!(s.map_get("m", "a").await.unwrap(), None);
    s.map_set("m", fv(&[("c", "3")])).await.unwrap();
    assert_eq!(s.map_get_all("m").await.unwrap(), fv(&[("c", "3")]));
    s.list_append("l", bs(&["x", "y"])).await.unwrap();
    assert!(s.expire("l", -10, ExpireMode::Always).await.unwrap());
    assert!(!s.exists("l").await.unwrap());
    s.list_append("l", bs(&["z"])).await.unwrap();
    assert_eq!(s.list_range("l", 0, -1).await.unwrap(), bs(&["z"]));
    // All its space is freed.
    assert!(s.delete("m").await.unwrap());
    assert!(s.delete("l").await.unwrap());
    assert!(!s.exists("k").await.unwrap());
    assert_eq!(h.store.instance_usage("a").await.unwrap(), 0);
}

#[tokio::test]
async fn persist_removes_the_ttl() {
    let h = Harness::new();
    let s = h.instance("a");
    s.set_with("k", b("v"), ttl(10)).await.unwrap();
    assert!(s.persist("k").await.unwrap());
    assert_eq!(s.ttl("k").await.unwrap(), None);
    assert!(!s.persist("k").await.unwrap(), "nothing left to persist");
    h.advance(Duration::from_secs(20));
    assert_eq!(s.get("k").await.unwrap(), Some(b("v")));
    s.set("plain", b("v")).await.unwrap();
    assert!(!s.persist("plain").await.unwrap());
    assert!(!s.persist("missing").await.unwrap());
    s.list_append("l", bs(&["x"])).await.unwrap();
    s.expire("l", 5, ExpireMode::Always).await.unwrap();
    assert!(s.persist("l").await.unwrap());
    h.advance(Duration::from_secs(10));
    assert_eq!(s.list_length("l").await.unwrap(), 1);
}

#[tokio::test]
async fn ttl_is_none_without_one_and_not_found_without_a_key() {
    let h = Harness::new();
    let s = h.instance("a");
    not_found(s.ttl("k").await);
    s.set("k", b("v")).await.unwrap();
    assert_eq!(s.ttl("k").await.unwrap(), None);
    s.map_set("m", fv(&[("f", "1")])).await.unwrap();
    assert_eq!(s.ttl("m").await.unwrap(), None);
    s.list_append("l", bs(&["x"])).await.unwrap();
    assert_eq!(s.ttl("l").await.unwrap(), None);
    s.delete("k").await.unwrap();
    not_found(s.ttl("k").await);
}

#[tokio::test]
async fn a_ttl_covers_a_whole_map_or_list() {
    let h = Harness::new();
    let s = h.instance("a");
    s.map_set("m", fv(&[("a", "1"), ("b", "2")])).await.unwrap();
    assert!(s.expire("m", 10, ExpireMode::Always).await.unwrap());
    h.advance(Duration::from_secs(5));
    // Fields added later die with the map.
    s.map_set("m", fv(&[("c", "3")])).await.unwrap();
    s.list_append("l", bs(&["x"])).await.unwrap();
    assert!(s.expire("l", 5, ExpireMode::Always).await.unwrap());
    s.list_append("l", bs(&["y", "z"])).await.unwrap();
    h.advance(Duration::from_secs(4));
    assert_eq!(s.map_length("m").await.unwrap(), 3);
    assert_eq!(s.list_length("l").await.unwrap(), 3);
    h.advance(Duration::from_secs(2));
    for f in ["a", "b", "c"] {
        assert_eq!(s.map_get("m", f).await.unwrap(), None, "{f}");
    }
    assert_eq!(s.map_length("m").await.unwrap(), 0);
    assert_eq!(s.list_length("l").await.unwrap(), 0);
    assert_eq!(s.list_index("l", 2).await.unwrap(), None);
    assert!(all_keys(&s).await.is_empty());
}

#[tokio::test]
async fn writing_to_an_expired_key_starts_fresh() {
    let h = Harness::new();
    let s = h.instance("a");
    s.map_set("m", fv(&[("a", "1"), ("b", "2")])).await.unwrap();
    s.expire("m", 10, ExpireMode::Always).await.unwrap();
    s.list_append("l", bs(&["old1", "old2"])).await.unwrap();
    s.expire("l", 10, ExpireMode::Always).await.unwrap();
    s.set_with("n", b("40"), ttl(10)).await.unwrap();
    s.map_set("h", fv(&[("count", "7"), ("other", "x")]))
        .await
        .unwrap();
    s.expire("h", 10, ExpireMode::Always).await.unwrap();
    s.list_append("q", bs(&["a", "b"])).await.unwrap();
    s.expire("q", 10, ExpireMode::Always).await.unwrap();
    s.set_with("v", b("old"), ttl(10)).await.unwrap();
    h.advance(Duration::from_secs(11));

    assert_eq!(
        s.map_set("m", fv(&[("c", "3"), ("a", "9")])).await.unwrap(),
        2
    );
    assert_eq!(
        s.map_get_all("m").await.unwrap(),
        fv(&[("a", "9"), ("c", "3")])
    );
    assert_eq!(s.map_length("m").await.unwrap(), 2);
    assert_eq!(s.ttl("m").await.unwrap(), None);

    assert_eq!(s.list_prepend("l", bs(&["new"])).await.unwrap(), 1);
    assert_eq!(s.list_range("l", 0, -1).await.unwrap(), bs(&["new"]));
    assert_eq!(s.ttl("l").await.unwrap(), None);

    assert_eq!(s.increment("n", 2).await.unwrap(), 2);
    assert_eq!(s.ttl("n").await.unwrap(), None);

    assert_eq!(s.map_increment("h", "count", 1).await.unwrap(), 1);
    assert_eq!(s.map_get_all("h").await.unwrap(), fv(&[("count", "1")]));

    // A type change is fine too: the expired key holds nothing.
    assert_eq!(s.map_set("q", fv(&[("f", "1")])).await.unwrap(), 1);
    assert_eq!(s.list_append("v", bs(&["i"])).await.unwrap(), 1);
    assert_eq!(s.list_range("v", 0, -1).await.unwrap(), bs(&["i"]));

    h.advance(Duration::from_secs(1000));
    assert_eq!(all_keys(&s).await, vec!["h", "l", "m", "n", "q", "v"]);
    // Nothing fresh is swept by the old TTLs.
    assert_eq!(h.store.sweep().await.unwrap().keys, 0);
    assert_eq!(all_keys(&s).await, vec!["h", "l", "m", "n", "q", "v"]);
}

#[tokio::test]
async fn sweep_frees_expired_keys_and_sessions() {
    let h = Harness::new();
    let s = h.instance("a");
    s.set("keep", b("v")).await.unwrap();
    s.map_set("keep-map", fv(&[("f", "1")])).await.unwrap();
    s.list_append("keep-list", bs(&["x"])).await.unwrap();
    s.set_with("keep-ttl", b("v"), ttl(1000)).await.unwrap();
    let live = h.store.create_session("a", None).await.unwrap();
    let lh = h.store.session("a", &live.id).await.unwrap();
    lh.set("k", b("session")).await.unwrap();
    let usage_kept = h.store.instance_usage("a").await.unwrap();
    assert_eq!(h.store.sweep().await.unwrap(), SweepStats::default());

    for i in 0..3 {
        s.set_with(&format!("v{i}"), vec![b'x'; 100], ttl(10))
            .await
            .unwrap();
    }
    s.map_set("m", fv(&[("a", "1"), ("b", "2"), ("c", "3")]))
        .await
        .unwrap();
    s.expire("m", 10, ExpireMode::Always).await.unwrap();
    s.list_append("l", bs(&["1", "2", "3"])).await.unwrap();
    s.expire("l", 10, ExpireMode::Always).await.unwrap();
    let dying = h
        .store
        .create_session("a", Some(Duration::from_secs(10)))
        .await
        .unwrap();
    let dh = h.store.session("a", &dying.id).await.unwrap();
    dh.set("k", vec![b'x'; 100]).await.unwrap();
    dh.map_set("m", fv(&[("f", "1")])).await.unwrap();
    assert!(h.store.instance_usage("a").await.unwrap() > usage_kept);

    // Not yet.
    h.advance(Duration::from_secs(9));
    assert_eq!(h.store.sweep().await.unwrap(), SweepStats::default());
    h.advance(Duration::from_secs(2));
    let stats = h.store.sweep().await.unwrap();
    assert_eq!(
        stats,
        SweepStats {
            keys: 5,
            sessions: 1
        }
    );
    assert_eq!(h.store.instance_usage("a").await.unwrap(), usage_kept);
    assert_eq!(
        all_keys(&s).await,
        vec!["keep", "keep-list", "keep-map", "keep-ttl"]
    );
    assert_eq!(lh.get("k").await.unwrap(), Some(b("session")));
    // Nothing is left to sweep.
    assert_eq!(h.store.sweep().await.unwrap(), SweepStats::default());
    // The rest goes when its time comes.
    h.advance(Duration::from_secs(1000));
    assert_eq!(
        h.store.sweep().await.unwrap(),
        SweepStats {
            keys: 1,
            sessions: 0
        }
    );
}

#[tokio::test]
async fn sweep_spares_keys_whose_ttl_was_extended_or_removed() {
    let h = Harness::new();
    let s = h.instance("a");
    for k in [
        "extended",
        "persisted",
        "reset",
        "untouched",
        "recreated",
        "retyped",
        "map",
    ] {
        s.set_with(k, b("v"), ttl(10)).await.unwrap();
    }
    assert!(s.expire("extended", 100, ExpireMode::Always).await.unwrap());
    assert!(s.persist("persisted").await.unwrap());
    s.set("reset", b("new")).await.unwrap();
    assert!(s.delete("recreated").await.unwrap());
    s.set_with("recreated", b("again"), ttl(50)).await.unwrap();
    s.delete("retyped").await.unwrap();
    s.list_append("retyped", bs(&["x"])).await.unwrap();
    s.set("map", b("x")).await.unwrap();
    s.delete("map").await.unwrap();
    s.map_set("map", fv(&[("f", "1")])).await.unwrap();
    s.expire("map", 10, ExpireMode::Always).await.unwrap();
    assert!(s.persist("map").await.unwrap());

    h.advance(Duration::from_secs(20));
    let stats = h.store.sweep().await.unwrap();
    assert_eq!(stats.keys, 1, "only 'untouched' had expired");
    assert_eq!(
        all_keys(&s).await,
        vec![
            "extended",
            "map",
            "persisted",
            "recreated",
            "reset",
            "retyped"
        ]
    );
    assert_eq!(s.get("extended").await.unwrap(), Some(b("v")));
    assert_eq!(s.get("reset").await.unwrap(), Some(b("new")));
    assert_eq!(s.get("recreated").await.unwrap(), Some(b("again")));
    assert_eq!(s.list_range("retyped", 0, -1).await.unwrap(), bs(&["x"]));
    assert_eq!(s.map_get("map", "f").await.unwrap(), Some(b("1")));

    h.advance(Duration::from_secs(40));
    assert_eq!(h.store.sweep().await.unwrap().keys, 1, "recreated at 50 s");
    h.advance(Duration::from_secs(50));
    assert_eq!(h.store.sweep().await.unwrap().keys, 1, "extended at 100 s");
    assert_eq!(
        all_keys(&s).await,
        vec!["map", "persisted", "reset", "retyped"]
    );
}

#[tokio::test]
async fn sweep_frees_a_large_backlog_in_steps() {
    let h = Harness::new();
    let s = h.instance("a");
    for chunk in 0..10 {
        let entries = (0..100)
            .map(|i| (format!("k{:04}", chunk * 100 + i), b("v")))
            .collect();
        s.set_many(entries).await.unwrap();
    }
    let keys: Vec<String> = (0..1000).map(|i| format!("k{i:04}")).collect();
    for chunk in keys.chunks(100) {
        let ops = chunk
            .iter()
            .map(|k| {
                Op::new(
                    k.clone(),
                    OpKind::Expire {
                        seconds: 5,
                        mode: ExpireMode::Always,
                    },
                )
            })
            .collect();
        s.commit(ops).await.unwrap();
    }
    s.set("survivor", b("v")).await.unwrap();
    let usage_survivor = {
        let h2 = Harness::new();
        let s2 = h2.instance("a");
        s2.set("survivor", b("v")).await.unwrap();
        h2.store.instance_usage("a").await.unwrap()
    };
    h.advance(Duration::from_secs(6));
    assert_eq!(all_keys(&s).await, vec!["survivor"]);
    let stats = h.store.sweep().await.unwrap();
    assert_eq!(stats.keys, 1000);
    assert_eq!(h.store.instance_usage("a").await.unwrap(), usage_survivor);
}

#[tokio::test]
async fn an_expire_time_out_of_range_is_invalid_and_changes_nothing() {
    // Redis: "invalid expire time" for times that overflow milliseconds.
    let h = Harness::new();
    let s = h.instance("a");
    let e = s.set_with("k", b("v"), ttl(100)).await.unwrap();
    for seconds in [i64::MAX, i64::MIN, i64::MAX / 1000 + 1, i64::MIN / 1000 - 1] {
        let err = s
            .expire("k", seconds, ExpireMode::Always)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StateError::InvalidArgument(_)),
            "{seconds}: {err:?}"
        );
    }
    let err = s
        .set_with(
            "k",
            b("w"),
            SetOptions {
                ttl: Some(Duration::from_secs(u64::MAX)),
                condition: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::InvalidArgument(_)), "{err:?}");
    let entry = s.get_entry("k").await.unwrap().unwrap();
    assert_eq!(entry.value, b("v"));
    assert_eq!(entry.etag, e);
    assert_eq!(entry.ttl, secs(100));
}

/// Redis keeps a key alive at the exact millisecond of its expiry (PTTL 0)
/// and drops it once that time has passed; sessions follow the same rule.
#[tokio::test]
async fn expiry_takes_effect_once_the_time_has_passed() {
    let h = Harness::new();
    let s = h.instance("a");
    let opts = wasm_state::store::SetOptions {
        ttl: Some(Duration::from_millis(1000)),
        condition: None,
    };
    s.set_with("k", b("v"), opts).await.unwrap();
    let session = h
        .store
        .create_session("a", Some(Duration::from_millis(1000)))
        .await
        .unwrap();
    h.advance(Duration::from_millis(1000));
    assert_eq!(s.ttl("k").await.unwrap(), Some(Duration::ZERO));
    assert_eq!(s.get("k").await.unwrap(), Some(b("v")));
    assert!(h.store.session("a", &session.id).await.is_ok());
    assert_eq!(
        h.store.sweep().await.unwrap(),
        Default::default(),
        "nothing is due yet"
    );
    h.advance(Duration::from_millis(1));
    assert_eq!(s.get("k").await.unwrap(), None);
    assert!(h.store.session("a", &session.id).await.is_err());
    let swept = h.store.sweep().await.unwrap();
    assert_eq!((swept.keys, swept.sessions), (1, 1));
}
