//! Faults in dependencies (docs/reliability.md), through the Dapr API of a
//! real `wasm-state serve` process:
//!
//! - the disk refuses to grow the state file (a file-size limit set on the
//!   running server with `prlimit`, which fails writes with `EFBIG` exactly
//!   as a full disk fails them with `ENOSPC`): writes fail with a clear
//!   error, nothing acknowledged is lost, reads keep working, and writes
//!   resume by themselves once the limit is lifted — no restart;
//! - `fdatasync` fails (`EIO`) on the commit log, or on the state file
//!   (checkpoints), through an `LD_PRELOAD` shim compiled here
//!   (`failsync.c`): no write is acknowledged that was not synced, requests
//!   fail with 503 saying the write may or may not be applied, the host
//!   recovers by itself once syncs work again, and after a SIGKILL and a
//!   restart every acknowledged write is there;
//! - Redis hangs (SIGSTOP) in the middle of a load, then resumes: requests
//!   fail with 503 within the engine's timeout instead of hanging, no
//!   transaction is partly applied, and the host recovers by itself.

mod common;
mod http_support;
#[path = "../../host/tests/support/redis_server.rs"]
mod redis_server;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http_support::{Reply, free_addr, get};

/// A `wasm-state serve --dapr-listen` process, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the server; SIGXFSZ is ignored in it (so that a file-size limit
/// fails the write with `EFBIG` instead of killing the process).
async fn start(data: &Path, store: Option<&str>) -> Server {
    start_with(data, store, &[]).await
}

/// [`start`] with more environment variables.
async fn start_with(data: &Path, store: Option<&str>, env: &[(&str, &Path)]) -> Server {
    let addr = free_addr();
    let mut cmd = Command::new(common::binary("wasm-state"));
    cmd.envs(env.iter().copied());
    cmd.args(["--data", data.to_str().unwrap()]);
    if let Some(url) = store {
        cmd.args(["--store", url]);
    }
    cmd.args(["serve", "--dapr-listen", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only an async-signal-safe call between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("start wasm-state serve");
    let started = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve did not start"
        );
        assert!(child.try_wait().unwrap().is_none(), "serve exited early");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server { child, addr }
}

/// Set the file-size limit (bytes) of a running process.
fn set_file_limit(pid: u32, bytes: Option<u64>) {
    let limit = libc::rlimit {
        rlim_cur: bytes.unwrap_or(libc::RLIM_INFINITY),
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall on a child of ours with valid pointers.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// POST a JSON body; a connection error is a test failure with its text.
async fn post(addr: SocketAddr, path: &str, body: &str) -> Reply {
    http_support::send(
        addr,
        "POST",
        path,
        &[("content-type", "application/json")],
        body,
    )
    .await
    .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

async fn save(addr: SocketAddr, body: &str) -> Reply {
    post(addr, "/v1.0/state/statestore", body).await
}

fn value(key: &str, size: usize) -> String {
    format!("{key}:{}", "x".repeat(size))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_clearly_loses_nothing_and_recovers_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&data, None).await;
    let file = data.join("state.redb");
    const SIZE: usize = 64 << 10;

    // Some state before the fault.
    let mut acked = Vec::new();
    for i in 0..8 {
        let key = format!("before-{i}");
        let r = save(
            server.addr,
            &format!(r#"[{{"key":"{key}","value":"{}"}}]"#, value(&key, SIZE)),
        )
        .await;
        assert_eq!(r.status, 204, "{r:?}");
        acked.push(key);
    }

    // The disk is full: the file may not grow past its size now.
    let len = std::fs::metadata(&file).unwrap().len();
    set_file_limit(server.child.id(), Some(len));
    let mut refused = None;
    for i in 0..2000 {
        let key = format!("during-{i}");
        let r = save(
            server.addr,
            &format!(r#"[{{"key":"{key}","value":"{}"}}]"#, value(&key, SIZE)),
        )
        .await;
        match r.status.as_u16() {
            204 => acked.push(key),
            _ => {
                refused = Some((key, r));
                break;
            }
        }
    }
    let (key, r) = refused.expect("no write was refused although the file could not grow");
    assert_eq!(r.status, 503, "a write on a full disk: {r:?}");
    let body: serde_json::Value = serde_json::from_str(&r.body).expect("a JSON error body");
    assert_eq!(body["errorCode"], "ERR_STATE_SAVE", "{body}");
    let msg = body["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("too large") || msg.contains("space") || msg.contains("could not be written"),
        "the message should say the disk refused the write: {msg}"
    );
    assert!(
        std::fs::metadata(&file).unwrap().len() <= len,
        "the file grew past its limit"
    );

    // Nothing acknowledged is lost, and reads keep working while writes
    // are refused (after the store reopens the file).
    let reads_back = async {
        loop {
            let mut ok = true;
            for k in &acked {
                let r = get(server.addr, &format!("/v1.0/state/statestore/{k}"), &[]).await;
                ok &= r.status == 200 && r.body.contains(&value(k, SIZE));
            }
            if ok {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), reads_back)
        .await
        .expect("acknowledged values did not read back while the disk was full");
    let r = get(server.addr, &format!("/v1.0/state/statestore/{key}"), &[]).await;
    assert_eq!(r.status, 204, "the refused write left a value: {r:?}");
    let r = save(
        server.addr,
        &format!(r#"[{{"key":"more","value":"{}"}}]"#, value("more", SIZE)),
    )
    .await;
    assert_eq!(r.status, 503, "still full: {r:?}");

    // Space returns: writes resume by themselves.
    set_file_limit(server.child.id(), None);
    let resumed = async {
        loop {
            let r = save(
                server.addr,
                &format!(r#"[{{"key":"after","value":"{}"}}]"#, value("after", SIZE)),
            )
            .await;
            if r.status == 204 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), resumed)
        .await
        .expect("writes did not resume after space returned");
    acked.push("after".into());

    // And all of it survives a restart.
    drop(server);
    let server = start(&data, None).await;
    for k in &acked {
        let r = get(server.addr, &format!("/v1.0/state/statestore/{k}"), &[]).await;
        assert_eq!(r.status, 200, "{k} lost after the restart: {r:?}");
        assert!(r.body.contains(&value(k, SIZE)), "{k} changed");
    }
    let r = get(server.addr, &format!("/v1.0/state/statestore/{key}"), &[]).await;
    assert_eq!(r.status, 204, "the refused write appeared after a restart");
}

/// An `LD_PRELOAD` library that fails `fdatasync`/`fsync` with `EIO` on
/// files whose name ends with `$WS_FAIL_SYNC_SUFFIX` while the file
/// `$WS_FAIL_SYNC_FLAG` exists (and syncs for real otherwise). It does not
/// drop the page cache as a real failing disk may: what it tests is that a
/// failed sync is never acknowledged, is reported, and is recovered from.
const FAILSYNC_C: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failing(int fd) {
    const char *flag = getenv("WS_FAIL_SYNC_FLAG");
    const char *suffix = getenv("WS_FAIL_SYNC_SUFFIX");
    if (!flag || !suffix || access(flag, F_OK) != 0) return 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    size_t len = strlen(path), slen = strlen(suffix);
    return len >= slen && strcmp(path + len - slen, suffix) == 0;
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    if (failing(fd)) { errno = EIO; return -1; }
    return real(fd);
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    if (failing(fd)) { errno = EIO; return -1; }
    return real(fd);
}
"#;

/// Compile the shim into `dir`; its path.
fn failsync_library(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("failsync.c");
    let lib = dir.join("libfailsync.so");
    std::fs::write(&src, FAILSYNC_C).unwrap();
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&lib)
        .arg(&src)
        .arg("-ldl")
        .output()
        .expect("run cc (the C compiler the Rust toolchain links with)");
    assert!(
        out.status.success(),
        "compiling the fsync shim failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lib
}

/// Save `key` with its value; the status.
async fn save_key(addr: SocketAddr, key: &str) -> Reply {
    save(
        addr,
        &format!(r#"[{{"key":"{key}","value":"{}"}}]"#, value(key, 512)),
    )
    .await
}

/// Writes through a server whose syncs of `suffix` files fail for a while:
/// what was acknowledged survives a SIGKILL, failures are 503, and writes
/// resume by themselves. Returns the statuses seen while syncs failed.
async fn syncs_fail_for_a_while(suffix: &str) -> Vec<(u16, String)> {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let lib = failsync_library(dir.path());
    let flag = dir.path().join("fail-sync");
    let env = [
        ("LD_PRELOAD", lib.as_path()),
        ("WS_FAIL_SYNC_FLAG", flag.as_path()),
        ("WS_FAIL_SYNC_SUFFIX", Path::new(suffix)),
    ];
    let server = start_with(&data, None, &env).await;
    let mut acked = Vec::new();
    for i in 0..8 {
        let key = format!("before-{i}");
        let r = save_key(server.addr, &key).await;
        assert_eq!(r.status, 204, "{r:?}");
        acked.push(key);
    }

    // Syncs fail: one write at a time, with pauses long enough for the
    // idle checkpoint (100 ms), for two seconds.
    std::fs::write(&flag, b"").unwrap();
    let mut during = Vec::new();
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(2) {
        let key = format!("during-{i}");
        i += 1;
        let t = Instant::now();
        let r = save_key(server.addr, &key).await;
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "a write hung for {:?} while syncs failed",
            t.elapsed()
        );
        match r.status.as_u16() {
            204 => acked.push(key),
            503 => {}
            other => panic!("a write while syncs failed answered {other}: {r:?}"),
        }
        during.push((r.status.as_u16(), r.body));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    // Syncs work again: writes resume by themselves.
    std::fs::remove_file(&flag).unwrap();
    let resumed = async {
        loop {
            if save_key(server.addr, "after").await.status == 204 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), resumed)
        .await
        .expect("writes did not resume once syncs worked again");
    acked.push("after".into());

    // A crash, then a restart (without the shim): every acknowledged write.
    drop(server); // SIGKILL
    let server = start(&data, None).await;
    for k in &acked {
        let r = get(server.addr, &format!("/v1.0/state/statestore/{k}"), &[]).await;
        assert_eq!(r.status, 200, "{k} acknowledged, then lost: {r:?}");
        assert!(r.body.contains(&value(k, 512)), "{k} changed: {r:?}");
    }
    during
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sync_of_the_commit_log_is_never_acknowledged_and_is_recovered_from() {
    let during = syncs_fail_for_a_while(".wal").await;
    // No write can be acknowledged while the log cannot be synced.
    assert!(
        during.iter().all(|(s, _)| *s == 503),
        "a write was acknowledged while the commit log could not be synced: {during:?}"
    );
    let (_, first) = &during[0];
    assert!(
        first.contains("may or may not"),
        "the failed write should say it may or may not be applied: {first}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_checkpoint_loses_nothing_and_is_recovered_from() {
    // The state file's own syncs (checkpoints) fail; the commit log's work.
    // The log keeps acknowledging writes until a checkpoint fails; redb
    // then refuses writes until it is reopened, which needs a sync of its
    // own: writes fail clearly until syncs work again.
    let during = syncs_fail_for_a_while(".redb").await;
    assert!(
        during
            .iter()
            .any(|(s, body)| *s == 503 && body.contains("state file")),
        "no write said that the state file could not be written: {during:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_redis_gives_503_within_the_timeout_nothing_partial_and_recovers() {
    let redis = redis_server::RedisServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    // Calls give up after 2 s (`timeout_ms`; 5 s by default).
    let url = format!("{}&timeout_ms=2000", redis.url());
    let server = start(&dir.path().join("data"), Some(&url)).await;
    let tx = |n: u64| {
        format!(
            r#"{{"operations":[{{"operation":"upsert","request":{{"key":"a","value":{n}}}}},{{"operation":"upsert","request":{{"key":"b","value":{n}}}}}]}}"#
        )
    };
    let addr = server.addr;
    let post_tx = |n: u64| {
        let body = tx(n);
        async move { post(addr, "/v1.0/state/statestore/transaction", &body).await }
    };
    let r = post_tx(1).await;
    assert_eq!(r.status, 204, "{r:?}");

    // Redis hangs in the middle of a load of transactions: the load runs
    // until Redis is back (however fast the machine), at most 100,000.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn({
        let (addr, done) = (server.addr, done.clone());
        async move {
            let mut statuses = Vec::new();
            let mut n = 2u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) && n < 100_000 {
                let t = Instant::now();
                let r = post(addr, "/v1.0/state/statestore/transaction", &tx(n)).await;
                statuses.push((r.status.as_u16(), t.elapsed()));
                n += 1;
            }
            statuses
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // SAFETY: signalling the redis-server child of this test.
    unsafe { libc::kill(redis.pid(), libc::SIGSTOP) };
    tokio::time::sleep(Duration::from_secs(8)).await;
    let hung = get(server.addr, "/v1.0/state/statestore/a", &[]).await;
    unsafe { libc::kill(redis.pid(), libc::SIGCONT) };
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses = load.await.unwrap();

    assert_eq!(hung.status, 503, "a read while Redis hangs: {hung:?}");
    let failed: Vec<_> = statuses.iter().filter(|(s, _)| *s != 204).collect();
    assert!(!failed.is_empty(), "no request failed while Redis hung");
    for (status, took) in &statuses {
        assert!(
            *status == 204 || *status == 503,
            "a transaction while Redis hung answered {status}"
        );
        assert!(
            // Each store call — with its retry and any library load —
            // gives up after timeout_ms; a Dapr transaction makes at most
            // two (the read of the etags it checks, and the commit).
            *took < Duration::from_secs(5),
            "a request hung for {took:?} instead of failing"
        );
    }

    // Recovered, and a and b were always written together.
    let recovered = async {
        loop {
            if post_tx(1000).await.status == 204 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(15), recovered)
        .await
        .expect("the host did not recover after Redis resumed");
    let bulk = post(
        server.addr,
        "/v1.0/state/statestore/bulk",
        r#"{"keys":["a","b"]}"#,
    )
    .await;
    let items: serde_json::Value = serde_json::from_str(&bulk.body).unwrap();
    assert_eq!(
        items[0]["data"], items[1]["data"],
        "a partial transaction: {items}"
    );
    assert_eq!(items[0]["data"], 1000);
}
