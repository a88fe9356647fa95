//! Op-sequence model test of the state engine on a real redb store (one
//! fresh file per input, manual clock): up to 64 steps of value, counter,
//! map and list operations with conditions and etags, multi-op
//! transactions, TTLs and clock moves on three keys, each checked against a
//! plain in-memory model of SPEC.md's rules (results, errors, etags, TTLs,
//! and the whole key space after every step). "Raw" steps throw arbitrary
//! keys, sizes, numbers, cursors, globs, queries and session ids at the same
//! store without a model: they must give `Ok` or a typed error (never a
//! panic, never `internal`).

#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wasm_state::store::{
    Condition, ExpireMode, KeyKind, KeyListing, Op, OpKind, OpOutput, OpResult, ScopeHandle,
    StateError, Store,
};

const KEYS: [&str; 3] = ["a", "b", "c"];
const MAX_STEPS: usize = 64;
const MAX_TXN: usize = 8;

// ---- input ----

#[derive(Arbitrary, Debug, Clone, Copy)]
struct K(u8);

impl K {
    fn name(self) -> &'static str {
        KEYS[(self.0 % 3) as usize]
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Bytes {
    Letter(u8),
    Num(i8),
    Raw(Vec<u8>),
}

impl Bytes {
    fn get(&self) -> Vec<u8> {
        match self {
            Bytes::Letter(v) => vec![b'a' + v % 4],
            Bytes::Num(n) => n.to_string().into_bytes(),
            Bytes::Raw(v) => v.iter().take(64).copied().collect(),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Num {
    Small(i8),
    Min,
    Max,
    Any(i64),
}

impl Num {
    fn get(self) -> i64 {
        match self {
            Num::Small(n) => n as i64,
            Num::Min => i64::MIN,
            Num::Max => i64::MAX,
            Num::Any(n) => n,
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Tag {
    Current,
    Stale(u8),
    Text(String),
}

#[derive(Arbitrary, Debug, Clone)]
enum Cond {
    None,
    IfMatch(Tag),
    IfAbsent,
    IfExists,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Mode {
    Always,
    Nx,
    Xx,
    Gt,
    Lt,
}

impl From<Mode> for ExpireMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Always => ExpireMode::Always,
            Mode::Nx => ExpireMode::Nx,
            Mode::Xx => ExpireMode::Xx,
            Mode::Gt => ExpireMode::Gt,
            Mode::Lt => ExpireMode::Lt,
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Kind {
    Set {
        value: Bytes,
        ttl_ms: Option<u16>,
    },
    Delete,
    Incr(Num),
    Expire {
        seconds: i8,
        mode: Mode,
    },
    Persist,
    MapSet(Vec<(u8, Bytes)>),
    MapDelete(Vec<u8>),
    MapIncr {
        field: u8,
        delta: Num,
    },
    ListAppend(Vec<Bytes>),
    ListPrepend(Vec<Bytes>),
    StartPop(u8),
    EndPop(u8),
    ListRemove {
        value: Bytes,
        count: i8,
    },
    ListTrim {
        start: Num,
        stop: Num,
    },
    ListInsert {
        before: bool,
        pivot: Bytes,
        value: Bytes,
    },
    ListSet {
        index: Num,
        value: Bytes,
    },
    Check,
}

fn field(f: u8) -> String {
    ((b'p' + f % 4) as char).to_string()
}

impl Kind {
    /// The store op (without its condition).
    fn op_kind(&self) -> OpKind {
        match self {
            Kind::Set { value, ttl_ms } => OpKind::Set {
                value: value.get(),
                ttl: ttl_ms.map(|ms| Duration::from_millis(ms as u64)),
            },
            Kind::Delete => OpKind::Delete,
            Kind::Incr(d) => OpKind::Increment(d.get()),
            Kind::Expire { seconds, mode } => OpKind::Expire {
                seconds: *seconds as i64,
                mode: (*mode).into(),
            },
            Kind::Persist => OpKind::Persist,
            Kind::MapSet(e) => OpKind::MapSet(
                e.iter()
                    .take(MAX_TXN)
                    .map(|(f, v)| (field(*f), v.get()))
                    .collect(),
            ),
            Kind::MapDelete(f) => {
                OpKind::MapDelete(f.iter().take(MAX_TXN).map(|f| field(*f)).collect())
            }
            Kind::MapIncr { field: f, delta } => OpKind::MapIncrement {
                field: field(*f),
                delta: delta.get(),
            },
            Kind::ListAppend(v) => {
                OpKind::ListAppend(v.iter().take(MAX_TXN).map(Bytes::get).collect())
            }
            Kind::ListPrepend(v) => {
                OpKind::ListPrepend(v.iter().take(MAX_TXN).map(Bytes::get).collect())
            }
            Kind::StartPop(n) => OpKind::ListStartPop(*n as u64 % 6),
            Kind::EndPop(n) => OpKind::ListEndPop(*n as u64 % 6),
            Kind::ListRemove { value, count } => OpKind::ListRemove {
                value: value.get(),
                count: *count as i64,
            },
            Kind::ListTrim { start, stop } => OpKind::ListTrim {
                start: start.get(),
                stop: stop.get(),
            },
            Kind::ListInsert {
                before,
                pivot,
                value,
            } => OpKind::ListInsert {
                before: *before,
                pivot: pivot.get(),
                value: value.get(),
            },
            Kind::ListSet { index, value } => OpKind::ListSet {
                index: index.get(),
                value: value.get(),
            },
            Kind::Check => OpKind::Check,
        }
    }
}

/// Arbitrary arguments for the unmodelled steps.
#[derive(Arbitrary, Debug, Clone)]
enum RawKind {
    Set {
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    },
    Delete,
    Incr(i64),
    Expire {
        seconds: i64,
        mode: Mode,
    },
    Persist,
    MapSet(Vec<(String, Vec<u8>)>),
    MapDelete(Vec<String>),
    MapIncr {
        field: String,
        delta: i64,
    },
    ListAppend(Vec<Vec<u8>>),
    ListPrepend(Vec<Vec<u8>>),
    StartPop(u64),
    EndPop(u64),
    ListRemove {
        value: Vec<u8>,
        count: i64,
    },
    ListTrim {
        start: i64,
        stop: i64,
    },
    ListInsert {
        before: bool,
        pivot: Vec<u8>,
        value: Vec<u8>,
    },
    ListSet {
        index: i64,
        value: Vec<u8>,
    },
    Check,
}

impl RawKind {
    fn op_kind(self) -> OpKind {
        match self {
            RawKind::Set { value, ttl_ms } => OpKind::Set {
                value,
                ttl: ttl_ms.map(Duration::from_millis),
            },
            RawKind::Delete => OpKind::Delete,
            RawKind::Incr(d) => OpKind::Increment(d),
            RawKind::Expire { seconds, mode } => OpKind::Expire {
                seconds,
                mode: mode.into(),
            },
            RawKind::Persist => OpKind::Persist,
            RawKind::MapSet(e) => OpKind::MapSet(e),
            RawKind::MapDelete(f) => OpKind::MapDelete(f),
            RawKind::MapIncr { field, delta } => OpKind::MapIncrement { field, delta },
            RawKind::ListAppend(v) => OpKind::ListAppend(v),
            RawKind::ListPrepend(v) => OpKind::ListPrepend(v),
            RawKind::StartPop(n) => OpKind::ListStartPop(n),
            RawKind::EndPop(n) => OpKind::ListEndPop(n),
            RawKind::ListRemove { value, count } => OpKind::ListRemove { value, count },
            RawKind::ListTrim { start, stop } => OpKind::ListTrim { start, stop },
            RawKind::ListInsert {
                before,
                pivot,
                value,
            } => OpKind::ListInsert {
                before,
                pivot,
                value,
            },
            RawKind::ListSet { index, value } => OpKind::ListSet { index, value },
            RawKind::Check => OpKind::Check,
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum RawCond {
    None,
    IfMatch(String),
    IfAbsent,
    IfExists,
}

impl RawCond {
    fn get(self) -> Option<Condition> {
        match self {
            RawCond::None => None,
            RawCond::IfMatch(e) => Some(Condition::IfMatch(e)),
            RawCond::IfAbsent => Some(Condition::IfAbsent),
            RawCond::IfExists => Some(Condition::IfExists),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Step {
    /// One modelled op (through `apply`).
    Op {
        key: K,
        kind: Kind,
        cond: Cond,
    },
    /// The same through the convenience methods (no condition).
    Call {
        key: K,
        kind: Kind,
    },
    /// A modelled transaction of up to 8 ops.
    Txn(Vec<(K, Kind, Cond)>),
    Get(K),
    MapGet(K, u8),
    ListIndex(K, Num),
    ListRange(K, Num, Num),
    Ttl(K),
    Advance(u16),
    AdvanceSeconds(u16),
    Sweep,
    /// Unmodelled: arbitrary key and arguments.
    Raw {
        key: String,
        kind: RawKind,
        cond: RawCond,
    },
    RawTxn(Vec<(String, RawKind, RawCond)>),
    RawGet(Vec<String>),
    RawKeys {
        prefix: Option<String>,
        start: Option<String>,
        end: Option<String>,
        reverse: bool,
        limit: Option<u32>,
        cursor: Option<String>,
    },
    RawScan {
        key: String,
        cursor: String,
        pattern: Option<String>,
        count: u32,
    },
    RawQuery(String),
    RawDeletePrefix(String),
    RawSession {
        instance: String,
        ttl: Option<u64>,
        id: String,
        extend: u64,
    },
}

/// A raw key never one of the model's.
fn raw_key(k: String) -> String {
    if KEYS.contains(&k.as_str()) {
        format!("raw:{k}")
    } else {
        k
    }
}

// ---- model ----

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Value(Vec<u8>),
    Map(BTreeMap<String, Vec<u8>>),
    List(VecDeque<Vec<u8>>),
}

impl Val {
    fn kind(&self) -> KeyKind {
        match self {
            Val::Value(_) => KeyKind::Value,
            Val::Map(_) => KeyKind::Map,
            Val::List(_) => KeyKind::List,
        }
    }
}

#[derive(Debug, Clone)]
struct Ent {
    val: Val,
    /// Absolute expiry (ms); it lives while `now <= exp`.
    exp: Option<u64>,
    /// Last etag the store reported.
    etag: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct Model {
    now: u64,
    keys: BTreeMap<&'static str, Ent>,
    /// Etags that were once current and no longer are.
    stale: Vec<String>,
}

/// An expected error: one of these codes.
type Codes = &'static str;

/// What a transaction should give: each op's output and whether it
/// wrote, and the model after it.
type TxnOutcome = (Vec<(OpOutput, bool)>, Model);

fn parse_int(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    let n: i64 = s.parse().ok()?;
    (n.to_string() == s).then_some(n)
}

/// Redis index rules.
fn norm(len: usize, start: i64, stop: i64) -> Option<(usize, usize)> {
    let len = len as i128;
    let (mut s, mut e) = (start as i128, stop as i128);
    if s < 0 {
        s += len;
    }
    if e < 0 {
        e += len;
    }
    if s < 0 {
        s = 0;
    }
    if s > e || s >= len {
        return None;
    }
    if e >= len {
        e = len - 1;
    }
    Some((s as usize, e as usize))
}

/// Does the store accept this etag's form (and has it issued it)?
fn etag_form(e: &str) -> bool {
    e.len() == 16
        && e.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        && u64::from_str_radix(e, 16).is_ok_and(|v| v > 0)
}

impl Model {
    fn expire_now(&mut self) {
        let now = self.now;
        let gone: Vec<&'static str> = self
            .keys
            .iter()
            .filter(|(_, e)| e.exp.is_some_and(|x| x < now))
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            if let Some(e) = self.keys.remove(k) {
                self.stale.extend(e.etag);
            }
        }
    }

    /// The concrete condition for `cond` on `key` now.
    fn condition(&self, key: &str, cond: &Cond) -> Option<Condition> {
        match cond {
            Cond::None => None,
            Cond::IfAbsent => Some(Condition::IfAbsent),
            Cond::IfExists => Some(Condition::IfExists),
            Cond::IfMatch(tag) => {
                let e = match tag {
                    Tag::Current => self
                        .keys
                        .get(key)
                        .and_then(|e| e.etag.clone())
                        .or_else(|| self.stale.last().cloned())
                        .unwrap_or_else(|| "ffffffffffffffff".into()),
                    Tag::Stale(i) if !self.stale.is_empty() => {
                        self.stale[*i as usize % self.stale.len()].clone()
                    }
                    Tag::Stale(_) => "0000000000000001".into(),
                    Tag::Text(t) => t.chars().take(20).collect(),
                };
                Some(Condition::IfMatch(e))
            }
        }
    }

    /// Argument errors (checked before any op runs).
    fn validate(op: &Op) -> Result<(), Codes> {
        match &op.kind {
            OpKind::Set { ttl: Some(t), .. } if t.is_zero() => Err("invalid-argument"),
            OpKind::MapSet(e) if e.is_empty() => Err("invalid-argument"),
            OpKind::ListAppend(v) | OpKind::ListPrepend(v) if v.is_empty() => {
                Err("invalid-argument")
            }
            OpKind::Check if op.condition.is_none() => Err("invalid-argument"),
            _ => Ok(()),
        }
    }

    fn check_condition(&self, key: &str, c: &Condition) -> Result<(), Codes> {
        let cur = self.keys.get(key);
        match c {
            Condition::IfAbsent if cur.is_some() => Err("already-exists"),
            Condition::IfExists if cur.is_none() => Err("not-found"),
            Condition::IfMatch(e) => {
                if !etag_form(e) {
                    return Err("invalid-etag");
                }
                if cur.and_then(|c| c.etag.as_deref()) == Some(e.as_str()) {
                    return Ok(());
                }
                if self.stale.contains(e) {
                    Err("etag-mismatch")
                } else {
                    // Never issued (invalid) or issued by a raw step.
                    Err("etag-mismatch|invalid-etag")
                }
            }
            _ => Ok(()),
        }
    }

    /// Apply one (validated) op; `Ok((output, wrote))`, `wrote` = the key's
    /// content or TTL changed (so its etag must).
    fn apply(&mut self, op: &Op) -> Result<(OpOutput, bool), Codes> {
        let key: &'static str = KEYS.iter().find(|k| **k == op.key).copied().unwrap();
        if let Some(c) = &op.condition {
            self.check_condition(key, c)?;
        }
        let now = self.now;
        let exists = self.keys.contains_key(key);
        let kind = self.keys.get(key).map(|e| e.val.kind());
        let wrong = |want: KeyKind| kind.is_some_and(|k| k != want);
        let out = match &op.kind {
            OpKind::Set { value, ttl } => {
                let exp = ttl.map(|t| now + t.as_millis() as u64);
                let etag = self.keys.get(key).and_then(|e| e.etag.clone());
                self.keys.insert(
                    key,
                    Ent {
                        val: Val::Value(value.clone()),
                        exp,
                        etag,
                    },
                );
                (OpOutput::None, true)
            }
            OpKind::Delete => {
                if let Some(e) = self.keys.remove(key) {
                    self.stale.extend(e.etag);
                }
                (OpOutput::Bool(exists), exists)
            }
            OpKind::Increment(d) => {
                if wrong(KeyKind::Value) {
                    return Err("wrong-type");
                }
                let cur = match self.keys.get(key).map(|e| &e.val) {
                    None => 0,
                    Some(Val::Value(b)) => parse_int(b).ok_or("not-an-integer")?,
                    Some(_) => unreachable!(),
                };
                let n = cur.checked_add(*d).ok_or("overflow")?;
                let v = Val::Value(n.to_string().into_bytes());
                match self.keys.get_mut(key) {
                    Some(e) => e.val = v,
                    None => {
                        self.keys.insert(
                            key,
                            Ent {
                                val: v,
                                exp: None,
                                etag: None,
                            },
                        );
                    }
                }
                (OpOutput::Int(n), true)
            }
            OpKind::Expire { seconds, mode } => {
                let Some(e) = self.keys.get_mut(key) else {
                    return Ok((OpOutput::Bool(false), false));
                };
                let at = now as i64 + seconds * 1000;
                let applies = match mode {
                    ExpireMode::Always => true,
                    ExpireMode::Nx => e.exp.is_none(),
                    ExpireMode::Xx => e.exp.is_some(),
                    ExpireMode::Gt => e.exp.is_some_and(|c| at > c as i64),
                    ExpireMode::Lt => e.exp.is_none_or(|c| at < c as i64),
                };
                if !applies {
                    return Ok((OpOutput::Bool(false), false));
                }
                if *seconds <= 0 {
                    if let Some(e) = self.keys.remove(key) {
                        self.stale.extend(e.etag);
                    }
                } else {
                    e.exp = Some(at as u64);
                }
                (OpOutput::Bool(true), true)
            }
            OpKind::Persist => match self.keys.get_mut(key) {
                Some(e) if e.exp.is_some() => {
                    e.exp = None;
                    (OpOutput::Bool(true), true)
                }
                _ => (OpOutput::Bool(false), false),
            },
            OpKind::MapSet(entries) => {
                if wrong(KeyKind::Map) {
                    return Err("wrong-type");
                }
                let e = self.keys.entry(key).or_insert(Ent {
                    val: Val::Map(BTreeMap::new()),
                    exp: None,
                    etag: None,
                });
                let Val::Map(m) = &mut e.val else {
                    unreachable!()
                };
                let mut added = 0;
                for (f, v) in entries {
                    if m.insert(f.clone(), v.clone()).is_none() {
                        added += 1;
                    }
                }
                (OpOutput::Int(added), true)
            }
            OpKind::MapDelete(fields) => {
                if wrong(KeyKind::Map) {
                    return Err("wrong-type");
                }
                let Some(Ent {
                    val: Val::Map(m), ..
                }) = self.keys.get_mut(key)
                else {
                    return Ok((OpOutput::Int(0), false));
                };
                let n = fields.iter().filter(|f| m.remove(*f).is_some()).count() as i64;
                (OpOutput::Int(n), n > 0)
            }
            OpKind::MapIncrement { field, delta } => {
                if wrong(KeyKind::Map) {
                    return Err("wrong-type");
                }
                let cur = match self.keys.get(key).map(|e| &e.val) {
                    Some(Val::Map(m)) => match m.get(field) {
                        None => 0,
                        Some(b) => parse_int(b).ok_or("not-an-integer")?,
                    },
                    _ => 0,
                };
                let n = cur.checked_add(*delta).ok_or("overflow")?;
                let e = self.keys.entry(key).or_insert(Ent {
                    val: Val::Map(BTreeMap::new()),
                    exp: None,
                    etag: None,
                });
                let Val::Map(m) = &mut e.val else {
                    unreachable!()
                };
                m.insert(field.clone(), n.to_string().into_bytes());
                (OpOutput::Int(n), true)
            }
            OpKind::ListAppend(vs) | OpKind::ListPrepend(vs) => {
                if wrong(KeyKind::List) {
                    return Err("wrong-type");
                }
                let front = matches!(op.kind, OpKind::ListPrepend(_));
                let e = self.keys.entry(key).or_insert(Ent {
                    val: Val::List(VecDeque::new()),
                    exp: None,
                    etag: None,
                });
                let Val::List(l) = &mut e.val else {
                    unreachable!()
                };
                for v in vs {
                    if front {
                        l.push_front(v.clone());
                    } else {
                        l.push_back(v.clone());
                    }
                }
                (OpOutput::Int(l.len() as i64), true)
            }
            OpKind::ListStartPop(n) | OpKind::ListEndPop(n) => {
                if wrong(KeyKind::List) {
                    return Err("wrong-type");
                }
                let front = matches!(op.kind, OpKind::ListStartPop(_));
                let Some(Ent {
                    val: Val::List(l), ..
                }) = self.keys.get_mut(key)
                else {
                    return Ok((OpOutput::Values(vec![]), false));
                };
                let mut out = vec![];
                while (out.len() as u64) < *n {
                    match if front { l.pop_front() } else { l.pop_back() } {
                        Some(v) => out.push(v),
                        None => break,
                    }
                }
                let wrote = !out.is_empty();
                (OpOutput::Values(out), wrote)
            }
            OpKind::ListRemove { value, count } => {
                if wrong(KeyKind::List) {
                    return Err("wrong-type");
                }
                let Some(Ent {
                    val: Val::List(l), ..
                }) = self.keys.get_mut(key)
                else {
                    return Ok((OpOutput::Int(0), false));
                };
                let limit = if *count == 0 {
                    usize::MAX
                } else {
                    count.unsigned_abs() as usize
                };
                let mut idx: Vec<usize> = (0..l.len()).filter(|&i| l[i] == *value).collect();
                if *count < 0 {
                    idx.reverse();
                }
                idx.truncate(limit);
                idx.sort_unstable();
                for i in idx.iter().rev() {
                    l.remove(*i);
                }
                (OpOutput::Int(idx.len() as i64), !idx.is_empty())
            }
            OpKind::ListTrim { start, stop } => {
                if wrong(KeyKind::List) {
                    return Err("wrong-type");
                }
                let Some(Ent {
                    val: Val::List(l), ..
                }) = self.keys.get_mut(key)
                else {
                    return Ok((OpOutput::None, false));
                };
                let before = l.len();
                match norm(l.len(), *start, *stop) {
                    None => l.clear(),
                    Some((s, e)) => *l = l.iter().skip(s).take(e - s + 1).cloned().collect(),
                }
                let wrote = l.len() != before;
                (OpOutput::None, wrote)
            }
            OpKind::ListInsert {
                before,
                pivot,
                value,
            } => {
                if wrong(KeyKind::List) {
                    return Err("wrong-type");
                }
                let Some(Ent {
                    val: Val::List(l), ..
                }) = self.keys.get_mut(key)
                else {
                    return Ok((OpOutput::Int(0), false));
                };
                match l.iter().position(|x| x == pivot) {
                    None => (OpOutput::Int(-1), false),
                    Some(i) => {
                        l.insert(if *before { i } else { i + 1 }, value.clone());
                        (OpOutput::Int(l.len() as i64), true)
                    }
                }
            }
            OpKind::ListSet { index, value } => {
                if wrong(KeyKind::List) {
                    return Err("wrong-type");
                }
                let Some(Ent {
                    val: Val::List(l), ..
                }) = self.keys.get_mut(key)
                else {
                    return Err("not-found");
                };
                let len = l.len() as i128;
                let i = if *index < 0 {
                    len + *index as i128
                } else {
                    *index as i128
                };
                if i < 0 || i >= len {
                    return Err("index-out-of-range");
                }
                l[i as usize] = value.clone();
                (OpOutput::None, true)
            }
            OpKind::Check => (OpOutput::None, false),
        };
        // Redis deletes empty maps and lists.
        let empty = match self.keys.get(key).map(|e| &e.val) {
            Some(Val::Map(m)) => m.is_empty(),
            Some(Val::List(l)) => l.is_empty(),
            _ => false,
        };
        if empty && let Some(e) = self.keys.remove(key) {
            self.stale.extend(e.etag);
        }
        // A write retires the key's etag at once (a later op of the same
        // transaction that names it must fail); the new one is learnt from
        // the store (`observe`).
        if out.1
            && let Some(e) = self.keys.get_mut(key)
            && let Some(old) = e.etag.take()
        {
            self.stale.push(old);
        }
        Ok(out)
    }

    /// Take the etag the store reported for `key` after an op.
    fn observe(&mut self, key: &str, reported: Option<&String>, wrote: bool) {
        let Some(e) = self
            .keys
            .iter_mut()
            .find(|(k, _)| **k == key)
            .map(|(_, e)| e)
        else {
            assert!(
                reported.is_none(),
                "{key}: the store reports etag {reported:?} for a key the model says is gone"
            );
            return;
        };
        match reported {
            Some(r) => {
                if wrote {
                    assert!(
                        !self.stale.contains(r),
                        "{key}: a write reported the etag {r} the key had before"
                    );
                    assert_ne!(e.etag.as_ref(), Some(r), "{key}: a write kept the etag {r}");
                }
                if e.etag.as_ref() != Some(r) {
                    let old = e.etag.replace(r.clone());
                    self.stale.extend(old);
                }
            }
            None => assert!(
                !wrote,
                "{key}: a write to a key that still exists reported no etag"
            ),
        }
    }
}

fn code(e: &StateError) -> &'static str {
    common::check_err("op", e);
    e.code()
}

fn matches(expected: Codes, got: &str) -> bool {
    expected.split('|').any(|c| c == got)
}

// ---- the run ----

struct Run<'a> {
    store: &'a Store,
    clock: &'a wasm_state::store::ManualClock,
    s: ScopeHandle,
    model: Model,
}

impl Run<'_> {
    async fn single(&mut self, key: K, kind: &Kind, cond: &Cond) {
        let key = key.name();
        let mut op = Op::new(key, kind.op_kind());
        op.condition = self.model.condition(key, cond);
        let expected = Model::validate(&op).and_then(|()| {
            let mut m = self.model.clone();
            let r = m.apply(&op)?;
            Ok((r, m))
        });
        let got = self.s.apply(op.clone()).await;
        match (expected, got) {
            (Ok(((out, wrote), m)), Ok(r)) => {
                assert_eq!(r.output, out, "output of {op:?}");
                self.model = m;
                self.model.observe(key, r.etag.as_ref(), wrote);
            }
            (Err(want), Err(e)) => {
                let got = code(&e);
                assert!(matches(want, got), "{op:?}: expected {want}, got {e:?}");
            }
            (Ok(((out, _), _)), Err(e)) => {
                code(&e);
                panic!("{op:?}: expected {out:?}, got error {e:?}");
            }
            (Err(want), Ok(r)) => panic!("{op:?}: expected {want}, got {r:?}"),
        }
    }

    /// The same op through the handle's convenience method.
    async fn call(&mut self, key: K, kind: &Kind) {
        let k = key.name();
        let op = Op::new(k, kind.op_kind());
        let expected = Model::validate(&op).and_then(|()| {
            let mut m = self.model.clone();
            let r = m.apply(&op)?;
            Ok((r, m))
        });
        let s = &self.s;
        let got: Result<OpOutput, StateError> = match op.kind.clone() {
            OpKind::Set { value, ttl } => s
                .set_with(
                    k,
                    value,
                    wasm_state::store::SetOptions {
                        ttl,
                        condition: None,
                    },
                )
                .await
                .map(|_| OpOutput::None),
            OpKind::Delete => s.delete(k).await.map(OpOutput::Bool),
            OpKind::Increment(d) => s.increment(k, d).await.map(OpOutput::Int),
            OpKind::Expire { seconds, mode } => {
                s.expire(k, seconds, mode).await.map(OpOutput::Bool)
            }
            OpKind::Persist => s.persist(k).await.map(OpOutput::Bool),
            OpKind::MapSet(e) => s.map_set(k, e).await.map(|n| OpOutput::Int(n as i64)),
            OpKind::MapDelete(f) => {
                let f: Vec<&str> = f.iter().map(String::as_str).collect();
                s.map_delete(k, &f).await.map(|n| OpOutput::Int(n as i64))
            }
            OpKind::MapIncrement { field, delta } => {
                s.map_increment(k, &field, delta).await.map(OpOutput::Int)
            }
            OpKind::ListAppend(v) => s.list_append(k, v).await.map(|n| OpOutput::Int(n as i64)),
            OpKind::ListPrepend(v) => s.list_prepend(k, v).await.map(|n| OpOutput::Int(n as i64)),
            OpKind::ListStartPop(n) => s.list_start_pop(k, n).await.map(OpOutput::Values),
            OpKind::ListEndPop(n) => s.list_end_pop(k, n).await.map(OpOutput::Values),
            OpKind::ListRemove { value, count } => s
                .list_remove(k, value, count)
                .await
                .map(|n| OpOutput::Int(n as i64)),
            OpKind::ListTrim { start, stop } => {
                s.list_trim(k, start, stop).await.map(|()| OpOutput::None)
            }
            OpKind::ListInsert {
                before,
                pivot,
                value,
            } => s
                .list_insert(k, before, pivot, value)
                .await
                .map(OpOutput::Int),
            OpKind::ListSet { index, value } => {
                s.list_set(k, index, value).await.map(|()| OpOutput::None)
            }
            OpKind::Check => return,
        };
        match (expected, got) {
            (Ok(((out, wrote), m)), Ok(o)) => {
                assert_eq!(o, out, "output of {op:?} (call)");
                self.model = m;
                // The call gives no etag: take the store's.
                let info = self.s.info(k).await.expect("info");
                let e = info.map(|i| i.etag);
                self.model.observe(k, e.as_ref(), wrote);
            }
            (Err(want), Err(e)) => {
                let got = code(&e);
                assert!(
                    matches(want, got),
                    "{op:?} (call): expected {want}, got {e:?}"
                );
            }
            (Ok(((out, _), _)), Err(e)) => {
                code(&e);
                panic!("{op:?} (call): expected {out:?}, got error {e:?}");
            }
            (Err(want), Ok(r)) => panic!("{op:?} (call): expected {want}, got {r:?}"),
        }
    }

    async fn txn(&mut self, ops: &[(K, Kind, Cond)]) {
        let ops: Vec<(Op, &'static str)> = ops
            .iter()
            .take(MAX_TXN)
            .map(|(k, kind, cond)| {
                let mut op = Op::new(k.name(), kind.op_kind());
                op.condition = self.model.condition(k.name(), cond);
                (op, k.name())
            })
            .collect();
        let plain: Vec<Op> = ops.iter().map(|(o, _)| o.clone()).collect();
        // Expected: argument errors first (by index), then the ops in order.
        let expected: Result<TxnOutcome, (usize, Codes)> = (|| {
            for (i, (op, _)) in ops.iter().enumerate() {
                Model::validate(op).map_err(|c| (i, c))?;
            }
            let mut m = self.model.clone();
            let mut outs = Vec::new();
            for (i, (op, _)) in ops.iter().enumerate() {
                outs.push(m.apply(op).map_err(|c| (i, c))?);
            }
            Ok((outs, m))
        })();
        let got: Result<Vec<OpResult>, StateError> = self.s.commit(plain.clone()).await;
        match (expected, got) {
            (Ok((outs, m)), Ok(results)) => {
                assert_eq!(results.len(), outs.len(), "{plain:?}");
                for (r, (o, _)) in results.iter().zip(&outs) {
                    assert_eq!(&r.output, o, "outputs of {plain:?}");
                }
                self.model = m;
                // The last etag reported per key is its current one; any
                // write in the commit must have moved it.
                for k in KEYS {
                    let mut last: Option<Option<String>> = None;
                    let mut wrote = false;
                    for (((_, key), r), (_, w)) in ops.iter().zip(&results).zip(&outs) {
                        if *key == k {
                            last = Some(r.etag.clone());
                            wrote |= *w;
                        }
                    }
                    let Some(last) = last else { continue };
                    // A key written then deleted in the same commit reports
                    // none; the model must agree it is gone.
                    if self.model.keys.contains_key(k) {
                        let e = match last {
                            Some(e) => Some(e),
                            None => self.s.info(k).await.expect("info").map(|i| i.etag),
                        };
                        self.model.observe(k, e.as_ref(), wrote);
                    } else {
                        self.model.observe(k, last.as_ref(), false);
                    }
                }
            }
            (Err((i, want)), Err(e)) => {
                let got = code(&e);
                assert!(
                    matches(want, got),
                    "{plain:?}: expected op {i}: {want}, got {e:?}"
                );
                match &e {
                    StateError::Aborted { index, .. } => {
                        assert_eq!(*index, i, "{plain:?}: failing op index ({e:?})")
                    }
                    e => panic!("{plain:?}: a failed commit is not `aborted`: {e:?}"),
                }
            }
            (Ok(_), Err(e)) => {
                code(&e);
                panic!("{plain:?}: expected success, got {e:?}");
            }
            (Err((i, want)), Ok(r)) => panic!("{plain:?}: expected op {i}: {want}, got {r:?}"),
        }
    }

    /// Every model key as the store has it.
    async fn snapshot(&mut self) {
        let now = self.model.now;
        for k in KEYS {
            let info = self.s.info(k).await.expect("info");
            let m = self.model.keys.get(k);
            match (info, m) {
                (None, None) => {}
                (Some(i), Some(e)) => {
                    assert_eq!(i.kind, e.val.kind(), "kind of {k}");
                    assert_eq!(Some(&i.etag), e.etag.as_ref(), "etag of {k}");
                    assert_eq!(
                        i.ttl,
                        e.exp.map(|x| Duration::from_millis(x - now)),
                        "ttl of {k}"
                    );
                    assert_eq!(i.expires_at_ms, e.exp, "expiry of {k}");
                    match &e.val {
                        Val::Value(v) => {
                            let got = self.s.get_entry(k).await.expect("get").expect("value");
                            assert_eq!(&got.value, v, "value of {k}");
                            assert_eq!(got.etag, i.etag, "etag of {k} (get-entry)");
                        }
                        Val::Map(m) => {
                            let all = self.s.map_get_all(k).await.expect("map-get-all");
                            let all: BTreeMap<String, Vec<u8>> = all.into_iter().collect();
                            assert_eq!(&all, m, "map {k}");
                            assert_eq!(
                                self.s.map_length(k).await.expect("map-length"),
                                m.len() as u64
                            );
                        }
                        Val::List(l) => {
                            let all = self.s.list_range(k, 0, -1).await.expect("list-range");
                            assert_eq!(
                                all.iter().collect::<Vec<_>>(),
                                l.iter().collect::<Vec<_>>(),
                                "list {k}"
                            );
                            assert_eq!(
                                self.s.list_length(k).await.expect("list-length"),
                                l.len() as u64
                            );
                        }
                    }
                }
                (i, m) => panic!("{k}: store has {i:?}, model has {m:?}"),
            }
        }
        // Every page (raw steps may add many keys around the model's).
        let mut listed: Vec<String> = Vec::new();
        let mut cursor = None;
        for _ in 0..64 {
            let page = self
                .s
                .keys(KeyListing {
                    cursor: cursor.take(),
                    ..KeyListing::default()
                })
                .await
                .expect("keys");
            listed.extend(page.keys.into_iter().filter(|k| KEYS.contains(&k.as_str())));
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let listed: Vec<&str> = listed.iter().map(String::as_str).collect();
        let want: Vec<&str> = self.model.keys.keys().copied().collect();
        assert_eq!(listed, want, "listed keys");
    }

    async fn step(&mut self, step: Step) {
        match step {
            Step::Op { key, kind, cond } => self.single(key, &kind, &cond).await,
            Step::Call { key, kind } => self.call(key, &kind).await,
            Step::Txn(ops) => self.txn(&ops).await,
            Step::Get(k) => {
                let k = k.name();
                let got = self.s.get(k).await;
                match (self.model.keys.get(k).map(|e| &e.val), got) {
                    (None, Ok(None)) => {}
                    (Some(Val::Value(v)), Ok(Some(g))) => assert_eq!(&g, v),
                    (Some(Val::Map(_) | Val::List(_)), Err(e)) => {
                        assert_eq!(code(&e), "wrong-type")
                    }
                    (m, g) => panic!("get {k}: model {m:?}, store {g:?}"),
                }
            }
            Step::MapGet(k, f) => {
                let k = k.name();
                let got = self.s.map_get(k, &field(f)).await;
                match (self.model.keys.get(k).map(|e| &e.val), got) {
                    (None, Ok(None)) => {}
                    (Some(Val::Map(m)), Ok(g)) => assert_eq!(g.as_ref(), m.get(&field(f))),
                    (Some(Val::Value(_) | Val::List(_)), Err(e)) => {
                        assert_eq!(code(&e), "wrong-type")
                    }
                    (m, g) => panic!("map-get {k}: model {m:?}, store {g:?}"),
                }
            }
            Step::ListIndex(k, i) => {
                let (k, i) = (k.name(), i.get());
                let got = self.s.list_index(k, i).await;
                match (self.model.keys.get(k).map(|e| &e.val), got) {
                    (None, Ok(None)) => {}
                    (Some(Val::List(l)), Ok(g)) => {
                        let len = l.len() as i128;
                        let idx = if i < 0 { len + i as i128 } else { i as i128 };
                        let want = (0..len).contains(&idx).then(|| l[idx as usize].clone());
                        assert_eq!(g, want, "list-index {k} {i}");
                    }
                    (Some(Val::Value(_) | Val::Map(_)), Err(e)) => {
                        assert_eq!(code(&e), "wrong-type")
                    }
                    (m, g) => panic!("list-index {k}: model {m:?}, store {g:?}"),
                }
            }
            Step::ListRange(k, a, b) => {
                let (k, a, b) = (k.name(), a.get(), b.get());
                let got = self.s.list_range(k, a, b).await;
                match (self.model.keys.get(k).map(|e| &e.val), got) {
                    (None, Ok(g)) => assert!(g.is_empty()),
                    (Some(Val::List(l)), Ok(g)) => {
                        let want: Vec<Vec<u8>> = match norm(l.len(), a, b) {
                            None => vec![],
                            Some((s, e)) => l.iter().skip(s).take(e - s + 1).cloned().collect(),
                        };
                        assert_eq!(g, want, "list-range {k} {a} {b}");
                    }
                    (Some(Val::Value(_) | Val::Map(_)), Err(e)) => {
                        assert_eq!(code(&e), "wrong-type")
                    }
                    (m, g) => panic!("list-range {k}: model {m:?}, store {g:?}"),
                }
            }
            Step::Ttl(k) => {
                let k = k.name();
                let got = self.s.ttl(k).await;
                match (self.model.keys.get(k), got) {
                    (None, Err(e)) => assert_eq!(code(&e), "not-found"),
                    (Some(e), Ok(t)) => {
                        assert_eq!(t, e.exp.map(|x| Duration::from_millis(x - self.model.now)))
                    }
                    (m, g) => panic!("ttl {k}: model {m:?}, store {g:?}"),
                }
            }
            Step::Advance(ms) => {
                self.clock.advance(Duration::from_millis(ms as u64));
                self.model.now += ms as u64;
            }
            Step::AdvanceSeconds(s) => {
                self.clock.advance(Duration::from_secs(s as u64));
                self.model.now += s as u64 * 1000;
            }
            Step::Sweep => {
                let r = self.store.sweep().await;
                common::ok_or_typed("sweep", &r);
            }
            Step::Raw { key, kind, cond } => {
                let mut op = Op::new(raw_key(key), kind.op_kind());
                op.condition = cond.get();
                let r = self.s.apply(op).await;
                common::ok_or_typed("raw op", &r);
            }
            Step::RawTxn(ops) => {
                let ops: Vec<Op> = ops
                    .into_iter()
                    .take(160)
                    .map(|(k, kind, cond)| {
                        let mut op = Op::new(raw_key(k), kind.op_kind());
                        op.condition = cond.get();
                        op
                    })
                    .collect();
                let n = ops.len();
                let r = self.s.commit(ops).await;
                match &r {
                    Ok(rs) => assert_eq!(rs.len(), n, "one result per op"),
                    Err(StateError::Aborted { index, .. }) => {
                        assert!(*index < n, "aborted at {index} of {n} ops")
                    }
                    Err(_) => {}
                }
                common::ok_or_typed("raw commit", &r);
            }
            Step::RawGet(keys) => {
                let keys: Vec<String> = keys.into_iter().take(200).map(raw_key).collect();
                let n = keys.len();
                let r = self.s.get_entries(keys.clone()).await;
                if let Ok(rs) = &r {
                    assert_eq!(rs.len(), n, "get-entries: one result per key");
                    for x in rs {
                        common::ok_or_typed("get-entries", x);
                    }
                }
                common::ok_or_typed("get-entries", &r);
                let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                let r = self.s.get_many(&refs).await;
                if let Ok(rs) = &r {
                    assert_eq!(rs.len(), n, "get-many: one result per key");
                }
                common::ok_or_typed("get-many", &r);
            }
            Step::RawKeys {
                prefix,
                start,
                end,
                reverse,
                limit,
                cursor,
            } => {
                let listing = KeyListing {
                    prefix,
                    start,
                    end,
                    reverse,
                    limit,
                    cursor,
                };
                let r = self.s.keys(listing.clone()).await;
                if let Ok(page) = &r {
                    let max = listing.limit.map_or(usize::MAX, |l| l as usize);
                    assert!(page.keys.len() <= max, "keys: page over its limit");
                    let mut sorted = page.keys.clone();
                    sorted.sort();
                    if reverse {
                        sorted.reverse();
                    }
                    assert_eq!(sorted, page.keys, "keys: out of order");
                    if let Some(c) = &page.cursor {
                        let next = KeyListing {
                            cursor: Some(c.clone()),
                            ..listing
                        };
                        let r = self.s.keys(next).await;
                        common::ok_or_typed("keys (next page)", &r);
                        assert!(r.is_ok(), "a cursor the store gave is refused: {r:?}");
                    }
                }
                common::ok_or_typed("keys", &r);
            }
            Step::RawScan {
                key,
                cursor,
                pattern,
                count,
            } => {
                let key = raw_key(key);
                let r = self
                    .s
                    .map_scan(&key, &cursor, pattern.as_deref(), count)
                    .await;
                common::ok_or_typed("map-scan", &r);
                if let Ok(p) = r
                    && p.cursor != "0"
                {
                    let r = self
                        .s
                        .map_scan(&key, &p.cursor, pattern.as_deref(), count)
                        .await;
                    common::ok_or_typed("map-scan (next)", &r);
                }
            }
            Step::RawQuery(q) => match wasm_state::store::query::Query::from_json(q.as_bytes()) {
                Ok(q) => {
                    let r = self.s.query(&q).await;
                    common::ok_or_typed("query", &r);
                }
                Err(e) => common::check_err("query parse", &e),
            },
            Step::RawDeletePrefix(p) => {
                let r = self.s.delete_prefix(&format!("raw:{p}")).await;
                common::ok_or_typed("delete-prefix", &r);
            }
            Step::RawSession {
                instance,
                ttl,
                id,
                extend,
            } => {
                let st = self.store;
                let created = st
                    .create_session(&instance, ttl.map(Duration::from_secs))
                    .await;
                common::ok_or_typed("create-session", &created);
                let id = match &created {
                    Ok(info) if id.is_empty() => info.id.clone(),
                    _ => id,
                };
                let r = st.session(&instance, &id).await;
                common::ok_or_typed("session", &r);
                if let Ok(h) = r {
                    let r = h.set("k", b"v".to_vec()).await;
                    common::ok_or_typed("session set", &r);
                }
                let r = st.session_info(&instance, &id).await;
                common::ok_or_typed("session-info", &r);
                let r = st
                    .extend_session(&instance, &id, Duration::from_secs(extend))
                    .await;
                common::ok_or_typed("extend-session", &r);
                let r = st.list_sessions(&instance).await;
                common::ok_or_typed("list-sessions", &r);
                let r = st.end_session(&instance, &id).await;
                common::ok_or_typed("end-session", &r);
            }
        }
    }
}

fuzz_target!(|steps: Vec<Step>| {
    let f = common::input_store();
    let instance = common::unique("fuzz");
    common::rt().block_on(async {
        let s = f.store.instance(&instance).expect("instance");
        let mut run = Run {
            store: &f.store,
            clock: &f.clock,
            s,
            model: Model {
                now: common::T0,
                ..Model::default()
            },
        };
        for step in steps.into_iter().take(MAX_STEPS) {
            run.model.expire_now();
            run.step(step).await;
            run.model.expire_now();
            run.snapshot().await;
        }
        common::wipe(&f.store, Some(&instance), None).await;
    });
});
