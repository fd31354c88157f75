//! Restoring a job: fetch its blob, decrypt, decompress, parse the JSON as a stream and
//! bulk-insert the rows with binary COPY, check row counts and the rows digest, and clear
//! the archive marker, all in one transaction: every row or none. The job's row lock makes
//! concurrent restores insert once. Restoring a hot job inserts nothing and succeeds; it
//! records activity, since the caller is about to use the rows, so an archive of the job in
//! flight rolls back rather than take the rows from under the caller.

use std::{fmt, io::Read};

use bytes::Bytes;
use futures::{StreamExt, pin_mut, stream::BoxStream};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::json;
use stowage_shared::blob::{BlobKey, ObjectError, encrypted::Expected};
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use uuid::Uuid;

use super::{
    archive::ROWS_DIGEST_KEY,
    audit::Audit,
    jobs::{ArchiveInfo, BlobFormat},
    pipe::ChannelReader,
    rows::{Canonical, FileRecord, Row, RowsDigest, ScanItem},
    stores::ArchiveStores,
};
use crate::{
    db,
    error::{Error, Result},
};

/// Rows per message from the parser thread.
const BATCH: usize = 2048;

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

/// A batch of rows of one table, or the end of the payload.
enum Batch {
    Items(Vec<ScanItem>),
    Records(Vec<FileRecord>),
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
        let parser = tokio::task::spawn_blocking(move || parse(plain_rx, format, job_id, rows_tx));

        let insert = async {
            // Owned here, so a failed insert drops it and unblocks the parser.
            let mut rows_rx = rows_rx;
            state.phase = Phase::Inserting;
            let _ = progress.send(state.clone()).await;
            let mut digest = RowsDigest::default();
            let mut scratch = Canonical::default();
            let mut items: Option<std::pin::Pin<Box<BinaryCopyInWriter>>> = None;
            let mut records: Option<std::pin::Pin<Box<BinaryCopyInWriter>>> = None;
            let (mut item_count, mut record_count) = (0i64, 0i64);
            while let Some(batch) = rows_rx.recv().await {
                match batch {
                    Batch::Items(rows) => {
                        if let Some(mut writer) = records.take() {
                            writer.as_mut().finish().await?;
                        }
                        let writer = match &mut items {
                            Some(writer) => writer,
                            None => items.insert(Box::pin(copy_in::<ScanItem>(&tx).await?)),
                        };
                        item_count +=
                            write(writer.as_mut(), &rows, &mut digest, &mut scratch).await?;
                    }
                    Batch::Records(rows) => {
                        if let Some(mut writer) = items.take() {
                            writer.as_mut().finish().await?;
                        }
                        let writer = match &mut records {
                            Some(writer) => writer,
                            None => records.insert(Box::pin(copy_in::<FileRecord>(&tx).await?)),
                        };
                        record_count +=
                            write(writer.as_mut(), &rows, &mut digest, &mut scratch).await?;
                    }
                }
                state.rows_done = (item_count + record_count) as u64;
                let _ = progress.try_send(state.clone());
            }
            if let Some(mut writer) = items.take() {
                writer.as_mut().finish().await?;
            }
            if let Some(mut writer) = records.take() {
                writer.as_mut().finish().await?;
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

async fn copy_in<R: Row>(tx: &deadpool_postgres::Transaction<'_>) -> Result<BinaryCopyInWriter> {
    let sink = tx
        .copy_in(&format!(
            "copy {} ({}) from stdin (format binary)",
            R::TABLE,
            R::COLUMNS
        ))
        .await?;
    Ok(BinaryCopyInWriter::new(sink, R::TYPES))
}

async fn write<R: Row>(
    mut writer: std::pin::Pin<&mut BinaryCopyInWriter>,
    rows: &[R],
    digest: &mut RowsDigest,
    scratch: &mut Canonical,
) -> Result<i64> {
    for row in rows {
        digest.add(row, scratch);
        writer.as_mut().write(&row.params()).await?;
    }
    Ok(rows.len() as i64)
}

/// The parser thread: decompress and parse `{"scanItems": […], "fileRecords": […]}`
/// (either order, unknown keys ignored), sending rows in batches. Returns the rows digest
/// the payload carries (`"rowsDigest"`, written since archives carry one), if any.
fn parse(
    plaintext: mpsc::Receiver<std::io::Result<Bytes>>,
    format: BlobFormat,
    job_id: Uuid,
    rows: mpsc::Sender<Batch>,
) -> Result<Option<RowsDigest>> {
    let reader = ChannelReader::new(plaintext);
    let decoded: Box<dyn Read> = match format {
        BlobFormat::JsonZstd => Box::new(
            zstd::stream::read::Decoder::new(reader)
                .map_err(|e| Error::DataLoss(format!("zstd: {e}")))?,
        ),
        BlobFormat::JsonGzip | BlobFormat::LegacyJsonGzip => {
            Box::new(flate2::read::GzDecoder::new(reader))
        }
    };
    let mut deserializer =
        serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(1 << 20, decoded));
    let seen = std::cell::Cell::new((false, false));
    let carried = std::cell::RefCell::new(None);
    let payload = Payload {
        rows: &rows,
        job_id,
        seen: &seen,
        digest: &carried,
    };
    payload
        .deserialize(&mut deserializer)
        .map_err(|e| Error::DataLoss(format!("payload: {e}")))?;
    deserializer
        .end()
        .map_err(|e| Error::DataLoss(format!("payload: {e}")))?;
    if seen.get() != (true, true) {
        return Err(Error::DataLoss(
            "the payload lacks scanItems or fileRecords".into(),
        ));
    }
    carried
        .into_inner()
        .map(|hex: String| {
            hex::decode(&hex)
                .ok()
                .and_then(|bytes| RowsDigest::from_bytes(&bytes))
                .ok_or_else(|| Error::DataLoss("the payload's rowsDigest is malformed".into()))
        })
        .transpose()
}

struct Payload<'a> {
    rows: &'a mpsc::Sender<Batch>,
    job_id: Uuid,
    /// Whether scanItems and fileRecords were read.
    seen: &'a std::cell::Cell<(bool, bool)>,
    /// The `rowsDigest` the payload carries.
    digest: &'a std::cell::RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Payload<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Payload<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with scanItems and fileRecords arrays")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "scanItems" | "fileRecords" => {
                    let items = key == "scanItems";
                    let (seen_items, seen_records) = self.seen.get();
                    if (items && seen_items) || (!items && seen_records) {
                        return Err(serde::de::Error::custom(format!("{key} appears twice")));
                    }
                    self.seen.set((seen_items || items, seen_records || !items));
                    let payload = Payload {
                        rows: self.rows,
                        job_id: self.job_id,
                        seen: self.seen,
                        digest: self.digest,
                    };
                    if items {
                        map.next_value_seed(Rows::<ScanItem> {
                            payload,
                            wrap: Batch::Items,
                        })?;
                    } else {
                        map.next_value_seed(Rows::<FileRecord> {
                            payload,
                            wrap: Batch::Records,
                        })?;
                    }
                }
                ROWS_DIGEST_KEY => {
                    *self.digest.borrow_mut() = Some(map.next_value::<String>()?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// One array of rows, forwarded in batches as it is parsed.
struct Rows<'a, R> {
    payload: Payload<'a>,
    wrap: fn(Vec<R>) -> Batch,
}

impl<'de, R: Row> DeserializeSeed<'de> for Rows<'_, R> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, R: Row> Visitor<'de> for Rows<'_, R> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an array of {}", R::JSON_KEY)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        use serde::de::Error as _;
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(row) = seq.next_element::<R>()? {
            if row.job_id() != self.payload.job_id {
                return Err(A::Error::custom(format!(
                    "a row of job {} in the archive of job {}",
                    row.job_id(),
                    self.payload.job_id
                )));
            }
            batch.push(row);
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                self.payload
                    .rows
                    .blocking_send((self.wrap)(full))
                    .map_err(|_| A::Error::custom("the inserter stopped"))?;
            }
        }
        if !batch.is_empty() {
            self.payload
                .rows
                .blocking_send((self.wrap)(batch))
                .map_err(|_| A::Error::custom("the inserter stopped"))?;
        }
        Ok(())
    }
}
