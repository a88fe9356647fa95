//! # wasm-state host
//!
//! Durable state for WebAssembly guests. This crate holds the state engine
//! ([`store`]): scopes (account / instance / session), values, counters, maps,
//! lists, TTL, etags and atomic transactions with Redis-exact semantics, on an
//! embedded redb file by default. The wasmtime bindings and runtime build on it.
#![deny(missing_docs)]

pub mod admin;
pub mod api;
pub mod bindings;
pub mod http;
pub mod keyvalue;
pub mod metrics;
pub mod runtime;
pub mod server;
pub mod store;
