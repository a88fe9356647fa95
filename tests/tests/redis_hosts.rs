//! Several real `wasm-state serve` processes on one Redis, as behind a load
//! balancer: a session created on host 1 is used on hosts 2 and 3 and ended
//! from a third process; increments from 3 hosts × 16 clients end exact; a
//! host killed under load loses no acknowledged write; a Redis with
//! `appendfsync always` killed and restarted keeps every acknowledged write;
//! an unreachable Redis makes requests answer 503 in bounded time, and the
//! hosts recover by themselves; a watcher deployed on two hosts sees every
//! change once.

mod common;
mod http_support;
#[path = "../../host/tests/support/redis_server.rs"]
mod redis_server;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_support::{ServeProcess, get, post, send};
use hyper::StatusCode;
use redis_server::RedisServer;

const APP: &str = wasm_state_e2e::CUSTOMERS_HTTP;

/// A `wasm-state serve` process on `store`, with a data dir of its own.
async fn serve_host(store: &str) -> ServeProcess {
    let dir = tempfile::tempdir().unwrap().keep();
    let dir = dir.to_str().unwrap();
    ServeProcess::start(&["--data", dir, "--store", store], &[APP]).await
}

/// The `wasm-state` CLI on `store`, as another process: success, stdout,
/// stderr.
fn cli(store: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(common::binary("wasm-state"))
        .args(["--store", store])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn visits(store: &str) -> i64 {
    let (ok, out, err) = cli(store, &["state", "get", "visits", "-i", "customers-http"]);
    assert!(ok, "{out}{err}");
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("a count: {out:?}"))
}

/// `clients` loops, each posting /visit round-robin over `hosts`
/// `per_client` times; returns (acknowledged, attempted).
async fn visit_load(hosts: Vec<SocketAddr>, clients: usize, per_client: usize) -> (i64, i64) {
    visit_load_counting(hosts, clients, per_client, Default::default()).await
}

/// [`visit_load`], counting the acknowledged visits in `so_far` as they come.
async fn visit_load_counting(
    hosts: Vec<SocketAddr>,
    clients: usize,
    per_client: usize,
    so_far: Arc<std::sync::atomic::AtomicI64>,
) -> (i64, i64) {
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let hosts = hosts.clone();
        let so_far = so_far.clone();
        tasks.spawn(async move {
            let (mut acked, mut tried) = (0i64, 0i64);
            for i in 0..per_client {
                let addr = hosts[(c + i) % hosts.len()];
                tried += 1;
                if let Ok(r) = send(addr, "POST", "/visit", &[], "").await
                    && r.status == StatusCode::OK
                {
                    acked += 1;
                    so_far.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            (acked, tried)
        });
    }
    let (mut acked, mut tried) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        let (a, t) = r.unwrap();
        acked += a;
        tried += t;
    }
    (acked, tried)
}

/// Wait until the load has `n` acknowledged visits (for up to 60 s).
async fn until_acked(so_far: &std::sync::atomic::AtomicI64, n: i64) {
    let started = Instant::now();
    while so_far.load(std::sync::atomic::Ordering::Relaxed) < n {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the load got no acknowledged visits"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_share_sessions_and_count_exactly() {
    let store = redis_server::shared().url();
    let hosts = [
        serve_host(&store).await,
        serve_host(&store).await,
        serve_host(&store).await,
    ];
    // A session created on host 1 …
    let r = post(hosts[0].addr, "/cart/add?item=apple", &[], "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let id = r.headers["x-session-id"].to_str().unwrap().to_owned();
    let h = [("x-session-id", id.as_str())];
    // … is used on hosts 2 and 3 …
    assert_eq!(
        post(hosts[1].addr, "/cart/add?item=pear", &h, "")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        post(hosts[2].addr, "/cart/add?item=fig", &h, "")
            .await
            .status,
        StatusCode::OK
    );
    for host in &hosts {
        let r = get(host.addr, "/cart", &h).await;
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            v["items"],
            serde_json::json!(["apple", "pear", "fig"]),
            "{}",
            r.body
        );
    }
    // … and ended by another process (the CLI) on the same Redis: gone
    // everywhere.
    let (ok, out, err) = cli(
        &store,
        &["sessions", "end", "-i", "customers-http", "--", &id],
    );
    assert!(ok, "{out}{err}");
    for host in &hosts {
        assert_eq!(
            get(host.addr, "/cart", &h).await.status,
            StatusCode::NOT_FOUND
        );
    }
    // 3 hosts × 16 clients of concurrent increments end exact.
    let addrs: Vec<SocketAddr> = hosts.iter().map(|h| h.addr).collect();
    let (acked, tried) = visit_load(addrs, 48, 10).await;
    assert_eq!((acked, tried), (480, 480), "every visit was acknowledged");
    assert_eq!(visits(&store), 480);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_host_under_load_loses_no_acknowledged_write() {
    let store = redis_server::shared().url();
    let mut victim = serve_host(&store).await;
    let others = [serve_host(&store).await, serve_host(&store).await];
    let addrs = vec![victim.addr, others[0].addr, others[1].addr];
    let so_far = Arc::default();
    let load = tokio::spawn(visit_load_counting(addrs, 16, 30, Arc::clone(&so_far)));
    until_acked(&so_far, 16).await;
    victim.kill(); // SIGKILL mid-load
    let (acked, tried) = load.await.unwrap();
    let total = visits(&store);
    assert!(
        acked > 0 && acked < tried,
        "the kill cut some requests: {acked}/{tried}"
    );
    assert!(
        total >= acked && total <= tried,
        "visits {total}: every acknowledged write ({acked}) is there, no more than attempted ({tried})"
    );
    // The survivors go on counting from there.
    let r = post(others[0].addr, "/visit", &[], "").await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["visits"], total + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_with_appendfsync_always_keeps_acknowledged_writes_across_a_kill() {
    aof_keeps_acknowledged_writes_across_a_kill(false).await;
}

/// The same with wasm-state's Redis module loaded: the writes it makes
/// reach the append-only file as a function's do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_with_the_module_and_appendfsync_always_keeps_acknowledged_writes_across_a_kill() {
    aof_keeps_acknowledged_writes_across_a_kill(true).await;
}

async fn aof_keeps_acknowledged_writes_across_a_kill(module: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut aof = vec![
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        dir.path().to_str().unwrap(),
    ];
    if module {
        aof.extend(["--loadmodule", redis_server::module_path()]);
    }
    let mut redis = redis_server::start_detached(&aof);
    let port = redis.port;
    let store = format!(
        "redis://127.0.0.1:{port}?namespace={}&timeout_ms=1000",
        redis_server::fresh_namespace()
    );
    let host = serve_host(&store).await;
    let so_far = Arc::default();
    let load = tokio::spawn(visit_load_counting(
        vec![host.addr],
        16,
        60,
        Arc::clone(&so_far),
    ));
    until_acked(&so_far, 16).await;
    // SAFETY: SIGKILL to our own child process.
    unsafe { libc::kill(redis.pid(), libc::SIGKILL) };
    let (acked, tried) = load.await.unwrap();
    drop(std::mem::replace(&mut redis, restart(port, &aof)));
    // The host reconnects by itself and serves again.
    let started = Instant::now();
    loop {
        let r = post(host.addr, "/visit", &[], "").await;
        if r.status == StatusCode::OK {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the host did not recover: {} {}\n--- its log ---\n{}",
            r.status,
            r.body,
            host.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if module {
        let stats = redis_server::cli(port, &["info", "commandstats"]);
        assert!(
            stats.contains("cmdstat_wasmstate.commit:"),
            "writes went through the module: {stats}"
        );
    }
    let total = visits(&store);
    assert!(acked > 0, "some visits were acknowledged before the kill");
    assert!(
        total > acked && total <= tried + 1,
        "visits {total}: all {acked} acknowledged ones survived (plus the last one), at most {tried} + 1"
    );
}

/// Start Redis again on the same port with the same files.
fn restart(port: u16, extra: &[&str]) -> RedisServer {
    redis_server::start_detached_on(port, extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_answers_503_in_bounded_time_and_heals() {
    let redis = redis_server::start_detached(&[]);
    let store = format!(
        "redis://127.0.0.1:{}?namespace={}&timeout_ms=500",
        redis.port,
        redis_server::fresh_namespace()
    );
    let host = serve_host(&store).await;
    assert_eq!(
        post(host.addr, "/visit", &[], "").await.status,
        StatusCode::OK
    );
    // SAFETY: SIGSTOP to our own child process.
    unsafe { libc::kill(redis.pid(), libc::SIGSTOP) };
    let started = Instant::now();
    let r = post(host.addr, "/visit", &[], "").await;
    let took = started.elapsed();
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.headers["retry-after"], "1");
    assert!(took < Duration::from_secs(3), "answered in {took:?}");
    // SAFETY: as above.
    unsafe { libc::kill(redis.pid(), libc::SIGCONT) };
    let started = Instant::now();
    loop {
        let r = post(host.addr, "/visit", &[], "").await;
        if r.status == StatusCode::OK {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no recovery: {}",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two hosts on one Redis both deploy the same watcher: writes through
/// either are delivered by one host at a time (a lease on the queue), each
/// change's effect recorded once, in commit order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_on_two_hosts_sees_every_change_once() {
    let store = format!(
        "{}?namespace=watch{}",
        redis_server::shared().url(),
        std::process::id()
    );
    let app = format!("idx={}", wasm_state_e2e::KV_WATCHER);
    let mut hosts = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap().keep();
        let dir = dir.to_str().unwrap().to_owned();
        hosts.push(ServeProcess::start(&["--data", &dir, "--store", &store], &[&app]).await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (h, host) in hosts.iter().enumerate() {
        let addr = host.addr;
        tasks.spawn(async move {
            for i in 0..15 {
                let r = post(addr, &format!("/put?key=user/{h}-{i}"), &[], "1").await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let started = Instant::now();
    let body = loop {
        let body = get(hosts[1].addr, "/audit", &[]).await.body;
        if body.lines().count() >= 30 {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "audit: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(get(hosts[0].addr, "/audit", &[]).await.body, body);
    let seqs: Vec<u64> = body
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (1..=30).collect::<Vec<_>>(), "{body}");
}

/// One change whose delivery outlasts the queue's 15 s lease (a watcher
/// call of 17 s) keeps the lease: the host delivering it renews it during
/// the call, so the other host never delivers the same change. Two hosts
/// in this process on one Redis; each host's count of delivered changes
/// adds up to the two changes written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_outlasting_the_lease_is_delivered_by_one_host() {
    use wasm_state::runtime::{GuestLimits, Host, HostConfig};
    let store = format!(
        "{}?namespace=lease{}",
        redis_server::shared().url(),
        std::process::id()
    );
    let mut hosts = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap().keep();
        let mut config = HostConfig::new(dir);
        config.store_url = Some(store.clone());
        config.guest = GuestLimits {
            deadline: Duration::from_secs(30),
            memory_bytes: 64 << 20,
        };
        let host = Host::connect(config).await.unwrap();
        host.deploy_file("idx", std::path::Path::new(wasm_state_e2e::KV_WATCHER))
            .await
            .unwrap();
        hosts.push(host);
    }
    let s = hosts[0].store().instance("idx").unwrap();
    s.set("sleep/slow", b"17000".to_vec()).await.unwrap();
    s.set("after", b"1".to_vec()).await.unwrap();
    let delivered = |hosts: &[Host]| -> u64 {
        hosts
            .iter()
            .flat_map(|h| h.watcher_status())
            .map(|st| st.delivered)
            .sum()
    };
    let started = Instant::now();
    while delivered(&hosts) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{:?}",
            hosts.iter().map(|h| h.watcher_status()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Time for a second delivery of the slow change to show, if the other
    // host had taken the queue.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let per_host: Vec<u64> = hosts
        .iter()
        .map(|h| h.watcher_status().iter().map(|st| st.delivered).sum())
        .collect();
    assert_eq!(delivered(&hosts), 2, "delivered per host: {per_host:?}");
}

/// A `state.redis` store of the Dapr API keeps the host's limits from the
/// manifest, as the host's own store does: here its instance quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dapr_redis_store_keeps_the_manifests_quota() {
    let server = redis_server::shared();
    let dir = tempfile::tempdir().unwrap();
    let components = dir.path().join("components");
    std::fs::create_dir(&components).unwrap();
    std::fs::write(
        components.join("shared.yaml"),
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: shared\nspec:\n  type: state.redis\n  version: v1\n  metadata:\n  - name: redisHost\n    value: 127.0.0.1:{}\n  - name: namespace\n    value: {}\n  - name: scope\n    value: instance\n  - name: instance\n    value: quota-test\n",
            server.port,
            redis_server::fresh_namespace()
        ),
    )
    .unwrap();
    let manifest = dir.path().join("wasm-state.toml");
    std::fs::write(&manifest, "[limits]\ninstance_quota_bytes = 2000\n").unwrap();
    let api = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let data = dir.path().join("data");
    let host = ServeProcess::start(
        &[
            "--data",
            data.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
        ],
        &[
            APP,
            "--dapr-listen",
            &api.to_string(),
            "--components",
            components.to_str().unwrap(),
        ],
    )
    .await;
    let started = Instant::now();
    while tokio::net::TcpStream::connect(api).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the Dapr API did not start: {}",
            host.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let small = post(
        api,
        "/v1.0/state/shared",
        &[],
        r#"[{"key":"a","value":"x"}]"#,
    )
    .await;
    assert_eq!(small.status, StatusCode::NO_CONTENT, "{}", small.body);
    let big = format!(r#"[{{"key":"b","value":"{}"}}]"#, "y".repeat(3000));
    let r = post(api, "/v1.0/state/shared", &[], &big).await;
    assert_eq!(r.status, StatusCode::INSUFFICIENT_STORAGE, "{}", r.body);
    // … and changed nothing.
    let r = get(api, "/v1.0/state/shared/b", &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
}
