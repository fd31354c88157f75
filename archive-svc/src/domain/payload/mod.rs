//! The archive payload, in one place: `{"scanItems": […], "fileRecords": […],
//! "rowsDigest": "…"}` with every column of every row, compressed with zstd (the default)
//! or gzip, and the blob formats that hold it. [`writer`] encodes and compresses rows on
//! their way to a blob; [`reader`] decompresses and parses a blob as a stream of row
//! batches on the way back.

pub mod reader;
pub mod writer;

/// Key of the payload's order-independent rows digest (hex of
/// [`super::rows::RowsDigest::to_bytes`]), after the two row arrays.
pub const ROWS_DIGEST_KEY: &str = "rowsDigest";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Zstd,
    Gzip,
}

stowage_shared::text_enum! {
    /// How an archive blob is encoded.
    pub enum BlobFormat {
        /// JSON, zstd, encrypted: `{tenant}/{job}.json.zst`.
        JsonZstd = "json.zst",
        /// JSON, gzip, encrypted: `{tenant}/{job}.json.gz`.
        JsonGzip = "json.gz",
        /// JSON, gzip, unencrypted, written by the earlier system: `{tenant}/{job}.json.gz`.
        LegacyJsonGzip = "legacy.json.gz",
    }
}

impl BlobFormat {
    pub fn written_as(compression: Compression) -> Self {
        match compression {
            Compression::Zstd => BlobFormat::JsonZstd,
            Compression::Gzip => BlobFormat::JsonGzip,
        }
    }

    /// The file extension of the blob key.
    pub fn extension(self) -> &'static str {
        match self {
            BlobFormat::JsonZstd => "json.zst",
            BlobFormat::JsonGzip | BlobFormat::LegacyJsonGzip => "json.gz",
        }
    }

    pub fn blob_key(self, tenant: &str, job: uuid::Uuid) -> String {
        format!("{tenant}/{job}.{}", self.extension())
    }
}
