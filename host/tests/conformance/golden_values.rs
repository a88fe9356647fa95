//! Golden cases for value, counter and whole-key operations (Redis-exact).

use super::*;

#[tokio::test]
async fn smoke() {
    let h = Harness::new();
    let s = h.instance("a");
    assert_eq!(s.get("k").await.unwrap(), None);
    let e1 = s.set("k", b("v")).await.unwrap();
    assert_eq!(s.get("k").await.unwrap(), Some(b("v")));
    let e2 = s.set("k", b("w")).await.unwrap();
    assert_ne!(e1, e2);
    assert_eq!(s.increment("n", 5).await.unwrap(), 5);
    assert_eq!(
        s.map_set("m", fv(&[("a", "1"), ("b", "2")])).await.unwrap(),
        2
    );
    assert_eq!(
        s.map_get_all("m").await.unwrap(),
        fv(&[("a", "1"), ("b", "2")])
    );
    assert_eq!(s.list_append("l", bs(&["a", "b"])).await.unwrap(), 2);
    assert_eq!(s.list_prepend("l", bs(&["x", "y"])).await.unwrap(), 4);
    assert_eq!(
        s.list_range("l", 0, -1).await.unwrap(),
        bs(&["y", "x", "a", "b"])
    );
    let page = s.keys(Default::default()).await.unwrap();
    assert_eq!(page.keys, vec!["k", "l", "m", "n"]);
}
