//! What callers can do with scan jobs' archives, with tenancy, roles and the audit trail:
//! look, list, restore, touch, delete, and (admins) archive now, archive what is due, and
//! replace the archive store.

use chrono::{DateTime, Utc};
use serde_json::json;
use stowage_shared::{
    auth::{Principal, Role},
    blob::{BlobError, BlobKey},
};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    Page,
    archive::{Archiver, Compression, Mode},
    jobs::{BlobFormat, Job},
    restore::{Progress, Restorer},
    store::{ArchiveStores, StoreSetting},
};
use crate::{
    db::{self, audit::Entry},
    error::{Error, Result},
};

/// Who asked for a restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    User,
    Resume,
    Retry,
    Admin,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::User => "USER",
            Trigger::Resume => "RESUME",
            Trigger::Retry => "RETRY",
            Trigger::Admin => "ADMIN",
        }
    }
}

/// The tenant and subject an audit entry names for a caller.
fn who(caller: &Principal) -> (&str, &str) {
    (&caller.organization, &caller.subject)
}

/// One job's result in a bulk archive.
#[derive(Debug)]
pub struct Outcome {
    pub job_id: Uuid,
    pub result: Result<Job>,
}

#[derive(Clone, Debug)]
pub struct Archives {
    pool: deadpool_postgres::Pool,
    archiver: Archiver,
    restorer: Restorer,
    stores: ArchiveStores,
    jobs_per_tick: u32,
}

impl Archives {
    pub fn new(
        pool: deadpool_postgres::Pool,
        archiver: Archiver,
        restorer: Restorer,
        stores: ArchiveStores,
        jobs_per_tick: u32,
    ) -> Self {
        Self {
            pool,
            archiver,
            restorer,
            stores,
            jobs_per_tick,
        }
    }

    pub fn archiver(&self) -> &Archiver {
        &self.archiver
    }

    /// When a hot terminal job becomes due for the schedule.
    pub fn eligible_at(&self, job: &Job) -> Option<DateTime<Utc>> {
        if job.archive.is_some() {
            return None;
        }
        let idle = self.archiver.policy().idle(job.status)?;
        let since = job.terminal_at?.max(job.last_activity_at);
        Some(since + chrono::Duration::from_std(idle).ok()?)
    }

    pub async fn get(&self, caller: &Principal, id: Uuid) -> Result<Job> {
        let client = self.pool.get().await?;
        db::jobs::get(&client, Some(&caller.organization), id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {id}")))
    }

    pub async fn list(
        &self,
        caller: &Principal,
        archived: Option<bool>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Page<Job, Uuid>> {
        let client = self.pool.get().await?;
        let mut jobs =
            db::jobs::list(&client, &caller.organization, archived, after, limit + 1).await?;
        let next = if jobs.len() as i64 > limit {
            jobs.truncate(limit as usize);
            jobs.last().map(|j| j.id)
        } else {
            None
        };
        Ok(Page { items: jobs, next })
    }

    /// `EnsureHot`: restores the job's rows if archived. Admin-triggered restores may
    /// reach any tenant's job.
    pub async fn restore(
        &self,
        caller: &Principal,
        id: Uuid,
        trigger: Trigger,
        progress: &mpsc::Sender<Progress>,
    ) -> Result<Progress> {
        let tenant = if trigger == Trigger::Admin {
            caller.require(Role::SuperAdmin)?;
            None
        } else {
            Some(caller.organization.as_str())
        };
        let result = self.restorer.restore(tenant, id, progress).await;
        let detail = match &result {
            Ok(done) => json!({ "trigger": trigger.as_str(), "rows": done.rows_done,
                                "already_hot": done.already_hot }),
            Err(error) => json!({ "trigger": trigger.as_str(), "error": error.to_string() }),
        };
        self.audit(
            who(caller),
            "restore",
            Some(id),
            None,
            result.is_ok(),
            detail,
        )
        .await;
        result
    }

    pub async fn touch(&self, caller: &Principal, id: Uuid) -> Result<Job> {
        let client = self.pool.get().await?;
        db::jobs::touch(&client, Some(&caller.organization), id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {id}")))
    }

    /// Deletes the job, its hot rows and its blob. Returns whether a blob was deleted.
    pub async fn delete(&self, caller: &Principal, id: Uuid, reason: &str) -> Result<bool> {
        caller.require(Role::OrgAdmin)?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let job = db::jobs::get_for_update(&tx, Some(&caller.organization), id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {id}")))?;
        db::jobs::delete_job(&tx, id).await?;
        tx.commit().await?;
        // The rows are gone; now the blob (a leftover blob is only unreclaimed space).
        let mut keys: Vec<String> = job.archive.iter().map(|a| a.blob_key.clone()).collect();
        for format in [BlobFormat::JsonZstd, BlobFormat::JsonGzip] {
            keys.push(format.blob_key(&job.tenant_id, id));
        }
        keys.dedup();
        let store = self.stores.current().await?;
        let mut deleted = false;
        for key in keys {
            match store.store().delete(&BlobKey::new(key)?).await {
                Ok(()) => deleted = true,
                Err(BlobError::NotFound(_)) => {}
                Err(error) => {
                    self.audit(
                        who(caller),
                        "delete",
                        Some(id),
                        Some(reason),
                        false,
                        json!({ "error": error.to_string() }),
                    )
                    .await;
                    return Err(error.into());
                }
            }
        }
        self.audit(
            who(caller),
            "delete",
            Some(id),
            Some(reason),
            true,
            json!({ "blob_deleted": deleted }),
        )
        .await;
        Ok(deleted)
    }

    /// Archives one job now; it must be terminal. SUPER_ADMIN only.
    pub async fn archive_now(
        &self,
        caller: &Principal,
        id: Uuid,
        reason: &str,
        compression: Compression,
    ) -> Result<Job> {
        caller.require(Role::SuperAdmin)?;
        let result = self
            .archiver
            .archive(None, id, Mode::Forced, compression)
            .await;
        let detail = match &result {
            Ok(archived) => {
                json!({ "blob": archived.info.blob_key, "format": archived.info.format.as_str() })
            }
            Err(error) => json!({ "error": error.to_string() }),
        };
        self.audit(
            who(caller),
            "archive",
            Some(id),
            Some(reason),
            result.is_ok(),
            detail,
        )
        .await;
        result?;
        self.job(id).await
    }

    /// The schedule's logic: up to `limit` due jobs, oldest terminal first; each outcome
    /// goes to `outcomes` as it happens. A job's failure never stops the rest.
    pub async fn archive_due(
        &self,
        actor: &str,
        reason: &str,
        limit: u32,
        outcomes: &mpsc::Sender<Outcome>,
    ) -> Result<(u32, u32)> {
        let limit = if limit == 0 {
            self.jobs_per_tick
        } else {
            limit
        };
        let windows: Vec<_> = self
            .archiver
            .policy()
            .idle_days()
            .map(|(status, days)| (status, i32::try_from(days).unwrap_or(i32::MAX)))
            .collect();
        let due = {
            let client = self.pool.get().await?;
            db::jobs::eligible(&client, &windows, Utc::now(), i64::from(limit)).await?
        };
        let (mut archived, mut failed) = (0, 0);
        for (job_id, tenant) in due {
            let result = match self
                .archiver
                .archive(None, job_id, Mode::Scheduled, Compression::Zstd)
                .await
            {
                Ok(_) => {
                    archived += 1;
                    self.job(job_id).await
                }
                Err(error) => {
                    failed += 1;
                    tracing::warn!(job = %job_id, %error, "job not archived");
                    metrics::counter!("archive_jobs_failed_total").increment(1);
                    Err(error)
                }
            };
            let detail = match &result {
                Ok(job) => json!({ "blob": job.archive.as_ref().map(|a| a.blob_key.clone()) }),
                Err(error) => json!({ "error": error.to_string() }),
            };
            let ok = result.is_ok();
            self.audit(
                (&tenant, actor),
                "archive",
                Some(job_id),
                Some(reason),
                ok,
                detail,
            )
            .await;
            let _ = outcomes.send(Outcome { job_id, result }).await;
        }
        Ok((archived, failed))
    }

    pub async fn set_store(
        &self,
        caller: &Principal,
        setting: &StoreSetting,
        reason: &str,
    ) -> Result<()> {
        caller.require(Role::SuperAdmin)?;
        let result = self.stores.set(setting, &caller.subject).await;
        self.audit(
            who(caller),
            "set_archive_store",
            None,
            Some(reason),
            result.is_ok(),
            json!({ "container": setting.container }),
        )
        .await;
        result
    }

    /// Any tenant's job, for admins and the schedule.
    async fn job(&self, id: Uuid) -> Result<Job> {
        let client = self.pool.get().await?;
        db::jobs::get(&client, None, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {id}")))
    }

    /// Records an audit entry for `(tenant, actor)`; a failure to record is logged, not
    /// returned.
    async fn audit(
        &self,
        caller: (&str, &str),
        action: &str,
        job_id: Option<Uuid>,
        reason: Option<&str>,
        ok: bool,
        detail: serde_json::Value,
    ) {
        let (tenant_id, actor) = caller;
        let entry = Entry {
            tenant_id,
            actor,
            action,
            job_id,
            reason,
            outcome: if ok { "ok" } else { "failed" },
            detail,
        };
        let recorded = async {
            let client = self.pool.get().await?;
            db::audit::record(&client, &entry).await?;
            Ok::<_, Error>(())
        };
        if let Err(error) = recorded.await {
            tracing::error!(%error, action, "could not record an audit entry");
        }
    }
}
