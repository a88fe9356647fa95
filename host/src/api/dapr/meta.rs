//! `GET /v1.0/metadata`: the app id and the state stores with their
//! capabilities, in Dapr's shape (the SDKs read it before anything else).

use serde_json::json;

use super::DaprApi;

/// The version reported as the runtime's.
const VERSION: &str = concat!("wasm-state/", env!("CARGO_PKG_VERSION"));

/// What every store here can do, in Dapr's capability names (no `ACTOR`:
/// the actors API is not served).
pub const CAPABILITIES: [&str; 4] = ["ETAG", "TRANSACTIONAL", "TTL", "QUERY_API"];

/// The metadata document.
pub fn metadata(api: &DaprApi) -> serde_json::Value {
    let components: Vec<_> = api
        .stores
        .iter()
        .map(|s| {
            json!({
                "name": s.spec.name,
                "type": s.spec.kind.type_name(),
                "version": "v1",
                "capabilities": CAPABILITIES,
            })
        })
        .collect();
    json!({
        "id": api.options.app_id.clone().unwrap_or_default(),
        "runtimeVersion": VERSION,
        "components": components,
        "extended": {
            "daprRuntimeVersion": VERSION,
            "server": "wasm-state",
            "uptimeSeconds": api.started.elapsed().as_secs().to_string(),
        },
        "appConnectionProperties": {},
        "actorRuntime": {"runtimeStatus": "DISABLED", "hostReady": false, "placement": ""},
    })
}
