//! Paths of the guest components built by `build.rs`, for the end-to-end
//! tests and benchmarks: one `pub const NAME: &str` per `.wasm` file.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
