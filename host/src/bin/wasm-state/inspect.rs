//! `wasm-state state …`: read and write any scope's state.

use std::time::Duration;

use anyhow::{Context, bail};
use wasm_state::store::{KeyKind, KeyListing, ScopeHandle, SetOptions};

use crate::args::{Global, ScopeArgs, StateCmd};
use crate::run::open_host;

async fn scope(
    global: &Global,
    s: &ScopeArgs,
) -> anyhow::Result<(wasm_state::runtime::Host, ScopeHandle)> {
    let host = open_host(global, Default::default())?;
    let store = host.store().clone();
    let handle = match (&s.instance, &s.session, s.shared) {
        (_, _, true) => store.account(&global.account)?,
        (Some(i), Some(id), _) => store.session(i, id).await.with_context(|| {
            format!("session {id:?} of instance {i:?}; `wasm-state sessions list -i {i}` shows live sessions")
        })?,
        (Some(i), None, _) => store.instance(i)?,
        (None, _, false) => bail!("say which state: --instance NAME, --instance NAME --session ID, or --shared"),
    };
    Ok((host, handle))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A stored value as JSON: itself if it is JSON, else a string.
fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| serde_json::Value::String(text(bytes)))
}

pub async fn state(global: &Global, cmd: StateCmd) -> anyhow::Result<()> {
    match cmd {
        StateCmd::Get { key, scope: s } => {
            let (_host, h) = scope(global, &s).await?;
            match h.get(&key).await {
                Ok(Some(v)) => println!("{}", text(&v)),
                Ok(None) => bail!("no key {key:?} in {}", h.scope()),
                Err(wasm_state::store::StateError::WrongType { found, .. }) => {
                    bail!("{key:?} is a {found}, not a value; `wasm-state state dump` shows it")
                }
                Err(e) => return Err(e.into()),
            }
        }
        StateCmd::Set {
            key,
            value,
            ttl,
            scope: s,
        } => {
            let (_host, h) = scope(global, &s).await?;
            let options = SetOptions {
                ttl: ttl.map(Duration::from_secs),
                condition: None,
            };
            let etag = h.set_with(&key, value.into_bytes(), options).await?;
            println!("set {key:?} in {} (etag {etag})", h.scope());
        }
        StateCmd::Delete { key, scope: s } => {
            let (_host, h) = scope(global, &s).await?;
            if !h.delete(&key).await? {
                bail!("no key {key:?} in {}", h.scope());
            }
            println!("deleted {key:?}");
        }
        StateCmd::Keys { prefix, scope: s } => {
            let (_host, h) = scope(global, &s).await?;
            let mut listing = Some(KeyListing {
                prefix,
                ..KeyListing::default()
            });
            while let Some(keys) = next_page(&h, &mut listing).await? {
                for k in &keys {
                    println!("{k}");
                }
            }
        }
        StateCmd::Dump { scope: s } => {
            let (_host, h) = scope(global, &s).await?;
            let mut listing = Some(KeyListing::default());
            while let Some(keys) = next_page(&h, &mut listing).await? {
                for k in &keys {
                    if let Some(line) = dump_key(&h, k).await? {
                        println!("{line}");
                    }
                }
            }
        }
    }
    Ok(())
}

/// The next page of keys; `listing` moves past it, and is `None` after the last.
async fn next_page(
    h: &ScopeHandle,
    listing: &mut Option<KeyListing>,
) -> anyhow::Result<Option<Vec<String>>> {
    let Some(current) = listing.take() else {
        return Ok(None);
    };
    let page = h.keys(current.clone()).await?;
    if let Some(cursor) = page.cursor {
        *listing = Some(KeyListing {
            cursor: Some(cursor),
            ..current
        });
    }
    Ok(Some(page.keys))
}

async fn dump_key(h: &ScopeHandle, key: &str) -> anyhow::Result<Option<serde_json::Value>> {
    let Some(info) = h.info(key).await? else {
        return Ok(None);
    };
    let value = match info.kind {
        KeyKind::Value => h.get(key).await?.map(|v| json(&v)).unwrap_or_default(),
        KeyKind::Map => serde_json::Value::Object(
            h.map_get_all(key)
                .await?
                .into_iter()
                .map(|(f, v)| (f, json(&v)))
                .collect(),
        ),
        KeyKind::List => serde_json::Value::Array(
            h.list_range(key, 0, -1)
                .await?
                .iter()
                .map(|v| json(v))
                .collect(),
        ),
    };
    Ok(Some(serde_json::json!({
        "key": key,
        "type": info.kind.name(),
        "etag": info.etag,
        "ttl_ms": info.ttl.map(|t| t.as_millis() as u64),
        "value": value,
    })))
}
