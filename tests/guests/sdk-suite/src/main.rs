//! Every operation group of the guest SDK against the real host, with
//! assertions. Prints `ok <group>` after each group; on the first failure
//! prints what failed (with its line) to stderr and exits with code 1.
//!
//! Expects a fresh instance (empty instance scope) and an account scope
//! without `suite:` keys.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasm_state_sdk::{
    Condition, Error, ExpireMode, Filter, KeyKind, KeyListing, OpOutput, Order, Position, Query,
    Session, SetOptions, State,
};

/// Why a group failed.
struct Fail(String);

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail(format!("unexpected error {e:?}: {e}"))
    }
}

type Check = Result<(), Fail>;

/// Fails the group with the line and message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr) => {
        if !$cond {
            return Err(Fail(format!("line {}: {}", line!(), stringify!($cond))));
        }
    };
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(Fail(format!("line {}: {}: {}", line!(), stringify!($cond), format!($($msg)+))));
        }
    };
}

/// Fails the group unless `left == right`, showing both.
macro_rules! same {
    ($left:expr, $right:expr) => {
        match (&$left, &$right) {
            (l, r) => {
                if l != r {
                    return Err(Fail(format!(
                        "line {}: {} == {}: {:?} != {:?}",
                        line!(),
                        stringify!($left),
                        stringify!($right),
                        l,
                        r
                    )));
                }
            }
        }
    };
}

/// Fails the group unless `result` is an `Err` matching `pattern`.
macro_rules! fails {
    ($result:expr, $pattern:pat) => {
        match $result {
            Err($pattern) => {}
            other => {
                return Err(Fail(format!(
                    "line {}: {} should fail with {}, got {:?}",
                    line!(),
                    stringify!($result),
                    stringify!($pattern),
                    other
                )));
            }
        }
    };
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Customer {
    name: String,
    visits: u32,
}

fn values(st: &State) -> Check {
    let obj = serde_json::json!({"foo": "bar", "n": [1, 2]});
    let etag = st.set("v:obj", &obj)?;
    same!(st.get::<serde_json::Value>("v:obj")?, Some(obj.clone()));
    same!(st.get::<serde_json::Value>("v:missing")?, None);
    let entry = st.get_entry::<serde_json::Value>("v:obj")?.expect("entry");
    same!(entry.value, obj);
    same!(entry.etag, etag);
    same!(entry.ttl, None);
    same!(st.get_entry::<i64>("v:missing")?, None);

    st.set_many([("v:a", &1), ("v:b", &2), ("v:a", &3)])?;
    let many: Vec<Option<i64>> = st.get_many(&["v:a", "v:missing", "v:b", "v:a"])?;
    same!(many, [Some(3), None, Some(2), Some(3)]);

    // Raw bytes: any bytes, not JSON.
    st.set_bytes("v:raw", b"\x00\x01\xff")?;
    same!(st.get_bytes("v:raw")?, Some(vec![0u8, 1, 255]));
    fails!(st.get::<i64>("v:raw"), Error::Json(_));
    same!(st.get_bytes("v:a")?, Some(b"3".to_vec()));

    // Typed structs round-trip.
    let ada = Customer {
        name: "Ada".into(),
        visits: 3,
    };
    st.set("v:ada", &ada)?;
    same!(st.get::<Customer>("v:ada")?, Some(ada));

    // Keys may hold any characters.
    for key in ["v:/a|b", "v:\0nul", "v:emoji 🦀", "v:sp ace"] {
        st.set(key, key)?;
        same!(st.get::<String>(key)?.as_deref(), Some(key));
    }

    ensure!(st.exists("v:obj")?);
    ensure!(!st.exists("v:missing")?);
    let info = st.info("v:obj")?.expect("info");
    same!(info.kind, KeyKind::Value);
    same!(info.etag, etag);
    same!(st.info("v:missing")?, None);

    same!(st.delete_many(&["v:a", "v:b", "v:b", "v:zzz"])?, 2);
    same!(st.get_many::<i64, _>(&["v:a", "v:b"])?, [None, None]);
    ensure!(st.delete("v:obj")?);
    ensure!(!st.delete("v:obj")?);
    ensure!(!st.exists("v:obj")?);

    // Empty key: invalid argument; set overwrites any type.
    fails!(st.set("", &1), Error::InvalidArgument(_));
    st.list_append("v:was-list", &[1])?;
    st.set("v:was-list", "now a value")?;
    same!(st.info("v:was-list")?.map(|i| i.kind), Some(KeyKind::Value));
    Ok(())
}

fn counters(st: &State) -> Check {
    same!(st.increment("c:n", 5)?, 5);
    same!(st.increment("c:n", -7)?, -2);
    same!(st.decrement("c:n", 3)?, -5);
    same!(st.get::<i64>("c:n")?, Some(-5));
    same!(st.get_bytes("c:n")?, Some(b"-5".to_vec()));
    // A JSON integer written by `set` is a counter too.
    st.set("c:json", &41)?;
    same!(st.increment("c:json", 1)?, 42);
    st.set("c:text", "x")?;
    fails!(st.increment("c:text", 1), Error::NotAnInteger);
    st.set("c:float", &1.5)?;
    fails!(st.increment("c:float", 1), Error::NotAnInteger);
    same!(st.get::<f64>("c:float")?, Some(1.5));
    st.set("c:max", &i64::MAX)?;
    fails!(st.increment("c:max", 1), Error::Overflow);
    same!(st.get::<i64>("c:max")?, Some(i64::MAX));
    fails!(st.decrement("c:max", i64::MIN), Error::Overflow);
    st.map_set("c:map", [("f", &1)])?;
    fails!(st.increment("c:map", 1), Error::WrongType);
    Ok(())
}

fn ttl(st: &State) -> Check {
    st.set("t:k", &1)?;
    same!(st.ttl("t:k")?, None);
    fails!(st.ttl("t:missing"), Error::NotFound);
    ensure!(!st.expire("t:missing", Duration::from_secs(10))?);

    // EXPIRE (rounded up to whole seconds) and the TTL it leaves.
    ensure!(st.expire("t:k", Duration::from_millis(100_500))?);
    let left = st.ttl("t:k")?.expect("a ttl");
    ensure!(
        left > Duration::from_secs(95) && left <= Duration::from_secs(101),
        "{left:?}"
    );
    // NX only without a TTL, XX only with one, GT later, LT earlier.
    ensure!(!st.expire_with("t:k", 500, ExpireMode::Nx)?);
    ensure!(st.expire_with("t:k", 500, ExpireMode::Xx)?);
    ensure!(!st.expire_with("t:k", 200, ExpireMode::Gt)?);
    ensure!(st.expire_with("t:k", 900, ExpireMode::Gt)?);
    ensure!(!st.expire_with("t:k", 1000, ExpireMode::Lt)?);
    ensure!(st.expire_with("t:k", 50, ExpireMode::Lt)?);
    let left = st.ttl("t:k")?.expect("a ttl");
    ensure!(left <= Duration::from_secs(50), "{left:?}");
    same!(
        st.get_entry::<i64>("t:k")?.and_then(|e| e.ttl).is_some(),
        true
    );

    // PERSIST removes it; a key without TTL: XX/GT never, NX/LT apply.
    ensure!(st.persist("t:k")?);
    ensure!(!st.persist("t:k")?);
    same!(st.ttl("t:k")?, None);
    ensure!(!st.expire_with("t:k", 100, ExpireMode::Xx)?);
    ensure!(!st.expire_with("t:k", 100, ExpireMode::Gt)?);
    ensure!(st.expire_with("t:k", 100, ExpireMode::Lt)?);
    ensure!(st.persist("t:k")?);
    ensure!(st.expire_with("t:k", 100, ExpireMode::Nx)?);

    // SET clears the TTL unless it gives one; other writes keep it.
    st.set("t:k", &2)?;
    same!(st.ttl("t:k")?, None);
    st.set_with("t:k", &3, SetOptions::ttl(Duration::from_secs(300)))?;
    ensure!(st.ttl("t:k")?.is_some());
    same!(st.increment("t:k", 1)?, 4);
    ensure!(st.ttl("t:k")?.is_some(), "increment keeps the TTL");

    // TTL on maps and lists; seconds <= 0 deletes the key at once.
    st.map_set("t:map", [("f", &1)])?;
    ensure!(st.expire("t:map", Duration::from_secs(60))?);
    ensure!(st.info("t:map")?.expect("map").ttl.is_some());
    st.list_append("t:list", &[1, 2])?;
    ensure!(st.expire_with("t:list", 0, ExpireMode::Always)?);
    ensure!(!st.exists("t:list")?);
    ensure!(st.expire_with("t:k", -1, ExpireMode::Always)?);
    ensure!(!st.exists("t:k")?);

    fails!(
        st.set_with("t:zero", &1, SetOptions::ttl(Duration::ZERO)),
        Error::InvalidArgument(_)
    );
    ensure!(!st.exists("t:zero")?);
    Ok(())
}

/// Reads kept by a `State` (instance and account): whatever else writes —
/// another handle, a batch, a transaction, expiry — a read returns what the
/// store holds at that moment.
fn kept_reads(st: &State) -> Check {
    let other = State::instance();
    st.set("r:k", &1)?;
    for _ in 0..3 {
        same!(st.get::<i64>("r:k")?, Some(1));
    }
    same!(st.get::<i64>("r:missing")?, None);
    other.set("r:k", &2)?;
    same!(st.get::<i64>("r:k")?, Some(2));
    other.set("r:missing", &7)?;
    // A kept absence ends too.
    same!(st.get::<i64>("r:missing")?, Some(7));
    same!(other.increment("r:k", 5)?, 7);
    same!(st.get::<i64>("r:k")?, Some(7));
    other.set_many([("r:k", &8), ("r:j", &9)])?;
    same!(st.get::<i64>("r:k")?, Some(8));
    other.batch().increment("r:k", 1).commit()?;
    same!(st.get::<i64>("r:k")?, Some(9));
    other.transaction(|tx| {
        let v: i64 = tx.get("r:k")?.unwrap_or(0);
        tx.set("r:k", &(v * 10));
        Ok(())
    })?;
    same!(st.get::<i64>("r:k")?, Some(90));
    // Own writes, through the same handle.
    st.set("r:k", &91)?;
    same!(st.get::<i64>("r:k")?, Some(91));
    // The key turns into a map: the read fails as it would uncached.
    other.delete("r:k")?;
    same!(st.get::<i64>("r:k")?, None);
    other.map_set("r:k", [("f", &1)])?;
    fails!(st.get::<i64>("r:k"), Error::WrongType);
    other.delete("r:k")?;
    // A failed write changes nothing, kept or not.
    same!(st.get::<i64>("r:j")?, Some(9));
    fails!(
        other.set_with("r:j", &0, SetOptions::condition(Condition::IfAbsent)),
        Error::AlreadyExists
    );
    same!(st.get::<i64>("r:j")?, Some(9));

    // Expiry alone (no write) ends a kept value.
    st.set_with("r:t", &1, SetOptions::ttl(Duration::from_millis(1_200)))?;
    same!(st.get::<i64>("r:t")?, Some(1));
    same!(st.get::<i64>("r:t")?, Some(1));
    std::thread::sleep(Duration::from_millis(1_400));
    same!(st.get::<i64>("r:t")?, None);

    // The account scope, shared with every instance of the account.
    let (a, b) = (State::account(), State::account());
    a.set("suite:kept", &1)?;
    same!(b.get::<i64>("suite:kept")?, Some(1));
    a.set("suite:kept", &2)?;
    same!(b.get::<i64>("suite:kept")?, Some(2));
    a.delete("suite:kept")?;
    same!(b.get::<i64>("suite:kept")?, None);
    Ok(())
}

fn etags(st: &State) -> Check {
    let e1 = st.set("e:k", &1)?;
    let e2 = st.set("e:k", &1)?;
    ensure!(e1 != e2, "every set issues a new etag");
    same!(st.info("e:k")?.expect("k").etag, e2);

    // if-match: current etag passes, a stale one fails, nothing changes.
    let e3 = st.set_with(
        "e:k",
        &2,
        SetOptions::condition(Condition::IfMatch(e2.clone())),
    )?;
    fails!(
        st.set_with(
            "e:k",
            &9,
            SetOptions::condition(Condition::IfMatch(e2.clone()))
        ),
        Error::EtagMismatch
    );
    same!(st.get::<i64>("e:k")?, Some(2));
    same!(st.info("e:k")?.expect("k").etag, e3);
    fails!(
        st.set_with(
            "e:k",
            &9,
            SetOptions::condition(Condition::IfMatch("nope".into()))
        ),
        Error::InvalidEtag
    );
    fails!(
        st.set_with(
            "e:missing",
            &9,
            SetOptions::condition(Condition::IfMatch(e3.clone()))
        ),
        Error::EtagMismatch
    );
    ensure!(!st.exists("e:missing")?);

    // if-absent / if-exists.
    fails!(
        st.set_with("e:k", &9, SetOptions::condition(Condition::IfAbsent)),
        Error::AlreadyExists
    );
    st.set_with("e:new", &1, SetOptions::condition(Condition::IfAbsent))?;
    fails!(
        st.set_with("e:none", &1, SetOptions::condition(Condition::IfExists)),
        Error::NotFound
    );
    ensure!(!st.exists("e:none")?);
    st.set_with("e:new", &2, SetOptions::condition(Condition::IfExists))?;
    same!(st.get::<i64>("e:new")?, Some(2));

    // Writes of every kind change the etag; reads and no-op writes do not.
    st.map_set("e:m", [("a", &1)])?;
    let m1 = st.info("e:m")?.expect("m").etag;
    st.map_get_value::<i64>("e:m", "a")?;
    same!(st.info("e:m")?.expect("m").etag, m1);
    same!(st.map_delete("e:m", &["zz"])?, 0);
    same!(st.info("e:m")?.expect("m").etag, m1);
    st.map_set("e:m", [("b", &2)])?;
    let m2 = st.info("e:m")?.expect("m").etag;
    ensure!(m1 != m2);
    st.list_append("e:l", &[1])?;
    let l1 = st.info("e:l")?.expect("l").etag;
    st.list_set("e:l", 0, &5)?;
    ensure!(st.info("e:l")?.expect("l").etag != l1);

    // A deleted and re-created key never gets an old etag back.
    st.delete("e:k")?;
    let e4 = st.set("e:k", &2)?;
    ensure!(e4 != e1 && e4 != e2 && e4 != e3);
    Ok(())
}

fn maps(st: &State) -> Check {
    let ada = Customer {
        name: "Ada".into(),
        visits: 1,
    };
    let bob = Customer {
        name: "Bob".into(),
        visits: 2,
    };
    same!(st.map_set("m:cust", [("+44", &ada), ("+1", &bob)])?, 2);
    same!(st.map_set("m:cust", [("+44", &ada), ("+33", &bob)])?, 1);
    same!(
        st.map_get_value::<Customer>("m:cust", "+44")?,
        Some(ada.clone())
    );
    same!(st.map_get_value::<Customer>("m:cust", "nope")?, None);
    same!(st.map_get_value::<Customer>("m:none", "x")?, None);
    same!(
        st.map_get_multiple::<Customer, _>("m:cust", &["+1", "x", "+44"])?,
        [Some(bob.clone()), None, Some(ada.clone())]
    );
    same!(
        st.map_get_values::<Customer>("m:cust")?,
        [bob.clone(), bob.clone(), ada.clone()]
    );
    let all: BTreeMap<String, Customer> = st.map_get_all("m:cust")?;
    same!(all.keys().collect::<Vec<_>>(), ["+1", "+33", "+44"]);
    same!(st.map_keys("m:cust")?, ["+1", "+33", "+44"]);
    ensure!(st.map_exists("m:cust", "+1")?);
    ensure!(!st.map_exists("m:cust", "+2")?);
    same!(st.map_length("m:cust")?, 3);
    same!(st.map_length("m:none")?, 0);
    same!(st.map_get_all::<i64>("m:none")?.len(), 0);

    same!(st.map_increment("m:cnt", "a", 4)?, 4);
    same!(st.map_increment("m:cnt", "a", -6)?, -2);
    st.map_set("m:cnt", [("s", "x")])?;
    fails!(st.map_increment("m:cnt", "s", 1), Error::NotAnInteger);
    st.map_set("m:cnt", [("max", &i64::MAX)])?;
    fails!(st.map_increment("m:cnt", "max", 1), Error::Overflow);

    // map_scan: every field once, in order, with and without a pattern,
    // across many small pages.
    for i in 0..50 {
        st.map_set("m:big", [(format!("f{i:02}"), &i)])?;
    }
    let scanned: Vec<(String, i64)> = st.map_scan("m:big", None, 7).collect::<Result<_, _>>()?;
    same!(scanned.len(), 50);
    same!(scanned[0], ("f00".to_string(), 0));
    same!(scanned[49], ("f49".to_string(), 49));
    let fields: Vec<&String> = scanned.iter().map(|(f, _)| f).collect();
    ensure!(
        fields.windows(2).all(|w| w[0] < w[1]),
        "ascending, no repeats"
    );
    let ones: Vec<(String, i64)> = st
        .map_scan("m:big", Some("f1*"), 7)
        .collect::<Result<_, _>>()?;
    same!(ones.len(), 10);
    ensure!(ones.iter().all(|(f, _)| f.starts_with("f1")));
    let some: Vec<(String, i64)> = st
        .map_scan("m:big", Some("f[24]?"), 1000)
        .collect::<Result<_, _>>()?;
    same!(some.len(), 20);
    same!(st.map_scan::<i64>("m:none", None, 10).count(), 0);

    // Delete fields; an emptied map is gone; wrong types.
    same!(st.map_delete("m:cust", &["+1", "+44", "zz"])?, 2);
    same!(st.map_delete("m:cust", &["+33"])?, 1);
    ensure!(!st.exists("m:cust")?);
    st.set("m:value", &1)?;
    fails!(st.map_set("m:value", [("a", &1)]), Error::WrongType);
    fails!(st.map_get_value::<i64>("m:value", "a"), Error::WrongType);
    same!(st.get::<i64>("m:value")?, Some(1));
    fails!(st.get::<i64>("m:big"), Error::WrongType);
    same!(st.get_many::<i64, _>(&["m:big"])?, [None]);
    Ok(())
}

fn lists(st: &State) -> Check {
    same!(st.list_append("l:q", &["b", "c"])?, 2);
    same!(st.list_prepend("l:q", &["a"])?, 3);
    // LPUSH order: the last given ends up first.
    same!(st.list_prepend("l:q", &["y", "x"])?, 5);
    same!(
        st.list_range::<String>("l:q", 0, -1)?,
        ["x", "y", "a", "b", "c"]
    );
    same!(st.list_start_pop::<String>("l:q", 2)?, ["x", "y"]);

    // LINSERT: -1 without the pivot, 0 without a list.
    same!(st.list_insert("l:q", Position::After, "b", "b2")?, 4);
    same!(st.list_insert("l:q", Position::Before, "a", "a0")?, 5);
    same!(st.list_insert("l:q", Position::Before, "zz", "q")?, -1);
    same!(st.list_insert("l:none", Position::Before, "a", "q")?, 0);
    ensure!(!st.exists("l:none")?);
    same!(
        st.list_range::<String>("l:q", 0, -1)?,
        ["a0", "a", "b", "b2", "c"]
    );

    // LRANGE index rules: negative from the end, clamped, empty ranges.
    same!(st.list_range::<String>("l:q", -2, -1)?, ["b2", "c"]);
    same!(st.list_range::<String>("l:q", -100, 1)?, ["a0", "a"]);
    same!(st.list_range::<String>("l:q", 3, 100)?, ["b2", "c"]);
    same!(st.list_range::<String>("l:q", 3, 1)?.len(), 0);
    same!(st.list_range::<String>("l:q", 5, 10)?.len(), 0);
    same!(st.list_range::<String>("l:none", 0, -1)?.len(), 0);

    // LINDEX / LSET.
    same!(st.list_index::<String>("l:q", 0)?.as_deref(), Some("a0"));
    same!(st.list_index::<String>("l:q", -1)?.as_deref(), Some("c"));
    same!(st.list_index::<String>("l:q", 5)?, None);
    same!(st.list_index::<String>("l:q", -6)?, None);
    st.list_set("l:q", -1, "C")?;
    st.list_set("l:q", 0, "A0")?;
    fails!(st.list_set("l:q", 5, "x"), Error::IndexOutOfRange);
    fails!(st.list_set("l:q", -6, "x"), Error::IndexOutOfRange);
    fails!(st.list_set("l:none", 0, "x"), Error::NotFound);
    same!(
        st.list_range::<String>("l:q", 0, -1)?,
        ["A0", "a", "b", "b2", "C"]
    );

    // LREM: count > 0 from the head, < 0 from the tail, 0 all.
    st.list_append("l:r", &[1, 2, 1, 3, 1, 2, 1])?;
    same!(st.list_remove("l:r", &1, 2)?, 2);
    same!(st.list_range::<i64>("l:r", 0, -1)?, [2, 3, 1, 2, 1]);
    same!(st.list_remove("l:r", &1, -1)?, 1);
    same!(st.list_range::<i64>("l:r", 0, -1)?, [2, 3, 1, 2]);
    same!(st.list_remove("l:r", &2, 0)?, 2);
    same!(st.list_range::<i64>("l:r", 0, -1)?, [3, 1]);
    same!(st.list_remove("l:none", &2, 0)?, 0);

    // Pops: order, counts beyond the length, the list gone when empty.
    same!(st.list_length("l:q")?, 5);
    same!(st.list_end_pop::<String>("l:q", 2)?, ["C", "b2"]);
    same!(st.list_start_pop::<String>("l:q", 0)?.len(), 0);
    same!(st.list_end_pop::<String>("l:q", 10)?, ["b", "a", "A0"]);
    ensure!(!st.exists("l:q")?);
    same!(st.list_length("l:q")?, 0);
    same!(st.list_start_pop::<String>("l:q", 3)?.len(), 0);

    // LTRIM: same indices; an empty range deletes the list.
    st.list_append("l:t", &[1, 2, 3, 4, 5])?;
    st.list_trim("l:t", 1, -2)?;
    same!(st.list_range::<i64>("l:t", 0, -1)?, [2, 3, 4]);
    st.list_trim("l:t", -100, 100)?;
    same!(st.list_length("l:t")?, 3);
    st.list_trim("l:t", 2, 1)?;
    ensure!(!st.exists("l:t")?);
    st.list_trim("l:none", 0, 1)?;

    // Wrong types and empty pushes.
    st.set("l:value", &1)?;
    fails!(st.list_append("l:value", &[1]), Error::WrongType);
    fails!(st.list_range::<i64>("l:value", 0, -1), Error::WrongType);
    fails!(
        st.list_append::<i64>("l:new", &[]),
        Error::InvalidArgument(_)
    );
    ensure!(!st.exists("l:new")?);
    Ok(())
}

fn keys(st: &State) -> Check {
    for i in 0..25 {
        st.set(&format!("k:{i:02}"), &i)?;
    }
    st.map_set("k:m", [("f", &1)])?;
    st.list_append("k:l", &[1])?;
    st.set("kz", &0)?;

    // The iterator follows the cursor across small pages.
    let all: Vec<String> = st
        .keys(KeyListing::prefix("k:").page_size(4))
        .collect::<Result<_, _>>()?;
    same!(all.len(), 27);
    same!(all[0], "k:00");
    same!(all[24], "k:24");
    same!(all[25], "k:l");
    same!(all[26], "k:m");

    // By hand: pages of 10, the cursor passed back, no key twice.
    let listing = KeyListing::prefix("k:").page_size(10);
    let mut paged = Vec::new();
    let mut page = st.keys_page(&listing)?;
    let mut pages = 1;
    loop {
        paged.extend(page.keys);
        match page.cursor {
            Some(cursor) => {
                page = st.keys_page(&listing.clone().cursor(cursor))?;
                pages += 1;
            }
            None => break,
        }
    }
    same!(paged, all);
    ensure!(pages >= 3, "{pages} pages");

    // Reverse, ranges (start inclusive, end exclusive).
    let rev: Vec<String> = st
        .keys(KeyListing::prefix("k:").reverse().page_size(3))
        .take(3)
        .collect::<Result<_, _>>()?;
    same!(rev, ["k:m", "k:l", "k:24"]);
    let range: Vec<String> = st
        .keys(KeyListing::range("k:05", "k:08"))
        .collect::<Result<_, _>>()?;
    same!(range, ["k:05", "k:06", "k:07"]);
    let range: Vec<String> = st
        .keys(KeyListing::prefix("k:").start("k:23").reverse())
        .collect::<Result<_, _>>()?;
    same!(range, ["k:m", "k:l", "k:24", "k:23"]);
    ensure!(st.keys(KeyListing::all()).count() >= 28);
    fails!(
        st.keys(KeyListing::all().page_size(0))
            .next()
            .expect("an item"),
        Error::InvalidArgument(_)
    );
    fails!(
        st.keys_page(&KeyListing::all().cursor("not-a-cursor")),
        Error::InvalidArgument(_)
    );
    Ok(())
}

fn delete_prefix(st: &State) -> Check {
    for i in 0..30 {
        st.set(&format!("dp:{i}"), &i)?;
    }
    st.map_set("dp:map", [("f", &1)])?;
    st.list_append("dp:list", &[1])?;
    st.set("dq", &1)?;
    same!(st.delete_prefix("dp:")?, 32);
    same!(st.keys("dp:").count(), 0);
    ensure!(st.exists("dq")?);
    same!(st.delete_prefix("dp:")?, 0);
    fails!(st.delete_prefix(""), Error::InvalidArgument(_));
    ensure!(st.exists("dq")?);
    Ok(())
}

fn batches(st: &State) -> Check {
    let r = st
        .batch()
        .set("b:s", "x")
        .when(Condition::IfAbsent)
        .increment("b:n", 2)
        .map_set("b:m", [("f", &1)])
        .list_append("b:l", &["p", "q"])
        .list_start_pop("b:l", 1)
        .check("b:s", Condition::IfExists)
        .delete("b:nothing")
        .commit()?;
    same!(r.len(), 7);
    same!(r[0].output, OpOutput::None);
    ensure!(r[0].etag.is_some());
    same!(r[1].output.as_integer(), Some(2));
    same!(r[2].output.as_integer(), Some(1));
    same!(r[3].output.as_integer(), Some(2));
    same!(r[4].output.values::<String>()?, ["p"]);
    same!(r[5].etag, r[0].etag);
    same!(r[6].output.as_bool(), Some(false));
    same!(r[6].etag, None);
    same!(st.info("b:s")?.map(|i| i.etag), r[0].etag.clone());

    // A failing op aborts everything: nothing of the batch is visible.
    let err = st
        .batch()
        .increment("b:n", 1)
        .list_append("b:l", &["r"])
        .set("b:s", "y")
        .when(Condition::IfAbsent)
        .commit()
        .expect_err("if-absent on an existing key");
    match err {
        Error::Transaction {
            index: 2,
            ref source,
        } if matches!(**source, Error::AlreadyExists) => {}
        e => return Err(Fail(format!("unexpected {e:?}"))),
    }
    ensure!(err.is_condition_failed());
    same!(st.get::<i64>("b:n")?, Some(2));
    same!(st.list_range::<String>("b:l", 0, -1)?, ["q"]);
    same!(st.get::<String>("b:s")?.as_deref(), Some("x"));

    // Conditions with etags inside a batch, and a wrong type mid-batch.
    let etag = st.info("b:s")?.expect("s").etag;
    st.batch()
        .set("b:s", "z")
        .when(Condition::IfMatch(etag.clone()))
        .commit()?;
    fails!(
        st.batch()
            .set("b:s", "w")
            .when(Condition::IfMatch(etag))
            .commit(),
        Error::Transaction { index: 0, .. }
    );
    fails!(
        st.batch()
            .increment("b:n", 1)
            .list_append("b:m", &[1])
            .commit(),
        Error::Transaction { index: 1, .. }
    );
    same!(st.get::<i64>("b:n")?, Some(2));

    // More than 128 ops: too many, nothing applied.
    let mut big = st.batch();
    for i in 0..129 {
        big.set(&format!("b:big{i}"), &i);
    }
    fails!(big.commit(), Error::TooManyOperations);
    same!(st.keys("b:big").count(), 0);
    let many: Vec<(String, i64)> = (0..129).map(|i| (format!("b:many{i}"), i)).collect();
    fails!(
        st.set_many(many.iter().map(|(k, v)| (k.as_str(), v))),
        Error::TooManyOperations
    );
    same!(st.keys("b:many").count(), 0);
    ensure!(st.batch().commit()?.is_empty());
    Ok(())
}

fn transactions(st: &State) -> Check {
    st.set("x:alice", &100)?;
    st.map_set("x:m", [("f", &1)])?;
    st.list_append("x:l", &["q"])?;
    let left = st.transaction(|tx| {
        let from: i64 = tx.get("x:alice")?.unwrap_or(0);
        let to: i64 = tx.get("x:bob")?.unwrap_or(0);
        let m: BTreeMap<String, i64> = tx.map_get_all("x:m")?;
        let l: Vec<String> = tx.list_range("x:l", 0, -1)?;
        if m.get("f") != Some(&1) || l != ["q"] || tx.exists("x:nothing")? {
            return Err(Error::Internal(
                "transaction reads saw the wrong data".into(),
            ));
        }
        tx.set("x:alice", &(from - 10))
            .set("x:bob", &(to + 10))
            .list_append("x:ledger", &["alice->bob 10"]);
        Ok(from - 10)
    })?;
    same!(left, 90);
    same!(st.get::<i64>("x:alice")?, Some(90));
    same!(st.get::<i64>("x:bob")?, Some(10));
    same!(
        st.list_range::<String>("x:ledger", 0, -1)?,
        ["alice->bob 10"]
    );

    // Forced conflict: another writer changes a read key during the first
    // attempt only; the closure runs again on fresh data and commits.
    let other = State::instance();
    let mut runs = 0;
    st.transaction(|tx| {
        runs += 1;
        let v: i64 = tx.get("x:alice")?.expect("alice");
        if runs == 1 {
            other.set("x:alice", &(v + 1))?;
        }
        tx.set("x:alice", &(v * 2));
        Ok(())
    })?;
    same!(runs, 2);
    same!(st.get::<i64>("x:alice")?, Some(182));

    // A conflict on every attempt: gives up, the last write stands.
    let mut runs = 0;
    let err = st
        .transaction_with_retries(3, |tx| {
            runs += 1;
            let v: i64 = tx.get("x:alice")?.expect("alice");
            other.set("x:alice", &(v + 1))?;
            tx.set("x:alice", &0);
            Ok(())
        })
        .expect_err("always conflicting");
    ensure!(matches!(err, Error::Conflict { attempts: 3 }), "{err:?}");
    same!(runs, 3);
    same!(st.get::<i64>("x:alice")?, Some(185));

    // A key read as absent that appears: conflict, then retry.
    let mut runs = 0;
    st.transaction(|tx| {
        runs += 1;
        let v: Option<i64> = tx.get("x:fresh")?;
        if runs == 1 {
            other.set("x:fresh", &7)?;
        }
        tx.set("x:fresh", &(v.unwrap_or(0) + 1));
        Ok(())
    })?;
    same!(runs, 2);
    same!(st.get::<i64>("x:fresh")?, Some(8));

    // A queued write that fails: its index among the writes, nothing applied.
    let err = st
        .transaction(|tx| {
            tx.get::<i64>("x:alice")?;
            tx.increment("x:bob", 1).list_set("x:nolist", 0, &1);
            Ok(())
        })
        .expect_err("list_set on no list");
    match err {
        Error::Transaction {
            index: 1,
            ref source,
        } if matches!(**source, Error::NotFound) => {}
        e => return Err(Fail(format!("unexpected {e:?}"))),
    }
    same!(st.get::<i64>("x:bob")?, Some(10));

    // The closure's own error is returned and nothing is written.
    let err = st
        .transaction(|tx| {
            let v: i64 = tx.get("x:bob")?.unwrap_or(0);
            tx.set("x:bob", &(v + 1000));
            Err::<(), _>(Error::InvalidArgument("refused".into()))
        })
        .expect_err("closure error");
    ensure!(matches!(err, Error::InvalidArgument(ref m) if m == "refused"));
    same!(st.get::<i64>("x:bob")?, Some(10));
    Ok(())
}

fn sessions(st: &State) -> Check {
    ensure!(Session::current()?.is_none(), "no session was handed over");
    let mut s = Session::create(Some(Duration::from_secs(60)))?;
    ensure!(
        s.id().len() >= 22
            && s.id()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "url-safe id {:?}",
        s.id()
    );
    let scope = State::session(&s)?;
    scope.set("k", &1)?;
    scope.list_append("cart", &["apple"])?;
    same!(scope.get::<i64>("k")?, Some(1));
    // The session scope is apart from the instance scope.
    same!(st.get::<i64>("k")?, None);
    st.set("k", &2)?;
    same!(scope.get::<i64>("k")?, Some(1));

    let opened = Session::open(s.id())?;
    same!(opened.id(), s.id());
    same!(opened.expires_at_ms(), s.expires_at_ms());
    let before = s.expires_at_ms();
    s.extend(Duration::from_secs(3600))?;
    ensure!(
        s.expires_at_ms() >= before + 3_000_000,
        "{} -> {}",
        before,
        s.expires_at_ms()
    );
    same!(Session::open(s.id())?.expires_at_ms(), s.expires_at_ms());
    // Extending can shorten it too.
    s.extend(Duration::from_secs(30))?;
    ensure!(s.expires_at_ms() < before + 1000);

    // A second session is apart from the first.
    let s2 = Session::create(None)?;
    ensure!(s2.id() != s.id());
    ensure!(s2.expires_at_ms() > s.expires_at_ms() + 6 * 24 * 3600 * 1000);
    let scope2 = s2.state()?;
    same!(scope2.get::<i64>("k")?, None);
    scope2.set("k", &3)?;
    same!(scope.get::<i64>("k")?, Some(1));

    // Ending deletes it and its keys; its buckets then fail.
    ensure!(s.clone().end()?);
    fails!(scope.get::<i64>("k"), Error::NoSuchSession);
    fails!(scope.set("k", &5), Error::NoSuchSession);
    fails!(Session::open(s.id()), Error::NoSuchSession);
    fails!(State::session(&s), Error::NoSuchSession);
    ensure!(!s.clone().end()?, "already ended");
    same!(scope2.get::<i64>("k")?, Some(3));
    ensure!(s2.end()?);

    fails!(Session::open("not-a-session-id"), Error::NoSuchSession);
    fails!(Session::open(""), Error::NoSuchSession);
    fails!(
        Session::create(Some(Duration::ZERO)),
        Error::InvalidArgument(_)
    );
    fails!(
        Session::create(Some(Duration::from_secs(u64::MAX / 2))),
        Error::InvalidArgument(_)
    );
    Ok(())
}

fn account(st: &State) -> Check {
    let acct = State::account();
    acct.set("suite:shared", &true)?;
    same!(acct.get::<bool>("suite:shared")?, Some(true));
    same!(st.get::<bool>("suite:shared")?, None);
    acct.map_set("suite:map", [("f", &1)])?;
    same!(acct.map_increment("suite:map", "f", 1)?, 2);
    same!(acct.keys("suite:").count(), 2);
    same!(acct.delete_prefix("suite:")?, 2);
    Ok(())
}

#[derive(Deserialize, Debug)]
struct Employee {
    person: Person,
    city: String,
    state: String,
}

#[derive(Deserialize, Debug)]
struct Person {
    org: String,
    id: u32,
}

/// Queries on a session scope of their own (the dataset of Dapr's query
/// how-to), typed and in JSON form, paged by token.
fn queries(_: &State) -> Check {
    let session = Session::create(Some(Duration::from_secs(60)))?;
    let st = State::session(&session)?;
    let rows = [
        ("1", "Dev Ops", 1036, "Seattle", "WA"),
        ("2", "Hardware", 1028, "Portland", "OR"),
        ("3", "Finance", 1071, "Sacramento", "CA"),
        ("4", "Dev Ops", 1042, "Spokane", "WA"),
        ("5", "Hardware", 1007, "Los Angeles", "CA"),
        ("6", "Finance", 1094, "Eugene", "OR"),
        ("7", "Dev Ops", 1015, "San Francisco", "CA"),
        ("8", "Hardware", 1077, "Redmond", "WA"),
        ("9", "Finance", 1002, "San Diego", "CA"),
        ("10", "Dev Ops", 1054, "New York", "NY"),
    ];
    for (key, org, id, city, state) in rows {
        st.set(
            key,
            &serde_json::json!({"person": {"org": org, "id": id}, "city": city, "state": state}),
        )?;
    }
    // Not objects, or not values: never results.
    st.set("plain", &42)?;
    st.list_append("a-list", &[serde_json::json!({"state": "WA"})])?;

    let query = Query::new()
        .filter(Filter::or([
            Filter::eq("person.org", "Dev Ops"),
            Filter::and([
                Filter::eq("person.org", "Finance"),
                Filter::is_in("state", ["CA", "WA"]),
            ]),
        ]))
        .sort("state", Order::Desc)
        .sort("person.id", Order::Asc)
        .limit(3);
    let first = st.query::<Employee>(&query)?;
    let keys: Vec<&str> = first.results.iter().map(|r| r.key.as_str()).collect();
    same!(keys, ["1", "4", "10"]);
    same!(first.results[0].value.city, "Seattle");
    same!(first.results[0].value.state, "WA");
    same!(first.results[0].value.person.org, "Dev Ops");
    ensure!(first.token.is_some());
    let second = st.query::<Employee>(&query.clone().token(first.token.unwrap()))?;
    let keys: Vec<&str> = second.results.iter().map(|r| r.key.as_str()).collect();
    same!(keys, ["9", "7", "3"]);
    same!(second.token, None);

    // Every page by iterator, from the JSON form.
    let json = Query::from_json(
        r#"{"filter":{"GTE":{"person.id":1040}},"sort":[{"key":"person.id","order":"DESC"}],"page":{"limit":2}}"#,
    )?;
    let ids: Vec<u32> = st
        .query_iter::<Employee>(json)
        .map(|r| r.map(|r| r.value.person.id))
        .collect::<Result<_, _>>()?;
    same!(ids, [1094, 1077, 1071, 1054, 1042]);
    same!(st.query_iter::<serde_json::Value>(Query::new()).count(), 10);
    // A sort added to a JSON query comes after the sort it has.
    let by_state = Query::from_json(r#"{"sort":[{"key":"state","order":"DESC"}]}"#)?
        .sort("person.id", Order::Asc)
        .limit(3);
    let page = st.query::<Employee>(&by_state)?;
    let keys: Vec<&str> = page.results.iter().map(|r| r.key.as_str()).collect();
    same!(keys, ["1", "4", "8"]);

    // A result's etag works as a condition.
    let hit = st.query::<serde_json::Value>(&Query::new().filter(Filter::eq("city", "Eugene")))?;
    same!(hit.results.len(), 1);
    st.set_with(
        "6",
        &serde_json::json!({"moved": true}),
        SetOptions::condition(Condition::IfMatch(hit.results[0].etag.clone())),
    )?;
    fails!(
        st.set_with(
            "6",
            &1,
            SetOptions::condition(Condition::IfMatch(hit.results[0].etag.clone()))
        ),
        Error::EtagMismatch
    );
    // "6" is no Employee now: the iterator yields its error (the 7th of
    // ten, in key order) and goes on to the other nine, page after page.
    let all: Vec<_> = st.query_iter::<Employee>(Query::new().limit(3)).collect();
    same!(all.len(), 10);
    same!(
        all.iter()
            .filter(|r| matches!(r, Err(Error::Json(_))))
            .count(),
        1
    );

    match st.query::<serde_json::Value>(&Query::from_json(r#"{"filter":{"LIKE":{"a":1}}}"#)?) {
        Err(Error::InvalidArgument(m)) => ensure!(m.contains("\"LIKE\""), "{m}"),
        other => return Err(Fail(format!("a LIKE filter should fail: {other:?}"))),
    }
    fails!(
        st.query::<serde_json::Value>(&Query::new().token("bogus")),
        Error::InvalidArgument(_)
    );
    ensure!(session.end()?);
    Ok(())
}

/// A named group of checks.
type Group = (&'static str, fn(&State) -> Check);

const GROUPS: [Group; 14] = [
    ("values", values),
    ("counters", counters),
    ("ttl", ttl),
    ("etags", etags),
    ("maps", maps),
    ("lists", lists),
    ("keys", keys),
    ("delete-prefix", delete_prefix),
    ("batches", batches),
    ("kept-reads", kept_reads),
    ("transactions", transactions),
    ("sessions", sessions),
    ("account", account),
    ("queries", queries),
];

fn main() {
    let st = State::instance();
    for (name, group) in GROUPS {
        if let Err(Fail(why)) = group(&st) {
            eprintln!("FAIL {name}: {why}");
            std::process::exit(1);
        }
        println!("ok {name}");
    }
}
