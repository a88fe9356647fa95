//! The conformance suite on the Redis engine with wasm-state's Redis module
//! loaded (`redis-module/`): every commit runs natively in Redis (the kv
//! engine's Rust ops over the owner's records), everything else through the
//! Lua library and `HMGET`. A real `redis-server` on loopback, a fresh key
//! namespace per test; plus checks that commits really take the module and
//! that a retry finds the first answer whichever of module and library
//! gave it.

mod support {
    pub mod redis_server;
}

mod backend {
    use std::sync::Arc;

    use wasm_state::store::redis::RedisEngine;
    use wasm_state::store::{Store, StoreConfig};

    use crate::support::redis_server;

    /// Other hosts write to the same Redis without telling this one: no
    /// read stamps.
    pub const VOUCHES: bool = false;

    /// The namespace of a store (reopening uses the same).
    pub struct Guard(String);

    pub fn open(url: &str, config: StoreConfig) -> Store {
        let engine = RedisEngine::lazy(url, config.clock.clone(), Arc::new(config.limits.clone()))
            .expect("redis engine");
        Store::with_engine(Box::new(engine), config)
    }

    /// A fresh store: a new namespace on the shared server (module loaded).
    pub fn fresh(config: StoreConfig) -> (Store, Guard) {
        let url = redis_server::shared_with_module().url();
        (open(&url, config), Guard(url))
    }

    /// An etag of this engine's shape (8 hex digits of owner nonce, 16 of a
    /// per-owner version) far above `real`, of the same owner: never issued.
    pub fn never_issued(real: &str) -> String {
        let (nonce, version) = real.split_at(8);
        let version = u64::from_str_radix(version, 16).expect("redis etags end in 16 hex digits");
        format!("{nonce}{:016x}", version + 1_000_000)
    }

    /// The same namespace again (the old store has been dropped).
    pub fn reopen(guard: Guard, config: StoreConfig) -> (Store, Guard) {
        (open(&guard.0, config), guard)
    }
}

mod conformance;

mod module {
    use std::sync::Arc;

    use redis::Value;
    use wasm_state::store::redis::keys::Owner;
    use wasm_state::store::{Store, StoreConfig, SystemClock};

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

    /// A store on namespace `ns` of the shared server, using the module or not.
    fn store_in(ns: &str, module: bool) -> Store {
        let port = redis_server::shared_with_module().port;
        let module = if module { "auto" } else { "off" };
        let url = format!("redis://127.0.0.1:{port}?namespace={ns}&module={module}");
        let config = StoreConfig {
            clock: Arc::new(SystemClock),
            sweep_interval: None,
            ..StoreConfig::default()
        };
        backend::open(&url, config)
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

    /// One commit of `incr n by 5` on instance `app` with marker `marker`,
    /// through the library's function or the module, as attempt `attempt`.
    fn incr(
        c: &mut redis::Connection,
        ns: &str,
        via: Option<&str>,
        attempt: &str,
        marker: &str,
    ) -> Value {
        let owner = Owner::instance(ns, "app");
        let now = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64)
            .to_be_bytes();
        let args: Vec<&[u8]> = vec![
            attempt.as_bytes(),
            b"commit",
            b"i",
            b"app",
            b"",
            &now,
            b"abcd1234",
            b"1000000",
            b"1000000",
            b"100",
            b"100",
            b"",
            b"1",
            b"n",
            b"incr",
            b"",
            b"",
            b"1",
            b"5",
        ];
        let mut cmd = match via {
            Some(function) => {
                let mut c = redis::cmd("FCALL");
                c.arg(function).arg(3);
                c
            }
            None => redis::cmd("wasmstate.commit"),
        };
        cmd.arg(&owner.hash).arg(&owner.zset).arg(marker);
        for a in args {
            cmd.arg(a);
        }
        cmd.query(c).unwrap()
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
    }
}
