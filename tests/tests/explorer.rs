//! The state explorer page (`host/src/admin/explorer.html`, served at `/` by
//! `wasm-state serve --admin-listen`) in Debian's headless Chromium, driven
//! by playwright-core (pinned in `tests/explorer-js/package-lock.json`;
//! `tests/explorer-js/explorer-test.mjs` clicks through the page and checks
//! what it shows against the admin API): instances and accounts, sessions
//! with their TTL, keys with type, TTL and etag paged and filtered, a value,
//! a map and a list paged, keys and values of HTML shown as text, deleting a
//! key and ending a session behind a confirmation, and an API error shown.
//!
//! Needs `node`, `npm` and Chromium (`apt-get install chromium`, or
//! `CHROMIUM=/path/to/chromium`); the test runs `npm ci` itself when
//! `node_modules` is missing.

mod common;
mod http_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use http_support::{ServeProcess, free_addr, get, post};
use hyper::StatusCode;

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("explorer-js")
}

/// The Chromium to drive: `CHROMIUM`, else Debian's.
fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "the state explorer test needs Chromium at {}: install it with `apt-get install chromium` \
         (Debian's package), or set CHROMIUM to a Chromium binary",
        path.display()
    );
    path
}

/// `npm ci` once, unless playwright-core is already installed.
fn install_driver() {
    let dir = js_dir();
    if dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .output()
        .expect("npm must be installed (Node.js 20 or later) to run the state explorer test");
    assert!(
        out.status.success(),
        "npm ci in {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `wasm-state --data DIR/data --account ACCOUNT run probe -i INSTANCE -- COMMANDS…`
/// (no server holds the data dir yet: the CLI opens it itself), asserting
/// every command succeeded.
fn probe_run(dir: &Path, account: &str, instance: &str, commands: &[String]) {
    let out = Command::new(common::binary("wasm-state"))
        .current_dir(dir)
        .env_remove("WASM_STATE_DATA")
        .env_remove("WASM_STATE_MANIFEST")
        .env_remove("WASM_STATE_STORE")
        .env_remove("WASM_STATE_ACCOUNT")
        .arg("--data")
        .arg(dir.join("data"))
        .args([
            "--account",
            account,
            "run",
            wasm_state_e2e::PROBE,
            "-i",
            instance,
            "--",
        ])
        .args(commands)
        .output()
        .expect("run wasm-state");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "probe run failed:\n{stdout}\n{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        commands.len(),
        "one line per command:\n{stdout}\n{stderr}"
    );
    for (c, l) in commands.iter().zip(&lines) {
        assert!(
            !l.starts_with("error:") && !l.starts_with("usage:"),
            "{c:?} -> {l}\n{stderr}"
        );
    }
}

/// The data the driver expects (see the top of explorer-test.mjs).
fn create_state(dir: &Path) {
    let mut shop: Vec<String> = vec![
        r#"set greeting {"hello":"world","n":[1,2]}"#.into(),
        r#"set <b>x</b> "<img src=x onerror=window.pwned=1>""#.into(),
    ];
    // More fields and items than the page shows at once (50).
    shop.extend(
        (0..120).map(|i| format!(r#"map-set customers c{i:03} {{"name":"Customer {i:03}"}}"#)),
    );
    shop.extend((0..70).map(|i| format!(r#"list-append events "event {i:02}""#)));
    shop.extend([
        r#"set-ttl temp 3600000 "soon gone""#.into(),
        r#"set path/a?b#c&d=e+f%20🎉 "tricky""#.into(),
        r#"set doomed "delete me""#.into(),
        r#"set vanishing "gone soon""#.into(),
    ]);
    // 68 keys in all: more than a page.
    shop.extend((0..60).map(|i| format!("set item-{i:02} {i}")));
    shop.extend([
        "session-create 3600".into(),
        "use-session @session".into(),
        r#"set note "in a session""#.into(),
        r#"list-append basket "apple""#.into(),
        r#"list-append basket "pear""#.into(),
        "use-account".into(),
        r#"set motd "shared hello""#.into(),
    ]);
    probe_run(dir, "default", "shop", &shop);
    probe_run(dir, "acme", "ledger", &["set balance 42".into()]);
}

/// Waits until something accepts connections on `addr`.
async fn wait_listening(addr: SocketAddr) {
    let started = std::time::Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the admin listener {addr} did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run_driver(admin: SocketAddr, token: &str, chromium: PathBuf) -> (bool, String) {
    let mut cmd = Command::new("node");
    cmd.arg("explorer-test.mjs")
        .arg(format!("http://{admin}"))
        .arg(token)
        .current_dir(js_dir())
        .env("CHROMIUM", chromium);
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::task::spawn_blocking(move || cmd.output().expect("node must be installed")),
    )
    .await
    .expect("the explorer test finished in time")
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_explorer_works_in_chromium() {
    let chromium = chromium();
    tokio::task::spawn_blocking(install_driver).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || create_state(&dir)
    })
    .await
    .unwrap();

    // The server, with the cart app as `shop` and the admin listener.
    let admin = free_addr();
    let data = dir.path().join("data");
    let app = format!("shop={}", wasm_state_e2e::CUSTOMERS_HTTP);
    let serve = ServeProcess::start(
        &["--data", data.to_str().unwrap()],
        &[&app, "--admin-listen", &admin.to_string()],
    )
    .await;
    wait_listening(admin).await;
    // The listener's token, made at start, readable only by its user.
    let token = std::fs::read_to_string(data.join(format!("admin-{}.token", admin.port())))
        .expect("the admin token");
    let auth = format!("Bearer {token}");
    let auth = [("authorization", auth.as_str())];

    // A second session of shop, from a request: the cart (TTL 1800 s).
    let r = post(serve.addr, "/cart/add?item=milk", &[], "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let cart = r.headers["x-session-id"].to_str().unwrap().to_string();
    let r = post(
        serve.addr,
        "/cart/add?item=eggs",
        &[("x-session-id", &cart)],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let (ok, out) = run_driver(admin, &token, chromium).await;
    assert!(ok, "the state explorer test failed:\n{out}");
    assert!(out.contains("checks passed"), "{out}");

    // What the page did is in the server: the cart session it ended is gone,
    // and so are the keys it deleted.
    let sessions = get(admin, "/v1/instances/shop/sessions", &auth).await;
    assert_eq!(sessions.status, StatusCode::OK, "{}", sessions.body);
    let sessions: serde_json::Value = serde_json::from_str(&sessions.body).unwrap();
    let ids: Vec<&str> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "{sessions}");
    assert_ne!(ids[0], cart, "the ended cart session is not listed");
    for key in ["doomed", "item-00", "vanishing"] {
        let r = get(admin, &format!("/v1/key?instance=shop&key={key}"), &auth).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{key}: {}", r.body);
    }
    let r = get(admin, "/v1/key?instance=shop&key=greeting", &auth).await;
    assert_eq!(r.status, StatusCode::OK, "the rest stays: {}", r.body);
    drop(serve);
}
