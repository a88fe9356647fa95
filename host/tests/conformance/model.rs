//! Model-based property test: random sequences of value, counter, map and
//! list operations over a few keys, applied both to the store and to a plain
//! in-memory model of the Redis rules; they must agree after every step.

use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::*;
use wasm_state::store::{KeyListing, ScopeHandle, StateError};

use super::*;

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Value(Vec<u8>),
    Map(BTreeMap<String, Vec<u8>>),
    List(VecDeque<Vec<u8>>),
}

#[derive(Debug, Clone)]
enum Step {
    Set(usize, u8),
    Delete(usize),
    Increment(usize, i64),
    MapSet(usize, Vec<(u8, u8)>),
    MapDelete(usize, Vec<u8>),
    MapIncrement(usize, u8, i64),
    Append(usize, Vec<u8>),
    Prepend(usize, Vec<u8>),
    StartPop(usize, u64),
    EndPop(usize, u64),
    Remove(usize, u8, i64),
    Trim(usize, i64, i64),
    Insert(usize, bool, u8, u8),
    ListSet(usize, i64, u8),
    ListIndex(usize, i64),
    ListRange(usize, i64, i64),
    MapGet(usize, u8),
}

const KEYS: [&str; 3] = ["a", "b", "c"];

/// What an operation returned, in a form both sides can produce.
#[derive(Debug, Clone, PartialEq)]
enum Out {
    Unit,
    Int(i64),
    Bytes(Option<Vec<u8>>),
    Many(Vec<Vec<u8>>),
    Err(&'static str),
}

fn err_name(e: &StateError) -> &'static str {
    match e.root() {
        StateError::WrongType { .. } => "wrong-type",
        StateError::NotAnInteger => "not-an-integer",
        StateError::Overflow => "overflow",
        StateError::IndexOutOfRange { .. } => "index-out-of-range",
        StateError::NotFound => "not-found",
        StateError::InvalidArgument(_) => "invalid-argument",
        other => panic!("unexpected error {other:?}"),
    }
}

fn item(v: u8) -> Vec<u8> {
    vec![b'a' + v % 4]
}

fn field(v: u8) -> String {
    ((b'p' + v % 4) as char).to_string()
}

fn small() -> impl Strategy<Value = i64> {
    prop_oneof![-6i64..6, Just(i64::MIN), Just(i64::MAX)]
}

fn step() -> impl Strategy<Value = Step> {
    let k = 0..KEYS.len();
    prop_oneof![
        (k.clone(), any::<u8>()).prop_map(|(k, v)| Step::Set(k, v)),
        k.clone().prop_map(Step::Delete),
        (k.clone(), small()).prop_map(|(k, d)| Step::Increment(k, d)),
        (k.clone(), prop::collection::vec(any::<(u8, u8)>(), 1..4))
            .prop_map(|(k, e)| Step::MapSet(k, e)),
        (k.clone(), prop::collection::vec(any::<u8>(), 1..3))
            .prop_map(|(k, f)| Step::MapDelete(k, f)),
        (k.clone(), any::<u8>(), small()).prop_map(|(k, f, d)| Step::MapIncrement(k, f, d)),
        (k.clone(), prop::collection::vec(any::<u8>(), 1..4)).prop_map(|(k, v)| Step::Append(k, v)),
        (k.clone(), prop::collection::vec(any::<u8>(), 1..4))
            .prop_map(|(k, v)| Step::Prepend(k, v)),
        (k.clone(), prop_oneof![0u64..4, Just(u64::MAX)]).prop_map(|(k, n)| Step::StartPop(k, n)),
        (k.clone(), 0u64..4).prop_map(|(k, n)| Step::EndPop(k, n)),
        (k.clone(), any::<u8>(), -3i64..3).prop_map(|(k, v, c)| Step::Remove(k, v, c)),
        (k.clone(), small(), small()).prop_map(|(k, s, e)| Step::Trim(k, s, e)),
        (k.clone(), any::<bool>(), any::<u8>(), any::<u8>())
            .prop_map(|(k, b, p, v)| Step::Insert(k, b, p, v)),
        (k.clone(), small(), any::<u8>()).prop_map(|(k, i, v)| Step::ListSet(k, i, v)),
        (k.clone(), small()).prop_map(|(k, i)| Step::ListIndex(k, i)),
        (k.clone(), small(), small()).prop_map(|(k, s, e)| Step::ListRange(k, s, e)),
        (k, any::<u8>()).prop_map(|(k, f)| Step::MapGet(k, f)),
    ]
}

/// Redis index rules, written independently of the engine.
fn norm(len: usize, start: i64, stop: i64) -> Option<(usize, usize)> {
    let len = len as i128;
    let mut s = start as i128;
    let mut e = stop as i128;
    if s < 0 {
        s += len;
    }
    if e < 0 {
        e += len;
    }
    if s < 0 {
        s = 0;
    }
    if s > e || s >= len {
        return None;
    }
    if e >= len {
        e = len - 1;
    }
    Some((s as usize, e as usize))
}

fn parse_int(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    let n: i64 = s.parse().ok()?;
    (n.to_string() == s).then_some(n)
}

#[derive(Default)]
struct Model(BTreeMap<String, Val>);

impl Model {
    fn map(&mut self, k: &str) -> Result<&mut BTreeMap<String, Vec<u8>>, &'static str> {
        match self
            .0
            .entry(k.to_string())
            .or_insert_with(|| Val::Map(BTreeMap::new()))
        {
            Val::Map(m) => Ok(m),
            _ => Err("wrong-type"),
        }
    }

    fn list(&mut self, k: &str) -> Result<&mut VecDeque<Vec<u8>>, &'static str> {
        match self
            .0
            .entry(k.to_string())
            .or_insert_with(|| Val::List(VecDeque::new()))
        {
            Val::List(l) => Ok(l),
            _ => Err("wrong-type"),
        }
    }

    /// Drop empty maps and lists (Redis deletes them).
    fn tidy(&mut self) {
        self.0.retain(|_, v| match v {
            Val::Map(m) => !m.is_empty(),
            Val::List(l) => !l.is_empty(),
            Val::Value(_) => true,
        });
    }

    fn apply(&mut self, step: &Step) -> Out {
        let out = self.apply_inner(step);
        self.tidy();
        match out {
            Ok(o) => o,
            Err(e) => Out::Err(e),
        }
    }

    fn apply_inner(&mut self, step: &Step) -> Result<Out, &'static str> {
        use Step::*;
        match step {
            Set(k, v) => {
                self.0.insert(KEYS[*k].into(), Val::Value(item(*v)));
                Ok(Out::Unit)
            }
            Delete(k) => Ok(Out::Int(self.0.remove(KEYS[*k]).is_some() as i64)),
            Increment(k, d) => {
                let cur = match self.0.get(KEYS[*k]) {
                    None => 0,
                    Some(Val::Value(b)) => parse_int(b).ok_or("not-an-integer")?,
                    Some(_) => return Err("wrong-type"),
                };
                let n = cur.checked_add(*d).ok_or("overflow")?;
                self.0
                    .insert(KEYS[*k].into(), Val::Value(n.to_string().into_bytes()));
                Ok(Out::Int(n))
            }
            MapSet(k, entries) => {
                let m = self.map(KEYS[*k])?;
                let mut added = 0;
                for (f, v) in entries {
                    if m.insert(field(*f), item(*v)).is_none() {
                        added += 1;
                    }
                }
                Ok(Out::Int(added))
            }
            MapDelete(k, fields) => match self.0.get_mut(KEYS[*k]) {
                None => Ok(Out::Int(0)),
                Some(Val::Map(m)) => Ok(Out::Int(
                    fields
                        .iter()
                        .filter(|f| m.remove(&field(**f)).is_some())
                        .count() as i64,
                )),
                Some(_) => Err("wrong-type"),
            },
            MapIncrement(k, f, d) => {
                let m = self.map(KEYS[*k])?;
                let cur = match m.get(&field(*f)) {
                    None => 0,
                    Some(b) => parse_int(b).ok_or("not-an-integer")?,
                };
                let n = cur.checked_add(*d).ok_or("overflow")?;
                m.insert(field(*f), n.to_string().into_bytes());
                Ok(Out::Int(n))
            }
            MapGet(k, f) => match self.0.get(KEYS[*k]) {
                None => Ok(Out::Bytes(None)),
                Some(Val::Map(m)) => Ok(Out::Bytes(m.get(&field(*f)).cloned())),
                Some(_) => Err("wrong-type"),
            },
            Append(k, vs) | Prepend(k, vs) => {
                let front = matches!(step, Prepend(..));
                let l = self.list(KEYS[*k])?;
                for v in vs {
                    if front {
                        l.push_front(item(*v));
                    } else {
                        l.push_back(item(*v));
                    }
                }
                Ok(Out::Int(l.len() as i64))
            }
            StartPop(k, n) | EndPop(k, n) => {
                let front = matches!(step, StartPop(..));
                match self.0.get_mut(KEYS[*k]) {
                    None => Ok(Out::Many(vec![])),
                    Some(Val::List(l)) => {
                        let mut out = vec![];
                        while (out.len() as u64) < *n {
                            match if front { l.pop_front() } else { l.pop_back() } {
                                Some(v) => out.push(v),
                                None => break,
                            }
                        }
                        Ok(Out::Many(out))
                    }
                    Some(_) => Err("wrong-type"),
                }
            }
            Remove(k, v, count) => match self.0.get_mut(KEYS[*k]) {
                None => Ok(Out::Int(0)),
                Some(Val::List(l)) => {
                    let target = item(*v);
                    let limit = if *count == 0 {
                        usize::MAX
                    } else {
                        count.unsigned_abs() as usize
                    };
                    let mut idx: Vec<usize> = (0..l.len()).filter(|&i| l[i] == target).collect();
                    if *count < 0 {
                        idx.reverse();
                    }
                    idx.truncate(limit);
                    idx.sort_unstable();
                    for i in idx.iter().rev() {
                        l.remove(*i);
                    }
                    Ok(Out::Int(idx.len() as i64))
                }
                Some(_) => Err("wrong-type"),
            },
            Trim(k, s, e) => match self.0.get_mut(KEYS[*k]) {
                None => Ok(Out::Unit),
                Some(Val::List(l)) => {
                    match norm(l.len(), *s, *e) {
                        None => l.clear(),
                        Some((s, e)) => *l = l.iter().skip(s).take(e - s + 1).cloned().collect(),
                    }
                    Ok(Out::Unit)
                }
                Some(_) => Err("wrong-type"),
            },
            Insert(k, before, p, v) => match self.0.get_mut(KEYS[*k]) {
                None => Ok(Out::Int(0)),
                Some(Val::List(l)) => match l.iter().position(|x| *x == item(*p)) {
                    None => Ok(Out::Int(-1)),
                    Some(i) => {
                        l.insert(if *before { i } else { i + 1 }, item(*v));
                        Ok(Out::Int(l.len() as i64))
                    }
                },
                Some(_) => Err("wrong-type"),
            },
            ListSet(k, i, v) => match self.0.get_mut(KEYS[*k]) {
                None => Err("not-found"),
                Some(Val::List(l)) => {
                    let len = l.len() as i128;
                    let idx = if *i < 0 { len + *i as i128 } else { *i as i128 };
                    if idx < 0 || idx >= len {
                        return Err("index-out-of-range");
                    }
                    l[idx as usize] = item(*v);
                    Ok(Out::Unit)
                }
                Some(_) => Err("wrong-type"),
            },
            ListIndex(k, i) => match self.0.get(KEYS[*k]) {
                None => Ok(Out::Bytes(None)),
                Some(Val::List(l)) => {
                    let len = l.len() as i128;
                    let idx = if *i < 0 { len + *i as i128 } else { *i as i128 };
                    Ok(Out::Bytes(
                        (0..len).contains(&idx).then(|| l[idx as usize].clone()),
                    ))
                }
                Some(_) => Err("wrong-type"),
            },
            ListRange(k, s, e) => match self.0.get(KEYS[*k]) {
                None => Ok(Out::Many(vec![])),
                Some(Val::List(l)) => Ok(Out::Many(match norm(l.len(), *s, *e) {
                    None => vec![],
                    Some((s, e)) => l.iter().skip(s).take(e - s + 1).cloned().collect(),
                })),
                Some(_) => Err("wrong-type"),
            },
        }
    }
}

async fn run(s: &ScopeHandle, step: &Step) -> Out {
    use Step::*;
    fn o<T>(r: Result<T, StateError>, f: impl FnOnce(T) -> Out) -> Out {
        match r {
            Ok(v) => f(v),
            Err(e) => Out::Err(err_name(&e)),
        }
    }
    match step {
        Set(k, v) => o(s.set(KEYS[*k], item(*v)).await, |_| Out::Unit),
        Delete(k) => o(s.delete(KEYS[*k]).await, |b| Out::Int(b as i64)),
        Increment(k, d) => o(s.increment(KEYS[*k], *d).await, Out::Int),
        MapSet(k, e) => o(
            s.map_set(
                KEYS[*k],
                e.iter().map(|(f, v)| (field(*f), item(*v))).collect(),
            )
            .await,
            |n| Out::Int(n as i64),
        ),
        MapDelete(k, f) => {
            let fields: Vec<String> = f.iter().map(|f| field(*f)).collect();
            let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
            o(s.map_delete(KEYS[*k], &refs).await, |n| Out::Int(n as i64))
        }
        MapIncrement(k, f, d) => o(s.map_increment(KEYS[*k], &field(*f), *d).await, Out::Int),
        MapGet(k, f) => o(s.map_get(KEYS[*k], &field(*f)).await, Out::Bytes),
        Append(k, v) => o(
            s.list_append(KEYS[*k], v.iter().map(|v| item(*v)).collect())
                .await,
            |n| Out::Int(n as i64),
        ),
        Prepend(k, v) => o(
            s.list_prepend(KEYS[*k], v.iter().map(|v| item(*v)).collect())
                .await,
            |n| Out::Int(n as i64),
        ),
        StartPop(k, n) => o(s.list_start_pop(KEYS[*k], *n).await, Out::Many),
        EndPop(k, n) => o(s.list_end_pop(KEYS[*k], *n).await, Out::Many),
        Remove(k, v, c) => o(s.list_remove(KEYS[*k], item(*v), *c).await, |n| {
            Out::Int(n as i64)
        }),
        Trim(k, a, e) => o(s.list_trim(KEYS[*k], *a, *e).await, |_| Out::Unit),
        Insert(k, b, p, v) => o(
            s.list_insert(KEYS[*k], *b, item(*p), item(*v)).await,
            Out::Int,
        ),
        ListSet(k, i, v) => o(s.list_set(KEYS[*k], *i, item(*v)).await, |_| Out::Unit),
        ListIndex(k, i) => o(s.list_index(KEYS[*k], *i).await, Out::Bytes),
        ListRange(k, a, e) => o(s.list_range(KEYS[*k], *a, *e).await, Out::Many),
    }
}

/// Read the whole scope back into the model's shape.
async fn snapshot(s: &ScopeHandle) -> BTreeMap<String, Val> {
    let mut out = BTreeMap::new();
    let keys = s.keys(KeyListing::default()).await.unwrap().keys;
    for k in keys {
        let v = match s.info(&k).await.unwrap().unwrap().kind {
            wasm_state::store::KeyKind::Value => Val::Value(s.get(&k).await.unwrap().unwrap()),
            wasm_state::store::KeyKind::Map => {
                let all = s.map_get_all(&k).await.unwrap();
                assert_eq!(
                    s.map_length(&k).await.unwrap(),
                    all.len() as u64,
                    "map length of {k}"
                );
                Val::Map(all.into_iter().collect())
            }
            wasm_state::store::KeyKind::List => {
                let all = s.list_range(&k, 0, -1).await.unwrap();
                assert_eq!(
                    s.list_length(&k).await.unwrap(),
                    all.len() as u64,
                    "list length of {k}"
                );
                Val::List(all.into_iter().collect())
            }
        };
        out.insert(k, v);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn store_agrees_with_model(steps in prop::collection::vec(step(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let h = Harness::with_config(|c| c.redb.durable = false);
            let s = h.instance("model");
            let mut model = Model::default();
            for (i, st) in steps.iter().enumerate() {
                let expected = model.apply(st);
                let got = run(&s, st).await;
                prop_assert_eq!(&got, &expected, "step {} {:?}", i, st);
                let state = snapshot(&s).await;
                prop_assert_eq!(&state, &model.0, "state after step {} {:?}", i, st);
            }
            Ok(())
        })?;
    }
}
