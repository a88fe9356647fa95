//! A query over 100k JSON values (filter on a nested member, sort by two
//! members, first page of 100), against the same work done by hand on a
//! native redb table of the same values in the same process: a range scan,
//! a JSON parse per value, the filter, and a partial sort.
//! `scripts/bench-ratios.py` prints the ratio.

use std::cmp::Ordering;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::{Value, json};
use wasm_state::store::query::Query;
use wasm_state::store::{Store, StoreConfig};

const RAW: TableDefinition<&str, &[u8]> = TableDefinition::new("raw");
const N: usize = 100_000;
const ORGS: [&str; 4] = ["Dev Ops", "Finance", "Hardware", "Sales"];
const STATES: [&str; 5] = ["CA", "WA", "OR", "NY", "TX"];

fn doc(i: usize) -> Vec<u8> {
    json!({
        "person": {"org": ORGS[i % 4], "id": (i * 7919) % N},
        "city": format!("city-{}", i % 97),
        "state": STATES[i % 5],
    })
    .to_string()
    .into_bytes()
}

/// The native baseline: scan, parse, filter `person.org == "Dev Ops" &&
/// state IN [CA, WA]`, sort by state DESC then person.id, first 100.
fn native_query(db: &Database) -> Vec<(String, Vec<u8>)> {
    let r = db.begin_read().unwrap();
    let t = r.open_table(RAW).unwrap();
    let mut hits: Vec<(String, String, u64, Vec<u8>)> = Vec::new();
    for item in t.iter().unwrap() {
        let (k, v) = item.unwrap();
        let doc: Value = serde_json::from_slice(v.value()).unwrap();
        let state = doc["state"].as_str().unwrap_or_default();
        if doc["person"]["org"] == "Dev Ops" && (state == "CA" || state == "WA") {
            hits.push((
                k.value().to_owned(),
                state.to_owned(),
                doc["person"]["id"].as_u64().unwrap_or_default(),
                v.value().to_vec(),
            ));
        }
    }
    let cmp = |a: &(String, String, u64, Vec<u8>),
               b: &(String, String, u64, Vec<u8>)|
     -> Ordering { b.1.cmp(&a.1).then(a.2.cmp(&b.2)).then(a.0.cmp(&b.0)) };
    if hits.len() > 100 {
        hits.select_nth_unstable_by(100, cmp);
        hits.truncate(100);
    }
    hits.sort_unstable_by(cmp);
    hits.into_iter().map(|h| (h.0, h.3)).collect()
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let native = Database::create(dir.path().join("native.redb")).unwrap();
    let w = native.begin_write().unwrap();
    {
        let mut t = w.open_table(RAW).unwrap();
        for i in 0..N {
            t.insert(format!("emp-{i:06}").as_str(), doc(i).as_slice())
                .unwrap();
        }
    }
    w.commit().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let store = Store::open(dir.path().join("state.redb"), StoreConfig::default()).unwrap();
    let scope = store.instance("bench").unwrap();
    rt.block_on(async {
        for chunk in (0..N).collect::<Vec<_>>().chunks(128) {
            let items = chunk
                .iter()
                .map(|&i| (format!("emp-{i:06}"), doc(i)))
                .collect();
            scope.set_many(items).await.unwrap();
        }
    });
    let query = Query::from_json(
        br#"{"filter":{"AND":[{"EQ":{"person.org":"Dev Ops"}},{"IN":{"state":["CA","WA"]}}]},
            "sort":[{"key":"state","order":"DESC"},{"key":"person.id"}],"page":{"limit":100}}"#,
    )
    .unwrap();
    // Both answer the same first page.
    let ours = rt.block_on(scope.query(&query)).unwrap();
    let theirs = native_query(&native);
    assert_eq!(ours.results.len(), 100);
    assert_eq!(
        ours.results
            .iter()
            .map(|r| r.key.as_str())
            .collect::<Vec<_>>(),
        theirs.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>()
    );

    let mut g = c.benchmark_group("query_100k");
    g.bench_function("native_redb", |b| b.iter(|| native_query(&native)));
    g.bench_function("wasm_state", |b| {
        b.iter(|| rt.block_on(scope.query(&query)).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = query;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    targets = benches
}
criterion_main!(query);
