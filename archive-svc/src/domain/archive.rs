//! Archiving a job, in one transaction: delete its rows with binary
//! `COPY (DELETE … RETURNING …) TO STDOUT`, encode what the deletes return as the JSON
//! payload, compress, and write it through the verified encrypted layer; then re-check that
//! the job is still eligible and untouched, set the archive marker and commit. The rows
//! archived are by construction the rows deleted, and PostgreSQL deletes them while
//! archive-svc encodes, compresses and uploads, rather than after the upload. A failure
//! anywhere drops the transaction, so the rows stay hot; a stray blob from a failed attempt
//! is overwritten by the next one.

use chrono::Utc;
use serde_json::json;
use stowage_shared::db::RowLock;
use stowage_shared::{
    api::RequestId,
    blob::{BlobKey, EncryptedStore, ObjectError, Receipt},
};
use uuid::Uuid;

use super::{
    IDEMPOTENCY,
    audit::Audit,
    job_lock,
    jobs::{ArchiveInfo, Job, tenant_id_problem},
    payload::{
        BlobFormat, Compression,
        writer::{self, Encoded},
    },
    policy::RetentionPolicy,
    rows::{FileRecord, ScanItem},
    stores::{Access, ArchiveStores, OpenStore},
};
use crate::{
    db,
    error::{Error, Result},
};

/// Whether the retention window must have passed (the schedule) or only the terminal
/// status matters (an admin's "archive now").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Scheduled,
    Forced,
}

/// How, by whom and why a job is archived.
#[derive(Clone, Copy, Debug)]
pub struct ArchiveRequest<'a> {
    pub mode: Mode,
    pub compression: Compression,
    pub audit: Audit<'a>,
    /// The caller's idempotency key; none for the schedule.
    pub request_id: &'a RequestId,
    /// The queue worker archiving the job, for the audit entry; none for a caller.
    pub worker: Option<&'a str>,
}

impl ArchiveRequest<'_> {
    /// What a repeat of the request must match.
    fn fingerprint(&self, job: Uuid) -> serde_json::Value {
        json!({ "job": job, "compression": format!("{:?}", self.compression),
                "reason": self.audit.reason })
    }
}

/// The blob key of `job`'s archive. A tenant id that cannot name one (empty, a path step,
/// a slash) is a precondition the job fails, never an internal error.
pub fn archive_key(format: BlobFormat, job: &Job) -> Result<BlobKey> {
    if let Some(problem) = tenant_id_problem(&job.tenant_id) {
        return Err(Error::FailedPrecondition(format!(
            "job {} cannot be archived: its tenant id {:?} {problem}",
            job.id, job.tenant_id
        )));
    }
    BlobKey::new(format.blob_key(&job.tenant_id, job.id))
        .map_err(|e| Error::FailedPrecondition(format!("job {}: {e}", job.id)))
}

#[derive(Clone, Debug)]
pub struct Archiver {
    pool: deadpool_postgres::Pool,
    stores: ArchiveStores,
    policy: RetentionPolicy,
}

impl Archiver {
    pub fn new(
        pool: deadpool_postgres::Pool,
        stores: ArchiveStores,
        policy: RetentionPolicy,
    ) -> Self {
        Self {
            pool,
            stores,
            policy,
        }
    }

    pub fn policy(&self) -> &RetentionPolicy {
        &self.policy
    }

    /// Checks that `job` may be archived now in `mode`.
    pub fn check_eligible(&self, job: &Job, mode: Mode) -> Result<()> {
        if job.archive.is_some() {
            return Err(Error::FailedPrecondition(format!(
                "job {} is already archived",
                job.id
            )));
        }
        if self.policy.idle(job.status).is_none() {
            return Err(Error::FailedPrecondition(format!(
                "job {} is {}: only CANCELLED, FAILED, SCAN_COMPLETE and COMPLETED jobs are \
                 archived; cancel it first",
                job.id,
                job.status.as_str()
            )));
        }
        if mode == Mode::Scheduled {
            match self.policy.due_at(job) {
                Some(due) if due <= Utc::now() => {}
                due => {
                    let until = due.map_or_else(|| "ever".to_owned(), |due| due.to_string());
                    return Err(Error::FailedPrecondition(format!(
                        "job {} is within its retention window until {until}",
                        job.id
                    )));
                }
            }
        }
        Ok(())
    }

    /// Archives one job. `tenant` scopes the lookup (`None` for the scheduler and admins).
    /// Returns the job as archived; a repeated request id returns the first result. An
    /// archive of the job already in flight is FAILED_PRECONDITION.
    pub async fn archive(
        &self,
        tenant: Option<&str>,
        job_id: Uuid,
        request: &ArchiveRequest<'_>,
    ) -> Result<Job> {
        self.archive_if_free(tenant, job_id, request)
            .await?
            .ok_or_else(|| {
                Error::FailedPrecondition(format!("job {job_id} is already being archived"))
            })
    }

    /// [`Archiver::archive`], or `None` if an archive, move or sweep of the job holds its
    /// lock now (one blob-writing operation per job at a time).
    #[tracing::instrument(skip_all, fields(job = %job_id, mode = ?request.mode))]
    pub async fn archive_if_free(
        &self,
        tenant: Option<&str>,
        job_id: Uuid,
        request: &ArchiveRequest<'_>,
    ) -> Result<Option<Job>> {
        let started = std::time::Instant::now();
        let Some(mut lock) = job_lock::try_lock(self.pool.get().await?, job_id).await? else {
            return Ok(None);
        };
        let result = self
            .archive_locked(lock.client(), tenant, job_id, request, started)
            .await;
        lock.release().await;
        result.map(Some)
    }

    async fn archive_locked(
        &self,
        client: &mut deadpool_postgres::Object,
        tenant: Option<&str>,
        job_id: Uuid,
        request: &ArchiveRequest<'_>,
        started: std::time::Instant,
    ) -> Result<Job> {
        // One transaction deletes the rows as it reads them and commits only once the blob
        // holding them is written and verified. It holds their row locks until then; the
        // job row is locked only at the end, so a TouchJob meanwhile is seen, not blocked.
        let scope = request.audit.actor.scope();
        let call = IDEMPOTENCY.call(scope, "ArchiveJob", request.request_id);
        // What was written, reported once the archive commits (a repeat writes nothing).
        let mut committed = None;
        let archived = call
            .run(
                client,
                &request.fingerprint(job_id),
                async |tx| -> Result<Job> {
                    let job = db::jobs::JOBS.find(tx, tenant, job_id, RowLock::No).await?;
                    self.check_eligible(&job, request.mode)?;
                    let format = BlobFormat::written_as(request.compression);
                    let key = archive_key(format, &job)?;
                    // The newest store version as this transaction sees it; the job records it.
                    let store = self.stores.current(tx).await?;
                    let objects = self.tenant_objects(&store, &job.tenant_id).await?;
                    let written =
                        write_payload(tx, job_id, &key, request.compression, &objects).await?;
                    tracing::debug!(
                        seconds = started.elapsed().as_secs_f64(),
                        "rows written and verified"
                    );
                    let info = written.info(key, format, store.version);
                    let current = self.recheck(tx, &job, request.mode).await?;
                    self.hold_key(tx, &info).await?;
                    db::jobs::mark_archived(tx, job_id, &info).await?;
                    let detail = written.audit_detail(&info, request.worker);
                    request
                        .audit
                        .record(tx, Some((job_id, &job.tenant_id)), true, detail)
                        .await?;
                    committed = Some(written);
                    Ok(Job {
                        archive: Some(info),
                        ..current
                    })
                },
            )
            .await?;
        if let Some(written) = committed {
            written.report(started);
        }
        Ok(archived.response())
    }

    /// Commits only if the key that wrapped the blob is still live: a destruction of the
    /// tenant's keys that came first leaves the rows hot rather than archived unreadable.
    async fn hold_key(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        info: &ArchiveInfo,
    ) -> Result<()> {
        let kek = info.kek_id.as_deref().unwrap_or_default();
        if self.stores.tenant_keys().hold_live(tx, kek).await? {
            Ok(())
        } else {
            Err(Error::FailedPrecondition(
                "the tenant's keys were destroyed while the job was archived; its rows stay hot"
                    .into(),
            ))
        }
    }

    /// `store` under the tenant's own key, created (and committed at once, on a connection
    /// of its own) on the tenant's first archive.
    async fn tenant_objects(&self, store: &OpenStore, tenant: &str) -> Result<EncryptedStore> {
        let client = self.pool.get().await?;
        (self.stores)
            .tenant_objects(&client, store, tenant, Access::Write)
            .await
    }

    /// Commits only if nothing changed since the job was read: locks the job row and
    /// checks it is untouched, still eligible, and has no row left.
    async fn recheck(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        job: &Job,
        mode: Mode,
    ) -> Result<Job> {
        let job_id = job.id;
        let current = db::jobs::JOBS
            .get(tx, None, job_id, RowLock::ForUpdate)
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {job_id} (deleted while archiving)")))?;
        let untouched = current.status == job.status
            && current.last_activity_at == job.last_activity_at
            && current.terminal_at == job.terminal_at;
        // Rows written after the deletes began would stay behind an archived job.
        if !untouched || db::jobs::has_rows(tx, job_id).await? {
            return Err(Error::FailedPrecondition(format!(
                "job {job_id} was touched while it was being archived; it stays hot"
            )));
        }
        self.check_eligible(&current, mode)?;
        Ok(current)
    }
}

/// What [`write_payload`] wrote.
struct Written {
    encoded: Encoded,
    receipt: Receipt,
}

impl Written {
    /// The log line and metrics of an archive that committed.
    fn report(&self, started: std::time::Instant) {
        let seconds = started.elapsed().as_secs_f64();
        let rows = self.encoded.scan_items + self.encoded.file_records;
        tracing::info!(
            rows,
            json_bytes = self.encoded.json_bytes,
            stored_bytes = self.receipt.stored_len,
            seconds,
            "job archived"
        );
        metrics::counter!("archive_jobs_archived_total").increment(1);
        metrics::counter!("archive_rows_archived_total").increment(rows as u64);
        metrics::histogram!("archive_job_seconds").record(seconds);
    }

    /// What the archive's audit entry says of it.
    fn audit_detail(&self, info: &ArchiveInfo, worker: Option<&str>) -> serde_json::Value {
        let rows = self.encoded.scan_items + self.encoded.file_records;
        json!({ "blob": info.blob_key, "format": info.format.as_str(),
                "store_version": info.store_version, "rows": rows, "worker": worker })
    }

    /// The archive marker for what was written.
    fn info(&self, key: BlobKey, format: BlobFormat, store_version: i64) -> ArchiveInfo {
        ArchiveInfo {
            archived_at: stowage_shared::db::now(),
            blob_key: key.to_string(),
            format,
            stored_bytes: Some(self.receipt.stored_len as i64),
            plaintext_bytes: Some(self.encoded.json_bytes as i64),
            plaintext_sha256: Some(self.receipt.sha256.clone()),
            kek_id: Some(self.receipt.kek_id.clone()),
            scan_items: Some(self.encoded.scan_items),
            file_records: Some(self.encoded.file_records),
            rows_digest: Some(self.encoded.digest.to_bytes()),
            store_version: Some(store_version),
        }
    }
}
/// Takes the job's rows (deleting them in `tx`) and writes them as one verified blob:
/// PostgreSQL deletes, archive-svc encodes and compresses, the store takes the upload, all
/// at once.
async fn write_payload(
    tx: &deadpool_postgres::Transaction<'_>,
    job_id: Uuid,
    key: &BlobKey,
    compression: Compression,
    objects: &EncryptedStore,
) -> Result<Written> {
    let (mut payload, packed) = writer::start(compression);
    let produce = async {
        payload
            .rows(db::rows::take::<ScanItem>(tx, job_id).await?)
            .await?;
        payload
            .rows(db::rows::take::<FileRecord>(tx, job_id).await?)
            .await?;
        payload.finish().await
    };
    let (produced, uploaded) = tokio::join!(produce, objects.put(key, packed));
    // Name the cause, not its echo: a failed producer makes the upload fail with a
    // source error; a failed store makes the producer see a closed channel.
    match (produced, uploaded) {
        (Ok(encoded), Ok(receipt)) => Ok(Written { encoded, receipt }),
        (Err(error), Ok(_) | Err(ObjectError::Source(_))) => Err(error),
        (_, Err(error)) => Err(write_failed(error)),
    }
}

/// A write that did not go through or did not verify: the rows are still hot, so this is
/// not data loss.
fn write_failed(error: ObjectError) -> Error {
    match error {
        ObjectError::Blob(blob) => blob.into(),
        other => Error::Internal(format!(
            "the archive blob did not verify; the rows stay hot: {other}"
        )),
    }
}
