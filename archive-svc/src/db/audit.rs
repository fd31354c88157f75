//! `archive.audit_log`: who did what to which job, why, and how it ended.

use stowage_shared::db::{self, GenericClient};
use uuid::Uuid;

/// One audit entry.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub tenant_id: &'a str,
    pub actor: &'a str,
    /// The actor's organization, where it is not `tenant_id`.
    pub actor_tenant: Option<&'a str>,
    pub action: &'a str,
    pub job_id: Option<Uuid>,
    pub reason: Option<&'a str>,
    pub outcome: &'a str,
    pub detail: serde_json::Value,
}

pub async fn record(client: &impl GenericClient, entry: &Entry<'_>) -> crate::error::Result<()> {
    db::execute(
        client,
        "insert into archive.audit_log (tenant_id, actor, actor_tenant, action, job_id,
                 reason, outcome, detail)
             values ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &entry.tenant_id,
            &entry.actor,
            &entry.actor_tenant,
            &entry.action,
            &entry.job_id,
            &entry.reason,
            &entry.outcome,
            &entry.detail,
        ],
    )
    .await?;
    Ok(())
}
