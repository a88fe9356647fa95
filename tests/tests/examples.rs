//! The examples of `examples/`, end to end through the real host: the
//! customers sample (instance-state map), the counter (session state with a
//! TTL), the plugin (a guest export called from native code), and the
//! `wasm-state` CLI running the customers sample in separate processes.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::binary;
use wasm_state::runtime::{Host, HostConfig, HostError, RunOptions, RunOutput};
use wasm_state::store::{ManualClock, StateError};
use wasmtime::component::Val;

// ---- helpers ----

fn open(dir: &Path) -> Host {
    Host::open(HostConfig::new(dir)).expect("open host")
}

/// Deploys the example `wasm` as `name`.
async fn deploy(host: &Host, name: &str, wasm: &str) {
    host.deploy_file(name, Path::new(wasm))
        .await
        .unwrap_or_else(|e| panic!("deploy {wasm}: {e}"));
}

/// Runs command instance `name` with `args` (and a session), capturing its output.
async fn run(
    host: &Host,
    name: &str,
    args: &[&str],
    session: Option<&str>,
) -> Result<RunOutput, HostError> {
    host.run(
        name,
        RunOptions {
            args: args.iter().map(|a| a.to_string()).collect(),
            session: session.map(str::to_owned),
            capture: true,
            ..RunOptions::default()
        },
    )
    .await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf-8 output")
}

/// Runs `args` and expects exit code 0; returns stdout.
async fn ok(host: &Host, name: &str, args: &[&str], session: Option<&str>) -> String {
    let out = run(host, name, args, session).await.expect("run");
    assert_eq!(
        out.exit_code,
        0,
        "{name} {args:?} failed; stderr: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

// ---- customers: the VCR sample ----

#[tokio::test]
async fn customers_add_lookup_list_and_unknown_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let host = open(dir.path());
    deploy(&host, "customers", wasm_state_e2e::CUSTOMERS).await;

    let out = ok(
        &host,
        "customers",
        &["add", "+447700900001", "Ada", "ada@example.com"],
        None,
    )
    .await;
    assert_eq!(out, "added customer +447700900001 (Ada)\n");
    // Spaces and dashes are not part of the key.
    let out = ok(
        &host,
        "customers",
        &["add", "+44 7700-900002", "Grace Hopper"],
        None,
    )
    .await;
    assert_eq!(out, "added customer +447700900002 (Grace Hopper)\n");

    assert_eq!(
        ok(&host, "customers", &["lookup", "+447700900001"], None).await,
        "Ada\n"
    );
    assert_eq!(
        ok(&host, "customers", &["lookup", "+44 7700 900002"], None).await,
        "Grace Hopper\n"
    );

    // An unknown number: exit code 1, nothing on stdout, a clear message.
    let out = run(&host, "customers", &["lookup", "+15550000000"], None)
        .await
        .unwrap();
    assert_eq!(out.exit_code, 1);
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(
        err.contains("no customer with phone number +15550000000")
            && err.contains("customers add +15550000000"),
        "{err}"
    );

    // mapSet overwrites the field: the same number again is an update.
    let out = ok(
        &host,
        "customers",
        &["add", "+447700900001", "Ada L."],
        None,
    )
    .await;
    assert_eq!(out, "updated customer +447700900001 (Ada L.)\n");
    assert_eq!(
        ok(&host, "customers", &["lookup", "+447700900001"], None).await,
        "Ada L.\n"
    );

    assert_eq!(
        ok(&host, "customers", &["list"], None).await,
        "+447700900001\tAda L.\t-\n+447700900002\tGrace Hopper\t-\n"
    );
}

#[tokio::test]
async fn customers_reject_bad_arguments_with_usage() {
    let dir = tempfile::tempdir().unwrap();
    let host = open(dir.path());
    deploy(&host, "customers", wasm_state_e2e::CUSTOMERS).await;
    for (args, says) in [
        (&[][..], "say what to do"),
        (&["add", "+447700900001"][..], "`add` takes"),
        (&["add", "call-me", "Ada"][..], "is not a phone number"),
        (&["add", "+447700900001", " "][..], "name must not be empty"),
        (
            &["add", "+447700900001", "Ada", "not-an-email"][..],
            "not an email",
        ),
        (&["lookup"][..], "`lookup` takes one phone number"),
        (
            &["delete", "+447700900001"][..],
            "unknown command \"delete\"",
        ),
    ] {
        let out = run(&host, "customers", args, None).await.unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.exit_code, 1, "{args:?}: {err}");
        assert!(
            err.contains(says) && err.contains("usage:"),
            "{args:?}: {err}"
        );
    }
    // Nothing was stored by the failed commands.
    let state = host.store().instance("customers").unwrap();
    assert_eq!(state.map_length("customers").await.unwrap(), 0);
}

#[tokio::test]
async fn customers_state_is_shared_with_the_host_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let host = open(dir.path());
        deploy(&host, "customers", wasm_state_e2e::CUSTOMERS).await;
        ok(
            &host,
            "customers",
            &["add", "+447700900001", "Ada", "ada@example.com"],
            None,
        )
        .await;

        // The guest's mapSet, read from the host side: JSON in the map.
        let state = host.store().instance("customers").unwrap();
        let stored = state
            .map_get("customers", "+447700900001")
            .await
            .unwrap()
            .expect("customer stored");
        let json: serde_json::Value = serde_json::from_slice(&stored).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"phone": "+447700900001", "name": "Ada", "email": "ada@example.com"})
        );

        // And the other way: a customer written by the host, found by the guest.
        state
            .map_set(
                "customers",
                vec![(
                    "+33612345678".into(),
                    br#"{"phone":"+33612345678","name":"Marie"}"#.to_vec(),
                )],
            )
            .await
            .unwrap();
        assert_eq!(
            ok(&host, "customers", &["lookup", "+33612345678"], None).await,
            "Marie\n"
        );
    } // the host and its store are dropped here

    let host = open(dir.path());
    deploy(&host, "customers", wasm_state_e2e::CUSTOMERS).await;
    assert_eq!(
        ok(&host, "customers", &["lookup", "+447700900001"], None).await,
        "Ada\n"
    );
    assert_eq!(
        ok(&host, "customers", &["list"], None).await,
        "+33612345678\tMarie\t-\n+447700900001\tAda\tada@example.com\n"
    );

    // Instance state dies with the instance.
    host.destroy("customers").await.unwrap();
    deploy(&host, "customers", wasm_state_e2e::CUSTOMERS).await;
    let out = run(&host, "customers", &["lookup", "+447700900001"], None)
        .await
        .unwrap();
    assert_eq!(out.exit_code, 1);
}

// ---- counter: session state with a TTL ----

/// The count and session id a counter run printed.
fn counted(stdout: &str) -> (i64, String) {
    let mut count = None;
    let mut session = None;
    for line in stdout.lines() {
        if let Some(n) = line.strip_prefix("count: ") {
            count = Some(n.parse().expect("count is a number"));
        } else if let Some(id) = line.strip_prefix("session: ") {
            session = Some(id.to_owned());
        }
    }
    (
        count.unwrap_or_else(|| panic!("no `count:` line in {stdout:?}")),
        session.unwrap_or_else(|| panic!("no `session:` line in {stdout:?}")),
    )
}

fn is_no_such_session(r: Result<RunOutput, HostError>) -> bool {
    matches!(r, Err(HostError::State(StateError::NoSuchSession)))
}

#[tokio::test]
async fn counter_counts_in_its_session_until_the_session_ends() {
    let dir = tempfile::tempdir().unwrap();
    let host = open(dir.path());
    deploy(&host, "counter", wasm_state_e2e::COUNTER).await;

    // Run 1: no session, so the guest creates one (TTL 60 s by default).
    let before = now_ms();
    let out = run(&host, "counter", &[], None).await.unwrap();
    assert_eq!(out.exit_code, 0);
    let (n, id) = counted(&text(&out.stdout));
    assert_eq!(n, 1);
    assert!(
        text(&out.stderr).contains(&format!("--session {id}")),
        "the hint names the session"
    );
    let info = host.store().session_info("counter", &id).await.unwrap();
    assert!(
        info.expires_at_ms >= before + 59_000 && info.expires_at_ms <= now_ms() + 61_000,
        "default TTL is 60 s: {info:?}"
    );

    // Runs 2 and 3 with the id count on in the same session.
    let (n, same) = counted(&ok(&host, "counter", &[], Some(&id)).await);
    assert_eq!((n, same.as_str()), (2, id.as_str()));
    let (n, _) = counted(&ok(&host, "counter", &[], Some(&id)).await);
    assert_eq!(n, 3);

    // Without the id: a new session, counting from 1.
    let before = now_ms();
    let (n, other) = counted(&ok(&host, "counter", &["--ttl=300"], None).await);
    assert_eq!(n, 1);
    assert_ne!(other, id);
    let info = host.store().session_info("counter", &other).await.unwrap();
    assert!(
        info.expires_at_ms >= before + 299_000,
        "--ttl=300: {info:?}"
    );

    // The count is session state, visible from the host side.
    let session = host.store().session("counter", &id).await.unwrap();
    assert_eq!(session.get("count").await.unwrap(), Some(b"3".to_vec()));
    assert!(
        host.store()
            .instance("counter")
            .unwrap()
            .get("count")
            .await
            .unwrap()
            .is_none()
    );
    let live: Vec<String> = host
        .store()
        .list_sessions("counter")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(live.contains(&id) && live.contains(&other), "{live:?}");

    // Another instance cannot use this instance's session.
    deploy(&host, "counter-2", wasm_state_e2e::COUNTER).await;
    assert!(is_no_such_session(
        run(&host, "counter-2", &[], Some(&id)).await
    ));

    // Ended: the session and its count are gone.
    assert!(host.store().end_session("counter", &id).await.unwrap());
    assert!(is_no_such_session(
        run(&host, "counter", &[], Some(&id)).await
    ));
    assert!(matches!(
        host.store().session("counter", &id).await,
        Err(StateError::NoSuchSession)
    ));
    // The other session is untouched.
    let (n, _) = counted(&ok(&host, "counter", &[], Some(&other)).await);
    assert_eq!(n, 2);
}

#[tokio::test]
async fn counter_session_expires_at_its_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(now_ms());
    let mut config = HostConfig::new(dir.path());
    config.store.clock = Arc::new(clock.clone());
    config.store.sweep_interval = None;
    let host = Host::open(config).unwrap();
    deploy(&host, "counter", wasm_state_e2e::COUNTER).await;

    let (n, id) = counted(&ok(&host, "counter", &["--ttl", "5"], None).await);
    assert_eq!(n, 1);

    clock.advance(Duration::from_secs(4));
    let (n, _) = counted(&ok(&host, "counter", &[], Some(&id)).await);
    assert_eq!(n, 2);

    // At 4 s, `--ttl 10` with the session extends it to 14 s.
    let (n, _) = counted(&ok(&host, "counter", &["--ttl", "10"], Some(&id)).await);
    assert_eq!(n, 3);
    clock.advance(Duration::from_secs(8)); // 12 s: alive only thanks to the extension
    let (n, _) = counted(&ok(&host, "counter", &[], Some(&id)).await);
    assert_eq!(n, 4);

    clock.advance(Duration::from_secs(3)); // 15 s: expired
    assert!(is_no_such_session(
        run(&host, "counter", &[], Some(&id)).await
    ));
    assert!(
        host.store()
            .list_sessions("counter")
            .await
            .unwrap()
            .is_empty()
    );
    host.store().sweep().await.unwrap();
    assert!(matches!(
        host.store().session("counter", &id).await,
        Err(StateError::NoSuchSession)
    ));

    // A run without a session starts over.
    let (n, fresh) = counted(&ok(&host, "counter", &[], None).await);
    assert_eq!(n, 1);
    assert_ne!(fresh, id);
}

#[tokio::test]
async fn counter_rejects_a_bad_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let host = open(dir.path());
    deploy(&host, "counter", wasm_state_e2e::COUNTER).await;
    for args in [
        &["--ttl", "0"][..],
        &["--ttl", "soon"],
        &["--ttl=-5"],
        &["--ttl"],
        &["extra"],
    ] {
        let out = run(&host, "counter", args, None).await.unwrap();
        assert_eq!(out.exit_code, 1, "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(text(&out.stderr).contains("usage: counter"), "{args:?}");
    }
    let help = ok(&host, "counter", &["--help"], None).await;
    assert!(help.starts_with("usage: counter"), "{help}");
    assert!(
        host.store()
            .list_sessions("counter")
            .await
            .unwrap()
            .is_empty()
    );
}

// ---- plugin: a guest export called from native code ----

/// Calls the plugin's `on-event` and unpacks its `result<string, string>`.
async fn on_event(host: &Host, name: &str, kind: &str, payload: &str) -> Result<String, String> {
    let results = host
        .call(
            name,
            "on-event",
            &[Val::String(kind.into()), Val::String(payload.into())],
        )
        .await
        .expect("call on-event");
    match results.as_slice() {
        [Val::Result(Ok(Some(v)))] => match v.as_ref() {
            Val::String(s) => Ok(s.clone()),
            other => panic!("ok({other:?})"),
        },
        [Val::Result(Err(Some(v)))] => match v.as_ref() {
            Val::String(s) => Err(s.clone()),
            other => panic!("err({other:?})"),
        },
        other => panic!("on-event returned {other:?}"),
    }
}

/// The plugin's counts by kind and recent payloads, read from the host side.
async fn plugin_state(host: &Host, name: &str) -> (Vec<(String, String)>, Vec<serde_json::Value>) {
    let state = host.store().instance(name).unwrap();
    let counts = state
        .map_get_all("events")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, text(&v)))
        .collect();
    let recent = state
        .list_range("recent", 0, -1)
        .await
        .unwrap()
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect();
    (counts, recent)
}

#[tokio::test]
async fn plugin_counts_events_and_keeps_the_last_ten() {
    let dir = tempfile::tempdir().unwrap();
    let host = open(dir.path());
    deploy(&host, "plugin", wasm_state_e2e::PLUGIN).await;

    assert_eq!(
        on_event(&host, "plugin", "click", "button=buy").await,
        Ok("click #1 (10 bytes); 1 recent events kept".into())
    );
    assert_eq!(
        on_event(&host, "plugin", "view", "/home").await,
        Ok("view #1 (5 bytes); 2 recent events kept".into())
    );
    for i in 0..10 {
        let got = on_event(&host, "plugin", "click", &format!("n={i}")).await;
        assert_eq!(
            got,
            Ok(format!(
                "click #{} (3 bytes); {} recent events kept",
                i + 2,
                (i + 3).min(10)
            ))
        );
    }

    let (counts, recent) = plugin_state(&host, "plugin").await;
    assert_eq!(
        counts,
        [("click".into(), "11".into()), ("view".into(), "1".into())]
    );
    let expected: Vec<serde_json::Value> = (0..10)
        .map(|i| serde_json::json!({"kind": "click", "payload": format!("n={i}")}))
        .collect();
    assert_eq!(
        recent, expected,
        "only the last 10 events are kept, in order"
    );

    // A refused event is an error result and changes nothing.
    let err = on_event(&host, "plugin", "", "x").await.unwrap_err();
    assert!(err.contains("kind must not be empty"), "{err}");
    let state = (counts, recent);
    assert_eq!(plugin_state(&host, "plugin").await, state);

    // No such export: a host error naming it.
    let err = host
        .call("plugin", "on-evnt", &[Val::String("a".into())])
        .await
        .unwrap_err();
    assert!(matches!(err, HostError::NoSuchExport { .. }), "{err}");

    // Arguments that do not fit are the caller's error, named, not a guest
    // trap (nothing ran: no guest failure is counted).
    let bad = |args: Vec<Val>| {
        let host = host.clone();
        async move { host.call("plugin", "on-event", &args).await.unwrap_err() }
    };
    let err = bad(vec![Val::String("a".into())]).await;
    assert!(
        matches!(&err, HostError::InvalidRequest(m) if m == "on-event takes 2 argument(s), 1 given"),
        "{err}"
    );
    let err = bad(vec![Val::String("a".into()), Val::U32(7)]).await;
    assert!(
        matches!(&err, HostError::InvalidRequest(m)
            if m.contains("argument 2 of on-event is an unsigned integer") && m.contains("string")),
        "{err}"
    );
    assert!(!err.is_guest_failure());
    // Run once (not deployed), such a call registers nothing either.
    let wasm = std::fs::read(wasm_state_e2e::PLUGIN).unwrap();
    let err = host
        .call_once("fresh", &wasm, "on-event", &[Val::Bool(true)])
        .await
        .unwrap_err();
    assert!(matches!(err, HostError::InvalidRequest(_)), "{err}");
    assert_eq!(host.store().instance_info("fresh").await.unwrap(), None);
    let metrics = host.store().metrics().encode();
    assert!(!metrics.contains("guest_failures_total{"), "{metrics}");
    assert_eq!(plugin_state(&host, "plugin").await, state);
}

#[tokio::test]
async fn plugin_batch_is_atomic_and_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = HostConfig::new(dir.path());
    config.store.limits.max_value_bytes = 256;
    {
        let host = Host::open(config.clone()).unwrap();
        deploy(&host, "plugin", wasm_state_e2e::PLUGIN).await;
        assert!(on_event(&host, "plugin", "click", "a").await.is_ok());
        let before = plugin_state(&host, "plugin").await;

        // The list item is too large, so the whole batch fails: the count
        // for "click" (queued before it) is not applied either.
        let err = on_event(&host, "plugin", "click", &"x".repeat(300))
            .await
            .unwrap_err();
        assert!(
            err.contains("was not recorded") && err.contains("larger than the host's limit"),
            "{err}"
        );
        assert_eq!(plugin_state(&host, "plugin").await, before);
    }

    let host = Host::open(config).unwrap();
    deploy(&host, "plugin", wasm_state_e2e::PLUGIN).await;
    assert_eq!(
        on_event(&host, "plugin", "click", "b").await,
        Ok("click #2 (1 bytes); 2 recent events kept".into())
    );
}

// ---- the wasm-state CLI, in separate processes ----

/// Runs `wasm-state --data DATA ARGS…` in its own process; (exit code, stdout, stderr).
fn cli(data: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary("wasm-state"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("WASM_STATE_DATA")
        .env_remove("WASM_STATE_ACCOUNT")
        .output()
        .expect("run wasm-state");
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

#[test]
fn cli_runs_the_customers_example_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let wasm = wasm_state_e2e::CUSTOMERS;

    let (code, out, err) = cli(
        data,
        &[
            "run",
            wasm,
            "--",
            "add",
            "+447700900001",
            "Ada",
            "ada@example.com",
        ],
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "added customer +447700900001 (Ada)\n"),
        "{err}"
    );

    // A new process, the same data directory: the customer is still there.
    let (code, out, err) = cli(data, &["run", wasm, "--", "lookup", "+447700900001"]);
    assert_eq!((code, out.as_str()), (0, "Ada\n"), "{err}");
    let (code, _, err) = cli(data, &["run", wasm, "--", "lookup", "+15550000000"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no customer with phone number +15550000000"),
        "{err}"
    );

    // The instance is named after the file; its state as JSON lines.
    let (code, out, err) = cli(data, &["state", "dump", "-i", "customers"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0]["key"], "customers");
    assert_eq!(lines[0]["type"], "map");
    assert_eq!(
        lines[0]["value"],
        serde_json::json!({"+447700900001": {"phone": "+447700900001", "name": "Ada", "email": "ada@example.com"}})
    );
}

#[test]
fn plugin_host_example_calls_the_plugin_and_keeps_state_in_its_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let plugin_host = |args: &[&Path]| {
        let out = Command::new(binary("plugin-host"))
            .args(args)
            .output()
            .expect("run plugin-host");
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };
    let wasm = Path::new(wasm_state_e2e::PLUGIN);

    let (success, out, err) = plugin_host(&[wasm, dir.path()]);
    assert!(success, "{err}");
    for line in [
        "on-event(\"click\") -> ok: click #1 (10 bytes); 1 recent events kept",
        "on-event(\"purchase\") -> ok: purchase #1 (20 bytes); 4 recent events kept",
        "on-event(\"\") -> refused: the event kind must not be empty (e.g. \"click\")",
        "  click: 2",
        "  {\"kind\":\"view\",\"payload\":\"/home\"}",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "no line {line:?} in:\n{out}"
        );
    }

    // A second process on the same data directory counts on.
    let (success, out, err) = plugin_host(&[wasm, dir.path()]);
    assert!(success, "{err}");
    assert!(
        out.contains("click #3 (10 bytes)") && out.contains("  click: 4"),
        "{out}"
    );

    // Misuse: a clear error, not a panic.
    let (success, _, err) = plugin_host(&[]);
    assert!(!success && err.contains("usage: plugin-host"), "{err}");
    let (success, _, err) = plugin_host(&[Path::new(wasm_state_e2e::CUSTOMERS)]);
    assert!(
        !success && err.contains("no exported function \"on-event\""),
        "{err}"
    );
}
