//! The semantics of every operation, written once over the backend traits:
//! each backend runs exactly this code, so the Redis-exact rules, etags, TTL
//! and quota behave the same everywhere.

pub mod cx;
pub mod keyspace;
pub mod list;
pub mod map;
pub mod value;

use cx::WriteCx;
use keyspace::{check_condition, live};

use crate::store::error::{Result, StateError};
use crate::store::kv::layout::ScopeKeys;
use crate::store::types::{Op, OpKind, OpOutput, OpResult};

/// Apply one op (after its condition) and report its result. Its
/// arguments were checked (`store::validate`).
pub fn apply(cx: &mut WriteCx, sk: &ScopeKeys, op: &Op) -> Result<OpResult> {
    let key = op.key.as_str();
    cx.watch.meta_only = matches!(op.kind, OpKind::Expire { .. } | OpKind::Persist);
    let old = live(cx, sk, key)?;
    if let Some(c) = &op.condition {
        check_condition(cx, c, old.as_ref())?;
    }
    let old = old.as_ref();
    let current = old.map(|m| m.version);
    let int = |(n, v): (i64, u64)| (OpOutput::Int(n), Some(v));
    let (output, version) = match &op.kind {
        OpKind::Set { value, ttl } => (
            OpOutput::None,
            Some(value::set(cx, sk, key, old, value, *ttl)?),
        ),
        OpKind::Delete => {
            if let Some(m) = old {
                keyspace::purge(cx, sk, key, m)?;
            }
            (OpOutput::Bool(old.is_some()), None)
        }
        OpKind::Increment(delta) => int(value::increment(cx, sk, key, old, *delta)?),
        OpKind::Expire { seconds, mode } => {
            let (applied, v) = value::expire(cx, sk, key, old, *seconds, *mode)?;
            (OpOutput::Bool(applied), v)
        }
        OpKind::Persist => {
            let (applied, v) = value::persist(cx, sk, key, old)?;
            (OpOutput::Bool(applied), v)
        }
        OpKind::MapSet(entries) => int(map::set(cx, sk, key, old, entries)?),
        OpKind::MapDelete(fields) => {
            let (n, v) = map::delete(cx, sk, key, old, fields)?;
            (OpOutput::Int(n), v)
        }
        OpKind::MapIncrement { field, delta } => {
            int(map::increment(cx, sk, key, old, field, *delta)?)
        }
        OpKind::ListAppend(values) => int(list::push(cx, sk, key, old, values, true)?),
        OpKind::ListPrepend(values) => int(list::push(cx, sk, key, old, values, false)?),
        OpKind::ListStartPop(n) | OpKind::ListEndPop(n) => {
            let from_end = matches!(op.kind, OpKind::ListEndPop(_));
            let (values, v) = list::pop(cx, sk, key, old, *n, from_end)?;
            (OpOutput::Values(values), v)
        }
        OpKind::ListRemove { value, count } => {
            let (n, v) = list::remove(cx, sk, key, old, value, *count)?;
            (OpOutput::Int(n), v)
        }
        OpKind::ListTrim { start, stop } => {
            (OpOutput::None, list::trim(cx, sk, key, old, *start, *stop)?)
        }
        OpKind::ListInsert {
            before,
            pivot,
            value,
        } => {
            let (n, v) = list::insert(cx, sk, key, old, *before, pivot, value)?;
            (OpOutput::Int(n), v)
        }
        OpKind::ListSet { index, value } => (
            OpOutput::None,
            Some(list::set(cx, sk, key, old, *index, value)?),
        ),
        OpKind::Check => (OpOutput::None, current),
    };
    Ok(OpResult {
        etag: version.map(|v| cx.etag_of(v)).transpose()?,
        output,
    })
}

/// Apply ops in order, all or nothing: the first failure is reported with its
/// index (the caller discards the request's writes).
pub fn apply_all(cx: &mut WriteCx, sk: &ScopeKeys, ops: &[Op]) -> Result<Vec<OpResult>> {
    ops.iter()
        .enumerate()
        .map(|(index, op)| {
            apply(cx, sk, op).map_err(|e| StateError::Aborted {
                index,
                source: Box::new(e),
            })
        })
        .collect()
}
