//! Whether a caller's arguments fit an export's parameters, checked before
//! the call: a wrong argument is the caller's error
//! ([`HostError::InvalidRequest`](super::HostError::InvalidRequest)), not a
//! guest trap.

use wasmtime::component::{Type, Val};

/// Why `given` arguments do not suit `export`'s `params` parameters, if
/// they do not.
pub fn arity(export: &str, params: usize, given: usize) -> Option<String> {
    (params != given).then(|| format!("{export} takes {params} argument(s), {given} given"))
}

/// Why `args` do not fit the parameters `params` of `export`, if they do
/// not.
pub fn mismatch(export: &str, params: &[Type], args: &[Val]) -> Option<String> {
    if let Some(why) = arity(export, params.len(), args.len()) {
        return Some(why);
    }
    params
        .iter()
        .zip(args)
        .position(|(ty, v)| !fits(v, ty))
        .map(|i| {
            format!(
                "argument {} of {export} is {}, which is not a value of its type {}",
                i + 1,
                kind(&args[i]),
                describe(&params[i])
            )
        })
}

/// Whether `v` is a value of type `ty`, as wasmtime lowers it (records by
/// their fields in order, variants and enums by case name).
fn fits(v: &Val, ty: &Type) -> bool {
    match (v, ty) {
        (Val::Bool(_), Type::Bool)
        | (Val::S8(_), Type::S8)
        | (Val::U8(_), Type::U8)
        | (Val::S16(_), Type::S16)
        | (Val::U16(_), Type::U16)
        | (Val::S32(_), Type::S32)
        | (Val::U32(_), Type::U32)
        | (Val::S64(_), Type::S64)
        | (Val::U64(_), Type::U64)
        | (Val::Float32(_), Type::Float32)
        | (Val::Float64(_), Type::Float64)
        | (Val::Char(_), Type::Char)
        | (Val::String(_), Type::String) => true,
        (Val::List(items), Type::List(l)) => {
            let t = l.ty();
            items.iter().all(|i| fits(i, &t))
        }
        (Val::FixedLengthList(items), Type::FixedLengthList(l)) => {
            let t = l.ty();
            items.len() == l.len() as usize && items.iter().all(|i| fits(i, &t))
        }
        (Val::Map(pairs), Type::Map(m)) => {
            let (k, t) = (m.key(), m.value());
            pairs.iter().all(|(a, b)| fits(a, &k) && fits(b, &t))
        }
        (Val::Record(fields), Type::Record(r)) => {
            fields.len() == r.fields().len()
                && fields
                    .iter()
                    .zip(r.fields())
                    .all(|((name, v), f)| name == f.name && fits(v, &f.ty))
        }
        (Val::Tuple(vs), Type::Tuple(t)) => {
            vs.len() == t.types().len() && vs.iter().zip(t.types()).all(|(v, t)| fits(v, &t))
        }
        (Val::Variant(name, payload), Type::Variant(var)) => var
            .cases()
            .any(|c| c.name == name && payload_fits(payload.as_deref(), c.ty.as_ref())),
        (Val::Enum(name), Type::Enum(e)) => e.names().any(|n| n == name),
        (Val::Option(o), Type::Option(t)) => o.as_deref().is_none_or(|v| fits(v, &t.ty())),
        (Val::Result(r), Type::Result(t)) => match r {
            Ok(p) => payload_fits(p.as_deref(), t.ok().as_ref()),
            Err(p) => payload_fits(p.as_deref(), t.err().as_ref()),
        },
        (Val::Flags(names), Type::Flags(f)) => names.iter().all(|n| f.names().any(|m| m == n)),
        // Handles belong to a store: wasmtime checks them as it lowers them.
        (Val::Resource(_), Type::Own(_) | Type::Borrow(_))
        | (Val::Future(_), Type::Future(_))
        | (Val::Stream(_), Type::Stream(_))
        | (Val::ErrorContext(_), Type::ErrorContext) => true,
        _ => false,
    }
}

fn payload_fits(v: Option<&Val>, ty: Option<&Type>) -> bool {
    match (v, ty) {
        (None, None) => true,
        (Some(v), Some(t)) => fits(v, t),
        _ => false,
    }
}

/// A value's kind, for messages.
fn kind(v: &Val) -> &'static str {
    match v {
        Val::Bool(_) => "a bool",
        Val::S8(_) | Val::S16(_) | Val::S32(_) | Val::S64(_) => "a signed integer",
        Val::U8(_) | Val::U16(_) | Val::U32(_) | Val::U64(_) => "an unsigned integer",
        Val::Float32(_) | Val::Float64(_) => "a float",
        Val::Char(_) => "a char",
        Val::String(_) => "a string",
        Val::List(_) | Val::FixedLengthList(_) => "a list",
        Val::Map(_) => "a map",
        Val::Record(_) => "a record",
        Val::Tuple(_) => "a tuple",
        Val::Variant(..) => "a variant",
        Val::Enum(_) => "an enum",
        Val::Option(_) => "an option",
        Val::Result(_) => "a result",
        Val::Flags(_) => "flags",
        Val::Resource(_) => "a resource",
        Val::Future(_) => "a future",
        Val::Stream(_) => "a stream",
        Val::ErrorContext(_) => "an error context",
    }
}

/// A type, for messages: its WIT name for the simple ones.
fn describe(ty: &Type) -> String {
    let name = match ty {
        Type::Bool => "bool",
        Type::S8 => "s8",
        Type::U8 => "u8",
        Type::S16 => "s16",
        Type::U16 => "u16",
        Type::S32 => "s32",
        Type::U32 => "u32",
        Type::S64 => "s64",
        Type::U64 => "u64",
        Type::Float32 => "f32",
        Type::Float64 => "f64",
        Type::Char => "char",
        Type::String => "string",
        Type::List(l) => return format!("list<{}>", describe(&l.ty())),
        Type::Option(o) => return format!("option<{}>", describe(&o.ty())),
        Type::Map(_) => "a map",
        Type::FixedLengthList(_) => "a fixed-length list",
        Type::Record(_) => "a record",
        Type::Tuple(_) => "a tuple",
        Type::Variant(_) => "a variant",
        Type::Enum(_) => "an enum",
        Type::Result(_) => "a result",
        Type::Flags(_) => "flags",
        Type::Own(_) | Type::Borrow(_) => "a resource",
        Type::Future(_) => "a future",
        Type::Stream(_) => "a stream",
        Type::ErrorContext => "an error context",
    };
    name.to_string()
}
