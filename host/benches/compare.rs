//! wasm-state next to other durable stores, same machine, same process, same
//! run (`docs/benchmarks.md`, "Group commit scaling" and "Side by side").
//!
//! 1. **Group-commit scaling curve**: 1, 4, 16, 64 and 256 concurrent
//!    writers, each doing durable sets of distinct keys with 100-byte
//!    values, on
//!    - wasm-state on redb (tokio tasks on one `Store`; its writer thread
//!      group-commits what is queued; commits counted from `Store::metrics`),
//!    - native redb, one `begin_write`/`insert`/`commit` per write
//!      (`Durability::Immediate`), one OS thread per writer,
//!    - Redis (`appendonly yes`, `appendfsync always`), redis-rs, one
//!      connection per writer, one `SET` per write.
//! 2. **Side by side**: point get, durable set, map set (one field), list
//!    append, a 10-op transaction and 64 concurrent writers, on wasm-state
//!    (redb), SQLite through rusqlite (WAL, `synchronous=FULL`, Spin's
//!    key-value table), Redis `appendfsync always` and `everysec` through
//!    redis-rs, the wasm-state Redis engine on the `always` server — its
//!    writes through the Lua library (`module=off`) and through
//!    wasm-state's Redis module (loaded into both servers) — and native
//!    redb doing the same writes (for reference: what the storage engine
//!    itself costs).
//!
//! Why not criterion: fsync latency on a shared disk drifts by several times
//! within seconds, and criterion measures one function after another, so
//! the drift lands in the ratios. Here the systems take turns instead: each
//! round runs every system for a short slice (rotating who goes first), and
//! a system's figure is its total over all rounds: writes over seconds for
//! the curve, time over operations (the mean) for the table. Both tables are
//! printed at the end, in Markdown.
//!
//! Needs `redis-server` (Debian's package); each server runs on a free port
//! with AOF in its own temporary directory and is stopped at the end. The
//! module is built by cargo (`--release`) unless `WASM_STATE_REDIS_MODULE`
//! names one.
//!
//! ```sh
//! cargo bench -p wasm-state-host --bench compare            # both parts
//! cargo bench -p wasm-state-host --bench compare -- curve   # only the curve
//! cargo bench -p wasm-state-host --bench compare -- side    # only the table
//! cargo bench -p wasm-state-host --bench compare -- burst 300  # the issue's first figure
//! ```
//!
//! `-- burst ROUNDS` measures one round of 64 concurrent durable writes
//! alone: 64 sets on wasm-state, 64 native redb commits and 64 `SET`s on
//! Redis `always` take turns, ROUNDS rounds; it prints each one's p10, p50
//! and p90 and the ratios of the medians (a round is short enough that the
//! disk's slow spells show in the tail, not in every round).
//!
//! `cargo test --benches` (or `-- --test`) runs every step once, unmeasured.

// Every store here runs on the allocator the `wasm-state` binary ships with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableDatabase, TableDefinition};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;
use wasm_state::store::{Op, OpKind, ScopeHandle, Store, StoreConfig};

/// Writer counts of the scaling curve.
const WRITERS: [usize; 5] = [1, 4, 16, 64, 256];
/// Rounds of the curve (each round measures every writer count once).
const CURVE_ROUNDS: usize = 8;
/// Seconds per system per writer count per round.
const CURVE_SECS: f64 = 0.75;
/// Writers of the side-by-side "concurrent" row.
const CONCURRENT: usize = 64;
/// Rounds of the side-by-side table, and the time of one slice.
const SIDE_ROUNDS: usize = 15;
const SIDE_SLICE: Duration = Duration::from_millis(150);
const SIDE_WARM: Duration = Duration::from_millis(300);
/// The native redb baseline's table.
const RAW: TableDefinition<&str, &[u8]> = TableDefinition::new("raw");
/// Spin's default key-value table (its SQLite backend).
const SQL_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS spin_key_value (
    store TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (store, key))";
const SQL_UPSERT: &str = "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
    ON CONFLICT (store, key) DO UPDATE SET value = excluded.value";
const SQL_GET: &str = "SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2";

/// Table headings of the side-by-side systems, in the order of [`steps`].
const SYSTEMS: [&str; 7] = [
    "wasm-state (redb)",
    "SQLite (WAL, FULL)",
    "Redis `always`",
    "Redis `everysec`",
    "wasm-state on Redis `always` (Lua)",
    "wasm-state on Redis `always` (module)",
    "native redb",
];

/// A 100-byte value.
fn value() -> Vec<u8> {
    (0..100u8).map(|i| b'a' + i % 26).collect()
}

/// A 100-byte value that differs for every `n`: rewriting a row with the
/// bytes it already holds lets SQLite skip the page write (and the fsync).
fn value_n(n: u64) -> Vec<u8> {
    let mut v = value();
    v[..16].copy_from_slice(format!("{n:016x}").as_bytes());
    v
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn store_config() -> StoreConfig {
    // No background sweeper: nothing expires here, and its commits would
    // be counted as batches.
    StoreConfig {
        sweep_interval: None,
        ..StoreConfig::default()
    }
}

// ---- Redis ----

/// A `redis-server` with AOF on, in its own temporary directory.
struct Redis {
    _server: redis_server::RedisServer,
    url: String,
    // Removed after the server is stopped (field order).
    _dir: tempfile::TempDir,
}

fn start_redis(appendfsync: &str) -> Redis {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = redis_server::start_detached(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        appendfsync,
        // No AOF rewrite (a fork) in the middle of a measurement.
        "--auto-aof-rewrite-percentage",
        "0",
        "--dir",
        dir.path().to_str().expect("a UTF-8 temp path"),
        "--loadmodule",
        redis_server::module_path(),
    ]);
    for (name, want) in [("appendonly", "yes"), ("appendfsync", appendfsync)] {
        let got = redis_server::cli(server.port, &["config", "get", name]);
        assert!(
            got.lines().nth(1) == Some(want),
            "redis-server {name}: wanted {want}, got {got:?}"
        );
    }
    Redis {
        url: format!("redis://127.0.0.1:{}", server.port),
        _server: server,
        _dir: dir,
    }
}

/// `n` separate connections (one per writer).
fn redis_connections(rt: &Runtime, url: &str, n: usize) -> Vec<MultiplexedConnection> {
    rt.block_on(async {
        let client = redis::Client::open(url).expect("redis url");
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            conns.push(
                client
                    .get_multiplexed_async_connection()
                    .await
                    .expect("redis connection"),
            );
        }
        conns
    })
}

// ---- native redb and SQLite ----

fn native_put(db: &Database, key: &str, value: &[u8]) {
    native_write(db, &[(key, value)]);
}

/// One durable redb transaction of these inserts.
fn native_write(db: &Database, pairs: &[(&str, &[u8])]) {
    let mut w = db.begin_write().expect("write");
    w.set_durability(Durability::Immediate).expect("durability");
    {
        let mut t = w.open_table(RAW).expect("table");
        for (key, value) in pairs {
            t.insert(*key, *value).expect("insert");
        }
    }
    w.commit().expect("commit");
}

fn native_get(db: &Database, key: &str) -> Option<Vec<u8>> {
    let r = db.begin_read().expect("read");
    let t = r.open_table(RAW).expect("table");
    t.get(key).expect("get").map(|v| v.value().to_vec())
}

fn sqlite_open(path: &Path) -> Connection {
    let c = Connection::open(path).expect("sqlite open");
    let mode: String = c
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    c.pragma_update(None, "synchronous", "FULL")
        .expect("synchronous");
    let sync: i64 = c
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .expect("synchronous");
    assert_eq!(sync, 2, "synchronous=FULL");
    c.execute_batch(SQL_SCHEMA).expect("schema");
    c
}

fn sqlite_set(c: &Connection, key: &str, value: &[u8]) {
    c.prepare_cached(SQL_UPSERT)
        .expect("prepare")
        .execute(params!["bench", key, value])
        .expect("upsert");
}

fn sqlite_get(c: &Connection, key: &str) -> Option<Vec<u8>> {
    c.prepare_cached(SQL_GET)
        .expect("prepare")
        .query_row(params!["bench", key], |r| r.get(0))
        .optional()
        .expect("select")
}

// ---- 1. the scaling curve ----

/// Writes acknowledged in `secs` seconds, and the commits they took.
#[derive(Clone, Copy)]
struct Rate {
    writes: u64,
    secs: f64,
    commits: u64,
}

impl Rate {
    fn per_sec(&self) -> f64 {
        self.writes as f64 / self.secs
    }
}

/// A value of the store's metrics (`name` with no labels).
fn metric(store: &Store, name: &str) -> f64 {
    let text = store.metrics().encode();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{name} in the store's metrics"))
}

/// Commit batches the store's writer has made so far.
fn commit_batches(store: &Store) -> u64 {
    metric(store, "wasm_state_commit_batch_requests_count") as u64
}

/// Run `n` async writers, each calling `write(writer, k)` for k = 0, 1, …
/// one after another, until `secs` have passed; their writes, and how
/// long each took.
fn async_writers<F, Fut>(rt: &Runtime, n: usize, secs: Duration, write: F) -> (u64, Latencies)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let write = Arc::new(write);
    rt.block_on(async {
        let mut set = JoinSet::new();
        for w in 0..n {
            let (stop, write) = (stop.clone(), write.clone());
            set.spawn(async move {
                let mut took = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    write(w, took.len() as u64).await;
                    took.push(micros(t.elapsed()));
                }
                took
            });
        }
        tokio::time::sleep(secs).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Latencies::default();
        while let Some(r) = set.join_next().await {
            all.0.extend(r.expect("writer task"));
        }
        (all.0.len() as u64, all)
    })
}

/// A duration in whole µs (saturating).
fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Each acknowledged write's latency, µs (in no order).
#[derive(Default)]
struct Latencies(Vec<u32>);

impl Latencies {
    /// Add `other`'s.
    fn extend(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    /// `p50 / p99 / p99.9 / max` in ms.
    fn summary(&mut self) -> String {
        let v = &mut self.0;
        if v.is_empty() {
            return "–".into();
        }
        v.sort_unstable();
        let q = |p: f64| f64::from(v[((v.len() - 1) as f64 * p) as usize]) / 1e3;
        format!(
            "{:.2} / {:.2} / {:.2} / {:.2}",
            q(0.5),
            q(0.99),
            q(0.999),
            q(1.0)
        )
    }

    /// How many took longer than each of `ms`, per second of `secs`:
    /// `over 10 ms: 12.3/s, …`.
    fn over(&self, ms: &[u32], secs: f64) -> String {
        ms.iter()
            .map(|&limit| {
                let n = self.0.iter().filter(|&&us| us > limit * 1000).count();
                format!("over {limit} ms: {:.1}/s", n as f64 / secs)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn curve_wasm_state(
    rt: &Runtime,
    store: &Store,
    s: &ScopeHandle,
    n: usize,
    secs: Duration,
    tag: &str,
) -> (Rate, Latencies) {
    let before = commit_batches(store);
    let started = Instant::now();
    let (s, v, tag) = (s.clone(), value(), tag.to_string());
    let (writes, lat) = async_writers(rt, n, secs, move |w, k| {
        let (s, v, key) = (s.clone(), v.clone(), format!("{tag}n{n}w{w}k{k}"));
        async move {
            s.set(&key, v).await.expect("set");
        }
    });
    let rate = Rate {
        writes,
        secs: started.elapsed().as_secs_f64(),
        commits: commit_batches(store) - before,
    };
    (rate, lat)
}

/// Keys the readers of [`profile_wasm_state`] read: written before the
/// writers start, so they are in redb's commit, under every layer.
const READ_KEYS: u64 = 1_000;

/// One wasm-state curve point, alone, for a profiler; with `readers` tasks
/// reading meanwhile (point gets of keys under every layer the writers'
/// groups leave: the reads' worst case), their rate too.
fn profile_wasm_state(n: usize, secs: Duration, readers: usize) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("profile.redb"), StoreConfig::default()).expect("open");
    let s = store.instance("profile").expect("instance");
    rt.block_on(async {
        for i in 0..READ_KEYS {
            s.set(&format!("r{i}"), value()).await.expect("set");
        }
    });
    let (stop, reads) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let tasks: Vec<_> = (0..readers)
        .map(|r| {
            let (s, stop, reads) = (s.clone(), stop.clone(), reads.clone());
            rt.spawn(async move {
                let mut i = r as u64;
                while !stop.load(Ordering::Relaxed) {
                    let got = s.get(&format!("r{}", i % READ_KEYS)).await.expect("get");
                    assert!(got.is_some(), "r{} is there", i % READ_KEYS);
                    reads.fetch_add(1, Ordering::Relaxed);
                    i += 7;
                    // A point read completes at once (it never waits):
                    // without this the readers would keep the workers.
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let (rate, mut lat) = curve_wasm_state(&rt, &store, &s, n, secs, "p");
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for t in tasks {
            t.await.expect("reader task");
        }
    });
    let read_rate = if readers > 0 {
        format!(
            "; {readers} readers: {:.0} reads/s",
            reads.load(Ordering::Relaxed) as f64 / rate.secs
        )
    } else {
        String::new()
    };
    println!(
        "{n} writers, {:.1} s: {:.0} writes/s, {:.0} commits/s ({:.1} writes per commit){read_rate}",
        rate.secs,
        rate.writes as f64 / rate.secs,
        rate.commits as f64 / rate.secs,
        rate.writes as f64 / rate.commits.max(1) as f64
    );
    println!(
        "write latency p50 / p99 / p99.9 / max: {} ms; writes {}",
        lat.summary(),
        lat.over(&[10, 20, 50, 100], rate.secs)
    );
    // Checkpoints run beside the writer, and slow the log's syncs (the
    // run's: the readers' keys are set just before it, with no idle time
    // for one).
    let (n, total) = (
        metric(&store, "wasm_state_checkpoint_duration_seconds_count"),
        metric(&store, "wasm_state_checkpoint_duration_seconds_sum"),
    );
    println!(
        "checkpoints: {n:.0}, {:.1} ms on average, {:.1} % of the run",
        total * 1e3 / n.max(1.0),
        total * 100.0 / rate.secs
    );
}

/// `-- burst ROUNDS`: the issue's first figure, one round of 64 concurrent
/// durable writes, alone — rounds of 64 sets on one store, of 64 native redb
/// commits (a blocking task each) and of 64 `SET`s on Redis `always` (a
/// connection each) taking turns; the quantiles of each and the ratios of
/// the medians.
fn profile_burst(rounds: usize) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("burst.redb"), store_config()).expect("open");
    let s = store.instance("burst").expect("instance");
    let db = Arc::new(Database::create(dir.path().join("native.redb")).expect("native"));
    let redis = start_redis("always");
    let conns = redis_connections(&rt, &redis.url, CONCURRENT);
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    let mut round = |i: usize, f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        times[i].push(t.elapsed().as_secs_f64() * 1e6);
    };
    for n in 0..rounds as u64 {
        // Who goes first rotates.
        for k in 0..3 {
            match (n as usize + k) % 3 {
                0 => round(0, &mut || rt.block_on(concurrent_sets(&s, value_n(n)))),
                1 => round(1, &mut || rt.block_on(concurrent_native(&db, n))),
                _ => round(2, &mut || rt.block_on(concurrent_redis(&conns, value_n(n)))),
            }
        }
    }
    let q = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p) as usize];
    let mut medians = [0.0; 3];
    for (i, name) in ["wasm-state", "native redb", "Redis always"]
        .iter()
        .enumerate()
    {
        let v = &mut times[i];
        v.sort_by(f64::total_cmp);
        medians[i] = q(v, 0.5);
        println!(
            "{name}: p10 {:.0} µs, p50 {:.0} µs, p90 {:.0} µs",
            q(v, 0.1),
            medians[i],
            q(v, 0.9)
        );
    }
    println!(
        "64 concurrent durable writes, {rounds} rounds: wasm-state {:.1}× faster than native redb, {:.2}× faster than Redis always (medians)",
        medians[1] / medians[0],
        medians[2] / medians[0]
    );
}

fn curve_native(db: &Database, n: usize, secs: Duration, tag: &str) -> (Rate, Latencies) {
    let stop = AtomicBool::new(false);
    let v = value();
    let started = Instant::now();
    let lat = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..n)
            .map(|w| {
                let (stop, v) = (&stop, &v);
                scope.spawn(move || {
                    let mut took = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        native_put(db, &format!("{tag}n{n}w{w}k{}", took.len()), v);
                        took.push(micros(t.elapsed()));
                    }
                    took
                })
            })
            .collect();
        std::thread::sleep(secs);
        stop.store(true, Ordering::Relaxed);
        let mut all = Latencies::default();
        for t in threads {
            all.0.extend(t.join().expect("native writer"));
        }
        all
    });
    let writes = lat.0.len() as u64;
    let rate = Rate {
        writes,
        secs: started.elapsed().as_secs_f64(),
        commits: writes,
    };
    (rate, lat)
}

fn curve_redis(
    rt: &Runtime,
    conns: &[MultiplexedConnection],
    n: usize,
    secs: Duration,
    tag: &str,
) -> (Rate, Latencies) {
    let started = Instant::now();
    let (conns, v, tag) = (conns.to_vec(), value(), tag.to_string());
    let (writes, lat) = async_writers(rt, n, secs, move |w, k| {
        let (mut c, v, key) = (conns[w].clone(), v.clone(), format!("{tag}n{n}w{w}k{k}"));
        async move {
            c.set::<_, _, ()>(key, v).await.expect("SET");
        }
    });
    let rate = Rate {
        writes,
        secs: started.elapsed().as_secs_f64(),
        commits: 0,
    };
    (rate, lat)
}

fn scaling_curve(quick: bool) -> String {
    let (secs, rounds, writers): (_, _, &[usize]) = if quick {
        (Duration::from_millis(50), 1, &WRITERS[..2])
    } else {
        (Duration::from_secs_f64(CURVE_SECS), CURVE_ROUNDS, &WRITERS)
    };
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("state.redb"), store_config()).expect("store");
    let s = store.instance("curve").expect("instance");
    let native = Database::create(dir.path().join("native.redb")).expect("native db");
    let redis = start_redis("always");
    let max = writers.iter().copied().max().unwrap_or(1);
    let conns = redis_connections(&rt, &redis.url, max);

    // Warm-up (file growth, connections, thread pools), not reported.
    let warm = secs.min(Duration::from_millis(500));
    curve_wasm_state(&rt, &store, &s, 16.min(max), warm, "warm");
    curve_native(&native, 16.min(max), warm, "warm");
    curve_redis(&rt, &conns, 16.min(max), warm, "warm");

    eprintln!("\ngroup-commit scaling curve: {rounds} rounds, {secs:?} per point");
    // rates[writer count][round] = (wasm-state, native, redis), and the
    // latencies of each system's writes over the rounds.
    let mut rates = vec![Vec::new(); writers.len()];
    let mut lats: Vec<[Latencies; 3]> = writers.iter().map(|_| Default::default()).collect();
    for round in 0..rounds {
        for (i, &n) in writers.iter().enumerate() {
            // The three systems back to back, who goes first rotating, so
            // drift on the shared disk hits all three alike.
            let tag = format!("r{round}");
            let mut got: [Option<(Rate, Latencies)>; 3] = [None, None, None];
            for j in 0..3 {
                let sys = (j + round + i) % 3;
                got[sys] = Some(match sys {
                    0 => curve_wasm_state(&rt, &store, &s, n, secs, &tag),
                    1 => curve_native(&native, n, secs, &tag),
                    _ => curve_redis(&rt, &conns, n, secs, &tag),
                });
            }
            let [Some((ours, l0)), Some((raw, l1)), Some((red, l2))] = got else {
                unreachable!("every system ran")
            };
            for (all, l) in lats[i].iter_mut().zip([l0, l1, l2]) {
                all.extend(l);
            }
            eprintln!(
                "  round {round}, {n:>3} writers: wasm-state {:>7.0}/s ({:.1} writes/commit), native redb {:>7.0}/s, Redis always {:>7.0}/s",
                ours.per_sec(),
                ours.writes as f64 / ours.commits.max(1) as f64,
                raw.per_sec(),
                red.per_sec()
            );
            rates[i].push((ours, raw, red));
        }
    }
    drop(conns);
    drop(redis);

    let mut out = String::from("## Group commit scaling (benches/compare.rs)\n\n");
    out += "| writers | wasm-state writes/s | wasm-state commits/s (writes per commit) | native redb writes/s (= commits/s) | Redis `always` writes/s | wasm-state ÷ native | wasm-state ÷ Redis |\n";
    out += "|---|---|---|---|---|---|---|\n";
    for (&n, runs) in writers.iter().zip(&rates) {
        // Totals over the rounds.
        let sum = |pick: fn(&(Rate, Rate, Rate)) -> Rate| {
            runs.iter().map(pick).fold(
                Rate {
                    writes: 0,
                    secs: 0.0,
                    commits: 0,
                },
                |t, r| Rate {
                    writes: t.writes + r.writes,
                    secs: t.secs + r.secs,
                    commits: t.commits + r.commits,
                },
            )
        };
        let (ours, raw, red) = (sum(|r| r.0), sum(|r| r.1), sum(|r| r.2));
        let range = |f: fn(&(Rate, Rate, Rate)) -> f64| {
            let xs: Vec<f64> = runs.iter().map(f).collect();
            let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = xs.iter().copied().fold(0.0, f64::max);
            format!("{lo:.2}–{hi:.2}")
        };
        eprintln!(
            "  {n:>3} writers: per-round wasm-state ÷ native {}, ÷ Redis {}",
            range(|(o, r, _)| o.per_sec() / r.per_sec()),
            range(|(o, _, d)| o.per_sec() / d.per_sec()),
        );
        out += &format!(
            "| {n} | {:.0} | {:.0} ({:.1}) | {:.0} | {:.0} | {:.2}× | {:.2}× |\n",
            ours.per_sec(),
            ours.commits as f64 / ours.secs,
            ours.writes as f64 / ours.commits.max(1) as f64,
            raw.per_sec(),
            red.per_sec(),
            ours.per_sec() / raw.per_sec(),
            ours.per_sec() / red.per_sec(),
        );
    }
    out += "\nWrite latency over the rounds, p50 / p99 / p99.9 / max (ms):\n\n";
    out += "| writers | wasm-state | native redb | Redis `always` |\n|---|---|---|---|\n";
    for (&n, [ours, raw, red]) in writers.iter().zip(&mut lats) {
        out += &format!(
            "| {n} | {} | {} | {} |\n",
            ours.summary(),
            raw.summary(),
            red.summary()
        );
    }
    out
}

// ---- 2. side by side ----

/// One operation of one system; its argument numbers the call (to vary
/// the value written).
type Step<'a> = Box<dyn FnMut(u64) + 'a>;

/// Mean time per call (ns) of each step, the steps taking turns.
fn measure(steps: &mut [Step<'_>], quick: bool) -> Vec<f64> {
    let k = steps.len();
    let mut next = vec![0u64; k];
    let mut per_slice = vec![1u64; k];
    if !quick {
        // Warm up, and size each step's slice to about SIDE_SLICE.
        for (i, step) in steps.iter_mut().enumerate() {
            let started = Instant::now();
            let mut n = 0u64;
            while n == 0 || started.elapsed() < SIDE_WARM {
                step(next[i]);
                next[i] += 1;
                n += 1;
            }
            let each = started.elapsed().as_secs_f64() / n as f64;
            per_slice[i] = ((SIDE_SLICE.as_secs_f64() / each) as u64).max(1);
        }
    }
    let rounds = if quick { 1 } else { SIDE_ROUNDS };
    let mut total = vec![(Duration::ZERO, 0u64); k];
    for round in 0..rounds {
        for j in 0..k {
            let i = (j + round) % k;
            let started = Instant::now();
            for _ in 0..per_slice[i] {
                steps[i](next[i]);
                next[i] += 1;
            }
            total[i].0 += started.elapsed();
            total[i].1 += per_slice[i];
        }
    }
    total
        .iter()
        .map(|(t, n)| t.as_nanos() as f64 / *n as f64)
        .collect()
}

struct Fixture {
    rt: Runtime,
    /// wasm-state on redb.
    s: ScopeHandle,
    /// wasm-state on the `always` Redis.
    sr: ScopeHandle,
    sqlite: Arc<Mutex<Connection>>,
    native: Arc<Database>,
    /// wasm-state on the `always` Redis through wasm-state's Redis module.
    srm: ScopeHandle,
    always: Connections,
    everysec: Connections,
    _stores: (Store, Store, Store),
    _redis: (Redis, Redis),
    _dir: tempfile::TempDir,
}

/// One connection for single ops, `CONCURRENT` for the concurrent row.
type Connections = (MultiplexedConnection, Vec<MultiplexedConnection>);

fn fixture() -> Fixture {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("state.redb"), store_config()).expect("store");
    let always = start_redis("always");
    let everysec = start_redis("everysec");
    let redis_store = rt
        .block_on(Store::connect(
            &format!("{}?namespace=cmp&module=off", always.url),
            store_config(),
        ))
        .expect("wasm-state on redis");
    let module_store = rt
        .block_on(Store::connect(
            &format!("{}?namespace=cmpm", always.url),
            store_config(),
        ))
        .expect("wasm-state on redis with the module");
    let sqlite = sqlite_open(&dir.path().join("kv.sqlite"));
    let native = Database::create(dir.path().join("native.redb")).expect("native db");
    native_put(&native, "hot", &value());
    let (s, sr, srm) = (
        store.instance("bench").expect("instance"),
        redis_store.instance("bench").expect("instance"),
        module_store.instance("bench").expect("instance"),
    );
    let v = value();
    let conns = |url: &str| {
        let mut c = redis_connections(&rt, url, CONCURRENT + 1);
        let one = c.pop().expect("a connection");
        (one, c)
    };
    let (a, e) = (conns(&always.url), conns(&everysec.url));
    rt.block_on(async {
        s.set("hot", v.clone()).await.expect("set");
        sr.set("hot", v.clone()).await.expect("set");
        srm.set("hot", v.clone()).await.expect("set");
        for mut c in [a.0.clone(), e.0.clone()] {
            c.set::<_, _, ()>("hot", &v).await.expect("SET");
        }
    });
    sqlite_set(&sqlite, "hot", &v);
    Fixture {
        rt,
        s,
        sr,
        srm,
        sqlite: Arc::new(Mutex::new(sqlite)),
        native: Arc::new(native),
        always: a,
        everysec: e,
        _stores: (store, redis_store, module_store),
        _redis: (always, everysec),
        _dir: dir,
    }
}

fn ten_ops(keys: &[String], v: &[u8]) -> Vec<Op> {
    keys.iter()
        .map(|k| {
            Op::new(
                k.clone(),
                OpKind::Set {
                    value: v.to_vec(),
                    ttl: None,
                },
            )
        })
        .collect()
}

async fn concurrent_sets(s: &ScopeHandle, v: Vec<u8>) {
    let mut set = JoinSet::new();
    for i in 0..CONCURRENT {
        let (s, v) = (s.clone(), v.clone());
        set.spawn(async move { s.set(&format!("c{i}"), v).await });
    }
    while let Some(r) = set.join_next().await {
        r.expect("task").expect("set");
    }
}

/// 64 native redb commits at once, a blocking task each.
async fn concurrent_native(db: &Arc<Database>, n: u64) {
    let mut set = JoinSet::new();
    for i in 0..CONCURRENT {
        let (db, v) = (db.clone(), value_n(n));
        set.spawn_blocking(move || native_put(&db, &format!("c{i}"), &v));
    }
    while let Some(r) = set.join_next().await {
        r.expect("task");
    }
}

async fn concurrent_redis(conns: &[MultiplexedConnection], v: Vec<u8>) {
    let mut set = JoinSet::new();
    for (i, c) in conns.iter().enumerate() {
        let (mut c, v) = (c.clone(), v.clone());
        set.spawn(async move { c.set::<_, _, ()>(format!("c{i}"), v).await });
    }
    while let Some(r) = set.join_next().await {
        r.expect("task").expect("SET");
    }
}

/// The steps of one operation, in the order of [`SYSTEMS`] (but the last,
/// [`native_step`]).
fn steps<'a>(f: &'a Fixture, op: &str, keys: &'a [String]) -> Vec<Step<'a>> {
    let (rt, sql) = (&f.rt, &f.sqlite);
    let lock = move || sql.lock().expect("sqlite lock");
    let (redis, sqlite): (Box<dyn Fn(&'a Connections) -> Step<'a>>, Step<'a>) = match op {
        "point get" => (
            Box::new(move |c| {
                Box::new(move |_| {
                    black_box(
                        rt.block_on(c.0.clone().get::<_, Vec<u8>>("hot"))
                            .expect("GET"),
                    );
                })
            }),
            Box::new(move |_| {
                black_box(sqlite_get(&lock(), "hot"));
            }),
        ),
        "durable set" => (
            Box::new(move |c| {
                Box::new(move |n| {
                    rt.block_on(c.0.clone().set::<_, _, ()>("k", value_n(n)))
                        .expect("SET")
                })
            }),
            Box::new(move |n| sqlite_set(&lock(), "k", &value_n(n))),
        ),
        // SQLite has no maps: a field is a row of its own.
        "map set (1 field)" => (
            Box::new(move |c| {
                Box::new(move |n| {
                    rt.block_on(c.0.clone().hset::<_, _, _, ()>("m", "f", value_n(n)))
                        .expect("HSET")
                })
            }),
            Box::new(move |n| sqlite_set(&lock(), "m/f", &value_n(n))),
        ),
        // SQLite has no lists: one transaction writes the item's row and
        // the list's length row (what wasm-state's list meta record does).
        "list append (1 item)" => (
            Box::new(move |c| {
                Box::new(move |n| {
                    rt.block_on(c.0.clone().rpush::<_, _, ()>("l", value_n(n)))
                        .expect("RPUSH")
                })
            }),
            Box::new(move |n| {
                let mut c = lock();
                let tx = c.transaction().expect("begin");
                sqlite_set(&tx, &format!("l/{n:020}"), &value_n(n));
                sqlite_set(&tx, "l", &(n + 1).to_be_bytes());
                tx.commit().expect("commit");
            }),
        ),
        "transaction, 10 sets" => (
            Box::new(move |c| {
                Box::new(move |n| {
                    let v = value_n(n);
                    let mut p = redis::pipe();
                    p.atomic();
                    for k in keys {
                        p.set(k, &v).ignore();
                    }
                    rt.block_on(p.query_async::<()>(&mut c.0.clone()))
                        .expect("MULTI/EXEC")
                })
            }),
            Box::new(move |n| {
                let v = value_n(n);
                let mut c = lock();
                let tx = c.transaction().expect("begin");
                for k in keys {
                    sqlite_set(&tx, k, &v);
                }
                tx.commit().expect("commit");
            }),
        ),
        // 64 writers at once, one write each: SQLite as Spin uses it (one
        // connection behind a mutex, each write its own transaction, on the
        // blocking pool); Redis one connection each.
        "64 concurrent writers" => (
            Box::new(move |c| Box::new(move |n| rt.block_on(concurrent_redis(&c.1, value_n(n))))),
            Box::new(move |n| {
                rt.block_on(async {
                    let mut set = JoinSet::new();
                    for i in 0..CONCURRENT {
                        let (sql, v) = (sql.clone(), value_n(n));
                        set.spawn_blocking(move || {
                            sqlite_set(&sql.lock().expect("lock"), &format!("c{i}"), &v)
                        });
                    }
                    while let Some(r) = set.join_next().await {
                        r.expect("task");
                    }
                })
            }),
        ),
        other => unreachable!("no operation {other}"),
    };
    vec![
        wasm_state_step(rt, &f.s, op, keys),
        sqlite,
        redis(&f.always),
        redis(&f.everysec),
        wasm_state_step(rt, &f.sr, op, keys),
        wasm_state_step(rt, &f.srm, op, keys),
    ]
}

/// The operation on a wasm-state scope (embedded, or on Redis through the
/// Lua library or the module); 64 concurrent writers are tasks on one
/// `Store`.
fn wasm_state_step<'a>(
    rt: &'a Runtime,
    h: &'a ScopeHandle,
    op: &str,
    keys: &'a [String],
) -> Step<'a> {
    match op {
        "point get" => Box::new(move |_| {
            black_box(rt.block_on(h.get("hot")).expect("get"));
        }),
        "durable set" => Box::new(move |n| {
            rt.block_on(h.set("k", value_n(n))).expect("set");
        }),
        "map set (1 field)" => Box::new(move |n| {
            rt.block_on(h.map_set("m", vec![("f".into(), value_n(n))]))
                .expect("map set");
        }),
        "list append (1 item)" => Box::new(move |n| {
            rt.block_on(h.list_append("l", vec![value_n(n)]))
                .expect("list append");
        }),
        "transaction, 10 sets" => Box::new(move |n| {
            rt.block_on(h.commit(ten_ops(keys, &value_n(n))))
                .expect("commit");
        }),
        "64 concurrent writers" => Box::new(move |n| rt.block_on(concurrent_sets(h, value_n(n)))),
        other => unreachable!("no operation {other}"),
    }
}

/// The same operation on native redb (the last column): plain inserts, one
/// durable transaction per operation, as wasm-state would need at least.
fn native_step<'a>(f: &'a Fixture, op: &str, keys: &'a [String]) -> Step<'a> {
    let (rt, db) = (&f.rt, &f.native);
    match op {
        "point get" => Box::new(move |_| {
            black_box(native_get(db, "hot"));
        }),
        "durable set" => Box::new(move |n| native_put(db, "k", &value_n(n))),
        "map set (1 field)" => Box::new(move |n| native_put(db, "m/f", &value_n(n))),
        "list append (1 item)" => Box::new(move |n| {
            let item = format!("l/{n:020}");
            let len = (n + 1).to_be_bytes();
            native_write(db, &[(&item, &value_n(n)), ("l", &len)]);
        }),
        "transaction, 10 sets" => Box::new(move |n| {
            let v = value_n(n);
            let pairs: Vec<(&str, &[u8])> = keys.iter().map(|k| (k.as_str(), &v[..])).collect();
            native_write(db, &pairs);
        }),
        // redb takes one writer at a time: 64 commits one after another.
        "64 concurrent writers" => Box::new(move |n| rt.block_on(concurrent_native(db, n))),
        other => unreachable!("no operation {other}"),
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn side_by_side(quick: bool) -> String {
    let f = fixture();
    let keys: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    let mut out = String::from("## Side by side: SQLite, Redis (benches/compare.rs)\n\n");
    out += &format!(
        "| operation | {} | wasm-state ÷ SQLite | wasm-state ÷ Redis `always` | wasm-state on Redis (Lua) ÷ Redis `always` | wasm-state on Redis (module) ÷ Redis `always` | wasm-state ÷ native redb |\n",
        SYSTEMS.join(" | ")
    );
    out += &format!(
        "|---|{}---|---|---|---|---|\n",
        "---|".repeat(SYSTEMS.len())
    );
    eprintln!(
        "\nside by side: {} rounds of {SIDE_SLICE:?} slices per system",
        if quick { 1 } else { SIDE_ROUNDS }
    );
    for op in [
        "point get",
        "durable set",
        "map set (1 field)",
        "list append (1 item)",
        "transaction, 10 sets",
        "64 concurrent writers",
    ] {
        let mut steps = steps(&f, op, &keys);
        steps.push(native_step(&f, op, &keys));
        let mean = measure(&mut steps, quick);
        drop(steps);
        let cells: Vec<String> = mean.iter().map(|m| fmt_ns(*m)).collect();
        eprintln!("  {op}: {}", cells.join(" · "));
        let row = if op == "64 concurrent writers" {
            "64 concurrent writers (one round of 64 writes)"
        } else {
            op
        };
        out += &format!(
            "| {row} | {} | {:.2}× | {:.2}× | {:.2}× | {:.2}× | {:.2}× |\n",
            cells.join(" | "),
            mean[0] / mean[1],
            mean[0] / mean[2],
            mean[4] / mean[2],
            mean[5] / mean[2],
            mean[0] / mean[6],
        );
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if has("--list") {
        println!("curve: benchmark\nside: benchmark");
        return;
    }
    // As criterion decides: without `--bench` (`cargo test --benches`), or
    // with `--test`, only check that every step runs.
    let quick = !has("--bench") || has("--test");
    if let Some(i) = args.iter().position(|a| a == "profile") {
        // `-- profile N SECS [READERS]`: only wasm-state, N writers for
        // SECS seconds (to run under perf or strace; docs/benchmarks.md),
        // with READERS tasks reading meanwhile.
        let n = args.get(i + 1).and_then(|a| a.parse().ok()).unwrap_or(64);
        let secs = args.get(i + 2).and_then(|a| a.parse().ok()).unwrap_or(10);
        let readers = args.get(i + 3).and_then(|a| a.parse().ok()).unwrap_or(0);
        profile_wasm_state(n, Duration::from_secs(secs), readers);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "burst") {
        let rounds = match args.get(i + 1).filter(|a| !a.starts_with('-')) {
            None => 300,
            Some(a) => match a.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    eprintln!("-- burst ROUNDS: ROUNDS is a whole number ≥ 1, not {a}");
                    std::process::exit(2);
                }
            },
        };
        profile_burst(rounds);
        return;
    }
    let filter = args.iter().find(|a| !a.starts_with('-'));
    let wants = |part: &str| filter.is_none_or(|f| part.contains(f.as_str()));
    let mut tables = Vec::new();
    if wants("curve") {
        tables.push(scaling_curve(quick));
    }
    if wants("side") {
        tables.push(side_by_side(quick));
    }
    if quick {
        eprintln!("compare: every step ran (not measured)");
    } else {
        println!("\n{}", tables.join("\n"));
    }
}
