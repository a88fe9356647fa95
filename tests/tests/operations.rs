//! Operating wasm-state from the CLI, as a user would: many commands on one
//! data dir with and without a server (through its admin socket, or waiting
//! for the file), deploys without a restart, the manifest, `call`, and the
//! admin listener's metrics — all with the real `wasm-state` binary.

mod common;
mod http_support;
#[path = "../../host/tests/support/redis_server.rs"]
mod redis_server;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use http_support::ServeProcess;

fn cli(data: &Path, args: &[&str]) -> Output {
    Command::new(common::binary("wasm-state"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("WASM_STATE_DATA")
        .output()
        .expect("run wasm-state")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A POST to the admin API on its Unix socket (HTTP/1.1, the connection
/// closed after): the status and the body.
async fn admin_raw(sock: &Path, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(sock)
        .await
        .expect("the admin socket");
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\nx-wasm-state-admin: 1\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text[9..12].parse().expect("a status");
    let (head, rest) = text.split_once("\r\n\r\n").expect("a head");
    // A streamed answer is chunked: the lines are between chunk sizes.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut b = String::new();
        let mut r = rest;
        while let Some((size, after)) = r.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            b.push_str(&after[..n]);
            r = &after[n + 2..];
        }
        b
    } else {
        rest.to_string()
    };
    (status, body)
}

/// A child process killed (and reaped) when dropped, even by a failing test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Four `run`s of a compare-and-swap increment loop at once: every one
/// succeeds and no increment is lost.
fn four_parallel_cas_runs(data: &Path, key: &str) {
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(common::binary("wasm-state"))
                .arg("--data")
                .arg(data)
                .args(["run", "-i", "counter", wasm_state_e2e::KV_DRAFT2, "--"])
                .args(["cas-incr", "default", key, "25"])
                .output()
        })
        .collect();
    for c in children {
        ok(&c.expect("run"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_commands_share_one_data_dir_with_and_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // No server: four runs started together wait for each other's file
    // lock instead of failing.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let data = data.clone();
            std::thread::spawn(move || {
                Command::new(common::binary("wasm-state"))
                    .arg("--data")
                    .arg(&data)
                    .args(["run", "-i", "counter", wasm_state_e2e::KV_DRAFT2, "--"])
                    .args(["cas-incr", "default", "n", "25"])
                    .output()
                    .unwrap()
            })
        })
        .collect();
    for h in handles {
        ok(&h.join().unwrap());
    }
    assert_eq!(
        ok(&cli(&data, &["state", "get", "n", "-i", "counter"])).trim(),
        "100"
    );

    // A server on the same data dir: every command goes through its socket.
    let global = ["--data", data.to_str().unwrap()];
    let serve = ServeProcess::start(&global, &[wasm_state_e2e::KV_COUNTER]).await;
    let sock = data.join("admin.sock");
    assert!(sock.exists());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600,
        "the admin socket is owner-only"
    );
    for _ in 0..3 {
        let r = http_support::post(serve.addr, "/hit", &[], "").await;
        assert_eq!(r.status, 200);
    }
    // What the server just wrote, seen by `state dump` while it runs.
    let dump = ok(&cli(&data, &["state", "dump", "-i", "kv-counter"]));
    let line: serde_json::Value = serde_json::from_str(dump.lines().next().unwrap()).unwrap();
    assert_eq!(line["key"], "hits");
    assert_eq!(line["value"], 3);
    // Parallel runs through the server: exact again.
    four_parallel_cas_runs(&data, "n");
    assert_eq!(
        ok(&cli(&data, &["state", "get", "n", "-i", "counter"])).trim(),
        "200"
    );
    // Writes from the CLI reach the server's guests.
    ok(&cli(
        &data,
        &["state", "set", "hits", "41", "-i", "kv-counter"],
    ));
    let r = http_support::post(serve.addr, "/hit", &[], "").await;
    assert_eq!(r.body.trim(), "42");
    let keys = ok(&cli(&data, &["state", "keys", "-i", "counter"]));
    assert_eq!(keys.trim(), "n");
    let list = ok(&cli(&data, &["instances", "list"]));
    assert!(
        list.contains("counter\taccount=default") && list.contains("kv-counter"),
        "{list}"
    );
    // Errors come back with the server's message.
    let e = err(&cli(&data, &["state", "get", "nope", "-i", "counter"]));
    assert!(e.contains("no key \"nope\""), "{e}");
    let e = err(&cli(&data, &["sessions", "end", "-i", "counter", "zzz"]));
    assert!(e.contains("no live session"), "{e}");
    // A session-scoped run through the server.
    let e = err(&cli(
        &data,
        &[
            "run",
            "-i",
            "counter",
            "--session",
            "gone",
            wasm_state_e2e::KV_DRAFT2,
            "--",
            "get",
            "default",
            "n",
        ],
    ));
    assert!(e.contains("does not exist or has expired"), "{e}");
    drop(serve);

    // The server was SIGKILLed: its socket file is stale. Commands notice
    // nobody answers and open the file themselves.
    assert!(sock.exists(), "a killed server leaves its socket");
    assert_eq!(
        ok(&cli(&data, &["state", "get", "hits", "-i", "kv-counter"])).trim(),
        "42"
    );
    // And a new server replaces the stale socket.
    let serve = ServeProcess::start(&global, &[wasm_state_e2e::KV_COUNTER]).await;
    assert_eq!(
        ok(&cli(&data, &["state", "get", "n", "-i", "counter"])).trim(),
        "200"
    );
    drop(serve);
}

/// Session ids are URL-safe base64 and one in 64 starts with `-`:
/// `--session` takes them as they are; negative numbers are values; a
/// positional id or key starting with `-` goes after `--`; and an option's
/// value written next to it (`-ix`) stays the option's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_ids_and_negative_values_starting_with_a_hyphen_are_taken_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let id = "-mQ2x_Ab3dEfGhIjKlMnOp";
    {
        let store =
            wasm_state::store::Store::open(data.join("state.redb"), Default::default()).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        store
            .restore_session("x", id, now + 3_600_000)
            .await
            .unwrap();
    }
    ok(&cli(
        &data,
        &["state", "set", "-i", "x", "--session", id, "--", "-k", "-5"],
    ));
    ok(&cli(
        &data,
        &["state", "set", "-ix", "n", "--ttl", "60", "-7"],
    ));
    assert_eq!(
        ok(&cli(
            &data,
            &["state", "get", "-i", "x", "-s", id, "--", "-k"]
        ))
        .trim(),
        "-5"
    );
    assert_eq!(ok(&cli(&data, &["state", "get", "-ix", "n"])).trim(), "-7");
    assert!(ok(&cli(&data, &["sessions", "list", "-i", "x"])).contains(id));
    // A positional id starting with `-` goes after `--` (clap's error says
    // so); an option-attached value before it (`-ix`) stays the option's.
    let e = err(&cli(&data, &["sessions", "end", "-i", "x", id]));
    assert!(e.contains("-- "), "{e}");
    ok(&cli(&data, &["sessions", "end", "-ix", "--", id]));
    let e = err(&cli(
        &data,
        &["state", "get", "-i", "x", "-s", id, "--", "-k"],
    ));
    assert!(e.contains(id), "{e}");
    // An option's value written next to it (`-ix`) before a key is the
    // option's, not a key.
    let e = err(&cli(&data, &["state", "set", "--shared", "-ix", "v"]));
    assert!(e.contains("cannot be used with"), "{e}");
    ok(&cli(&data, &["state", "delete", "-ix", "n"]));
}

/// Configuration mistakes are errors that name the flag, change nothing
/// and never repeat a password.
#[test]
fn configuration_mistakes_name_the_flag_and_hide_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(common::binary("wasm-state"))
            .current_dir(dir.path())
            .env_remove("WASM_STATE_DATA")
            .env_remove("WASM_STATE_STORE")
            .env_remove("WASM_STATE_MANIFEST")
            .args(args)
            .output()
            .expect("run wasm-state")
    };
    // A --store that is not a Redis URL is not taken as a file name.
    let e = err(&run(&[
        "--store",
        "127.0.0.1:6379",
        "state",
        "set",
        "k",
        "1",
        "--shared",
    ]));
    assert!(
        e.contains("is not a Redis URL") && e.contains("--store"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing made"
    );
    // A password in the store URL is never printed.
    let e = err(&run(&[
        "--busy-timeout",
        "1",
        "--store",
        "redis://:hunter2@127.0.0.1:1?timeout_ms=200",
        "state",
        "keys",
        "--shared",
    ]));
    assert!(!e.contains("hunter2"), "{e}");
    assert!(e.contains("***"), "{e}");
    // Pool and memory sizes past what a host can hold name their flag.
    let e = err(&run(&["serve", "--max-instances", "1073741824"]));
    assert!(e.contains("--max-instances"), "{e}");
    let e = err(&run(&["serve", "--memory", "5000"]));
    assert!(e.contains("--memory"), "{e}");
}

/// Commands that read (or remove) on a data dir that does not exist say
/// so and leave nothing behind; a write makes the store.
#[test]
fn reading_a_data_dir_that_does_not_exist_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let nope = dir.path().join("nope");
    for args in [
        &["export", "--all"][..],
        &["instances", "list"],
        &["sessions", "list", "-i", "shop"],
        &["state", "keys", "-i", "shop"],
        &["state", "get", "k", "-i", "shop"],
    ] {
        let e = err(&cli(&nope, args));
        assert!(
            e.contains("there is no data dir at") && e.contains("nope"),
            "{args:?}: {e}"
        );
        assert!(!nope.exists(), "{args:?} made the data dir");
    }
    // A write refused for its arguments makes no data dir either.
    for (args, says) in [
        (&["state", "set", "k", "1"][..], "say which state"),
        (
            &["state", "set", "k", "1", "-i", "shop", "--ttl", "0"],
            "--ttl",
        ),
    ] {
        let e = err(&cli(&nope, args));
        assert!(e.contains(says), "{args:?}: {e}");
        assert!(!nope.exists(), "{args:?} made the data dir");
    }
    ok(&cli(&nope, &["state", "set", "k", "1", "-i", "shop"]));
    assert_eq!(ok(&cli(&nope, &["state", "get", "k", "-i", "shop"])), "1\n");
    // The instance written to before any deploy is registered, so it is
    // listed and exported like any other.
    let listed = ok(&cli(&nope, &["instances", "list"]));
    assert!(listed.starts_with("shop\taccount=default\t"), "{listed}");
    let export = ok(&cli(&nope, &["export", "--all"]));
    assert!(
        export.contains(r#""key":"k","scope":{"instance":"shop"}"#),
        "{export}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_data_dir_is_waited_for_then_reported() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&cli(&data, &["state", "set", "a", "1", "-i", "x"]));
    // Another process holds the file (a long `run`, here: this test
    // holding the redb file open) and no server answers.
    let held = wasm_state::store::Store::open(data.join("state.redb"), Default::default()).unwrap();
    let started = std::time::Instant::now();
    let e = err(&cli(
        &data,
        &["--busy-timeout", "1", "state", "get", "a", "-i", "x"],
    ));
    assert!(started.elapsed() >= Duration::from_secs(1), "it waited");
    assert!(
        e.contains("in use by another process") && e.contains("--busy-timeout"),
        "{e}"
    );
    // Released while a command waits: the command goes on.
    let waiting = std::thread::spawn({
        let data = data.clone();
        move || {
            cli(
                &data,
                &["--busy-timeout", "20", "state", "get", "a", "-i", "x"],
            )
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    drop(held);
    assert_eq!(ok(&waiting.join().unwrap()).trim(), "1");
    // apps commands need a server, and say so.
    let e = err(&cli(&data, &["apps", "list"]));
    assert!(e.contains("no wasm-state server is running"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_deployed_and_undeployed_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let global = ["--data", data.to_str().unwrap()];
    // A server with no apps holds the data dir and waits for deploys.
    let serve = ServeProcess::start(&global, &[]).await;
    let addr = serve.addr;
    assert_eq!(ok(&cli(&data, &["apps", "list"])), "");
    let out = ok(&cli(
        &data,
        &[
            "apps",
            "deploy",
            "web",
            wasm_state_e2e::HELLO_HTTP,
            "--route",
            "/web",
        ],
    ));
    assert!(out.contains("deployed \"web\" at /web"), "{out}");
    assert_eq!(
        http_support::get(addr, "/web/hits", &[]).await.body.trim(),
        "Hello, world!"
    );

    // Load while the app is replaced: no request fails, and once the
    // deploy returned every new request reaches the new component.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = http_support::send(addr, "GET", "/web/hits", &[], "")
                        .await
                        .unwrap();
                    answers.push((r.status.as_u16(), r.body));
                }
                answers
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = ok(&cli(
        &data,
        &["apps", "deploy", "web", wasm_state_e2e::KV_COUNTER],
    ));
    assert!(out.contains("at /web"), "the app keeps its route: {out}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut old = 0;
    let mut new = 0;
    for l in load {
        for (status, body) in l.await.unwrap() {
            assert_eq!(status, 200, "a request failed during the deploy: {body}");
            match body.trim() {
                "Hello, world!" => old += 1,
                "0" => new += 1,
                other => panic!("unexpected answer {other:?}"),
            }
        }
    }
    assert!(old > 0 && new > 0, "old {old}, new {new}");
    assert_eq!(
        http_support::get(addr, "/web/hits", &[]).await.body.trim(),
        "0"
    );

    // A component that is not an HTTP handler, or not a component at all,
    // is refused and the app keeps serving.
    let e = err(&cli(
        &data,
        &["apps", "deploy", "web", wasm_state_e2e::KV_DRAFT2],
    ));
    assert!(
        e.contains("not a wasi:http handler") && e.contains("keeps serving"),
        "{e}"
    );
    // A name that cannot be its own route is refused before anything is
    // installed: no instance of that name appears.
    let e = err(&cli(
        &data,
        &["apps", "deploy", "a b", wasm_state_e2e::KV_COUNTER],
    ));
    assert!(e.contains("a b"), "{e}");
    let listed = ok(&cli(&data, &["instances", "list"]));
    assert!(!listed.contains("a b"), "{listed}");
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let e = err(&cli(
        &data,
        &["apps", "deploy", "web", junk.to_str().unwrap()],
    ));
    assert!(e.contains("neither a .wasm binary nor WAT"), "{e}");
    let e = err(&cli(
        &data,
        &[
            "apps",
            "deploy",
            "web",
            wasm_state_e2e::KV_COUNTER,
            "--route",
            "/a b",
        ],
    ));
    assert!(e.contains("plain path"), "{e}");
    assert_eq!(
        http_support::get(addr, "/web/hits", &[]).await.body.trim(),
        "0"
    );
    assert_eq!(ok(&cli(&data, &["apps", "list"])).trim(), "web\t/web");

    ok(&cli(&data, &["apps", "undeploy", "web"]));
    assert_eq!(http_support::get(addr, "/web/hits", &[]).await.status, 404);
    let e = err(&cli(&data, &["apps", "undeploy", "web"]));
    assert!(e.contains("no app named \"web\""), "{e}");
    drop(serve);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_replaces_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let addr = http_support::free_addr();
    let admin = http_support::free_addr();
    let manifest = format!(
        r#"account = "acme"
[store]
data = "state"
[limits]
deadline_seconds = 5
memory_mib = 32
[server]
listen = "{addr}"
admin_listen = "{admin}"
[[apps]]
name = "counter"
component = "{}"
route = "/"
"#,
        wasm_state_e2e::KV_COUNTER
    );
    std::fs::write(dir.path().join("wasm-state.toml"), manifest).unwrap();
    let mut child = KillOnDrop(
        Command::new(common::binary("wasm-state"))
            .current_dir(dir.path())
            .env_remove("WASM_STATE_DATA")
            .arg("serve")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = std::time::Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve did not start"
        );
        assert!(child.0.try_wait().unwrap().is_none(), "serve exited early");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        http_support::post(addr, "/hit", &[], "").await.body.trim(),
        "1"
    );
    // The CLI in that directory finds the data dir through the manifest.
    let out = Command::new(common::binary("wasm-state"))
        .current_dir(dir.path())
        .env_remove("WASM_STATE_DATA")
        .args(["instances", "list"])
        .output()
        .unwrap();
    assert!(ok(&out).contains("counter\taccount=acme"), "{}", ok(&out));
    assert!(dir.path().join("state/admin.sock").exists());

    // Metrics on the admin listener.
    let m = http_support::get(admin, "/metrics", &[]).await;
    assert_eq!(m.status, 200);
    for needle in [
        r#"wasm_state_http_requests_total{app="counter",status="200"} 1"#,
        r#"wasm_state_state_operations_total{op="increment",result="ok"}"#,
        "wasm_state_commit_batch_requests_count",
        "wasm_state_commit_duration_seconds_bucket",
        r#"wasm_state_instance_bytes{instance="counter"}"#,
        r#"wasm_state_sessions_live{instance="counter"} 0"#,
        "wasm_state_writer_queue_depth",
    ] {
        assert!(m.body.contains(needle), "missing {needle} in\n{}", m.body);
    }
    drop(child);

    // Bad manifests name the field and the line, and nothing starts.
    for (text, want) in [
        ("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n", "line 3"),
        ("[limits]\ndeadline_seconds = \"ten\"\n", "line 2"),
        ("[[apps]]\nname = \"a\"\n", "component"),
    ] {
        std::fs::write(dir.path().join("wasm-state.toml"), text).unwrap();
        let out = Command::new(common::binary("wasm-state"))
            .current_dir(dir.path())
            .env_remove("WASM_STATE_DATA")
            .arg("serve")
            .output()
            .unwrap();
        let e = err(&out);
        assert!(e.contains("wasm-state.toml") && e.contains(want), "{e}");
    }
    let e = err(&Command::new(common::binary("wasm-state"))
        .args(["--manifest", "/nonexistent/m.toml", "serve"])
        .output()
        .unwrap());
    assert!(e.contains("cannot read the manifest"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_runs_a_plugin_export_with_or_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = ok(&cli(
        &data,
        &["call", wasm_state_e2e::PLUGIN, "on-event", "click", "buy"],
    ));
    assert!(out.starts_with("click #1"), "{out}");
    let e = err(&cli(
        &data,
        &["call", wasm_state_e2e::PLUGIN, "on-event", "", "x"],
    ));
    assert!(e.contains("must not be empty"), "{e}");
    let e = err(&cli(
        &data,
        &["call", wasm_state_e2e::PLUGIN, "on-event", "click"],
    ));
    assert!(e.contains("takes 2 argument(s), 1 given"), "{e}");
    let e = err(&cli(&data, &["call", wasm_state_e2e::PLUGIN, "nope"]));
    assert!(e.contains("no exported function"), "{e}");
    let global = ["--data", data.to_str().unwrap()];
    let serve = ServeProcess::start(&global, &[]).await;
    let out = ok(&cli(
        &data,
        &["call", wasm_state_e2e::PLUGIN, "on-event", "click", "again"],
    ));
    assert!(out.starts_with("click #2"), "{out}");
    drop(serve);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_keep_their_session_hit_the_session_limit() {
    let dir = tempfile::tempdir().unwrap();
    let addr = http_support::free_addr();
    std::fs::write(
        dir.path().join("wasm-state.toml"),
        format!(
            "[limits]\nmax_sessions = 5\n[server]\nlisten = \"{addr}\"\n[[apps]]\nname = \"shop\"\ncomponent = \"{}\"\nroute = \"/\"\n",
            wasm_state_e2e::CUSTOMERS_HTTP
        ),
    )
    .unwrap();
    let _serve = KillOnDrop(
        Command::new(common::binary("wasm-state"))
            .current_dir(dir.path())
            .env_remove("WASM_STATE_DATA")
            .arg("serve")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = std::time::Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every request without a session creates one, up to the limit.
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = http_support::post(addr, &format!("/cart/add?item=i{i}"), &[], "").await;
        assert_eq!(r.status, 200, "{}", r.body);
        ids.push(r.headers["x-session-id"].to_str().unwrap().to_string());
    }
    for _ in 0..3 {
        let r = http_support::post(addr, "/cart/add?item=more", &[], "").await;
        assert_eq!(r.status, 507, "{}", r.body);
        assert!(r.body.contains("quota"), "{}", r.body);
    }
    // Clients that keep their session are served; the server is fine.
    let r = http_support::post(addr, "/cart/add?item=x", &[("x-session-id", &ids[0])], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let out = Command::new(common::binary("wasm-state"))
        .current_dir(dir.path())
        .env_remove("WASM_STATE_DATA")
        .args(["sessions", "list", "-i", "shop"])
        .output()
        .unwrap();
    assert_eq!(ok(&out).lines().count(), 5);
    // Ending one makes room for a new client.
    let out = Command::new(common::binary("wasm-state"))
        .current_dir(dir.path())
        .env_remove("WASM_STATE_DATA")
        .args(["sessions", "end", "-i", "shop", "--", &ids[1]])
        .output()
        .unwrap();
    ok(&out);
    let r = http_support::post(addr, "/cart/add?item=new", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Fill a data dir with every kind of state: values (text and binary),
/// a map and a list longer than one export line, TTLs, a session with its
/// keys, an account scope.
async fn fill(data: &Path) {
    use wasm_state::store::{SetOptions, Store};
    std::fs::create_dir_all(data).unwrap();
    let store = Store::open(data.join("state.redb"), Default::default()).unwrap();
    store.register_instance("shop", "acme").await.unwrap();
    let shop = store.instance("shop").unwrap();
    shop.set("greeting", br#"{"hello":"world"}"#.to_vec())
        .await
        .unwrap();
    shop.set("binary", vec![0, 159, 146, 150, 255])
        .await
        .unwrap();
    shop.set_with(
        "soon",
        b"42".to_vec(),
        SetOptions {
            ttl: Some(Duration::from_secs(3600)),
            condition: None,
        },
    )
    .await
    .unwrap();
    let fields: Vec<(String, Vec<u8>)> = (0..1500)
        .map(|i| (format!("f{i:04}"), format!("v{i}").into_bytes()))
        .collect();
    for chunk in fields.chunks(100) {
        shop.map_set("customers", chunk.to_vec()).await.unwrap();
    }
    for chunk in (0..2100).collect::<Vec<u32>>().chunks(100) {
        shop.list_append(
            "events",
            chunk.iter().map(|i| i.to_string().into_bytes()).collect(),
        )
        .await
        .unwrap();
    }
    shop.expire("events", 7200, Default::default())
        .await
        .unwrap();
    let s = store
        .create_session("shop", Some(Duration::from_secs(1800)))
        .await
        .unwrap();
    let sh = store.session("shop", &s.id).await.unwrap();
    sh.set("cart", b"[\"apple\"]".to_vec()).await.unwrap();
    sh.list_append("seen", vec![b"a".to_vec(), b"b".to_vec()])
        .await
        .unwrap();
    store
        .account("acme")
        .unwrap()
        .set("motd", b"hi".to_vec())
        .await
        .unwrap();
}

/// An export without its header line (the time differs between exports),
/// with the expiries apart: an import re-creates them as the time left,
/// so they may move later by the time the import takes (maps and lists:
/// to the second, rounded up).
fn body(export: &str) -> (Vec<String>, Vec<u64>) {
    let mut lines: Vec<String> = export.lines().map(str::to_string).collect();
    assert!(lines[0].contains("wasm_state_export"), "{}", lines[0]);
    lines.remove(0);
    let mut expiries = Vec::new();
    for l in &mut lines {
        let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
        if let Some(at) = v["expires_at_ms"].as_u64() {
            expiries.push(at);
            v["expires_at_ms"] = serde_json::Value::Null;
            *l = v.to_string();
        }
        // Each store's own etag counter (host/tests/transfer.rs tests it).
        if let Some(m) = v.as_object_mut()
            && m.remove("etag_floor").is_some()
        {
            *l = v.to_string();
        }
    }
    (lines, expiries)
}

/// The same state: equal lines, map/list expiries within a second after.
fn same(original: &(Vec<String>, Vec<u64>), copy: &(Vec<String>, Vec<u64>)) {
    for (a, b) in original.0.iter().zip(&copy.0) {
        assert!(
            a == b,
            "the exports differ:\n{}\n{}",
            &a[..a.len().min(300)],
            &b[..b.len().min(300)]
        );
    }
    assert_eq!(original.0.len(), copy.0.len());
    assert_eq!(original.1.len(), copy.1.len());
    for (a, b) in original.1.iter().zip(&copy.1) {
        assert!(*b >= *a && *b < *a + 1000, "expiry {a} became {b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_import_round_trip_between_data_dirs_and_engines() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    fill(&a).await;
    let export = ok(&cli(&a, &["export", "--all"]));
    let lines = body(&export);
    // 1 instance, its keys (the map over 2 lines, the list over 3), a
    // session with 2 keys, the account's key, the end line.
    assert_eq!(lines.0.len(), 1 + (1 + 1 + 1 + 2 + 3) + 1 + 2 + 1 + 1);
    assert!(lines.0.last().unwrap().starts_with(r#"{"end":true,"#));
    assert_eq!(
        lines.1.len(),
        3,
        "the value's, the list's and the session's expiries"
    );
    assert!(
        export.contains(r#"{"base64":"AJ+Slv8="}"#),
        "binary values are base64"
    );
    let file = dir.path().join("dump.jsonl");
    std::fs::write(&file, &export).unwrap();
    let out = ok(&cli(&b, &["import", file.to_str().unwrap()]));
    assert!(out.is_empty());
    same(&lines, &body(&ok(&cli(&b, &["export", "--all"]))));
    // Idempotent: importing again changes nothing.
    ok(&cli(&b, &["import", file.to_str().unwrap()]));
    same(&lines, &body(&ok(&cli(&b, &["export", "--all"]))));
    // Selections.
    let one = ok(&cli(&a, &["export", "--instance", "shop"]));
    assert_eq!(body(&one).0.len(), lines.0.len() - 1);
    let acct = ok(&cli(&a, &["--account", "acme", "export"]));
    assert_eq!(body(&acct).0.len(), 1 + 1, "the key and the end line");
    let e = err(&cli(&a, &["export", "--instance", "nope"]));
    assert!(e.contains("no instance named \"nope\""), "{e}");

    // A malformed line names its line and imports nothing.
    let c = dir.path().join("c");
    let mut broken: Vec<&str> = export.lines().collect();
    broken[4] = "{not json";
    std::fs::write(&file, broken.join("\n")).unwrap();
    let e = err(&cli(&c, &["import", file.to_str().unwrap()]));
    assert!(
        e.contains("line 5") && e.contains("nothing was imported"),
        "{e}"
    );
    let mut bad_b64: Vec<String> = export.lines().map(str::to_string).collect();
    let i = bad_b64.iter().position(|l| l.contains("base64")).unwrap();
    bad_b64[i] = bad_b64[i].replace("AJ+Slv8=", "%%%");
    std::fs::write(&file, bad_b64.join("\n")).unwrap();
    let e = err(&cli(&c, &["import", file.to_str().unwrap()]));
    assert!(
        e.contains(&format!("line {}", i + 1)) && e.contains("base64"),
        "{e}"
    );
    assert!(
        !c.exists(),
        "nothing was imported: the file is checked before the store is opened"
    );

    // Through a running server: the same export, and an import.
    let serve = ServeProcess::start(&["--data", b.to_str().unwrap()], &[]).await;
    same(&lines, &body(&ok(&cli(&b, &["export", "--all"]))));
    std::fs::write(&file, &export).unwrap();
    // The server streams the import's progress and its counts.
    let through = cli(&b, &["import", file.to_str().unwrap()]);
    ok(&through);
    let said = String::from_utf8_lossy(&through.stderr);
    assert!(
        said.contains("imported 1 instances, 1 sessions, "),
        "{said}"
    );
    // A file cut short is refused (its end line is missing).
    let cut: Vec<&str> = export.lines().take(4).collect();
    std::fs::write(&file, cut.join("\n")).unwrap();
    let e = err(&cli(&b, &["import", file.to_str().unwrap()]));
    assert!(e.contains("cut short"), "{e}");
    // The admin API itself: a client that does not ask for a stream gets
    // one JSON answer (as before streaming); one that does, JSON lines
    // ending with the counts; a cut file is a 400 either way.
    let sock = b.join("admin.sock");
    let (status, answer) = admin_raw(&sock, "/v1/import", &[], &export).await;
    assert_eq!(status, 200, "{answer}");
    let counts: serde_json::Value = serde_json::from_str(&answer).expect("one JSON answer");
    assert_eq!(counts["instances"], 1, "{answer}");
    let ndjson = [("accept", "application/x-ndjson")];
    let (status, answer) = admin_raw(&sock, "/v1/import", &ndjson, &export).await;
    assert_eq!(status, 200, "{answer}");
    let last: serde_json::Value = serde_json::from_str(answer.lines().last().unwrap()).unwrap();
    assert_eq!(last["counts"]["instances"], 1, "{answer}");
    for headers in [&[][..], &ndjson] {
        let (status, answer) = admin_raw(&sock, "/v1/import", headers, &cut.join("\n")).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer.contains("cut short"), "{answer}");
    }
    std::fs::write(&file, &export).unwrap();
    drop(serve);

    // redb → Redis → redb.
    let redis = redis_server::shared().url();
    let on_redis = |args: &[&str]| {
        Command::new(common::binary("wasm-state"))
            .args([
                "--store",
                &redis,
                "--data",
                dir.path().join("r").to_str().unwrap(),
            ])
            .args(args)
            .output()
            .unwrap()
    };
    ok(&on_redis(&["import", file.to_str().unwrap()]));
    let from_redis = ok(&on_redis(&["export", "--all"]));
    assert!(
        from_redis
            .lines()
            .next()
            .unwrap()
            .contains(r#""engine":"redis""#)
    );
    same(&lines, &body(&from_redis));
}

/// `wasm-state run` with its stdin given: `Some(bytes)` piped and closed,
/// `None` a pipe left open until the run is over.
fn run_with_stdin(data: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(common::binary("wasm-state"))
        .arg("--data")
        .arg(data)
        .arg("run")
        .args(args)
        .env_remove("WASM_STATE_DATA")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wasm-state");
    let pipe = child.stdin.take().unwrap();
    let held = match stdin {
        Some(bytes) => {
            // Written from a thread: a refused input is not read to its end.
            let bytes = bytes.to_vec();
            std::thread::spawn(move || {
                let mut pipe = pipe;
                let _ = pipe.write_all(&bytes);
            });
            None
        }
        None => Some(pipe),
    };
    let out = child.wait_with_output().expect("wait for wasm-state");
    drop(held);
    out
}

/// A run through a running server gets the memory limit it asks for (at
/// most the server's, its default), reads stdin only up to a bound, and
/// with `--no-stdin` neither reads it nor waits on one left open; on the
/// data dir directly, `--no-stdin` gives the guest end-of-file too.
#[tokio::test]
async fn a_run_through_a_server_takes_its_memory_limit_and_a_bounded_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let probe = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        a.extend(["-i", "p", wasm_state_e2e::PROBE, "--", "stdin-len"].map(String::from));
        a
    };
    let strs = |v: &[String]| v.iter().map(String::as_str).collect::<Vec<_>>().join(" ");
    let run = |args: &[String], stdin: Option<&[u8]>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        run_with_stdin(&data, &a, stdin)
    };

    // On the data dir directly: stdin streams; -n gives end-of-file.
    assert_eq!(ok(&run(&probe(&[]), Some(b"abc"))).trim(), "3");
    assert_eq!(
        ok(&run(&probe(&["-n"]), None)).trim(),
        "0",
        "{}",
        strs(&probe(&["-n"]))
    );

    let global = ["--data", data.to_str().unwrap()];
    let serve = ServeProcess::start(&global, &["--memory", "32", wasm_state_e2e::KV_COUNTER]).await;
    // Memory: asked for, the server's by default, never more than it.
    let hog = |memory: Option<&str>| {
        let mut a = vec!["run".to_string()];
        if let Some(m) = memory {
            a.extend(["--memory".to_string(), m.to_string()]);
        }
        a.push(wasm_state_e2e::HOG.to_string());
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        err(&cli(&data, &a))
    };
    let e = hog(Some("100"));
    assert!(
        e.contains(&format!("at most this host's {} bytes (32 MiB)", 32 << 20))
            && e.contains("(100 MiB)"),
        "{e}"
    );
    // Refused as asked, it registered nothing.
    let instances = ok(&cli(&data, &["instances", "list"]));
    assert!(!instances.contains("hog"), "{instances}");
    let e = hog(Some("8"));
    assert!(e.contains(&format!("{} bytes of memory", 8 << 20)), "{e}");
    let e = hog(None);
    assert!(e.contains(&format!("{} bytes of memory", 32 << 20)), "{e}");

    // Stdin: forwarded whole; over 16 MiB refused before anything runs;
    // -n forwards nothing and does not wait on a pipe left open.
    let mib = vec![b'x'; 1 << 20];
    assert_eq!(ok(&run(&probe(&[]), Some(&mib))).trim(), "1048576");
    let big = vec![b'x'; (16 << 20) + 1];
    let e = err(&run(&probe(&[]), Some(&big)));
    assert!(e.contains("stdin holds over 16 MiB"), "{e}");
    assert_eq!(ok(&run(&probe(&["-n"]), None)).trim(), "0");
    drop(serve);
}

/// `serve` refused at start — a taken port, a bad Dapr option or
/// components directory — is refused before the store opens: no data dir,
/// no registered instance. (A `serve` that starts by mistake is stopped
/// after 60 s, and the test fails.)
#[test]
fn a_serve_refused_at_start_leaves_no_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let nope = dir.path().join("nope");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let missing = dir.path().join("no-components");
    let missing = missing.to_str().unwrap();
    for (args, says) in [
        (
            &["serve", "--listen", &taken, wasm_state_e2e::CUSTOMERS_HTTP][..],
            "cannot listen on",
        ),
        (
            &["serve", "--dapr-listen", &taken, "--listen", "127.0.0.1:0"],
            "cannot listen on",
        ),
        (
            &[
                "serve",
                "--dapr-listen",
                "127.0.0.1:0",
                "--dapr-max-body",
                "0",
            ],
            "--dapr-max-body",
        ),
        (
            &[
                "serve",
                "--dapr-listen",
                "127.0.0.1:0",
                "--components",
                missing,
            ],
            "no-components",
        ),
        (
            &["serve", "--listen", "127.0.0.1:0", "--admin-listen", &taken],
            "cannot listen on",
        ),
    ] {
        let mut child = Command::new(common::binary("wasm-state"))
            .arg("--data")
            .arg(&nope)
            .args(args)
            .env_remove("WASM_STATE_DATA")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run wasm-state");
        let started = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > std::time::Duration::from_secs(60) {
                let _ = child.kill();
                panic!("{args:?} started serving");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let e = err(&child.wait_with_output().unwrap());
        assert!(e.contains(says), "{args:?}: {e}");
        assert!(!nope.exists(), "{args:?} made the data dir");
    }
}
