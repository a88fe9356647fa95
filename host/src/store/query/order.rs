//! Result order (`sort`) and page tokens: a token is the position of the
//! last result of a page — its sort values and key — so the next page starts
//! strictly after it whatever was written in between.

use std::cmp::Ordering;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::filter::{Path, number_cmp};
use crate::store::error::{Result, StateError};

/// One sort key: a field path and a direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// The field.
    pub path: Path,
    /// Descending instead of ascending.
    pub desc: bool,
}

/// Most sort keys of a query.
pub const MAX_SORT_KEYS: usize = 8;

/// Most bytes one sort value of one result may take as held (about its
/// JSON size for a string or a number, more for a long array): the runner
/// holds the sort values of every result it keeps (up to twice a page),
/// and a page's token carries the last one's. Sort fields are names,
/// dates, numbers; a larger one fails the query.
pub const MAX_SORT_VALUE: usize = 4 * 1024;

/// Check a query's sort keys: at most [`MAX_SORT_KEYS`], each path once.
pub fn check(sort: &[SortKey]) -> Result<()> {
    if sort.len() > MAX_SORT_KEYS {
        return Err(StateError::invalid(format!(
            "query: sort has {} keys; at most {MAX_SORT_KEYS} are allowed",
            sort.len()
        )));
    }
    for (i, k) in sort.iter().enumerate() {
        if let Some(j) = sort[..i].iter().position(|e| e.path == k.path) {
            return Err(StateError::invalid(format!(
                "query: sort[{i}].key {:?} repeats sort[{j}]; name each field once",
                k.path.to_string()
            )));
        }
    }
    Ok(())
}

/// Whether `v` takes at most `max` bytes as held: 32 per JSON value (the
/// size of one), plus the bytes of its strings and member names; found
/// without walking more than `max` worth of it.
pub fn fits(v: &Value, max: usize) -> bool {
    fn walk(v: &Value, left: &mut usize) -> bool {
        let take = |left: &mut usize, n: usize| match left.checked_sub(n) {
            Some(l) => {
                *left = l;
                true
            }
            None => false,
        };
        take(left, 32)
            && match v {
                Value::Null | Value::Bool(_) | Value::Number(_) => true,
                Value::String(s) => take(left, s.len()),
                Value::Array(items) => items.iter().all(|i| walk(i, left)),
                Value::Object(m) => m.iter().all(|(k, v)| take(left, k.len()) && walk(v, left)),
            }
    }
    let mut left = max;
    walk(v, &mut left)
}

/// Rank of a value's type in the sort order; a missing field sorts last.
fn rank(v: Option<&Value>) -> u8 {
    match v {
        Some(Value::Null) => 0,
        Some(Value::Bool(_)) => 1,
        Some(Value::Number(_)) => 2,
        Some(Value::String(_)) => 3,
        Some(Value::Array(_)) => 4,
        Some(Value::Object(_)) => 5,
        None => 6,
    }
}

/// Total ascending order of optional JSON values.
fn value_cmp(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    rank(a).cmp(&rank(b)).then_with(|| match (a, b) {
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(x @ Value::Number(_)), Some(y @ Value::Number(_))) => {
            number_cmp(x, y).unwrap_or(Ordering::Equal)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.as_bytes().cmp(y.as_bytes()),
        (Some(Value::Array(x)), Some(Value::Array(y))) => x
            .iter()
            .zip(y)
            .map(|(x, y)| value_cmp(Some(x), Some(y)))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        (Some(x @ Value::Object(_)), Some(y @ Value::Object(_))) => {
            x.to_string().cmp(&y.to_string())
        }
        _ => Ordering::Equal,
    })
}

/// Compare two results: by each sort key in turn, then by key ascending.
pub fn compare(
    sort: &[SortKey],
    a: &[Option<Value>],
    a_key: &str,
    b: &[Option<Value>],
    b_key: &str,
) -> Ordering {
    sort.iter()
        .zip(a.iter().zip(b))
        .map(|(s, (x, y))| {
            let o = value_cmp(x.as_ref(), y.as_ref());
            if s.desc { o.reverse() } else { o }
        })
        .find(|o| o.is_ne())
        .unwrap_or_else(|| a_key.as_bytes().cmp(b_key.as_bytes()))
}

/// Where a page ended.
#[derive(Debug)]
pub struct Position {
    /// Sort values of the last result (`None` = field missing).
    pub sort: Vec<Option<Value>>,
    /// Its key.
    pub key: String,
}

const TOKEN_VERSION: &str = "q1.";

impl Position {
    /// The token naming the position after (`sort`, `key`).
    pub fn encode(sort: &[Option<Value>], key: &str) -> String {
        let values: Vec<Value> = sort
            .iter()
            .map(|v| match v {
                Some(v) => json!([v]),
                None => json!([]),
            })
            .collect();
        let body = json!({ "s": values, "k": key }).to_string();
        format!("{TOKEN_VERSION}{}", URL_SAFE_NO_PAD.encode(body))
    }

    /// Decode a token made by [`Position::encode`] for a query with
    /// `sort_keys` sort keys.
    pub fn decode(token: &str, sort_keys: usize) -> Result<Position> {
        let bad = || {
            StateError::invalid(format!(
                "page.token {token:?} is not one this query returned; pass the token of the previous page unchanged, with the same filter and sort"
            ))
        };
        let body = token
            .strip_prefix(TOKEN_VERSION)
            .and_then(|t| URL_SAFE_NO_PAD.decode(t).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .ok_or_else(bad)?;
        let key = body["k"].as_str().ok_or_else(bad)?.to_owned();
        let values = body["s"].as_array().ok_or_else(bad)?;
        if values.len() != sort_keys {
            return Err(bad());
        }
        let sort = values
            .iter()
            .map(|v| match v.as_array().map(Vec::as_slice) {
                Some([v]) => Ok(Some(v.clone())),
                Some([]) => Ok(None),
                _ => Err(bad()),
            })
            .collect::<Result<_>>()?;
        Ok(Position { sort, key })
    }
}
