//! How the engine's records are laid out in the backend's one ordered byte-key
//! space. Every record of a scope starts with the scope's prefix, so a scope
//! (or an instance with all its sessions) is one contiguous key range.
//!
//! ```text
//! d a <lp16 account>                    account scope prefix
//! d i <lp16 instance> I                 instance scope prefix
//! d i <lp16 instance> S <lp16 id>       session scope prefix
//!   <scope> M <key>                     meta record of a key (kind, etag, expiry, inline value)
//!   <scope> F <lp32 key> <field>        map field → value
//!   <scope> L <lp32 key> <seq: u64 BE>  list item (seq = i64 with the sign bit flipped)
//! x <expires_at: u64 BE> <meta record key>       key expiry index
//! e <lp16 instance>                     how many session records the instance has (u64)
//! e <lp16 instance> <lp16 id>           session record → expires_at
//! t <expires_at: u64 BE> <lp16 instance> <lp16 id>  session expiry index
//! u <owner>                             bytes used by an owner (owner = `a <lp16>` or `i <lp16>`)
//! n <lp16 instance>                     instance registration → created_at, account
//! c                                     last etag version issued
//! cl                                    (redb backend) newest commit-log record the file holds
//! v <watch prefix>                      watchers of a scope → lp16 watcher names
//! V <lp16 watcher>                      what a watcher watches → its targets
//! w <owner> <lp16 watcher> <seq: u64 BE>   a change waiting for a watcher
//! W <owner> <lp16 watcher>              that queue's next seq, length, drops
//! l <owner> <lp16 watcher>              (Redis only) which host delivers that queue, until when
//! ```
//!
//! A watch prefix is a scope prefix (instance, account), or for every
//! session of an instance `d i <lp16 instance> S`.

use crate::store::types::Scope;

/// First byte of data records.
pub const DATA: u8 = b'd';
/// First byte of the key expiry index.
pub const KEY_EXPIRY: u8 = b'x';
/// First byte of session records.
pub const SESSION: u8 = b'e';
/// First byte of the session expiry index.
pub const SESSION_EXPIRY: u8 = b't';
/// First byte of usage records.
pub const USAGE: u8 = b'u';
/// First byte of instance registrations.
pub const INSTANCE: u8 = b'n';
/// The etag version counter.
pub const COUNTER: &[u8] = b"c";
/// Reserved for the redb backend: where the commit log goes on after the
/// newest record this file holds — that record's sequence number, the log
/// file and the offset (17 bytes; 8, the sequence number alone, from
/// versions with one log file) — next to [`COUNTER`], which every write
/// group rewrites too, so both land on one page.
pub const LOG_SEQ: &[u8] = b"cl";
/// First byte of watch registrations by scope.
pub const WATCHERS: u8 = b'v';
/// First byte of watch registrations by watcher.
pub const WATCHING: u8 = b'V';
/// First byte of change queue entries.
pub const QUEUE: u8 = b'w';
/// First byte of change queue heads.
pub const QUEUE_HEAD: u8 = b'W';

fn lp16(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn lp32(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// Append the owner record prefix `tag <lp16 name>` to `out`.
fn owner(out: &mut Vec<u8>, tag: u8, name: &str) {
    out.push(tag);
    lp16(out, name.as_bytes());
}

/// The owner record prefix of an instance (`i <lp16 name>`).
pub fn instance_owner(instance: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(3 + instance.len());
    owner(&mut v, b'i', instance);
    v
}

/// The owner record prefix of an account (`a <lp16 name>`).
pub fn account_owner(account: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(3 + account.len());
    owner(&mut v, b'a', account);
    v
}

/// The byte prefix of every data record of a scope. (Built in one buffer
/// of the final size: it is made for every write.)
pub fn scope_prefix(scope: &Scope) -> Vec<u8> {
    let mut v;
    match scope {
        Scope::Account(a) => {
            v = Vec::with_capacity(4 + a.len());
            v.push(DATA);
            owner(&mut v, b'a', a);
        }
        Scope::Instance(i) => {
            v = Vec::with_capacity(5 + i.len());
            v.push(DATA);
            owner(&mut v, b'i', i);
            v.push(b'I');
        }
        Scope::Session { instance, id } => {
            v = Vec::with_capacity(7 + instance.len() + id.len());
            v.push(DATA);
            owner(&mut v, b'i', instance);
            v.push(b'S');
            lp16(&mut v, id.as_bytes());
        }
    }
    v
}

/// Every data record of an instance: its scope and all its sessions.
pub fn instance_data_prefix(instance: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + instance.len());
    v.push(DATA);
    owner(&mut v, b'i', instance);
    v
}

/// The owner (quota holder) of a data record key, or `None` for other records.
pub fn owner_of(record_key: &[u8]) -> Option<&[u8]> {
    if record_key.first() != Some(&DATA) || record_key.len() < 4 {
        return None;
    }
    let n = u16::from_be_bytes([record_key[2], record_key[3]]) as usize;
    record_key.get(1..4 + n)
}

/// Human name of an owner: `instance "x"` / `account "y"`.
pub fn owner_name(owner: &[u8]) -> String {
    let name = String::from_utf8_lossy(owner.get(3..).unwrap_or_default());
    match owner.first() {
        Some(b'a') => format!("account {name:?}"),
        _ => format!("instance {name:?}"),
    }
}

/// Is this owner an account?
pub fn owner_is_account(owner: &[u8]) -> bool {
    owner.first() == Some(&b'a')
}

/// The usage record of an owner.
pub fn usage_key(owner: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + owner.len());
    v.push(USAGE);
    v.extend_from_slice(owner);
    v
}

/// Key → record key builder for one scope.
#[derive(Debug, Clone)]
pub struct ScopeKeys {
    prefix: Vec<u8>,
}

impl ScopeKeys {
    /// Keys of `scope`.
    pub fn new(scope: &Scope) -> Self {
        ScopeKeys {
            prefix: scope_prefix(scope),
        }
    }

    /// The scope prefix.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Prefix of all meta records (key listing).
    pub fn meta_prefix(&self) -> Vec<u8> {
        self.tagged(b'M', 0)
    }

    /// The meta record of `key`.
    pub fn meta(&self, key: &str) -> Vec<u8> {
        let mut v = self.tagged(b'M', key.len());
        v.extend_from_slice(key.as_bytes());
        v
    }

    /// The scope prefix and `tag`, in a buffer with room for `more` bytes.
    fn tagged(&self, tag: u8, more: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.prefix.len() + 1 + more);
        v.extend_from_slice(&self.prefix);
        v.push(tag);
        v
    }

    /// The user key of a meta record key of this scope.
    pub fn key_of_meta<'a>(&self, meta_key: &'a [u8]) -> Option<&'a [u8]> {
        meta_key.get(self.prefix.len() + 1..)
    }

    fn sub_prefix(&self, tag: u8, key: &str) -> Vec<u8> {
        let mut v = self.tagged(tag, 4 + key.len());
        lp32(&mut v, key.as_bytes());
        v
    }

    /// Prefix of every field record of map `key`.
    pub fn fields(&self, key: &str) -> Vec<u8> {
        self.sub_prefix(b'F', key)
    }

    /// Prefix of every item record of list `key`.
    pub fn items(&self, key: &str) -> Vec<u8> {
        self.sub_prefix(b'L', key)
    }
}

/// A field record key: fields prefix + field.
pub fn field_key(fields_prefix: &[u8], field: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(fields_prefix.len() + field.len());
    v.extend_from_slice(fields_prefix);
    v.extend_from_slice(field);
    v
}

/// A list item record key: items prefix + ordered seq.
pub fn item_key(items_prefix: &[u8], seq: i64) -> Vec<u8> {
    let mut v = Vec::with_capacity(items_prefix.len() + 8);
    v.extend_from_slice(items_prefix);
    v.extend_from_slice(&((seq as u64) ^ (1 << 63)).to_be_bytes());
    v
}

/// The smallest key greater than every key starting with `prefix`, or `None`
/// if there is none (prefix of all 0xff).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut v = prefix.to_vec();
    while let Some(last) = v.pop() {
        if last < 0xff {
            v.push(last + 1);
            return Some(v);
        }
    }
    None
}

/// Key expiry index entry.
pub fn key_expiry(expires_at: u64, meta_key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(9 + meta_key.len());
    v.push(KEY_EXPIRY);
    v.extend_from_slice(&expires_at.to_be_bytes());
    v.extend_from_slice(meta_key);
    v
}

/// Instance registration key.
pub fn instance_key(instance: &str) -> Vec<u8> {
    let mut v = vec![INSTANCE];
    lp16(&mut v, instance.as_bytes());
    v
}

/// Session record key.
pub fn session_key(instance: &str, id: &str) -> Vec<u8> {
    let mut v = vec![SESSION];
    lp16(&mut v, instance.as_bytes());
    lp16(&mut v, id.as_bytes());
    v
}

/// Prefix of every session record of an instance.
pub fn sessions_of(instance: &str) -> Vec<u8> {
    let mut v = vec![SESSION];
    lp16(&mut v, instance.as_bytes());
    v
}

/// Session expiry index entry.
pub fn session_expiry(expires_at: u64, instance: &str, id: &str) -> Vec<u8> {
    let mut v = vec![SESSION_EXPIRY];
    v.extend_from_slice(&expires_at.to_be_bytes());
    v.extend_from_slice(&session_key(instance, id)[1..]);
    v
}

/// Split `<lp16 a><lp16 b>` into (a, b).
pub fn split_pair(bytes: &[u8]) -> Option<(String, String)> {
    let (a, rest) = take_lp16(bytes)?;
    let (b, rest) = take_lp16(rest)?;
    if !rest.is_empty() {
        return None;
    }
    Some((
        String::from_utf8(a.to_vec()).ok()?,
        String::from_utf8(b.to_vec()).ok()?,
    ))
}

fn take_lp16(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = u16::from_be_bytes([*b.first()?, *b.get(1)?]) as usize;
    Some((b.get(2..2 + n)?, &b[2 + n..]))
}

/// Read a big-endian u64 at the start of `b`.
pub fn be_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

/// The length of the scope prefix of a meta record key (the `M` follows
/// it), or `None` if `record_key` is no meta record.
pub fn meta_scope_len(record_key: &[u8]) -> Option<usize> {
    let owner = owner_of(record_key)?;
    let mut at = 1 + owner.len();
    if owner[0] == b'i' {
        match record_key.get(at)? {
            b'I' => at += 1,
            b'S' => {
                let (_, rest) = take_lp16(record_key.get(at + 1..)?)?;
                at = record_key.len() - rest.len();
            }
            _ => return None,
        }
    }
    (record_key.get(at) == Some(&b'M')).then_some(at)
}

/// The watch prefix whose watchers see changes of the scope with this
/// prefix: the scope itself, or for a session every session of its instance.
pub fn watch_prefix_of(scope_prefix: &[u8]) -> &[u8] {
    let Some(owner) = owner_of(scope_prefix) else {
        return scope_prefix;
    };
    let at = 1 + owner.len();
    if owner[0] == b'i' && scope_prefix.get(at) == Some(&b'S') {
        &scope_prefix[..=at]
    } else {
        scope_prefix
    }
}

/// The watch prefix of every session of an instance.
pub fn sessions_watch_prefix(instance: &str) -> Vec<u8> {
    let mut v = instance_data_prefix(instance);
    v.push(b'S');
    v
}

/// The registration of the watchers of a watch prefix.
pub fn watchers_key(watch_prefix: &[u8]) -> Vec<u8> {
    let mut v = vec![WATCHERS];
    v.extend_from_slice(watch_prefix);
    v
}

/// The registration of what a watcher watches.
pub fn watching_key(watcher: &str) -> Vec<u8> {
    let mut v = vec![WATCHING];
    lp16(&mut v, watcher.as_bytes());
    v
}

fn queue_of(tag: u8, owner: &[u8], watcher: &str) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(owner);
    lp16(&mut v, watcher.as_bytes());
    v
}

/// The prefix of a watcher's change queue at an owner.
pub fn queue_prefix(owner: &[u8], watcher: &str) -> Vec<u8> {
    queue_of(QUEUE, owner, watcher)
}

/// A change queue entry.
pub fn queue_key(owner: &[u8], watcher: &str, seq: u64) -> Vec<u8> {
    let mut v = queue_prefix(owner, watcher);
    v.extend_from_slice(&seq.to_be_bytes());
    v
}

/// The head record of a watcher's change queue at an owner.
pub fn queue_head_key(owner: &[u8], watcher: &str) -> Vec<u8> {
    queue_of(QUEUE_HEAD, owner, watcher)
}

/// Append `s` with a u16 length prefix.
pub fn put_lp16(out: &mut Vec<u8>, s: &[u8]) {
    lp16(out, s);
}

/// Append `s` with a u32 length prefix.
pub fn put_lp32(out: &mut Vec<u8>, s: &[u8]) {
    lp32(out, s);
}

/// Split a u16-length-prefixed string off the front of `b`.
pub fn take_lp16_prefix(b: &[u8]) -> Option<(&[u8], &[u8])> {
    take_lp16(b)
}

/// Split a u32-length-prefixed string off the front of `b`.
pub fn take_lp32_prefix(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
    Some((b.get(4..4 + n)?, &b[4 + n..]))
}

/// The scope a scope prefix names.
pub fn scope_of_prefix(prefix: &[u8]) -> Option<Scope> {
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
    if prefix.first() != Some(&DATA) {
        return None;
    }
    let (name, rest) = take_lp16(prefix.get(2..)?)?;
    let name = text(name)?;
    match (prefix[1], rest) {
        (b'a', []) => Some(Scope::Account(name)),
        (b'i', [b'I']) => Some(Scope::Instance(name)),
        (b'i', [b'S', id @ ..]) => match take_lp16(id)? {
            (id, []) => Some(Scope::Session {
                instance: name,
                id: text(id)?,
            }),
            _ => None,
        },
        _ => None,
    }
}

impl ScopeKeys {
    /// Recover the scope keys and the user key from a meta record key.
    pub fn from_meta_key(meta_key: &[u8]) -> Option<(ScopeKeys, String)> {
        let at = meta_scope_len(meta_key)?;
        let key = String::from_utf8(meta_key[at + 1..].to_vec()).ok()?;
        Some((
            ScopeKeys {
                prefix: meta_key[..at].to_vec(),
            },
            key,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record keys are the file format (and the Redis engine's Lua
    /// builds the same bytes): each builder gives exactly the bytes the
    /// module documentation shows.
    #[test]
    fn keys_are_laid_out_byte_for_byte_as_documented() {
        let account = Scope::Account("acme".into());
        let instance = Scope::Instance("app".into());
        let session = Scope::Session {
            instance: "app".into(),
            id: "s1".into(),
        };
        assert_eq!(scope_prefix(&account), b"da\x00\x04acme");
        assert_eq!(scope_prefix(&instance), b"di\x00\x03appI");
        assert_eq!(scope_prefix(&session), b"di\x00\x03appS\x00\x02s1");
        assert_eq!(instance_data_prefix("app"), b"di\x00\x03app");
        assert_eq!(instance_owner("app"), b"i\x00\x03app");
        assert_eq!(account_owner("acme"), b"a\x00\x04acme");
        assert_eq!(usage_key(b"i\x00\x03app"), b"ui\x00\x03app");
        let keys = ScopeKeys::new(&session);
        assert_eq!(keys.meta_prefix(), b"di\x00\x03appS\x00\x02s1M");
        assert_eq!(keys.meta("k"), b"di\x00\x03appS\x00\x02s1Mk");
        assert_eq!(
            keys.fields("m"),
            b"di\x00\x03appS\x00\x02s1F\x00\x00\x00\x01m"
        );
        assert_eq!(
            keys.items("l"),
            b"di\x00\x03appS\x00\x02s1L\x00\x00\x00\x01l"
        );
        assert_eq!(
            key_expiry(258, b"di\x00\x03appIMk"),
            b"x\x00\x00\x00\x00\x00\x00\x01\x02di\x00\x03appIMk"
        );
    }
}
