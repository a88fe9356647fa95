//! The instance registry: which instances exist and the account each belongs
//! to. An instance belongs to exactly one account for its whole life;
//! destroying it deletes its registration, its state and its sessions.

use super::error::{Result, StateError};
use super::layout;
use super::{RawRead, Store};

/// A registered instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    /// The instance name.
    pub name: String,
    /// The account it belongs to.
    pub account: String,
    /// Unix ms at which it was first registered.
    pub created_at_ms: u64,
}

fn decode(name: &str, v: &[u8]) -> Result<InstanceInfo> {
    let created_at_ms = layout::be_u64(v).ok_or_else(|| StateError::corrupt("instance record"))?;
    let account =
        String::from_utf8(v[8..].to_vec()).map_err(|_| StateError::corrupt("instance record"))?;
    Ok(InstanceInfo {
        name: name.into(),
        account,
        created_at_ms,
    })
}

fn lookup(r: &dyn RawRead, name: &str) -> Result<Option<InstanceInfo>> {
    r.get(&layout::instance_key(name))?
        .map(|v| decode(name, &v))
        .transpose()
}

impl Store {
    /// Register `instance` as belonging to `account` (idempotent). An instance
    /// registered to another account is `access-denied`.
    pub async fn register_instance(&self, instance: &str, account: &str) -> Result<InstanceInfo> {
        layout::check_name("instance", instance)?;
        layout::check_name("account", account)?;
        let (inst, acct) = (instance.to_string(), account.to_string());
        self.write(move |cx| {
            if let Some(found) = lookup(cx.r(), &inst)? {
                if found.account != acct {
                    return Err(StateError::AccessDenied(format!(
                        "instance {inst:?} belongs to account {:?}, not {acct:?}; pick another instance name or destroy it first",
                        found.account
                    )));
                }
                return Ok(found);
            }
            let mut v = cx.now.to_be_bytes().to_vec();
            v.extend_from_slice(acct.as_bytes());
            cx.put(&layout::instance_key(&inst), &v)?;
            Ok(InstanceInfo { name: inst, account: acct, created_at_ms: cx.now })
        })
        .await
    }

    /// The registration of `instance`, if any.
    pub async fn instance_info(&self, instance: &str) -> Result<Option<InstanceInfo>> {
        layout::check_name("instance", instance)?;
        self.read(|r, _| lookup(r, instance))
    }

    /// Every registered instance, by name.
    pub async fn list_instances(&self) -> Result<Vec<InstanceInfo>> {
        self.read_blocking(|r, _| {
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
        })
        .await
    }
}
