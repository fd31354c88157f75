//! Integrity sweeps of the archive (`VerifyArchives`): every archived job's blob (or a
//! sample, within a byte budget) is read from the store version the job names, decrypted
//! and checked against the job's recorded digest, and reported OK, MISSING, CORRUPT or
//! UNVERIFIABLE (a store that could not be read is never counted as OK). A blob of the
//! earlier system carries no digest: it is read through its gzip decoder, whose checksum
//! covers every byte. Nothing changes but the evidence: the sweep's audit entry, naming the
//! first missing and corrupt jobs, so a lost blob is found before a user's restore does.
//! Sweeps also run on an optional schedule (`[archive] verify_schedule`).

use std::collections::HashMap;

use async_stream::try_stream;
use bytes::Bytes;
use croner::Cron;
use futures::{Stream, StreamExt, TryStreamExt};
use serde_json::json;
use stowage_shared::{
    api::Page,
    blob::{BlobKey, EncryptedStore, ObjectError, encrypted::Expected},
    schedule::{exclusively, on_schedule},
    shutdown::Drain,
    sweep::{Named, Sampling, Summary, Verdict},
};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    audit::{Actor, Audit},
    jobs::{ArchiveInfo, Job},
    payload::BlobFormat,
    pipe::ChannelReader,
    stores::{Access, ArchiveStores},
};
use crate::{
    db,
    error::{Error, Result},
    metrics::VERIFIED,
};

/// Jobs read per page of the sweep.
const PAGE: i64 = 200;

/// What to sweep.
#[derive(Clone, Debug)]
pub struct VerifyArchives {
    /// Only archives in this store version.
    pub store_version: Option<i64>,
    pub sampling: Sampling,
    pub reason: String,
}

/// One checked archive.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    pub job_id: Uuid,
    pub tenant_id: String,
    pub store_version: Option<i64>,
    pub blob_key: String,
    pub verdict: Verdict,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Report {
    Archive(Checked),
    /// The last report.
    Summary(Summary),
}

#[derive(Clone, Debug)]
pub struct Verifier {
    pool: deadpool_postgres::Pool,
    stores: ArchiveStores,
}

impl Verifier {
    pub fn new(pool: deadpool_postgres::Pool, stores: ArchiveStores) -> Self {
        Self { pool, stores }
    }

    /// Sweeps the archive; the reports as each blob is checked, then the totals.
    pub fn verify(
        &self,
        actor: Actor,
        command: VerifyArchives,
    ) -> impl Stream<Item = Result<Report>> + Send + 'static {
        let this = self.clone();
        try_stream! {
            let mut summary = Summary::default();
            let mut named = Named::default();
            let mut opened = Opened::default();
            let mut after = None;
            'pages: loop {
                let page = this.page(command.store_version, after).await?;
                after = page.next;
                for (job, info) in page.items.iter().filter(|j| command.sampling.picks(j.id)).filter_map(archived) {
                    let stored_bytes = info.stored_bytes.unwrap_or_default();
                    if !command.sampling.affords(&summary, stored_bytes) {
                        summary.budget_exhausted = true;
                        break 'pages;
                    }
                    let checked = this.check(job, info, &mut opened).await;
                    summary.add(checked.verdict, stored_bytes);
                    metrics::counter!(VERIFIED, "result" => checked.verdict.as_str()).increment(1);
                    named.note(checked.verdict, job.id);
                    yield Report::Archive(checked);
                }
                if after.is_none() {
                    break;
                }
            }
            this.record(&actor, &command, &summary, &named).await?;
            yield Report::Summary(summary);
        }
    }

    async fn page(
        &self,
        store_version: Option<i64>,
        after: Option<Uuid>,
    ) -> Result<Page<Job, Uuid>> {
        let client = self.pool.get().await?;
        db::jobs::archived_page(&client, store_version, after, PAGE).await
    }

    async fn check(&self, job: &Job, info: &ArchiveInfo, opened: &mut Opened) -> Checked {
        let (verdict, detail) = match self.read(&job.tenant_id, info, opened).await {
            Ok(()) => (Verdict::Ok, String::new()),
            Err(Failure::Read(error)) => (Verdict::of(&error), error.to_string()),
            Err(Failure::Undecodable(error)) => (Verdict::Corrupt, error),
            Err(Failure::Store(error)) => (Verdict::Unverifiable, error.to_string()),
        };
        if verdict.is_failure() {
            tracing::error!(job = %job.id, blob = %info.blob_key, %detail, "archive blob {}", verdict.as_str());
        }
        Checked {
            job_id: job.id,
            tenant_id: job.tenant_id.clone(),
            store_version: info.store_version,
            blob_key: info.blob_key.clone(),
            verdict,
            detail,
        }
    }

    /// Reads the blob to its end through the digest check (or, for a blob of the earlier
    /// system, through its gzip checksum).
    async fn read(
        &self,
        tenant: &str,
        info: &ArchiveInfo,
        opened: &mut Opened,
    ) -> Result<(), Failure> {
        let objects = self
            .objects(tenant, info.store_version, opened)
            .await
            .map_err(Failure::Store)?;
        let key = BlobKey::new(info.blob_key.clone())
            .map_err(|e| Failure::Store(Error::Internal(format!("archive blob key: {e}"))))?;
        if info.format == BlobFormat::LegacyJsonGzip {
            let blob = objects.store().get(&key).await.map_err(read_error)?;
            return gunzip_to_end(blob.stream.map_err(read_error)).await;
        }
        let expected = info.plaintext_sha256.clone().map(|sha256| Expected {
            sha256,
            plaintext_len: None,
        });
        let mut plaintext = objects.get(&key, expected).await.map_err(Failure::Read)?;
        while plaintext.try_next().await.map_err(Failure::Read)?.is_some() {}
        Ok(())
    }

    /// The store version's objects under the tenant's keys, opened once per sweep.
    async fn objects(
        &self,
        tenant: &str,
        version: Option<i64>,
        opened: &mut Opened,
    ) -> Result<EncryptedStore> {
        let key = (version, tenant.to_owned());
        if let Some(objects) = opened.get(&key) {
            return Ok(objects.clone());
        }
        let client = self.pool.get().await?;
        let store = self.stores.open(&client, version).await?;
        let objects = (self.stores)
            .tenant_objects(&client, &store, tenant, Access::Read)
            .await?;
        opened.insert(key, objects.clone());
        Ok(objects)
    }

    /// The sweep's audit entry, with the first missing and corrupt jobs named.
    async fn record(
        &self,
        actor: &Actor,
        command: &VerifyArchives,
        summary: &Summary,
        named: &Named,
    ) -> Result<()> {
        let mut detail = summary.detail(&command.sampling);
        detail["store_version"] = json!(command.store_version);
        detail["missing_jobs"] = json!(named.missing);
        detail["corrupt_jobs"] = json!(named.corrupt);
        if !named.is_empty() {
            tracing::error!(
                missing = summary.missing,
                corrupt = summary.corrupt,
                "an integrity sweep found archive blobs missing or corrupt"
            );
        }
        let audit = Audit {
            actor,
            action: "verify_archives",
            reason: Some(&command.reason),
        };
        let client = self.pool.get().await?;
        audit.record(&client, None, true, detail).await
    }
}

/// Advisory lock of a scheduled sweep: one replica sweeps at a time.
const SWEEP_LOCK: &str = "stowage.archive.integrity-sweep";

/// Sweeps on a schedule (`[archive] verify_schedule`), as the schedule's actor: one
/// replica at each occurrence, the others skip it.
#[derive(Clone, Debug)]
pub struct SweepSchedule {
    pool: deadpool_postgres::Pool,
    verifier: Verifier,
    cron: Cron,
    command: VerifyArchives,
}

impl SweepSchedule {
    pub fn new(
        pool: deadpool_postgres::Pool,
        verifier: Verifier,
        cron: Cron,
        sampling: Sampling,
    ) -> Self {
        let command = VerifyArchives {
            store_version: None,
            sampling,
            reason: "scheduled integrity sweep".into(),
        };
        Self {
            pool,
            verifier,
            cron,
            command,
        }
    }

    pub async fn run(self, drain: Drain) {
        on_schedule(&self.cron, "integrity sweep", &drain, || self.sweep_now()).await;
    }

    /// One scheduled sweep now, unless another replica is running one: its totals.
    pub async fn sweep_now(&self) -> Result<Option<Summary>> {
        let swept = exclusively(&self.pool, SWEEP_LOCK, || async {
            let reports = (self.verifier).verify(Actor::scheduler(), self.command.clone());
            futures::pin_mut!(reports);
            let mut summary = Summary::default();
            while let Some(report) = reports.try_next().await? {
                if let Report::Summary(totals) = report {
                    summary = totals;
                }
            }
            Ok::<_, Error>(summary)
        });
        swept.await
    }
}

/// What a sweep has opened, by store version and tenant: each is read once per sweep.
type Opened = HashMap<(Option<i64>, String), EncryptedStore>;

/// A job and its archive, if it is still archived.
fn archived(job: &Job) -> Option<(&Job, &ArchiveInfo)> {
    job.archive.as_ref().map(|info| (job, info))
}

/// Why a blob could not be checked: its object (judged by [`Verdict::of`]), an
/// unencrypted blob whose gzip stream is broken (corrupt), or its store, which could not
/// even be opened (unverifiable).
enum Failure {
    Read(ObjectError),
    Undecodable(String),
    Store(Error),
}

fn read_error(error: stowage_shared::blob::BlobError) -> Failure {
    Failure::Read(ObjectError::Blob(error))
}

/// Decodes a gzip stream to its end on a blocking thread; the decoder checks the CRC and
/// length the stream carries.
async fn gunzip_to_end(
    stored: impl Stream<Item = Result<Bytes, Failure>> + Unpin,
) -> Result<(), Failure> {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    let decoder = tokio::task::spawn_blocking(move || {
        let mut decoded = flate2::read::GzDecoder::new(ChannelReader::new(rx));
        std::io::copy(&mut decoded, &mut std::io::sink()).map(drop)
    });
    let mut stored = stored;
    let mut failure = None;
    while let Some(chunk) = stored.next().await {
        match chunk {
            Ok(chunk) => {
                if tx.send(Ok(chunk)).await.is_err() {
                    break;
                }
            }
            Err(error) => {
                let _ = tx.send(Err(std::io::Error::other("stopped"))).await;
                failure = Some(error);
                break;
            }
        }
    }
    drop(tx);
    let decoded = decoder
        .await
        .map_err(|e| Failure::Store(Error::Internal(format!("gzip check: {e}"))))?;
    match (failure, decoded) {
        (Some(error), _) => Err(error),
        (None, Ok(())) => Ok(()),
        (None, Err(error)) => Err(Failure::Undecodable(format!("gzip: {error}"))),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    async fn check(stored: Vec<u8>) -> Result<(), Failure> {
        let chunks: Vec<Result<Bytes, Failure>> = stored
            .chunks(7)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        gunzip_to_end(futures::stream::iter(chunks)).await
    }

    #[tokio::test]
    async fn an_unencrypted_blob_is_checked_by_its_gzip_checksum() {
        let payload = gzip(br#"{"scanItems":[],"fileRecords":[]}"#);
        assert!(check(payload.clone()).await.is_ok());
        let mut flipped = payload.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x01;
        assert!(matches!(check(flipped).await, Err(Failure::Undecodable(_))));
        let truncated = payload[..payload.len() - 3].to_vec();
        assert!(matches!(
            check(truncated).await,
            Err(Failure::Undecodable(_))
        ));
    }
}
