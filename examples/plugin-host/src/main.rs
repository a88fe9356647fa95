//! Plugin sandbox: a native program embeds the wasm-state host, loads a
//! plugin component, calls its `on-event` export and reads the state the
//! plugin kept, from the host side.
//!
//! ```text
//! cargo build --release --target wasm32-wasip2 --manifest-path examples/guests/Cargo.toml \
//!     --target-dir target/wasm-guests
//! cargo run -p plugin-host -- target/wasm-guests/wasm32-wasip2/release/plugin.wasm [DATA_DIR]
//! ```
//!
//! Without `DATA_DIR` the state lives in a temporary directory deleted at
//! exit; with one, it persists and a second run counts on.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use wasm_state::runtime::{Host, HostConfig};
use wasmtime::component::Val;

/// The instance the plugin is deployed as.
const INSTANCE: &str = "plugin";

/// The events sent to the plugin: (kind, payload). The last one has an
/// empty kind, which the plugin refuses with an error result.
const EVENTS: [(&str, &str); 5] = [
    ("click", "button=buy"),
    ("view", "/home"),
    ("click", "button=cancel"),
    ("purchase", r#"{"sku":"A1","qty":2}"#),
    ("", "no kind"),
];

const USAGE: &str = "usage: plugin-host <plugin.wasm> [DATA_DIR]
  plugin.wasm  the plugin component, built by
               cargo build --release --target wasm32-wasip2 \\
                 --manifest-path examples/guests/Cargo.toml --target-dir target/wasm-guests
  DATA_DIR     where to keep the state (default: a temporary directory)";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(wasm), data, None) = (args.next(), args.next(), args.next()) else {
        bail!("expected a plugin component and optionally a data directory\n\n{USAGE}");
    };
    let wasm = PathBuf::from(wasm);
    // A temporary directory lives until the end of main, then is deleted.
    let temp;
    let data_dir = match data {
        Some(dir) => {
            println!("state in {}", Path::new(&dir).display());
            PathBuf::from(dir)
        }
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary data directory")?;
            println!(
                "state in {} (temporary; pass a DATA_DIR to keep it)",
                temp.path().display()
            );
            temp.path().to_path_buf()
        }
    };
    run(&wasm, &data_dir).await
}

async fn run(wasm: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let host = Host::open(HostConfig::new(data_dir))
        .with_context(|| format!("cannot open the state in {}", data_dir.display()))?;
    host.deploy_file(INSTANCE, wasm).await.with_context(|| {
        format!(
            "cannot deploy {} as the plugin; is it the plugin component?\n\n{USAGE}",
            wasm.display()
        )
    })?;

    // Call the plugin's export with dynamically typed values: two strings
    // in, one `result<string, string>` out.
    for (kind, payload) in EVENTS {
        let args = [Val::String(kind.into()), Val::String(payload.into())];
        let results = host
            .call(INSTANCE, "on-event", &args)
            .await
            .with_context(|| format!("calling on-event({kind:?}, {payload:?})"))?;
        match results.as_slice() {
            [Val::Result(Ok(Some(summary)))] => match summary.as_ref() {
                Val::String(s) => println!("on-event({kind:?}) -> ok: {s}"),
                other => bail!("on-event returned ok({other:?}), expected a string"),
            },
            [Val::Result(Err(Some(why)))] => match why.as_ref() {
                Val::String(s) => println!("on-event({kind:?}) -> refused: {s}"),
                other => bail!("on-event returned err({other:?}), expected a string"),
            },
            other => bail!(
                "on-event returned {other:?}, expected one result<string, string>; \
                 is this the example plugin?"
            ),
        }
    }

    // The plugin's instance state, read from the host side.
    let state = host
        .store()
        .instance(INSTANCE)
        .context("cannot open the plugin's state")?;
    println!("\nevents by kind (map `events`):");
    for (kind, count) in state.map_get_all("events").await? {
        println!("  {kind}: {}", String::from_utf8_lossy(&count));
    }
    println!("recent events, oldest first (list `recent`):");
    for item in state.list_range("recent", 0, -1).await? {
        println!("  {}", String::from_utf8_lossy(&item));
    }
    Ok(())
}
