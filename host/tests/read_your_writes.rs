//! Point reads share the newest published snapshot until the next one
//! (`kv/backend/redb`): the syncer publishes it once a group is durable,
//! before answering the group, while the writer already commits the next
//! group. A read that starts after a write was acknowledged must still see
//! it, whatever other tasks do meanwhile — with the commit log (durable,
//! groups pipelined) and without.

use wasm_state::store::{RedbOptions, Store, StoreConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_after_an_acknowledged_write_sees_it_under_concurrency() {
    reads_see_acknowledged_writes(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_after_an_acknowledged_durable_write_sees_it_under_concurrency() {
    reads_see_acknowledged_writes(true).await;
}

async fn reads_see_acknowledged_writes(durable: bool) {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        redb: RedbOptions {
            durable,
            ..RedbOptions::default()
        },
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path().join("s.redb"), config).unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..8 {
        let s = store.instance("ryw").unwrap();
        tasks.spawn(async move {
            for i in 0..300u32 {
                // Each task's own key, and a key every task writes.
                let own = format!("k{t}");
                s.set(&own, i.to_be_bytes().to_vec()).await.unwrap();
                assert_eq!(s.get(&own).await.unwrap(), Some(i.to_be_bytes().to_vec()));
                let etag = s.set("shared", vec![t as u8]).await.unwrap();
                let seen = s.get_entry("shared").await.unwrap().unwrap();
                // Another task may have written since, never an older one.
                assert!(seen.etag >= etag, "read an etag older than our own write");
                // Reads alone keep seeing the same newest state.
                assert_eq!(s.get(&own).await.unwrap(), Some(i.to_be_bytes().to_vec()));
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
}
