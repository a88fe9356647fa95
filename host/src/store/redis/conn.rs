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
/// `redis://[:password@]host:port[/db]`, `rediss://…` (TLS),
/// `redis+cluster://host:port,host:port…` (`rediss+cluster://` with TLS),
/// or `redis+sentinel://[:password@]host:port,host:port…/MASTER[/db]` (the
/// primary that Redis Sentinels at those addresses name `MASTER`, asked
/// again after a failover; the password is the primary's, the sentinels'
/// own is `sentinel_password`; `rediss+sentinel://` with TLS to both).
/// Query parameters: `namespace` (default `ws`: the prefix of every Redis
/// key), `timeout_ms` (default 5000: the longest a call may take),
/// `module` (`auto`, the default: run writes through wasm-state's Redis
/// module when the server has it loaded; `off`: always the Lua library),
/// `ca_file` (with TLS: a PEM file of the certificate authorities to trust
/// instead of the public web roots built in — a self-signed or company CA).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Node URLs (one, or the cluster's seed nodes), without our parameters.
    pub nodes: Vec<String>,
    /// Redis Cluster.
    pub cluster: bool,
    /// Redis Sentinel: `nodes` are the sentinels, this names the primary.
    pub sentinel: Option<SentinelTarget>,
    /// Prefix of every Redis key of this store.
    pub namespace: String,
    /// The longest one call may take.
    pub timeout: Duration,
    /// Use wasm-state's Redis module for writes when the server has it.
    pub module: bool,
    /// With TLS: the PEM file of the certificate authorities to trust
    /// (none: the public web roots built in).
    pub ca_file: Option<std::path::PathBuf>,
    /// The URL as given, with any password hidden (for messages).
    pub display: String,
}

/// The primary a store URL asks Redis Sentinel for.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelTarget {
    /// The name the sentinels monitor it under.
    pub master: String,
    /// `[user][:password]@` as written in the URL (percent-encoded), or
    /// empty, and the database: what a connection to the primary uses.
    credentials: String,
    db: i64,
    /// The sentinels' own password (`?sentinel_password=`), if they have one.
    sentinel_password: Option<String>,
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

/// The URL with its passwords replaced by `***`: the credentials before
/// the host, and the value of every query parameter but the few known to
/// hold no secret — a `sentinel_password`, and an unknown parameter, which
/// may be a password written as one (`?password=…`). A value ends at the
/// next `&` only (a raw `#` in it is still the value, as the parser reads
/// it), and a parameter's name is read percent-decoded, as the parser does.
pub(crate) fn hide_password(url: &str) -> String {
    // The parameters first: a raw `@` in a value must not read as the end
    // of the credentials below.
    let url = match url.split_once('?') {
        Some((before, query)) => {
            let query: Vec<String> = query.split('&').map(hide_parameter_value).collect();
            format!("{before}?{}", query.join("&"))
        }
        None => url.to_string(),
    };
    let Some(at) = url.rfind('@') else {
        return url;
    };
    // After the scheme (`://`, or a mistyped one's first `:`), up to the @.
    let start = match url.find("://") {
        Some(s) if s < at => s + 3,
        _ => url[..at].find(':').map_or(0, |c| c + 1),
    };
    format!("{}***{}", &url[..start], &url[at..])
}

/// The query parameters whose values are shown in messages.
const SHOWN_PARAMETERS: [&str; 4] = ["namespace", "timeout_ms", "module", "ca_file"];

/// One `name=value` of a query, its value hidden unless the name is shown.
fn hide_parameter_value(pair: &str) -> String {
    let Some((name, _)) = pair.split_once('=') else {
        return pair.to_string();
    };
    let shown = form_urlencoded::parse(name.as_bytes())
        .next()
        .is_some_and(|(decoded, _)| SHOWN_PARAMETERS.contains(&decoded.as_ref()));
    if shown {
        pair.to_string()
    } else {
        format!("{name}=***")
    }
}

impl RedisUrl {
    /// Parse a store URL; a mistake says what the URL should look like.
    pub fn parse(url: &str) -> Result<RedisUrl> {
        let bad = |why: &str| {
            StateError::invalid(format!(
                "store URL {}: {why}; write redis://HOST:PORT[/DB], rediss://… for TLS, redis+cluster://HOST:PORT,HOST:PORT for Redis Cluster, or redis+sentinel://HOST:PORT,HOST:PORT/MASTER[/DB] for Redis Sentinel",
                hide_password(url)
            ))
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let (cluster, sentinel, node_scheme) = match scheme {
            "redis" => (false, false, "redis"),
            "rediss" => (false, false, "rediss"),
            "redis+cluster" => (true, false, "redis"),
            "rediss+cluster" => (true, false, "rediss"),
            "redis+sentinel" => (false, true, "redis"),
            "rediss+sentinel" => (false, true, "rediss"),
            _ => return Err(bad(&format!("unknown scheme {scheme:?}"))),
        };
        // As in every URL (and as redis-rs reads it), the host part ends at
        // the first `/`, `?` or `#`, and the credentials at its last `@`: a
        // query may hold an `@`; a password with `@ / ? #` is written
        // percent-encoded (`%40 %2F %3F %23`).
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let creds_end = rest[..authority_end].rfind('@').map_or(0, |at| at + 1);
        let (addr, query) = match rest[creds_end..].find('?') {
            Some(q) => (&rest[..creds_end + q], &rest[creds_end + q + 1..]),
            None => (rest, ""),
        };
        let mut namespace = "ws".to_string();
        let mut timeout = Duration::from_secs(5);
        let mut module = true;
        let mut ca_file = None;
        let mut sentinel_password = None;
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "sentinel_password" => {
                    if !sentinel {
                        return Err(bad(
                            "sentinel_password is for Redis Sentinel: write redis+sentinel://",
                        ));
                    }
                    if v.is_empty() {
                        return Err(bad("sentinel_password is empty"));
                    }
                    sentinel_password = Some(v.into_owned());
                }
                "namespace" => {
                    if v.is_empty() || v.contains(['{', '}']) {
                        return Err(bad("namespace must be non-empty, without `{` or `}`"));
                    }
                    namespace = v.into_owned();
                }
                "timeout_ms" => {
                    // At most half the life of a write's answer marker: a
                    // call resent within its timeout always finds it.
                    let ms: u64 = v
                        .parse()
                        .ok()
                        .filter(|&n| (1..=MAX_TIMEOUT_MS).contains(&n))
                        .ok_or_else(|| {
                            bad(&format!(
                                "timeout_ms must be a whole number of milliseconds from 1 to {MAX_TIMEOUT_MS}"
                            ))
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
                "ca_file" => {
                    if node_scheme != "rediss" {
                        return Err(bad("ca_file is for TLS: write rediss://"));
                    }
                    if v.is_empty() {
                        return Err(bad("ca_file needs the path of a PEM file"));
                    }
                    ca_file = Some(std::path::PathBuf::from(v.as_ref()));
                }
                other if other.contains(['@', ':']) => {
                    // Most likely the rest of a password with a raw `?`:
                    // not echoed.
                    return Err(bad(
                        "a parameter name holds `@` or `:`: write `@ / ? #` in a password percent-encoded (%40 %2F %3F %23)",
                    ));
                }
                _ if rest[authority_end..].contains('@') => {
                    // A password with a raw `?` may be what reads as the
                    // query here: not echoed.
                    return Err(bad(
                        "unknown parameter (known: namespace, timeout_ms, module, ca_file, sentinel_password; not shown: write `@ / ? #` in a password percent-encoded)",
                    ));
                }
                other => {
                    return Err(bad(&format!(
                        "unknown parameter {other:?} (known: namespace, timeout_ms, module, ca_file, sentinel_password)"
                    )));
                }
            }
        }
        if addr.is_empty() {
            return Err(bad("no host"));
        }
        let mut sentinel_target = None;
        let nodes: Vec<String> = if sentinel {
            let (credentials, rest) = addr.split_at(creds_end);
            let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
            if path.contains(['@', '#', '?']) {
                // A raw `/` in a password would make the rest of it read as
                // the primary's name: not echoed.
                return Err(bad(
                    "the primary's name holds `@`, `#` or `?`: write `@ / ? #` in a password, and those in the name, percent-encoded",
                ));
            }
            let (master, db) = path.split_once('/').unwrap_or((path, "0"));
            let master = percent_encoding::percent_decode_str(master)
                .decode_utf8()
                .map_err(|_| bad("the primary's name after the sentinels is not UTF-8"))?;
            if master.is_empty() {
                return Err(bad(
                    "Redis Sentinel needs the name it monitors the primary under: /MASTER after the sentinels",
                ));
            }
            let db: i64 = db
                .parse()
                .ok()
                .filter(|&d| d >= 0)
                .ok_or_else(|| bad("the database after /MASTER/ must be a whole number"))?;
            if hosts.is_empty() {
                return Err(bad("no host"));
            }
            // The primary's credentials, checked as redis-rs reads them.
            redis::Client::open(format!(
                "{node_scheme}://{credentials}sentinel-primary:1/{db}"
            ))
            .map_err(|e| bad(&e.to_string()))?;
            sentinel_target = Some(SentinelTarget {
                sentinel_password: sentinel_password.take(),
                master: master.into_owned(),
                credentials: credentials.to_owned(),
                db,
            });
            // A sentinel without a port is at Sentinel's own, 26379.
            hosts
                .split(',')
                .map(|h| {
                    let h = h.trim();
                    let has_port = h.rsplit_once(':').is_some_and(|(_, p)| !p.contains(']'));
                    match has_port {
                        true => format!("{node_scheme}://{h}"),
                        false => format!("{node_scheme}://{h}:26379"),
                    }
                })
                .collect()
        } else if cluster {
            let (auth, hosts) = match addr.rsplit_once('@') {
                Some((a, h)) => (format!("{a}@"), h),
                None => (String::new(), addr),
            };
            if hosts.contains('/') {
                return Err(bad(
                    "a Redis Cluster has only database 0: no /DB after a cluster node",
                ));
            }
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
            sentinel: sentinel_target,
            namespace,
            timeout,
            module,
            ca_file,
            display: hide_password(url),
        })
    }
}

/// The longest `timeout_ms` a store URL may give: half the life of a
/// write's answer marker ([`super::native::MARKER_MS`], 120 s), so a write
/// resent by the client within its timeout is always recognised.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

/// TCP settings of every connection: a connection whose sent data goes
/// unacknowledged for the store's timeout (a node gone without a reset: a
/// partition, a dead host) is closed by the kernel, and an idle one is
/// probed, so redis-rs reconnects (and a cluster connection refreshes its
/// view of the nodes) instead of waiting on it for the kernel's default
/// ~15 minutes.
fn tcp_settings(url: &RedisUrl, base: redis::io::tcp::TcpSettings) -> redis::io::tcp::TcpSettings {
    use redis::io::tcp::socket2::TcpKeepalive;
    let after = url.timeout.max(Duration::from_secs(1));
    let (interval, probes) = (Duration::from_secs(1), 3);
    // The user timeout also bounds keepalive on Linux: it must outlast the
    // probes, or an idle connection dies at its first unanswered probe.
    base.set_user_timeout(after + interval * probes)
        .set_keepalive(
            TcpKeepalive::new()
                .with_time(after)
                .with_interval(interval)
                .with_retries(probes),
        )
}

/// The certificate authorities the URL's `ca_file` names, read now.
fn tls_certificates(url: &RedisUrl) -> Result<Option<redis::TlsCertificates>> {
    let Some(path) = &url.ca_file else {
        return Ok(None);
    };
    let pem = std::fs::read(path).map_err(|e| {
        StateError::invalid(format!(
            "store URL {url}: cannot read ca_file {}: {e}",
            path.display()
        ))
    })?;
    Ok(Some(redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    }))
}

/// A client for one node URL, with [`tcp_settings`] and the URL's
/// certificate authorities.
fn client_for(url: &RedisUrl, node: &str) -> Result<redis::Client> {
    use redis::IntoConnectionInfo;
    let info = node.into_connection_info().map_err(|e| failure(url, &e))?;
    let tcp = tcp_settings(url, info.tcp_settings().clone());
    let info = info.set_tcp_settings(tcp);
    match tls_certificates(url)? {
        Some(certs) => redis::Client::build_with_tls(info, certs),
        None => redis::Client::open(info),
    }
    .map_err(|e| failure(url, &e))
}

/// How redis-rs's cluster client retries a call that met a passing state
/// of the cluster (`TRYAGAIN` while a slot moves, `CLUSTERDOWN` during a
/// failover, a node's connection lost): its waits fit in half the store's
/// timeout, so a move or failover that ends meanwhile costs the caller
/// nothing, and one that lasts ends the call with Redis's own answer
/// (which names the cause) rather than with the store's timeout. redis-rs's
/// defaults wait at least 1.28 s per retry, longer than most timeouts.
struct ClusterRetry {
    retries: u32,
    min_wait_ms: u64,
    max_wait_ms: u64,
}

impl ClusterRetry {
    /// The n-th retry waits at most `FACTOR_MS` × 2ⁿ ms.
    const FACTOR_MS: u64 = 10;

    fn within(timeout: Duration) -> ClusterRetry {
        let budget = (timeout.as_millis() as u64) / 2;
        let max_wait_ms = (budget / 4).max(5);
        let (mut retries, mut spent) = (0u32, 0u64);
        while retries < 16 {
            let wait = (Self::FACTOR_MS << (retries + 1)).min(max_wait_ms);
            if spent + wait > budget {
                break;
            }
            spent += wait;
            retries += 1;
        }
        ClusterRetry {
            // At least two: a redirection (`MOVED`, `ASK`) is followed at
            // once, without a wait.
            retries: retries.max(2),
            min_wait_ms: 2,
            max_wait_ms,
        }
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
    source: Source,
    config: ConnectionManagerConfig,
    state: Mutex<SingleState>,
}

/// Where a [`Single`] connection goes.
enum Source {
    /// One address.
    Fixed(redis::Client),
    /// The primary Redis Sentinel names, asked for again (in a task of its
    /// own, one at a time) whenever the connection would be replaced.
    Sentinel {
        sentinels: tokio::sync::Mutex<redis::sentinel::SentinelClient>,
        asking: std::sync::atomic::AtomicBool,
        /// The store URL, password hidden (for the log).
        url: String,
    },
}

impl Source {
    /// The sentinels of `url` and how to reach the primary they name.
    fn sentinel(url: &RedisUrl, target: &SentinelTarget) -> Result<Source> {
        use redis::IntoConnectionInfo;
        use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
        let addrs = url
            .nodes
            .iter()
            .map(|n| Ok(n.as_str().into_connection_info()?.addr().clone()))
            .collect::<redis::RedisResult<Vec<_>>>()
            .map_err(|e| failure(url, &e))?;
        let tls = url.nodes[0].starts_with("rediss://");
        let primary = format!(
            "{}://{}sentinel-primary:1/{}",
            if tls { "rediss" } else { "redis" },
            target.credentials,
            target.db
        )
        .into_connection_info()
        .map_err(|e| failure(url, &e))?;
        let primary = primary.redis_settings();
        let tcp = tcp_settings(url, Default::default());
        let mut builder =
            SentinelClientBuilder::new(addrs, target.master.clone(), SentinelServerType::Master)
                .map_err(|e| failure(url, &e))?
                .set_client_to_redis_db(primary.db())
                .set_client_to_redis_tcp_settings(tcp.clone())
                .set_client_to_sentinel_tcp_settings(tcp);
        if let Some(user) = primary.username() {
            builder = builder.set_client_to_redis_username(user);
        }
        if let Some(password) = primary.password() {
            builder = builder.set_client_to_redis_password(password);
        }
        if let Some(password) = &target.sentinel_password {
            builder = builder.set_client_to_sentinel_password(password);
        }
        if tls {
            builder = builder
                .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
                .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure);
            if let Some(certs) = tls_certificates(url)? {
                builder = builder
                    .set_client_to_redis_certificates(certs.clone())
                    .set_client_to_sentinel_certificates(certs);
            }
        }
        Ok(Source::Sentinel {
            sentinels: tokio::sync::Mutex::new(builder.build().map_err(|e| failure(url, &e))?),
            asking: std::sync::atomic::AtomicBool::new(false),
            url: url.display.clone(),
        })
    }

    /// A client for the primary the sentinels name now, within the URL's
    /// timeout.
    async fn primary(
        sentinels: &tokio::sync::Mutex<redis::sentinel::SentinelClient>,
        url: &RedisUrl,
    ) -> Result<redis::Client> {
        let ask = async { sentinels.lock().await.async_get_client().await };
        // Within the connection's own deadline, so this message is the one
        // a caller sees.
        match tokio::time::timeout(url.timeout * 3 / 4, ask).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(sentinel_failure(url, &e)),
            Err(_) => Err(StateError::Unavailable(format!(
                "redis at {url}: no sentinel named a reachable primary within {} ms (is the primary being failed over, and are the sentinels reachable?)",
                url.timeout.as_millis()
            ))),
        }
    }
}

/// A failure to learn the primary from Redis Sentinel.
fn sentinel_failure(url: &RedisUrl, e: &RedisError) -> StateError {
    let name = url.sentinel.as_ref().map_or("", |t| t.master.as_str());
    if e.kind() == redis::ErrorKind::AuthenticationFailed || e.code() == Some("NOAUTH") {
        return StateError::Unavailable(format!(
            "redis at {url}: no primary from Redis Sentinel: {e} (a sentinel or the primary refused the password: the primary's goes before the hosts, the sentinels' in ?sentinel_password=)"
        ));
    }
    StateError::Unavailable(format!(
        "redis at {url}: no primary from Redis Sentinel: {e} (check that the sentinels are reachable, that they monitor a primary named {name:?}, and that it is up or being failed over)"
    ))
}

/// What a [`Single`]'s calls go through.
#[derive(Clone)]
enum Link {
    /// redis-rs's manager, which reconnects to its address by itself.
    Manager(ConnectionManager),
    /// One connection to the primary Redis Sentinel named. It never
    /// reconnects by itself: an old primary restarted at its address runs
    /// as a primary until the sentinels turn it into a replica, and what it
    /// acknowledged meanwhile would be lost. The sentinels are asked again
    /// instead.
    Direct(redis::aio::MultiplexedConnection),
}

impl redis::aio::ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Link::Manager(m) => m.req_packed_command(cmd),
            Link::Direct(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Link::Manager(m) => m.req_packed_commands(pipeline, offset, count),
            Link::Direct(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Manager(m) => m.get_db(),
            Link::Direct(c) => c.get_db(),
        }
    }
}

/// Clears a flag when dropped (a task that ends in any way).
struct Lowered<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for Lowered<'_> {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Release);
    }
}

struct SingleState {
    link: Link,
    /// Since when calls fail without an answer from Redis (none: the last
    /// call was answered).
    failing_since: Option<Instant>,
    /// When the manager was last replaced because the server answered as no
    /// primary (`READONLY`, `MASTERDOWN`).
    replaced_for_role: Option<Instant>,
    /// How many times `link` was replaced.
    generation: u64,
}

/// How a call on a single server ended, for [`Single::outcome`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// An answer from the primary (a value or an error reply).
    Answered,
    /// No answer: refused, dropped, timed out.
    Unanswered,
    /// Answered as no primary (`READONLY`, `MASTERDOWN`): a failover moved
    /// the primary; its reads may still be answered.
    NotPrimary,
}

impl Single {
    fn config(url: &RedisUrl) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(url.timeout))
            .set_response_timeout(Some(url.timeout))
            .set_number_of_retries(2)
    }

    fn new(source: Source, config: ConnectionManagerConfig, link: Link) -> Arc<Single> {
        Arc::new(Single {
            source,
            config,
            state: Mutex::new(SingleState {
                link,
                failing_since: None,
                replaced_for_role: None,
                generation: 0,
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SingleState> {
        // The lock only guards a clone or a swap; a poisoned one still
        // holds a usable manager.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn link(&self) -> Link {
        self.state().link.clone()
    }

    /// Note how a call ended. After `timeout` of calls without answers, or
    /// at once when the server answered as no primary (at most once per
    /// `timeout`: reads it still answers must not keep the connection), the
    /// manager is replaced by a fresh one.
    fn outcome(self: &Arc<Self>, outcome: Outcome, timeout: Duration) {
        let mut s = self.state();
        let now = Instant::now();
        let sentinel = matches!(self.source, Source::Sentinel { .. });
        let replace = match outcome {
            Outcome::Answered => {
                s.failing_since = None;
                return;
            }
            // A direct connection does not heal by itself: the sentinels
            // are asked at once (one question at a time).
            Outcome::NotPrimary | Outcome::Unanswered if sentinel => {
                Some("the primary did not answer, or answered as a replica")
            }
            Outcome::NotPrimary => s
                .replaced_for_role
                .is_none_or(|at| now.duration_since(at) >= timeout)
                .then_some("the server answered as a replica"),
            Outcome::Unanswered => match s.failing_since {
                None => {
                    s.failing_since = Some(now);
                    None
                }
                Some(since) if now.duration_since(since) >= timeout => {
                    s.failing_since = Some(now);
                    Some("calls went unanswered")
                }
                Some(_) => None,
            },
        };
        let Some(why) = replace else {
            return;
        };
        if outcome == Outcome::NotPrimary {
            s.replaced_for_role = Some(now);
        }
        match &self.source {
            Source::Fixed(client) => {
                if let Ok(fresh) =
                    ConnectionManager::new_lazy_with_config(client.clone(), self.config.clone())
                {
                    tracing::info!("replacing the Redis connection: {why}");
                    s.link = Link::Manager(fresh);
                    s.generation += 1;
                }
            }
            Source::Sentinel { asking, url, .. } => {
                use std::sync::atomic::Ordering;
                if asking.swap(true, Ordering::AcqRel) {
                    return;
                }
                tracing::info!("asking Redis Sentinel for the primary of {url}: {why}");
                let single = self.clone();
                tokio::spawn(async move { single.follow_sentinel(timeout, timeout).await });
            }
        }
    }

    /// Ask the sentinels for the primary and connect to it (a
    /// [`Source::Sentinel`] only), within `bound`; the connection waits
    /// `timeout` (the URL's) for each call for its life. A failure leaves
    /// the connection as it is, to be asked again at the next failed call.
    async fn follow_sentinel(self: Arc<Self>, bound: Duration, timeout: Duration) {
        let Source::Sentinel {
            sentinels,
            asking,
            url,
            ..
        } = &self.source
        else {
            return;
        };
        let _asked = Lowered(asking);
        let connect = async {
            let client = sentinels.lock().await.async_get_client().await?;
            client
                .get_multiplexed_async_connection_with_config(&direct_config(timeout))
                .await
        };
        match tokio::time::timeout(bound, connect).await {
            Ok(Ok(connection)) => {
                tracing::info!("{url}: connected to the primary Redis Sentinel names");
                let mut s = self.state();
                s.link = Link::Direct(connection);
                s.failing_since = None;
                s.generation += 1;
            }
            Ok(Err(e)) => tracing::warn!("{url}: no primary from Redis Sentinel yet: {e}"),
            Err(_) => tracing::warn!("{url}: no primary from Redis Sentinel within the timeout"),
        }
    }
}

impl Single {
    /// For a [`Source::Sentinel`] after a call went unanswered or was
    /// answered as by a replica: ask the sentinels now (or wait for the
    /// asking under way), by `deadline`; the new connection waits `timeout`
    /// (the URL's) for each call. Whether the connection is a new one to
    /// send the call on again.
    async fn follow_now(
        self: &Arc<Self>,
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> bool {
        use std::sync::atomic::Ordering;
        let Source::Sentinel { asking, .. } = &self.source else {
            return false;
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        let before = self.state().generation;
        if asking.swap(true, Ordering::AcqRel) {
            while asking.load(Ordering::Acquire) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        } else {
            self.clone().follow_sentinel(left, timeout).await;
        }
        self.state().generation != before
    }
}

/// How a direct connection to a Sentinel-named primary waits.
fn direct_config(timeout: Duration) -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
}

/// Whether a failed call got an answer from Redis (an error reply), as
/// opposed to no answer (refused, dropped, timed out).
fn answered(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
    )
}

/// How a call ended: answered by the primary; not answered; or answered
/// by a server that is no primary any more (`READONLY`: a replica now,
/// after a failover or a `REPLICAOF`; `MASTERDOWN`) — its connection is
/// replaced so it finds the primary again (the address may now lead to
/// it).
fn outcome_of<T>(
    result: &std::result::Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
) -> Outcome {
    match result {
        Ok(Ok(_)) => Outcome::Answered,
        Ok(Err(e)) if matches!(e.code(), Some("READONLY" | "MASTERDOWN")) => Outcome::NotPrimary,
        Ok(Err(e)) if answered(e) => Outcome::Answered,
        _ => Outcome::Unanswered,
    }
}

/// Error codes of Redis answers that may pass by themselves: retrying
/// later may succeed (and the call was refused before it ran).
const TRANSIENT_CODES: &[&str] = &[
    "OOM",
    "LOADING",
    "BUSY",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "MASTERDOWN",
    "READONLY",
    "NOREPLICAS",
    "NOSCRIPT",
    "NOPERM",
    "MISCONF",
    "MOVED",
    "ASK",
    super::native::VERSION_MISMATCH,
];

/// The hint of a call that got no answer: the connection broke.
pub const BROKE: &str = "the connection to Redis broke; it will be re-established";

/// Whether an `unavailable` message (of [`failure`] or a timeout) says the
/// call got no answer, so it may or may not have run. Read from the end
/// of the message, which the store URL (user-given, at its start) cannot
/// reach.
pub fn unanswered(message: &str) -> bool {
    [BROKE, REFUSED_CONNECTION, NO_ANSWER_IN_TIME, NO_HINT]
        .iter()
        .any(|hint| message.ends_with(&format!("({hint})")))
        || message.ends_with(NOT_IN_TIME)
        || message.ends_with(&format!("; {MAYBE_SENT_BEFORE})"))
}

/// The hint of a full Redis Cluster node (whether the write ran is said
/// apart).
const FULL: &str = "Redis is full (maxmemory reached) and refuses writes until memory is freed or maxmemory raised; reads still work";

/// Added to the hint of a Redis Cluster's refusal: redis-rs's cluster
/// client resends a call by itself (after a lost connection, a
/// redirection, `TRYAGAIN`…), and only the last attempt's error reaches us,
/// so an earlier attempt may have run.
const MAYBE_SENT_BEFORE: &str =
    "redis-rs may have sent the call to a node before this answer, so it may or may not have run";

/// The hint of a command this Redis never runs for this user: unknown to
/// it, or refused by its ACL.
pub const NOT_OFFERED: &str =
    "this Redis does not run the command for this user (unknown to it, or refused by its ACL)";

/// The hint of an error Redis answered (a refused command).
pub const REFUSED: &str = "Redis refused the command; check its ACL, loaded modules and log";

const REFUSED_CONNECTION: &str = "is Redis running and reachable at that address?";
const NO_ANSWER_IN_TIME: &str = "Redis did not answer in time; is it overloaded or stopped?";
const NO_HINT: &str = "check Redis's log";
const NOT_IN_TIME: &str = "is it running, and not stopped or overloaded?";

/// The error of a failed call, saying what to check: `unavailable` when
/// Redis could not be reached or refused the call for now (full, loading,
/// failing over, its ACL), `internal` when it answered an error that
/// retrying cannot change (a wrong type, keys in different slots, a
/// script's runtime error: a bug or a foreign key in the namespace).
pub fn failure(url: &RedisUrl, e: &RedisError) -> StateError {
    let unknown_command = e.to_string().contains("unknown command");
    let hint = if e.code() == Some("OOM") {
        "Redis is full (maxmemory reached) and refuses writes until memory is freed or maxmemory raised; nothing of this write was applied, reads still work"
    } else if e.code() == Some("READONLY") {
        "this Redis is a replica now (a failover?); the connection is re-made to find the primary"
    } else if matches!(e.code(), Some("TRYAGAIN" | "MOVED" | "ASK")) {
        "the Redis Cluster's slots are changing hands (a slot moving to another node, or a failover); writes to this owner pass once that ends"
    } else if e.code() == Some("CLUSTERDOWN") {
        "the Redis Cluster is down (a primary failed and no replica has taken over yet, or slots are unassigned); it passes once the cluster is whole again"
    } else if e.code() == Some("LOADING") {
        "Redis is loading its data after a restart; it answers once loaded"
    } else if e.to_string().contains("certificate") {
        "Redis's TLS certificate is not trusted here: give its certificate authority with ?ca_file=PATH in the store URL, or add it to the system's trust store; the certificate must name the address used (for a cluster, each node's address)"
    } else if e.is_connection_refusal() {
        REFUSED_CONNECTION
    } else if e.is_timeout() {
        NO_ANSWER_IN_TIME
    } else if e.is_io_error() || e.is_connection_dropped() {
        BROKE
    } else if e.code() == Some("NOPERM") || unknown_command {
        NOT_OFFERED
    } else if answered(e) {
        REFUSED
    } else {
        NO_HINT
    };
    let transient = !answered(e)
        || unknown_command
        || e.to_string().contains("max number of clients")
        || e.to_string().contains("Function not found")
        || e.code().is_some_and(|c| TRANSIENT_CODES.contains(&c));
    let message = if url.cluster && transient && answered(e) {
        // Not "nothing of this write was applied": see MAYBE_SENT_BEFORE.
        let hint = if e.code() == Some("OOM") { FULL } else { hint };
        format!("redis at {url}: {e} ({hint}; {MAYBE_SENT_BEFORE})")
    } else {
        format!("redis at {url}: {e} ({hint})")
    };
    if transient {
        StateError::Unavailable(message)
    } else {
        StateError::Internal(format!(
            "{message}; this answer does not change on a retry: see Redis's log, and whether another program writes keys under this store's namespace"
        ))
    }
}

fn timed_out(url: &RedisUrl) -> StateError {
    StateError::Unavailable(format!(
        "redis at {url} did not answer within {} ms; {NOT_IN_TIME}",
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
        let certs = tls_certificates(url)?;
        let single = match (&url.sentinel, url.cluster) {
            (Some(target), _) => Some(Source::sentinel(url, target)?),
            (None, true) => None,
            (None, false) => Some(Source::Fixed(client_for(url, &url.nodes[0])?)),
        };
        let connect = async {
            if let Some(source) = single {
                let config = Single::config(url);
                let link = match &source {
                    Source::Fixed(client) => Link::Manager(
                        ConnectionManager::new_with_config(client.clone(), config.clone())
                            .await
                            .map_err(|e| failure(url, &e))?,
                    ),
                    Source::Sentinel { sentinels, .. } => Link::Direct(
                        Source::primary(sentinels, url)
                            .await?
                            .get_multiplexed_async_connection_with_config(&direct_config(
                                url.timeout,
                            ))
                            .await
                            .map_err(|e| failure(url, &e))?,
                    ),
                };
                Ok(Conn::Single(Single::new(source, config, link)))
            } else {
                let retry = ClusterRetry::within(url.timeout);
                let mut builder = ClusterClient::builder(url.nodes.clone())
                    .connection_timeout(url.timeout)
                    .response_timeout(url.timeout)
                    .retries(retry.retries)
                    .min_retry_wait(retry.min_wait_ms)
                    .max_retry_wait(retry.max_wait_ms)
                    .retry_wait_formula(ClusterRetry::FACTOR_MS, 2)
                    .tcp_settings(tcp_settings(url, Default::default()));
                if let Some(certs) = certs {
                    builder = builder.certs(certs);
                }
                let connected = async { builder.build()?.get_async_connection().await };
                Ok(Conn::Cluster(
                    connected.await.map_err(|e| failure(url, &e))?,
                ))
            }
        };
        match tokio::time::timeout(url.timeout, connect).await {
            Ok(result) => result,
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
        if url.cluster || url.sentinel.is_some() {
            return Err(StateError::invalid(format!(
                "{url}: a Redis Cluster or Sentinel store must be opened with Store::connect (async)"
            )));
        }
        let client = client_for(url, &url.nodes[0])?;
        let config = Single::config(url);
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(|e| failure(url, &e))?;
        Ok(Conn::Single(Single::new(
            Source::Fixed(client),
            config,
            Link::Manager(manager),
        )))
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

    /// Whether the server has the command `name` (`COMMAND INFO`); in a
    /// cluster, whether every primary has it.
    pub async fn has_command(&self, url: &RedisUrl, name: &str, deadline: Instant) -> Result<bool> {
        let mut info = redis::cmd("COMMAND");
        info.arg("INFO").arg(name);
        let answers = self.on_each_primary_by(url, &info, deadline).await?;
        let mut has = !answers.is_empty();
        for (_, answer) in answers {
            has &= match answer? {
                Value::Array(items) => items.first().is_some_and(|i| !matches!(i, Value::Nil)),
                _ => false,
            };
        }
        Ok(has)
    }

    /// Run `cmd` on the server, or on every primary of a cluster: each
    /// node's address and answer (a node's error answer is its own), done
    /// by `deadline`. Settings and loaded modules are per node.
    pub async fn on_each_primary_by(
        &self,
        url: &RedisUrl,
        cmd: &redis::Cmd,
        deadline: Instant,
    ) -> Result<Vec<(String, Result<Value>)>> {
        match self {
            Conn::Single(_) => Ok(vec![(
                url.display.clone(),
                self.cmd_by(url, cmd, deadline).await,
            )]),
            Conn::Cluster(c) => {
                use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
                let mut c = c.clone();
                let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                let answer = settle(
                    url,
                    tokio::time::timeout_at(
                        tokio::time::Instant::from_std(deadline),
                        c.route_command(cmd.clone(), all),
                    )
                    .await,
                )?;
                let Value::Map(pairs) = answer else {
                    return Err(super::script::bad_reply("one answer per cluster node"));
                };
                Ok(pairs
                    .into_iter()
                    .map(|(node, v)| {
                        let node = match node {
                            Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
                            other => format!("{other:?}"),
                        };
                        let v = match v {
                            Value::ServerError(e) => Err(failure(url, &e.into())),
                            v => Ok(v),
                        };
                        (node, v)
                    })
                    .collect())
            }
        }
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
                self.load_library_by(url, keys.first().copied(), deadline)
                    .await?;
                self.cmd_by(url, &fcall, deadline).await
            }
            other => other,
        }
    }

    /// `FUNCTION LOAD REPLACE` the engine's library, done by `deadline`: in
    /// a cluster on the primary that serves `key` (the node that lacked it:
    /// a new node, a restarted one), so a failover elsewhere does not stop
    /// it.
    async fn load_library_by(
        &self,
        url: &RedisUrl,
        key: Option<&str>,
        deadline: Instant,
    ) -> Result<()> {
        let mut load = redis::cmd("FUNCTION");
        load.arg("LOAD").arg("REPLACE").arg(&LIBRARY.source);
        let loaded = match (self, key) {
            (Conn::Cluster(c), Some(key)) => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                let mut c = c.clone();
                let node = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::with_key(key, SlotAddr::Master),
                ));
                settle(
                    url,
                    tokio::time::timeout_at(
                        tokio::time::Instant::from_std(deadline),
                        c.route_command(load, node),
                    )
                    .await,
                )
            }
            _ => self.cmd_by(url, &load, deadline).await,
        };
        loaded.map(|_| ()).map_err(|e| match e {
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
                let mut link = single.link();
                let mut result =
                    tokio::time::timeout_at(deadline, cmd.query_async(&mut link)).await;
                // A direct connection to the primary Redis Sentinel names
                // does not heal by itself: the sentinels are asked now and
                // the call goes once more where they point, so the first
                // call after a failover (or after the connection died while
                // idle) does not fail. Sending a call twice is safe: a write
                // carries its request id (its kept answer comes back); the
                // rest are reads or do the same again.
                if outcome_of(&result) != Outcome::Answered
                    && single.follow_now(deadline, url.timeout).await
                {
                    let mut link = single.link();
                    result = tokio::time::timeout_at(deadline, cmd.query_async(&mut link)).await;
                }
                single.outcome(outcome_of(&result), url.timeout);
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
        Ok(Err(e)) => Err(failure(url, &e)),
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
    // Every primary of a cluster has its own settings: each is checked.
    let get = |name: &'static str| async move {
        let mut c = redis::cmd("CONFIG");
        c.arg("GET").arg(name);
        conn.on_each_primary_by(url, &c, deadline(url)).await
    };
    let setting = |answers: &[(String, Result<Value>)], node: &str| {
        answers
            .iter()
            .find(|(n, _)| n == node)
            .and_then(|(_, v)| v.as_ref().ok())
            .and_then(config_value)
    };
    let policies = get("maxmemory-policy").await?;
    let (maxmemory, aof, fsync) = (
        get("maxmemory").await.unwrap_or_default(),
        get("appendonly").await.unwrap_or_default(),
        get("appendfsync").await.unwrap_or_default(),
    );
    for (node, answer) in &policies {
        let at = if url.cluster {
            format!("{url} (node {node})")
        } else {
            url.to_string()
        };
        let policy = match answer {
            Ok(v) => config_value(v),
            // Redis answered, refusing the command (its ACL, or a renamed
            // `CONFIG`): warn. Not answering, or not reachable, is an error.
            Err(StateError::Unavailable(m) | StateError::Internal(m))
                if m.contains(NOT_OFFERED) || m.contains(REFUSED) =>
            {
                tracing::warn!(redis = %at, "cannot read Redis's settings (CONFIG GET is not allowed?): make sure maxmemory-policy is noeviction and appendfsync is always");
                continue;
            }
            Err(e) => return Err(e.clone()),
        };
        let maxmemory = setting(&maxmemory, node).unwrap_or_default();
        if let Some(p) = &policy
            && p != "noeviction"
        {
            if maxmemory != "0" && !maxmemory.is_empty() {
                return Err(StateError::Unavailable(format!(
                    "redis at {at} has maxmemory {maxmemory} with maxmemory-policy {p}: it would evict state keys when full and lose data; set `CONFIG SET maxmemory-policy noeviction` (and in redis.conf)"
                )));
            }
            tracing::warn!(redis = %at, policy = %p, "maxmemory-policy could evict keys once a maxmemory is set; use noeviction");
        }
        match (
            setting(&aof, node).as_deref(),
            setting(&fsync, node).as_deref(),
        ) {
            (Some("yes"), Some("always")) => {}
            (Some("yes"), Some(f)) => tracing::warn!(
                redis = %at, appendfsync = f,
                "acknowledged writes of the last second can be lost if Redis crashes; use appendfsync always for durability"
            ),
            _ => tracing::warn!(
                redis = %at,
                "Redis has no append-only file: acknowledged writes can be lost if Redis crashes; use appendonly yes and appendfsync always for durability"
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_retries_fit_in_half_the_timeout() {
        assert_eq!(ClusterRetry::within(Duration::from_millis(1)).retries, 2);
        for ms in [100, 300, 500, 1_000, 5_000, 60_000] {
            let r = ClusterRetry::within(Duration::from_millis(ms));
            // redis-rs's n-th retry waits below min(max, FACTOR × 2ⁿ).
            let waits: u64 = (1..=r.retries)
                .map(|n| (ClusterRetry::FACTOR_MS << n).min(r.max_wait_ms))
                .sum();
            assert!(waits <= ms / 2, "{ms} ms: {waits} ms of waits");
            assert!(r.min_wait_ms < r.max_wait_ms && r.retries <= 16, "{ms} ms");
        }
        assert_eq!(ClusterRetry::within(Duration::from_millis(500)).retries, 5);
        assert_eq!(
            ClusterRetry::within(Duration::from_millis(60_000)).retries,
            11
        );
    }

    #[test]
    fn only_answers_a_retry_may_change_are_unavailable() {
        use redis::{ErrorKind, RedisError, ServerErrorKind};
        let url = RedisUrl::parse("redis://broken-host:1").unwrap();
        let server = |kind, code: &str| {
            RedisError::from((ErrorKind::Server(kind), "refused", code.to_string()))
        };
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let e = failure(&url, &io);
        assert!(
            matches!(&e, StateError::Unavailable(m) if unanswered(m)),
            "{e:?}"
        );
        // The URL holds "broken", but an answered error is not "broke";
        // a Lua runtime error no retry changes is internal.
        let e = failure(&url, &server(ServerErrorKind::ResponseError, "ERR"));
        assert!(
            matches!(&e, StateError::Internal(m) if !unanswered(m)),
            "{e:?}"
        );
        let e = failure(&url, &server(ServerErrorKind::BusyLoading, "LOADING"));
        assert!(
            matches!(&e, StateError::Unavailable(m) if !unanswered(m)),
            "{e:?}"
        );
        let e = failure(&url, &server(ServerErrorKind::Moved, "MOVED"));
        assert!(matches!(&e, StateError::Unavailable(_)), "{e:?}");
        let e = failure(&url, &server(ServerErrorKind::CrossSlot, "CROSSSLOT"));
        assert!(matches!(&e, StateError::Internal(_)), "{e:?}");
        let e = failure(&url, &server(ServerErrorKind::ReadOnly, "READONLY"));
        assert!(
            matches!(&e, StateError::Unavailable(m) if m.contains("a replica now")),
            "{e:?}"
        );
        assert!(unanswered(
            &timed_out(&url)
                .to_string()
                .replacen("unavailable: ", "", 1)
                .replace("; retry later", "")
        ));
        // Through a cluster, redis-rs may have sent the call before the
        // refusal that reaches us: it may have run.
        let cluster = RedisUrl::parse("redis+cluster://a:1,b:2").unwrap();
        for (kind, code) in [
            (ServerErrorKind::TryAgain, "TRYAGAIN"),
            (ServerErrorKind::ClusterDown, "CLUSTERDOWN"),
            (ServerErrorKind::Moved, "MOVED"),
        ] {
            let e = failure(&cluster, &server(kind, code));
            assert!(
                matches!(&e, StateError::Unavailable(m) if unanswered(m) && !m.contains("nothing of this write")),
                "{e:?}"
            );
        }
    }

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
        // An `@` in the query is the query's; a password's is encoded.
        let u = RedisUrl::parse("redis://h:6379?namespace=team@prod&timeout_ms=500").unwrap();
        assert_eq!(u.nodes, ["redis://h:6379"]);
        assert_eq!(
            (u.namespace.as_str(), u.timeout),
            ("team@prod", Duration::from_millis(500))
        );
        let u = RedisUrl::parse("redis://:p%3Fw%40rd@h:1/2?namespace=a@b").unwrap();
        assert_eq!(u.nodes, ["redis://:p%3Fw%40rd@h:1/2"]);
        assert_eq!(u.namespace, "a@b");
        // A raw `?` in a password: refused without echoing what follows it.
        let e = RedisUrl::parse("redis://:pa?ss@h:1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("percent-encoded") && !e.contains("ss@h"), "{e}");
        let e = RedisUrl::parse("redis://:pa?ss=x@h:1")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("percent-encoded") && !e.contains("\"ss\""),
            "{e}"
        );
        // Redis Sentinel: the nodes are the sentinels (no credentials);
        // the primary's name (percent-decoded), password and database are
        // for the primary.
        let u =
            RedisUrl::parse("redis+sentinel://:p%40w@s1:26379,s2:26380/my%2Dprimary/2?namespace=n")
                .unwrap();
        assert_eq!(u.nodes, ["redis://s1:26379", "redis://s2:26380"]);
        let t = u.sentinel.as_ref().unwrap();
        assert_eq!(
            (t.master.as_str(), t.db, t.credentials.as_str()),
            ("my-primary", 2, ":p%40w@")
        );
        assert!(!u.cluster);
        assert_eq!(
            u.display,
            "redis+sentinel://***@s1:26379,s2:26380/my%2Dprimary/2?namespace=n"
        );
        let u = RedisUrl::parse(
            "redis+sentinel://s1:1/m?sentinel_password=top%26secret&namespace=x&sentinel_password=again",
        )
        .unwrap();
        assert_eq!(
            u.sentinel.as_ref().unwrap().sentinel_password.as_deref(),
            Some("again")
        );
        assert_eq!(
            u.display,
            "redis+sentinel://s1:1/m?sentinel_password=***&namespace=x&sentinel_password=***"
        );
        assert!(!hide_password("redis+sentinel://s1:1/m?sentinel_password=ab@cd").contains("cd"));
        // A raw `#` is part of the value; a percent-encoded name is the
        // parameter it decodes to; an unknown parameter (a password written
        // as one) is refused without its value.
        let u = RedisUrl::parse("redis+sentinel://s:1/m?sentinel_password=ab#cd").unwrap();
        assert_eq!(
            u.sentinel.as_ref().unwrap().sentinel_password.as_deref(),
            Some("ab#cd")
        );
        assert_eq!(u.display, "redis+sentinel://s:1/m?sentinel_password=***");
        let u = RedisUrl::parse("redis+sentinel://s:1/m?sentinel%5Fpassword=hunter2").unwrap();
        assert!(!u.to_string().contains("hunter2"), "{u}");
        for url in [
            "redis://h:6379?password=hunter2",
            "redis://h:6379?namespace=n&pass%77ord=hunter2&timeout_ms=9",
        ] {
            let e = RedisUrl::parse(url).unwrap_err().to_string();
            assert!(
                !e.contains("hunter2") && e.contains("unknown parameter"),
                "{e}"
            );
        }
        assert_eq!(
            hide_password("redis://h:1?namespace=n&timeout_ms=9&module=off&password=x"),
            "redis://h:1?namespace=n&timeout_ms=9&module=off&password=***"
        );
        for bad in [
            "redis://h?sentinel_password=x",
            "redis+sentinel://s1:1/m?sentinel_password=",
        ] {
            let e = RedisUrl::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("sentinel_password") && !e.contains("=x"),
                "{bad}: {e}"
            );
        }
        let u = RedisUrl::parse("rediss+sentinel://s1:26379/m").unwrap();
        assert_eq!(u.nodes, ["rediss://s1:26379"]);
        let u = RedisUrl::parse("redis+sentinel://s1,[::1],[::1]:5/m").unwrap();
        assert_eq!(
            u.nodes,
            ["redis://s1:26379", "redis://[::1]:26379", "redis://[::1]:5"]
        );
        let e = RedisUrl::parse("redis+sentinel://user:123/abc@s1:26379/0")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("abc") && !e.contains("123"), "{e}");
        assert_eq!(u.sentinel.as_ref().unwrap().db, 0);
        assert!(RedisUrl::parse("redis://h").unwrap().sentinel.is_none());
        assert_eq!(
            RedisUrl::parse("redis://h?timeout_ms=60000")
                .unwrap()
                .timeout,
            Duration::from_secs(60)
        );
        for bad in [
            "localhost:6379",
            "http://x",
            "redis://",
            "redis://h?timeout_ms=0",
            "redis://h?namespace={x}",
            "redis://h?colour=blue",
            "redis://h?timeout_ms=60001",
            "redis+cluster://a:1,b:2/3",
            "redis+cluster://a:1/3,b:2",
            "redis+sentinel://a:1,b:2",
            "redis+sentinel://a:1/",
            "redis+sentinel://a:1/m/x",
            "redis+sentinel://a:1/m/-1",
            "redis+sentinel:///m",
            "redis+sentinel://user:123/abc@s1:26379/0",
            "redis+sentinel://s1:1/m#frag",
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
