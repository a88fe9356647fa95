//! A fixed number of engine writes against a running Redis, for counting
//! instructions (`scripts/redis-instructions.sh` runs it and the server
//! under valgrind's callgrind): on a shared machine, wall-clock A/B of a
//! ~50 µs call moves ±30 % run to run; instructions per call do not.
//!
//! `redis_calls set|map|list|tx|native-set|native-map|native-list|native-tx
//! CALLS`: `CALLS` one-key sets, one-field map sets, one-item list appends
//! or 10-op transactions through the Redis engine — or, for the baseline,
//! the native redis-rs client's `SET`, `HSET`, `RPUSH` or `MULTI`, 10
//! `SET`s, `EXEC` — at `WASM_STATE_BENCH_REDIS` (default
//! `redis://127.0.0.1:6399`, its module used when loaded; add `?module=off`
//! for the Lua library), after 200 of the same to warm up; between the two,
//! the shell command `AFTER_WARMUP` (if set) runs — the script zeroes the
//! server's counters there. The store's sweeper is off, so nothing else
//! runs in the counted window.

// Every store here runs on the allocator the `wasm-state` binary ships with
// (as in `compare.rs` and `store.rs`): glibc's malloc was a third of the
// host's instructions per engine write.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use wasm_state::store::{Op, OpKind, Store, StoreConfig};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; only our own words count.
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (Some(&what), calls) = (words.first(), words.get(1)) else {
        eprintln!(
            "usage: redis_calls set|map|list|tx|native-set|native-map|native-list|native-tx CALLS"
        );
        return;
    };
    let calls: u32 = calls.and_then(|c| c.parse().ok()).unwrap_or(3000);
    let url =
        std::env::var("WASM_STATE_BENCH_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6399".into());
    let sep = if url.contains('?') { '&' } else { '?' };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let store = rt
        .block_on(Store::connect(
            &format!("{url}{sep}namespace=calls"),
            // No sweeper: its calls (and the library load the first one
            // makes) would land in the counted window.
            StoreConfig {
                sweep_interval: None,
                ..StoreConfig::default()
            },
        ))
        .expect("connect to Redis");
    let app = store.instance("bench").expect("instance");
    let native = rt
        .block_on(
            redis::Client::open(url.split('?').next().unwrap_or(&url))
                .expect("a Redis URL")
                .get_multiplexed_async_connection(),
        )
        .expect("connect to Redis");
    let value = b"{\"name\":\"Ada\",\"phone\":\"+441234\"}".to_vec();
    let ops = || -> Vec<Op> {
        (0..10)
            .map(|i| {
                Op::new(
                    format!("t{i}"),
                    OpKind::Set {
                        value: value.clone(),
                        ttl: None,
                    },
                )
            })
            .collect()
    };
    let call = || match what {
        "native-set" => {
            let mut c = native.clone();
            rt.block_on(
                redis::cmd("SET")
                    .arg("native:k")
                    .arg(&value)
                    .exec_async(&mut c),
            )
            .expect("SET");
        }
        "native-tx" => {
            let mut p = redis::pipe();
            p.atomic();
            for i in 0..10 {
                p.set(format!("native:t{i}"), &value).ignore();
            }
            let mut c = native.clone();
            rt.block_on(p.exec_async(&mut c)).expect("MULTI/EXEC");
        }
        "native-map" => {
            let mut c = native.clone();
            rt.block_on(
                redis::cmd("HSET")
                    .arg("native:m")
                    .arg("f")
                    .arg(&value)
                    .exec_async(&mut c),
            )
            .expect("HSET");
        }
        "native-list" => {
            let mut c = native.clone();
            rt.block_on(
                redis::cmd("RPUSH")
                    .arg("native:l")
                    .arg(&value)
                    .exec_async(&mut c),
            )
            .expect("RPUSH");
        }
        "tx" => {
            rt.block_on(app.commit(ops())).expect("transaction");
        }
        "map" => {
            rt.block_on(app.map_set("m", vec![("f".into(), value.clone())]))
                .expect("map set");
        }
        "list" => {
            rt.block_on(app.list_append("l", vec![value.clone()]))
                .expect("list append");
        }
        _ => {
            rt.block_on(app.set("k", value.clone())).expect("set");
        }
    };
    for _ in 0..200 {
        call();
    }
    if let Ok(hook) = std::env::var("AFTER_WARMUP") {
        let status = std::process::Command::new("sh")
            .args(["-c", &hook])
            .status()
            .expect("run AFTER_WARMUP");
        assert!(status.success(), "AFTER_WARMUP failed");
    }
    let started = std::time::Instant::now();
    for _ in 0..calls {
        call();
    }
    println!(
        "{what}: {calls} calls, {:.1} µs each",
        started.elapsed().as_secs_f64() * 1e6 / f64::from(calls)
    );
}
