//! A small HTTP/1.1 client on hyper for the serve tests, and a server
//! harness that runs `HttpServer` in-process on a loopback port.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{HeaderMap, Request, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use wasm_state::http::HttpServer;
use wasm_state::runtime::{GuestLimits, Host, HostConfig};
use wasmtime_wasi_http::io::TokioIo;

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

/// Send one request on a new connection.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Reply, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let (parts, body) = resp.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// `GET path`.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    send(addr, "GET", path, headers, "").await.expect("GET")
}

/// `POST path` with a body.
pub async fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    send(addr, "POST", path, headers, body).await.expect("POST")
}

/// An in-process server on 127.0.0.1 with its host; stops on [`Served::stop`].
pub struct Served {
    pub addr: SocketAddr,
    pub host: Host,
    /// The apps it serves (deploy and undeploy while serving).
    #[allow(dead_code)]
    pub apps: wasm_state::http::Apps,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Served {
    /// Deploy `apps` (name, wasm path), mount each at `/name` and the first
    /// also at `/`, and serve on an ephemeral loopback port.
    pub async fn start(dir: &Path, apps: &[(&str, &str)], deadline: Duration) -> Served {
        let mut config = HostConfig::new(dir);
        config.guest = GuestLimits {
            deadline,
            memory_bytes: 32 << 20,
        };
        config.pooling = Some(64);
        // A server stopped just before may still be dropping its last
        // request's store (its task ends just after the answer went out):
        // the data dir is free a moment later.
        let started = std::time::Instant::now();
        let host = loop {
            match Host::open(config.clone()) {
                Ok(h) => break h,
                Err(e)
                    if started.elapsed() < Duration::from_secs(5)
                        && e.to_string().contains("in use") =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("host: {e:?}"),
            }
        };
        let mut server = HttpServer::new(host.clone()).grace(Duration::from_secs(20));
        for (name, path) in apps {
            host.deploy_file(name, Path::new(path))
                .await
                .expect("deploy");
            server.mount(&format!("/{name}"), name).expect("mount");
        }
        server.mount("/", apps[0].0).expect("mount root");
        let served_apps = server.apps();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server.serve(listener, async {
            let _ = rx.await;
        }));
        Served {
            addr,
            host,
            apps: served_apps,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Begin a graceful shutdown and wait for it.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("serve");
        }
    }
}

/// A free loopback address (bound and released).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}

/// A `wasm-state … serve` process of its own, killed when dropped.
pub struct ServeProcess {
    /// Where it listens.
    pub addr: SocketAddr,
    child: std::process::Child,
    /// Its stderr (the tracing log), kept for failure messages.
    log: tempfile::NamedTempFile,
}

impl ServeProcess {
    /// `wasm-state GLOBAL… serve --listen ADDR SERVE…` on a free port; waits
    /// until it accepts connections.
    /// A port found free may be taken before `serve` binds it; `serve`
    /// then exits saying so, and another port is tried (five in all).
    pub async fn start(global: &[&str], serve: &[&str]) -> ServeProcess {
        let mut tries = 0;
        loop {
            tries += 1;
            match Self::try_start_on(free_addr(), global, serve).await {
                Err(log) if tries < 5 && log.contains("cannot listen on") => {
                    eprintln!("{log}; trying another port");
                }
                done => return done.unwrap_or_else(|log| panic!("serve exited early: {log}")),
            }
        }
    }

    /// The same on `addr`.
    pub async fn start_on(addr: SocketAddr, global: &[&str], serve: &[&str]) -> ServeProcess {
        Self::try_start_on(addr, global, serve)
            .await
            .unwrap_or_else(|log| panic!("serve exited early: {log}"))
    }

    /// Start it on `addr`; its log if it exits before it listens.
    async fn try_start_on(
        addr: SocketAddr,
        global: &[&str],
        serve: &[&str],
    ) -> Result<ServeProcess, String> {
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let mut child = std::process::Command::new(crate::common::binary("wasm-state"))
            .args(global)
            .args(["serve", "--listen", &addr.to_string()])
            .args(serve)
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen().expect("the log file"))
            .spawn()
            .expect("start wasm-state serve");
        let started = std::time::Instant::now();
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "serve did not start"
            );
            if child.try_wait().expect("serve's status").is_some() {
                return Err(std::fs::read_to_string(log.path()).unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(ServeProcess { addr, child, log })
    }

    /// The last `lines` lines of its log (for a failing assertion's message).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Kill it (SIGKILL) and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
