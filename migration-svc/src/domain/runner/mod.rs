//! The runner every replica runs: it plans queued runs ([`plan`]), works through running
//! runs' items ([`work`]) and records their outcomes ([`record`]). Running runs are worked
//! side by side, each in a task of its own, sharing the replica's `concurrency` copy slots
//! first come first served, so one organization's large run cannot hold another's at 0%.
//! Every place that decides to fail a run closed asks [`ensure_target_active`] and leaves
//! through [`Runner::fail`]; every end of a run is [`lifecycle`]'s.

mod outcome;
mod plan;
mod record;
mod work;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use stowage_shared::db::RowLock;
use stowage_shared::{db::GenericClient, shutdown::Drain};
use tokio::{
    sync::{Notify, Semaphore},
    task::JoinSet,
};
use tokio_util::task::AbortOnDropHandle;
use uuid::Uuid;

use super::{
    model::{
        bindings::BindingState,
        runs::{FailureCause, Run, RunItem, RunState},
    },
    runs::lifecycle::{self, Ending, Failure},
    stores::Stores,
};
use crate::{config::RunnerConfig, db, error::Result};

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
    /// Items being copied at once on this replica, across all its runs.
    slots: Arc<Semaphore>,
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
        let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
        Self {
            pool,
            stores,
            config,
            owner,
            leased: Arc::default(),
            slots,
            wake,
        }
    }

    /// Works until the drain starts, then lets the runs in hand wind down (they lease
    /// nothing more); leases this replica holds are renewed meanwhile.
    pub async fn run(self, drain: Drain) {
        // Stops with this future, however it ends.
        let _heartbeat = AbortOnDropHandle::new(tokio::spawn(self.clone().heartbeat()));
        tracing::info!(owner = %self.owner, "migration runner started");
        let mut working = Working::default();
        while !drain.is_draining() {
            working.reap();
            let idle = match self.step(&drain, &mut working).await {
                Ok(planned) => !planned,
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
        working.wind_down().await;
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
                let ttl = self.config.lease_ttl;
                db::items::heartbeat(&client, &self.owner, &runs, &artifacts, ttl).await
            };
            if let Err(error) = renewed.await {
                tracing::warn!(%error, "could not renew item leases");
            }
        }
    }

    /// One pass: plan a queued run, or start working on every running run this replica
    /// is not working on yet (a run's task ends when nothing is left to this replica; a
    /// later pass starts it again if the run is still running). Returns whether it
    /// planned a run, so another pass follows at once.
    async fn step(&self, drain: &Drain, working: &mut Working) -> Result<bool> {
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
            working.start(self, run_id, drain);
        }
        Ok(false)
    }

    async fn current(&self, run_id: Uuid) -> Result<Option<Run>> {
        let client = self.pool.get().await?;
        db::runs::RUNS.get(&client, None, run_id, RowLock::No).await
    }

    /// Ends the run with `ending` unless it has ended already.
    async fn end(&self, run: &Run, ending: Ending) -> Result<bool> {
        lifecycle::end(&self.pool, run.id, &ending).await
    }

    /// The one way out of a run whose target cannot take its writes: FAILED, at most
    /// once; failed closed (with its security event) if it was running. Migrated items
    /// stay migrated; nothing is written anywhere else.
    async fn fail(&self, run: &Run, failure: Failure) -> Result<()> {
        self.end(run, Ending::Failed(failure)).await?;
        Ok(())
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
}

/// The runs this replica is working on, a task each.
#[derive(Default)]
struct Working {
    runs: HashMap<tokio::task::Id, Uuid>,
    tasks: JoinSet<()>,
}

impl Working {
    /// Starts working on `run_id` unless this replica works on that run already.
    fn start(&mut self, runner: &Runner, run_id: Uuid, drain: &Drain) {
        if self.runs.values().any(|r| *r == run_id) {
            return;
        }
        let (runner, drain) = (runner.clone(), drain.clone());
        let task = self.tasks.spawn(async move {
            // One run's trouble never holds up the others.
            if let Err(error) = runner.work(run_id, &drain).await {
                tracing::error!(run = %run_id, %error, "could not work on a run");
            }
        });
        self.runs.insert(task.id(), run_id);
    }

    /// Forgets the runs whose task has ended (a later step starts again on any still
    /// running, e.g. when another replica's leases expire).
    fn reap(&mut self) {
        while let Some(ended) = self.tasks.try_join_next_with_id() {
            self.forget(ended);
        }
    }

    async fn wind_down(&mut self) {
        while let Some(ended) = self.tasks.join_next_with_id().await {
            self.forget(ended);
        }
    }

    fn forget(
        &mut self,
        ended: std::result::Result<(tokio::task::Id, ()), tokio::task::JoinError>,
    ) {
        let task = match ended {
            Ok((task, ())) => task,
            Err(error) => {
                tracing::error!(%error, "a run's task failed");
                error.id()
            }
        };
        self.runs.remove(&task);
    }
}

/// The one check before a run plans or writes: its target is still the organization's
/// active binding (read `for share`, so inside a transaction it stays so until commit).
/// `Some` is the failure to end the run with.
async fn ensure_target_active(client: &impl GenericClient, run: &Run) -> Result<Option<Failure>> {
    let state = db::bindings::state_for_share(client, run.target_binding_id).await?;
    Ok(target_failure(run, state))
}

/// The pure half of [`ensure_target_active`].
fn target_failure(run: &Run, state: Option<BindingState>) -> Option<Failure> {
    if state == Some(BindingState::Active) {
        return None;
    }
    let binding = run.target_binding_id;
    let detail = if run.state == RunState::Running {
        format!("binding {binding} is no longer active")
    } else {
        format!("binding {binding} is not the organization's active binding")
    };
    Some(Failure::new(FailureCause::TargetNotActive, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_active_target_lets_the_run_go_on() {
        let run = Run::example(RunState::Running);
        assert_eq!(target_failure(&run, Some(BindingState::Active)), None);
    }

    #[test]
    fn a_target_disabled_pending_or_gone_fails_the_run_as_not_active() {
        for state in [
            Some(BindingState::Disabled),
            Some(BindingState::Pending),
            None,
        ] {
            let failure = target_failure(&Run::example(RunState::Running), state);
            let failure = failure.expect("a failure");
            assert_eq!(failure.cause, FailureCause::TargetNotActive);
            assert!(
                failure.detail.contains("no longer active"),
                "{}",
                failure.detail
            );
        }
    }

    #[test]
    fn a_target_not_active_at_planning_is_said_so() {
        let failure = target_failure(&Run::example(RunState::Planning), None).expect("a failure");
        assert!(
            failure
                .detail
                .contains("not the organization's active binding"),
            "{}",
            failure.detail
        );
    }
}
