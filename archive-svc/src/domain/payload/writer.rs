//! Rows → JSON → compressor thread → a stream of compressed chunks to upload. The JSON is
//! encoded here in `CHUNK`-sized pieces; the compressor runs on a blocking thread. An
//! explicit end marker closes the payload, so a producer that fails midway makes the upload
//! fail rather than store a truncated payload.

use std::io::Write;

use bytes::Bytes;
use futures::{Stream, StreamExt, pin_mut};
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_stream::wrappers::ReceiverStream;

use super::{Compression, ROWS_DIGEST_KEY};
use crate::{
    domain::{
        pipe::{CHUNK, ChannelWriter},
        rows::{Canonical, Row, RowsDigest},
    },
    error::{Error, Result},
};

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

/// What a finished payload holds.
#[derive(Debug)]
pub struct Encoded {
    pub scan_items: i64,
    pub file_records: i64,
    pub digest: RowsDigest,
    /// Size of the JSON before compression.
    pub json_bytes: usize,
}

/// The payload being written.
pub struct PayloadWriter {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
    json_bytes: usize,
    arrays: usize,
    digest: RowsDigest,
    scratch: Canonical,
    counts: Vec<i64>,
    compressor: JoinHandle<std::io::Result<()>>,
}

/// Starts a payload: the writer, and the stream of compressed chunks it produces.
pub fn start(
    compression: Compression,
) -> (
    PayloadWriter,
    impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
) {
    let (json_tx, json_rx) = mpsc::channel::<Vec<u8>>(4);
    let (packed_tx, packed_rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    let compressor = tokio::task::spawn_blocking(move || compress(json_rx, packed_tx, compression));
    let mut writer = PayloadWriter {
        tx: json_tx,
        buf: Vec::with_capacity(CHUNK + 4096),
        json_bytes: 0,
        arrays: 0,
        digest: RowsDigest::default(),
        scratch: Canonical::default(),
        counts: Vec::new(),
        compressor,
    };
    writer.buf.push(b'{');
    (writer, ReceiverStream::new(packed_rx))
}

impl PayloadWriter {
    /// Writes `"key":[row,row,…]` from `rows`; returns the row count.
    pub async fn rows<R: Row>(&mut self, rows: impl Stream<Item = Result<R>>) -> Result<i64> {
        if self.arrays > 0 {
            self.buf.push(b',');
        }
        self.arrays += 1;
        self.buf
            .extend_from_slice(format!("\"{}\":[", R::JSON_KEY).as_bytes());
        pin_mut!(rows);
        let mut count = 0i64;
        while let Some(row) = rows.next().await {
            let row = row?;
            self.digest.add(&row, &mut self.scratch);
            if count > 0 {
                self.buf.push(b',');
            }
            serde_json::to_writer(&mut self.buf, &row)
                .map_err(|e| Error::Internal(format!("encoding a row: {e}")))?;
            count += 1;
            if self.buf.len() >= CHUNK {
                self.flush().await?;
            }
        }
        self.buf.push(b']');
        self.counts.push(count);
        Ok(count)
    }

    /// Closes the payload with its rows digest and waits for the compressor to finish
    /// (it finishes as the upload takes its output).
    pub async fn finish(mut self) -> Result<Encoded> {
        // The blob carries its own rows digest, so it proves itself without the job row.
        let close = format!(
            ",\"{ROWS_DIGEST_KEY}\":\"{}\"}}",
            hex::encode(self.digest.to_bytes())
        );
        self.buf.extend_from_slice(close.as_bytes());
        self.flush().await?;
        self.tx
            .send(Vec::new())
            .await
            .map_err(|_| Error::Internal("the compressor stopped".into()))?;
        (&mut self.compressor)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::Internal(format!("compression failed: {e}")))?;
        Ok(Encoded {
            scan_items: self.counts.first().copied().unwrap_or(0),
            file_records: self.counts.get(1).copied().unwrap_or(0),
            digest: self.digest,
            json_bytes: self.json_bytes,
        })
    }

    async fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.json_bytes += self.buf.len();
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK + 4096));
        self.tx
            .send(chunk)
            .await
            .map_err(|_| Error::Internal("the compressor stopped".into()))
    }
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
