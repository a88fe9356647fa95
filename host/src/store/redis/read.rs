//! Point reads without Lua. The records a point read looks at (the key's
//! meta record, a map's field records, the owner's etag counter, a
//! session's record) are fetched with one `HMGET` of the owner's hash —
//! one round trip, atomic on the server, so one consistent view — and the
//! kv engine's own read functions (`kv::ops`) run over them: both engines
//! keep the same record layout, so one implementation reads both. Scans
//! (listing, map fields, list ranges, queries) and reads whose second
//! record depends on the first (`list-index`) stay in the Lua library.
//!
//! Measured (`docs/benchmarks.md`): a point get this way costs Redis one
//! `HMGET` instead of a function call that interprets the same reads.

use std::collections::HashMap;

use redis::Value;

use crate::store::error::{Result, StateError};
use crate::store::kv::RawRead;
use crate::store::kv::layout;
use crate::store::kv::meta::etag_of;
use crate::store::types::Scope;

/// A reply that is not what `HMGET` answers.
fn bad_reply(what: &str) -> StateError {
    StateError::Internal(format!(
        "unexpected answer from Redis to HMGET (expected {what}); is this a Redis server (7.0 or later)?"
    ))
}

/// The records one `HMGET` returned, as a read-only view. Reading a record
/// that was not fetched is an internal error (a missing entry in the
/// caller's list of records), never a silent "absent".
pub struct Fetched {
    records: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Fetched {
    /// The `HMGET` reply `reply` for `fields`, in order.
    pub fn new(fields: Vec<Vec<u8>>, reply: Value) -> Result<Fetched> {
        let Value::Array(values) = reply else {
            return Err(bad_reply("the records asked for"));
        };
        if values.len() != fields.len() {
            return Err(bad_reply("one value per record asked for"));
        }
        let records = fields
            .into_iter()
            .zip(values)
            .map(|(f, v)| match v {
                Value::Nil => Ok((f, None)),
                Value::BulkString(b) => Ok((f, Some(b))),
                _ => Err(bad_reply("a record's bytes")),
            })
            .collect::<Result<_>>()?;
        Ok(Fetched { records })
    }

    /// The etag of `version` on this owner: its nonce (the first 8 bytes of
    /// its counter record, `lua/cx.lua`) and 16 hex digits.
    pub fn etag(&self, version: u64) -> Result<String> {
        let counter = self.get(layout::COUNTER)?.unwrap_or_default();
        let nonce = counter.get(..8).unwrap_or(&counter);
        Ok(format!(
            "{}{}",
            String::from_utf8_lossy(nonce),
            etag_of(version)
        ))
    }
}

impl RawRead for Fetched {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.records.get(key) {
            Some(v) => Ok(v.clone()),
            None => Err(StateError::Internal(format!(
                "the Redis engine read record {:?} without fetching it",
                String::from_utf8_lossy(key)
            ))),
        }
    }

    fn scan(
        &self,
        _start: &[u8],
        _end: Option<&[u8]>,
        _reverse: bool,
        _visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        Err(StateError::Internal(
            "the Redis engine's point reads cannot scan".into(),
        ))
    }
}

/// Every record a point read of `scope` fetches: the owner's etag counter,
/// the session's record for a session scope (its liveness), then `records`.
pub fn fields(scope: &Scope, records: impl IntoIterator<Item = Vec<u8>>) -> Vec<Vec<u8>> {
    let mut fields = vec![layout::COUNTER.to_vec()];
    if let Scope::Session { instance, id } = scope {
        fields.push(layout::session_key(instance, id));
    }
    fields.extend(records);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(b: &[u8]) -> Value {
        Value::BulkString(b.to_vec())
    }

    #[test]
    fn records_come_back_in_the_order_asked_and_unfetched_ones_are_an_error() {
        let f = Fetched::new(
            vec![b"c".to_vec(), b"a".to_vec(), b"b".to_vec()],
            Value::Array(vec![
                bulk(b"abcd1234\0\0\0\0\0\0\0\x07"),
                Value::Nil,
                bulk(b"x"),
            ]),
        )
        .unwrap();
        assert_eq!(f.get(b"a").unwrap(), None);
        assert_eq!(f.get(b"b").unwrap(), Some(b"x".to_vec()));
        assert!(matches!(f.get(b"z"), Err(StateError::Internal(_))));
        assert_eq!(f.etag(7).unwrap(), "abcd12340000000000000007");
    }

    #[test]
    fn a_reply_of_the_wrong_shape_is_an_error_not_a_panic() {
        assert!(Fetched::new(vec![b"c".to_vec()], Value::Nil).is_err());
        assert!(Fetched::new(vec![b"c".to_vec()], Value::Array(vec![])).is_err());
        assert!(Fetched::new(vec![b"c".to_vec()], Value::Array(vec![Value::Int(1)])).is_err());
    }

    #[test]
    fn a_session_scope_fetches_its_session_record() {
        let s = Scope::Session {
            instance: "app".into(),
            id: "sid".into(),
        };
        let f = fields(&s, [b"m".to_vec()]);
        assert_eq!(
            f,
            vec![
                b"c".to_vec(),
                layout::session_key("app", "sid"),
                b"m".to_vec()
            ]
        );
        assert_eq!(fields(&Scope::Instance("app".into()), []).len(), 1);
    }
}
