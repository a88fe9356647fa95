//! `wasm-state state …`: read and write any scope's state, through the
//! running server or on the data dir.

use anyhow::bail;
use wasm_state::admin::ScopeRef;

use crate::args::{Global, ScopeArgs, StateCmd};
use crate::client::{Target, query};
use crate::settings::Settings;

fn scope_ref(settings: &Settings, s: &ScopeArgs) -> anyhow::Result<ScopeRef> {
    Ok(match (&s.instance, &s.session, s.shared) {
        (_, _, true) => ScopeRef {
            account: Some(settings.account.clone()),
            ..ScopeRef::default()
        },
        (Some(i), session, _) => ScopeRef {
            instance: Some(i.clone()),
            session: session.clone(),
            account: None,
        },
        (None, _, false) => {
            bail!("say which state: --instance NAME, --instance NAME --session ID, or --shared")
        }
    })
}

fn scope_query(s: &ScopeRef, extra: &[(&str, Option<&str>)]) -> String {
    let mut pairs = vec![
        ("instance", s.instance.as_deref()),
        ("session", s.session.as_deref()),
        ("account", s.account.as_deref()),
    ];
    pairs.extend_from_slice(extra);
    query(&pairs)
}

pub async fn state(global: &Global, cmd: StateCmd) -> anyhow::Result<()> {
    let settings = Settings::resolve(global)?;
    let target = match &cmd {
        StateCmd::Set { scope, .. } => {
            // Its scope is checked before the store opens (and may create
            // the data dir): a refused write leaves nothing behind.
            scope_ref(&settings, scope)?;
            Target::open(global, &settings).await?
        }
        _ => Target::open_existing(global, &settings).await?,
    };
    match cmd {
        StateCmd::Get { key, scope } => {
            let s = scope_ref(&settings, &scope)?;
            let bytes = match &target {
                Target::Local(a) => a.get(&s, &key).await?,
                Target::Remote(c) => c
                    .send(
                        "GET",
                        &format!("/v1/value{}", scope_query(&s, &[("key", Some(&key))])),
                        Vec::new(),
                    )
                    .await?
                    .to_vec(),
            };
            println!("{}", String::from_utf8_lossy(&bytes));
        }
        StateCmd::Set {
            key,
            value,
            ttl,
            scope,
        } => {
            let s = scope_ref(&settings, &scope)?;
            let (etag, described) = match &target {
                Target::Local(a) => a.set(&s, &key, value.into_bytes(), ttl).await?,
                Target::Remote(c) => {
                    let ttl = ttl.map(|t| t.to_string());
                    let v: serde_json::Value = c
                        .json(
                            "PUT",
                            &format!(
                                "/v1/key{}",
                                scope_query(&s, &[("key", Some(&key)), ("ttl", ttl.as_deref())])
                            ),
                            value.into_bytes(),
                        )
                        .await?;
                    (
                        v["etag"].as_str().unwrap_or_default().to_string(),
                        v["scope"].as_str().unwrap_or_default().to_string(),
                    )
                }
            };
            println!("set {key:?} in {described} (etag {etag})");
        }
        StateCmd::Delete { key, scope } => {
            let s = scope_ref(&settings, &scope)?;
            let deleted = match &target {
                Target::Local(a) => a.delete(&s, &key).await?,
                Target::Remote(c) => {
                    let v: serde_json::Value = c
                        .json(
                            "DELETE",
                            &format!("/v1/key{}", scope_query(&s, &[("key", Some(&key))])),
                            Vec::new(),
                        )
                        .await?;
                    v["deleted"] == true
                }
            };
            if !deleted {
                bail!("no key {key:?} in that scope; `wasm-state state keys` lists them");
            }
            println!("deleted {key:?}");
        }
        StateCmd::Keys { prefix, scope } => {
            let s = scope_ref(&settings, &scope)?;
            let keys: Vec<String> = match &target {
                Target::Local(a) => a.all_keys(&s, prefix).await?,
                Target::Remote(c) => {
                    c.json(
                        "GET",
                        &format!(
                            "/v1/keys/all{}",
                            scope_query(&s, &[("prefix", prefix.as_deref())])
                        ),
                        Vec::new(),
                    )
                    .await?
                }
            };
            for k in keys {
                println!("{k}");
            }
        }
        StateCmd::Dump { scope } => {
            let s = scope_ref(&settings, &scope)?;
            match &target {
                Target::Local(a) => {
                    a.dump(&s, &mut |line| {
                        println!("{line}");
                        wasm_state::admin::transfer::emitted(Ok(()))
                    })
                    .await?
                }
                Target::Remote(c) => {
                    let body = c
                        .send(
                            "GET",
                            &format!("/v1/dump{}", scope_query(&s, &[])),
                            Vec::new(),
                        )
                        .await?;
                    for line in String::from_utf8_lossy(&body).lines() {
                        let v: serde_json::Value = serde_json::from_str(line)?;
                        if let Some(m) = v.get("message").and_then(|m| m.as_str())
                            && v.get("error").is_some()
                        {
                            bail!("{m}");
                        }
                        println!("{line}");
                    }
                }
            }
        }
    }
    Ok(())
}
