//! Session state with a TTL, as a command component.
//!
//! The first run creates a session (60 s by default, `--ttl SECS` to
//! choose), counts 1 in its state and prints the session id. Later runs
//! started with that id (`wasm-state run counter.wasm --session ID`) count
//! on in the same session. When the session expires (or is ended with
//! `wasm-state sessions end`) it and its counter are gone: the host then
//! refuses the id as no such session, and a run without `--session` starts
//! over at 1.
//!
//! ```text
//! $ wasm-state run counter.wasm -- --ttl 120
//! count: 1
//! session: 3q2-7wAbCdEfGhIjKlMnOp
//! $ wasm-state run counter.wasm --session 3q2-7wAbCdEfGhIjKlMnOp
//! count: 2
//! session: 3q2-7wAbCdEfGhIjKlMnOp
//! ```
//!
//! With a session, `--ttl SECS` extends it to SECS from now. Any failure
//! exits with code 1 (WASI 0.2 commands exit with success or failure only)
//! and says why on stderr.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use wasm_state_sdk::{Error, Session, State};

/// TTL of a new session when `--ttl` is not given.
const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// The counter's key in session state.
const KEY: &str = "count";

const USAGE: &str = "\
usage: counter [--ttl SECS]
  without a session: starts a session living SECS seconds (default 60) and counts 1
  with a session (wasm-state run counter.wasm --session ID): counts on in it;
  --ttl then extends the session to SECS seconds from now";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [help] = args.as_slice()
        && (help == "--help" || help == "-h")
    {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let ttl = match parse_ttl(&args) {
        Ok(ttl) => ttl,
        Err(why) => {
            eprintln!("counter: {why}\n\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    match count(ttl) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::NoSuchSession) => {
            eprintln!(
                "counter: session {:?} has expired or was ended, and its count with it; \
                 run without --session to start a new one",
                std::env::var(Session::ENV_VAR).unwrap_or_default()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("counter: the state operation failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--ttl SECS` (or `--ttl=SECS`), if given.
fn parse_ttl(args: &[String]) -> Result<Option<Duration>, String> {
    let value = match args {
        [] => return Ok(None),
        [flag, v] if flag == "--ttl" => v.as_str(),
        [flag] if flag == "--ttl" => return Err("--ttl needs a number of seconds".into()),
        [flag] => match flag.strip_prefix("--ttl=") {
            Some(v) => v,
            None => return Err(format!("unexpected argument {flag:?}")),
        },
        _ => return Err(format!("unexpected arguments {args:?}")),
    };
    match value.parse::<u64>() {
        Ok(secs) if secs > 0 => Ok(Some(Duration::from_secs(secs))),
        _ => Err(format!(
            "--ttl takes a whole number of seconds of at least 1, not {value:?}"
        )),
    }
}

fn count(ttl: Option<Duration>) -> Result<(), Error> {
    let (mut session, new) = match Session::current()? {
        Some(session) => (session, false),
        None => (Session::create(Some(ttl.unwrap_or(DEFAULT_TTL)))?, true),
    };
    if let (false, Some(ttl)) = (new, ttl) {
        session.extend(ttl)?;
    }
    let n = State::session(&session)?.increment(KEY, 1)?;
    let left = session
        .expires_at()
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    println!("count: {n}");
    println!("session: {}", session.id());
    eprintln!(
        "the session expires in {} s; pass `--session {}` to the next run to keep counting",
        left.as_secs_f64().round(),
        session.id()
    );
    Ok(())
}
