//! The apps a server serves, swappable while it runs: deploy a new
//! component (new requests go to it, requests in flight finish on the old
//! one), list, undeploy.

use std::sync::{Arc, RwLock};

use wasmtime_wasi_http::p2::bindings::ProxyPre;

use super::{Mount, normalize_prefix};
use crate::runtime::{Host, HostError};

/// One served app.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppInfo {
    /// The instance.
    pub name: String,
    /// Path prefixes it answers, longest first.
    pub routes: Vec<String>,
}

/// A handle on a server's mount table (cheap to clone).
#[derive(Clone)]
pub struct Apps {
    host: Host,
    /// Copy on write: a request takes the current table and keeps it.
    table: Arc<RwLock<Arc<Vec<Mount>>>>,
}

impl std::fmt::Debug for Apps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Apps")
            .field("apps", &self.list())
            .finish_non_exhaustive()
    }
}

fn not_http(instance: &str, e: impl std::fmt::Display) -> HostError {
    HostError::InvalidComponent(format!(
        "{instance:?} is not a wasi:http handler (it must export wasi:http/incoming-handler, \
         e.g. built with wstd's #[http_server]): {e:#}"
    ))
}

impl Apps {
    pub(super) fn new(host: Host) -> Self {
        Apps {
            host,
            table: Arc::new(RwLock::new(Arc::new(Vec::new()))),
        }
    }

    pub(super) fn table(&self) -> Arc<Vec<Mount>> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update(&self, change: impl FnOnce(&mut Vec<Mount>)) {
        let mut guard = self.table.write().unwrap_or_else(|p| p.into_inner());
        let mut next = (**guard).clone();
        change(&mut next);
        next.sort_by_key(|m| std::cmp::Reverse(m.prefix.len()));
        *guard = Arc::new(next);
    }

    /// Mount the deployed `instance` at `prefix` (replacing what was there).
    pub fn mount(&self, prefix: &str, instance: &str) -> Result<(), HostError> {
        let dep = self.host.deployment_of(instance)?;
        let pre = ProxyPre::new(dep.pre().clone()).map_err(|e| not_http(instance, e))?;
        let prefix = normalize_prefix(prefix)?;
        self.update(|t| {
            t.retain(|m| m.prefix != prefix);
            t.push(Mount {
                prefix,
                instance: instance.into(),
                pre,
                dep,
            });
        });
        Ok(())
    }

    /// Deploy `wasm` as app `name` while serving: it is compiled and checked
    /// first (a component that does not compile, link or handle wasi:http
    /// is refused and the old one keeps serving), then swapped in. It
    /// answers at `route` if given (replacing its old routes), else where
    /// it answered before, else at `/NAME`.
    pub async fn deploy(
        &self,
        name: &str,
        wasm: &[u8],
        route: Option<&str>,
    ) -> Result<AppInfo, HostError> {
        if name.is_empty() || name.contains('/') {
            return Err(HostError::InvalidComponent(format!(
                "app name {name:?} must be non-empty and have no '/'"
            )));
        }
        let route = route.map(normalize_prefix).transpose()?;
        // The default route must be valid too, before anything is installed
        // (a refused deploy changes nothing).
        let default_route = match route {
            Some(_) => None,
            None => Some(normalize_prefix(&format!("/{name}"))?),
        };
        let pre = self.host.compile(wasm).await?;
        ProxyPre::new(pre.clone()).map_err(|e| not_http(name, e))?;
        let account = self.host.account().to_string();
        self.host.install(name, &account, pre).await?;
        let dep = self.host.deployment_of(name)?;
        let proxy = ProxyPre::new(dep.pre().clone()).map_err(|e| not_http(name, e))?;
        let mut routes: Vec<String> = self
            .table()
            .iter()
            .filter(|m| m.instance == name)
            .map(|m| m.prefix.clone())
            .collect();
        if let Some(r) = route {
            routes = vec![r];
        } else if routes.is_empty()
            && let Some(d) = default_route
        {
            routes = vec![d];
        }
        self.update(|t| {
            t.retain(|m| m.instance != name && !routes.contains(&m.prefix));
            for prefix in &routes {
                t.push(Mount {
                    prefix: prefix.clone(),
                    instance: name.into(),
                    pre: proxy.clone(),
                    dep: dep.clone(),
                });
            }
        });
        routes.sort_by_key(|r| std::cmp::Reverse(r.len()));
        Ok(AppInfo {
            name: name.into(),
            routes,
        })
    }

    /// Take app `name`'s routes away (its deployment stays: a destroy then
    /// stops it); the routes taken, to put back with
    /// [`reroute`](Apps::reroute) if what follows fails.
    pub(crate) fn unroute(&self, name: &str) -> Vec<Mount> {
        let mut taken = Vec::new();
        self.update(|t| {
            let (gone, kept): (Vec<Mount>, Vec<Mount>) = std::mem::take(t)
                .into_iter()
                .partition(|m| m.instance == name);
            *t = kept;
            taken = gone;
        });
        taken
    }

    /// Take down the routes of `name` that lead to a deployment that is no
    /// longer its current one: a deploy that raced a destroy of the name
    /// (and lost) routed to the deployment the destroy removed.
    pub(crate) fn unroute_stale(&self, name: &str) {
        let current = self.host.deployment_of(name).ok();
        self.update(|t| {
            t.retain(|m| {
                m.instance != name || current.as_ref().is_some_and(|d| Arc::ptr_eq(d, &m.dep))
            })
        });
    }

    /// Put routes taken by [`unroute`](Apps::unroute) back.
    pub(crate) fn reroute(&self, mounts: Vec<Mount>) {
        self.update(|t| t.extend(mounts.iter().cloned()));
    }

    /// Stop serving app `name` (requests in flight finish; its state
    /// stays). Returns whether it was served.
    pub fn undeploy(&self, name: &str) -> bool {
        let mut found = false;
        self.update(|t| {
            let before = t.len();
            t.retain(|m| m.instance != name);
            found = t.len() != before;
        });
        let deployed = self.host.undeploy(name);
        found || deployed
    }

    /// The apps served, by name.
    pub fn list(&self) -> Vec<AppInfo> {
        let mut out: Vec<AppInfo> = Vec::new();
        for m in self.table().iter() {
            match out.iter_mut().find(|a| a.name == m.instance) {
                Some(a) => a.routes.push(m.prefix.clone()),
                None => out.push(AppInfo {
                    name: m.instance.clone(),
                    routes: vec![m.prefix.clone()],
                }),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}
