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
use chrono::Utc;
use futures::Stream;
use serde_json::json;
use stowage_shared::{
    auth::{Principal, Role},
    blob::{BlobError, BlobKey},
    db::{GenericClient, RowLock, lock::AdvisoryLock},
};
use uuid::Uuid;

use self::rules::{due_time, failed_check, may_delete};
use super::{
    evidence,
    model::{
        cleanup::{
            Candidate, Cleaned, CleanupCause, CleanupRun, CleanupState, CleanupSummary,
            SourceCleanup,
        },
        evidence::AuditEntry,
        runs::{Mode, Run},
    },
    stores::Stores,
    verify::{Opened, Verifier},
};
use crate::{
    db,
    error::{Error, Result},
    metrics::CLEANED,
};

mod rules;

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
            let mut opened = Opened::default();
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
                    let cleaned = this.clean(&organization, &run, &candidate, command.mode, &mut opened).await?;
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
            .find(&client, Some(&caller.organization), id, RowLock::No)
            .await?;
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
        opened: &mut Opened,
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
        let checked = self.verifier.check(artifact, opened).await;
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
