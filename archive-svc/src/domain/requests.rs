//! What callers ask of the archive, validated. The wire adapter turns each request message
//! into one of these (a bad field is `INVALID_ARGUMENT` naming it), and the domain works
//! with them, never with wire types.

use stowage_shared::api::RequestId;
use uuid::Uuid;

use super::{payload::Compression, relocate::MoveMode, service::Trigger, stores::StoreSetting};

/// `ArchiveJob`: archive one job now.
#[derive(Debug)]
pub struct ArchiveNow {
    pub job_id: Uuid,
    pub reason: String,
    pub compression: Compression,
    pub request_id: RequestId,
}

/// `DeleteJob`.
#[derive(Debug)]
pub struct DeleteJob {
    pub job_id: Uuid,
    pub reason: String,
    pub request_id: RequestId,
}

/// `RestoreJob`.
#[derive(Debug)]
pub struct RestoreJob {
    pub job_id: Uuid,
    pub trigger: Trigger,
}

/// `ListJobArchives`: one page of the caller's jobs.
#[derive(Debug)]
pub struct ListJobs {
    /// `None` lists hot and archived jobs.
    pub archived: Option<bool>,
    pub after: Option<Uuid>,
    pub limit: i64,
}

/// `ArchiveEligibleJobs`: the schedule's logic on demand; a limit of 0 is the configured
/// jobs per tick.
#[derive(Debug)]
pub struct ArchiveDue {
    pub reason: String,
    pub limit: u32,
}

/// `SetArchiveStore`: a new store version.
#[derive(Debug)]
pub struct SetStore {
    pub setting: StoreSetting,
    pub reason: String,
    pub request_id: RequestId,
}

/// `UpdateArchiveStoreCredential`: a new credential for one version's store.
#[derive(Debug)]
pub struct UpdateStoreCredential {
    pub version: i64,
    pub setting: StoreSetting,
    pub reason: String,
}

/// `MigrateArchives`.
#[derive(Debug)]
pub struct MigrateArchives {
    pub mode: MoveMode,
    pub reason: String,
    /// `None` moves every archive not in the newest version.
    pub limit: Option<u64>,
}

/// `DestroyTenantKeys`: crypto-shred a tenant's archives.
#[derive(Debug)]
pub struct DestroyTenantKeys {
    pub tenant_id: String,
    pub reason: String,
}
