//! Artifacts as stored and shown: where one lives and what reading it must produce.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stowage_shared::blob::encrypted::Expected;
use uuid::Uuid;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub id: Uuid,
    pub organization_id: String,
    pub binding_id: Uuid,
    pub object_key: String,
    pub name: String,
    pub purpose: String,
    pub content_type: String,
    pub size_bytes: i64,
    /// Plaintext SHA-256, lowercase hex.
    pub sha256: String,
    pub stored_bytes: i64,
    pub kek_id: String,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub delete_time: Option<DateTime<Utc>>,
}

impl Artifact {
    /// What a read of this artifact must produce.
    pub fn expected(&self) -> Expected {
        Expected {
            sha256: self.sha256.clone(),
            plaintext_len: u64::try_from(self.size_bytes).ok(),
        }
    }
}
