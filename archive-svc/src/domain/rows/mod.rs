//! The per-file rows of a scan job: `scan_items` and `file_records`, as Rust values that
//! come out of PostgreSQL's binary COPY, go into the archive's JSON (camelCase keys, every
//! column, so a restore is lossless) and back into binary COPY. An order-independent
//! digest over every row proves a restore put back exactly what was archived.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::{
    binary_copy::BinaryCopyOutRow,
    types::{ToSql, Type},
};
use uuid::Uuid;

mod digest;
mod timestamp;

pub use digest::{Canonical, RowsDigest};

/// A row type of one of the two per-file tables.
pub trait Row: Serialize + for<'de> Deserialize<'de> + Send + 'static {
    /// Table, schema-qualified.
    const TABLE: &'static str;
    const COLUMNS: &'static str;
    const TYPES: &'static [Type];
    /// Key of the row array in the archive JSON.
    const JSON_KEY: &'static str;

    fn from_copy(row: &BinaryCopyOutRow) -> Result<Self, tokio_postgres::Error>;
    fn params(&self) -> Vec<&(dyn ToSql + Sync)>;
    fn job_id(&self) -> Uuid;
    /// Feeds a canonical encoding of every column to `out`.
    fn canonical(&self, out: &mut Canonical);
}

/// One file or folder a scan discovered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanItem {
    pub job_id: Uuid,
    pub id: i64,
    pub parent_id: Option<i64>,
    pub path: String,
    pub name: String,
    pub kind: String,
    pub size_bytes: Option<i64>,
    #[serde(with = "timestamp::option", default)]
    pub modified_at: Option<DateTime<Utc>>,
    pub etag: Option<String>,
    pub mime_type: Option<String>,
    pub status: String,
    pub error: Option<String>,
    #[serde(with = "timestamp")]
    pub discovered_at: DateTime<Utc>,
}

/// One file the migration attempted to transfer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileRecord {
    pub job_id: Uuid,
    pub id: i64,
    pub scan_item_id: Option<i64>,
    pub source_path: String,
    pub destination_path: Option<String>,
    pub size_bytes: i64,
    pub checksum: Option<String>,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    #[serde(with = "timestamp::option", default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "timestamp::option", default)]
    pub completed_at: Option<DateTime<Utc>>,
}

impl Row for ScanItem {
    const TABLE: &'static str = "archive.scan_items";
    const COLUMNS: &'static str = "job_id, id, parent_id, path, name, kind, size_bytes, \
        modified_at, etag, mime_type, status, error, discovered_at";
    const TYPES: &'static [Type] = &[
        Type::UUID,
        Type::INT8,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::TIMESTAMPTZ,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TIMESTAMPTZ,
    ];
    const JSON_KEY: &'static str = "scanItems";

    fn from_copy(row: &BinaryCopyOutRow) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            job_id: row.try_get(0)?,
            id: row.try_get(1)?,
            parent_id: row.try_get(2)?,
            path: row.try_get(3)?,
            name: row.try_get(4)?,
            kind: row.try_get(5)?,
            size_bytes: row.try_get(6)?,
            modified_at: row.try_get(7)?,
            etag: row.try_get(8)?,
            mime_type: row.try_get(9)?,
            status: row.try_get(10)?,
            error: row.try_get(11)?,
            discovered_at: row.try_get(12)?,
        })
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.job_id,
            &self.id,
            &self.parent_id,
            &self.path,
            &self.name,
            &self.kind,
            &self.size_bytes,
            &self.modified_at,
            &self.etag,
            &self.mime_type,
            &self.status,
            &self.error,
            &self.discovered_at,
        ]
    }

    fn job_id(&self) -> Uuid {
        self.job_id
    }

    fn canonical(&self, out: &mut Canonical) {
        out.tag(b'S');
        out.uuid(&self.job_id);
        out.int(self.id);
        out.opt_int(self.parent_id);
        out.text(&self.path);
        out.text(&self.name);
        out.text(&self.kind);
        out.opt_int(self.size_bytes);
        out.opt_time(self.modified_at.as_ref());
        out.opt_text(self.etag.as_deref());
        out.opt_text(self.mime_type.as_deref());
        out.text(&self.status);
        out.opt_text(self.error.as_deref());
        out.time(&self.discovered_at);
    }
}

impl Row for FileRecord {
    const TABLE: &'static str = "archive.file_records";
    const COLUMNS: &'static str = "job_id, id, scan_item_id, source_path, destination_path, \
        size_bytes, checksum, status, attempts, last_error, started_at, completed_at";
    const TYPES: &'static [Type] = &[
        Type::UUID,
        Type::INT8,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::INT4,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
    ];
    const JSON_KEY: &'static str = "fileRecords";

    fn from_copy(row: &BinaryCopyOutRow) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            job_id: row.try_get(0)?,
            id: row.try_get(1)?,
            scan_item_id: row.try_get(2)?,
            source_path: row.try_get(3)?,
            destination_path: row.try_get(4)?,
            size_bytes: row.try_get(5)?,
            checksum: row.try_get(6)?,
            status: row.try_get(7)?,
            attempts: row.try_get(8)?,
            last_error: row.try_get(9)?,
            started_at: row.try_get(10)?,
            completed_at: row.try_get(11)?,
        })
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.job_id,
            &self.id,
            &self.scan_item_id,
            &self.source_path,
            &self.destination_path,
            &self.size_bytes,
            &self.checksum,
            &self.status,
            &self.attempts,
            &self.last_error,
            &self.started_at,
            &self.completed_at,
        ]
    }

    fn job_id(&self) -> Uuid {
        self.job_id
    }

    fn canonical(&self, out: &mut Canonical) {
        out.tag(b'F');
        out.uuid(&self.job_id);
        out.int(self.id);
        out.opt_int(self.scan_item_id);
        out.text(&self.source_path);
        out.opt_text(self.destination_path.as_deref());
        out.int(self.size_bytes);
        out.opt_text(self.checksum.as_deref());
        out.text(&self.status);
        out.int(i64::from(self.attempts));
        out.opt_text(self.last_error.as_deref());
        out.opt_time(self.started_at.as_ref());
        out.opt_time(self.completed_at.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: i64, path: &str) -> ScanItem {
        ScanItem {
            job_id: Uuid::nil(),
            id,
            parent_id: None,
            path: path.into(),
            name: "n".into(),
            kind: "file".into(),
            size_bytes: Some(10),
            modified_at: None,
            etag: None,
            mime_type: Some("text/plain".into()),
            status: "DISCOVERED".into(),
            error: None,
            discovered_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
        }
    }

    #[test]
    fn digest_ignores_order_but_not_content() {
        let mut scratch = Canonical::default();
        let (a, b) = (item(1, "/a"), item(2, "/b"));
        let mut forward = RowsDigest::default();
        forward.add(&a, &mut scratch);
        forward.add(&b, &mut scratch);
        let mut backward = RowsDigest::default();
        backward.add(&b, &mut scratch);
        backward.add(&a, &mut scratch);
        assert_eq!(forward, backward);
        let mut changed = RowsDigest::default();
        changed.add(&a, &mut scratch);
        changed.add(&item(2, "/c"), &mut scratch);
        assert_ne!(forward, changed);
        assert_eq!(RowsDigest::from_bytes(&forward.to_bytes()), Some(forward));
    }

    #[test]
    fn timestamps_format_like_rfc3339_with_microseconds() {
        for micros in [
            0,
            1_700_000_000_000_000,
            1_700_000_000_123_456,
            253_402_300_799_999_999,
        ] {
            let at = DateTime::from_timestamp_micros(micros).unwrap();
            let mut out = [0u8; 27];
            timestamp::format(&at, &mut out);
            let text = std::str::from_utf8(&out).unwrap();
            assert_eq!(
                text,
                at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            );
            assert_eq!(text.parse::<DateTime<Utc>>().unwrap(), at);
        }
    }

    #[test]
    fn json_uses_camel_case_keys_and_keeps_microseconds() {
        let json = serde_json::to_string(&item(1, "/a")).unwrap();
        assert!(
            json.contains("\"discoveredAt\":\"2023-11-14T22:13:20.123456Z\""),
            "{json}"
        );
        assert!(json.contains("\"mimeType\":\"text/plain\""));
        let back: ScanItem = serde_json::from_str(&json).unwrap();
        assert_eq!(back, item(1, "/a"));
    }
}
