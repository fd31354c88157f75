//! Blob → decompressor → streaming JSON parser → batches of rows, on a blocking thread.
//! The payload's keys may come in either order and unknown keys are ignored; both arrays
//! must be there, each row must belong to the job, and a blob that fails any of this is
//! `DATA_LOSS`.

use std::{fmt, io::Read};

use bytes::Bytes;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{BlobFormat, ROWS_DIGEST_KEY};
use crate::{
    domain::{
        pipe::ChannelReader,
        rows::{FileRecord, Row, RowsDigest, ScanItem},
    },
    error::{Error, Result},
};

/// Rows per batch sent to the inserter.
const BATCH: usize = 2048;

/// A batch of rows of one table.
pub enum Batch {
    Items(Vec<ScanItem>),
    Records(Vec<FileRecord>),
}

/// The parser thread: decompress and parse `{"scanItems": […], "fileRecords": […]}`
/// (either order, unknown keys ignored), sending rows in batches. Returns the rows digest
/// the payload carries (`"rowsDigest"`, written since archives carry one), if any.
pub fn parse(
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
