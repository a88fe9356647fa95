//! `wasm-state export` and `wasm-state import`: state as JSON lines (the
//! format is in `wasm_state::admin::transfer`), through the running
//! server or on the data dir.

use std::io::{IsTerminal, Read, Write};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use wasm_state::admin::transfer::{self, ImportCounts, Selection, TransferError};

use crate::args::{ExportArgs, Global};
use crate::client::{Target, query};
use crate::settings::Settings;

/// A bar on a terminal's stderr; hidden when stderr is piped.
fn bar(len: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = match len {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {msg} {pos} lines")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    pb.set_message(what.to_string());
    pb
}

pub async fn export(global: &Global, a: ExportArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(global)?;
    let selection = match (&a.instance, &global.account, a.all) {
        (Some(i), _, false) => Selection::Instance(i.clone()),
        (None, _, true) => Selection::All,
        (None, Some(acct), false) => Selection::Account(acct.clone()),
        _ => bail!("say what to export: --instance NAME, --account NAME or --all"),
    };
    let pb = bar(None, "exporting");
    let mut out = std::io::BufWriter::new(std::io::stdout());
    match Target::open_existing(global, &settings).await? {
        Target::Local(admin) => {
            let mut emit = |line: String| {
                pb.inc(1);
                transfer::emitted(
                    writeln!(out, "{line}").map_err(|e| TransferError::Output(e.to_string())),
                )
            };
            transfer::export(admin.host().store(), &selection, &mut emit).await?;
        }
        Target::Remote(client) => {
            let q = match &selection {
                Selection::Instance(i) => query(&[("instance", Some(i))]),
                Selection::Account(acct) => query(&[("account", Some(acct))]),
                Selection::All => query(&[("all", Some("1"))]),
            };
            // Written as the lines come (the server streams at the
            // reader's pace), however long the export takes.
            client
                .stream("GET", &format!("/v1/export{q}"), Vec::new(), |line| {
                    if line.starts_with("{\"error\"") {
                        let v: serde_json::Value = serde_json::from_str(line)?;
                        bail!("{}", v["message"].as_str().unwrap_or(line));
                    }
                    writeln!(out, "{line}")?;
                    pb.inc(1);
                    Ok(())
                })
                .await?;
        }
    }
    out.flush().context("cannot write the export")?;
    pb.finish_and_clear();
    Ok(())
}

pub async fn import(global: &Global, file: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let settings = Settings::resolve(global)?;
    let mut text = String::new();
    match &file {
        Some(f) => {
            text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?;
        }
        None => {
            if std::io::stdin().is_terminal() {
                bail!("give the export on stdin (`wasm-state import < dump.jsonl`) or as a file");
            }
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the export from stdin (it must be UTF-8 JSON lines)")?;
        }
    }
    // Checked whole before anything is written (here, and again by a
    // server).
    let records = transfer::parse(&text)?;
    let counts: ImportCounts = match Target::open(global, &settings).await? {
        Target::Local(admin) => {
            let pb = bar(Some(records.len() as u64), "importing");
            let counts =
                transfer::import(admin.host().store(), records, &mut |n| pb.set_position(n))
                    .await?;
            pb.finish_and_clear();
            counts
        }
        Target::Remote(client) => {
            // The server checks it all, then streams its progress and the
            // counts (or the error): no time limit while it makes progress.
            let pb = bar(Some(records.len() as u64), "importing through the server");
            let mut counts = None;
            client
                .stream("POST", "/v1/import", text.into_bytes(), |line| {
                    let v: serde_json::Value = serde_json::from_str(line).with_context(|| {
                        format!("the server's import answer {line:?} is not JSON")
                    })?;
                    if let Some(done) = v["done"].as_u64() {
                        pb.set_position(done);
                    } else if v.get("counts").is_some() {
                        counts = Some(serde_json::from_value(v["counts"].clone())?);
                    } else if v.get("keys").is_some() {
                        // A server from before streaming: its counts alone.
                        counts = Some(serde_json::from_value(v)?);
                    } else {
                        bail!("{}", v["message"].as_str().unwrap_or(line));
                    }
                    Ok(())
                })
                .await?;
            pb.finish_and_clear();
            counts.context(
                "the server ended the import without its counts; run it again (an import resumes)",
            )?
        }
    };
    eprintln!(
        "imported {} instances, {} sessions, {} keys ({} expired, skipped)",
        counts.instances, counts.sessions, counts.keys, counts.skipped_expired
    );
    Ok(())
}
