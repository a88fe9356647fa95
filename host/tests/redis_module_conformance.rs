//! The conformance suite on the Redis engine with wasm-state's Redis module
//! loaded (`redis-module/`): every commit runs natively in Redis (the kv
//! engine's Rust ops over the owner's records), everything else through the
//! Lua library and `HMGET`. A real `redis-server` on loopback, a fresh key
//! namespace per test; plus checks that commits really take the module and
//! that a retry finds the first answer whichever of module and library
//! gave it.

mod support {
    pub mod redis_backend;
    pub mod redis_server;
}

mod backend {
    pub use crate::support::redis_backend::{Guard, VOUCHES, never_issued, open, reopen};
    use crate::support::{redis_backend, redis_server};
    use wasm_state::store::{Store, StoreConfig};

    /// A fresh store: a new namespace on the shared server (module loaded).
    pub fn fresh(config: StoreConfig) -> (Store, Guard) {
        redis_backend::fresh_on(redis_server::shared_with_module(), config)
    }
}

mod conformance;

mod module {
    use std::sync::Arc;
    use std::time::Duration;

    use redis::Value;
    use wasm_state::store::redis::keys::Owner;
    use wasm_state::store::redis::native;
    use wasm_state::store::{Condition, ManualClock, SetOptions, Store, StoreConfig, SystemClock};

    use crate::backend;
    use crate::support::redis_server;

    fn conn() -> redis::Connection {
        let port = redis_server::shared_with_module().port;
        redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// How many times Redis ran `cmd` (`INFO commandstats`).
    fn calls_of(c: &mut redis::Connection, cmd: &str) -> u64 {
        let info: String = redis::cmd("INFO").arg("commandstats").query(c).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().unwrap())
    }

    /// `args` packed as the module's command takes them.
    fn packed(args: &[&[u8]]) -> Vec<u8> {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
        native::pack_args(&args)
    }

    /// A store config with the real clock and no background sweeper.
    fn config() -> StoreConfig {
        StoreConfig {
            clock: Arc::new(SystemClock),
            sweep_interval: None,
            ..StoreConfig::default()
        }
    }

    /// The arguments of a commit of `op` (key, kind, condition, arguments)
    /// on instance `app` at `now`, as the engine sends them.
    fn commit_args<'a>(attempt: &'a [u8], now: &'a [u8; 8], op: &[&'a [u8]]) -> Vec<&'a [u8]> {
        let mut args: Vec<&[u8]> = vec![
            attempt,
            b"commit",
            b"i",
            b"app",
            b"",
            now,
            b"abcd1234",
            b"1000000",
            b"1000000",
            b"100",
            b"100",
            b"1000000",
            b"",
            b"1",
        ];
        args.extend(op);
        args
    }

    /// A store on namespace `ns` of the shared server, using the module or not.
    fn store_in(ns: &str, module: bool) -> Store {
        let port = redis_server::shared_with_module().port;
        let module = if module { "auto" } else { "off" };
        let url = format!("redis://127.0.0.1:{port}?namespace={ns}&module={module}");
        backend::open(&url, config())
    }

    /// A store on a fresh namespace, and the namespace.
    fn store(module: bool) -> (Store, String) {
        let ns = redis_server::fresh_namespace();
        (store_in(&ns, module), ns)
    }

    #[tokio::test]
    async fn commits_run_in_the_module_unless_the_url_turns_it_off() {
        let mut c = conn();
        let (s, _) = store(true);
        let app = s.instance("app").unwrap();
        app.set("k", b"v".to_vec()).await.unwrap();
        let before = calls_of(&mut c, "wasmstate.commit");
        for i in 0..20 {
            app.set(&format!("k{i}"), b"v".to_vec()).await.unwrap();
        }
        assert!(calls_of(&mut c, "wasmstate.commit") >= before + 20);

        // module=off: the Lua library, and the module sees none of it.
        let (s, _) = store(false);
        let app = s.instance("app").unwrap();
        app.set("k", b"v".to_vec()).await.unwrap();
        let fcall_before = calls_of(&mut c, "fcall");
        app.set("k2", b"v".to_vec()).await.unwrap();
        app.increment("n", 2).await.unwrap();
        assert!(calls_of(&mut c, "fcall") >= fcall_before + 2);
        assert_eq!(app.get("k2").await.unwrap().unwrap(), b"v");
    }

    #[tokio::test]
    async fn what_the_module_writes_the_library_reads_and_the_other_way_round() {
        let (with, ns) = store(true);
        let without = store_in(&ns, false);
        let (a, b) = (
            with.instance("app").unwrap(),
            without.instance("app").unwrap(),
        );
        a.set("k", b"1".to_vec()).await.unwrap();
        a.map_set("m", vec![("f".into(), b"x".to_vec())])
            .await
            .unwrap();
        a.list_append("l", vec![b"p".to_vec(), b"q".to_vec()])
            .await
            .unwrap();
        assert_eq!(b.increment("k", 4).await.unwrap(), 5);
        assert_eq!(a.increment("k", 1).await.unwrap(), 6);
        let etag = a.info("k").await.unwrap().unwrap().etag;
        assert_eq!(b.info("k").await.unwrap().unwrap().etag, etag);
        assert_eq!(b.map_get("m", "f").await.unwrap().unwrap(), b"x");
        assert_eq!(
            b.list_range("l", 0, -1).await.unwrap(),
            vec![b"p".to_vec(), b"q".to_vec()]
        );
        b.list_append("l", vec![b"r".to_vec()]).await.unwrap();
        assert_eq!(a.list_append("l", vec![b"s".to_vec()]).await.unwrap(), 4);
        assert_eq!(a.list_range("l", 0, -1).await.unwrap().len(), 4);
    }

    /// One commit of `incr KEY by 5` on instance `app` with marker `marker`,
    /// through the library's function or the module, as attempt `attempt`.
    fn incr_key(
        c: &mut redis::Connection,
        ns: &str,
        via: Option<&str>,
        attempt: &str,
        marker: &str,
        key: &str,
    ) -> Value {
        let owner = Owner::instance(ns, "app");
        let now = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64)
            .to_be_bytes();
        let args = commit_args(
            attempt.as_bytes(),
            &now,
            &[key.as_bytes(), b"incr", b"", b"", b"1", b"5"],
        );
        let mut cmd = match via {
            Some(function) => {
                let mut c = redis::cmd("FCALL");
                c.arg(function).arg(3);
                c
            }
            None => redis::cmd("wasmstate.commit"),
        };
        cmd.arg(&owner.hash).arg(&owner.zset).arg(marker);
        if via.is_none() {
            // The module takes them packed into one.
            cmd.arg(native::fingerprint()).arg(packed(&args));
        } else {
            for a in args {
                cmd.arg(a);
            }
        }
        // Both answer packed (one bulk string), the same answer.
        native::answer_of(cmd.query(c).unwrap()).unwrap()
    }

    fn incr(
        c: &mut redis::Connection,
        ns: &str,
        via: Option<&str>,
        attempt: &str,
        marker: &str,
    ) -> Value {
        incr_key(c, ns, via, attempt, marker, "n")
    }

    fn output(answer: &Value) -> Vec<u8> {
        // {'K', {{etag, {'i', n}}}}
        let Value::Array(a) = answer else {
            panic!("{answer:?}")
        };
        let Value::Array(results) = &a[1] else {
            panic!("{answer:?}")
        };
        let Value::Array(r) = &results[0] else {
            panic!("{answer:?}")
        };
        let Value::Array(out) = &r[1] else {
            panic!("{answer:?}")
        };
        let Value::BulkString(n) = &out[1] else {
            panic!("{answer:?}")
        };
        n.clone()
    }

    #[tokio::test]
    async fn a_retry_gets_the_first_answer_whichever_of_module_and_library_gave_it() {
        let (s, ns) = store(false);
        // One write through the library loads it; find its function.
        s.instance("app")
            .unwrap()
            .set("x", b"1".to_vec())
            .await
            .unwrap();
        let mut c = conn();
        let list: Value = redis::cmd("FUNCTION").arg("LIST").query(&mut c).unwrap();
        let function = format!("{list:?}")
            .split('"')
            .find(|w| {
                w.starts_with("wasm_state_")
                    && !w.ends_with("_ro")
                    && w.len() == "wasm_state_".len() + 12
            })
            .expect("the library's function")
            .to_string();
        let m1 = format!("{ns}:marker-1");
        let m2 = format!("{ns}:marker-2");
        // Library first, retried through the module: not applied twice.
        let first = incr(&mut c, &ns, Some(&function), "f", &m1);
        assert_eq!(output(&first), b"5");
        let again = incr(&mut c, &ns, None, "R", &m1);
        assert_eq!(again, first);
        // Module first, retried through the library.
        let first = incr(&mut c, &ns, None, "f", &m2);
        assert_eq!(output(&first), b"10");
        let again = incr(&mut c, &ns, Some(&function), "R", &m2);
        assert_eq!(again, first);
        // A retry whose marker is gone runs (a new request).
        assert_eq!(
            output(&incr(&mut c, &ns, None, "R", &format!("{ns}:marker-3"))),
            b"15"
        );
        assert_eq!(
            s.instance("app").unwrap().get("n").await.unwrap().unwrap(),
            b"15"
        );
        // Error answers are kept and found the same way, both ways round.
        s.instance("app")
            .unwrap()
            .set("text", b"not a number".to_vec())
            .await
            .unwrap();
        let lib = Some(function.as_str());
        for (first_via, again_via, m) in [(lib, None, "marker-4"), (None, lib, "marker-5")] {
            let m = format!("{ns}:{m}");
            let first = incr_key(&mut c, &ns, first_via, "f", &m, "text");
            let Value::Array(items) = &first else {
                panic!("{first:?}")
            };
            assert_eq!(items[0], Value::BulkString(b"E".to_vec()), "{first:?}");
            assert_eq!(incr_key(&mut c, &ns, again_via, "R", &m, "text"), first);
        }
        // A first attempt delivered twice (redis-rs's cluster client sends a
        // command again when its connection drops; a late first attempt can
        // arrive after its retry) is applied once too, both ways round.
        for (first_via, again_via, m, want) in [
            (lib, None, "marker-7", b"20"),
            (None, lib, "marker-8", b"25"),
        ] {
            let m = format!("{ns}:{m}");
            let first = incr(&mut c, &ns, first_via, "f", &m);
            assert_eq!(output(&first), want);
            assert_eq!(incr(&mut c, &ns, again_via, "f", &m), first);
        }
        assert_eq!(
            s.instance("app").unwrap().get("n").await.unwrap().unwrap(),
            b"25"
        );
        // A write the library does not know is an error answer too (packed
        // like every write's).
        let owner = Owner::instance(&ns, "app");
        let v: Value = redis::cmd("FCALL")
            .arg(&function)
            .arg(3)
            .arg(&owner.hash)
            .arg(&owner.zset)
            .arg(format!("{ns}:marker-6"))
            .arg("f")
            .arg("nosuch")
            .query(&mut c)
            .unwrap();
        let Value::Array(items) = native::answer_of(v).unwrap() else {
            panic!("not an answer")
        };
        assert_eq!(items[0], Value::BulkString(b"E".to_vec()));
    }

    /// A bad call: what it is, its keys, fingerprint and arguments.
    type Case<'a> = (String, [&'a str; 3], &'a str, Vec<&'a [u8]>);

    fn is_error(v: &redis::RedisResult<Value>) -> bool {
        match v {
            Err(_) => true,
            Ok(v) => match native::answer_of(v.clone()).unwrap() {
                Value::Array(items) => items.first() == Some(&Value::BulkString(b"E".to_vec())),
                _ => false,
            },
        }
    }

    /// Anyone who can reach Redis can call the command with anything: every
    /// bad call is an error, writes nothing, and Redis stays up.
    #[tokio::test]
    async fn bad_direct_calls_are_errors_that_write_nothing_and_redis_stays_up() {
        let mut c = conn();
        let ns = redis_server::fresh_namespace();
        let owner = Owner::instance(&ns, "app");
        let (h, z) = (owner.hash.as_str(), owner.zset.as_str());
        let m = format!("{ns}:m");
        let print = native::fingerprint();
        let now = 1_767_225_600_000u64.to_be_bytes();
        let good = commit_args(b"f", &now, &[b"k", b"set", b"", b"", b"2", b"v", b""]);
        let call = |c: &mut redis::Connection, keys: [&str; 3], print: &str, args: &[&[u8]]| {
            let mut cmd = redis::cmd("wasmstate.commit");
            cmd.arg(&keys[..]).arg(print).arg(packed(args));
            cmd.query::<Value>(c)
        };
        // The arguments as they are, not packed; or packed and damaged.
        let raw = |c: &mut redis::Connection, tail: &[&[u8]]| {
            let mut cmd = redis::cmd("wasmstate.commit");
            cmd.arg(h).arg(z).arg(&m).arg(print);
            for a in tail {
                cmd.arg(*a);
            }
            cmd.query::<Value>(c)
        };
        let whole = packed(&good);
        let mut longer = whole.clone();
        longer.push(0);
        let mut not_bin = whole.clone();
        // The first argument's `bin 8` marker (after the array's `array
        // 16` or `fixarray` header) made a `str 8` one.
        let first = if good.len() < 16 { 1 } else { 3 };
        assert_eq!(not_bin[first], 0xc4);
        not_bin[first] = 0xd9;
        let (arity, unpacked) = ("wrong number of arguments", "packed into one");
        let raw_cases: Vec<(&str, Vec<&[u8]>, &str)> = vec![
            ("the arguments unpacked", good.clone(), arity),
            ("nothing after the fingerprint", vec![], arity),
            (
                "the packed arguments and one more",
                vec![whole.as_slice(), b"x"],
                arity,
            ),
            (
                "packed, cut short",
                vec![&whole[..whole.len() - 1]],
                unpacked,
            ),
            (
                "packed, a byte left over",
                vec![longer.as_slice()],
                unpacked,
            ),
            (
                "packed as text, not binary",
                vec![not_bin.as_slice()],
                unpacked,
            ),
            ("not MessagePack at all", vec![b"\xc1garbage"], unpacked),
        ];
        for (what, tail, said) in raw_cases {
            let r = raw(&mut c, &tail);
            match &r {
                Err(e) => assert!(e.to_string().contains(said), "{what}: {e}"),
                Ok(v) => panic!("{what}: answered {v:?}"),
            }
            let exists: i64 = redis::cmd("EXISTS")
                .arg(h)
                .arg(z)
                .arg(&m)
                .query(&mut c)
                .unwrap();
            assert_eq!(exists, 0, "{what} wrote nothing");
        }
        // A host of another build hears of it whatever form it sends.
        let mut old = redis::cmd("wasmstate.commit");
        old.arg(h)
            .arg(z)
            .arg(&m)
            .arg("0.0.0/wasm_state_000000000000/mp");
        for a in &good {
            old.arg(*a);
        }
        match old.query::<Value>(&mut c) {
            Err(e) => assert!(e.to_string().contains(native::VERSION_MISMATCH), "{e}"),
            Ok(v) => panic!("another build's host was answered: {v:?}"),
        }
        // A string where the owner's hash should be: refused, kept as it is.
        let clobbered = format!("{ns}:{{x}}:h");
        let _: () = redis::cmd("SET")
            .arg(&clobbered)
            .arg("mine")
            .query(&mut c)
            .unwrap();
        let mut cases: Vec<Case> = vec![
            (
                "same key twice (hash = zset)".into(),
                [h, h, &m],
                print,
                good.clone(),
            ),
            (
                "same key twice (hash = marker)".into(),
                [h, z, h],
                print,
                good.clone(),
            ),
            (
                "same key twice (zset = marker)".into(),
                [h, z, z],
                print,
                good.clone(),
            ),
            (
                "a string as the hash".into(),
                [&clobbered, z, &m],
                print,
                good.clone(),
            ),
            (
                "another build's fingerprint".into(),
                [h, z, &m],
                "0.0.0/wasm_state_000000000000",
                good.clone(),
            ),
            // Quoted back in the error: characters an error reply cannot
            // carry (redis-module-rs cut `Ā` to a NUL byte, and its reply
            // panicked and aborted Redis).
            (
                "a fingerprint that is not ASCII".into(),
                [h, z, &m],
                "0.0.0/Ā/一/\0/\r\n",
                good.clone(),
            ),
            ("no arguments".into(), [h, z, &m], print, vec![]),
        ];
        for cut in 1..good.len() {
            cases.push((
                format!("arguments cut at {cut}"),
                [h, z, &m],
                print,
                good[..cut].to_vec(),
            ));
        }
        let mut huge: Vec<&[u8]> = good[..12].to_vec();
        huge.push(b"18446744073709551616");
        cases.push(("a huge op count".into(), [h, z, &m], print, huge));
        let mut bad_scope = good.clone();
        bad_scope[2] = b"q";
        cases.push(("an unknown scope kind".into(), [h, z, &m], print, bad_scope));
        let mut bad_time = good.clone();
        bad_time[5] = b"123";
        cases.push(("a time of 3 bytes".into(), [h, z, &m], print, bad_time));
        let mut bad_kind = good.clone();
        bad_kind[14] = b"explode";
        cases.push(("an unknown op".into(), [h, z, &m], print, bad_kind));
        for (what, keys, print, args) in cases {
            let r = call(&mut c, keys, print, &args);
            assert!(is_error(&r), "{what}: {r:?}");
            if what.contains("fingerprint") {
                let e = r.as_ref().expect_err(&what);
                assert!(
                    e.to_string().contains(native::VERSION_MISMATCH),
                    "{what}: {e}"
                );
            }
            let pong: String = redis::cmd("PING").query(&mut c).expect("Redis is still up");
            assert_eq!(pong, "PONG", "{what}");
            let exists: i64 = redis::cmd("EXISTS").arg(h).arg(z).query(&mut c).unwrap();
            assert_eq!(exists, 0, "{what} wrote nothing");
        }
        let kept: String = redis::cmd("GET").arg(&clobbered).query(&mut c).unwrap();
        assert_eq!(kept, "mine");
        // The good call works (a request of its own: the bad calls' error
        // answers are kept under theirs, and a request asked again gets
        // its kept answer).
        let fresh = format!("{ns}:m2");
        assert!(is_error(&call(&mut c, [h, z, &m], print, &good)));
        assert!(!is_error(&call(&mut c, [h, z, &fresh], print, &good)));
    }

    /// Removing a key with more records than one range read takes (256)
    /// removes them all.
    #[tokio::test]
    async fn big_maps_and_lists_are_removed_whole() {
        let (s, ns) = store(true);
        let app = s.instance("app").unwrap();
        let fields: Vec<(String, Vec<u8>)> = (0..600)
            .map(|i| (format!("f{i:04}"), b"x".to_vec()))
            .collect();
        for chunk in fields.chunks(100) {
            app.map_set("m", chunk.to_vec()).await.unwrap();
        }
        let items: Vec<Vec<u8>> = (0..600).map(|i| format!("i{i}").into_bytes()).collect();
        for chunk in items.chunks(100) {
            app.list_append("l", chunk.to_vec()).await.unwrap();
        }
        let mut c = conn();
        let owner = Owner::instance(&ns, "app");
        let before: i64 = redis::cmd("HLEN").arg(&owner.hash).query(&mut c).unwrap();
        assert!(before > 1200, "{before}");
        assert!(app.delete("m").await.unwrap());
        app.list_trim("l", 0, 9).await.unwrap();
        assert_eq!(app.map_length("m").await.unwrap(), 0);
        assert_eq!(app.list_length("l").await.unwrap(), 10);
        let after: i64 = redis::cmd("HLEN").arg(&owner.hash).query(&mut c).unwrap();
        let order: i64 = redis::cmd("ZCARD").arg(&owner.zset).query(&mut c).unwrap();
        assert!(
            after < 30 && order < 30,
            "records left: {after} in the hash, {order} in the order"
        );
    }

    /// An ACL that refuses `COMMAND`: the host cannot ask for the module, so
    /// it writes through the library.
    #[tokio::test]
    async fn a_user_without_command_writes_through_the_library() {
        let mut c = conn();
        let user = format!("u{}", redis_server::fresh_namespace());
        let _: () = redis::cmd("ACL")
            .arg(
                &[
                    "SETUSER",
                    user.as_str(),
                    "on",
                    ">pw",
                    "~*",
                    "&*",
                    "+@all",
                    "-command",
                ][..],
            )
            .query(&mut c)
            .unwrap();
        let port = redis_server::shared_with_module().port;
        let url = format!(
            "redis://{user}:pw@127.0.0.1:{port}?namespace={}",
            redis_server::fresh_namespace()
        );
        let s = backend::open(&url, config());
        let app = s.instance("app").unwrap();
        app.set("k", b"v".to_vec()).await.unwrap();
        assert_eq!(app.increment("n", 3).await.unwrap(), 3);
        assert_eq!(app.get("k").await.unwrap().unwrap(), b"v");
    }

    /// A Redis that unloads the module mid-run: the next write is refused
    /// before anything runs, goes to the library, and so do the rest.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unloading_the_module_sends_writes_back_to_the_library() {
        let server = redis_server::start_detached(&[
            "--enable-module-command",
            "local",
            "--loadmodule",
            redis_server::module_path(),
        ]);
        let url = format!("redis://127.0.0.1:{}?namespace=unload", server.port);
        let s = backend::open(&url, config());
        let app = s.instance("app").unwrap();
        assert_eq!(app.increment("n", 1).await.unwrap(), 1);
        assert!(
            redis_server::cli(server.port, &["info", "commandstats"])
                .contains("cmdstat_wasmstate.commit:")
        );
        assert_eq!(
            redis_server::cli(server.port, &["module", "unload", "wasmstate"]).trim(),
            "OK"
        );
        for i in 2..=5 {
            assert_eq!(app.increment("n", 1).await.unwrap(), i);
        }
        assert!(
            redis_server::cli(server.port, &["info", "commandstats"]).contains("cmdstat_fcall:")
        );
        assert_eq!(app.get("n").await.unwrap().unwrap(), b"5");
    }

    /// A write whose arguments, packed, are longer than the server takes
    /// in one (`proto-max-bulk-len`) goes through the library, which takes
    /// them one by one; smaller writes still run in the module.
    #[tokio::test]
    async fn a_write_too_long_for_one_argument_goes_through_the_library() {
        // The smallest `proto-max-bulk-len` Redis takes: 1 MiB.
        let server = redis_server::start_detached(&[
            "--loadmodule",
            redis_server::module_path(),
            "--proto-max-bulk-len",
            "1mb",
        ]);
        let url = format!("redis://127.0.0.1:{}?namespace=big", server.port);
        let s = backend::open(&url, config());
        let app = s.instance("app").unwrap();
        let calls = |name: &str| {
            let stats = redis_server::cli(server.port, &["info", "commandstats"]);
            stats
                .lines()
                .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:calls=")))
                .and_then(|rest| rest.split(',').next())
                .map_or(0, |n| n.parse::<u64>().unwrap())
        };
        app.set("small", b"v".to_vec()).await.unwrap();
        let (module, library) = (calls("wasmstate.commit"), calls("fcall"));
        assert!(module >= 1, "a small write runs in the module");
        // Two values of 700 KB: each fits an argument, the two packed do not.
        let (a, b) = (vec![b'a'; 700_000], vec![b'b'; 700_000]);
        app.map_set("m", vec![("a".into(), a.clone()), ("b".into(), b.clone())])
            .await
            .unwrap();
        assert_eq!(calls("wasmstate.commit"), module, "not sent to the module");
        assert!(calls("fcall") > library, "the library took it");
        assert_eq!(app.map_get("m", "a").await.unwrap().unwrap(), a);
        assert_eq!(app.map_get("m", "b").await.unwrap().unwrap(), b);
        // And small writes still run in the module.
        app.set("small", b"w".to_vec()).await.unwrap();
        assert_eq!(calls("wasmstate.commit"), module + 1);
        assert_eq!(app.get("small").await.unwrap().unwrap(), b"w");
    }

    /// A module loaded into a running Redis is taken up without a restart:
    /// the host goes on with the library until it asks again (every 30 s
    /// of its clock), then commits run through the module — on the same
    /// records.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_module_loaded_while_the_host_runs_is_taken_up() {
        let server = redis_server::start_detached(&["--enable-module-command", "local"]);
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let config = StoreConfig {
            clock: clock.clone(),
            ..config()
        };
        let url = format!("redis://127.0.0.1:{}?namespace=load", server.port);
        let s = backend::open(&url, config);
        let app = s.instance("app").unwrap();
        let commits = || {
            let stats = redis_server::cli(server.port, &["info", "commandstats"]);
            stats
                .lines()
                .find_map(|l| l.strip_prefix("cmdstat_wasmstate.commit:calls="))
                .and_then(|rest| rest.split(',').next())
                .map_or(0, |n| n.parse::<u64>().unwrap())
        };
        assert_eq!(app.increment("n", 1).await.unwrap(), 1);
        assert_eq!(
            redis_server::cli(
                server.port,
                &["module", "load", redis_server::module_path()]
            )
            .trim(),
            "OK"
        );
        clock.advance(Duration::from_secs(29));
        assert_eq!(app.increment("n", 1).await.unwrap(), 2);
        assert_eq!(commits(), 0, "asked again before 30 s");
        clock.advance(Duration::from_secs(1));
        for i in 3..=5 {
            assert_eq!(app.increment("n", 1).await.unwrap(), i);
        }
        assert_eq!(
            commits(),
            3,
            "the module took the writes after the re-check"
        );
        // Unloaded, and loaded again: the library at once, the module
        // again after the next re-check.
        assert_eq!(
            redis_server::cli(server.port, &["module", "unload", "wasmstate"]).trim(),
            "OK"
        );
        assert_eq!(app.increment("n", 1).await.unwrap(), 6);
        assert_eq!(
            redis_server::cli(
                server.port,
                &["module", "load", redis_server::module_path()]
            )
            .trim(),
            "OK"
        );
        assert_eq!(app.increment("n", 1).await.unwrap(), 7);
        // (A module loaded again counts its command's calls anew.)
        assert_eq!(commits(), 0, "asked again before 30 s");
        clock.advance(Duration::from_secs(30));
        assert_eq!(app.increment("n", 1).await.unwrap(), 8);
        assert_eq!(commits(), 1, "the module again after the re-check");
        assert_eq!(app.get("n").await.unwrap().unwrap(), b"8");
    }

    /// Keyspace notifications: the module's writes announce what the Lua
    /// library's commands announce — the same events on the same keys for
    /// the same requests (markers and namespaces aside).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn module_writes_announce_the_keyspace_events_the_library_does() {
        let server = redis_server::start_detached(&[
            "--notify-keyspace-events",
            "KEA",
            "--loadmodule",
            redis_server::module_path(),
        ]);
        let client = redis::Client::open(format!("redis://127.0.0.1:{}", server.port)).unwrap();
        let mut events = client.get_connection().unwrap();
        events
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut pubsub = events.as_pubsub();
        pubsub.psubscribe("__keyevent@0__:*").unwrap();
        pubsub.subscribe("done").unwrap();
        let mut seen = Vec::new();
        for (ns, module) in [("notelib", "&module=off"), ("notemod", "")] {
            let url = format!("redis://127.0.0.1:{}?namespace={ns}{module}", server.port);
            let s = backend::open(&url, config());
            let app = s.instance("app").unwrap();
            app.set("k", b"1".to_vec()).await.unwrap();
            app.set("k", b"2".to_vec()).await.unwrap();
            app.map_set("m", vec![("f".into(), b"v".to_vec())])
                .await
                .unwrap();
            app.list_append("l", vec![b"a".to_vec(), b"b".to_vec()])
                .await
                .unwrap();
            app.list_start_pop("l", 2).await.unwrap();
            app.increment("n", 3).await.unwrap();
            app.delete("k").await.unwrap();
            app.delete("m").await.unwrap();
            app.delete("n").await.unwrap();
            redis_server::cli(server.port, &["publish", "done", ns]);
            let mut got = std::collections::BTreeSet::new();
            loop {
                let msg = pubsub.get_message().unwrap();
                if msg.get_channel_name() == "done" {
                    break;
                }
                let event = msg
                    .get_channel_name()
                    .trim_start_matches("__keyevent@0__:")
                    .to_string();
                let key: String = msg.get_payload().unwrap();
                let key = key.replacen(ns, "NS", 1);
                // A marker's name holds the request id.
                let key = match key.find(":r:") {
                    Some(at) => format!("{}:r:MARKER", &key[..at]),
                    None => key,
                };
                got.insert((event, key));
            }
            seen.push(got);
        }
        for event in ["hset", "zadd", "hdel", "zrem", "set", "expire"] {
            assert!(
                seen[0].iter().any(|(e, _)| e == event),
                "the library announced no {event}: {:?}",
                seen[0]
            );
        }
        assert_eq!(seen[1], seen[0], "module (left) and library (right)");
    }

    /// A client `WATCH`ing an owner's keys is disturbed only by what really
    /// changes them, through the module as through the library: updating an
    /// existing key changes the records hash, not the order (its sorted
    /// set), and a request that fails changes neither.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watchers_of_the_owners_keys_see_only_real_changes() {
        let server = redis_server::start_detached(&["--loadmodule", redis_server::module_path()]);
        let client = redis::Client::open(format!("redis://127.0.0.1:{}", server.port)).unwrap();
        for (ns, module) in [("watchlib", "&module=off"), ("watchmod", "")] {
            let url = format!("redis://127.0.0.1:{}?namespace={ns}{module}", server.port);
            let s = backend::open(&url, config());
            let app = s.instance("app").unwrap();
            app.set("k", b"1".to_vec()).await.unwrap();
            let owner = Owner::instance(ns, "app");
            let mut c = watch(&client, &owner.zset);
            app.set("k", b"2".to_vec()).await.unwrap();
            assert!(
                exec_ran(&mut c),
                "{ns}: an update of an existing key touched the order"
            );
            let mut c = watch(&client, &owner.hash);
            app.set("k", b"3".to_vec()).await.unwrap();
            assert!(
                !exec_ran(&mut c),
                "{ns}: an update did not touch the records"
            );
            let mut c = watch(&client, &owner.hash);
            let stale = SetOptions {
                condition: Some(Condition::IfMatch("0000000000000000000000ff".into())),
                ..SetOptions::default()
            };
            assert!(app.set_with("k", b"4".to_vec(), stale).await.is_err());
            assert!(
                exec_ran(&mut c),
                "{ns}: a failed request touched the records"
            );
            let mut c = watch(&client, &owner.zset);
            app.set("new", b"1".to_vec()).await.unwrap();
            assert!(!exec_ran(&mut c), "{ns}: a new key did not touch the order");
        }
    }

    /// What the module propagates rebuilds its writes exactly: a replica
    /// without the module, fed only the effects (`HSET`, `ZADD`, `HDEL`,
    /// `ZREM`, the answer marker's `SET … PXAT`), ends with the primary's
    /// keys, record for record — after new keys, overwrites, TTLs, maps,
    /// lists, counters, a transaction, a failed request and deletes of big
    /// values.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replica_without_the_module_rebuilds_what_the_module_wrote() {
        // Redis 7.0 waits `repl-diskless-sync-delay` (5 s) for more replicas
        // before the first sync: with it the link came up just inside the
        // wait below, and on a loaded machine just outside (CI).
        let primary = redis_server::start_detached(&[
            "--loadmodule",
            redis_server::module_path(),
            "--repl-diskless-sync-delay",
            "0",
        ]);
        let port = primary.port.to_string();
        let replica = redis_server::start_detached(&["--replicaof", "127.0.0.1", &port]);
        let synced = |p: u16| redis_server::cli(p, &["info", "replication"]);
        for _ in 0..400 {
            if synced(replica.port).contains("master_link_status:up") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(synced(replica.port).contains("master_link_status:up"));

        let url = format!("redis://127.0.0.1:{port}?namespace=repl");
        let s = backend::open(&url, config());
        let app = s.instance("app").unwrap();
        let ttl = SetOptions {
            ttl: Some(Duration::from_secs(600)),
            ..SetOptions::default()
        };
        app.set("a", b"1".to_vec()).await.unwrap();
        app.set_with("t", b"ttl".to_vec(), ttl).await.unwrap();
        app.set("a", b"2".to_vec()).await.unwrap();
        app.increment("n", 5).await.unwrap();
        let fields: Vec<(String, Vec<u8>)> =
            (0..300).map(|i| (format!("f{i}"), b"x".to_vec())).collect();
        for chunk in fields.chunks(100) {
            app.map_set("m", chunk.to_vec()).await.unwrap();
        }
        app.map_delete("m", &["f1", "f2"]).await.unwrap();
        let items: Vec<Vec<u8>> = (0..300).map(|i| format!("i{i}").into_bytes()).collect();
        for chunk in items.chunks(100) {
            app.list_append("l", chunk.to_vec()).await.unwrap();
        }
        app.list_prepend("l", vec![b"first".to_vec()])
            .await
            .unwrap();
        app.list_start_pop("l", 2).await.unwrap();
        app.list_trim("l", 0, 99).await.unwrap();
        let ops = (0..10)
            .map(|i| {
                wasm_state::store::Op::new(
                    format!("tx{i}"),
                    wasm_state::store::OpKind::Set {
                        value: b"v".to_vec(),
                        ttl: None,
                    },
                )
            })
            .collect();
        app.commit(ops).await.unwrap();
        let stale = SetOptions {
            condition: Some(Condition::IfMatch("0000000000000000000000ff".into())),
            ..SetOptions::default()
        };
        assert!(app.set_with("a", b"3".to_vec(), stale).await.is_err());
        assert!(app.delete("m").await.unwrap());
        assert!(app.delete("tx3").await.unwrap());
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .get_connection()
            .unwrap();
        assert!(calls_of(&mut c, "wasmstate.commit") >= 12);
        let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut c).unwrap();
        assert_eq!(acked, 1, "the replica did not catch up");

        // Every key with its type and content (binary-safe), sorted.
        type Dump = Vec<(Vec<u8>, String, Vec<Vec<u8>>)>;
        let dump = |p: u16| -> Dump {
            let mut c = redis::Client::open(format!("redis://127.0.0.1:{p}"))
                .unwrap()
                .get_connection()
                .unwrap();
            let mut keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("repl:*").query(&mut c).unwrap();
            keys.sort();
            keys.into_iter()
                .map(|k| {
                    let kind: String = redis::cmd("TYPE").arg(&k).query(&mut c).unwrap();
                    let q =
                        |cmd: &str, extra: &[&str], c: &mut redis::Connection| -> Vec<Vec<u8>> {
                            redis::cmd(cmd).arg(&k).arg(extra).query(c).unwrap()
                        };
                    let mut body = match kind.as_str() {
                        "hash" => q("HGETALL", &[], &mut c),
                        "zset" => q("ZRANGE", &["0", "-1", "WITHSCORES"], &mut c),
                        "set" => q("SMEMBERS", &[], &mut c),
                        "string" => {
                            let ttl: i64 = redis::cmd("PTTL").arg(&k).query(&mut c).unwrap();
                            assert!(ttl > 0, "{:?} lost its TTL", String::from_utf8_lossy(&k));
                            vec![redis::cmd("GET").arg(&k).query(&mut c).unwrap()]
                        }
                        other => {
                            panic!("{:?}: unexpected type {other}", String::from_utf8_lossy(&k))
                        }
                    };
                    if kind == "hash" {
                        let mut pairs: Vec<Vec<u8>> = body
                            .chunks(2)
                            .map(|p| [&p[0].len().to_be_bytes()[..], &p[0], &p[1]].concat())
                            .collect();
                        pairs.sort();
                        body = pairs;
                    } else if kind == "set" {
                        body.sort();
                    }
                    (k, kind, body)
                })
                .collect()
        };
        let (on_primary, on_replica) = (dump(primary.port), dump(replica.port));
        assert!(on_primary.len() >= 3, "{on_primary:?}");
        assert_eq!(on_primary, on_replica);
        let stats = redis_server::cli(replica.port, &["info", "commandstats"]);
        for cmd in ["hset", "zadd", "hdel", "zrem", "set"] {
            assert!(stats.contains(&format!("cmdstat_{cmd}:")), "{cmd}: {stats}");
        }
        assert!(!stats.contains("cmdstat_wasmstate"));
    }

    /// A connection `WATCH`ing `key`.
    fn watch(client: &redis::Client, key: &str) -> redis::Connection {
        let mut c = client.get_connection().unwrap();
        redis::cmd("WATCH").arg(key).exec(&mut c).unwrap();
        c
    }

    /// Whether a transaction on the watching connection ran (it does not
    /// once a watched key was signalled as modified).
    fn exec_ran(c: &mut redis::Connection) -> bool {
        let ran: Option<(String,)> = redis::pipe().atomic().cmd("PING").query(c).unwrap();
        ran.is_some()
    }
}
