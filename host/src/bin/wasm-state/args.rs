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
    /// Directory holding the state database (created if missing).
    #[arg(
        long,
        global = true,
        env = "WASM_STATE_DATA",
        default_value = ".wasm-state"
    )]
    pub data: PathBuf,
    /// Account that instances belong to.
    #[arg(
        long,
        global = true,
        env = "WASM_STATE_ACCOUNT",
        default_value = "default"
    )]
    pub account: String,
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
}

/// `run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The component (.wasm) to run.
    pub component: PathBuf,
    /// Instance name (default: the file name without extension).
    #[arg(long, short)]
    pub instance: Option<String>,
    /// Hand this session id to the guest (it reads it as WASM_STATE_SESSION).
    #[arg(long, short)]
    pub session: Option<String>,
    /// Seconds the guest may run before it is stopped.
    #[arg(long, default_value_t = 30)]
    pub deadline: u64,
    /// MiB of memory the guest may use.
    #[arg(long, default_value_t = 256)]
    pub memory: usize,
    /// Arguments passed to the guest (after `--`).
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// `serve` arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Components to serve, as `[NAME=]PATH`: each is deployed as instance
    /// NAME (default: the file name) and mounted at `/NAME`; a single
    /// component is also mounted at `/`.
    #[arg(required = true, value_name = "[NAME=]PATH")]
    pub apps: Vec<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Seconds a request's handler may run before it is stopped (504).
    #[arg(long, default_value_t = 10)]
    pub deadline: u64,
    /// MiB of memory a request's handler may use.
    #[arg(long, default_value_t = 64)]
    pub memory: usize,
    /// Most requests handled at once (pooling allocator slots).
    #[arg(long, default_value_t = 256)]
    pub max_instances: u32,
    /// Seconds to let in-flight requests finish on SIGINT/SIGTERM.
    #[arg(long, default_value_t = 30)]
    pub grace: u64,
}

/// Which scope a state command reads or writes.
#[derive(Debug, Args)]
pub struct ScopeArgs {
    /// Instance whose state (or session state, with --session) to use.
    #[arg(long, short)]
    pub instance: Option<String>,
    /// A session of --instance.
    #[arg(long, short, requires = "instance")]
    pub session: Option<String>,
    /// Use the account's shared state (see --account) instead of an instance's.
    #[arg(long = "shared", conflicts_with_all = ["instance", "session"])]
    pub shared: bool,
}

#[derive(Debug, Subcommand)]
pub enum StateCmd {
    /// Print a value.
    Get {
        /// The key.
        key: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Set a value (stored as the bytes given; the SDK reads it as JSON).
    Set {
        /// The key.
        key: String,
        /// The value, e.g. '{"name":"Ada"}' or 42.
        value: String,
        /// Expire after this many seconds.
        #[arg(long)]
        ttl: Option<u64>,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Delete a key of any type.
    Delete {
        /// The key.
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
        /// The session id.
        id: String,
    },
}
