//! Which scope a `wasi:keyvalue` bucket identifier opens.
//!
//! | identifier | opens |
//! |---|---|
//! | `""`, `"default"` | the instance scope |
//! | `"account"` | the account scope |
//! | `"session:<id>"` | that live session of this instance |
//! | a name the operator mapped (`NAME=instance[:PREFIX]` or `NAME=account[:PREFIX]`) | that scope, keys under `PREFIX` |
//! | anything else | `no-such-store` |

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The scope a mapped bucket lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketScope {
    /// The guest's instance scope.
    Instance,
    /// The guest's account scope.
    Account,
}

/// Where an operator-named bucket keeps its keys: a scope, and a key prefix
/// inside it (the bucket sees its keys without the prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketTarget {
    /// Instance or account.
    pub scope: BucketScope,
    /// Prefix of the bucket's keys in that scope (may be empty).
    pub prefix: String,
}

/// A bucket mapping that cannot be used, with what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bucket mapping {given:?}: {reason}; write NAME=instance[:PREFIX] or NAME=account[:PREFIX]"
)]
pub struct BucketMappingError {
    given: String,
    reason: String,
}

impl FromStr for BucketTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (scope, prefix) = s.split_once(':').unwrap_or((s, ""));
        let scope = match scope {
            "instance" => BucketScope::Instance,
            "account" => BucketScope::Account,
            other => return Err(format!("unknown scope {other:?} (instance or account)")),
        };
        Ok(BucketTarget {
            scope,
            prefix: prefix.to_string(),
        })
    }
}

impl fmt::Display for BucketTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = match self.scope {
            BucketScope::Instance => "instance",
            BucketScope::Account => "account",
        };
        if self.prefix.is_empty() {
            f.write_str(scope)
        } else {
            write!(f, "{scope}:{}", self.prefix)
        }
    }
}

/// What an identifier opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved<'a> {
    /// A scope of the guest with a key prefix.
    Scope(BucketScope, &'a str),
    /// A session of the guest's instance, by id.
    Session(&'a str),
    /// Nothing: `no-such-store`.
    Unknown,
}

/// The bucket names of a host: the built-in ones plus operator mappings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketMap {
    named: BTreeMap<String, BucketTarget>,
}

fn builtin(name: &str) -> bool {
    matches!(name, "" | "default" | "account") || name.starts_with("session:")
}

impl BucketMap {
    /// Map the bucket `name` to `target`. Built-in names cannot be remapped.
    pub fn insert(&mut self, name: &str, target: BucketTarget) -> Result<(), BucketMappingError> {
        if builtin(name) {
            return Err(BucketMappingError {
                given: format!("{name}={target}"),
                reason: format!("{name:?} is a built-in bucket name"),
            });
        }
        self.named.insert(name.to_string(), target);
        Ok(())
    }

    /// Parse and add one `NAME=SCOPE[:PREFIX]` mapping (the CLI's `--kv-bucket`).
    pub fn insert_spec(&mut self, spec: &str) -> Result<(), BucketMappingError> {
        let err = |reason: String| BucketMappingError {
            given: spec.to_string(),
            reason,
        };
        let (name, target) = spec.split_once('=').ok_or_else(|| err("no '='".into()))?;
        if name.is_empty() {
            return Err(err("the bucket name is empty".into()));
        }
        let target = target.parse().map_err(err)?;
        self.insert(name, target)
    }

    /// The operator's mappings, by name.
    pub fn named(&self) -> impl Iterator<Item = (&str, &BucketTarget)> {
        self.named.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// What `identifier` opens.
    pub fn resolve<'a>(&'a self, identifier: &'a str) -> Resolved<'a> {
        match identifier {
            "" | "default" => Resolved::Scope(BucketScope::Instance, ""),
            "account" => Resolved::Scope(BucketScope::Account, ""),
            id => match id.strip_prefix("session:") {
                Some(session) => Resolved::Session(session),
                None => match self.named.get(id) {
                    Some(t) => Resolved::Scope(t.scope, &t.prefix),
                    None => Resolved::Unknown,
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names_resolve() {
        let m = BucketMap::default();
        assert_eq!(m.resolve(""), Resolved::Scope(BucketScope::Instance, ""));
        assert_eq!(
            m.resolve("default"),
            Resolved::Scope(BucketScope::Instance, "")
        );
        assert_eq!(
            m.resolve("account"),
            Resolved::Scope(BucketScope::Account, "")
        );
        assert_eq!(m.resolve("session:abc"), Resolved::Session("abc"));
        assert_eq!(m.resolve("cache"), Resolved::Unknown);
        assert_eq!(m.resolve("Default"), Resolved::Unknown);
    }

    #[test]
    fn mappings_parse_and_resolve() {
        let mut m = BucketMap::default();
        m.insert_spec("cache=instance:cache/").unwrap();
        m.insert_spec("shared=account").unwrap();
        assert_eq!(
            m.resolve("cache"),
            Resolved::Scope(BucketScope::Instance, "cache/")
        );
        assert_eq!(
            m.resolve("shared"),
            Resolved::Scope(BucketScope::Account, "")
        );
        let e = m.insert_spec("default=account").unwrap_err().to_string();
        assert!(e.contains("built-in"), "{e}");
        let e = m.insert_spec("x=elsewhere").unwrap_err().to_string();
        assert!(e.contains("unknown scope \"elsewhere\""), "{e}");
        assert!(m.insert_spec("nothing").is_err());
        assert!(m.insert_spec("=instance").is_err());
    }
}
