//! Archiving a job, in one transaction: delete its rows with binary
//! `COPY (DELETE … RETURNING …) TO STDOUT`, encode what the deletes return as the JSON
//! payload, compress, and write it through the verified encrypted layer; then re-check that
//! the job is still eligible and untouched, set the archive marker and commit. The rows
//! archived are by construction the rows deleted, and PostgreSQL deletes them while
//! archive-svc encodes, compresses and uploads, rather than after the upload. A failure
//! anywhere drops the transaction, so the rows stay hot; a stray blob from a failed attempt
//! is overwritten by the next one.

use std::io::Write;

use bytes::Bytes;
use chrono::Utc;
use futures::{StreamExt, pin_mut};
use serde_json::json;
use stowage_shared::{
    api::{Claim, RequestId},
    blob::{BlobKey, EncryptedStore, ObjectError, Receipt},
};
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyOutStream;
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use super::{
    IDEMPOTENCY,
    audit::Audit,
    job_lock,
    jobs::{ArchiveInfo, BlobFormat, Job, tenant_id_problem},
    pipe::{CHUNK, ChannelWriter},
    policy::RetentionPolicy,
    rows::{Canonical, FileRecord, Row, RowsDigest, ScanItem},
    stores::ArchiveStores,
};
use crate::{
    db,
    error::{Error, Result},
};

/// Key of the payload's order-independent rows digest (hex of [`RowsDigest::to_bytes`]),
/// after the two row arrays.
pub const ROWS_DIGEST_KEY: &str = "rowsDigest";

/// zstd level of new archives. Archiving is CPU-bound on both sides of the COPY, so the
/// compressor must stay cheap: on the seeded million-row payload level 1 takes half the
/// time of level 3 and, because these rows repeat their neighbours rather than distant
/// rows, also stores less (56.2 against 59.4 bytes a row). The lazy searches that store
/// 53.5 take three times as long, and the archive twice its baseline (BENCHMARKS.md).
const ZSTD_LEVEL: i32 = 1;
/// zstd hash table size (log2 entries) of new archives: a small table keeps only recent
/// positions, which suits rows that mostly repeat the previous few rows, and is faster.
const ZSTD_HASH_LOG: u32 = 12;
const GZIP_LEVEL: u32 = 6;

/// Whether the retention window must have passed (the schedule) or only the terminal
/// status matters (an admin's "archive now").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Scheduled,
    Forced,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Zstd,
    Gzip,
}

/// How, by whom and why a job is archived.
#[derive(Clone, Copy, Debug)]
pub struct ArchiveRequest<'a> {
    pub mode: Mode,
    pub compression: Compression,
    pub audit: Audit<'a>,
    /// The caller's idempotency key; none for the schedule.
    pub request_id: &'a RequestId,
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
        let Some(idle) = self.policy.idle(job.status) else {
            return Err(Error::FailedPrecondition(format!(
                "job {} is {}: only CANCELLED, FAILED, SCAN_COMPLETE and COMPLETED jobs are \
                 archived; cancel it first",
                job.id,
                job.status.as_str()
            )));
        };
        if mode == Mode::Scheduled {
            let since = job
                .terminal_at
                .map_or(job.last_activity_at, |t| t.max(job.last_activity_at));
            let idle = chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::MAX);
            if Utc::now() < since + idle {
                return Err(Error::FailedPrecondition(format!(
                    "job {} is within its retention window until {}",
                    job.id,
                    since + idle
                )));
            }
        }
        Ok(())
    }

    /// Archives one job. `tenant` scopes the lookup (`None` for the scheduler and admins).
    /// Returns the job as archived; a repeated request id returns the first result.
    #[tracing::instrument(skip_all, fields(job = %job_id, mode = ?request.mode))]
    pub async fn archive(
        &self,
        tenant: Option<&str>,
        job_id: Uuid,
        request: &ArchiveRequest<'_>,
    ) -> Result<Job> {
        let started = std::time::Instant::now();
        let mut client = self.pool.get().await?;
        // One archive of a job at a time: they would write the same blob key.
        if !job_lock::try_lock(&client, job_id).await? {
            return Err(Error::FailedPrecondition(format!(
                "job {job_id} is already being archived"
            )));
        }
        let result = self
            .archive_locked(&mut client, tenant, job_id, request, started)
            .await;
        job_lock::unlock(client, job_id).await;
        result
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
        let tx = client.transaction().await?;
        let scope = request.audit.actor.scope();
        if let Claim::Replay(job) = IDEMPOTENCY
            .begin(
                &tx,
                scope,
                "ArchiveJob",
                request.request_id,
                &request.fingerprint(job_id),
            )
            .await?
        {
            return Ok(job);
        }
        let job = db::jobs::get(&tx, tenant, job_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {job_id}")))?;
        self.check_eligible(&job, request.mode)?;
        let format = match request.compression {
            Compression::Zstd => BlobFormat::JsonZstd,
            Compression::Gzip => BlobFormat::JsonGzip,
        };
        let key = archive_key(format, &job)?;
        // The newest store version as this transaction sees it; the job records it.
        let store = self.stores.current(&tx).await?;
        let written = write_payload(&tx, job_id, &key, request.compression, &store.objects).await?;
        tracing::debug!(
            seconds = started.elapsed().as_secs_f64(),
            "rows written and verified"
        );
        let (items, records) = (written.items, written.records);
        let info = ArchiveInfo {
            archived_at: stowage_shared::db::now(),
            blob_key: key.to_string(),
            format,
            stored_bytes: Some(written.receipt.stored_len as i64),
            plaintext_bytes: Some(written.json_bytes as i64),
            plaintext_sha256: Some(written.receipt.sha256.clone()),
            kek_id: Some(written.receipt.kek_id.clone()),
            scan_items: Some(items),
            file_records: Some(records),
            rows_digest: Some(written.digest.to_bytes()),
            store_version: Some(store.version),
        };

        // Commit only if nothing changed since the job was read.
        let current = db::jobs::get_for_update(&tx, None, job_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {job_id} (deleted while archiving)")))?;
        let untouched = current.status == job.status
            && current.last_activity_at == job.last_activity_at
            && current.terminal_at == job.terminal_at;
        // Rows written after the deletes began would stay behind an archived job.
        if !untouched || db::jobs::has_rows(&tx, job_id).await? {
            return Err(Error::FailedPrecondition(format!(
                "job {job_id} was touched while it was being archived; it stays hot"
            )));
        }
        self.check_eligible(&current, request.mode)?;
        db::jobs::mark_archived(&tx, job_id, &info).await?;
        let detail = json!({ "blob": info.blob_key, "format": info.format.as_str(),
                             "store_version": store.version, "rows": items + records });
        request
            .audit
            .record(&tx, Some((job_id, &job.tenant_id)), true, detail)
            .await?;
        let archived = Job {
            archive: Some(info),
            ..current
        };
        IDEMPOTENCY
            .finish(&tx, scope, "ArchiveJob", request.request_id, &archived)
            .await?;
        tx.commit().await?;
        tracing::info!(
            rows = items + records,
            json_bytes = written.json_bytes,
            stored_bytes = written.receipt.stored_len,
            seconds = started.elapsed().as_secs_f64(),
            "job archived"
        );
        metrics::counter!("archive_jobs_archived_total").increment(1);
        metrics::counter!("archive_rows_archived_total").increment((items + records) as u64);
        metrics::histogram!("archive_job_seconds").record(started.elapsed().as_secs_f64());
        Ok(archived)
    }
}

/// What [`write_payload`] wrote.
struct Written {
    items: i64,
    records: i64,
    digest: RowsDigest,
    json_bytes: usize,
    receipt: Receipt,
}

/// Takes the job's rows (deleting them in `tx`) and writes them as one verified blob.
async fn write_payload(
    tx: &deadpool_postgres::Transaction<'_>,
    job_id: Uuid,
    key: &BlobKey,
    compression: Compression,
    objects: &EncryptedStore,
) -> Result<Written> {
    // rows → JSON (here) → compressor thread → verified encrypted upload, concurrently.
    let (json_tx, json_rx) = mpsc::channel::<Vec<u8>>(4);
    let (packed_tx, packed_rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    let compressor = tokio::task::spawn_blocking(move || compress(json_rx, packed_tx, compression));
    let produce = async {
        let mut out = JsonOut::new(json_tx);
        out.push(b"{");
        let mut digest = RowsDigest::default();
        let items = take_rows::<ScanItem>(tx, job_id, &mut out, &mut digest).await?;
        out.push(b",");
        let records = take_rows::<FileRecord>(tx, job_id, &mut out, &mut digest).await?;
        // The blob carries its own rows digest, so it proves itself without the job row.
        out.push(
            format!(
                ",\"{ROWS_DIGEST_KEY}\":\"{}\"}}",
                hex::encode(digest.to_bytes())
            )
            .as_bytes(),
        );
        out.finish().await?;
        Ok::<_, Error>((items, records, digest, out.bytes))
    };
    let upload = objects.put(key, ReceiverStream::new(packed_rx));
    let (produced, uploaded) = tokio::join!(produce, upload);
    let compressed = compressor
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    // Name the cause, not its echo: a failed producer makes the upload fail with a
    // source error; a failed store makes the producer see a closed channel.
    let (produced, receipt) = match (produced, uploaded) {
        (Ok(produced), Ok(receipt)) => (produced, receipt),
        (Err(error), Ok(_) | Err(ObjectError::Source(_))) => return Err(error),
        (_, Err(error)) => return Err(write_failed(error)),
    };
    compressed.map_err(|e| Error::Internal(format!("compression failed: {e}")))?;
    let (items, records, digest, json_bytes) = produced;
    Ok(Written {
        items,
        records,
        digest,
        json_bytes,
        receipt,
    })
}

/// JSON text in `CHUNK`-sized pieces on its way to the compressor.
struct JsonOut {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
    bytes: usize,
}

impl JsonOut {
    fn new(tx: mpsc::Sender<Vec<u8>>) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(CHUNK + 4096),
            bytes: 0,
        }
    }

    fn push(&mut self, text: &[u8]) {
        self.buf.extend_from_slice(text);
    }

    /// Sends what is left, then the empty chunk that marks the end: without it the
    /// compressor fails the upload rather than store a truncated payload.
    async fn finish(&mut self) -> Result<()> {
        self.flush().await?;
        self.tx
            .send(Vec::new())
            .await
            .map_err(|_| Error::Internal("the compressor stopped".into()))
    }

    async fn maybe_flush(&mut self) -> Result<()> {
        if self.buf.len() >= CHUNK {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.bytes += self.buf.len();
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK + 4096));
        self.tx
            .send(chunk)
            .await
            .map_err(|_| Error::Internal("the compressor stopped".into()))
    }
}

/// Deletes every row of `R` of the job and writes them as `"key":[row,row,…]`; returns the
/// row count. The deletes take effect only if the caller's transaction commits.
async fn take_rows<R: Row>(
    client: &deadpool_postgres::Transaction<'_>,
    job_id: Uuid,
    out: &mut JsonOut,
    digest: &mut RowsDigest,
) -> Result<i64> {
    let copy = format!(
        "copy (delete from {} where job_id = '{job_id}' returning {}) to stdout (format binary)",
        R::TABLE,
        R::COLUMNS
    );
    let stream = client.copy_out(&copy).await?;
    let rows = BinaryCopyOutStream::new(stream, R::TYPES);
    pin_mut!(rows);
    out.push(format!("\"{}\":[", R::JSON_KEY).as_bytes());
    let mut count = 0i64;
    let mut scratch = Canonical::default();
    while let Some(row) = rows.next().await {
        let row = R::from_copy(&row?)?;
        digest.add(&row, &mut scratch);
        if count > 0 {
            out.buf.push(b',');
        }
        serde_json::to_writer(&mut out.buf, &row)
            .map_err(|e| Error::Internal(format!("encoding a row: {e}")))?;
        count += 1;
        out.maybe_flush().await?;
    }
    out.push(b"]");
    Ok(count)
}

/// Writes JSON chunks into `encoder` until the empty end marker; a channel that closes
/// before it (the producer failed) is an error, so a truncated payload is never stored.
fn feed(json: &mut mpsc::Receiver<Vec<u8>>, encoder: &mut impl Write) -> std::io::Result<()> {
    while let Some(chunk) = json.blocking_recv() {
        if chunk.is_empty() {
            return Ok(());
        }
        encoder.write_all(&chunk)?;
    }
    Err(std::io::Error::other("the row stream ended early"))
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

/// The compressor thread: JSON chunks in, compressed chunks out.
fn compress(
    mut json: mpsc::Receiver<Vec<u8>>,
    packed: mpsc::Sender<std::io::Result<Bytes>>,
    compression: Compression,
) -> std::io::Result<()> {
    let sink = ChannelWriter::new(packed.clone());
    let result = match compression {
        Compression::Zstd => {
            let mut encoder = zstd::stream::write::Encoder::new(sink, ZSTD_LEVEL)?;
            encoder.set_parameter(zstd::zstd_safe::CParameter::HashLog(ZSTD_HASH_LOG))?;
            feed(&mut json, &mut encoder)?;
            encoder.finish()?.flush()
        }
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(sink, flate2::Compression::new(GZIP_LEVEL));
            feed(&mut json, &mut encoder)?;
            encoder.finish()?.flush()
        }
    };
    if let Err(error) = &result {
        // Make the upload fail rather than store a truncated stream.
        let _ = packed.blocking_send(Err(std::io::Error::new(error.kind(), error.to_string())));
    }
    result
}
