//! Instance registrations of the kv engine: `n <instance>` → created-at and
//! account.

use super::backend::RawRead;
use super::layout;
use super::ops::cx::WriteCx;
use crate::store::InstanceInfo;
use crate::store::error::{Result, StateError};

fn decode(name: &str, v: &[u8]) -> Result<InstanceInfo> {
    let created_at_ms = layout::be_u64(v).ok_or_else(|| StateError::corrupt("instance record"))?;
    let account = String::from_utf8(v.get(8..).unwrap_or_default().to_vec())
        .map_err(|_| StateError::corrupt("instance record"))?;
    Ok(InstanceInfo {
        name: name.into(),
        account,
        created_at_ms,
    })
}

/// The registration of `name`, if any.
pub fn lookup(r: &dyn RawRead, name: &str) -> Result<Option<InstanceInfo>> {
    r.get(&layout::instance_key(name))?
        .map(|v| decode(name, &v))
        .transpose()
}

/// Register `instance` to `account` (idempotent; another account is
/// `access-denied`).
pub fn register(cx: &mut WriteCx, instance: &str, account: &str) -> Result<InstanceInfo> {
    if let Some(found) = lookup(cx.r(), instance)? {
        if found.account != account {
            return Err(StateError::AccessDenied(format!(
                "instance {instance:?} belongs to account {:?}, not {account:?}; pick another instance name or destroy it first",
                found.account
            )));
        }
        return Ok(found);
    }
    let mut v = cx.now.to_be_bytes().to_vec();
    v.extend_from_slice(account.as_bytes());
    cx.put(&layout::instance_key(instance), &v)?;
    Ok(InstanceInfo {
        name: instance.into(),
        account: account.into(),
        created_at_ms: cx.now,
    })
}

/// Every registration, by name.
pub fn list(r: &dyn RawRead) -> Result<Vec<InstanceInfo>> {
    let prefix = [layout::INSTANCE];
    let mut out = Vec::new();
    let mut err = None;
    r.scan(
        &prefix,
        layout::prefix_end(&prefix).as_deref(),
        false,
        &mut |k, v| {
            let name = String::from_utf8_lossy(k.get(3..).unwrap_or_default()).into_owned();
            match decode(&name, v) {
                Ok(i) => out.push(i),
                Err(e) => err = Some(e),
            }
            err.is_none()
        },
    )?;
    err.map_or(Ok(out), Err)
}

/// Delete an instance's registration, state and sessions.
pub fn destroy(cx: &mut WriteCx, instance: &str) -> Result<()> {
    let data = layout::instance_data_prefix(instance);
    cx.delete_range(&data, layout::prefix_end(&data).as_deref())?;
    let sessions = layout::sessions_of(instance);
    cx.delete_range(&sessions, layout::prefix_end(&sessions).as_deref())?;
    // Its own queue's head goes with it, as on Redis (the owner's records
    // go whole there): a new life of the instance counts seqs from 1.
    cx.delete(&layout::queue_head_key(
        &layout::instance_owner(instance),
        instance,
    ))?;
    cx.delete(&layout::instance_key(instance))
}
