//! `wasm-state run` and `wasm-state call`: through the running server's
//! admin socket (its store serializes the writes with everyone else's), or
//! on the data dir directly.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use wasm_state::admin::ops::{CallRequest, CallResponse, RunRequest, RunResponse};
use wasm_state::runtime::{GuestLimits, RunOptions, WatchScope};

use crate::args::{CallArgs, Global, RunArgs};
use crate::client::Target;
use crate::settings::Settings;

/// `NAME=instance,sessions,account`.
pub fn parse_watch(spec: &str) -> anyhow::Result<(String, Vec<WatchScope>)> {
    let usage = "write NAME=SCOPES, SCOPES a comma-separated list of instance, sessions, account";
    let Some((name, scopes)) = spec.split_once('=') else {
        bail!("--watch {spec:?}: no '='; {usage}");
    };
    if name.is_empty() {
        bail!("--watch {spec:?}: the instance name is empty; {usage}");
    }
    let scopes = scopes
        .split(',')
        .map(|s| s.trim().parse::<WatchScope>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("--watch {spec:?}: {e}; {usage}"))?;
    Ok((name.to_string(), scopes))
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The instance name: given, or the file name without extension.
fn instance_name(given: &Option<String>, component: &Path) -> anyhow::Result<String> {
    match given {
        Some(n) => Ok(n.clone()),
        None => match component.file_stem().and_then(|s| s.to_str()) {
            Some(s) => Ok(s.to_string()),
            None => bail!(
                "cannot name the instance after {}; pass --instance NAME",
                component.display()
            ),
        },
    }
}

fn read_component(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read component {}", path.display()))
}

/// The most stdin a run through a server takes (it travels in one request
/// and waits in the server's memory), as the output it captures.
const MAX_REMOTE_STDIN: u64 = 16 << 20;

/// Stdin for a run through a server: all of it, when it is a pipe or a
/// file (not a terminal) and `--no-stdin` was not given.
fn remote_stdin(no_stdin: bool) -> anyhow::Result<Option<Vec<u8>>> {
    if no_stdin || std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let mut buf = Vec::new();
    std::io::stdin()
        .take(MAX_REMOTE_STDIN + 1)
        .read_to_end(&mut buf)
        .context("cannot read stdin")?;
    if buf.len() as u64 > MAX_REMOTE_STDIN {
        bail!(
            "stdin holds over {} MiB; a run through the running server takes at most that \
             much input (pass a file name in the guest's arguments instead, or stop the \
             server to run on the data dir, where stdin streams)",
            MAX_REMOTE_STDIN >> 20
        );
    }
    Ok(Some(buf))
}

pub async fn run(global: &Global, a: RunArgs) -> anyhow::Result<ExitCode> {
    let name = instance_name(&a.instance, &a.component)?;
    if a.deadline == 0 || a.memory == Some(0) {
        bail!("--deadline and --memory must be at least 1");
    }
    let limits = GuestLimits {
        deadline: Duration::from_secs(a.deadline),
        memory_bytes: a.memory.unwrap_or(256).saturating_mul(1 << 20),
    };
    let settings = Settings::resolve(global)?;
    let wasm = read_component(&a.component)?;
    let target = Target::open_with(global, &settings, limits).await?;
    let no_session = |id: Option<String>| {
        anyhow::anyhow!(
            "session {:?} of instance {name:?} does not exist or has expired; run without --session to start a new one (`wasm-state sessions list -i {name}` shows live ones)",
            id.unwrap_or_default()
        )
    };
    let exit_code = match target {
        Target::Local(admin) => {
            let options = RunOptions {
                args: a.args,
                session: a.session.clone(),
                stdin: a.no_stdin.then(Vec::new),
                ..RunOptions::default()
            };
            match admin.host().run_once(&name, &wasm, options).await {
                Ok(out) => out.exit_code,
                Err(wasm_state::runtime::HostError::State(
                    wasm_state::store::StateError::NoSuchSession,
                )) => return Err(no_session(a.session)),
                Err(e) => return Err(e).context(format!("instance {name:?} failed")),
            }
        }
        Target::Remote(client) => {
            // The guest runs in the server; what it reads is our stdin when
            // that is a pipe or file (not a terminal).
            let stdin = remote_stdin(a.no_stdin)?.map(|b| b64().encode(b));
            let req = RunRequest {
                component_base64: b64().encode(&wasm),
                instance: name.clone(),
                session: a.session.clone(),
                args: a.args,
                stdin_base64: stdin,
                deadline_seconds: Some(a.deadline),
                memory_mib: a.memory,
            };
            let out: RunResponse = match client
                .json("POST", "/v1/run", serde_json::to_vec(&req)?)
                .await
            {
                Ok(o) => o,
                Err(e) if e.to_string().starts_with("no such session") => {
                    return Err(no_session(a.session));
                }
                Err(e) => return Err(e).context(format!("instance {name:?} failed")),
            };
            std::io::stdout().write_all(&b64().decode(&out.stdout_base64)?)?;
            std::io::stderr().write_all(&b64().decode(&out.stderr_base64)?)?;
            std::io::stdout().flush()?;
            out.exit_code
        }
    };
    Ok(ExitCode::from(
        u8::try_from(exit_code.clamp(0, 255)).unwrap_or(1),
    ))
}

pub async fn call(global: &Global, a: CallArgs) -> anyhow::Result<ExitCode> {
    let name = instance_name(&a.instance, &a.component)?;
    let settings = Settings::resolve(global)?;
    let wasm = read_component(&a.component)?;
    let req = CallRequest {
        component_base64: b64().encode(&wasm),
        instance: name.clone(),
        function: a.function.clone(),
        args: a.args,
    };
    let out: CallResponse = match Target::open(global, &settings).await? {
        Target::Local(admin) => admin.call(req).await?,
        Target::Remote(client) => {
            client
                .json("POST", "/v1/call", serde_json::to_vec(&req)?)
                .await?
        }
    };
    // One `result<T, E>`: print T (exit 0) or E (on stderr, exit 1).
    if let [one] = out.results.as_slice()
        && let Some(obj) = one.as_object()
        && obj.len() == 1
    {
        let show = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        if let Some(v) = obj.get("ok") {
            println!("{}", show(v));
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(v) = obj.get("err") {
            eprintln!("{}", show(v));
            return Ok(ExitCode::FAILURE);
        }
    }
    for r in &out.results {
        match r {
            serde_json::Value::String(s) => println!("{s}"),
            other => println!("{other}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
