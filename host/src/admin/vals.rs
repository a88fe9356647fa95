//! Component values from and to text, for `wasm-state call`: arguments are
//! given as text and converted by the parameter's type; results are shown
//! as JSON.

use wasmtime::component::{Type, Val};

/// `s` as a value of type `ty`. Strings are taken as they are; numbers,
/// booleans and chars are parsed; anything else is given as JSON (a list as
/// an array, an option as `null` or its value, a record as an object…).
pub fn parse(ty: &Type, s: &str) -> Result<Val, String> {
    match ty {
        Type::String => Ok(Val::String(s.to_string())),
        _ => {
            let json: serde_json::Value = match ty {
                Type::Bool
                | Type::S8
                | Type::U8
                | Type::S16
                | Type::U16
                | Type::S32
                | Type::U32
                | Type::S64
                | Type::U64
                | Type::Float32
                | Type::Float64
                | Type::Char => serde_json::Value::String(s.to_string()),
                _ => serde_json::from_str(s)
                    .map_err(|e| format!("{s:?} is not JSON ({e}); give a {} as JSON", desc(ty)))?,
            };
            from_json(ty, &json)
        }
    }
}

fn desc(ty: &Type) -> &'static str {
    match ty {
        Type::Bool => "bool",
        Type::S8 | Type::S16 | Type::S32 | Type::S64 => "signed integer",
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => "unsigned integer",
        Type::Float32 | Type::Float64 => "number",
        Type::Char => "char",
        Type::String => "string",
        Type::List(_) => "list (a JSON array)",
        Type::Record(_) => "record (a JSON object)",
        Type::Tuple(_) => "tuple (a JSON array)",
        Type::Option(_) => "option (null or the value)",
        Type::Result(_) => "result ({\"ok\":…} or {\"err\":…})",
        Type::Enum(_) => "enum case (a string)",
        _ => "value of this type",
    }
}

fn num<T: std::str::FromStr>(ty: &Type, v: &serde_json::Value) -> Result<T, String> {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        other => other.to_string(),
    };
    text.trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a {} in range", desc(ty)))
}

fn from_json(ty: &Type, v: &serde_json::Value) -> Result<Val, String> {
    use serde_json::Value as J;
    Ok(match ty {
        Type::Bool => match v {
            J::Bool(b) => Val::Bool(*b),
            J::String(s) if s == "true" => Val::Bool(true),
            J::String(s) if s == "false" => Val::Bool(false),
            _ => return Err(format!("{v} is not a bool; write true or false")),
        },
        Type::S8 => Val::S8(num(ty, v)?),
        Type::U8 => Val::U8(num(ty, v)?),
        Type::S16 => Val::S16(num(ty, v)?),
        Type::U16 => Val::U16(num(ty, v)?),
        Type::S32 => Val::S32(num(ty, v)?),
        Type::U32 => Val::U32(num(ty, v)?),
        Type::S64 => Val::S64(num(ty, v)?),
        Type::U64 => Val::U64(num(ty, v)?),
        Type::Float32 => Val::Float32(num(ty, v)?),
        Type::Float64 => Val::Float64(num(ty, v)?),
        Type::Char => match v.as_str().map(|s| {
            let mut c = s.chars();
            (c.next(), c.next())
        }) {
            Some((Some(c), None)) => Val::Char(c),
            _ => return Err(format!("{v} is not one character")),
        },
        Type::String => match v {
            J::String(s) => Val::String(s.clone()),
            other => Val::String(other.to_string()),
        },
        Type::List(l) => match v {
            J::Array(items) => Val::List(
                items
                    .iter()
                    .map(|i| from_json(&l.ty(), i))
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(format!("{v} is not a JSON array")),
        },
        Type::Tuple(t) => match v {
            J::Array(items) if items.len() == t.types().len() => Val::Tuple(
                t.types()
                    .zip(items)
                    .map(|(ty, i)| from_json(&ty, i))
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(format!("{v} is not an array of {}", t.types().len())),
        },
        Type::Record(r) => match v {
            J::Object(o) => Val::Record(
                r.fields()
                    .map(|f| {
                        let item = o.get(f.name).unwrap_or(&J::Null);
                        Ok((f.name.to_string(), from_json(&f.ty, item)?))
                    })
                    .collect::<Result<_, String>>()?,
            ),
            _ => return Err(format!("{v} is not a JSON object")),
        },
        Type::Option(o) => match v {
            J::Null => Val::Option(None),
            other => Val::Option(Some(Box::new(from_json(&o.ty(), other)?))),
        },
        Type::Enum(e) => match v.as_str() {
            Some(s) if e.names().any(|n| n == s) => Val::Enum(s.to_string()),
            _ => {
                let names: Vec<&str> = e.names().collect();
                return Err(format!("{v} is not one of {}", names.join(", ")));
            }
        },
        Type::Result(r) => match v.as_object().map(|o| (o.get("ok"), o.get("err"))) {
            Some((Some(ok), None)) => Val::Result(Ok(match r.ok() {
                Some(t) => Some(Box::new(from_json(&t, ok)?)),
                None => None,
            })),
            Some((None, Some(err))) => Val::Result(Err(match r.err() {
                Some(t) => Some(Box::new(from_json(&t, err)?)),
                None => None,
            })),
            _ => return Err(format!("{v} is not {{\"ok\":…}} or {{\"err\":…}}")),
        },
        other => return Err(format!("arguments of type {other:?} are not supported")),
    })
}

/// A value as JSON (for printing results).
pub fn to_json(v: &Val) -> serde_json::Value {
    use serde_json::{Value as J, json};
    match v {
        Val::Bool(b) => J::Bool(*b),
        Val::S8(n) => json!(n),
        Val::U8(n) => json!(n),
        Val::S16(n) => json!(n),
        Val::U16(n) => json!(n),
        Val::S32(n) => json!(n),
        Val::U32(n) => json!(n),
        Val::S64(n) => json!(n),
        Val::U64(n) => json!(n),
        Val::Float32(n) => json!(n),
        Val::Float64(n) => json!(n),
        Val::Char(c) => J::String(c.to_string()),
        Val::String(s) => J::String(s.clone()),
        Val::List(items) | Val::Tuple(items) => J::Array(items.iter().map(to_json).collect()),
        Val::Record(fields) => J::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
        Val::Variant(case, payload) => {
            json!({ case: payload.as_deref().map(to_json) })
        }
        Val::Enum(case) => J::String(case.clone()),
        Val::Option(o) => o.as_deref().map_or(J::Null, to_json),
        Val::Result(Ok(v)) => json!({ "ok": v.as_deref().map(to_json) }),
        Val::Result(Err(v)) => json!({ "err": v.as_deref().map(to_json) }),
        Val::Flags(f) => J::Array(f.iter().map(|s| J::String(s.clone())).collect()),
        other => J::String(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_parse_by_type_and_refuse_bad_text() {
        assert_eq!(
            parse(&Type::String, "a b").unwrap(),
            Val::String("a b".into())
        );
        assert_eq!(parse(&Type::U32, "42").unwrap(), Val::U32(42));
        assert_eq!(parse(&Type::S64, "-7").unwrap(), Val::S64(-7));
        assert_eq!(parse(&Type::Bool, "true").unwrap(), Val::Bool(true));
        assert_eq!(parse(&Type::Char, "é").unwrap(), Val::Char('é'));
        assert!(parse(&Type::U8, "300").unwrap_err().contains("in range"));
        assert!(parse(&Type::U32, "-1").is_err());
        assert!(parse(&Type::Bool, "yes").is_err());
        assert!(parse(&Type::Char, "ab").is_err());
    }

    #[test]
    fn results_print_as_json() {
        let ok = Val::Result(Ok(Some(Box::new(Val::String("done".into())))));
        assert_eq!(to_json(&ok), serde_json::json!({"ok": "done"}));
        let list = Val::List(vec![Val::U8(1), Val::U8(2)]);
        assert_eq!(to_json(&list), serde_json::json!([1, 2]));
    }
}
