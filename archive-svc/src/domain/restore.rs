//! Restoring a job: fetch its blob, decrypt, decompress, parse the JSON as a stream and
//! bulk-insert the rows with binary COPY, check row counts and the rows digest, and clear
//! the archive marker, all in one transaction: every row or none. The job's row lock makes
//! concurrent restores insert once. Restoring a hot job inserts nothing and succeeds; it
//! records activity, since the caller is about to use the rows, so an archive of the job in
//! flight rolls back rather than take the rows from under the caller.

use bytes::Bytes;
use futures::{StreamExt, pin_mut, stream::BoxStream};
use serde_json::json;
use stowage_shared::blob::{BlobKey, ObjectError, encrypted::Expected};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    audit::Audit,
    jobs::ArchiveInfo,
    payload::{
        BlobFormat,
        reader::{self, Batch},
    },
    rows::{Canonical, FileRecord, Row, RowsDigest, ScanItem},
    stores::ArchiveStores,
};
use crate::{
    db::{self, rows::CopyIn},
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
        let job = db::jobs::get_for_update(&tx, tenant, job_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {job_id}")))?;
        let Some(info) = job.archive.clone() else {
            // The caller is about to use the rows: that is activity. An archive of this job
            // still in flight sees it at its final check and rolls its deletes back.
            db::jobs::touch(&tx, None, job_id).await?;
            let detail = json!({ "trigger": trigger, "rows": 0, "already_hot": true });
            audit
                .record(&tx, Some((job_id, &job.tenant_id)), true, detail)
                .await?;
            tx.commit().await?;
            let done = Progress {
                phase: Phase::Done,
                rows_done: 0,
                rows_total: 0,
                bytes_read: 0,
                already_hot: true,
            };
            let _ = progress.send(done.clone()).await;
            return Ok(done);
        };
        // The job's own store version, whatever the newest is now.
        let objects = self.stores.open(&tx, info.store_version).await?.objects;
        let total = info.scan_items.unwrap_or(0) + info.file_records.unwrap_or(0);
        let mut state = Progress {
            phase: Phase::Fetching,
            rows_done: 0,
            rows_total: total.max(0) as u64,
            bytes_read: 0,
            already_hot: false,
        };
        let _ = progress.send(state.clone()).await;

        let (plain_tx, plain_rx) = mpsc::channel::<std::io::Result<Bytes>>(8);
        let fetch = fetch(&objects, &info, plain_tx);
        let (rows_tx, rows_rx) = mpsc::channel::<Batch>(4);
        let format = info.format;
        let parser =
            tokio::task::spawn_blocking(move || reader::parse(plain_rx, format, job_id, rows_tx));

        let insert = async {
            // Owned here, so a failed insert drops it and unblocks the parser.
            let mut rows_rx = rows_rx;
            state.phase = Phase::Inserting;
            let _ = progress.send(state.clone()).await;
            let mut digest = RowsDigest::default();
            let mut scratch = Canonical::default();
            let mut items: Option<CopyIn<ScanItem>> = None;
            let mut records: Option<CopyIn<FileRecord>> = None;
            let (mut item_count, mut record_count) = (0i64, 0i64);
            while let Some(batch) = rows_rx.recv().await {
                let mut sink = Sink {
                    tx: &tx,
                    digest: &mut digest,
                    scratch: &mut scratch,
                };
                match batch {
                    Batch::Items(rows) => {
                        item_count += sink.insert(&mut items, &mut records, &rows).await?;
                    }
                    Batch::Records(rows) => {
                        record_count += sink.insert(&mut records, &mut items, &rows).await?;
                    }
                }
                state.rows_done = (item_count + record_count) as u64;
                let _ = progress.try_send(state.clone());
            }
            if let Some(copy) = items.take() {
                copy.finish().await?;
            }
            if let Some(copy) = records.take() {
                copy.finish().await?;
            }
            Ok::<_, Error>((item_count, record_count, digest))
        };
        let (fetched, inserted) = tokio::join!(fetch, insert);
        let parsed = parser.await.map_err(|e| Error::Internal(e.to_string()))?;
        // The first failure in pipeline order is the cause; later ones are its echoes.
        let bytes_read = fetched?;
        let (item_count, record_count, digest) = inserted?;
        let carried = parsed?;
        state.bytes_read = bytes_read;

        state.phase = Phase::Verifying;
        let _ = progress.send(state.clone()).await;
        if let Some(expected) = info.scan_items
            && expected != item_count
        {
            return Err(Error::DataLoss(format!(
                "the archive holds {item_count} scan items, the job recorded {expected}"
            )));
        }
        if let Some(expected) = info.file_records
            && expected != record_count
        {
            return Err(Error::DataLoss(format!(
                "the archive holds {record_count} file records, the job recorded {expected}"
            )));
        }
        if let Some(expected) = info.rows_digest.as_deref().and_then(RowsDigest::from_bytes)
            && expected != digest
        {
            return Err(Error::DataLoss(
                "the restored rows do not match their digest".into(),
            ));
        }
        if carried.is_some_and(|carried| carried != digest) {
            return Err(Error::DataLoss(
                "the restored rows do not match the digest their blob carries".into(),
            ));
        }
        db::jobs::mark_hot(&tx, job_id).await?;
        let detail = json!({ "trigger": trigger, "rows": item_count + record_count,
                             "already_hot": false, "store_version": info.store_version });
        audit
            .record(&tx, Some((job_id, &job.tenant_id)), true, detail)
            .await?;
        tx.commit().await?;
        state.phase = Phase::Done;
        state.rows_done = (item_count + record_count) as u64;
        state.rows_total = state.rows_done;
        let _ = progress.send(state.clone()).await;
        tracing::info!(
            rows = state.rows_done,
            seconds = started.elapsed().as_secs_f64(),
            "job restored"
        );
        metrics::counter!("archive_jobs_restored_total").increment(1);
        metrics::counter!("archive_rows_restored_total").increment(state.rows_done);
        metrics::histogram!("archive_restore_seconds").record(started.elapsed().as_secs_f64());
        Ok(state)
    }
}

/// Streams the blob's plaintext (still compressed) into `out`; returns stored bytes.
async fn fetch(
    objects: &stowage_shared::blob::EncryptedStore,
    info: &ArchiveInfo,
    out: mpsc::Sender<std::io::Result<Bytes>>,
) -> Result<u64> {
    let key = BlobKey::new(info.blob_key.clone())?;
    let stream: BoxStream<'static, Result<Bytes>> = if info.format == BlobFormat::LegacyJsonGzip {
        // Written by the earlier system: unencrypted, so the stored bytes are the payload.
        let key_of_error = key.clone();
        let blob = objects
            .store()
            .get(&key)
            .await
            .map_err(|e| blob_error(e, &key))?;
        blob.stream
            .map(move |chunk| chunk.map_err(|e| blob_error(e, &key_of_error)))
            .boxed()
    } else {
        // The digest covers the compressed payload; its length is not recorded (the job's
        // plaintext size is that of the JSON), so only the digest is checked.
        let expected = info.plaintext_sha256.clone().map(|sha256| Expected {
            sha256,
            plaintext_len: None,
        });
        let key_of_error = key.clone();
        objects
            .get(&key, expected)
            .await
            .map_err(|e| object_error(e, &key))?
            .map(move |chunk| chunk.map_err(|e| object_error(e, &key_of_error)))
            .boxed()
    };
    pin_mut!(stream);
    let mut read = 0u64;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                read += chunk.len() as u64;
                if out.send(Ok(chunk)).await.is_err() {
                    break;
                }
            }
            Err(error) => {
                // Tell the parser the payload stops here, so it fails instead of waiting.
                let _ = out.try_send(Err(std::io::Error::other(error.to_string())));
                return Err(error);
            }
        }
    }
    Ok(read)
}

fn object_error(error: ObjectError, key: &BlobKey) -> Error {
    match error {
        ObjectError::Blob(blob) => blob_error(blob, key),
        other => other.into(),
    }
}

fn blob_error(error: stowage_shared::blob::BlobError, key: &BlobKey) -> Error {
    match error {
        stowage_shared::blob::BlobError::NotFound(_) => {
            Error::NotFound(format!("archive blob {key} of this archived job"))
        }
        other => other.into(),
    }
}

/// Where restored rows go: one COPY per table, one table at a time, every row digested.
struct Sink<'a, 't> {
    tx: &'a deadpool_postgres::Transaction<'t>,
    digest: &'a mut RowsDigest,
    scratch: &'a mut Canonical,
}

impl Sink<'_, '_> {
    /// Inserts `rows` through `mine` (opened on first use) after ending `other`'s COPY.
    async fn insert<R: Row, O: Row>(
        &mut self,
        mine: &mut Option<CopyIn<R>>,
        other: &mut Option<CopyIn<O>>,
        rows: &[R],
    ) -> Result<i64> {
        if let Some(copy) = other.take() {
            copy.finish().await?;
        }
        let copy = match mine {
            Some(copy) => copy,
            None => mine.insert(CopyIn::open(self.tx).await?),
        };
        for row in rows {
            self.digest.add(row, self.scratch);
            copy.write(row).await?;
        }
        Ok(rows.len() as i64)
    }
}
