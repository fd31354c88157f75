//! Recording outcomes: one recorder per run, many outcomes to one statement (group
//! commit), which also flips migrated artifacts to the target; and finishing the run once
//! nothing is left. How an outcome ends its item is the pure rule of [`super::outcome`].

use std::{collections::HashSet, sync::Arc, time::Duration};

use stowage_shared::db::RowLock;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    Runner,
    outcome::{Outcome, Verdict, ending},
    target_failure,
    work::RunContext,
};
use crate::{
    db::{
        self,
        items::{Ending, Finished},
    },
    domain::{
        model::runs::{FailureCause, ItemCause, ItemState, Run, RunItem, RunState, Tally},
        runs::lifecycle::{self, Failure},
    },
    error::{Error, OrNotFound, Result},
};

/// Outcomes recorded in one statement at most.
const RECORD_BATCH: usize = 64;
/// Times a batch is planned again when the run or its target changed under it.
const RECORD_TRIES: usize = 3;
/// Times a batch is recorded at most when the database fails transiently, and the first
/// pause between (doubling).
const TRANSIENT_TRIES: usize = 5;
const TRANSIENT_PAUSE: Duration = Duration::from_millis(50);

impl Runner {
    /// Records outcomes as they arrive, many to a transaction (group commit), and fails
    /// the run closed after recording a target that did not take a write.
    pub(super) async fn recorder(
        self,
        context: Arc<RunContext>,
        mut outcomes: mpsc::Receiver<(RunItem, Outcome)>,
    ) {
        let mut batch = Vec::with_capacity(RECORD_BATCH);
        while outcomes.recv_many(&mut batch, RECORD_BATCH).await > 0 {
            let down = batch.iter().find_map(|(_, outcome)| match outcome {
                Outcome::TargetDown(detail) => Some(detail.clone()),
                _ => None,
            });
            let inactive = match self.record_retrying(&context.run, &batch).await {
                Ok(inactive) => inactive,
                Err(error) => {
                    tracing::error!(%error, items = batch.len(), "outcomes could not be recorded; their leases will expire");
                    None
                }
            };
            self.track(batch.iter().map(|(item, _)| item), false);
            batch.clear();
            let down = down.map(|detail| Failure::new(FailureCause::TargetUnavailable, detail));
            if let Some(failure) = down.or(inactive) {
                context.stop();
                if let Err(error) = self.fail(&context.run, failure).await {
                    tracing::error!(%error, "could not fail the run closed");
                }
            }
        }
    }

    /// [`Runner::record`], again after a transient database failure (a lost connection, a
    /// deadlock): the statement wrote nothing, and the leases are still this replica's
    /// unless they expired meanwhile, which the statement checks.
    async fn record_retrying(
        &self,
        run: &Run,
        outcomes: &[(RunItem, Outcome)],
    ) -> Result<Option<Failure>> {
        let mut pause = TRANSIENT_PAUSE;
        for _ in 1..TRANSIENT_TRIES {
            match self.record(run, outcomes).await {
                Err(error) if error.as_db().is_some_and(|db| db.is_transient()) => {
                    tracing::warn!(%error, items = outcomes.len(), "recording outcomes again");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                recorded => return recorded,
            }
        }
        self.record(run, outcomes).await
    }

    /// Records a batch of outcomes in one statement (see [`db::items::record`]), planned
    /// for a run that runs with its target active. If the statement finds otherwise, it
    /// writes nothing and the batch is planned again for what it found. Returns the
    /// failure to end the run with if its target stopped being active (a stopped run
    /// needs no second verdict).
    async fn record(&self, run: &Run, outcomes: &[(RunItem, Outcome)]) -> Result<Option<Failure>> {
        let target = run.target_binding_id;
        let mut verdict = Verdict::ON;
        for _ in 0..RECORD_TRIES {
            let endings = outcomes
                .iter()
                .filter_map(|(item, outcome)| ending(item, outcome, verdict, target).transpose())
                .collect::<Result<Vec<_>>>()?;
            let client = self.pool.get().await?;
            let planned_for = (verdict.running, verdict.target_active);
            let recording = db::items::record(&client, run.id, &self.owner, planned_for, &endings)
                .await?
                .or_not_found("run", run.id)?;
            let found = Verdict::of(recording.run_state, recording.target_state);
            if let Some(finished) = recording.finished {
                counted(&endings, &finished);
                let inactive = found.running && !found.target_active;
                return Ok(inactive
                    .then(|| target_failure(run, recording.target_state))
                    .flatten());
            }
            verdict = found;
        }
        Err(Error::Internal(format!(
            "run {} kept changing while its outcomes were recorded",
            run.id
        )))
    }

    /// Ends the run once no item is queued or leased: COMPLETED, COMPLETED_WITH_ERRORS,
    /// or CANCELLED if a cancel left items queued.
    pub(super) async fn try_finish(&self, run_id: Uuid) -> Result<bool> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(run) = db::runs::RUNS
            .get(&tx, None, run_id, RowLock::ForUpdate)
            .await?
        else {
            return Ok(false);
        };
        if run.state != RunState::Running {
            return Ok(false);
        }
        let mut counts = run.counts;
        if run.cancel_requested {
            let requeued = db::items::requeue_expired(&tx, run_id).await?;
            let (running, queued) = (ItemState::Running, ItemState::Queued);
            db::runs::shift(&tx, run_id, running, queued, requeued).await?;
            counts.running -= requeued;
            counts.queued += requeued;
        }
        let Some(ending) = lifecycle::finished(&counts, run.cancel_requested) else {
            return Ok(false);
        };
        lifecycle::end_locked(&tx, &run, &ending).await?;
        tx.commit().await?;
        lifecycle::ended(run_id, &ending);
        Ok(true)
    }
}

/// Counts and logs a batch that was recorded; an ending not recorded lost its lease.
fn counted(endings: &[Ending], finished: &[Finished]) {
    let mut tally = Tally::default();
    for f in finished {
        tally.add(f.state, f.bytes);
    }
    for state in ItemState::ALL {
        let n = tally.count(*state);
        if n > 0 {
            metrics::counter!("migration_items_total", "state" => state.as_str())
                .increment(n as u64);
        }
    }
    metrics::counter!("migration_bytes_migrated_total")
        .increment(u64::try_from(tally.migrated_bytes).unwrap_or(0));
    for f in finished.iter().filter(|f| f.state == ItemState::Failed) {
        let cause = f.cause.map_or("", ItemCause::as_str);
        tracing::warn!(artifact = %f.artifact_id, cause, detail = %f.detail, "item failed");
    }
    if finished.len() < endings.len() {
        let recorded: HashSet<Uuid> = finished.iter().map(|f| f.artifact_id).collect();
        for ending in endings
            .iter()
            .filter(|e| !recorded.contains(&e.artifact_id))
        {
            tracing::warn!(artifact = %ending.artifact_id, "lost an item's lease; not recording it");
        }
    }
}
