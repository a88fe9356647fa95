//! Contract fuzzing of the Dapr-compatible API in CI: schemathesis (PyPI)
//! runs `docs/dapr-openapi.yaml` against the real `wasm-state serve
//! --dapr-listen` process, with every check (the exceptions and why are in
//! `tests/schemathesis.toml`): no 5xx, no answer the document does not
//! allow, no invalid input accepted, no valid input refused. Bounded and
//! seeded, so it is the same run every time (~20 s); the long mode is
//! `scripts/contract-fuzz.sh`.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The schemathesis release the document and the config are checked with.
const SCHEMATHESIS: &str = "4.32.5";
/// Examples per operation and phase, and the seed: a fixed run.
const MAX_EXAMPLES: &str = "25";
const SEED: &str = "20261205";
/// The whole run is ~20 s; past this something hangs.
const DEADLINE: Duration = Duration::from_secs(300);

/// The schemathesis command (`schemathesis` or `st`) of the pinned version.
fn schemathesis() -> &'static str {
    let mut found = Vec::new();
    for cmd in ["schemathesis", "st"] {
        if let Ok(out) = Command::new(cmd).arg("--version").output() {
            let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if version.ends_with(&format!("version {SCHEMATHESIS}")) {
                return cmd;
            }
            found.push(format!("`{cmd} --version`: {version:?}"));
        }
    }
    panic!(
        "this test needs schemathesis {SCHEMATHESIS} on PATH: pip install schemathesis=={SCHEMATHESIS}\n(found: {})",
        if found.is_empty() {
            "none".to_string()
        } else {
            found.join("; ")
        }
    );
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The server's log so far (it goes to a file: a pipe nobody reads would
/// fill up and stall the server).
fn log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits for `child` to exit within `deadline`, or kills it.
fn wait(child: &mut Child, deadline: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_api_keeps_its_openapi_contract_under_schemathesis() {
    let st = schemathesis();
    let root = common::workspace_root();
    let dir = tempfile::tempdir().unwrap();
    let server_log = dir.path().join("server.log");
    let addr = free_addr();
    let token = format!("contract-{}", std::process::id());
    let mut server = Command::new(common::binary("wasm-state"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(["serve", "--dapr-listen", &addr.to_string()])
        .env("DAPR_API_TOKEN", &token)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&server_log).unwrap())
        .spawn()
        .expect("start wasm-state serve");
    let started = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            server.try_wait().unwrap().is_none(),
            "serve exited early:\n{}",
            log(&server_log)
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Run in the temporary directory: schemathesis keeps a cache
    // (`.schemathesis/`) in its working directory.
    let work = dir.path().join("schemathesis");
    std::fs::create_dir(&work).unwrap();
    let mut run = Command::new(st)
        .current_dir(&work)
        .arg("--config-file")
        .arg(root.join("tests/schemathesis.toml"))
        .arg("run")
        .arg(root.join("docs/dapr-openapi.yaml"))
        .args(["--url", &format!("http://{addr}")])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
        .args([
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--no-color",
        ])
        .env("DAPR_API_TOKEN", &token)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {st}: {e}"));
    // Drain stderr on a thread while stdout is read here, so neither pipe
    // fills up.
    let mut stderr = run.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut stdout = run.stdout.take().unwrap();
    let output = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let status = wait(&mut run, DEADLINE);
    let output = format!("{}{}", output.join().unwrap(), errors.join().unwrap());
    let took = started.elapsed();

    let server_alive = server.try_wait().unwrap().is_none();
    // SAFETY: sends SIGTERM to our own child process; no memory is involved.
    unsafe { libc::kill(i32::try_from(server.id()).unwrap(), libc::SIGTERM) };
    let server_status = wait(&mut server, Duration::from_secs(30));
    let server_log = log(&server_log);

    let Some(status) = status else {
        panic!("schemathesis did not finish within {DEADLINE:?}:\n{output}");
    };
    assert!(
        status.success() && output.contains("No issues found"),
        "schemathesis found contract violations ({status}); the document is docs/dapr-openapi.yaml, the run is reproducible with `--seed {SEED}`:\n{output}"
    );
    assert!(
        server_alive && !server_log.contains("panicked"),
        "the server died or panicked under the fuzzing:\n{server_log}"
    );
    assert!(
        server_status.is_some_and(|s| s.success()),
        "the server did not shut down cleanly ({server_status:?})"
    );
    eprintln!("schemathesis ran clean in {took:?}");
}
