//! Evidence of what callers do to jobs and stores. An action's entry is written in the
//! action's own transaction (no entry, no action), filed under the job's tenant with the
//! actor's organization beside it; an attempt that failed, and so changed nothing, is
//! recorded on its own connection.

use serde_json::Value;
use stowage_shared::{auth::Principal, db::GenericClient};
use uuid::Uuid;

use crate::{
    db::{self, audit::Entry},
    error::Result,
};

/// Who acts: a caller, or the schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub subject: String,
    /// The caller's organization; `None` for the schedule.
    pub organization: Option<String>,
}

impl Actor {
    pub fn caller(caller: &Principal) -> Self {
        Self {
            subject: caller.subject.clone(),
            organization: Some(caller.organization.clone()),
        }
    }

    pub fn scheduler() -> Self {
        Self {
            subject: "scheduler".to_owned(),
            organization: None,
        }
    }

    /// The scope of this actor's idempotent requests.
    pub fn scope(&self) -> &str {
        self.organization.as_deref().unwrap_or("")
    }
}

/// One audited action: who, what, why.
#[derive(Clone, Copy, Debug)]
pub struct Audit<'a> {
    pub actor: &'a Actor,
    pub action: &'static str,
    pub reason: Option<&'a str>,
}

impl Audit<'_> {
    /// Writes the entry with `client` (the action's transaction). `tenant` is the job's;
    /// without a job (a store change) the entry is filed under the actor's organization.
    pub async fn record(
        &self,
        client: &impl GenericClient,
        job: Option<(Uuid, &str)>,
        ok: bool,
        detail: Value,
    ) -> Result<()> {
        let actor_tenant = self.actor.organization.as_deref();
        let tenant_id = job.map(|(_, tenant)| tenant).or(actor_tenant).unwrap_or("");
        let entry = Entry {
            tenant_id,
            actor: &self.actor.subject,
            actor_tenant: actor_tenant.filter(|org| *org != tenant_id),
            action: self.action,
            job_id: job.map(|(id, _)| id),
            reason: self.reason,
            outcome: if ok { "ok" } else { "failed" },
            detail,
        };
        db::audit::record(client, &entry).await
    }

    /// Records an attempt that failed; a failure to record it is logged.
    pub async fn record_failure(
        &self,
        pool: &deadpool_postgres::Pool,
        job: Option<(Uuid, &str)>,
        error: &crate::error::Error,
    ) {
        let recorded = async {
            let client = pool.get().await?;
            self.record(
                &client,
                job,
                false,
                serde_json::json!({ "error": error.to_string() }),
            )
            .await
        };
        if let Err(failure) = recorded.await {
            tracing::error!(error = %failure, action = self.action, "could not record a failed attempt");
        }
    }
}
