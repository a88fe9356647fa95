//! The WIT package in `wit/` parses and says what SPEC.md says: package name
//! and version, the `state-guest` world, the exact error cases, the expected
//! functions, and a doc comment on every item (the WIT is the guest's manual).

use std::collections::BTreeSet;
use std::path::PathBuf;

use wit_parser::{
    Docs, Function, FunctionKind, InterfaceId, PackageId, Resolve, Type, TypeDefKind, TypeOwner,
    WorldItem, WorldKey,
};

fn load() -> (Resolve, PackageId) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../wit");
    let mut resolve = Resolve::new();
    let (pkg, _sources) = resolve
        .push_dir(&dir)
        .unwrap_or_else(|e| panic!("wit/ does not parse: {e:?}"));
    (resolve, pkg)
}

fn interface(resolve: &Resolve, pkg: PackageId, name: &str) -> InterfaceId {
    *resolve.packages[pkg]
        .interfaces
        .get(name)
        .unwrap_or_else(|| panic!("interface `{name}` missing"))
}

fn documented(docs: &Docs) -> bool {
    docs.contents
        .as_deref()
        .is_some_and(|d| !d.trim().is_empty())
}

fn doc_text(docs: &Docs) -> &str {
    docs.contents.as_deref().unwrap_or("")
}

/// Short name of a function: `get` for `[method]bucket.get`.
fn short_name(f: &Function) -> &str {
    f.item_name()
}

fn names<'a>(it: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    it.into_iter().map(str::to_string).collect()
}

#[test]
fn package_name_and_version() {
    let (resolve, pkg) = load();
    let package = &resolve.packages[pkg];
    assert_eq!(package.name.namespace, "wasm-state");
    assert_eq!(package.name.name, "state");
    assert_eq!(
        package
            .name
            .version
            .as_ref()
            .map(|v| v.to_string())
            .as_deref(),
        Some("0.1.0")
    );
    assert_eq!(package.name.to_string(), "wasm-state:state@0.1.0");
    assert!(documented(&package.docs), "the package has no doc comment");
    assert_eq!(
        names(package.interfaces.keys().map(String::as_str)),
        names(["types", "state", "sessions"])
    );
}

#[test]
fn world_state_guest_imports_state_and_sessions() {
    let (resolve, pkg) = load();
    let world_id = resolve.packages[pkg]
        .worlds
        .get("state-guest")
        .copied()
        .expect("world `state-guest` missing");
    let world = &resolve.worlds[world_id];
    assert!(
        documented(&world.docs),
        "world state-guest has no doc comment"
    );
    assert!(world.exports.is_empty(), "state-guest exports nothing");

    let state = interface(&resolve, pkg, "state");
    let sessions = interface(&resolve, pkg, "sessions");
    let types = interface(&resolve, pkg, "types");
    let mut imported = BTreeSet::new();
    for (key, item) in &world.imports {
        match (key, item) {
            (WorldKey::Interface(id), WorldItem::Interface { id: item_id, .. }) => {
                assert_eq!(id, item_id);
                imported.insert(*id);
            }
            other => panic!("unexpected import in state-guest: {other:?}"),
        }
    }
    assert!(
        imported.contains(&state),
        "state-guest does not import `state`"
    );
    assert!(
        imported.contains(&sessions),
        "state-guest does not import `sessions`"
    );
    // `types` comes in implicitly, as a dependency of the two.
    assert_eq!(imported, [state, sessions, types].into_iter().collect());
    assert_eq!(
        resolve.id_of(state).as_deref(),
        Some("wasm-state:state/state@0.1.0")
    );
}

#[test]
fn error_has_exactly_the_spec_cases() {
    let (resolve, pkg) = load();
    let types = &resolve.interfaces[interface(&resolve, pkg, "types")];
    let error = &resolve.types[types.types["error"]];
    let TypeDefKind::Variant(variant) = &error.kind else {
        panic!("`error` is not a variant: {:?}", error.kind);
    };
    let expected: [(&str, Option<Type>); 17] = [
        ("wrong-type", None),
        ("not-an-integer", None),
        ("overflow", None),
        ("index-out-of-range", None),
        ("etag-mismatch", None),
        ("invalid-etag", None),
        ("already-exists", None),
        ("not-found", None),
        ("no-such-session", None),
        ("access-denied", None),
        ("key-too-large", None),
        ("value-too-large", None),
        ("too-many-operations", None),
        ("quota-exceeded", None),
        ("invalid-argument", Some(Type::String)),
        ("unavailable", Some(Type::String)),
        ("internal", Some(Type::String)),
    ];
    let actual: Vec<(&str, Option<Type>)> = variant
        .cases
        .iter()
        .map(|c| (c.name.as_str(), c.ty))
        .collect();
    assert_eq!(actual, expected);
}

#[test]
fn types_interface_has_the_expected_types() {
    let (resolve, pkg) = load();
    let types = &resolve.interfaces[interface(&resolve, pkg, "types")];
    let expected = [
        "error",
        "etag",
        "condition",
        "expire-mode",
        "key-kind",
        "entry",
        "key-info",
        "set-options",
        "key-listing",
        "key-page",
        "map-entry",
        "scan-page",
        "set-op",
        "expire-op",
        "map-increment-op",
        "list-remove-op",
        "range",
        "list-insert-op",
        "list-set-op",
        "op-kind",
        "op",
        "op-output",
        "op-result",
        "commit-error",
        "query-result",
        "query-page",
        "session-info",
        "changed-scope",
        "change-info",
        "stamp",
        "stamped-value",
    ];
    assert_eq!(
        names(types.types.keys().map(String::as_str)),
        names(expected)
    );

    let case_names = |name: &str| -> Vec<String> {
        match &resolve.types[types.types[name]].kind {
            TypeDefKind::Variant(v) => v.cases.iter().map(|c| c.name.clone()).collect(),
            TypeDefKind::Enum(e) => e.cases.iter().map(|c| c.name.clone()).collect(),
            other => panic!("`{name}` is {other:?}"),
        }
    };
    assert_eq!(
        case_names("condition"),
        ["if-match", "if-absent", "if-exists"]
    );
    assert_eq!(
        case_names("expire-mode"),
        ["always", "nx", "xx", "gt", "lt"]
    );
    assert_eq!(case_names("key-kind"), ["value", "map", "list"]);
    assert_eq!(
        case_names("op-output"),
        ["none", "boolean", "integer", "values"]
    );
    assert_eq!(
        case_names("op-kind"),
        [
            "set",
            "delete",
            "increment",
            "expire",
            "persist",
            "map-set",
            "map-delete",
            "map-increment",
            "list-append",
            "list-prepend",
            "list-start-pop",
            "list-end-pop",
            "list-remove",
            "list-trim",
            "list-insert",
            "list-set",
            "check",
        ]
    );
    let etag = &resolve.types[types.types["etag"]];
    assert_eq!(etag.kind, TypeDefKind::Type(Type::String), "etag = string");
}

#[test]
fn state_interface_has_the_expected_functions() {
    let (resolve, pkg) = load();
    let state_id = interface(&resolve, pkg, "state");
    let state = &resolve.interfaces[state_id];
    let bucket = *state
        .types
        .get("bucket")
        .expect("resource `bucket` missing");
    assert_eq!(resolve.types[bucket].kind, TypeDefKind::Resource);

    let mut methods = BTreeSet::new();
    let mut free = BTreeSet::new();
    for f in state.functions.values() {
        match f.kind {
            FunctionKind::Method(r) => {
                assert_eq!(r, bucket);
                methods.insert(short_name(f).to_string());
            }
            FunctionKind::Freestanding => {
                free.insert(short_name(f).to_string());
            }
            ref other => panic!("unexpected function kind {other:?} for {}", f.name),
        }
    }
    assert_eq!(
        free,
        names([
            "account",
            "current-change",
            "instance",
            "read-stamp",
            "session"
        ])
    );
    assert_eq!(
        methods,
        names([
            "get",
            "get-entry",
            "get-stamped",
            "get-many",
            "set",
            "set-many",
            "delete",
            "delete-many",
            "exists",
            "info",
            "increment",
            "expire",
            "persist",
            "ttl",
            "keys",
            "delete-prefix",
            "query",
            "map-set",
            "map-get",
            "map-get-many",
            "map-values",
            "map-get-all",
            "map-keys",
            "map-delete",
            "map-exists",
            "map-length",
            "map-increment",
            "map-scan",
            "list-append",
            "list-prepend",
            "list-start-pop",
            "list-end-pop",
            "list-remove",
            "list-length",
            "list-range",
            "list-trim",
            "list-insert",
            "list-index",
            "list-set",
            "commit",
        ])
    );

    // Every bucket method but `commit` returns result<_, error>; commit's
    // error is commit-error.
    let types = &resolve.interfaces[interface(&resolve, pkg, "types")];
    let error = types.types["error"];
    let commit_error = types.types["commit-error"];
    let unalias = |mut t: Type| loop {
        match t {
            Type::Id(id) => match &resolve.types[id].kind {
                TypeDefKind::Type(inner) => t = *inner,
                _ => return Some(id),
            },
            _ => return None,
        }
    };
    for f in state.functions.values() {
        if !matches!(f.kind, FunctionKind::Method(_)) {
            continue;
        }
        let Some(Type::Id(ret)) = f.result else {
            panic!("{} returns {:?}", f.name, f.result)
        };
        let TypeDefKind::Result(r) = &resolve.types[ret].kind else {
            panic!("{} does not return a result", f.name)
        };
        let want = if short_name(f) == "commit" {
            commit_error
        } else {
            error
        };
        assert_eq!(
            r.err.and_then(unalias),
            Some(want),
            "{}: wrong error type",
            f.name
        );
    }
}

#[test]
fn sessions_interface_has_the_expected_functions() {
    let (resolve, pkg) = load();
    let sessions = &resolve.interfaces[interface(&resolve, pkg, "sessions")];
    assert_eq!(
        names(sessions.functions.keys().map(String::as_str)),
        names(["create", "extend", "end", "info"])
    );
    let create = &sessions.functions["create"];
    assert!(
        doc_text(&create.docs).contains("604800"),
        "create must document the default TTL"
    );
}

/// Every function (free or method) of `state` and `sessions` has docs, and
/// the docs name each of its parameters.
#[test]
fn every_function_is_documented() {
    let (resolve, pkg) = load();
    let mut checked = 0;
    let mut missing = Vec::new();
    for name in ["state", "sessions"] {
        let iface = &resolve.interfaces[interface(&resolve, pkg, name)];
        assert!(documented(&iface.docs), "interface `{name}` has no docs");
        for f in iface.functions.values() {
            if !documented(&f.docs) {
                missing.push(format!("{name}: `{}` has no docs", f.name));
            }
            let text = doc_text(&f.docs);
            for (param, _) in &f.params {
                if param == "self" {
                    continue;
                }
                if !text.contains(&format!("`{param}`")) {
                    missing.push(format!(
                        "{name}: docs of `{}` do not mention parameter `{param}`",
                        f.name
                    ));
                }
            }
            checked += 1;
        }
    }
    assert!(missing.is_empty(), "undocumented:\n{}", missing.join("\n"));
    assert!(checked >= 38 + 3 + 4, "only {checked} functions checked");
}

/// Every type defined in the package (not `use` aliases) has docs, and so do
/// every record field, variant case and enum case.
#[test]
fn every_type_field_and_case_is_documented() {
    let (resolve, pkg) = load();
    let mut checked = 0;
    for name in ["types", "state", "sessions"] {
        let iface_id = interface(&resolve, pkg, name);
        let iface = &resolve.interfaces[iface_id];
        assert!(documented(&iface.docs), "interface `{name}` has no docs");
        for (ty_name, &id) in &iface.types {
            let def = &resolve.types[id];
            // `use types.{x}` creates an alias owned here pointing at a type
            // owned by `types`; its docs live on the original.
            if let TypeDefKind::Type(Type::Id(target)) = def.kind
                && resolve.types[target].owner != TypeOwner::Interface(iface_id)
            {
                continue;
            }
            assert!(
                documented(&def.docs),
                "{name}: type `{ty_name}` has no docs"
            );
            match &def.kind {
                TypeDefKind::Record(r) => {
                    for field in &r.fields {
                        assert!(
                            documented(&field.docs),
                            "{name}: field `{ty_name}.{}` has no docs",
                            field.name
                        );
                    }
                }
                TypeDefKind::Variant(v) => {
                    for case in &v.cases {
                        assert!(
                            documented(&case.docs),
                            "{name}: case `{ty_name}.{}` has no docs",
                            case.name
                        );
                    }
                }
                TypeDefKind::Enum(e) => {
                    for case in &e.cases {
                        assert!(
                            documented(&case.docs),
                            "{name}: case `{ty_name}.{}` has no docs",
                            case.name
                        );
                    }
                }
                TypeDefKind::Flags(f) => {
                    for flag in &f.flags {
                        assert!(documented(&flag.docs), "{name}: flag `{}`", flag.name);
                    }
                }
                _ => {}
            }
            checked += 1;
        }
    }
    assert!(checked >= 26, "only {checked} types checked");
}
