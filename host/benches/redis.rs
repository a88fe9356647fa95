//! The Redis engine next to the native redis-rs client doing the nearest
//! plain command(s) on the same `redis-server`, same process, same run
//! (GET, SET, HSET, RPUSH, MULTI/EXEC of 10 SETs, 64 concurrent SETs).
//! Needs `redis-server` (Debian's package). `scripts/bench-ratios.py`
//! prints the ratios.

#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use redis::AsyncCommands;
use wasm_state::store::{Op, OpKind, Store, StoreConfig};

fn benches(c: &mut Criterion) {
    let server = redis_server::start_detached(&[]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = format!("redis://127.0.0.1:{}", server.port);
    let (store, mut native) = rt.block_on(async {
        let store = Store::connect(&format!("{url}?namespace=bench"), StoreConfig::default())
            .await
            .unwrap();
        let client = redis::Client::open(url.as_str()).unwrap();
        let native = client.get_multiplexed_async_connection().await.unwrap();
        (store, native)
    });
    let s = store.instance("bench").unwrap();
    let value = b"{\"name\":\"Ada\",\"phone\":\"+441234\"}".to_vec();
    rt.block_on(async {
        s.set("hot", value.clone()).await.unwrap();
        let _: () = native.set("native:hot", value.clone()).await.unwrap();
    });

    let mut g = c.benchmark_group("redis_point_get");
    g.bench_function("native_redis", |b| {
        b.iter(|| {
            rt.block_on(async {
                native
                    .clone()
                    .get::<_, Vec<u8>>("native:hot")
                    .await
                    .unwrap()
            })
        })
    });
    g.bench_function("wasm_state", |b| {
        b.iter(|| rt.block_on(s.get("hot")).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("redis_set");
    g.bench_function("native_redis", |b| {
        b.iter(|| {
            rt.block_on(async {
                native
                    .clone()
                    .set::<_, _, ()>("native:k", &value)
                    .await
                    .unwrap()
            })
        })
    });
    g.bench_function("wasm_state", |b| {
        b.iter(|| rt.block_on(s.set("k", value.clone())).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("redis_map_set");
    g.bench_function("native_redis", |b| {
        b.iter(|| {
            rt.block_on(async {
                native
                    .clone()
                    .hset::<_, _, _, ()>("native:m", "f", &value)
                    .await
                    .unwrap()
            })
        })
    });
    g.bench_function("wasm_state", |b| {
        b.iter(|| {
            rt.block_on(s.map_set("m", vec![("f".into(), value.clone())]))
                .unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("redis_list_append");
    g.bench_function("native_redis", |b| {
        b.iter(|| {
            rt.block_on(async {
                native
                    .clone()
                    .rpush::<_, _, ()>("native:l", &value)
                    .await
                    .unwrap()
            })
        })
    });
    g.bench_function("wasm_state", |b| {
        b.iter(|| {
            rt.block_on(s.list_append("l", vec![value.clone()]))
                .unwrap()
        })
    });
    g.finish();

    let keys: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    let mut g = c.benchmark_group("redis_transaction_10_ops");
    g.bench_function("native_redis", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut p = redis::pipe();
                p.atomic();
                for k in &keys {
                    p.set(format!("native:{k}"), &value).ignore();
                }
                p.query_async::<()>(&mut native.clone()).await.unwrap()
            })
        })
    });
    g.bench_function("wasm_state", |b| {
        b.iter(|| {
            let ops = keys
                .iter()
                .map(|k| {
                    Op::new(
                        k.clone(),
                        OpKind::Set {
                            value: value.clone(),
                            ttl: None,
                        },
                    )
                })
                .collect();
            rt.block_on(s.commit(ops)).unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("redis_concurrent_set_64");
    g.bench_function("native_redis", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut set = tokio::task::JoinSet::new();
                for i in 0..64 {
                    let (mut n, v) = (native.clone(), value.clone());
                    set.spawn(async move { n.set::<_, _, ()>(format!("native:c{i}"), v).await });
                }
                while let Some(r) = set.join_next().await {
                    r.unwrap().unwrap();
                }
            })
        })
    });
    g.bench_function("wasm_state", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut set = tokio::task::JoinSet::new();
                for i in 0..64 {
                    let (s, v) = (s.clone(), value.clone());
                    set.spawn(async move { s.set(&format!("c{i}"), v).await });
                }
                while let Some(r) = set.join_next().await {
                    r.unwrap().unwrap();
                }
            })
        })
    });
    g.finish();
    drop(server);
}

criterion_group! {
    name = redis_engine;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(redis_engine);
