//! Benchmark guest (a library component): loops state operations inside one
//! call so the host can time guest→host calls against native store calls.

use wasm_state_sdk::State;

wit_bindgen::generate!({
    world: "bench",
    path: "wit",
});

struct Bench;

impl Guest for Bench {
    fn get_hot(n: u32) -> u32 {
        let state = State::instance();
        let mut found = 0;
        for _ in 0..n {
            if state.get_bytes("hot").expect("get hot").is_some() {
                found += 1;
            }
        }
        found
    }

    fn get_hot_entry(n: u32) -> u32 {
        let state = State::instance();
        let mut found = 0;
        for _ in 0..n {
            if state.get_entry::<String>("hot").expect("get hot").is_some() {
                found += 1;
            }
        }
        found
    }

    fn set_n(n: u32) -> u32 {
        let state = State::instance();
        for i in 0..n {
            state
                .set_bytes("k", i.to_string().as_bytes())
                .expect("set k");
        }
        n
    }

    fn noop() -> u32 {
        0
    }
}

export!(Bench);
