//! Restoring a job: fetch its blob, decrypt, decompress, parse the JSON as a stream and
//! bulk-insert the rows with binary COPY, check row counts and the rows digest, and clear
//! the archive marker, all in one transaction: every row or none. The job's row lock makes
//! concurrent restores insert once. Restoring a hot job inserts nothing and succeeds; it
//! records activity, since the caller is about to use the rows, so an archive of the job in
//! flight rolls back rather than take the rows from under the caller.

mod fetch;
mod insert;

use bytes::Bytes;
use serde_json::json;
use stowage_shared::db::RowLock;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    audit::Audit,
    jobs::ArchiveInfo,
    payload::reader::{self, Batch},
    rows::RowsDigest,
    stores::{Access, ArchiveStores},
};
use crate::{
    db,
    error::{Error, Result},
};

/// Where a restore is; sent as it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Fetching,
    Decoding,
    Inserting,
    Verifying,
    Done,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub phase: Phase,
    pub rows_done: u64,
    pub rows_total: u64,
    pub bytes_read: u64,
    /// The job was hot already: nothing was inserted.
    pub already_hot: bool,
}

impl Progress {
    /// The one report of a restore that found the job hot.
    fn already_hot() -> Self {
        Self {
            phase: Phase::Done,
            rows_done: 0,
            rows_total: 0,
            bytes_read: 0,
            already_hot: true,
        }
    }

    /// The first report of a restore of the archive `info` describes.
    fn fetching(info: &ArchiveInfo) -> Self {
        let rows = info.scan_items.unwrap_or(0) + info.file_records.unwrap_or(0);
        Self {
            phase: Phase::Fetching,
            rows_done: 0,
            rows_total: rows.max(0) as u64,
            bytes_read: 0,
            already_hot: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Restorer {
    pool: deadpool_postgres::Pool,
    stores: ArchiveStores,
}

impl Restorer {
    pub fn new(pool: deadpool_postgres::Pool, stores: ArchiveStores) -> Self {
        Self { pool, stores }
    }

    /// Restores the job's rows (or does nothing if it is hot), reporting on `progress`.
    #[tracing::instrument(skip_all, fields(job = %job_id))]
    pub async fn restore(
        &self,
        tenant: Option<&str>,
        job_id: Uuid,
        progress: &mpsc::Sender<Progress>,
        audit: &Audit<'_>,
        trigger: &str,
    ) -> Result<Progress> {
        let started = std::time::Instant::now();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let job = db::jobs::JOBS
            .find(&tx, tenant, job_id, RowLock::ForUpdate)
            .await?;
        let owner = Some((job_id, job.tenant_id.as_str()));
        let Some(info) = job.archive.clone() else {
            // The caller is about to use the rows: that is activity. An archive of this job
            // still in flight sees it at its final check and rolls its deletes back.
            db::jobs::touch(&tx, None, job_id).await?;
            let detail = json!({ "trigger": trigger, "rows": 0, "already_hot": true });
            audit.record(&tx, owner, true, detail).await?;
            tx.commit().await?;
            let done = Progress::already_hot();
            let _ = progress.send(done.clone()).await;
            return Ok(done);
        };
        let mut state = Progress::fetching(&info);
        let _ = progress.send(state.clone()).await;
        let restored = self
            .bring_back(&tx, (job_id, &job.tenant_id), &info, progress, &mut state)
            .await?;
        state.phase = Phase::Verifying;
        state.bytes_read = restored.bytes_read;
        let _ = progress.send(state.clone()).await;
        restored.check_against(&info)?;
        db::jobs::mark_hot(&tx, job_id).await?;
        let rows = restored.items + restored.records;
        let detail = json!({ "trigger": trigger, "rows": rows, "already_hot": false,
                             "store_version": info.store_version });
        audit.record(&tx, owner, true, detail).await?;
        tx.commit().await?;
        state.phase = Phase::Done;
        state.rows_done = rows as u64;
        state.rows_total = state.rows_done;
        let _ = progress.send(state.clone()).await;
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(rows = state.rows_done, seconds, "job restored");
        metrics::counter!("archive_jobs_restored_total").increment(1);
        metrics::counter!("archive_rows_restored_total").increment(state.rows_done);
        metrics::histogram!("archive_restore_seconds").record(seconds);
        Ok(state)
    }

    /// The pipeline: fetch and decrypt from the job's own store version, decompress and
    /// parse on a blocking thread, insert with binary COPY, all at once.
    async fn bring_back(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        (job_id, tenant): (Uuid, &str),
        info: &ArchiveInfo,
        progress: &mpsc::Sender<Progress>,
        state: &mut Progress,
    ) -> Result<Restored> {
        // The job's own store version, whatever the newest is now, under its tenant's keys.
        let store = self.stores.open(tx, info.store_version).await?;
        let objects = self
            .stores
            .tenant_objects(tx, &store, tenant, Access::Read)
            .await?;
        let (plain_tx, plain_rx) = mpsc::channel::<std::io::Result<Bytes>>(8);
        let (rows_tx, rows_rx) = mpsc::channel::<Batch>(4);
        let format = info.format;
        let parser =
            tokio::task::spawn_blocking(move || reader::parse(plain_rx, format, job_id, rows_tx));
        let (fetched, inserted) = tokio::join!(
            fetch::fetch(&objects, info, plain_tx),
            insert::insert(tx, rows_rx, progress, state)
        );
        let parsed = parser.await.map_err(|e| Error::Internal(e.to_string()))?;
        // The first failure in pipeline order is the cause; later ones are its echoes.
        let bytes_read = fetched?;
        let (items, records, digest) = inserted?;
        Ok(Restored {
            items,
            records,
            digest,
            carried: parsed?,
            bytes_read,
        })
    }
}

/// What a restore brought back, before it is checked.
#[derive(Debug)]
struct Restored {
    items: i64,
    records: i64,
    digest: RowsDigest,
    /// The digest the blob itself carries, if it carries one.
    carried: Option<RowsDigest>,
    bytes_read: u64,
}

impl Restored {
    /// The rows must be those the job recorded at archive time, and those the blob says
    /// it holds; anything else is `DATA_LOSS` (and the transaction rolls back).
    fn check_against(&self, info: &ArchiveInfo) -> Result<()> {
        let (items, records) = (self.items, self.records);
        if let Some(expected) = info.scan_items
            && expected != items
        {
            return Err(Error::DataLoss(format!(
                "the archive holds {items} scan items, the job recorded {expected}"
            )));
        }
        if let Some(expected) = info.file_records
            && expected != records
        {
            return Err(Error::DataLoss(format!(
                "the archive holds {records} file records, the job recorded {expected}"
            )));
        }
        if let Some(expected) = info.rows_digest.as_deref().and_then(RowsDigest::from_bytes)
            && expected != self.digest
        {
            return Err(Error::DataLoss(
                "the restored rows do not match their digest".into(),
            ));
        }
        if self
            .carried
            .as_ref()
            .is_some_and(|carried| *carried != self.digest)
        {
            return Err(Error::DataLoss(
                "the restored rows do not match the digest their blob carries".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        payload::BlobFormat,
        rows::{Canonical, ScanItem},
    };

    fn digest_of(ids: &[i64]) -> RowsDigest {
        let mut digest = RowsDigest::default();
        let mut scratch = Canonical::default();
        for id in ids {
            let item = ScanItem {
                job_id: Uuid::nil(),
                id: *id,
                parent_id: None,
                path: format!("/{id}"),
                name: id.to_string(),
                kind: "file".into(),
                size_bytes: Some(1),
                modified_at: None,
                etag: None,
                mime_type: None,
                status: "DISCOVERED".into(),
                error: None,
                discovered_at: chrono::DateTime::UNIX_EPOCH,
            };
            digest.add(&item, &mut scratch);
        }
        digest
    }

    fn info(items: i64, digest: &RowsDigest) -> ArchiveInfo {
        ArchiveInfo {
            archived_at: chrono::Utc::now(),
            blob_key: "acme/job.json.zst".into(),
            format: BlobFormat::JsonZstd,
            stored_bytes: None,
            plaintext_bytes: None,
            plaintext_sha256: None,
            kek_id: None,
            scan_items: Some(items),
            file_records: Some(0),
            rows_digest: Some(digest.to_bytes()),
            store_version: Some(1),
        }
    }

    fn restored(ids: &[i64], carried: Option<RowsDigest>) -> Restored {
        Restored {
            items: ids.len() as i64,
            records: 0,
            digest: digest_of(ids),
            carried,
            bytes_read: 0,
        }
    }

    #[test]
    fn rows_that_match_their_record_and_their_blob_pass() {
        let recorded = digest_of(&[1, 2, 3]);
        restored(&[3, 1, 2], Some(recorded))
            .check_against(&info(3, &recorded))
            .unwrap();
    }

    #[test]
    fn a_missing_row_a_changed_row_or_a_blob_that_disowns_its_rows_is_data_loss() {
        let recorded = digest_of(&[1, 2, 3]);
        let cases = [
            restored(&[1, 2], None),
            restored(&[1, 2, 4], None),
            restored(&[1, 2, 3], Some(digest_of(&[7]))),
        ];
        for case in cases {
            let error = case.check_against(&info(3, &recorded)).unwrap_err();
            assert!(matches!(error, Error::DataLoss(_)), "{error}");
        }
    }
}
