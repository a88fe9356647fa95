//! The Redis engine next to the native redis-rs client doing the nearest
//! plain command(s) on the same `redis-server`, same process, same run
//! (GET, SET, HSET, RPUSH, MULTI/EXEC of 10 SETs, 64 concurrent SETs): the
//! engine with its writes in the Lua library (`wasm_state`, `module=off`)
//! and through wasm-state's Redis module (`wasm_state_module`, loaded into
//! the same server). Needs `redis-server` (Debian's package).
//! `scripts/bench-ratios.py` prints the ratios.

// Every store here runs on the allocator the `wasm-state` binary ships with
// (as in `compare.rs` and `store.rs`): glibc's malloc was a third of the
// host's instructions per engine write.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use redis::AsyncCommands;
use wasm_state::store::{Op, OpKind, Store, StoreConfig};

fn benches(c: &mut Criterion) {
    let server = redis_server::start_detached(&["--loadmodule", redis_server::module_path()]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = format!("redis://127.0.0.1:{}", server.port);
    let (store, module_store, mut native) = rt.block_on(async {
        let store = Store::connect(
            &format!("{url}?namespace=bench&module=off"),
            StoreConfig::default(),
        )
        .await
        .unwrap();
        let module_store =
            Store::connect(&format!("{url}?namespace=benchm"), StoreConfig::default())
                .await
                .unwrap();
        let client = redis::Client::open(url.as_str()).unwrap();
        let native = client.get_multiplexed_async_connection().await.unwrap();
        (store, module_store, native)
    });
    let s = store.instance("bench").unwrap();
    let m = module_store.instance("bench").unwrap();
    let value = b"{\"name\":\"Ada\",\"phone\":\"+441234\"}".to_vec();
    rt.block_on(async {
        s.set("hot", value.clone()).await.unwrap();
        m.set("hot", value.clone()).await.unwrap();
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
    g.bench_function("wasm_state_module", |b| {
        b.iter(|| rt.block_on(m.set("k", value.clone())).unwrap())
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
    g.bench_function("wasm_state_module", |b| {
        b.iter(|| {
            rt.block_on(m.map_set("m", vec![("f".into(), value.clone())]))
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
    g.bench_function("wasm_state_module", |b| {
        b.iter(|| {
            rt.block_on(m.list_append("l", vec![value.clone()]))
                .unwrap()
        })
    });
    g.finish();

    let keys: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    let mut g = c.benchmark_group("redis_transaction_10_ops");
    g.bench_function("native_redis", |b| {
        b.iter(|| {
            rt.block_on(async {
                native_multi(&keys, &value)
                    .query_async::<()>(&mut native.clone())
                    .await
                    .unwrap()
            })
        })
    });
    g.bench_function("wasm_state", |b| {
        b.iter(|| rt.block_on(s.commit(set_ops(&keys, &value))).unwrap())
    });
    g.bench_function("wasm_state_module", |b| {
        b.iter(|| rt.block_on(m.commit(set_ops(&keys, &value))).unwrap())
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
    for (name, s) in [("wasm_state", &s), ("wasm_state_module", &m)] {
        g.bench_function(name, |b| {
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
    }
    g.finish();

    // Redis's own CPU per operation, each path on its own.
    let cpu = |cmds: &[&str], run: &mut dyn FnMut()| server_cpu(&rt, &native, cmds, run);
    let rows: [(&str, f64, f64, f64); 5] = [
        (
            "point get (GET)",
            cpu(&["get"], &mut || {
                rt.block_on(native.clone().get::<_, Vec<u8>>("native:hot"))
                    .unwrap();
            }),
            cpu(&["fcall", "hmget"], &mut || {
                rt.block_on(s.get("hot")).unwrap();
            }),
            cpu(&["wasmstate.commit", "hmget"], &mut || {
                rt.block_on(m.get("hot")).unwrap();
            }),
        ),
        (
            "set (SET)",
            cpu(&["set"], &mut || {
                rt.block_on(native.clone().set::<_, _, ()>("native:k", &value))
                    .unwrap()
            }),
            cpu(&["fcall"], &mut || {
                rt.block_on(s.set("k", value.clone())).unwrap();
            }),
            cpu(&["wasmstate.commit"], &mut || {
                rt.block_on(m.set("k", value.clone())).unwrap();
            }),
        ),
        (
            "map-set (HSET)",
            cpu(&["hset"], &mut || {
                rt.block_on(native.clone().hset::<_, _, _, ()>("native:m", "f", &value))
                    .unwrap()
            }),
            cpu(&["fcall"], &mut || {
                rt.block_on(s.map_set("m", vec![("f".into(), value.clone())]))
                    .unwrap();
            }),
            cpu(&["wasmstate.commit"], &mut || {
                rt.block_on(m.map_set("m", vec![("f".into(), value.clone())]))
                    .unwrap();
            }),
        ),
        (
            "list-append (RPUSH)",
            cpu(&["rpush"], &mut || {
                rt.block_on(native.clone().rpush::<_, _, ()>("native:l", &value))
                    .unwrap()
            }),
            cpu(&["fcall"], &mut || {
                rt.block_on(s.list_append("l", vec![value.clone()]))
                    .unwrap();
            }),
            cpu(&["wasmstate.commit"], &mut || {
                rt.block_on(m.list_append("l", vec![value.clone()]))
                    .unwrap();
            }),
        ),
        (
            "transaction, 10 sets (MULTI/SET×10/EXEC)",
            cpu(&["multi", "set", "exec"], &mut || {
                rt.block_on(native_multi(&keys, &value).query_async::<()>(&mut native.clone()))
                    .unwrap()
            }),
            cpu(&["fcall"], &mut || {
                rt.block_on(s.commit(set_ops(&keys, &value))).unwrap();
            }),
            cpu(&["wasmstate.commit"], &mut || {
                rt.block_on(m.commit(set_ops(&keys, &value))).unwrap();
            }),
        ),
    ];
    println!("Redis CPU per operation (INFO commandstats, {CPU_ROUNDS} rounds each):");
    for (name, native_us, lua_us, module_us) in rows {
        println!(
            "  {name}: native {native_us:.1} µs, wasm-state Lua {lua_us:.1} µs (FCALL or HMGET) = {:.1}x, module {module_us:.1} µs (wasmstate.commit or HMGET) = {:.1}x",
            lua_us / native_us.max(0.001),
            module_us / native_us.max(0.001)
        );
    }
    drop(server);
}

const CPU_ROUNDS: u32 = 3000;

/// The transaction benchmark's ops: a set of `value` to each key.
fn set_ops(keys: &[String], value: &[u8]) -> Vec<Op> {
    keys.iter()
        .map(|k| {
            Op::new(
                k.clone(),
                OpKind::Set {
                    value: value.to_vec(),
                    ttl: None,
                },
            )
        })
        .collect()
}

/// Its native counterpart: `MULTI`, a `SET` per key, `EXEC`.
fn native_multi(keys: &[String], value: &[u8]) -> redis::Pipeline {
    let mut p = redis::pipe();
    p.atomic();
    for k in keys {
        p.set(format!("native:{k}"), value).ignore();
    }
    p
}

/// Redis's own CPU time (µs, `INFO commandstats`) per run of `run`, counting
/// the commands `cmds` (an `FCALL` counts the commands its script calls).
/// Redis runs commands on one thread, so this bounds what all the hosts
/// sharing it can do together.
fn server_cpu(
    rt: &tokio::runtime::Runtime,
    admin: &redis::aio::MultiplexedConnection,
    cmds: &[&str],
    run: &mut dyn FnMut(),
) -> f64 {
    let query = |c: &mut redis::Cmd| -> redis::Value {
        rt.block_on(c.query_async(&mut admin.clone())).unwrap()
    };
    query(redis::cmd("CONFIG").arg("RESETSTAT"));
    for _ in 0..CPU_ROUNDS {
        run();
    }
    let info: String = rt
        .block_on(
            redis::cmd("INFO")
                .arg("commandstats")
                .query_async(&mut admin.clone()),
        )
        .unwrap();
    let usec: f64 = cmds
        .iter()
        .map(|cmd| {
            let prefix = format!("cmdstat_{cmd}:");
            info.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .and_then(|rest| rest.split(',').find_map(|kv| kv.strip_prefix("usec=")))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        })
        .sum();
    usec / f64::from(CPU_ROUNDS)
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
