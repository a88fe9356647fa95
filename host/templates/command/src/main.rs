//! {{name}}: a `wasi:cli` command with durable state, run by `wasm-state run`.
//!
//! Each run adds BY (default 1) to the counter `count` in instance state and
//! prints the new count. Instance state outlives every run: it is kept until
//! the instance is destroyed (`wasm-state instances destroy {{name}}`).
//!
//! ```text
//! $ wasm-state run target/wasm32-wasip2/release/{{wasm}}.wasm
//! count: 1
//! $ wasm-state run target/wasm32-wasip2/release/{{wasm}}.wasm -- 10
//! count: 11
//! ```

use std::process::ExitCode;

use wasm_state_sdk::State;

/// This command's name, for messages.
const NAME: &str = "{{name}}";

/// The counter's key in instance state.
const KEY: &str = "count";

const USAGE: &str = "\
usage: {{name}} [BY]
  adds BY (a whole number, default 1) to the counter kept in instance state
  and prints the new count";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let by = match args.as_slice() {
        [] => 1,
        [help] if help == "--help" || help == "-h" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        [by] => match by.parse::<i64>() {
            Ok(by) => by,
            Err(_) => {
                eprintln!("{NAME}: BY must be a whole number, not {by:?}\n\n{USAGE}");
                return ExitCode::FAILURE;
            }
        },
        _ => {
            eprintln!("{NAME}: expected at most one argument, got {args:?}\n\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    match State::instance().increment(KEY, by) {
        Ok(count) => {
            println!("count: {count}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{NAME}: the state operation failed: {e}");
            ExitCode::FAILURE
        }
    }
}
