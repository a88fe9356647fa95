//! Dapr's key scheme: a store's keys are prefixed (`keyPrefix`) with the app
//! id, the store name, the namespace and app id, a custom text, or nothing,
//! joined to the key by `||` — which is therefore not allowed in keys.

/// The separator between a key prefix and the key.
pub const SEPARATOR: &str = "||";

/// A store's `keyPrefix` strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPrefix {
    /// `appid` (the default): `{app id}||key`; no prefix without an app id.
    AppId,
    /// `name`: `{store name}||key`.
    Name,
    /// `namespace`: `{namespace}.{app id}||key` (`{app id}||key` without a
    /// namespace; no prefix without an app id).
    Namespace,
    /// `none`: the key as is.
    None,
    /// Any other text: `{text}||key`, the text lowercased as Dapr does
    /// (`Tenant-A` prefixes `tenant-a||`).
    Custom(String),
}

impl KeyPrefix {
    /// Parse a `keyPrefix` metadata value (the strategies are
    /// case-insensitive, as Dapr's).
    pub fn parse(v: &str) -> Result<KeyPrefix, String> {
        if v.contains(SEPARATOR) {
            return Err(format!("{v:?} cannot contain {SEPARATOR:?}"));
        }
        Ok(match v.to_ascii_lowercase().as_str() {
            "" | "appid" => KeyPrefix::AppId,
            "name" => KeyPrefix::Name,
            "namespace" => KeyPrefix::Namespace,
            "none" => KeyPrefix::None,
            _ => KeyPrefix::Custom(v.to_lowercase()),
        })
    }

    /// The text put before every key of store `store` (including the
    /// separator), or empty.
    pub fn resolve(&self, store: &str, app_id: Option<&str>, namespace: Option<&str>) -> String {
        let app = app_id.filter(|a| !a.is_empty());
        match (self, app) {
            (KeyPrefix::None, _) | (KeyPrefix::AppId | KeyPrefix::Namespace, None) => String::new(),
            (KeyPrefix::AppId, Some(a)) => format!("{a}{SEPARATOR}"),
            (KeyPrefix::Namespace, Some(a)) => match namespace.filter(|n| !n.is_empty()) {
                Some(ns) => format!("{ns}.{a}{SEPARATOR}"),
                None => format!("{a}{SEPARATOR}"),
            },
            (KeyPrefix::Name, _) => format!("{store}{SEPARATOR}"),
            (KeyPrefix::Custom(p), _) => format!("{p}{SEPARATOR}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_as_dapr_applies_them() {
        let r = |p: &str, app, ns| KeyPrefix::parse(p).unwrap().resolve("store", app, ns);
        assert_eq!(r("appid", Some("shop"), None), "shop||");
        assert_eq!(r("AppId", Some("shop"), None), "shop||");
        assert_eq!(r("appid", None, None), "");
        assert_eq!(r("name", None, None), "store||");
        assert_eq!(r("namespace", Some("shop"), Some("prod")), "prod.shop||");
        assert_eq!(r("namespace", Some("shop"), None), "shop||");
        assert_eq!(r("namespace", None, Some("prod")), "");
        assert_eq!(r("none", Some("shop"), None), "");
        assert_eq!(r("tenant-a", Some("shop"), None), "tenant-a||");
        assert_eq!(r("Tenant-A", Some("shop"), None), "tenant-a||");
        assert!(KeyPrefix::parse("a||b").is_err());
    }
}
