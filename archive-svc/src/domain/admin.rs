//! The SUPER_ADMIN operations on [`Archives`]: archive one job now, archive what is due,
//! and manage the archive store's versions (add one, replace a version's credential, list
//! them, move older archives to the newest) and sweep the archive's blobs for integrity.

use chrono::Utc;
use futures::{Stream, stream::BoxStream};
use serde::{Deserialize, Serialize};
use serde_json::json;
use stowage_shared::{
    api::RequestId,
    auth::{Principal, Role},
    stream,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    IDEMPOTENCY,
    archive::{ArchiveRequest, Mode},
    audit::{Actor, Audit},
    jobs::Job,
    payload::Compression,
    relocate::{MoveEvent, MoveMode, Totals},
    requests::DestroyTenantKeys,
    service::Archives,
    stores::{StoreSetting, StoreVersion},
    verify::{Report, VerifyArchives},
};
use crate::{
    db,
    error::{OrNotFound, Result},
};

/// What destroying a tenant's keys did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shredded {
    pub keys_destroyed: u64,
    /// Archived jobs whose blobs those keys wrapped.
    pub archived_jobs: i64,
}

/// One job's result in a bulk archive.
#[derive(Debug)]
pub struct Outcome {
    pub job_id: Uuid,
    pub result: Result<Job>,
}

/// The store version an idempotent store change made.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct StoreChange {
    version: i64,
}

impl Archives {
    /// Archives one job now; it must be terminal. SUPER_ADMIN only. Audited under the
    /// job's tenant, with the caller's organization beside it.
    pub async fn archive_now(
        &self,
        caller: &Principal,
        id: Uuid,
        reason: &str,
        compression: Compression,
        request_id: &RequestId,
    ) -> Result<Job> {
        caller.require(Role::SuperAdmin)?;
        let actor = Actor::caller(caller);
        let request = ArchiveRequest {
            mode: Mode::Forced,
            compression,
            audit: Audit {
                actor: &actor,
                action: "archive",
                reason: Some(reason),
            },
            request_id,
            worker: None,
        };
        let result = self.archiver.archive(None, id, &request).await;
        if let Err(error) = &result {
            let tenant = self.tenant_of(id).await;
            let job = tenant.as_deref().map(|tenant| (id, tenant));
            request.audit.record_failure(&self.pool, job, error).await;
        }
        result
    }

    /// The schedule's logic: up to `limit` due jobs, oldest terminal first; each outcome
    /// goes to `outcomes` as it happens. A job's failure never stops the rest.
    pub async fn archive_due(
        &self,
        actor: &Actor,
        reason: &str,
        limit: u32,
        outcomes: &mpsc::Sender<Outcome>,
    ) -> Result<(u32, u32)> {
        let limit = if limit == 0 {
            self.jobs_per_tick
        } else {
            limit
        };
        let windows = self.archiver.policy().windows();
        let due = {
            let client = self.pool.get().await?;
            db::jobs::eligible(&client, &windows, Utc::now(), i64::from(limit)).await?
        };
        let request = ArchiveRequest {
            mode: Mode::Scheduled,
            compression: Compression::Zstd,
            audit: Audit {
                actor,
                action: "archive",
                reason: Some(reason),
            },
            request_id: &RequestId::none(),
            worker: None,
        };
        let (mut archived, mut failed) = (0, 0);
        for (job_id, tenant) in due {
            let result = self.archiver.archive(None, job_id, &request).await;
            match &result {
                Ok(_) => archived += 1,
                Err(error) => {
                    failed += 1;
                    tracing::warn!(job = %job_id, %error, "job not archived");
                    metrics::counter!("archive_jobs_failed_total").increment(1);
                    request
                        .audit
                        .record_failure(&self.pool, Some((job_id, &tenant)), error)
                        .await;
                }
            }
            let _ = outcomes.send(Outcome { job_id, result }).await;
        }
        Ok((archived, failed))
    }

    /// [`Archives::archive_due`] as a stream of each job's outcome.
    pub fn archive_due_outcomes(
        &self,
        actor: Actor,
        reason: String,
        limit: u32,
    ) -> BoxStream<'static, Result<Outcome>> {
        let archives = self.clone();
        stream::spawned(16, move |outcomes| async move {
            archives
                .archive_due(&actor, &reason, limit, &outcomes)
                .await
                .map(drop)
        })
    }

    /// [`Archives::migrate_archives`] as a stream of its plan, each job and the totals;
    /// the move goes on to its end if the caller goes away (each job commits or not).
    pub fn migrate_archives_events(
        &self,
        caller: Principal,
        mode: MoveMode,
        reason: String,
        limit: Option<u64>,
    ) -> BoxStream<'static, Result<MoveEvent>> {
        let archives = self.clone();
        stream::spawned(16, move |events| async move {
            archives
                .migrate_archives(&caller, mode, &reason, limit, &events)
                .await
                .map(drop)
        })
    }

    /// Adds a store version after a posture check (write, read back and delete a probe);
    /// new archives go to it, earlier ones stay where they are. A failed check changes
    /// nothing.
    pub async fn set_store(
        &self,
        caller: &Principal,
        setting: &StoreSetting,
        reason: &str,
        request_id: &RequestId,
    ) -> Result<StoreVersion> {
        caller.require(Role::SuperAdmin)?;
        let actor = Actor::caller(caller);
        let audit = Audit {
            actor: &actor,
            action: "set_archive_store",
            reason: Some(reason),
        };
        let fingerprint = json!({ "connection_string": setting.connection_string,
                                  "container": setting.container, "reason": reason });
        let mut client = self.pool.get().await?;
        let call = IDEMPOTENCY.call(actor.scope(), "SetArchiveStore", request_id);
        // A refused setting is audited as a failure once its transaction has rolled back.
        let mut refused = false;
        let changed = call
            .run(
                &mut client,
                &fingerprint,
                async |tx| -> Result<StoreChange> {
                    let parsed = self.stores.check(setting).await;
                    refused = parsed.is_err();
                    let parsed = parsed?;
                    let version = self
                        .stores
                        .add(tx, setting, &parsed, (None, &caller.subject), Some(reason))
                        .await?;
                    let detail = json!({ "version": version, "location": parsed.location,
                                     "credential_kind": parsed.credential_kind });
                    audit.record(tx, None, true, detail).await?;
                    Ok(StoreChange { version })
                },
            )
            .await;
        drop(client);
        let StoreChange { version } = match changed {
            Ok(changed) => changed.response(),
            Err(error) => {
                if refused {
                    audit.record_failure(&self.pool, None, &error).await;
                }
                return Err(error);
            }
        };
        self.store_version(version).await
    }

    /// Replaces the credential of one store version (its old key revoked, say) with one
    /// for the same store, after a posture check. Audited.
    pub async fn update_store_credential(
        &self,
        caller: &Principal,
        version: i64,
        setting: &StoreSetting,
        reason: &str,
    ) -> Result<StoreVersion> {
        caller.require(Role::SuperAdmin)?;
        let actor = Actor::caller(caller);
        let audit = Audit {
            actor: &actor,
            action: "update_archive_store_credential",
            reason: Some(reason),
        };
        let checked = self.stores.check(setting).await;
        let parsed = match checked {
            Ok(parsed) => parsed,
            Err(error) => {
                audit.record_failure(&self.pool, None, &error).await;
                return Err(error);
            }
        };
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let updated = self
            .stores
            .replace_credential(&tx, version, setting, &parsed, &caller.subject)
            .await?;
        let detail = json!({ "version": version, "credential_version": updated.credential_version,
                             "credential_kind": parsed.credential_kind });
        audit.record(&tx, None, true, detail).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Every store version, newest first, with the jobs in each.
    pub async fn list_stores(&self, caller: &Principal) -> Result<Vec<StoreVersion>> {
        caller.require(Role::SuperAdmin)?;
        let client = self.pool.get().await?;
        db::stores::list(&client).await
    }

    /// Moves (or counts, in a dry run) archives in older store versions to the newest.
    pub async fn migrate_archives(
        &self,
        caller: &Principal,
        mode: MoveMode,
        reason: &str,
        limit: Option<u64>,
        events: &mpsc::Sender<MoveEvent>,
    ) -> Result<Totals> {
        caller.require(Role::SuperAdmin)?;
        let actor = Actor::caller(caller);
        let audit = Audit {
            actor: &actor,
            action: "migrate_archives",
            reason: Some(reason),
        };
        self.relocator.run(audit, mode, limit, events).await
    }

    /// Crypto-shreds a tenant's archives: its keys destroyed, with the audit entry, in one
    /// transaction. What was destroyed.
    pub async fn destroy_tenant_keys(
        &self,
        caller: &Principal,
        command: &DestroyTenantKeys,
    ) -> Result<Shredded> {
        caller.require(Role::SuperAdmin)?;
        let tenant = command.tenant_id.as_str();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let keys = self.stores.tenant_keys();
        let archived_jobs = keys.wrapped(&tx, tenant, &db::jobs::ARCHIVED_BLOBS).await?;
        let keys_destroyed = keys.destroy(&tx, tenant).await?;
        let actor = Actor::caller(caller);
        let audit = Audit {
            actor: &actor,
            action: "destroy_tenant_keys",
            reason: Some(&command.reason),
        };
        let detail = json!({ "tenant_id": tenant, "keys_destroyed": keys_destroyed,
                             "archived_jobs_shredded": archived_jobs });
        audit.record(&tx, None, true, detail).await?;
        tx.commit().await?;
        tracing::warn!(
            tenant,
            keys_destroyed,
            archived_jobs,
            "tenant keys destroyed"
        );
        Ok(Shredded {
            keys_destroyed,
            archived_jobs,
        })
    }

    /// Sweeps the archive's blobs (or a sample), changing nothing but the evidence.
    pub fn verify_archives(
        &self,
        caller: &Principal,
        command: VerifyArchives,
    ) -> Result<impl Stream<Item = Result<Report>> + Send + 'static> {
        caller.require(Role::SuperAdmin)?;
        Ok(self.verifier.verify(Actor::caller(caller), command))
    }

    async fn store_version(&self, version: i64) -> Result<StoreVersion> {
        let client = self.pool.get().await?;
        db::stores::get(&client, Some(version))
            .await?
            .or_not_found("archive store version", version)
    }
}
