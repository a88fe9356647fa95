//! `wasm-state serve`: HTTP apps, the Dapr-compatible API, and the admin
//! API (the data dir's socket, and optionally a loopback listener with
//! /metrics and the state explorer).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use wasm_state::admin::AdminApi;
use wasm_state::admin::socket::AdminSocket;
use wasm_state::api::dapr::{DaprApi, DaprOptions, StoreSpec, components};
use wasm_state::http::HttpServer;
use wasm_state::runtime::GuestLimits;

use crate::args::{Global, ServeArgs};
use crate::client::open_host;
use crate::settings::Settings;

/// An app to serve: name, component, routes.
struct AppSpec {
    name: String,
    path: PathBuf,
    route: Option<String>,
}

/// `[NAME=]PATH` → (name, path).
fn parse_app(spec: &str) -> anyhow::Result<(String, PathBuf)> {
    let (name, path) = match spec.split_once('=') {
        Some((n, p)) => (n.to_string(), PathBuf::from(p)),
        None => {
            let path = PathBuf::from(spec);
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                bail!("cannot name an instance after {spec:?}; write NAME=PATH");
            };
            (stem.to_string(), path)
        }
    };
    if name.is_empty() || name.contains('/') {
        bail!("instance name {name:?} in {spec:?} must be non-empty and have no '/'");
    }
    Ok((name, path))
}

/// Every `NAME=PATH` (or `PATH`) of the command line; two apps may not
/// share a name (the second would silently take the first one's route).
fn parse_apps(specs: &[String]) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut apps: Vec<(String, PathBuf)> = Vec::with_capacity(specs.len());
    for spec in specs {
        let (name, path) = parse_app(spec)?;
        if let Some((_, first)) = apps.iter().find(|(n, _)| *n == name) {
            bail!(
                "two apps are named {name:?} ({} and {}): name one of them, NAME=PATH",
                first.display(),
                path.display()
            );
        }
        apps.push((name, path));
    }
    Ok(apps)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    eprintln!("wasm-state: shutting down, finishing in-flight requests…");
}

/// The most instance slots `serve` reserves (`--max-instances`).
const MAX_INSTANCES: u32 = 10_000;
/// The largest guest memory, in MiB (a 32-bit wasm memory: 4 GiB).
const MAX_MEMORY_MIB: usize = 4096;

/// The Dapr-compatible API options, from flags or the manifest.
struct DaprSettings {
    listen: SocketAddr,
    api_token: Option<String>,
    app_id: Option<String>,
    components: Option<PathBuf>,
    max_body_kib: usize,
}

/// Each field from the flag (or its environment variable), else the
/// manifest's `[dapr]`, else the default; the API runs if either names a
/// listen address. Options without one are an error (they would do
/// nothing).
fn dapr_settings(a: &ServeArgs, settings: &Settings) -> anyhow::Result<Option<DaprSettings>> {
    let m = settings.manifest.as_ref();
    let d = m.and_then(|m| m.dapr.as_ref());
    let Some(listen) = a.dapr.dapr_listen.or(d.map(|d| d.listen)) else {
        if a.dapr.components.is_some() || a.dapr.dapr_max_body.is_some() {
            bail!(
                "--components and --dapr-max-body set up the Dapr-compatible API, which is off: \
                 give --dapr-listen ADDR (or [dapr] listen in the manifest)"
            );
        }
        return Ok(None);
    };
    Ok(Some(DaprSettings {
        listen,
        api_token: a
            .dapr
            .dapr_api_token
            .clone()
            .or_else(|| d.and_then(|d| d.api_token.clone())),
        app_id: a
            .dapr
            .app_id
            .clone()
            .or_else(|| d.and_then(|d| d.app_id.clone())),
        components: a.dapr.components.clone().or_else(|| {
            d.and_then(|d| d.components.as_ref())
                .zip(m)
                .map(|(c, m)| m.resolve(c))
        }),
        max_body_kib: a
            .dapr
            .dapr_max_body
            .or_else(|| d.and_then(|d| d.max_body_kib))
            .unwrap_or(4096),
    }))
}

/// The Dapr-compatible API of `serve`, checked and read before the store
/// opens: its options and its components' stores.
struct DaprPlan {
    listen: SocketAddr,
    specs: Vec<StoreSpec>,
    options: DaprOptions,
}

/// Check the Dapr API's settings and read its components directory.
fn dapr_plan(d: Option<DaprSettings>) -> anyhow::Result<Option<DaprPlan>> {
    let Some(d) = d else {
        return Ok(None);
    };
    if d.max_body_kib == 0 {
        bail!("--dapr-max-body must be at least 1 (KiB)");
    }
    let specs = match &d.components {
        Some(dir) => {
            let specs = components::load_dir(dir, d.app_id.as_deref())?;
            if specs.is_empty() {
                bail!(
                    "{} has no state store components (spec.type: state.redb); add one, or leave out --components for the default `statestore`",
                    dir.display()
                );
            }
            specs
        }
        None => vec![StoreSpec::default_store()],
    };
    let options = DaprOptions {
        app_id: d.app_id.clone(),
        namespace: std::env::var("NAMESPACE").ok().filter(|n| !n.is_empty()),
        api_token: d.api_token.clone().filter(|t| !t.is_empty()),
        max_body_bytes: d.max_body_kib.saturating_mul(1024),
        ..DaprOptions::default()
    };
    Ok(Some(DaprPlan {
        listen: d.listen,
        specs,
        options,
    }))
}

/// The Dapr API of a plan, on the host's store (and the Redis stores its
/// `state.redis` components name).
async fn dapr_api(
    settings: &Settings,
    plan: DaprPlan,
    store: &wasm_state::store::Store,
) -> anyhow::Result<DaprApi> {
    // A `state.redis` store keeps the host's limits (quotas, sessions,
    // replies), as the host's own store does.
    let mut config = wasm_state::store::StoreConfig::default();
    if let Some(l) = &settings.limits {
        l.apply(&mut config);
    }
    Ok(DaprApi::open(store, &settings.account, plan.specs, plan.options, config).await?)
}

pub async fn serve(global: &Global, a: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(global)?;
    let m = settings.manifest.as_ref();
    let ml = settings.limits.clone().unwrap_or_default();
    let deadline = a.deadline.or(ml.deadline_seconds).unwrap_or(10);
    let memory = a.memory.or(ml.memory_mib).unwrap_or(64);
    let max_instances = a
        .max_instances
        .or(m.and_then(|m| m.server.max_instances))
        .unwrap_or(256);
    let grace = a
        .grace
        .or(m.and_then(|m| m.server.grace_seconds))
        .unwrap_or(30);
    if deadline == 0 || memory == 0 || max_instances == 0 {
        bail!("--deadline, --memory and --max-instances must be at least 1");
    }
    // The pooling allocator reserves address space for every slot up front.
    if max_instances > MAX_INSTANCES {
        bail!(
            "--max-instances (or [server] max_instances) {max_instances} is over {MAX_INSTANCES}: \
             each instance slot reserves its memory's address space up front"
        );
    }
    if memory > MAX_MEMORY_MIB {
        bail!(
            "--memory (or [limits] memory_mib) {memory} MiB is over {MAX_MEMORY_MIB} MiB, the \
             most a 32-bit wasm memory can hold"
        );
    }
    let apps: Vec<AppSpec> = if !a.apps.is_empty() {
        let parsed = parse_apps(&a.apps)?;
        let single = parsed.len() == 1;
        parsed
            .into_iter()
            .map(|(name, path)| AppSpec {
                route: single.then(|| "/".to_string()),
                name,
                path,
            })
            .collect()
    } else {
        m.map(|m| {
            m.apps
                .iter()
                .map(|app| AppSpec {
                    name: app.name.clone(),
                    path: m.resolve(&app.component),
                    route: app.route.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
    };
    let listen = a
        .listen
        .or(m.and_then(|m| m.server.listen))
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let admin_listen = a.admin_listen.or(m.and_then(|m| m.server.admin_listen));
    if let Some(addr) = admin_listen
        && !addr.ip().is_loopback()
    {
        bail!(
            "the admin listener {addr} must be a loopback address (127.0.0.1 or [::1]): it can read and delete all state; put a reverse proxy with authentication in front to reach it from elsewhere"
        );
    }
    let dapr = dapr_plan(dapr_settings(&a, &settings)?)?;
    let serve_apps = !apps.is_empty() || dapr.is_none() || a.listen.is_some();
    // Every address is taken before the store opens (and may create the
    // data dir and register the apps' instances): a start refused for a
    // taken port leaves nothing behind. Nothing is accepted until the
    // server listens, once everything is ready.
    let app_socket = serve_apps
        .then(|| reserve(listen, "--listen"))
        .transpose()?;
    let dapr_socket = dapr
        .as_ref()
        .map(|d| reserve(d.listen, "--dapr-listen"))
        .transpose()?;
    let admin_socket = admin_listen
        .map(|addr| reserve(addr, "--admin-listen"))
        .transpose()?;
    let limits = GuestLimits {
        deadline: Duration::from_secs(deadline),
        memory_bytes: memory.saturating_mul(1 << 20),
    };
    let host = open_host(global, &settings, limits, Some(max_instances)).await?;
    // The admin socket: every CLI command on this data dir comes through it.
    // On Redis every process opens the store itself, so several hosts may
    // share a data dir (the component cache); the first one answers there.
    let mut socket = match AdminSocket::bind(&settings.data).await {
        Ok(s) => Some(s),
        Err(e) if settings.store_url.is_some() && e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::warn!(error = %e, "not serving the admin socket (another host on this data dir does)");
            None
        }
        Err(e) => return Err(e).context("cannot serve the admin socket"),
    };
    let dapr = match dapr {
        Some(plan) => Some(dapr_api(&settings, plan, host.store()).await?),
        None => None,
    };
    let mut server = HttpServer::new(host.clone()).grace(Duration::from_secs(grace));
    for app in &apps {
        host.deploy_file(&app.name, &app.path)
            .await
            .with_context(|| format!("cannot deploy {}", app.path.display()))?;
        server.mount(&format!("/{}", app.name), &app.name)?;
        if let Some(r) = &app.route {
            server.mount(r, &app.name)?;
        }
    }
    let admin = AdminApi::new(host.clone(), serve_apps.then(|| server.apps()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(l) = socket.as_mut().and_then(AdminSocket::take_listener) {
        tasks.spawn(admin.clone().serve_socket(l, stopped()));
    }
    if let Some(socket) = app_socket {
        let listener = start_listening(socket, "--listen")?;
        let addr = listener.local_addr()?;
        for info in server.apps().list() {
            for r in &info.routes {
                eprintln!(
                    "wasm-state: serving instance {:?} at http://{addr}{r}",
                    info.name
                );
            }
        }
        if apps.is_empty() {
            eprintln!(
                "wasm-state: no apps yet; deploy one with `wasm-state apps deploy NAME app.wasm` (serving at http://{addr})"
            );
        }
        tasks.spawn(server.serve(listener, stopped()));
    }
    if let (Some(api), Some(socket)) = (dapr, dapr_socket) {
        let listener = start_listening(socket, "--dapr-listen")?;
        let addr = listener.local_addr()?;
        eprintln!(
            "wasm-state: Dapr state API at http://{addr}/v1.0/state/{{{}}}",
            api.store_names().join(",")
        );
        let api = api.with_grace(Duration::from_secs(grace));
        tasks.spawn(api.serve(listener, stopped()));
    }
    if let Some(socket) = admin_socket {
        let listener = start_listening(socket, "--admin-listen")?;
        let addr = listener.local_addr()?;
        let token = wasm_state::admin::token::create(&settings.data, addr.port())?;
        eprintln!(
            "wasm-state: admin at http://{addr}/ (the state explorer: open http://{addr}/#token=TOKEN, \
             the token is in {}) and http://{addr}/metrics",
            wasm_state::admin::token::path(&settings.data, addr.port()).display()
        );
        tasks.spawn(admin.serve_tcp(listener, token, stopped()));
    }
    if let Some(s) = &socket {
        eprintln!(
            "wasm-state: admin socket {} (CLI commands on this data dir go through it)",
            s.path().display()
        );
    }
    tokio::select! {
        () = shutdown_signal() => {}
        Some(done) = tasks.join_next() => {
            // A listener stopped on its own: stop the others too.
            done.context("a listener failed")??;
        }
    }
    let _ = stop_tx.send(true);
    while let Some(done) = tasks.join_next().await {
        done.context("a listener failed")??;
    }
    drop(socket);
    // The last handle: the store closes once its writer has committed
    // everything queued.
    drop(host);
    eprintln!("wasm-state: stopped; every acknowledged write is on disk");
    Ok(())
}

/// Take `addr` for a listener: bound, so that a taken port is refused at
/// once, but not yet listening (nothing is accepted before the server is
/// ready: [`start_listening`]).
fn reserve(addr: SocketAddr, flag: &str) -> anyhow::Result<tokio::net::TcpSocket> {
    let taken =
        || format!("cannot listen on {addr}; is another server using it? pick another with {flag}");
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .with_context(taken)?;
    // As a listener bound the usual way: a port left in TIME_WAIT by the
    // last run is free.
    socket.set_reuseaddr(true).with_context(taken)?;
    socket.bind(addr).with_context(taken)?;
    Ok(socket)
}

/// Start accepting connections on a reserved address.
fn start_listening(
    socket: tokio::net::TcpSocket,
    flag: &str,
) -> anyhow::Result<tokio::net::TcpListener> {
    socket
        .listen(1024)
        .with_context(|| format!("cannot listen on the address of {flag}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_apps_of_one_name_are_refused() {
        let specs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let e = parse_apps(&specs(&["a=x.wasm", "a=y.wasm"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("two apps are named \"a\"") && e.contains("y.wasm"),
            "{e}"
        );
        // A file's stem is its name: the same clash.
        let e = parse_apps(&specs(&["dir/shop.wasm", "shop=other.wasm"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("two apps are named \"shop\""), "{e}");
        let ok = parse_apps(&specs(&["a=x.wasm", "b=x.wasm"])).unwrap();
        assert_eq!(ok.len(), 2);
    }
}
