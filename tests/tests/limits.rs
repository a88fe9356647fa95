//! Guests are bounded: a guest that loops forever or allocates without end
//! is stopped with a clear error, and the host keeps serving others.

use std::path::Path;
use std::time::{Duration, Instant};

use wasm_state::runtime::{GuestLimits, Host, HostConfig, HostError, RunOptions};

fn host(dir: &Path) -> Host {
    host_with_deadline(dir, Duration::from_millis(300))
}

fn host_with_deadline(dir: &Path, deadline: Duration) -> Host {
    let mut config = HostConfig::new(dir);
    config.guest = GuestLimits {
        deadline,
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
    // The looping guest runs 5 s: five durable writes meanwhile fit on a
    // slow disk too.
    let host = host_with_deadline(dir.path(), Duration::from_secs(5));
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

/// A component's linear memories count against its limit together: two
/// memories of 10 MiB each break a 16 MiB limit that each alone keeps.
#[tokio::test]
async fn a_guests_memories_count_against_its_limit_together() {
    use wasmtime::component::Val;
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path());
    let two = r#"(component
        (core module $m
            (memory $a 1)
            (memory $b 1)
            (func (export "grow") (param i32) (result i32)
                (drop (memory.grow $a (local.get 0)))
                (memory.grow $b (local.get 0))))
        (core instance $i (instantiate $m))
        (func (export "grow") (param "pages" u32) (result s32)
            (canon lift (core func $i "grow"))))"#;
    host.deploy("two", two.as_bytes()).await.unwrap();
    // 5 MiB each: 10 MiB in all, within the limit.
    assert_eq!(
        host.call("two", "grow", &[Val::U32(80)]).await.unwrap(),
        [Val::S32(1)]
    );
    // 10 MiB each: 20 MiB in all.
    let err = host
        .call("two", "grow", &[Val::U32(160)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, HostError::MemoryLimit { limit } if limit == 16 << 20),
        "{err:?}"
    );
    // Nor can a component declare memories without end.
    let many = format!(
        r#"(component
            (core module $m {} (func (export "f")))
            (core instance $i (instantiate $m))
            (func (export "f") (canon lift (core func $i "f"))))"#,
        "(memory 0) ".repeat(20)
    );
    host.deploy("many", many.as_bytes()).await.unwrap();
    let err = host.call("many", "f", &[]).await.unwrap_err();
    assert!(matches!(err, HostError::Trap(_)), "{err:?}");
}

/// Handles a guest holds (here, state buckets it never drops) are host
/// memory its memory limit does not see: one call may hold at most
/// 10,000; past that its call traps, and the host goes on.
#[tokio::test]
async fn a_guest_cannot_hold_handles_without_end() {
    use wasmtime::component::Val;
    let dir = tempfile::tempdir().unwrap();
    // Time enough for 10,000 handles in a debug build.
    let mut config = HostConfig::new(dir.path());
    config.guest = GuestLimits {
        deadline: Duration::from_secs(20),
        memory_bytes: 16 << 20,
    };
    let host = Host::open(config).unwrap();
    let hoarder = r#"(component
        (import "wasm-state:state/state@0.1.0" (instance $st
            (export "bucket" (type $bucket (sub resource)))
            (export "instance" (func (result (own $bucket))))))
        (alias export $st "instance" (func $instance))
        (core func $get (canon lower (func $instance)))
        (core module $m
            (import "st" "instance" (func $get (result i32)))
            (func (export "hold") (param i32) (result i32)
                (local $i i32)
                (block $done
                    (loop $again
                        (br_if $done (i32.ge_u (local.get $i) (local.get 0)))
                        (drop (call $get))
                        (local.set $i (i32.add (local.get $i) (i32.const 1)))
                        (br $again)))
                (local.get $i)))
        (core instance $imports (export "instance" (func $get)))
        (core instance $i (instantiate $m (with "st" (instance $imports))))
        (func (export "hold") (param "n" u32) (result u32)
            (canon lift (core func $i "hold"))))"#;
    host.deploy("hoarder", hoarder.as_bytes()).await.unwrap();
    assert_eq!(
        host.call("hoarder", "hold", &[Val::U32(5_000)])
            .await
            .unwrap(),
        [Val::U32(5_000)]
    );
    let err = host
        .call("hoarder", "hold", &[Val::U32(50_000)])
        .await
        .unwrap_err();
    assert!(matches!(err, HostError::Trap(_)), "{err:?}");
    // The next call starts afresh.
    assert_eq!(
        host.call("hoarder", "hold", &[Val::U32(10)]).await.unwrap(),
        [Val::U32(10)]
    );
}
