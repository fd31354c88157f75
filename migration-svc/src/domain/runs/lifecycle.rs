//! Every terminal transition of a run (COMPLETED, COMPLETED_WITH_ERRORS, FAILED,
//! CANCELLED) in one place: the pure rule that picks a finished run's end from its counts,
//! and the one step that ends a locked run with its items, domain event and security event.

use serde_json::json;
use stowage_shared::db::GenericClient;
use stowage_shared::db::RowLock;
use uuid::Uuid;

use crate::{
    db,
    domain::{
        evidence::{MIGRATION_FAILED_CLOSED, RUN_COMPLETED, RUN_FAILED},
        model::runs::{Counts, FailureCause, ItemCause, Run, RunState},
    },
    error::Result,
};

/// Why a run ends FAILED.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub cause: FailureCause,
    pub detail: String,
}

impl Failure {
    pub fn new(cause: FailureCause, detail: impl Into<String>) -> Self {
        Self {
            cause,
            detail: detail.into(),
        }
    }
}

/// How a run ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    Completed,
    CompletedWithErrors,
    Cancelled,
    Failed(Failure),
}

impl Ending {
    pub fn state(&self) -> RunState {
        match self {
            Ending::Completed => RunState::Completed,
            Ending::CompletedWithErrors => RunState::CompletedWithErrors,
            Ending::Cancelled => RunState::Cancelled,
            Ending::Failed(_) => RunState::Failed,
        }
    }

    fn failure(&self) -> Option<&Failure> {
        match self {
            Ending::Failed(failure) => Some(failure),
            _ => None,
        }
    }
}

/// How a running run ends once its counts say it is done: `None` while an item is leased,
/// or (without a cancel) still queued; CANCELLED if a cancel left items queued;
/// COMPLETED_WITH_ERRORS if any item failed; else COMPLETED.
pub fn finished(counts: &Counts, cancel_requested: bool) -> Option<Ending> {
    if counts.running > 0 || (counts.queued > 0 && !cancel_requested) {
        None
    } else if counts.queued > 0 {
        Some(Ending::Cancelled)
    } else if counts.failed > 0 {
        Some(Ending::CompletedWithErrors)
    } else {
        Some(Ending::Completed)
    }
}

/// Ends `run`, locked by `tx` and not yet ended. A FAILED run ends its open items with it
/// (each with an outcome number, so watchers see them and late records from other replicas
/// find no lease), and one that was RUNNING failed closed: a security event says so.
/// Returns the ended run.
pub async fn end_locked(tx: &impl GenericClient, run: &Run, ending: &Ending) -> Result<Run> {
    let failure = ending.failure();
    if let Some(failure) = failure {
        fail_open_items(tx, run, &failure.detail).await?;
    }
    db::runs::end(
        tx,
        run.id,
        ending.state(),
        failure.map(|f| f.cause),
        failure.map(|f| f.detail.as_str()),
    )
    .await?;
    let ended = db::runs::RUNS.find(tx, None, run.id, RowLock::No).await?;
    record_end(tx, &ended).await?;
    if let Some(failure) = failure
        && run.state == RunState::Running
    {
        record_failed_closed(tx, run, failure).await?;
    }
    Ok(ended)
}

/// Ends the run in its own transaction unless it has ended already; returns whether it did.
pub async fn end(pool: &deadpool_postgres::Pool, run_id: Uuid, ending: &Ending) -> Result<bool> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let Some(current) = db::runs::RUNS
        .get(&tx, None, run_id, RowLock::ForUpdate)
        .await?
    else {
        return Ok(false);
    };
    if current.state.is_terminal() {
        return Ok(false);
    }
    end_locked(&tx, &current, ending).await?;
    tx.commit().await?;
    ended(run_id, ending);
    Ok(true)
}

/// Counts and logs a run that ended (after its transaction committed).
pub fn ended(run_id: Uuid, ending: &Ending) {
    let state = ending.state().as_str();
    match ending.failure() {
        Some(failure) => {
            tracing::warn!(run = %run_id, state, cause = failure.cause.as_str(), detail = %failure.detail, "run ended")
        }
        None => tracing::info!(run = %run_id, state, "run ended"),
    }
    metrics::counter!("migration_runs_ended_total", "state" => state).increment(1);
}

/// Items leased and items never started end FAILED, so a FAILED run's counts tell the
/// truth: nothing is left queued or running behind a run that will not go on.
async fn fail_open_items(tx: &impl GenericClient, run: &Run, detail: &str) -> Result<()> {
    let closing = format!("the run failed before this item was recorded: {detail}");
    db::items::fail_running(
        tx,
        run.id,
        ItemCause::TargetUnavailable,
        &closing,
        run.last_outcome,
    )
    .await?;
    let never_started = format!("the run failed before this item was started: {detail}");
    db::items::fail_queued(tx, run.id, ItemCause::RunFailed, &never_started).await?;
    Ok(())
}

/// The security event of a run that failed closed: nothing fell back to another store.
async fn record_failed_closed(tx: &impl GenericClient, run: &Run, failure: &Failure) -> Result<()> {
    let security = json!({
        "cause": failure.cause.as_str(),
        "detail": failure.detail,
        "target_binding_id": run.target_binding_id,
        "fallback": "none: migrated items stay migrated, the rest stay on their source",
    });
    tracing::error!(run = %run.id, cause = failure.cause.as_str(), "run failed closed");
    db::evidence::record_security_event(
        tx,
        &run.organization_id,
        MIGRATION_FAILED_CLOSED,
        Some(run.id),
        Some(run.target_binding_id),
        &security,
    )
    .await
}

/// The domain event of a run that ended, in the transaction that ended it.
async fn record_end(client: &impl GenericClient, run: &Run) -> Result<()> {
    let kind = if run.state == RunState::Failed {
        RUN_FAILED
    } else {
        RUN_COMPLETED
    };
    let duration = run
        .end_time
        .zip(run.start_time.or(Some(run.create_time)))
        .map(|(end, start)| (end - start).num_milliseconds() as f64 / 1000.0);
    let payload = json!({
        "state": run.state.as_str(),
        "mode": run.mode.as_str(),
        "target_binding_id": run.target_binding_id,
        "items": run.counts,
        "bytes_total": run.bytes_total,
        "bytes_migrated": run.bytes_migrated,
        "sources": run.sources,
        "duration_seconds": duration,
        "failure_cause": run.failure_cause.map(FailureCause::as_str),
        "failure_detail": run.failure_detail,
        "retry_of": run.retry_of,
    });
    db::evidence::record_domain_event(client, &run.organization_id, kind, run.id, &payload).await
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn counts(queued: i64, running: i64, failed: i64) -> Counts {
        Counts {
            queued,
            running,
            migrated: 3,
            skipped: 1,
            failed,
        }
    }

    #[test]
    fn a_run_with_a_leased_item_is_not_finished_even_when_cancelled() {
        assert_eq!(finished(&counts(0, 1, 0), false), None);
        assert_eq!(finished(&counts(0, 1, 0), true), None);
    }

    #[test]
    fn a_run_with_queued_items_goes_on_unless_cancelled() {
        assert_eq!(finished(&counts(2, 0, 0), false), None);
        assert_eq!(finished(&counts(2, 0, 0), true), Some(Ending::Cancelled));
    }

    #[test]
    fn a_finished_run_with_a_failure_completes_with_errors() {
        assert_eq!(
            finished(&counts(0, 0, 1), false),
            Some(Ending::CompletedWithErrors)
        );
        assert_eq!(
            finished(&counts(0, 0, 1), true),
            Some(Ending::CompletedWithErrors)
        );
    }

    #[test]
    fn a_finished_run_without_failures_completes() {
        assert_eq!(finished(&counts(0, 0, 0), false), Some(Ending::Completed));
    }

    #[test]
    fn only_a_failed_ending_names_a_failure() {
        let failed = Ending::Failed(Failure::new(FailureCause::TargetUnavailable, "down"));
        assert_eq!(failed.state(), RunState::Failed);
        assert!(failed.failure().is_some());
        for ending in [
            Ending::Completed,
            Ending::CompletedWithErrors,
            Ending::Cancelled,
        ] {
            assert!(ending.state().is_terminal());
            assert!(ending.failure().is_none());
        }
    }

    proptest! {
        #[test]
        fn the_counts_decide_the_end_and_never_fail_a_run(
            queued in 0i64..5, running in 0i64..5, failed in 0i64..5, cancel: bool,
        ) {
            let ending = finished(&counts(queued, running, failed), cancel);
            // Done exactly when nothing is leased and nothing queued is still wanted.
            prop_assert_eq!(ending.is_some(), running == 0 && (queued == 0 || cancel));
            if let Some(ending) = ending {
                prop_assert!(ending.state().is_terminal());
                prop_assert_ne!(ending.state(), RunState::Failed);
                prop_assert_eq!(ending == Ending::Cancelled, queued > 0);
                prop_assert_eq!(ending == Ending::CompletedWithErrors, queued == 0 && failed > 0);
            }
        }
    }
}
