//! Export and import (`wasm_state::admin::transfer`) on real stores: redb
//! files in temporary dirs and a real `redis-server` on a free loopback
//! port. Round trips redb → redb, redb → Redis → redb (line for line and
//! through the API), malformed input (nothing written), expired entries,
//! idempotent and resumed imports, and a property test that
//! export → import → export is the identity.

mod support {
    pub mod redis_server;
}

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::Value as J;
use support::redis_server;
use wasm_state::admin::transfer::{
    self, CHUNK, ExportCounts, ImportCounts, Record, Selection, TransferError,
};
use wasm_state::store::{
    Condition, ExpireMode, KeyKind, KeyListing, Limits, ManualClock, ScopeHandle, SetOptions,
    StateError, Store, StoreConfig,
};

/// 2026-01-01T00:00:00Z in ms.
const T0: u64 = 1_767_225_600_000;

fn config(clock: &ManualClock) -> StoreConfig {
    StoreConfig {
        clock: Arc::new(clock.clone()),
        sweep_interval: None,
        ..StoreConfig::default()
    }
}

/// A fresh redb store in its own temporary dir, its clock at `now`.
fn redb_at(now: u64) -> (Store, ManualClock, tempfile::TempDir) {
    redb_with(now, Limits::default())
}

fn redb_with(now: u64, limits: Limits) -> (Store, ManualClock, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::new(now);
    let mut c = config(&clock);
    c.limits = limits;
    let store = Store::open(dir.path().join("state.redb"), c).expect("open redb");
    (store, clock, dir)
}

/// A fresh Redis store (a new namespace on the shared server).
async fn redis_at(now: u64) -> (Store, ManualClock) {
    let clock = ManualClock::new(now);
    let url = redis_server::shared().url();
    let store = Store::connect(&url, config(&clock))
        .await
        .expect("connect to redis");
    (store, clock)
}

/// A value of the big map and list: UTF-8 mostly, every 7th binary.
fn element(i: usize) -> Vec<u8> {
    if i.is_multiple_of(7) {
        vec![0xff, (i % 256) as u8, 0, 0x80]
    } else {
        format!("v{i} ✓").into_bytes()
    }
}

async fn set_ttl_ms(h: &ScopeHandle, key: &str, value: &[u8], ms: u64) {
    h.set_with(
        key,
        value.to_vec(),
        SetOptions {
            ttl: Some(Duration::from_millis(ms)),
            condition: None,
        },
    )
    .await
    .unwrap();
}

async fn big_map(h: &ScopeHandle, key: &str, n: usize) {
    let fields: Vec<(String, Vec<u8>)> = (0..n).map(|i| (format!("f{i:05}"), element(i))).collect();
    for c in fields.chunks(100) {
        h.map_set(key, c.to_vec()).await.unwrap();
    }
}

async fn big_list(h: &ScopeHandle, key: &str, n: usize) {
    let items: Vec<Vec<u8>> = (0..n).map(element).collect();
    for c in items.chunks(100) {
        h.list_append(key, c.to_vec()).await.unwrap();
    }
}

/// Three instances in two accounts, a session, every type, UTF-8 and
/// binary bytes, a map and a list over several lines, TTLs (a value's to
/// the millisecond), account scopes. Returns the session's id.
async fn fill(store: &Store) -> String {
    store.register_instance("shop", "acme").await.unwrap();
    store.register_instance("blog", "acme").await.unwrap();
    store.register_instance("solo", "indie").await.unwrap();
    let shop = store.instance("shop").unwrap();
    shop.set("greeting", "hello, wörld".into()).await.unwrap();
    shop.set("binary", vec![0, 0x9f, 0x92, 0x96, 0xff])
        .await
        .unwrap();
    shop.set("empty", Vec::new()).await.unwrap();
    set_ttl_ms(&shop, "soon", b"ms", 1500).await;
    big_map(&shop, "big-map", 2500).await;
    assert!(
        shop.expire("big-map", 120, ExpireMode::Always)
            .await
            .unwrap()
    );
    big_list(&shop, "big-list", 2345).await;
    shop.map_set(
        "prefs",
        vec![
            ("".into(), b"empty field".to_vec()),
            ("theme".into(), b"dark".to_vec()),
            ("raw".into(), vec![0xc3, 0x28]),
        ],
    )
    .await
    .unwrap();
    shop.list_append("recent", vec![b"a".to_vec(), vec![0xfe], b"a".to_vec()])
        .await
        .unwrap();
    assert!(shop.expire("recent", 30, ExpireMode::Always).await.unwrap());
    let s = store
        .create_session("shop", Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    let sh = store.session("shop", &s.id).await.unwrap();
    sh.set("user", br#"{"name":"Ada"}"#.to_vec()).await.unwrap();
    sh.list_append("cart", vec![b"apple".to_vec(), vec![1, 2, 255]])
        .await
        .unwrap();
    set_ttl_ms(&sh, "token", b"t0k3n", 600_000).await;
    let blog = store.instance("blog").unwrap();
    blog.set("title", b"Notes".to_vec()).await.unwrap();
    let acme = store.account("acme").unwrap();
    acme.set("plan", b"pro".to_vec()).await.unwrap();
    acme.map_set("limits", vec![("seats".into(), b"10".to_vec())])
        .await
        .unwrap();
    let indie = store.account("indie").unwrap();
    indie
        .list_append("log", vec![b"started".to_vec()])
        .await
        .unwrap();
    s.id
}

/// An export's lines.
async fn export_lines(store: &Store, selection: &Selection) -> (Vec<String>, ExportCounts) {
    let mut lines = Vec::new();
    let counts = transfer::export(store, selection, &mut |l| {
        lines.push(l);
        transfer::emitted(Ok(()))
    })
    .await
    .expect("export");
    (lines, counts)
}

/// An export as its parsed header, its other lines and its counts; the end
/// line without its `etag_floor` (each store's own counter; tested apart).
async fn export(store: &Store, selection: &Selection) -> (J, Vec<String>, ExportCounts) {
    let (mut lines, counts) = export_lines(store, selection).await;
    let header: J = serde_json::from_str(&lines[0]).expect("a JSON header");
    if let Some(last) = lines.last_mut() {
        let mut end: J = serde_json::from_str(last).expect("a JSON end line");
        if let Some(m) = end.as_object_mut() {
            m.remove("etag_floor");
        }
        *last = end.to_string();
    }
    (header, lines.split_off(1), counts)
}

async fn export_all(store: &Store) -> (J, Vec<String>, ExportCounts) {
    export(store, &Selection::All).await
}

fn text(header: &J, body: &[String]) -> String {
    let mut t = header.to_string();
    for l in body {
        t.push('\n');
        t.push_str(l);
    }
    t.push('\n');
    t
}

async fn import_text(store: &Store, text: &str) -> Result<ImportCounts, TransferError> {
    let records = transfer::parse(text)?;
    transfer::import(store, records, &mut |_| {}).await
}

/// What a key holds, read through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Data {
    Value(Vec<u8>),
    Map(Vec<(String, Vec<u8>)>),
    List(Vec<Vec<u8>>),
}

/// Everything a store holds (instances, sessions, every key of their
/// scopes and their accounts' scopes), through the API.
async fn contents(store: &Store) -> Vec<(String, String, Data, Option<u64>)> {
    let mut scopes: Vec<(String, ScopeHandle)> = Vec::new();
    let mut accounts = BTreeSet::new();
    for i in store.list_instances().await.unwrap() {
        scopes.push((
            format!("instance {} of {}", i.name, i.account),
            store.instance(&i.name).unwrap(),
        ));
        for s in store.list_sessions(&i.name).await.unwrap() {
            scopes.push((
                format!("session {} of {} until {}", s.id, i.name, s.expires_at_ms),
                store.session(&i.name, &s.id).await.unwrap(),
            ));
        }
        accounts.insert(i.account);
    }
    for a in accounts {
        scopes.push((format!("account {a}"), store.account(&a).unwrap()));
    }
    let mut out = Vec::new();
    for (name, h) in scopes {
        let mut cursor = None;
        loop {
            let page = h
                .keys(KeyListing {
                    cursor,
                    ..KeyListing::default()
                })
                .await
                .unwrap();
            for k in page.keys {
                let info = h.info(&k).await.unwrap().expect("a listed key");
                let data = match info.kind {
                    KeyKind::Value => Data::Value(h.get(&k).await.unwrap().unwrap()),
                    KeyKind::Map => Data::Map(h.map_get_all(&k).await.unwrap()),
                    KeyKind::List => Data::List(h.list_range(&k, 0, -1).await.unwrap()),
                };
                out.push((name.clone(), k, data, info.expires_at_ms));
            }
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    out
}

async fn is_empty(store: &Store) -> bool {
    store.list_instances().await.unwrap().is_empty()
        && contents(store).await.is_empty()
        && store
            .account("acme")
            .unwrap()
            .keys(KeyListing::default())
            .await
            .unwrap()
            .keys
            .is_empty()
}

/// The lines of one key in an export body.
fn key_lines<'a>(body: &'a [String], key: &str) -> Vec<&'a String> {
    let needle = format!("\"key\":{}", J::from(key));
    body.iter().filter(|l| l.contains(&needle)).collect()
}

#[tokio::test]
async fn redb_round_trip_is_exact() {
    let (a, _ca, _da) = redb_at(T0);
    let session = fill(&a).await;
    let (header, body, counts) = export_all(&a).await;
    assert_eq!(header["wasm_state_export"], 2);
    assert_eq!(header["exported_at_ms"], T0);
    assert_eq!(header["engine"], "redb");
    assert_eq!(
        counts,
        ExportCounts {
            instances: 3,
            sessions: 1,
            keys: 15,
            skipped_expired: 0
        }
    );
    // The order: instance, its sessions with their keys, its keys; then
    // the accounts.
    let first: Vec<J> = body
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(first[0]["instance"], "blog");
    assert_eq!(first[2]["instance"], "shop");
    assert_eq!(first[3]["session"], session.as_str());
    assert_eq!(first[3]["expires_at_ms"], T0 + 3_600_000);
    assert_eq!(first[4]["scope"]["session"], session.as_str());
    assert_eq!(
        first[first.len() - 2]["scope"],
        serde_json::json!({"account": "indie"})
    );
    // Then the end line: the lines before it, and the counts.
    assert_eq!(
        first.last().unwrap(),
        &serde_json::json!({"end": true, "lines": body.len() - 1, "instances": 3,
            "sessions": 1, "keys": 15, "skipped_expired": 0})
    );
    // Big maps and lists over several lines, 1000 elements each at most.
    let map = key_lines(&body, "big-map");
    assert_eq!(map.len(), 3);
    let map: Vec<J> = map
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(map[0]["type"], "map");
    assert_eq!(map[0]["expires_at_ms"], T0 + 120_000);
    assert_eq!(map[0]["fields"].as_array().unwrap().len(), CHUNK);
    assert_eq!(map[1]["more"], true);
    assert_eq!(map[2]["fields"].as_array().unwrap().len(), 500);
    assert_eq!(map[2]["fields"][0][0], "f02000");
    let list = key_lines(&body, "big-list");
    assert_eq!(list.len(), 3);
    assert!(list[2].contains("\"more\":true"));
    // Binary bytes as base64, UTF-8 as strings, a value's TTL to the ms.
    let binary = key_lines(&body, "binary");
    assert!(
        binary[0].contains(r#""value":{"base64":"AJ+Slv8="}"#),
        "{}",
        binary[0]
    );
    assert!(key_lines(&body, "greeting")[0].contains(r#""value":"hello, wörld""#));
    assert!(key_lines(&body, "soon")[0].contains(&format!("\"expires_at_ms\":{}", T0 + 1500)));

    // Into a second data dir.
    let (b, _cb, _db) = redb_at(T0);
    let records = transfer::parse(&text(&header, &body)).unwrap();
    let n = records.len() as u64;
    let mut seen = Vec::new();
    let got = transfer::import(&b, records, &mut |k| seen.push(k))
        .await
        .unwrap();
    assert_eq!(
        got,
        ImportCounts {
            instances: 3,
            sessions: 1,
            keys: 15,
            skipped_expired: 0
        }
    );
    assert_eq!(
        seen,
        (1..=n).collect::<Vec<_>>(),
        "progress after each record"
    );
    let (_, again, _) = export_all(&b).await;
    assert_eq!(body, again);
    assert_eq!(contents(&a).await, contents(&b).await);
    // The session is the same session, with its keys.
    let sh = b.session("shop", &session).await.unwrap();
    assert_eq!(
        sh.get("user").await.unwrap(),
        Some(br#"{"name":"Ada"}"#.to_vec())
    );
    assert_eq!(
        b.session_info("shop", &session)
            .await
            .unwrap()
            .expires_at_ms,
        T0 + 3_600_000
    );

    // Selections.
    let (_, one, c) = export(&a, &Selection::Instance("shop".into())).await;
    assert_eq!((c.instances, c.sessions, c.keys), (1, 1, 11));
    assert_eq!(
        serde_json::from_str::<J>(&one[0]).unwrap(),
        serde_json::json!({"instance": "shop", "account": "acme"})
    );
    let (_, acct, c) = export(&a, &Selection::Account("acme".into())).await;
    assert_eq!((c.instances, c.sessions, c.keys), (0, 0, 2));
    let (end, keys) = acct.split_last().unwrap();
    assert!(
        keys.iter()
            .all(|l| l.contains(r#""scope":{"account":"acme"}"#))
    );
    assert!(end.starts_with(r#"{"end":true,"#), "{end}");
    let missing = transfer::export(&a, &Selection::Instance("nope".into()), &mut |_| {
        transfer::emitted(Ok(()))
    })
    .await
    .unwrap_err();
    assert!(
        missing.to_string().contains("no instance named \"nope\""),
        "{missing}"
    );
    // An emit that fails stops the export with its error.
    let out = transfer::export(&a, &Selection::All, &mut |_| {
        transfer::emitted(Err(TransferError::Output("disk full".into())))
    })
    .await
    .unwrap_err();
    assert_eq!(out.to_string(), "cannot write the export: disk full");
}

/// An export of a redb store ends with the last etag version it issued;
/// a store it is imported into issues only newer ones, so an etag a client
/// kept from the source never matches a key of the copy — also after the
/// copy is reopened. (Redis etags carry a nonce per owner: none needed.)
#[tokio::test]
async fn a_copy_never_issues_an_etag_of_its_source() {
    let (a, _ca, _da) = redb_at(T0);
    a.register_instance("shop", "acme").await.unwrap();
    let h = a.instance("shop").unwrap();
    for i in 0..50 {
        h.set("k", format!("{i}").into_bytes()).await.unwrap();
    }
    let kept = h.get_entry("k").await.unwrap().unwrap().etag;
    let version = |etag: &str| u64::from_str_radix(etag, 16).expect("a redb etag");
    let (lines, _) = export_lines(&a, &Selection::All).await;
    let end: J = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(end["etag_floor"].as_u64(), Some(version(&kept)));

    let (b, cb, db) = redb_at(T0);
    import_text(&b, &(lines.join("\n") + "\n")).await.unwrap();
    let copy = b.instance("shop").unwrap();
    let imported = copy.get_entry("k").await.unwrap().unwrap().etag;
    assert!(version(&imported) > version(&kept), "{imported} vs {kept}");
    assert!(matches!(
        copy.set_with(
            "k",
            b"stale".to_vec(),
            SetOptions {
                ttl: None,
                condition: Some(Condition::IfMatch(kept.clone())),
            },
        )
        .await,
        Err(StateError::EtagMismatch)
    ));
    // Durable: a reopened copy goes on from there.
    drop(copy);
    drop(b);
    let b = Store::open(db.path().join("state.redb"), config(&cb)).expect("reopen");
    let etag = b
        .instance("shop")
        .unwrap()
        .set("new", b"1".to_vec())
        .await
        .unwrap();
    assert!(version(&etag) > version(&kept), "{etag} vs {kept}");

    // A raise alone (an export of no keys) is durable too.
    let (c, cc, dc) = redb_at(T0);
    c.raise_etag_floor(1000).await.unwrap();
    drop(c);
    let c = Store::open(dc.path().join("state.redb"), config(&cc)).expect("reopen");
    c.register_instance("shop", "acme").await.unwrap();
    let etag = c
        .instance("shop")
        .unwrap()
        .set("k", b"1".to_vec())
        .await
        .unwrap();
    assert!(version(&etag) > 1000, "{etag}");

    // Redis has no store-wide counter: no floor in its export.
    let (r, _cr) = redis_at(T0).await;
    import_text(&r, &(lines.join("\n") + "\n")).await.unwrap();
    let (rl, _) = export_lines(&r, &Selection::All).await;
    let end: J = serde_json::from_str(rl.last().unwrap()).unwrap();
    assert!(end.get("etag_floor").is_none(), "{end}");
}

#[tokio::test]
async fn redb_to_redis_and_back() {
    let (a, _ca, _da) = redb_at(T0);
    fill(&a).await;
    let (header, body, _) = export_all(&a).await;
    let (r, _cr) = redis_at(T0).await;
    import_text(&r, &text(&header, &body)).await.unwrap();
    let (rh, from_redis, counts) = export_all(&r).await;
    assert_eq!(rh["engine"], "redis");
    assert_eq!((counts.instances, counts.sessions, counts.keys), (3, 1, 15));
    assert_eq!(body, from_redis);
    assert_eq!(contents(&a).await, contents(&r).await);

    let (c, _cc, _dc) = redb_at(T0);
    import_text(&c, &text(&rh, &from_redis)).await.unwrap();
    let (_, back, _) = export_all(&c).await;
    assert_eq!(body, back);
    assert_eq!(contents(&a).await, contents(&c).await);
}

/// A list or map over the store's reply limit is exported all the same:
/// list lines shrink until they fit the limit, map pages stop short of it,
/// and the copy is exact.
#[tokio::test]
async fn collections_over_the_reply_limit_export_whole() {
    let limits = Limits {
        max_reply_bytes: 3000,
        ..Limits::default()
    };
    let (a, _ca, _da) = redb_with(T0, limits);
    a.register_instance("shop", "acme").await.unwrap();
    let shop = a.instance("shop").unwrap();
    let items: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 100]).collect();
    shop.list_append("l", items.clone()).await.unwrap();
    let fields: Vec<(String, Vec<u8>)> = (0..100u8)
        .map(|i| (format!("f{i:05}"), vec![i; 100]))
        .collect();
    shop.map_set("m", fields.clone()).await.unwrap();
    assert!(matches!(
        shop.list_range("l", 0, -1).await,
        Err(StateError::ReplyTooLarge { max: 3000 })
    ));

    let (header, body, _) = export_all(&a).await;
    // 32 items (3,200 bytes) are over the limit, 16 fit: lines of 16, until
    // the last 20 (2,000 bytes) fit at once.
    let lines: Vec<usize> = key_lines(&body, "l")
        .iter()
        .map(|l| {
            serde_json::from_str::<J>(l).unwrap()["items"]
                .as_array()
                .unwrap()
                .len()
        })
        .collect();
    assert_eq!(lines, [16, 16, 16, 16, 16, 20]);
    let map = key_lines(&body, "m");
    assert_eq!(map.len(), 1);

    let (b, _cb, _db) = redb_at(T0);
    import_text(&b, &text(&header, &body)).await.unwrap();
    let copy = b.instance("shop").unwrap();
    assert_eq!(copy.list_range("l", 0, -1).await.unwrap(), items);
    assert_eq!(copy.map_get_all("m").await.unwrap(), fields);
}

#[tokio::test]
async fn a_bad_line_imports_nothing() {
    let (a, _ca, _da) = redb_at(T0);
    fill(&a).await;
    let (header, body, _) = export_all(&a).await;
    let (b, _cb, _db) = redb_at(T0);

    // An export cut short after any whole line imports nothing: the end
    // line is missing.
    for cut in [1, body.len() / 2, body.len() - 1] {
        let e = import_text(&b, &text(&header, &body[..cut]))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, TransferError::Line { line, .. } if *line == cut + 2),
            "{e}"
        );
        assert!(e.to_string().contains("cut short"), "{e}");
        assert!(is_empty(&b).await);
    }

    // Line 5 (the header is line 1) is not JSON.
    let mut broken = body.clone();
    broken[3] = "{\"scope\": nope".into();
    match import_text(&b, &text(&header, &broken)).await {
        Err(TransferError::Line { line: 5, message }) => {
            assert!(message.contains("not JSON"), "{message}")
        }
        other => panic!("expected an error on line 5, got {other:?}"),
    }
    assert!(is_empty(&b).await);

    // Bad base64 late in the file: still nothing written.
    let mut bad = body.clone();
    let at = bad
        .iter()
        .rposition(|l| l.contains("\"base64\":\""))
        .unwrap();
    bad[at] = bad[at].replacen("\"base64\":\"", "\"base64\":\"!!", 1);
    let e = import_text(&b, &text(&header, &bad)).await.unwrap_err();
    assert!(
        matches!(&e, TransferError::Line { line, .. } if *line == at + 2),
        "{e}"
    );
    assert!(e.to_string().contains("bad base64"), "{e}");
    assert!(e.to_string().ends_with("nothing was imported"), "{e}");
    assert!(is_empty(&b).await);

    // A key of a session the file does not declare.
    let mut orphan = body.clone();
    let at = orphan
        .iter()
        .position(|l| serde_json::from_str::<J>(l).unwrap()["scope"]["session"].is_string())
        .unwrap();
    let e = transfer::parse(&text(&header, &orphan.split_off(at))).unwrap_err();
    assert!(e.to_string().contains("no earlier line declares"), "{e}");

    // Over the target's limits: found before anything is written.
    let small = Limits {
        max_value_bytes: 10,
        ..Limits::default()
    };
    let (c, _cc, _dc) = redb_with(T0, small);
    let e = import_text(&c, &text(&header, &body)).await.unwrap_err();
    assert!(e.to_string().contains("value too large"), "{e}");
    assert!(matches!(e, TransferError::Line { .. }));
    assert!(is_empty(&c).await);

    // An instance the target has in another account.
    b.register_instance("solo", "someone-else").await.unwrap();
    let e = import_text(&b, &text(&header, &body)).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("belongs to account \"someone-else\""),
        "{e}"
    );
    assert_eq!(b.list_instances().await.unwrap().len(), 1);
    assert!(contents(&b).await.is_empty());
}

#[tokio::test]
async fn expired_entries_are_skipped_and_imports_are_idempotent() {
    let (a, _ca, _da) = redb_at(T0);
    let session = fill(&a).await;
    let (header, body, _) = export_all(&a).await;
    let dump = text(&header, &body);

    // 200 s later: "soon" (1.5 s), "recent" (30 s) and the three-line
    // "big-map" (120 s) have expired.
    let (b, _cb, _db) = redb_at(T0 + 200_000);
    let counts = import_text(&b, &dump).await.unwrap();
    assert_eq!(
        counts,
        ImportCounts {
            instances: 3,
            sessions: 1,
            keys: 12,
            skipped_expired: 3
        }
    );
    let shop = b.instance("shop").unwrap();
    assert_eq!(shop.info("big-map").await.unwrap(), None);
    assert_eq!(shop.info("soon").await.unwrap(), None);
    assert_eq!(shop.list_length("big-list").await.unwrap(), 2345);
    let token = b.session("shop", &session).await.unwrap();
    assert_eq!(
        token.info("token").await.unwrap().unwrap().expires_at_ms,
        Some(T0 + 600_000)
    );

    // Twice: the same counts and state.
    let before = contents(&b).await;
    assert_eq!(import_text(&b, &dump).await.unwrap(), counts);
    assert_eq!(contents(&b).await, before);

    // Changed keys are put back; other keys are left alone.
    shop.list_append("big-list", vec![b"extra".to_vec()])
        .await
        .unwrap();
    shop.set("greeting", b"changed".to_vec()).await.unwrap();
    shop.map_set("prefs", vec![("new".into(), b"1".to_vec())])
        .await
        .unwrap();
    shop.set("local", b"mine".to_vec()).await.unwrap();
    import_text(&b, &dump).await.unwrap();
    let mut after = contents(&b).await;
    let local = after
        .iter()
        .position(|(_, k, _, _)| k == "local")
        .expect("a key not in the file stays");
    assert_eq!(after.remove(local).2, Data::Value(b"mine".to_vec()));
    assert_eq!(after, before);

    // An hour later the session (3600 s) has expired too, with its three
    // keys: skipped and counted.
    let (c, _cc, _dc) = redb_at(T0 + 3_700_000);
    let counts = import_text(&c, &dump).await.unwrap();
    assert_eq!(
        counts,
        ImportCounts {
            instances: 3,
            sessions: 0,
            keys: 9,
            skipped_expired: 7
        }
    );
    assert!(c.list_sessions("shop").await.unwrap().is_empty());

    // A map that expires while its lines are imported (the clock moves on
    // 121 s after its first line) is not brought back by its `more`
    // lines, partial and without a TTL; keys after it that have expired
    // by then ("recent", "soon") are skipped.
    let (e, ce, _de) = redb_at(T0);
    let records: Vec<Record> = transfer::parse(&dump).unwrap();
    let first = records
        .iter()
        .position(|r| matches!(r, Record::Key { key, more: false, .. } if key == "big-map"))
        .unwrap() as u64;
    let counts = transfer::import(&e, records, &mut |n| {
        if n == first + 1 {
            ce.advance(Duration::from_secs(121));
        }
    })
    .await
    .unwrap();
    assert_eq!((counts.keys, counts.skipped_expired), (13, 2));
    let shop = e.instance("shop").unwrap();
    assert_eq!(shop.info("big-map").await.unwrap(), None);
    assert_eq!(shop.list_length("big-list").await.unwrap(), 2345);

    // An interrupted import (the first half of the records) is resumed by
    // importing the whole file again.
    let (d, _cd, _dd) = redb_at(T0);
    let records: Vec<Record> = transfer::parse(&dump).unwrap();
    let half = records.len() / 2;
    transfer::import(&d, records[..half].to_vec(), &mut |_| {})
        .await
        .unwrap();
    transfer::import(&d, records, &mut |_| {}).await.unwrap();
    assert_eq!(export_all(&d).await.1, body);
}

// ---- the property: export → import → export is the identity ----

#[derive(Debug, Clone)]
enum Gen {
    Value(Vec<u8>),
    Map(Vec<(String, Vec<u8>)>),
    List(Vec<Vec<u8>>),
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-zé ✓\"\\\\]{0,6}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..6),
    ]
}

fn content() -> impl Strategy<Value = Gen> {
    prop_oneof![
        4 => bytes().prop_map(Gen::Value),
        3 => proptest::collection::vec(("[a-z]{0,3}", bytes()), 1..6).prop_map(Gen::Map),
        3 => proptest::collection::vec(bytes(), 1..6).prop_map(Gen::List),
        1 => (990usize..1010, any::<bool>()).prop_map(|(n, map)| if map {
            Gen::Map((0..n).map(|i| (format!("f{i}"), element(i))).collect())
        } else {
            Gen::List((0..n).map(element).collect())
        }),
    ]
}

/// Scope (0, 1: instances i0, i1; 2, 3: their sessions; 4, 5: accounts
/// a0, a1), key, content, TTL in ms.
type Entry = (usize, String, Gen, Option<u64>);

fn entry() -> impl Strategy<Value = Entry> {
    (
        0usize..6,
        "[a-c]{1,2}",
        content(),
        proptest::option::of(1u64..100_000),
    )
}

async fn apply(store: &Store, entries: &[Entry], session_ttl: [u64; 2]) {
    let mut scopes = Vec::new();
    for (i, account) in ["a0", "a1"].iter().enumerate() {
        store
            .register_instance(&format!("i{i}"), account)
            .await
            .unwrap();
        scopes.push(store.instance(&format!("i{i}")).unwrap());
    }
    for (i, ttl) in session_ttl.iter().enumerate() {
        let s = store
            .create_session(&format!("i{i}"), Some(Duration::from_millis(*ttl)))
            .await
            .unwrap();
        scopes.push(store.session(&format!("i{i}"), &s.id).await.unwrap());
    }
    scopes.push(store.account("a0").unwrap());
    scopes.push(store.account("a1").unwrap());
    for (scope, key, content, ttl) in entries {
        let h = &scopes[*scope];
        h.delete(key).await.unwrap();
        match content {
            Gen::Value(v) => {
                h.set_with(
                    key,
                    v.clone(),
                    SetOptions {
                        ttl: ttl.map(Duration::from_millis),
                        condition: None,
                    },
                )
                .await
                .unwrap();
            }
            Gen::Map(fields) => {
                for c in fields.chunks(100) {
                    h.map_set(key, c.to_vec()).await.unwrap();
                }
            }
            Gen::List(items) => {
                for c in items.chunks(100) {
                    h.list_append(key, c.to_vec()).await.unwrap();
                }
            }
        }
        if let (Gen::Map(_) | Gen::List(_), Some(ms)) = (content, ttl) {
            let seconds = ms.div_ceil(1000) as i64;
            assert!(h.expire(key, seconds, ExpireMode::Always).await.unwrap());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn export_import_export_is_the_identity(
        entries in proptest::collection::vec(entry(), 0..12),
        session_ttl in [1u64..10_000_000, 1u64..10_000_000],
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (source, redb, redis) = rt.block_on(async {
            let (a, _ca, _da) = redb_at(T0);
            apply(&a, &entries, session_ttl).await;
            let (header, body, _) = export_all(&a).await;
            let dump = text(&header, &body);
            let (b, _cb, _db) = redb_at(T0);
            import_text(&b, &dump).await.unwrap();
            let (r, _cr) = redis_at(T0).await;
            import_text(&r, &dump).await.unwrap();
            assert_eq!(contents(&a).await, contents(&b).await);
            (body, export_all(&b).await.1, export_all(&r).await.1)
        });
        prop_assert_eq!(&source, &redb);
        prop_assert_eq!(&source, &redis);
    }
}

/// Run `fut` until `seen` reaches `n` (within 10 s: the machine may be
/// slow), then check that it waits there: not done, and `seen` still `n`
/// 300 ms later.
async fn stalls_at<F: std::future::Future>(
    fut: F,
    seen: &std::sync::atomic::AtomicUsize,
    n: usize,
    what: &str,
) {
    use std::sync::atomic::Ordering;
    let mut fut = std::pin::pin!(fut);
    let started = std::time::Instant::now();
    while seen.load(Ordering::SeqCst) < n {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what} made {} lines, not {n}",
            seen.load(Ordering::SeqCst)
        );
        let step = tokio::time::timeout(Duration::from_millis(10), &mut fut).await;
        assert!(step.is_err(), "{what} ended instead of waiting");
    }
    let more = tokio::time::timeout(Duration::from_millis(300), &mut fut).await;
    assert!(more.is_err(), "{what} waits");
    assert_eq!(seen.load(Ordering::SeqCst), n, "{what} made no more lines");
}

/// An emitter that hands on `ready` lines and then waits forever (a client
/// that stopped reading); counts the lines it was given.
fn stalling_emitter(
    ready: usize,
    seen: Arc<std::sync::atomic::AtomicUsize>,
) -> impl FnMut(String) -> transfer::Emitted + Send {
    move |_| {
        let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n < ready {
            transfer::emitted(Ok(()))
        } else {
            Box::pin(std::future::pending())
        }
    }
}

#[tokio::test]
async fn an_export_and_a_dump_wait_for_a_slow_reader() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let host =
        wasm_state::runtime::Host::open(wasm_state::runtime::HostConfig::new(dir.path())).unwrap();
    let store = host.store().clone();
    store.register_instance("big", "acme").await.unwrap();
    let s = store.instance("big").unwrap();
    for i in 0..200 {
        s.set(&format!("k{i:03}"), vec![b'x'; 100]).await.unwrap();
    }
    // The export hands on 10 lines, then waits with the 11th: it asks for
    // no more while the reader does not take it.
    let seen = Arc::new(AtomicUsize::new(0));
    let mut emit = stalling_emitter(10, seen.clone());
    let big = Selection::Instance("big".into());
    let export = transfer::export(&store, &big, &mut emit);
    stalls_at(export, &seen, 11, "the export").await;
    // The same for `state dump`.
    let admin = wasm_state::admin::Admin::new(host.clone());
    let scope = wasm_state::admin::ScopeRef {
        instance: Some("big".into()),
        session: None,
        account: None,
    };
    let seen = Arc::new(AtomicUsize::new(0));
    let mut emit = stalling_emitter(10, seen.clone());
    stalls_at(admin.dump(&scope, &mut emit), &seen, 11, "the dump").await;
    // A reader that went away ends the dump at once (no more lines made).
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    admin
        .dump(&scope, &mut move |_| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            transfer::emitted(if n < 4 {
                Ok(())
            } else {
                Err(TransferError::Output("the client went away".into()))
            })
        })
        .await
        .unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 5);
}
