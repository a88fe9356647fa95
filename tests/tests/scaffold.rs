//! `wasm-state new`: each template scaffolds a crate that builds offline with
//! plain `cargo build --release --target wasm32-wasip2` and runs right away
//! (http with `serve`, command with `run`, plugin with `call`), keeping its
//! state; and `new` refuses existing directories, bad names and bad SDK
//! options without writing anything.
//!
//! The crates are built into the guests' shared target directory
//! (`target/wasm-guests`), so the dependencies already built for the examples
//! are reused; the `.wasm` is then copied where a plain build puts it
//! (`target/wasm32-wasip2/release/` in the crate), which the README and
//! manifest name.

mod common;
mod http_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{binary, workspace_root};
use http_support::{ServeProcess, get};
use hyper::StatusCode;

/// `wasm-state ARGS…` in `dir`, with no state settings from the environment.
fn wasm_state(dir: &Path, args: &[&str]) -> Output {
    Command::new(binary("wasm-state"))
        .current_dir(dir)
        .args(args)
        .env_remove("WASM_STATE_DATA")
        .env_remove("WASM_STATE_STORE")
        .env_remove("WASM_STATE_ACCOUNT")
        .output()
        .expect("run wasm-state")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `wasm-state new NAME --template TEMPLATE` in `dir`: the new crate's directory.
fn scaffold(dir: &Path, name: &str, template: &str) -> PathBuf {
    let out = wasm_state(dir, &["new", name, "--template", template]);
    assert!(
        out.status.success(),
        "wasm-state new {name} --template {template} failed:\n{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("cargo build --release --target wasm32-wasip2"),
        "{}",
        stdout(&out)
    );
    let krate = dir.join(name);
    // Its own workspace, the release profile of the examples, the SDK of
    // this checkout by path.
    let manifest = read(&krate.join("Cargo.toml"));
    assert!(
        manifest.contains(&format!("name = \"{name}\"")),
        "{manifest}"
    );
    assert!(manifest.contains("\n[workspace]\n"), "{manifest}");
    assert!(
        manifest.contains("[profile.release]\nopt-level = \"s\"\nlto = true"),
        "{manifest}"
    );
    let sdk = workspace_root().join("guest-sdk").canonicalize().unwrap();
    assert!(
        manifest.contains(&format!(
            "wasm-state-sdk = {{ path = \"{}\" }}",
            sdk.display()
        )),
        "{manifest}"
    );
    assert!(read(&krate.join(".gitignore")).contains("target/"));
    let readme = read(&krate.join("README.md"));
    assert!(
        (3..=10).contains(&readme.lines().count()),
        "README of {} lines:\n{readme}",
        readme.lines().count()
    );
    assert!(
        readme.contains("cargo build --release --target wasm32-wasip2"),
        "{readme}"
    );
    krate
}

/// Builds `krate` as its README says, offline, into the shared guest target
/// directory, with no warnings; copies the component to
/// `target/wasm32-wasip2/release/` in the crate and returns that path,
/// relative to the crate (as the README and manifest should name it).
fn build(krate: &Path) -> String {
    let mut cmd = Command::new(env!("CARGO"));
    // A clean environment, as tests/build.rs builds the guests: nothing of
    // the outer cargo's settings leaks in (and the fingerprints match).
    cmd.env_clear();
    for var in [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
        "TMPDIR",
    ] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    let out = cmd
        .current_dir(krate)
        .env(
            "CARGO_TARGET_DIR",
            workspace_root().join("target").join("wasm-guests"),
        )
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--offline",
            "--message-format=json",
        ])
        .output()
        .expect("run cargo build");
    let messages: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let diagnostics: Vec<&str> = messages
        .iter()
        .filter(|m| m["reason"] == "compiler-message")
        .filter_map(|m| m["message"]["rendered"].as_str())
        .collect();
    assert!(
        out.status.success(),
        "cargo build of {} failed:\n{}\n{}",
        krate.display(),
        diagnostics.join("\n"),
        stderr(&out)
    );
    assert!(
        diagnostics.is_empty(),
        "the scaffolded crate {} builds with diagnostics:\n{}",
        krate.display(),
        diagnostics.join("\n")
    );
    let manifest_path = krate.join("Cargo.toml").canonicalize().unwrap();
    let built: Vec<PathBuf> = messages
        .iter()
        .filter(|m| {
            m["reason"] == "compiler-artifact"
                && m["manifest_path"].as_str().map(Path::new) == Some(manifest_path.as_path())
        })
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .filter(|f| f.extension().is_some_and(|x| x == "wasm"))
        .collect();
    let [wasm] = built.as_slice() else {
        panic!("expected one .wasm from {}, got {built:?}", krate.display());
    };
    let file = wasm.file_name().unwrap().to_str().unwrap();
    let rel = format!("target/wasm32-wasip2/release/{file}");
    std::fs::create_dir_all(krate.join("target/wasm32-wasip2/release")).unwrap();
    std::fs::copy(wasm, krate.join(&rel)).expect("copy the component");
    rel
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_template_serves_and_keeps_state_between_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let name = "scaffold-e2e-http";
    let krate = scaffold(tmp.path(), name, "http");
    let wasm = build(&krate);
    assert_eq!(wasm, format!("target/wasm32-wasip2/release/{name}.wasm"));

    // The manifest serves it at / on 8080, with its state next to it.
    let manifest = read(&krate.join("wasm-state.toml"));
    for line in [
        "account = \"default\"",
        "[store]\ndata = \".wasm-state\"",
        "[limits]\ndeadline_seconds = 10\nmemory_mib = 64",
        "[server]\nlisten = \"127.0.0.1:8080\"",
        &format!("[[apps]]\nname = \"{name}\"\ncomponent = \"{wasm}\"\nroute = \"/\""),
    ] {
        assert!(manifest.contains(line), "no {line:?} in:\n{manifest}");
    }
    assert!(read(&krate.join("README.md")).contains("wasm-state serve"));

    // `wasm-state serve` with the manifest alone (on a free port rather
    // than 8080): the component at /, state in the crate's .wasm-state/.
    let manifest_path = krate.join("wasm-state.toml");
    let serve = ServeProcess::start(&[], &["--manifest", manifest_path.to_str().unwrap()]).await;

    // Instance state: the visit count persists from one request to the next.
    for n in 1..=2 {
        let r = get(serve.addr, "/", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, format!("Hello from {name}! Visits: {n}\n"));
    }

    // The echo.
    let r = get(serve.addr, "/echo?msg=hi&x=1", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let echo: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        echo,
        serde_json::json!({"method": "GET", "path": "/echo", "query": {"msg": "hi", "x": "1"}})
    );

    // Session state: a new session comes back in a header and a cookie, and
    // counts on when the next request names it.
    let r = get(serve.addr, "/session", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let id = r.headers["x-session-id"].to_str().unwrap().to_owned();
    assert!(
        r.headers["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with(&format!("wasm_state_session={id}")),
        "{:?}",
        r.headers
    );
    let first: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(first, serde_json::json!({"session": id, "visits": 1}));
    let r = get(serve.addr, "/session", &[("x-session-id", &id)]).await;
    assert!(r.headers.get("x-session-id").is_none(), "{:?}", r.headers);
    let second: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(second, serde_json::json!({"session": id, "visits": 2}));

    let r = get(serve.addr, "/nowhere", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // The instance count was not touched by the other routes.
    let r = get(serve.addr, "/", &[]).await;
    assert_eq!(r.body, format!("Hello from {name}! Visits: 3\n"));
    assert!(
        krate.join(".wasm-state").is_dir(),
        "the state is kept next to the manifest"
    );
}

#[test]
fn command_template_counts_in_instance_state_across_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let name = "scaffold-e2e-command";
    let krate = scaffold(tmp.path(), name, "command");
    let wasm = build(&krate);
    assert_eq!(wasm, format!("target/wasm32-wasip2/release/{name}.wasm"));
    assert!(
        read(&krate.join("README.md")).contains(&format!("wasm-state run {wasm}")),
        "the README runs {wasm}"
    );
    let manifest = read(&krate.join("wasm-state.toml"));
    assert!(
        manifest.contains("[store]\ndata = \".wasm-state\"") && !manifest.contains("[[apps]]"),
        "{manifest}"
    );

    // As the README says, in the crate's directory (state in .wasm-state/).
    let run = |args: &[&str]| {
        let mut all = vec!["run", wasm.as_str()];
        if !args.is_empty() {
            all.push("--");
            all.extend_from_slice(args);
        }
        wasm_state(&krate, &all)
    };
    for (args, expected) in [
        (&[][..], "count: 1\n"),
        (&[][..], "count: 2\n"),
        (&["10"][..], "count: 12\n"),
    ] {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), expected, "{args:?}");
    }
    assert!(krate.join(".wasm-state").is_dir());

    // A bad argument: exit 1, why and the usage on stderr, nothing counted.
    let out = run(&["ten"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("BY must be a whole number, not \"ten\"")
            && stderr(&out).contains(&format!("usage: {name} [BY]")),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&run(&[])), "count: 13\n");
}

#[test]
fn plugin_template_is_called_with_wasm_state_call() {
    let tmp = tempfile::tempdir().unwrap();
    let name = "scaffold-e2e-plugin";
    let krate = scaffold(tmp.path(), name, "plugin");
    let wasm = build(&krate);
    // A cdylib: cargo names the file with `_` for `-`, and so do the docs.
    assert_eq!(
        wasm,
        "target/wasm32-wasip2/release/scaffold_e2e_plugin.wasm"
    );
    assert!(
        read(&krate.join("README.md")).contains(&format!("wasm-state call {wasm} on-event")),
        "the README calls {wasm}"
    );
    assert!(read(&krate.join("Cargo.toml")).contains("crate-type = [\"cdylib\"]"));
    assert!(read(&krate.join("wit/plugin.wit")).contains(
        "export on-event: func(kind: string, payload: string) -> result<string, string>;"
    ));
    assert!(!read(&krate.join("wasm-state.toml")).contains("[[apps]]"));

    let help = stdout(&wasm_state(&krate, &["--help"]));
    assert!(
        help.lines().any(|l| l.trim_start().starts_with("call ")),
        "this wasm-state has no `call` command to try the plugin with:\n{help}"
    );
    // The ok string of result<string, string> on stdout; the count is kept
    // in instance state between calls.
    for n in 1..=2 {
        let out = wasm_state(&krate, &["call", &wasm, "on-event", "click", "hello"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), format!("click #{n}: hello\n"));
    }
    let out = wasm_state(&krate, &["call", &wasm, "on-event", "view", "/home"]);
    assert_eq!(stdout(&out), "view #1: /home\n", "{}", stderr(&out));
    // The error string on stderr, exit 1.
    let out = wasm_state(&krate, &["call", &wasm, "on-event", "", "x"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("the event kind must not be empty"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn new_refuses_existing_dirs_bad_names_and_bad_sdk_options() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let entries = || {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };

    // An existing directory (or file) is left alone.
    std::fs::create_dir(dir.join("taken")).unwrap();
    std::fs::write(dir.join("taken/keep.txt"), "mine").unwrap();
    std::fs::write(dir.join("file"), "mine").unwrap();
    for name in ["taken", "file"] {
        let out = wasm_state(dir, &["new", name]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains(&format!("{name} already exists")),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(read(&dir.join("taken/keep.txt")), "mine");
    assert_eq!(read(&dir.join("file")), "mine");
    assert_eq!(
        std::fs::read_dir(dir.join("taken")).unwrap().count(),
        1,
        "nothing written into the existing directory"
    );

    // Names that are no crate name say what is allowed.
    for name in ["My-Guest", "1st", "-x", "a b", "a/b", "../up", "guest!", ""] {
        let out = wasm_state(dir, &["new", "--template", "command", "--", name]);
        assert_eq!(out.status.code(), Some(1), "{name:?} accepted");
        assert!(
            stderr(&out).contains("not a valid crate name")
                && stderr(&out).contains("lowercase ASCII letters, digits, '-' and '_'"),
            "{name:?}: {}",
            stderr(&out)
        );
    }
    for (name, says) in [
        ("fn", "is a Rust keyword"),
        ("test", "is reserved"),
        ("wasm-state-sdk", "is reserved"),
    ] {
        let out = wasm_state(dir, &["new", name]);
        assert_eq!(out.status.code(), Some(1), "{name:?} accepted");
        assert!(stderr(&out).contains(says), "{name:?}: {}", stderr(&out));
    }

    // SDK options: a directory without the SDK, and both at once, are refused.
    let out = wasm_state(dir, &["new", "guest", "--sdk-path", "taken"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no Cargo.toml of the wasm-state-sdk crate"),
        "{}",
        stderr(&out)
    );
    let out = wasm_state(
        dir,
        &["new", "guest", "--sdk-path", "taken", "--sdk-git", "x"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
    assert_eq!(entries(), ["file", "taken"], "nothing was created");

    // …and good ones land in Cargo.toml: a git URL, or a relative path made
    // absolute.
    let out = wasm_state(
        dir,
        &[
            "new",
            "from-git",
            "--sdk-git",
            "https://example.invalid/ws.git",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        read(&dir.join("from-git/Cargo.toml"))
            .contains("wasm-state-sdk = { git = \"https://example.invalid/ws.git\" }")
    );
    let sdk = workspace_root().join("guest-sdk");
    std::fs::create_dir(dir.join("sub")).unwrap();
    let relative = pathdiff(&sdk, &dir.join("sub"));
    let out = wasm_state(
        &dir.join("sub"),
        &["new", "from-path", "-t", "plugin", "--sdk-path", &relative],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        read(&dir.join("sub/from-path/Cargo.toml")).contains(&format!(
            "wasm-state-sdk = {{ path = \"{}\" }}",
            sdk.canonicalize().unwrap().display()
        ))
    );
}

/// `to` relative to `from` (both absolute): `../..` up to the root, then down.
fn pathdiff(to: &Path, from: &Path) -> String {
    let ups = from.canonicalize().unwrap().components().count() - 1;
    let mut rel = "../".repeat(ups);
    rel.push_str(to.to_str().unwrap().trim_start_matches('/'));
    rel
}
