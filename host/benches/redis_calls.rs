//! A fixed number of engine writes against a running Redis, for counting
//! instructions (`scripts/redis-instructions.sh` runs it and the server
//! under valgrind's callgrind) and for wall-clock ratios that hold on a
//! shared machine (`scripts/redis-ratios.sh`): there, a criterion A/B of a
//! ~50 µs call moves ±30 % run to run, because the baseline and the engine
//! are timed seconds apart.
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
//!
//! `redis_calls alternate get|set|map|list|tx ROUNDS` (`get`: a point read,
//! the same through the module or not, against `GET`): ROUNDS rounds of 200
//! calls each of the native baseline, the engine through the module and
//! the engine through the Lua library, taking turns call by call (the
//! order rotating); prints, per engine, the ratio of its time to the
//! baseline's in the same round: median, quartiles, and the range over the
//! rounds.

// Every store here runs on the allocator the `wasm-state` binary ships with
// (as in `compare.rs` and `store.rs`): glibc's malloc was a third of the
// host's instructions per engine write.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use wasm_state::store::{Op, OpKind, ScopeHandle, Store, StoreConfig};

/// Calls per side and round of `alternate`.
const ROUND: u32 = 200;

/// What the calls share.
struct Bench {
    rt: tokio::runtime::Runtime,
    native: MultiplexedConnection,
    value: Vec<u8>,
}

impl Bench {
    /// One native call: the plain command(s) nearest to `op`.
    fn native(&self, op: &str) {
        let mut c = self.native.clone();
        let value = &self.value;
        let done = match op {
            "tx" => {
                let mut p = redis::pipe();
                p.atomic();
                for i in 0..10 {
                    p.set(format!("native:t{i}"), value).ignore();
                }
                self.rt.block_on(p.exec_async(&mut c))
            }
            "map" => self.rt.block_on(
                redis::cmd("HSET")
                    .arg("native:m")
                    .arg("f")
                    .arg(value)
                    .exec_async(&mut c),
            ),
            "get" => self
                .rt
                .block_on(redis::cmd("GET").arg("native:k").exec_async(&mut c)),
            "list" => self.rt.block_on(
                redis::cmd("RPUSH")
                    .arg("native:l")
                    .arg(value)
                    .exec_async(&mut c),
            ),
            _ => self.rt.block_on(
                redis::cmd("SET")
                    .arg("native:k")
                    .arg(value)
                    .exec_async(&mut c),
            ),
        };
        done.expect("the native command");
    }

    /// One engine call of `op` on `app`.
    fn engine(&self, app: &ScopeHandle, op: &str) {
        let value = &self.value;
        match op {
            "tx" => {
                let ops = (0..10)
                    .map(|i| {
                        Op::new(
                            format!("t{i}"),
                            OpKind::Set {
                                value: value.clone(),
                                ttl: None,
                            },
                        )
                    })
                    .collect();
                self.rt.block_on(app.commit(ops)).map(|_| ())
            }
            "map" => self
                .rt
                .block_on(app.map_set("m", vec![("f".into(), value.clone())]))
                .map(|_| ()),
            "list" => self
                .rt
                .block_on(app.list_append("l", vec![value.clone()]))
                .map(|_| ()),
            "get" => self.rt.block_on(app.get("k")).map(|_| ()),
            _ => self.rt.block_on(app.set("k", value.clone())).map(|_| ()),
        }
        .expect("the engine call");
    }
}

fn store(bench: &Bench, url: &str, namespace: &str) -> ScopeHandle {
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = bench
        .rt
        .block_on(Store::connect(
            &format!("{url}{sep}namespace={namespace}"),
            // No sweeper: its calls (and the library load the first one
            // makes) would land in the counted window.
            StoreConfig {
                sweep_interval: None,
                ..StoreConfig::default()
            },
        ))
        .expect("connect to Redis");
    store.instance("bench").expect("instance")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; only our own words count.
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let usage = "usage: redis_calls get|set|map|list|tx|native-get|native-set|native-map|native-list|native-tx CALLS\n       redis_calls alternate get|set|map|list|tx ROUNDS";
    let Some(&what) = words.first() else {
        eprintln!("{usage}");
        return;
    };
    let url =
        std::env::var("WASM_STATE_BENCH_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6399".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let native = rt
        .block_on(
            redis::Client::open(url.split('?').next().unwrap_or(&url))
                .expect("a Redis URL")
                .get_multiplexed_async_connection(),
        )
        .expect("connect to Redis");
    let bench = Bench {
        rt,
        native,
        value: b"{\"name\":\"Ada\",\"phone\":\"+441234\"}".to_vec(),
    };
    let known = |op: &str| matches!(op, "get" | "set" | "map" | "list" | "tx");
    if what == "alternate" {
        let (Some(&op), rounds) = (words.get(1), words.get(2)) else {
            eprintln!("{usage}");
            return;
        };
        let rounds: usize = rounds.and_then(|r| r.parse().ok()).unwrap_or(30);
        if !known(op) || rounds == 0 {
            eprintln!("{usage}");
            std::process::exit(2);
        }
        alternate(&bench, &url, op, rounds);
        return;
    }
    if !known(what.strip_prefix("native-").unwrap_or(what)) {
        eprintln!("{usage}");
        std::process::exit(2);
    }
    let calls: u32 = words.get(1).and_then(|c| c.parse().ok()).unwrap_or(3000);
    let app = store(&bench, &url, "calls");
    if what.ends_with("get") {
        bench.native("set");
        bench.engine(&app, "set");
    }
    let call = || match what.strip_prefix("native-") {
        Some(op) => bench.native(op),
        None => bench.engine(&app, what),
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
    let started = Instant::now();
    for _ in 0..calls {
        call();
    }
    println!(
        "{what}: {calls} calls, {:.1} µs each",
        started.elapsed().as_secs_f64() * 1e6 / f64::from(calls)
    );
}

/// `rounds` rounds of the baseline, the module and the Lua library taking
/// turns; the ratios of each round.
fn alternate(bench: &Bench, url: &str, op: &str, rounds: usize) {
    let sep = if url.contains('?') { '&' } else { '?' };
    let module = store(bench, &format!("{url}{sep}module=auto"), "calls-module");
    let lua = store(bench, &format!("{url}{sep}module=off"), "calls-lua");
    let once = |side: usize| -> Duration {
        let started = Instant::now();
        match side {
            0 => bench.native(op),
            1 => bench.engine(&module, op),
            _ => bench.engine(&lua, op),
        }
        started.elapsed()
    };
    // What `get` reads.
    bench.native("set");
    bench.engine(&module, "set");
    bench.engine(&lua, "set");
    // Warm-up: connections, the library load, the module check.
    for _ in 0..ROUND {
        for side in 0..3 {
            once(side);
        }
    }
    let (mut by_module, mut by_lua) = (Vec::new(), Vec::new());
    let mut native_us = Vec::new();
    for round in 0..rounds {
        // Call by call, so that all three meet the same disk and machine
        // (an fsync's latency here changes from one 20 ms to the next).
        let mut took = [Duration::ZERO; 3];
        for i in 0..ROUND as usize {
            for k in 0..3 {
                let side = (round + i + k) % 3;
                took[side] += once(side);
            }
        }
        let base = took[0].as_secs_f64();
        native_us.push(base * 1e6 / f64::from(ROUND));
        by_module.push(took[1].as_secs_f64() / base);
        by_lua.push(took[2].as_secs_f64() / base);
    }
    let show = |name: &str, v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        println!(
            "{op} {name}: median {:.2}x (quartiles {:.2}-{:.2}, range {:.2}-{:.2}) over {} rounds",
            at(0.5),
            at(0.25),
            at(0.75),
            at(0.0),
            at(1.0),
            v.len()
        );
    };
    native_us.sort_by(f64::total_cmp);
    println!(
        "{op} native: median {:.1} µs per call",
        native_us[native_us.len() / 2]
    );
    show("module / native", &mut by_module);
    show("lua / native", &mut by_lua);
}
