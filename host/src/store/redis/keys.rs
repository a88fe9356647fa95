//! Redis key names. Every owner — an instance (with all its sessions) or an
//! account — keeps its records in two Redis keys, a hash and a sorted set,
//! that carry the owner's hash tag, so everything one request touches sits
//! in one Redis Cluster slot. The registry of instances is an owner of its
//! own.
//!
//! ```text
//! {ns}:{i.<base64url(instance)>}:h   records of an instance: key → value
//! {ns}:{i.<base64url(instance)>}:z   the same record keys, in byte order
//! {ns}:{a.<base64url(account)>}:h|z  an account's records
//! {ns}:{g}:h|z                       the instance registry
//! {ns}:{…}:r:<request id>            a write's answer, for a retry (2 min)
//! {ns}:owners                        every owner tag ever written (sweeper)
//! ```
//!
//! Names are base64url-encoded inside the tag, so `{`, `}` and `:` in an
//! instance or account name can never change which slot its keys use.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::store::types::Scope;

/// The keys of one owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The hash tag, without braces (`i.c2hvcA`).
    pub tag: String,
    /// The records hash.
    pub hash: String,
    /// The records sorted set.
    pub zset: String,
}

/// `namespace:{tag}:` followed by `rest` (every write names its keys, so
/// they are built with plain pushes, not the formatting machinery).
fn tagged(namespace: &str, tag: &str, rest: &str) -> String {
    let mut s = String::with_capacity(namespace.len() + tag.len() + rest.len() + 4);
    for part in [namespace, ":{", tag, "}:", rest] {
        s.push_str(part);
    }
    s
}

/// The tag of a named owner: `kind`, then the name in base64url.
fn name_tag(kind: &str, name: &str) -> String {
    let mut tag = String::with_capacity(kind.len() + name.len() * 4 / 3 + 4);
    tag.push_str(kind);
    URL_SAFE_NO_PAD.encode_string(name, &mut tag);
    tag
}

impl Owner {
    fn new(namespace: &str, tag: String) -> Owner {
        Owner {
            hash: tagged(namespace, &tag, "h"),
            zset: tagged(namespace, &tag, "z"),
            tag,
        }
    }

    /// The owner of an instance's records (its scope and sessions).
    pub fn instance(namespace: &str, instance: &str) -> Owner {
        Owner::new(namespace, name_tag("i.", instance))
    }

    /// The owner of an account's records.
    pub fn account(namespace: &str, account: &str) -> Owner {
        Owner::new(namespace, name_tag("a.", account))
    }

    /// The instance registry.
    pub fn registry(namespace: &str) -> Owner {
        Owner::new(namespace, "g".into())
    }

    /// The owner of a scope's records.
    pub fn of_scope(namespace: &str, scope: &Scope) -> Owner {
        match scope {
            Scope::Account(a) => Owner::account(namespace, a),
            Scope::Instance(i) | Scope::Session { instance: i, .. } => {
                Owner::instance(namespace, i)
            }
        }
    }

    /// The answer marker of write `request` (same slot).
    pub fn marker(&self, namespace: &str, request: &str) -> String {
        let mut m = tagged(namespace, &self.tag, "r:");
        m.push_str(request);
        m
    }
}

/// The set of every owner tag ever written (the sweeper's work list).
pub fn owners_set(namespace: &str) -> String {
    format!("{namespace}:owners")
}

/// The owner of a tag listed in the owners set.
pub fn owner_of_tag(namespace: &str, tag: &str) -> Owner {
    Owner::new(namespace, tag.to_string())
}

/// The Redis Cluster hash slot of a key (CRC16 of its hash tag, mod 16384),
/// as `CLUSTER KEYSLOT` computes it.
pub fn slot(key: &str) -> u16 {
    let b = key.as_bytes();
    let tagged = b
        .iter()
        .position(|&c| c == b'{')
        .and_then(|open| {
            let rest = &b[open + 1..];
            let close = rest.iter().position(|&c| c == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(b);
    crc16(tagged) % 16384
}

/// CRC16/XMODEM, the checksum Redis Cluster uses.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_an_owner_shares_one_slot_whatever_its_name() {
        for name in ["shop", "a{b}c", "}{", "x:y:{z}", "{", "}", "", "émoji 🎉"] {
            let scopes = [
                Scope::Instance(name.into()),
                Scope::Session {
                    instance: name.into(),
                    id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
                },
            ];
            let owners: Vec<Owner> = scopes.iter().map(|s| Owner::of_scope("ws", s)).collect();
            assert_eq!(owners[0], owners[1], "a session is its instance's owner");
            let o = &owners[0];
            let s = slot(&o.hash);
            assert_eq!(slot(&o.zset), s, "{name:?}");
            assert_eq!(slot(&o.marker("ws", "req1")), s, "{name:?}");
            assert!(!o.tag.contains(['{', '}']), "{name:?}");
        }
        assert_ne!(
            Owner::instance("ws", "a").tag,
            Owner::account("ws", "a").tag,
            "an account is its own owner"
        );
    }

    /// The names are the data's address: they never change.
    #[test]
    fn key_names_are_as_documented() {
        let o = Owner::instance("ws", "shop");
        assert_eq!(o.tag, "i.c2hvcA");
        assert_eq!(o.hash, "ws:{i.c2hvcA}:h");
        assert_eq!(o.zset, "ws:{i.c2hvcA}:z");
        assert_eq!(o.marker("ws", "req1"), "ws:{i.c2hvcA}:r:req1");
        let a = Owner::account("ns", "a{b}");
        assert_eq!(
            (a.hash.as_str(), a.zset.as_str()),
            ("ns:{a.YXtifQ}:h", "ns:{a.YXtifQ}:z")
        );
        assert_eq!(Owner::registry("ws").hash, "ws:{g}:h");
        assert_eq!(owner_of_tag("ws", "i.c2hvcA"), o);
    }

    #[test]
    fn slots_match_redis() {
        // Values from `redis-cli CLUSTER KEYSLOT`.
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("123456789"), 12739);
    }
}
