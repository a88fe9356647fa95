//! Written only against `wasi:keyvalue@0.2.0-draft2` as Spin has it (the
//! WIT in `wit/keyvalue/0.2.0-draft2`), with bindings generated here by
//! wit-bindgen: no wasm-state SDK.
//!
//! `kv-draft2 exercise` calls every function of the version (with
//! compare-and-swap) and checks each answer; `kv-draft2 cas-incr BUCKET
//! KEY N` adds 1 to a decimal value N times by compare-and-swap, retrying
//! on `cas-failed` (run many at once to see CAS is atomic);
//! `kv-draft2 set|get BUCKET KEY [VALUE]` runs one operation;
//! `kv-draft2 get-copies BUCKET KEY SIZE N` sets KEY to SIZE bytes and asks
//! `get-many` for it N times, printing `ok BYTES` or `error MESSAGE`.

wit_bindgen::generate!({
    path: "../../../wit/keyvalue/0.2.0-draft2",
    world: "wasi:keyvalue/imports",
    generate_all,
});

use wasi::keyvalue::{atomics, batch, store};

fn open(name: &str) -> store::Bucket {
    store::open(name).unwrap_or_else(|e| panic!("open({name:?}): {e:?}"))
}

fn other(e: store::Error) -> String {
    match e {
        store::Error::Other(m) => m,
        e => panic!("expected error::other, got {e:?}"),
    }
}

fn exercise() {
    assert!(matches!(
        store::open("nope"),
        Err(store::Error::NoSuchStore)
    ));
    let b = open("default");
    b.set("greeting", b"hello").unwrap();
    assert_eq!(
        open("").get("greeting").unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    assert!(b.exists("greeting").unwrap());
    b.delete("greeting").unwrap();
    assert_eq!(b.get("greeting").unwrap(), None);
    println!("ok store");

    // s64 counters.
    assert_eq!(atomics::increment(&b, "n", -3).unwrap(), -3);
    assert_eq!(atomics::increment(&b, "n", 10).unwrap(), 7);
    let e = other(atomics::increment(&b, "n", i64::MAX).unwrap_err());
    assert!(e.contains("overflow"), "{e}");
    assert_eq!(b.get("n").unwrap().as_deref(), Some(&b"7"[..]));
    println!("ok increment");

    // Compare-and-swap.
    let cas = atomics::Cas::new(&b, "doc").unwrap();
    assert_eq!(cas.current().unwrap(), None);
    atomics::swap(cas, b"v1").unwrap(); // absent → written
    let stale = atomics::Cas::new(&b, "doc").unwrap();
    let fresh = atomics::Cas::new(&b, "doc").unwrap();
    assert_eq!(fresh.current().unwrap().as_deref(), Some(&b"v1"[..]));
    atomics::swap(fresh, b"v2").unwrap();
    match atomics::swap(stale, b"lost") {
        Err(atomics::CasError::CasFailed(again)) => {
            // The handle we get back reads the key as it is now.
            assert_eq!(again.current().unwrap().as_deref(), Some(&b"v2"[..]));
            atomics::swap(again, b"v3").unwrap();
        }
        other => panic!("stale swap: {other:?}"),
    }
    assert_eq!(b.get("doc").unwrap().as_deref(), Some(&b"v3"[..]));
    // `current` reads the key anew, and a swap after it compares with what
    // it read.
    let held = atomics::Cas::new(&b, "doc").unwrap();
    b.set("doc", b"v4").unwrap();
    assert_eq!(held.current().unwrap().as_deref(), Some(&b"v4"[..]));
    atomics::swap(held, b"v5").unwrap();
    assert_eq!(b.get("doc").unwrap().as_deref(), Some(&b"v5"[..]));
    // A key created after a CAS of the missing key fails the swap.
    let absent = atomics::Cas::new(&b, "late").unwrap();
    b.set("late", b"first").unwrap();
    assert!(matches!(
        atomics::swap(absent, b"second"),
        Err(atomics::CasError::CasFailed(_))
    ));
    assert_eq!(b.get("late").unwrap().as_deref(), Some(&b"first"[..]));
    println!("ok cas");

    // Batches, Spin's get-many shape: (key, option<value>).
    batch::set_many(
        &b,
        &[
            ("x".to_string(), b"1".to_vec()),
            ("y".to_string(), b"2".to_vec()),
        ],
    )
    .unwrap();
    let got = batch::get_many(&b, &["x".to_string(), "nope".to_string(), "y".to_string()]).unwrap();
    assert_eq!(
        got,
        vec![
            ("x".to_string(), Some(b"1".to_vec())),
            ("nope".to_string(), None),
            ("y".to_string(), Some(b"2".to_vec())),
        ]
    );
    batch::delete_many(&b, &["x".to_string(), "y".to_string()]).unwrap();
    assert!(!b.exists("x").unwrap() && !b.exists("y").unwrap());
    println!("ok batch");

    // String cursors.
    let a = open("account");
    for chunk in 0..12 {
        let kv: Vec<(String, Vec<u8>)> = (0..100)
            .map(|i| (format!("k{:05}", chunk * 100 + i), vec![]))
            .collect();
        batch::set_many(&a, &kv).unwrap();
    }
    let (mut keys, mut cursor) = (Vec::new(), None);
    loop {
        let page = a.list_keys(cursor.as_deref()).unwrap();
        keys.extend(page.keys);
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let want: Vec<String> = (0..1200).map(|i| format!("k{i:05}")).collect();
    assert!(
        keys == want,
        "{} keys listed (want {}), first {:?}, last {:?}",
        keys.len(),
        want.len(),
        keys.first(),
        keys.last()
    );
    let e = other(a.list_keys(Some("garbage")).unwrap_err());
    assert!(e.contains("cursor"), "{e}");
    println!("ok list-keys");
    println!("exercise passed");
}

/// Add 1 to a decimal value `n` times by compare-and-swap.
fn cas_incr(bucket: &str, key: &str, n: u32) {
    let b = open(bucket);
    for _ in 0..n {
        let mut cas = atomics::Cas::new(&b, key).unwrap();
        loop {
            let now: u64 = cas
                .current()
                .unwrap()
                .map(|v| String::from_utf8(v).unwrap().parse().unwrap())
                .unwrap_or(0);
            match atomics::swap(cas, (now + 1).to_string().as_bytes()) {
                Ok(()) => break,
                Err(atomics::CasError::CasFailed(again)) => cas = again,
                Err(e) => panic!("swap: {e:?}"),
            }
        }
    }
}

/// Set `key` to `size` bytes, then `get-many` it `n` times.
fn get_copies(bucket: &str, key: &str, size: usize, n: usize) {
    let b = open(bucket);
    b.set(key, &vec![b'x'; size]).unwrap();
    let keys = vec![key.to_string(); n];
    match batch::get_many(&b, &keys) {
        Ok(got) => {
            let bytes: usize = got
                .iter()
                .filter_map(|(_, v)| v.as_ref())
                .map(Vec::len)
                .sum();
            println!("ok {bytes}");
        }
        Err(e) => println!("error {}", other(e)),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match arg(0) {
        "exercise" => exercise(),
        "cas-incr" => cas_incr(arg(1), arg(2), arg(3).parse().unwrap()),
        "set" => open(arg(1)).set(arg(2), arg(3).as_bytes()).unwrap(),
        "get" => match open(arg(1)).get(arg(2)) {
            Ok(Some(v)) => println!("{}", String::from_utf8_lossy(&v)),
            Ok(None) => println!("(none)"),
            Err(e) => println!("error {e:?}"),
        },
        "get-copies" => get_copies(
            arg(1),
            arg(2),
            arg(3).parse().unwrap(),
            arg(4).parse().unwrap(),
        ),
        other => {
            eprintln!(
                "usage: kv-draft2 exercise | cas-incr BUCKET KEY N | set|get BUCKET KEY [VALUE] | get-copies BUCKET KEY SIZE N (got {other:?})"
            );
            std::process::exit(2);
        }
    }
}
