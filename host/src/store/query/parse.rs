//! Dapr's JSON query form ⇄ [`Query`], with errors that say what is wrong
//! and what is allowed.

use serde_json::{Map, Value, json};

use super::Query;
use super::filter::{Filter, Path};
use super::order::SortKey;
use crate::store::error::{Result, StateError};

const OPERATORS: &str = "EQ, NEQ, IN, GT, GTE, LT, LTE, AND, OR";

fn bad(msg: impl std::fmt::Display) -> StateError {
    StateError::invalid(format!("query: {msg}"))
}

/// Parse a whole query.
pub fn query(json: &[u8]) -> Result<Query> {
    let doc: Value =
        serde_json::from_slice(json).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let Value::Object(top) = doc else {
        return Err(bad(
            "a query is a JSON object with `filter`, `sort` and `page`",
        ));
    };
    let mut q = Query {
        filter: None,
        sort: Vec::new(),
        limit: None,
        token: None,
    };
    for (name, v) in top {
        match name.as_str() {
            "filter" => q.filter = filter_opt(&v)?,
            "sort" => q.sort = sort(&v)?,
            "page" => (q.limit, q.token) = page(&v)?,
            other => {
                return Err(bad(format!(
                    "unknown field {other:?}; a query has `filter`, `sort` and `page`"
                )));
            }
        }
    }
    Ok(q)
}

/// `filter`: an empty object (or null) means no filter.
fn filter_opt(v: &Value) -> Result<Option<Filter>> {
    match v {
        Value::Null => Ok(None),
        Value::Object(m) if m.is_empty() => Ok(None),
        v => filter(v, "filter").map(Some),
    }
}

fn filter(v: &Value, at: &str) -> Result<Filter> {
    let Some((op, arg)) = v.as_object().and_then(single) else {
        return Err(bad(format!(
            "{at} must be an object with exactly one operator ({OPERATORS})"
        )));
    };
    let at = format!("{at}.{op}");
    match op.as_str() {
        "AND" | "OR" => {
            let Some(items) = arg.as_array().filter(|a| !a.is_empty()) else {
                return Err(bad(format!("{at} takes a non-empty array of filters")));
            };
            let fs = items
                .iter()
                .enumerate()
                .map(|(i, f)| filter(f, &format!("{at}[{i}]")))
                .collect::<Result<Vec<_>>>()?;
            Ok(if op == "AND" {
                Filter::And(fs)
            } else {
                Filter::Or(fs)
            })
        }
        "EQ" | "NEQ" | "IN" | "GT" | "GTE" | "LT" | "LTE" => {
            let Some((path, value)) = arg.as_object().and_then(single) else {
                return Err(bad(format!(
                    "{at} takes an object with exactly one field path, like {{\"{op}\": {{\"person.org\": …}}}}"
                )));
            };
            let path = Path::parse(path).ok_or_else(|| {
                bad(format!(
                    "{at}: field path {path:?} has an empty segment; write paths like `person.org`"
                ))
            })?;
            let value = value.clone();
            match op.as_str() {
                "EQ" => Ok(Filter::Eq(path, value)),
                "NEQ" => Ok(Filter::Neq(path, value)),
                "IN" => match value {
                    Value::Array(vs) => Ok(Filter::In(path, vs)),
                    _ => Err(bad(format!("{at} takes an array of values"))),
                },
                _ if !(value.is_number() || value.is_string()) => Err(bad(format!(
                    "{at} compares with a number or a string, not {value}"
                ))),
                "GT" => Ok(Filter::Gt(path, value)),
                "GTE" => Ok(Filter::Gte(path, value)),
                "LT" => Ok(Filter::Lt(path, value)),
                _ => Ok(Filter::Lte(path, value)),
            }
        }
        other => Err(bad(format!(
            "{at}: unknown operator {other:?}; use one of {OPERATORS} (upper case)"
        ))),
    }
}

/// The one member of an object, if it has exactly one.
fn single(m: &Map<String, Value>) -> Option<(&String, &Value)> {
    let mut it = m.iter();
    match (it.next(), it.next()) {
        (Some(kv), None) => Some(kv),
        _ => None,
    }
}

fn sort(v: &Value) -> Result<Vec<SortKey>> {
    let Some(items) = v.as_array() else {
        return Err(bad(
            "sort must be an array like [{\"key\": \"state\", \"order\": \"DESC\"}]",
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = format!("sort[{i}]");
            let Some(m) = item.as_object() else {
                return Err(bad(format!("{at} must be an object with `key` and optional `order`")));
            };
            let mut key = None;
            let mut desc = false;
            for (name, v) in m {
                match (name.as_str(), v) {
                    ("key", Value::String(k)) => key = Some(k),
                    ("order", Value::String(o)) if o == "ASC" => desc = false,
                    ("order", Value::String(o)) if o == "DESC" => desc = true,
                    ("order", _) => {
                        return Err(bad(format!("{at}.order must be \"ASC\" or \"DESC\", not {v}")));
                    }
                    _ => {
                        return Err(bad(format!(
                            "{at}: unexpected {name:?}; a sort key has `key` (a field path) and optional `order`"
                        )));
                    }
                }
            }
            let key = key.ok_or_else(|| bad(format!("{at} needs a `key` (a field path string)")))?;
            let path = Path::parse(key).ok_or_else(|| {
                bad(format!("{at}.key {key:?} has an empty segment; write paths like `person.id`"))
            })?;
            Ok(SortKey { path, desc })
        })
        .collect()
}

fn page(v: &Value) -> Result<(Option<u32>, Option<String>)> {
    let Some(m) = v.as_object() else {
        return Err(bad(
            "page must be an object like {\"limit\": 10, \"token\": \"…\"}",
        ));
    };
    let mut limit = None;
    let mut token = None;
    for (name, v) in m {
        match name.as_str() {
            "limit" => {
                // JSON does not tell 3 from 3.0: a whole float is a whole number.
                let whole = v.as_u64().or_else(|| {
                    v.as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= 1.0 && *f < u64::MAX as f64)
                        .map(|f| f as u64)
                });
                let n = whole.filter(|&n| n >= 1).ok_or_else(|| {
                    bad(format!("page.limit must be a whole number ≥ 1, not {v}"))
                })?;
                limit = Some(u32::try_from(n).unwrap_or(u32::MAX));
            }
            "token" => match v {
                Value::String(t) if t.is_empty() => token = None,
                Value::String(t) => token = Some(t.clone()),
                Value::Null => token = None,
                _ => return Err(bad(format!("page.token must be a string, not {v}"))),
            },
            other => {
                return Err(bad(format!(
                    "unexpected page.{other}; a page has `limit` and `token`"
                )));
            }
        }
    }
    Ok((limit, token))
}

fn filter_json(f: &Filter) -> Value {
    let leaf = |op: &str, p: &Path, v: Value| json!({ op: { p.to_string(): v } });
    match f {
        Filter::Eq(p, v) => leaf("EQ", p, v.clone()),
        Filter::Neq(p, v) => leaf("NEQ", p, v.clone()),
        Filter::In(p, vs) => leaf("IN", p, Value::Array(vs.clone())),
        Filter::Gt(p, v) => leaf("GT", p, v.clone()),
        Filter::Gte(p, v) => leaf("GTE", p, v.clone()),
        Filter::Lt(p, v) => leaf("LT", p, v.clone()),
        Filter::Lte(p, v) => leaf("LTE", p, v.clone()),
        Filter::And(fs) => json!({ "AND": fs.iter().map(filter_json).collect::<Vec<_>>() }),
        Filter::Or(fs) => json!({ "OR": fs.iter().map(filter_json).collect::<Vec<_>>() }),
    }
}

/// The query as Dapr JSON.
pub fn to_json(q: &Query) -> Value {
    let mut top = Map::new();
    if let Some(f) = &q.filter {
        top.insert("filter".into(), filter_json(f));
    }
    if !q.sort.is_empty() {
        let sort = q
            .sort
            .iter()
            .map(|s| json!({ "key": s.path.to_string(), "order": if s.desc { "DESC" } else { "ASC" } }))
            .collect();
        top.insert("sort".into(), Value::Array(sort));
    }
    let mut page = Map::new();
    if let Some(n) = q.limit {
        page.insert("limit".into(), n.into());
    }
    if let Some(t) = &q.token {
        page.insert("token".into(), t.clone().into());
    }
    if !page.is_empty() {
        top.insert("page".into(), Value::Object(page));
    }
    Value::Object(top)
}
