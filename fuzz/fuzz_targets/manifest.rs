//! The `wasm-state.toml` parser of the CLI, included from its source file
//! (the binary's modules cannot be imported): any text parses or is an
//! error, never a panic.

#![no_main]

#[allow(dead_code)]
#[path = "../../host/src/bin/wasm-state/manifest.rs"]
mod manifest;

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = manifest::Manifest::parse(text, Path::new("dir/wasm-state.toml")) {
        // Paths resolve against the file's directory.
        for app in &m.apps {
            let _ = m.resolve(&app.component);
        }
        if let Some(d) = &m.store.data {
            let _ = m.resolve(d);
        }
    }
});
