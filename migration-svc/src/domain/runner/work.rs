//! Working through a running run: items leased in batches (`FOR UPDATE SKIP LOCKED`,
//! renewed by the heartbeat, taken over when expired), copied with bounded concurrency and
//! the run's throughput limit, and handed to the run's recorder. No batch is leased once a
//! write to the target has failed.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use stowage_shared::db::RowLock;
use stowage_shared::{
    blob::{BlobKey, EncryptedStore},
    shutdown::Drain,
};
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;
use uuid::Uuid;

use super::{Runner, ensure_target_active, outcome::Outcome, target_failure};
use crate::{
    config::attempt_backoff,
    db,
    domain::{
        artifacts::object_key,
        copy::copy,
        model::{
            artifacts::Artifact,
            runs::{FailureCause, ItemCause, ItemState, Lease, Run, RunItem, RunState},
        },
        pace::Pace,
        runs::lifecycle::Failure,
    },
    error::{Error, Result},
};

/// What a run's workers share while they process its items.
pub(super) struct RunContext {
    pub(super) run: Run,
    target: EncryptedStore,
    pace: Pace,
    /// Set when the run stops (failed, cancelled, draining): unstarted items go back.
    pub(super) stop: AtomicBool,
    /// Set when a write to the target failed and is being retried: the first sign the run
    /// may fail closed, so no further batch is leased; cleared by a write that succeeds.
    suspect: AtomicBool,
}

impl RunContext {
    pub(super) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl Runner {
    /// Works through a running run's items until none is left to this replica, then
    /// tries to finish the run. Returns whether anything happened.
    pub(super) async fn work(&self, run_id: Uuid, drain: &Drain) -> Result<bool> {
        let Some(run) = self.current(run_id).await? else {
            return Ok(false);
        };
        if run.state != RunState::Running {
            return Ok(false);
        }
        let Some(target) = self.open_target(&run).await? else {
            return Ok(true);
        };
        let context = Arc::new(RunContext {
            pace: Pace::new(run.limit),
            run,
            target,
            stop: AtomicBool::new(false),
            suspect: AtomicBool::new(false),
        });
        let _monitor = AbortOnDropHandle::new(tokio::spawn(self.clone().monitor(context.clone())));
        let (recorded, to_record) = mpsc::channel(self.config.concurrency.max(1) * 2);
        let recorder = self.clone().recorder(context.clone(), to_record);
        let workers = self.workers(context, drain.clone(), recorded);
        let (processed, ()) = tokio::join!(workers, recorder);
        let finished = self.try_finish(run_id).await?;
        Ok(processed > 0 || finished)
    }

    /// The run's target store, if it is active and opens; else the run fails closed.
    async fn open_target(&self, run: &Run) -> Result<Option<EncryptedStore>> {
        let inactive = {
            let client = self.pool.get().await?;
            ensure_target_active(&client, run).await?
        };
        if let Some(failure) = inactive {
            self.fail(run, failure).await?;
            return Ok(None);
        }
        match self
            .stores
            .open(&run.organization_id, run.target_binding_id)
            .await
        {
            Ok((_, target)) => Ok(Some(target)),
            // The database is not the target: try again on a later step.
            Err(error) if error.as_db().is_some() => Err(error),
            Err(error) => {
                let detail = format!("the target cannot be opened: {error}");
                self.fail(run, Failure::new(FailureCause::TargetUnavailable, detail))
                    .await?;
                Ok(None)
            }
        }
    }

    /// Copies leased items with bounded concurrency, each outcome sent to the recorder;
    /// returns how many items were processed.
    async fn workers(
        &self,
        context: Arc<RunContext>,
        drain: Drain,
        recorded: mpsc::Sender<(RunItem, Outcome)>,
    ) -> u64 {
        // Batches are leased as the workers take items, never far ahead of them.
        let batches = stream::unfold(
            (self.clone(), context.clone(), drain),
            |(runner, context, drain)| async move {
                match runner.claim(&context, &drain).await {
                    Ok(items) if items.is_empty() => None,
                    Ok(items) => Some((stream::iter(items), (runner, context, drain))),
                    Err(error) => {
                        tracing::error!(%error, "could not lease items");
                        None
                    }
                }
            },
        );
        let mut outcomes = batches
            .flatten()
            .map(|lease| {
                let (context, recorded) = (context.clone(), recorded.clone());
                async move {
                    // A slot of the replica's, shared with its other runs.
                    let _slot = self.slots.acquire().await;
                    self.process(&context, lease, &recorded).await
                }
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .boxed();
        let mut processed = 0u64;
        while let Some(result) = outcomes.next().await {
            processed += 1;
            if let Err(error) = result {
                tracing::error!(%error, "an item could not be processed; its lease will expire");
            }
        }
        processed
    }

    /// Leases the next batch, unless the run stopped, the target is suspect or the replica
    /// drains. (No batch ends this pass; a later step leases again if the run goes on.)
    async fn claim(&self, context: &RunContext, drain: &Drain) -> Result<Vec<Lease>> {
        if drain.is_draining() || context.stopped() || context.suspect.load(Ordering::Acquire) {
            return Ok(Vec::new());
        }
        let run = &context.run;
        let (ttl, size) = (self.config.lease_ttl, self.config.batch_size.max(1));
        let claim = {
            let client = self.pool.get().await?;
            db::items::claim(&client, run.id, &self.owner, ttl, size).await?
        };
        let Some(claim) = claim else {
            return Ok(Vec::new());
        };
        if claim.run_state != RunState::Running || claim.cancel_requested {
            context.stop();
            return Ok(Vec::new());
        }
        if let Some(failure) = target_failure(run, claim.target_state) {
            context.stop();
            self.fail(run, failure).await?;
            return Ok(Vec::new());
        }
        self.track(claim.leases.iter().map(|lease| &lease.item), true);
        Ok(claim.leases)
    }

    #[tracing::instrument(skip_all, fields(run = %context.run.id, artifact = %lease.item.artifact_id))]
    async fn process(
        &self,
        context: &RunContext,
        lease: Lease,
        recorded: &mpsc::Sender<(RunItem, Outcome)>,
    ) -> Result<()> {
        let started = Instant::now();
        let outcome = match self.copy_item(context, &lease).await {
            Ok(Outcome::Unstarted) => return self.release(&lease.item).await,
            Ok(outcome) => outcome,
            Err(error) => {
                // Not the item's fault (the database, most likely): try it again later.
                tracing::warn!(%error, "an item could not be processed; it goes back");
                return self.release(&lease.item).await;
            }
        };
        if matches!(outcome, Outcome::TargetDown(_)) {
            context.stop();
        }
        metrics::histogram!("migration_item_seconds").record(started.elapsed().as_secs_f64());
        recorded
            .send((lease.item, outcome))
            .await
            .map_err(|_| Error::Internal("the outcome recorder stopped".into()))
    }

    /// Copies the leased item's artifact, as the claim read it, to the target.
    async fn copy_item(&self, context: &RunContext, lease: &Lease) -> Result<Outcome> {
        let run = &context.run;
        // Paced before the copy, so a throttled item is not held leased and half-read.
        if context.stopped() {
            return Ok(Outcome::Unstarted);
        }
        let bytes = u64::try_from(lease.item.size_bytes).unwrap_or(0);
        if !context.pace.admit(bytes, &context.stop).await {
            return Ok(Outcome::Unstarted);
        }
        let Some(artifact) = lease.artifact.as_ref().filter(|a| a.delete_time.is_none()) else {
            return Ok(Outcome::Skipped(ItemCause::ArtifactDeleted));
        };
        if artifact.binding_id == run.target_binding_id {
            return Ok(Outcome::Skipped(ItemCause::AlreadyOnTarget));
        }
        let source = self
            .stores
            .open_at(
                &run.organization_id,
                artifact.binding_id,
                lease.source_credential,
            )
            .await;
        match source {
            Ok(source) => self.copy_with_retries(context, artifact, &source).await,
            // The database is not the source: the item goes back.
            Err(error) if error.as_db().is_some() => Err(error),
            Err(error) => Ok(Outcome::Failed(
                ItemCause::SourceUnavailable,
                error.to_string(),
            )),
        }
    }

    /// Copies an artifact from its source to the target, trying the target again (with
    /// backoff) when it did not take the write, up to the configured attempts.
    async fn copy_with_retries(
        &self,
        context: &RunContext,
        artifact: &Artifact,
        source: &EncryptedStore,
    ) -> Result<Outcome> {
        let source_key = BlobKey::new(artifact.object_key.clone())?;
        let target_key = object_key(artifact.id, context.run.target_binding_id)?;
        let expected = artifact.expected();
        let attempts = self.config.target_attempts.max(1);
        let first = Instant::now();
        for attempt in 1..=attempts {
            let error =
                match copy(source, &source_key, &context.target, &target_key, &expected).await {
                    Ok(receipt) => {
                        context.suspect.store(false, Ordering::Release);
                        let source = artifact.binding_id;
                        return Ok(Outcome::Migrated { source, receipt });
                    }
                    Err(error) => error,
                };
            if let Some(cause) = error.item_cause() {
                return Ok(Outcome::Failed(cause, error.to_string()));
            }
            // One time budget for both layers of retries: the store client's own stop
            // at `store_retry_timeout`, and so do the runner's attempts (the bound is
            // `RunnerConfig::dead_target_bound`).
            if attempt == attempts || first.elapsed() >= self.config.store_retry_timeout {
                context.suspect.store(true, Ordering::Release);
                return Ok(Outcome::TargetDown(error.to_string()));
            }
            if context.stopped() {
                // The run is stopping (cancelled, or failed elsewhere): no more tries,
                // and no verdict on the target.
                let cause = ItemCause::TargetUnavailable;
                return Ok(Outcome::Failed(cause, error.to_string()));
            }
            context.suspect.store(true, Ordering::Release);
            tracing::warn!(attempt, %error, "the target did not take a write");
            tokio::time::sleep(attempt_backoff(attempt)).await;
        }
        Ok(Outcome::TargetDown("no attempt was made".into()))
    }

    /// Gives an unstarted item back to the queue and stops renewing its lease (if the
    /// release fails, the lease lapses instead).
    async fn release(&self, item: &RunItem) -> Result<()> {
        self.track([item], false);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        db::runs::RUNS
            .get(&tx, None, item.run_id, RowLock::ForUpdate)
            .await?;
        if db::items::release(&tx, item.run_id, item.artifact_id, &self.owner).await? {
            let (running, queued) = (ItemState::Running, ItemState::Queued);
            db::runs::shift(&tx, item.run_id, running, queued, 1).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets the run's stop flag once it is cancelled or no longer running (another
    /// replica may have failed it closed), so leased items waiting to start go back.
    async fn monitor(self, context: Arc<RunContext>) {
        let every = self.config.poll_interval.max(Duration::from_millis(100));
        while !context.stopped() {
            tokio::time::sleep(every).await;
            let stopped = match self.current(context.run.id).await {
                Ok(Some(run)) => run.state != RunState::Running || run.cancel_requested,
                Ok(None) => true,
                Err(_) => false,
            };
            if stopped {
                context.stop();
            }
        }
    }
}
