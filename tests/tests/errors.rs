//! Typed errors reach the guest: each WIT `error` case the store raises
//! arrives in the guest as the SDK's matching `Error` case (the `probe`
//! guest prints it as `error:<wit-case>`), and the failed call wrote nothing.

mod common;

use common::{deploy_probes, host_with_probes, json, probe, probe1, string};
use serde_json::json;
use wasm_state::runtime::{Host, HostConfig};

#[tokio::test]
async fn wrong_type_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_probes(dir.path(), &["p"]).await;
    let out = probe(
        &host,
        "p",
        &[
            "map-set m f 1",
            "get m",
            "incr m 1",
            "list-append m 2",
            "map-get-all m",
            "list-append l 1",
            "map-set l f 2",
            "map-get l f",
            "list-range l 0 -1",
            "set v 3",
            "list-append v 4",
            "map-incr v f 1",
            "get v",
        ],
    )
    .await;
    assert_eq!(
        out,
        [
            "1",
            "error:wrong-type",
            "error:wrong-type",
            "error:wrong-type",
            r#"{"f":1}"#,
            "1",
            "error:wrong-type",
            "error:wrong-type",
            "[1]",
            out[9].as_str(),
            "error:wrong-type",
            "error:wrong-type",
            "3",
        ]
    );
}

#[tokio::test]
async fn counters_not_an_integer_and_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_probes(dir.path(), &["p"]).await;
    let out = probe(
        &host,
        "p",
        &[
            r#"set s "7""#,
            "incr s 1",
            "set f 1.5",
            "incr f 1",
            "set max 9223372036854775807",
            "incr max 1",
            "set min -9223372036854775808",
            "incr min -1",
            r#"map-set m s "x""#,
            "map-incr m s 1",
            "map-set m n 9223372036854775807",
            "map-incr m n 1",
            "get s",
            "get f",
            "get max",
            "get min",
            "map-get-all m",
            "incr fresh 9223372036854775807",
            "incr fresh 1",
            "get fresh",
        ],
    )
    .await;
    assert_eq!(out[1], "error:not-an-integer");
    assert_eq!(out[3], "error:not-an-integer");
    assert_eq!(out[5], "error:overflow");
    assert_eq!(out[7], "error:overflow");
    assert_eq!(out[9], "error:not-an-integer");
    assert_eq!(out[11], "error:overflow");
    assert_eq!(out[12], r#""7""#);
    assert_eq!(out[13], "1.5");
    assert_eq!(out[14], "9223372036854775807");
    assert_eq!(out[15], "-9223372036854775808");
    assert_eq!(
        json(&out[16]),
        json!({"n": 9223372036854775807i64, "s": "x"})
    );
    assert_eq!(out[17], "9223372036854775807");
    assert_eq!(out[18], "error:overflow");
    assert_eq!(out[19], "9223372036854775807");
}

#[tokio::test]
async fn etag_conditions_and_invalid_etags() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_probes(dir.path(), &["p"]).await;
    let out = probe(&host, "p", &["set k 1", "set k 2"]).await;
    let (stale, current) = (string(&out[0]), string(&out[1]));
    assert_ne!(stale, current);

    let out = probe(
        &host,
        "p",
        &[
            &format!("set-if-match k {stale} 3"),
            "get k",
            "set-if-match k zzzz 4",
            "set-if-match k ffffffffffffffff 4",
            &format!("set-if-match k {} 4", &current[..current.len() - 1]),
            &format!("set-if-match missing {current} 4"),
            "exists missing",
            "set-if-absent k 5",
            "set-if-exists nope 6",
            "exists nope",
            "get k",
            &format!("set-if-match k {current} 7"),
            "get k",
        ],
    )
    .await;
    assert_eq!(out[0], "error:etag-mismatch");
    assert_eq!(out[1], "2");
    assert_eq!(out[2], "error:invalid-etag");
    assert_eq!(out[3], "error:invalid-etag", "an etag above the counter");
    assert_eq!(out[4], "error:invalid-etag", "a truncated etag");
    assert_eq!(out[5], "error:etag-mismatch");
    assert_eq!(out[6], "false");
    assert_eq!(out[7], "error:already-exists");
    assert_eq!(out[8], "error:not-found");
    assert_eq!(out[9], "false");
    assert_eq!(out[10], "2", "nothing was written by the failed writes");
    assert_ne!(string(&out[11]), current);
    assert_eq!(out[12], "7");
    // The store agrees.
    let st = host.store().instance("p").unwrap();
    assert_eq!(st.get("k").await.unwrap(), Some(b"7".to_vec()));
    assert!(!st.exists("missing").await.unwrap());
}

#[tokio::test]
async fn key_too_large_on_writes_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_probes(dir.path(), &["p"]).await;
    let too_long = "k".repeat(2049);
    let longest = "k".repeat(2048);
    let field = "f".repeat(2049);
    let out = probe(
        &host,
        "p",
        &[
            &format!("set {too_long} 1"),
            &format!("get {too_long}"),
            &format!("exists {too_long}"),
            &format!("list-append {too_long} 1"),
            &format!("map-set m {field} 1"),
            &format!("set {longest} 2"),
            &format!("get {longest}"),
            "exists m",
            "all-keys",
        ],
    )
    .await;
    assert_eq!(out[0], "error:key-too-large");
    assert_eq!(out[1], "error:key-too-large", "checked on reads too");
    assert_eq!(out[2], "error:key-too-large");
    assert_eq!(out[3], "error:key-too-large");
    assert_eq!(out[4], "error:key-too-large", "map fields too");
    assert!(out[5].starts_with('"'), "2048 bytes is allowed: {}", out[5]);
    assert_eq!(out[6], "2");
    assert_eq!(out[7], "false");
    assert_eq!(json(&out[8]), json!([longest]));
}

#[tokio::test]
async fn value_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_probes(dir.path(), &["p"]).await;
    let out = probe(
        &host,
        "p",
        &[
            "set-big k 1048577",
            "exists k",
            "set-big k 1048576",
            "exists k",
        ],
    )
    .await;
    assert_eq!(
        out,
        ["error:value-too-large", "false", out[2].as_str(), "true"]
    );
    assert!(out[2].starts_with('"'), "1 MiB is allowed: {}", out[2]);
}

#[tokio::test]
async fn no_such_session_for_unknown_malformed_and_ended_ids() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_probes(dir.path(), &["p"]).await;
    let unknown = "AAAAAAAAAAAAAAAAAAAAAA"; // well-formed, never issued
    let out = probe(
        &host,
        "p",
        &[
            &format!("session-open {unknown}"),
            &format!("use-session {unknown}"),
            &format!("session-extend {unknown} 60"),
            "session-open not/a/session",
            "session-open ",
            "session-create 600",
            "use-session @session",
            "set k 1",
            "session-end @session",
            "use-session @session",
            "session-open @session",
            "session-extend @session 60",
            "session-end @session",
        ],
    )
    .await;
    for i in [0, 1, 2, 3, 4] {
        assert_eq!(out[i], "error:no-such-session", "command {i}");
    }
    assert_eq!(json(&out[7]).as_str().map(str::len), Some(16));
    assert_eq!(out[8], "true");
    for i in [9, 10, 11] {
        assert_eq!(out[i], "error:no-such-session", "command {i}");
    }
    assert_eq!(out[12], "false");
    assert!(host.store().list_sessions("p").await.unwrap().is_empty());
}

#[tokio::test]
async fn invalid_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_probes(dir.path(), &["p"]).await;
    let out = probe(
        &host,
        "p",
        &[
            "session-create 0",
            "set-ttl k 0 1",
            "exists k",
            "set  1",
            "get ",
            "delete-prefix ",
            "session-create 600",
            "session-extend @session 0",
        ],
    )
    .await;
    for i in [0, 1, 3, 4, 5, 7] {
        assert_eq!(out[i], "error:invalid-argument", "command {i}: {out:?}");
    }
    assert_eq!(out[2], "false");
    // Only the one valid session exists, and its expiry was not changed.
    let sessions = host.store().list_sessions("p").await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        json(&out[6])["expires_at_ms"].as_u64(),
        Some(sessions[0].expires_at_ms)
    );
}

#[tokio::test]
async fn quota_exceeded_writes_nothing_and_spares_other_instances() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = HostConfig::new(dir.path());
    config.store.limits.instance_quota_bytes = 4096;
    let host = Host::open(config).unwrap();
    deploy_probes(&host, &["p", "q"]).await;
    let out = probe(
        &host,
        "p",
        &[
            "set-big a 2000",
            "set-big b 3000",
            "exists b",
            "list-append l 1",
            "session-create 600",
            "use-session @session",
            "set-big s 3000",
            "exists s",
            "use-instance",
            "delete a",
            "set-big b 3000",
            "exists b",
        ],
    )
    .await;
    assert!(out[0].starts_with('"'), "{out:?}");
    assert_eq!(out[1], "error:quota-exceeded");
    assert_eq!(out[2], "false");
    assert_eq!(out[3], "1", "small writes still fit");
    assert_eq!(out[6], "error:quota-exceeded", "sessions count too");
    assert_eq!(out[7], "false");
    assert_eq!(out[9], "true");
    assert!(out[10].starts_with('"'), "deletes free quota: {out:?}");
    assert_eq!(out[11], "true");
    // Another instance has its own quota.
    assert!(probe1(&host, "q", "set-big b 3000").await.starts_with('"'));
    let st = host.store().instance("p").unwrap();
    assert!(!st.exists("a").await.unwrap());
    assert!(st.get("b").await.unwrap().is_some_and(|v| v.len() == 3000));
}

#[tokio::test]
async fn over_quota_an_instance_can_still_shrink() {
    // Data written under a large quota, then the host restarted with a
    // smaller one: growing writes fail, shrinking ones still succeed.
    let dir = tempfile::tempdir().unwrap();
    {
        let host = host_with_probes(dir.path(), &["p"]).await;
        let out = probe(
            &host,
            "p",
            &[
                "set-big a 3000",
                "set-big b 3000",
                "list-append l 1",
                "list-append l 2",
            ],
        )
        .await;
        assert!(out.iter().all(|l| !l.starts_with("error:")), "{out:?}");
    }
    let mut config = HostConfig::new(dir.path());
    config.store.limits.instance_quota_bytes = 4096;
    let host = Host::open(config).unwrap();
    deploy_probes(&host, &["p"]).await;
    let out = probe(
        &host,
        "p",
        &[
            "set-big c 10",
            "incr n 1",
            "list-pop l 1",
            "set-big a 2000",
            "exists c",
            "delete b",
            "set-big c 10",
        ],
    )
    .await;
    assert_eq!(out[0], "error:quota-exceeded");
    assert_eq!(out[1], "error:quota-exceeded");
    assert_eq!(out[2], "[1]", "pops free space");
    assert!(out[3].starts_with('"'), "a shrinking overwrite: {out:?}");
    assert_eq!(out[4], "false");
    assert_eq!(out[5], "true");
    assert!(out[6].starts_with('"'), "back under quota: {out:?}");
}

/// A whole-list or whole-map read, or a pop, over the host's reply limit
/// is `value-too-large` in the guest (not a trap after the host built it
/// all) and changes nothing; reads within it work.
#[tokio::test]
async fn a_reply_over_the_hosts_limit_is_value_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = HostConfig::new(dir.path());
    config.store.limits.max_reply_bytes = 64;
    let host = Host::open(config).unwrap();
    deploy_probes(&host, &["p"]).await;
    // Items of 22 bytes (a JSON string of 20 x's): three are 66.
    let item = format!("\"{}\"", "x".repeat(20));
    let append = format!("list-append l {item}");
    let field = |f: &str| format!("map-set m {f} {item}");
    let (fa, fb, fc) = (field("a"), field("b"), field("c"));
    let out = probe(
        &host,
        "p",
        &[
            &append,
            &append,
            &append,
            "list-range l 0 -1",
            "list-range l 0 1",
            "list-pop l 3",
            "list-len l",
            &fa,
            &fb,
            "map-get-all m",
            &fc,
            "map-get-all m",
            "map-len m",
        ],
    )
    .await;
    let two = json!(["x".repeat(20), "x".repeat(20)]).to_string();
    let both = json!({"a": "x".repeat(20), "b": "x".repeat(20)}).to_string();
    assert_eq!(
        out,
        [
            "1",
            "2",
            "3",
            "error:value-too-large",
            two.as_str(),
            "error:value-too-large",
            "3",
            "1",
            "1",
            both.as_str(),
            "1",
            "error:value-too-large",
            "3",
        ]
    );
}

/// The admin API's key view (the state explorer) pages a list whose page
/// would be over the reply limit: fewer items, and the offset of the next.
#[tokio::test]
async fn the_key_view_pages_a_list_over_the_reply_limit() {
    use wasm_state::admin::ops::{Admin, ScopeRef};
    let dir = tempfile::tempdir().unwrap();
    let mut config = HostConfig::new(dir.path());
    config.store.limits.max_reply_bytes = 350;
    let host = Host::open(config).unwrap();
    let items: Vec<Vec<u8>> = (0..10u8).map(|i| vec![b'a' + i; 100]).collect();
    host.store()
        .instance("p")
        .unwrap()
        .list_append("l", items)
        .await
        .unwrap();
    let admin = Admin::new(host);
    let scope = ScopeRef {
        instance: Some("p".into()),
        ..ScopeRef::default()
    };
    // 10 items (1,000 bytes) and 5 are over it, 3 fit.
    let view = admin.key(&scope, "l", 0, 50).await.unwrap();
    assert_eq!(view.items.as_ref().map(Vec::len), Some(3));
    assert_eq!(view.next_offset, Some(3));
    assert_eq!(view.length, Some(10));
    let view = admin.key(&scope, "l", 9, 50).await.unwrap();
    assert_eq!(view.items, Some(vec!["j".repeat(100)]));
    assert_eq!(view.next_offset, None);
}
