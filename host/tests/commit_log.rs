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
    // An image of the data file alone holds the writes once a checkpoint
    // ran by itself (within 20 ms of idleness; a slow disk may take longer:
    // images are taken until one holds the last write, for up to 30 s).
    let probe = dir.path().join("probe.redb");
    let started = std::time::Instant::now();
    loop {
        for wal in wals(&probe) {
            let _ = std::fs::remove_file(wal);
        }
        crash_image(&data, &probe, false);
        let copy = Store::open(&probe, config()).unwrap();
        let done = copy.instance("app").unwrap().get("t2").await.unwrap();
        drop(copy);
        if done.is_some() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no checkpoint by itself within 30 s of idleness"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    // Its records are in the first file (no checkpoint switched files),
    // as a version with one log file left them: the second goes.
    let [_, second] = wals(&image);
    std::fs::remove_file(&second).unwrap();
    let mut c = config();
    c.redb.durable = false;
    let store = Store::open(&image, c).unwrap();
    assert_written(&store).await;
    drop(store);
    assert!(
        !second.exists(),
        "a store without durability wrote a log file"
    );
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

/// The child half of `sigkill_under_sustained_writes_loses_no_acknowledged_write`
/// reads the data file's path from this variable; the parent runs this
/// test binary again with it set.
const CHILD: &str = "WASM_STATE_COMMIT_LOG_CHILD";

/// Bytes of each value the child writes.
const VALUE: usize = 16 << 10;

/// The value written under `key`: [`VALUE`] bytes made from it.
fn value_of(key: &str) -> Vec<u8> {
    key.bytes().cycle().take(VALUE).collect()
}

/// Run as a child process only (with [`CHILD`] set; otherwise there is
/// nothing to do): 32 writers set fresh keys of 16 KiB on a durable store,
/// with no idle checkpoints, and print `ack KEY` once each set has
/// returned — until the parent kills the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_writes_until_killed() {
    let Ok(path) = std::env::var(CHILD) else {
        return;
    };
    let trial = std::env::var("WASM_STATE_COMMIT_LOG_TRIAL").unwrap();
    let store = Store::open(&path, config()).unwrap();
    let s = store.instance("app").unwrap();
    let writers: Vec<_> = (0..32)
        .map(|w| {
            let (s, trial) = (s.clone(), trial.clone());
            tokio::spawn(async move {
                for k in 0u64.. {
                    let key = format!("t{trial}w{w}k{k}");
                    s.set(&key, value_of(&key)).await.unwrap();
                    // A line of its own, written whole (stdout is line
                    // buffered): the parent counts complete lines only.
                    println!("ack {key}");
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
}

/// A real crash under sustained writing: a child process writes 16 KiB
/// values from 32 writers with no pause, so the log files fill and
/// checkpoints run one after the other (the writer switching files, the
/// groups logged meanwhile answered before redb has them), and is killed
/// with SIGKILL at a random moment — after it has written more than a log
/// file holds, so at least one checkpoint started in every trial. Every write it acknowledged — in this
/// trial and all before — is then in the store, whole. (`WASM_STATE_CRASH_TRIALS`
/// sets the number of trials, default 3; `WASM_STATE_CRASH_SEED` replays
/// the kill moments.)
#[test]
fn sigkill_under_sustained_writes_loses_no_acknowledged_write() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    let trials: usize = std::env::var("WASM_STATE_CRASH_TRIALS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(3);
    let mut seed: u64 = std::env::var("WASM_STATE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("kill moments: WASM_STATE_CRASH_SEED={seed} replays them");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("state.redb");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut acked: Vec<String> = Vec::new();
    for trial in 0..trials {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_writes_until_killed", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(CHILD, &data)
            .env("WASM_STATE_COMMIT_LOG_TRIAL", trial.to_string())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join(format!("child-{trial}.err"))).unwrap())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        // Every complete `ack` line, to the end of the pipe (lines written
        // before the kill and not yet read count too).
        // The moment: once the child has acknowledged a random number of
        // writes, more than a log file holds (the open's round starts at
        // the first file, so a checkpoint has switched files by then).
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let holds = (8 << 20) / VALUE;
        let target = holds + 1 + (seed >> 33) as usize % (2 * holds);
        let seen = Arc::new(AtomicUsize::new(0));
        let counted = seen.clone();
        // Every complete `ack` line, to the end of the pipe (lines written
        // before the kill and not yet read count too).
        let reader = std::thread::spawn(move || {
            let mut out = std::io::BufReader::new(out);
            let mut keys = Vec::new();
            let mut line = Vec::new();
            while out.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                if let Some(key) = line
                    .strip_prefix(b"ack ")
                    .and_then(|l| l.strip_suffix(b"\n"))
                {
                    keys.push(String::from_utf8(key.to_vec()).unwrap());
                    counted.store(keys.len(), Ordering::Release);
                }
                line.clear();
            }
            keys
        });
        let started = Instant::now();
        while seen.load(Ordering::Acquire) < target && started.elapsed() < Duration::from_secs(120)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let keys = reader.join().unwrap();
        eprintln!(
            "trial {trial}: killed after {} acknowledged writes ({:?}), {} in all",
            target.min(keys.len()),
            started.elapsed(),
            keys.len()
        );
        assert!(
            keys.len() >= target,
            "trial {trial}: only {} writes acknowledged in 120 s; the child's stderr:\n{}",
            keys.len(),
            std::fs::read_to_string(dir.path().join(format!("child-{trial}.err")))
                .unwrap_or_default()
        );
        acked.extend(keys);

        let store = Store::open(&data, config()).unwrap();
        rt.block_on(async {
            let s = store.instance("app").unwrap();
            for key in &acked {
                assert_eq!(
                    s.get(key).await.unwrap().as_deref(),
                    Some(value_of(key).as_slice()),
                    "{key}, acknowledged, after the kill of trial {trial}"
                );
            }
        });
        drop(store);
    }
}
