//! State survives a host restart: what a guest wrote through one host is
//! read back by a guest through a new host on the same data directory.

mod common;

use common::{host_with_probes, json, probe, session_id, string};
use serde_json::json;

#[tokio::test]
async fn state_written_by_a_guest_survives_a_host_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (session, etags, expires) = {
        let host = host_with_probes(dir.path(), &["p", "other"]).await;
        let out = probe(
            &host,
            "p",
            &[
                r#"set v {"name":"Ada","tags":["a","b"]}"#,
                r#"map-set m f1 "x""#,
                "map-set m f2 2",
                r#"list-append l "one""#,
                r#"list-append l "two""#,
                r#"list-prepend l "zero""#,
                "incr c 5",
                "set-ttl t 3600000 1",
                "session-create 3600",
                "use-session @session",
                r#"set sk "in-session""#,
                "list-append sl 1",
                "use-account",
                "set ak 7",
            ],
        )
        .await;
        assert!(out.iter().all(|l| !l.starts_with("error:")), "{out:?}");
        probe(&host, "other", &["set k 1"]).await;
        let expires = json(&out[8])["expires_at_ms"].clone();
        (
            session_id(&out[8]),
            [string(&out[0]), string(&out[7])],
            expires,
        )
        // The host (engine, store, writer thread) is dropped here.
    };

    let host = host_with_probes(dir.path(), &["p"]).await;
    let out = probe(
        &host,
        "p",
        &[
            "get-entry v",
            "map-get-all m",
            "list-range l 0 -1",
            "get c",
            "incr c 1",
            "ttl t",
            "get t",
            "session-open @none",
            &format!("use-session {session}"),
            "get sk",
            "list-range sl 0 -1",
            "use-account",
            "get ak",
            "use-instance",
            "set v2 1",
            "all-keys",
        ],
    )
    .await;
    let entry = json(&out[0]);
    assert_eq!(entry["value"], json!({"name": "Ada", "tags": ["a", "b"]}));
    assert_eq!(entry["etag"], json!(etags[0]), "etags survive");
    assert_eq!(entry["ttl_ms"], json!(null));
    assert_eq!(json(&out[1]), json!({"f1": "x", "f2": 2}));
    assert_eq!(json(&out[2]), json!(["zero", "one", "two"]));
    assert_eq!(out[3], "5");
    assert_eq!(out[4], "6");
    let ttl = json(&out[5]).as_u64().expect("a TTL survives");
    assert!(ttl > 3_500_000 && ttl <= 3_600_000, "{ttl}");
    assert_eq!(out[6], "1");
    assert_eq!(out[7], "error:no-such-session");
    assert_eq!(json(&out[8])["expires_at_ms"], expires, "session kept");
    assert_eq!(out[9], r#""in-session""#);
    assert_eq!(out[10], "[1]");
    assert_eq!(out[12], "7");
    // The etag counter continues: a new write never reuses an old etag.
    let new = string(&out[14]);
    assert!(!etags.contains(&new), "{new} reused");
    assert!(new > etags[1], "{new} after {:?}", etags);
    assert_eq!(json(&out[15]), json!(["c", "l", "m", "t", "v", "v2"]));

    // The other instance's state survived too (read host-side: it is not
    // deployed in the new host).
    let other = host.store().instance("other").unwrap();
    assert_eq!(other.get("k").await.unwrap(), Some(b"1".to_vec()));
    let sessions = host.store().list_sessions("p").await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].id, session);
}
