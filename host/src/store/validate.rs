//! Argument checks of transaction ops, shared by every engine: everything
//! about an op that does not depend on stored state (key, field and value
//! sizes, item counts, empty pushes, TTLs, a `check` without condition).
//! A commit is checked whole before any engine sees it, so an argument error
//! of any op is reported (with its index) before any op runs.

use super::clock;
use super::error::{Result, StateError};
use super::limits::Limits;
use super::types::{Op, OpKind};

/// Check one op's arguments at time `now`.
pub fn op(limits: &Limits, now: u64, op: &Op) -> Result<()> {
    limits.check_key(&op.key)?;
    match &op.kind {
        OpKind::Set { value, ttl } => {
            limits.check_value(value)?;
            if let Some(ttl) = ttl {
                clock::deadline(now, *ttl)?;
            }
        }
        OpKind::Expire { seconds, .. } => {
            clock::expire_at(now, *seconds)?;
        }
        OpKind::MapSet(entries) => {
            limits.check_ops(entries.len())?;
            if entries.is_empty() {
                return Err(StateError::invalid("map-set needs at least one field"));
            }
            for (f, v) in entries {
                limits.check_field(f)?;
                limits.check_value(v)?;
            }
        }
        OpKind::MapDelete(fields) => {
            limits.check_ops(fields.len())?;
            for f in fields {
                limits.check_field(f)?;
            }
        }
        OpKind::MapIncrement { field, .. } => limits.check_field(field)?,
        OpKind::ListAppend(values) | OpKind::ListPrepend(values) => {
            limits.check_ops(values.len())?;
            if values.is_empty() {
                return Err(StateError::invalid("a push needs at least one value"));
            }
            for v in values {
                limits.check_value(v)?;
            }
        }
        OpKind::ListRemove { value, .. } => limits.check_value(value)?,
        OpKind::ListInsert { pivot, value, .. } => {
            limits.check_value(pivot)?;
            limits.check_value(value)?;
        }
        OpKind::ListSet { value, .. } => limits.check_value(value)?,
        OpKind::Check if op.condition.is_none() => {
            return Err(StateError::invalid("a check op needs a condition to check"));
        }
        OpKind::Delete
        | OpKind::Increment(_)
        | OpKind::Persist
        | OpKind::ListStartPop(_)
        | OpKind::ListEndPop(_)
        | OpKind::ListTrim { .. }
        | OpKind::Check => {}
    }
    Ok(())
}

/// Check a whole commit: the op count, then each op in order; the first
/// invalid op comes back as `Aborted { index }`.
pub fn commit(limits: &Limits, now: u64, ops: &[Op]) -> Result<()> {
    limits.check_ops(ops.len())?;
    for (index, o) in ops.iter().enumerate() {
        op(limits, now, o).map_err(|e| StateError::Aborted {
            index,
            source: Box::new(e),
        })?;
    }
    Ok(())
}
