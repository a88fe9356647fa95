//! Change queues for watchers (`store::watch`): what is queued, in which
//! order, for whom, and what a full queue does — the same on every engine.

use std::time::Duration;

use wasm_state::store::{
    ChangeBatch, Condition, ExpireMode, Limits, Op, OpKind, QueueOwner, Scope, SetOptions,
    StateError, WatchTarget,
};

use super::*;

fn inst(name: &str) -> Scope {
    Scope::Instance(name.into())
}

async fn pending(h: &Harness, watcher: &str, owner: &QueueOwner) -> ChangeBatch {
    h.store
        .watch_pending(watcher, owner, "host-a", 1000)
        .await
        .unwrap()
}

/// (key, value) of each queued change; value "-" for a delete.
fn seen(batch: &ChangeBatch) -> Vec<(String, String)> {
    batch
        .changes
        .iter()
        .map(|c| {
            let v = c
                .value
                .as_deref()
                .map_or("-".to_string(), |v| String::from_utf8_lossy(v).into_owned());
            (c.key.clone(), v)
        })
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn owner(name: &str) -> QueueOwner {
    QueueOwner::Instance(name.into())
}

#[tokio::test]
async fn value_changes_are_queued_in_commit_order_one_per_key_per_commit() {
    let h = Harness::new();
    h.store
        .watch("app", &[WatchTarget::Instance("app".into())])
        .await
        .unwrap();
    let s = h.instance("app");
    s.set("a", b("1")).await.unwrap();
    s.set("b", b("x")).await.unwrap();
    s.increment("n", 5).await.unwrap();
    // One transaction: b set twice notifies once, with its final value.
    s.commit(vec![
        Op::new(
            "b",
            OpKind::Set {
                value: b("2"),
                ttl: None,
            },
        ),
        Op::new("a", OpKind::Delete),
        Op::new(
            "b",
            OpKind::Set {
                value: b("3"),
                ttl: None,
            },
        ),
        Op::new(
            "c",
            OpKind::Set {
                value: b("c"),
                ttl: None,
            },
        ),
    ])
    .await
    .unwrap();
    // Expiry changes change no value; maps and lists are not values.
    s.expire("c", 100, ExpireMode::Always).await.unwrap();
    s.persist("c").await.unwrap();
    s.map_set("m", fv(&[("f", "v")])).await.unwrap();
    s.list_append("l", bs(&["i"])).await.unwrap();
    s.delete("m").await.unwrap();
    // A map overwritten by a value is a set; a deleted value, a delete.
    s.set("l", b("now a value")).await.unwrap();
    s.delete("c").await.unwrap();
    // Deleting a missing key changes nothing.
    s.delete("nothing").await.unwrap();
    let batch = pending(&h, "app", &owner("app")).await;
    assert_eq!(
        seen(&batch),
        pairs(&[
            ("a", "1"),
            ("b", "x"),
            ("n", "5"),
            ("b", "3"),
            ("a", "-"),
            ("c", "c"),
            ("l", "now a value"),
            ("c", "-")
        ])
    );
    assert!(batch.changes.iter().all(|c| c.scope == inst("app")));
    let seqs: Vec<u64> = batch.changes.iter().map(|c| c.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(batch.dropped, 0);
    assert!(!batch.busy);
}

#[tokio::test]
async fn failed_requests_and_unwatched_scopes_queue_nothing() {
    let h = Harness::new();
    h.store
        .watch("app", &[WatchTarget::Instance("app".into())])
        .await
        .unwrap();
    let s = h.instance("app");
    let etag = s.set("k", b("1")).await.unwrap();
    s.set("k", b("two")).await.unwrap();
    let stale = s
        .set_with(
            "k",
            b("3"),
            SetOptions {
                ttl: None,
                condition: Some(Condition::IfMatch(etag)),
            },
        )
        .await;
    assert_eq!(stale, Err(StateError::EtagMismatch));
    let tx = s
        .commit(vec![
            Op::new(
                "z",
                OpKind::Set {
                    value: b("z"),
                    ttl: None,
                },
            ),
            Op::new("k", OpKind::Increment(1)),
        ])
        .await;
    assert!(
        matches!(tx, Err(StateError::Aborted { index: 1, .. })),
        "{tx:?}"
    );
    // Other scopes: another instance, the account, a session.
    h.instance("other").set("k", b("o")).await.unwrap();
    h.account("default").set("k", b("acc")).await.unwrap();
    let sess = h.store.create_session("app", None).await.unwrap();
    h.store
        .session("app", &sess.id)
        .await
        .unwrap()
        .set("k", b("s"))
        .await
        .unwrap();
    let batch = pending(&h, "app", &owner("app")).await;
    assert_eq!(seen(&batch), pairs(&[("k", "1"), ("k", "two")]));
    assert!(
        pending(&h, "app", &QueueOwner::Account("default".into()))
            .await
            .changes
            .is_empty()
    );
}

#[tokio::test]
async fn sessions_and_the_account_are_watched_when_asked() {
    let h = Harness::new();
    h.store
        .watch(
            "app",
            &[
                WatchTarget::Sessions("app".into()),
                WatchTarget::Account("acc".into()),
            ],
        )
        .await
        .unwrap();
    let sess = h.store.create_session("app", None).await.unwrap();
    let ss = h.store.session("app", &sess.id).await.unwrap();
    ss.set("cart", b("[1]")).await.unwrap();
    ss.set("user", b("ada")).await.unwrap();
    h.instance("app").set("not-watched", b("x")).await.unwrap();
    h.account("acc").set("shared", b("y")).await.unwrap();
    // Ending the session deletes its values.
    h.store.end_session("app", &sess.id).await.unwrap();
    let batch = pending(&h, "app", &owner("app")).await;
    assert_eq!(
        seen(&batch),
        pairs(&[
            ("cart", "[1]"),
            ("user", "ada"),
            ("cart", "-"),
            ("user", "-")
        ])
    );
    let session = Scope::Session {
        instance: "app".into(),
        id: sess.id.clone(),
    };
    assert!(batch.changes.iter().all(|c| c.scope == session));
    let acc = pending(&h, "app", &QueueOwner::Account("acc".into())).await;
    assert_eq!(seen(&acc), pairs(&[("shared", "y")]));
    assert_eq!(acc.changes[0].scope, Scope::Account("acc".into()));
}

#[tokio::test]
async fn expiry_is_a_delete_when_the_sweeper_frees_the_key() {
    let h = Harness::new();
    h.store
        .watch("app", &[WatchTarget::Instance("app".into())])
        .await
        .unwrap();
    let s = h.instance("app");
    s.set_with(
        "otp",
        b("123"),
        SetOptions {
            ttl: Some(Duration::from_secs(5)),
            condition: None,
        },
    )
    .await
    .unwrap();
    s.set("keep", b("k")).await.unwrap();
    s.delete_prefix("ke").await.unwrap();
    h.advance(Duration::from_secs(6));
    h.store.sweep().await.unwrap();
    let batch = pending(&h, "app", &owner("app")).await;
    assert_eq!(
        seen(&batch),
        pairs(&[("otp", "123"), ("keep", "k"), ("keep", "-"), ("otp", "-")])
    );
}

#[tokio::test]
async fn a_watchers_own_writes_are_not_queued_for_it() {
    let h = Harness::new();
    h.store
        .watch("app", &[WatchTarget::Account("acc".into())])
        .await
        .unwrap();
    h.store
        .watch("auditor", &[WatchTarget::Account("acc".into())])
        .await
        .unwrap();
    let as_app = h.account("acc").with_origin("app");
    as_app.set("by-app", b("1")).await.unwrap();
    as_app.delete_prefix("by-").await.unwrap();
    h.account("acc").set("by-other", b("2")).await.unwrap();
    let acc = QueueOwner::Account("acc".into());
    assert_eq!(
        seen(&pending(&h, "app", &acc).await),
        pairs(&[("by-other", "2")])
    );
    assert_eq!(
        seen(&pending(&h, "auditor", &acc).await),
        pairs(&[("by-app", "1"), ("by-app", "-"), ("by-other", "2")])
    );
}

#[tokio::test]
async fn acked_changes_go_and_queues_survive_a_restart() {
    let h = Harness::new();
    h.store
        .watch("app", &[WatchTarget::Instance("app".into())])
        .await
        .unwrap();
    let s = h.instance("app");
    for i in 0..5 {
        s.set(&format!("k{i}"), b("v")).await.unwrap();
    }
    let batch = pending(&h, "app", &owner("app")).await;
    let third = batch.changes[2].seq;
    h.store
        .watch_ack("app", &owner("app"), third)
        .await
        .unwrap();
    drop(s);
    let h = h.reopen();
    let batch = pending(&h, "app", &owner("app")).await;
    assert_eq!(seen(&batch), pairs(&[("k3", "v"), ("k4", "v")]));
    // Writes after the restart are queued too, after the others.
    h.instance("app").set("k5", b("v")).await.unwrap();
    let batch = pending(&h, "app", &owner("app")).await;
    assert_eq!(batch.changes.len(), 3);
    assert!(batch.changes[2].seq > batch.changes[1].seq);
    // Acking everything (and past the end) empties it.
    h.store
        .watch_ack("app", &owner("app"), u64::MAX - 1)
        .await
        .unwrap();
    assert!(pending(&h, "app", &owner("app")).await.changes.is_empty());
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_and_counts_them_without_failing_writes() {
    let h = Harness::with_limits(Limits {
        watch_queue: 3,
        ..Limits::default()
    });
    h.store
        .watch("app", &[WatchTarget::Instance("app".into())])
        .await
        .unwrap();
    let s = h.instance("app");
    for i in 0..5 {
        s.set(&format!("k{i}"), b("v")).await.unwrap();
    }
    s.commit(vec![
        Op::new(
            "t1",
            OpKind::Set {
                value: b("1"),
                ttl: None,
            },
        ),
        Op::new(
            "t2",
            OpKind::Set {
                value: b("2"),
                ttl: None,
            },
        ),
    ])
    .await
    .unwrap();
    let batch = pending(&h, "app", &owner("app")).await;
    assert_eq!(
        seen(&batch),
        pairs(&[("k4", "v"), ("t1", "1"), ("t2", "2")])
    );
    assert_eq!(batch.dropped, 4);
}

/// One request of many changes into a full queue (a prefix delete, here)
/// keeps exactly the newest `watch_queue` of them, in order, and counts
/// the rest; later acks and writes go on from there.
#[tokio::test]
async fn one_request_of_many_changes_into_a_full_queue_keeps_the_newest() {
    let h = Harness::with_limits(Limits {
        watch_queue: 10,
        ..Limits::default()
    });
    let s = h.instance("app");
    for chunk in 0..4 {
        let ops = (0..100)
            .map(|i| {
                Op::new(
                    format!("k{:03}", chunk * 100 + i),
                    OpKind::Set {
                        value: b("v"),
                        ttl: None,
                    },
                )
            })
            .collect();
        s.commit(ops).await.unwrap();
    }
    h.store
        .watch("app", &[WatchTarget::Instance("app".into())])
        .await
        .unwrap();
    s.set("first", b("1")).await.unwrap();
    assert_eq!(s.delete_prefix("k").await.unwrap(), 400);
    let batch = pending(&h, "app", &owner("app")).await;
    let want: Vec<(String, String)> = (390..400)
        .map(|i| (format!("k{i:03}"), "-".into()))
        .collect();
    assert_eq!(seen(&batch), want);
    assert_eq!(batch.dropped, 391);
    let seqs: Vec<u64> = batch.changes.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (392..402).collect::<Vec<u64>>());
    h.store.watch_ack("app", &owner("app"), 396).await.unwrap();
    s.set("after", b("2")).await.unwrap();
    let batch = pending(&h, "app", &owner("app")).await;
    let seqs: Vec<u64> = batch.changes.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (397..403).collect::<Vec<u64>>());
    assert_eq!(
        seen(&batch).last().unwrap(),
        &("after".to_string(), "2".to_string())
    );
}

/// A queue holds at most the bytes its owner may store (its quota), also
/// when it has room for more entries: a value overwritten in a loop
/// cannot grow it past that; the oldest go and are counted. Acks free
/// their bytes.
#[tokio::test]
async fn a_queue_holds_at_most_the_owners_quota_in_bytes() {
    let h = Harness::with_limits(Limits {
        instance_quota_bytes: 8 << 10,
        ..Limits::default()
    });
    h.store
        .watch("app", &[WatchTarget::Instance("app".into())])
        .await
        .unwrap();
    let s = h.instance("app");
    let value = vec![b'x'; 1024];
    for _ in 0..20 {
        s.set("big", value.clone()).await.unwrap();
    }
    let batch = pending(&h, "app", &owner("app")).await;
    let held: usize = batch
        .changes
        .iter()
        .map(|c| c.value.as_ref().map_or(0, Vec::len))
        .sum();
    assert!(held <= 8 << 10, "{held} bytes queued");
    assert!(batch.changes.len() >= 6, "{} queued", batch.changes.len());
    assert_eq!(batch.dropped as usize + batch.changes.len(), 20);
    // Acked, the bytes are free again: as many fit as before.
    let last = batch.changes.last().unwrap().seq;
    h.store.watch_ack("app", &owner("app"), last).await.unwrap();
    for _ in 0..20 {
        s.set("big", value.clone()).await.unwrap();
    }
    let again = pending(&h, "app", &owner("app")).await;
    assert_eq!(again.changes.len(), batch.changes.len());
}

/// A queue dropped (unwatched) and made again goes on with newer seqs, so
/// a watcher that skips seqs it has seen skips none of the new changes.
#[tokio::test]
async fn a_queue_made_again_goes_on_with_newer_seqs() {
    let h = Harness::new();
    let target = [WatchTarget::Instance("app".into())];
    h.store.watch("app", &target).await.unwrap();
    let s = h.instance("app");
    s.set("a", b("1")).await.unwrap();
    s.set("b", b("2")).await.unwrap();
    h.store.watch_ack("app", &owner("app"), 2).await.unwrap();
    h.store.watch("app", &[]).await.unwrap();
    s.set("unwatched", b("x")).await.unwrap();
    h.store.watch("app", &target).await.unwrap();
    s.set("c", b("3")).await.unwrap();
    let batch = pending(&h, "app", &owner("app")).await;
    assert_eq!(seen(&batch), pairs(&[("c", "3")]));
    assert!(batch.changes[0].seq > 2, "seq {}", batch.changes[0].seq);
    assert_eq!(batch.dropped, 0);
}

/// A destroyed instance's own queue goes whole, on every engine: a new
/// life of the instance counts its seqs from 1 again (its state, where a
/// watcher keeps the seqs it saw, went too).
#[tokio::test]
async fn a_destroyed_instance_starts_its_queue_over() {
    let h = Harness::new();
    let target = [WatchTarget::Instance("app".into())];
    h.store.register_instance("app", "acc").await.unwrap();
    h.store.watch("app", &target).await.unwrap();
    h.instance("app").set("a", b("1")).await.unwrap();
    h.instance("app").set("b", b("2")).await.unwrap();
    h.store.watch_ack("app", &owner("app"), 2).await.unwrap();
    h.store.destroy_instance("app").await.unwrap();
    h.store.register_instance("app", "acc").await.unwrap();
    h.store.watch("app", &target).await.unwrap();
    h.instance("app").set("c", b("3")).await.unwrap();
    let batch = pending(&h, "app", &owner("app")).await;
    assert_eq!(seen(&batch), pairs(&[("c", "3")]));
    assert_eq!(batch.changes[0].seq, 1);
}

#[tokio::test]
async fn rewatching_keeps_a_queue_and_unwatching_or_destroying_drops_it() {
    let h = Harness::new();
    let targets = [
        WatchTarget::Instance("app".into()),
        WatchTarget::Account("acc".into()),
    ];
    h.store.watch("app", &targets).await.unwrap();
    h.instance("app").set("a", b("1")).await.unwrap();
    h.account("acc").set("a", b("1")).await.unwrap();
    // Same targets again (a redeploy): nothing lost.
    h.store.watch("app", &targets).await.unwrap();
    assert_eq!(pending(&h, "app", &owner("app")).await.changes.len(), 1);
    // Only the instance now: the account's queue and registration go.
    h.store.watch("app", &targets[..1]).await.unwrap();
    let acc = QueueOwner::Account("acc".into());
    assert!(pending(&h, "app", &acc).await.changes.is_empty());
    h.account("acc").set("b", b("2")).await.unwrap();
    assert!(pending(&h, "app", &acc).await.changes.is_empty());
    assert_eq!(pending(&h, "app", &owner("app")).await.changes.len(), 1);
    // Destroying the instance ends its watch.
    h.store.register_instance("app", "acc").await.unwrap();
    h.store.destroy_instance("app").await.unwrap();
    h.instance("app").set("c", b("3")).await.unwrap();
    assert!(pending(&h, "app", &owner("app")).await.changes.is_empty());
}
