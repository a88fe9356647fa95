//! `wasm-state instances …` and `wasm-state sessions …`.

use anyhow::bail;

use crate::args::{Global, InstancesCmd, SessionsCmd};
use crate::run::open_host;

pub async fn instances(global: &Global, cmd: InstancesCmd) -> anyhow::Result<()> {
    let host = open_host(global, Default::default())?;
    let store = host.store();
    match cmd {
        InstancesCmd::List => {
            for i in store.list_instances().await? {
                let bytes = store.instance_usage(&i.name).await?;
                println!("{}\taccount={}\tbytes={bytes}", i.name, i.account);
            }
        }
        InstancesCmd::Destroy { name } => {
            if store.instance_info(&name).await?.is_none() {
                bail!("no instance named {name:?}; `wasm-state instances list` shows them");
            }
            host.destroy(&name).await?;
            println!("destroyed instance {name:?} with its state and sessions");
        }
    }
    Ok(())
}

pub async fn sessions(global: &Global, cmd: SessionsCmd) -> anyhow::Result<()> {
    let host = open_host(global, Default::default())?;
    let store = host.store();
    match cmd {
        SessionsCmd::List { instance } => {
            let now = store.now_ms();
            for s in store.list_sessions(&instance).await? {
                println!(
                    "{}\texpires_in={}s",
                    s.id,
                    s.expires_at_ms.saturating_sub(now) / 1000
                );
            }
        }
        SessionsCmd::End { instance, id } => {
            if !store.end_session(&instance, &id).await? {
                bail!(
                    "no live session {id:?} of instance {instance:?}; `wasm-state sessions list -i {instance}` shows them"
                );
            }
            println!("ended session {id}");
        }
    }
    Ok(())
}
