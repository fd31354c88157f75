//! Evidence: recording audit entries and listing audit entries, domain events and security
//! events for org admins (their organization) and super admins (any). An action records
//! its audit entry in its own transaction ([`audit`]): no entry, no action.

use stowage_shared::{
    api::Page,
    auth::{AuthError, Principal, Role},
    db::GenericClient,
};
use uuid::Uuid;

use crate::{
    db::{self, evidence::EvidenceQuery},
    domain::model::evidence::{AuditEntry, AuditRecord, EventRecord},
    error::Result,
};

/// Domain event of a run that ended COMPLETED, COMPLETED_WITH_ERRORS or CANCELLED.
pub const RUN_COMPLETED: &str = "storageMigrationRunCompleted";
/// Domain event of a run that ended FAILED.
pub const RUN_FAILED: &str = "storageMigrationRunFailed";
/// Security event of a run that failed closed.
pub const MIGRATION_FAILED_CLOSED: &str = "storageOperationsMigrationFailed";

/// Which evidence a caller asked for.
#[derive(Debug, Clone)]
pub struct ListEvidence {
    pub organization: Option<String>,
    pub run_id: Option<Uuid>,
    pub after: Option<i64>,
    pub limit: i64,
}

#[derive(Clone, Debug)]
pub struct Evidence {
    pool: deadpool_postgres::Pool,
}

impl Evidence {
    pub fn new(pool: deadpool_postgres::Pool) -> Self {
        Self { pool }
    }

    /// Records the audit entry of an attempt that changed nothing (a refused activation),
    /// on its own connection.
    pub async fn audit_attempt(&self, entry: &AuditEntry) -> Result<()> {
        let client = self.pool.get().await?;
        db::evidence::record_audit(&client, entry).await
    }

    pub async fn audit_entries(
        &self,
        caller: &Principal,
        query: ListEvidence,
    ) -> Result<Page<AuditRecord, i64>> {
        let query = scope(caller, query)?;
        let client = self.pool.get().await?;
        let rows = db::evidence::list_audit(&client, &query).await?;
        Ok(Page::from_rows(rows, query.limit - 1, |r| r.id))
    }

    pub async fn events(
        &self,
        caller: &Principal,
        security: bool,
        query: ListEvidence,
    ) -> Result<Page<EventRecord, i64>> {
        let query = scope(caller, query)?;
        let client = self.pool.get().await?;
        let rows = db::evidence::list_events(&client, security, &query).await?;
        Ok(Page::from_rows(rows, query.limit - 1, |r| r.id))
    }
}

/// Records an action's audit entry in the action's transaction `tx`: if it cannot be
/// recorded the action fails and rolls back with it.
pub async fn audit(tx: &impl GenericClient, entry: &AuditEntry) -> Result<()> {
    db::evidence::record_audit(tx, entry).await
}

/// Org admins see their organization; super admins any, or all.
fn scope(caller: &Principal, query: ListEvidence) -> Result<EvidenceQuery> {
    caller.require(Role::OrgAdmin)?;
    let organization = match query.organization {
        Some(org) if org != caller.organization && !caller.is_super_admin() => {
            return Err(AuthError::MissingRole(Role::SuperAdmin).into());
        }
        Some(org) => Some(org),
        None if caller.is_super_admin() => None,
        None => Some(caller.organization.clone()),
    };
    Ok(EvidenceQuery {
        organization,
        run_id: query.run_id,
        after: query.after,
        limit: query.limit + 1,
    })
}
