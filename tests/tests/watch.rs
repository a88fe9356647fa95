//! Change notifications end to end: a watcher built with the SDK
//! (`tests/guests/kv-watcher`, exporting the standard
//! `wasi:keyvalue/watcher`) deployed on the real host keeps an audit log
//! and a secondary index from notifications — after concurrent writes,
//! transactions and TTL expiry; a slow, sleeping or trapping watcher never
//! stalls writers or its queue; delivery survives a SIGKILL of `wasm-state serve`.

mod common;
mod http_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use http_support::ServeProcess;
use serde_json::Value;
use wasm_state::runtime::{GuestLimits, Host, HostConfig, WatchScope, WatcherStatus};
use wasm_state::store::{Limits, Op, OpKind, QueueOwner, SetOptions};

const WATCHER: &str = wasm_state_e2e::KV_WATCHER;

/// The watcher's audit log (its own instance scope), parsed.
async fn audit(host: &Host, name: &str) -> Vec<Value> {
    let s = host.store().instance(name).unwrap();
    s.list_range("watch/audit", 0, -1)
        .await
        .unwrap()
        .iter()
        .map(|b| {
            let line: String = serde_json::from_slice(b).unwrap();
            serde_json::from_str(&line).unwrap()
        })
        .collect()
}

/// Wait (bounded) until `done` holds of the audit log.
async fn audit_until(
    host: &Host,
    name: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let a = audit(host, name).await;
        if done(&a) {
            return a;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}; audit has {} entries; watchers: {:?}",
            a.len(),
            host.watcher_status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn status(host: &Host, name: &str, owner: QueueOwner) -> WatcherStatus {
    host.watcher_status()
        .into_iter()
        .find(|s| s.instance == name && s.owner == owner)
        .unwrap_or_else(|| {
            panic!(
                "no delivery of {name} to {owner:?}: {:?}",
                host.watcher_status()
            )
        })
}

fn email(w: usize, i: usize, v: usize) -> String {
    format!("{{\"email\":\"u{w}-{i}-v{v}@example.com\"}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_builds_an_audit_log_and_an_index_from_concurrent_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = HostConfig::new(dir.path());
    config.watch.insert(
        "idx".into(),
        vec![WatchScope::Instance, WatchScope::Account],
    );
    let host = Host::open(config).unwrap();
    host.deploy_file("idx", std::path::Path::new(WATCHER))
        .await
        .unwrap();
    let store = host.store().clone();

    // Four writers at once: 20 users each, 5 deleted, one transaction that
    // updates 3 (one of them twice: one change), an account write each.
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..4 {
        let store = store.clone();
        tasks.spawn(async move {
            let s = store.instance("idx").unwrap();
            for i in 0..20 {
                s.set(&format!("user/{w}-{i}"), email(w, i, 0).into_bytes())
                    .await
                    .unwrap();
            }
            for i in 0..5 {
                assert!(s.delete(&format!("user/{w}-{i}")).await.unwrap());
            }
            let set = |k: String, v: String| {
                Op::new(
                    k,
                    OpKind::Set {
                        value: v.into_bytes(),
                        ttl: None,
                    },
                )
            };
            s.commit(vec![
                set(format!("user/{w}-10"), email(w, 10, 1)),
                set(format!("user/{w}-11"), email(w, 11, 1)),
                set(format!("user/{w}-10"), email(w, 10, 2)),
                set(format!("user/{w}-12"), email(w, 12, 1)),
            ])
            .await
            .unwrap();
            // Not value changes: expiry, maps and lists are not reported.
            s.expire(&format!("user/{w}-13"), 3600, Default::default())
                .await
                .unwrap();
            s.persist(&format!("user/{w}-13")).await.unwrap();
            s.map_set(&format!("m{w}"), vec![("f".into(), b"1".to_vec())])
                .await
                .unwrap();
            store
                .account("default")
                .unwrap()
                .set(&format!("shared/{w}"), b"1".to_vec())
                .await
                .unwrap();
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    // Two values with a TTL: a set each, and a delete each when the
    // sweeper frees them.
    let s = store.instance("idx").unwrap();
    for k in ["otp/1", "otp/2"] {
        let ttl = SetOptions {
            ttl: Some(Duration::from_millis(300)),
            condition: None,
        };
        s.set_with(k, b"\"123456\"".to_vec(), ttl).await.unwrap();
    }
    // 80 sets + 20 deletes + 12 transaction changes + 2 TTL sets + 2
    // expiries on the instance queue; 4 on the account queue.
    let total = 80 + 20 + 12 + 4 + 4;
    let log = audit_until(&host, "idx", "every change", |a| a.len() >= total).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log2 = audit(&host, "idx").await;
    assert_eq!(log2.len(), total, "exactly one entry per change");
    assert_eq!(log, log2[..log.len()]);

    // Per queue, seqs strictly increase (commit order); no key of the
    // watcher's own (watch/…) was reported back to it.
    for queue in ["instance", "account"] {
        let seqs: Vec<u64> = log2
            .iter()
            .filter(|e| e["scope"] == queue)
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{queue}: {seqs:?}");
    }
    assert!(
        log2.iter()
            .all(|e| !e["key"].as_str().unwrap().starts_with("watch/"))
    );
    assert_eq!(log2.iter().filter(|e| e["scope"] == "account").count(), 4);
    // Each writer's own changes are in its commit order, and the
    // transaction's double write of user/w-10 arrived once, final value.
    for w in 0..4 {
        let mine: Vec<(&str, &Value)> = log2
            .iter()
            .filter(|e| {
                e["key"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("user/{w}-"))
            })
            .map(|e| (e["key"].as_str().unwrap(), &e["value"]))
            .collect();
        assert_eq!(mine.len(), 20 + 5 + 3);
        assert_eq!(mine[0].0, format!("user/{w}-0"));
        assert!(
            mine[20..25].iter().all(|(_, v)| v.is_null()),
            "deletes: {:?}",
            &mine[20..25]
        );
        let ten: Vec<&Value> = mine
            .iter()
            .filter(|(k, _)| *k == format!("user/{w}-10"))
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(ten.len(), 2);
        assert_eq!(ten[1]["email"], format!("u{w}-10-v2@example.com"));
    }
    // Expiry arrives as a delete.
    let otp: Vec<&Value> = log2
        .iter()
        .filter(|e| e["key"] == "otp/1")
        .map(|e| &e["value"])
        .collect();
    assert_eq!(otp, [&Value::String("123456".into()), &Value::Null]);

    // The index equals the one computed from the users as they are now.
    let mut want = BTreeMap::new();
    let page = s
        .keys(wasm_state::store::KeyListing {
            prefix: Some("user/".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.keys.len(), 60);
    for k in &page.keys {
        let v: Value = serde_json::from_slice(&s.get(k).await.unwrap().unwrap()).unwrap();
        want.insert(
            v["email"].as_str().unwrap().to_string(),
            k["user/".len()..].to_string(),
        );
    }
    let got: BTreeMap<String, String> = s
        .map_get_all("watch/by-email")
        .await
        .unwrap()
        .into_iter()
        .map(|(f, v)| (f, serde_json::from_slice::<String>(&v).unwrap()))
        .collect();
    assert_eq!(got, want);
    let st = status(&host, "idx", QueueOwner::Instance("idx".into()));
    assert_eq!((st.failed, st.dropped), (0, 0));
    assert!(st.delivered >= 116);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_trapping_watcher_never_stalls_writers() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = HostConfig::new(dir.path());
    config.store.limits = Limits {
        watch_queue: 8,
        ..Limits::default()
    };
    // Room for a slow call of 3 s: 50 durable writes (each a log sync) must
    // go in while it runs, on a slow disk too.
    config.guest = GuestLimits {
        deadline: Duration::from_secs(4),
        memory_bytes: 64 << 20,
    };
    let host = Host::open(config).unwrap();
    host.deploy_file("idx", std::path::Path::new(WATCHER))
        .await
        .unwrap();
    let s = host.store().instance("idx").unwrap();

    // A watcher call that takes 3 s while 50 writes go in: every write
    // returns; the queue keeps the newest 8 and counts the rest.
    s.set("slow/1", b"3000".to_vec()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..50 {
        s.set(&format!("k{i:02}"), b"1".to_vec()).await.unwrap();
    }
    let owner = QueueOwner::Instance("idx".into());
    let log = audit_until(&host, "idx", "k49", |a| a.iter().any(|e| e["key"] == "k49")).await;
    let st = status(&host, "idx", owner.clone());
    assert!(st.dropped > 0, "{st:?}");
    // Nothing lost unaccounted: every change was delivered or dropped (the
    // change in delivery while the queue overflowed, slow/1, may be both).
    let accounted = log.len() as u64 + st.dropped;
    assert!((51..=52).contains(&accounted), "{st:?}; {log:?}");
    assert!(log.len() <= 8 + 2, "{} delivered", log.len());

    // A trapping call is tried 3 times, then skipped; later changes flow.
    s.set("trap/1", b"1".to_vec()).await.unwrap();
    s.set("after-trap", b"1".to_vec()).await.unwrap();
    audit_until(&host, "idx", "after-trap", |a| {
        a.iter().any(|e| e["key"] == "after-trap")
    })
    .await;
    let acc = host.store().account("default").unwrap();
    assert_eq!(
        acc.get("trap-attempts").await.unwrap().as_deref(),
        Some(&b"3"[..])
    );
    // A call past the deadline (4 s here) is stopped like any guest.
    s.set("slow/forever", b"600000".to_vec()).await.unwrap();
    s.set("after-forever", b"1".to_vec()).await.unwrap();
    audit_until(&host, "idx", "after-forever", |a| {
        a.iter().any(|e| e["key"] == "after-forever")
    })
    .await;
    let st = status(&host, "idx", owner.clone());
    assert_eq!(st.failed, 2, "{st:?}");
    // So is a call waiting in a host call (a sleep) past the deadline: it
    // does not hold up the queue.
    s.set("sleep/forever", b"600000".to_vec()).await.unwrap();
    s.set("after-sleep", b"1".to_vec()).await.unwrap();
    audit_until(&host, "idx", "after-sleep", |a| {
        a.iter().any(|e| e["key"] == "after-sleep")
    })
    .await;
    let st = status(&host, "idx", owner);
    assert_eq!(st.failed, 3, "{st:?}");

    // An undeploy stops the watcher at once, also in the middle of a batch
    // (a slow call, then five more changes of the same commit): nothing
    // more is delivered after it.
    let before = audit(&host, "idx").await.len();
    let mut ops = vec![Op::new(
        "slow/u",
        OpKind::Set {
            value: b"700".to_vec(),
            ttl: None,
        },
    )];
    ops.extend((1..=5).map(|i| {
        Op::new(
            format!("late/{i}"),
            OpKind::Set {
                value: b"1".to_vec(),
                ttl: None,
            },
        )
    }));
    s.commit(ops).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(host.undeploy("idx"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = audit(&host, "idx").await;
    assert_eq!(
        after.len(),
        before,
        "delivered after the undeploy: {:?}",
        &after[before..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_delivered_exactly_once_in_effect_across_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let global = ["--data", data.as_str()];
    let app = format!("idx={WATCHER}");
    let mut serve = ServeProcess::start(&global, &[&app]).await;
    let addr = serve.addr;
    // The watcher is busy for 1.5 s with the first change while 20 more are
    // acknowledged to the client; then the host dies.
    let r = http_support::post(addr, "/put?key=slow/a", &[], "1500").await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    for i in 0..20 {
        let r = http_support::post(
            addr,
            &format!("/put?key=user/{i}"),
            &[],
            &format!("{{\"email\":\"{i}@x\"}}"),
        )
        .await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    }
    serve.kill();
    // Restarted, it delivers what was not acknowledged: each change's effect
    // once (the watcher skips a seq it has recorded).
    let serve = ServeProcess::start_on(addr, &global, &[&app]).await;
    let started = Instant::now();
    let lines = loop {
        let body = http_support::get(serve.addr, "/audit", &[]).await.body;
        let lines: Vec<Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= 21 {
            break lines;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "audit: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let body = http_support::get(serve.addr, "/audit", &[]).await.body;
    assert_eq!(body.lines().count(), 21, "{body}");
    let keys: Vec<&str> = lines.iter().map(|e| e["key"].as_str().unwrap()).collect();
    let mut want = vec!["slow/a".to_string()];
    want.extend((0..20).map(|i| format!("user/{i}")));
    assert_eq!(keys, want);
}

/// Wait until `n` watcher calls have started their sleep (the kv-watcher
/// counts them in the account before sleeping), for up to 30 s.
async fn sleeping(host: &Host, n: i64) {
    let account = host.store().account("default").unwrap();
    let started = Instant::now();
    loop {
        let count = account.get("sleeps-started").await.unwrap();
        if count.and_then(|c| String::from_utf8(c).ok()?.parse::<i64>().ok()) >= Some(n) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no watcher call started sleeping"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A host with a pool of one instance slot and the watcher deployed twice,
/// as `one` and `two`.
async fn two_watchers_one_slot(dir: &std::path::Path) -> Host {
    let mut config = HostConfig::new(dir);
    config.pooling = Some(1);
    let host = Host::open(config).unwrap();
    for name in ["one", "two"] {
        host.deploy_file(name, std::path::Path::new(WATCHER))
            .await
            .unwrap();
    }
    host
}

/// With every instance slot taken (a pool of one, held by another
/// watcher's long call), a delivery waits for a slot instead of spending
/// its attempts and skipping the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_waits_for_a_free_instance_slot() {
    let dir = tempfile::tempdir().unwrap();
    let host = two_watchers_one_slot(dir.path()).await;
    // `one` sleeps 1.5 s in its call (holding the only slot); `two` gets a
    // change meanwhile.
    let one = host.store().instance("one").unwrap();
    one.set("sleep/hold", b"1500".to_vec()).await.unwrap();
    sleeping(&host, 1).await;
    host.store()
        .instance("two")
        .unwrap()
        .set("user/1", b"1".to_vec())
        .await
        .unwrap();
    audit_until(&host, "two", "user/1", |a| {
        a.iter().any(|e| e["key"] == "user/1")
    })
    .await;
    let st = status(&host, "two", QueueOwner::Instance("two".into()));
    assert_eq!((st.delivered, st.failed), (1, 0), "{st:?}");
}

/// An HTTP request that finds every instance slot taken (by a watcher's
/// long call: they share the pool) answers 503 with `Retry-After` at once,
/// not 500 and not after waiting; once the slot is free it is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_finding_no_free_slot_answers_503_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let host = two_watchers_one_slot(dir.path()).await;
    let mut server = wasm_state::http::HttpServer::new(host.clone());
    server.mount("/", "two").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));
    // `one`'s watcher sleeps 1.5 s in its call, holding the only slot.
    let one = host.store().instance("one").unwrap();
    one.set("sleep/hold", b"1500".to_vec()).await.unwrap();
    sleeping(&host, 1).await;
    let started = Instant::now();
    let r = http_support::get(addr, "/audit", &[]).await;
    assert_eq!(
        r.status,
        hyper::StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        r.body
    );
    assert_eq!(
        r.headers.get("retry-after").map(|v| v.to_str().unwrap()),
        Some("1")
    );
    assert!(r.body.contains("busy"), "{}", r.body);
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    // The slot comes back: served.
    let started = Instant::now();
    loop {
        let r = http_support::get(addr, "/audit", &[]).await;
        if r.status == hyper::StatusCode::OK {
            break;
        }
        assert_eq!(
            r.status,
            hyper::StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            r.body
        );
        assert!(started.elapsed() < Duration::from_secs(10), "never served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}

/// A host on `dir` and the watcher compiled for it (not deployed).
async fn host_and_compiled_watcher(
    dir: &std::path::Path,
) -> (
    Host,
    wasmtime::component::InstancePre<wasm_state::runtime::Ctx>,
) {
    let host = Host::open(HostConfig::new(dir)).unwrap();
    let pre = host
        .compile(&std::fs::read(WATCHER).unwrap())
        .await
        .unwrap();
    (host, pre)
}

/// An install and a destroy of one name at the same moment take turns:
/// whichever comes last decides, and an instance left deployed writes (its
/// write fence is its own life's, not the destroyed one's, which a destroy
/// racing an install could hand over; a write through a closed fence is
/// refused for good). Its watcher's writes show it: each round's change
/// reaches the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_racing_a_destroy_leaves_a_working_instance_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let (host, pre) = host_and_compiled_watcher(dir.path()).await;
    host.install("idx", "default", pre.clone()).await.unwrap();
    for round in 0..40 {
        let (h1, h2, p) = (host.clone(), host.clone(), pre.clone());
        let (install, destroy) = if round % 2 == 0 {
            let i = tokio::spawn(async move { h1.install("idx", "default", p).await });
            (i, tokio::spawn(async move { h2.destroy("idx").await }))
        } else {
            let d = tokio::spawn(async move { h2.destroy("idx").await });
            (
                tokio::spawn(async move { h1.install("idx", "default", p).await }),
                d,
            )
        };
        install.await.unwrap().unwrap();
        destroy.await.unwrap().unwrap();
        if host.deployed().is_empty() {
            host.install("idx", "default", pre.clone()).await.unwrap();
        }
        let key = format!("user/{round}");
        let s = host.store().instance("idx").unwrap();
        s.set(&key, b"1".to_vec()).await.unwrap();
        audit_until(&host, "idx", &key, |a| {
            a.iter().any(|e| e["key"] == key.as_str())
        })
        .await;
    }
}

/// Installs of one name at the same moment take turns: each replaces the
/// one before and stops its watcher, so one deliverer is left (a trapping
/// change is tried three times in all, not three times per install).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_installs_of_one_name_leave_one_deliverer() {
    let dir = tempfile::tempdir().unwrap();
    let (host, pre) = host_and_compiled_watcher(dir.path()).await;
    let mut installs = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (host, pre) = (host.clone(), pre.clone());
        installs.spawn(async move { host.install("idx", "default", pre).await });
    }
    while let Some(r) = installs.join_next().await {
        r.unwrap().unwrap();
    }
    let s = host.store().instance("idx").unwrap();
    s.set("trap/1", b"1".to_vec()).await.unwrap();
    s.set("after-trap", b"1".to_vec()).await.unwrap();
    audit_until(&host, "idx", "after-trap", |a| {
        a.iter().any(|e| e["key"] == "after-trap")
    })
    .await;
    // Time for any other deliverer to try it too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acc = host.store().account("default").unwrap();
    assert_eq!(
        acc.get("trap-attempts").await.unwrap().as_deref(),
        Some(&b"3"[..])
    );
}
