//! The standard `wasi:keyvalue` on wasm-state: guests written only against
//! the standard WIT with wit-bindgen (`tests/guests/kv-draft`,
//! `tests/guests/kv-draft2`, `examples/guests/kv-counter`) on the real host,
//! the data they write seen through every other API, and the HTTP counter
//! under `wasm-state serve`.

mod common;
mod dapr_support;
mod http_support;

use std::process::Command;

use http_support::ServeProcess;
use wasm_state::api::dapr::{DaprOptions, KeyPrefix, ScopeTarget, StoreKind, StoreSpec};
use wasm_state::runtime::{Host, HostConfig, RunOptions, RunOutput};

async fn run(host: &Host, instance: &str, args: &[&str], session: Option<&str>) -> RunOutput {
    host.run(
        instance,
        RunOptions {
            args: args.iter().map(|a| a.to_string()).collect(),
            session: session.map(str::to_owned),
            capture: true,
            ..Default::default()
        },
    )
    .await
    .expect("run")
}

/// Run and insist on success; the stdout.
async fn ok(host: &Host, instance: &str, args: &[&str]) -> String {
    let out = run(host, instance, args, None).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.exit_code,
        0,
        "{instance} {args:?}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_guests_run_on_the_durable_scoped_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = HostConfig::new(dir.path());
    config
        .keyvalue_buckets
        .insert_spec("cache=instance:cache/")
        .unwrap();
    config
        .keyvalue_buckets
        .insert_spec("shared=account")
        .unwrap();
    let host = Host::open(config).unwrap();
    // One compile per guest: draft and draft2 each in an account of their own.
    host.deploy_as(
        "kvd",
        "acct-d",
        &std::fs::read(wasm_state_e2e::KV_DRAFT).unwrap(),
    )
    .await
    .unwrap();
    host.deploy_as(
        "kvd2",
        "acct-d2",
        &std::fs::read(wasm_state_e2e::KV_DRAFT2).unwrap(),
    )
    .await
    .unwrap();
    host.deploy_as(
        "probe",
        "acct-d",
        &std::fs::read(wasm_state_e2e::PROBE).unwrap(),
    )
    .await
    .unwrap();

    // Every function of each version, in every bucket kind (with a session).
    let store = host.store().clone();
    let session = store.create_session("kvd", None).await.unwrap();
    let out = run(&host, "kvd", &["exercise"], Some(&session.id)).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.exit_code,
        0,
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "ok session bucket",
        "ok open",
        "ok store",
        "ok atomics",
        "ok batch",
        "exercise passed",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing {line:?}:\n{stdout}"
        );
    }
    let stdout = ok(&host, "kvd2", &["exercise"]).await;
    for line in [
        "ok store",
        "ok increment",
        "ok cas",
        "ok batch",
        "ok list-keys",
        "exercise passed",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing {line:?}:\n{stdout}"
        );
    }
    // The session bucket wrote into that session's scope.
    let s = store.session("kvd", &session.id).await.unwrap();
    assert_eq!(
        s.get("in-session").await.unwrap().as_deref(),
        Some(&b"yes"[..])
    );

    // wasi:keyvalue → our state API, the SDK (a guest of the same account)
    // and the Dapr API.
    ok(&host, "kvd", &["set", "", "color", "\"blue\""]).await;
    ok(
        &host,
        "kvd",
        &["set", "account", "team", "{\"name\":\"core\"}"],
    )
    .await;
    let inst = store.instance("kvd").unwrap();
    assert_eq!(
        inst.get("color").await.unwrap().as_deref(),
        Some(&b"\"blue\""[..])
    );
    let lines = common::probe(&host, "probe", &["use-account", "get team"]).await;
    assert_eq!(common::json(&lines[1]), serde_json::json!({"name": "core"}));
    let spec = StoreSpec {
        name: "kvd".into(),
        kind: StoreKind::Redb(ScopeTarget::Instance("kvd".into())),
        key_prefix: KeyPrefix::None,
        source: None,
    };
    let mut api = dapr_support::Api::start(store.clone(), vec![spec], DaprOptions::default()).await;
    let r = http_support::get(api.addr, "/v1.0/state/kvd/color", &[]).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "\"blue\""));

    // … and the other way round: Dapr, our API and the SDK write, the
    // standard guest reads.
    let r = http_support::post(
        api.addr,
        "/v1.0/state/kvd",
        &[("content-type", "application/json")],
        r#"[{"key":"from-dapr","value":{"n":1}}]"#,
    )
    .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.body);
    api.stop().await;
    assert_eq!(
        ok(&host, "kvd", &["get", "", "from-dapr"]).await,
        "{\"n\":1}\n"
    );
    inst.increment("visits", 41).await.unwrap();
    assert_eq!(
        ok(&host, "kvd", &["incr", "default", "visits", "1"]).await,
        "42\n"
    );
    assert_eq!(
        inst.get("visits").await.unwrap().as_deref(),
        Some(&b"42"[..])
    );
    common::probe(&host, "probe", &["use-account", "set from-sdk [1,2]"]).await;
    assert_eq!(
        ok(&host, "kvd", &["get", "account", "from-sdk"]).await,
        "[1,2]\n"
    );
    // A map (written through our API) is a key but not a value.
    inst.map_set("profile", vec![("a".into(), b"1".to_vec())])
        .await
        .unwrap();
    let got = ok(&host, "kvd", &["get", "", "profile"]).await;
    assert!(
        got.starts_with("error ") && got.contains("wrong type: key holds a map"),
        "{got}"
    );
    assert!(
        ok(&host, "kvd", &["keys", ""])
            .await
            .lines()
            .any(|k| k == "profile")
    );

    // A counter made negative through our API cannot be returned as the
    // draft's u64: an error, and nothing changes.
    inst.increment("below", -5).await.unwrap();
    let got = ok(&host, "kvd", &["incr", "", "below", "2"]).await;
    assert!(got.contains("would be negative"), "{got}");
    assert_eq!(
        inst.get("below").await.unwrap().as_deref(),
        Some(&b"-5"[..])
    );
    assert_eq!(ok(&host, "kvd", &["incr", "", "below", "5"]).await, "0\n");

    // Operator-named buckets: a prefix in the instance scope, the account.
    ok(&host, "kvd", &["set", "cache", "page:1", "cached"]).await;
    assert_eq!(
        inst.get("cache/page:1").await.unwrap().as_deref(),
        Some(&b"cached"[..])
    );
    assert_eq!(ok(&host, "kvd", &["keys", "cache"]).await, "page:1\n");
    // The key that is the prefix itself is no key of the bucket.
    inst.set("cache/", b"x".to_vec()).await.unwrap();
    assert_eq!(ok(&host, "kvd", &["keys", "cache"]).await, "page:1\n");
    assert_eq!(
        ok(&host, "kvd", &["get", "shared", "team"]).await,
        "{\"name\":\"core\"}\n"
    );

    // Concurrent increments (draft) and compare-and-swap loops (draft2)
    // lose nothing.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let h = host.clone();
        tasks.spawn(async move {
            for _ in 0..10 {
                assert_eq!(
                    run(&h, "kvd", &["incr", "", "hot", "1"], None)
                        .await
                        .exit_code,
                    0
                );
            }
        });
        let h = host.clone();
        tasks.spawn(async move {
            let out = run(&h, "kvd2", &["cas-incr", "", "cas-hot", "10"], None).await;
            assert_eq!(out.exit_code, 0, "{}", String::from_utf8_lossy(&out.stderr));
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    assert_eq!(inst.get("hot").await.unwrap().as_deref(), Some(&b"80"[..]));
    let kvd2 = store.instance("kvd2").unwrap();
    assert_eq!(
        kvd2.get("cas-hot").await.unwrap().as_deref(),
        Some(&b"80"[..])
    );

    // get-many: more keys than one transaction holds are read in chunks;
    // values adding up to more than the host's reply limit (32 MiB) are an
    // error the guest can read, not a host building them all.
    assert_eq!(
        ok(&host, "kvd2", &["get-copies", "", "small", "10", "1000"]).await,
        "ok 10000\n"
    );
    let got = ok(&host, "kvd2", &["get-copies", "", "big", "1000000", "140"]).await;
    assert!(
        got.starts_with("error ")
            && got.contains("reply too large: it would hold over 33554432 bytes"),
        "{got}"
    );
}

/// The HTTP counter (`examples/guests/kv-counter`) under a real `wasm-state
/// serve` process: exact under concurrency, durable across a restart,
/// operator buckets from the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standard_http_counter_is_durable_under_serve() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let global = ["--data", data.as_str(), "--kv-bucket", "hits=account:hits/"];
    let mut serve = ServeProcess::start(&global, &[wasm_state_e2e::KV_COUNTER]).await;
    let addr = serve.addr;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        tasks.spawn(async move {
            for _ in 0..10 {
                let r = http_support::post(addr, "/hit", &[], "").await;
                assert_eq!(r.status.as_u16(), 200, "{}", r.body);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    assert_eq!(http_support::get(addr, "/hits", &[]).await.body, "80\n");
    let r = http_support::post(addr, "/hit?bucket=hits", &[], "").await;
    assert_eq!(r.body, "1\n");
    let r = http_support::get(addr, "/hits?bucket=nope", &[]).await;
    assert_eq!(
        (r.status.as_u16(), r.body.as_str()),
        (404, "no such store\n")
    );
    // SIGKILL and restart: the count is still there; the operator bucket
    // is the account's.
    serve.kill();
    let serve = ServeProcess::start_on(addr, &global, &[wasm_state_e2e::KV_COUNTER]).await;
    assert_eq!(http_support::post(addr, "/hit", &[], "").await.body, "81\n");
    assert_eq!(
        http_support::get(addr, "/hits?bucket=hits", &[]).await.body,
        "1\n"
    );
    drop(serve);
    let bin = common::binary("wasm-state");
    // The CLI sees the same keys.
    let out = Command::new(bin)
        .arg("--data")
        .arg(dir.path())
        .args(["state", "get", "hits", "-i", "kv-counter"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "81");
    let out = Command::new(bin)
        .arg("--data")
        .arg(dir.path())
        .args(["state", "keys", "--shared"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hits/hits");
    // A bad mapping is refused with what to write.
    let out = Command::new(bin)
        .arg("--data")
        .arg(dir.path())
        .args(["--kv-bucket", "default=account", "serve"])
        .arg(wasm_state_e2e::KV_COUNTER)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("built-in bucket name") && err.contains("NAME=instance[:PREFIX]"),
        "{err}"
    );
}
