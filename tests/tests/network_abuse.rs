//! Network abuse on `serve` and the Dapr API (docs/reliability.md): a real
//! `wasm-state serve` process with a guest app (`hello-http`) and the Dapr
//! listener, attacked over loopback with raw sockets — idle connections,
//! slowloris (headers trickled a byte at a time), a trickled body, oversized
//! headers and bodies, pipelined garbage — while a probe checks that normal
//! requests on both listeners keep being answered quickly. Afterwards every
//! abusive connection must have been closed by the server (the header
//! timeout, 10 s by default) and the server's memory must have stayed
//! bounded.

mod common;
mod http_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use http_support::{ServeProcess, free_addr, get};

/// The servers' header timeout (`ConnLimits::header_timeout` default).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The bound on a probe request while the abuse runs.
const PROBE_BOUND: Duration = Duration::from_secs(1);
/// The bound on the server's resident memory growth during the abuse.
const RSS_BOUND: u64 = 128 << 20;

async fn start(dir: &Path) -> (ServeProcess, SocketAddr) {
    let dapr = free_addr();
    let data = dir.join("data");
    let server = ServeProcess::start(
        &["--data", data.to_str().unwrap()],
        &[
            wasm_state_e2e::HELLO_HTTP,
            "--dapr-listen",
            &dapr.to_string(),
        ],
    )
    .await;
    let started = std::time::Instant::now();
    while tokio::net::TcpStream::connect(dapr).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the Dapr listener on {dapr} did not open (its port taken?):\n{}",
            server.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (server, dapr)
}

fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Send `bytes` on a fresh connection and read until the server closes it
/// (or `within` passes: then `None`).
fn exchange(addr: SocketAddr, bytes: &[u8], within: Duration) -> Option<String> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(within)).unwrap();
    // The server may answer and close before taking all of an oversized
    // request: a failed write is not the test's concern, the answer is.
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(String::from_utf8_lossy(&out).into_owned());
            }
            Err(_) => return None,
        }
    }
}

/// Whether the server has closed `s` (EOF, a reset, or an error status
/// followed by EOF) within `within`.
fn closed_by_server(mut s: &TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // e.g. a 408 before the close
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Probe both listeners `n` times; the slowest answer.
async fn probe(app: SocketAddr, dapr: SocketAddr, n: usize) -> Duration {
    let mut worst = Duration::ZERO;
    for _ in 0..n {
        let t = Instant::now();
        let r = get(app, "/", &[]).await;
        assert_eq!(r.status, 200, "the app stopped answering: {r:?}");
        let r = get(dapr, "/v1.0/healthz", &[]).await;
        assert_eq!(r.status, 204, "the Dapr API stopped answering: {r:?}");
        worst = worst.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worst
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_off_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (server, dapr) = start(dir.path()).await;
    let app = server.addr;
    probe(app, dapr, 3).await; // warm up
    let rss_before = rss(server.pid());

    // 400 idle connections (nothing sent), half on each listener.
    let idle: Vec<TcpStream> = (0..400)
        .map(|i| TcpStream::connect(if i % 2 == 0 { app } else { dapr }).expect("connect"))
        .collect();
    // 20 slowloris clients: one header byte every 300 ms, never finishing.
    let started = Instant::now();
    let slow: Vec<_> = (0..20)
        .map(|i| {
            let addr = if i % 2 == 0 { app } else { dapr };
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).expect("connect");
                let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ");
                // Trickle until the server gives up on us (or 3x its timeout).
                while started.elapsed() < 3 * HEADER_TIMEOUT {
                    if s.write_all(b"a").is_err() {
                        return Some(started.elapsed());
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
                None
            })
        })
        .collect();
    // A body trickled to the Dapr API, a byte every 300 ms.
    let trickle = std::thread::spawn(move || {
        let mut s = TcpStream::connect(dapr).expect("connect");
        let _ = s.write_all(
            b"POST /v1.0/state/statestore HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n[",
        );
        for _ in 0..20 {
            if s.write_all(b" ").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });

    // Normal clients are served meanwhile.
    let worst = probe(app, dapr, 40).await;
    assert!(
        worst < PROBE_BOUND,
        "a probe took {worst:?} under slow and idle clients (bound {PROBE_BOUND:?})"
    );
    trickle.join().unwrap();

    // Every slowloris client was cut off, after about the header timeout.
    for t in slow {
        let cut = tokio::task::spawn_blocking(move || t.join().unwrap())
            .await
            .unwrap();
        let cut = cut.expect("a slowloris client was never cut off");
        assert!(
            cut >= HEADER_TIMEOUT - Duration::from_secs(1)
                && cut <= HEADER_TIMEOUT + Duration::from_secs(5),
            "a slowloris client was cut off after {cut:?}, not about {HEADER_TIMEOUT:?}"
        );
    }
    // Every idle connection was closed by the server.
    let left = HEADER_TIMEOUT + Duration::from_secs(5) - started.elapsed().min(HEADER_TIMEOUT);
    let open = tokio::task::spawn_blocking(move || {
        idle.iter()
            .filter(|s| !closed_by_server(s, left.max(Duration::from_millis(100))))
            .count()
    })
    .await
    .unwrap();
    assert_eq!(open, 0, "{open} idle connections were never closed");

    let grown = rss(server.pid()).saturating_sub(rss_before);
    assert!(
        grown < RSS_BOUND,
        "the server grew by {grown} bytes of resident memory (bound {RSS_BOUND})"
    );
    probe(app, dapr, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_garbage_requests_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (server, dapr) = start(dir.path()).await;
    let app = server.addr;
    let within = Duration::from_secs(20);
    let status = |answer: &str| answer.lines().next().unwrap_or("").to_string();

    // Headers far larger than the 64 KiB limit: 431 on both listeners. (The
    // limit bounds hyper's read buffer, which fills in growing reads: a head
    // that completes within the read that crosses 64 KiB — up to about
    // twice that — is still parsed.)
    let big = "a".repeat(512 << 10);
    for addr in [app, dapr] {
        let req = format!("GET /v1.0/healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
        let answer = exchange(addr, req.as_bytes(), within).expect("an answer");
        assert!(
            status(&answer).contains("431"),
            "oversized headers got {:?}",
            status(&answer)
        );
    }

    // A Dapr body over the 4 MiB limit: 413 with Dapr's error body.
    let body = format!("[{{\"key\":\"k\",\"value\":\"{}\"}}]", "v".repeat(5 << 20));
    let req = format!(
        "POST /v1.0/state/statestore HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = exchange(dapr, req.as_bytes(), within).expect("an answer");
    assert!(status(&answer).contains("413"), "{:?}", status(&answer));
    assert!(answer.contains("\"errorCode\""), "{answer}");
    let missing = get(dapr, "/v1.0/state/statestore/k", &[]).await;
    assert_eq!(
        missing.status, 204,
        "a refused save must write nothing: {missing:?}"
    );

    // A good request, then garbage pipelined behind it: the good one is
    // answered, the garbage gets 400 and the connection is closed.
    for (addr, path) in [(app, "/"), (dapr, "/v1.0/healthz")] {
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes();
        req.extend_from_slice(b"\x00\x01\x02 garbage \xff\r\n\r\n");
        let answer = exchange(addr, &req, within).expect("the server closes");
        let statuses: Vec<_> = answer
            .lines()
            .filter(|l| l.starts_with("HTTP/1.1 "))
            .collect();
        assert!(
            statuses.len() == 2 && statuses[1].contains("400"),
            "pipelined garbage on {addr} got {statuses:?}"
        );
    }

    // A bad Content-Length, and a request line that is not HTTP: 400.
    for bad in [
        "POST /v1.0/state/statestore HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        "HELLO THERE\r\n\r\n",
    ] {
        let answer = exchange(dapr, bad.as_bytes(), within).expect("the server closes");
        assert!(
            status(&answer).contains("400"),
            "{bad:?} got {:?}",
            status(&answer)
        );
    }

    // A Host that is not host[:port] (found by the serve_http fuzz target:
    // wasi:http refused the authority and the guest's call failed with 500).
    for host in ["example.com:8T /x", ""] {
        let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let answer = exchange(app, req.as_bytes(), within).expect("an answer");
        assert!(
            status(&answer).contains("400") && answer.contains("Host header"),
            "Host {host:?} got {answer:?}"
        );
    }

    // Both listeners still serve.
    assert_eq!(get(app, "/", &[]).await.status, 200);
    assert_eq!(get(dapr, "/v1.0/healthz", &[]).await.status, 204);
}
