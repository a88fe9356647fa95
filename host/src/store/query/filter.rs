//! Filters and field paths: which JSON objects a query matches.

use std::cmp::Ordering;

use serde_json::Value;

/// A dotted path into a JSON object (`person.org`): each segment names a
/// member of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(Vec<String>);

impl Path {
    /// Parse `a.b.c`; `None` if it is empty or has an empty segment.
    pub fn parse(path: &str) -> Option<Path> {
        let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return None;
        }
        Some(Path(segments))
    }

    /// The member the path names in `doc`, if every step finds an object
    /// with that member.
    pub fn lookup<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        self.0
            .iter()
            .try_fold(doc, |v, segment| v.as_object()?.get(segment))
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// A filter of Dapr's query language.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// The field equals the value.
    Eq(Path, Value),
    /// The field is present, of the value's type, and differs from it.
    Neq(Path, Value),
    /// The field equals one of the values.
    In(Path, Vec<Value>),
    /// The field is greater than the value (numbers or strings).
    Gt(Path, Value),
    /// Greater than or equal.
    Gte(Path, Value),
    /// Less than.
    Lt(Path, Value),
    /// Less than or equal.
    Lte(Path, Value),
    /// Every filter matches (none: true).
    And(Vec<Filter>),
    /// Some filter matches (none: false).
    Or(Vec<Filter>),
}

/// JSON equality with numbers compared by value (`1` = `1.0`); values of
/// different types are never equal.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => number_cmp(a, b) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Compare two JSON numbers by value, exactly: integers as integers, an
/// integer with a float by their exact values (not the integer rounded to
/// an f64, which past 2⁵³ would make the order cycle), floats as floats.
pub fn number_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    let (Value::Number(x), Value::Number(y)) = (a, b) else {
        return None;
    };
    let int = |n: &serde_json::Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (int(x), int(y)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        (Some(x), None) => int_float_cmp(x, y.as_f64()?),
        (None, Some(y)) => int_float_cmp(y, x.as_f64()?).map(Ordering::reverse),
        (None, None) => x.as_f64()?.partial_cmp(&y.as_f64()?),
    }
}

/// Compare an integer with a float by their exact values.
fn int_float_cmp(i: i128, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    // Every i64 and u64 lies strictly within ±2¹²⁷.
    const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
    if f >= LIMIT {
        return Some(Ordering::Less);
    }
    if f < -LIMIT {
        return Some(Ordering::Greater);
    }
    // A float this size is exact in an i128 once truncated.
    let whole = f.trunc();
    Some(i.cmp(&(whole as i128)).then_with(|| {
        if f > whole {
            Ordering::Less
        } else if f < whole {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    }))
}

/// Order two values for `GT`…`LTE`: numbers by value, strings by bytes;
/// anything else (including mixed types) is not comparable.
fn range_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => number_cmp(a, b),
        (Value::String(x), Value::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        _ => None,
    }
}

fn same_type(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

impl Filter {
    /// Does `doc` (a JSON object) match?
    pub fn matches(&self, doc: &Value) -> bool {
        let field = |p: &Path| p.lookup(doc);
        let range = |p: &Path, v: &Value, ok: fn(Ordering) -> bool| {
            field(p).and_then(|f| range_cmp(f, v)).is_some_and(ok)
        };
        match self {
            Filter::Eq(p, v) => field(p).is_some_and(|f| json_eq(f, v)),
            Filter::Neq(p, v) => field(p).is_some_and(|f| same_type(f, v) && !json_eq(f, v)),
            Filter::In(p, vs) => field(p).is_some_and(|f| vs.iter().any(|v| json_eq(f, v))),
            Filter::Gt(p, v) => range(p, v, Ordering::is_gt),
            Filter::Gte(p, v) => range(p, v, Ordering::is_ge),
            Filter::Lt(p, v) => range(p, v, Ordering::is_lt),
            Filter::Lte(p, v) => range(p, v, Ordering::is_le),
            Filter::And(fs) => fs.iter().all(|f| f.matches(doc)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(doc)),
        }
    }
}
