//! Scopes (SPEC.md "Scopes"): account, instance and session key spaces are
//! disjoint; destroying an instance removes it and its sessions and nothing
//! else; sessions are 128-bit random URL-safe ids, expire at once, can be
//! extended, ended and listed, and default to a 7-day TTL.

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use wasm_state::store::{
    Condition, KeyListing, Op, OpKind, ScopeHandle, SessionInfo, SetOptions, StateError,
};

use super::*;

const SEVEN_DAYS_MS: u64 = 604_800_000;

async fn all_keys(s: &ScopeHandle) -> Vec<String> {
    s.keys(KeyListing::default()).await.unwrap().keys
}

fn no_such_session<T: std::fmt::Debug>(r: Result<T, StateError>, what: &str) {
    match r {
        Err(StateError::NoSuchSession) => {}
        other => panic!("{what}: expected NoSuchSession, got {other:?}"),
    }
}

/// Every read and write on `s` fails with `no-such-session`.
async fn assert_session_gone(s: &ScopeHandle) {
    no_such_session(s.get("k").await, "get");
    no_such_session(s.get_entry("k").await, "get_entry");
    no_such_session(s.get_many(&["k"]).await, "get_many");
    no_such_session(s.exists("k").await, "exists");
    no_such_session(s.info("k").await, "info");
    no_such_session(s.ttl("k").await, "ttl");
    no_such_session(s.keys(KeyListing::default()).await, "keys");
    no_such_session(s.map_get("m", "f").await, "map_get");
    no_such_session(s.map_get_all("m").await, "map_get_all");
    no_such_session(s.map_length("m").await, "map_length");
    no_such_session(s.list_range("l", 0, -1).await, "list_range");
    no_such_session(s.list_length("l").await, "list_length");
    no_such_session(s.set("k", b("x")).await, "set");
    no_such_session(s.delete("k").await, "delete");
    no_such_session(s.increment("n", 1).await, "increment");
    no_such_session(s.map_set("m", fv(&[("f", "1")])).await, "map_set");
    no_such_session(s.list_append("l", bs(&["x"])).await, "list_append");
    no_such_session(
        s.commit(vec![Op::new(
            "k",
            OpKind::Set {
                value: b("x"),
                ttl: None,
            },
        )])
        .await,
        "commit",
    );
    no_such_session(s.delete_prefix("k").await, "delete_prefix");
}

#[tokio::test]
async fn one_key_name_in_every_scope_holds_different_values() {
    let h = Harness::new();
    let account = h.account("acme");
    let same_name_account = h.account("A");
    let a = h.instance("A");
    let bb = h.instance("B");
    let s1 = h.store.create_session("A", None).await.unwrap();
    let s2 = h.store.create_session("A", None).await.unwrap();
    assert_ne!(s1.id, s2.id);
    let s1h = h.store.session("A", &s1.id).await.unwrap();
    let s2h = h.store.session("A", &s2.id).await.unwrap();

    let scopes = [
        (&account, "account acme"),
        (&same_name_account, "account A"),
        (&a, "instance A"),
        (&bb, "instance B"),
        (&s1h, "session 1 of A"),
        (&s2h, "session 2 of A"),
    ];
    for (s, name) in &scopes {
        assert_eq!(s.get("k").await.unwrap(), None, "{name} starts empty");
        s.set_with(
            "k",
            b(name),
            SetOptions {
                ttl: None,
                condition: Some(Condition::IfAbsent),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
    for (s, name) in &scopes {
        assert_eq!(s.get("k").await.unwrap(), Some(b(name)), "{name}");
        assert_eq!(all_keys(s).await, vec!["k"], "{name} lists only its key");
    }
    // Each scope can hold a different type under the same name.
    a.delete("k").await.unwrap();
    a.map_set("k", fv(&[("f", "1")])).await.unwrap();
    s1h.delete("k").await.unwrap();
    s1h.list_append("k", bs(&["x"])).await.unwrap();
    assert_eq!(bb.get("k").await.unwrap(), Some(b("instance B")));
    assert_eq!(s2h.get("k").await.unwrap(), Some(b("session 2 of A")));
    assert_eq!(account.get("k").await.unwrap(), Some(b("account acme")));
    assert_eq!(a.map_get("k", "f").await.unwrap(), Some(b("1")));
    assert_eq!(s1h.list_range("k", 0, -1).await.unwrap(), bs(&["x"]));
    // Deleting in one scope touches no other.
    assert_eq!(bb.delete_prefix("k").await.unwrap(), 1);
    assert_eq!(account.get("k").await.unwrap(), Some(b("account acme")));
    assert_eq!(s2h.get("k").await.unwrap(), Some(b("session 2 of A")));
    assert_eq!(a.map_length("k").await.unwrap(), 1);
    assert_eq!(
        same_name_account.get("k").await.unwrap(),
        Some(b("account A"))
    );
}

#[tokio::test]
async fn instance_operations_never_reach_its_sessions() {
    let h = Harness::new();
    let a = h.instance("A");
    let s = h.store.create_session("A", None).await.unwrap();
    let sh = h.store.session("A", &s.id).await.unwrap();
    sh.set("key1", b("s")).await.unwrap();
    sh.set("key2", b("s")).await.unwrap();
    a.set("key1", b("i")).await.unwrap();
    assert_eq!(all_keys(&a).await, vec!["key1"]);
    assert_eq!(a.delete_prefix("key").await.unwrap(), 1);
    assert_eq!(a.delete_many(&["key1", "key2"]).await.unwrap(), 0);
    assert_eq!(all_keys(&sh).await, vec!["key1", "key2"]);
    // Keys shaped like internal prefixes stay inside their scope.
    for k in ["S", "\0", "I", "M", "/..", "\u{1F600}", "A\0S"] {
        a.set(k, b("inst")).await.unwrap();
        assert_eq!(sh.get(k).await.unwrap(), None, "{k:?}");
        assert_eq!(h.instance("B").get(k).await.unwrap(), None, "{k:?}");
    }
    assert_eq!(all_keys(&sh).await, vec!["key1", "key2"]);
}

#[tokio::test]
async fn destroying_an_instance_removes_it_and_its_sessions_only() {
    let h = Harness::new();
    let account = h.account("acme");
    let default_account = h.account("default");
    let a = h.instance("A");
    let bb = h.instance("B");
    let a2 = h.instance("A2");
    let ab = h.instance("AB");
    let s1 = h.store.create_session("A", None).await.unwrap();
    let s2 = h.store.create_session("A", None).await.unwrap();
    let sb = h.store.create_session("B", None).await.unwrap();
    let sa2 = h.store.create_session("A2", None).await.unwrap();
    let s1h = h.store.session("A", &s1.id).await.unwrap();
    let s2h = h.store.session("A", &s2.id).await.unwrap();
    let sbh = h.store.session("B", &sb.id).await.unwrap();
    let sa2h = h.store.session("A2", &sa2.id).await.unwrap();

    for (s, tag) in [
        (&account, "acct"),
        (&default_account, "default"),
        (&a, "A"),
        (&bb, "B"),
        (&a2, "A2"),
        (&ab, "AB"),
        (&s1h, "S1"),
        (&s2h, "S2"),
        (&sbh, "SB"),
        (&sa2h, "SA2"),
    ] {
        s.set("v", b(tag)).await.unwrap();
        s.map_set("m", fv(&[("f", tag)])).await.unwrap();
        s.list_append("l", bs(&[tag])).await.unwrap();
        s.set_with(
            "t",
            b(tag),
            SetOptions {
                ttl: Some(Duration::from_secs(100)),
                condition: None,
            },
        )
        .await
        .unwrap();
    }
    let usage_b = h.store.instance_usage("B").await.unwrap();
    let usage_a2 = h.store.instance_usage("A2").await.unwrap();
    let usage_ab = h.store.instance_usage("AB").await.unwrap();
    assert!(h.store.instance_usage("A").await.unwrap() > 0);

    h.store.destroy_instance("A").await.unwrap();

    // A's data and sessions are gone.
    assert_eq!(a.get("v").await.unwrap(), None);
    assert_eq!(a.map_length("m").await.unwrap(), 0);
    assert_eq!(a.list_length("l").await.unwrap(), 0);
    assert!(all_keys(&a).await.is_empty());
    no_such_session(h.store.session("A", &s1.id).await, "open S1");
    no_such_session(h.store.session("A", &s2.id).await, "open S2");
    assert_session_gone(&s1h).await;
    assert_session_gone(&s2h).await;
    assert_eq!(h.store.list_sessions("A").await.unwrap(), vec![]);
    assert_eq!(h.store.instance_usage("A").await.unwrap(), 0);

    // Everything else is intact.
    for (s, tag) in [
        (&account, "acct"),
        (&default_account, "default"),
        (&bb, "B"),
        (&a2, "A2"),
        (&ab, "AB"),
        (&sbh, "SB"),
        (&sa2h, "SA2"),
    ] {
        assert_eq!(s.get("v").await.unwrap(), Some(b(tag)), "{tag}");
        assert_eq!(s.map_get("m", "f").await.unwrap(), Some(b(tag)), "{tag}");
        assert_eq!(s.list_range("l", 0, -1).await.unwrap(), bs(&[tag]), "{tag}");
        assert_eq!(s.get("t").await.unwrap(), Some(b(tag)), "{tag}");
        assert_eq!(all_keys(s).await, vec!["l", "m", "t", "v"], "{tag}");
    }
    assert_eq!(
        h.store
            .list_sessions("B")
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect::<Vec<_>>(),
        vec![sb.id.clone()]
    );
    assert_eq!(
        h.store
            .list_sessions("A2")
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect::<Vec<_>>(),
        vec![sa2.id.clone()]
    );
    assert_eq!(h.store.instance_usage("B").await.unwrap(), usage_b);
    assert_eq!(h.store.instance_usage("A2").await.unwrap(), usage_a2);
    assert_eq!(h.store.instance_usage("AB").await.unwrap(), usage_ab);

    // A sweep after the destroy frees nothing of the others.
    h.advance(Duration::from_secs(50));
    h.store.sweep().await.unwrap();
    assert_eq!(bb.get("t").await.unwrap(), Some(b("B")));
    assert_eq!(sbh.get("t").await.unwrap(), Some(b("SB")));
    assert_eq!(account.get("t").await.unwrap(), Some(b("acct")));

    // The name can be used again, from scratch; old sessions stay dead.
    a.set("v", b("reborn")).await.unwrap();
    assert_eq!(all_keys(&a).await, vec!["v"]);
    no_such_session(h.store.session("A", &s1.id).await, "S1 after reuse");
    let fresh = h.store.create_session("A", None).await.unwrap();
    assert_ne!(fresh.id, s1.id);
    assert_ne!(fresh.id, s2.id);
    let fh = h.store.session("A", &fresh.id).await.unwrap();
    assert!(all_keys(&fh).await.is_empty());
    // Destroying an instance with no state is fine.
    h.store.destroy_instance("never-used").await.unwrap();
}

#[tokio::test]
async fn an_expired_session_is_gone_at_once() {
    let h = Harness::new();
    let info = h
        .store
        .create_session("A", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(info.expires_at_ms, T0 + 60_000);
    let other = h.store.create_session("A", None).await.unwrap();
    let s = h.store.session("A", &info.id).await.unwrap();
    s.set("k", b("v")).await.unwrap();
    s.map_set("m", fv(&[("f", "1")])).await.unwrap();
    s.list_append("l", bs(&["x"])).await.unwrap();
    let oh = h.store.session("A", &other.id).await.unwrap();
    oh.set("k", b("other")).await.unwrap();

    h.advance(Duration::from_secs(59));
    assert_eq!(s.get("k").await.unwrap(), Some(b("v")));
    assert_eq!(
        h.store.session_info("A", &info.id).await.unwrap(),
        SessionInfo {
            instance: "A".into(),
            id: info.id.clone(),
            expires_at_ms: T0 + 60_000,
        }
    );

    h.advance(Duration::from_millis(1001));
    // No sweep: it is gone for every read and write, old handle or new.
    assert_session_gone(&s).await;
    no_such_session(h.store.session("A", &info.id).await, "open");
    no_such_session(h.store.session_info("A", &info.id).await, "session_info");
    no_such_session(
        h.store
            .extend_session("A", &info.id, Duration::from_secs(600))
            .await,
        "extend",
    );
    assert_eq!(
        h.store
            .list_sessions("A")
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect::<Vec<_>>(),
        vec![other.id.clone()]
    );
    assert!(
        !h.store.end_session("A", &info.id).await.unwrap(),
        "an expired session was not live"
    );
    // Its sibling lives on.
    assert_eq!(oh.get("k").await.unwrap(), Some(b("other")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_ids_are_128_random_bits_in_22_url_safe_chars() {
    let h = Harness::new();
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let store = h.store.clone();
        let inst = if i % 2 == 0 { "A" } else { "B" };
        tasks.push(tokio::spawn(async move {
            store.create_session(inst, None).await.unwrap()
        }));
    }
    let mut ids = HashSet::new();
    let mut ones = [0u32; 128];
    for t in tasks {
        let info = t.await.unwrap();
        let id = info.id.clone();
        assert_eq!(id.len(), 22, "{id}");
        assert!(
            id.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
            "{id} is not URL-safe"
        );
        let raw = URL_SAFE_NO_PAD
            .decode(&id)
            .unwrap_or_else(|e| panic!("{id} is not base64url: {e}"));
        assert_eq!(raw.len(), 16, "{id} is not 128 bits");
        for (bit, count) in ones.iter_mut().enumerate() {
            if raw[bit / 8] & (1 << (bit % 8)) != 0 {
                *count += 1;
            }
        }
        assert!(ids.insert(id.clone()), "id {id} issued twice");
    }
    assert_eq!(ids.len(), 1000);
    // Every bit varies: 1000 random draws leave none fixed.
    for (bit, n) in ones.iter().enumerate() {
        assert!(*n > 300 && *n < 700, "bit {bit} set {n} times in 1000 ids");
    }
    let listed: usize = h.store.list_sessions("A").await.unwrap().len()
        + h.store.list_sessions("B").await.unwrap().len();
    assert_eq!(listed, 1000);
}

#[tokio::test]
async fn a_session_is_only_reachable_through_its_instance() {
    let h = Harness::new();
    let s = h.store.create_session("A", None).await.unwrap();
    let sh = h.store.session("A", &s.id).await.unwrap();
    sh.set("secret", b("a's")).await.unwrap();

    no_such_session(h.store.session("B", &s.id).await, "open as B");
    no_such_session(h.store.session("A2", &s.id).await, "open as A2");
    no_such_session(h.store.session_info("B", &s.id).await, "info as B");
    no_such_session(
        h.store
            .extend_session("B", &s.id, Duration::from_secs(1))
            .await,
        "extend as B",
    );
    assert!(!h.store.end_session("B", &s.id).await.unwrap());
    h.store.destroy_instance("B").await.unwrap();
    assert!(h.store.list_sessions("B").await.unwrap().is_empty());
    // Still alive and intact for A.
    let again = h.store.session("A", &s.id).await.unwrap();
    assert_eq!(again.get("secret").await.unwrap(), Some(b("a's")));
    assert_eq!(
        h.store
            .session_info("A", &s.id)
            .await
            .unwrap()
            .expires_at_ms,
        s.expires_at_ms
    );

    // Ids never issued are unknown, never a fresh empty scope.
    let mut forged = s.id.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let slash = format!("{}/", s.id);
    let nul = format!("{}\0", s.id);
    for id in [
        "",
        "nope",
        "AAAAAAAAAAAAAAAAAAAAAA",
        forged.as_str(),
        "../../../../etc/passwd",
        slash.as_str(),
        nul.as_str(),
        &s.id[..21],
    ] {
        no_such_session(h.store.session("A", id).await, &format!("open {id:?}"));
        no_such_session(
            h.store
                .extend_session("A", id, Duration::from_secs(60))
                .await,
            &format!("extend {id:?}"),
        );
        assert!(!h.store.end_session("A", id).await.unwrap(), "{id:?}");
    }
    assert_eq!(h.store.list_sessions("A").await.unwrap().len(), 1);
}

#[tokio::test]
async fn extend_session_moves_the_expiry() {
    let h = Harness::new();
    let s = h
        .store
        .create_session("A", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let sh = h.store.session("A", &s.id).await.unwrap();
    sh.set("k", b("v")).await.unwrap();
    h.advance(Duration::from_secs(50));
    let ext = h
        .store
        .extend_session("A", &s.id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(ext.id, s.id);
    assert_eq!(ext.expires_at_ms, T0 + 110_000);
    assert_eq!(
        h.store
            .session_info("A", &s.id)
            .await
            .unwrap()
            .expires_at_ms,
        T0 + 110_000
    );
    // Past the original expiry, still alive with its data.
    h.advance(Duration::from_secs(30));
    assert_eq!(sh.get("k").await.unwrap(), Some(b("v")));
    // A sweep must not free it by its old expiry.
    let stats = h.store.sweep().await.unwrap();
    assert_eq!(stats.sessions, 0);
    assert_eq!(sh.get("k").await.unwrap(), Some(b("v")));
    // Extending can also shorten.
    let ext = h
        .store
        .extend_session("A", &s.id, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(ext.expires_at_ms, T0 + 85_000);
    h.advance(Duration::from_secs(4));
    assert_eq!(sh.get("k").await.unwrap(), Some(b("v")));
    h.advance(Duration::from_secs(2));
    assert_session_gone(&sh).await;
    assert!(h.store.list_sessions("A").await.unwrap().is_empty());
}

#[tokio::test]
async fn end_session_deletes_its_data_for_good() {
    let h = Harness::new();
    let usage0 = h.store.instance_usage("A").await.unwrap();
    let s = h.store.create_session("A", None).await.unwrap();
    let sibling = h.store.create_session("A", None).await.unwrap();
    let sh = h.store.session("A", &s.id).await.unwrap();
    let sib = h.store.session("A", &sibling.id).await.unwrap();
    sib.set("k", b("sibling")).await.unwrap();
    let usage_sibling = h.store.instance_usage("A").await.unwrap();
    sh.set("k", b("v")).await.unwrap();
    sh.map_set("m", fv(&[("a", "1"), ("b", "2")]))
        .await
        .unwrap();
    sh.list_append("l", bs(&["x", "y"])).await.unwrap();
    assert!(h.store.instance_usage("A").await.unwrap() > usage_sibling);

    assert!(h.store.end_session("A", &s.id).await.unwrap());
    assert_session_gone(&sh).await;
    no_such_session(h.store.session("A", &s.id).await, "open after end");
    assert!(
        !h.store.end_session("A", &s.id).await.unwrap(),
        "ended twice"
    );
    assert_eq!(h.store.instance_usage("A").await.unwrap(), usage_sibling);
    assert_eq!(sib.get("k").await.unwrap(), Some(b("sibling")));

    // There is no way back: a new session has a new id and no data.
    let fresh = h.store.create_session("A", None).await.unwrap();
    assert_ne!(fresh.id, s.id);
    let fh = h.store.session("A", &fresh.id).await.unwrap();
    assert!(all_keys(&fh).await.is_empty());
    assert_eq!(fh.get("k").await.unwrap(), None);
    assert!(h.store.end_session("A", &sibling.id).await.unwrap());
    assert!(h.store.end_session("A", &fresh.id).await.unwrap());
    assert_eq!(h.store.instance_usage("A").await.unwrap(), usage0);
}

#[tokio::test]
async fn list_sessions_shows_live_ones_only() {
    let h = Harness::new();
    assert!(h.store.list_sessions("A").await.unwrap().is_empty());
    let short = h
        .store
        .create_session("A", Some(Duration::from_secs(10)))
        .await
        .unwrap();
    let ended = h.store.create_session("A", None).await.unwrap();
    let long = h
        .store
        .create_session("A", Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    let default = h.store.create_session("A", None).await.unwrap();
    let of_b = h.store.create_session("B", None).await.unwrap();

    let ids = |v: Vec<SessionInfo>| -> HashSet<String> { v.into_iter().map(|s| s.id).collect() };
    assert_eq!(
        ids(h.store.list_sessions("A").await.unwrap()),
        HashSet::from([
            short.id.clone(),
            ended.id.clone(),
            long.id.clone(),
            default.id.clone()
        ])
    );
    assert!(h.store.end_session("A", &ended.id).await.unwrap());
    h.advance(Duration::from_secs(11));
    let listed = h.store.list_sessions("A").await.unwrap();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let mut expected = vec![
        SessionInfo {
            instance: "A".into(),
            id: long.id.clone(),
            expires_at_ms: T0 + 3_600_000,
        },
        SessionInfo {
            instance: "A".into(),
            id: default.id.clone(),
            expires_at_ms: T0 + SEVEN_DAYS_MS,
        },
    ];
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(listed_sorted, expected);
    assert_eq!(
        ids(h.store.list_sessions("B").await.unwrap()),
        HashSet::from([of_b.id.clone()])
    );
    h.advance(Duration::from_secs(3600));
    assert_eq!(
        ids(h.store.list_sessions("A").await.unwrap()),
        HashSet::from([default.id.clone()])
    );
}

#[tokio::test]
async fn the_default_session_ttl_is_seven_days() {
    let h = Harness::new();
    let s = h.store.create_session("A", None).await.unwrap();
    assert_eq!(s.instance, "A");
    assert_eq!(s.expires_at_ms, T0 + SEVEN_DAYS_MS);
    let sh = h.store.session("A", &s.id).await.unwrap();
    sh.set("k", b("v")).await.unwrap();
    h.advance(Duration::from_secs(604_799));
    assert_eq!(sh.get("k").await.unwrap(), Some(b("v")));
    h.advance(Duration::from_secs(2));
    assert_session_gone(&sh).await;
    no_such_session(h.store.session("A", &s.id).await, "after 7 days");
}

#[tokio::test]
async fn a_key_ttl_inside_a_session_and_the_session_ttl_are_independent() {
    let h = Harness::new();
    let s = h
        .store
        .create_session("A", Some(Duration::from_secs(100)))
        .await
        .unwrap();
    let sh = h.store.session("A", &s.id).await.unwrap();
    sh.set_with(
        "short",
        b("1"),
        SetOptions {
            ttl: Some(Duration::from_secs(10)),
            condition: None,
        },
    )
    .await
    .unwrap();
    sh.set_with(
        "long",
        b("2"),
        SetOptions {
            ttl: Some(Duration::from_secs(1000)),
            condition: None,
        },
    )
    .await
    .unwrap();
    h.advance(Duration::from_secs(11));
    assert_eq!(sh.get("short").await.unwrap(), None);
    assert_eq!(sh.get("long").await.unwrap(), Some(b("2")));
    h.advance(Duration::from_secs(90));
    // The session's end takes its longer-lived key with it.
    assert_session_gone(&sh).await;
    let stats = h.store.sweep().await.unwrap();
    assert_eq!(stats.sessions, 1);
    assert_eq!(h.store.instance_usage("A").await.unwrap(), 0);
}

/// Every point read works on a live session and sees only that session's
/// state: key info, several values and map fields at once (missing ones
/// absent, an empty list of names an empty answer), map and list lengths.
#[tokio::test]
async fn point_reads_on_a_live_session_see_its_own_state() {
    let h = Harness::new();
    let id = h.store.create_session("A", None).await.unwrap().id;
    let s = h.store.session("A", &id).await.unwrap();
    let other = h.store.create_session("A", None).await.unwrap().id;
    let o = h.store.session("A", &other).await.unwrap();
    let etag = s
        .set_with(
            "k",
            b("v"),
            SetOptions {
                ttl: Some(Duration::from_secs(60)),
                condition: None,
            },
        )
        .await
        .unwrap();
    s.map_set("m", fv(&[("f", "1"), ("g", "2")])).await.unwrap();
    s.list_append("l", bs(&["x", "y", "z"])).await.unwrap();
    o.set("k", b("other")).await.unwrap();

    let info = s.info("k").await.unwrap().unwrap();
    assert_eq!(info.etag, etag);
    assert_eq!(info.ttl, Some(Duration::from_secs(60)));
    assert_eq!(info.expires_at_ms, Some(T0 + 60_000));
    assert_eq!(
        s.info("m").await.unwrap().map(|i| i.kind),
        Some(wasm_state::store::KeyKind::Map)
    );
    assert_eq!(s.info("none").await.unwrap(), None);
    assert_eq!(
        s.get_many(&["k", "none", "k"]).await.unwrap(),
        [Some(b("v")), None, Some(b("v"))]
    );
    assert_eq!(
        s.get_many(&[]).await.unwrap(),
        Vec::<Option<Vec<u8>>>::new()
    );
    assert_eq!(
        s.map_get_many("m", &["g", "none", "f"]).await.unwrap(),
        [Some(b("2")), None, Some(b("1"))]
    );
    assert_eq!(
        s.map_get_many("m", &[]).await.unwrap(),
        Vec::<Option<Vec<u8>>>::new()
    );
    assert_eq!(
        s.map_get_many("none", &["f"]).await.unwrap(),
        [None::<Vec<u8>>]
    );
    assert_eq!(s.map_length("m").await.unwrap(), 2);
    assert_eq!(s.list_length("l").await.unwrap(), 3);
    assert_eq!(s.map_length("none").await.unwrap(), 0);
    assert_eq!(s.list_length("none").await.unwrap(), 0);
    // The other session and the instance scope see none of it.
    assert_eq!(o.get("k").await.unwrap(), Some(b("other")));
    assert_eq!(o.map_length("m").await.unwrap(), 0);
    assert_eq!(o.list_length("l").await.unwrap(), 0);
    assert_eq!(h.instance("A").info("k").await.unwrap(), None);
}

/// The instance registry: one account per instance, listed, and gone with destroy.
#[tokio::test]
async fn instances_are_registered_to_one_account() {
    let h = Harness::new();
    let a = h.store.register_instance("shop", "acme").await.unwrap();
    assert_eq!(
        (a.name.as_str(), a.account.as_str(), a.created_at_ms),
        ("shop", "acme", T0)
    );
    h.advance(Duration::from_secs(5));
    // Idempotent: the first registration stands.
    assert_eq!(h.store.register_instance("shop", "acme").await.unwrap(), a);
    let err = h
        .store
        .register_instance("shop", "other")
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::AccessDenied(_)), "{err:?}");
    h.store.register_instance("blog", "acme").await.unwrap();
    let names: Vec<_> = h
        .store
        .list_instances()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["blog", "shop"]);
    h.instance("shop").set("k", b("v")).await.unwrap();
    h.store.destroy_instance("shop").await.unwrap();
    assert_eq!(h.store.instance_info("shop").await.unwrap(), None);
    assert_eq!(h.instance("shop").get("k").await.unwrap(), None);
    let blog = h.store.instance_info("blog").await.unwrap().unwrap();
    assert_eq!(
        (
            blog.name.as_str(),
            blog.account.as_str(),
            blog.created_at_ms
        ),
        ("blog", "acme", T0 + 5_000)
    );
    // Once destroyed, the name is free for any account.
    assert_eq!(
        h.store
            .register_instance("shop", "other")
            .await
            .unwrap()
            .account,
        "other"
    );
}

/// A session TTL over the host's maximum is refused; at the maximum it works.
#[tokio::test]
async fn session_ttl_is_bounded_by_the_host() {
    let h = Harness::with_limits(Limits {
        max_session_ttl: Duration::from_secs(3600),
        ..Limits::default()
    });
    let err = h
        .store
        .create_session("a", Some(Duration::from_secs(3601)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StateError::InvalidArgument(ref m) if m.contains("maximum of 3600 s")),
        "{err:?}"
    );
    let s = h
        .store
        .create_session("a", Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    let err = h
        .store
        .extend_session("a", &s.id, Duration::from_secs(7200))
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::InvalidArgument(_)), "{err:?}");
    assert_eq!(
        h.store
            .session_info("a", &s.id)
            .await
            .unwrap()
            .expires_at_ms,
        s.expires_at_ms,
        "unchanged"
    );
    assert_eq!(
        h.store.list_sessions("a").await.unwrap().len(),
        1,
        "nothing created by the refused call"
    );
}

/// `session_count` (what `/metrics` reports) is the number of live
/// sessions `list_sessions` lists, at every step: created, ended, expired
/// at and after its last millisecond but not yet swept, swept, extended;
/// other instances' sessions never count.
#[tokio::test]
async fn session_count_is_the_number_of_live_sessions() {
    let h = Harness::new();
    let agree = |what: &'static str| {
        let store = h.store.clone();
        async move {
            let listed = store.list_sessions("A").await.unwrap().len() as u64;
            assert_eq!(store.session_count("A").await.unwrap(), listed, "{what}");
            listed
        }
    };
    assert_eq!(agree("none yet").await, 0);
    let short = h
        .store
        .create_session("A", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let long = h.store.create_session("A", None).await.unwrap();
    let ended = h.store.create_session("A", None).await.unwrap();
    let b = h
        .store
        .create_session("B", Some(Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(agree("three").await, 3);
    assert!(h.store.end_session("A", &ended.id).await.unwrap());
    assert_eq!(agree("one ended").await, 2);
    // B's expired session is in the expiry index too; it is not A's.
    h.advance(Duration::from_secs(60));
    assert_eq!(
        h.store.session_count("B").await.unwrap(),
        0,
        "B's session expired {}",
        b.id
    );
    // At its last millisecond `short` still lives (it opens, as a key
    // still reads), and is listed and counted so; a millisecond later not.
    assert_eq!(agree("short at its last millisecond").await, 2);
    h.store.session("A", &short.id).await.unwrap();
    h.advance(Duration::from_millis(1));
    assert_eq!(agree("short expired, not swept").await, 1);
    assert!(h.store.session("A", &short.id).await.is_err());
    h.advance(Duration::from_secs(1));
    assert_eq!(agree("later").await, 1);
    h.store.sweep().await.unwrap();
    assert_eq!(agree("swept").await, 1);
    h.store
        .extend_session("A", &long.id, Duration::from_secs(5))
        .await
        .unwrap();
    h.advance(Duration::from_millis(5001));
    assert_eq!(agree("extended, then expired").await, 0);
    assert!(h.store.end_session("A", &short.id).await.is_ok());
    assert_eq!(agree("end of an expired one").await, 0);

    // Sessions of an earlier life of the instance, destroyed before they
    // expired, do not count against its next life when their time comes.
    for _ in 0..3 {
        h.store
            .create_session("A", Some(Duration::from_secs(10)))
            .await
            .unwrap();
    }
    h.store.destroy_instance("A").await.unwrap();
    h.store.create_session("A", None).await.unwrap();
    assert_eq!(agree("a new life").await, 1);
    h.advance(Duration::from_millis(10_001));
    assert_eq!(agree("the old life's sessions due").await, 1);
    assert!(matches!(
        h.store.session_count("").await,
        Err(StateError::InvalidArgument(_))
    ));
}
