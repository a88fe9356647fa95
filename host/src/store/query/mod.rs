//! Queries over the JSON values of a scope, in Dapr's state query language:
//! a `filter` (`EQ`, `NEQ`, `IN`, `GT`, `GTE`, `LT`, `LTE` on a dotted field
//! path, combined with `AND` / `OR`), a `sort` by one or more paths, and a
//! `page` with a `limit` and an opaque `token` that resumes exactly after the
//! last result of the previous page.
//!
//! The rules, beside Dapr's (docs/dapr.md has the table):
//! - only keys holding a **value** that parses as a **JSON object** take
//!   part; other values, maps and lists are never results (with or without a
//!   filter), and expired keys are excluded;
//! - a comparison never matches a missing field, nor values of different
//!   JSON types (`"1"` is not `1`; `NEQ` too needs the field present and of
//!   the same type); numbers compare by value (`1` = `1.0`), strings by
//!   their UTF-8 bytes; `GT`…`LTE` apply to numbers and strings only;
//! - numbers compare by their exact values, integers with floats too (a
//!   cast to f64 would make the order cycle past 2⁵³), and a float in a
//!   page token reads back as the float written (serde_json's
//!   `float_roundtrip`);
//! - `sort` orders by type first (null < booleans < numbers < strings <
//!   arrays < objects < missing), then by value; `DESC` reverses that whole
//!   order; ties are broken by key, ascending, so the order is total; at
//!   most [`MAX_SORT_KEYS`] keys, each field once, and a matching result's
//!   sort value over [`MAX_SORT_VALUE`] fails the query (the runner holds
//!   the sort values of every result it keeps, and a token carries them);
//! - `page.limit` defaults to, and is capped at, the host's page limit (1000
//!   by default); the `token` names the position of the last result, not an
//!   offset, so writes between pages never make a result repeat or skip one
//!   that matched throughout.
//!
//! This module holds the semantics only; the engine feeds it the candidate
//! values of a scope ([`Candidate`]), so every engine answers the same way.

mod filter;
mod order;
mod parse;

use std::cmp::Ordering;

use serde_json::Value;

use super::error::{Result, StateError};

pub use filter::{Filter, Path};
pub use order::{MAX_SORT_KEYS, MAX_SORT_VALUE, SortKey};

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Which values match; `None` = every JSON object.
    pub filter: Option<Filter>,
    /// Sort keys, most significant first (the key breaks ties).
    pub sort: Vec<SortKey>,
    /// Results per page; `None` = the host's page limit.
    pub limit: Option<u32>,
    /// Resume after the position this token names (from [`QueryPage::token`]).
    pub token: Option<String>,
}

impl Query {
    /// Parse Dapr's JSON query form (`{"filter": …, "sort": […], "page": {…}}`).
    /// Every mistake is `invalid-argument` saying what is wrong and what is
    /// allowed.
    pub fn from_json(json: &[u8]) -> Result<Query> {
        parse::query(json)
    }

    /// The query as Dapr JSON (the inverse of [`Query::from_json`]).
    pub fn to_json(&self) -> Value {
        parse::to_json(self)
    }
}

/// One value the engine offers to a query.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The key.
    pub key: String,
    /// The stored bytes.
    pub value: Vec<u8>,
    /// The key's etag.
    pub etag: String,
}

/// One result of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResult {
    /// The key.
    pub key: String,
    /// The stored bytes (a JSON object).
    pub value: Vec<u8>,
    /// The key's etag.
    pub etag: String,
}

/// One page of results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryPage {
    /// Results in the query's order.
    pub results: Vec<QueryResult>,
    /// Pass back as `page.token` for the next page; `None` when there is none.
    pub token: Option<String>,
}

/// How much one page may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageBounds {
    /// Results (the host's page limit; a query's `page.limit` may lower it).
    pub results: usize,
    /// Bytes of keys, values and etags together (the host's reply limit):
    /// a page ends early before a result that would go over it (it holds
    /// one result at least), and its token resumes there.
    pub bytes: usize,
}

impl PageBounds {
    /// At most `results` results, of any size.
    pub fn results(results: usize) -> Self {
        PageBounds {
            results,
            bytes: usize::MAX,
        }
    }
}

/// A candidate that matched, with its sort values.
struct Hit {
    sort: Vec<Option<Value>>,
    result: QueryResult,
}

impl Hit {
    /// Its bytes in a reply.
    fn size(&self) -> usize {
        let r = &self.result;
        r.key.len() + r.value.len() + r.etag.len()
    }
}

/// How many of `hits` (in order) fit in `max_bytes`: one at least.
fn fitting(hits: &[Hit], max_bytes: usize) -> usize {
    let mut bytes = 0usize;
    hits.iter()
        .position(|h| {
            bytes = bytes.saturating_add(h.size());
            bytes > max_bytes
        })
        .map_or(hits.len(), |i| i.max(1))
}

/// A query being run: the engine offers every candidate value of the scope
/// (in any order) and then takes the page. Values that do not match are
/// dropped as they are offered, and matches beyond the page are dropped as
/// they pile up: memory holds at most twice the page (plus one) matches,
/// and about twice the page's bytes, whatever the scope holds.
pub struct Runner<'q> {
    query: &'q Query,
    limit: usize,
    max_bytes: usize,
    after: Option<order::Position>,
    hits: Vec<Hit>,
    /// Bytes of `hits`.
    held: usize,
    /// Why the query cannot answer (a sort value over
    /// [`MAX_SORT_VALUE`]): offers stop, and the page is this error.
    failed: Option<StateError>,
}

impl<'q> Runner<'q> {
    /// Start `query` with pages within `page`. Checks the limit and the
    /// token.
    pub fn new(query: &'q Query, page: PageBounds) -> Result<Runner<'q>> {
        order::check(&query.sort)?;
        let most = page.results.max(1);
        let limit = match query.limit {
            Some(0) => return Err(StateError::invalid("page.limit must be at least 1")),
            Some(n) => (n as usize).min(most),
            None => most,
        };
        let after = query
            .token
            .as_deref()
            .map(|t| order::Position::decode(t, query.sort.len()))
            .transpose()?;
        Ok(Runner {
            query,
            limit,
            max_bytes: page.bytes,
            after,
            hits: Vec::new(),
            held: 0,
            failed: None,
        })
    }

    /// Whether the query has failed already ([`Runner::finish`] says why):
    /// the engine may stop offering.
    pub fn failed(&self) -> bool {
        self.failed.is_some()
    }

    fn cmp(&self, a: &Hit, b: &Hit) -> Ordering {
        order::compare(
            &self.query.sort,
            &a.sort,
            &a.result.key,
            &b.sort,
            &b.result.key,
        )
    }

    /// Offer one value; `etag` is only called for a match.
    pub fn offer(&mut self, key: &str, value: &[u8], etag: impl FnOnce() -> String) {
        // Only objects take part: skip anything else without parsing it.
        if self.failed.is_some() || value.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return;
        }
        let Ok(doc @ Value::Object(_)) = serde_json::from_slice::<Value>(value) else {
            return;
        };
        if !self.query.filter.as_ref().is_none_or(|f| f.matches(&doc)) {
            return;
        }
        let sort: Vec<Option<Value>> = self
            .query
            .sort
            .iter()
            .map(|s| s.path.lookup(&doc).cloned())
            .collect();
        let big = self
            .query
            .sort
            .iter()
            .zip(&sort)
            .find(|(_, v)| v.as_ref().is_some_and(|v| !order::fits(v, MAX_SORT_VALUE)));
        if let Some((s, _)) = big {
            self.failed = Some(StateError::invalid(format!(
                "query: the value of {key:?} at sort key {:?} takes more than \
                 {MAX_SORT_VALUE} bytes; sort on a smaller field",
                s.path.to_string()
            )));
            self.hits.clear();
            return;
        }
        if let Some(pos) = &self.after
            && order::compare(&self.query.sort, &sort, key, &pos.sort, &pos.key)
                != Ordering::Greater
        {
            return;
        }
        self.hits.push(Hit {
            sort,
            result: QueryResult {
                key: key.to_owned(),
                value: value.to_vec(),
                etag: etag(),
            },
        });
        self.held = self
            .held
            .saturating_add(self.hits.last().map_or(0, Hit::size));
        // Keep the first `limit + 1` (the page, and whether there is more)
        // once twice that many are held: linear time overall.
        if self.hits.len() >= 2 * (self.limit + 1) {
            let mut hits = std::mem::take(&mut self.hits);
            hits.select_nth_unstable_by(self.limit, |a, b| self.cmp(a, b));
            hits.truncate(self.limit + 1);
            self.held = hits.iter().map(Hit::size).sum();
            self.hits = hits;
        }
        // And the first that fit in the page's bytes (and one more) once
        // twice that is held.
        if self.held / 2 > self.max_bytes {
            let mut hits = std::mem::take(&mut self.hits);
            hits.sort_unstable_by(|a, b| self.cmp(a, b));
            hits.truncate(fitting(&hits, self.max_bytes) + 1);
            self.held = hits.iter().map(Hit::size).sum();
            self.hits = hits;
        }
    }

    /// The page: the first `limit` matches after the token, in order, as
    /// many as fit in the page's bytes; `invalid-argument` if a match's
    /// sort value was over [`MAX_SORT_VALUE`].
    pub fn finish(mut self) -> Result<QueryPage> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let mut hits = std::mem::take(&mut self.hits);
        let limit = self.limit;
        let mut more = hits.len() > limit;
        if more {
            hits.select_nth_unstable_by(limit, |a, b| self.cmp(a, b));
            hits.truncate(limit);
        }
        hits.sort_unstable_by(|a, b| self.cmp(a, b));
        let fit = fitting(&hits, self.max_bytes);
        if fit < hits.len() {
            hits.truncate(fit);
            more = true;
        }
        let token = match hits.last() {
            Some(last) if more => Some(order::Position::encode(&last.sort, &last.result.key)),
            _ => None,
        };
        Ok(QueryPage {
            results: hits.into_iter().map(|h| h.result).collect(),
            token,
        })
    }
}

/// Run `query` over `candidates` and return one page within `page`.
pub fn run(
    query: &Query,
    candidates: impl IntoIterator<Item = Candidate>,
    page: PageBounds,
) -> Result<QueryPage> {
    let mut runner = Runner::new(query, page)?;
    for c in candidates {
        runner.offer(&c.key, &c.value, || c.etag);
    }
    runner.finish()
}

#[cfg(test)]
mod tests;
