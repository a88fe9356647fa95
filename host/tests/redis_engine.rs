//! The Redis engine beyond the conformance suite: several stores sharing one
//! Redis (as several hosts do), Redis Cluster, outages, the start-up
//! settings check, and a differential property test that runs the same
//! random operations on redb and on Redis and requires identical results.

mod support {
    pub mod redis_server;
}

use std::sync::Arc;
use std::time::Duration;

use support::redis_server::{self, RedisCluster};
use wasm_state::store::{
    Condition, ExpireMode, KeyListing, ManualClock, Op, OpKind, OpOutput, QueueOwner, ScopeHandle,
    SessionInfo, SetOptions, StateError, Store, StoreConfig, WatchTarget,
};

const T0: u64 = 1_767_225_600_000;

fn config(clock: &ManualClock) -> StoreConfig {
    StoreConfig {
        clock: Arc::new(clock.clone()),
        sweep_interval: None,
        ..StoreConfig::default()
    }
}

async fn two_stores(url: &str) -> (Store, Store, ManualClock) {
    let clock = ManualClock::new(T0);
    let a = Store::connect(url, config(&clock)).await.expect("store A");
    let b = Store::connect(url, config(&clock)).await.expect("store B");
    (a, b, clock)
}

/// What two hosts on one Redis must see of each other.
async fn shared_store_checks(url: &str) {
    let (a, b, clock) = two_stores(url).await;
    let (ia, ib) = (a.instance("shop").unwrap(), b.instance("shop").unwrap());
    // A write on A is visible on B at once.
    let etag = ia.set("greeting", b"hello".to_vec()).await.unwrap();
    assert_eq!(ib.get("greeting").await.unwrap(), Some(b"hello".to_vec()));
    // An etag from A works as a condition on B (and a stale one fails).
    let etag_b = ib
        .set_with(
            "greeting",
            b"hi".to_vec(),
            SetOptions {
                ttl: None,
                condition: Some(Condition::IfMatch(etag.clone())),
            },
        )
        .await
        .unwrap();
    let stale = ia
        .set_with(
            "greeting",
            b"x".to_vec(),
            SetOptions {
                ttl: None,
                condition: Some(Condition::IfMatch(etag)),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(stale, StateError::EtagMismatch);
    assert_eq!(ia.info("greeting").await.unwrap().unwrap().etag, etag_b);
    // A session created on A opens on B; its data is shared; ended on B it
    // is gone on A.
    let s = a
        .create_session("shop", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    b.session("shop", &s.id)
        .await
        .unwrap()
        .set("cart", b"[1]".to_vec())
        .await
        .unwrap();
    assert_eq!(
        a.session("shop", &s.id)
            .await
            .unwrap()
            .get("cart")
            .await
            .unwrap(),
        Some(b"[1]".to_vec())
    );
    assert!(b.end_session("shop", &s.id).await.unwrap());
    assert_eq!(
        a.session("shop", &s.id).await.unwrap_err(),
        StateError::NoSuchSession
    );
    // Concurrent increments from both end exact.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let h = if i % 2 == 0 { ia.clone() } else { ib.clone() };
        tasks.spawn(async move { h.increment("hits", 1).await.unwrap() });
    }
    let mut seen: Vec<i64> = Vec::new();
    while let Some(n) = tasks.join_next().await {
        seen.push(n.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=100).collect::<Vec<_>>(),
        "every increment got its own value"
    );
    assert_eq!(ib.get("hits").await.unwrap(), Some(b"100".to_vec()));
    // A transaction on B is atomic for A: a failing one leaves nothing.
    let err = ib
        .commit(vec![
            Op::new(
                "t1",
                OpKind::Set {
                    value: b"1".to_vec(),
                    ttl: None,
                },
            ),
            Op::new("greeting", OpKind::Check).when(Condition::IfAbsent),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StateError::Aborted { index: 1, .. }),
        "{err:?}"
    );
    assert_eq!(ia.get("t1").await.unwrap(), None);
    // TTLs follow the shared clock on both.
    ia.set_with(
        "short",
        b"x".to_vec(),
        SetOptions {
            ttl: Some(Duration::from_secs(5)),
            condition: None,
        },
    )
    .await
    .unwrap();
    clock.advance(Duration::from_secs(6));
    assert_eq!(ib.get("short").await.unwrap(), None);
    // Destroy on A is invisible on B at once; a re-created instance is a new
    // life: the old etags no longer match.
    let old = ia.set("k", b"v".to_vec()).await.unwrap();
    a.register_instance("shop", "default").await.unwrap();
    a.destroy_instance("shop").await.unwrap();
    assert_eq!(ib.get("k").await.unwrap(), None);
    assert_eq!(b.instance_info("shop").await.unwrap(), None);
    ib.set("k", b"again".to_vec()).await.unwrap();
    let e = ia
        .set_with(
            "k",
            b"x".to_vec(),
            SetOptions {
                ttl: None,
                condition: Some(Condition::IfMatch(old)),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e, StateError::EtagMismatch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_redis_share_everything_at_once() {
    shared_store_checks(&redis_server::shared().url()).await;
}

/// The same with wasm-state's Redis module loaded (commits run in it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_redis_with_the_module_share_everything_at_once() {
    let server = redis_server::shared_with_module();
    shared_store_checks(&server.url()).await;
    assert!(
        redis_server::cli(server.port, &["info", "commandstats"])
            .contains("cmdstat_wasmstate.commit:"),
        "commits ran in the module"
    );
}

/// A watcher's queue is delivered by one host at a time: the first to look
/// holds it while it keeps looking; another host takes over once the
/// holder stopped for the lease time. Changes written through either host
/// land in the one queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_host_at_a_time_delivers_a_watchers_queue() {
    let url = format!(
        "{}?namespace=lease{}",
        redis_server::shared().url(),
        std::process::id()
    );
    let (a, b, clock) = two_stores(&url).await;
    let owner = QueueOwner::Instance("app".into());
    a.watch("app", &[WatchTarget::Instance("app".into())])
        .await
        .unwrap();
    a.instance("app")
        .unwrap()
        .set("x", b"1".to_vec())
        .await
        .unwrap();
    b.instance("app")
        .unwrap()
        .set("y", b"2".to_vec())
        .await
        .unwrap();
    let on_a = a.watch_pending("app", &owner, "host-a", 10).await.unwrap();
    assert!(!on_a.busy);
    assert_eq!(on_a.changes.len(), 2);
    let on_b = b.watch_pending("app", &owner, "host-b", 10).await.unwrap();
    assert!(on_b.busy && on_b.changes.is_empty(), "{on_b:?}");
    // The holder keeps its lease by looking again.
    clock.advance(Duration::from_secs(10));
    assert!(
        !a.watch_pending("app", &owner, "host-a", 10)
            .await
            .unwrap()
            .busy
    );
    clock.advance(Duration::from_secs(10));
    assert!(
        b.watch_pending("app", &owner, "host-b", 10)
            .await
            .unwrap()
            .busy
    );
    // Host A stops looking: after the lease B takes over, with the changes
    // A never acknowledged (at least once).
    clock.advance(Duration::from_secs(16));
    let on_b = b.watch_pending("app", &owner, "host-b", 10).await.unwrap();
    assert!(!on_b.busy);
    assert_eq!(on_b.changes.len(), 2);
    b.watch_ack("app", &owner, on_b.changes[1].seq)
        .await
        .unwrap();
    assert!(
        b.watch_pending("app", &owner, "host-b", 10)
            .await
            .unwrap()
            .changes
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_keeps_each_owner_in_one_slot() {
    let cluster = RedisCluster::start(3);
    cluster_checks(&cluster).await;

    // A node without the function library (restarted, or new) gets it at
    // its first call, and only it: nodes in trouble elsewhere cannot stop
    // that.
    for n in &cluster.nodes {
        redis_server::cli(n.port, &["function", "flush"]);
    }
    let clock = ManualClock::new(T0);
    let store = Store::connect(&cluster.url(), config(&clock))
        .await
        .unwrap();
    store
        .instance("reload")
        .unwrap()
        .set("k", b"v".to_vec())
        .await
        .unwrap();
    let loaded = cluster
        .nodes
        .iter()
        .filter(|n| redis_server::cli(n.port, &["function", "list"]).contains("wasm_state_"))
        .count();
    assert_eq!(loaded, 1, "the library was loaded on {loaded} nodes");

    // Each primary's settings are checked, not one node's.
    let last = cluster.nodes.last().unwrap().port;
    redis_server::cli(last, &["config", "set", "maxmemory", "100mb"]);
    redis_server::cli(last, &["config", "set", "maxmemory-policy", "allkeys-lru"]);
    let err = Store::connect(&cluster.url(), config(&clock))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("(node 127.0.0.1:{last})")) && err.contains("allkeys-lru"),
        "{err}"
    );
}

/// The same on a cluster whose nodes load wasm-state's Redis module:
/// commits run in it on whichever node holds the owner's slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_with_the_module_keeps_each_owner_in_one_slot() {
    let cluster = RedisCluster::start_with(3, &["--loadmodule", redis_server::module_path()]);
    cluster_checks(&cluster).await;
    let nodes_used = cluster
        .nodes
        .iter()
        .filter(|n| {
            redis_server::cli(n.port, &["info", "commandstats"])
                .contains("cmdstat_wasmstate.commit:")
        })
        .count();
    assert!(
        nodes_used >= 2,
        "commits ran in the module on {nodes_used} nodes"
    );
}

/// The namespace a store URL names.
fn namespace_of(url: &str) -> &str {
    url.split("namespace=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
}

/// The port of the node of `nodes` holding the instance owners' keys of
/// `namespace` (hash tag `{i.NAME}`; the namespace's list of owners, kept
/// for the sweepers, is a key of its own, in another slot).
fn node_holding(nodes: &[redis_server::RedisServer], namespace: &str) -> u16 {
    let pattern = format!("{namespace}:{{i.*");
    let holding: Vec<u16> = nodes
        .iter()
        .filter(|n| {
            !redis_server::cli(n.port, &["--scan", "--pattern", &pattern])
                .trim()
                .is_empty()
        })
        .map(|n| n.port)
        .collect();
    assert_eq!(holding.len(), 1, "one node holds the owner: {holding:?}");
    holding[0]
}

/// A primary of a Cluster killed: its replica is promoted, and the store
/// moves there by itself. Calls in between fail as `unavailable` within
/// the store's timeout (never `internal`, never a hang); afterwards every
/// write the replica had received is there, the counter is exact up to
/// the writes whose answers were lost (each of those said "may or may not
/// have been applied"), and sessions still open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_failover_moves_the_store_to_the_promoted_replica() {
    let cluster = RedisCluster::start_replicated(3);
    let url = format!("{}&timeout_ms=500", cluster.url());
    let (_clock, store, inst, session) = before_a_failover(&url).await;
    let primary = node_holding(&cluster.nodes, namespace_of(&url));
    // Replication is asynchronous: what the replica has not received when
    // its primary dies is lost (README). Here it has everything.
    redis_server::wait_replicated(primary);
    let victim = cluster.nodes.iter().find(|n| n.port == primary).unwrap();
    // SAFETY: signals our own child process.
    unsafe { libc::kill(victim.pid(), libc::SIGKILL) };

    increments_across_a_failover(&inst, 10).await;
    // The session lives on; the promoted node writes it.
    let sess = store.session("failover", &session.id).await.unwrap();
    sess.set("cart", b"[1]".to_vec()).await.unwrap();
    assert_eq!(sess.get("cart").await.unwrap(), Some(b"[1]".to_vec()));
    // The owner now lives on the replica that was promoted.
    let promoted = node_holding(&cluster.replicas, namespace_of(&url));
    assert!(redis_server::cli(promoted, &["role"]).starts_with("master"));
}

/// An owner's slot moved to another node, as `redis-cli --cluster reshard`
/// does it (`CLUSTER SETSLOT … IMPORTING / MIGRATING`, `MIGRATE` key by
/// key, `SETSLOT … NODE`). While the owner's keys are split between the
/// two nodes a read follows Redis's `ASK` to the key, and a write (its
/// keys in two places: `TRYAGAIN`) is `unavailable` and changes nothing;
/// once moved, the owner works on its new node, which gets the function
/// library at its first call there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_whose_slot_moves_to_another_node_keeps_its_state() {
    use redis_server::cli;
    let cluster = RedisCluster::start(3);
    let url = format!("{}&timeout_ms=500", cluster.url());
    let clock = ManualClock::new(T0);
    let store = Store::connect(&url, config(&clock)).await.unwrap();
    let inst = store.instance("mover").unwrap();
    inst.set("k", b"before".to_vec()).await.unwrap();
    inst.list_append("l", vec![b"a".to_vec(), b"b".to_vec()])
        .await
        .unwrap();
    let s = store.create_session("mover", None).await.unwrap();
    let sess = store.session("mover", &s.id).await.unwrap();
    sess.set("cart", b"[1]".to_vec()).await.unwrap();
    let usage = store.instance_usage("mover").await.unwrap();
    assert!(usage > 0);

    let ns = namespace_of(&url);
    let source = node_holding(&cluster.nodes, ns);
    let target = cluster
        .nodes
        .iter()
        .find(|n| n.port != source)
        .unwrap()
        .port;
    let bystander = cluster
        .nodes
        .iter()
        .find(|n| n.port != source && n.port != target)
        .unwrap()
        .port;
    for n in &cluster.nodes {
        cli(n.port, &["function", "flush"]);
    }
    let keys: Vec<String> = cli(source, &["--scan", "--pattern", &format!("{ns}:{{i.*")])
        .lines()
        .map(str::to_owned)
        .collect();
    let records = keys
        .iter()
        .find(|k| k.ends_with(":h"))
        .expect("the owner's records");
    let slot = cli(source, &["cluster", "keyslot", records])
        .trim()
        .to_owned();
    let id = |port: u16| cli(port, &["cluster", "myid"]).trim().to_owned();
    let (source_id, target_id) = (id(source), id(target));
    let migrate = |key: &str| {
        let out = cli(
            source,
            &[
                "migrate",
                "127.0.0.1",
                &target.to_string(),
                "",
                "0",
                "5000",
                "keys",
                key,
            ],
        );
        assert_eq!(out.trim(), "OK", "migrate {key}");
    };
    assert_eq!(
        cli(
            target,
            &["cluster", "setslot", &slot, "importing", &source_id]
        )
        .trim(),
        "OK"
    );
    assert_eq!(
        cli(
            source,
            &["cluster", "setslot", &slot, "migrating", &target_id]
        )
        .trim(),
        "OK"
    );
    // Half moved: the records are on the target, the rest on the source.
    migrate(records);
    assert_eq!(inst.get("k").await.unwrap(), Some(b"before".to_vec()));
    // redis-rs retries `TRYAGAIN` within half the store's timeout, then
    // Redis's answer reaches the caller, saying why.
    let err = inst.set("k", b"during".to_vec()).await.unwrap_err();
    assert!(
        matches!(&err, StateError::Unavailable(m) if m.contains("TryAgain") && m.contains("slots are changing hands")),
        "{err:?}"
    );
    assert_eq!(inst.get("k").await.unwrap(), Some(b"before".to_vec()));
    // The rest, then the slot is the target's.
    loop {
        let rest = cli(source, &["cluster", "getkeysinslot", &slot, "100"]);
        let rest: Vec<&str> = rest.lines().filter(|l| !l.is_empty()).collect();
        if rest.is_empty() {
            break;
        }
        for key in rest {
            migrate(key);
        }
    }
    for port in [source, target, bystander] {
        assert_eq!(
            cli(port, &["cluster", "setslot", &slot, "node", &target_id]).trim(),
            "OK"
        );
    }

    assert_eq!(node_holding(&cluster.nodes, ns), target);
    assert_eq!(inst.get("k").await.unwrap(), Some(b"before".to_vec()));
    assert_eq!(
        inst.list_range("l", 0, -1).await.unwrap(),
        [b"a".to_vec(), b"b".to_vec()]
    );
    assert_eq!(sess.get("cart").await.unwrap(), Some(b"[1]".to_vec()));
    assert_eq!(store.instance_usage("mover").await.unwrap(), usage);
    inst.set("k", b"after".to_vec()).await.unwrap();
    assert_eq!(inst.list_append("l", vec![b"c".to_vec()]).await.unwrap(), 3);
    assert_eq!(inst.get("k").await.unwrap(), Some(b"after".to_vec()));
    assert!(cli(target, &["function", "list"]).contains("wasm_state_"));
    assert!(!cli(source, &["function", "list"]).contains("wasm_state_"));
}

/// A store on `url` and its instance `failover`, with `k` = "before", `n`
/// incremented to 10 and a session of ten minutes.
async fn before_a_failover(url: &str) -> (ManualClock, Store, ScopeHandle, SessionInfo) {
    let clock = ManualClock::new(T0);
    let store = Store::connect(url, config(&clock)).await.unwrap();
    let inst = store.instance("failover").unwrap();
    inst.set("k", b"before".to_vec()).await.unwrap();
    for _ in 0..10 {
        inst.increment("n", 1).await.unwrap();
    }
    let session = store
        .create_session("failover", Some(Duration::from_secs(600)))
        .await
        .unwrap();
    (clock, store, inst, session)
}

/// After a primary died: increments of `n` (which held `before`) every
/// 100 ms until five in a row succeed (within 30 s). Each call must end
/// within the store's timeout (500 ms) and a little, as `unavailable`;
/// afterwards `k` still holds "before" and `n` is exact up to the calls
/// whose answers were lost.
async fn increments_across_a_failover(inst: &ScopeHandle, before: i64) {
    let (mut acked, mut unsure) = (0i64, 0i64);
    let started = std::time::Instant::now();
    let mut in_a_row = 0;
    while in_a_row < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no write succeeded for 30 s after the primary died"
        );
        let call = std::time::Instant::now();
        match inst.increment("n", 1).await {
            Ok(_) => {
                acked += 1;
                in_a_row += 1;
            }
            Err(StateError::Unavailable(m)) => {
                in_a_row = 0;
                if m.contains("may or may not have been applied") {
                    unsure += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("a write during the failover: {e:?}"),
        }
        assert!(
            call.elapsed() < Duration::from_millis(500 + 1500),
            "a call took {:?}",
            call.elapsed()
        );
    }
    assert_eq!(inst.get("k").await.unwrap(), Some(b"before".to_vec()));
    let n: i64 = String::from_utf8(inst.get("n").await.unwrap().unwrap())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (before + acked..=before + acked + unsure).contains(&n),
        "counter {n}: {before} + {acked} acknowledged + at most {unsure} unsure"
    );
}

/// Redis Sentinel: the primary killed, the sentinel promotes its replica,
/// and the store asks the sentinel again and follows by itself. As for a
/// Cluster: `unavailable` in between, within the timeout; every write the
/// replica had is there; the counter is exact up to lost answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_moves_the_store_to_the_new_primary() {
    let set = redis_server::RedisSentinel::start();
    let url = format!("{}&timeout_ms=500", set.url());
    let (clock, store, inst, session) = before_a_failover(&url).await;
    // A second host, idle while the primary dies and its replica takes
    // over.
    let idle = Store::connect(&url, config(&clock)).await.unwrap();
    assert_eq!(
        idle.instance("failover").unwrap().get("k").await.unwrap(),
        Some(b"before".to_vec())
    );
    // The store writes to the primary the sentinel names.
    let pattern = format!("{}:*", namespace_of(&url));
    assert!(
        !redis_server::cli(set.primary.port, &["--scan", "--pattern", &pattern])
            .trim()
            .is_empty()
    );
    redis_server::wait_replicated(set.primary.port);
    // SAFETY: signals our own child process.
    unsafe { libc::kill(set.primary.pid(), libc::SIGKILL) };
    increments_across_a_failover(&inst, 10).await;
    let sess = store.session("failover", &session.id).await.unwrap();
    sess.set("cart", b"[1]".to_vec()).await.unwrap();
    assert_eq!(sess.get("cart").await.unwrap(), Some(b"[1]".to_vec()));
    assert!(redis_server::cli(set.replica.port, &["role"]).starts_with("master"));

    // The old primary comes back at its address, empty and still a
    // primary until the sentinel turns it into a replica. The idle host's
    // first call finds its connection dead, asks the sentinel and goes
    // again: it writes to the new primary, at once, not into the one about
    // to be wiped (redis-rs's connection manager would have reconnected to
    // the old address).
    let _back = redis_server::start_detached_on(set.primary.port, &[]);
    // A read first: reads have no retry of their own.
    let idle = idle.instance("failover").unwrap();
    assert_eq!(idle.get("k").await.unwrap(), Some(b"before".to_vec()));
    idle.set("after", b"1".to_vec()).await.unwrap();
    assert_eq!(inst.get("after").await.unwrap(), Some(b"1".to_vec()));

    // A sentinel that does not know the name, or refuses the password: a
    // clear error at start, the password not shown.
    let wrong = url.replace("/primary?", "/nobody?");
    let err = Store::connect(&wrong, config(&clock))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"nobody\"") && err.contains("Sentinel"),
        "{err}"
    );
    let wrong = url.replace(
        "sentinel_password=sentinel-secret",
        "sentinel_password=guess",
    );
    let err = Store::connect(&wrong, config(&clock))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("refused the password")
            && !err.contains("guess")
            && !err.contains("sentinel-secret"),
        "{err}"
    );
}

async fn cluster_checks(cluster: &RedisCluster) {
    let url = cluster.url();
    shared_store_checks(&url).await;
    // Names with hash-tag characters: every record of an instance and its
    // sessions lands in one slot (the script would fail with CROSSSLOT
    // otherwise), and instances spread over the nodes.
    let clock = ManualClock::new(T0);
    let store = Store::connect(&url, config(&clock)).await.unwrap();
    for name in ["a{b}c", "}{", "x:y:{z}", "{", "plain", "émoji 🎉"] {
        let inst = store.instance(name).unwrap();
        inst.set("k", b"1".to_vec()).await.unwrap();
        let s = store.create_session(name, None).await.unwrap();
        let sess = store.session(name, &s.id).await.unwrap();
        sess.commit(vec![
            Op::new("a", OpKind::ListAppend(vec![b"x".to_vec()])),
            Op::new("b", OpKind::MapSet(vec![("f".into(), b"v".to_vec())])),
        ])
        .await
        .unwrap();
        assert_eq!(sess.list_range("a", 0, -1).await.unwrap(), [b"x".to_vec()]);
        store.register_instance(name, "default").await.unwrap();
        store.destroy_instance(name).await.unwrap();
        assert_eq!(inst.get("k").await.unwrap(), None, "{name}");
        assert_eq!(
            store.session(name, &s.id).await.unwrap_err(),
            StateError::NoSuchSession
        );
    }
    // Keys of this namespace sit on more than one node.
    let used = cluster
        .nodes
        .iter()
        .filter(|n| {
            !redis_server::cli(n.port, &["--scan", "--pattern", "*"])
                .trim()
                .is_empty()
        })
        .count();
    assert!(
        used >= 2,
        "owners spread over the cluster's nodes ({used} used)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_unavailable_within_the_timeout_and_heals_by_itself() {
    let server = redis_server::start_detached(&[]);
    let url = format!(
        "redis://127.0.0.1:{}?namespace={}&timeout_ms=400",
        server.port,
        redis_server::fresh_namespace()
    );
    let clock = ManualClock::new(T0);
    let store = Store::connect(&url, config(&clock)).await.unwrap();
    let s = store.instance("svc").unwrap();
    s.set("k", b"1".to_vec()).await.unwrap();
    // A stopped Redis (SIGSTOP): calls fail with `unavailable`, in bounded time.
    // SAFETY: signals our own child process.
    unsafe { libc::kill(server.pid(), libc::SIGSTOP) };
    // A write (its call, and no retry past the deadline) and a read each
    // take no longer than timeout_ms, give or take the scheduler.
    let started = std::time::Instant::now();
    let err = s.set("k", b"2".to_vec()).await.unwrap_err();
    assert!(
        matches!(&err, StateError::Unavailable(m) if m.contains("redis at") && m.contains("may or may not have been applied")),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(400 + 1500),
        "answered in {:?} (timeout_ms=400; the rest is the scheduler of a busy machine)",
        started.elapsed()
    );
    // A guest's commit (a batch or transaction) marks the store down like
    // every other call, so its HTTP request answers 503, not 500.
    {
        use wasm_state::bindings::state::HostBucket;
        use wasm_state::bindings::{StateCtx, StateView, types};
        let ctx = StateCtx::new(store.clone(), "svc", "acct");
        let down = ctx.backend_down();
        let mut table = wasmtime::component::ResourceTable::new();
        let bucket = table.push(store.instance("svc").unwrap()).unwrap();
        let mut view = StateView {
            ctx: &ctx,
            table: &mut table,
        };
        let op = types::Op {
            key: "other".into(),
            kind: types::OpKind::Increment(1),
            condition: None,
        };
        let r = view.commit(bucket, vec![op]).await.unwrap();
        assert!(r.is_err(), "a commit on a stopped Redis");
        assert!(
            down.load(std::sync::atomic::Ordering::Relaxed),
            "the commit's unavailable marks the request's store down"
        );
    }
    let started = std::time::Instant::now();
    let err = s.get("k").await.unwrap_err();
    assert!(matches!(err, StateError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_millis(400 + 1500),
        "answered in {:?} (timeout_ms=400; the rest is the scheduler of a busy machine)",
        started.elapsed()
    );
    // SAFETY: as above.
    unsafe { libc::kill(server.pid(), libc::SIGCONT) };
    // It recovers by itself; the write that timed out was applied or not,
    // never half (here: a single value either way).
    let mut healed = false;
    for _ in 0..50 {
        if s.get("k").await.is_ok() {
            healed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healed, "the store recovered after SIGCONT");
    let v = s.get("k").await.unwrap();
    assert!(
        v == Some(b"1".to_vec()) || v == Some(b"2".to_vec()),
        "{v:?}"
    );
    s.set("k", b"3".to_vec()).await.unwrap();
    assert_eq!(s.get("k").await.unwrap(), Some(b"3".to_vec()));
}

/// A TCP proxy to Redis whose open connections can be cut without a reset
/// (bytes stop passing, the sockets stay open — what a dropped NAT entry or
/// a partition does) while new connections pass.
struct BlackHoleProxy {
    addr: std::net::SocketAddr,
    cut: Arc<std::sync::atomic::AtomicU64>,
    /// The Redis port new connections go to (a failover's new primary
    /// behind the same address).
    target: Arc<std::sync::atomic::AtomicU16>,
}

impl BlackHoleProxy {
    async fn start(redis_port: u16) -> BlackHoleProxy {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let cuts = cut.clone();
        let target = Arc::new(std::sync::atomic::AtomicU16::new(redis_port));
        let targets = target.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let port = targets.load(Ordering::SeqCst);
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
                    continue;
                };
                let born = cuts.load(Ordering::SeqCst);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                for (mut from, mut to) in [
                    (
                        Box::new(cr) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                        Box::new(sw) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
                    ),
                    (Box::new(sr), Box::new(cw)),
                ] {
                    let cuts = cuts.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match from.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if cuts.load(Ordering::SeqCst) != born {
                                // Cut: hold both ends open, pass nothing.
                                std::future::pending::<()>().await;
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        BlackHoleProxy { addr, cut, target }
    }

    /// Send new connections to `port`; open ones stay where they are.
    fn retarget(&self, port: u16) {
        self.target.store(port, std::sync::atomic::Ordering::SeqCst);
    }

    /// Cut every connection open now.
    fn cut_open_connections(&self) {
        self.cut.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A store on the Redis at `port` through a [`BlackHoleProxy`] (300 ms
/// timeout), and its instance `svc` with `k` = `1`.
async fn behind_a_proxy(port: u16) -> (BlackHoleProxy, Store, ScopeHandle) {
    let proxy = BlackHoleProxy::start(port).await;
    let url = format!(
        "redis://{}?namespace={}&timeout_ms=300",
        proxy.addr,
        redis_server::fresh_namespace()
    );
    let clock = ManualClock::new(T0);
    let store = Store::connect(&url, config(&clock)).await.unwrap();
    let s = store.instance("svc").unwrap();
    s.set("k", b"1".to_vec()).await.unwrap();
    (proxy, store, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_without_a_reset_is_replaced_and_the_store_heals() {
    let server = redis_server::start_detached(&[]);
    let (proxy, _store, s) = behind_a_proxy(server.port).await;
    proxy.cut_open_connections();
    // Calls on the cut connection get no answer: `unavailable` in bounded
    // time …
    let started = std::time::Instant::now();
    let err = s.get("k").await.unwrap_err();
    assert!(
        matches!(&err, StateError::Unavailable(m) if m.contains("did not answer")),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // … and once that has lasted longer than the timeout, the store opens a
    // new connection (redis-rs alone would wait on the dead one forever: a
    // timeout does not make it reconnect).
    let started = std::time::Instant::now();
    let healed = loop {
        match s.get("k").await {
            Ok(v) => break v,
            Err(StateError::Unavailable(_)) => {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "the store did not heal after the cut"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    };
    assert_eq!(healed, Some(b"1".to_vec()));
    s.set("k", b"2".to_vec()).await.unwrap();
    assert_eq!(s.get("k").await.unwrap(), Some(b"2".to_vec()));
}

/// A failover behind one address: the primary the store is connected to
/// becomes a replica (every write on its connection answered `READONLY`),
/// and the address now leads to the promoted one. The store replaces a
/// connection answered that way (its reads still answered), finds the new
/// primary and writes again; redis-rs alone keeps the connection (it was
/// answered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_turned_replica_is_left_for_the_new_primary() {
    let old = redis_server::start_detached(&[]);
    let new = redis_server::start_detached(&[]);
    let (proxy, _store, s) = behind_a_proxy(old.port).await;
    // `new` copies `old`, then the roles swap.
    redis_server::cli(new.port, &["replicaof", "127.0.0.1", &old.port.to_string()]);
    let started = std::time::Instant::now();
    while !redis_server::cli(new.port, &["info", "replication"]).contains("master_link_status:up") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no replication"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    redis_server::cli(new.port, &["replicaof", "no", "one"]);
    redis_server::cli(old.port, &["replicaof", "127.0.0.1", &new.port.to_string()]);
    proxy.retarget(new.port);
    let err = s.set("k", b"2".to_vec()).await.unwrap_err();
    assert!(
        matches!(&err, StateError::Unavailable(m) if m.contains("read only replica") && m.contains("a replica now")),
        "{err:?}"
    );
    let started = std::time::Instant::now();
    loop {
        // Reads the demoted server still answers do not keep the
        // connection.
        s.get("k").await.unwrap();
        match s.set("k", b"2".to_vec()).await {
            Ok(_) => break,
            Err(StateError::Unavailable(m)) => {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "still writing to the replica: {m}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(s.get("k").await.unwrap(), Some(b"2".to_vec()));
    drop((old, new));
}

/// `rediss://` to a Redis whose certificate a private certificate
/// authority signed: refused with a message naming `ca_file` while the CA is
/// not trusted, working with `?ca_file=`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_certificate_authority() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl must be installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(path("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &path("ca.key"),
        "-out",
        &path("ca.pem"),
        "-days",
        "2",
        "-subj",
        "/CN=wasm-state test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &path("srv.key"),
        "-out",
        &path("srv.csr"),
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &path("srv.csr"),
        "-CA",
        &path("ca.pem"),
        "-CAkey",
        &path("ca.key"),
        "-CAcreateserial",
        "-out",
        &path("srv.pem"),
        "-days",
        "2",
        "-extfile",
        &path("ext"),
    ]);
    let tls_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let server = redis_server::start_detached(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &path("srv.pem"),
        "--tls-key-file",
        &path("srv.key"),
        "--tls-ca-cert-file",
        &path("ca.pem"),
        "--tls-auth-clients",
        "no",
    ]);
    let clock = ManualClock::new(T0);
    let base = format!(
        "rediss://127.0.0.1:{tls_port}?timeout_ms=3000&namespace={}",
        redis_server::fresh_namespace()
    );
    let err = Store::connect(&base, config(&clock))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("ca_file"), "{err}");
    let store = Store::connect(
        &format!("{base}&ca_file={}", path("ca.pem")),
        config(&clock),
    )
    .await
    .unwrap();
    let s = store.instance("tls").unwrap();
    s.set("k", b"secret".to_vec()).await.unwrap();
    assert_eq!(s.get("k").await.unwrap(), Some(b"secret".to_vec()));
    let err = Store::connect(
        &format!("{base}&ca_file={}", path("missing.pem")),
        config(&clock),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("cannot read ca_file"), "{err}");
    drop(server);
}

/// A destroyed instance leaves the sweeper's work list (the owners set),
/// which otherwise grows with every instance ever made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destroyed_instance_leaves_the_sweepers_list() {
    let server = redis_server::shared();
    let ns = redis_server::fresh_namespace();
    let url = format!("redis://127.0.0.1:{}?namespace={ns}", server.port);
    let clock = ManualClock::new(T0);
    let store = Store::connect(&url, config(&clock)).await.unwrap();
    let tag = wasm_state::store::redis::keys::Owner::instance(&ns, "gone").tag;
    let listed = || redis_server::cli(server.port, &["sismember", &format!("{ns}:owners"), &tag]);
    store.register_instance("gone", "acme").await.unwrap();
    let s = store.instance("gone").unwrap();
    s.set("k", b"v".to_vec()).await.unwrap();
    assert_eq!(listed().trim(), "1");
    store.destroy_instance("gone").await.unwrap();
    assert_eq!(listed().trim(), "0");
    // A new life is listed again at its first write.
    store.register_instance("gone", "acme").await.unwrap();
    store
        .instance("gone")
        .unwrap()
        .set("k", b"v".to_vec())
        .await
        .unwrap();
    assert_eq!(listed().trim(), "1");
}

/// A Redis answer that no retry changes is `internal`, not `unavailable`
/// (a client would retry a 503 for ever): here a foreign program's key of
/// the wrong type where the store keeps an owner's records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_answer_no_retry_changes_is_internal() {
    let server = redis_server::start_detached(&[]);
    let ns = redis_server::fresh_namespace();
    let url = format!(
        "redis://127.0.0.1:{}?namespace={ns}&module=off",
        server.port
    );
    let clock = ManualClock::new(T0);
    let store = Store::connect(&url, config(&clock)).await.unwrap();
    let s = store.instance("svc").unwrap();
    s.set("k", b"1".to_vec()).await.unwrap();
    // Replace every key of the namespace with a plain string.
    let keys = redis_server::cli(server.port, &["--scan", "--pattern", &format!("{ns}*")]);
    for key in keys.lines().filter(|k| !k.is_empty()) {
        redis_server::cli(server.port, &["del", key]);
        redis_server::cli(server.port, &["set", key, "foreign"]);
    }
    let err = s.get("k").await.unwrap_err();
    assert!(
        matches!(&err, StateError::Internal(m) if m.contains("WRONGTYPE") && m.contains("does not change on a retry")),
        "{err:?}"
    );
    // A write runs in the library's script: Redis's refusal inside it is
    // an internal error in Redis's words too.
    let err = s.set("k2", b"2".to_vec()).await.unwrap_err();
    assert!(
        matches!(&err, StateError::Internal(m) if m.contains("WRONGTYPE")),
        "{err:?}"
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_could_evict_keys_is_refused_at_start() {
    let server = redis_server::start_detached(&[
        "--maxmemory",
        "100mb",
        "--maxmemory-policy",
        "allkeys-lru",
    ]);
    let url = format!("redis://127.0.0.1:{}", server.port);
    let clock = ManualClock::new(T0);
    let err = Store::connect(&url, config(&clock))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("maxmemory-policy allkeys-lru") && err.contains("noeviction"),
        "{err}"
    );
    // A stopped or absent Redis: a clear error, not a hang.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Store::connect(
        &format!("redis://127.0.0.1:{free}?timeout_ms=500"),
        config(&clock),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("unavailable") && err.contains("is Redis running"),
        "{err}"
    );
    drop(server);
}

/// A Redis that does not let this user read its settings (`CONFIG` refused
/// by the ACL, or renamed away as managed services do) is warned about at
/// start, not refused: the store opens and works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_hides_its_settings_is_used_with_a_warning() {
    let clock = ManualClock::new(T0);
    let server = redis_server::start_detached(&[]);
    redis_server::cli(
        server.port,
        &[
            "acl", "setuser", "app", "on", ">pw", "~*", "&*", "+@all", "-config",
        ],
    );
    let renamed = redis_server::start_detached(&["--rename-command", "CONFIG", ""]);
    for url in [
        format!("redis://app:pw@127.0.0.1:{}", server.port),
        format!("redis://127.0.0.1:{}", renamed.port),
    ] {
        let store = Store::connect(&url, config(&clock))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let s = store.instance("app").unwrap();
        s.set("k", b"v".to_vec()).await.unwrap();
        assert_eq!(s.get("k").await.unwrap(), Some(b"v".to_vec()), "{url}");
    }
    drop((server, renamed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_refuses_writes_clearly_keeps_every_read_and_recovers() {
    let server = redis_server::start_detached(&["--maxmemory-policy", "noeviction"]);
    let url = format!("redis://127.0.0.1:{}", server.port);
    let clock = ManualClock::new(T0);
    let store = Store::connect(&url, config(&clock)).await.unwrap();
    let s = store.instance("shop").unwrap();
    s.set("k", b"v".to_vec()).await.unwrap();
    s.list_append("l", vec![b"a".to_vec(), b"b".to_vec()])
        .await
        .unwrap();
    s.map_set("m", vec![("f".into(), b"1".to_vec())])
        .await
        .unwrap();
    let session = store.create_session("shop", None).await.unwrap();
    // Redis is full: every write is refused before it runs.
    assert_eq!(
        redis_server::cli(server.port, &["config", "set", "maxmemory", "1"]).trim(),
        "OK"
    );
    let err = s
        .commit(vec![
            Op::new(
                "k",
                OpKind::Set {
                    value: b"new".to_vec(),
                    ttl: None,
                },
            ),
            Op::new("l", OpKind::ListAppend(vec![b"c".to_vec()])),
        ])
        .await
        .unwrap_err();
    match &err {
        StateError::Unavailable(m) => assert!(
            m.contains("maxmemory") && m.contains("nothing of this write was applied"),
            "{m}"
        ),
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert!(matches!(
        store.create_session("shop", None).await,
        Err(StateError::Unavailable(_))
    ));
    // Every read still works — point reads (HMGET) and scans (the
    // library's read-only function) — and shows nothing of the refused write.
    assert_eq!(s.get("k").await.unwrap(), Some(b"v".to_vec()));
    assert_eq!(
        s.list_range("l", 0, -1).await.unwrap(),
        [b"a".to_vec(), b"b".to_vec()]
    );
    assert_eq!(s.list_index("l", -1).await.unwrap(), Some(b"b".to_vec()));
    assert_eq!(s.map_get_all("m").await.unwrap().len(), 1);
    assert_eq!(
        s.keys(Default::default()).await.unwrap().keys,
        ["k", "l", "m"]
    );
    assert_eq!(store.list_sessions("shop").await.unwrap().len(), 1);
    assert!(store.session("shop", &session.id).await.is_ok());
    // Memory freed: writes work again, without a restart.
    assert_eq!(
        redis_server::cli(server.port, &["config", "set", "maxmemory", "0"]).trim(),
        "OK"
    );
    s.set("k", b"new".to_vec()).await.unwrap();
    assert_eq!(s.get("k").await.unwrap(), Some(b"new".to_vec()));
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_write_is_applied_once() {
    // The request marker: the same request id twice gives the first answer.
    // (The engine retries once with the same id after a lost answer; here
    // the retry is provoked by stopping Redis right after the first attempt
    // reached it.)
    let server = redis_server::start_detached(&[]);
    let url = format!(
        "redis://127.0.0.1:{}?namespace={}&timeout_ms=300",
        server.port,
        redis_server::fresh_namespace()
    );
    let clock = ManualClock::new(T0);
    let store = Store::connect(&url, config(&clock)).await.unwrap();
    let s = store.instance("svc").unwrap();
    let mut applied = 0i64;
    for _ in 0..20 {
        // Pause Redis while increments are in flight; resume soon after, so
        // some answers arrive late (timeout, retry with the same id).
        let pid = server.pid();
        let pauser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2));
            // SAFETY: signals our own child process.
            unsafe { libc::kill(pid, libc::SIGSTOP) };
            std::thread::sleep(Duration::from_millis(350));
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        });
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..5 {
            let s = s.clone();
            tasks.spawn(async move { s.increment("n", 1).await });
        }
        while let Some(r) = tasks.join_next().await {
            if r.unwrap().is_ok() {
                applied += 1;
            }
        }
        pauser.join().unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let total: i64 = String::from_utf8(s.get("n").await.unwrap().unwrap_or(b"0".to_vec()))
        .unwrap()
        .parse()
        .unwrap();
    // Acknowledged increments are all there; none was applied twice (a
    // failed one may have been applied once: its answer was lost twice).
    assert!(total >= applied, "total {total} < acknowledged {applied}");
    assert!(
        total <= 100,
        "total {total} > attempted 100: a write applied twice"
    );
}

mod differential {
    //! The same random operations on a redb store and a Redis store must give
    //! identical results, errors included. Etags differ in shape between
    //! engines, so an op that needs one names "the etag key K last had", and
    //! each engine uses its own.

    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    const KEYS: [&str; 3] = ["a", "b", "c"];

    #[derive(Debug, Clone)]
    enum Cond {
        None,
        LastEtag,
        Absent,
        Exists,
    }

    #[derive(Debug, Clone)]
    enum Step {
        Op(usize, OpKind, Cond),
        Tx(Vec<(usize, OpKind, Cond)>),
        Advance(u64),
        Get(usize),
        Info(usize),
        MapAll(usize),
        Range(usize),
        /// Every point read of a key at once (the Redis engine reads these
        /// with one HMGET and the kv engine's own read functions).
        Reads(usize),
        Keys,
        /// A whole listing, page by page: prefix, start, end, reverse, page.
        KeysWith(
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
            bool,
            u32,
        ),
        /// A whole map-scan of a key, `count` fields a page.
        Scan(usize, u32),
        Sweep,
    }

    /// A field name: the empty one too.
    fn field() -> impl Strategy<Value = String> {
        (0u8..4).prop_map(|f| {
            if f == 3 {
                String::new()
            } else {
                format!("f{f}")
            }
        })
    }

    fn bound() -> impl Strategy<Value = Option<&'static str>> {
        proptest::option::of(proptest::sample::select(vec!["", "a", "b", "c", "bb"]))
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (0u8..4).prop_map(|b| vec![b'a' + b]),
            Just(b"7".to_vec()),
            Just(b"-3".to_vec()),
            Just(b"x".repeat(40)),
        ]
    }

    fn kind() -> impl Strategy<Value = OpKind> {
        let small = prop_oneof![-5i64..5, Just(i64::MAX), Just(i64::MIN)];
        prop_oneof![
            (bytes(), proptest::option::of(1u64..20)).prop_map(|(value, ttl)| OpKind::Set {
                value,
                ttl: ttl.map(Duration::from_secs)
            }),
            Just(OpKind::Delete),
            small.clone().prop_map(OpKind::Increment),
            (-3i64..30, 0usize..5).prop_map(|(seconds, m)| OpKind::Expire {
                seconds,
                mode: [
                    ExpireMode::Always,
                    ExpireMode::Nx,
                    ExpireMode::Xx,
                    ExpireMode::Gt,
                    ExpireMode::Lt
                ][m]
            }),
            Just(OpKind::Persist),
            proptest::collection::vec((field(), bytes()), 1..3).prop_map(OpKind::MapSet),
            proptest::collection::vec(field(), 1..3).prop_map(OpKind::MapDelete),
            (field(), small).prop_map(|(field, delta)| OpKind::MapIncrement { field, delta }),
            proptest::collection::vec(bytes(), 1..4).prop_map(OpKind::ListAppend),
            proptest::collection::vec(bytes(), 1..4).prop_map(OpKind::ListPrepend),
            (0u64..4).prop_map(OpKind::ListStartPop),
            (0u64..4).prop_map(OpKind::ListEndPop),
            (bytes(), -2i64..3).prop_map(|(value, count)| OpKind::ListRemove { value, count }),
            (-4i64..4, -4i64..4).prop_map(|(start, stop)| OpKind::ListTrim { start, stop }),
            (any::<bool>(), bytes(), bytes()).prop_map(|(before, pivot, value)| {
                OpKind::ListInsert {
                    before,
                    pivot,
                    value,
                }
            }),
            (-4i64..4, bytes()).prop_map(|(index, value)| OpKind::ListSet { index, value }),
            Just(OpKind::Check),
        ]
    }

    fn cond() -> impl Strategy<Value = Cond> {
        prop_oneof![4 => Just(Cond::None), 2 => Just(Cond::LastEtag), 1 => Just(Cond::Absent), 1 => Just(Cond::Exists)]
    }

    fn step() -> impl Strategy<Value = Step> {
        let k = 0..KEYS.len();
        prop_oneof![
            6 => (k.clone(), kind(), cond()).prop_map(|(k, o, c)| Step::Op(k, o, c)),
            2 => proptest::collection::vec((k.clone(), kind(), cond()), 1..4).prop_map(Step::Tx),
            1 => (1u64..15).prop_map(Step::Advance),
            1 => k.clone().prop_map(Step::Get),
            1 => k.clone().prop_map(Step::Info),
            1 => k.clone().prop_map(Step::MapAll),
            1 => k.clone().prop_map(Step::Range),
            2 => k.clone().prop_map(Step::Reads),
            1 => Just(Step::Keys),
            1 => (bound(), bound(), bound(), any::<bool>(), 1u32..3)
                .prop_map(|(p, s, e, r, n)| Step::KeysWith(p, s, e, r, n)),
            1 => (k.clone(), 1u32..4).prop_map(|(k, n)| Step::Scan(k, n)),
            1 => Just(Step::Sweep),
        ]
    }

    /// One engine under test, with the etags it gave out per key.
    struct Side {
        store: Store,
        etags: HashMap<usize, String>,
    }

    impl Side {
        fn op(&self, (k, kind, c): &(usize, OpKind, Cond)) -> Op {
            let op = Op::new(KEYS[*k], kind.clone());
            match c {
                Cond::None => op,
                Cond::LastEtag => op.when(Condition::IfMatch(
                    self.etags
                        .get(k)
                        .cloned()
                        .unwrap_or_else(|| "none-yet".into()),
                )),
                Cond::Absent => op.when(Condition::IfAbsent),
                Cond::Exists => op.when(Condition::IfExists),
            }
        }

        /// Run a step; the outcome with etags replaced by whether there is one.
        async fn run(&mut self, step: &Step, clock: &ManualClock) -> String {
            let s = self.store.instance("diff").unwrap();
            let ops: Vec<(usize, OpKind, Cond)> = match step {
                Step::Op(k, o, c) => vec![(*k, o.clone(), c.clone())],
                Step::Tx(ops) => ops.clone(),
                Step::Advance(secs) => {
                    clock.advance(Duration::from_secs(*secs));
                    return String::new();
                }
                Step::Get(k) => return format!("{:?}", s.get(KEYS[*k]).await),
                Step::Info(k) => {
                    return format!(
                        "{:?}",
                        s.info(KEYS[*k]).await.map(|i| i.map(|i| (i.kind, i.ttl)))
                    );
                }
                Step::MapAll(k) => return format!("{:?}", s.map_get_all(KEYS[*k]).await),
                Step::Range(k) => return format!("{:?}", s.list_range(KEYS[*k], 0, -1).await),
                Step::Reads(k) => {
                    let key = KEYS[*k];
                    // The etag read is the one the last write gave out.
                    let entry = s.get_entry(key).await.map(|e| {
                        e.map(|e| {
                            let current = self.etags.get(k) == Some(&e.etag);
                            (e.value, current, e.ttl, e.expires_at_ms)
                        })
                    });
                    return format!(
                        "{:?}",
                        (
                            entry,
                            s.get_many(&KEYS).await,
                            s.map_get_many(key, &["f0", "f1", "f2", ""]).await,
                            s.map_length(key).await,
                            s.list_length(key).await,
                        )
                    );
                }
                Step::Keys => {
                    return format!("{:?}", s.keys(Default::default()).await.map(|p| p.keys));
                }
                Step::KeysWith(prefix, start, end, reverse, limit) => {
                    let mut listing = KeyListing {
                        prefix: prefix.map(str::to_string),
                        start: start.map(str::to_string),
                        end: end.map(str::to_string),
                        reverse: *reverse,
                        limit: Some(*limit),
                        ..KeyListing::default()
                    };
                    let mut pages = Vec::new();
                    for _ in 0..10 {
                        match s.keys(listing.clone()).await {
                            Ok(p) => {
                                pages.push(format!("{:?}", p.keys));
                                match p.cursor {
                                    Some(c) => listing.cursor = Some(c),
                                    None => return format!("{pages:?}"),
                                }
                            }
                            Err(e) => return format!("{pages:?} err {e:?}"),
                        }
                    }
                    return format!("{pages:?} did not end");
                }
                Step::Scan(k, count) => {
                    let mut cursor = "0".to_string();
                    let mut pages = Vec::new();
                    for _ in 0..10 {
                        match s.map_scan(KEYS[*k], &cursor, None, *count).await {
                            Ok(p) => {
                                pages.push(format!("{:?}", p.entries));
                                if p.cursor == "0" {
                                    return format!("{pages:?}");
                                }
                                cursor = p.cursor;
                            }
                            Err(e) => return format!("{pages:?} err {e:?}"),
                        }
                    }
                    return format!("{pages:?} did not end");
                }
                Step::Sweep => return format!("{:?}", self.store.sweep().await),
            };
            let built: Vec<Op> = ops.iter().map(|o| self.op(o)).collect();
            match s.commit(built).await {
                Ok(results) => {
                    for ((k, _, _), r) in ops.iter().zip(&results) {
                        match &r.etag {
                            Some(e) => {
                                self.etags.insert(*k, e.clone());
                            }
                            None => {
                                self.etags.remove(k);
                            }
                        }
                    }
                    let shown: Vec<(bool, OpOutput)> = results
                        .into_iter()
                        .map(|r| (r.etag.is_some(), r.output))
                        .collect();
                    format!("ok {shown:?}")
                }
                Err(e) => {
                    let e = match e {
                        StateError::InvalidEtag(_) => StateError::InvalidEtag(String::new()),
                        StateError::Aborted { index, source }
                            if matches!(*source, StateError::InvalidEtag(_)) =>
                        {
                            StateError::Aborted {
                                index,
                                source: Box::new(StateError::InvalidEtag(String::new())),
                            }
                        }
                        e => e,
                    };
                    format!("err {e:?}")
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
        #[test]
        fn redb_and_redis_give_identical_results(steps in proptest::collection::vec(step(), 1..40)) {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let clock = ManualClock::new(T0);
                let mut redb = Side {
                    store: Store::open(dir.path().join("state.redb"), config(&clock)).unwrap(),
                    etags: HashMap::new(),
                };
                let mut redis = Side {
                    store: Store::connect(&redis_server::shared().url(), config(&clock)).await.unwrap(),
                    etags: HashMap::new(),
                };
                // Commits in wasm-state's Redis module instead of the Lua library.
                let mut module = Side {
                    store: Store::connect(&redis_server::shared_with_module().url(), config(&clock)).await.unwrap(),
                    etags: HashMap::new(),
                };
                for (i, step) in steps.iter().enumerate() {
                    let a = redb.run(step, &clock).await;
                    let b = redis.run(step, &clock).await;
                    let c = module.run(step, &clock).await;
                    prop_assert_eq!(&a, &b, "step {} {:?}", i, step);
                    prop_assert_eq!(&a, &c, "step {} {:?} (module)", i, step);
                }
                Ok(())
            })?;
        }
    }
}

/// The test servers' start: a port taken between being found free and
/// being bound is noticed at once, and a port chosen by the tests is chosen
/// anew (a cluster test failed on CI when its node's port was taken).
#[test]
fn a_server_whose_port_is_taken_says_so_at_once() {
    use std::time::Instant;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = taken.local_addr().unwrap().port();
    let started = Instant::now();
    let err = redis_server::RedisServer::try_start_on(port, &[])
        .err()
        .expect("a taken port is refused");
    assert!(err.contains("exited at start"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    let server = redis_server::RedisServer::start(&[]);
    assert_ne!(server.port, port);
    assert!(redis_server::cli(server.port, &["ping"]).contains("PONG"));
}

/// The library's byte encodings (lua/bytes.lua, run inside Redis by Redis's
/// own Lua 5.1, whose numbers are doubles) write and read integers exactly
/// as Rust's `to_be_bytes` do, on both sides of each fast path: 2^32, zero
/// and the sign, up to ±(2^53 − 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_librarys_integer_bytes_match_rusts() {
    let server = redis_server::shared();
    let client = redis::Client::open(format!("redis://127.0.0.1:{}", server.port)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let script = format!(
        "local bytes = (function() {} end)()
         local out = {{}}
         for i, a in ipairs(ARGV) do
           local n = tonumber(a)
           local i64 = bytes.be_i64(n)
           out[#out + 1] = n >= 0 and bytes.be_u64(n) or ''
           out[#out + 1] = i64
           out[#out + 1] = bytes.ordered_i64(n)
           out[#out + 1] = string.format('%.0f', bytes.read_i64(i64, 1))
           out[#out + 1] = n >= 0 and string.format('%.0f', bytes.read_u64(bytes.be_u64(n), 1)) or ''
         end
         return out",
        include_str!("../src/store/redis/lua/bytes.lua")
    );
    let max = (1i64 << 53) - 1;
    let mut values = vec![0, 1, 255, 256, 65_535, 65_536, 1 << 24, max];
    for p in [31, 32, 40, 52] {
        values.extend([(1i64 << p) - 1, 1 << p, (1 << p) + 1]);
    }
    for v in values.clone() {
        values.push(-v);
    }
    values.push(-max);
    // and a spread of magnitudes in between
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let v = (x >> (11 + x % 53)) as i64;
        values.push(if x.is_multiple_of(2) { v } else { -v });
    }
    let args: Vec<String> = values.iter().map(i64::to_string).collect();
    let out: Vec<Vec<u8>> = redis::cmd("EVAL")
        .arg(&script)
        .arg(0)
        .arg(&args)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(out.len(), 5 * values.len());
    for (v, got) in values.iter().zip(out.chunks(5)) {
        let u64_bytes = if *v >= 0 {
            (*v as u64).to_be_bytes().to_vec()
        } else {
            Vec::new()
        };
        assert_eq!(got[0], u64_bytes, "be_u64({v})");
        assert_eq!(got[1], v.to_be_bytes(), "be_i64({v})");
        assert_eq!(
            got[2],
            ((*v as u64) ^ (1 << 63)).to_be_bytes(),
            "ordered_i64({v})"
        );
        // (printed with %.0f: exact for these integers)
        assert_eq!(got[3], v.to_string().as_bytes(), "read_i64 of be_i64({v})");
        if *v >= 0 {
            assert_eq!(got[4], v.to_string().as_bytes(), "read_u64 of be_u64({v})");
        }
    }
}
