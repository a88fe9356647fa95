//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Run WebAssembly components with durable state (key-value, maps, lists,
/// counters, TTL, etags, transactions), and inspect that state.
#[derive(Debug, Parser)]
#[command(name = "wasm-state", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every command.
#[derive(Debug, Args)]
pub struct Global {
    /// Directory holding the state database (created if missing; default
    /// the manifest's `store.data`, else .wasm-state). A server running on
    /// it answers every command through its admin socket (DATA/admin.sock).
    #[arg(long, global = true, env = "WASM_STATE_DATA")]
    pub data: Option<PathBuf>,
    /// The manifest to read (default: wasm-state.toml in the current
    /// directory, if there is one).
    #[arg(long, global = true, env = "WASM_STATE_MANIFEST", value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Seconds to wait for the data dir while another command holds it.
    #[arg(
        long,
        global = true,
        env = "WASM_STATE_BUSY_TIMEOUT",
        default_value_t = 30,
        value_name = "SECONDS"
    )]
    pub busy_timeout: u64,
    /// Keep the state in Redis instead of the data dir's redb file:
    /// redis://HOST:PORT[/DB], rediss://… (TLS),
    /// redis+cluster://HOST:PORT,HOST:PORT… (Redis Cluster) or
    /// redis+sentinel://HOST:PORT,…/MASTER[/DB] (Redis Sentinel); optional
    /// parameters ?namespace=NAME&timeout_ms=N. Several hosts may share one.
    #[arg(long, global = true, env = "WASM_STATE_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// Account that instances belong to (default: the manifest's, else
    /// "default").
    #[arg(long, global = true, env = "WASM_STATE_ACCOUNT")]
    pub account: Option<String>,
    /// Map a wasi:keyvalue bucket name to a scope, as
    /// NAME=instance[:PREFIX] or NAME=account[:PREFIX] (repeatable). Built
    /// in: "" and "default" (instance), "account", "session:<id>".
    #[arg(long = "kv-bucket", global = true, value_name = "NAME=SCOPE[:PREFIX]")]
    pub kv_buckets: Vec<String>,
    /// What the watcher deployed as instance NAME (a component exporting
    /// wasi:keyvalue/watcher) watches: a comma-separated list of instance,
    /// sessions, account (repeatable; default: instance).
    #[arg(long = "watch", global = true, value_name = "NAME=SCOPES")]
    pub watch: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a wasi:cli command component as an instance, with state.
    Run(RunArgs),
    /// Serve wasi:http components (each a named instance) over HTTP.
    Serve(ServeArgs),
    /// Read, write and list the state of a scope.
    #[command(subcommand)]
    State(StateCmd),
    /// List or destroy instances.
    #[command(subcommand)]
    Instances(InstancesCmd),
    /// List or end sessions of an instance.
    #[command(subcommand)]
    Sessions(SessionsCmd),
    /// Scaffold a new guest crate (http, command or plugin) with a manifest.
    New(crate::scaffold::NewArgs),
    /// Call an exported function of a component once, as an instance.
    Call(CallArgs),
    /// Deploy, list or undeploy the apps of a running server (no restart).
    #[command(subcommand)]
    Apps(AppsCmd),
    /// Write state as JSON lines to stdout: every key with its type,
    /// content and expiry, and sessions with theirs.
    Export(ExportArgs),
    /// Read an export (stdin or FILE) into the state: checked whole first
    /// (a bad line imports nothing), then applied key by key; running it
    /// again resumes an interrupted import.
    Import {
        /// The export file (default: stdin).
        file: Option<PathBuf>,
    },
}

/// `export` arguments.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// An instance, with its sessions.
    #[arg(long, short, conflicts_with = "all")]
    pub instance: Option<String>,
    /// Every instance with its sessions, and their accounts' shared state.
    /// (`--account NAME` alone exports that account's shared state.)
    #[arg(long)]
    pub all: bool,
}

/// `call` arguments.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// The component (.wasm).
    pub component: PathBuf,
    /// The export: `name` or `interface#name`.
    pub function: String,
    /// Its arguments: strings as they are, numbers and booleans as text,
    /// other types as JSON.
    pub args: Vec<String>,
    /// Instance name (default: the file name without extension).
    #[arg(long, short)]
    pub instance: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AppsCmd {
    /// Deploy (or replace) an app on the running server: new requests go to
    /// the new component, requests in flight finish on the old one.
    Deploy {
        /// The app (instance) name.
        name: String,
        /// The component (.wasm), a wasi:http handler.
        component: PathBuf,
        /// The path prefix it answers (default: where it answered, else /NAME).
        #[arg(long)]
        route: Option<String>,
    },
    /// List the apps the running server serves, with their routes.
    List,
    /// Stop serving an app (its state stays).
    Undeploy {
        /// The app name.
        name: String,
    },
}

/// `run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The component (.wasm) to run.
    pub component: PathBuf,
    /// Instance name (default: the file name without extension).
    #[arg(long, short)]
    pub instance: Option<String>,
    /// Hand this session id to the guest (it reads it as WASM_STATE_SESSION;
    /// ids may start with `-`).
    #[arg(long, short, allow_hyphen_values = true)]
    pub session: Option<String>,
    /// Seconds the guest may run before it is stopped.
    #[arg(long, default_value_t = 30)]
    pub deadline: u64,
    /// MiB of memory the guest may use [default: 256; through a running
    /// server, the server's limit, which is also the most it may ask for].
    #[arg(long)]
    pub memory: Option<usize>,
    /// Do not read stdin: the guest reads end-of-file (as `ssh -n`). Through
    /// a running server, a stdin that is not a terminal is otherwise read
    /// to its end (16 MiB at most) before the guest starts, so one left
    /// open would wait for ever.
    #[arg(long, short = 'n')]
    pub no_stdin: bool,
    /// Arguments passed to the guest (after `--`).
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// `serve` arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Components to serve, as `[NAME=]PATH`: each is deployed as instance
    /// NAME (default: the file name) and mounted at `/NAME`; a single
    /// component is also mounted at `/`. Without any, the manifest's apps
    /// are served; with neither, the server holds the data dir for the CLI
    /// and waits for `wasm-state apps deploy`.
    #[arg(value_name = "[NAME=]PATH")]
    pub apps: Vec<String>,
    /// Address to serve apps on (default: the manifest's, else
    /// 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Serve /metrics (Prometheus) and the state explorer on this loopback
    /// address (a port alone means 127.0.0.1:PORT); off unless given.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub admin_listen: Option<std::net::SocketAddr>,
    /// Seconds a request's handler may run before it is stopped (504)
    /// [default: 10].
    #[arg(long)]
    pub deadline: Option<u64>,
    /// MiB of memory a request's handler may use [default: 64].
    #[arg(long)]
    pub memory: Option<usize>,
    /// Most requests handled at once (pooling allocator slots) [default: 256].
    #[arg(long)]
    pub max_instances: Option<u32>,
    /// Seconds to let in-flight requests finish on SIGINT/SIGTERM [default: 30].
    #[arg(long)]
    pub grace: Option<u64>,
    #[command(flatten)]
    pub dapr: DaprArgs,
}

/// The Dapr-compatible state API of `serve`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Dapr-compatible state API")]
pub struct DaprArgs {
    /// Answer Dapr's state API (v1.0) on this address (a port alone means
    /// 127.0.0.1:PORT); off unless given.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub dapr_listen: Option<std::net::SocketAddr>,
    /// Require this token in the `dapr-api-token` header of every API
    /// request but the health checks.
    #[arg(long, env = "DAPR_API_TOKEN", hide_env_values = true)]
    pub dapr_api_token: Option<String>,
    /// The app id: prefixes keys of stores with `keyPrefix: appid` (the
    /// default) as `APPID||key`, and is reported by /v1.0/metadata.
    #[arg(long, env = "APP_ID")]
    pub app_id: Option<String>,
    /// A directory of Dapr component YAML files (as `dapr run
    /// --resources-path`) defining the state stores; without it there is one
    /// store, `statestore`, on the account's shared state.
    #[arg(long, value_name = "DIR", alias = "resources-path")]
    pub components: Option<PathBuf>,
    /// Largest request body the API accepts, in KiB [default: 4096].
    #[arg(long, value_name = "KIB")]
    pub dapr_max_body: Option<usize>,
}

/// `HOST:PORT`, or a port alone for loopback.
fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| {
        format!("{s:?} is not an address; write HOST:PORT like 127.0.0.1:3500, or a port alone")
    })
}

/// Which scope a state command reads or writes.
#[derive(Debug, Args)]
pub struct ScopeArgs {
    /// Instance whose state (or session state, with --session) to use.
    #[arg(long, short)]
    pub instance: Option<String>,
    /// A session of --instance (ids may start with `-`).
    #[arg(long, short, requires = "instance", allow_hyphen_values = true)]
    pub session: Option<String>,
    /// Use the account's shared state (see --account) instead of an instance's.
    #[arg(long = "shared", conflicts_with_all = ["instance", "session"])]
    pub shared: bool,
}

#[derive(Debug, Subcommand)]
pub enum StateCmd {
    /// Print a value.
    Get {
        /// The key (one starting with `-` goes after `--`).
        key: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Set a value (stored as the bytes given; the SDK reads it as JSON).
    Set {
        /// The key (one starting with `-` goes after `--`).
        key: String,
        /// The value, e.g. '{"name":"Ada"}', 42 or -42.
        #[arg(allow_negative_numbers = true)]
        value: String,
        /// Expire after this many seconds (at least 1).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        ttl: Option<u64>,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Delete a key of any type.
    Delete {
        /// The key (one starting with `-` goes after `--`).
        key: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// List keys in order.
    Keys {
        /// Only keys starting with this.
        #[arg(long)]
        prefix: Option<String>,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Print every key with its type, TTL and content as JSON lines.
    Dump {
        #[command(flatten)]
        scope: ScopeArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum InstancesCmd {
    /// List instances with their account.
    List,
    /// Delete an instance's state and all its sessions.
    Destroy {
        /// The instance.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionsCmd {
    /// List the live sessions of an instance.
    List {
        /// The instance.
        #[arg(long, short)]
        instance: String,
    },
    /// End a session now, deleting its state.
    End {
        /// The instance.
        #[arg(long, short)]
        instance: String,
        /// The session id (one starting with `-` goes after `--`).
        id: String,
    },
}
