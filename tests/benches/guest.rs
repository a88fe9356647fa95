//! Guest benchmark: state operations made by a real guest component through
//! the host (wasmtime call → SDK → WIT import → store) next to the same
//! operations made by native Rust on the same `Store`, in the same process.
//!
//! - `guest_get_hot`: one `get-hot(1000)` call (a fresh instance that reads
//!   the key `hot` 1000 times) / 1000, vs 1000 native `get("hot")` / 1000;
//!   the SDK keeps the value after the first read, so this is mostly the
//!   cheap `read-stamp` check;
//! - `guest_get_hot_uncached`: the same with `get-entry` (never kept: every
//!   read crosses to the host) vs native `get_entry`;
//! - `guest_set`: one `set-n(100)` call (100 durable sets) / 100, vs 100
//!   native `set` / 100;
//! - `guest_instantiate` (and `_pooling`, with the pooling allocator): one
//!   call of the empty export `noop` (instantiate + call + drop) vs a native
//!   no-op future on the same runtime.
//!
//! Each group names its functions `guest` and `native`;
//! `scripts/bench-ratios.py` prints guest / native.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use wasm_state::runtime::{Host, HostConfig};
use wasmtime::component::Val;

/// Guest reads per `get-hot` call.
const GETS: u32 = 1000;
/// Guest durable sets per `set-n` call (each is a commit with fsync).
const SETS: u32 = 100;

struct Fixture {
    _dir: tempfile::TempDir,
    host: Host,
    rt: Runtime,
}

fn fixture(pooling: Option<u32>) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = HostConfig::new(dir.path());
    config.pooling = pooling;
    let host = Host::open(config).expect("host");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        host.deploy_file("bench", Path::new(wasm_state_e2e::BENCH_GUEST))
            .await
            .expect("deploy bench-guest");
        host.store()
            .instance("bench")
            .unwrap()
            .set("hot", b"\"value\"".to_vec())
            .await
            .expect("set hot");
    });
    Fixture {
        _dir: dir,
        host,
        rt,
    }
}

/// Calls `export` of the bench guest `iters` times with `args`, checking the
/// result, and returns the total time divided by `per_call`.
fn guest_calls(
    f: &Fixture,
    export: &str,
    args: &[Val],
    expect: Val,
    iters: u64,
    per_call: u32,
) -> Duration {
    f.rt.block_on(async {
        let started = Instant::now();
        for _ in 0..iters {
            let out = f
                .host
                .call("bench", export, args)
                .await
                .expect("guest call");
            assert_eq!(out, std::slice::from_ref(&expect));
        }
        started.elapsed() / per_call
    })
}

/// Group `name`: the guest export `export` (GETS reads of `hot` in one
/// call) against GETS native reads by `read`, per read.
fn hot_reads<F, Fut>(c: &mut Criterion, f: &Fixture, name: &str, export: &str, read: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut g = c.benchmark_group(name);
    g.bench_function("guest", |b| {
        b.iter_custom(|iters| {
            guest_calls(f, export, &[Val::U32(GETS)], Val::U32(GETS), iters, GETS)
        })
    });
    g.bench_function("native", |b| {
        b.iter_custom(|iters| {
            f.rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    for _ in 0..GETS {
                        assert!(std::hint::black_box(read().await));
                    }
                }
                started.elapsed() / GETS
            })
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let f = fixture(None);
    let native = f.host.store().instance("bench").unwrap();

    hot_reads(c, &f, "guest_get_hot", "get-hot", || async {
        native.get("hot").await.expect("get").is_some()
    });
    // The same reads, none kept: each crosses to the host (get-entry).
    hot_reads(c, &f, "guest_get_hot_uncached", "get-hot-entry", || async {
        native.get_entry("hot").await.expect("get").is_some()
    });

    let mut g = c.benchmark_group("guest_set");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("guest", |b| {
        b.iter_custom(|iters| {
            guest_calls(&f, "set-n", &[Val::U32(SETS)], Val::U32(SETS), iters, SETS)
        })
    });
    g.bench_function("native", |b| {
        b.iter_custom(|iters| {
            f.rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    for i in 0..SETS {
                        native
                            .set("k", i.to_string().into_bytes())
                            .await
                            .expect("set");
                    }
                }
                started.elapsed() / SETS
            })
        })
    });
    g.finish();

    let pooled = fixture(Some(16));
    for (group, f) in [
        ("guest_instantiate", &f),
        ("guest_instantiate_pooling", &pooled),
    ] {
        let mut g = c.benchmark_group(group);
        g.bench_function("guest", |b| {
            b.iter_custom(|iters| guest_calls(f, "noop", &[], Val::U32(0), iters, 1))
        });
        g.bench_function("native", |b| {
            b.iter(|| f.rt.block_on(async { std::hint::black_box(0u32) }))
        });
        g.finish();
    }
}

criterion_group! {
    name = guest;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(guest);
