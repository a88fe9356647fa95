//! Written only against the standard `wasi:keyvalue@0.2.0-draft` WIT (the
//! version of `wasmtime serve -S keyvalue`), with bindings generated here
//! by wit-bindgen: no wasm-state SDK.
//!
//! `kv-draft exercise` calls every function of the version and checks each
//! answer (a failed check panics: non-zero exit, the reason on stderr).
//! `kv-draft set|get|incr|del|keys BUCKET [KEY [VALUE|DELTA]]` runs one
//! operation and prints its result, for tests that look at the same data
//! through other APIs.

wit_bindgen::generate!({
    path: "../../../wit/keyvalue/0.2.0-draft",
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
    // Buckets: the built-in names open, others do not.
    for name in ["", "default", "account"] {
        open(name);
    }
    assert!(matches!(
        store::open("nope"),
        Err(store::Error::NoSuchStore)
    ));
    assert!(matches!(
        store::open("session:not-a-session"),
        Err(store::Error::NoSuchStore)
    ));
    if let Ok(id) = std::env::var("WASM_STATE_SESSION") {
        let s = open(&format!("session:{id}"));
        s.set("in-session", b"yes").unwrap();
        assert_eq!(s.get("in-session").unwrap().as_deref(), Some(&b"yes"[..]));
        println!("ok session bucket");
    }
    println!("ok open");

    // "" and "default" are the same scope; "account" another.
    let b = open("");
    let d = open("default");
    let a = open("account");
    b.set("greeting", b"hello").unwrap();
    assert_eq!(d.get("greeting").unwrap().as_deref(), Some(&b"hello"[..]));
    assert_eq!(a.get("greeting").unwrap(), None);
    assert!(b.exists("greeting").unwrap());
    assert!(!b.exists("missing").unwrap());
    assert_eq!(b.get("missing").unwrap(), None);
    b.delete("greeting").unwrap();
    b.delete("greeting").unwrap(); // a missing key is fine
    assert!(!d.exists("greeting").unwrap());
    let empty_key = other(b.set("", b"x").unwrap_err());
    assert!(empty_key.contains("empty"), "{empty_key}");
    println!("ok store");

    // Counters: missing = 0, decimal text, errors leave the value alone.
    assert_eq!(atomics::increment(&b, "n", 5).unwrap(), 5);
    assert_eq!(atomics::increment(&b, "n", 2).unwrap(), 7);
    assert_eq!(b.get("n").unwrap().as_deref(), Some(&b"7"[..]));
    b.set("text", b"abc").unwrap();
    let e = other(atomics::increment(&b, "text", 1).unwrap_err());
    assert!(e.contains("not an integer"), "{e}");
    assert_eq!(b.get("text").unwrap().as_deref(), Some(&b"abc"[..]));
    let e = other(atomics::increment(&b, "n", u64::MAX).unwrap_err());
    assert!(e.contains("overflow"), "{e}");
    assert_eq!(b.get("n").unwrap().as_deref(), Some(&b"7"[..]));
    println!("ok atomics");

    // Batches.
    batch::set_many(
        &b,
        &[
            ("a1".to_string(), b"v1".to_vec()),
            ("b1".to_string(), b"v2".to_vec()),
            ("c1".to_string(), b"v3".to_vec()),
        ],
    )
    .unwrap();
    batch::delete_many(&b, &["a1".to_string(), "c1".to_string()]).unwrap();
    let got = batch::get_many(&b, &["a1".to_string(), "b1".to_string(), "c1".to_string()]).unwrap();
    assert_eq!(
        got,
        vec![None, Some(("b1".to_string(), b"v2".to_vec())), None]
    );
    // More than one transaction's worth of writes is refused whole.
    let too_many: Vec<(String, Vec<u8>)> = (0..200).map(|i| (format!("t{i}"), vec![1])).collect();
    let e = other(batch::set_many(&b, &too_many).unwrap_err());
    assert!(e.contains("too many operations"), "{e}");
    assert!(!b.exists("t0").unwrap());
    println!("ok batch");

    // Listing: 2500 keys come back in pages, each once, in key order.
    let l = open("account");
    for chunk in 0..25 {
        let kv: Vec<(String, Vec<u8>)> = (0..100)
            .map(|i| (format!("k{:05}", chunk * 100 + i), vec![]))
            .collect();
        batch::set_many(&l, &kv).unwrap();
    }
    let (mut keys, mut pages, mut cursor) = (Vec::new(), 0, None);
    loop {
        let page = l.list_keys(cursor).unwrap();
        pages += 1;
        keys.extend(page.keys);
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let want: Vec<String> = (0..2500).map(|i| format!("k{i:05}")).collect();
    assert!(
        keys == want,
        "{} keys listed (want {}), first {:?}, last {:?}",
        keys.len(),
        want.len(),
        keys.first(),
        keys.last()
    );
    assert!(pages >= 3, "{pages} pages");
    let e = other(l.list_keys(Some(12345)).unwrap_err());
    assert!(e.contains("cursor"), "{e}");
    println!("ok list-keys {pages} pages");
    println!("exercise passed");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match arg(0) {
        "exercise" => exercise(),
        "set" => open(arg(1)).set(arg(2), arg(3).as_bytes()).unwrap(),
        "get" => match open(arg(1)).get(arg(2)) {
            Ok(Some(v)) => println!("{}", String::from_utf8_lossy(&v)),
            Ok(None) => println!("(none)"),
            Err(e) => println!("error {e:?}"),
        },
        "incr" => match atomics::increment(&open(arg(1)), arg(2), arg(3).parse().unwrap()) {
            Ok(n) => println!("{n}"),
            Err(e) => println!("error {e:?}"),
        },
        "del" => open(arg(1)).delete(arg(2)).unwrap(),
        "keys" => {
            let b = open(arg(1));
            let mut cursor = None;
            loop {
                let page = b.list_keys(cursor).unwrap();
                for k in page.keys {
                    println!("{k}");
                }
                match page.cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
        other => {
            eprintln!(
                "usage: kv-draft exercise | set|get|incr|del|keys BUCKET [KEY [VALUE]] (got {other:?})"
            );
            std::process::exit(2);
        }
    }
}
