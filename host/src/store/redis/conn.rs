//! Connections to Redis or Redis Cluster: the store URL, every call bounded
//! by a timeout, Redis failures turned into `unavailable` with a message that
//! says what to check, and the start-up check of Redis's settings.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{RedisError, Value};

use super::script::LIBRARY;
use crate::store::error::{Result, StateError};

/// Where the Redis engine keeps its state, parsed from a store URL:
/// `redis://[:password@]host:port[/db]`, `rediss://…` (TLS), or
/// `redis+cluster://host:port,host:port…` (`rediss+cluster://` with TLS).
/// Query parameters: `namespace` (default `ws`: the prefix of every Redis
/// key), `timeout_ms` (default 5000: the longest a call may take),
/// `module` (`auto`, the default: run writes through wasm-state's Redis
/// module when the server has it loaded; `off`: always the Lua library).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Node URLs (one, or the cluster's seed nodes), without our parameters.
    pub nodes: Vec<String>,
    /// Redis Cluster.
    pub cluster: bool,
    /// Prefix of every Redis key of this store.
    pub namespace: String,
    /// The longest one call may take.
    pub timeout: Duration,
    /// Use wasm-state's Redis module for writes when the server has it.
    pub module: bool,
    /// The URL as given, with any password hidden (for messages).
    pub display: String,
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl std::fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

/// The URL with a password replaced by `***`.
pub(crate) fn hide_password(url: &str) -> String {
    let Some(at) = url.rfind('@') else {
        return url.to_string();
    };
    // After the scheme (`://`, or a mistyped one's first `:`), up to the @.
    let start = match url.find("://") {
        Some(s) if s < at => s + 3,
        _ => url[..at].find(':').map_or(0, |c| c + 1),
    };
    format!("{}***{}", &url[..start], &url[at..])
}

impl RedisUrl {
    /// Parse a store URL; a mistake says what the URL should look like.
    pub fn parse(url: &str) -> Result<RedisUrl> {
        let bad = |why: &str| {
            StateError::invalid(format!(
                "store URL {}: {why}; write redis://HOST:PORT[/DB], rediss://… for TLS, or redis+cluster://HOST:PORT,HOST:PORT for Redis Cluster",
                hide_password(url)
            ))
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let (cluster, node_scheme) = match scheme {
            "redis" => (false, "redis"),
            "rediss" => (false, "rediss"),
            "redis+cluster" => (true, "redis"),
            "rediss+cluster" => (true, "rediss"),
            _ => return Err(bad(&format!("unknown scheme {scheme:?}"))),
        };
        // The query starts after the credentials: a password may hold `?`.
        let creds_end = rest.rfind('@').map_or(0, |at| at + 1);
        let (addr, query) = match rest[creds_end..].find('?') {
            Some(q) => (&rest[..creds_end + q], &rest[creds_end + q + 1..]),
            None => (rest, ""),
        };
        let mut namespace = "ws".to_string();
        let mut timeout = Duration::from_secs(5);
        let mut module = true;
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "namespace" => {
                    if v.is_empty() || v.contains(['{', '}']) {
                        return Err(bad("namespace must be non-empty, without `{` or `}`"));
                    }
                    namespace = v.into_owned();
                }
                "timeout_ms" => {
                    let ms: u64 = v.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                        bad("timeout_ms must be a whole number of milliseconds ≥ 1")
                    })?;
                    timeout = Duration::from_millis(ms);
                }
                "module" => {
                    module = match v.as_ref() {
                        "auto" => true,
                        "off" => false,
                        _ => return Err(bad("module must be auto or off")),
                    };
                }
                other => {
                    return Err(bad(&format!(
                        "unknown parameter {other:?} (known: namespace, timeout_ms, module)"
                    )));
                }
            }
        }
        if addr.is_empty() {
            return Err(bad("no host"));
        }
        let nodes: Vec<String> = if cluster {
            let (auth, hosts) = match addr.rsplit_once('@') {
                Some((a, h)) => (format!("{a}@"), h),
                None => (String::new(), addr),
            };
            hosts
                .split(',')
                .map(|h| format!("{node_scheme}://{auth}{}", h.trim()))
                .collect()
        } else {
            vec![format!("{node_scheme}://{addr}")]
        };
        for n in &nodes {
            redis::Client::open(n.as_str()).map_err(|e| bad(&e.to_string()))?;
        }
        Ok(RedisUrl {
            nodes,
            cluster,
            namespace,
            timeout,
            module,
            display: hide_password(url),
        })
    }
}

/// A connection to Redis or to a Redis Cluster; cheap to clone.
#[derive(Clone)]
pub enum Conn {
    /// One Redis server (reconnects by itself).
    Single(Arc<Single>),
    /// A Redis Cluster (follows redirections, reconnects by itself).
    Cluster(ClusterConnection),
}

/// One Redis server through redis-rs's `ConnectionManager`, which
/// reconnects by itself when a connection drops — but not when calls time
/// out, so a half-open connection (a partition, a dropped NAT entry: no
/// reset ever arrives) would fail every call for good. Once calls have gone
/// unanswered for longer than the store's timeout, the manager is replaced
/// by a fresh one.
pub struct Single {
    client: redis::Client,
    config: ConnectionManagerConfig,
    state: Mutex<SingleState>,
}

struct SingleState {
    manager: ConnectionManager,
    /// Since when calls fail without an answer from Redis (none: the last
    /// call was answered).
    failing_since: Option<Instant>,
}

impl Single {
    fn config(url: &RedisUrl) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(url.timeout))
            .set_response_timeout(Some(url.timeout))
            .set_number_of_retries(2)
    }

    fn new(
        client: redis::Client,
        config: ConnectionManagerConfig,
        manager: ConnectionManager,
    ) -> Arc<Single> {
        Arc::new(Single {
            client,
            config,
            state: Mutex::new(SingleState {
                manager,
                failing_since: None,
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SingleState> {
        // The lock only guards a clone or a swap; a poisoned one still
        // holds a usable manager.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn manager(&self) -> ConnectionManager {
        self.state().manager.clone()
    }

    /// Note how a call ended: answered (even with an error reply), or not
    /// answered at all; replace the manager after `timeout` of the latter.
    fn outcome(&self, answered: bool, timeout: Duration) {
        let mut s = self.state();
        if answered {
            s.failing_since = None;
            return;
        }
        let now = Instant::now();
        match s.failing_since {
            None => s.failing_since = Some(now),
            Some(since) if now.duration_since(since) >= timeout => {
                if let Ok(fresh) = ConnectionManager::new_lazy_with_config(
                    self.client.clone(),
                    self.config.clone(),
                ) {
                    tracing::info!(
                        "replacing the Redis connection after {} ms without answers",
                        now.duration_since(since).as_millis()
                    );
                    s.manager = fresh;
                }
                s.failing_since = Some(now);
            }
            Some(_) => {}
        }
    }
}

/// Whether a failed call got an answer from Redis (an error reply), as
/// opposed to no answer (refused, dropped, timed out).
fn answered(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
    )
}

/// The hint of a command this Redis never runs for this user: unknown to
/// it, or refused by its ACL.
pub const NOT_OFFERED: &str =
    "this Redis does not run the command for this user (unknown to it, or refused by its ACL)";

/// The hint of an error Redis answered (a refused command).
pub const REFUSED: &str = "Redis refused the command; check its ACL, loaded modules and log";

/// The `unavailable` error of a failed call, saying what to check.
pub fn unavailable(url: &RedisUrl, e: &RedisError) -> StateError {
    let hint = if e.code() == Some("OOM") {
        "Redis is full (maxmemory reached) and refuses writes until memory is freed or maxmemory raised; nothing of this write was applied, reads still work"
    } else if e.is_connection_refusal() {
        "is Redis running and reachable at that address?"
    } else if e.is_timeout() {
        "Redis did not answer in time; is it overloaded or stopped?"
    } else if e.is_io_error() || e.is_connection_dropped() {
        "the connection to Redis broke; it will be re-established"
    } else if e.code() == Some("NOPERM") || e.to_string().contains("unknown command") {
        NOT_OFFERED
    } else if answered(e) {
        REFUSED
    } else {
        "check Redis's log"
    };
    StateError::Unavailable(format!("redis at {url}: {e} ({hint})"))
}

fn timed_out(url: &RedisUrl) -> StateError {
    StateError::Unavailable(format!(
        "redis at {url} did not answer within {} ms; is it running, and not stopped or overloaded?",
        url.timeout.as_millis()
    ))
}

impl Conn {
    /// Connect (bounded by the URL's timeout).
    pub async fn open(url: &RedisUrl) -> Result<Conn> {
        if url.nodes.iter().any(|n| n.starts_with("rediss://")) {
            // rustls needs a crypto provider; ring is the one compiled in.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let connect = async {
            if url.cluster {
                let client = ClusterClient::builder(url.nodes.clone())
                    .connection_timeout(url.timeout)
                    .response_timeout(url.timeout)
                    .build()?;
                Ok(Conn::Cluster(client.get_async_connection().await?))
            } else {
                let client = redis::Client::open(url.nodes[0].as_str())?;
                let config = Single::config(url);
                let manager =
                    ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
                Ok(Conn::Single(Single::new(client, config, manager)))
            }
        };
        match tokio::time::timeout(url.timeout, connect).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(unavailable(url, &e)),
            Err(_) => Err(StateError::Unavailable(format!(
                "cannot connect to redis at {url} within {} ms: is Redis running and reachable at that address?",
                url.timeout.as_millis()
            ))),
        }
    }

    /// A connection to one Redis server made on first use (no cluster), for
    /// callers that cannot wait here; it must be created inside a tokio
    /// runtime.
    pub fn lazy(url: &RedisUrl) -> Result<Conn> {
        if url.cluster {
            return Err(StateError::invalid(format!(
                "{url}: a Redis Cluster store must be opened with Store::connect (async)"
            )));
        }
        let client =
            redis::Client::open(url.nodes[0].as_str()).map_err(|e| unavailable(url, &e))?;
        let config = Single::config(url);
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(|e| unavailable(url, &e))?;
        Ok(Conn::Single(Single::new(client, config, manager)))
    }

    /// Call the engine's read-only function with `keys` and `args`
    /// (`FCALL`; Redis runs it even while it refuses writes), within the
    /// URL's timeout.
    pub async fn read_script(
        &self,
        url: &RedisUrl,
        keys: &[&str],
        args: &[Vec<u8>],
    ) -> Result<Value> {
        self.fcall_by(url, &LIBRARY.read_function, keys, args, deadline(url))
            .await
    }

    /// Call the engine's (writing) function with `keys` and `args`
    /// (`FCALL`), done by `deadline`.
    pub async fn script_by(
        &self,
        url: &RedisUrl,
        keys: &[&str],
        args: &[Vec<u8>],
        deadline: Instant,
    ) -> Result<Value> {
        self.fcall_by(url, &LIBRARY.function, keys, args, deadline)
            .await
    }

    /// The command `name` of wasm-state's Redis module with `keys`, the
    /// host's `fingerprint` and the `packed` arguments, done by `deadline`.
    pub async fn module_by(
        &self,
        url: &RedisUrl,
        name: &str,
        keys: &[&str],
        fingerprint: &str,
        packed: &[u8],
        deadline: Instant,
    ) -> Result<Value> {
        let mut cmd = sized(&[name], keys, 2, fingerprint.len() + packed.len());
        cmd.arg(keys).arg(fingerprint).arg(packed);
        self.cmd_by(url, &cmd, deadline).await
    }

    /// The longest single argument the server takes (`proto-max-bulk-len`;
    /// Redis's default, 512 MB, when it cannot be read — `CONFIG GET` may
    /// be refused), done by `deadline`.
    pub async fn max_argument(&self, url: &RedisUrl, deadline: Instant) -> u64 {
        let mut get = redis::cmd("CONFIG");
        get.arg("GET").arg("proto-max-bulk-len");
        self.cmd_by(url, &get, deadline)
            .await
            .ok()
            .and_then(|v| config_value(&v))
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MAX_ARGUMENT)
    }

    /// Whether the server has the command `name` (`COMMAND INFO`).
    pub async fn has_command(&self, url: &RedisUrl, name: &str, deadline: Instant) -> Result<bool> {
        let mut info = redis::cmd("COMMAND");
        info.arg("INFO").arg(name);
        Ok(match self.cmd_by(url, &info, deadline).await? {
            Value::Array(items) => items.first().is_some_and(|i| !matches!(i, Value::Nil)),
            _ => false,
        })
    }

    /// `FCALL` of `function`; load the library first if this Redis does not
    /// have it yet. All of it done by `deadline`.
    async fn fcall_by(
        &self,
        url: &RedisUrl,
        function: &str,
        keys: &[&str],
        args: &[Vec<u8>],
        deadline: Instant,
    ) -> Result<Value> {
        let count = keys.len().to_string();
        let bytes = count.len() + args.iter().map(Vec::len).sum::<usize>();
        let mut fcall = sized(&["FCALL", function], keys, 1 + args.len(), bytes);
        fcall.arg(&count).arg(keys);
        for a in args {
            fcall.arg(a.as_slice());
        }
        match self.cmd_by(url, &fcall, deadline).await {
            Err(StateError::Unavailable(m)) if m.contains("Function not found") => {
                self.load_library_by(url, deadline).await?;
                self.cmd_by(url, &fcall, deadline).await
            }
            other => other,
        }
    }

    /// `FUNCTION LOAD REPLACE` the engine's library (on every primary of a
    /// cluster), done by `deadline`.
    async fn load_library_by(&self, url: &RedisUrl, deadline: Instant) -> Result<()> {
        let mut load = redis::cmd("FUNCTION");
        load.arg("LOAD").arg("REPLACE").arg(&LIBRARY.source);
        self.cmd_by(url, &load, deadline).await.map(|_| ()).map_err(|e| match e {
            StateError::Unavailable(m) => StateError::Unavailable(format!(
                "{m}; loading wasm-state's Redis function library failed (Redis 7 or later is needed)"
            )),
            e => e,
        })
    }

    /// Run one plain command (within the URL's timeout).
    pub async fn cmd(&self, url: &RedisUrl, cmd: &redis::Cmd) -> Result<Value> {
        self.cmd_by(url, cmd, deadline(url)).await
    }

    /// Run one plain command, done by `deadline`.
    pub async fn cmd_by(
        &self,
        url: &RedisUrl,
        cmd: &redis::Cmd,
        deadline: Instant,
    ) -> Result<Value> {
        let deadline = tokio::time::Instant::from_std(deadline);
        match self {
            Conn::Single(single) => {
                let mut manager = single.manager();
                let result = tokio::time::timeout_at(deadline, cmd.query_async(&mut manager)).await;
                single.outcome(
                    matches!(&result, Ok(Ok(_))) || matches!(&result, Ok(Err(e)) if answered(e)),
                    url.timeout,
                );
                settle(url, result)
            }
            Conn::Cluster(c) => {
                let mut c = c.clone();
                settle(
                    url,
                    tokio::time::timeout_at(deadline, cmd.query_async(&mut c)).await,
                )
            }
        }
    }
}

/// A command that starts with `words`, its buffers sized for `words`, then
/// `keys` and `more` arguments of `more_bytes` in all (the caller adds
/// those): growing them argument by argument cost ~4 % of the host's
/// instructions per engine write (callgrind, `scripts/redis-instructions.sh`).
fn sized(words: &[&str], keys: &[&str], more: usize, more_bytes: usize) -> redis::Cmd {
    let count = words.len() + keys.len() + more;
    let bytes = words.iter().chain(keys).map(|w| w.len()).sum::<usize>() + more_bytes;
    let mut cmd = redis::Cmd::with_capacity(count, bytes);
    for w in words {
        cmd.arg(*w);
    }
    cmd
}

/// Redis's default `proto-max-bulk-len`: the longest single argument.
pub const DEFAULT_MAX_ARGUMENT: u64 = 512 << 20;

/// When a call made now must be done: the URL's timeout from now.
pub fn deadline(url: &RedisUrl) -> Instant {
    Instant::now() + url.timeout
}

/// A call bounded by the URL's timeout: its value, or its failure as
/// `unavailable`.
fn settle<T>(
    url: &RedisUrl,
    result: std::result::Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
) -> Result<T> {
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(unavailable(url, &e)),
        Err(_) => Err(timed_out(url)),
    }
}

/// A setting of Redis that matters to durability or to keeping keys.
fn config_value(v: &Value) -> Option<String> {
    match v {
        Value::Array(items) => items.get(1).and_then(|x| match x {
            Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::SimpleString(s) => Some(s.clone()),
            _ => None,
        }),
        Value::Map(pairs) => pairs.first().and_then(|(_, x)| match x {
            Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::SimpleString(s) => Some(s.clone()),
            _ => None,
        }),
        _ => None,
    }
}

/// Check Redis's settings at start: refuse a `maxmemory-policy` that could
/// evict keys (the state would lose data silently); warn when persistence
/// cannot keep every acknowledged write across a Redis crash. Servers that
/// do not allow `CONFIG GET` (some managed services) get a warning.
pub async fn check_settings(conn: &Conn, url: &RedisUrl) -> Result<()> {
    let get = |name: &str| {
        let mut c = redis::cmd("CONFIG");
        c.arg("GET").arg(name);
        c
    };
    let policy = match conn.cmd(url, &get("maxmemory-policy")).await {
        Ok(v) => config_value(&v),
        // Redis answered, refusing the command (its ACL, or a renamed
        // `CONFIG`): warn. Not answering, or not reachable, is an error.
        Err(StateError::Unavailable(m)) if m.contains(NOT_OFFERED) || m.contains(REFUSED) => {
            tracing::warn!(redis = %url, "cannot read Redis's settings (CONFIG GET is not allowed?): make sure maxmemory-policy is noeviction and appendfsync is always");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let maxmemory = conn
        .cmd(url, &get("maxmemory"))
        .await
        .ok()
        .and_then(|v| config_value(&v))
        .unwrap_or_default();
    if let Some(p) = &policy
        && p != "noeviction"
    {
        if maxmemory != "0" && !maxmemory.is_empty() {
            return Err(StateError::Unavailable(format!(
                "redis at {url} has maxmemory {maxmemory} with maxmemory-policy {p}: it would evict state keys when full and lose data; set `CONFIG SET maxmemory-policy noeviction` (and in redis.conf)"
            )));
        }
        tracing::warn!(redis = %url, policy = %p, "maxmemory-policy could evict keys once a maxmemory is set; use noeviction");
    }
    let aof = conn
        .cmd(url, &get("appendonly"))
        .await
        .ok()
        .and_then(|v| config_value(&v));
    let fsync = conn
        .cmd(url, &get("appendfsync"))
        .await
        .ok()
        .and_then(|v| config_value(&v));
    match (aof.as_deref(), fsync.as_deref()) {
        (Some("yes"), Some("always")) => {}
        (Some("yes"), Some(f)) => tracing::warn!(
            redis = %url, appendfsync = f,
            "acknowledged writes of the last second can be lost if Redis crashes; use appendfsync always for durability"
        ),
        _ => tracing::warn!(
            redis = %url,
            "Redis has no append-only file: acknowledged writes can be lost if Redis crashes; use appendonly yes and appendfsync always for durability"
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        let u = RedisUrl::parse("redis://127.0.0.1:6379/2").unwrap();
        assert_eq!(u.nodes, ["redis://127.0.0.1:6379/2"]);
        assert!(!u.cluster);
        assert_eq!(u.namespace, "ws");
        let u = RedisUrl::parse("redis+cluster://:pw@a:1,b:2?namespace=t1&timeout_ms=250").unwrap();
        assert_eq!(u.nodes, ["redis://:pw@a:1", "redis://:pw@b:2"]);
        assert!(u.cluster);
        assert_eq!(
            (u.namespace.as_str(), u.timeout),
            ("t1", Duration::from_millis(250))
        );
        assert_eq!(
            u.display,
            "redis+cluster://***@a:1,b:2?namespace=t1&timeout_ms=250"
        );
        let u = RedisUrl::parse("rediss://h:6380").unwrap();
        assert_eq!(u.nodes, ["rediss://h:6380"]);
        for bad in [
            "localhost:6379",
            "http://x",
            "redis://",
            "redis://h?timeout_ms=0",
            "redis://h?namespace={x}",
            "redis://h?colour=blue",
        ] {
            let e = RedisUrl::parse(bad).unwrap_err().to_string();
            assert!(e.contains("redis://HOST:PORT"), "{bad}: {e}");
        }
        assert!(
            !RedisUrl::parse("redis://:secret@h")
                .unwrap_err_or_display()
                .contains("secret")
        );
    }

    trait DisplayOk {
        fn unwrap_err_or_display(self) -> String;
    }
    impl DisplayOk for Result<RedisUrl> {
        fn unwrap_err_or_display(self) -> String {
            match self {
                Ok(u) => format!("{u} {u:?}"),
                Err(e) => e.to_string(),
            }
        }
    }
}
