//! The background sweeper frees expired keys and sessions by itself.

use std::time::Duration;

use super::*;

#[tokio::test]
async fn background_sweeper_frees_expired_keys_and_sessions() {
    let h = Harness::with_config(|c| c.sweep_interval = Some(Duration::from_millis(10)));
    let s = h.instance("a");
    s.set_with(
        "short",
        b(&"x".repeat(1000)),
        wasm_state::store::SetOptions {
            ttl: Some(Duration::from_secs(5)),
            condition: None,
        },
    )
    .await
    .unwrap();
    s.set("long", b("y")).await.unwrap();
    let session = h
        .store
        .create_session("a", Some(Duration::from_secs(5)))
        .await
        .unwrap();
    let cart = h.store.session("a", &session.id).await.unwrap();
    cart.list_append("items", bs(&["apple", "pear"]))
        .await
        .unwrap();
    let before = h.store.instance_usage("a").await.unwrap();
    assert!(before > 1000, "usage counts the stored bytes: {before}");

    h.advance(Duration::from_secs(6));
    // Invisible at once, before any sweep.
    assert_eq!(s.get("short").await.unwrap(), None);
    assert!(h.store.session("a", &session.id).await.is_err());

    // The sweeper thread frees the space without being asked (bounded wait).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let used = h.store.instance_usage("a").await.unwrap();
        if used < 100 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sweeper did not run: usage {used}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(s.get("long").await.unwrap(), Some(b("y")));
    // Nothing left to sweep.
    assert_eq!(h.store.sweep().await.unwrap(), Default::default());
}
