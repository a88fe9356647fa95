//! Persistence: closing and reopening the database keeps values, counters,
//! maps, lists, etags, TTLs, sessions and usage exactly; etags issued after a
//! reopen are new; expiry and the sweeper keep working on reopened data.

use std::collections::HashSet;
use std::time::Duration;

use wasm_state::store::{
    Condition, ExpireMode, KeyInfo, KeyKind, KeyListing, Op, OpKind, ScopeHandle, SetOptions,
    StateError,
};

use super::*;

fn ttl(secs: u64) -> SetOptions {
    SetOptions {
        ttl: Some(Duration::from_secs(secs)),
        condition: None,
    }
}

async fn all_keys(s: &ScopeHandle) -> Vec<String> {
    s.keys(KeyListing::default()).await.unwrap().keys
}

/// Kind, etag and TTL of every key of `s`.
async fn snapshot(s: &ScopeHandle) -> Vec<(String, KeyInfo)> {
    let mut out = Vec::new();
    for k in all_keys(s).await {
        let info = s.info(&k).await.unwrap().unwrap();
        out.push((k, info));
    }
    out
}

#[tokio::test]
async fn data_of_every_kind_survives_a_reopen() {
    let h = Harness::new();
    let mut issued = HashSet::new();
    let (before, usage) = {
        let s = h.instance("a");
        issued.insert(s.set("v", b(r#"{"name":"Ada"}"#)).await.unwrap());
        issued.insert(s.set("bin", vec![0, 255, 1, 254]).await.unwrap());
        s.increment("n", 41).await.unwrap();
        s.increment("n", 1).await.unwrap();
        s.increment("neg", -7).await.unwrap();
        s.map_set("m", fv(&[("b", "2"), ("a", "1"), ("c", "3")]))
            .await
            .unwrap();
        s.map_increment("m", "count", 5).await.unwrap();
        s.map_delete("m", &["c"]).await.unwrap();
        s.list_append("l", bs(&["c", "d"])).await.unwrap();
        s.list_prepend("l", bs(&["b", "a"])).await.unwrap();
        s.list_insert("l", false, b("b"), b("b2")).await.unwrap();
        s.list_set("l", -1, b("D")).await.unwrap();
        s.set("\u{1F600}/|\0 key", b("odd")).await.unwrap();
        let gone = s.set("deleted", b("x")).await.unwrap();
        issued.insert(gone);
        s.delete("deleted").await.unwrap();
        let acct = h.account("acme");
        issued.insert(acct.set("shared", b("yes")).await.unwrap());
        let snap = snapshot(&s).await;
        for (_, i) in &snap {
            issued.insert(i.etag.clone());
        }
        (snap, h.store.instance_usage("a").await.unwrap())
    };

    let h = h.reopen();
    let s = h.instance("a");
    assert_eq!(
        snapshot(&s).await,
        before,
        "keys, kinds, etags or TTLs changed"
    );
    assert_eq!(s.get("v").await.unwrap(), Some(b(r#"{"name":"Ada"}"#)));
    assert_eq!(s.get("bin").await.unwrap(), Some(vec![0, 255, 1, 254]));
    assert_eq!(s.get("n").await.unwrap(), Some(b("42")));
    assert_eq!(s.get("neg").await.unwrap(), Some(b("-7")));
    assert_eq!(
        s.map_get_all("m").await.unwrap(),
        fv(&[("a", "1"), ("b", "2"), ("count", "5")])
    );
    assert_eq!(s.map_length("m").await.unwrap(), 3);
    assert_eq!(
        s.list_range("l", 0, -1).await.unwrap(),
        bs(&["a", "b", "b2", "c", "D"])
    );
    assert_eq!(s.list_length("l").await.unwrap(), 5);
    assert_eq!(s.list_index("l", 0).await.unwrap(), Some(b("a")));
    assert_eq!(s.list_index("l", -1).await.unwrap(), Some(b("D")));
    assert_eq!(s.get("\u{1F600}/|\0 key").await.unwrap(), Some(b("odd")));
    assert_eq!(s.get("deleted").await.unwrap(), None);
    assert_eq!(
        h.account("acme").get("shared").await.unwrap(),
        Some(b("yes"))
    );
    assert_eq!(h.store.instance_usage("a").await.unwrap(), usage);

    // Everything keeps working on top of it.
    assert_eq!(s.increment("n", 1).await.unwrap(), 43);
    assert_eq!(s.map_increment("m", "count", 1).await.unwrap(), 6);
    assert_eq!(s.list_start_pop("l", 1).await.unwrap(), bs(&["a"]));
    assert_eq!(s.list_end_pop("l", 1).await.unwrap(), bs(&["D"]));
    assert_eq!(s.list_prepend("l", bs(&["z"])).await.unwrap(), 4);
    assert_eq!(
        s.list_range("l", 0, -1).await.unwrap(),
        bs(&["z", "b", "b2", "c"])
    );
    let e = s.set("after", b("1")).await.unwrap();
    assert!(
        !issued.contains(&e),
        "etag {e} was issued before the reopen"
    );
}

#[tokio::test]
async fn etags_survive_and_new_ones_are_never_old_ones() {
    let h = Harness::new();
    let mut issued: Vec<String> = Vec::new();
    let (kept, deleted_etag) = {
        let s = h.instance("a");
        for i in 0..50 {
            issued.push(
                s.set(&format!("k{}", i % 5), b(&i.to_string()))
                    .await
                    .unwrap(),
            );
        }
        s.map_set("m", fv(&[("f", "1")])).await.unwrap();
        issued.push(s.info("m").await.unwrap().unwrap().etag);
        s.list_append("l", bs(&["x"])).await.unwrap();
        issued.push(s.info("l").await.unwrap().unwrap().etag);
        // Etags of a key deleted before the reopen must not come back either.
        let d = s.set("d", b("1")).await.unwrap();
        issued.push(d.clone());
        s.delete("d").await.unwrap();
        // Nor those of failed requests' would-be writes (none are visible).
        let stale = issued[0].clone();
        s.set_with(
            "k0",
            b("x"),
            SetOptions {
                ttl: None,
                condition: Some(Condition::IfMatch(stale)),
            },
        )
        .await
        .unwrap_err();
        (s.info("k4").await.unwrap().unwrap().etag, d)
    };

    let h = h.reopen();
    let s = h.instance("a");
    assert_eq!(s.info("k4").await.unwrap().unwrap().etag, kept);
    // The old etag still works as a condition after the reopen.
    let next = s
        .set_with(
            "k4",
            b("after"),
            SetOptions {
                ttl: None,
                condition: Some(Condition::IfMatch(kept.clone())),
            },
        )
        .await
        .unwrap();
    // An etag issued before the reopen is a mismatch, not an invalid etag.
    s.set("d", b("reborn")).await.unwrap();
    let err = s
        .set_with(
            "d",
            b("x"),
            SetOptions {
                ttl: None,
                condition: Some(Condition::IfMatch(deleted_etag)),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::EtagMismatch), "{err:?}");

    let all: HashSet<String> = issued.iter().cloned().collect();
    assert_eq!(all.len(), issued.len());
    let mut fresh = vec![next, s.info("d").await.unwrap().unwrap().etag];
    for i in 0..20 {
        fresh.push(s.set(&format!("k{}", i % 7), b("new")).await.unwrap());
    }
    s.map_set("m", fv(&[("g", "2")])).await.unwrap();
    fresh.push(s.info("m").await.unwrap().unwrap().etag);
    s.list_append("l", bs(&["y"])).await.unwrap();
    fresh.push(s.info("l").await.unwrap().unwrap().etag);
    let r = s
        .commit(vec![Op::new("c", OpKind::Increment(1))])
        .await
        .unwrap();
    fresh.push(r[0].etag.clone().unwrap());
    for e in &fresh {
        assert!(!all.contains(e), "etag {e} was issued before the reopen");
    }
    let fresh_set: HashSet<&String> = fresh.iter().collect();
    assert_eq!(fresh_set.len(), fresh.len(), "an etag was issued twice");

    // And again across a second reopen.
    drop(s);
    let h = h.reopen();
    let s = h.instance("a");
    let e = s.set("again", b("1")).await.unwrap();
    assert!(!all.contains(&e) && !fresh.contains(&e));
}

#[tokio::test]
async fn ttls_survive_a_reopen_and_still_expire() {
    let h = Harness::new();
    {
        let s = h.instance("a");
        s.set_with("short", b("1"), ttl(100)).await.unwrap();
        s.set_with("long", b("2"), ttl(1000)).await.unwrap();
        s.set("forever", b("3")).await.unwrap();
        s.map_set("m", fv(&[("f", "1")])).await.unwrap();
        assert!(s.expire("m", 200, ExpireMode::Always).await.unwrap());
        s.list_append("l", bs(&["x"])).await.unwrap();
        assert!(s.expire("l", 300, ExpireMode::Always).await.unwrap());
        s.set_with("persisted", b("4"), ttl(50)).await.unwrap();
        assert!(s.persist("persisted").await.unwrap());
        h.advance(Duration::from_secs(30));
        assert_eq!(s.ttl("short").await.unwrap(), Some(Duration::from_secs(70)));
    }

    let h = h.reopen();
    let s = h.instance("a");
    assert_eq!(s.ttl("short").await.unwrap(), Some(Duration::from_secs(70)));
    assert_eq!(s.ttl("long").await.unwrap(), Some(Duration::from_secs(970)));
    assert_eq!(s.ttl("forever").await.unwrap(), None);
    assert_eq!(s.ttl("m").await.unwrap(), Some(Duration::from_secs(170)));
    assert_eq!(s.ttl("l").await.unwrap(), Some(Duration::from_secs(270)));
    assert_eq!(s.ttl("persisted").await.unwrap(), None);
    assert_eq!(
        s.get_entry("long").await.unwrap().unwrap().ttl,
        Some(Duration::from_secs(970))
    );

    h.advance(Duration::from_secs(71));
    assert_eq!(s.get("short").await.unwrap(), None);
    assert!(!s.exists("short").await.unwrap());
    assert_eq!(s.get("long").await.unwrap(), Some(b("2")));
    h.advance(Duration::from_secs(100));
    assert_eq!(s.map_length("m").await.unwrap(), 0);
    assert_eq!(s.list_length("l").await.unwrap(), 1);
    h.advance(Duration::from_secs(100));
    assert_eq!(s.list_length("l").await.unwrap(), 0);
    assert_eq!(all_keys(&s).await, vec!["forever", "long", "persisted"]);

    // The expiry index survived too: the sweeper frees exactly the expired.
    let stats = h.store.sweep().await.unwrap();
    assert_eq!(stats.keys, 3);
    assert_eq!(all_keys(&s).await, vec!["forever", "long", "persisted"]);
    h.advance(Duration::from_secs(1000));
    assert_eq!(h.store.sweep().await.unwrap().keys, 1);
    assert_eq!(all_keys(&s).await, vec!["forever", "persisted"]);
}

#[tokio::test]
async fn expired_keys_are_still_expired_after_a_reopen() {
    let h = Harness::new();
    {
        let s = h.instance("a");
        s.set_with("k", b("1"), ttl(10)).await.unwrap();
        h.advance(Duration::from_secs(11));
        assert_eq!(s.get("k").await.unwrap(), None);
    }
    let h = h.reopen();
    let s = h.instance("a");
    assert_eq!(s.get("k").await.unwrap(), None);
    assert!(all_keys(&s).await.is_empty());
    // A write to it starts fresh.
    assert_eq!(s.increment("k", 5).await.unwrap(), 5);
    assert_eq!(s.ttl("k").await.unwrap(), None);
}

#[tokio::test]
async fn sessions_survive_a_reopen() {
    let h = Harness::new();
    let (s1, s2, s3) = {
        let s1 = h
            .store
            .create_session("a", Some(Duration::from_secs(100)))
            .await
            .unwrap();
        let s2 = h.store.create_session("a", None).await.unwrap();
        let s3 = h.store.create_session("b", None).await.unwrap();
        let ended = h.store.create_session("a", None).await.unwrap();
        for (s, tag) in [(&s1, "one"), (&s2, "two"), (&s3, "three")] {
            let sh = h.store.session(&s.instance, &s.id).await.unwrap();
            sh.set("k", b(tag)).await.unwrap();
            sh.map_set("m", fv(&[("f", tag)])).await.unwrap();
            sh.list_append("l", bs(&[tag, tag])).await.unwrap();
        }
        let eh = h.store.session("a", &ended.id).await.unwrap();
        eh.set("k", b("ended")).await.unwrap();
        assert!(h.store.end_session("a", &ended.id).await.unwrap());
        (s1, s2, s3)
    };
    let mut listed_before = h.store.list_sessions("a").await.unwrap();
    listed_before.sort_by(|x, y| x.id.cmp(&y.id));
    let usage = h.store.instance_usage("a").await.unwrap();

    let h = h.reopen();
    let mut listed = h.store.list_sessions("a").await.unwrap();
    listed.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(listed, listed_before);
    assert_eq!(listed.len(), 2);
    assert_eq!(h.store.instance_usage("a").await.unwrap(), usage);
    for (s, tag) in [(&s1, "one"), (&s2, "two"), (&s3, "three")] {
        let sh = h.store.session(&s.instance, &s.id).await.unwrap();
        assert_eq!(sh.get("k").await.unwrap(), Some(b(tag)));
        assert_eq!(sh.map_get("m", "f").await.unwrap(), Some(b(tag)));
        assert_eq!(sh.list_range("l", 0, -1).await.unwrap(), bs(&[tag, tag]));
        assert_eq!(
            h.store.session_info(&s.instance, &s.id).await.unwrap(),
            s.clone()
        );
    }
    // The short session still dies on time, and the sweeper frees it.
    h.advance(Duration::from_secs(101));
    match h.store.session("a", &s1.id).await {
        Err(StateError::NoSuchSession) => {}
        other => panic!("expected NoSuchSession, got {other:?}"),
    }
    let stats = h.store.sweep().await.unwrap();
    assert_eq!(stats.sessions, 1);
    assert!(h.store.instance_usage("a").await.unwrap() < usage);
    // The others can still be extended and ended.
    h.store
        .extend_session("a", &s2.id, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(h.store.end_session("b", &s3.id).await.unwrap());
    assert_eq!(h.store.instance_usage("b").await.unwrap(), 0);
}

#[tokio::test]
async fn a_failed_request_leaves_nothing_to_reopen() {
    let h = Harness::new();
    {
        let s = h.instance("a");
        s.set("text", b("hello")).await.unwrap();
        s.commit(vec![
            Op::new(
                "ghost",
                OpKind::Set {
                    value: b("boo"),
                    ttl: None,
                },
            ),
            Op::new("text", OpKind::Increment(1)),
        ])
        .await
        .unwrap_err();
    }
    let h = h.reopen();
    let s = h.instance("a");
    assert_eq!(all_keys(&s).await, vec!["text"]);
    assert_eq!(
        s.info("text").await.unwrap().map(|i| i.kind),
        Some(KeyKind::Value)
    );
}

#[tokio::test]
async fn a_large_list_and_map_survive_a_reopen() {
    let h = Harness::new();
    {
        let s = h.instance("a");
        for chunk in 0..10 {
            let items: Vec<Vec<u8>> = (0..100)
                .map(|i| b(&format!("{}", chunk * 100 + i)))
                .collect();
            s.list_append("l", items).await.unwrap();
            let fields: Vec<(String, Vec<u8>)> = (0..100)
                .map(|i| (format!("f{:04}", chunk * 100 + i), b("v")))
                .collect();
            s.map_set("m", fields).await.unwrap();
        }
        for _ in 0..5 {
            s.list_prepend("l", bs(&["head"])).await.unwrap();
        }
    }
    let h = h.reopen();
    let s = h.instance("a");
    assert_eq!(s.list_length("l").await.unwrap(), 1005);
    assert_eq!(s.list_index("l", 4).await.unwrap(), Some(b("head")));
    assert_eq!(s.list_index("l", 5).await.unwrap(), Some(b("0")));
    assert_eq!(s.list_index("l", -1).await.unwrap(), Some(b("999")));
    assert_eq!(s.list_index("l", 505).await.unwrap(), Some(b("500")));
    assert_eq!(s.map_length("m").await.unwrap(), 1000);
    assert_eq!(s.map_get("m", "f0777").await.unwrap(), Some(b("v")));
    // A full scan sees every field once.
    let mut cursor = "0".to_string();
    let mut seen = Vec::new();
    loop {
        let page = s.map_scan("m", &cursor, None, 97).await.unwrap();
        seen.extend(page.entries.into_iter().map(|(f, _)| f));
        if page.cursor == "0" {
            break;
        }
        cursor = page.cursor;
    }
    let expected: Vec<String> = (0..1000).map(|i| format!("f{i:04}")).collect();
    assert_eq!(seen, expected);
}
