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

mod column;
mod digest;
mod timestamp;

use column::Column;
pub use digest::{Canonical, RowsDigest};

/// A row type of one of the two per-file tables, declared with `table_row!` (below).
pub trait Row: Serialize + for<'de> Deserialize<'de> + Send + 'static {
    /// Table, schema-qualified.
    const TABLE: &'static str;
    /// Every column, in the order of the fields (and of `TYPES`).
    const COLUMNS: &'static [&'static str];
    const TYPES: &'static [Type];
    /// Key of the row array in the archive JSON.
    const JSON_KEY: &'static str;

    fn from_copy(row: &BinaryCopyOutRow) -> Result<Self, tokio_postgres::Error>;
    fn params(&self) -> Vec<&(dyn ToSql + Sync)>;
    fn job_id(&self) -> Uuid;
    /// Feeds a canonical encoding of every column to `out`.
    fn canonical(&self, out: &mut Canonical);
}

/// Declares a row type from its struct: its columns are the fields, in order and named
/// alike; their types in COPY and their canonical encodings follow from the fields' Rust
/// types ([`Column`]). A column added to the struct is copied out, archived, restored and
/// digested with no other edit. The tag starts every row's canonical encoding, so rows of
/// the two tables never encode alike.
macro_rules! table_row {
    (
        #[row(table = $table:literal, json = $json:literal, tag = $tag:literal)]
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* pub $field:ident: $type:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            $( $(#[$field_meta])* pub $field: $type, )*
        }

        impl Row for $name {
            const TABLE: &'static str = $table;
            const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),*];
            const TYPES: &'static [Type] = &[$(<$type as Column>::TYPE),*];
            const JSON_KEY: &'static str = $json;

            fn from_copy(row: &BinaryCopyOutRow) -> Result<Self, tokio_postgres::Error> {
                let mut at = 0;
                Ok(Self {
                    $($field: {
                        at += 1;
                        row.try_get(at - 1)?
                    },)*
                })
            }

            fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
                vec![$(&self.$field),*]
            }

            fn job_id(&self) -> Uuid {
                self.job_id
            }

            fn canonical(&self, out: &mut Canonical) {
                out.tag($tag);
                $(self.$field.encode(out);)*
            }
        }
    };
}

table_row! {
    #[row(table = "archive.scan_items", json = "scanItems", tag = b'S')]
    /// One file or folder a scan discovered.
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
}

table_row! {
    #[row(table = "archive.file_records", json = "fileRecords", tag = b'F')]
    /// One file the migration attempted to transfer.
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

    fn record(id: i64) -> FileRecord {
        FileRecord {
            job_id: Uuid::from_u128(7),
            id,
            scan_item_id: Some(id),
            source_path: "/src/a".into(),
            destination_path: None,
            size_bytes: 4096,
            checksum: Some("c0ffee".into()),
            status: "COMPLETED".into(),
            attempts: 3,
            last_error: None,
            started_at: DateTime::from_timestamp_micros(1_700_000_000_000_001),
            completed_at: None,
        }
    }

    /// Archives written before a change carry digests made by the code before it: the
    /// canonical encoding of both row types must not move.
    #[test]
    fn the_canonical_encoding_of_both_row_types_is_fixed() {
        let mut scratch = Canonical::default();
        let mut digest = RowsDigest::default();
        let mut full = item(1, "/a");
        (full.modified_at, full.etag, full.error) =
            (Some(full.discovered_at), Some("e".into()), Some("x".into()));
        for row in [item(2, "/b"), full] {
            digest.add(&row, &mut scratch);
        }
        for id in [1, 2] {
            digest.add(&record(id), &mut scratch);
        }
        let hex: String = digest
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "ba8afb4ec74481f342553eb85ef3f25c0000000000000004");
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
