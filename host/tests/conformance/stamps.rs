//! Read stamps (`Store::read_stamp`, what guests keep reads by): a store
//! that vouches moves its generation with every commit — any scope, any
//! kind of write — never back, and never for reads or time passing; one
//! that cannot vouch (Redis: other hosts write without telling this one)
//! gives no stamp.

use std::time::Duration;

use super::*;

#[tokio::test]
async fn every_commit_moves_the_generation_and_nothing_else_does() {
    let h = Harness::new();
    let s = h.instance("a");
    s.set("k", b("1")).await.unwrap();
    assert_eq!(
        h.store.read_stamp().is_some(),
        crate::backend::VOUCHES,
        "whether this engine gives read stamps"
    );
    let Some(first) = h.store.read_stamp() else {
        return;
    };
    assert_eq!(first.now_ms, T0);

    // Reads and time are not commits.
    s.get("k").await.unwrap();
    s.get_entry("missing").await.unwrap();
    s.info("k").await.unwrap();
    s.exists("k").await.unwrap();
    h.advance(Duration::from_secs(5));
    let after_reads = h.store.read_stamp().unwrap();
    assert_eq!(after_reads.generation, first.generation);
    assert_eq!(after_reads.now_ms, T0 + 5_000);

    let other = h.instance("b");
    let account = h.account("acme");
    let mut last = first.generation;
    let mut moved = |what: &str| {
        let g = h.store.read_stamp().unwrap().generation;
        assert!(
            g > last,
            "{what}: the generation did not move ({last} → {g})"
        );
        last = g;
    };
    s.set("k", b("2")).await.unwrap();
    moved("set");
    s.increment("n", 1).await.unwrap();
    moved("increment");
    s.map_set("m", fv(&[("f", "v")])).await.unwrap();
    moved("map set");
    s.list_append("l", bs(&["x"])).await.unwrap();
    moved("list append");
    s.delete("k").await.unwrap();
    moved("delete");
    other.set("k", b("elsewhere")).await.unwrap();
    moved("another instance's set");
    account.set("k", b("shared")).await.unwrap();
    moved("an account set");
    let session = h.store.create_session("a", None).await.unwrap();
    moved("a new session");
    h.store.end_session("a", &session.id).await.unwrap();
    moved("an ended session");
}
