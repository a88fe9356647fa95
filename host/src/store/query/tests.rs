use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

/// The dataset of Dapr's query API how-to (employees by org and state).
pub(crate) fn employees() -> Vec<Candidate> {
    let rows = [
        ("1", "Dev Ops", 1036, "Seattle", "WA"),
        ("2", "Hardware", 1028, "Portland", "OR"),
        ("3", "Finance", 1071, "Sacramento", "CA"),
        ("4", "Dev Ops", 1042, "Spokane", "WA"),
        ("5", "Hardware", 1007, "Los Angeles", "CA"),
        ("6", "Finance", 1094, "Eugene", "OR"),
        ("7", "Dev Ops", 1015, "San Francisco", "CA"),
        ("8", "Hardware", 1077, "Redmond", "WA"),
        ("9", "Finance", 1002, "San Diego", "CA"),
        ("10", "Dev Ops", 1054, "New York", "NY"),
    ];
    rows.iter()
        .map(|(k, org, id, city, st)| Candidate {
            key: k.to_string(),
            value: json!({"person": {"org": org, "id": id}, "city": city, "state": st})
                .to_string()
                .into_bytes(),
            etag: format!("etag-{k}"),
        })
        .collect()
}

const REFERENCE_QUERY: &str = r#"{
    "filter": {"OR": [
        {"EQ": {"person.org": "Dev Ops"}},
        {"AND": [{"EQ": {"person.org": "Finance"}}, {"IN": {"state": ["CA", "WA"]}}]}
    ]},
    "sort": [{"key": "state", "order": "DESC"}, {"key": "person.id"}],
    "page": {"limit": 3}
}"#;

fn keys(page: &QueryPage) -> Vec<&str> {
    page.results.iter().map(|r| r.key.as_str()).collect()
}

fn q(json: &str) -> Query {
    Query::from_json(json.as_bytes()).expect("valid query")
}

fn all(query: &Query, data: Vec<Candidate>) -> Vec<String> {
    all_within(query, data, PageBounds::results(1000))
}

/// Every page in turn; each within `bounds` (or one result alone).
fn all_within(query: &Query, data: Vec<Candidate>, bounds: PageBounds) -> Vec<String> {
    let mut q = query.clone();
    let mut out = Vec::new();
    loop {
        let page = run(&q, data.clone(), bounds).expect("query runs");
        let bytes: usize = page
            .results
            .iter()
            .map(|r| r.key.len() + r.value.len() + r.etag.len())
            .sum();
        assert!(
            bytes <= bounds.bytes || page.results.len() == 1,
            "a page of {bytes} bytes"
        );
        assert!(!page.results.is_empty() || page.token.is_none());
        out.extend(page.results.iter().map(|r| r.key.clone()));
        match page.token {
            Some(t) => q.token = Some(t),
            None => return out,
        }
    }
}

#[test]
fn reference_example_order_and_paging() {
    let mut query = q(REFERENCE_QUERY);
    let first = run(&query, employees(), PageBounds::results(1000)).unwrap();
    assert_eq!(keys(&first), ["1", "4", "10"]);
    assert_eq!(first.results[0].etag, "etag-1");
    let v: Value = serde_json::from_slice(&first.results[0].value).unwrap();
    assert_eq!(v["city"], "Seattle");
    query.token = first.token.clone();
    assert!(query.token.is_some());
    let second = run(&query, employees(), PageBounds::results(1000)).unwrap();
    assert_eq!(keys(&second), ["9", "7", "3"]);
    assert_eq!(second.token, None, "the last page has no token");
}

#[test]
fn token_resumes_after_position_even_when_data_changes() {
    let mut query = q(r#"{"sort": [{"key": "person.id"}], "page": {"limit": 4}}"#);
    let first = run(&query, employees(), PageBounds::results(1000)).unwrap();
    assert_eq!(keys(&first), ["9", "5", "7", "2"]);
    // Remove a result of the first page and add one that sorts before the
    // token: neither shifts the next page (an offset would).
    let mut changed: Vec<Candidate> = employees().into_iter().filter(|c| c.key != "5").collect();
    changed.push(Candidate {
        key: "0".into(),
        value: br#"{"person":{"id":1}}"#.to_vec(),
        etag: "e".into(),
    });
    query.token = first.token;
    let second = run(&query, changed, PageBounds::results(1000)).unwrap();
    assert_eq!(keys(&second), ["1", "4", "10", "3"]);
}

#[test]
fn limit_defaults_to_and_is_capped_by_the_page_limit() {
    let data = employees();
    let page = run(&q("{}"), data.clone(), PageBounds::results(4)).unwrap();
    assert_eq!(page.results.len(), 4);
    assert!(page.token.is_some());
    let page = run(&q(r#"{"page":{"limit":50}}"#), data, PageBounds::results(4)).unwrap();
    assert_eq!(page.results.len(), 4);
    // Without sort: key order.
    assert_eq!(keys(&page), ["1", "10", "2", "3"]);
}

fn docs(values: &[(&str, Value)]) -> Vec<Candidate> {
    values
        .iter()
        .map(|(k, v)| Candidate {
            key: k.to_string(),
            value: v.to_string().into_bytes(),
            etag: String::new(),
        })
        .collect()
}

#[test]
fn only_json_objects_take_part() {
    let mut data = docs(&[
        ("obj", json!({"a": 1})),
        ("num", json!(1)),
        ("str", json!("x")),
        ("arr", json!([{"a": 1}])),
        ("null", Value::Null),
    ]);
    data.push(Candidate {
        key: "bytes".into(),
        value: vec![0xff, 0x00],
        etag: String::new(),
    });
    assert_eq!(all(&q("{}"), data.clone()), ["obj"]);
    assert_eq!(all(&q(r#"{"filter":{"EQ":{"a":1}}}"#), data), ["obj"]);
}

#[test]
fn comparison_rules() {
    let data = docs(&[
        ("int", json!({"n": 1, "s": "b"})),
        ("float", json!({"n": 1.0, "s": "a"})),
        ("big", json!({"n": 2.5, "s": "é"})),
        ("str", json!({"n": "1", "s": 3})),
        ("null", json!({"n": null})),
        ("missing", json!({"other": true})),
        ("nested", json!({"n": {"deep": 7}})),
    ]);
    let run_f = |f: &str| all(&q(&format!(r#"{{"filter":{f}}}"#)), data.clone());
    // Numbers by value; strings never equal numbers.
    assert_eq!(run_f(r#"{"EQ":{"n":1}}"#), ["float", "int"]);
    assert_eq!(run_f(r#"{"EQ":{"n":"1"}}"#), ["str"]);
    // NEQ needs the field present and of the same type.
    assert_eq!(run_f(r#"{"NEQ":{"n":1}}"#), ["big"]);
    assert_eq!(run_f(r#"{"NEQ":{"n":null}}"#), Vec::<String>::new());
    assert_eq!(run_f(r#"{"EQ":{"n":null}}"#), ["null"]);
    assert_eq!(run_f(r#"{"IN":{"n":[2.5,"1"]}}"#), ["big", "str"]);
    // Ranges: numbers with numbers, strings with strings (by bytes).
    assert_eq!(run_f(r#"{"GT":{"n":1}}"#), ["big"]);
    assert_eq!(run_f(r#"{"GTE":{"n":1}}"#), ["big", "float", "int"]);
    assert_eq!(run_f(r#"{"LT":{"s":"b"}}"#), ["float"]);
    assert_eq!(run_f(r#"{"LTE":{"s":"b"}}"#), ["float", "int"]);
    assert_eq!(run_f(r#"{"GT":{"s":"b"}}"#), ["big"]);
    // Nested paths; a path through a non-object finds nothing.
    assert_eq!(run_f(r#"{"EQ":{"n.deep":7}}"#), ["nested"]);
    assert_eq!(run_f(r#"{"EQ":{"s.deep":7}}"#), Vec::<String>::new());
    assert_eq!(
        run_f(r#"{"AND":[{"GTE":{"n":1}},{"LT":{"n":2}}]}"#),
        ["float", "int"]
    );
    assert_eq!(
        run_f(r#"{"OR":[{"EQ":{"n":"1"}},{"EQ":{"other":true}}]}"#),
        ["missing", "str"]
    );
}

#[test]
fn sort_orders_types_and_puts_missing_last_ascending() {
    let data = docs(&[
        ("a", json!({"v": "x"})),
        ("b", json!({"v": 10})),
        ("c", json!({"v": 9.5})),
        ("d", json!({})),
        ("e", json!({"v": null})),
        ("f", json!({"v": true})),
        ("g", json!({"v": [1]})),
        ("h", json!({"v": {"z": 1}})),
        ("i", json!({"v": 10})),
    ]);
    let asc = all(
        &q(r#"{"sort":[{"key":"v"}],"page":{"limit":2}}"#),
        data.clone(),
    );
    assert_eq!(asc, ["e", "f", "c", "b", "i", "a", "g", "h", "d"]);
    let desc = all(
        &q(r#"{"sort":[{"key":"v","order":"DESC"}],"page":{"limit":2}}"#),
        data,
    );
    // Reversed, except that ties still go by key ascending.
    assert_eq!(desc, ["d", "h", "g", "a", "b", "i", "c", "f", "e"]);
}

#[test]
fn malformed_queries_say_what_is_wrong() {
    let err = |s: &str| match Query::from_json(s.as_bytes()) {
        Err(StateError::InvalidArgument(m)) => m,
        other => panic!("{s}: expected invalid-argument, got {other:?}"),
    };
    assert!(err("nope").contains("not valid JSON"));
    assert!(err("[]").contains("JSON object"));
    assert!(err(r#"{"filters":{}}"#).contains("unknown field \"filters\""));
    assert!(err(r#"{"filter":{"eq":{"a":1}}}"#).contains("unknown operator \"eq\""));
    assert!(err(r#"{"filter":{"EQ":{"a":1},"NEQ":{"a":2}}}"#).contains("exactly one operator"));
    assert!(err(r#"{"filter":{"EQ":{"a":1,"b":2}}}"#).contains("exactly one field path"));
    assert!(err(r#"{"filter":{"EQ":{"a..b":1}}}"#).contains("empty segment"));
    assert!(err(r#"{"filter":{"IN":{"a":1}}}"#).contains("array of values"));
    assert!(err(r#"{"filter":{"GT":{"a":true}}}"#).contains("number or a string"));
    assert!(err(r#"{"filter":{"AND":[]}}"#).contains("non-empty array"));
    assert!(err(r#"{"filter":{"OR":[{"EQ":{"a":1}},{"XX":{}}]}}"#).contains("filter.OR[1]"));
    assert!(err(r#"{"sort":{"key":"a"}}"#).contains("sort must be an array"));
    assert!(err(r#"{"sort":[{"key":"a","order":"down"}]}"#).contains("ASC"));
    assert!(err(r#"{"sort":[{"order":"ASC"}]}"#).contains("needs a `key`"));
    assert!(err(r#"{"page":{"limit":0}}"#).contains("≥ 1"));
    assert!(err(r#"{"page":{"limit":-3}}"#).contains("≥ 1"));
    assert!(err(r#"{"page":{"token":5}}"#).contains("token must be a string"));
    assert!(err(r#"{"page":{"size":5}}"#).contains("page.size"));
    let bad_token = Query {
        token: Some("3".into()),
        ..q("{}")
    };
    assert!(matches!(
        run(&bad_token, employees(), PageBounds::results(10)),
        Err(StateError::InvalidArgument(m)) if m.contains("page.token")
    ));
    // A token of a query with another number of sort keys is refused too.
    let page = run(
        &q(r#"{"page":{"limit":1}}"#),
        employees(),
        PageBounds::results(10),
    )
    .unwrap();
    let other = Query {
        token: page.token,
        ..q(r#"{"sort":[{"key":"state"}]}"#)
    };
    assert!(run(&other, employees(), PageBounds::results(10)).is_err());
}

#[test]
fn json_form_round_trips() {
    let query = q(REFERENCE_QUERY);
    let again = Query::from_json(query.to_json().to_string().as_bytes()).unwrap();
    assert_eq!(query, again);
}

fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..3).prop_map(|n| json!(n)),
        prop_oneof![Just(0.5f64), Just(-1.5), Just(2.0)].prop_map(|f| json!(f)),
        "[ab]{0,2}".prop_map(Value::String),
    ]
}

fn arb_doc() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(arb_value()),
        proptest::option::of(arb_value()),
    )
        .prop_map(|(a, b)| {
            let mut m = serde_json::Map::new();
            if let Some(a) = a {
                m.insert("a".into(), a);
            }
            if let Some(b) = b {
                m.insert("b".into(), json!({ "c": b }));
            }
            Value::Object(m)
        })
}

/// A query over many matches holds only about two pages of them, and still
/// returns the first page in order with a token for the rest.
#[test]
fn a_runner_holds_about_two_pages_of_matches() {
    let query = q(r#"{"sort": [{"key": "n", "order": "DESC"}], "page": {"limit": 3}}"#);
    let mut runner = Runner::new(&query, PageBounds::results(1000)).unwrap();
    let mut most = 0;
    for i in 0..10_000 {
        let value = json!({ "n": (i * 7919) % 10_000 }).to_string();
        runner.offer(&format!("k{i}"), value.as_bytes(), String::new);
        most = most.max(runner.hits.len());
    }
    assert!(most <= 8, "held {most} matches for a page of 3");
    let page = runner.finish().unwrap();
    let ns: Vec<Value> = page
        .results
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.value).unwrap()["n"].clone())
        .collect();
    assert_eq!(ns, [json!(9999), json!(9998), json!(9997)]);
    assert!(page.token.is_some());
}

proptest! {
    /// Paging with any limit yields exactly the filtered results in the
    /// order a plain full sort gives, each once.
    #[test]
    fn pages_concatenate_to_the_full_sorted_result(
        docs in proptest::collection::vec(arb_doc(), 0..40),
        limit in 1u32..7,
        desc_a in any::<bool>(),
        desc_b in any::<bool>(),
        threshold in arb_value(),
        max_bytes in prop_oneof![Just(usize::MAX), 1usize..200],
    ) {
        let data: Vec<Candidate> = docs.iter().enumerate().map(|(i, d)| Candidate {
            key: format!("k{i:02}"),
            value: d.to_string().into_bytes(),
            etag: String::new(),
        }).collect();
        let filter = Filter::Or(vec![
            Filter::Gte(Path::parse("a").unwrap(), json!(0)),
            Filter::Neq(Path::parse("b.c").unwrap(), threshold),
        ]);
        let sort = vec![
            SortKey { path: Path::parse("a").unwrap(), desc: desc_a },
            SortKey { path: Path::parse("b.c").unwrap(), desc: desc_b },
        ];
        let query = Query { filter: Some(filter.clone()), sort: sort.clone(), limit: Some(limit), token: None };
        let bounds = PageBounds { results: 1000, bytes: max_bytes };
        let paged = all_within(&query, data.clone(), bounds);
        // The model: filter, then one full sort with the same comparator.
        let mut expected: Vec<(Vec<Option<Value>>, String)> = data.iter().filter_map(|c| {
            let doc: Value = serde_json::from_slice(&c.value).unwrap();
            filter.matches(&doc).then(|| (
                sort.iter().map(|s| s.path.lookup(&doc).cloned()).collect(),
                c.key.clone(),
            ))
        }).collect();
        expected.sort_by(|(a, ak), (b, bk)| order::compare(&sort, a, ak, b, bk));
        let expected: Vec<String> = expected.into_iter().map(|(_, k)| k).collect();
        prop_assert_eq!(paged, expected);
    }
}

/// Pages stop short of the page's bytes, and the runner holds about twice
/// that while it runs, whatever it is offered.
#[test]
fn a_page_stops_short_of_its_bytes() {
    let data: Vec<Candidate> = (0..100)
        .map(|i| Candidate {
            key: format!("k{i:03}"),
            value: format!(r#"{{"n":{i},"pad":"{}"}}"#, "x".repeat(80)).into_bytes(),
            etag: "e".into(),
        })
        .collect();
    let size = data[99].key.len() + data[99].value.len() + 1;
    let bounds = PageBounds {
        results: 1000,
        bytes: 10 * size,
    };
    let query = q(r#"{"sort":[{"key":"n","order":"DESC"}]}"#);
    let first = run(&query, data.clone(), bounds).unwrap();
    assert_eq!(first.results.len(), 10);
    assert_eq!(first.results[0].key, "k099");
    assert!(first.token.is_some());
    let mut runner = Runner::new(&query, bounds).unwrap();
    for c in &data {
        runner.offer(&c.key, &c.value, || c.etag.clone());
        assert!(
            runner.held <= 2 * bounds.bytes + size,
            "{} held",
            runner.held
        );
    }
    let expected: Vec<String> = (0..100).rev().map(|i| format!("k{i:03}")).collect();
    assert_eq!(all_within(&query, data, bounds), expected);
}

/// Candidates from `(key, JSON)` pairs.
fn texts(rows: &[(&str, &str)]) -> Vec<Candidate> {
    rows.iter()
        .map(|(k, v)| Candidate {
            key: k.to_string(),
            value: v.as_bytes().to_vec(),
            etag: "e".into(),
        })
        .collect()
}

/// Paging one result at a time, with a bound on the pages (a token that
/// does not move on would page for ever).
fn one_by_one(query: &str, data: Vec<Candidate>) -> Vec<String> {
    let mut q = q(query);
    q.limit = Some(1);
    let mut out = Vec::new();
    for _ in 0..=data.len() {
        let page = run(&q, data.clone(), PageBounds::results(1000)).expect("query runs");
        out.extend(page.results.iter().map(|r| r.key.clone()));
        match page.token {
            Some(t) => q.token = Some(t),
            None => return out,
        }
    }
    panic!("paging did not end: {out:?}");
}

/// A float survives the page token exactly: two results with the same
/// float sort value are each returned once, both ways.
#[test]
fn float_sort_values_survive_the_token() {
    let data = texts(&[
        ("a", r#"{"s":1.9817176473073683e-8}"#),
        ("b", r#"{"s":1.9817176473073683e-8}"#),
        ("c", r#"{"s":0.1}"#),
    ]);
    let asc = one_by_one(r#"{"sort":[{"key":"s"}]}"#, data.clone());
    assert_eq!(asc, ["a", "b", "c"]);
    let desc = one_by_one(r#"{"sort":[{"key":"s","order":"DESC"}]}"#, data);
    assert_eq!(desc, ["c", "a", "b"]);
}

/// Integers and floats compare by their exact values, so the order stays
/// total past 2^53 and paging returns each result once.
#[test]
fn integers_and_floats_compare_exactly() {
    let data = texts(&[
        ("a", r#"{"n":9007199254740993}"#),
        ("b", r#"{"n":9007199254740992.0}"#),
        ("c", r#"{"n":9007199254740992}"#),
        ("d", r#"{"n":1e20}"#),
        ("e", r#"{"n":-9007199254740993}"#),
        ("f", r#"{"n":-9007199254740992.5}"#),
        ("g", r#"{"n":18446744073709551615}"#),
    ]);
    let asc = one_by_one(r#"{"sort":[{"key":"n"}]}"#, data.clone());
    assert_eq!(asc, ["e", "f", "b", "c", "a", "g", "d"]);
    // Filters use the same comparison.
    let gt = all(
        &q(r#"{"filter":{"GT":{"n":9007199254740992.0}}}"#),
        data.clone(),
    );
    assert_eq!(gt, ["a", "d", "g"]);
    let eq = all(&q(r#"{"filter":{"EQ":{"n":9007199254740992}}}"#), data);
    assert_eq!(eq, ["b", "c"]);
}

/// Sort keys are bounded in number and in the size of their values:
/// a query cannot make the runner hold copies of whole documents.
#[test]
fn sort_keys_and_sort_values_are_bounded() {
    let err = |query: &Query, data: Vec<Candidate>| match run(query, data, PageBounds::results(10))
    {
        Err(StateError::InvalidArgument(m)) => m,
        other => panic!("expected invalid-argument, got {other:?}"),
    };
    let many: Vec<Value> = (0..=MAX_SORT_KEYS)
        .map(|i| json!({ "key": format!("f{i}") }))
        .collect();
    let m = err(&q(&json!({ "sort": many }).to_string()), vec![]);
    assert!(m.contains("at most 8"), "{m}");
    let twice = q(r#"{"sort":[{"key":"a"},{"key":"b"},{"key":"a","order":"DESC"}]}"#);
    let m = err(&twice, vec![]);
    assert!(
        m.contains("sort[2]") && m.contains("repeats sort[0]"),
        "{m}"
    );
    // Eight distinct keys are fine.
    let eight: Vec<Value> = (0..MAX_SORT_KEYS)
        .map(|i| json!({ "key": format!("f{i}") }))
        .collect();
    assert!(
        run(
            &q(&json!({ "sort": eight }).to_string()),
            vec![],
            PageBounds::results(10)
        )
        .is_ok()
    );
    // A sort value over the bound fails the query, naming key and field;
    // at the bound it is fine, and a large field not sorted on is too.
    let at = "x".repeat(MAX_SORT_VALUE - 32);
    let over = "x".repeat(MAX_SORT_VALUE - 31);
    let ok = texts(&[("k", &json!({ "s": at, "other": over }).to_string())]);
    let sorted = q(r#"{"sort":[{"key":"s"}]}"#);
    assert_eq!(all(&sorted, ok), ["k"]);
    let big = texts(&[
        ("a", r#"{"s":"small"}"#),
        ("k", &json!({ "s": over }).to_string()),
    ]);
    let m = err(&sorted, big.clone());
    assert!(m.contains("\"k\"") && m.contains("\"s\""), "{m}");
    let array: Vec<u32> = (0..200).collect();
    let m = err(&sorted, texts(&[("k", &json!({ "s": array }).to_string())]));
    assert!(m.contains("sort on a smaller field"), "{m}");
    // A filter that leaves the big one out answers.
    let small = q(r#"{"filter":{"EQ":{"s":"small"}},"sort":[{"key":"s"}]}"#);
    assert_eq!(all(&small, big), ["a"]);
}
