//! Recording outcomes: one recorder per run, many outcomes to a transaction (group
//! commit), which also flips migrated artifacts to the target; and finishing the run once
//! nothing is left. What row an outcome becomes is the pure rule of [`super::outcome`].

use std::{collections::HashSet, sync::Arc};

use stowage_shared::db::GenericClient;
use stowage_shared::db::RowLock;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    Runner, ensure_target_active,
    outcome::{Outcome, Row, Verdict, flip_of, item_row},
    work::RunContext,
};
use crate::{
    db,
    domain::{
        model::runs::{FailureCause, ItemCause, ItemState, Run, RunItem, RunState, Tally},
        runs::lifecycle::{self, Failure},
    },
    error::{Error, Result},
};

/// Outcomes recorded in one transaction at most.
const RECORD_BATCH: usize = 64;

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
            let items: Vec<RunItem> = batch.iter().map(|(item, _)| item.clone()).collect();
            let run_id = context.run.id;
            let inactive = match self.record(run_id, std::mem::take(&mut batch)).await {
                Ok(inactive) => inactive,
                Err(error) => {
                    tracing::error!(%error, items = items.len(), "outcomes could not be recorded; their leases will expire");
                    None
                }
            };
            self.track(&items, false);
            let down = down.map(|detail| Failure::new(FailureCause::TargetUnavailable, detail));
            if let Some(failure) = down.or(inactive) {
                context.stop();
                if let Err(error) = self.fail(&context.run, failure).await {
                    tracing::error!(%error, "could not fail the run closed");
                }
            }
        }
    }

    /// Records outcomes in one transaction of a few set-wise statements: the run row
    /// first (locked, so outcome numbers follow commit order), the leases still held, the
    /// flips of migrated artifacts to the target, the items, then the run's counters. An
    /// item whose lease was lost is not recorded: the replica that took it over records
    /// it. Returns the failure to end the run with if its target stopped being active (a
    /// stopped run needs no second verdict).
    async fn record(
        &self,
        run_id: Uuid,
        outcomes: Vec<(RunItem, Outcome)>,
    ) -> Result<Option<Failure>> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let run = db::runs::RUNS
            .get(&tx, None, run_id, RowLock::ForUpdate)
            .await?
            .ok_or_else(|| Error::NotFound(format!("run {run_id}")))?;
        let running = run.state == RunState::Running;
        let inactive = if running {
            ensure_target_active(&tx, &run).await?
        } else {
            None
        };
        let verdict = Verdict {
            running,
            target_active: running && inactive.is_none(),
        };
        let ids: Vec<Uuid> = outcomes.iter().map(|(item, _)| item.artifact_id).collect();
        let held: HashSet<Uuid> = db::items::held(&tx, run_id, &ids, &self.owner)
            .await?
            .into_iter()
            .collect();
        let target = run.target_binding_id;
        let mut flips = Vec::new();
        for (item, outcome) in &outcomes {
            let held = held.contains(&item.artifact_id);
            flips.extend(flip_of(item, outcome, held, verdict, target)?);
        }
        let flipped: HashSet<Uuid> = db::artifacts::flip(&tx, target, &flips)
            .await?
            .into_iter()
            .collect();
        let recorded = Recorded {
            run: &run,
            held,
            flipped,
            verdict,
        };
        let (tally, finished) = recorded.rows(&tx, outcomes).await?;
        db::items::finish(&tx, run_id, &finished).await?;
        let last = run.last_outcome + finished.len() as i64;
        db::runs::record_outcomes(&tx, run_id, &tally, last).await?;
        tx.commit().await?;
        counted(&tally, &finished);
        Ok(inactive)
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

/// What one recording transaction knows of its batch.
struct Recorded<'a> {
    run: &'a Run,
    /// Items whose leases this replica still holds.
    held: HashSet<Uuid>,
    /// Artifacts pointed at the target in this transaction.
    flipped: HashSet<Uuid>,
    verdict: Verdict,
}

impl Recorded<'_> {
    /// The rows of the outcomes of held items, numbered after the run's last outcome,
    /// and what they add to the run's counters.
    async fn rows(
        &self,
        client: &impl GenericClient,
        outcomes: Vec<(RunItem, Outcome)>,
    ) -> Result<(Tally, Vec<db::items::Finished>)> {
        let target = self.run.target_binding_id;
        let mut tally = Tally::default();
        let mut finished = Vec::with_capacity(outcomes.len());
        for (item, outcome) in outcomes {
            if !self.held.contains(&item.artifact_id) {
                tracing::warn!(artifact = %item.artifact_id, "lost an item's lease; not recording it");
                continue;
            }
            let flipped = self.flipped.contains(&item.artifact_id);
            let (state, cause, detail, bytes) =
                match item_row(outcome, flipped, self.verdict, target) {
                    Row::Item {
                        state,
                        cause,
                        detail,
                        bytes,
                    } => (state, cause, detail, bytes),
                    Row::NotFlipped => {
                        let cause = why_not_flipped(client, item.artifact_id, target).await?;
                        (ItemState::Skipped, Some(cause), String::new(), 0)
                    }
                    Row::Unrecorded => continue,
                };
            tally.add(state, bytes);
            finished.push(db::items::Finished {
                artifact_id: item.artifact_id,
                state,
                cause,
                detail,
                outcome_seq: self.run.last_outcome + finished.len() as i64 + 1,
            });
        }
        Ok((tally, finished))
    }
}

/// Why a verified copy's artifact was not flipped: deleted, or already on the target.
async fn why_not_flipped(
    client: &impl GenericClient,
    artifact: Uuid,
    target: Uuid,
) -> Result<ItemCause> {
    Ok(match db::artifacts::get(client, None, artifact).await? {
        Some(a) if a.delete_time.is_none() && a.binding_id == target => ItemCause::AlreadyOnTarget,
        _ => ItemCause::ArtifactDeleted,
    })
}

/// Counts and logs a batch that was recorded.
fn counted(tally: &Tally, finished: &[db::items::Finished]) {
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
}
