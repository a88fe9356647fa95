//! [`State`]: one scope's key space and every operation on it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::batch::Batch;
use crate::bindings::state as ws;
use crate::bindings::types as w;
use crate::cache::ReadCache;
use crate::error::{Error, Result};
use crate::host::Host;
use crate::iter::{Keys, MapScan};
use crate::query::{self, Query, QueryIter, QueryPage};
use crate::session::Session;
use crate::transaction::{DEFAULT_TRANSACTION_ATTEMPTS, Transaction, run};
use crate::types::{
    Entry, Etag, ExpireMode, KeyInfo, KeyListing, KeyPage, Position, SetOptions, duration_to_secs,
    from_json, to_json,
};

/// Which scope a [`State`] works on (for `Debug`).
enum Scope {
    Account,
    Instance,
    Session(String),
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Account => f.write_str("Account"),
            Scope::Instance => f.write_str("Instance"),
            Scope::Session(id) => f.debug_tuple("Session").field(id).finish(),
        }
    }
}

/// The key space of one scope (account, instance or session) and every
/// operation on it, as VCR's `State` with Redis 7 semantics.
///
/// Each key holds a value, a map or a list. Values, map values and list items
/// are stored as JSON through serde (`get`/`set` and friends take any
/// `Serialize` and return any `DeserializeOwned`); [`get_bytes`](State::get_bytes)
/// and [`set_bytes`](State::set_bytes) read and write raw bytes. Counters are
/// stored as decimal text, so `get::<i64>` reads them.
///
/// Every call is one atomic host call (except [`delete_prefix`](State::delete_prefix)
/// and the paging iterators), and a failed call changes nothing. Calls block
/// until the host answers. An instance or account `State` keeps what
/// [`get`](State::get) read: a repeated read is answered after one cheap
/// host call as long as nothing was committed to the store since, with the
/// same result a new read would give (see [`get_bytes`](State::get_bytes)).
///
/// Dropping a `State` changes nothing stored; opening one is cheap.
pub struct State {
    bucket: ws::Bucket,
    scope: Scope,
    /// Values kept from `get`s of an instance or account key (none for a
    /// session: see `cache`). A `Mutex`, not a `RefCell`, so that a `State`
    /// stays `Sync` (a guest may keep one in a `static`); single-threaded
    /// guests never wait on it.
    cache: Option<Mutex<ReadCache>>,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State").field("scope", &self.scope).finish()
    }
}

/// Owned copies of a slice of keys, as the WIT calls take them.
fn owned<K: AsRef<str>>(keys: &[K]) -> Vec<String> {
    keys.iter().map(|k| k.as_ref().to_owned()).collect()
}

fn from_json_opt<T: DeserializeOwned>(bytes: Option<Vec<u8>>) -> Result<Option<T>> {
    bytes.map(|b| from_json(&b)).transpose()
}

fn from_json_all<T: DeserializeOwned>(items: Vec<Vec<u8>>) -> Result<Vec<T>> {
    items.iter().map(|b| from_json(b)).collect()
}

fn to_json_all<T: Serialize>(values: &[T]) -> Result<Vec<Vec<u8>>> {
    values.iter().map(to_json).collect()
}

fn secs_i64(d: Duration) -> i64 {
    i64::try_from(duration_to_secs(d)).unwrap_or(i64::MAX)
}

impl State {
    // ---- scopes ----

    /// The account scope: shared by every instance of this instance's
    /// account, kept until an operator deletes it. If the host does not
    /// allow this instance account state, every call fails with
    /// [`Error::AccessDenied`].
    pub fn account() -> State {
        State {
            bucket: ws::account(),
            scope: Scope::Account,
            cache: Some(Mutex::default()),
        }
    }

    /// This instance's own scope: private to it, deleted (with all its
    /// sessions) when the instance is destroyed.
    pub fn instance() -> State {
        State {
            bucket: ws::instance(),
            scope: Scope::Instance,
            cache: Some(Mutex::default()),
        }
    }

    /// The scope of `session`: private to this instance, deleted when the
    /// session expires or is ended (calls then fail with
    /// [`Error::NoSuchSession`]).
    ///
    /// Fails with [`Error::NoSuchSession`] if the session is no longer live.
    pub fn session(session: &Session) -> Result<State> {
        State::session_id(session.id())
    }

    /// The scope of the session with this id.
    pub(crate) fn session_id(id: &str) -> Result<State> {
        Ok(State {
            bucket: ws::session(id)?,
            scope: Scope::Session(id.to_owned()),
            cache: None,
        })
    }

    fn host(&self) -> &dyn Host {
        &self.bucket
    }

    // ---- values ----

    /// Reads the value at `key` as JSON of type `T`; `None` if the key does
    /// not exist (or expired).
    ///
    /// Fails with [`Error::WrongType`] if `key` holds a map or a list, and
    /// [`Error::Json`] if the stored bytes are not JSON of type `T`.
    ///
    /// ```no_run
    /// # fn main() -> wasm_state_sdk::Result<()> {
    /// let state = wasm_state_sdk::State::instance();
    /// state.set("greeting", "hello")?;
    /// let greeting: Option<String> = state.get("greeting")?;
    /// # let _ = greeting; Ok(()) }
    /// ```
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        from_json_opt(self.get_bytes(key)?)
    }

    /// Reads the raw bytes at `key` (no JSON decoding).
    ///
    /// An instance or account `State` keeps what it read: reading the same
    /// key again costs one cheap host call as long as nothing was committed
    /// to the store since (by anyone) and the key has not expired — and
    /// returns exactly what a new read would.
    pub fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match &self.cache {
            // A panic inside a read leaves nothing half-kept: the cache
            // holds whole entries only.
            Some(cache) => Ok(cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&self.bucket, key)?),
            None => Ok(self.bucket.get(key)?),
        }
    }

    /// Reads the value at `key` with its etag and remaining TTL, for
    /// read-modify-write with [`Condition::IfMatch`](crate::Condition::IfMatch).
    /// `None` if the key does not exist; [`Error::WrongType`] for a map or a
    /// list (use [`info`](State::info)).
    pub fn get_entry<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Entry<T>>> {
        match self.bucket.get_entry(key)? {
            None => Ok(None),
            Some(e) => Ok(Some(Entry {
                value: from_json(&e.value)?,
                etag: Etag::from(e.etag),
                ttl: e.ttl_ms.map(Duration::from_millis),
            })),
        }
    }

    /// Reads several values atomically (Redis MGET): one item per key, in
    /// order, `None` for a missing key or one holding a map or a list. At
    /// most 128 keys by default ([`Error::TooManyOperations`]).
    pub fn get_many<T: DeserializeOwned, K: AsRef<str>>(
        &self,
        keys: &[K],
    ) -> Result<Vec<Option<T>>> {
        self.bucket
            .get_many(&owned(keys))?
            .into_iter()
            .map(from_json_opt)
            .collect()
    }

    /// Stores `value` as JSON at `key`, replacing whatever the key held and
    /// clearing its TTL (Redis SET). Returns the key's new etag.
    pub fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<Etag> {
        self.set_with(key, value, SetOptions::default())
    }

    /// [`set`](State::set) with a TTL and/or a condition.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use wasm_state_sdk::{Condition, SetOptions, State};
    /// # fn main() -> wasm_state_sdk::Result<()> {
    /// let state = State::instance();
    /// // First writer wins; the lock frees itself after 30 s.
    /// let got_lock = state
    ///     .set_with("lock", "worker-1", SetOptions {
    ///         ttl: Some(Duration::from_secs(30)),
    ///         condition: Some(Condition::IfAbsent),
    ///     })
    ///     .is_ok();
    /// # let _ = got_lock; Ok(()) }
    /// ```
    pub fn set_with<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        options: SetOptions,
    ) -> Result<Etag> {
        self.set_bytes_with(key, &to_json(value)?, options)
    }

    /// Stores raw bytes at `key` (no JSON encoding); see [`set`](State::set).
    pub fn set_bytes(&self, key: &str, value: &[u8]) -> Result<Etag> {
        self.set_bytes_with(key, value, SetOptions::default())
    }

    /// Stores raw bytes at `key` with options; see [`set_with`](State::set_with).
    pub fn set_bytes_with(&self, key: &str, value: &[u8], options: SetOptions) -> Result<Etag> {
        Ok(Etag::from(self.bucket.set(
            key,
            value,
            &options.to_wit(),
        )?))
    }

    /// Stores several values atomically, all or nothing (Redis MSET); each
    /// key becomes a value without TTL. If a key repeats the last pair wins.
    /// At most 128 pairs by default. Use [`batch`](State::batch) for
    /// conditions, TTLs or etags.
    pub fn set_many<'v, K, V>(&self, items: impl IntoIterator<Item = (K, &'v V)>) -> Result<()>
    where
        K: Into<String>,
        V: Serialize + ?Sized + 'v,
    {
        let items = items
            .into_iter()
            .map(|(k, v)| Ok((k.into(), to_json(v)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(self.bucket.set_many(&items)?)
    }

    /// Deletes `key` whatever its type. Returns whether it existed.
    pub fn delete(&self, key: &str) -> Result<bool> {
        Ok(self.bucket.delete(key)?)
    }

    /// Deletes several keys atomically. Returns how many existed (a repeated
    /// key counts once). At most 128 keys by default.
    pub fn delete_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<u32> {
        Ok(self.bucket.delete_many(&owned(keys))?)
    }

    /// Whether `key` exists (and has not expired), whatever its type.
    pub fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.bucket.exists(key)?)
    }

    /// Type, etag and remaining TTL of `key`, whatever its type; `None` if
    /// it does not exist.
    pub fn info(&self, key: &str) -> Result<Option<KeyInfo>> {
        Ok(self.bucket.info(key)?.map(KeyInfo::from))
    }

    /// Adds `delta` to the counter at `key` (Redis INCRBY; a missing key
    /// counts as 0) and returns the new value. The key keeps its TTL.
    ///
    /// Fails with [`Error::NotAnInteger`] if the stored value is not an
    /// integer, [`Error::Overflow`] beyond the `i64` range.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// # fn main() -> wasm_state_sdk::Result<()> {
    /// let state = wasm_state_sdk::State::instance();
    /// let hits = state.increment("hits:/home", 1)?;
    /// if hits == 1 {
    ///     state.expire("hits:/home", Duration::from_secs(60))?; // a per-minute window
    /// }
    /// let left = state.ttl("hits:/home")?;                      // Some(≤ 60 s)
    /// let count: Option<i64> = state.get("hits:/home")?;         // counters are JSON integers
    /// # let _ = (left, count); Ok(()) }
    /// ```
    pub fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        Ok(self.bucket.increment(key, delta)?)
    }

    /// Subtracts `delta` from the counter at `key` and returns the new value;
    /// see [`increment`](State::increment).
    pub fn decrement(&self, key: &str, delta: i64) -> Result<i64> {
        self.increment(key, delta.checked_neg().ok_or(Error::Overflow)?)
    }

    /// Makes `key` (of any type) expire after `ttl`, rounded up to whole
    /// seconds (Redis EXPIRE); a zero `ttl` deletes it at once. Returns
    /// whether the key existed.
    pub fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        self.expire_with(key, secs_i64(ttl), ExpireMode::Always)
    }

    /// Sets the TTL of `key` to `seconds` from now if `mode` allows
    /// ([`ExpireMode`]: NX, XX, GT, LT); `seconds` ≤ 0 deletes the key.
    /// Returns whether the TTL was applied (or the key deleted).
    pub fn expire_with(&self, key: &str, seconds: i64, mode: ExpireMode) -> Result<bool> {
        Ok(self.bucket.expire(key, seconds, mode.to_wit())?)
    }

    /// Removes the TTL of `key` (Redis PERSIST). Returns whether it had one.
    pub fn persist(&self, key: &str) -> Result<bool> {
        Ok(self.bucket.persist(key)?)
    }

    /// Remaining time to live of `key` (whole milliseconds, rounded down),
    /// `None` if it never expires. Fails with [`Error::NotFound`] if `key`
    /// does not exist.
    pub fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        Ok(self.bucket.ttl(key)?.map(Duration::from_millis))
    }

    /// Iterates over the keys selected by `listing` (a [`KeyListing`], or a
    /// `&str` / `String` prefix), in byte order, fetching a page per host
    /// call as the iteration goes.
    ///
    /// ```no_run
    /// use wasm_state_sdk::{KeyListing, State};
    /// # fn main() -> wasm_state_sdk::Result<()> {
    /// let state = State::instance();
    /// for key in state.keys("user:") {
    ///     println!("{}", key?);
    /// }
    /// // The 10 greatest keys in ["a", "m"), newest-first style.
    /// let last: Vec<String> = state
    ///     .keys(KeyListing::range("a", "m").reverse())
    ///     .take(10)
    ///     .collect::<Result<_, _>>()?;
    /// let removed = state.delete_prefix("tmp:")?;
    /// # let _ = (last, removed); Ok(()) }
    /// ```
    pub fn keys(&self, listing: impl Into<KeyListing>) -> Keys<'_> {
        Keys::new(self.host(), listing.into().to_wit())
    }

    /// One page of a listing, for paging by hand (for example across
    /// requests): pass the returned [`KeyPage::cursor`] back in
    /// [`KeyListing::cursor`] with the other fields unchanged.
    pub fn keys_page(&self, listing: &KeyListing) -> Result<KeyPage> {
        Ok(self.bucket.keys(&listing.to_wit())?.into())
    }

    /// Deletes every key whose name starts with `prefix` (non-empty) and
    /// returns how many. Not atomic as a whole: it may run in several
    /// atomic steps.
    pub fn delete_prefix(&self, prefix: &str) -> Result<u32> {
        Ok(self.bucket.delete_prefix(prefix)?)
    }

    // ---- queries ----

    /// One page of a query over this scope's values that are JSON objects
    /// (Dapr's state query language; see [`Query`] for the builder and the
    /// rules), each value deserialized as `T`. Pass the page's
    /// [`token`](QueryPage::token) to [`Query::token`] for the next page.
    /// A malformed query fails with [`Error::InvalidArgument`] saying what
    /// is wrong. A value on the page that does not deserialize as `T` fails
    /// the page ([`Error::Json`]); [`query_iter`](State::query_iter) yields
    /// it as that result's error and goes on, and a query for
    /// `serde_json::Value` takes every value.
    pub fn query<T: DeserializeOwned>(&self, query: &Query) -> Result<QueryPage<T>> {
        query::run(&self.bucket, query)
    }

    /// Every result of `query`, following the page tokens one host call at a
    /// time.
    pub fn query_iter<T: DeserializeOwned>(&self, query: Query) -> QueryIter<'_, T> {
        QueryIter::new(&self.bucket, query)
    }

    // ---- maps ----

    /// Sets fields of the map at `map` (Redis HSET), each value as JSON,
    /// creating the map if needed. Returns how many fields were added (not
    /// counting overwritten ones). At least one entry.
    ///
    /// ```no_run
    /// use serde::{Deserialize, Serialize};
    /// # fn main() -> wasm_state_sdk::Result<()> {
    /// #[derive(Serialize, Deserialize)]
    /// struct Customer { name: String }
    ///
    /// let state = wasm_state_sdk::State::instance();
    /// let ada = Customer { name: "Ada".into() };
    /// state.map_set("customers", [("+441234", &ada)])?;
    /// let found: Option<Customer> = state.map_get_value("customers", "+441234")?;
    /// let all = state.map_get_all::<Customer>("customers")?;     // BTreeMap, by field
    /// for entry in state.map_scan::<Customer>("customers", Some("+44*"), 100) {
    ///     let (phone, customer) = entry?;
    /// #   let _ = (phone, customer);
    /// }
    /// state.map_increment("calls", "+441234", 1)?;
    /// # let _ = (found, all); Ok(()) }
    /// ```
    pub fn map_set<'v, K, V>(
        &self,
        map: &str,
        entries: impl IntoIterator<Item = (K, &'v V)>,
    ) -> Result<u64>
    where
        K: Into<String>,
        V: Serialize + ?Sized + 'v,
    {
        let entries = entries
            .into_iter()
            .map(|(field, value)| {
                Ok(w::MapEntry {
                    field: field.into(),
                    value: to_json(value)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(u64::from(self.bucket.map_set(map, &entries)?))
    }

    /// One field of the map at `map` (Redis HGET); `None` if the map or the
    /// field does not exist.
    pub fn map_get_value<T: DeserializeOwned>(&self, map: &str, field: &str) -> Result<Option<T>> {
        from_json_opt(self.bucket.map_get(map, field)?)
    }

    /// Several fields of the map at `map` (Redis HMGET): one item per field,
    /// in order, `None` where missing.
    pub fn map_get_multiple<T: DeserializeOwned, F: AsRef<str>>(
        &self,
        map: &str,
        fields: &[F],
    ) -> Result<Vec<Option<T>>> {
        self.bucket
            .map_get_many(map, &owned(fields))?
            .into_iter()
            .map(from_json_opt)
            .collect()
    }

    /// All values of the map at `map` (Redis HVALS), in field order; empty
    /// if there is no map.
    pub fn map_get_values<T: DeserializeOwned>(&self, map: &str) -> Result<Vec<T>> {
        from_json_all(self.bucket.map_values(map)?)
    }

    /// All fields and values of the map at `map` (Redis HGETALL); empty if
    /// there is no map. Use [`map_scan`](State::map_scan) for large maps.
    pub fn map_get_all<T: DeserializeOwned>(&self, map: &str) -> Result<BTreeMap<String, T>> {
        self.bucket
            .map_get_all(map)?
            .into_iter()
            .map(|e| Ok((e.field, from_json(&e.value)?)))
            .collect()
    }

    /// All field names of the map at `map` (Redis HKEYS), in byte order.
    pub fn map_keys(&self, map: &str) -> Result<Vec<String>> {
        Ok(self.bucket.map_keys(map)?)
    }

    /// Removes `fields` from the map at `map` (Redis HDEL; the map is deleted
    /// when it becomes empty). Returns how many existed.
    pub fn map_delete<F: AsRef<str>>(&self, map: &str, fields: &[F]) -> Result<u64> {
        Ok(u64::from(self.bucket.map_delete(map, &owned(fields))?))
    }

    /// Whether `field` exists in the map at `map` (Redis HEXISTS).
    pub fn map_exists(&self, map: &str, field: &str) -> Result<bool> {
        Ok(self.bucket.map_exists(map, field)?)
    }

    /// Number of fields of the map at `map` (Redis HLEN); 0 if no map.
    pub fn map_length(&self, map: &str) -> Result<u64> {
        Ok(self.bucket.map_length(map)?)
    }

    /// Adds `delta` to the counter in `field` of the map at `map` (Redis
    /// HINCRBY; missing map or field = 0) and returns the new value.
    pub fn map_increment(&self, map: &str, field: &str, delta: i64) -> Result<i64> {
        Ok(self.bucket.map_increment(map, field, delta)?)
    }

    /// Iterates over the map at `map` (Redis HSCAN), in field order,
    /// examining up to `count` fields per host call (1..=1000) and yielding
    /// those matching the glob `pattern` (`*`, `?`, `[abc]`, `\` escapes;
    /// `None` = all). Fields present for the whole scan appear exactly once.
    pub fn map_scan<T: DeserializeOwned>(
        &self,
        map: &str,
        pattern: Option<&str>,
        count: u32,
    ) -> MapScan<'_, T> {
        MapScan::new(self.host(), map, pattern, count)
    }

    // ---- lists ----

    /// Appends `values` (each as JSON) at the tail of the list at `list`
    /// (Redis RPUSH), creating it if needed. Returns the new length. At least
    /// one value.
    ///
    /// ```no_run
    /// use wasm_state_sdk::{Position, State};
    /// # fn main() -> wasm_state_sdk::Result<()> {
    /// let state = State::instance();
    /// state.list_append("queue", &["b", "c"])?;
    /// state.list_prepend("queue", &["a"])?;                     // a b c
    /// state.list_insert("queue", Position::After, "b", "b2")?;  // a b b2 c
    /// let all: Vec<String> = state.list_range("queue", 0, -1)?;
    /// let next: Vec<String> = state.list_start_pop("queue", 1)?; // ["a"]
    /// let last: Option<String> = state.list_index("queue", -1)?; // Some("c")
    /// state.list_trim("queue", 0, 99)?;                         // keep at most 100
    /// # let _ = (all, next, last); Ok(()) }
    /// ```
    pub fn list_append<T: Serialize>(&self, list: &str, values: &[T]) -> Result<u64> {
        Ok(self.bucket.list_append(list, &to_json_all(values)?)?)
    }

    /// Inserts `values` (each as JSON) at the head of the list at `list` one
    /// by one (Redis LPUSH), so the last given ends up first. Returns the new
    /// length.
    pub fn list_prepend<T: Serialize>(&self, list: &str, values: &[T]) -> Result<u64> {
        Ok(self.bucket.list_prepend(list, &to_json_all(values)?)?)
    }

    /// Removes and returns up to `count` items from the head (Redis LPOP),
    /// in list order; empty if there is no list.
    pub fn list_start_pop<T: DeserializeOwned>(&self, list: &str, count: u32) -> Result<Vec<T>> {
        from_json_all(self.bucket.list_start_pop(list, count)?)
    }

    /// Removes and returns up to `count` items from the tail (Redis RPOP),
    /// last item first.
    pub fn list_end_pop<T: DeserializeOwned>(&self, list: &str, count: u32) -> Result<Vec<T>> {
        from_json_all(self.bucket.list_end_pop(list, count)?)
    }

    /// Removes items whose JSON equals `value`'s (Redis LREM): `count` > 0
    /// up to that many from the head, < 0 from the tail, 0 all. Returns how
    /// many were removed.
    ///
    /// Matching compares the stored bytes, so it finds items written from
    /// the same JSON (values whose serialization is deterministic: no
    /// `HashMap`).
    pub fn list_remove<T: Serialize + ?Sized>(
        &self,
        list: &str,
        value: &T,
        count: i64,
    ) -> Result<u64> {
        Ok(self.bucket.list_remove(list, &to_json(value)?, count)?)
    }

    /// Number of items of the list at `list` (Redis LLEN); 0 if no list.
    pub fn list_length(&self, list: &str) -> Result<u64> {
        Ok(self.bucket.list_length(list)?)
    }

    /// Items `start..=stop` of the list at `list` (Redis LRANGE): negative
    /// indices count from the tail (-1 = last), out-of-range ones are
    /// clamped; `0, -1` is the whole list.
    pub fn list_range<T: DeserializeOwned>(
        &self,
        list: &str,
        start: i64,
        stop: i64,
    ) -> Result<Vec<T>> {
        from_json_all(self.bucket.list_range(list, start, stop)?)
    }

    /// Keeps only items `start..=stop` of the list (Redis LTRIM; same
    /// indices as [`list_range`](State::list_range)); an empty range deletes
    /// the list.
    pub fn list_trim(&self, list: &str, start: i64, stop: i64) -> Result<()> {
        Ok(self.bucket.list_trim(list, start, stop)?)
    }

    /// Inserts `value` before or after the first item whose JSON equals
    /// `pivot`'s (Redis LINSERT). Returns the new length, -1 if the pivot
    /// was not found, 0 if there is no list.
    pub fn list_insert<P, V>(
        &self,
        list: &str,
        position: Position,
        pivot: &P,
        value: &V,
    ) -> Result<i64>
    where
        P: Serialize + ?Sized,
        V: Serialize + ?Sized,
    {
        Ok(self.bucket.list_insert(
            list,
            position == Position::Before,
            &to_json(pivot)?,
            &to_json(value)?,
        )?)
    }

    /// The item at `index` of the list (Redis LINDEX; negative counts from
    /// the tail); `None` if out of range or no list.
    pub fn list_index<T: DeserializeOwned>(&self, list: &str, index: i64) -> Result<Option<T>> {
        from_json_opt(self.bucket.list_index(list, index)?)
    }

    /// Replaces the item at `index` (Redis LSET). Fails with
    /// [`Error::NotFound`] if there is no list, [`Error::IndexOutOfRange`]
    /// outside it.
    pub fn list_set<T: Serialize + ?Sized>(&self, list: &str, index: i64, value: &T) -> Result<()> {
        Ok(self.bucket.list_set(list, index, &to_json(value)?)?)
    }

    // ---- batches and transactions ----

    /// Starts an explicit atomic batch of operations on this scope; see
    /// [`Batch`].
    pub fn batch(&self) -> Batch<'_> {
        Batch::new(self.host())
    }

    /// Runs `f` as a read-modify-write transaction and returns its result.
    ///
    /// `f` reads through the [`Transaction`] (each read records the key's
    /// etag) and queues writes; then one atomic commit applies the writes
    /// only if no key it read has changed (checks with `if-match`, or
    /// `if-absent` for keys it found missing). If one has, `f` runs again on
    /// fresh data, up to 8 attempts in all, then the call fails with
    /// [`Error::Conflict`]. If `f` returns `Err`, nothing is written and the
    /// error is returned (after making sure it was not caused by a
    /// concurrent change, else `f` runs again). A queued write that fails
    /// gives [`Error::Transaction`] with its index among the queued writes.
    /// The commit holds one check per key read and then the writes: all
    /// of them count against the host's operation limit (128 by default;
    /// past it [`Error::TooManyOperations`]), so a transaction that reads
    /// 100 keys can queue at most 28 writes.
    ///
    /// ```no_run
    /// use wasm_state_sdk::{Error, State};
    /// # fn main() -> wasm_state_sdk::Result<()> {
    /// let state = State::instance();
    /// // Move 10 from one balance to another, atomically.
    /// let left = state.transaction(|tx| {
    ///     let from: i64 = tx.get("balance:alice")?.unwrap_or(0);
    ///     let to: i64 = tx.get("balance:bob")?.unwrap_or(0);
    ///     if from < 10 {
    ///         return Err(Error::InvalidArgument("alice cannot pay 10".into()));
    ///     }
    ///     tx.set("balance:alice", &(from - 10))
    ///         .set("balance:bob", &(to + 10))
    ///         .list_append("ledger", &["alice->bob 10"]);
    ///     Ok(from - 10)
    /// })?;
    /// # let _ = left; Ok(()) }
    /// ```
    pub fn transaction<R>(&self, f: impl FnMut(&mut Transaction<'_>) -> Result<R>) -> Result<R> {
        run(self.host(), DEFAULT_TRANSACTION_ATTEMPTS, f)
    }

    /// [`transaction`](State::transaction) with at most `max_attempts` runs
    /// of `f` (at least 1) before [`Error::Conflict`].
    pub fn transaction_with_retries<R>(
        &self,
        max_attempts: u32,
        f: impl FnMut(&mut Transaction<'_>) -> Result<R>,
    ) -> Result<R> {
        run(self.host(), max_attempts, f)
    }
}
