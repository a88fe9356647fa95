//! Guest abuse, contained (docs/reliability.md): a real `wasm-state
//! serve` process runs the `abuser` guest next to `customers-http`, with a
//! 2 s deadline, 32 MiB of guest memory, a 4 MiB instance quota and 50
//! sessions per instance. Each abuse is fired (several at once where that
//! makes sense) while a probe measures the latency of `POST
//! /customers/visit` (one read and one durable write) with sequential
//! requests; then the test checks the answer the abuser got, that the host
//! still serves, that the abused instance still answers a normal request, and
//! that the probe's p99 stayed under [`BOUND_P99`].
//!
//! The last three tests reproduce defects this found (and that are now
//! fixed): a response cut by the deadline looked complete, and the deadline
//! did not stop a guest waiting in a host call, so stalled clients could
//! hold every instance slot.

mod common;
mod http_support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use http_support::{Reply, ServeProcess, send};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;

/// The guests' deadline (`limits.deadline_seconds`).
const DEADLINE: Duration = Duration::from_secs(2);
/// The instance quota (`limits.instance_quota_bytes`).
const QUOTA: u64 = 4 << 20;
/// Sessions per instance (`limits.max_sessions`).
const MAX_SESSIONS: u64 = 50;
/// The size of each value `/fill` writes.
const CHUNK: u64 = 64 << 10;
/// Abusive requests in flight at once: twice the cores of the test machine.
const CONCURRENCY: usize = 4;
/// How late after the deadline a cut request may end (an epoch tick is
/// 10 ms; the rest is scheduling on 2 busy shared cores).
const DEADLINE_SLACK: Duration = Duration::from_millis(1500);
/// The bound on the probe's p99 while an abuse runs: the deadline, so no
/// other instance's request waits as long as an abuser may run. Quiet, the
/// p99 was 6-18 ms here; under abuse the worst measured was about 700 ms
/// (four spinning guests on two shared cores; likely because each holds a
/// tokio worker for a 10 ms epoch slice and the runtime polls for network
/// events only every so many polls; docs/reliability.md), so this is
/// about 3x that.
const BOUND_P99: Duration = Duration::from_secs(2);

/// The manifest of the server: the limits above, `extra` (e.g. a
/// `[server]` section), and the two apps.
fn manifest(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("abuse.toml");
    let text = format!(
        "[limits]\n\
         deadline_seconds = {}\n\
         memory_mib = 32\n\
         instance_quota_bytes = {QUOTA}\n\
         max_sessions = {MAX_SESSIONS}\n\
         {extra}\n\
         [[apps]]\n\
         name = \"abuser\"\n\
         component = {:?}\n\
         [[apps]]\n\
         name = \"customers\"\n\
         component = {:?}\n",
        DEADLINE.as_secs(),
        wasm_state_e2e::ABUSER,
        wasm_state_e2e::CUSTOMERS_HTTP,
    );
    std::fs::write(&path, text).expect("write the manifest");
    path
}

/// `wasm-state serve` with the manifest, on a fresh data dir whose
/// component cache is kept across runs (compiling the two guests in a debug
/// build takes longer than all the abuse).
async fn start(dir: &Path, extra: &str, serve: &[&str]) -> ServeProcess {
    let manifest = manifest(dir, extra);
    let data = dir.join("data");
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("abuse-component-cache");
    std::fs::create_dir_all(&cache).expect("the component cache");
    std::fs::create_dir_all(&data).expect("the data dir");
    std::os::unix::fs::symlink(&cache, data.join("cache")).expect("link the component cache");
    ServeProcess::start(
        &[
            "--data",
            data.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
        ],
        serve,
    )
    .await
}

/// Guest calls of the abuser stopped so far, by what stopped them:
/// `[deadline, memory-limit, trap]` (the admin listener's `/metrics`).
async fn stopped(admin: SocketAddr) -> [u64; 3] {
    let text = metrics(admin).await;
    ["deadline", "memory-limit", "trap"].map(|kind| {
        let label = format!("app=\"abuser\",kind=\"{kind}\"}}");
        text.lines()
            .find(|l| l.starts_with("wasm_state_guest_failures_total{") && l.contains(&label))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    })
}

/// A gauge of the abuser instance in `/metrics`.
async fn gauge(admin: SocketAddr, name: &str) -> u64 {
    let text = metrics(admin).await;
    let prefix = format!("{name}{{instance=\"abuser\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in the metrics:\n{text}"))
}

/// The admin listener's `/metrics` (it may open a moment after the apps').
async fn metrics(admin: SocketAddr) -> String {
    let started = Instant::now();
    loop {
        match send(admin, "GET", "/metrics", &[], "").await {
            Ok(r) if r.status == StatusCode::OK => return r.body,
            other => assert!(
                started.elapsed() < Duration::from_secs(10),
                "/metrics: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One request, timed, bounded by `limit`.
async fn timed(
    addr: SocketAddr,
    method: &str,
    path: &str,
    limit: Duration,
) -> (Result<Reply, String>, Duration) {
    let started = Instant::now();
    let reply = match tokio::time::timeout(limit, send(addr, method, path, &[], "")).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {limit:?}")),
    };
    (reply, started.elapsed())
}

/// A request that must answer `status`; its body.
async fn expect(addr: SocketAddr, method: &str, path: &str, status: StatusCode) -> String {
    let (reply, took) = timed(addr, method, path, Duration::from_secs(10)).await;
    let reply = reply.unwrap_or_else(|e| panic!("{method} {path}: {e} after {took:?}"));
    assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
    reply.body
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON: {body:?}: {e}"))
}

/// Latencies of the probe during one phase.
#[derive(Debug)]
struct Stats {
    phase: &'static str,
    n: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    failures: Vec<String>,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<10} n={:<4} p50={:>7.1} ms  p99={:>7.1} ms  max={:>7.1} ms  failures={}",
            self.phase,
            self.n,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3,
            self.failures.len()
        )
    }
}

/// The `q` quantile (nearest rank) of sorted latencies.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Sequential `POST /customers/visit` until `stop`, on a runtime of its
/// own (so the abusing clients of this process do not delay it).
fn probe(addr: SocketAddr, phase: &'static str, stop: Arc<AtomicBool>) -> Stats {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("probe runtime");
    rt.block_on(async move {
        let mut took = Vec::new();
        let mut failures = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            match timed(addr, "POST", "/customers/visit", Duration::from_secs(10)).await {
                (Ok(r), t) if r.status == StatusCode::OK => took.push(t),
                (Ok(r), t) => failures.push(format!("{} after {t:?}: {}", r.status, r.body)),
                (Err(e), t) => failures.push(format!("{e} after {t:?}")),
            }
        }
        took.sort();
        assert!(!took.is_empty(), "{phase}: no probe answered: {failures:?}");
        Stats {
            phase,
            n: took.len(),
            p50: quantile(&took, 0.50),
            p99: quantile(&took, 0.99),
            max: *took.last().unwrap(),
            failures,
        }
    })
}

/// Run `abuse` while the probe measures; its output and the probe's stats.
async fn during<T>(
    addr: SocketAddr,
    phase: &'static str,
    abuse: impl Future<Output = T>,
) -> (T, Stats) {
    let stop = Arc::new(AtomicBool::new(false));
    let probe = std::thread::spawn({
        let stop = stop.clone();
        move || probe(addr, phase, stop)
    });
    // Let the probe take its first measurement before the abuse starts.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let out = abuse.await;
    stop.store(true, Ordering::Relaxed);
    let stats = tokio::task::spawn_blocking(move || probe.join())
        .await
        .unwrap()
        .expect("the probe panicked");
    (out, stats)
}

/// `workers` clients sending `method path` back to back for `window`; every
/// reply with how long it took.
async fn hammer(
    addr: SocketAddr,
    method: &'static str,
    path: &'static str,
    workers: usize,
    window: Duration,
) -> Vec<(Result<Reply, String>, Duration)> {
    let until = Instant::now() + window;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        tasks.spawn(async move {
            let mut out = Vec::new();
            while Instant::now() < until {
                out.push(timed(addr, method, path, DEADLINE + DEADLINE_SLACK * 4).await);
            }
            out
        });
    }
    let mut all = Vec::new();
    while let Some(out) = tasks.join_next().await {
        all.extend(out.unwrap());
    }
    all
}

/// What a client reading an endless response body saw.
#[derive(Debug)]
struct Download {
    status: StatusCode,
    bytes: u64,
    /// From the request until the body ended (or the read gave up).
    took: Duration,
    /// How the body ended: `Ok` at a clean end, or the read error.
    end: Result<(), String>,
}

/// `GET path`, reading the body as fast as it comes, for at most `limit`.
async fn download(addr: SocketAddr, path: &str, limit: Duration) -> Download {
    let started = Instant::now();
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.expect("response head");
    let status = resp.status();
    let mut body = resp.into_body();
    let mut bytes = 0u64;
    let end = loop {
        match tokio::time::timeout_at((started + limit).into(), body.frame()).await {
            Err(_) => break Err(format!("still streaming after {limit:?}")),
            Ok(None) => break Ok(()),
            Ok(Some(Ok(frame))) => {
                bytes += frame.data_ref().map_or(0, |d| d.len() as u64);
            }
            Ok(Some(Err(e))) => break Err(format!("{e}")),
        }
    };
    Download {
        status,
        bytes,
        took: started.elapsed(),
        end,
    }
}

/// What a client sending an endless request body saw.
#[derive(Debug)]
struct Upload {
    /// The status line and body of the answer, if one came.
    status: Option<u16>,
    body: String,
    /// From the request until the answer's head.
    answered_after: Option<Duration>,
    /// Bytes of body sent before the server stopped taking them.
    sent: u64,
    /// Why sending stopped, and when.
    send_end: String,
    send_stopped_after: Duration,
    /// Whether the server closed the connection after answering.
    closed: bool,
}

/// `POST path` with a chunked body that never ends (64 KiB chunks as fast
/// as the server takes them) while reading the answer; gives up after
/// `limit`.
async fn upload(addr: SocketAddr, path: &str, limit: Duration) -> Upload {
    let started = Instant::now();
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let head =
        format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\ntransfer-encoding: chunked\r\n\r\n");
    let writer = tokio::spawn(async move {
        let mut chunk = format!("{:x}\r\n", 64 << 10).into_bytes();
        chunk.extend(std::iter::repeat_n(b'x', 64 << 10));
        chunk.extend(b"\r\n");
        let mut sent = 0u64;
        let why = match wr.write_all(head.as_bytes()).await {
            Err(e) => format!("head: {e}"),
            Ok(()) => loop {
                match tokio::time::timeout_at((started + limit).into(), wr.write_all(&chunk)).await
                {
                    Err(_) => break format!("still sending after {limit:?}"),
                    Ok(Err(e)) => break format!("{e}"),
                    Ok(Ok(())) => sent += 64 << 10,
                }
            },
        };
        (sent, why, started.elapsed())
    });
    let mut got = Vec::new();
    let mut answered_after = None;
    let mut closed = false;
    let mut buf = vec![0u8; 16 << 10];
    loop {
        match tokio::time::timeout_at((started + limit).into(), rd.read(&mut buf)).await {
            Err(_) => break,
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                if answered_after.is_none() && got.windows(4).any(|w| w == b"\r\n\r\n") {
                    answered_after = Some(started.elapsed());
                }
            }
        }
    }
    let (sent, send_end, send_stopped_after) = writer.await.unwrap();
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok());
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Upload {
        status,
        body,
        answered_after,
        sent,
        send_end,
        send_stopped_after,
        closed,
    }
}

/// After a phase: the probe stayed under the bound and never failed, the
/// host serves, and the abused instance answers a normal request.
async fn check_contained(addr: SocketAddr, stats: &Stats) {
    eprintln!("{stats}");
    assert!(
        stats.failures.is_empty(),
        "{}: probe requests failed: {:?}",
        stats.phase,
        stats.failures
    );
    assert!(
        stats.n >= 5,
        "{}: too few probe requests to measure: {stats}",
        stats.phase
    );
    assert!(
        stats.p99 < BOUND_P99,
        "{}: the probe's p99 {:?} is over the bound {BOUND_P99:?}: {stats}",
        stats.phase,
        stats.p99
    );
    expect(addr, "POST", "/customers/visit", StatusCode::OK).await;
    let ok = json(&expect(addr, "GET", "/abuser/ok", StatusCode::OK).await);
    assert_eq!(ok["ok"], true, "{ok}");
}

fn assert_cut_at_deadline(what: &str, took: Duration) {
    assert!(
        took >= DEADLINE - Duration::from_millis(50) && took <= DEADLINE + DEADLINE_SLACK,
        "{what} should end at the {DEADLINE:?} deadline, ended after {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_abuse_is_contained_and_other_instances_keep_their_latency() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let admin = http_support::free_addr();
    let admin_arg = admin.to_string();
    let serve = start(dir.path(), "", &["--admin-listen", &admin_arg]).await;
    let addr = serve.addr;
    eprintln!("serving after {:?}", started.elapsed());
    let mut before = stopped(admin).await;
    assert_eq!(before, [0, 0, 0]);
    // What stopped the abuser's calls during the last phase:
    // [deadline, memory-limit, trap].
    let mut stops = async || {
        let now = stopped(admin).await;
        let delta = [0, 1, 2].map(|i| now[i] - before[i]);
        before = now;
        delta
    };
    // Warm up (first instantiations, connections), then measure quiet.
    for _ in 0..20 {
        expect(addr, "POST", "/customers/visit", StatusCode::OK).await;
    }
    let mut table = Vec::new();
    let ((), quiet) = during(
        addr,
        "quiet",
        tokio::time::sleep(Duration::from_millis(1500)),
    )
    .await;
    check_contained(addr, &quiet).await;
    table.push(quiet);
    assert_eq!(stops().await, [0, 0, 0]);

    // An infinite loop, four at once: each stopped at the deadline, 504.
    let (loops, stats) = during(addr, "loop", async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..CONCURRENCY {
            tasks.spawn(timed(addr, "GET", "/abuser/loop", DEADLINE * 5));
        }
        tasks.join_all().await
    })
    .await;
    for (reply, took) in loops {
        let reply = reply.expect("/loop answers");
        assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{}", reply.body);
        assert_eq!(reply.body, "the handler took too long\n");
        assert_cut_at_deadline("/loop", took);
    }
    assert_eq!(stops().await, [CONCURRENCY as u64, 0, 0], "loop: deadline");
    check_contained(addr, &stats).await;
    table.push(stats);

    // Allocation without end and unbounded recursion, four at a time for
    // two seconds: each stopped by its limit (memory; the wasm stack, a
    // trap), 500, with nothing of the host in the body.
    for (phase, path, kind) in [
        ("bomb", "/abuser/bomb", 1),
        ("recurse", "/abuser/recurse", 2),
    ] {
        let (replies, stats) = during(
            addr,
            phase,
            hammer(addr, "GET", path, CONCURRENCY, DEADLINE),
        )
        .await;
        assert!(replies.len() >= CONCURRENCY, "{phase}: {}", replies.len());
        for (reply, took) in &replies {
            let reply = reply.as_ref().unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
            assert_eq!(reply.body, "internal server error\n", "{path}");
            assert!(
                *took < DEADLINE,
                "{path} took {took:?}: not stopped by its limit"
            );
        }
        eprintln!("{phase}: {} requests, all 500", replies.len());
        let mut expected = [0; 3];
        expected[kind] = replies.len() as u64;
        assert_eq!(
            stops().await,
            expected,
            "{phase}: [deadline, memory-limit, trap]"
        );
        check_contained(addr, &stats).await;
        table.push(stats);
    }

    // Transactions the host must refuse whole, two at a time for two
    // seconds: beyond the op limit (200 writes), and beyond the quota
    // (100 x 64 KiB). Nothing of either is ever visible.
    let (replies, stats) = during(
        addr,
        "bigtx",
        hammer(addr, "GET", "/abuser/bigtx", 2, DEADLINE),
    )
    .await;
    for (reply, _) in &replies {
        let reply = reply.as_ref().expect("/bigtx answers");
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let report = json(&reply.body);
        let ops = &report["ops"];
        assert_eq!(ops["committed"], false, "{report}");
        assert_eq!(ops["kind"], "TooManyOperations", "{report}");
        assert_eq!(ops["visible"], 0, "{report}");
        assert!(
            ops["error"].as_str().unwrap().contains("nothing changed"),
            "{report}"
        );
        let quota = &report["quota"];
        assert!(quota["bytes"].as_u64().unwrap() > QUOTA, "{report}");
        assert_eq!(quota["committed"], false, "{report}");
        assert_eq!(quota["kind"], "QuotaExceeded", "{report}");
        assert_eq!(quota["visible"], 0, "{report}");
        assert!(
            quota["error"].as_str().unwrap().contains("quota"),
            "{report}"
        );
    }
    eprintln!("bigtx: {} requests, all refused whole", replies.len());
    assert_eq!(stops().await, [0, 0, 0], "bigtx: no guest stopped");
    check_contained(addr, &stats).await;
    table.push(stats);

    // Sessions until refused: exactly the limit, then 507 with the
    // error's text; asking again and again changes nothing.
    let (replies, stats) = during(addr, "sessions", async {
        let first = expect(
            addr,
            "GET",
            "/abuser/sessions",
            StatusCode::INSUFFICIENT_STORAGE,
        )
        .await;
        let again = hammer(addr, "GET", "/abuser/sessions", 2, Duration::from_secs(1)).await;
        (first, again)
    })
    .await;
    let first = json(&replies.0);
    assert_eq!(first["created"], MAX_SESSIONS, "{first}");
    assert_eq!(first["kind"], "QuotaExceeded", "{first}");
    assert!(
        first["error"].as_str().unwrap().contains("quota"),
        "{first}"
    );
    for (reply, _) in &replies.1 {
        let reply = reply.as_ref().expect("/sessions answers");
        assert_eq!(
            reply.status,
            StatusCode::INSUFFICIENT_STORAGE,
            "{}",
            reply.body
        );
        assert_eq!(json(&reply.body)["created"], 0, "{}", reply.body);
    }
    assert_eq!(gauge(admin, "wasm_state_sessions_live").await, MAX_SESSIONS);
    assert_eq!(stops().await, [0, 0, 0], "sessions: no guest stopped");
    check_contained(addr, &stats).await;
    table.push(stats);

    // 64 KiB values until the quota refuses one: as many as fit, then 507;
    // again and again: none more.
    let (replies, stats) = during(addr, "fill", async {
        let first = expect(
            addr,
            "GET",
            "/abuser/fill",
            StatusCode::INSUFFICIENT_STORAGE,
        )
        .await;
        let again = hammer(addr, "GET", "/abuser/fill", 2, Duration::from_secs(1)).await;
        (first, again)
    })
    .await;
    let first = json(&replies.0);
    let written = first["written"].as_u64().expect("written");
    assert!(
        written * CHUNK <= QUOTA && (written + 2) * CHUNK > QUOTA,
        "{written} values of 64 KiB in a {QUOTA}-byte quota: {first}"
    );
    assert_eq!(first["kind"], "QuotaExceeded", "{first}");
    assert!(
        first["error"].as_str().unwrap().contains("quota"),
        "{first}"
    );
    for (reply, _) in &replies.1 {
        let reply = reply.as_ref().expect("/fill answers");
        assert_eq!(
            reply.status,
            StatusCode::INSUFFICIENT_STORAGE,
            "{}",
            reply.body
        );
        assert_eq!(json(&reply.body)["written"], 0, "{}", reply.body);
    }
    let used = gauge(admin, "wasm_state_instance_bytes").await;
    assert!(
        used <= QUOTA && used >= written * CHUNK,
        "the abuser stores {used} bytes (quota {QUOTA})"
    );
    assert_eq!(stops().await, [0, 0, 0], "fill: no guest stopped");
    check_contained(addr, &stats).await;
    table.push(stats);
    // The instance is full but works: it reads, and once it deletes, it
    // writes again.
    assert_eq!(
        json(&expect(addr, "GET", "/abuser/ok", StatusCode::OK).await)["filled"],
        true
    );
    let reset = json(&expect(addr, "GET", "/abuser/reset", StatusCode::OK).await);
    assert_eq!(reset["deleted"], written, "{reset}");
    assert_eq!(
        json(&expect(addr, "GET", "/abuser/ok", StatusCode::OK).await)["filled"],
        false
    );

    // A response body without end, four at once, each read as fast as it
    // comes: the server sends `200` and streams until the deadline stops
    // the guest, then ends the body (today as if it were complete: see
    // `a_body_cut_by_the_deadline_does_not_look_complete`).
    let (downloads, stats) = during(addr, "stream", async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..CONCURRENCY {
            tasks.spawn(download(addr, "/abuser/stream", DEADLINE * 5));
        }
        tasks.join_all().await
    })
    .await;
    for d in &downloads {
        eprintln!("stream: {d:?}");
        assert_eq!(d.status, StatusCode::OK, "{d:?}");
        assert!(d.bytes >= 1 << 20, "{d:?}");
        assert!(
            !matches!(&d.end, Err(e) if e.starts_with("still")),
            "the body did not end: {d:?}"
        );
        assert_cut_at_deadline("/stream", d.took);
    }
    assert_eq!(
        stops().await,
        [CONCURRENCY as u64, 0, 0],
        "stream: deadline"
    );
    check_contained(addr, &stats).await;
    table.push(stats);

    // A request body without end, two at once: the guest reads it until the
    // deadline stops it; the client gets 504 and the connection is closed.
    let (uploads, stats) = during(addr, "slurp", async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..2 {
            tasks.spawn(upload(addr, "/abuser/slurp", DEADLINE * 5));
        }
        tasks.join_all().await
    })
    .await;
    for u in &uploads {
        eprintln!("slurp: {u:?}");
        assert_eq!(u.status, Some(504), "{u:?}");
        assert_eq!(u.body, "the handler took too long\n", "{u:?}");
        assert_cut_at_deadline("/slurp's answer", u.answered_after.unwrap());
        assert!(u.closed, "the connection stays open: {u:?}");
        assert!(u.sent >= 1 << 20, "{u:?}");
        assert!(
            !u.send_end.starts_with("still")
                && u.send_stopped_after <= u.answered_after.unwrap() + DEADLINE_SLACK,
            "the server keeps taking the body after answering: {u:?}"
        );
    }
    assert_eq!(stops().await, [2, 0, 0], "slurp: deadline");
    check_contained(addr, &stats).await;
    table.push(stats);

    // A normal body to /slurp still works.
    let r = send(addr, "POST", "/abuser/slurp", &[], "hello")
        .await
        .unwrap();
    assert_eq!(
        (r.status, json(&r.body)["bytes"].as_u64()),
        (StatusCode::OK, Some(5))
    );

    eprintln!("\nprobe (POST /customers/visit) per phase; bound: p99 < {BOUND_P99:?}");
    for s in &table {
        eprintln!("  {s}");
    }
    drop(serve);
}

// ---- Defects found by this harness, now fixed ----

/// A response body the deadline cuts short ends like a complete one: the
/// guest is stopped, wasmtime-wasi-http drops the body's finish channel,
/// which it reads as a normal end, and hyper sends the last chunk. A client
/// (or a cache in front) takes the truncated body for the whole response.
/// It should end with an error (the connection reset, no last chunk).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_cut_by_the_deadline_does_not_look_complete() {
    let dir = tempfile::tempdir().unwrap();
    let serve = start(dir.path(), "", &[]).await;
    let d = download(serve.addr, "/abuser/stream", DEADLINE * 5).await;
    assert_eq!(d.status, StatusCode::OK, "{d:?}");
    assert_cut_at_deadline("/stream", d.took);
    assert!(
        d.end.is_err(),
        "the body cut by the deadline ended cleanly, as if complete: {d:?}"
    );
}

/// The deadline is checked only while guest code runs (epoch
/// interruption): a guest waiting in a host call (a sleep, a request body
/// that does not come, a response body the client does not read) is not
/// stopped until it runs again. `/sleep?ms=15000` answers 504 only after
/// 15 s, with a 2 s deadline, and keeps its instance slot all that time,
/// even after the client has gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_stops_a_guest_waiting_in_a_host_call() {
    let dir = tempfile::tempdir().unwrap();
    let serve = start(dir.path(), "", &[]).await;
    let (reply, took) = timed(
        serve.addr,
        "GET",
        "/abuser/sleep?ms=15000",
        Duration::from_secs(20),
    )
    .await;
    let reply = reply.expect("/sleep answers");
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{}", reply.body);
    assert_cut_at_deadline("/sleep?ms=15000", took);
}

/// The same defect as a denial of service by clients alone: with
/// `max_instances = 2`, one client that never reads `/abuser/stream`'s
/// body and one that sends 3 bytes of a 1 GB `/abuser/slurp` body hold
/// both instance slots for as long as they keep their connections open,
/// and every other app waits (here `POST /customers/visit` gets no answer
/// long after the deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_do_not_hold_instance_slots_past_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let serve = start(dir.path(), "[server]\nmax_instances = 2\n", &[]).await;
    let addr = serve.addr;
    expect(addr, "POST", "/customers/visit", StatusCode::OK).await;
    let stalled = |head: String| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut conn = socket.connect(addr).await.expect("connect");
        conn.write_all(head.as_bytes()).await.unwrap();
        conn
    };
    let _reader = stalled(format!(
        "GET /abuser/stream HTTP/1.1\r\nhost: {addr}\r\n\r\n"
    ))
    .await;
    let _writer = stalled(format!(
        "POST /abuser/slurp HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 1000000000\r\n\r\nabc"
    ))
    .await;
    tokio::time::sleep(DEADLINE + DEADLINE_SLACK).await;
    let (reply, took) = timed(addr, "POST", "/customers/visit", DEADLINE * 2).await;
    assert!(
        reply.as_ref().is_ok_and(|r| r.status == StatusCode::OK),
        "another app is starved {:?} after the deadline: {reply:?} after {took:?}",
        DEADLINE + DEADLINE_SLACK
    );
}
