//! A real `redis-server` (Debian's package) for the tests: started on a free
//! loopback port with no persistence, killed when the test process exits
//! (PR_SET_PDEATHSIG), shared by all tests of a binary; each test uses its
//! own key namespace.

#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running server.
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
    /// Its working directory (`--dir`, unless the caller gives one): what
    /// it writes — a replica's synced RDB, say — lands here, not in the
    /// test's working directory (the repository).
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Start `redis-server` on a free port with extra `--name value`
    /// arguments.
    pub fn start(extra: &[&str]) -> RedisServer {
        RedisServer::spawn_anywhere(Port::Free, &[], extra).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Start `redis-server` on `port`; an error if it exits at start (the
    /// port is taken) or does not answer within 20 s.
    pub fn try_start_on(port: u16, extra: &[&str]) -> Result<RedisServer, String> {
        RedisServer::spawn(port, &[], extra)
    }

    /// Start `redis-server` on `port`.
    pub fn start_on(port: u16, extra: &[&str]) -> RedisServer {
        RedisServer::spawn_anywhere(Port::At(port), &[], extra).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Start it on a port of the `port` kind. A port found free may be
    /// taken before the server binds it (by another test's connection, or
    /// a cluster node's bus port, the port + 10000, may be in use): the
    /// server then exits at once, and a port chosen here is chosen anew,
    /// up to five times.
    fn spawn_anywhere(port: Port, first: &[&str], extra: &[&str]) -> Result<RedisServer, String> {
        let mut tries = 0;
        loop {
            tries += 1;
            match RedisServer::spawn(port.pick(), first, extra) {
                Err(e) if tries < 5 && !matches!(port, Port::At(_)) => {
                    eprintln!("{e}; trying another port");
                }
                done => return done,
            }
        }
    }

    fn spawn(port: u16, first: &[&str], extra: &[&str]) -> Result<RedisServer, String> {
        let dir = tempfile::tempdir().expect("a directory for redis-server");
        let mut cmd = Command::new("redis-server");
        cmd.args(first)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            // A replica's first sync starts at once (Redis 7.0 waits 5 s
            // for more replicas by default, which ate the tests' waits).
            .args(if first.is_empty() {
                &["--repl-diskless-sync-delay", "0"][..]
            } else {
                &[][..]
            })
            .args([
                "--dir",
                dir.path().to_str().expect("a UTF-8 temporary path"),
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl in the child before exec only asks the kernel to
        // kill it when the spawning thread dies; no memory is touched.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        let mut server = RedisServer {
            port,
            child,
            _dir: dir,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Wait until it answers; an error if it exits first (its port was
    /// taken) or is not up within 20 s.
    fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "redis-server on port {} exited at start ({status})",
                    self.port
                ));
            }
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                if s.write_all(b"PING\r\n").is_ok() {
                    let mut buf = [0u8; 7];
                    // A server with a password answers too: not yet.
                    if s.read_exact(&mut buf).is_ok()
                        && (&buf == b"+PONG\r\n" || &buf == b"-NOAUTH")
                    {
                        return Ok(());
                    }
                }
            }
            if started.elapsed() > Duration::from_secs(20) {
                return Err(format!("redis-server did not start on port {}", self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A store URL on this server with a fresh namespace.
    pub fn url(&self) -> String {
        format!(
            "redis://127.0.0.1:{}?namespace={}",
            self.port,
            fresh_namespace()
        )
    }

    /// The process id (for SIGSTOP / SIGKILL in fault tests).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Ask `redis-cli` `args` of the server at `port` until its answer holds
/// `needle` (at most 30 s).
pub fn until_it_says(port: u16, args: &[&str], needle: &str) {
    let started = Instant::now();
    loop {
        let answer = cli(port, args);
        if answer.contains(needle) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "127.0.0.1:{port} {args:?} did not say {needle:?} within 30 s: {answer}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until the replica at `port` has synced with its primary.
pub fn synced(port: u16) {
    until_it_says(port, &["info", "replication"], "master_link_status:up");
}

/// A loopback port free now, for a cluster node: Redis refuses ports above
/// 55535 in a cluster (its bus listens on the port + 10000), and the
/// kernel hands out ports up to 60999. The bus port must be free too.
fn cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port <= 55535 && std::net::TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

/// Which port a server is started on.
#[derive(Clone, Copy)]
enum Port {
    /// This one (a restart keeps its address): never chosen anew.
    At(u16),
    /// Any free port.
    Free,
    /// A free port fit for a cluster node ([`cluster_port`]).
    Cluster,
}

impl Port {
    fn pick(self) -> u16 {
        match self {
            Port::At(port) => port,
            Port::Free => free_port(),
            Port::Cluster => cluster_port(),
        }
    }
}

/// Wait until every replica of the primary at `port` has received all it
/// has written (`WAIT` would not do: it counts only its own connection's
/// writes, and a fresh `redis-cli` has made none).
pub fn wait_replicated(port: u16) {
    let started = Instant::now();
    loop {
        // `master_repl_offset:N`, and per replica
        // `slave0:ip=…,port=…,state=online,offset=M,lag=0`.
        let info = cli(port, &["info", "replication"]);
        let written: Option<u64> = info
            .lines()
            .find_map(|l| l.strip_prefix("master_repl_offset:")?.trim().parse().ok());
        let replicas: Vec<u64> = info
            .lines()
            .filter(|l| l.starts_with("slave"))
            .filter_map(|l| {
                l.split(',')
                    .find_map(|kv| kv.strip_prefix("offset=")?.trim().parse().ok())
            })
            .collect();
        if let Some(written) = written
            && !replicas.is_empty()
            && replicas.iter().all(|&r| r >= written)
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the replicas of 127.0.0.1:{port} did not catch up: {info}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port free now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .unwrap()
        .port()
}

/// A namespace no other test uses.
pub fn fresh_namespace() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A primary, its replica, and one Redis Sentinel monitoring them under
/// the name `primary` (quorum 1; the primary is judged down after 1 s).
/// The sentinel has a password of its own: [`RedisSentinel::PASSWORD`].
pub struct RedisSentinel {
    /// The primary as started (a failover may have changed roles since).
    pub primary: RedisServer,
    /// Its replica.
    pub replica: RedisServer,
    /// The sentinel.
    pub sentinel: RedisServer,
    _dir: tempfile::TempDir,
}

impl RedisSentinel {
    /// The sentinel's password (its clients' `AUTH`).
    pub const PASSWORD: &str = "sentinel-secret";

    /// Start all three; waits until the sentinel knows the replica.
    pub fn start() -> RedisSentinel {
        let primary = start_detached(&[]);
        let replica = start_detached(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
        synced(replica.port);
        let dir = tempfile::tempdir().expect("temp dir");
        // The sentinel rewrites its configuration file: it must be its own.
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "sentinel monitor primary 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds primary 1000\n\
                 sentinel failover-timeout primary 5000\n\
                 requirepass {}\n",
                primary.port,
                RedisSentinel::PASSWORD
            ),
        )
        .expect("write sentinel.conf");
        let sentinel = start_detached_first(
            &[conf.to_str().expect("a UTF-8 temporary path"), "--sentinel"],
            &[],
        );
        let args = [
            "-a",
            RedisSentinel::PASSWORD,
            "--no-auth-warning",
            "sentinel",
            "replicas",
            "primary",
        ];
        until_it_says(sentinel.port, &args, &replica.port.to_string());
        RedisSentinel {
            primary,
            replica,
            sentinel,
            _dir: dir,
        }
    }

    /// A store URL through the sentinel, with a fresh namespace.
    pub fn url(&self) -> String {
        format!(
            "redis+sentinel://127.0.0.1:{}/primary?namespace={}&sentinel_password={}",
            self.sentinel.port,
            fresh_namespace(),
            RedisSentinel::PASSWORD
        )
    }
}

/// Start a server from a thread that lives as long as the process: the
/// kernel's parent-death signal follows the thread that spawned the child,
/// so a server started from a short-lived test thread would die with it.
pub fn start_detached(extra: &[&str]) -> RedisServer {
    start_detached_with(Port::Free, &[], extra)
}

/// [`start_detached`] on a given port (a restart keeps the address).
pub fn start_detached_on(port: u16, extra: &[&str]) -> RedisServer {
    start_detached_with(Port::At(port), &[], extra)
}

/// [`start_detached`] with `first` before every other argument (a
/// configuration file must come first).
pub fn start_detached_first(first: &[&str], extra: &[&str]) -> RedisServer {
    start_detached_with(Port::Free, first, extra)
}

fn start_detached_with(port: Port, first: &[&str], extra: &[&str]) -> RedisServer {
    let first: Vec<String> = first.iter().map(|s| s.to_string()).collect();
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let first: Vec<&str> = first.iter().map(String::as_str).collect();
        let args: Vec<&str> = extra.iter().map(String::as_str).collect();
        let started = RedisServer::spawn_anywhere(port, &first, &args);
        let up = started.is_ok();
        let _ = tx.send(started);
        // The server lives as long as this thread.
        if up {
            loop {
                std::thread::park();
            }
        }
    });
    rx.recv()
        .expect("the thread starting redis-server answers")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The server shared by the tests of this binary.
pub fn shared() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| start_detached(&[]))
}

/// wasm-state's Redis module (`redis-module/`), built once by cargo (which
/// says where it put it); optimised when the caller is (benchmarks).
/// `WASM_STATE_REDIS_MODULE` names a module built already instead.
pub fn module_path() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Ok(path) = std::env::var("WASM_STATE_REDIS_MODULE")
            && !path.is_empty()
        {
            return path;
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let mut cargo = Command::new(env!("CARGO"));
        // The compiler of the toolchain whose cargo this is. Run outside
        // cargo (a bench executable started by a script), rustup's `rustc`
        // would pick a toolchain by the directory it compiles in, and a
        // dependency's own `rust-toolchain.toml` (redis-module pins one)
        // names one that need not be installed.
        let rustc = std::path::Path::new(env!("CARGO")).with_file_name("rustc");
        if std::env::var_os("RUSTC").is_none() && rustc.is_file() {
            cargo.env("RUSTC", rustc);
        }
        let out = cargo
            .current_dir(root)
            .args([
                "build",
                "-q",
                "-p",
                "wasm-state-redis-module",
                "--message-format=json",
            ])
            .args(if cfg!(debug_assertions) {
                &[][..]
            } else {
                &["--release"][..]
            })
            .output()
            .expect("run cargo build");
        assert!(
            out.status.success(),
            "cargo build of the Redis module failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact")
            .flat_map(|m| {
                m["filenames"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|f| f.as_str().map(str::to_owned))
            })
            .find(|f| f.ends_with("libwasm_state_redis.so"))
            .expect("cargo reported the module's .so")
    })
}

/// A server shared by the tests of this binary, with wasm-state's Redis
/// module loaded.
pub fn shared_with_module() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| start_detached(&["--loadmodule", module_path()]))
}

/// Ask `redis-cli` something; its stdout.
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli must be installed (apt-get install redis-tools)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A Redis Cluster of `n` primaries on loopback (no persistence), in a
/// temporary directory; with [`RedisCluster::start_replicated`] each has a
/// replica too.
pub struct RedisCluster {
    /// The primaries (as created: a failover may have changed roles since).
    pub nodes: Vec<RedisServer>,
    /// The replicas, one per primary, if any.
    pub replicas: Vec<RedisServer>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    /// Start the nodes and create the cluster; waits until it is ready.
    pub fn start(n: usize) -> RedisCluster {
        RedisCluster::start_with(n, &[])
    }

    /// The same, each node started with `extra` arguments too.
    pub fn start_with(n: usize, extra: &[&str]) -> RedisCluster {
        RedisCluster::create(n, 0, "2000", extra)
    }

    /// `n` primaries with a replica each; a primary's failure is noticed
    /// after one second (`cluster-node-timeout`).
    pub fn start_replicated(n: usize) -> RedisCluster {
        RedisCluster::create(n, 1, "1000", &[])
    }

    fn create(n: usize, per_primary: usize, node_timeout_ms: &str, extra: &[&str]) -> RedisCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let all: Vec<RedisServer> = (0..n * (1 + per_primary))
            .map(|i| {
                let conf = dir.path().join(format!("nodes-{i}.conf"));
                let mut args = vec![
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    conf.to_str().unwrap(),
                    "--cluster-node-timeout",
                    node_timeout_ms,
                    "--dir",
                    dir.path().to_str().unwrap(),
                ];
                args.extend(extra);
                start_detached_with(Port::Cluster, &[], &args)
            })
            .collect();
        let addrs: Vec<String> = all
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        let replicas_arg = per_primary.to_string();
        args.extend(["--cluster-replicas", &replicas_arg, "--cluster-yes"]);
        let out = Command::new("redis-cli")
            .args(&args)
            .output()
            .expect("redis-cli must be installed");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for node in &all {
            until_it_says(node.port, &["cluster", "info"], "cluster_state:ok");
        }
        // redis-cli picks the roles; ask each node which it got, and wait
        // until every replica has synced with its primary.
        let (replicas, nodes): (Vec<RedisServer>, Vec<RedisServer>) = all
            .into_iter()
            .partition(|s| cli(s.port, &["role"]).starts_with("slave"));
        for r in &replicas {
            synced(r.port);
        }
        assert_eq!((nodes.len(), replicas.len()), (n, n * per_primary));
        RedisCluster {
            nodes,
            replicas,
            _dir: dir,
        }
    }

    /// A store URL on the cluster with a fresh namespace.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!(
            "redis+cluster://{}?namespace={}",
            hosts.join(","),
            fresh_namespace()
        )
    }
}
