//! The server-side code of the Redis engine — one Redis function library
//! assembled from the Lua modules in `lua/` (each mirrors a Rust module of
//! the kv engine: see the header of each file) — and the codecs of its
//! arguments and answers.

use std::sync::LazyLock;

use redis::Value;

use crate::store::error::{Result, StateError};
use crate::store::types::{Condition, ExpireMode, Op, OpKind, OpOutput, OpResult, Scope};

/// The modules, in dependency order.
const MODULES: [(&str, &str); 15] = [
    ("bytes", include_str!("lua/bytes.lua")),
    ("layout", include_str!("lua/layout.lua")),
    ("meta", include_str!("lua/meta.lua")),
    ("backend", include_str!("lua/backend.lua")),
    ("overlay", include_str!("lua/overlay.lua")),
    ("cx", include_str!("lua/cx.lua")),
    ("watch", include_str!("lua/watch.lua")),
    ("keyspace", include_str!("lua/keyspace.lua")),
    ("value", include_str!("lua/value.lua")),
    ("map", include_str!("lua/map.lua")),
    ("list", include_str!("lua/list.lua")),
    ("ops", include_str!("lua/ops.lua")),
    ("sessions", include_str!("lua/sessions.lua")),
    ("instances", include_str!("lua/instances.lua")),
    ("sweep", include_str!("lua/sweep.lua")),
];

/// The engine as a Redis function library: the modules, each a local table,
/// and two functions named after the library's hash so that hosts of
/// different versions can share a Redis (each calls its own): one for
/// writes, and one flagged `no-writes` for the reads (scans) that Redis
/// then runs even while it refuses writes (maxmemory reached).
pub struct Library {
    /// The source for `FUNCTION LOAD`.
    pub source: String,
    /// The function to `FCALL` for a write.
    pub function: String,
    /// The read-only function to `FCALL` for a read.
    pub read_function: String,
}

/// The library (built once).
pub static LIBRARY: LazyLock<Library> = LazyLock::new(|| {
    // While a library loads, Redis gives it no standard libraries
    // (`string`, `math`…), so the modules are built on the first call and
    // kept for the next ones.
    let mut body = String::new();
    for (name, _) in MODULES {
        body.push_str(&format!("local {name}\n"));
    }
    body.push_str("local dispatch\nlocal function init()\n");
    for (name, src) in MODULES {
        body.push_str(&format!("{name} = (function()\n{src}\nend)()\n"));
    }
    body.push_str("dispatch = (function()\n");
    body.push_str(include_str!("lua/main.lua"));
    body.push_str("\nend)()\nend\n");
    body.push_str(
        "local function entry(keys, args)\n  if not dispatch then init() end\n  return dispatch(keys, args, false)\nend\n",
    );
    body.push_str(
        "local function read_entry(keys, args)\n  if not dispatch then init() end\n  return dispatch(keys, args, true)\nend\n",
    );
    let hash = redis::Script::new(&body).get_hash().to_string();
    let tag = &hash[..12];
    let function = format!("wasm_state_{tag}");
    let read_function = format!("wasm_state_{tag}_ro");
    let source = format!(
        "#!lua name=wasm_state_{tag}\n-- wasm-state engine (generated from store/redis/lua)\n{body}redis.register_function('{function}', entry)\nredis.register_function{{function_name = '{read_function}', callback = read_entry, flags = {{ 'no-writes' }}}}\n"
    );
    Library {
        source,
        function,
        read_function,
    }
});

/// A time as the script takes it: 8 bytes big-endian.
pub fn time(ms: u64) -> Vec<u8> {
    ms.to_be_bytes().to_vec()
}

/// Read a time the script returned.
pub fn read_time(b: &[u8]) -> Result<u64> {
    b.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| bad_reply("a time of 8 bytes"))
}

/// The scope as the script takes it: kind, name, session id.
pub fn scope_args(scope: &Scope) -> [Vec<u8>; 3] {
    match scope {
        Scope::Account(a) => [b"a".to_vec(), a.as_bytes().to_vec(), Vec::new()],
        Scope::Instance(i) => [b"i".to_vec(), i.as_bytes().to_vec(), Vec::new()],
        Scope::Session { instance, id } => [
            b"s".to_vec(),
            instance.as_bytes().to_vec(),
            id.as_bytes().to_vec(),
        ],
    }
}

fn mode(m: ExpireMode) -> &'static str {
    match m {
        ExpireMode::Always => "always",
        ExpireMode::Nx => "nx",
        ExpireMode::Xx => "xx",
        ExpireMode::Gt => "gt",
        ExpireMode::Lt => "lt",
    }
}

/// Append the arguments of `ops` (key, kind, condition, arguments) at time
/// `now`. Times are computed here, by the shared rules.
pub fn op_args(ops: &[Op], now: u64, args: &mut Vec<Vec<u8>>) -> Result<()> {
    args.push(ops.len().to_string().into_bytes());
    for op in ops {
        args.push(op.key.as_bytes().to_vec());
        let (kind, a): (&str, Vec<Vec<u8>>) = match &op.kind {
            OpKind::Set { value, ttl } => {
                let at = match ttl {
                    Some(t) => time(crate::store::deadline(now, *t)?),
                    None => Vec::new(),
                };
                ("set", vec![value.clone(), at])
            }
            OpKind::Delete => ("delete", vec![]),
            OpKind::Increment(d) => ("incr", vec![d.to_string().into_bytes()]),
            OpKind::Expire { seconds, mode: m } => {
                let at = crate::store::expire_at(now, *seconds)?.max(0) as u64;
                let delete = if *seconds <= 0 { "1" } else { "0" };
                ("expire", vec![delete.into(), time(at), mode(*m).into()])
            }
            OpKind::Persist => ("persist", vec![]),
            OpKind::MapSet(entries) => (
                "mset",
                entries
                    .iter()
                    .flat_map(|(f, v)| [f.as_bytes().to_vec(), v.clone()])
                    .collect(),
            ),
            OpKind::MapDelete(fields) => (
                "mdel",
                fields.iter().map(|f| f.as_bytes().to_vec()).collect(),
            ),
            OpKind::MapIncrement { field, delta } => (
                "mincr",
                vec![field.as_bytes().to_vec(), delta.to_string().into_bytes()],
            ),
            OpKind::ListAppend(values) => ("lappend", values.clone()),
            OpKind::ListPrepend(values) => ("lprepend", values.clone()),
            OpKind::ListStartPop(n) => ("lspop", vec![n.to_string().into_bytes()]),
            OpKind::ListEndPop(n) => ("lepop", vec![n.to_string().into_bytes()]),
            OpKind::ListRemove { value, count } => {
                ("lrem", vec![value.clone(), count.to_string().into_bytes()])
            }
            OpKind::ListTrim { start, stop } => (
                "ltrim",
                vec![
                    start.to_string().into_bytes(),
                    stop.to_string().into_bytes(),
                ],
            ),
            OpKind::ListInsert {
                before,
                pivot,
                value,
            } => (
                "linsert",
                vec![
                    if *before { "1" } else { "0" }.into(),
                    pivot.clone(),
                    value.clone(),
                ],
            ),
            OpKind::ListSet { index, value } => {
                ("lset", vec![index.to_string().into_bytes(), value.clone()])
            }
            OpKind::Check => ("check", vec![]),
        };
        args.push(kind.into());
        match &op.condition {
            None => args.extend([Vec::new(), Vec::new()]),
            Some(Condition::IfMatch(e)) => args.extend([b"m".to_vec(), e.as_bytes().to_vec()]),
            Some(Condition::IfAbsent) => args.extend([b"a".to_vec(), Vec::new()]),
            Some(Condition::IfExists) => args.extend([b"e".to_vec(), Vec::new()]),
        }
        args.push(a.len().to_string().into_bytes());
        args.extend(a);
    }
    Ok(())
}

/// A reply that is not what the script returns.
pub fn bad_reply(what: &str) -> StateError {
    StateError::Internal(format!(
        "unexpected answer from the Redis engine's script (expected {what}); is another wasm-state version sharing this Redis namespace?"
    ))
}

/// Reply accessors.
pub trait Reply {
    /// Bytes of a bulk string.
    fn bytes(self) -> Result<Vec<u8>>;
    /// UTF-8 text of a bulk string.
    fn text(self) -> Result<String>;
    /// An integer.
    fn int(self) -> Result<i64>;
    /// The items of an array.
    fn items(self) -> Result<Vec<Value>>;
    /// None for nil (Lua false).
    fn opt(self) -> Option<Value>;
}

impl Reply for Value {
    fn bytes(self) -> Result<Vec<u8>> {
        match self {
            Value::BulkString(b) => Ok(b),
            Value::SimpleString(s) => Ok(s.into_bytes()),
            Value::Okay => Ok(b"OK".to_vec()),
            _ => Err(bad_reply("bytes")),
        }
    }

    fn text(self) -> Result<String> {
        String::from_utf8(self.bytes()?).map_err(|_| StateError::corrupt("text that is not UTF-8"))
    }

    fn int(self) -> Result<i64> {
        match self {
            Value::Int(n) => Ok(n),
            Value::BulkString(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad_reply("an integer")),
            _ => Err(bad_reply("an integer")),
        }
    }

    fn items(self) -> Result<Vec<Value>> {
        match self {
            Value::Array(v) => Ok(v),
            _ => Err(bad_reply("an array")),
        }
    }

    fn opt(self) -> Option<Value> {
        match self {
            Value::Nil => None,
            v => Some(v),
        }
    }
}

/// The error of an `{'E', code, index, name, value, …}` answer.
pub fn error_of(items: Vec<Value>) -> StateError {
    let mut it = items.into_iter().skip(1);
    let code = it.next().and_then(|v| v.text().ok()).unwrap_or_default();
    let index = it.next().and_then(|v| v.int().ok()).unwrap_or(-1);
    let mut fields = std::collections::HashMap::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        if let (Ok(k), Ok(v)) = (k.text(), v.bytes()) {
            fields.insert(k, String::from_utf8_lossy(&v).into_owned());
        }
    }
    let f = |name: &str| fields.get(name).cloned().unwrap_or_default();
    let n = |name: &str| f(name).parse::<u64>().unwrap_or(0);
    let kind = |name: &str| -> &'static str {
        match f(name).as_str() {
            "value" => "value",
            "map" => "map",
            _ => "list",
        }
    };
    let e = match code.as_str() {
        "wrong-type" => StateError::WrongType {
            expected: kind("expected"),
            found: kind("found"),
        },
        "not-an-integer" => StateError::NotAnInteger,
        "overflow" => StateError::Overflow,
        "index-out-of-range" => StateError::IndexOutOfRange { len: n("len") },
        "etag-mismatch" => StateError::EtagMismatch,
        "invalid-etag" => StateError::InvalidEtag(f("etag")),
        "already-exists" => StateError::AlreadyExists,
        "not-found" => StateError::NotFound,
        "no-such-session" => StateError::NoSuchSession,
        "access-denied" => StateError::AccessDenied(f("msg")),
        "quota-exceeded" => StateError::QuotaExceeded {
            owner: f("owner"),
            would_use: n("would_use"),
            quota: n("quota"),
        },
        "too-many-sessions" => StateError::TooManySessions {
            instance: f("instance"),
            max: n("max"),
        },
        "reply-too-large" => StateError::ReplyTooLarge {
            max: usize::try_from(n("max")).unwrap_or(usize::MAX),
        },
        "invalid-argument" => StateError::InvalidArgument(f("msg")),
        _ => StateError::Internal(format!("the Redis engine's script failed: {}", f("msg"))),
    };
    match usize::try_from(index) {
        Ok(index) => StateError::Aborted {
            index,
            source: Box::new(e),
        },
        Err(_) => e,
    }
}

/// The payload of an answer, or its error.
pub fn payload(v: Value) -> Result<Value> {
    let mut items = v.items()?;
    match items.first() {
        Some(Value::BulkString(t)) if t == b"K" => Ok(items.pop().unwrap_or(Value::Nil)),
        Some(Value::BulkString(t)) if t == b"E" => Err(error_of(items)),
        _ => Err(bad_reply("an answer")),
    }
}

/// The results of a commit.
pub fn op_results(v: Value) -> Result<Vec<OpResult>> {
    v.items()?
        .into_iter()
        .map(|r| {
            let mut r = r.items()?.into_iter();
            let etag = r.next().and_then(Reply::opt).map(Reply::text).transpose()?;
            let mut out = r
                .next()
                .ok_or_else(|| bad_reply("an op output"))?
                .items()?
                .into_iter();
            let tag = out
                .next()
                .ok_or_else(|| bad_reply("an output tag"))?
                .bytes()?;
            let output = match tag.as_slice() {
                b"n" => OpOutput::None,
                b"b" => OpOutput::Bool(out.next().ok_or_else(|| bad_reply("a bool"))?.int()? != 0),
                b"i" => OpOutput::Int(out.next().ok_or_else(|| bad_reply("a number"))?.int()?),
                b"v" => OpOutput::Values(
                    out.next()
                        .map(Reply::items)
                        .transpose()?
                        .unwrap_or_default()
                        .into_iter()
                        .map(Reply::bytes)
                        .collect::<Result<_>>()?,
                ),
                _ => return Err(bad_reply("an op output")),
            };
            Ok(OpResult { etag, output })
        })
        .collect()
}

// ---- the other direction: what the wasm-state Redis module (`native.rs`)
// reads from the arguments above and answers in the script's shape ----

/// A bad argument to the module's command (another program calling it).
fn bad_arg(what: &str) -> StateError {
    StateError::invalid(format!("wasmstate.commit: bad arguments ({what})"))
}

/// A time argument, as [`time`] writes it.
fn arg_time(b: &[u8]) -> Result<u64> {
    b.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| bad_arg("a time of 8 bytes"))
}

/// Reads the arguments of one call in order.
pub struct Args<'a> {
    args: &'a [&'a [u8]],
    at: usize,
}

impl<'a> Args<'a> {
    /// The arguments `args`, from the first.
    pub fn new(args: &'a [&'a [u8]]) -> Self {
        Args { args, at: 0 }
    }

    /// The next argument's bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let a = self.args.get(self.at).ok_or_else(|| bad_arg("too few"))?;
        self.at += 1;
        Ok(a)
    }

    /// The next argument as UTF-8 text.
    pub fn text(&mut self) -> Result<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| bad_arg("text that is not UTF-8"))
    }

    /// The next argument as a decimal number.
    pub fn num<T: std::str::FromStr>(&mut self) -> Result<T> {
        self.text()?.parse().map_err(|_| bad_arg("a number"))
    }

    /// The next argument as a time (8 bytes big-endian).
    pub fn time(&mut self) -> Result<u64> {
        arg_time(self.bytes()?)
    }

    /// Whether every argument was read.
    pub fn done(&self) -> bool {
        self.at == self.args.len()
    }
}

/// The scope written by [`scope_args`].
pub fn read_scope(a: &mut Args) -> Result<Scope> {
    let (kind, name, id) = (a.bytes()?, a.text()?, a.text()?);
    Ok(match kind {
        b"a" => Scope::Account(name.into()),
        b"i" => Scope::Instance(name.into()),
        b"s" => Scope::Session {
            instance: name.into(),
            id: id.into(),
        },
        _ => return Err(bad_arg("a scope kind")),
    })
}

/// The ops written by [`op_args`] at time `now`: TTLs and expiry times come
/// back as the durations that give the same times.
pub fn read_ops(a: &mut Args, now: u64) -> Result<Vec<Op>> {
    let n: usize = a.num()?;
    let mut ops = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let key = a.text()?.to_string();
        let kind = a.bytes()?;
        let condition = match (a.bytes()?, a.text()?) {
            (b"", _) => None,
            (b"m", e) => Some(Condition::IfMatch(e.to_string())),
            (b"a", _) => Some(Condition::IfAbsent),
            (b"e", _) => Some(Condition::IfExists),
            _ => return Err(bad_arg("a condition")),
        };
        let nargs: usize = a.num()?;
        let mut v = Vec::with_capacity(nargs.min(1024));
        for _ in 0..nargs {
            v.push(a.bytes()?);
        }
        let arg = |i: usize| {
            v.get(i)
                .copied()
                .ok_or_else(|| bad_arg("too few op arguments"))
        };
        let text = |i: usize| {
            std::str::from_utf8(arg(i)?).map_err(|_| bad_arg("an op argument that is not UTF-8"))
        };
        let num = |i: usize| text(i)?.parse::<i64>().map_err(|_| bad_arg("a number"));
        let count = |i: usize| text(i)?.parse::<u64>().map_err(|_| bad_arg("a count"));
        let time = |i: usize| arg_time(arg(i)?);
        let kind = match kind {
            b"set" => OpKind::Set {
                value: arg(0)?.to_vec(),
                ttl: match arg(1)? {
                    b"" => None,
                    _ => Some(std::time::Duration::from_millis(
                        time(1)?
                            .checked_sub(now)
                            .filter(|&ms| ms > 0)
                            .ok_or_else(|| bad_arg("a TTL"))?,
                    )),
                },
            },
            b"delete" => OpKind::Delete,
            b"incr" => OpKind::Increment(num(0)?),
            b"expire" => OpKind::Expire {
                // Seconds ≤ 0 delete. Only whether the time is before now
                // (`lt`, `gt` compare it with a live key's expiry, which is
                // not before now) tells them apart: -1 stands for any
                // earlier time, 0 for now itself.
                seconds: match arg(0)? {
                    b"1" if time(1)? < now => -1,
                    b"1" => 0,
                    _ => i64::try_from(
                        time(1)?.checked_sub(now).ok_or_else(|| bad_arg("a time"))? / 1000,
                    )
                    .map_err(|_| bad_arg("a time"))?
                    .max(1),
                },
                mode: match arg(2)? {
                    b"always" => ExpireMode::Always,
                    b"nx" => ExpireMode::Nx,
                    b"xx" => ExpireMode::Xx,
                    b"gt" => ExpireMode::Gt,
                    b"lt" => ExpireMode::Lt,
                    _ => return Err(bad_arg("an expire mode")),
                },
            },
            b"persist" => OpKind::Persist,
            b"mset" => OpKind::MapSet(
                v.chunks(2)
                    .map(|p| match p {
                        [f, val] => std::str::from_utf8(f)
                            .map(|f| (f.to_string(), val.to_vec()))
                            .map_err(|_| bad_arg("a field that is not UTF-8")),
                        _ => Err(bad_arg("a field without a value")),
                    })
                    .collect::<Result<_>>()?,
            ),
            b"mdel" => OpKind::MapDelete(
                (0..v.len())
                    .map(|i| text(i).map(str::to_string))
                    .collect::<Result<_>>()?,
            ),
            b"mincr" => OpKind::MapIncrement {
                field: text(0)?.to_string(),
                delta: num(1)?,
            },
            b"lappend" => OpKind::ListAppend(v.iter().map(|b| b.to_vec()).collect()),
            b"lprepend" => OpKind::ListPrepend(v.iter().map(|b| b.to_vec()).collect()),
            b"lspop" => OpKind::ListStartPop(count(0)?),
            b"lepop" => OpKind::ListEndPop(count(0)?),
            b"lrem" => OpKind::ListRemove {
                value: arg(0)?.to_vec(),
                count: num(1)?,
            },
            b"ltrim" => OpKind::ListTrim {
                start: num(0)?,
                stop: num(1)?,
            },
            b"linsert" => OpKind::ListInsert {
                before: arg(0)? == b"1",
                pivot: arg(1)?.to_vec(),
                value: arg(2)?.to_vec(),
            },
            b"lset" => OpKind::ListSet {
                index: num(0)?,
                value: arg(1)?.to_vec(),
            },
            b"check" => OpKind::Check,
            _ => return Err(bad_arg("an op kind")),
        };
        ops.push(Op {
            key,
            kind,
            condition,
        });
    }
    Ok(ops)
}

fn bulk(b: impl Into<Vec<u8>>) -> Value {
    Value::BulkString(b.into())
}

/// The answer `{'E', code, index, name, value, …}` that `error_of` reads.
pub fn error_answer(e: &StateError) -> Value {
    let (index, e) = match e {
        StateError::Aborted { index, source } => (*index as i64, source.root()),
        e => (-1, e),
    };
    let mut fields: Vec<(&str, String)> = Vec::new();
    let code = match e {
        StateError::WrongType { expected, found } => {
            fields.push(("expected", expected.to_string()));
            fields.push(("found", found.to_string()));
            "wrong-type"
        }
        StateError::IndexOutOfRange { len } => {
            fields.push(("len", len.to_string()));
            "index-out-of-range"
        }
        StateError::InvalidEtag(etag) => {
            fields.push(("etag", etag.clone()));
            "invalid-etag"
        }
        StateError::AccessDenied(msg) | StateError::InvalidArgument(msg) => {
            fields.push(("msg", msg.clone()));
            e.code()
        }
        StateError::QuotaExceeded {
            owner,
            would_use,
            quota,
        } => {
            fields.push(("owner", owner.clone()));
            fields.push(("would_use", would_use.to_string()));
            fields.push(("quota", quota.to_string()));
            "quota-exceeded"
        }
        StateError::TooManySessions { instance, max } => {
            fields.push(("instance", instance.clone()));
            fields.push(("max", max.to_string()));
            "too-many-sessions"
        }
        StateError::ReplyTooLarge { max } => {
            fields.push(("max", max.to_string()));
            "reply-too-large"
        }
        StateError::NotAnInteger
        | StateError::Overflow
        | StateError::EtagMismatch
        | StateError::AlreadyExists
        | StateError::NotFound
        | StateError::NoSuchSession => e.code(),
        e => {
            fields.push(("msg", e.to_string()));
            "internal"
        }
    };
    let mut out = vec![bulk("E"), bulk(code), Value::Int(index)];
    for (k, v) in fields {
        out.push(bulk(k));
        out.push(bulk(v));
    }
    Value::Array(out)
}

/// The answer `{'K', results}` that [`op_results`] reads.
pub fn results_answer(results: &[OpResult]) -> Value {
    let results = results
        .iter()
        .map(|r| {
            let output = match &r.output {
                OpOutput::None => vec![bulk("n")],
                OpOutput::Bool(b) => vec![bulk("b"), Value::Int(i64::from(*b))],
                OpOutput::Int(n) => vec![bulk("i"), bulk(n.to_string())],
                OpOutput::Values(v) => {
                    vec![
                        bulk("v"),
                        Value::Array(v.iter().map(|b| bulk(b.clone())).collect()),
                    ]
                }
            };
            Value::Array(vec![
                r.etag.as_ref().map_or(Value::Nil, |e| bulk(e.clone())),
                Value::Array(output),
            ])
        })
        .collect();
    Value::Array(vec![bulk("K"), Value::Array(results)])
}
