//! Where a CLI command runs: through the admin socket of the server that
//! holds the data dir, or on the data dir itself when no server runs
//! (waiting, up to `--busy-timeout`, while another short-lived command
//! holds the file).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use wasm_state::admin::api::{ADMIN_HEADER, NDJSON};
use wasm_state::admin::{Admin, socket};
use wasm_state::runtime::{GuestLimits, Host, HostConfig, HostError};
use wasm_state::store::StateError;

use crate::args::Global;
use crate::settings::Settings;

/// How long one admin request may take before the CLI gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// How long a streamed answer (export, import) may stay silent: it takes
/// as long as it needs while lines keep coming.
const STREAM_IDLE: Duration = Duration::from_secs(120);

/// A connection to the server's admin socket.
pub struct Client {
    socket: PathBuf,
}

/// Where the command runs.
pub enum Target {
    /// Through the admin socket of the running server.
    Remote(Client),
    /// On the store, opened by this process.
    Local(Admin),
}

impl Client {
    /// A client for the socket at `socket`, if a server answers there.
    pub async fn connect(socket: &Path) -> Option<Client> {
        tokio::net::UnixStream::connect(socket).await.ok()?;
        Some(Client {
            socket: socket.to_path_buf(),
        })
    }

    /// Send one request on a new connection to the socket (asking for a
    /// streamed answer when `accept` says so); the answer's head.
    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        accept: Option<&'static str>,
    ) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .with_context(|| {
                format!(
                    "the server stopped answering on {}; run the command again",
                    self.socket.display()
                )
            })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "localhost")
            .header(ADMIN_HEADER, "1");
        if let Some(a) = accept {
            req = req.header(hyper::header::ACCEPT, a);
        }
        Ok(sender
            .send_request(req.body(Full::new(Bytes::from(body)))?)
            .await?)
    }

    /// Send a request; the body of a 2xx answer, or the server's error as
    /// an error.
    pub async fn send(&self, method: &str, path: &str, body: Vec<u8>) -> anyhow::Result<Bytes> {
        let fut = async {
            let resp = self.request(method, path, body, None).await?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await?.to_bytes();
            if status.is_success() {
                return Ok(bytes);
            }
            Err(anyhow!("{}", error_message(&bytes)))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| anyhow!("the server did not answer within {REQUEST_TIMEOUT:?}"))?
    }

    /// Send a request whose 2xx answer is JSON lines, and hand each line
    /// to `line` as it arrives (not the whole answer at the end): the
    /// answer may take as long as it needs while it keeps coming, but not
    /// [`STREAM_IDLE`] without a byte.
    pub async fn stream(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        mut line: impl FnMut(&str) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let head = self.request(method, path, body, Some(NDJSON));
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, head)
            .await
            .map_err(|_| anyhow!("the server did not answer within {REQUEST_TIMEOUT:?}"))??;
        let status = resp.status();
        let mut body = resp.into_body();
        let mut pending: Vec<u8> = Vec::new();
        let mut failed: Option<Vec<u8>> = (!status.is_success()).then(Vec::new);
        loop {
            let frame = tokio::time::timeout(STREAM_IDLE, body.frame())
                .await
                .map_err(|_| {
                    anyhow!("the server sent nothing for {STREAM_IDLE:?}; is it still running?")
                })?;
            let Some(frame) = frame else { break };
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            if let Some(err) = &mut failed {
                err.extend_from_slice(&data);
                continue;
            }
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let l: Vec<u8> = pending.drain(..=end).collect();
                line(String::from_utf8_lossy(&l[..end]).as_ref())?;
            }
        }
        if let Some(bytes) = failed {
            return Err(anyhow!("{}", error_message(&bytes)));
        }
        if !pending.is_empty() {
            line(String::from_utf8_lossy(&pending).as_ref())?;
        }
        Ok(())
    }

    /// Send a request and decode its JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<T> {
        let bytes = self.send(method, path, body).await?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("the server's answer to {method} {path} is not what this CLI expects (a different version?)"))
    }
}

/// The message of an error answer (its JSON `message`, else its text).
fn error_message(bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned())
}

/// `?a=b&c=d` from pairs (values percent-encoded; `None` left out).
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            s.append_pair(k, v);
        }
    }
    let q = s.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}

/// Is this the error of a data dir another process holds?
fn is_busy(e: &HostError) -> bool {
    matches!(e, HostError::State(StateError::Unavailable(m)) if m.contains("in use by another process"))
}

/// The host configuration every local command uses.
fn host_config(
    global: &Global,
    settings: &Settings,
    guest: GuestLimits,
    pooling: Option<u32>,
) -> anyhow::Result<HostConfig> {
    let mut config = HostConfig::new(&settings.data);
    config.store_url = settings.store_url.clone();
    config.account = settings.account.clone();
    config.guest = guest;
    config.pooling = pooling;
    if let Some(l) = &settings.limits {
        l.apply(&mut config.store);
    }
    for spec in &global.kv_buckets {
        config.keyvalue_buckets.insert_spec(spec)?;
    }
    for spec in &global.watch {
        let (name, scopes) = crate::run::parse_watch(spec)?;
        config.watch.insert(name, scopes);
    }
    Ok(config)
}

/// Where the state is, for messages.
fn place(settings: &Settings) -> String {
    match &settings.store_url {
        Some(url) => wasm_state::store::Store::redacted(url),
        None => settings.data.display().to_string(),
    }
}

fn busy_error(settings: &Settings) -> anyhow::Error {
    anyhow!(
        "the data dir {} is in use by another process, and stayed busy for {}s; \
         if it is a long-running `wasm-state run`, wait for it or raise --busy-timeout; \
         a server would answer on {}, and nothing does",
        place(settings),
        settings.busy_timeout.as_secs(),
        socket::path(&settings.data).display()
    )
}

/// Open the host on the store the way every local command does, waiting
/// (up to `--busy-timeout`) while another command holds the data dir.
/// (For `serve`: it must hold the file itself.)
pub async fn open_host(
    global: &Global,
    settings: &Settings,
    guest: GuestLimits,
    pooling: Option<u32>,
) -> anyhow::Result<Host> {
    let config = host_config(global, settings, guest, pooling)?;
    let started = Instant::now();
    let mut delay = Duration::from_millis(20);
    loop {
        match Host::connect(config.clone()).await {
            Ok(h) => return Ok(h),
            Err(e) if is_busy(&e) && started.elapsed() < settings.busy_timeout => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(250));
            }
            Err(e) if is_busy(&e) => return Err(busy_error(settings)),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot open the state in {}", place(settings)));
            }
        }
    }
}

impl Target {
    /// The server's socket if one answers, else the store opened here.
    pub async fn open(global: &Global, settings: &Settings) -> anyhow::Result<Target> {
        Self::open_with(global, settings, GuestLimits::default()).await
    }

    /// [`Target::open`] for a command that reads or removes: a data dir
    /// that does not exist is an error (a mistyped `--data` would
    /// otherwise make an empty store and answer from it — an empty export,
    /// no instances), not a new store.
    pub async fn open_existing(global: &Global, settings: &Settings) -> anyhow::Result<Target> {
        if settings.store_url.is_none() && !settings.data.exists() {
            anyhow::bail!(
                "there is no data dir at {}: nothing was ever stored there; give the right \
                 one with --data or WASM_STATE_DATA (the default is ./.wasm-state), or \
                 --store for Redis",
                settings.data.display()
            );
        }
        Self::open(global, settings).await
    }

    /// Like [`Target::open`], with these guest limits for a local host.
    pub async fn open_with(
        global: &Global,
        settings: &Settings,
        guest: GuestLimits,
    ) -> anyhow::Result<Target> {
        if settings.store_url.is_some() {
            // Redis: every process opens the store itself.
            return Ok(Target::Local(Admin::new(
                open_host(global, settings, guest, None).await?,
            )));
        }
        let config = host_config(global, settings, guest, None)?;
        let sock = socket::path(&settings.data);
        let started = Instant::now();
        let mut delay = Duration::from_millis(20);
        loop {
            if let Some(c) = Client::connect(&sock).await {
                return Ok(Target::Remote(c));
            }
            match Host::connect(config.clone()).await {
                Ok(h) => return Ok(Target::Local(Admin::new(h))),
                // Another command holds the file, or a server is starting
                // on it: look again (the socket first) until the timeout.
                Err(e) if is_busy(&e) && started.elapsed() < settings.busy_timeout => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(250));
                }
                Err(e) if is_busy(&e) => return Err(busy_error(settings)),
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot open the state in {}", place(settings)));
                }
            }
        }
    }
}
