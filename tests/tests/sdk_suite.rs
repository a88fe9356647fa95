//! The `sdk-suite` guest runs every operation group of the guest SDK through
//! the real host on a real redb file and checks each result; the host then
//! reads some of what it left behind directly from the store.

use std::path::Path;

use wasm_state::runtime::{Host, HostConfig, RunOptions};

const GROUPS: [&str; 14] = [
    "values",
    "counters",
    "ttl",
    "etags",
    "maps",
    "lists",
    "keys",
    "delete-prefix",
    "batches",
    "kept-reads",
    "transactions",
    "sessions",
    "account",
    "queries",
];

/// A host whose store runs no sweeper: the sweeper's commit every second
/// would move the store's generation, and the kept-reads checks must see
/// kept values end by time alone and last while nothing is committed.
fn host_without_sweeper(dir: &Path) -> Host {
    let mut config = HostConfig::new(dir);
    config.store.sweep_interval = None;
    Host::open(config).unwrap()
}

#[tokio::test]
async fn every_sdk_operation_group_passes_through_the_real_host() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_without_sweeper(dir.path());
    host.deploy_file("suite", Path::new(wasm_state_e2e::SDK_SUITE))
        .await
        .unwrap();
    let out = host
        .run(
            "suite",
            RunOptions {
                capture: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.exit_code, 0, "sdk-suite failed:\n{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let expected: Vec<String> = GROUPS.iter().map(|g| format!("ok {g}")).collect();
    assert_eq!(lines, expected, "{stderr}");

    // What the guest wrote is in the store, as the guest left it.
    let st = host.store().instance("suite").unwrap();
    assert_eq!(st.get("x:alice").await.unwrap(), Some(b"185".to_vec()));
    assert_eq!(
        st.list_range("x:ledger", 0, -1).await.unwrap(),
        [br#""alice->bob 10""#.to_vec()]
    );
    assert_eq!(st.map_length("m:big").await.unwrap(), 50);
    assert!(st.exists("dq").await.unwrap());
    assert!(!st.exists("dp:0").await.unwrap());
    // The suite ended both its sessions; the account keys it made are gone.
    assert!(
        host.store()
            .list_sessions("suite")
            .await
            .unwrap()
            .is_empty()
    );
    let acct = host.store().account("default").unwrap();
    assert!(!acct.exists("suite:shared").await.unwrap());
}

#[tokio::test]
async fn a_failing_check_exits_non_zero_with_its_group_and_line() {
    // The suite expects a fresh instance: pre-existing data in the session
    // group's key makes the `sessions` group fail, and the run stops there.
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(HostConfig::new(dir.path())).unwrap();
    host.deploy_file("suite", Path::new(wasm_state_e2e::SDK_SUITE))
        .await
        .unwrap();
    let st = host.store().instance("suite").unwrap();
    st.set("k", b"99".to_vec()).await.unwrap();
    let out = host
        .run(
            "suite",
            RunOptions {
                capture: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.exit_code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("ok transactions\n"), "{stdout}");
    assert!(!stdout.contains("ok sessions"), "{stdout}");
    assert!(stderr.contains("FAIL sessions: line "), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guest_transactions_add_up() {
    // Four instances of one account run read-modify-write transactions on
    // the same account key at once: real conflicts, retried by the SDK, and
    // no update is lost.
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(HostConfig::new(dir.path())).unwrap();
    let names = ["w0", "w1", "w2", "w3"];
    for name in names {
        host.deploy_file(name, Path::new(wasm_state_e2e::PROBE))
            .await
            .unwrap();
    }
    let mut args = vec!["use-account".to_string()];
    args.extend((0..25).map(|_| "tx-add total 1".to_string()));
    let runs = names.map(|name| {
        let host = host.clone();
        let options = RunOptions {
            args: args.clone(),
            capture: true,
            ..Default::default()
        };
        tokio::spawn(async move { host.run(name, options).await })
    });
    for run in runs {
        let out = run.await.unwrap().unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(out.exit_code, 0, "{stdout}");
        assert!(!stdout.contains("error:"), "{stdout}");
        assert_eq!(stdout.lines().count(), 26);
    }
    let acct = host.store().account("default").unwrap();
    assert_eq!(acct.get("total").await.unwrap(), Some(b"100".to_vec()));
}

/// The `get` reads a store answered, from its metrics.
fn store_gets(host: &Host) -> u64 {
    host.store()
        .metrics()
        .encode()
        .lines()
        .find(|l| {
            l.starts_with("wasm_state_state_operations_total{")
                && l.contains("op=\"get\"")
                && l.contains("result=\"ok\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_guest_reading_a_key_again_does_not_read_the_store_again() {
    use wasmtime::component::Val;
    let dir = tempfile::tempdir().unwrap();
    let host = host_without_sweeper(dir.path());
    host.deploy_file("bench", Path::new(wasm_state_e2e::BENCH_GUEST))
        .await
        .unwrap();
    let st = host.store().instance("bench").unwrap();
    st.set("hot", b"\"v\"".to_vec()).await.unwrap();
    let before = store_gets(&host);
    let out = host
        .call("bench", "get-hot", &[Val::U32(500)])
        .await
        .unwrap();
    assert_eq!(out, [Val::U32(500)]);
    let kept = store_gets(&host) - before;
    assert_eq!(
        kept, 1,
        "500 reads of one key: one store read, the rest kept"
    );
    // Reads that are never kept (get-entry) each read the store.
    let before = store_gets(&host);
    host.call("bench", "get-hot-entry", &[Val::U32(50)])
        .await
        .unwrap();
    assert_eq!(store_gets(&host) - before, 50);
}
