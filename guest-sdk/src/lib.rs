//! Guest SDK for wasm-state. The bindings arrive with issue #3; this crate reserves the name and layout.
