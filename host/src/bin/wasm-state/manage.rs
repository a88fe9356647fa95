//! `wasm-state instances …`, `sessions …` and `apps …`.

use anyhow::{Context, bail};
use wasm_state::admin::ops::{InstanceRow, SessionRow};
use wasm_state::http::AppInfo;

use crate::args::{AppsCmd, Global, InstancesCmd, SessionsCmd};
use crate::client::{Client, Target, query};
use crate::settings::Settings;

fn seg(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub async fn instances(global: &Global, cmd: InstancesCmd) -> anyhow::Result<()> {
    let settings = Settings::resolve(global)?;
    let target = Target::open_existing(global, &settings).await?;
    match cmd {
        InstancesCmd::List => {
            let rows: Vec<InstanceRow> = match &target {
                Target::Local(a) => a.instances().await?,
                Target::Remote(c) => c.json("GET", "/v1/instances", Vec::new()).await?,
            };
            for i in rows {
                println!("{}\taccount={}\tbytes={}", i.name, i.account, i.bytes);
            }
        }
        InstancesCmd::Destroy { name } => {
            match &target {
                Target::Local(a) => a.destroy(&name).await?,
                Target::Remote(c) => {
                    c.send(
                        "DELETE",
                        &format!("/v1/instances/{}", seg(&name)),
                        Vec::new(),
                    )
                    .await?;
                }
            }
            println!("destroyed instance {name:?} with its state and sessions");
        }
    }
    Ok(())
}

pub async fn sessions(global: &Global, cmd: SessionsCmd) -> anyhow::Result<()> {
    let settings = Settings::resolve(global)?;
    let target = Target::open_existing(global, &settings).await?;
    match cmd {
        SessionsCmd::List { instance } => {
            let rows: Vec<SessionRow> = match &target {
                Target::Local(a) => a.sessions(&instance).await?,
                Target::Remote(c) => {
                    c.json(
                        "GET",
                        &format!("/v1/instances/{}/sessions", seg(&instance)),
                        Vec::new(),
                    )
                    .await?
                }
            };
            for s in rows {
                println!("{}\texpires_in={}s", s.id, s.ttl_ms / 1000);
            }
        }
        SessionsCmd::End { instance, id } => {
            match &target {
                Target::Local(a) => a.end_session(&instance, &id).await?,
                Target::Remote(c) => {
                    c.send(
                        "DELETE",
                        &format!("/v1/instances/{}/sessions/{}", seg(&instance), seg(&id)),
                        Vec::new(),
                    )
                    .await?;
                }
            }
            println!("ended session {id}");
        }
    }
    Ok(())
}

pub async fn apps(global: &Global, cmd: AppsCmd) -> anyhow::Result<()> {
    let settings = Settings::resolve(global)?;
    let sock = wasm_state::admin::socket::path(&settings.data);
    let Some(c) = Client::connect(&sock).await else {
        bail!(
            "no wasm-state server is running on {} (nothing answers on {}); start one with `wasm-state serve` (apps deploy changes a running server)",
            settings.data.display(),
            sock.display()
        );
    };
    match cmd {
        AppsCmd::Deploy {
            name,
            component,
            route,
        } => {
            let wasm = std::fs::read(&component)
                .with_context(|| format!("cannot read component {}", component.display()))?;
            let path = format!(
                "/v1/apps/{}{}",
                seg(&name),
                query(&[("route", route.as_deref())])
            );
            let info: AppInfo = c.json("PUT", &path, wasm).await.with_context(|| {
                format!(
                    "{} was not deployed; the server keeps serving what it served",
                    component.display()
                )
            })?;
            println!("deployed {:?} at {}", info.name, info.routes.join(", "));
        }
        AppsCmd::List => {
            let apps: Vec<AppInfo> = c.json("GET", "/v1/apps", Vec::new()).await?;
            for a in apps {
                println!("{}\t{}", a.name, a.routes.join(","));
            }
        }
        AppsCmd::Undeploy { name } => {
            c.send("DELETE", &format!("/v1/apps/{}", seg(&name)), Vec::new())
                .await?;
            println!("undeployed {name:?} (its state stays)");
        }
    }
    Ok(())
}
