//! Recording outcomes: one recorder per run, many outcomes to a transaction (group
//! commit), which also flips migrated artifacts to the target; and finishing the run once
//! nothing is left. What row an outcome becomes is the pure [`item_row`].

use std::{collections::HashSet, sync::Arc};

use stowage_shared::{blob::Receipt, db::GenericClient};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{Runner, ensure_target_active, work::RunContext};
use crate::{
    db,
    domain::{
        artifacts::object_key,
        model::runs::{FailureCause, ItemCause, ItemState, RunItem, RunState},
        runs::lifecycle::{self, Failure},
    },
    error::{Error, Result},
};

/// Outcomes recorded in one transaction at most.
const RECORD_BATCH: usize = 64;

/// How one item ended, before it is recorded.
#[derive(Debug)]
pub(super) enum Outcome {
    Migrated {
        source: Uuid,
        receipt: Receipt,
    },
    Skipped(ItemCause),
    Failed(ItemCause, String),
    /// The target did not take the write after every attempt: fail the run closed.
    TargetDown(String),
    /// The run stopped before the copy began: the item goes back to the queue.
    Unstarted,
}

/// What the recording transaction found: the run still running, its target still active.
#[derive(Clone, Copy, Debug)]
struct Verdict {
    running: bool,
    target_active: bool,
}

/// How an outcome is recorded.
#[derive(Debug, PartialEq, Eq)]
enum Row {
    /// The item ends in `state`; `bytes` migrated.
    Item {
        state: ItemState,
        cause: Option<ItemCause>,
        detail: String,
        bytes: i64,
    },
    /// A verified copy whose artifact the flip did not move: deleted or already on the
    /// target, which only the database can say. The item is skipped.
    NotFlipped,
    /// Not recorded.
    Unrecorded,
}

impl Row {
    fn item(state: ItemState, cause: Option<ItemCause>, detail: String) -> Self {
        Row::Item {
            state,
            cause,
            detail,
            bytes: 0,
        }
    }
}

/// The row an outcome becomes: MIGRATED only if its artifact was flipped (so only while
/// the run runs and its target is active); a copy that came too late FAILED with the
/// target unavailable; a failure keeps its cause.
fn item_row(outcome: Outcome, flipped: bool, verdict: Verdict, target: Uuid) -> Row {
    match outcome {
        Outcome::Migrated { receipt, .. } if flipped => Row::Item {
            state: ItemState::Migrated,
            cause: None,
            detail: String::new(),
            bytes: i64::try_from(receipt.plaintext_len).unwrap_or(i64::MAX),
        },
        Outcome::Migrated { .. } if !verdict.running => Row::item(
            ItemState::Failed,
            Some(ItemCause::TargetUnavailable),
            "the run ended before this copy was recorded; the artifact stays on its source"
                .to_owned(),
        ),
        Outcome::Migrated { .. } if !verdict.target_active => Row::item(
            ItemState::Failed,
            Some(ItemCause::TargetUnavailable),
            format!("binding {target} stopped being active; the artifact stays on its source"),
        ),
        Outcome::Migrated { .. } => Row::NotFlipped,
        Outcome::Skipped(cause) => Row::item(ItemState::Skipped, Some(cause), String::new()),
        Outcome::Failed(cause, detail) => Row::item(ItemState::Failed, Some(cause), detail),
        Outcome::TargetDown(detail) => Row::item(
            ItemState::Failed,
            Some(ItemCause::TargetUnavailable),
            detail,
        ),
        Outcome::Unstarted => Row::Unrecorded,
    }
}

/// The verified copy to point an artifact at, if it may be: a held lease on a running
/// run whose target is active.
fn flip_of(
    item: &RunItem,
    outcome: &Outcome,
    held: bool,
    verdict: Verdict,
    target: Uuid,
) -> Result<Option<db::artifacts::Flip>> {
    let Outcome::Migrated { source, receipt } = outcome else {
        return Ok(None);
    };
    if !held || !verdict.target_active {
        return Ok(None);
    }
    Ok(Some(db::artifacts::Flip {
        id: item.artifact_id,
        source: *source,
        object_key: object_key(item.artifact_id, target)?.to_string(),
        stored_bytes: i64::try_from(receipt.stored_len).unwrap_or(i64::MAX),
        kek_id: receipt.kek_id.clone(),
    }))
}

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
        let run = db::runs::get_for_update(&tx, None, run_id)
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
        let mut tally = db::runs::Tally::default();
        let mut finished = Vec::with_capacity(outcomes.len());
        for (item, outcome) in outcomes {
            if !held.contains(&item.artifact_id) {
                tracing::warn!(artifact = %item.artifact_id, "lost an item's lease; not recording it");
                continue;
            }
            let flipped = flipped.contains(&item.artifact_id);
            let (state, cause, detail, bytes) = match item_row(outcome, flipped, verdict, target) {
                Row::Item {
                    state,
                    cause,
                    detail,
                    bytes,
                } => (state, cause, detail, bytes),
                Row::NotFlipped => {
                    let cause = why_not_flipped(&tx, item.artifact_id, target).await?;
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
                outcome_seq: run.last_outcome + finished.len() as i64 + 1,
            });
        }
        db::items::finish(&tx, run_id, &finished).await?;
        let last = run.last_outcome + finished.len() as i64;
        db::runs::record_outcomes(&tx, run_id, &tally, last).await?;
        tx.commit().await?;
        recorded(&tally, &finished);
        Ok(inactive)
    }

    /// Ends the run once no item is queued or leased: COMPLETED, COMPLETED_WITH_ERRORS,
    /// or CANCELLED if a cancel left items queued.
    pub(super) async fn try_finish(&self, run_id: Uuid) -> Result<bool> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(run) = db::runs::get_for_update(&tx, None, run_id).await? else {
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
fn recorded(tally: &db::runs::Tally, finished: &[db::items::Finished]) {
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const TARGET: Uuid = Uuid::from_u128(7);
    const ON: Verdict = Verdict {
        running: true,
        target_active: true,
    };

    fn migrated(plaintext_len: u64) -> Outcome {
        Outcome::Migrated {
            source: Uuid::from_u128(1),
            receipt: Receipt {
                sha256: String::new(),
                plaintext_len,
                stored_len: plaintext_len + 32,
                kek_id: "k1".into(),
            },
        }
    }

    fn item() -> RunItem {
        RunItem {
            run_id: Uuid::from_u128(2),
            artifact_id: Uuid::from_u128(3),
            source_binding_id: Uuid::from_u128(1),
            state: ItemState::Running,
            size_bytes: 5,
            cause: None,
            cause_detail: None,
            attempts: 1,
            start_time: None,
            end_time: None,
            outcome_seq: None,
        }
    }

    fn state(row: &Row) -> Option<(ItemState, Option<ItemCause>)> {
        match row {
            Row::Item { state, cause, .. } => Some((*state, *cause)),
            _ => None,
        }
    }

    #[test]
    fn a_flipped_copy_is_migrated_with_its_plaintext_bytes() {
        let row = item_row(migrated(5), true, ON, TARGET);
        assert_eq!(
            row,
            Row::Item {
                state: ItemState::Migrated,
                cause: None,
                detail: String::new(),
                bytes: 5
            }
        );
    }

    #[test]
    fn a_copy_recorded_after_the_run_ended_fails_with_the_target_unavailable() {
        let ended = Verdict {
            running: false,
            target_active: false,
        };
        let row = item_row(migrated(5), false, ended, TARGET);
        assert_eq!(
            state(&row),
            Some((ItemState::Failed, Some(ItemCause::TargetUnavailable)))
        );
    }

    #[test]
    fn a_copy_to_a_target_no_longer_active_fails_and_names_the_binding() {
        let inactive = Verdict {
            running: true,
            target_active: false,
        };
        let Row::Item { state, detail, .. } = item_row(migrated(5), false, inactive, TARGET) else {
            panic!("not an item row");
        };
        assert_eq!(state, ItemState::Failed);
        assert!(detail.contains(&TARGET.to_string()), "{detail}");
    }

    #[test]
    fn a_copy_the_flip_did_not_take_asks_the_database_why() {
        assert_eq!(item_row(migrated(5), false, ON, TARGET), Row::NotFlipped);
    }

    #[test]
    fn a_target_that_did_not_take_the_write_fails_the_item_with_its_detail() {
        let row = item_row(Outcome::TargetDown("refused".into()), false, ON, TARGET);
        let Row::Item { cause, detail, .. } = row else {
            panic!("not an item row");
        };
        assert_eq!(cause, Some(ItemCause::TargetUnavailable));
        assert_eq!(detail, "refused");
    }

    #[test]
    fn an_unstarted_item_is_not_recorded() {
        assert_eq!(
            item_row(Outcome::Unstarted, false, ON, TARGET),
            Row::Unrecorded
        );
    }

    #[test]
    fn only_a_held_copy_on_an_active_target_is_flipped() {
        let flip = flip_of(&item(), &migrated(5), true, ON, TARGET).unwrap();
        let flip = flip.expect("a flip");
        assert_eq!((flip.stored_bytes, flip.kek_id.as_str()), (37, "k1"));
        assert!(flip.object_key.contains(&TARGET.to_string()));
        assert!(
            flip_of(&item(), &migrated(5), false, ON, TARGET)
                .unwrap()
                .is_none()
        );
        let inactive = Verdict {
            running: true,
            target_active: false,
        };
        assert!(
            flip_of(&item(), &migrated(5), true, inactive, TARGET)
                .unwrap()
                .is_none()
        );
        let skipped = Outcome::Skipped(ItemCause::ArtifactDeleted);
        assert!(
            flip_of(&item(), &skipped, true, ON, TARGET)
                .unwrap()
                .is_none()
        );
    }

    fn any_cause() -> impl Strategy<Value = ItemCause> {
        prop::sample::select(ItemCause::ALL)
    }

    fn any_outcome() -> impl Strategy<Value = Outcome> {
        prop_oneof![
            (0u64..1 << 40).prop_map(migrated),
            any_cause().prop_map(Outcome::Skipped),
            (any_cause(), ".{0,8}").prop_map(|(c, d)| Outcome::Failed(c, d)),
            ".{0,8}".prop_map(Outcome::TargetDown),
            Just(()).prop_map(|()| Outcome::Unstarted),
        ]
    }

    proptest! {
        #[test]
        fn only_a_flipped_copy_is_migrated_and_only_it_counts_bytes(
            outcome in any_outcome(), flipped: bool, running: bool, active: bool,
        ) {
            let was_migrated = matches!(outcome, Outcome::Migrated { .. });
            let verdict = Verdict { running, target_active: running && active };
            match item_row(outcome, flipped, verdict, TARGET) {
                Row::Item { state, cause, bytes, .. } => {
                    prop_assert_eq!(state == ItemState::Migrated, was_migrated && flipped);
                    prop_assert_eq!(cause.is_none(), state == ItemState::Migrated);
                    prop_assert!(bytes == 0 || state == ItemState::Migrated);
                    prop_assert!(!matches!(state, ItemState::Queued | ItemState::Running));
                }
                Row::NotFlipped => {
                    prop_assert!(was_migrated && !flipped && verdict.target_active);
                }
                Row::Unrecorded => prop_assert!(!was_migrated),
            }
        }
    }
}
