//! Store benchmark: each wasm-state operation next to native redb doing the
//! equivalent raw get/insert (same durability) in the same process.
//! `scripts/bench-ratios.py` turns criterion's output into the ratio table.
//! Both sides run on the allocator the `wasm-state` binary ships with.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use redb::{Database, ReadableDatabase, TableDefinition};
use tokio::runtime::Runtime;
use wasm_state::store::{Op, OpKind, Store, StoreConfig};

const RAW: TableDefinition<&[u8], &[u8]> = TableDefinition::new("raw");

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

struct Fixture {
    _dir: tempfile::TempDir,
    native: Database,
    store: Store,
    rt: Runtime,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let native = Database::create(dir.path().join("native.redb")).expect("native db");
    let w = native.begin_write().expect("write");
    w.open_table(RAW)
        .expect("table")
        .insert(&b"hot"[..], &b"\"value\""[..])
        .expect("insert");
    w.commit().expect("commit");
    let store = Store::open(dir.path().join("state.redb"), StoreConfig::default()).expect("store");
    let rt = runtime();
    rt.block_on(
        store
            .instance("bench")
            .unwrap()
            .set("hot", b"\"value\"".to_vec()),
    )
    .expect("set");
    Fixture {
        _dir: dir,
        native,
        store,
        rt,
    }
}

/// A second handle on the native baseline's data (a copy of the file).
fn fixture_db(f: &Fixture) -> Database {
    let path = f._dir.path().join("native-copy.redb");
    let db = Database::create(path).expect("copy db");
    native_insert(&db, &[(b"hot", b"\"value\"")]);
    db
}

fn native_get(db: &Database) -> Option<Vec<u8>> {
    let r = db.begin_read().unwrap();
    let t = r.open_table(RAW).unwrap();
    t.get(&b"hot"[..]).unwrap().map(|v| v.value().to_vec())
}

fn native_insert(db: &Database, pairs: &[(&[u8], &[u8])]) {
    let w = db.begin_write().expect("write");
    {
        let mut t = w.open_table(RAW).expect("table");
        for (k, v) in pairs {
            t.insert(*k, *v).expect("insert");
        }
    }
    w.commit().expect("commit");
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    let s = f.store.instance("bench").unwrap();
    let value = b"{\"name\":\"Ada\",\"phone\":\"+441234\"}".to_vec();

    let mut g = c.benchmark_group("point_get");
    g.bench_function("native_redb", |b| b.iter(|| native_get(&f.native)));
    g.bench_function("wasm_state", |b| {
        b.iter(|| f.rt.block_on(s.get("hot")).unwrap())
    });
    g.finish();

    // Why point reads stay inline: the same native redb get, run inline on the
    // async task versus handed to tokio's blocking pool.
    let mt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let native = std::sync::Arc::new(fixture_db(&f));
    let mut g = c.benchmark_group("read_dispatch");
    g.bench_function("inline", |b| {
        b.iter(|| {
            let db = native.clone();
            mt.block_on(async move { native_get(&db) })
        })
    });
    g.bench_function("spawn_blocking", |b| {
        b.iter(|| {
            let db = native.clone();
            mt.block_on(async move {
                tokio::task::spawn_blocking(move || native_get(&db))
                    .await
                    .unwrap()
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("durable_set");
    g.bench_function("native_redb", |b| {
        b.iter(|| native_insert(&f.native, &[(b"k", &value)]))
    });
    g.bench_function("wasm_state", |b| {
        b.iter(|| f.rt.block_on(s.set("k", value.clone())).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("map_set");
    g.bench_function("native_redb", |b| {
        b.iter(|| native_insert(&f.native, &[(b"m/f", &value)]))
    });
    g.bench_function("wasm_state", |b| {
        b.iter(|| {
            f.rt.block_on(s.map_set("m", vec![("f".into(), value.clone())]))
                .unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("list_append");
    let mut n = 0u64;
    g.bench_function("native_redb", |b| {
        b.iter(|| {
            n += 1;
            native_insert(&f.native, &[(&n.to_be_bytes(), &value)])
        })
    });
    g.bench_function("wasm_state", |b| {
        b.iter(|| {
            f.rt.block_on(s.list_append("l", vec![value.clone()]))
                .unwrap()
        })
    });
    g.finish();

    let keys: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    let mut g = c.benchmark_group("transaction_10_ops");
    g.bench_function("native_redb", |b| {
        let pairs: Vec<(&[u8], &[u8])> = keys
            .iter()
            .map(|k| (k.as_bytes(), value.as_slice()))
            .collect();
        b.iter(|| native_insert(&f.native, &pairs))
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
            f.rt.block_on(s.commit(ops)).unwrap()
        })
    });
    g.finish();

    // 64 callers writing at once: native redb commits them one by one; the
    // store's writer group-commits what is queued.
    let mut g = c.benchmark_group("concurrent_set_64");
    g.bench_function("native_redb", |b| {
        b.iter(|| {
            for i in 0..64u8 {
                native_insert(&f.native, &[(&[b'c', i], &value)]);
            }
        })
    });
    g.bench_function("wasm_state", |b| {
        b.iter(|| {
            f.rt.block_on(async {
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
}

criterion_group! {
    name = store;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(store);
