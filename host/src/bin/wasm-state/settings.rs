//! The settings a command runs with: flags and environment variables, then
//! the manifest (`wasm-state.toml`), then defaults.

use std::path::PathBuf;
use std::time::Duration;

use wasm_state::store::StoreConfig;

use crate::args::Global;
use crate::manifest::{LimitsSection, Manifest};

/// Resolved settings.
#[derive(Debug)]
pub struct Settings {
    /// The data dir.
    pub data: PathBuf,
    /// A Redis store instead of the data dir's redb file.
    pub store_url: Option<String>,
    /// The account.
    pub account: String,
    /// How long to wait for a data dir another command holds.
    pub busy_timeout: Duration,
    /// Limits from the manifest.
    pub limits: Option<LimitsSection>,
    /// The manifest, if one was read.
    pub manifest: Option<Manifest>,
}

impl LimitsSection {
    /// Apply the store limits of this section.
    pub fn apply(&self, config: &mut StoreConfig) {
        if let Some(q) = self.instance_quota_bytes {
            config.limits.instance_quota_bytes = q;
        }
        if let Some(q) = self.account_quota_bytes {
            config.limits.account_quota_bytes = q;
        }
        if let Some(s) = self.max_session_ttl_seconds {
            config.limits.max_session_ttl = Duration::from_secs(s);
        }
        if let Some(n) = self.max_sessions {
            config.limits.max_sessions = n;
        }
        if let Some(n) = self.max_reply_bytes {
            config.limits.max_reply_bytes = n;
        }
        if let Some(s) = self.session_ttl_seconds {
            config.default_session_ttl = Duration::from_secs(s);
        } else {
            // A maximum below the default (7 days) lowers the default too:
            // sessions made without a TTL get the longest allowed.
            config.default_session_ttl = config
                .default_session_ttl
                .min(config.limits.max_session_ttl);
        }
    }
}

impl Settings {
    /// Resolve `global` against the manifest (read here).
    pub fn resolve(global: &Global) -> anyhow::Result<Settings> {
        let manifest = Manifest::find(global.manifest.as_deref())?;
        let m = manifest.as_ref();
        let data = match (&global.data, m.and_then(|m| m.store.data.as_ref())) {
            (Some(d), _) => d.clone(),
            (None, Some(d)) => m.map_or_else(|| d.clone(), |m| m.resolve(d)),
            (None, None) => match m {
                Some(m) => m.resolve(".wasm-state".as_ref()),
                None => PathBuf::from(".wasm-state"),
            },
        };
        let store_url = global
            .store
            .clone()
            .filter(|u| !u.is_empty())
            .or_else(|| m.and_then(|m| m.store.url.clone()));
        if let Some(u) = &store_url
            && !wasm_state::store::Store::is_redis_url(u)
        {
            anyhow::bail!(
                "--store (or WASM_STATE_STORE) {:?} is not a Redis URL: write \
                 redis://HOST:PORT[/DB], rediss://… for TLS, redis+cluster://HOST:PORT,… \
                 or redis+sentinel://HOST:PORT,…/MASTER \
                 (the embedded store is the data dir: --data DIR)",
                wasm_state::store::Store::redacted(u)
            );
        }
        let account = global
            .account
            .clone()
            .or_else(|| m.and_then(|m| m.account.clone()))
            .unwrap_or_else(|| "default".into());
        Ok(Settings {
            data,
            store_url,
            account,
            busy_timeout: Duration::from_secs(global.busy_timeout),
            limits: m.map(|m| m.limits.clone()),
            manifest,
        })
    }
}
