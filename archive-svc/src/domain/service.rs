//! What callers can do with scan jobs' archives, with tenancy, roles and the audit trail:
//! look, list, restore, touch and delete. The SUPER_ADMIN operations are in
//! [`super::admin`].

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::json;
use stowage_shared::db::RowLock;
use stowage_shared::{
    api::{Page, RequestId},
    auth::{Principal, Role},
    blob::BlobKey,
    stream,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    IDEMPOTENCY,
    archive::Archiver,
    audit::{Actor, Audit},
    garbage::Sweeper,
    jobs::Job,
    payload::BlobFormat,
    relocate::Relocator,
    restore::{Progress, Restorer},
    stores::ArchiveStores,
    verify::Verifier,
};
use crate::{
    db::{self, garbage::Cause},
    error::{OrNotFound, Result},
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

/// A job with when a hot terminal job becomes due for the schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct JobView {
    pub job: Job,
    pub eligible_time: Option<DateTime<Utc>>,
}

/// What a delete did with the job's blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub job_id: Uuid,
    /// The archive blob is gone from its store.
    pub blob_deleted: bool,
    /// The blob could not be deleted yet: it stays recorded and the sweeper retries.
    pub blob_delete_pending: bool,
}

/// What a delete records before it touches a store; a repeat answers from it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct DeleteRecord {
    job_id: Uuid,
    archive_garbage: Option<i64>,
    garbage: Vec<i64>,
}

#[derive(Clone, Debug)]
pub struct Archives {
    pub(super) pool: deadpool_postgres::Pool,
    pub(super) archiver: Archiver,
    pub(super) restorer: Restorer,
    pub(super) stores: ArchiveStores,
    pub(super) sweeper: Sweeper,
    pub(super) relocator: Relocator,
    pub(super) verifier: Verifier,
    pub(super) jobs_per_tick: u32,
}

impl Archives {
    pub fn new(
        pool: deadpool_postgres::Pool,
        archiver: Archiver,
        restorer: Restorer,
        stores: ArchiveStores,
        sweeper: Sweeper,
        jobs_per_tick: u32,
    ) -> Self {
        let relocator = Relocator::new(pool.clone(), stores.clone(), sweeper.clone());
        let verifier = Verifier::new(pool.clone(), stores.clone());
        Self {
            pool,
            archiver,
            restorer,
            stores,
            sweeper,
            relocator,
            verifier,
            jobs_per_tick,
        }
    }

    pub fn archiver(&self) -> &Archiver {
        &self.archiver
    }

    pub fn sweeper(&self) -> &Sweeper {
        &self.sweeper
    }

    /// A job as callers see it: with when it becomes due for the schedule.
    pub fn view(&self, job: Job) -> JobView {
        let eligible_time = self.archiver.policy().due_at(&job);
        JobView { job, eligible_time }
    }

    pub async fn get(&self, caller: &Principal, id: Uuid) -> Result<Job> {
        db::jobs::JOBS
            .owned_by(&self.pool, &caller.organization, id)
            .await
    }

    pub async fn list(
        &self,
        caller: &Principal,
        archived: Option<bool>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Page<Job, Uuid>> {
        let client = self.pool.get().await?;
        db::jobs::list(&client, &caller.organization, archived, after, limit).await
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
        let actor = Actor::caller(caller);
        let audit = Audit {
            actor: &actor,
            action: "restore",
            reason: None,
        };
        let result = self
            .restorer
            .restore(tenant, id, progress, &audit, trigger.as_str())
            .await;
        if let Err(error) = &result {
            let tenant = self.tenant_of(id).await;
            let job = tenant.as_deref().map(|tenant| (id, tenant));
            audit.record_failure(&self.pool, job, error).await;
        }
        result
    }

    /// [`Archives::restore`] as a stream of its progress, ending in `Done` (or the error):
    /// the restore runs to its end even if the caller goes away.
    pub fn restore_progress(
        &self,
        caller: Principal,
        id: Uuid,
        trigger: Trigger,
    ) -> BoxStream<'static, Result<Progress>> {
        let archives = self.clone();
        stream::spawned(64, move |progress| async move {
            archives
                .restore(&caller, id, trigger, &progress)
                .await
                .map(drop)
        })
    }

    pub async fn touch(&self, caller: &Principal, id: Uuid) -> Result<Job> {
        let client = self.pool.get().await?;
        db::jobs::touch(&client, Some(&caller.organization), id)
            .await?
            .or_not_found("job", id)
    }

    /// Deletes the job and its hot rows, and records its blobs as garbage, in one
    /// transaction with the audit entry; then deletes the blobs from the job's own store.
    /// A blob that cannot be deleted now stays recorded and the sweeper retries it, so a
    /// deleted job never leaves a blob that nothing points at.
    pub async fn delete(
        &self,
        caller: &Principal,
        id: Uuid,
        reason: &str,
        request_id: &RequestId,
    ) -> Result<Deleted> {
        caller.require(Role::OrgAdmin)?;
        let org = caller.organization.as_str();
        let mut client = self.pool.get().await?;
        let call = IDEMPOTENCY.call(org, "DeleteJob", request_id);
        let record = call
            .run(
                &mut client,
                &(id, reason),
                async |tx| -> Result<DeleteRecord> {
                    let job = db::jobs::JOBS
                        .find(tx, Some(org), id, RowLock::ForUpdate)
                        .await?;
                    let record = self.record_delete(tx, &job).await?;
                    db::jobs::delete_job(tx, id).await?;
                    let actor = Actor::caller(caller);
                    let audit = Audit {
                        actor: &actor,
                        action: "delete",
                        reason: Some(reason),
                    };
                    let detail = json!({ "archived": record.archive_garbage.is_some(),
                    "store_version": job.archive.as_ref().and_then(|a| a.store_version) });
                    audit
                        .record(tx, Some((id, &job.tenant_id)), true, detail)
                        .await?;
                    Ok(record)
                },
            )
            .await?
            .response();
        drop(client);
        if let Err(error) = self.sweeper.sweep(Some(&record.garbage)).await {
            tracing::warn!(job = %id, %error, "a deleted job's blobs wait for the next sweep");
        }
        let client = self.pool.get().await?;
        let pending = db::garbage::pending(&client, &record.garbage).await?;
        Ok(Deleted {
            job_id: id,
            blob_deleted: record.archive_garbage.is_some() && pending == 0,
            blob_delete_pending: pending > 0,
        })
    }

    /// Records as garbage the job's archive blob, in its own store version, and any blob a
    /// failed archive of it may have left in the newest.
    async fn record_delete(
        &self,
        tx: &impl stowage_shared::db::GenericClient,
        job: &Job,
    ) -> Result<DeleteRecord> {
        let owner = (job.id, job.tenant_id.as_str());
        let mut record = DeleteRecord {
            job_id: job.id,
            archive_garbage: None,
            garbage: Vec::new(),
        };
        let archived_in = match job.archive.as_ref().map(|a| a.store_version) {
            None => None,
            Some(Some(version)) => Some(version),
            // Archived by the earlier system: in the first version.
            Some(None) => db::stores::oldest(tx).await?.map(|s| s.version),
        };
        if let Some(info) = &job.archive
            && let Some(version) = archived_in
        {
            let id =
                db::garbage::record(tx, version, &info.blob_key, owner, Cause::JobDeleted).await?;
            record.archive_garbage = Some(id);
            record.garbage.push(id);
        }
        if let Some(newest) = db::stores::get(tx, None).await? {
            for format in [BlobFormat::JsonZstd, BlobFormat::JsonGzip] {
                let key = format.blob_key(&job.tenant_id, job.id);
                let archived_here = job
                    .archive
                    .as_ref()
                    .is_some_and(|a| a.blob_key == key && a.store_version == Some(newest.version));
                if BlobKey::new(key.clone()).is_ok() && !archived_here {
                    let id =
                        db::garbage::record(tx, newest.version, &key, owner, Cause::JobDeleted)
                            .await?;
                    record.garbage.push(id);
                }
            }
        }
        Ok(record)
    }

    /// The tenant of any job, for evidence.
    pub(super) async fn tenant_of(&self, id: Uuid) -> Option<String> {
        let client = self.pool.get().await.ok()?;
        db::jobs::JOBS
            .get(&client, None, id, RowLock::No)
            .await
            .ok()
            .flatten()
            .map(|job| job.tenant_id)
    }
}
