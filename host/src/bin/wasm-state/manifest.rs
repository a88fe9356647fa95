//! `wasm-state.toml`: apps, account, limits, listen addresses, store and
//! the Dapr API options, instead of long command lines.
//!
//! ```toml
//! account = "default"
//! [store]
//! data = ".wasm-state"          # the redb data dir, relative to this file
//! # url = "redis://127.0.0.1:6379"   # or a Redis store (then `data` only holds the cache and socket)
//! [limits]
//! deadline_seconds = 10         # per request / call
//! memory_mib = 64               # per guest
//! instance_quota_bytes = 104857600
//! account_quota_bytes = 1073741824
//! session_ttl_seconds = 1800    # sessions created without a TTL
//! max_session_ttl_seconds = 2592000
//! max_sessions = 100000         # per instance; creating more is quota-exceeded
//! max_reply_bytes = 33554432    # one whole-map/-list read or a request's pops
//! [server]
//! listen = "127.0.0.1:8080"
//! admin_listen = "127.0.0.1:9090"   # /metrics and the state explorer; off if absent
//! max_instances = 256
//! grace_seconds = 30
//! [dapr]
//! listen = "127.0.0.1:3500"
//! api_token = "…"
//! app_id = "myapp"
//! components = "components/"
//! max_body_kib = 4096
//! [[apps]]
//! name = "shop"
//! component = "target/wasm32-wasip2/release/shop.wasm"   # relative to this file
//! route = "/"                   # default /NAME
//! ```
//!
//! Unknown fields and bad values are errors naming the field and the line;
//! command-line flags and environment variables win over the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// The file's name, looked for in the current directory.
pub const FILE_NAME: &str = "wasm-state.toml";

/// A parsed manifest; paths are resolved against its directory.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Account the apps belong to.
    pub account: Option<String>,
    /// Where the state is.
    #[serde(default)]
    pub store: StoreSection,
    /// Guest and store limits.
    #[serde(default)]
    pub limits: LimitsSection,
    /// Listeners.
    #[serde(default)]
    pub server: ServerSection,
    /// The Dapr-compatible API.
    pub dapr: Option<DaprSection>,
    /// The apps served.
    #[serde(default)]
    pub apps: Vec<AppSection>,
    /// The directory of the file (set after parsing).
    #[serde(skip)]
    pub dir: PathBuf,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// The data dir.
    pub data: Option<PathBuf>,
    /// A Redis URL.
    pub url: Option<String>,
}

/// `[limits]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Seconds a call may run.
    pub deadline_seconds: Option<u64>,
    /// MiB a guest may use.
    pub memory_mib: Option<usize>,
    /// Bytes of state per instance.
    pub instance_quota_bytes: Option<u64>,
    /// Bytes of state per account scope.
    pub account_quota_bytes: Option<u64>,
    /// TTL of sessions created without one.
    pub session_ttl_seconds: Option<u64>,
    /// Longest session TTL.
    pub max_session_ttl_seconds: Option<u64>,
    /// Most sessions an instance may have at once.
    pub max_sessions: Option<u64>,
    /// Most bytes one whole-map or whole-list read (or one request's pops)
    /// returns.
    pub max_reply_bytes: Option<usize>,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// The apps' listener.
    pub listen: Option<SocketAddr>,
    /// The admin listener (metrics, explorer).
    pub admin_listen: Option<SocketAddr>,
    /// Most requests handled at once.
    pub max_instances: Option<u32>,
    /// Seconds in-flight requests get at shutdown.
    pub grace_seconds: Option<u64>,
}

/// `[dapr]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaprSection {
    /// The API's listener.
    pub listen: SocketAddr,
    /// The `dapr-api-token`.
    pub api_token: Option<String>,
    /// The app id.
    pub app_id: Option<String>,
    /// A directory of component YAML files.
    pub components: Option<PathBuf>,
    /// Largest body, KiB.
    pub max_body_kib: Option<usize>,
}

/// `[[apps]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    /// The instance name.
    pub name: String,
    /// The component file.
    pub component: PathBuf,
    /// The path prefix (default `/NAME`).
    pub route: Option<String>,
}

/// The line (1-based) of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

impl Manifest {
    /// Parse `text` (from `path`, for messages and relative paths).
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Manifest> {
        let mut m: Manifest = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| format!(" line {}:", line_of(text, s.start)))
                .unwrap_or_default();
            anyhow::anyhow!("{}:{line} {}", path.display(), e.message())
        })?;
        m.dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        m.check(text, path)?;
        Ok(m)
    }

    /// Read and parse the manifest at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the manifest {}", path.display()))?;
        Manifest::parse(&text, path)
    }

    /// The manifest of this directory (or `--manifest`), if there is one.
    pub fn find(explicit: Option<&Path>) -> anyhow::Result<Option<Manifest>> {
        match explicit {
            Some(p) => Manifest::load(p).map(Some),
            None => {
                let p = Path::new(FILE_NAME);
                if p.exists() {
                    Manifest::load(p).map(Some)
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// `path` relative to the manifest's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.dir.join(path)
        }
    }

    fn check(&self, text: &str, path: &Path) -> anyhow::Result<()> {
        // The line where `needle` first appears (for values serde accepted
        // but we refuse).
        let at = |needle: &str| {
            text.find(needle)
                .map(|i| format!(" line {}:", line_of(text, i)))
                .unwrap_or_default()
        };
        let p = path.display();
        let l = &self.limits;
        for (name, v) in [
            ("deadline_seconds", l.deadline_seconds.map(|v| v as u128)),
            ("memory_mib", l.memory_mib.map(|v| v as u128)),
            (
                "session_ttl_seconds",
                l.session_ttl_seconds.map(|v| v as u128),
            ),
            (
                "max_session_ttl_seconds",
                l.max_session_ttl_seconds.map(|v| v as u128),
            ),
            (
                "max_instances",
                self.server.max_instances.map(|v| v as u128),
            ),
            ("max_sessions", l.max_sessions.map(|v| v as u128)),
        ] {
            if v == Some(0) {
                let section = if name == "max_instances" {
                    "server"
                } else {
                    "limits"
                };
                bail!("{p}:{} {section}.{name} must be at least 1", at(name));
            }
        }
        let defaults = wasm_state::store::Limits::default();
        // (against the maximum written, or else the built-in one)
        let max_ttl = l
            .max_session_ttl_seconds
            .unwrap_or(defaults.max_session_ttl.as_secs());
        if let Some(ttl) = l.session_ttl_seconds
            && ttl > max_ttl
        {
            let whose = if l.max_session_ttl_seconds.is_some() {
                ""
            } else {
                " (its default)"
            };
            bail!(
                "{p}:{} limits.session_ttl_seconds {ttl} is over limits.max_session_ttl_seconds \
                 {max_ttl}{whose}: every session made without a TTL would be refused",
                at("session_ttl_seconds")
            );
        }
        // One largest field with its value must fit in a reply, or a map
        // holding one could not be read at all.
        let least = defaults.max_field_bytes + defaults.max_value_bytes;
        if let Some(n) = l.max_reply_bytes
            && n < least
        {
            bail!(
                "{p}:{} limits.max_reply_bytes {n} is under {least}, one largest map field \
                 with its value: such a field could never be read",
                at("max_reply_bytes")
            );
        }
        if self.store.data.is_some() && self.store.url.is_some() {
            bail!(
                "{p}:{} store: give either `data` (a redb data dir) or `url` (a Redis store), not both",
                at("url")
            );
        }
        if let Some(u) = &self.store.url
            && !wasm_state::store::Store::is_redis_url(u)
        {
            bail!(
                "{p}:{} store.url {:?} is not a Redis URL (redis://, rediss://, redis+cluster://, rediss+cluster://, redis+sentinel:// or rediss+sentinel://)",
                at("url"),
                wasm_state::store::Store::redacted(u)
            );
        }
        let mut seen = std::collections::HashSet::new();
        for a in &self.apps {
            if a.name.is_empty() || a.name.contains('/') {
                bail!(
                    "{p}:{} apps.name {:?} must be non-empty and have no '/'",
                    at(&format!("\"{}\"", a.name)),
                    a.name
                );
            }
            if !seen.insert(&a.name) {
                bail!(
                    "{p}:{} two apps are named {:?}",
                    at(&format!("\"{}\"", a.name)),
                    a.name
                );
            }
            if let Some(r) = &a.route
                && wasm_state::http::normalize_prefix(r).is_err()
            {
                bail!(
                    "{p}:{} apps.route {r:?} of {:?} must be a plain path like /shop",
                    at(&format!("\"{r}\"")),
                    a.name
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<Manifest> {
        Manifest::parse(text, Path::new("dir/wasm-state.toml"))
    }

    #[test]
    fn a_full_manifest_parses_and_resolves_paths() {
        let m = parse(
            r#"
account = "acme"
[store]
data = "state"
[limits]
deadline_seconds = 5
memory_mib = 32
session_ttl_seconds = 60
[server]
listen = "127.0.0.1:9000"
admin_listen = "127.0.0.1:9001"
[dapr]
listen = "127.0.0.1:3500"
[[apps]]
name = "shop"
component = "shop.wasm"
route = "/"
"#,
        )
        .unwrap();
        assert_eq!(m.account.as_deref(), Some("acme"));
        assert_eq!(
            m.resolve(m.store.data.as_deref().unwrap()),
            Path::new("dir/state")
        );
        assert_eq!(m.apps[0].route.as_deref(), Some("/"));
        assert_eq!(m.limits.deadline_seconds, Some(5));
        assert_eq!(m.dapr.unwrap().listen.port(), 3500);
    }

    #[test]
    fn unknown_fields_and_bad_values_name_the_field_and_line() {
        let e = parse("account = \"a\"\n[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 4") && e.contains("lisen"), "{e}");
        let e = parse("[server]\nlisten = \"nowhere\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("socket address"), "{e}");
        let e = parse("\n[limits]\ndeadline_seconds = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 3") && e.contains("deadline_seconds"),
            "{e}"
        );
        let e = parse("[limits]\nmemory_mib = -1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
        let e = parse("[[apps]]\nname = \"a\"\ncomponent = \"a.wasm\"\n[[apps]]\nname = \"a\"\ncomponent = \"b.wasm\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("two apps"), "{e}");
        let e = parse("[[apps]]\nname = \"a\"\n").unwrap_err().to_string();
        assert!(e.contains("component"), "{e}");
        let e = parse("[store]\nurl = \"http://x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("Redis URL"), "{e}");
        // A password in a bad URL is not repeated; every Redis scheme is one.
        let e = parse("[store]\nurl = \"redis:/:hunter2@h\"\n")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(parse("[store]\nurl = \"rediss+cluster://a:1,b:2\"\n").is_ok());
        assert!(parse("[store]\nurl = \"redis+sentinel://s:26379/primary\"\n").is_ok());
        // A default session TTL over the maximum would refuse every session.
        let e = parse("[limits]\nsession_ttl_seconds = 100\nmax_session_ttl_seconds = 50\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("session_ttl_seconds 100"), "{e}");
        // … and over the built-in maximum (365 days) when none is written.
        let e = parse("[limits]\nsession_ttl_seconds = 40000000\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("session_ttl_seconds 40000000") && e.contains("31536000 (its default)"),
            "{e}"
        );
        assert!(parse("[limits]\nsession_ttl_seconds = 31536000\n").is_ok());
        let e = parse("[limits]\nmax_reply_bytes = 1000\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2") && e.contains("max_reply_bytes 1000"),
            "{e}"
        );
        assert!(parse("[limits]\nmax_reply_bytes = 1050624\n").is_ok());
        let e = parse("[server]\nmax_instances = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.max_instances"), "{e}");
    }
}
