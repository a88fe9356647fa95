//! Scale benchmark: list index/set/pops/length and map-get on a 1,000,000-item
//! list and a 1,000,000-field map cost about the same as on 10 items; the
//! delete of a whole list is one writer job over all its items.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use wasm_state::store::{Limits, RedbOptions, ScopeHandle, Store, StoreConfig};

const SIZES: [u64; 2] = [10, 1_000_000];
const CHUNK: u64 = 10_000;

async fn fill(s: &ScopeHandle, n: u64) {
    fill_list(s, "list", n).await;
    let mut done = 0;
    while done < n {
        let m = CHUNK.min(n - done);
        let fields = (done..done + m)
            .map(|i| (format!("field-{i}"), format!("value-{i}").into_bytes()))
            .collect();
        s.map_set("map", fields).await.expect("map_set");
        done += m;
    }
}

async fn fill_list(s: &ScopeHandle, key: &str, n: u64) {
    let mut done = 0;
    while done < n {
        let m = CHUNK.min(n - done);
        let items: Vec<Vec<u8>> = (done..done + m)
            .map(|i| format!("item-{i}").into_bytes())
            .collect();
        s.list_append(key, items).await.expect("append");
        done += m;
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        limits: Limits {
            max_ops: CHUNK as usize,
            ..Limits::default()
        },
        redb: RedbOptions {
            durable: false,
            ..RedbOptions::default()
        },
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path().join("scale.redb"), config).unwrap();
    let scopes: Vec<(u64, ScopeHandle)> = SIZES
        .iter()
        .map(|&n| {
            let s = store.instance(&format!("n{n}")).unwrap();
            rt.block_on(fill(&s, n));
            (n, s)
        })
        .collect();

    let mut g = c.benchmark_group("list_index");
    for (n, s) in &scopes {
        let mid = (*n / 2) as i64;
        g.bench_with_input(BenchmarkId::from_parameter(n), n, |b, _| {
            b.iter(|| rt.block_on(s.list_index("list", mid)).unwrap().unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("list_set");
    for (n, s) in &scopes {
        let mid = (*n / 2) as i64;
        g.bench_with_input(BenchmarkId::from_parameter(n), n, |b, _| {
            b.iter(|| rt.block_on(s.list_set("list", mid, b"x".to_vec())).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("list_pop_push");
    for (n, s) in &scopes {
        g.bench_with_input(BenchmarkId::from_parameter(n), n, |b, _| {
            b.iter(|| {
                rt.block_on(async {
                    let head = s.list_start_pop("list", 1).await.unwrap();
                    s.list_append("list", head).await.unwrap();
                    let tail = s.list_end_pop("list", 1).await.unwrap();
                    s.list_prepend("list", tail).await.unwrap()
                })
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("list_length");
    for (n, s) in &scopes {
        g.bench_with_input(BenchmarkId::from_parameter(n), n, |b, _| {
            b.iter(|| assert_eq!(rt.block_on(s.list_length("list")).unwrap(), *n))
        });
    }
    g.finish();

    // Deleting a whole list is one writer job over all its items: the
    // writer (every other write of the store) waits for it. Each iteration
    // fills a new list (not timed) and times its delete.
    let mut g = c.benchmark_group("list_delete_whole");
    g.sample_size(10)
        .sampling_mode(criterion::SamplingMode::Flat)
        .measurement_time(Duration::from_secs(1));
    for n in SIZES {
        let s = store.instance(&format!("del{n}")).unwrap();
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let mut took = Duration::ZERO;
                for _ in 0..iters {
                    rt.block_on(fill_list(&s, "big", n));
                    let started = std::time::Instant::now();
                    assert!(rt.block_on(s.delete("big")).unwrap());
                    took += started.elapsed();
                }
                took
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("map_get");
    for (n, s) in &scopes {
        let field = format!("field-{}", n / 2);
        g.bench_with_input(BenchmarkId::from_parameter(n), n, |b, _| {
            b.iter(|| rt.block_on(s.map_get("map", &field)).unwrap().unwrap())
        });
    }
    g.finish();
}

criterion_group! {
    name = scale;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(scale);
