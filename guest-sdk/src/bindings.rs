//! The wit-bindgen bindings of world `state-guest`. Private: nothing of
//! wit-bindgen appears in the crate's public API.
//!
//! On `wasm32` the imports link against the host's `wasm-state:state`
//! functions. On any other target wit-bindgen generates stubs that panic
//! (`unreachable!`) when called, so a native build links but must never call
//! the host (the crate's native tests only exercise pure code and a fake host).

wit_bindgen::generate!({
    world: "state-guest",
    path: "../wit",
});

pub(crate) use wasm_state::state::sessions;
pub(crate) use wasm_state::state::state;
pub(crate) use wasm_state::state::types;
