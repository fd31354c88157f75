//! Scan jobs as the scanning application records them: their statuses, and which of those
//! are terminal (the only ones ever archived).

use serde::{Deserialize, Serialize};

use super::payload::BlobFormat;

stowage_shared::text_enum! {
    /// A scan job's status, as the scanning application writes it.
    pub enum JobStatus {
        // Under way: never archived.
        Scanning = "SCANNING", ReadyToTransfer = "READY_TO_TRANSFER",
        Transferring = "TRANSFERRING", Paused = "PAUSED",
        // Ended (`TERMINAL`): archived once idle past their window.
        Cancelled = "CANCELLED", Failed = "FAILED",
        ScanComplete = "SCAN_COMPLETE", Completed = "COMPLETED",
    }
}

impl JobStatus {
    pub const TERMINAL: [JobStatus; 4] = [
        JobStatus::Cancelled,
        JobStatus::Failed,
        JobStatus::ScanComplete,
        JobStatus::Completed,
    ];

    pub fn is_terminal(self) -> bool {
        Self::TERMINAL.contains(&self)
    }
}

/// Longest tenant id, in characters.
pub const MAX_TENANT_ID: usize = 128;

/// Why `tenant` cannot name archive blobs (`{tenant}/{job}.json.zst`), if it cannot.
pub fn tenant_id_problem(tenant: &str) -> Option<&'static str> {
    if tenant.is_empty() {
        Some("is empty")
    } else if tenant.chars().count() > MAX_TENANT_ID {
        Some("is longer than 128 characters")
    } else if tenant.contains(['/', '\\']) {
        Some("contains a slash")
    } else if tenant == "." || tenant == ".." {
        Some("is a path step")
    } else if tenant.chars().any(char::is_control) {
        Some("contains control characters")
    } else {
        None
    }
}

/// A scan job's summary, which always stays hot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: uuid::Uuid,
    pub tenant_id: String,
    pub owner_id: String,
    pub name: String,
    pub status: JobStatus,
    pub file_count: i64,
    pub byte_count: i64,
    pub error_count: i64,
    pub terminal_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_activity_at: chrono::DateTime<chrono::Utc>,
    pub archive: Option<ArchiveInfo>,
}

/// Where and how a job's rows were archived; present while the job is archived.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArchiveInfo {
    pub archived_at: chrono::DateTime<chrono::Utc>,
    pub blob_key: String,
    pub format: BlobFormat,
    pub stored_bytes: Option<i64>,
    pub plaintext_bytes: Option<i64>,
    pub plaintext_sha256: Option<String>,
    pub kek_id: Option<String>,
    pub scan_items: Option<i64>,
    pub file_records: Option<i64>,
    pub rows_digest: Option<Vec<u8>>,
    /// The archive store version that holds the blob (`None` only for a job archived by
    /// an earlier release whose store was never adopted).
    pub store_version: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_that_cannot_name_a_blob_say_why() {
        for tenant in ["acme", "tenant-42", "Ünïcode", "a.b"] {
            assert_eq!(tenant_id_problem(tenant), None, "{tenant:?}");
        }
        let long = "x".repeat(MAX_TENANT_ID + 1);
        for (tenant, problem) in [
            ("", "is empty"),
            ("..", "is a path step"),
            (".", "is a path step"),
            ("../escape", "contains a slash"),
            ("acme/", "contains a slash"),
            ("a\\b", "contains a slash"),
            ("tab\there", "contains control characters"),
            (long.as_str(), "is longer than 128 characters"),
        ] {
            assert_eq!(tenant_id_problem(tenant), Some(problem), "{tenant:?}");
        }
    }
}
