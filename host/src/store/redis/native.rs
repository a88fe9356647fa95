//! The engine's writes run natively inside Redis: what the wasm-state Redis
//! module (`redis-module/`, loaded with `--loadmodule`) executes for its
//! command [`COMMAND`]. It takes the same keys and arguments as the Lua
//! library's `commit` and gives the same answer — packed in MessagePack as
//! the answer marker keeps it, one bulk string to send and to parse
//! ([`answer_of`] reads it back) — but runs the kv
//! engine's own Rust ops (`kv::ops`, with per-owner etags) over the owner's
//! hash and sorted set instead of their Lua mirror — so with the module
//! loaded a write costs Redis native code, not interpreted Lua
//! (docs/benchmarks.md), and the semantics are the one Rust implementation.
//!
//! `Records` mirrors `lua/backend.lua` (the records in a hash, their order
//! in a sorted set); everything is read first and written only once the
//! whole request succeeded, so a failing op leaves nothing (Redis has no
//! rollback). Redis runs a module command atomically, like a function.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use redis::Value;

pub use super::script::error_answer;
use super::script::{Args, read_ops, read_scope, results_answer};
use crate::store::error::{Result, StateError};
use crate::store::kv::backend::{Overlay, RawRead, RawWrite};
use crate::store::kv::layout::{self, ScopeKeys};
use crate::store::kv::ops::cx::{Etags, WriteCx};
use crate::store::kv::ops::{self, keyspace};
use crate::store::limits::Limits;
use crate::store::types::{OpResult, Scope};

/// The module's command: `wasmstate.commit HASH ZSET MARKER FINGERPRINT
/// ARGS`, where the keys are those the engine declares, `FINGERPRINT` the
/// host's [`fingerprint`] and `ARGS` the arguments of the library's
/// `commit` (attempt, `commit`, scope, now, nonce and limits, ops) packed
/// into one ([`pack_args`]).
pub const COMMAND: &str = "wasmstate.commit";

/// The first word of the error a module built from other sources answers
/// (the host then uses its Lua library).
pub const VERSION_MISMATCH: &str = "WASMSTATE-VERSION";

/// What host and module must agree on: the crate's version, the hash of
/// the Lua library, which mirrors every rule the module runs (so any change
/// to the semantics changes it), and the form of the module's arguments
/// and answers.
pub fn fingerprint() -> &'static str {
    static PRINT: LazyLock<String> = LazyLock::new(|| {
        format!(
            "{}/{}/{FORM}",
            env!("CARGO_PKG_VERSION"),
            super::script::LIBRARY.function
        )
    });
    &PRINT
}

/// How a write is asked and answered: its arguments packed into one
/// ([`pack_args`]), its answer packed as the marker keeps it (MessagePack),
/// one bulk string ([`answer_of`]). Said in words, which also makes the
/// fingerprint longer than the 128 bytes of arguments Redis echoes when it
/// does not know the command (the module unloaded): the echo then never
/// reaches the binary packed arguments, which would make the error unreadable
/// to redis-rs (not UTF-8) and hide that the module is gone.
const FORM: &str = "arguments: one MessagePack array of binary strings; answer: one MessagePack value, as its marker keeps it";

/// A write's arguments packed into the one argument the module's command
/// takes after the fingerprint: a MessagePack array of binary strings. One
/// argument, not ~20: Redis makes an object of every argument it parses and
/// frees it after the call (~12 % of a module `set`'s Redis instructions,
/// callgrind), and the host writes one. The engine sends a write whose
/// [`packed_len`] exceeds the server's `proto-max-bulk-len` (the longest
/// argument it takes; 512 MB by default) through the library instead.
pub fn pack_args(args: &[Vec<u8>]) -> Vec<u8> {
    // The limits keep counts and sizes far below 4 GiB; one beyond would
    // be written as 4 GiB − 1, which the module refuses as cut short.
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let bytes: usize = args.iter().map(|a| a.len() + 5).sum();
    let mut out = Vec::with_capacity(bytes + 5);
    // Writing into a Vec cannot fail.
    let _ = rmp::encode::write_array_len(&mut out, len(args.len()));
    for a in args {
        let _ = rmp::encode::write_bin_len(&mut out, len(a.len()));
        out.extend_from_slice(a);
    }
    out
}

/// No less than the length of [`pack_args`]' result for `args` (a few
/// bytes more per argument, and for the array).
pub fn packed_len(args: &[Vec<u8>]) -> u64 {
    args.iter().map(|a| a.len() as u64 + 5).sum::<u64>() + 5
}

/// The arguments [`pack_args`] packed, borrowed from `b`: `None` unless `b`
/// is exactly one array of binary strings.
pub fn unpack_args(mut b: &[u8]) -> Option<Vec<&[u8]>> {
    let n = rmp::decode::read_array_len(&mut b).ok()? as usize;
    // A claimed count is not a reason to reserve memory (a write has ~20
    // arguments, a transaction a few per op): beyond this, the vector grows
    // as arguments are really read.
    let mut args = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let len = rmp::decode::read_bin_len(&mut b).ok()? as usize;
        let (arg, rest) = b.split_at_checked(len)?;
        args.push(arg);
        b = rest;
    }
    b.is_empty().then_some(args)
}

/// A write's answer as the kv ops gave it: both the module ([`run`]) and
/// the library's function answer a write with one bulk string, the answer
/// packed (MessagePack) as the marker keeps it.
pub fn answer_of(v: Value) -> Result<Value> {
    match v {
        Value::BulkString(b) => unpack(&b).ok_or_else(|| super::script::bad_reply("an answer")),
        _ => Err(super::script::bad_reply("an answer")),
    }
}

/// How long an answer is kept for a retry of the same request, ms (as the
/// Lua library keeps its marker).
pub const MARKER_MS: i64 = 120_000;

/// How many records one range read fetches at a time.
const BATCH: usize = 256;

/// One owner's Redis keys as the module reaches them (Redis's key API, no
/// command calls inside Redis): its records hash, the sorted set that
/// orders them, and the request's answer marker. Writes also go to the
/// append-only file and replicas.
pub trait OwnerKeys {
    /// The values of `fields` in the hash (`None`: absent).
    fn get(&self, fields: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>>;
    /// Up to `limit` members of the sorted set in the lexicographic range
    /// `lo`..`hi` (written as `ZRANGEBYLEX` takes them: `[x`, `(x`, `-`,
    /// `+`), ascending, or descending from `hi` when `reverse`.
    fn members(&self, lo: &[u8], hi: &[u8], reverse: bool, limit: usize) -> Result<Vec<Vec<u8>>>;
    /// Store `records` in the hash and add `fresh` to the sorted set.
    fn put(&self, records: &[(&[u8], &[u8])], fresh: &[&[u8]]) -> Result<()>;
    /// Remove `fields` from the hash and the sorted set.
    fn delete(&self, fields: &[&[u8]]) -> Result<()>;
    /// The answer kept under the marker, if any.
    fn answer(&self) -> Result<Option<Vec<u8>>>;
    /// Keep `answer` under the marker for [`MARKER_MS`].
    fn keep_answer(&self, answer: &[u8]) -> Result<()>;
}

/// One owner's records (`backend.lua`): values in a hash, keys in a sorted
/// set (score 0, ordered by bytes as redb orders them). Reads are kept for
/// the request; writes are buffered and made by [`Records::apply`].
struct Records<'c> {
    keys: &'c dyn OwnerKeys,
    /// What was read (`None`: absent).
    seen: RefCell<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
    /// Ranges `start..end` to delete (`end` none: unbounded), in order.
    ranges: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    puts: Vec<(Vec<u8>, Vec<u8>)>,
    deletes: Vec<Vec<u8>>,
}

impl<'c> Records<'c> {
    fn new(keys: &'c dyn OwnerKeys) -> Self {
        Records {
            keys,
            seen: RefCell::default(),
            ranges: Vec::new(),
            puts: Vec::new(),
            deletes: Vec::new(),
        }
    }

    /// Read `fields` at once (what a request reads first).
    fn prefetch(&self, fields: &[Vec<u8>]) -> Result<()> {
        let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
        let values = self.keys.get(&refs)?;
        let mut seen = self.seen.borrow_mut();
        for (k, v) in fields.iter().zip(values) {
            seen.insert(k.clone(), v);
        }
        Ok(())
    }

    /// Delete every record in the range `lo`..`hi` (`ZRANGEBYLEX` form), a
    /// batch at a time.
    fn delete_members(&self, lo: &[u8], hi: &[u8]) -> Result<()> {
        loop {
            let keys = self.keys.members(lo, hi, false, BATCH)?;
            if keys.is_empty() {
                return Ok(());
            }
            let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            self.keys.delete(&refs)?;
            let full = keys.len() == BATCH;
            let mut seen = self.seen.borrow_mut();
            for k in keys {
                seen.insert(k, None);
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Make the buffered writes — range deletions, deletions, then the
    /// values and the new members of the order — all after the whole
    /// request succeeded, so nothing before this point writes.
    fn apply(self) -> Result<()> {
        for (start, end) in &self.ranges {
            let (lo, hi) = lex_range(start, end.as_deref());
            self.delete_members(&lo, &hi)?;
        }
        if !self.deletes.is_empty() {
            let fields: Vec<&[u8]> = self.deletes.iter().map(Vec::as_slice).collect();
            self.keys.delete(&fields)?;
        }
        if !self.puts.is_empty() {
            let seen = self.seen.borrow();
            let records: Vec<(&[u8], &[u8])> = self
                .puts
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_slice()))
                .collect();
            // Members known to be in the order already need no ZADD.
            let fresh: Vec<&[u8]> = self
                .puts
                .iter()
                .filter(|(k, _)| !matches!(seen.get(k), Some(Some(_))))
                .map(|(k, _)| k.as_slice())
                .collect();
            self.keys.put(&records, &fresh)?;
        }
        Ok(())
    }
}

/// The keys `start..end` (`end` none: unbounded) as a `ZRANGEBYLEX` range.
fn lex_range(start: &[u8], end: Option<&[u8]>) -> (Vec<u8>, Vec<u8>) {
    let lo = [b"[", start].concat();
    let hi = end.map_or(b"+".to_vec(), |e| [b"(", e].concat());
    (lo, hi)
}

impl RawRead for Records<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.seen.borrow().get(key) {
            return Ok(v.clone());
        }
        let v = self.keys.get(&[key])?.pop().flatten();
        self.seen.borrow_mut().insert(key.to_vec(), v.clone());
        Ok(v)
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        if end.is_some_and(|e| start >= e) {
            return Ok(());
        }
        let (mut lo, mut hi) = lex_range(start, end);
        loop {
            let keys = self.keys.members(&lo, &hi, reverse, BATCH)?;
            let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            let values = self.keys.get(&refs)?;
            for (k, v) in keys.iter().zip(values) {
                if let Some(v) = v
                    && !visit(k, &v)
                {
                    return Ok(());
                }
            }
            match keys.last() {
                Some(last) if keys.len() == BATCH => {
                    let next = [b"(", last.as_slice()].concat();
                    if reverse { hi = next } else { lo = next }
                }
                _ => return Ok(()),
            }
        }
    }
}

impl RawWrite for Records<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.puts.push((key.to_vec(), value.to_vec()));
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.deletes.push(key.to_vec());
        Ok(())
    }

    /// Buffered like every write; [`Records::apply`] deletes ranges first,
    /// as the overlay orders them.
    fn delete_range(&mut self, start: &[u8], end: Option<&[u8]>) -> Result<()> {
        if end.is_none_or(|e| start < e) {
            self.ranges.push((start.to_vec(), end.map(<[u8]>::to_vec)));
        }
        Ok(())
    }
}

/// The error answer for `e`, packed as [`run`] answers.
pub fn packed_error(e: &StateError) -> Vec<u8> {
    packed(&error_answer(e))
}

/// An answer packed as [`run`] answers and the marker keeps it.
fn packed(answer: &Value) -> Vec<u8> {
    // Most answers fit: grown from empty, the buffer cost more than the
    // packing (callgrind).
    let mut out = Vec::with_capacity(128);
    pack(answer, &mut out);
    out
}

/// Run one call of the module's command on the owner's keys (its hash,
/// sorted set and the request's marker) with the arguments after them; the
/// answer is the library's (`{'K', results}` or `{'E', code, index, …}`),
/// packed as the marker keeps it ([`answer_of`] unpacks it).
pub fn run(keys: &dyn OwnerKeys, args: &[&[u8]]) -> Vec<u8> {
    let mut a = Args::new(args);
    // The attempt ('f' first, 'R' asked again after its answer was lost)
    // does not change what runs: see below.
    let name = match (a.bytes(), a.bytes()) {
        (Ok(_attempt), Ok(name)) => name,
        (Err(e), _) | (_, Err(e)) => return packed_error(&e),
    };
    if name != b"commit" {
        return packed_error(&StateError::Internal(format!(
            "{COMMAND} runs commits only, not {:?}",
            String::from_utf8_lossy(name)
        )));
    }
    // A request whose answer is kept ran already: a retry ('R'), or a
    // first attempt ('f') delivered twice — redis-rs's cluster client sends
    // a command again when its connection drops, and a late first attempt
    // can arrive after its retry. Either gets the kept answer; the write
    // is not applied again.
    match keys.answer() {
        Ok(None) => {}
        // A marker that does not decode is not a reason to apply the
        // write a second time.
        Ok(Some(seen)) if unpack(&seen).is_none() => {
            return packed_error(&StateError::Internal(
                "the answer kept for this request is damaged; the write may have been applied"
                    .into(),
            ));
        }
        Ok(Some(seen)) => return seen,
        Err(e) => return packed_error(&e),
    }
    let answer = match commit(keys, &mut a) {
        Ok(results) => packed(&results_answer(&results)),
        Err(e) => packed_error(&e),
    };
    if let Err(e) = keys.keep_answer(&answer) {
        return packed_error(&e);
    }
    answer
}

/// One commit of ops on one scope, as `commands.commit` in `lua/main.lua`.
fn commit(keys: &dyn OwnerKeys, a: &mut Args) -> Result<Vec<OpResult>> {
    let scope = read_scope(a)?;
    let now = a.time()?;
    let nonce: [u8; 8] = a
        .bytes()?
        .try_into()
        .map_err(|_| StateError::invalid("wasmstate.commit: a nonce of 8 bytes"))?;
    let limits = Limits {
        instance_quota_bytes: a.num()?,
        account_quota_bytes: a.num()?,
        watch_queue: a.num()?,
        max_sessions: a.num()?,
        max_reply_bytes: a.num()?,
        ..Limits::default()
    };
    let origin = Some(a.text()?)
        .filter(|o| !o.is_empty())
        .map(str::to_string);
    let ops = read_ops(a, now)?;
    if !a.done() {
        return Err(StateError::invalid("wasmstate.commit: arguments left over"));
    }
    let sk = ScopeKeys::new(&scope);
    let mut records = Records::new(keys);
    // What every op reads first, in one round: the etag counter, the
    // owner's usage and watchers, the session's record, the keys' metas.
    let prefix = sk.prefix();
    let mut first = vec![layout::COUNTER.to_vec()];
    if let Some(owner) = layout::owner_of(prefix) {
        first.push(layout::usage_key(owner));
    }
    first.push(layout::watchers_key(layout::watch_prefix_of(prefix)));
    if let Scope::Session { instance, id } = &scope {
        first.push(layout::session_key(instance, id));
    }
    first.extend(ops.iter().map(|op| sk.meta(&op.key)));
    records.prefetch(&first)?;
    let results = {
        let mut overlay = Overlay::new(&mut records);
        let mut cx = WriteCx::new(&mut overlay, now, &limits).with_etags(Etags::Owner { nonce });
        cx.watch.origin = origin;
        keyspace::ensure_scope(cx.r(), &scope, now)?;
        let results = ops::apply_all(&mut cx, &sk, &ops)?;
        cx.finish()?;
        overlay.flush()?;
        results
    };
    records.apply()?;
    Ok(results)
}

/// An answer as the marker keeps it: MessagePack as the Lua library's
/// `cmsgpack.pack` writes it (a missing value is `false`, text is `str`),
/// so a retry finds the first answer whichever of the two made it.
fn pack(v: &Value, out: &mut Vec<u8>) {
    use rmp::encode;
    // Writing to a Vec cannot fail, so the results are not looked at.
    match v {
        Value::Nil => {
            let _ = encode::write_bool(out, false);
        }
        Value::Int(n) => {
            let _ = encode::write_sint(out, *n);
        }
        Value::BulkString(b) => {
            let _ = encode::write_str_len(out, b.len() as u32);
            out.extend_from_slice(b);
        }
        Value::Array(items) => {
            let _ = encode::write_array_len(out, items.len() as u32);
            for i in items {
                pack(i, out);
            }
        }
        // Answers are built of the four kinds above only.
        other => pack(&Value::BulkString(format!("{other:?}").into_bytes()), out),
    }
}

/// A marker's answer (`pack`, or the Lua library's `cmsgpack.pack`), as
/// Redis would have answered it; `None` if it is not one (other kinds,
/// cut short, bytes left over, nested deeper than any answer).
///
/// Read straight into redis values (every write's answer passes here): a
/// generic MessagePack value tree first cost the host 5 % more
/// instructions per `set` and 20 % more per 10-op transaction (callgrind).
fn unpack(mut b: &[u8]) -> Option<Value> {
    let v = unpack_value(&mut b, 0)?;
    b.is_empty().then_some(v)
}

/// Deeper than any answer nests (4 levels); bounds the recursion on
/// damaged bytes.
const MAX_DEPTH: u32 = 32;

fn unpack_value(b: &mut &[u8], depth: u32) -> Option<Value> {
    use rmp::Marker;
    fn take<const N: usize>(b: &mut &[u8]) -> Option<[u8; N]> {
        let (head, tail) = b.split_first_chunk::<N>()?;
        *b = tail;
        Some(*head)
    }
    fn bytes(b: &mut &[u8], n: usize) -> Option<Value> {
        let head = b.get(..n)?;
        *b = &b[n..];
        Some(Value::BulkString(head.to_vec()))
    }
    fn array(b: &mut &[u8], n: usize, depth: u32) -> Option<Value> {
        if depth >= MAX_DEPTH {
            return None;
        }
        // Each item takes a byte at least: a claimed length beyond the
        // bytes left is damage, not a reason to reserve memory.
        let mut items = Vec::with_capacity(n.min(b.len()));
        for _ in 0..n {
            items.push(unpack_value(b, depth + 1)?);
        }
        Some(Value::Array(items))
    }
    let len8 = |b: &mut &[u8]| take::<1>(b).map(|[n]| usize::from(n));
    let len16 = |b: &mut &[u8]| take(b).map(|n| usize::from(u16::from_be_bytes(n)));
    let len32 = |b: &mut &[u8]| take(b).map(|n| u32::from_be_bytes(n) as usize);
    let marker = rmp::decode::read_marker(b).ok()?;
    Some(match marker {
        Marker::Null | Marker::False => Value::Nil,
        Marker::True => Value::Int(1),
        Marker::FixPos(n) => Value::Int(n.into()),
        Marker::FixNeg(n) => Value::Int(n.into()),
        Marker::U8 => Value::Int(take::<1>(b)?[0].into()),
        Marker::U16 => Value::Int(u16::from_be_bytes(take(b)?).into()),
        Marker::U32 => Value::Int(u32::from_be_bytes(take(b)?).into()),
        Marker::U64 => Value::Int(i64::try_from(u64::from_be_bytes(take(b)?)).ok()?),
        Marker::I8 => Value::Int(i8::from_be_bytes(take(b)?).into()),
        Marker::I16 => Value::Int(i16::from_be_bytes(take(b)?).into()),
        Marker::I32 => Value::Int(i32::from_be_bytes(take(b)?).into()),
        Marker::I64 => Value::Int(i64::from_be_bytes(take(b)?)),
        // Lua numbers are doubles; Redis truncates them to integers.
        Marker::F32 => Value::Int(f32::from_be_bytes(take(b)?) as i64),
        Marker::F64 => Value::Int(f64::from_be_bytes(take(b)?) as i64),
        Marker::FixStr(n) => bytes(b, n.into())?,
        Marker::Str8 | Marker::Bin8 => {
            let n = len8(b)?;
            bytes(b, n)?
        }
        Marker::Str16 | Marker::Bin16 => {
            let n = len16(b)?;
            bytes(b, n)?
        }
        Marker::Str32 | Marker::Bin32 => {
            let n = len32(b)?;
            bytes(b, n)?
        }
        Marker::FixArray(n) => array(b, n.into(), depth)?,
        Marker::Array16 => {
            let n = len16(b)?;
            array(b, n, depth)?
        }
        Marker::Array32 => {
            let n = len32(b)?;
            array(b, n, depth)?
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redis::script;
    use crate::store::types::{Condition, ExpireMode, Op, OpKind, OpOutput};
    use std::time::Duration;

    #[test]
    fn ops_read_back_as_written() {
        let now = 1_700_000_000_000;
        let ops = vec![
            Op {
                key: "k".into(),
                kind: OpKind::Set {
                    value: b"v".to_vec(),
                    ttl: Some(Duration::from_millis(1500)),
                },
                condition: Some(Condition::IfMatch("abcd12340000000000000001".into())),
            },
            Op::new(
                "a",
                OpKind::Set {
                    value: vec![],
                    ttl: None,
                },
            ),
            Op::new(
                "b",
                OpKind::Expire {
                    seconds: 30,
                    mode: ExpireMode::Gt,
                },
            ),
            Op::new(
                "c",
                OpKind::Expire {
                    seconds: 0,
                    mode: ExpireMode::Lt,
                },
            ),
            Op::new("m", OpKind::MapSet(vec![("f".into(), b"1".to_vec())])),
            Op::new("m", OpKind::MapDelete(vec!["f".into(), "g".into()])),
            Op::new(
                "m",
                OpKind::MapIncrement {
                    field: "n".into(),
                    delta: -3,
                },
            ),
            Op::new("l", OpKind::ListAppend(vec![b"x".to_vec(), vec![]])),
            Op::new("l", OpKind::ListPrepend(vec![b"y".to_vec()])),
            Op::new("l", OpKind::ListStartPop(2)),
            Op::new("l", OpKind::ListEndPop(u64::MAX)),
            Op::new(
                "l",
                OpKind::ListRemove {
                    value: b"x".to_vec(),
                    count: -1,
                },
            ),
            Op::new("l", OpKind::ListTrim { start: 0, stop: -2 }),
            Op::new(
                "l",
                OpKind::ListInsert {
                    before: true,
                    pivot: b"p".to_vec(),
                    value: b"q".to_vec(),
                },
            ),
            Op::new(
                "l",
                OpKind::ListSet {
                    index: -1,
                    value: b"z".to_vec(),
                },
            ),
            Op::new("n", OpKind::Increment(i64::MIN)),
            Op {
                key: "d".into(),
                kind: OpKind::Delete,
                condition: Some(Condition::IfExists),
            },
            Op {
                key: "e".into(),
                kind: OpKind::Persist,
                condition: Some(Condition::IfAbsent),
            },
            Op::new("f", OpKind::Check),
        ];
        let mut args = Vec::new();
        script::op_args(&ops, now, &mut args).unwrap();
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let mut a = Args::new(&refs);
        assert_eq!(read_ops(&mut a, now).unwrap(), ops);
        assert!(a.done());
        // Bad input is an error, not a panic.
        for cut in 0..refs.len() {
            let mut a = Args::new(&refs[..cut]);
            assert!(read_ops(&mut a, now).is_err(), "cut at {cut}");
        }
    }

    /// The generic decoder `unpack` replaced (a MessagePack value tree,
    /// then redis values): the model it must agree with.
    fn unpack_model(mut b: &[u8]) -> Option<Value> {
        fn value(v: rmpv::Value) -> Option<Value> {
            Some(match v {
                rmpv::Value::Nil | rmpv::Value::Boolean(false) => Value::Nil,
                rmpv::Value::Boolean(true) => Value::Int(1),
                rmpv::Value::Integer(n) => Value::Int(n.as_i64()?),
                rmpv::Value::F64(f) => Value::Int(f as i64),
                rmpv::Value::F32(f) => Value::Int(f as i64),
                rmpv::Value::String(s) => Value::BulkString(s.into_bytes()),
                rmpv::Value::Binary(b) => Value::BulkString(b),
                rmpv::Value::Array(items) => {
                    Value::Array(items.into_iter().map(value).collect::<Option<_>>()?)
                }
                _ => return None,
            })
        }
        let v = rmpv::decode::read_value(&mut b).ok()?;
        b.is_empty().then_some(v).and_then(value)
    }

    /// 0xc1 is reserved ("never used"): where a value belongs it is
    /// damage, not the nil a generic decoder reads it as; inside a string
    /// it is a byte like any other.
    #[test]
    fn the_reserved_marker_is_not_an_answer() {
        assert_eq!(
            rmpv::decode::read_value(&mut &[0xc1u8][..]).ok(),
            Some(rmpv::Value::Nil)
        );
        assert_eq!(unpack(&[0xc1]), None);
        assert_eq!(unpack(&[0x92, 0x01, 0xc1]), None);
        assert_eq!(
            unpack(&[0x92, 0xa1, 0xc1, 0xc0]),
            Some(Value::Array(vec![
                Value::BulkString(vec![0xc1]),
                Value::Nil
            ]))
        );
    }

    fn msgpack() -> impl proptest::strategy::Strategy<Value = rmpv::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(rmpv::Value::Nil),
            any::<bool>().prop_map(rmpv::Value::Boolean),
            any::<i64>().prop_map(rmpv::Value::from),
            any::<u64>().prop_map(rmpv::Value::from),
            (-1000i64..1000).prop_map(rmpv::Value::from),
            any::<f64>().prop_map(rmpv::Value::F64),
            any::<f32>().prop_map(rmpv::Value::F32),
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(rmpv::Value::Binary),
            ".{0,40}".prop_map(rmpv::Value::from),
            Just(rmpv::Value::Map(vec![])),
        ];
        leaf.prop_recursive(5, 64, 20, |inner| {
            proptest::collection::vec(inner, 0..20).prop_map(rmpv::Value::Array)
        })
    }

    proptest::proptest! {
        /// Any MessagePack (what Lua's `cmsgpack.pack` or `pack` wrote, or
        /// damage) reads as the generic decoder reads it; cut short or
        /// with bytes left over, it is not an answer.
        #[test]
        fn unpack_reads_as_a_generic_decoder(v in msgpack(), cut in 0usize..8, extra in proptest::option::of(proptest::prelude::any::<u8>())) {
            let mut bytes = Vec::new();
            rmpv::encode::write_value(&mut bytes, &v).unwrap();
            proptest::prop_assert_eq!(unpack(&bytes), unpack_model(&bytes));
            let short = &bytes[..bytes.len().saturating_sub(cut.max(1))];
            proptest::prop_assert_eq!(unpack(short), None);
            if let Some(x) = extra {
                bytes.push(x);
                proptest::prop_assert_eq!(unpack(&bytes), None);
            }
        }

        /// Arbitrary bytes never panic and read as the generic decoder
        /// reads them (short enough to stay within `MAX_DEPTH`) — except
        /// that the reserved marker 0xc1 ("never used" in the MessagePack
        /// specification), which the generic decoder reads as nil, is not
        /// an answer: where the bytes hold one, ours is the model's or
        /// none (a 0xc1 inside a string is data, and reads as the model's).
        #[test]
        fn unpack_of_any_bytes_is_the_models(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..32)) {
            let (ours, model) = (unpack(&bytes), unpack_model(&bytes));
            if bytes.contains(&0xc1) {
                proptest::prop_assert!(ours.is_none() || ours == model, "{ours:?} against {model:?}");
            } else {
                proptest::prop_assert_eq!(ours, model);
            }
        }

        /// Packed arguments read back as they were (any bytes, any count,
        /// sizes across the 8/16/32-bit length forms); cut short or with a
        /// byte left over, they are refused.
        #[test]
        fn packed_args_read_back_exactly(
            args in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), 0..40),
            big in proptest::option::of(70_000usize..70_100),
            cut in 1usize..8,
            extra in proptest::prelude::any::<u8>(),
        ) {
            let mut args = args;
            if let Some(n) = big {
                args.push(vec![7; n]);
            }
            let packed = pack_args(&args);
            proptest::prop_assert!(packed_len(&args) >= packed.len() as u64);
            // What the generic decoder reads: an array of binary strings.
            let generic = rmpv::decode::read_value(&mut packed.as_slice()).unwrap();
            let expected: Vec<rmpv::Value> = args.iter().cloned().map(rmpv::Value::Binary).collect();
            proptest::prop_assert_eq!(generic, rmpv::Value::Array(expected));
            let back = unpack_args(&packed).unwrap();
            proptest::prop_assert_eq!(back, args.iter().map(Vec::as_slice).collect::<Vec<_>>());
            if !args.is_empty() {
                proptest::prop_assert_eq!(unpack_args(&packed[..packed.len().saturating_sub(cut)]), None);
            }
            let mut longer = packed.clone();
            longer.push(extra);
            proptest::prop_assert_eq!(unpack_args(&longer), None);
        }

        /// Any bytes: arguments only when they are an array of binary
        /// strings and nothing else (as the generic decoder reads them);
        /// never a panic.
        #[test]
        fn unpack_args_of_any_bytes_is_the_models(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..32)) {
            let mut rest = bytes.as_slice();
            let model = match rmpv::decode::read_value(&mut rest) {
                Ok(rmpv::Value::Array(items)) if rest.is_empty() => items
                    .into_iter()
                    .map(|i| match i {
                        rmpv::Value::Binary(b) => Some(b),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>(),
                _ => None,
            };
            let ours = unpack_args(&bytes).map(|a| a.into_iter().map(<[u8]>::to_vec).collect::<Vec<_>>());
            proptest::prop_assert_eq!(ours, model);
        }
    }

    #[test]
    fn redis_never_echoes_the_packed_arguments_of_an_unknown_command() {
        // Redis echoes at most 128 bytes of arguments, from the first key
        // on; the fingerprint comes before the packed arguments.
        assert!(fingerprint().len() >= 128, "{}", fingerprint().len());
        assert!(fingerprint().is_ascii());
    }

    #[test]
    fn a_huge_claimed_argument_count_is_refused() {
        // array32 of 2^32-1 items, then one byte.
        assert_eq!(unpack_args(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc4]), None);
        // A binary string claiming more bytes than there are.
        assert_eq!(unpack_args(&[0x91, 0xc6, 0x7f, 0xff, 0xff, 0xff, 1]), None);
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let mut bytes = vec![0x91u8; 100_000];
        bytes.push(0xc0);
        assert_eq!(unpack(&bytes), None);
        let mut ok = vec![0x91u8; 4];
        ok.push(0x01);
        assert!(unpack(&ok).is_some());
    }

    #[test]
    fn answers_read_back_as_the_library_gives_them() {
        let results = vec![
            OpResult {
                etag: Some("abcd12340000000000000002".into()),
                output: OpOutput::None,
            },
            OpResult {
                etag: None,
                output: OpOutput::Bool(true),
            },
            OpResult {
                etag: None,
                output: OpOutput::Int(-7),
            },
            OpResult {
                etag: None,
                output: OpOutput::Values(vec![b"a".to_vec(), vec![]]),
            },
        ];
        let answer = results_answer(&results);
        let mut packed = Vec::new();
        pack(&answer, &mut packed);
        let back = unpack(&packed).unwrap();
        assert_eq!(back, answer);
        assert_eq!(unpack(b"\x92\xa1"), None);
        assert_eq!(
            script::op_results(script::payload(back).unwrap()).unwrap(),
            results
        );
        for e in [
            StateError::Aborted {
                index: 3,
                source: Box::new(StateError::QuotaExceeded {
                    owner: "instance \"a\"".into(),
                    would_use: 9,
                    quota: 8,
                }),
            },
            StateError::WrongType {
                expected: "map",
                found: "list",
            },
            StateError::IndexOutOfRange { len: 4 },
            StateError::InvalidEtag("x".into()),
            StateError::EtagMismatch,
            StateError::NoSuchSession,
            StateError::TooManySessions {
                instance: "a".into(),
                max: 2,
            },
            StateError::InvalidArgument("bad".into()),
            StateError::ReplyTooLarge { max: 1 << 20 },
        ] {
            let back = script::payload(error_answer(&e)).unwrap_err();
            assert_eq!(back.to_string(), e.to_string());
        }
    }
}
