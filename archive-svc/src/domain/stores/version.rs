//! The archive store's versions as `db/stores.rs` reads and writes them: a leaf, so the
//! queries need nothing of the store logic that uses them.

use chrono::{DateTime, Utc};

/// One version of the archive store, as recorded (the setting still sealed).
#[derive(Clone, Debug)]
pub struct StoreVersion {
    pub version: i64,
    pub provider: String,
    pub location: String,
    pub credential_kind: String,
    pub sealed_setting: Vec<u8>,
    pub credential_version: i32,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub credential_updated_at: Option<DateTime<Utc>>,
    pub credential_updated_by: Option<String>,
    /// Archived jobs whose blob is in this version.
    pub archived_jobs: i64,
    /// Blobs of this version waiting for the sweeper.
    pub pending_deletes: i64,
    /// Whether new archives go here (the newest version).
    pub current: bool,
}

/// A version to add.
#[derive(Debug)]
pub struct NewStore<'a> {
    pub provider: &'a str,
    pub location: &'a str,
    pub credential_kind: &'a str,
    pub sealed_setting: &'a [u8],
    pub created_at: Option<DateTime<Utc>>,
    pub created_by: &'a str,
    pub reason: Option<&'a str>,
}
