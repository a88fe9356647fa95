//! Assembling WIT transaction operations: the queue shared by
//! [`Batch`](crate::Batch) and [`Transaction`](crate::Transaction), and the
//! macro that gives both the same write methods. Pure code (no host calls).

use crate::bindings::types as w;
use crate::error::{Error, Result};
use crate::types::{Condition, to_json};

/// Operations queued for one `commit`, plus the first error met while
/// queueing (a value that did not serialize, a misplaced `when`), reported
/// when the queue is taken.
#[derive(Debug, Default)]
pub(crate) struct OpQueue {
    ops: Vec<w::Op>,
    error: Option<Error>,
}

impl OpQueue {
    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    pub(crate) fn push(&mut self, key: &str, kind: w::OpKind) {
        self.ops.push(w::Op {
            key: key.to_owned(),
            kind,
            condition: None,
        });
    }

    /// Records `e` unless an earlier error is already recorded.
    pub(crate) fn fail(&mut self, e: Error) {
        self.error.get_or_insert(e);
    }

    /// Serializes `value`, recording the error (and returning `None`) if it
    /// does not serialize.
    pub(crate) fn json<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Option<Vec<u8>> {
        match to_json(value) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    /// Serializes every item, or records the first error.
    pub(crate) fn json_all<T: serde::Serialize>(&mut self, values: &[T]) -> Option<Vec<Vec<u8>>> {
        values.iter().map(|v| self.json(v)).collect()
    }

    /// Puts `condition` on the last queued operation.
    pub(crate) fn when(&mut self, condition: &Condition) {
        match self.ops.last_mut() {
            Some(op) => op.condition = Some(condition.to_wit()),
            None => self.fail(Error::InvalidArgument(
                "`when` was called before any operation was queued; call it right after the \
                 operation it guards"
                    .into(),
            )),
        }
    }

    /// Takes the queued operations (leaving the queue empty), or the first
    /// error recorded while queueing.
    pub(crate) fn take(&mut self) -> Result<Vec<w::Op>> {
        let ops = std::mem::take(&mut self.ops);
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(ops),
        }
    }
}

/// The write methods shared by `Batch` and `Transaction` (both have an
/// `ops: OpQueue` field). Each queues one operation and returns `&mut Self`
/// for chaining; a value that fails to serialize is reported by the final
/// commit as [`Error::Json`](crate::Error::Json).
macro_rules! queue_methods {
    () => {
        /// Queues `set`: stores `value` (as JSON) at `key`, replacing any type and
        /// clearing the key's TTL. Output: `None`.
        pub fn set<T: ::serde::Serialize + ?Sized>(&mut self, key: &str, value: &T) -> &mut Self {
            if let Some(value) = self.ops.json(value) {
                self.ops.push(key, $crate::ops::set_kind(value, None));
            }
            self
        }

        /// Queues `set` with a TTL and/or condition (see
        /// [`SetOptions`](crate::SetOptions)). Output: `None`.
        pub fn set_with<T: ::serde::Serialize + ?Sized>(
            &mut self,
            key: &str,
            value: &T,
            options: $crate::SetOptions,
        ) -> &mut Self {
            if let Some(value) = self.ops.json(value) {
                self.ops
                    .push(key, $crate::ops::set_kind(value, options.ttl));
                if let Some(c) = &options.condition {
                    self.ops.when(c);
                }
            }
            self
        }

        /// Queues `set` of raw bytes (not JSON-encoded). Output: `None`.
        pub fn set_bytes(&mut self, key: &str, value: &[u8]) -> &mut Self {
            self.ops
                .push(key, $crate::ops::set_kind(value.to_vec(), None));
            self
        }

        /// Queues `delete` of `key`, whatever its type. Output: `Boolean`
        /// (whether it existed).
        pub fn delete(&mut self, key: &str) -> &mut Self {
            self.ops.push(key, $crate::bindings::types::OpKind::Delete);
            self
        }

        /// Queues `increment` of the counter at `key` by `delta`. Output:
        /// `Integer` (the new value).
        pub fn increment(&mut self, key: &str, delta: i64) -> &mut Self {
            self.ops
                .push(key, $crate::bindings::types::OpKind::Increment(delta));
            self
        }

        /// Queues `increment` of the counter at `key` by `-delta`. Output:
        /// `Integer` (the new value).
        pub fn decrement(&mut self, key: &str, delta: i64) -> &mut Self {
            match delta.checked_neg() {
                Some(d) => self.increment(key, d),
                None => {
                    self.ops.fail($crate::Error::Overflow);
                    self
                }
            }
        }

        /// Queues `expire`: the key expires after `ttl` (rounded up to whole
        /// seconds; zero deletes it). Output: `Boolean` (whether applied).
        pub fn expire(&mut self, key: &str, ttl: ::std::time::Duration) -> &mut Self {
            let seconds = i64::try_from($crate::types::duration_to_secs(ttl)).unwrap_or(i64::MAX);
            self.expire_with(key, seconds, $crate::ExpireMode::Always)
        }

        /// Queues `expire` with whole `seconds` (≤ 0 deletes the key if `mode`
        /// applies) and an [`ExpireMode`](crate::ExpireMode). Output: `Boolean`.
        pub fn expire_with(
            &mut self,
            key: &str,
            seconds: i64,
            mode: $crate::ExpireMode,
        ) -> &mut Self {
            self.ops.push(
                key,
                $crate::bindings::types::OpKind::Expire($crate::bindings::types::ExpireOp {
                    seconds,
                    mode: mode.to_wit(),
                }),
            );
            self
        }

        /// Queues `persist` (remove the key's TTL). Output: `Boolean`.
        pub fn persist(&mut self, key: &str) -> &mut Self {
            self.ops.push(key, $crate::bindings::types::OpKind::Persist);
            self
        }

        /// Queues `map_set` of `entries` (values as JSON) on the map at `map`.
        /// Output: `Integer` (fields added).
        pub fn map_set<'v, K, V>(
            &mut self,
            map: &str,
            entries: impl IntoIterator<Item = (K, &'v V)>,
        ) -> &mut Self
        where
            K: Into<String>,
            V: ::serde::Serialize + ?Sized + 'v,
        {
            let mut out = Vec::new();
            for (field, value) in entries {
                match self.ops.json(value) {
                    Some(value) => out.push($crate::bindings::types::MapEntry {
                        field: field.into(),
                        value,
                    }),
                    None => return self,
                }
            }
            self.ops
                .push(map, $crate::bindings::types::OpKind::MapSet(out));
            self
        }

        /// Queues `map_delete` of `fields`. Output: `Integer` (fields removed).
        pub fn map_delete<F: AsRef<str>>(&mut self, map: &str, fields: &[F]) -> &mut Self {
            let fields = fields.iter().map(|f| f.as_ref().to_owned()).collect();
            self.ops
                .push(map, $crate::bindings::types::OpKind::MapDelete(fields));
            self
        }

        /// Queues `map_increment` of the counter in `field`. Output: `Integer`
        /// (the new value).
        pub fn map_increment(&mut self, map: &str, field: &str, delta: i64) -> &mut Self {
            self.ops.push(
                map,
                $crate::bindings::types::OpKind::MapIncrement(
                    $crate::bindings::types::MapIncrementOp {
                        field: field.to_owned(),
                        delta,
                    },
                ),
            );
            self
        }

        /// Queues `list_append` of `values` (as JSON) at the tail. Output:
        /// `Integer` (new length).
        pub fn list_append<T: ::serde::Serialize>(
            &mut self,
            list: &str,
            values: &[T],
        ) -> &mut Self {
            if let Some(values) = self.ops.json_all(values) {
                self.ops
                    .push(list, $crate::bindings::types::OpKind::ListAppend(values));
            }
            self
        }

        /// Queues `list_prepend` of `values` (as JSON) at the head, so the last
        /// given ends up first. Output: `Integer` (new length).
        pub fn list_prepend<T: ::serde::Serialize>(
            &mut self,
            list: &str,
            values: &[T],
        ) -> &mut Self {
            if let Some(values) = self.ops.json_all(values) {
                self.ops
                    .push(list, $crate::bindings::types::OpKind::ListPrepend(values));
            }
            self
        }

        /// Queues `list_start_pop` of up to `count` items from the head.
        /// Output: `Values` (see [`OpOutput::values`](crate::OpOutput::values)).
        pub fn list_start_pop(&mut self, list: &str, count: u32) -> &mut Self {
            self.ops
                .push(list, $crate::bindings::types::OpKind::ListStartPop(count));
            self
        }

        /// Queues `list_end_pop` of up to `count` items from the tail.
        /// Output: `Values`.
        pub fn list_end_pop(&mut self, list: &str, count: u32) -> &mut Self {
            self.ops
                .push(list, $crate::bindings::types::OpKind::ListEndPop(count));
            self
        }

        /// Queues `list_remove` of items equal to `value`'s JSON (`count` > 0
        /// from the head, < 0 from the tail, 0 all). Output: `Integer`.
        pub fn list_remove<T: ::serde::Serialize + ?Sized>(
            &mut self,
            list: &str,
            value: &T,
            count: i64,
        ) -> &mut Self {
            if let Some(value) = self.ops.json(value) {
                self.ops.push(
                    list,
                    $crate::bindings::types::OpKind::ListRemove(
                        $crate::bindings::types::ListRemoveOp { value, count },
                    ),
                );
            }
            self
        }

        /// Queues `list_trim` to items `start..=stop`. Output: `None`.
        pub fn list_trim(&mut self, list: &str, start: i64, stop: i64) -> &mut Self {
            self.ops.push(
                list,
                $crate::bindings::types::OpKind::ListTrim($crate::bindings::types::Range {
                    start,
                    stop,
                }),
            );
            self
        }

        /// Queues `list_insert` of `value` before or after the first item equal
        /// to `pivot`. Output: `Integer` (new length, -1 if no pivot, 0 if no
        /// list).
        pub fn list_insert<P, V>(
            &mut self,
            list: &str,
            position: $crate::Position,
            pivot: &P,
            value: &V,
        ) -> &mut Self
        where
            P: ::serde::Serialize + ?Sized,
            V: ::serde::Serialize + ?Sized,
        {
            if let (Some(pivot), Some(value)) = (self.ops.json(pivot), self.ops.json(value)) {
                self.ops.push(
                    list,
                    $crate::bindings::types::OpKind::ListInsert(
                        $crate::bindings::types::ListInsertOp {
                            before: position == $crate::Position::Before,
                            pivot,
                            value,
                        },
                    ),
                );
            }
            self
        }

        /// Queues `list_set` of the item at `index`. Output: `None`.
        pub fn list_set<T: ::serde::Serialize + ?Sized>(
            &mut self,
            list: &str,
            index: i64,
            value: &T,
        ) -> &mut Self {
            if let Some(value) = self.ops.json(value) {
                self.ops.push(
                    list,
                    $crate::bindings::types::OpKind::ListSet($crate::bindings::types::ListSetOp {
                        index,
                        value,
                    }),
                );
            }
            self
        }

        /// Queues a `check`: writes nothing, but the commit fails unless
        /// `condition` holds for `key` at this point. Output: `None`.
        pub fn check(&mut self, key: &str, condition: $crate::Condition) -> &mut Self {
            self.ops.push(key, $crate::bindings::types::OpKind::Check);
            self.ops.when(&condition);
            self
        }

        /// Puts `condition` on the operation queued just before (replacing any
        /// it had): the commit fails, changing nothing, unless it holds for that
        /// key as the earlier operations left it.
        pub fn when(&mut self, condition: $crate::Condition) -> &mut Self {
            self.ops.when(&condition);
            self
        }
    };
}

pub(crate) use queue_methods;

/// The `op-kind.set` of `value` with an optional TTL.
pub(crate) fn set_kind(value: Vec<u8>, ttl: Option<std::time::Duration>) -> w::OpKind {
    w::OpKind::Set(w::SetOp {
        value,
        ttl_ms: ttl.map(crate::types::duration_to_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_applies_to_the_last_op() {
        let mut q = OpQueue::default();
        q.push("a", w::OpKind::Delete);
        q.push("b", w::OpKind::Persist);
        q.when(&Condition::IfExists);
        let ops = q.take().unwrap();
        assert!(ops[0].condition.is_none());
        assert!(matches!(ops[1].condition, Some(w::Condition::IfExists)));
        assert!(q.take().unwrap().is_empty());
    }

    #[test]
    fn when_without_op_is_reported_at_take() {
        let mut q = OpQueue::default();
        q.when(&Condition::IfAbsent);
        q.push("a", w::OpKind::Delete);
        assert!(matches!(q.take(), Err(Error::InvalidArgument(_))));
        // The error is reported once; the queue is then empty again.
        assert!(q.take().unwrap().is_empty());
    }

    #[test]
    fn first_serialization_error_wins() {
        let mut bad = std::collections::HashMap::new();
        bad.insert((1, 2), 3); // JSON object keys must be strings
        let mut q = OpQueue::default();
        assert!(q.json(&bad).is_none());
        q.fail(Error::Overflow);
        assert!(matches!(q.take(), Err(Error::Json(_))));
    }
}
