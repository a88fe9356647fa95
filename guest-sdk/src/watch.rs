//! Watching state: a component that implements [`Watcher`] and exports it
//! with [`export_watcher!`](crate::export_watcher) is told about every
//! change of a value in the scopes it watches.
//!
//! The export is the standard `wasi:keyvalue/watcher@0.2.0-draft2`
//! interface (the one Spin has), but a component built with this module
//! also imports `wasm-state:state` (each change's scope and sequence come
//! from there), so it runs on wasm-state only; the host calls it after each
//! commit that changes value keys of its instance scope (by default; the
//! operator can add its sessions and its account: `--watch
//! NAME=instance,sessions,account`):
//!
//! - a set (`set`, `increment`, a transaction's writes) arrives with the
//!   new value, a delete (`delete`, expiry, an ended session) without;
//!   maps and lists are not values and are not reported;
//! - in commit order per queue, after the write is durable, at least once:
//!   [`Change::seq`] lets a watcher skip a change it has already handled;
//! - writes the watcher makes while handling a change are not reported
//!   back to it (an audit log in its own scope does not loop);
//! - each call runs in a fresh instance under the usual deadline and memory
//!   limit; a panic or trap is retried, then the change is skipped.
//!
//! ```no_run
//! use wasm_state_sdk::watch::{Change, Watcher};
//! use wasm_state_sdk::State;
//!
//! struct Audit;
//!
//! impl Watcher for Audit {
//!     fn on_change(change: Change) {
//!         let log = State::account();
//!         let line = match change.bytes() {
//!             Some(v) => format!("set {} = {}", change.key(), String::from_utf8_lossy(v)),
//!             None => format!("deleted {}", change.key()),
//!         };
//!         log.list_append("audit", &[line]).expect("append to the audit log");
//!     }
//! }
//!
//! wasm_state_sdk::export_watcher!(Audit);
//! # fn main() {}
//! ```

use serde::de::DeserializeOwned;

use crate::bindings::state as ws;
use crate::bindings::types as w;
use crate::error::Result;
use crate::state::State;
use crate::types::from_json;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/keyvalue/0.2.0-draft2",
        world: "wasi:keyvalue/watch-service",
        pub_export_macro: true,
        export_macro_name: "__export_watch_service",
        default_bindings_module: "wasm_state_sdk::watch::bindings",
        generate_all,
    });
}

use bindings::exports::wasi::keyvalue::watcher::Guest;
use bindings::wasi::keyvalue::store::Bucket;

/// Where a change happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangedScope {
    /// This instance's scope.
    Instance,
    /// This instance's account scope.
    Account,
    /// A session of this instance, by id (it may have ended since: a
    /// session's end reports its values deleted).
    Session(String),
}

/// One change of a value key.
#[derive(Debug)]
pub struct Change {
    key: String,
    value: Option<Vec<u8>>,
    scope: ChangedScope,
    seq: u64,
    bucket: Bucket,
}

impl Change {
    /// The key that changed.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Was the key deleted (or did it expire)?
    pub fn is_delete(&self) -> bool {
        self.value.is_none()
    }

    /// The new value's bytes; `None` for a delete.
    pub fn bytes(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    /// The new value as JSON of type `T` (as [`State::get`] reads it);
    /// `None` for a delete.
    pub fn value<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        self.value.as_deref().map(from_json).transpose()
    }

    /// The scope of the key.
    pub fn scope(&self) -> &ChangedScope {
        &self.scope
    }

    /// The change's position in its queue (this instance's, which also
    /// holds its sessions' changes, or the account's): increasing in
    /// commit order; a change delivered again has the same seq.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The [`State`] of the scope the change happened in.
    pub fn state(&self) -> Result<State> {
        match &self.scope {
            ChangedScope::Instance => Ok(State::instance()),
            ChangedScope::Account => Ok(State::account()),
            ChangedScope::Session(id) => State::session_id(id),
        }
    }

    /// The same scope as a standard `wasi:keyvalue` bucket, as the host
    /// handed it over.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    fn new(bucket: Bucket, key: String, value: Option<Vec<u8>>) -> Change {
        let (scope, seq) = match ws::current_change() {
            Some(info) => (
                match info.scope {
                    w::ChangedScope::Instance => ChangedScope::Instance,
                    w::ChangedScope::Account => ChangedScope::Account,
                    w::ChangedScope::Session(id) => ChangedScope::Session(id),
                },
                info.seq,
            ),
            // Not wasm-state (another runtime): the bucket is all there is.
            None => (ChangedScope::Instance, 0),
        };
        Change {
            key,
            value,
            scope,
            seq,
            bucket,
        }
    }
}

/// A component's reaction to changes; export it with
/// [`export_watcher!`](crate::export_watcher).
pub trait Watcher {
    /// Called once per change (at least once: see [`Change::seq`]).
    fn on_change(change: Change);
}

#[doc(hidden)]
pub struct Adapter<W>(std::marker::PhantomData<W>);

impl<W: Watcher> Guest for Adapter<W> {
    fn on_set(bucket: Bucket, key: String, value: Vec<u8>) {
        W::on_change(Change::new(bucket, key, Some(value)));
    }

    fn on_delete(bucket: Bucket, key: String) {
        W::on_change(Change::new(bucket, key, None));
    }
}

/// Export a [`Watcher`] as this component's `wasi:keyvalue/watcher`
/// (`@0.2.0-draft2`).
#[macro_export]
macro_rules! export_watcher {
    ($watcher:ty) => {
        type __WasmStateWatcher = $crate::watch::Adapter<$watcher>;
        $crate::watch::bindings::__export_watch_service!(__WasmStateWatcher with_types_in $crate::watch::bindings);
    };
}
