//! The instance registry: which instances exist and the account each belongs
//! to. An instance belongs to exactly one account for its whole life;
//! destroying it deletes its registration, its state and its sessions.

use super::error::Result;
use super::{Store, check_name};

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

impl Store {
    /// Register `instance` as belonging to `account` (idempotent). An instance
    /// registered to another account is `access-denied`.
    pub async fn register_instance(&self, instance: &str, account: &str) -> Result<InstanceInfo> {
        check_name("instance", instance)?;
        check_name("account", account)?;
        self.engine().register_instance(instance, account).await
    }

    /// The registration of `instance`, if any.
    pub async fn instance_info(&self, instance: &str) -> Result<Option<InstanceInfo>> {
        check_name("instance", instance)?;
        self.engine().instance_info(instance).await
    }

    /// Every registered instance, by name.
    pub async fn list_instances(&self) -> Result<Vec<InstanceInfo>> {
        self.engine().list_instances().await
    }
}
