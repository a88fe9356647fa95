//! Builds the guest programs of `tests/guests/` and `examples/guests/` for
//! `wasm32-wasip2` (release) and tells the tests where the `.wasm` files are,
//! so `cargo test` alone builds and runs everything end to end. The model is
//! wasmtime's `crates/test-programs/artifacts`.

use std::path::{Path, PathBuf};
use std::process::Command;

const WORKSPACES: [&str; 2] = ["tests/guests", "examples/guests"];
const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("workspace root").to_path_buf();
    let target_dir = root.join("target").join("wasm-guests");
    for dir in [
        "tests/guests",
        "examples/guests",
        "guest-sdk/src",
        "guest-sdk/Cargo.toml",
        "wit",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let mut consts = String::new();
    for ws in WORKSPACES {
        build(&root.join(ws), &target_dir);
    }
    let out = target_dir.join(TARGET).join("release");
    let mut wasm: Vec<PathBuf> = std::fs::read_dir(&out)
        .expect("guest output directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    wasm.sort();
    for path in wasm {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("file name");
        let name = stem.to_uppercase().replace('-', "_");
        consts.push_str(&format!(
            "/// `{stem}.wasm`, built for {TARGET}.\npub const {name}: &str = {:?};\n",
            path.display().to_string()
        ));
    }
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("guests.rs");
    std::fs::write(dest, consts).expect("write guests.rs");
}

/// `cargo build --release --target wasm32-wasip2` of one guest workspace, in
/// a clean environment (nothing of the outer cargo's flags or wrappers leaks in).
fn build(workspace: &Path, target_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.env_clear();
    for var in [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
        "TMPDIR",
    ] {
        if let Ok(v) = std::env::var(var) {
            cmd.env(var, v);
        }
    }
    cmd.args([
        "build",
        "--release",
        "--locked",
        "--target",
        TARGET,
        "--manifest-path",
    ])
    .arg(workspace.join("Cargo.toml"))
    .arg("--target-dir")
    .arg(target_dir);
    let status = cmd.status().expect("run cargo for the guests");
    assert!(
        status.success(),
        "building the guests in {} failed; is the target installed? (`rustup target add {TARGET}`)",
        workspace.display()
    );
}
