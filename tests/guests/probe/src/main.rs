//! A tiny state interpreter for the host tests: each argument is one command
//! (`set K JSON`, `get K`, `session-create 60`, `use-session ID`, …), run in
//! order against the current scope (the instance scope at start). For each
//! command it prints one line: the result as JSON, or `error:<case>` where
//! `<case>` is the WIT `error` case the guest received (`error:wrong-type`,
//! `error:no-such-session`, …). The error's message goes to stderr.
//!
//! Words are separated by single spaces; the last argument of a command takes
//! the rest of the text, so JSON values may contain spaces. `@session` stands
//! for the id of the last session created in this run.

use std::time::Duration;

use serde_json::{Value, json};
use wasm_state_sdk::{Condition, Error, KeyListing, Session, SetOptions, State};

/// The WIT case name of an SDK error (`Transaction` errors print the failed
/// operation's case after its index).
fn case(e: &Error) -> String {
    match e {
        Error::WrongType => "wrong-type".into(),
        Error::NotAnInteger => "not-an-integer".into(),
        Error::Overflow => "overflow".into(),
        Error::IndexOutOfRange => "index-out-of-range".into(),
        Error::EtagMismatch => "etag-mismatch".into(),
        Error::InvalidEtag => "invalid-etag".into(),
        Error::AlreadyExists => "already-exists".into(),
        Error::NotFound => "not-found".into(),
        Error::NoSuchSession => "no-such-session".into(),
        Error::AccessDenied => "access-denied".into(),
        Error::KeyTooLarge => "key-too-large".into(),
        Error::ValueTooLarge => "value-too-large".into(),
        Error::TooManyOperations => "too-many-operations".into(),
        Error::QuotaExceeded => "quota-exceeded".into(),
        Error::InvalidArgument(_) => "invalid-argument".into(),
        Error::Unavailable(_) => "unavailable".into(),
        Error::Internal(_) => "internal".into(),
        Error::Json(_) => "json".into(),
        Error::Transaction { index, source } => format!("transaction:{index}:{}", case(source)),
        Error::Conflict { .. } => "conflict".into(),
        _ => "unknown".into(),
    }
}

/// A command failed: an SDK error, or a command the probe does not know.
enum Fail {
    State(Error),
    Usage(String),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::State(e)
    }
}

type Out = Result<Value, Fail>;

struct Probe {
    state: State,
    last_session: Option<String>,
}

/// The command's words: `n` of them, the last taking the rest of the text.
fn words(rest: &str, n: usize) -> Result<Vec<&str>, Fail> {
    let w: Vec<&str> = rest.splitn(n, ' ').collect();
    if w.len() == n {
        Ok(w)
    } else {
        Err(Fail::Usage(format!("expected {n} arguments in {rest:?}")))
    }
}

fn json_arg(text: &str) -> Result<Value, Fail> {
    serde_json::from_str(text).map_err(|e| Fail::Usage(format!("not JSON: {text:?}: {e}")))
}

fn int<T: std::str::FromStr>(text: &str) -> Result<T, Fail> {
    text.parse()
        .map_err(|_| Fail::Usage(format!("not a number: {text:?}")))
}

fn session_json(s: &Session) -> Value {
    json!({ "id": s.id(), "expires_at_ms": s.expires_at_ms() })
}

impl Probe {
    fn session_id(&self, word: &str) -> String {
        match (word, &self.last_session) {
            ("@session", Some(id)) => id.clone(),
            _ => word.to_owned(),
        }
    }

    fn exec(&mut self, command: &str) -> Out {
        let (op, rest) = command.split_once(' ').unwrap_or((command, ""));
        let st = &self.state;
        Ok(match op {
            // ---- scopes and sessions ----
            "use-instance" => {
                self.state = State::instance();
                json!("instance")
            }
            "use-account" => {
                self.state = State::account();
                json!("account")
            }
            "use-session" => {
                let session = Session::open(&self.session_id(rest))?;
                self.state = State::session(&session)?;
                session_json(&session)
            }
            "use-current" => match Session::current()? {
                // The session the host handed over (`RunOptions.session`).
                Some(session) => {
                    self.state = State::session(&session)?;
                    session_json(&session)
                }
                None => Value::Null,
            },
            "session-create" => {
                let ttl = match rest {
                    "" | "none" => None,
                    secs => Some(Duration::from_secs(int(secs)?)),
                };
                let session = Session::create(ttl)?;
                self.last_session = Some(session.id().to_owned());
                session_json(&session)
            }
            "session-open" => session_json(&Session::open(&self.session_id(rest))?),
            "session-extend" => {
                let w = words(rest, 2)?;
                let mut session = Session::open(&self.session_id(w[0]))?;
                session.extend(Duration::from_secs(int(w[1])?))?;
                session_json(&session)
            }
            "session-end" => {
                let id = self.session_id(rest);
                match Session::open(&id) {
                    Ok(session) => json!(session.end()?),
                    Err(Error::NoSuchSession) => json!(false),
                    Err(e) => return Err(e.into()),
                }
            }
            // ---- values ----
            "get" => json!(st.get::<Value>(rest)?),
            "get-entry" => match st.get_entry::<Value>(rest)? {
                None => Value::Null,
                Some(e) => json!({
                    "value": e.value,
                    "etag": e.etag.as_str(),
                    "ttl_ms": e.ttl.map(|d| d.as_millis() as u64),
                }),
            },
            "set" => {
                let w = words(rest, 2)?;
                json!(st.set(w[0], &json_arg(w[1])?)?.as_str())
            }
            "set-big" => {
                // set-big K N: a JSON string of N - 2 'x' (N bytes stored).
                let w = words(rest, 2)?;
                let n: usize = int(w[1])?;
                let big = "x".repeat(n.saturating_sub(2));
                json!(st.set(w[0], &big)?.as_str())
            }
            "set-ttl" => {
                let w = words(rest, 3)?;
                let ttl = Duration::from_millis(int(w[1])?);
                json!(
                    st.set_with(w[0], &json_arg(w[2])?, SetOptions::ttl(ttl))?
                        .as_str()
                )
            }
            "set-if-match" => {
                let w = words(rest, 3)?;
                let cond = Condition::IfMatch(w[1].into());
                json!(
                    st.set_with(w[0], &json_arg(w[2])?, SetOptions::condition(cond))?
                        .as_str()
                )
            }
            "set-if-absent" | "set-if-exists" => {
                let w = words(rest, 2)?;
                let cond = if op == "set-if-absent" {
                    Condition::IfAbsent
                } else {
                    Condition::IfExists
                };
                json!(
                    st.set_with(w[0], &json_arg(w[1])?, SetOptions::condition(cond))?
                        .as_str()
                )
            }
            "delete" => json!(st.delete(rest)?),
            "exists" => json!(st.exists(rest)?),
            "incr" => {
                let w = words(rest, 2)?;
                json!(st.increment(w[0], int(w[1])?)?)
            }
            "tx-add" => {
                // tx-add K N: read-modify-write K += N in a transaction
                // (etag checks, retried on conflict up to 100 times).
                let w = words(rest, 2)?;
                let n: i64 = int(w[1])?;
                json!(st.transaction_with_retries(100, |tx| {
                    let v: i64 = tx.get(w[0])?.unwrap_or(0);
                    tx.set(w[0], &(v + n));
                    Ok(v + n)
                })?)
            }
            "expire" => {
                let w = words(rest, 2)?;
                json!(st.expire(w[0], Duration::from_secs(int(w[1])?))?)
            }
            "persist" => json!(st.persist(rest)?),
            "ttl" => json!(st.ttl(rest)?.map(|d| d.as_millis() as u64)),
            "keys" => {
                let keys = st
                    .keys(KeyListing::prefix(rest))
                    .collect::<Result<Vec<_>, _>>()?;
                json!(keys)
            }
            "all-keys" => {
                let keys = st.keys(KeyListing::all()).collect::<Result<Vec<_>, _>>()?;
                json!(keys)
            }
            "delete-prefix" => json!(st.delete_prefix(rest)?),
            // ---- maps ----
            "map-set" => {
                let w = words(rest, 3)?;
                json!(st.map_set(w[0], [(w[1], &json_arg(w[2])?)])?)
            }
            "map-get" => {
                let w = words(rest, 2)?;
                json!(st.map_get_value::<Value>(w[0], w[1])?)
            }
            "map-get-all" => json!(st.map_get_all::<Value>(rest)?),
            "map-incr" => {
                let w = words(rest, 3)?;
                json!(st.map_increment(w[0], w[1], int(w[2])?)?)
            }
            "map-len" => json!(st.map_length(rest)?),
            // ---- lists ----
            "list-append" | "list-prepend" => {
                let w = words(rest, 2)?;
                let v = [json_arg(w[1])?];
                json!(if op == "list-append" {
                    st.list_append(w[0], &v)?
                } else {
                    st.list_prepend(w[0], &v)?
                })
            }
            "list-range" => {
                let w = words(rest, 3)?;
                json!(st.list_range::<Value>(w[0], int(w[1])?, int(w[2])?)?)
            }
            "list-set" => {
                let w = words(rest, 3)?;
                st.list_set(w[0], int(w[1])?, &json_arg(w[2])?)?;
                Value::Null
            }
            "list-len" => json!(st.list_length(rest)?),
            // ---- the command's stdin ----
            "stdin-len" => {
                let mut input = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut input)
                    .map_err(|e| Fail::Usage(format!("cannot read stdin: {e}")))?;
                json!(input.len())
            }
            "list-pop" => {
                let w = words(rest, 2)?;
                json!(st.list_start_pop::<Value>(w[0], int(w[1])?)?)
            }
            other => return Err(Fail::Usage(format!("unknown command {other:?}"))),
        })
    }
}

fn main() {
    let mut probe = Probe {
        state: State::instance(),
        last_session: None,
    };
    let mut usage_error = false;
    for command in std::env::args().skip(1) {
        match probe.exec(&command) {
            Ok(v) => println!("{v}"),
            Err(Fail::State(e)) => {
                println!("error:{}", case(&e));
                eprintln!("{command}: {e}");
            }
            Err(Fail::Usage(why)) => {
                println!("usage:{why}");
                eprintln!("{command}: {why}");
                usage_error = true;
            }
        }
    }
    if usage_error {
        std::process::exit(2);
    }
}
