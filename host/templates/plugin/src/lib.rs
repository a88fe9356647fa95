//! {{name}}: a plugin component. It exports its own WIT function, `on-event`
//! (see `wit/plugin.wit`), for a host to call, and keeps durable state with
//! the wasm-state SDK: it counts the events of each kind in the
//! instance-state map `events`.
//!
//! ```text
//! $ wasm-state call target/wasm32-wasip2/release/{{wasm}}.wasm on-event click hello
//! click #1: hello
//! ```

use wasm_state_sdk::State;

wit_bindgen::generate!({
    world: "plugin",
    path: "wit",
});

/// Map of event kind → how many events of that kind arrived.
const COUNTS: &str = "events";

struct Plugin;

impl Guest for Plugin {
    fn on_event(kind: String, payload: String) -> Result<String, String> {
        if kind.trim().is_empty() {
            return Err("the event kind must not be empty (e.g. \"click\")".into());
        }
        let count = State::instance()
            .map_increment(COUNTS, &kind, 1)
            .map_err(|e| format!("the {kind:?} event was not recorded: {e}"))?;
        Ok(format!("{kind} #{count}: {payload}"))
    }
}

export!(Plugin);
