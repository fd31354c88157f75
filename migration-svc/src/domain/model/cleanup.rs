//! Verified source cleanup as stored and shown: what a cleanup of a run is asked to do,
//! each migrated item it looks at (the artifact's current copy and the source copy the
//! migration left), what became of it and why, and the totals.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use stowage_shared::text_enum;

use super::{artifacts::Artifact, runs::Mode};

/// A cleanup of one live run's sources.
#[derive(Clone, Debug)]
pub struct CleanupRun {
    pub run_id: Uuid,
    /// A dry run verifies and reports what it would delete, and deletes nothing.
    pub mode: Mode,
    pub reason: String,
    /// Most items to look at (due or not); `None` is every one.
    pub limit: Option<i64>,
}

text_enum! {
    /// How far the deletion of a source copy went.
    pub enum SourceCleanup {
        /// Recorded before the source object is deleted: the next cleanup finishes it.
        Deleting = "deleting",
        Deleted = "deleted",
    }
}

/// A migrated item whose source copy has not been deleted yet.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The artifact as it is now: its current binding and key are the copy verified.
    pub artifact: Artifact,
    pub source_binding_id: Uuid,
    pub source_object_key: String,
    /// When the item migrated; the source is due once the waiting window has passed.
    pub migrated_at: DateTime<Utc>,
    pub cleanup: Option<SourceCleanup>,
}

/// What a deletion sees under its locks: whether the source binding is active, and where
/// the artifact is read from now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteGuard {
    pub source_active: bool,
    pub binding_id: Uuid,
    pub object_key: String,
}

text_enum! {
    /// What became of one item.
    pub enum CleanupState {
        /// The current copy verified and the source object is gone.
        VerifiedAndDeleted = "verified_and_deleted",
        /// A dry run: the current copy verified; a live cleanup would delete the source.
        WouldDelete = "would_delete",
        /// Migrated less than the waiting window ago: nothing read or deleted.
        SkippedNotDue = "skipped_not_due",
        /// The source is untouched; the cause says why.
        Failed = "failed",
    }
}

text_enum! {
    /// Why an item's source was not deleted.
    pub enum CleanupCause {
        /// The current copy is not in its store.
        TargetMissing = "target_missing",
        /// The current copy does not decrypt or does not match the artifact's digest.
        TargetCorrupt = "target_corrupt",
        /// The current copy's store could not be read.
        TargetUnverifiable = "target_unverifiable",
        /// The source's store refused or failed the delete (or could not be opened).
        SourceDeleteFailed = "source_delete_failed",
        /// The source binding is active again (a migration back to it may be writing the
        /// same key), or the source is the artifact's current copy.
        SourceInUse = "source_in_use",
        /// The artifact moved to another copy while it was verified; the next cleanup
        /// verifies that one.
        ArtifactChanged = "artifact_changed",
    }
}

/// One item looked at.
#[derive(Clone, Debug, PartialEq)]
pub struct Cleaned {
    pub artifact_id: Uuid,
    pub source_binding_id: Uuid,
    pub source_object_key: String,
    /// The binding whose copy was verified.
    pub verified_binding_id: Uuid,
    pub state: CleanupState,
    pub cause: Option<CleanupCause>,
    pub detail: String,
    /// When a not-due source becomes due.
    pub due_time: DateTime<Utc>,
}

/// A cleanup's totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanupSummary {
    pub deleted: i64,
    pub would_delete: i64,
    pub not_due: i64,
    pub failed: i64,
    /// Plaintext bytes of the artifacts whose source was deleted (or would be).
    pub bytes: i64,
    /// The earliest time a not-due source becomes due.
    pub next_due_time: Option<DateTime<Utc>>,
}

impl CleanupSummary {
    /// Counts `cleaned`, an artifact of `size_bytes`.
    pub fn add(&mut self, cleaned: &Cleaned, size_bytes: i64) {
        match cleaned.state {
            CleanupState::VerifiedAndDeleted => {
                self.deleted += 1;
                self.bytes += size_bytes;
            }
            CleanupState::WouldDelete => {
                self.would_delete += 1;
                self.bytes += size_bytes;
            }
            CleanupState::SkippedNotDue => {
                self.not_due += 1;
                let due = cleaned.due_time;
                self.next_due_time = Some(self.next_due_time.map_or(due, |next| next.min(due)));
            }
            CleanupState::Failed => self.failed += 1,
        }
    }
}
