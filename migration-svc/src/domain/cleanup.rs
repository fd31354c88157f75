//! Verified source cleanup (`CleanupRun`): opt-in, never automatic. Once the waiting
//! window has passed since an item of a live run migrated, its artifact's current copy is
//! read again and checked against the artifact's digest, and only then is the source copy
//! the migration left deleted, with the source binding's own credential. A copy that fails
//! the check leaves the source untouched and records a security event; a store that cannot
//! be read leaves it untouched too. Each deletion is recorded `deleting` before the source
//! object goes and `deleted` after, with a domain event naming what, where, when and which
//! verification, so a cleanup that dies between the two is finished by the next one (which
//! verifies again first). One cleanup of a run at a time.

use std::time::Duration;

use async_stream::try_stream;
use chrono::{DateTime, Utc};
use futures::Stream;
use serde_json::json;
use stowage_shared::{
    auth::{Principal, Role},
    blob::{BlobError, BlobKey},
    db::{GenericClient, RowLock, lock::AdvisoryLock},
    sweep::Verdict,
};
use uuid::Uuid;

use super::{
    evidence,
    model::{
        cleanup::{
            Candidate, Cleaned, CleanupCause, CleanupRun, CleanupState, CleanupSummary,
            DeleteGuard, SourceCleanup,
        },
        evidence::AuditEntry,
        runs::{Mode, Run},
    },
    stores::Stores,
    verify::Verifier,
};
use crate::{
    db,
    error::{Error, Result},
    metrics::CLEANED,
};

/// Domain event of a source copy deleted after its artifact's current copy verified.
pub const SOURCE_DELETED: &str = "storageSourceDeleted";
/// Security event of a current copy that failed the check before its source was deleted.
pub const CLEANUP_VERIFICATION_FAILED: &str = "storageCleanupVerificationFailed";
/// Items read per page.
const PAGE: i64 = 200;

/// What a cleanup reports as it goes: each item, then the totals.
#[derive(Clone, Debug, PartialEq)]
pub enum CleanupReport {
    Item(Cleaned),
    Summary(CleanupSummary),
}

#[derive(Clone, Debug)]
pub struct Cleaner {
    pool: deadpool_postgres::Pool,
    stores: Stores,
    verifier: Verifier,
    /// How long after an item migrated its source may be deleted.
    window: Duration,
}

impl Cleaner {
    pub fn new(pool: deadpool_postgres::Pool, stores: Stores, window: Duration) -> Self {
        let verifier = Verifier::new(pool.clone(), stores.clone());
        Self {
            pool,
            stores,
            verifier,
            window,
        }
    }

    /// Cleans (or, in a dry run, verifies) the sources of run `command.run_id`: audited
    /// before anything is read; then each item as it is decided, then the totals.
    pub async fn cleanup(
        &self,
        caller: &Principal,
        command: CleanupRun,
    ) -> Result<impl Stream<Item = Result<CleanupReport>> + Send + 'static> {
        caller.require(Role::OrgAdmin)?;
        let run = self.cleanable_run(caller, command.run_id).await?;
        let lock = AdvisoryLock::try_acquire(
            self.pool.get().await?,
            format!("migration.cleanup/{}", run.id),
        )
        .await?
        .ok_or_else(|| {
            Error::FailedPrecondition(format!("a cleanup of run {} is in flight", run.id))
        })?;
        self.audit(caller, &run, &command).await?;
        let (this, organization) = (self.clone(), caller.organization.clone());
        Ok(try_stream! {
            // Held until the stream ends; dropped with it if the caller goes away.
            let _lock = lock;
            let mut summary = CleanupSummary::default();
            let (mut after, mut left) = (None, command.limit.unwrap_or(i64::MAX));
            while left > 0 {
                let page = {
                    let client = this.pool.get().await?;
                    db::cleanup::candidates(&client, run.id, after, PAGE.min(left)).await?
                };
                let Some(last) = page.last() else { break };
                after = Some(last.artifact.id);
                left -= page.len() as i64;
                for candidate in page {
                    let cleaned = this.clean(&organization, &run, &candidate, command.mode).await?;
                    summary.add(&cleaned, candidate.artifact.size_bytes);
                    metrics::counter!(CLEANED, "result" => cleaned.state.as_str()).increment(1);
                    yield CleanupReport::Item(cleaned);
                }
            }
            yield CleanupReport::Summary(summary);
        })
    }

    /// The run, if its sources can be cleaned: a live run of the caller's that has ended.
    async fn cleanable_run(&self, caller: &Principal, id: Uuid) -> Result<Run> {
        let client = self.pool.get().await?;
        let run = db::runs::RUNS
            .get(&client, Some(&caller.organization), id, RowLock::No)
            .await?
            .ok_or_else(|| Error::NotFound(format!("run {id}")))?;
        if run.mode != Mode::Live {
            return Err(Error::FailedPrecondition(format!(
                "run {id} is a dry run: it moved nothing, so it left no source to clean"
            )));
        }
        if !run.state.is_terminal() {
            return Err(Error::FailedPrecondition(format!(
                "run {id} is {}: clean its sources once it has ended",
                run.state.as_str()
            )));
        }
        Ok(run)
    }

    async fn audit(&self, caller: &Principal, run: &Run, command: &CleanupRun) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let entry = AuditEntry::new(caller, "CleanupRun")
            .run(run.id)
            .mode(command.mode)
            .reason(&command.reason)
            .detail(json!({
                "waiting_window_seconds": self.window.as_secs(),
                "limit": command.limit,
            }));
        evidence::audit(&tx, &entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Decides one item: not due, or verified and then (live) its source deleted, or
    /// failed with the source untouched.
    async fn clean(
        &self,
        organization: &str,
        run: &Run,
        candidate: &Candidate,
        mode: Mode,
    ) -> Result<Cleaned> {
        let artifact = &candidate.artifact;
        let due_time = due_time(candidate.migrated_at, self.window);
        let mut cleaned = Cleaned {
            artifact_id: artifact.id,
            source_binding_id: candidate.source_binding_id,
            source_object_key: candidate.source_object_key.clone(),
            verified_binding_id: artifact.binding_id,
            state: CleanupState::SkippedNotDue,
            cause: None,
            detail: String::new(),
            due_time,
        };
        if Utc::now() < due_time {
            return Ok(cleaned);
        }
        let checked = self.verifier.check(artifact).await;
        if let Some(cause) = failed_check(checked.verdict) {
            cleaned.state = CleanupState::Failed;
            cleaned.cause = Some(cause);
            cleaned.detail = checked.detail;
            self.refuse(organization, run, candidate, &cleaned).await?;
            return Ok(cleaned);
        }
        if mode == Mode::DryRun {
            cleaned.state = CleanupState::WouldDelete;
            return Ok(cleaned);
        }
        self.delete_source(organization, run, candidate, &mut cleaned)
            .await?;
        Ok(cleaned)
    }

    /// The current copy failed its check: the source stays, a deletion begun earlier is
    /// called off, and a missing or corrupt copy is a security event.
    async fn refuse(
        &self,
        organization: &str,
        run: &Run,
        candidate: &Candidate,
        cleaned: &Cleaned,
    ) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if candidate.cleanup.is_some() {
            db::cleanup::mark(&tx, run.id, cleaned.artifact_id, None).await?;
        }
        if cleaned.cause != Some(CleanupCause::TargetUnverifiable) {
            tracing::error!(artifact = %cleaned.artifact_id, run = %run.id,
                "a migrated artifact failed its check before cleanup; its source is kept");
            let detail = json!({
                "artifact_id": cleaned.artifact_id,
                "cause": cleaned.cause.map(CleanupCause::as_str),
                "verified_binding_id": cleaned.verified_binding_id,
                "source_binding_id": cleaned.source_binding_id,
                "source_kept": true,
            });
            db::evidence::record_security_event(
                &tx,
                organization,
                CLEANUP_VERIFICATION_FAILED,
                Some(run.id),
                Some(cleaned.verified_binding_id),
                &detail,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a verified item's source: `deleting` recorded first; then, in one
    /// transaction holding the source binding's row (it cannot become active) and the
    /// artifact's (it cannot move), the source checked to be unused, the object deleted
    /// with the source binding's credential (already gone counts as deleted), and
    /// `deleted` recorded with the domain event. Anything else calls the deletion off.
    async fn delete_source(
        &self,
        organization: &str,
        run: &Run,
        candidate: &Candidate,
        cleaned: &mut Cleaned,
    ) -> Result<()> {
        let artifact_id = cleaned.artifact_id;
        let mut client = self.pool.get().await?;
        let deleting = Some(SourceCleanup::Deleting);
        db::cleanup::mark(&client, run.id, artifact_id, deleting).await?;
        let tx = client.transaction().await?;
        let guard =
            db::cleanup::lock_for_delete(&tx, candidate.source_binding_id, artifact_id).await?;
        let deleted = match may_delete(&guard, candidate) {
            Err(refusal) => Err(refusal),
            Ok(()) => self
                .delete_object(organization, candidate)
                .await
                .map_err(|e| (CleanupCause::SourceDeleteFailed, e.to_string())),
        };
        match deleted {
            Err((cause, detail)) => {
                db::cleanup::mark(&tx, run.id, artifact_id, None).await?;
                tracing::warn!(artifact = %artifact_id, cause = cause.as_str(), %detail,
                    "a source copy was not deleted");
                cleaned.state = CleanupState::Failed;
                cleaned.cause = Some(cause);
                cleaned.detail = detail;
            }
            Ok(already_gone) => {
                record_deleted(&tx, organization, run, candidate, already_gone).await?;
                cleaned.state = CleanupState::VerifiedAndDeleted;
                if already_gone {
                    cleaned.detail = "the source object was already gone".into();
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes the source object with the source binding's credential; whether it was
    /// already gone.
    async fn delete_object(&self, organization: &str, candidate: &Candidate) -> Result<bool> {
        let (_, store) = self
            .stores
            .open(organization, candidate.source_binding_id)
            .await?;
        let key = BlobKey::new(candidate.source_object_key.clone())?;
        match store.store().delete(&key).await {
            Ok(()) => Ok(false),
            Err(BlobError::NotFound(_)) => Ok(true),
            Err(error) => Err(error.into()),
        }
    }
}

/// Records a source deleted: `deleted`, and the domain event naming what, where, when and
/// the copy that verified.
async fn record_deleted(
    tx: &impl GenericClient,
    organization: &str,
    run: &Run,
    candidate: &Candidate,
    already_gone: bool,
) -> Result<()> {
    let artifact = &candidate.artifact;
    db::cleanup::mark(tx, run.id, artifact.id, Some(SourceCleanup::Deleted)).await?;
    let payload = json!({
        "artifact_id": artifact.id,
        "source_binding_id": candidate.source_binding_id,
        "source_object_key": candidate.source_object_key,
        "already_absent": already_gone,
        "deleted_time": Utc::now(),
        "verification": {
            "binding_id": artifact.binding_id,
            "object_key": artifact.object_key,
            "sha256": artifact.sha256,
            "size_bytes": artifact.size_bytes,
        },
    });
    db::evidence::record_domain_event(tx, organization, SOURCE_DELETED, run.id, &payload).await
}

/// Whether a verified item's source may go, as its locks show it: not on an active binding
/// (a migration back to it may be writing the same key), not the artifact's current copy,
/// and the artifact still where it was verified.
fn may_delete(guard: &DeleteGuard, candidate: &Candidate) -> Result<(), (CleanupCause, String)> {
    let source = (
        candidate.source_binding_id,
        candidate.source_object_key.as_str(),
    );
    let current = (guard.binding_id, guard.object_key.as_str());
    let verified = (
        candidate.artifact.binding_id,
        candidate.artifact.object_key.as_str(),
    );
    if guard.source_active {
        Err((
            CleanupCause::SourceInUse,
            "the source binding is active again; its copies are kept".into(),
        ))
    } else if current == source {
        Err((
            CleanupCause::SourceInUse,
            "the source is the artifact's current copy".into(),
        ))
    } else if current != verified {
        Err((
            CleanupCause::ArtifactChanged,
            "the artifact moved while it was verified; the next cleanup verifies its new copy"
                .into(),
        ))
    } else {
        Ok(())
    }
}

/// When the source of an item migrated at `migrated_at` becomes due.
fn due_time(migrated_at: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    migrated_at
        .checked_add_signed(window)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Why a check's verdict keeps the source; `None` when the copy verified.
fn failed_check(verdict: Verdict) -> Option<CleanupCause> {
    match verdict {
        Verdict::Ok => None,
        Verdict::Missing => Some(CleanupCause::TargetMissing),
        Verdict::Corrupt => Some(CleanupCause::TargetCorrupt),
        Verdict::Unverifiable | Verdict::Shredded => Some(CleanupCause::TargetUnverifiable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::artifacts::Artifact;

    #[test]
    fn only_a_verified_copy_lets_a_source_go() {
        assert_eq!(failed_check(Verdict::Ok), None);
        for verdict in [Verdict::Missing, Verdict::Corrupt, Verdict::Unverifiable] {
            assert!(failed_check(verdict).is_some(), "{verdict:?}");
        }
    }

    fn candidate() -> Candidate {
        let (source, current) = (Uuid::from_u128(1), Uuid::from_u128(2));
        Candidate {
            artifact: Artifact {
                id: Uuid::from_u128(9),
                organization_id: "acme".into(),
                binding_id: current,
                object_key: "artifacts/2/9".into(),
                name: "n".into(),
                purpose: "p".into(),
                content_type: "c".into(),
                size_bytes: 1,
                sha256: "s".into(),
                stored_bytes: 1,
                kek_id: "k".into(),
                create_time: Utc::now(),
                update_time: Utc::now(),
                delete_time: None,
            },
            source_binding_id: source,
            source_object_key: "artifacts/1/9".into(),
            migrated_at: Utc::now(),
            cleanup: None,
        }
    }

    #[test]
    fn a_source_goes_only_if_unused_and_the_artifact_is_where_it_was_verified() {
        let c = candidate();
        let at = |binding: u128, key: &str, source_active| DeleteGuard {
            source_active,
            binding_id: Uuid::from_u128(binding),
            object_key: key.into(),
        };
        assert_eq!(may_delete(&at(2, "artifacts/2/9", false), &c), Ok(()));
        let cause = |guard| may_delete(&guard, &c).unwrap_err().0;
        assert_eq!(
            cause(at(2, "artifacts/2/9", true)),
            CleanupCause::SourceInUse
        );
        assert_eq!(
            cause(at(1, "artifacts/1/9", false)),
            CleanupCause::SourceInUse
        );
        assert_eq!(
            cause(at(3, "artifacts/3/9", false)),
            CleanupCause::ArtifactChanged
        );
    }

    #[test]
    fn a_source_is_due_a_full_window_after_it_migrated() {
        let migrated = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let week = Duration::from_secs(7 * 86_400);
        assert_eq!(
            due_time(migrated, week).to_rfc3339(),
            "2026-01-08T00:00:00+00:00"
        );
        assert_eq!(due_time(migrated, Duration::MAX), DateTime::<Utc>::MAX_UTC);
    }
}
