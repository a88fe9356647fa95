//! The redb backend's commit log (`kv/backend/log.rs`): a durable store
//! acknowledges a group of writes once its log record is fsynced, and the
//! data file catches up at checkpoints. These tests take crash images — a
//! copy of the data file and its log while the store is running, as a
//! SIGKILL leaves them — and open them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use wasm_state::store::{Op, OpKind, RedbOptions, Store, StoreConfig};

/// A durable store that makes no idle checkpoint while a test runs.
fn config() -> StoreConfig {
    StoreConfig {
        redb: RedbOptions {
            durable: true,
            checkpoint_idle: Duration::from_secs(3600),
            ..RedbOptions::default()
        },
        sweep_interval: None,
        ..StoreConfig::default()
    }
}

/// The two log files, written in turn (a checkpoint switches).
fn wals(data: &Path) -> [PathBuf; 2] {
    [
        PathBuf::from(format!("{}.wal", data.display())),
        PathBuf::from(format!("{}.1.wal", data.display())),
    ]
}

/// Copy the data file (and its log, if `with_log`) to `to`, as a crash
/// would leave them.
fn crash_image(data: &Path, to: &Path, with_log: bool) {
    std::fs::copy(data, to).unwrap();
    if with_log {
        for (from, to) in wals(data).iter().zip(wals(to)) {
            std::fs::copy(from, to).unwrap();
        }
    }
}

/// Writes of every kind: values, a map, a list, a counter, a delete, a
/// transaction, and a transaction that fails (and must leave nothing).
async fn write_some(store: &Store) {
    let s = store.instance("app").unwrap();
    for i in 0..40u32 {
        s.set(&format!("k{i}"), i.to_be_bytes().to_vec())
            .await
            .unwrap();
    }
    s.delete("k3").await.unwrap();
    s.map_set(
        "m",
        vec![("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())],
    )
    .await
    .unwrap();
    s.list_append("l", vec![b"x".to_vec(), b"y".to_vec()])
        .await
        .unwrap();
    assert_eq!(s.increment("n", 5).await.unwrap(), 5);
    s.commit(vec![
        Op::new(
            "t1",
            OpKind::Set {
                value: b"one".to_vec(),
                ttl: None,
            },
        ),
        Op::new(
            "t2",
            OpKind::Set {
                value: b"two".to_vec(),
                ttl: None,
            },
        ),
    ])
    .await
    .unwrap();
    let failed = s
        .commit(vec![
            Op::new(
                "f1",
                OpKind::Set {
                    value: b"no".to_vec(),
                    ttl: None,
                },
            ),
            Op::new("n", OpKind::ListAppend(vec![b"z".to_vec()])),
        ])
        .await;
    assert!(failed.is_err(), "a list op on a counter must fail");
}

async fn assert_written(store: &Store) {
    let s = store.instance("app").unwrap();
    for i in 0..40u32 {
        let want = (i != 3).then(|| i.to_be_bytes().to_vec());
        assert_eq!(s.get(&format!("k{i}")).await.unwrap(), want, "k{i}");
    }
    assert_eq!(s.map_get("m", "b").await.unwrap(), Some(b"2".to_vec()));
    assert_eq!(s.list_length("l").await.unwrap(), 2);
    assert_eq!(s.increment("n", 0).await.unwrap(), 5);
    assert_eq!(s.get("t2").await.unwrap(), Some(b"two".to_vec()));
    assert_eq!(
        s.get("f1").await.unwrap(),
        None,
        "the failed transaction left a write"
    );
    // And writes go on after the replay.
    s.set("after", b"1".to_vec()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_image_replays_the_log_and_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("state.redb");
    let store = Store::open(&data, config()).unwrap();
    write_some(&store).await;
    let image = dir.path().join("image.redb");
    let bare = dir.path().join("bare.redb");
    crash_image(&data, &image, true);
    crash_image(&data, &bare, false);
    drop(store);

    let store = Store::open(&image, config()).unwrap();
    assert_written(&store).await;
    drop(store);
    // Opened again (now from its checkpoint): the same.
    let store = Store::open(&image, config()).unwrap();
    assert_written(&store).await;

    // Without its log the data file holds only its last checkpoint (made
    // when the file was created): the writes above were in the log alone.
    let store = Store::open(&bare, config()).unwrap();
    let s = store.instance("app").unwrap();
    assert_eq!(s.get("k1").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_close_leaves_a_complete_data_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("state.redb");
    let store = Store::open(&data, config()).unwrap();
    write_some(&store).await;
    drop(store);
    for wal in wals(&data) {
        std::fs::remove_file(wal).unwrap();
    }
    let store = Store::open(&data, config()).unwrap();
    assert_written(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_store_checkpoints_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("state.redb");
    let mut c = config();
    c.redb.checkpoint_idle = Duration::from_millis(20);
    let store = Store::open(&data, c).unwrap();
    write_some(&store).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let image = dir.path().join("image.redb");
    crash_image(&data, &image, false);
    drop(store);
    let store = Store::open(&image, config()).unwrap();
    assert_written(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_belongs_to_another_data_file_is_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.redb");
    let b = dir.path().join("b.redb");
    let store_a = Store::open(&a, config()).unwrap();
    write_some(&store_a).await;
    drop(Store::open(&b, config()).unwrap());
    // a's pending log next to b.
    for (from, to) in wals(&a).iter().zip(wals(&b)) {
        std::fs::copy(from, to).unwrap();
    }
    drop(store_a);
    let store = Store::open(&b, config()).unwrap();
    let s = store.instance("app").unwrap();
    assert_eq!(s.get("k1").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_opened_without_durability_still_replays_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("state.redb");
    let store = Store::open(&data, config()).unwrap();
    write_some(&store).await;
    let image = dir.path().join("image.redb");
    crash_image(&data, &image, true);
    drop(store);
    let mut c = config();
    c.redb.durable = false;
    let store = Store::open(&image, c).unwrap();
    assert_written(&store).await;
    drop(store);
    // The non-durable store wrote no log of its own, and the old one is
    // not replayed a second time over its newer state.
    let store = Store::open(&image, config()).unwrap();
    assert_written(&store).await;
    let s = store.instance("app").unwrap();
    assert_eq!(s.get("after").await.unwrap(), Some(b"1".to_vec()));
}

#[test]
fn the_log_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("state.redb");
    drop(Store::open(&data, config()).unwrap());
    for wal in wals(&data) {
        let mode = std::fs::metadata(wal).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
