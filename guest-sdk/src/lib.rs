//! Durable state for WebAssembly guests: the Rust guest SDK of
//! [wasm-state](https://example.invalid/wasm-state).
//!
//! A component built for `wasm32-wasip2` that depends on this crate imports
//! the `wasm-state:state` interfaces (world `state-guest`); the host
//! (`wasm-state run` / `serve`) provides them. This crate is the only
//! dependency a guest needs for state: the WIT bindings are generated inside
//! it and never appear in its API.
//!
//! The API reads like the State provider of Vonage Cloud Runtime (VCR), in
//! snake_case (`mapSet` → [`map_set`](State::map_set), `listAppend` →
//! [`list_append`](State::list_append)…), with Redis 7 semantics and Dapr-style
//! etags, TTLs and transactions on top.
//!
//! # Scopes
//!
//! A [`State`] is one scope's key space:
//! - [`State::account()`]: shared by every instance of the account;
//! - [`State::instance()`]: private to this instance, deleted with it;
//! - [`State::session(&session)`](State::session): private to this instance,
//!   dies at the [`Session`]'s TTL (default 7 days) or when it is ended.
//!
//! Each key holds a value, a map (Redis hash) or a list. Values, map values
//! and list items are stored as JSON through serde: writes take any
//! `Serialize`, reads return any `DeserializeOwned` (annotate the type). To
//! derive `Serialize`/`Deserialize`, depend on `serde` with its `derive`
//! feature (or use `#[serde(crate = "wasm_state_sdk::serde")]` with the
//! re-export [`serde`]).
//!
//! # Values
//!
//! ```no_run
//! use wasm_state_sdk::{Condition, SetOptions, State};
//! # fn main() -> wasm_state_sdk::Result<()> {
//! let state = State::instance();
//! state.set("test_obj", &serde_json::json!({ "foo": "bar" }))?;
//! let obj: Option<serde_json::Value> = state.get("test_obj")?;
//! let many: Vec<Option<String>> = state.get_many(&["a", "b"])?;
//! state.delete("test_obj")?;
//!
//! // Optimistic concurrency by hand: write only if nobody changed it.
//! if let Some(entry) = state.get_entry::<u32>("config-version")? {
//!     state.set_with("config-version", &(entry.value + 1),
//!         SetOptions::condition(Condition::IfMatch(entry.etag)))?;
//! }
//! # let _ = (obj, many); Ok(()) }
//! ```
//!
//! # Counters and TTL
//!
//! ```no_run
//! use std::time::Duration;
//! use wasm_state_sdk::{ExpireMode, SetOptions, State};
//! # fn main() -> wasm_state_sdk::Result<()> {
//! let state = State::instance();
//! let n = state.increment("visits", 1)?;              // missing counts as 0
//! state.decrement("stock:apple", 3)?;
//! state.set_with("otp:+441234", "123456", SetOptions::ttl(Duration::from_secs(300)))?;
//! state.expire("visits", Duration::from_secs(3600))?;  // whole key, any type
//! state.expire_with("visits", 60, ExpireMode::Lt)?;    // only if it shortens the TTL
//! let left: Option<Duration> = state.ttl("visits")?;   // None = never expires
//! state.persist("visits")?;
//! # let _ = (n, left); Ok(()) }
//! ```
//!
//! # Maps
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use wasm_state_sdk::State;
//! # fn main() -> wasm_state_sdk::Result<()> {
//! #[derive(Serialize, Deserialize)]
//! struct Customer { name: String }
//!
//! let state = State::instance();
//! state.map_set("customers", [("+441234", &Customer { name: "Ada".into() })])?;
//! let ada: Option<Customer> = state.map_get_value("customers", "+441234")?;
//! let some: Vec<Option<Customer>> = state.map_get_multiple("customers", &["+441234", "+1555"])?;
//! let everyone = state.map_get_all::<Customer>("customers")?; // BTreeMap<String, Customer>
//! for entry in state.map_scan::<Customer>("customers", Some("+44*"), 100) {
//!     let (phone, customer) = entry?;
//! #   let _ = (phone, customer);
//! }
//! state.map_delete("customers", &["+1555"])?;
//! # let _ = (ada, some, everyone); Ok(()) }
//! ```
//!
//! # Lists
//!
//! ```no_run
//! use wasm_state_sdk::{Position, State};
//! # fn main() -> wasm_state_sdk::Result<()> {
//! let state = State::instance();
//! state.list_append("jobs", &["resize", "upload"])?;
//! state.list_prepend("jobs", &["urgent"])?;
//! state.list_insert("jobs", Position::Before, "upload", "scan")?;
//! let all: Vec<String> = state.list_range("jobs", 0, -1)?; // urgent resize scan upload
//! let next: Vec<String> = state.list_start_pop("jobs", 1)?;
//! state.list_remove("jobs", "scan", 0)?;                  // remove every "scan"
//! # let _ = (all, next); Ok(()) }
//! ```
//!
//! # Listing keys
//!
//! ```no_run
//! use wasm_state_sdk::{KeyListing, State};
//! # fn main() -> wasm_state_sdk::Result<()> {
//! let state = State::instance();
//! for key in state.keys("user:") {              // follows the cursor page by page
//!     println!("{}", key?);
//! }
//! let newest: Vec<String> = state
//!     .keys(KeyListing::prefix("log:").reverse())
//!     .take(20)
//!     .collect::<Result<_, _>>()?;
//! state.delete_prefix("tmp:")?;
//! # let _ = newest; Ok(()) }
//! ```
//!
//! # Transactions and batches
//!
//! [`State::transaction`] runs a read-modify-write closure with etag checks
//! and retries; [`State::batch`] applies operations atomically as given.
//!
//! ```no_run
//! use wasm_state_sdk::{Condition, State};
//! # fn main() -> wasm_state_sdk::Result<()> {
//! let state = State::instance();
//! let seats_left = state.transaction(|tx| {
//!     let left: i64 = tx.get("seats")?.unwrap_or(100);
//!     tx.set("seats", &(left - 1)).map_set("bookings", [("ada", &1)]);
//!     Ok(left - 1)
//! })?;
//!
//! let results = state
//!     .batch()
//!     .set("welcome", "hi")
//!     .when(Condition::IfAbsent)
//!     .list_append("events", &["welcome set"])
//!     .commit()?;
//! # let _ = (seats_left, results); Ok(()) }
//! ```
//!
//! # Queries
//!
//! ```no_run
//! use wasm_state_sdk::{Filter, Order, Query, State};
//! # fn main() -> wasm_state_sdk::Result<()> {
//! let query = Query::new()
//!     .filter(Filter::is_in("state", ["CA", "WA"]))
//!     .sort("person.id", Order::Asc)
//!     .limit(100);
//! for hit in State::instance().query_iter::<serde_json::Value>(query) {
//!     let hit = hit?;
//!     println!("{} {}", hit.key, hit.value["city"]);
//! }
//! # Ok(()) }
//! ```
//!
//! # Sessions
//!
//! ```no_run
//! use std::time::Duration;
//! use wasm_state_sdk::{Session, State};
//! # fn main() -> wasm_state_sdk::Result<()> {
//! let session = Session::create(Some(Duration::from_secs(3600)))?;
//! let state = State::session(&session)?;
//! state.set("step", &1)?;
//! // On a later call, with the id kept by the client:
//! let session = Session::open(session.id())?;
//! # let _ = session; Ok(()) }
//! ```
//!
//! # Errors
//!
//! Every operation returns [`Result`], with one [`Error`] type whose cases
//! are those of the WIT `error` variant plus JSON, batch/transaction and
//! conflict errors; its messages say what to do.
//!
//! # Building
//!
//! Guests build for `wasm32-wasip2`. The crate also compiles for the host's
//! native target (so a workspace can build and test it), but there the host
//! imports are stubs that panic when called: native code may use the types,
//! not the operations.

#![deny(missing_docs)]

mod batch;
mod bindings;
mod cache;
mod error;
mod host;
mod iter;
mod ops;
mod query;
mod session;
mod state;
#[cfg(test)]
mod test_host;
mod transaction;
mod types;
pub mod watch;

pub use batch::Batch;
pub use error::{Error, Result};
pub use iter::{Keys, MapScan};
pub use query::{Filter, Order, Query, QueryItem, QueryIter, QueryPage};
pub use session::Session;
pub use state::State;
pub use transaction::{DEFAULT_TRANSACTION_ATTEMPTS, Transaction};
pub use types::{
    Condition, Entry, Etag, ExpireMode, KeyInfo, KeyKind, KeyListing, KeyPage, OpOutput, OpResult,
    Position, SetOptions,
};

#[doc(no_inline)]
pub use serde;
#[doc(no_inline)]
pub use serde_json;
