//! Crypto-shredding of an organization (`DestroyOrganizationKeys`): its key destroyed, in
//! one transaction with the audit entry (filed in the organization's evidence). Every
//! object the key wrapped is unreadable from then on, on every binding and in any copy a
//! store kept; nothing else changes. This replica forgets the key at once, the others
//! within `stores::RING_TTL`.

use serde_json::json;
use stowage_shared::auth::{Principal, Role};

use super::{evidence, model::evidence::AuditEntry, stores::Stores};
use crate::{db, error::Result};

/// What destroying an organization's keys did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shredded {
    pub keys_destroyed: u64,
    /// Live artifacts whose objects those keys wrapped.
    pub artifacts: i64,
}

#[derive(Clone, Debug)]
pub struct Shredder {
    pool: deadpool_postgres::Pool,
    stores: Stores,
}

impl Shredder {
    pub fn new(pool: deadpool_postgres::Pool, stores: Stores) -> Self {
        Self { pool, stores }
    }

    pub async fn destroy(
        &self,
        caller: &Principal,
        organization: &str,
        reason: &str,
    ) -> Result<Shredded> {
        caller.require(Role::SuperAdmin)?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let keys = self.stores.tenant_keys();
        let artifacts = (keys)
            .wrapped(&tx, organization, &db::artifacts::LIVE_OBJECTS)
            .await?;
        let keys_destroyed = keys.destroy(&tx, organization).await?;
        let mut entry = AuditEntry::new(caller, "DestroyOrganizationKeys")
            .reason(reason)
            .detail(json!({ "keys_destroyed": keys_destroyed, "artifacts_shredded": artifacts }));
        entry.organization_id = organization.to_owned();
        evidence::audit(&tx, &entry).await?;
        tx.commit().await?;
        self.stores.forget_ring(organization);
        tracing::warn!(
            organization,
            keys_destroyed,
            artifacts,
            "organization keys destroyed"
        );
        Ok(Shredded {
            keys_destroyed,
            artifacts,
        })
    }
}
