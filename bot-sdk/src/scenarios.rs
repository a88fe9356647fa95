//! Bot Framework's storage base tests (`storageBaseTests.js`) and BotState
//! tests (`botState.test.js`, `botStatePropertyAccessor.test.js`, the
//! scoped states, `BotStateSet`, .NET's `MakeSureStorageNotCalledNoChangesAsync`),
//! written once against [`Storage`] so any implementation can be checked:
//! this crate runs them on [`MemoryStorage`](crate::MemoryStorage), and
//! wasm-state's end-to-end tests run the same code on
//! [`StateStorage`](crate::StateStorage) inside a guest. Each scenario uses
//! its own keys, so all can share one storage.
//!
//! ```
//! use std::rc::Rc;
//! use wasm_state_bot::{MemoryStorage, scenarios};
//! let storage = Rc::new(MemoryStorage::new());
//! for (name, scenario) in scenarios::ALL {
//!     scenario(storage.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
//! }
//! ```
//!
//! (Bot Framework's "null keys / null changes" cases do not arise: the
//! types rule them out.)

use std::cell::Cell;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::activity::{Activity, ChannelAccount, ConversationAccount};
use crate::bot_state::{BotState, BotStateSet, ConversationState, auto_save};
use crate::error::{BotError, Result};
use crate::storage::{ANY_ETAG, ETAG, ETags, Storage, StoreItems, etag_of};
use crate::turn::TurnContext;

/// What a failed scenario says.
pub type Outcome = std::result::Result<(), String>;

/// A scenario: its name and what it runs on a storage.
pub type Scenario = (&'static str, fn(Rc<dyn Storage>) -> Outcome);

/// Every scenario, in order.
pub const ALL: [Scenario; 18] = [
    (
        "return_empty_object_when_reading_unknown_key",
        return_empty_object_when_reading_unknown_key,
    ),
    (
        "does_not_throw_when_writing_no_items",
        does_not_throw_when_writing_no_items,
    ),
    ("create_object", create_object),
    ("handle_crazy_keys", handle_crazy_keys),
    ("update_object", update_object),
    ("delete_object", delete_object),
    ("delete_unknown_object", delete_unknown_object),
    ("perform_batch_operations", perform_batch_operations),
    (
        "state_persists_through_multi_turn",
        state_persists_through_multi_turn,
    ),
    (
        "bot_state_load_save_clear_delete",
        bot_state_load_save_clear_delete,
    ),
    ("property_accessor_defaults", property_accessor_defaults),
    (
        "storage_not_called_without_changes",
        storage_not_called_without_changes,
    ),
    ("scoped_state_keys_and_errors", scoped_state_keys_and_errors),
    ("bot_state_set_load_save", bot_state_set_load_save),
    (
        "optimistic_save_detects_conflicts",
        optimistic_save_detects_conflicts,
    ),
    (
        "optimistic_blind_clear_and_forced_save_overwrite",
        optimistic_blind_clear_and_forced_save_overwrite,
    ),
    (
        "builders_keep_the_accessors_cache_slot",
        builders_keep_the_accessors_cache_slot,
    ),
    (
        "optimistic_saves_use_the_etag_their_write_got",
        optimistic_saves_use_the_etag_their_write_got,
    ),
];

macro_rules! check {
    ($cond:expr) => {
        if !$cond {
            return Err(format!("line {}: {}", line!(), stringify!($cond)));
        }
    };
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!("line {}: {}: {}", line!(), stringify!($cond), format!($($msg)+)));
        }
    };
}

fn ok<T>(r: Result<T>) -> std::result::Result<T, String> {
    r.map_err(|e| format!("unexpected error: {e}"))
}

fn items(pairs: &[(&str, Value)]) -> StoreItems {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Bot Framework 1: reading an unknown key gives an empty result.
pub fn return_empty_object_when_reading_unknown_key(s: Rc<dyn Storage>) -> Outcome {
    let r = ok(s.read(&["unknown"]))?;
    check!(r.is_empty(), "{r:?}");
    Ok(())
}

/// Bot Framework 4: writing no items is fine.
pub fn does_not_throw_when_writing_no_items(s: Rc<dyn Storage>) -> Outcome {
    ok(s.write(StoreItems::new()))
}

/// Bot Framework 5: create objects and read them back with eTags.
pub fn create_object(s: Rc<dyn Storage>) -> Outcome {
    ok(s.write(items(&[
        ("createPoco", json!({"id": 1})),
        ("createPocoStoreItem", json!({"id": 2})),
    ])))?;
    let r = ok(s.read(&["createPoco", "createPocoStoreItem"]))?;
    check!(r["createPoco"]["id"] == 1, "{r:?}");
    check!(r["createPocoStoreItem"]["id"] == 2, "{r:?}");
    check!(etag_of(&r["createPoco"]).is_some() && etag_of(&r["createPocoStoreItem"]).is_some());
    Ok(())
}

/// Bot Framework 6: keys with any characters (and ours: `/ ? #`, emoji, a
/// long key).
pub fn handle_crazy_keys(s: Rc<dyn Storage>) -> Outcome {
    let long = format!("long/{}", "k".repeat(1500));
    let keys = [
        "!@#$%^&*()~/\\><,.?';\"`~",
        "a/b?c#d",
        "ünïcödé 🤖 ключ",
        long.as_str(),
    ];
    for (i, key) in keys.iter().enumerate() {
        ok(s.write(items(&[(key, json!({"id": i}))])))?;
        let r = ok(s.read(&[key]))?;
        check!(r.get(*key).is_some_and(|v| v["id"] == i), "{key:?}: {r:?}");
    }
    Ok(())
}

/// Bot Framework 7: updates with eTags — the current one succeeds, a stale
/// one conflicts naming the key, none or `*` overwrites.
pub fn update_object(s: Rc<dyn Storage>) -> Outcome {
    ok(s.write(items(&[
        ("pocoItem", json!({"id": 1, "count": 1})),
        ("pocoStoreItem", json!({"id": 1, "count": 1})),
    ])))?;
    let mut loaded = ok(s.read(&["pocoItem", "pocoStoreItem"]))?;
    loaded
        .get_mut("pocoItem")
        .and_then(Value::as_object_mut)
        .map(|o| o.remove(ETAG));
    let etag = etag_of(&loaded["pocoStoreItem"]).map(str::to_string);
    check!(etag.is_some());
    for v in loaded.values_mut() {
        v["count"] = json!(2);
    }
    ok(s.write(loaded))?;
    let reloaded = ok(s.read(&["pocoItem", "pocoStoreItem"]))?;
    check!(etag_of(&reloaded["pocoItem"]).is_some());
    check!(
        etag_of(&reloaded["pocoStoreItem"]).map(str::to_string) != etag,
        "the eTag changed"
    );
    check!(reloaded["pocoItem"]["count"] == 2 && reloaded["pocoStoreItem"]["count"] == 2);
    // Without an eTag: no conflict.
    let mut poco = reloaded["pocoItem"].clone();
    poco.as_object_mut().map(|o| o.remove(ETAG));
    poco["count"] = json!(123);
    ok(s.write(items(&[("pocoItem", poco)])))?;
    // With the now-stale eTag: a conflict naming the key.
    let mut stale = reloaded["pocoStoreItem"].clone();
    stale[ETAG] = json!(etag);
    stale["count"] = json!(123);
    match s.write(items(&[("pocoStoreItem", stale)])) {
        Err(BotError::EtagConflict { key }) => {
            check!(key == "pocoStoreItem", "{key}");
        }
        other => return Err(format!("a stale eTag must conflict: {other:?}")),
    }
    let r = ok(s.read(&["pocoItem", "pocoStoreItem"]))?;
    check!(
        r["pocoItem"]["count"] == 123 && r["pocoStoreItem"]["count"] == 2,
        "{r:?}"
    );
    // `*` overwrites.
    let mut a = r["pocoItem"].clone();
    let mut b = r["pocoStoreItem"].clone();
    a["count"] = json!(100);
    b["count"] = json!(100);
    b[ETAG] = json!(ANY_ETAG);
    a.as_object_mut().map(|o| o.remove(ETAG));
    ok(s.write(items(&[("pocoItem", a), ("pocoStoreItem", b)])))?;
    for _ in 0..2 {
        let r = ok(s.read(&["pocoItem", "pocoStoreItem"]))?;
        check!(
            r["pocoItem"]["count"] == 100 && r["pocoStoreItem"]["count"] == 100,
            "{r:?}"
        );
    }
    Ok(())
}

/// Bot Framework 8: delete an object.
pub fn delete_object(s: Rc<dyn Storage>) -> Outcome {
    ok(s.write(items(&[("delete1", json!({"id": 1, "count": 1}))])))?;
    let r = ok(s.read(&["delete1"]))?;
    check!(etag_of(&r["delete1"]).is_some() && r["delete1"]["count"] == 1);
    ok(s.delete(&["delete1"]))?;
    check!(ok(s.read(&["delete1"]))?.is_empty());
    Ok(())
}

/// Bot Framework 9: deleting an unknown object is fine.
pub fn delete_unknown_object(s: Rc<dyn Storage>) -> Outcome {
    ok(s.delete(&["unknown_key"]))
}

/// Bot Framework 10: write, read and delete several items at once.
pub fn perform_batch_operations(s: Rc<dyn Storage>) -> Outcome {
    ok(s.write(items(&[
        ("batch1", json!({"count": 10})),
        ("batch2", json!({"count": 20})),
        ("batch3", json!({"count": 30})),
    ])))?;
    let r = ok(s.read(&["batch1", "batch2", "batch3"]))?;
    check!(r.len() == 3);
    for v in r.values() {
        check!(v["count"].as_i64().unwrap_or(0) > 0 && etag_of(v).is_some());
    }
    ok(s.delete(&["batch1", "batch2", "batch3"]))?;
    check!(ok(s.read(&["batch1", "batch2", "batch3"]))?.is_empty());
    Ok(())
}

fn activity(channel: &str, conversation: &str, user: &str, text: &str) -> Activity {
    Activity {
        kind: "message".into(),
        channel_id: channel.into(),
        conversation: Some(ConversationAccount {
            id: conversation.into(),
            ..ConversationAccount::default()
        }),
        from: Some(ChannelAccount {
            id: user.into(),
            ..ChannelAccount::default()
        }),
        recipient: Some(ChannelAccount {
            id: "bot".into(),
            ..ChannelAccount::default()
        }),
        text: Some(text.into()),
        ..Activity::default()
    }
}

/// .NET's StatePersistsThroughMultiTurn: a user property with a default,
/// saved automatically at the end of each turn.
pub fn state_persists_through_multi_turn(s: Rc<dyn Storage>) -> Outcome {
    let turn = |text: &str| -> std::result::Result<String, String> {
        let user = crate::UserState::with_namespace(SharedStorage(s.clone()), "multiturn");
        let test = user.create_property::<String>("test");
        let set = BotStateSet::new([user]);
        let t = TurnContext::new(activity("test", "convo", "user1", text));
        auto_save(&t, &set, |t| -> Result<String> {
            let value = test.get(t, Some("test".into()))?.unwrap_or_default();
            Ok(match t.activity().text.as_deref() {
                Some("set value") => {
                    test.set(t, &"value".to_string())?;
                    "value saved".into()
                }
                Some("get value") => value,
                _ => "?".into(),
            })
        })
        .map_err(|e| e.to_string())
    };
    check!(turn("get value")? == "test");
    check!(turn("set value")? == "value saved");
    check!(turn("get value")? == "value");
    Ok(())
}

/// A storage shared by reference (for states over a scenario's storage).
struct SharedStorage(Rc<dyn Storage>);

impl Storage for SharedStorage {
    fn read(&self, keys: &[&str]) -> Result<StoreItems> {
        self.0.read(keys)
    }
    fn write(&self, changes: StoreItems) -> Result<()> {
        self.0.write(changes)
    }
    fn write_tagged(&self, changes: StoreItems) -> Result<ETags> {
        self.0.write_tagged(changes)
    }
    fn delete(&self, keys: &[&str]) -> Result<()> {
        self.0.delete(keys)
    }
    fn touch(&self, keys: &[&str]) -> Result<ETags> {
        self.0.touch(keys)
    }
}

/// botState.test.js: load, save, reload with force, clear, delete, forced
/// saves.
pub fn bot_state_load_save_clear_delete(s: Rc<dyn Storage>) -> Outcome {
    let state = BotState::shared(s.clone(), |_| Ok("stateKey".into()));
    let turn = TurnContext::new(activity("test", "c", "u", "received"));
    check!(state.get(&turn).is_none(), "nothing cached before load");
    ok(state.load(&turn, false))?;
    ok(state.update(&turn, |m| m.insert("test".into(), json!("foo"))))?;
    ok(state.save_changes(&turn, false))?;
    check!(ok(s.read(&["stateKey"]))?["stateKey"]["test"] == "foo");
    // A cache hit; then a forced load re-reads storage.
    ok(state.update(&turn, |m| m.remove("test")))?;
    ok(state.load(&turn, true))?;
    check!(state.get(&turn).is_some_and(|m| m["test"] == "foo"));
    // clear: the next save writes an empty state.
    state.clear(&turn);
    check!(state.get(&turn).is_some_and(|m| m.is_empty()));
    ok(state.save_changes(&turn, false))?;
    let r = ok(s.read(&["stateKey"]))?;
    check!(
        r.get("stateKey").is_some_and(|v| v.get("test").is_none()),
        "{r:?}"
    );
    // delete: gone from the cache and from storage.
    ok(state.delete(&turn))?;
    check!(state.get(&turn).is_none());
    check!(ok(s.read(&["stateKey"]))?.is_empty());
    // A forced save writes even an unchanged state; with nothing cached it
    // writes an empty one.
    let turn = TurnContext::new(activity("test", "c", "u", "again"));
    ok(state.load(&turn, false))?;
    ok(state.update(&turn, |m| m.insert("test".into(), json!("foo"))))?;
    ok(state.save_changes(&turn, true))?;
    check!(ok(s.read(&["stateKey"]))?["stateKey"]["test"] == "foo");
    let turn = TurnContext::new(activity("test", "c", "u", "fresh"));
    ok(state.save_changes(&turn, true))?;
    check!(ok(s.read(&["stateKey"]))?["stateKey"].get("test").is_none());
    ok(state.delete(&turn))
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Address {
    street: String,
    #[serde(rename = "zipCode")]
    zip_code: u32,
    state: String,
}

/// botStatePropertyAccessor.test.js: defaults are stored, the first default
/// sticks, set/get/delete, arrays and objects round-trip, counters persist
/// across turns.
pub fn property_accessor_defaults(s: Rc<dyn Storage>) -> Outcome {
    let state = BotState::shared(s.clone(), |_| Ok("accessorKey".into()));
    let count = state.create_property::<u32>("count");
    let word = state.create_property::<String>("word");
    let flag = state.create_property::<bool>("flag");
    let list = state.create_property::<Vec<u32>>("list");
    let address = state.create_property::<Address>("address");
    let turn = TurnContext::new(activity("test", "c", "u", "t1"));
    check!(ok(count.get(&turn, Some(100)))? == Some(100));
    check!(ok(word.get(&turn, None))?.is_none());
    check!(ok(word.get(&turn, Some("word".into())))?.as_deref() == Some("word"));
    check!(
        ok(word.get(&turn, Some("second".into())))?.as_deref() == Some("word"),
        "the first default sticks"
    );
    ok(flag.set(&turn, &true))?;
    check!(ok(flag.get(&turn, None))? == Some(true));
    ok(flag.delete(&turn))?;
    check!(ok(flag.get(&turn, None))?.is_none());
    check!(ok(list.get(&turn, Some(vec![1])))? == Some(vec![1]));
    let home = Address {
        street: "1 Microsoft Way".into(),
        zip_code: 98052,
        state: "WA".into(),
    };
    check!(ok(address.get(&turn, Some(home.clone())))? == Some(home.clone()));
    ok(state.save_changes(&turn, false))?;
    // A counter across turns.
    for expect in [101u32, 102] {
        let turn = TurnContext::new(activity("test", "c", "u", "next"));
        let n = ok(count.get(&turn, Some(0)))?.unwrap_or(0) + 1;
        ok(count.set(&turn, &n))?;
        ok(state.save_changes(&turn, false))?;
        check!(n == expect, "{n}");
        check!(
            ok(address.get(&turn, None))? == Some(home.clone()),
            "defaults were saved"
        );
    }
    // Deleting a property never set, on an unloaded turn, is fine.
    let turn = TurnContext::new(activity("test", "c", "u", "t3"));
    ok(flag.delete(&turn))?;
    ok(state.delete(&turn))
}

/// A storage that counts its reads and writes.
struct Counting {
    inner: Rc<dyn Storage>,
    reads: Cell<u32>,
    writes: Cell<u32>,
}

impl Storage for Counting {
    fn read(&self, keys: &[&str]) -> Result<StoreItems> {
        self.reads.set(self.reads.get() + 1);
        self.inner.read(keys)
    }
    fn write(&self, changes: StoreItems) -> Result<()> {
        self.writes.set(self.writes.get() + 1);
        self.inner.write(changes)
    }
    fn delete(&self, keys: &[&str]) -> Result<()> {
        self.inner.delete(keys)
    }
}

/// .NET's MakeSureStorageNotCalledNoChangesAsync and
/// State_ForceCallsSaveWithoutCachedBotStateChanges: one read per turn, a
/// write only when something changed (or forced).
pub fn storage_not_called_without_changes(s: Rc<dyn Storage>) -> Outcome {
    let counting = Rc::new(Counting {
        inner: s,
        reads: Cell::new(0),
        writes: Cell::new(0),
    });
    let state = BotState::shared(counting.clone(), |t| {
        Ok(format!(
            "nochanges/{}",
            t.activity().from.as_ref().map_or("", |f| &f.id)
        ))
    });
    let prop = state.create_property::<String>("prop");
    let rw = || (counting.reads.get(), counting.writes.get());
    let turn = TurnContext::new(activity("test", "c", "u", "t"));
    check!(rw() == (0, 0));
    ok(state.save_changes(&turn, false))?;
    check!(rw() == (0, 0), "nothing loaded: no read, no write");
    ok(prop.set(&turn, &"hello".into()))?;
    check!(rw() == (1, 0), "{:?}", rw());
    ok(prop.set(&turn, &"there".into()))?;
    check!(rw() == (1, 0));
    ok(state.save_changes(&turn, false))?;
    check!(rw() == (1, 1));
    check!(ok(prop.get(&turn, None))?.as_deref() == Some("there"));
    ok(state.save_changes(&turn, false))?;
    check!(rw() == (1, 1), "unchanged: no write");
    ok(prop.delete(&turn))?;
    ok(state.save_changes(&turn, false))?;
    check!(rw() == (1, 2));
    ok(state.save_changes(&turn, false))?;
    check!(rw() == (1, 2));
    ok(state.save_changes(&turn, true))?;
    check!(rw() == (1, 3), "forced: a write");
    ok(state.delete(&turn))
}

/// conversationState / userState / privateConversationState tests: the keys
/// Bot Framework uses, and its errors for a missing channel, conversation or
/// user.
pub fn scoped_state_keys_and_errors(s: Rc<dyn Storage>) -> Outcome {
    let turn = TurnContext::new(activity("test", "convo", "user", "received"));
    let conv = ConversationState::new(SharedStorage(s.clone()));
    let user = crate::UserState::new(SharedStorage(s.clone()));
    let private = crate::PrivateConversationState::new(SharedStorage(s.clone()));
    check!(ok(conv.storage_key(&turn))? == "test/conversations/convo/");
    check!(ok(user.storage_key(&turn))? == "test/users/user/");
    check!(ok(private.storage_key(&turn))? == "test/conversations/convo/users/user/");
    let ns = ConversationState::with_namespace(SharedStorage(s.clone()), "ns");
    check!(ok(ns.storage_key(&turn))? == "test/conversations/convo/ns");
    for state in [&conv, &user, &private] {
        ok(state.load(&turn, false))?;
        ok(state.update(&turn, |m| m.insert("test".into(), json!("test"))))?;
        ok(state.save_changes(&turn, false))?;
        let key = ok(state.storage_key(&turn))?;
        check!(ok(s.read(&[&key]))?[&key]["test"] == "test");
    }
    let missing = |a: Activity, state: &BotState, field: &str| -> Outcome {
        let t = TurnContext::new(a);
        match state.load(&t, false) {
            Err(e @ BotError::MissingField(_)) => {
                check!(e.to_string() == format!("missing {field}"), "{e}");
                Ok(())
            }
            other => Err(format!("expected missing {field}, got {other:?}")),
        }
    };
    let mut a = activity("", "convo", "user", "x");
    missing(a.clone(), &conv, "activity.channelId")?;
    a.channel_id = "test".into();
    a.conversation = None;
    missing(a.clone(), &conv, "activity.conversation.id")?;
    missing(a.clone(), &private, "activity.conversation.id")?;
    let mut a = activity("test", "convo", "user", "x");
    a.from = None;
    missing(a.clone(), &user, "activity.from.id")?;
    missing(a, &private, "activity.from.id")?;
    for state in [&conv, &user, &private] {
        ok(state.delete(&turn))?;
    }
    Ok(())
}

/// botStateSet.test.js BotStateSet_LoadSave: two states saved together,
/// loaded together by new instances.
pub fn bot_state_set_load_save(s: Rc<dyn Storage>) -> Outcome {
    let turn = TurnContext::new(activity("test", "setconvo", "setuser", "x"));
    {
        let user = crate::UserState::new(SharedStorage(s.clone()));
        let conv = ConversationState::new(SharedStorage(s.clone()));
        let user_count = user.create_property::<u32>("userCount");
        let conv_count = conv.create_property::<u32>("convCount");
        let set = BotStateSet::new([user, conv]);
        check!(ok(user_count.get(&turn, Some(0)))? == Some(0));
        check!(ok(conv_count.get(&turn, Some(0)))? == Some(0));
        ok(user_count.set(&turn, &10))?;
        ok(conv_count.set(&turn, &20))?;
        ok(set.save_all_changes(&turn, false))?;
    }
    let user = crate::UserState::new(SharedStorage(s.clone()));
    let conv = ConversationState::new(SharedStorage(s.clone()));
    let user_count = user.create_property::<u32>("userCount");
    let conv_count = conv.create_property::<u32>("convCount");
    let set = BotStateSet::new([user.clone(), conv.clone()]);
    ok(set.load_all(&turn, false))?;
    check!(ok(user_count.get(&turn, None))? == Some(10));
    check!(ok(conv_count.get(&turn, None))? == Some(20));
    ok(user.delete(&turn))?;
    ok(conv.delete(&turn))
}

/// Beyond Bot Framework: with `optimistic`, two turns that loaded the same
/// state cannot both save — the second gets a conflict naming the key, and
/// a retried turn sees the first one's change. (Bot Framework's default,
/// kept here without `optimistic`, lets the last writer win.)
pub fn optimistic_save_detects_conflicts(s: Rc<dyn Storage>) -> Outcome {
    let state = ConversationState::new(SharedStorage(s.clone())).optimistic();
    let turns = state.create_property::<u32>("turns");
    let a = TurnContext::new(activity("test", "race", "u1", "a"));
    let b = TurnContext::new(activity("test", "race", "u2", "b"));
    // The very first save of a state is create-only too.
    check!(ok(turns.get(&a, Some(0)))? == Some(0));
    check!(ok(turns.get(&b, Some(0)))? == Some(0));
    ok(turns.set(&a, &1))?;
    ok(turns.set(&b, &1))?;
    ok(state.save_changes(&a, false))?;
    match state.save_changes(&b, false) {
        Err(BotError::EtagConflict { key }) => check!(key == "test/conversations/race/", "{key}"),
        other => return Err(format!("the second first-save must conflict: {other:?}")),
    }
    // Retry b's turn: it sees 1 and saves 2.
    let b = TurnContext::new(activity("test", "race", "u2", "b"));
    let n = ok(turns.get(&b, Some(0)))?.unwrap_or(0);
    check!(n == 1);
    ok(turns.set(&b, &(n + 1)))?;
    ok(state.save_changes(&b, false))?;
    // A turn that loaded before that write conflicts; one that saves twice
    // in a turn does not conflict with itself.
    let stale = TurnContext::new(activity("test", "race", "u1", "c"));
    ok(turns.get(&stale, None))?;
    let fresh = TurnContext::new(activity("test", "race", "u1", "d"));
    ok(turns.set(&fresh, &3))?;
    ok(state.save_changes(&fresh, false))?;
    ok(turns.set(&fresh, &4))?;
    ok(state.save_changes(&fresh, false))?;
    ok(turns.set(&stale, &99))?;
    check!(matches!(
        state.save_changes(&stale, false),
        Err(BotError::EtagConflict { .. })
    ));
    let check_turn = TurnContext::new(activity("test", "race", "u1", "e"));
    check!(ok(turns.get(&check_turn, None))? == Some(4));
    // Without optimistic mode the last writer wins (Bot Framework).
    let lww = ConversationState::new(SharedStorage(s.clone()));
    let t = lww.create_property::<u32>("turns");
    let x = TurnContext::new(activity("test", "race", "u1", "x"));
    let y = TurnContext::new(activity("test", "race", "u2", "y"));
    ok(t.get(&x, None))?;
    ok(t.get(&y, None))?;
    ok(t.set(&x, &10))?;
    ok(t.set(&y, &20))?;
    ok(lww.save_changes(&x, false))?;
    ok(lww.save_changes(&y, false))?;
    let z = TurnContext::new(activity("test", "race", "u1", "z"));
    check!(ok(t.get(&z, None))? == Some(20));
    ok(lww.delete(&z))
}

/// Beyond Bot Framework: an optimistic state the turn never read has no
/// eTag to check, so `clear` + `save_changes` and a forced save overwrite
/// (as Bot Framework's always do) instead of conflicting on every retry.
pub fn optimistic_blind_clear_and_forced_save_overwrite(s: Rc<dyn Storage>) -> Outcome {
    let state = ConversationState::new(SharedStorage(s.clone())).optimistic();
    let n = state.create_property::<u32>("n");
    let t = TurnContext::new(activity("test", "blind", "u", "a"));
    ok(n.set(&t, &1))?;
    ok(state.save_changes(&t, false))?;
    // A reset without reading first.
    let t = TurnContext::new(activity("test", "blind", "u", "b"));
    state.clear(&t);
    ok(state.save_changes(&t, false))?;
    let t = TurnContext::new(activity("test", "blind", "u", "c"));
    check!(ok(n.get(&t, None))?.is_none(), "cleared");
    ok(n.set(&t, &2))?;
    ok(state.save_changes(&t, false))?;
    // A forced save with nothing cached writes {} over it.
    let t = TurnContext::new(activity("test", "blind", "u", "d"));
    ok(state.save_changes(&t, true))?;
    let key = "test/conversations/blind/";
    let stored = ok(s.read(&[key]))?;
    check!(
        stored[key]
            .as_object()
            .is_some_and(|m| m.keys().all(|k| k == ETAG)),
        "{stored:?}"
    );
    // A state read this turn and absent is still create-only.
    ok(s.delete(&[key]))?;
    let late = TurnContext::new(activity("test", "blind", "u", "e"));
    ok(n.get(&late, None))?;
    let early = TurnContext::new(activity("test", "blind", "u", "f"));
    ok(n.set(&early, &5))?;
    ok(state.save_changes(&early, false))?;
    ok(n.set(&late, &6))?;
    check!(matches!(
        state.save_changes(&late, false),
        Err(BotError::EtagConflict { .. })
    ));
    ok(s.delete(&[key]))
}

/// Beyond Bot Framework: an accessor made before `optimistic()` or
/// `renew_every_turn()` writes into the same turn cache the built state
/// saves from (Bot Framework has one state object, so no such split).
pub fn builders_keep_the_accessors_cache_slot(s: Rc<dyn Storage>) -> Outcome {
    let state = ConversationState::new(SharedStorage(s.clone()));
    let n = state.create_property::<u32>("n");
    let state = state.optimistic().renew_every_turn();
    let t = TurnContext::new(activity("test", "slot", "u", "a"));
    ok(n.set(&t, &7))?;
    ok(state.save_changes(&t, false))?;
    let t = TurnContext::new(activity("test", "slot", "u", "b"));
    check!(
        ok(n.get(&t, None))? == Some(7),
        "the accessor's change was saved"
    );
    ok(state.delete(&t))
}

/// A storage where another writer overwrites the state right after each of
/// our writes (before our next call reaches the storage).
struct Interloper {
    inner: Rc<dyn Storage>,
    key: &'static str,
    armed: Cell<bool>,
}

impl Interloper {
    fn strike(&self) -> Result<()> {
        if self.armed.replace(false) {
            let theirs = json!({"n": 100, "eTag": ANY_ETAG});
            self.inner.write(items(&[(self.key, theirs)]))?;
        }
        Ok(())
    }
}

impl Storage for Interloper {
    fn read(&self, keys: &[&str]) -> Result<StoreItems> {
        self.strike()?;
        self.inner.read(keys)
    }
    fn write(&self, changes: StoreItems) -> Result<()> {
        self.strike()?;
        self.inner.write(changes)?;
        self.armed.set(true);
        Ok(())
    }
    fn write_tagged(&self, changes: StoreItems) -> Result<ETags> {
        self.strike()?;
        let tags = self.inner.write_tagged(changes)?;
        self.armed.set(true);
        Ok(tags)
    }
    fn delete(&self, keys: &[&str]) -> Result<()> {
        self.inner.delete(keys)
    }
}

/// Beyond Bot Framework: an optimistic turn that saves twice writes the
/// second time with the eTag its first write got — another writer in
/// between is a conflict, not lost (a read after the write would have
/// picked up the other writer's eTag).
pub fn optimistic_saves_use_the_etag_their_write_got(s: Rc<dyn Storage>) -> Outcome {
    let key = "test/conversations/interloper/";
    let storage = Interloper {
        inner: s.clone(),
        key,
        armed: Cell::new(false),
    };
    let state = ConversationState::new(storage).optimistic();
    let n = state.create_property::<u32>("n");
    let t = TurnContext::new(activity("test", "interloper", "u", "a"));
    ok(n.set(&t, &1))?;
    ok(state.save_changes(&t, false))?;
    ok(n.set(&t, &2))?;
    check!(
        matches!(
            state.save_changes(&t, false),
            Err(BotError::EtagConflict { .. })
        ),
        "the second save must see the other writer"
    );
    let stored = ok(s.read(&[key]))?;
    check!(
        stored[key]["n"] == 100,
        "the other writer's value is kept: {stored:?}"
    );
    ok(s.delete(&[key]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStorage;

    #[test]
    fn every_scenario_passes_on_memory_storage() {
        let storage: Rc<dyn Storage> = Rc::new(MemoryStorage::new());
        for (name, scenario) in ALL {
            scenario(storage.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn every_scenario_passes_on_a_storage_with_preexisting_items() {
        // As botbuilder's "PreExisting" block: the storage starts with an item.
        let storage: Rc<dyn Storage> = Rc::new(MemoryStorage::with_items([(
            "test".to_string(),
            r#"{"counter":12}"#.to_string(),
        )]));
        for (name, scenario) in ALL {
            scenario(storage.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert_eq!(storage.read(&["test"]).unwrap()["test"]["counter"], 12);
    }
}
