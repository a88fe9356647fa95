//! A plugin component: it exports its own WIT function, `on-event`, for a
//! native host to call (see `examples/plugin-host`), and keeps durable state
//! with the wasm-state SDK.
//!
//! Per event it atomically (one batch):
//! - counts the event's kind in the instance-state map `events`
//!   (VCR `mapIncrement`, Redis HINCRBY);
//! - appends `{"kind", "payload"}` to the list `recent` and trims it to the
//!   last 10 (`listAppend` + `listTrim`).
//!
//! The host can read both from its side, e.g.
//! `host.store().instance("plugin")?.map_get_all("events")`.

use serde::Serialize;
use wasm_state_sdk::State;

wit_bindgen::generate!({
    world: "plugin",
    path: "wit",
});

/// Map of event kind → how many events of that kind arrived.
const COUNTS: &str = "events";
/// List of the most recent events, oldest first.
const RECENT: &str = "recent";
/// How many recent events are kept.
const KEEP: i64 = 10;

/// An event as stored in `recent`.
#[derive(Serialize)]
struct Event<'a> {
    kind: &'a str,
    payload: &'a str,
}

struct Plugin;

impl Guest for Plugin {
    fn on_event(kind: String, payload: String) -> Result<String, String> {
        if kind.trim().is_empty() {
            return Err("the event kind must not be empty (e.g. \"click\")".into());
        }
        let event = Event {
            kind: &kind,
            payload: &payload,
        };
        let results = State::instance()
            .batch()
            .map_increment(COUNTS, &kind, 1)
            .list_append(RECENT, &[event])
            .list_trim(RECENT, -KEEP, -1)
            .commit()
            .map_err(|e| format!("the {kind:?} event was not recorded: {e}"))?;
        let count = results[0].output.as_integer().unwrap_or_default();
        let kept = results[1].output.as_integer().unwrap_or_default().min(KEEP);
        Ok(format!(
            "{kind} #{count} ({} bytes); {kept} recent events kept",
            payload.len()
        ))
    }
}

export!(Plugin);
