//! `wasm-state serve`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use wasm_state::http::HttpServer;
use wasm_state::runtime::GuestLimits;

use crate::args::{Global, ServeArgs};
use crate::run::open_host_with;

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

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
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

pub async fn serve(global: &Global, a: ServeArgs) -> anyhow::Result<()> {
    if a.deadline == 0 || a.memory == 0 || a.max_instances == 0 {
        bail!("--deadline, --memory and --max-instances must be at least 1");
    }
    let apps = a
        .apps
        .iter()
        .map(|s| parse_app(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let limits = GuestLimits {
        deadline: Duration::from_secs(a.deadline),
        memory_bytes: a.memory.saturating_mul(1 << 20),
    };
    let host = open_host_with(global, limits, Some(a.max_instances))?;
    let mut server = HttpServer::new(host.clone()).grace(Duration::from_secs(a.grace));
    for (name, path) in &apps {
        host.deploy_file(name, path)
            .await
            .with_context(|| format!("cannot deploy {}", path.display()))?;
        server.mount(&format!("/{name}"), name)?;
    }
    if let [(name, _)] = apps.as_slice() {
        server.mount("/", name)?;
    }
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}; is another server using it? pick one with --listen",
                a.listen
            )
        })?;
    let addr = listener.local_addr()?;
    for (name, _) in &apps {
        eprintln!("wasm-state: serving instance {name:?} at http://{addr}/{name}");
    }
    if let [(name, _)] = apps.as_slice() {
        eprintln!("wasm-state: and {name:?} at http://{addr}/");
    }
    server.serve(listener, shutdown_signal()).await?;
    // The last handle: the store closes once its writer has committed
    // everything queued.
    drop(host);
    eprintln!("wasm-state: stopped; every acknowledged write is on disk");
    Ok(())
}
