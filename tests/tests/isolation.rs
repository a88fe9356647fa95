//! Isolation through the real host: instances never see each other's keys
//! or sessions, the account scope is shared by the instances of one account
//! only, sessions of one instance are apart, and destroying an instance
//! takes only its own state.

mod common;

use std::path::Path;

use common::{host_with_probes, json, probe, probe1, session_id};
use serde_json::json;
use wasm_state::runtime::{HostError, RunOptions};
use wasm_state::store::StateError;

#[tokio::test]
async fn instances_have_their_own_keys() {
    let dir = tempfile::tempdir().unwrap();
    // "ab" would share a prefix with "a" in a naive layout.
    let host = host_with_probes(dir.path(), &["a", "b", "ab"]).await;
    probe(
        &host,
        "a",
        &[r#"set k "A""#, "map-set m f 1", "list-append l 1"],
    )
    .await;
    probe(&host, "b", &[r#"set k "B""#]).await;
    assert_eq!(probe1(&host, "a", "get k").await, r#""A""#);
    assert_eq!(
        probe(
            &host,
            "b",
            &["get k", "map-get m f", "list-len l", "all-keys"]
        )
        .await,
        [r#""B""#, "null", "0", r#"["k"]"#]
    );
    assert_eq!(probe1(&host, "ab", "all-keys").await, "[]");
    // Deleting everything of B's leaves A's.
    assert_eq!(probe1(&host, "b", "delete-prefix k").await, "1");
    assert_eq!(
        probe1(&host, "a", "all-keys").await,
        json!(["k", "l", "m"]).to_string()
    );
}

#[tokio::test]
async fn an_instance_cannot_reach_another_instances_session() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_probes(dir.path(), &["a", "b"]).await;
    let out = probe(
        &host,
        "a",
        &[
            "session-create 600",
            "use-session @session",
            r#"set secret "a's""#,
        ],
    )
    .await;
    let id = session_id(&out[0]);
    let expires = json(&out[0])["expires_at_ms"].clone();

    let out = probe(
        &host,
        "b",
        &[
            &format!("session-open {id}"),
            &format!("use-session {id}"),
            "get secret",
            &format!("session-extend {id} 1"),
            &format!("session-end {id}"),
            "session-create 600",
            "use-session @session",
            "get secret",
        ],
    )
    .await;
    assert_eq!(out[0], "error:no-such-session");
    assert_eq!(out[1], "error:no-such-session");
    assert_eq!(out[2], "null", "still in B's own instance scope");
    assert_eq!(out[3], "error:no-such-session");
    assert_eq!(out[4], "false");
    assert_eq!(out[7], "null", "B's own session is empty");

    // A's session is untouched by B's attempts.
    let out = probe(&host, "a", &[&format!("use-session {id}"), "get secret"]).await;
    assert_eq!(json(&out[0])["expires_at_ms"], expires);
    assert_eq!(out[1], r#""a's""#);
    assert!(matches!(
        host.store().session_info("b", &id).await,
        Err(StateError::NoSuchSession)
    ));

    // Handing A's session to B's run is refused; to A's it is its scope.
    let run = |instance: &'static str| {
        let host = host.clone();
        let options = RunOptions {
            args: vec!["use-current".into(), "get secret".into()],
            session: Some(id.clone()),
            capture: true,
            ..Default::default()
        };
        async move { host.run(instance, options).await }
    };
    let err = run("b").await.unwrap_err();
    assert!(
        matches!(err, HostError::State(StateError::NoSuchSession)),
        "{err:?}"
    );
    let out = run("a").await.unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(session_id(lines[0]), id);
    assert_eq!(lines[1], r#""a's""#);
}

#[tokio::test]
async fn the_account_scope_is_shared_by_the_accounts_instances_only() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_probes(dir.path(), &["a", "b"]).await;
    host.deploy_as(
        "c",
        "other",
        &std::fs::read(Path::new(wasm_state_e2e::PROBE)).unwrap(),
    )
    .await
    .unwrap();
    probe(&host, "a", &["use-account", "set shared 1", "incr hits 1"]).await;
    assert_eq!(
        probe(
            &host,
            "b",
            &[
                "use-account",
                "get shared",
                "incr hits 1",
                "use-instance",
                "get shared"
            ]
        )
        .await,
        [r#""account""#, "1", "2", r#""instance""#, "null"]
    );
    assert_eq!(
        probe(&host, "a", &["get shared", "use-account", "get hits"]).await,
        ["null", r#""account""#, "2"]
    );
    assert_eq!(
        probe(&host, "c", &["use-account", "get shared", "all-keys"]).await,
        [r#""account""#, "null", "[]"]
    );
    let default = host.store().account("default").unwrap();
    assert_eq!(default.get("hits").await.unwrap(), Some(b"2".to_vec()));
}

#[tokio::test]
async fn sessions_of_one_instance_are_apart() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_probes(dir.path(), &["a"]).await;
    let out = probe(&host, "a", &["session-create 600", "session-create 600"]).await;
    let (s1, s2) = (session_id(&out[0]), session_id(&out[1]));
    assert_ne!(s1, s2);
    let out = probe(
        &host,
        "a",
        &[
            "set k 0",
            &format!("use-session {s1}"),
            "set k 1",
            "list-append l 1",
            &format!("use-session {s2}"),
            "get k",
            "list-len l",
            "set k 2",
            &format!("use-session {s1}"),
            "get k",
            "all-keys",
            "use-instance",
            "get k",
            "all-keys",
        ],
    )
    .await;
    assert_eq!(out[5], "null");
    assert_eq!(out[6], "0");
    assert_eq!(out[9], "1");
    assert_eq!(out[10], r#"["k","l"]"#);
    assert_eq!(out[12], "0");
    assert_eq!(out[13], r#"["k"]"#);

    // Ending S1 takes only S1's keys.
    let out = probe(
        &host,
        "a",
        &[
            &format!("session-end {s1}"),
            &format!("use-session {s1}"),
            &format!("use-session {s2}"),
            "get k",
            "use-instance",
            "get k",
        ],
    )
    .await;
    assert_eq!(out[0], "true");
    assert_eq!(out[1], "error:no-such-session");
    assert_eq!(out[3], "2");
    assert_eq!(out[5], "0");
}

#[tokio::test]
async fn destroying_an_instance_leaves_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_probes(dir.path(), &["a", "b"]).await;
    let out = probe(
        &host,
        "a",
        &[
            r#"set k "A""#,
            "use-account",
            "set shared 1",
            "session-create 600",
            "use-session @session",
            "set sk 1",
        ],
    )
    .await;
    let s = session_id(&out[3]);
    let out = probe(
        &host,
        "b",
        &[
            r#"set k "B""#,
            "session-create 600",
            "use-session @session",
            "set sk 2",
        ],
    )
    .await;
    let sb = session_id(&out[1]);

    host.destroy("a").await.unwrap();
    assert_eq!(host.deployed(), ["b"]);
    assert!(matches!(
        host.store().session_info("a", &s).await,
        Err(StateError::NoSuchSession)
    ));
    assert!(
        !host
            .store()
            .instance("a")
            .unwrap()
            .exists("k")
            .await
            .unwrap()
    );

    // B keeps its keys, its session and the account's keys.
    let out = probe(
        &host,
        "b",
        &[
            "get k",
            &format!("use-session {sb}"),
            "get sk",
            "use-account",
            "get shared",
        ],
    )
    .await;
    assert_eq!(out[0], r#""B""#);
    assert_eq!(session_id(&out[1]), sb);
    assert_eq!(out[2], "2");
    assert_eq!(out[4], "1");

    // A deployed again starts empty; its old session is gone.
    common::deploy_probes(&host, &["a"]).await;
    assert_eq!(
        probe(
            &host,
            "a",
            &["get k", "all-keys", &format!("use-session {s}")]
        )
        .await,
        ["null", "[]", "error:no-such-session"]
    );
}
