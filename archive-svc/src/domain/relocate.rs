//! Moving archives to the newest store version (`MigrateArchives`). Per job: a verified
//! copy (read from the job's own version, its digest checked against the job's record;
//! re-encrypted under the primary key and written to the newest version, read back), then
//! the job re-pointed in a transaction that records the old blob as garbage, and only then
//! the old blob deleted. A dry run counts jobs and bytes per source version and touches no
//! store. The copy is recorded as garbage before it is written, so whatever a crash leaves
//! is swept, and the job stays readable from the version its row names at every point.

use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use stowage_shared::blob::{BlobKey, EncryptedStore, encrypted::Expected};
use stowage_shared::db::RowLock;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    audit::Audit,
    garbage::Sweeper,
    job_lock,
    jobs::{ArchiveInfo, Job},
    payload::BlobFormat,
    stores::{Access, ArchiveStores, OpenStore},
};
use crate::{
    db::{self, garbage::Cause},
    error::{Error, Result},
};

/// Jobs read per page of candidates.
const PAGE: i64 = 100;
/// Jobs copied at once.
const CONCURRENCY: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoveMode {
    DryRun,
    Live,
}

/// Jobs and stored bytes in one source version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceCount {
    pub store_version: Option<i64>,
    pub jobs: i64,
    pub stored_bytes: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MoveResult {
    Moved { stored_bytes: i64 },
    Skipped(String),
    Failed(String),
}

/// What became of one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moved {
    pub job_id: Uuid,
    pub from_version: Option<i64>,
    pub to_version: i64,
    pub result: MoveResult,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub moved: i64,
    pub skipped: i64,
    pub failed: i64,
    pub stored_bytes: i64,
}

/// What a move reports as it goes: the plan first, then each job, then the totals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MoveEvent {
    Plan {
        target_version: i64,
        sources: Vec<SourceCount>,
    },
    Job(Moved),
    Done(Totals),
}

#[derive(Clone, Debug)]
pub struct Relocator {
    pool: deadpool_postgres::Pool,
    stores: ArchiveStores,
    sweeper: Sweeper,
}

impl Relocator {
    pub fn new(pool: deadpool_postgres::Pool, stores: ArchiveStores, sweeper: Sweeper) -> Self {
        Self {
            pool,
            stores,
            sweeper,
        }
    }

    /// Moves (or, in a dry run, counts) up to `limit` archives not in the newest version.
    #[tracing::instrument(skip_all, fields(mode = ?mode))]
    pub async fn run(
        &self,
        audit: Audit<'_>,
        mode: MoveMode,
        limit: Option<u64>,
        events: &mpsc::Sender<MoveEvent>,
    ) -> Result<Totals> {
        let client = self.pool.get().await?;
        let target = self.stores.current(&client).await?;
        let sources: Vec<SourceCount> = db::jobs::archived_off(&client, target.version)
            .await?
            .into_iter()
            .map(|(store_version, jobs, stored_bytes)| SourceCount {
                store_version,
                jobs,
                stored_bytes,
            })
            .collect();
        let detail = json!({ "dry_run": mode == MoveMode::DryRun, "target_version": target.version,
                             "jobs": sources.iter().map(|s| s.jobs).sum::<i64>(), "limit": limit });
        audit.record(&client, None, true, detail).await?;
        drop(client);
        let _ = events
            .send(MoveEvent::Plan {
                target_version: target.version,
                sources,
            })
            .await;
        let mut totals = Totals::default();
        if mode == MoveMode::Live {
            self.move_all(&target, audit, limit, events, &mut totals)
                .await?;
        }
        let _ = events.send(MoveEvent::Done(totals)).await;
        Ok(totals)
    }

    async fn move_all(
        &self,
        target: &OpenStore,
        audit: Audit<'_>,
        limit: Option<u64>,
        events: &mpsc::Sender<MoveEvent>,
        totals: &mut Totals,
    ) -> Result<()> {
        let mut left = limit.unwrap_or(u64::MAX);
        let mut after = None;
        while left > 0 {
            let page = {
                let client = self.pool.get().await?;
                let size = PAGE.min(i64::try_from(left).unwrap_or(PAGE));
                db::jobs::archived_off_page(&client, target.version, after, size).await?
            };
            let Some(last) = page.last().copied() else {
                break;
            };
            after = Some(last);
            left = left.saturating_sub(page.len() as u64);
            let mut outcomes = futures::stream::iter(page)
                .map(|job| self.move_one(target, job, audit))
                .buffer_unordered(CONCURRENCY);
            while let Some(moved) = outcomes.next().await {
                match &moved.result {
                    MoveResult::Moved { stored_bytes } => {
                        totals.moved += 1;
                        totals.stored_bytes += stored_bytes;
                    }
                    MoveResult::Skipped(_) => totals.skipped += 1,
                    MoveResult::Failed(_) => totals.failed += 1,
                }
                let _ = events.send(MoveEvent::Job(moved)).await;
            }
        }
        Ok(())
    }

    /// One job, under its lock; the garbage it leaves is swept once the lock is released.
    async fn move_one(&self, target: &OpenStore, job_id: Uuid, audit: Audit<'_>) -> Moved {
        let mut moved = Moved {
            job_id,
            from_version: None,
            to_version: target.version,
            result: MoveResult::Skipped(String::new()),
        };
        let locked = async { job_lock::try_lock(self.pool.get().await?, job_id).await };
        let mut garbage = Vec::new();
        moved.result = match locked.await {
            Err(error) => MoveResult::Failed(error.to_string()),
            Ok(None) => MoveResult::Skipped("an archive or move of the job is in flight".into()),
            Ok(Some(mut lock)) => {
                let result = self
                    .move_locked(
                        lock.client(),
                        target,
                        job_id,
                        audit,
                        &mut moved,
                        &mut garbage,
                    )
                    .await;
                lock.release().await;
                result.unwrap_or_else(|error| MoveResult::Failed(error.to_string()))
            }
        };
        if !garbage.is_empty()
            && let Err(error) = self.sweeper.sweep(Some(&garbage)).await
        {
            tracing::warn!(job = %job_id, %error, "the blobs a move left wait for the next sweep");
        }
        if let MoveResult::Failed(error) = &moved.result {
            tracing::warn!(job = %job_id, %error, "archive not moved");
        }
        moved
    }

    async fn move_locked(
        &self,
        client: &mut deadpool_postgres::Object,
        target: &OpenStore,
        job_id: Uuid,
        audit: Audit<'_>,
        moved: &mut Moved,
        garbage: &mut Vec<i64>,
    ) -> Result<MoveResult> {
        let Some(job) = db::jobs::JOBS
            .get(&*client, None, job_id, RowLock::No)
            .await?
        else {
            return Ok(MoveResult::Skipped("the job was deleted".into()));
        };
        let Some(info) = job.archive.clone() else {
            return Ok(MoveResult::Skipped("the job was restored".into()));
        };
        let source = self.stores.open(&*client, info.store_version).await?;
        moved.from_version = Some(source.version);
        if source.version == target.version {
            return Ok(MoveResult::Skipped("already in the newest version".into()));
        }
        let copied = if source.location == target.location {
            // Another version of the same store (a new key): the blob is already there.
            ArchiveInfo {
                store_version: Some(target.version),
                ..info.clone()
            }
        } else {
            let intent = db::garbage::record(
                &*client,
                target.version,
                &info.blob_key,
                (job_id, &job.tenant_id),
                Cause::MoveAbandoned,
            )
            .await?;
            garbage.push(intent);
            // Read and written under the tenant's keys, as the archive was.
            let tenant = job.tenant_id.as_str();
            let from = (self.stores)
                .tenant_objects(&*client, &source, tenant, Access::Read)
                .await?;
            let to = (self.stores)
                .tenant_objects(&*client, target, tenant, Access::Write)
                .await?;
            copy(&from, (&to, target.version), &info).await?
        };
        let step = Repoint {
            job: &job,
            was: &info,
            copied: &copied,
            from: &source,
            to: target,
        };
        step.commit(client, audit, garbage).await
    }
}

/// The last step of a move: re-point the job at its copy, if it is unchanged since the
/// copy began, and record the old blob as garbage, in one transaction with the audit entry.
struct Repoint<'a> {
    job: &'a Job,
    was: &'a ArchiveInfo,
    copied: &'a ArchiveInfo,
    from: &'a OpenStore,
    to: &'a OpenStore,
}

impl Repoint<'_> {
    async fn commit(
        &self,
        client: &mut deadpool_postgres::Object,
        audit: Audit<'_>,
        garbage: &mut Vec<i64>,
    ) -> Result<MoveResult> {
        let (job_id, tenant) = (self.job.id, self.job.tenant_id.as_str());
        let tx = client.transaction().await?;
        let current = db::jobs::JOBS
            .get(&tx, None, job_id, RowLock::ForUpdate)
            .await?;
        let unchanged = current
            .as_ref()
            .and_then(|j| j.archive.as_ref())
            .is_some_and(|now| {
                now.archived_at == self.was.archived_at
                    && now.store_version == self.was.store_version
                    && now.blob_key == self.was.blob_key
            });
        if !unchanged {
            return Ok(MoveResult::Skipped(
                "the job changed while its archive was copied".into(),
            ));
        }
        db::jobs::repoint(&tx, job_id, self.copied).await?;
        // The copy is the job's blob now; the old one is garbage (unless it is the same
        // object, under another version of the same store).
        if let Some(&intent) = garbage.first() {
            db::garbage::remove(&tx, intent).await?;
            garbage.clear();
        }
        if self.from.location != self.to.location {
            let blob = &self.was.blob_key;
            let old =
                db::garbage::record(&tx, self.from.version, blob, (job_id, tenant), Cause::Moved)
                    .await?;
            garbage.push(old);
        }
        let detail = json!({ "from_version": self.from.version, "to_version": self.to.version,
                             "blob": self.was.blob_key, "stored_bytes": self.copied.stored_bytes });
        audit
            .record(&tx, Some((job_id, tenant)), true, detail)
            .await?;
        tx.commit().await?;
        tracing::info!(job = %job_id, from = self.from.version, to = self.to.version, "archive moved");
        metrics::counter!("archive_jobs_moved_total").increment(1);
        Ok(MoveResult::Moved {
            stored_bytes: self.copied.stored_bytes.unwrap_or_default(),
        })
    }
}

/// Copies a job's blob to `target` through the verified layer: the source's digest is
/// checked as it is read, the copy is read back, and both must name the same plaintext.
/// An unencrypted blob of the earlier system becomes an encrypted `json.gz`.
async fn copy(
    source: &EncryptedStore,
    (target, target_version): (&EncryptedStore, i64),
    info: &ArchiveInfo,
) -> Result<ArchiveInfo> {
    let key = BlobKey::new(info.blob_key.clone())?;
    let receipt = if info.format == BlobFormat::LegacyJsonGzip {
        let read = source.store().get(&key).await?;
        target.put(&key, read.stream).await?
    } else {
        let expected = info.plaintext_sha256.clone().map(|sha256| Expected {
            sha256,
            plaintext_len: None,
        });
        let plaintext = source.get(&key, expected).await?.map_err(|e| e.to_string());
        target.put(&key, plaintext).await?
    };
    if let Some(recorded) = &info.plaintext_sha256
        && *recorded != receipt.sha256
    {
        return Err(Error::DataLoss(format!(
            "the copy of {key} reads back as sha256 {}, the job recorded {recorded}",
            receipt.sha256
        )));
    }
    Ok(ArchiveInfo {
        format: match info.format {
            BlobFormat::LegacyJsonGzip => BlobFormat::JsonGzip,
            other => other,
        },
        stored_bytes: Some(receipt.stored_len as i64),
        plaintext_sha256: Some(receipt.sha256),
        kek_id: Some(receipt.kek_id),
        store_version: Some(target_version),
        ..info.clone()
    })
}
