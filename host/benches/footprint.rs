//! Footprint: bytes on disk per live session, per session holding one small
//! value, and per item of a 1,000,000-item list and a 1,000,000-field map,
//! on the embedded redb engine; plus what the writes cost in memory (RSS).
//!
//! Not a timing benchmark: it prints one table (`cargo bench --bench
//! footprint`). Sizes are the redb file's growth, as `ls -l` shows it (redb
//! grows its file in regions, so small differences round up).

use std::path::Path;
use std::time::Instant;

use wasm_state::store::{Limits, RedbOptions, Store, StoreConfig};

const SESSIONS: u64 = 100_000;
const ITEMS: u64 = 1_000_000;
const CHUNK: u64 = 10_000;

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Resident set size of this process, from /proc (Linux), in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn row(what: &str, count: u64, disk: u64, mem: i64) {
    println!(
        "| {what} | {count} | {} | {:.1} | {} |",
        disk,
        disk as f64 / count as f64,
        mem
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("footprint.redb");
    let config = StoreConfig {
        limits: Limits {
            max_ops: CHUNK as usize,
            ..Limits::default()
        },
        redb: RedbOptions {
            durable: false,
            ..RedbOptions::default()
        },
        sweep_interval: None,
        ..StoreConfig::default()
    };
    let store = Store::open(&path, config).expect("open");
    println!("| what | count | file growth (bytes) | bytes each | RSS growth (bytes) |");
    println!("|---|---|---|---|---|");
    rt.block_on(async {
        store
            .register_instance("app", "acct")
            .await
            .expect("instance");
        // Sessions with nothing in them.
        let (d0, m0, t) = (file_len(&path), rss(), Instant::now());
        for _ in 0..SESSIONS {
            store.create_session("app", None).await.expect("session");
        }
        row(
            "empty live session",
            SESSIONS,
            file_len(&path) - d0,
            rss() as i64 - m0 as i64,
        );
        eprintln!("{SESSIONS} sessions in {:?}", t.elapsed());
        // Sessions holding one 16-byte value each.
        store
            .register_instance("app2", "acct")
            .await
            .expect("instance");
        let (d0, m0) = (file_len(&path), rss());
        for _ in 0..SESSIONS {
            let s = store.create_session("app2", None).await.expect("session");
            let h = store.session("app2", &s.id).await.expect("handle");
            h.set("cart", b"0123456789abcdef".to_vec())
                .await
                .expect("set");
        }
        row(
            "session with one 16-byte value",
            SESSIONS,
            file_len(&path) - d0,
            rss() as i64 - m0 as i64,
        );
        // A 1,000,000-item list of ~11-byte items ("item-NNNNNN").
        let scope = store.instance("app").expect("scope");
        let (d0, m0) = (file_len(&path), rss());
        let mut done = 0;
        while done < ITEMS {
            let items = (done..done + CHUNK)
                .map(|i| format!("item-{i:06}").into_bytes())
                .collect();
            scope.list_append("list", items).await.expect("append");
            done += CHUNK;
        }
        row(
            "list item (11 bytes)",
            ITEMS,
            file_len(&path) - d0,
            rss() as i64 - m0 as i64,
        );
        // A 1,000,000-field map, ~12-byte fields and values.
        let (d0, m0) = (file_len(&path), rss());
        let mut done = 0;
        while done < ITEMS {
            let fields = (done..done + CHUNK)
                .map(|i| {
                    (
                        format!("field-{i:06}"),
                        format!("value-{i:06}").into_bytes(),
                    )
                })
                .collect();
            scope.map_set("map", fields).await.expect("map_set");
            done += CHUNK;
        }
        row(
            "map field (12-byte name, 12-byte value)",
            ITEMS,
            file_len(&path) - d0,
            rss() as i64 - m0 as i64,
        );
    });
    println!(
        "\nredb file: {} bytes in all; process RSS {} bytes",
        file_len(&path),
        rss()
    );
}
