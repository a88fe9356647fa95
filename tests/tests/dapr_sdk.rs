//! The official Dapr SDK for JavaScript (`@dapr/dapr`, pinned in
//! `tests/dapr-js/package-lock.json`), unchanged, in HTTP mode against the
//! API on loopback: startup, saves of every JSON type, gets, bulk gets,
//! deletes, etags, transactions, queries with token paging, and errors
//! (`tests/dapr-js/client-test.mjs`). Needs `node` and `npm`; the test runs
//! `npm ci` itself when `node_modules` is missing.

mod dapr_support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use dapr_support::{Api, manual_store};
use wasm_state::api::dapr::{DaprOptions, StoreSpec};

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dapr-js")
}

/// `npm ci` once, unless the SDK is already installed.
fn install_sdk() {
    let dir = js_dir();
    if dir.join("node_modules/@dapr/dapr/package.json").exists() {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .output()
        .expect("npm must be installed (Node.js 18 or later) to run the Dapr SDK test");
    assert!(
        out.status.success(),
        "npm ci in {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn run_client(port: u16, token: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new("node");
    cmd.arg("client-test.mjs")
        .current_dir(js_dir())
        .env("DAPR_HTTP_PORT", port.to_string())
        .env_remove("DAPR_API_TOKEN")
        .env_remove("DAPR_HTTP_ENDPOINT");
    if let Some(t) = token {
        cmd.env("DAPR_API_TOKEN", t);
    }
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::task::spawn_blocking(move || cmd.output().expect("node must be installed")),
    )
    .await
    .expect("the SDK test finished in time")
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_javascript_sdk_works_unchanged() {
    tokio::task::spawn_blocking(install_sdk).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = manual_store(dir.path());
    let options = DaprOptions {
        app_id: Some("js-app".into()),
        api_token: Some("js-token".into()),
        ..DaprOptions::default()
    };
    let mut api = Api::start(store, vec![StoreSpec::default_store()], options).await;
    let (ok, out) = run_client(api.addr.port(), Some("js-token")).await;
    assert!(ok, "the Dapr JS SDK test failed:\n{out}");
    assert!(out.contains("checks passed"), "{out}");
    // The SDK's keys are stored under the app id prefix; its cleanup
    // transaction removed what it wrote except the keys it deletes itself.
    let keys = api
        .store
        .account("default")
        .unwrap()
        .keys(Default::default())
        .await
        .unwrap()
        .keys;
    assert!(keys.iter().all(|k| k.starts_with("js-app||")), "{keys:?}");
    api.stop().await;
}
