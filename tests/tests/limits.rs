//! Guests are bounded: a guest that loops forever or allocates without end
//! is stopped with a clear error, and the host keeps serving others.

use std::path::Path;
use std::time::{Duration, Instant};

use wasm_state::runtime::{GuestLimits, Host, HostConfig, HostError, RunOptions};

fn host(dir: &Path) -> Host {
    let mut config = HostConfig::new(dir);
    config.guest = GuestLimits {
        deadline: Duration::from_millis(300),
        memory_bytes: 16 << 20,
    };
    Host::open(config).unwrap()
}

#[tokio::test]
async fn a_looping_guest_hits_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path());
    host.deploy_file("spin", Path::new(wasm_state_e2e::SPIN))
        .await
        .unwrap();
    let started = Instant::now();
    let err = host
        .run(
            "spin",
            RunOptions {
                capture: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, HostError::Deadline { limit } if limit == Duration::from_millis(300)),
        "{err:?}"
    );
    assert!(err.to_string().contains("300ms deadline"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped promptly: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_hungry_guest_hits_its_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path());
    host.deploy_file("hog", Path::new(wasm_state_e2e::HOG))
        .await
        .unwrap();
    let err = host
        .run(
            "hog",
            RunOptions {
                capture: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, HostError::MemoryLimit { limit } if limit == 16 << 20),
        "{err:?}"
    );
    assert!(err.is_guest_failure());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_keeps_serving_while_bad_guests_are_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path());
    host.deploy_file("spin", Path::new(wasm_state_e2e::SPIN))
        .await
        .unwrap();
    host.deploy_file("hog", Path::new(wasm_state_e2e::HOG))
        .await
        .unwrap();
    let state = host.store().instance("other").unwrap();
    let bad = {
        let host = host.clone();
        tokio::spawn(async move {
            let opts = RunOptions {
                capture: true,
                ..Default::default()
            };
            let (a, b) = tokio::join!(host.run("spin", opts.clone()), host.run("hog", opts));
            (a.unwrap_err(), b.unwrap_err())
        })
    };
    // While they run, state calls keep being answered.
    for i in 0..5 {
        state.set("k", i.to_string().into_bytes()).await.unwrap();
    }
    assert!(
        !bad.is_finished(),
        "the state calls did not wait for the looping guest"
    );
    let (a, b) = bad.await.unwrap();
    assert!(matches!(a, HostError::Deadline { .. }), "{a:?}");
    assert!(matches!(b, HostError::MemoryLimit { .. }), "{b:?}");
    assert_eq!(state.get("k").await.unwrap(), Some(b"4".to_vec()));
    // And the same bad guest can be run again (fresh instance each time).
    assert!(matches!(
        host.run(
            "spin",
            RunOptions {
                capture: true,
                ..Default::default()
            }
        )
        .await,
        Err(HostError::Deadline { .. })
    ));
}

#[tokio::test]
async fn components_that_cannot_run_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path());
    let err = host.deploy("junk", b"garbage").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("neither a .wasm binary nor WAT text"),
        "{err}"
    );
    let core_module = b"\0asm\x01\0\0\0";
    let err = host.deploy("core", core_module).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("core wasm module, not a component"),
        "{err}"
    );
    // Nothing was registered for them.
    assert!(host.store().list_instances().await.unwrap().is_empty());
    assert!(host.deployed().is_empty());
}
