//! Helpers shared by the end-to-end tests: a host on a temporary data
//! directory and the `probe` guest (one command per argument, one output
//! line per command).

#![allow(dead_code)] // each test crate uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;
use wasm_state::runtime::{Host, HostConfig, RunOptions};

/// A host with default settings on `dir`, with `probe` deployed as each of
/// `instances`.
pub async fn host_with_probes(dir: &Path, instances: &[&str]) -> Host {
    let host = Host::open(HostConfig::new(dir)).expect("open host");
    deploy_probes(&host, instances).await;
    host
}

/// Deploys `probe` as each of `instances`.
pub async fn deploy_probes(host: &Host, instances: &[&str]) {
    for name in instances {
        host.deploy_file(name, Path::new(wasm_state_e2e::PROBE))
            .await
            .expect("deploy probe");
    }
}

/// Runs the probe deployed as `instance` with `commands` and returns its
/// output lines, one per command (asserting it ran them all).
pub async fn probe(host: &Host, instance: &str, commands: &[&str]) -> Vec<String> {
    let out = host
        .run(
            instance,
            RunOptions {
                args: commands.iter().map(|c| c.to_string()).collect(),
                capture: true,
                ..Default::default()
            },
        )
        .await
        .expect("run probe");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.exit_code, 0,
        "probe {commands:?} failed:\n{stdout}\n{stderr}"
    );
    let lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
    assert_eq!(
        lines.len(),
        commands.len(),
        "one line per command: {commands:?} -> {lines:?}\n{stderr}"
    );
    lines
}

/// Runs one probe command and returns its output line.
pub async fn probe1(host: &Host, instance: &str, command: &str) -> String {
    probe(host, instance, &[command]).await.remove(0)
}

/// A probe output line as JSON (panics on `error:` lines).
pub fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"))
}

/// The string of a JSON string line (an etag, a session id field…).
pub fn string(line: &str) -> String {
    json(line)
        .as_str()
        .unwrap_or_else(|| panic!("not a JSON string: {line:?}"))
        .to_owned()
}

/// The `id` of a session line printed by `session-create` / `session-open`.
pub fn session_id(line: &str) -> String {
    json(line)["id"]
        .as_str()
        .unwrap_or_else(|| panic!("not a session: {line:?}"))
        .to_owned()
}

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The example binaries run in their own processes: the `wasm-state` CLI and
/// `plugin-host`, built once by cargo (which says where it put them, wherever
/// the target directory is).
pub fn binary(name: &str) -> &'static Path {
    static BINS: OnceLock<Vec<(String, PathBuf)>> = OnceLock::new();
    let bins = BINS.get_or_init(|| {
        let out = Command::new(env!("CARGO"))
            .current_dir(workspace_root())
            .args([
                "build",
                "-q",
                "-p",
                "wasm-state-host",
                "--bin",
                "wasm-state",
                "-p",
                "plugin-host",
                "--bin",
                "plugin-host",
                "--message-format=json",
            ])
            .output()
            .expect("run cargo build");
        assert!(
            out.status.success(),
            "cargo build of the example binaries failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact")
            .filter_map(|m| {
                let exe = m["executable"].as_str()?;
                Some((m["target"]["name"].as_str()?.to_owned(), PathBuf::from(exe)))
            })
            .collect()
    });
    bins.iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p.as_path())
        .unwrap_or_else(|| panic!("cargo did not report the {name} executable: {bins:?}"))
}
