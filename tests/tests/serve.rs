//! `wasi:http` serving over real HTTP on loopback: the customers flow,
//! sessions from requests, no lost updates under concurrency, failure
//! mapping, and graceful shutdown that loses no acknowledged write.

mod common;
mod http_support;

use std::collections::HashSet;
use std::time::Duration;

use http_support::{Served, get, post, send};
use hyper::StatusCode;

const CUSTOMERS: &str = wasm_state_e2e::CUSTOMERS_HTTP;
const BAD: &str = wasm_state_e2e::HTTP_BAD;
const ABUSER: &str = wasm_state_e2e::ABUSER;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_flow_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Served::start(dir.path(), &[("shop", CUSTOMERS)], Duration::from_secs(5)).await;
    let r = post(
        s.addr,
        "/add-customer",
        &[("content-type", "application/json")],
        r#"{"phone":"+447700900001","name":"Ada","email":"ada@example.com"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = get(s.addr, "/on-phone-call?number=%2B447700900001", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "Ada"));
    // Mounted under its name too; the guest sees the same paths.
    let r = get(s.addr, "/shop/on-phone-call?number=%2B447700900001", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "Ada"));
    let r = get(s.addr, "/on-phone-call?number=%2B440000", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = post(s.addr, "/add-customer", &[], "not json").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // The host sees what the guest stored: instance state, map keyed by phone.
    let stored = s
        .host
        .store()
        .instance("shop")
        .unwrap()
        .map_get("customers", "+447700900001")
        .await
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(v["name"], "Ada");
    s.stop().await;
}

/// A request still running when its instance is destroyed cannot write
/// into the deleted scope afterwards (the deployment's write fence); the
/// instance deployed again writes as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_outliving_its_instance_cannot_write_into_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Served::start(dir.path(), &[("grave", ABUSER)], Duration::from_secs(10)).await;
    let addr = s.addr;
    // It sleeps 5 s in the guest; a second is ample for it to get there.
    let late = tokio::spawn(async move { get(addr, "/sleep?ms=5000&then=late", &[]).await });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!late.is_finished(), "the request ended before the destroy");
    s.host.destroy("grave").await.expect("destroy");
    let r = late.await.unwrap();
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert!(
        r.body.contains("\"grave\" is being destroyed"),
        "{}",
        r.body
    );
    let store = s.host.store();
    assert_eq!(
        store.instance("grave").unwrap().get("late").await.unwrap(),
        None
    );
    assert_eq!(store.instance_info("grave").await.unwrap(), None);
    assert_eq!(store.instance_usage("grave").await.unwrap(), 0);

    // A new life of the instance has a new fence.
    let wasm = std::fs::read(ABUSER).unwrap();
    s.apps.deploy("grave", &wasm, Some("/")).await.unwrap();
    let r = get(s.addr, "/sleep?ms=1&then=again", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        store
            .instance("grave")
            .unwrap()
            .get("again")
            .await
            .unwrap()
            .is_some()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Served::start(dir.path(), &[("shop", CUSTOMERS)], Duration::from_secs(10)).await;
    const N: usize = 250;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..N {
        let addr = s.addr;
        tasks.spawn(async move { post(addr, "/visit", &[], "").await });
    }
    let mut seen = HashSet::new();
    while let Some(r) = tasks.join_next().await {
        let r = r.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert!(
            seen.insert(v["visits"].as_i64().unwrap()),
            "two requests saw the same count"
        );
    }
    assert_eq!(seen.len(), N);
    let total = s
        .host
        .store()
        .instance("shop")
        .unwrap()
        .get("visits")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        total,
        N.to_string().into_bytes(),
        "every increment counted exactly once"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_from_requests_stay_apart() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Served::start(
        dir.path(),
        &[("shop", CUSTOMERS), ("other", CUSTOMERS)],
        Duration::from_secs(5),
    )
    .await;
    let a = post(s.addr, "/cart/add?item=apple", &[], "").await;
    let b = post(s.addr, "/cart/add?item=pear", &[], "").await;
    assert_eq!((a.status, b.status), (StatusCode::OK, StatusCode::OK));
    let id_a = a.headers["x-session-id"].to_str().unwrap().to_string();
    let id_b = b.headers["x-session-id"].to_str().unwrap().to_string();
    assert_ne!(id_a, id_b);
    let cookie = a.headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with(&format!("wasm_state_session={id_a};")) && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // A names its session by header, B by cookie.
    let a2 = post(
        s.addr,
        "/cart/add?item=banana",
        &[("x-session-id", &id_a)],
        "",
    )
    .await;
    assert!(
        !a2.headers.contains_key("set-cookie"),
        "an existing session is not handed out again"
    );
    let cookie_b = format!("wasm_state_session={id_b}");
    let a_cart: serde_json::Value =
        serde_json::from_str(&get(s.addr, "/cart", &[("x-session-id", &id_a)]).await.body).unwrap();
    let b_cart: serde_json::Value =
        serde_json::from_str(&get(s.addr, "/cart", &[("cookie", &cookie_b)]).await.body).unwrap();
    assert_eq!(a_cart["items"], serde_json::json!(["apple", "banana"]));
    assert_eq!(b_cart["items"], serde_json::json!(["pear"]));
    let ttl = a_cart["ttl_seconds"].as_u64().unwrap();
    assert!(
        (1700..=1800).contains(&ttl),
        "30 min session TTL, got {ttl}"
    );
    // Another instance cannot use shop's session: the host says no such session.
    let r = get(s.addr, "/other/cart", &[("x-session-id", &id_a)]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    // Each app's session cookie is scoped to its route (shop is mounted at
    // /): a browser keeps both, and sends /other its own first (the longer
    // path), so the apps never replace each other's session.
    assert!(cookie.contains("; Path=/;"), "{cookie}");
    let o = post(s.addr, "/other/cart/add?item=kiwi", &[], "").await;
    assert_eq!(o.status, StatusCode::OK, "{}", o.body);
    let id_o = o.headers["x-session-id"].to_str().unwrap().to_string();
    let cookie_o = o.headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie_o.starts_with(&format!("wasm_state_session={id_o};"))
            && cookie_o.contains("; Path=/other;"),
        "{cookie_o}"
    );
    // Behind a proxy that strips `/public` and says so, the cookie's path
    // is the one the browser sees.
    let p = post(
        s.addr,
        "/other/cart/add?item=fig",
        &[("x-forwarded-prefix", "/public")],
        "",
    )
    .await;
    let cookie_p = p.headers["set-cookie"].to_str().unwrap();
    assert!(cookie_p.contains("; Path=/public/other;"), "{cookie_p}");
    let jar = format!("wasm_state_session={id_o}; wasm_state_session={id_a}");
    let o_cart: serde_json::Value =
        serde_json::from_str(&get(s.addr, "/other/cart", &[("cookie", &jar)]).await.body).unwrap();
    assert_eq!(o_cart["items"], serde_json::json!(["kiwi"]));
    let jar_root = format!("wasm_state_session={id_a}");
    let a_cart: serde_json::Value =
        serde_json::from_str(&get(s.addr, "/cart", &[("cookie", &jar_root)]).await.body).unwrap();
    assert_eq!(a_cart["items"], serde_json::json!(["apple", "banana"]));
    // An ended session is gone for its client.
    assert!(s.host.store().end_session("shop", &id_b).await.unwrap());
    assert_eq!(
        get(s.addr, "/cart", &[("cookie", &cookie_b)]).await.status,
        StatusCode::NOT_FOUND
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trapping_and_looping_guests_do_not_take_the_server_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Served::start(
        dir.path(),
        &[("bad", BAD), ("shop", CUSTOMERS)],
        Duration::from_millis(500),
    )
    .await;
    for _ in 0..2 {
        let trap = get(s.addr, "/bad/trap", &[]).await;
        assert_eq!(trap.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            trap.body, "internal server error\n",
            "no host internals in the body"
        );
        let slow = get(s.addr, "/bad/loop", &[]).await;
        assert_eq!(slow.status, StatusCode::GATEWAY_TIMEOUT, "{}", slow.body);
        let hog = get(s.addr, "/bad/hog", &[]).await;
        assert_eq!(hog.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(get(s.addr, "/bad/ok", &[]).await.body, "ok\n");
        assert_eq!(
            post(s.addr, "/shop/visit", &[], "").await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        get(s.addr, "/nowhere/at/all", &[]).await.status,
        StatusCode::OK,
        "the root mount takes unknown prefixes"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Served::start(dir.path(), &[("shop", CUSTOMERS)], Duration::from_secs(10)).await;
    let addr = s.addr;
    let mut clients = visit_load(addr).await;
    // Let the load build up, then shut down in the middle of it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    s.stop().await;
    let mut acked = Vec::new();
    while let Some(r) = clients.join_next().await {
        acked.extend(r.unwrap());
    }
    assert!(
        !acked.is_empty(),
        "some requests were acknowledged before shutdown"
    );
    let max = *acked.iter().max().unwrap();
    drop(s);
    // Reopen the data (once the last request task has let go of the host):
    // every acknowledged increment is there.
    let path = dir.path().join("state.redb");
    let mut attempts = 0;
    let store = loop {
        match wasm_state::store::Store::open(&path, Default::default()) {
            Ok(store) => break store,
            Err(e) if attempts < 50 => {
                attempts += 1;
                eprintln!("reopen: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot reopen the store: {e}"),
        }
    };
    let total: i64 = String::from_utf8(
        store
            .instance("shop")
            .unwrap()
            .get("visits")
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap()
    .parse()
    .unwrap();
    assert!(
        total >= acked.len() as i64 && total >= max,
        "total {total}, acknowledged {} (max {max})",
        acked.len()
    );
}

/// Load acknowledged `/visit` counts from 16 clients until the server goes away.
async fn visit_load(addr: std::net::SocketAddr) -> tokio::task::JoinSet<Vec<i64>> {
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..16 {
        clients.spawn(async move {
            let mut acked = Vec::new();
            for _ in 0..2000 {
                match send(addr, "POST", "/visit", &[], "").await {
                    Ok(r) if r.status == StatusCode::OK => {
                        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
                        acked.push(v["visits"].as_i64().unwrap());
                    }
                    _ => break,
                }
            }
            acked
        });
    }
    clients
}

/// The real `wasm-state serve` process: SIGTERM during load finishes
/// in-flight requests, exits cleanly, and every acknowledged write is in the
/// database afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_serve_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = std::process::Command::new(common::binary("wasm-state"))
        .arg("--data")
        .arg(dir.path())
        .args(["serve", "--listen", &addr.to_string(), CUSTOMERS])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start wasm-state serve");
    // Wait until it listens (it compiles the component first).
    let started = std::time::Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve did not start listening"
        );
        assert!(child.try_wait().unwrap().is_none(), "serve exited early");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut clients = visit_load(addr).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: sends SIGTERM to our own child process; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "SIGTERM sent");
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "serve failed: {stderr}");
    assert!(
        stderr.contains("every acknowledged write is on disk"),
        "{stderr}"
    );
    let mut acked = Vec::new();
    while let Some(r) = clients.join_next().await {
        acked.extend(r.unwrap());
    }
    assert!(
        !acked.is_empty(),
        "some requests were acknowledged before the signal"
    );
    let store =
        wasm_state::store::Store::open(dir.path().join("state.redb"), Default::default()).unwrap();
    let visits = store
        .instance("customers-http")
        .unwrap()
        .get("visits")
        .await
        .unwrap()
        .unwrap();
    let total: i64 = String::from_utf8(visits).unwrap().parse().unwrap();
    let max = *acked.iter().max().unwrap();
    assert!(
        total >= acked.len() as i64 && total >= max,
        "total {total}, acknowledged {} (max {max})",
        acked.len()
    );
}
