//! Bot Framework's storage scenarios on wasm-state's storage, through a
//! real guest on the real host (`tests/guests/bot-suite`: the same scenario
//! code the bot crate runs on MemoryStorage), and the echo bot over real
//! HTTP.

mod common;
mod http_support;

use std::path::Path;
use std::time::Duration;

use wasm_state::runtime::{Host, HostConfig, RunOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_framework_storage_scenarios_pass_on_wasm_state_storage() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(HostConfig::new(dir.path())).unwrap();
    host.deploy_file("bots", Path::new(wasm_state_e2e::BOT_SUITE))
        .await
        .unwrap();
    let out = host
        .run(
            "bots",
            RunOptions {
                capture: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.exit_code, 0, "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    for scope in ["instance", "account", "session"] {
        for (name, _) in wasm_state_bot::scenarios::ALL {
            let line = format!("ok {scope} {name}");
            assert!(
                lines.contains(&line.as_str()),
                "missing {line:?} in\n{stdout}"
            );
        }
    }
    for name in [
        "atomic_batches",
        "idle_expiry",
        "optimistic_renewal",
        "too_large",
    ] {
        let line = format!("ok wasm-state {name}");
        assert!(
            lines.contains(&line.as_str()),
            "missing {line:?} in\n{stdout}"
        );
    }
    // The state is wasm-state's own: the host sees Bot Framework's keys.
    let keys = host
        .store()
        .instance("bots")
        .unwrap()
        .keys(wasm_state::store::KeyListing {
            prefix: Some("atomic/".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .keys;
    assert_eq!(keys, ["atomic/a", "atomic/b"]);
}

fn activity(conversation: &str, user: &str, text: &str) -> String {
    serde_json::json!({
        "type": "message",
        "id": format!("act-{text}"),
        "timestamp": "2026-11-22T10:00:00.000Z",
        "serviceUrl": "https://channel.example/",
        "channelId": "webchat",
        "from": {"id": user, "name": user},
        "conversation": {"id": conversation},
        "recipient": {"id": "echo-bot", "name": "Echo"},
        "text": text,
        "locale": "en-GB"
    })
    .to_string()
}

async fn say(
    addr: std::net::SocketAddr,
    conversation: &str,
    user: &str,
    text: &str,
) -> serde_json::Value {
    let r = http_support::post(
        addr,
        "/api/messages",
        &[("content-type", "application/json")],
        &activity(conversation, user, text),
    )
    .await;
    assert_eq!(r.status, hyper::StatusCode::OK, "{}", r.body);
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_bot_keeps_names_per_user_and_turns_per_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let bot = wasm_state_e2e::ECHO_BOT;
    let mut s =
        http_support::Served::start(dir.path(), &[("bot", bot)], Duration::from_secs(10)).await;
    // The reply is addressed back, in the same conversation.
    let r = say(s.addr, "conv-1", "ada", "hi").await;
    assert_eq!(r["type"], "message");
    assert_eq!(r["text"], r#"you said "hi" (turn 1)"#);
    assert_eq!(r["conversation"]["id"], "conv-1");
    assert_eq!(r["recipient"]["id"], "ada");
    assert_eq!(r["from"]["id"], "echo-bot");
    assert_eq!(r["replyToId"], "act-hi");
    assert_eq!(r["channelId"], "webchat");
    assert_eq!(r["serviceUrl"], "https://channel.example/");
    // Two users in two conversations, interleaved.
    assert_eq!(
        say(s.addr, "conv-2", "bob", "hello").await["text"],
        r#"you said "hello" (turn 1)"#
    );
    assert_eq!(
        say(s.addr, "conv-1", "ada", "my name is Ada").await["text"],
        "Nice to meet you, Ada."
    );
    assert_eq!(
        say(s.addr, "conv-2", "bob", "my name is Bob").await["text"],
        "Nice to meet you, Bob."
    );
    assert_eq!(
        say(s.addr, "conv-1", "ada", "how are you").await["text"],
        r#"Ada said "how are you" (turn 3)"#
    );
    assert_eq!(
        say(s.addr, "conv-2", "bob", "fine").await["text"],
        r#"Bob said "fine" (turn 3)"#
    );
    // Ada's name follows her into a new conversation on the same channel;
    // the turn count is the new conversation's.
    assert_eq!(
        say(s.addr, "conv-3", "ada", "new here").await["text"],
        r#"Ada said "new here" (turn 1)"#
    );
    // Concurrent turns of one conversation: every turn counted once.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let addr = s.addr;
        tasks.spawn(async move { say(addr, "busy", &format!("u{}", i % 4), "ping").await });
    }
    let mut turns = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let text = r.unwrap()["text"].as_str().unwrap().to_owned();
        let n: u64 = text
            .rsplit("(turn ")
            .next()
            .unwrap()
            .trim_end_matches(')')
            .parse()
            .unwrap();
        turns.push(n);
    }
    turns.sort_unstable();
    assert_eq!(
        turns,
        (1..=16).collect::<Vec<_>>(),
        "each concurrent turn got its own number"
    );
    // A malformed activity: 400 saying what is wrong.
    let r = http_support::post(s.addr, "/api/messages", &[], "{not json").await;
    assert_eq!(r.status, hyper::StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains("not a Bot Framework Activity"),
        "{}",
        r.body
    );
    let r = http_support::post(
        s.addr,
        "/api/messages",
        &[],
        r#"{"type":"message","channelId":"webchat","from":{"id":"ada"},"text":"hi"}"#,
    )
    .await;
    assert_eq!(r.status, hyper::StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains("missing activity.conversation.id"),
        "{}",
        r.body
    );
    // Not a message: acknowledged, no reply.
    let r = http_support::post(s.addr, "/api/messages", &[], r#"{"type":"typing"}"#).await;
    assert_eq!((r.status, r.body.as_str()), (hyper::StatusCode::OK, ""));
    // A restart keeps names and counts.
    s.stop().await;
    drop(s);
    let s = http_support::Served::start(dir.path(), &[("bot", bot)], Duration::from_secs(10)).await;
    assert_eq!(
        say(s.addr, "conv-1", "ada", "back").await["text"],
        r#"Ada said "back" (turn 4)"#
    );
    assert_eq!(
        say(s.addr, "busy", "u0", "again").await["text"],
        r#"you said "again" (turn 17)"#
    );
}
