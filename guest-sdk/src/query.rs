//! Queries over the JSON values of a scope in Dapr's state query language:
//! a typed builder ([`Query`], [`Filter`]) or the JSON form, and typed
//! results ([`QueryPage`]).

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::bindings::state as ws;
use crate::error::Result;
use crate::types::{Etag, from_json};

/// A filter: a comparison of the member at a dotted path (`person.org`)
/// with a JSON value, or a combination of filters.
///
/// Comparisons never match a missing member or a member of another JSON
/// type than the operand (`"1"` is not `1`, for [`Filter::neq`] too);
/// numbers compare by value, strings by their UTF-8 bytes.
///
/// ```
/// use wasm_state_sdk::Filter;
/// let f = Filter::or([
///     Filter::eq("person.org", "Dev Ops"),
///     Filter::and([Filter::eq("person.org", "Finance"), Filter::is_in("state", ["CA", "WA"])]),
/// ]);
/// assert_eq!(
///     f.to_json().to_string(),
///     r#"{"OR":[{"EQ":{"person.org":"Dev Ops"}},{"AND":[{"EQ":{"person.org":"Finance"}},{"IN":{"state":["CA","WA"]}}]}]}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Filter(Value);

impl Filter {
    fn leaf(op: &str, path: &str, value: Value) -> Filter {
        Filter(json!({ op: { path: value } }))
    }

    /// The member equals `value` (`EQ`).
    pub fn eq(path: &str, value: impl Into<Value>) -> Filter {
        Filter::leaf("EQ", path, value.into())
    }

    /// The member is present, of `value`'s type, and differs from it (`NEQ`).
    pub fn neq(path: &str, value: impl Into<Value>) -> Filter {
        Filter::leaf("NEQ", path, value.into())
    }

    /// The member equals one of `values` (`IN`).
    pub fn is_in<V: Into<Value>>(path: &str, values: impl IntoIterator<Item = V>) -> Filter {
        let values: Vec<Value> = values.into_iter().map(Into::into).collect();
        Filter::leaf("IN", path, Value::Array(values))
    }

    /// The member is greater than `value`, a number or a string (`GT`).
    pub fn gt(path: &str, value: impl Into<Value>) -> Filter {
        Filter::leaf("GT", path, value.into())
    }

    /// Greater than or equal (`GTE`).
    pub fn gte(path: &str, value: impl Into<Value>) -> Filter {
        Filter::leaf("GTE", path, value.into())
    }

    /// Less than (`LT`).
    pub fn lt(path: &str, value: impl Into<Value>) -> Filter {
        Filter::leaf("LT", path, value.into())
    }

    /// Less than or equal (`LTE`).
    pub fn lte(path: &str, value: impl Into<Value>) -> Filter {
        Filter::leaf("LTE", path, value.into())
    }

    /// Every filter matches (`AND`; at least one filter).
    pub fn and(filters: impl IntoIterator<Item = Filter>) -> Filter {
        Filter(json!({ "AND": filters.into_iter().map(|f| f.0).collect::<Vec<_>>() }))
    }

    /// Some filter matches (`OR`; at least one filter).
    pub fn or(filters: impl IntoIterator<Item = Filter>) -> Filter {
        Filter(json!({ "OR": filters.into_iter().map(|f| f.0).collect::<Vec<_>>() }))
    }

    /// The filter in Dapr's JSON form.
    pub fn to_json(&self) -> &Value {
        &self.0
    }
}

/// Sort direction of a [`Query::sort`] key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Ascending (the default).
    #[default]
    Asc,
    /// Descending.
    Desc,
}

/// A query in Dapr's state query language, built step by step or taken from
/// its JSON form. Run it with [`State::query`](crate::State::query) (one
/// page) or [`State::query_iter`](crate::State::query_iter) (every page).
///
/// ```no_run
/// use serde::Deserialize;
/// use wasm_state_sdk::{Filter, Order, Query, State};
/// # fn main() -> wasm_state_sdk::Result<()> {
/// #[derive(Deserialize)]
/// struct Employee { city: String, state: String }
///
/// let query = Query::new()
///     .filter(Filter::eq("person.org", "Dev Ops"))
///     .sort("state", Order::Desc)
///     .sort("person.id", Order::Asc)
///     .limit(3);
/// let page = State::instance().query::<Employee>(&query)?;
/// for hit in &page.results {
///     println!("{} lives in {}, {}", hit.key, hit.value.city, hit.value.state);
/// }
/// if let Some(token) = page.token {
///     let next = State::instance().query::<Employee>(&query.clone().token(token))?;
/// #   let _ = next;
/// }
/// // The same query from its JSON form:
/// let same = Query::from_json(r#"{"filter":{"EQ":{"person.org":"Dev Ops"}},"page":{"limit":3}}"#)?;
/// # let _ = same; Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    filter: Option<Value>,
    sort: Vec<Value>,
    page: Map<String, Value>,
    raw: Option<Value>,
}

impl Query {
    /// Every JSON object value, in key order.
    pub fn new() -> Query {
        Query::default()
    }

    /// A query from its JSON text (`{"filter":…, "sort":[…], "page":{…}}`).
    /// The text must be JSON; the host checks the rest and answers a
    /// malformed query with [`Error::InvalidArgument`](crate::Error::InvalidArgument).
    pub fn from_json(json: &str) -> Result<Query> {
        Ok(Query {
            raw: Some(serde_json::from_str(json)?),
            ..Query::default()
        })
    }

    /// Only values that match `filter` (replaces an earlier filter).
    pub fn filter(mut self, filter: Filter) -> Query {
        self.filter = Some(filter.0);
        self
    }

    /// Sort by the member at `path` after the sort keys already given.
    pub fn sort(mut self, path: &str, order: Order) -> Query {
        let order = match order {
            Order::Asc => "ASC",
            Order::Desc => "DESC",
        };
        self.sort.push(json!({ "key": path, "order": order }));
        self
    }

    /// At most `n` results per page (≥ 1; the host caps it at its page
    /// limit, 1000 by default).
    pub fn limit(mut self, n: u32) -> Query {
        self.page.insert("limit".into(), n.into());
        self
    }

    /// Resume after the page that returned `token`.
    pub fn token(mut self, token: impl Into<String>) -> Query {
        self.page
            .insert("token".into(), Value::String(token.into()));
        self
    }

    /// The query's JSON form, as the host (and the Dapr HTTP API) takes it.
    pub fn to_json(&self) -> Value {
        let mut top = match &self.raw {
            Some(Value::Object(m)) => m.clone(),
            Some(other) => return other.clone(),
            None => Map::new(),
        };
        if let Some(f) = &self.filter {
            top.insert("filter".into(), f.clone());
        }
        if !self.sort.is_empty() {
            // After the sort keys of a query made with `from_json`; a
            // `sort` there that is no list is left for the host to refuse.
            match top.get_mut("sort") {
                Some(Value::Array(given)) => given.extend(self.sort.iter().cloned()),
                Some(_) => {}
                None => {
                    top.insert("sort".into(), Value::Array(self.sort.clone()));
                }
            }
        }
        if !self.page.is_empty() {
            let mut page = match top.remove("page") {
                Some(Value::Object(p)) => p,
                _ => Map::new(),
            };
            page.extend(self.page.clone());
            top.insert("page".into(), Value::Object(page));
        }
        Value::Object(top)
    }
}

/// One result of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryItem<T> {
    /// The key.
    pub key: String,
    /// Its value, deserialized.
    pub value: T,
    /// The key's etag, usable in [`Condition::IfMatch`](crate::Condition::IfMatch).
    pub etag: Etag,
}

/// One page of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPage<T> {
    /// The results of this page, in the query's order.
    pub results: Vec<QueryItem<T>>,
    /// Pass to [`Query::token`] for the next page; `None` at the end.
    pub token: Option<String>,
}

/// One page from the host, each result decoded on its own (a value that
/// is not a `T` is that result's error, not the page's), and the token.
type Fetched<T> = (Vec<Result<QueryItem<T>>>, Option<String>);

fn fetch<T: DeserializeOwned>(bucket: &ws::Bucket, query: &Query) -> Result<Fetched<T>> {
    let page = bucket.query(&query.to_json().to_string())?;
    let results = page
        .results
        .into_iter()
        .map(|r| {
            Ok(QueryItem {
                value: from_json(&r.value)?,
                key: r.key,
                etag: Etag::from(r.etag),
            })
        })
        .collect();
    Ok((results, page.token))
}

pub(crate) fn run<T: DeserializeOwned>(bucket: &ws::Bucket, query: &Query) -> Result<QueryPage<T>> {
    let (results, token) = fetch(bucket, query)?;
    Ok(QueryPage {
        results: results.into_iter().collect::<Result<_>>()?,
        token,
    })
}

/// Every result of a query, one page (one host call) at a time; made by
/// [`State::query_iter`](crate::State::query_iter). A value that does not
/// deserialize as `T` is yielded as that result's `Err` and the iteration
/// goes on; if a host call fails, its `Err` is yielded once and the
/// iteration ends.
pub struct QueryIter<'a, T> {
    bucket: &'a ws::Bucket,
    query: Query,
    page: std::vec::IntoIter<Result<QueryItem<T>>>,
    done: bool,
    _t: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for QueryIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryIter")
            .field("query", &self.query)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<'a, T> QueryIter<'a, T> {
    pub(crate) fn new(bucket: &'a ws::Bucket, query: Query) -> Self {
        QueryIter {
            bucket,
            query,
            page: Vec::new().into_iter(),
            done: false,
            _t: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Iterator for QueryIter<'_, T> {
    type Item = Result<QueryItem<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.page.next() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            match fetch::<T>(self.bucket, &self.query) {
                Ok((results, token)) => {
                    self.page = results.into_iter();
                    match token {
                        Some(t) => self.query = std::mem::take(&mut self.query).token(t),
                        None => self.done = true,
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_makes_daprs_json_form() {
        let q = Query::new()
            .filter(Filter::and([
                Filter::gte("age", 18),
                Filter::neq("name", "x"),
                Filter::lt("score", 2.5),
            ]))
            .sort("state", Order::Desc)
            .sort("person.id", Order::Asc)
            .limit(3)
            .token("t");
        assert_eq!(
            q.to_json(),
            json!({
                "filter": {"AND": [{"GTE": {"age": 18}}, {"NEQ": {"name": "x"}}, {"LT": {"score": 2.5}}]},
                "sort": [{"key": "state", "order": "DESC"}, {"key": "person.id", "order": "ASC"}],
                "page": {"limit": 3, "token": "t"}
            })
        );
        assert_eq!(Query::new().to_json(), json!({}));
    }

    #[test]
    fn json_form_keeps_its_parts_and_takes_a_token() {
        let q = Query::from_json(r#"{"filter":{"EQ":{"a":1}},"page":{"limit":2}}"#)
            .unwrap()
            .token("next");
        assert_eq!(
            q.to_json(),
            json!({"filter": {"EQ": {"a": 1}}, "page": {"limit": 2, "token": "next"}})
        );
        assert!(Query::from_json("{not json").is_err());
    }
}
