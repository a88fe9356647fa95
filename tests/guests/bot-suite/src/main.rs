//! Bot Framework's storage scenarios (`wasm_state_bot::scenarios`, the same
//! code the bot crate runs on `MemoryStorage`) on `StateStorage` over the
//! instance, account and a session scope, plus what only wasm-state's
//! storage does: atomic batches, idle expiry, optimistic renewal, the value
//! limit. Prints
//! `ok <scope> <scenario>` per scenario; on a failure prints it to stderr
//! and exits 1.

use std::rc::Rc;
use std::time::Duration;

use serde_json::json;
use wasm_state_bot::{
    Activity, BotError, ConversationState, StateStorage, Storage, StoreItems, TurnContext,
    scenarios,
};
use wasm_state_sdk::{Session, State};

fn fail(what: &str, why: impl std::fmt::Display) -> ! {
    eprintln!("FAIL {what}: {why}");
    std::process::exit(1)
}

fn run_all(scope: &str, storage: Rc<dyn Storage>) {
    for (name, scenario) in scenarios::ALL {
        match scenario(storage.clone()) {
            Ok(()) => println!("ok {scope} {name}"),
            Err(e) => fail(&format!("{scope} {name}"), e),
        }
    }
}

fn items(pairs: &[(&str, serde_json::Value)]) -> StoreItems {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// A write with one stale eTag writes nothing at all (Bot Framework's
/// MemoryStorage would write the others).
fn atomic_batches() -> Result<(), String> {
    let s = StateStorage::new(State::instance()).with_prefix("atomic/");
    s.write(items(&[("a", json!({"v": 1})), ("b", json!({"v": 1}))]))
        .map_err(|e| e.to_string())?;
    let read = s.read(&["a", "b"]).map_err(|e| e.to_string())?;
    let stale = read["b"]["eTag"].clone();
    s.write(items(&[("b", json!({"v": 2}))]))
        .map_err(|e| e.to_string())?;
    match s.write(items(&[
        ("a", json!({"v": 3})),
        ("b", json!({"v": 3, "eTag": stale})),
    ])) {
        Err(BotError::EtagConflict { key }) if key == "b" => {}
        other => return Err(format!("expected a conflict on b: {other:?}")),
    }
    let after = s.read(&["a", "b"]).map_err(|e| e.to_string())?;
    if after["a"]["v"] != 1 || after["b"]["v"] != 2 {
        return Err(format!("a failed batch wrote something: {after:?}"));
    }
    Ok(())
}

/// Items written with a TTL disappear after it; a touch renews it.
fn idle_expiry() -> Result<(), String> {
    let s = StateStorage::new(State::instance())
        .with_prefix("idle/")
        .with_ttl(Duration::from_millis(1500));
    s.write(items(&[
        ("gone", json!({"v": 1})),
        ("kept", json!({"v": 1})),
    ]))
    .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(900));
    s.touch(&["kept"]).map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(900));
    let r = s.read(&["gone", "kept"]).map_err(|e| e.to_string())?;
    if r.contains_key("gone") || !r.contains_key("kept") {
        return Err(format!("expected only 'kept' after 1.8 s: {r:?}"));
    }
    // A conversation state that renews every turn stays while turns come.
    let activity: Activity = serde_json::from_value(json!({
        "type": "message", "channelId": "test", "conversation": {"id": "idle"}, "from": {"id": "u"}
    }))
    .map_err(|e| e.to_string())?;
    let state = ConversationState::new(
        StateStorage::new(State::instance())
            .with_prefix("idle/")
            .with_ttl(Duration::from_millis(1500)),
    )
    .renew_every_turn();
    let turns = state.create_property::<u32>("turns");
    let t = TurnContext::new(activity.clone());
    turns.set(&t, &1).map_err(|e| e.to_string())?;
    state.save_changes(&t, false).map_err(|e| e.to_string())?;
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(800));
        let t = TurnContext::new(activity.clone());
        turns.get(&t, None).map_err(|e| e.to_string())?;
        state.save_changes(&t, false).map_err(|e| e.to_string())?; // unchanged: a touch
    }
    let t = TurnContext::new(activity);
    if turns.get(&t, None).map_err(|e| e.to_string())? != Some(1) {
        return Err("the renewed conversation state expired".into());
    }
    Ok(())
}

/// An optimistic state renewed every turn: a turn's renewal (a touch, which
/// gives the state a new eTag) does not make the same turn's next save a
/// conflict with itself.
fn optimistic_renewal() -> Result<(), String> {
    let activity: Activity = serde_json::from_value(json!({
        "type": "message", "channelId": "test", "conversation": {"id": "renew"}, "from": {"id": "u"}
    }))
    .map_err(|e| e.to_string())?;
    let state = ConversationState::new(
        StateStorage::new(State::instance())
            .with_prefix("renew/")
            .with_ttl(Duration::from_secs(60)),
    )
    .optimistic()
    .renew_every_turn();
    let n = state.create_property::<u32>("n");
    let t = TurnContext::new(activity.clone());
    n.set(&t, &1).map_err(|e| e.to_string())?;
    state.save_changes(&t, false).map_err(|e| e.to_string())?;
    let t = TurnContext::new(activity.clone());
    n.get(&t, None).map_err(|e| e.to_string())?;
    state.save_changes(&t, false).map_err(|e| e.to_string())?; // unchanged: a touch
    n.set(&t, &2).map_err(|e| e.to_string())?;
    state
        .save_changes(&t, false)
        .map_err(|e| format!("the save after the turn's own renewal: {e}"))?;
    // A turn that loaded before another turn's write renews nothing: its
    // later save conflicts instead of overwriting that write.
    let a = TurnContext::new(activity.clone());
    n.get(&a, None).map_err(|e| e.to_string())?;
    let b = TurnContext::new(activity.clone());
    n.set(&b, &100).map_err(|e| e.to_string())?;
    state.save_changes(&b, false).map_err(|e| e.to_string())?;
    state.save_changes(&a, false).map_err(|e| e.to_string())?; // unchanged: a renewal
    n.set(&a, &3).map_err(|e| e.to_string())?;
    match state.save_changes(&a, false) {
        Err(BotError::EtagConflict { .. }) => {}
        other => return Err(format!("a stale turn's save after its renewal: {other:?}")),
    }
    let t = TurnContext::new(activity);
    match n.get(&t, None).map_err(|e| e.to_string())? {
        Some(100) => Ok(()),
        other => Err(format!("expected the other turn's 100 to stand: {other:?}")),
    }
}

/// A state over the host's value limit is a clear error naming its key.
fn too_large() -> Result<(), String> {
    let s = StateStorage::new(State::instance()).with_prefix("big/");
    let big = "x".repeat(1_100_000);
    match s.write(items(&[("huge", json!({"blob": big}))])) {
        Err(e @ BotError::TooLarge { .. }) => {
            let msg = e.to_string();
            if !msg.contains("\"huge\"") || !msg.contains("bytes") {
                return Err(format!("unclear message: {msg}"));
            }
            Ok(())
        }
        other => Err(format!("expected TooLarge: {other:?}")),
    }
}

fn main() {
    run_all("instance", Rc::new(StateStorage::new(State::instance())));
    run_all(
        "account",
        Rc::new(StateStorage::new(State::account()).with_prefix("bots/")),
    );
    let session =
        Session::create(Some(Duration::from_secs(60))).unwrap_or_else(|e| fail("session", e));
    let state = State::session(&session).unwrap_or_else(|e| fail("session", e));
    run_all("session", Rc::new(StateStorage::new(state)));
    for (name, check) in [
        (
            "atomic_batches",
            atomic_batches as fn() -> Result<(), String>,
        ),
        ("idle_expiry", idle_expiry),
        ("optimistic_renewal", optimistic_renewal),
        ("too_large", too_large),
    ] {
        match check() {
            Ok(()) => println!("ok wasm-state {name}"),
            Err(e) => fail(name, e),
        }
    }
}
