//! `wasm-state run`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use wasm_state::runtime::{GuestLimits, Host, HostConfig, RunOptions};

use crate::args::{Global, RunArgs};

/// Open a host on the data dir.
pub fn open_host(global: &Global, guest: GuestLimits) -> anyhow::Result<Host> {
    open_host_with(global, guest, None)
}

/// Open a host on the data dir, with the pooling allocator if `pooling` is set.
pub fn open_host_with(
    global: &Global,
    guest: GuestLimits,
    pooling: Option<u32>,
) -> anyhow::Result<Host> {
    let mut config = HostConfig::new(&global.data);
    config.account = global.account.clone();
    config.guest = guest;
    config.pooling = pooling;
    Host::open(config)
        .with_context(|| format!("cannot open the state in {}", global.data.display()))
}

pub async fn run(global: &Global, a: RunArgs) -> anyhow::Result<ExitCode> {
    let name = match &a.instance {
        Some(n) => n.clone(),
        None => match a.component.file_stem().and_then(|s| s.to_str()) {
            Some(s) => s.to_string(),
            None => bail!(
                "cannot name the instance after {}; pass --instance NAME",
                a.component.display()
            ),
        },
    };
    if a.deadline == 0 || a.memory == 0 {
        bail!("--deadline and --memory must be at least 1");
    }
    let limits = GuestLimits {
        deadline: Duration::from_secs(a.deadline),
        memory_bytes: a.memory.saturating_mul(1 << 20),
    };
    let host = open_host(global, limits)?;
    host.deploy_file(&name, &a.component)
        .await
        .with_context(|| format!("cannot deploy {}", a.component.display()))?;
    let options = RunOptions {
        args: a.args,
        session: a.session.clone(),
        ..RunOptions::default()
    };
    let out = match host.run(&name, options).await {
        Ok(out) => out,
        Err(wasm_state::runtime::HostError::State(
            wasm_state::store::StateError::NoSuchSession,
        )) => bail!(
            "session {:?} of instance {name:?} does not exist or has expired; run without --session to start a new one (`wasm-state sessions list -i {name}` shows live ones)",
            a.session.unwrap_or_default()
        ),
        Err(e) => return Err(e).context(format!("instance {name:?} failed")),
    };
    Ok(ExitCode::from(
        u8::try_from(out.exit_code.clamp(0, 255)).unwrap_or(1),
    ))
}
