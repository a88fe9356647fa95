//! Dapr component files (`apiVersion: dapr.io/v1alpha1`, `kind: Component`)
//! from a resources directory, as `dapr run --resources-path` reads them:
//! every `*.yaml` / `*.yml` file, several documents per file allowed. State
//! store components become [`StoreSpec`]s; other kinds (Configuration,
//! Subscription…) and non-state components are skipped with a log line.
//!
//! `spec.type: state.redb` maps a store name onto one wasm-state scope:
//!
//! | metadata     | values                                   | default |
//! |--------------|------------------------------------------|---------|
//! | `scope`      | `account` or `instance`                  | `account` |
//! | `account`    | account name (with `scope: account`)     | the host's account |
//! | `instance`   | instance name (required with `scope: instance`) | |
//! | `keyPrefix`  | `appid`, `name`, `namespace`, `none`, or a custom prefix (no `\|\|`) | `appid` |
//! | `actorStateStore` | `true`/`false` (accepted; actors are not served) | |
//!
//! Every mistake is a [`ComponentError`] naming the file, the field and
//! what is allowed.

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use super::keys::KeyPrefix;

/// Where a `state.redb` store keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeTarget {
    /// The account scope of this account (`None`: the host's account).
    Account(Option<String>),
    /// The instance scope of this instance.
    Instance(String),
}

/// What backs a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// The host's own store (`state.redb`: the embedded redb file, or the
    /// Redis store the host runs on), one scope of it.
    Redb(ScopeTarget),
    /// A Redis store of its own (`state.redis`), one scope of it: the same
    /// state wasm-state hosts keep with `--store` on that Redis.
    Redis {
        /// The store URL built from the component's metadata.
        url: String,
        /// Which scope.
        target: ScopeTarget,
    },
}

impl StoreKind {
    /// The Dapr component type.
    pub fn type_name(&self) -> &'static str {
        match self {
            StoreKind::Redb(_) => "state.redb",
            StoreKind::Redis { .. } => "state.redis",
        }
    }
}

/// One state store the API serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSpec {
    /// The store name clients use in `/v1.0/state/{name}`.
    pub name: String,
    /// What backs it.
    pub kind: StoreKind,
    /// How keys are prefixed (Dapr's `keyPrefix`).
    pub key_prefix: KeyPrefix,
    /// The file it came from (`None`: built in).
    pub source: Option<PathBuf>,
}

impl StoreSpec {
    /// The store served when no components directory is given: `statestore`
    /// on the host's account scope, keys prefixed by the app id (none
    /// without `--app-id`), as Dapr's default `keyPrefix: appid`.
    pub fn default_store() -> StoreSpec {
        StoreSpec {
            name: "statestore".into(),
            kind: StoreKind::Redb(ScopeTarget::Account(None)),
            key_prefix: KeyPrefix::AppId,
            source: None,
        }
    }
}

/// A component file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", file.display())]
pub struct ComponentError {
    /// The file.
    pub file: PathBuf,
    /// What is wrong and what is allowed.
    pub message: String,
}

fn err(file: &Path, message: impl Into<String>) -> ComponentError {
    ComponentError {
        file: file.to_path_buf(),
        message: message.into(),
    }
}

/// Load every state store component of `dir` (for `app_id`: components
/// whose `scopes` list leaves it out are skipped, as Dapr does). Two
/// components with one name are an error.
pub fn load_dir(dir: &Path, app_id: Option<&str>) -> Result<Vec<StoreSpec>, ComponentError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        err(
            dir,
            format!("cannot read the components directory: {e}; pass a directory of Dapr component YAML files"),
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut stores: Vec<StoreSpec> = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).map_err(|e| err(&file, format!("cannot read: {e}")))?;
        for spec in parse(&file, &text, app_id)? {
            if let Some(first) = stores.iter().find(|s| s.name == spec.name) {
                let other = first.source.as_deref().unwrap_or(Path::new("?"));
                return Err(err(
                    &file,
                    format!(
                        "metadata.name: a component named {:?} is already defined in {}; store names must be unique",
                        spec.name,
                        other.display()
                    ),
                ));
            }
            stores.push(spec);
        }
    }
    Ok(stores)
}

/// Parse the documents of one file.
pub fn parse(
    file: &Path,
    text: &str,
    app_id: Option<&str>,
) -> Result<Vec<StoreSpec>, ComponentError> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc)
            .map_err(|e| err(file, format!("not valid YAML (document {}): {e}", i + 1)))?;
        if value.is_null() {
            continue; // an empty document (e.g. a trailing `---`)
        }
        if let Some(spec) = component(file, &value, app_id)? {
            out.push(spec);
        }
    }
    Ok(out)
}

fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

/// A scalar metadata value as text (YAML `true` and `10` are fine too).
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn component(
    file: &Path,
    doc: &Value,
    app_id: Option<&str>,
) -> Result<Option<StoreSpec>, ComponentError> {
    if !doc.is_mapping() {
        return Err(err(
            file,
            "a component document must be a YAML mapping with apiVersion, kind, metadata and spec",
        ));
    }
    let kind = str_field(doc, "kind").ok_or_else(|| {
        err(
            file,
            "kind: missing; a Dapr component has `kind: Component`",
        )
    })?;
    if kind != "Component" {
        tracing::info!(file = %file.display(), kind, "skipping a Dapr resource that is not a Component");
        return Ok(None);
    }
    match str_field(doc, "apiVersion") {
        Some("dapr.io/v1alpha1") => {}
        Some(other) => {
            return Err(err(
                file,
                format!("apiVersion: {other:?} is not supported; use dapr.io/v1alpha1"),
            ));
        }
        None => return Err(err(file, "apiVersion: missing; use dapr.io/v1alpha1")),
    }
    let name = doc
        .get("metadata")
        .and_then(|m| str_field(m, "name"))
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            err(
                file,
                "metadata.name: missing; it is the store name clients use in /v1.0/state/{name}",
            )
        })?;
    if name.contains('/') || name.contains("||") || name.trim() != name {
        return Err(err(
            file,
            format!(
                "metadata.name: {name:?} cannot be a store name (no `/`, `||` or surrounding spaces)"
            ),
        ));
    }
    if let Some(scopes) = doc.get("scopes") {
        let Some(list) = scopes.as_sequence() else {
            return Err(err(file, "scopes: must be a list of app ids"));
        };
        let ids: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
        if !ids.is_empty() && !app_id.is_some_and(|a| ids.contains(&a)) {
            tracing::info!(file = %file.display(), component = name, "skipping a component scoped to other app ids");
            return Ok(None);
        }
    }
    let spec = doc.get("spec").ok_or_else(|| {
        err(
            file,
            "spec: missing; a component needs spec.type and spec.metadata",
        )
    })?;
    let ty =
        str_field(spec, "type").ok_or_else(|| err(file, "spec.type: missing; use state.redb"))?;
    if !ty.starts_with("state.") {
        tracing::info!(file = %file.display(), component = name, r#type = ty, "skipping a component that is not a state store");
        return Ok(None);
    }
    if let Some(v) = spec.get("version").and_then(scalar)
        && v != "v1"
    {
        return Err(err(
            file,
            format!("spec.version: {v:?} is not supported; use v1"),
        ));
    }
    let mut meta: Vec<(String, String)> = Vec::new();
    if let Some(items) = spec.get("metadata") {
        let Some(items) = items.as_sequence() else {
            return Err(err(
                file,
                "spec.metadata: must be a list of {name, value} items",
            ));
        };
        for (i, item) in items.iter().enumerate() {
            let field = format!("spec.metadata[{i}]");
            let Some(key) = str_field(item, "name") else {
                return Err(err(file, format!("{field}: needs a `name`")));
            };
            if item.get("secretKeyRef").is_some() {
                return Err(err(
                    file,
                    format!(
                        "{field} ({key}): secretKeyRef is not supported; give the value inline with `value`"
                    ),
                ));
            }
            let Some(value) = item.get("value").and_then(scalar) else {
                return Err(err(
                    file,
                    format!("{field} ({key}): needs a `value` (a string, number or boolean)"),
                ));
            };
            // Dapr reads metadata names in any case (`KEYPREFIX`); they are
            // kept here in the spelling of the docs.
            let known = REDIS_FIELDS
                .split(", ")
                .find(|f| f.eq_ignore_ascii_case(key));
            meta.push((known.unwrap_or(key).to_string(), value));
        }
    }
    let kind = match ty {
        "state.redb" => StoreKind::Redb(scope_target(file, &meta, "state.redb", REDB_FIELDS)?),
        "state.redis" => StoreKind::Redis {
            url: redis_url(file, &meta)?,
            target: scope_target(file, &meta, "state.redis", REDIS_FIELDS)?,
        },
        other => {
            return Err(err(
                file,
                format!(
                    "spec.type: {other} is not supported by wasm-state; use state.redb or state.redis"
                ),
            ));
        }
    };
    let key_prefix = match meta.iter().find(|(k, _)| k == "keyPrefix") {
        None => KeyPrefix::AppId,
        Some((_, v)) => {
            let p = KeyPrefix::parse(v)
                .map_err(|m| err(file, format!("spec.metadata keyPrefix: {m}")))?;
            if let KeyPrefix::Custom(lower) = &p
                && lower != v
            {
                tracing::warn!(
                    file = %file.display(), component = name,
                    "keyPrefix {v:?} is used as {lower:?}, lowercased as Dapr does; keys that \
                     builds before 2026-12-07 wrote with the prefix {v:?} keep that spelling \
                     (export them and import them renamed, or write them again)"
                );
            }
            p
        }
    };
    Ok(Some(StoreSpec {
        name: name.to_string(),
        kind,
        key_prefix,
        source: Some(file.to_path_buf()),
    }))
}

const REDB_FIELDS: &str = "scope, account, instance, keyPrefix, actorStateStore";
const REDIS_FIELDS: &str = "redisHost, redisPassword, redisUsername, redisDB, enableTLS, redisType, failover, sentinelMasterName, sentinelPassword, namespace, scope, account, instance, keyPrefix, actorStateStore";

/// The store URL of a `state.redis` component from Dapr's usual metadata
/// (`redisHost` `host:port`, comma-separated for `redisType: cluster`, or
/// the sentinels' with `failover: true`, `sentinelMasterName` and, if they
/// have one, `sentinelPassword`;
/// `redisPassword`, `redisUsername`, `redisDB`, `enableTLS`) and ours
/// (`namespace`, the key prefix hosts use: `ws` unless `--store` says
/// otherwise).
fn redis_url(file: &Path, meta: &[(String, String)]) -> Result<String, ComponentError> {
    let get = |name: &str| {
        meta.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let host = get("redisHost").filter(|h| !h.is_empty()).ok_or_else(|| {
        err(file, "spec.metadata redisHost: required for state.redis (HOST:PORT, comma-separated for a cluster)")
    })?;
    // A field with two allowed values (or its default): is it the first?
    let first_of = |name: &str, [a, b]: [&str; 2], default: &str| match get(name).unwrap_or(default)
    {
        v if v == a || v == b => Ok(v == a),
        v => Err(err(
            file,
            format!("spec.metadata {name}: {v:?} must be {a} or {b}"),
        )),
    };
    let tls = first_of("enableTLS", ["true", "false"], "false")?;
    let cluster = !first_of("redisType", ["node", "cluster"], "node")?;
    let failover = first_of("failover", ["true", "false"], "false")?;
    let master = match (
        failover,
        get("sentinelMasterName").filter(|m| !m.is_empty()),
    ) {
        (false, None) => None,
        (true, Some(m)) if !cluster => Some(m),
        (true, Some(_)) => {
            return Err(err(
                file,
                "spec.metadata failover: Redis Sentinel (failover: true) and redisType: cluster do not go together",
            ));
        }
        (true, None) => {
            return Err(err(
                file,
                "spec.metadata sentinelMasterName: required with failover: true (the name the sentinels monitor the primary under)",
            ));
        }
        (false, Some(_)) => {
            return Err(err(
                file,
                "spec.metadata sentinelMasterName: only used with failover: true (redisHost then lists the sentinels)",
            ));
        }
    };
    let scheme = match (tls, cluster, master.is_some()) {
        (false, _, true) => "redis+sentinel",
        (true, _, true) => "rediss+sentinel",
        (false, false, _) => "redis",
        (true, false, _) => "rediss",
        (false, true, _) => "redis+cluster",
        (true, true, _) => "rediss+cluster",
    };
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let auth = match (get("redisUsername"), get("redisPassword")) {
        (_, None | Some("")) => String::new(),
        (Some(u), Some(p)) if !u.is_empty() => format!("{}:{}@", enc(u), enc(p)),
        (_, Some(p)) => format!(":{}@", enc(p)),
    };
    let db = match get("redisDB") {
        None | Some("") => String::new(),
        Some(d) if cluster => {
            return Err(err(
                file,
                format!(
                    "spec.metadata redisDB: {d:?} is not allowed with redisType: cluster (a cluster has database 0 only)"
                ),
            ));
        }
        Some(d) => {
            d.parse::<u32>().map_err(|_| {
                err(
                    file,
                    format!("spec.metadata redisDB: {d:?} must be a database number"),
                )
            })?;
            format!("/{d}")
        }
    };
    let mut query = Vec::new();
    if let Some(n) = get("namespace") {
        query.push(format!("namespace={}", enc(n)));
    }
    match get("sentinelPassword").filter(|p| !p.is_empty()) {
        Some(p) if master.is_some() => query.push(format!("sentinel_password={}", enc(p))),
        Some(_) => {
            return Err(err(
                file,
                "spec.metadata sentinelPassword: only used with failover: true",
            ));
        }
        None => {}
    }
    let query = match query.is_empty() {
        true => String::new(),
        false => format!("?{}", query.join("&")),
    };
    let master = master.map_or(String::new(), |m| format!("/{}", enc(m)));
    let url = format!("{scheme}://{auth}{host}{master}{db}{query}");
    crate::store::redis::RedisUrl::parse(&url)
        .map_err(|e| err(file, format!("spec.metadata redisHost: {e}")))?;
    Ok(url)
}

fn scope_target(
    file: &Path,
    meta: &[(String, String)],
    ty: &str,
    allowed: &str,
) -> Result<ScopeTarget, ComponentError> {
    let get = |name: &str| {
        meta.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    for (k, v) in meta {
        match k.as_str() {
            "actorStateStore" => {
                if !matches!(v.as_str(), "true" | "false") {
                    return Err(err(
                        file,
                        format!("spec.metadata actorStateStore: {v:?} must be true or false"),
                    ));
                }
            }
            k if allowed.split(", ").any(|a| a == k) => {}
            other => {
                return Err(err(
                    file,
                    format!("spec.metadata: unknown field {other:?} for {ty}; allowed: {allowed}"),
                ));
            }
        }
    }
    let name_ok = |what: &str, v: &str| {
        if v.is_empty() || v.len() > 255 {
            Err(err(
                file,
                format!("spec.metadata {what}: must be 1 to 255 bytes"),
            ))
        } else {
            Ok(v.to_string())
        }
    };
    match get("scope").unwrap_or("account") {
        "account" => {
            if get("instance").is_some() {
                return Err(err(
                    file,
                    "spec.metadata instance: only allowed with `scope: instance`",
                ));
            }
            Ok(ScopeTarget::Account(
                get("account").map(|a| name_ok("account", a)).transpose()?,
            ))
        }
        "instance" => {
            if get("account").is_some() {
                return Err(err(
                    file,
                    "spec.metadata account: only allowed with `scope: account`",
                ));
            }
            let inst = get("instance").ok_or_else(|| {
                err(file, "spec.metadata instance: required with `scope: instance` (the instance whose state this store is)")
            })?;
            Ok(ScopeTarget::Instance(name_ok("instance", inst)?))
        }
        other => Err(err(
            file,
            format!("spec.metadata scope: {other:?} is not a scope; use `account` or `instance`"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<Vec<StoreSpec>, String> {
        parse(Path::new("c/store.yaml"), text, Some("myapp")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_dapr_component_maps_onto_a_scope() {
        let specs = one(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: orders\n  namespace: prod\nspec:\n  type: state.redb\n  version: v1\n  metadata:\n  - name: scope\n    value: instance\n  - name: instance\n    value: shop\n  - name: keyPrefix\n    value: none\n  - name: actorStateStore\n    value: \"false\"\n",
        )
        .unwrap();
        assert_eq!(
            specs,
            [StoreSpec {
                name: "orders".into(),
                kind: StoreKind::Redb(ScopeTarget::Instance("shop".into())),
                key_prefix: KeyPrefix::None,
                source: Some("c/store.yaml".into()),
            }]
        );
        // Defaults: the host's account, keyPrefix appid; several documents;
        // other kinds and non-state components are skipped; metadata names
        // in any case and a custom prefix lowercased, as Dapr reads them.
        let specs = one(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: a}\nspec: {type: state.redb, version: v1}\n---\napiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: cfg}\nspec: {}\n---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: bus}\nspec: {type: pubsub.redis, version: v1}\n---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: b}\nspec:\n  type: state.redb\n  metadata:\n  - {name: Account, value: acme}\n  - {name: KEYPREFIX, value: Tenant-7}\n---\n",
        )
        .unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].kind, StoreKind::Redb(ScopeTarget::Account(None)));
        assert_eq!(specs[0].key_prefix, KeyPrefix::AppId);
        assert_eq!(
            specs[1].kind,
            StoreKind::Redb(ScopeTarget::Account(Some("acme".into())))
        );
        assert_eq!(specs[1].key_prefix, KeyPrefix::Custom("tenant-7".into()));
    }

    #[test]
    fn a_redis_component_names_a_redis_store_and_a_scope() {
        let doc = |meta: &str| {
            format!(
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: r}}\nspec:\n  type: state.redis\n  version: v1\n  metadata:\n{meta}"
            )
        };
        let specs = one(&doc("  - {name: redisHost, value: \"localhost:6379\"}\n  - {name: redisPassword, value: \"p@ss\"}\n  - {name: redisDB, value: \"2\"}\n  - {name: scope, value: instance}\n  - {name: instance, value: shop}\n")).unwrap();
        assert_eq!(
            specs[0].kind,
            StoreKind::Redis {
                url: "redis://:p%40ss@localhost:6379/2".into(),
                target: ScopeTarget::Instance("shop".into()),
            }
        );
        assert_eq!(specs[0].kind.type_name(), "state.redis");
        let specs = one(&doc("  - {name: redisHost, value: \"a:1,b:2\"}\n  - {name: redisType, value: cluster}\n  - {name: enableTLS, value: \"true\"}\n  - {name: namespace, value: prod}\n")).unwrap();
        assert_eq!(
            specs[0].kind,
            StoreKind::Redis {
                url: "rediss+cluster://a:1,b:2?namespace=prod".into(),
                target: ScopeTarget::Account(None),
            }
        );
        // Redis Sentinel, as Dapr writes it: redisHost lists the sentinels.
        let specs = one(&doc("  - {name: redisHost, value: \"s1:26379,s2:26379\"}\n  - {name: failover, value: \"true\"}\n  - {name: sentinelMasterName, value: my-primary}\n  - {name: redisPassword, value: \"p@ss\"}\n  - {name: redisDB, value: \"3\"}\n  - {name: sentinelPassword, value: \"s&p\"}\n  - {name: namespace, value: n}\n")).unwrap();
        assert_eq!(
            specs[0].kind,
            StoreKind::Redis {
                url: "redis+sentinel://:p%40ss@s1:26379,s2:26379/my%2Dprimary/3?namespace=n&sentinel_password=s%26p".into(),
                target: ScopeTarget::Account(None),
            }
        );
        for (meta, expect) in [
            ("  - {name: redisDB, value: \"1\"}\n", "redisHost: required"),
            (
                "  - {name: redisHost, value: h}\n  - {name: enableTLS, value: maybe}\n",
                "enableTLS: \"maybe\" must be true or false",
            ),
            (
                "  - {name: redisHost, value: h}\n  - {name: redisType, value: sentinel}\n",
                "redisType: \"sentinel\" must be node or cluster",
            ),
            (
                "  - {name: redisHost, value: h}\n  - {name: redisDB, value: x}\n",
                "redisDB: \"x\" must be a database number",
            ),
            (
                "  - {name: redisHost, value: h}\n  - {name: failover, value: \"true\"}\n",
                "sentinelMasterName: required with failover: true",
            ),
            (
                "  - {name: redisHost, value: h}\n  - {name: sentinelMasterName, value: m}\n",
                "sentinelMasterName: only used with failover: true",
            ),
            (
                "  - {name: redisHost, value: h}\n  - {name: failover, value: \"true\"}\n  - {name: sentinelMasterName, value: m}\n  - {name: redisType, value: cluster}\n",
                "do not go together",
            ),
            (
                "  - {name: redisHost, value: h}\n  - {name: maxRetries, value: \"3\"}\n",
                "unknown field \"maxRetries\" for state.redis",
            ),
        ] {
            let e = one(&doc(meta)).unwrap_err();
            assert!(e.contains(expect), "{meta:?}: {e}");
        }
    }

    #[test]
    fn scopes_select_the_apps_that_see_a_component() {
        let doc = |scopes: &str| {
            format!(
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: a}}\nspec: {{type: state.redb}}\nscopes: {scopes}\n"
            )
        };
        assert_eq!(one(&doc("[myapp, other]")).unwrap().len(), 1);
        assert_eq!(one(&doc("[other]")).unwrap().len(), 0);
        assert_eq!(one(&doc("[]")).unwrap().len(), 1);
    }

    #[test]
    fn mistakes_name_the_file_the_field_and_what_is_allowed() {
        let base = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\n";
        let cases = [
            ("key: [unclosed", "not valid YAML"),
            ("- a\n- b\n", "must be a YAML mapping"),
            (
                "apiVersion: dapr.io/v1alpha1\nmetadata: {name: s}\n",
                "kind: missing",
            ),
            (
                "apiVersion: dapr.io/v2\nkind: Component\nmetadata: {name: s}\nspec: {type: state.redb}\n",
                "apiVersion: \"dapr.io/v2\" is not supported; use dapr.io/v1alpha1",
            ),
            (
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nspec: {type: state.redb}\n",
                "metadata.name: missing",
            ),
            (
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: a/b}\nspec: {type: state.redb}\n",
                "metadata.name: \"a/b\"",
            ),
        ];
        for (text, expect) in cases {
            let e = one(text).unwrap_err();
            assert!(
                e.starts_with("c/store.yaml: ") && e.contains(expect),
                "{text:?}: {e}"
            );
        }
        let spec_cases = [
            ("", "spec: missing"),
            (
                "spec: {version: v1}\n",
                "spec.type: missing; use state.redb",
            ),
            (
                "spec: {type: state.postgresql}\n",
                "spec.type: state.postgresql is not supported by wasm-state; use state.redb",
            ),
            (
                "spec: {type: state.redb, version: v2}\n",
                "spec.version: \"v2\" is not supported; use v1",
            ),
            (
                "spec: {type: state.redb, metadata: {a: b}}\n",
                "spec.metadata: must be a list",
            ),
            (
                "spec: {type: state.redb, metadata: [{value: x}]}\n",
                "spec.metadata[0]: needs a `name`",
            ),
            (
                "spec: {type: state.redb, metadata: [{name: scope}]}\n",
                "spec.metadata[0] (scope): needs a `value`",
            ),
            (
                "spec: {type: state.redb, metadata: [{name: scope, secretKeyRef: {name: s}}]}\n",
                "secretKeyRef is not supported",
            ),
            (
                "spec: {type: state.redb, metadata: [{name: redisHost, value: x}]}\n",
                "unknown field \"redisHost\" for state.redb; allowed: scope, account, instance, keyPrefix, actorStateStore",
            ),
            (
                "spec: {type: state.redb, metadata: [{name: scope, value: session}]}\n",
                "scope: \"session\" is not a scope; use `account` or `instance`",
            ),
            (
                "spec: {type: state.redb, metadata: [{name: scope, value: instance}]}\n",
                "instance: required with `scope: instance`",
            ),
            (
                "spec: {type: state.redb, metadata: [{name: instance, value: shop}]}\n",
                "instance: only allowed with `scope: instance`",
            ),
            (
                "spec: {type: state.redb, metadata: [{name: keyPrefix, value: \"a||b\"}]}\n",
                "keyPrefix: \"a||b\" cannot contain \"||\"",
            ),
            (
                "spec: {type: state.redb, metadata: [{name: actorStateStore, value: maybe}]}\n",
                "actorStateStore: \"maybe\" must be true or false",
            ),
        ];
        for (spec, expect) in spec_cases {
            let e = one(&format!("{base}{spec}")).unwrap_err();
            assert!(
                e.starts_with("c/store.yaml: ") && e.contains(expect),
                "{spec:?}: {e}"
            );
        }
    }

    #[test]
    fn a_directory_loads_every_yaml_file_and_refuses_duplicate_names() {
        let dir = tempfile::tempdir().unwrap();
        let doc = |name: &str| {
            format!(
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: {name}}}\nspec: {{type: state.redb}}\n"
            )
        };
        std::fs::write(dir.path().join("a.yaml"), doc("one")).unwrap();
        std::fs::write(dir.path().join("b.yml"), doc("two")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not yaml: [").unwrap();
        let specs = load_dir(dir.path(), None).unwrap();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["one", "two"]);
        std::fs::write(dir.path().join("c.yaml"), doc("one")).unwrap();
        let e = load_dir(dir.path(), None).unwrap_err().to_string();
        assert!(
            e.contains("c.yaml") && e.contains("already defined in") && e.contains("a.yaml"),
            "{e}"
        );
        let e = load_dir(&dir.path().join("missing"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read the components directory"), "{e}");
    }
}
