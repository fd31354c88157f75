//! The runner every replica runs. It plans queued runs (the target must be active; the
//! organization's live artifacts not on the target, in keyset pages, each page one
//! transaction under the run's lease) and works through running runs' items: leased in
//! batches (`FOR UPDATE SKIP LOCKED`, renewed by a heartbeat, taken over when expired),
//! copied with bounded concurrency and the run's throughput limit, and recorded by one
//! recorder per run, many outcomes to a transaction, which also flips migrated artifacts
//! to the target. A target that stops taking writes, or stops being active, fails the run
//! closed: no batch is leased once a write to the target has failed, and when the run
//! ends FAILED its unstarted items end FAILED with cause `run_failed`.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use serde_json::json;
use stowage_shared::{
    blob::{BlobKey, EncryptedStore, Receipt},
    shutdown::Drain,
};
use tokio::sync::{Notify, mpsc};
use tokio_util::task::AbortOnDropHandle;
use uuid::Uuid;

use super::{
    artifacts::object_key,
    bindings::BindingState,
    copy::copy,
    evidence::MIGRATION_FAILED_CLOSED,
    pace::Pace,
    runs::{
        FailureCause, ItemCause, ItemState, Mode, Run, RunItem, RunState, SourceReport, record_end,
    },
    stores::Stores,
};
use crate::{
    config::RunnerConfig,
    db,
    error::{Error, Result},
};

/// Outcomes recorded in one transaction at most.
const RECORD_BATCH: usize = 64;

/// How one item ended, before it is recorded.
#[derive(Debug)]
enum Outcome {
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

/// What a run's workers share while they process its items.
struct RunContext {
    run: Run,
    target: EncryptedStore,
    pace: Pace,
    /// Set when the run stops (failed, cancelled, draining): unstarted items go back.
    stop: AtomicBool,
    /// Set when a write to the target failed and is being retried: the first sign the run
    /// may fail closed, so no further batch is leased; cleared by a write that succeeds.
    suspect: AtomicBool,
}

#[derive(Clone, Debug)]
pub struct Runner {
    pool: deadpool_postgres::Pool,
    stores: Stores,
    config: RunnerConfig,
    /// This replica's name on leases.
    owner: String,
    /// The items this replica holds leases on and is still working on; only these are
    /// renewed, so an item whose outcome could not be recorded is left to expire.
    leased: Arc<Mutex<HashSet<(Uuid, Uuid)>>>,
    wake: Arc<Notify>,
}

impl Runner {
    pub fn new(
        pool: deadpool_postgres::Pool,
        stores: Stores,
        config: RunnerConfig,
        wake: Arc<Notify>,
    ) -> Self {
        let owner = format!(
            "{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "replica".into()),
            Uuid::new_v4().simple()
        );
        Self {
            pool,
            stores,
            config,
            owner,
            leased: Arc::default(),
            wake,
        }
    }

    /// Works until the drain starts; leases this replica holds are renewed meanwhile.
    pub async fn run(self, drain: Drain) {
        // Stops with this future, however it ends.
        let _heartbeat = AbortOnDropHandle::new(tokio::spawn(self.clone().heartbeat()));
        tracing::info!(owner = %self.owner, "migration runner started");
        while !drain.is_draining() {
            let idle = match self.step(&drain).await {
                Ok(worked) => !worked,
                Err(error) => {
                    tracing::error!(%error, "migration runner step failed");
                    true
                }
            };
            if idle {
                tokio::select! {
                    () = tokio::time::sleep(self.config.poll_interval) => {}
                    () = self.wake.notified() => {}
                    () = drain.draining() => {}
                }
            }
        }
        tracing::info!("migration runner stopped");
    }

    async fn heartbeat(self) {
        let every = self.config.lease_ttl / 3;
        loop {
            tokio::time::sleep(every).await;
            let (runs, artifacts): (Vec<Uuid>, Vec<Uuid>) = match self.leased.lock() {
                Ok(leased) => leased.iter().copied().unzip(),
                Err(_) => continue,
            };
            if runs.is_empty() {
                continue;
            }
            let renewed = async {
                let client = self.pool.get().await?;
                db::items::heartbeat(
                    &client,
                    &self.owner,
                    &runs,
                    &artifacts,
                    self.config.lease_ttl,
                )
                .await
            };
            if let Err(error) = renewed.await {
                tracing::warn!(%error, "could not renew item leases");
            }
        }
    }

    /// One unit of work: plan a run, or work through a running run's items. Returns
    /// whether there was anything to do.
    pub async fn step(&self, drain: &Drain) -> Result<bool> {
        if self.plan_next().await? {
            return Ok(true);
        }
        let running = {
            let client = self.pool.get().await?;
            db::runs::running(&client).await?
        };
        for run_id in running {
            if drain.is_draining() {
                break;
            }
            match self.work(run_id, drain).await {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                // One run's trouble never holds up the others.
                Err(error) => tracing::error!(run = %run_id, %error, "could not work on a run"),
            }
        }
        Ok(false)
    }

    // ---- planning ----------------------------------------------------------------

    async fn plan_next(&self) -> Result<bool> {
        let claimed = {
            let client = self.pool.get().await?;
            db::runs::claim_for_planning(&client, &self.owner, self.config.lease_ttl).await?
        };
        let Some(run) = claimed else {
            return Ok(false);
        };
        if run.cancel_requested {
            self.end(&run, RunState::Cancelled, None, None).await?;
            return Ok(true);
        }
        let target = {
            let client = self.pool.get().await?;
            db::bindings::get(&client, &run.organization_id, run.target_binding_id).await?
        };
        if target.map(|t| t.state) != Some(BindingState::Active) {
            let detail = format!(
                "binding {} is not the organization's active binding",
                run.target_binding_id
            );
            tracing::warn!(run = %run.id, %detail, "run failed at planning");
            self.end(
                &run,
                RunState::Failed,
                Some(FailureCause::TargetNotActive),
                Some(detail),
            )
            .await?;
            return Ok(true);
        }
        if !self.plan(&run).await? {
            return Ok(true);
        }
        match run.mode {
            Mode::DryRun => {
                self.end(&run, RunState::Completed, None, None).await?;
            }
            Mode::Live => {
                let client = self.pool.get().await?;
                db::runs::start_running(&client, run.id, &self.owner).await?;
            }
        }
        tracing::info!(run = %run.id, "run planned");
        Ok(true)
    }

    /// Pages through the candidates, continuing where an earlier planner stopped. Returns
    /// false if the lease was lost to another replica.
    async fn plan(&self, run: &Run) -> Result<bool> {
        let mut sources: BTreeMap<Uuid, (i64, i64)> = run
            .sources
            .iter()
            .map(|s| (s.binding_id, (s.artifacts, s.bytes)))
            .collect();
        let mut client = self.pool.get().await?;
        let mut cursor = db::runs::plan_cursor(&client, run.id).await?;
        loop {
            let tx = client.transaction().await?;
            let page = db::items::plan_page(
                &tx,
                run.id,
                &run.organization_id,
                run.target_binding_id,
                cursor,
                self.config.plan_page.max(1),
                run.mode == Mode::Live,
            )
            .await?;
            let Some(last) = page.last else {
                return Ok(true);
            };
            let (mut items, mut bytes) = (0, 0);
            for (binding, n, b) in page.sources {
                let entry = sources.entry(binding).or_default();
                entry.0 += n;
                entry.1 += b;
                items += n;
                bytes += b;
            }
            let report: Vec<SourceReport> = sources
                .iter()
                .map(|(binding, (n, b))| SourceReport {
                    binding_id: *binding,
                    artifacts: *n,
                    bytes: *b,
                })
                .collect();
            let queued = if run.mode == Mode::Live { items } else { 0 };
            let saved = db::runs::save_plan_page(
                &tx,
                run.id,
                &self.owner,
                self.config.lease_ttl,
                last,
                &report,
                queued,
                bytes,
            )
            .await?;
            let Some(cancel_requested) = saved else {
                tracing::warn!(run = %run.id, "lost the planning lease to another replica");
                return Ok(false);
            };
            tx.commit().await?;
            if cancel_requested {
                self.end(run, RunState::Cancelled, None, None).await?;
                return Ok(false);
            }
            cursor = Some(last);
        }
    }

    // ---- running -----------------------------------------------------------------

    /// Works through a running run's items until none is left to this replica, then
    /// tries to finish the run. Returns whether anything happened.
    async fn work(&self, run_id: Uuid, drain: &Drain) -> Result<bool> {
        let Some(run) = self.current(run_id).await? else {
            return Ok(false);
        };
        if run.state != RunState::Running {
            return Ok(false);
        }
        let (target_binding, target) = match self
            .stores
            .open(&run.organization_id, run.target_binding_id)
            .await
        {
            Ok(opened) => opened,
            // The database is not the target: try again on a later step.
            Err(error @ Error::Db(_)) => return Err(error),
            Err(error) => {
                self.fail_closed(
                    &run,
                    FailureCause::TargetUnavailable,
                    format!("the target cannot be opened: {error}"),
                )
                .await?;
                return Ok(true);
            }
        };
        if target_binding.state != BindingState::Active {
            self.fail_closed(
                &run,
                FailureCause::TargetNotActive,
                format!("binding {} is no longer active", target_binding.id),
            )
            .await?;
            return Ok(true);
        }
        let context = Arc::new(RunContext {
            pace: Pace::new(run.limit),
            run,
            target,
            stop: AtomicBool::new(false),
            suspect: AtomicBool::new(false),
        });
        let _monitor = AbortOnDropHandle::new(tokio::spawn(self.clone().monitor(context.clone())));
        // Batches are leased as the workers take items, never far ahead of them.
        let batches = stream::unfold(
            (self.clone(), context.clone(), drain.clone()),
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
        let (recorded, to_record) = mpsc::channel(self.config.concurrency.max(1) * 2);
        let recorder = self.clone().recorder(context.clone(), to_record);
        let runner = self.clone();
        let workers = async move {
            let mut outcomes = batches
                .flatten()
                .map(move |item| {
                    let (runner, context, recorded) =
                        (runner.clone(), context.clone(), recorded.clone());
                    async move { runner.process(&context, item, &recorded).await }
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
        };
        let (processed, ()) = tokio::join!(workers, recorder);
        let finished = self.try_finish(run_id).await?;
        Ok(processed > 0 || finished)
    }

    async fn current(&self, run_id: Uuid) -> Result<Option<Run>> {
        let client = self.pool.get().await?;
        db::runs::get(&client, None, run_id).await
    }

    /// Leases the next batch, unless the run stopped, the target is suspect or the replica
    /// drains. (No batch ends this pass; a later step leases again if the run goes on.)
    async fn claim(&self, context: &RunContext, drain: &Drain) -> Result<Vec<RunItem>> {
        if drain.is_draining()
            || context.stop.load(Ordering::Acquire)
            || context.suspect.load(Ordering::Acquire)
        {
            return Ok(Vec::new());
        }
        let run_id = context.run.id;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(run) = db::runs::get_for_update(&tx, None, run_id).await? else {
            return Ok(Vec::new());
        };
        if run.state != RunState::Running || run.cancel_requested {
            context.stop.store(true, Ordering::Release);
            return Ok(Vec::new());
        }
        if db::bindings::state_for_share(&tx, run.target_binding_id).await?
            != Some(BindingState::Active)
        {
            drop(tx);
            context.stop.store(true, Ordering::Release);
            self.fail_closed(
                &run,
                FailureCause::TargetNotActive,
                format!("binding {} is no longer active", run.target_binding_id),
            )
            .await?;
            return Ok(Vec::new());
        }
        let claimed = db::items::claim(
            &tx,
            run_id,
            &self.owner,
            self.config.lease_ttl,
            self.config.batch_size.max(1),
        )
        .await?;
        let from_queue = claimed
            .iter()
            .filter(|(_, previous)| *previous == ItemState::Queued)
            .count() as i64;
        db::runs::shift(
            &tx,
            run_id,
            ItemState::Queued,
            ItemState::Running,
            from_queue,
        )
        .await?;
        tx.commit().await?;
        self.track(claimed.iter().map(|(item, _)| item), true);
        Ok(claimed.into_iter().map(|(item, _)| item).collect())
    }

    #[tracing::instrument(skip_all, fields(run = %context.run.id, artifact = %item.artifact_id))]
    async fn process(
        &self,
        context: &RunContext,
        item: RunItem,
        recorded: &mpsc::Sender<(RunItem, Outcome)>,
    ) -> Result<()> {
        let started = Instant::now();
        let outcome = match self.copy_item(context, &item).await {
            Ok(Outcome::Unstarted) => return self.release(&item).await,
            Ok(outcome) => outcome,
            Err(error) => {
                // Not the item's fault (the database, most likely): try it again later.
                tracing::warn!(%error, "an item could not be processed; it goes back");
                return self.release(&item).await;
            }
        };
        if matches!(outcome, Outcome::TargetDown(_)) {
            context.stop.store(true, Ordering::Release);
        }
        metrics::histogram!("migration_item_seconds").record(started.elapsed().as_secs_f64());
        recorded
            .send((item, outcome))
            .await
            .map_err(|_| Error::Internal("the outcome recorder stopped".into()))
    }

    /// Adds or removes items from the set whose leases the heartbeat renews.
    fn track<'a>(&self, items: impl IntoIterator<Item = &'a RunItem>, leased: bool) {
        if let Ok(mut set) = self.leased.lock() {
            for item in items {
                let key = (item.run_id, item.artifact_id);
                if leased {
                    set.insert(key);
                } else {
                    set.remove(&key);
                }
            }
        }
    }

    /// Records outcomes as they arrive, many to a transaction (group commit), and fails
    /// the run closed after recording a target that did not take a write.
    async fn recorder(
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
            let inactive = match self
                .record(context.run.id, std::mem::take(&mut batch))
                .await
            {
                Ok(target_active) => !target_active,
                Err(error) => {
                    tracing::error!(%error, items = items.len(), "outcomes could not be recorded; their leases will expire");
                    false
                }
            };
            self.track(&items, false);
            let closed = match (down, inactive) {
                (Some(detail), _) => Some((FailureCause::TargetUnavailable, detail)),
                (None, true) => Some((
                    FailureCause::TargetNotActive,
                    format!(
                        "binding {} is no longer active",
                        context.run.target_binding_id
                    ),
                )),
                (None, false) => None,
            };
            if let Some((cause, detail)) = closed {
                context.stop.store(true, Ordering::Release);
                if let Err(error) = self.fail_closed(&context.run, cause, detail).await {
                    tracing::error!(%error, "could not fail the run closed");
                }
            }
        }
    }

    /// Reads the item's artifact as it is now and copies it to the target.
    async fn copy_item(&self, context: &RunContext, item: &RunItem) -> Result<Outcome> {
        let run = &context.run;
        // Paced before the artifact is read, so a throttled item sees it as it is then.
        if context.stop.load(Ordering::Acquire) {
            return Ok(Outcome::Unstarted);
        }
        let bytes = u64::try_from(item.size_bytes).unwrap_or(0);
        if !context.pace.admit(bytes, &context.stop).await {
            return Ok(Outcome::Unstarted);
        }
        let artifact = {
            let client = self.pool.get().await?;
            db::artifacts::get(&client, Some(&run.organization_id), item.artifact_id).await?
        };
        let Some(artifact) = artifact.filter(|a| a.delete_time.is_none()) else {
            return Ok(Outcome::Skipped(ItemCause::ArtifactDeleted));
        };
        if artifact.binding_id == run.target_binding_id {
            return Ok(Outcome::Skipped(ItemCause::AlreadyOnTarget));
        }
        let source = artifact.binding_id;
        let (_, source_store) = match self.stores.open(&run.organization_id, source).await {
            Ok(opened) => opened,
            Err(error) => {
                return Ok(Outcome::Failed(
                    ItemCause::SourceUnavailable,
                    error.to_string(),
                ));
            }
        };
        let source_key = BlobKey::new(artifact.object_key.clone())?;
        let target_key = object_key(artifact.id, run.target_binding_id)?;
        let expected = artifact.expected();
        let attempts = self.config.target_attempts.max(1);
        let mut backoff = Duration::from_millis(200);
        for attempt in 1..=attempts {
            match copy(
                &source_store,
                &source_key,
                &context.target,
                &target_key,
                &expected,
            )
            .await
            {
                Ok(receipt) => {
                    context.suspect.store(false, Ordering::Release);
                    return Ok(Outcome::Migrated { source, receipt });
                }
                Err(error) => match error.item_cause() {
                    Some(cause) => return Ok(Outcome::Failed(cause, error.to_string())),
                    None if attempt == attempts => {
                        context.suspect.store(true, Ordering::Release);
                        return Ok(Outcome::TargetDown(error.to_string()));
                    }
                    // The run is stopping (cancelled, or failed elsewhere): no more tries,
                    // and no verdict on the target.
                    None if context.stop.load(Ordering::Acquire) => {
                        return Ok(Outcome::Failed(
                            ItemCause::TargetUnavailable,
                            error.to_string(),
                        ));
                    }
                    None => {
                        context.suspect.store(true, Ordering::Release);
                        tracing::warn!(attempt, %error, "the target did not take a write");
                        tokio::time::sleep(backoff).await;
                        backoff *= 2;
                    }
                },
            }
        }
        Ok(Outcome::TargetDown("no attempt was made".into()))
    }

    /// Gives an unstarted item back to the queue and stops renewing its lease (if the
    /// release fails, the lease lapses instead).
    async fn release(&self, item: &RunItem) -> Result<()> {
        self.track([item], false);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        db::runs::get_for_update(&tx, None, item.run_id).await?;
        if db::items::release(&tx, item.run_id, item.artifact_id, &self.owner).await? {
            db::runs::shift(&tx, item.run_id, ItemState::Running, ItemState::Queued, 1).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets the run's stop flag once it is cancelled or no longer running (another
    /// replica may have failed it closed), so leased items waiting to start go back.
    async fn monitor(self, context: Arc<RunContext>) {
        let every = self.config.poll_interval.max(Duration::from_millis(100));
        while !context.stop.load(Ordering::Acquire) {
            tokio::time::sleep(every).await;
            let stopped = match self.current(context.run.id).await {
                Ok(Some(run)) => run.state != RunState::Running || run.cancel_requested,
                Ok(None) => true,
                Err(_) => false,
            };
            if stopped {
                context.stop.store(true, Ordering::Release);
            }
        }
    }

    /// Records outcomes in one transaction of a few set-wise statements: the run row
    /// first (locked, so outcome numbers follow commit order), the leases still held, the
    /// flips of migrated artifacts to the target, the items, then the run's counters. An
    /// item whose lease was lost is not recorded: the replica that took it over records
    /// it. Returns whether the target was still active (a stopped run counts as active:
    /// it needs no second verdict).
    async fn record(&self, run_id: Uuid, outcomes: Vec<(RunItem, Outcome)>) -> Result<bool> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let run = db::runs::get_for_update(&tx, None, run_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("run {run_id}")))?;
        let running = run.state == RunState::Running;
        let target = run.target_binding_id;
        let target_active = running
            && db::bindings::state_for_share(&tx, target).await? == Some(BindingState::Active);
        let ids: Vec<Uuid> = outcomes.iter().map(|(item, _)| item.artifact_id).collect();
        let held: HashSet<Uuid> = db::items::held(&tx, run_id, &ids, &self.owner)
            .await?
            .into_iter()
            .collect();
        let mut flips = Vec::new();
        for (item, outcome) in &outcomes {
            if let Outcome::Migrated { source, receipt } = outcome
                && held.contains(&item.artifact_id)
                && target_active
            {
                flips.push(db::artifacts::Flip {
                    id: item.artifact_id,
                    source: *source,
                    object_key: object_key(item.artifact_id, target)?.to_string(),
                    stored_bytes: i64::try_from(receipt.stored_len).unwrap_or(i64::MAX),
                    kek_id: receipt.kek_id.clone(),
                });
            }
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
            let (state, cause, detail, bytes) = match outcome {
                Outcome::Migrated { receipt, .. } if flipped.contains(&item.artifact_id) => {
                    let size = i64::try_from(receipt.plaintext_len).unwrap_or(i64::MAX);
                    (ItemState::Migrated, None, String::new(), size)
                }
                Outcome::Migrated { .. } if !running => (
                    ItemState::Failed,
                    Some(ItemCause::TargetUnavailable),
                    "the run ended before this copy was recorded; the artifact stays on its \
                     source"
                        .to_owned(),
                    0,
                ),
                Outcome::Migrated { .. } if !target_active => (
                    ItemState::Failed,
                    Some(ItemCause::TargetUnavailable),
                    format!(
                        "binding {target} stopped being active; the artifact stays on its source"
                    ),
                    0,
                ),
                Outcome::Migrated { .. } => {
                    let cause = self.why_not_flipped(&tx, item.artifact_id, target).await?;
                    (ItemState::Skipped, Some(cause), String::new(), 0)
                }
                Outcome::Skipped(cause) => (ItemState::Skipped, Some(cause), String::new(), 0),
                Outcome::Failed(cause, detail) => (ItemState::Failed, Some(cause), detail, 0),
                Outcome::TargetDown(detail) => (
                    ItemState::Failed,
                    Some(ItemCause::TargetUnavailable),
                    detail,
                    0,
                ),
                Outcome::Unstarted => continue,
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
        Ok(target_active || !running)
    }

    /// Why a verified copy's artifact was not flipped: deleted, or already on the target.
    async fn why_not_flipped(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        artifact: Uuid,
        target: Uuid,
    ) -> Result<ItemCause> {
        Ok(match db::artifacts::get(tx, None, artifact).await? {
            Some(a) if a.delete_time.is_none() && a.binding_id == target => {
                ItemCause::AlreadyOnTarget
            }
            _ => ItemCause::ArtifactDeleted,
        })
    }

    /// Ends the run once no item is queued or leased: COMPLETED, COMPLETED_WITH_ERRORS,
    /// or CANCELLED if a cancel left items queued.
    async fn try_finish(&self, run_id: Uuid) -> Result<bool> {
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
            db::runs::shift(&tx, run_id, ItemState::Running, ItemState::Queued, requeued).await?;
            counts.running -= requeued;
            counts.queued += requeued;
        }
        if counts.running > 0 || (counts.queued > 0 && !run.cancel_requested) {
            return Ok(false);
        }
        let state = if counts.queued > 0 {
            RunState::Cancelled
        } else if counts.failed > 0 {
            RunState::CompletedWithErrors
        } else {
            RunState::Completed
        };
        end_locked(&tx, &run, state, None, None, None).await?;
        tx.commit().await?;
        tracing::info!(run = %run_id, state = state.as_str(), "run ended");
        metrics::counter!("migration_runs_ended_total", "state" => state.as_str()).increment(1);
        Ok(true)
    }

    /// Fails the run closed: FAILED, its domain event and the security event, at most
    /// once. Migrated items stay migrated; nothing is written anywhere else.
    async fn fail_closed(&self, run: &Run, cause: FailureCause, detail: String) -> Result<()> {
        let security = json!({
            "cause": cause.as_str(),
            "detail": detail,
            "target_binding_id": run.target_binding_id,
            "fallback": "none: migrated items stay migrated, the rest stay on their source",
        });
        if self
            .end_with(
                run,
                RunState::Failed,
                Some(cause),
                Some(detail),
                Some(security),
            )
            .await?
        {
            tracing::error!(run = %run.id, cause = cause.as_str(), "run failed closed");
        }
        Ok(())
    }

    async fn end(
        &self,
        run: &Run,
        state: RunState,
        cause: Option<FailureCause>,
        detail: Option<String>,
    ) -> Result<bool> {
        self.end_with(run, state, cause, detail, None).await
    }

    /// Ends a run that has not ended yet, with its domain event (and a security event);
    /// returns whether it did.
    async fn end_with(
        &self,
        run: &Run,
        state: RunState,
        cause: Option<FailureCause>,
        detail: Option<String>,
        security: Option<serde_json::Value>,
    ) -> Result<bool> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(current) = db::runs::get_for_update(&tx, None, run.id).await? else {
            return Ok(false);
        };
        if current.state.is_terminal() {
            return Ok(false);
        }
        if state == RunState::Failed {
            // Items still leased end with the run, each with an outcome number, so
            // watchers see them and late records from other replicas find no lease.
            let closing = format!(
                "the run failed before this item was recorded: {}",
                detail.as_deref().unwrap_or("")
            );
            db::items::fail_running(
                &tx,
                run.id,
                ItemCause::TargetUnavailable,
                &closing,
                current.last_outcome,
            )
            .await?;
            // Items never started end too, so the run's counts tell the truth: nothing
            // is left queued behind a run that will not go on.
            let never_started = format!(
                "the run failed before this item was started: {}",
                detail.as_deref().unwrap_or("")
            );
            db::items::fail_queued(&tx, run.id, ItemCause::RunFailed, &never_started).await?;
        }
        end_locked(&tx, &current, state, cause, detail.as_deref(), security).await?;
        tx.commit().await?;
        metrics::counter!("migration_runs_ended_total", "state" => state.as_str()).increment(1);
        Ok(true)
    }
}

/// Ends a locked run in `state` with its domain event, and a security event if given.
async fn end_locked(
    tx: &deadpool_postgres::Transaction<'_>,
    run: &Run,
    state: RunState,
    cause: Option<FailureCause>,
    detail: Option<&str>,
    security: Option<serde_json::Value>,
) -> Result<()> {
    db::runs::end(tx, run.id, state, cause, detail).await?;
    if let Some(ended) = db::runs::get(tx, None, run.id).await? {
        record_end(tx, &ended).await?;
    }
    if let Some(security) = security {
        db::evidence::record_security_event(
            tx,
            &run.organization_id,
            MIGRATION_FAILED_CLOSED,
            run.id,
            run.target_binding_id,
            &security,
        )
        .await?;
    }
    Ok(())
}
