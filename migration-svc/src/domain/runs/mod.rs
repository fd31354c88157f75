//! Migration runs as callers see them: start (dry run or live, never by default), read,
//! list, list items, retry a failed run, cancel. The work itself is the runner's; how a
//! run ends is [`lifecycle`]'s.

pub mod lifecycle;
mod plans;

use std::sync::Arc;

use serde::Serialize;
use serde_json::json;
use stowage_shared::db::{GenericClient, RowLock};
use stowage_shared::{
    api::{Page, RequestId},
    auth::{Principal, Role},
};
use tokio::sync::Notify;
use uuid::Uuid;

use self::lifecycle::Ending;
// Re-exported for the watcher, which takes runs and items from here.
pub use super::model::runs::{Run, RunItem};
use super::{
    command::{self, commands},
    evidence,
    model::{
        evidence::AuditEntry,
        runs::{ItemState, Limit, Mode, RunState, Scope},
    },
};
use crate::{
    db,
    error::{Error, Result},
};

#[derive(Debug, Clone, Serialize)]
pub struct StartRun {
    pub target: Uuid,
    pub mode: Mode,
    pub reason: String,
    pub limit: Limit,
    pub scope: Scope,
    /// The dry run whose plan a live run executes (its scope is the run's).
    pub from_dry_run: Option<Uuid>,
    /// Execute that plan even if the candidates drifted from it.
    pub accept_drift: bool,
    #[serde(skip)]
    pub request_id: RequestId,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetryRun {
    pub id: Uuid,
    pub reason: String,
    #[serde(skip)]
    pub request_id: RequestId,
}

commands! {
    StartRun => "StartRun",
    RetryRun => "RetryRun",
}

#[derive(Debug, Clone)]
pub struct ListRuns {
    pub state: Option<RunState>,
    pub after: Option<Uuid>,
    pub limit: i64,
}

#[derive(Debug, Clone)]
pub struct ListItems {
    pub run_id: Uuid,
    pub state: Option<ItemState>,
    pub after: Option<Uuid>,
    pub limit: i64,
}

/// Runs as callers see them. Every mutation records its audit entry in its own
/// transaction.
#[derive(Clone, Debug)]
pub struct Runs {
    pool: deadpool_postgres::Pool,
    /// Wakes this replica's runner when a run is queued here.
    wake: Arc<Notify>,
}

impl Runs {
    pub fn new(pool: deadpool_postgres::Pool, wake: Arc<Notify>) -> Self {
        Self { pool, wake }
    }

    #[tracing::instrument(skip_all, fields(org = %caller.organization, target = %command.target))]
    pub async fn start(&self, caller: &Principal, command: StartRun) -> Result<Run> {
        caller.require(Role::OrgAdmin)?;
        let org = caller.organization.as_str();
        let queued = command::run(&self.pool, caller, &command, async |tx, entry| {
            db::bindings::BINDINGS
                .find(tx, Some(org), command.target, RowLock::No)
                .await?;
            let scope = match command.from_dry_run {
                Some(dry_run) => plans::executable_plan(tx, org, dry_run, &command).await?,
                None => command.scope.clone(),
            };
            let mut run = new_run(
                caller,
                command.target,
                command.mode,
                &command.reason,
                command.limit,
                scope,
                None,
            );
            run.from_dry_run = command.from_dry_run;
            insert_open(tx, &run).await?;
            let entry = opened(entry, &run).detail(json!({
                "limit": run.limit,
                "scope": run.scope,
                "from_dry_run": run.from_dry_run,
                "accept_drift": command.accept_drift,
            }));
            Ok((run, entry))
        })
        .await?;
        if let Some(run) = queued.now() {
            tracing::info!(run = %run.id, mode = run.mode.as_str(), "run queued");
            self.wake.notify_one();
        }
        Ok(queued.response())
    }

    pub async fn get(&self, caller: &Principal, id: Uuid) -> Result<Run> {
        db::runs::RUNS
            .owned_by(&self.pool, &caller.organization, id)
            .await
    }

    pub async fn list(&self, caller: &Principal, query: ListRuns) -> Result<Page<Run, Uuid>> {
        let client = self.pool.get().await?;
        let org = &caller.organization;
        db::runs::list(&client, org, query.state, query.after, query.limit).await
    }

    pub async fn items(&self, caller: &Principal, query: ListItems) -> Result<Page<RunItem, Uuid>> {
        let client = self.pool.get().await?;
        db::runs::RUNS
            .find(
                &client,
                Some(&caller.organization),
                query.run_id,
                RowLock::No,
            )
            .await?;
        let items = db::items::list(
            &client,
            query.run_id,
            query.state,
            query.after,
            query.limit + 1,
        )
        .await?;
        Ok(Page::from_rows(items, query.limit, |i| i.artifact_id))
    }

    /// A new run for a FAILED run's target: its planning takes every artifact not yet on
    /// the target, so what migrated is skipped. A COMPLETED_WITH_ERRORS run is not retried:
    /// a new run (StartRun) picks its failures up through planning.
    #[tracing::instrument(skip_all, fields(org = %caller.organization, run = %command.id))]
    pub async fn retry(&self, caller: &Principal, command: RetryRun) -> Result<Run> {
        caller.require(Role::OrgAdmin)?;
        let org = caller.organization.as_str();
        let queued = command::run(&self.pool, caller, &command, async |tx, entry| {
            let failed = db::runs::RUNS
                .find(tx, Some(org), command.id, RowLock::ForUpdate)
                .await?;
            retryable(&failed)?;
            let reason = retry_reason(&failed, &command.reason);
            let run = new_run(
                caller,
                failed.target_binding_id,
                failed.mode,
                &reason,
                failed.limit,
                failed.scope.clone(),
                Some(failed.id),
            );
            insert_open(tx, &run).await?;
            let entry = opened(entry, &run).detail(json!({ "retry_of": failed.id }));
            Ok((run, entry))
        })
        .await?;
        if let Some(run) = queued.now() {
            tracing::info!(run = %run.id, retry_of = %command.id, "run queued");
            self.wake.notify_one();
        }
        Ok(queued.response())
    }

    /// Cancels a run: a queued run ends at once; a planning or running one stops after
    /// its in-flight items. Cancelling an ended run is a no-op.
    #[tracing::instrument(skip_all, fields(org = %caller.organization, run = %id))]
    pub async fn cancel(&self, caller: &Principal, id: Uuid, reason: &str) -> Result<Run> {
        caller.require(Role::OrgAdmin)?;
        let org = caller.organization.as_str();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let run = db::runs::RUNS
            .find(&tx, Some(org), id, RowLock::ForUpdate)
            .await?;
        if run.state.is_terminal() {
            return Ok(run);
        }
        db::runs::request_cancel(&tx, id).await?;
        let ended = run.state == RunState::Queued;
        let run = if ended {
            lifecycle::end_locked(&tx, &run, &Ending::Cancelled).await?
        } else {
            db::runs::RUNS.find(&tx, None, id, RowLock::No).await?
        };
        evidence::audit(
            &tx,
            &AuditEntry::new(caller, "CancelRun")
                .run(id)
                .binding(run.target_binding_id)
                .mode(run.mode)
                .reason(reason),
        )
        .await?;
        tx.commit().await?;
        if ended {
            lifecycle::ended(id, &Ending::Cancelled);
        }
        Ok(run)
    }
}

/// The audit entry of a newly queued run: its id, target, mode and reason.
fn opened(entry: AuditEntry, run: &Run) -> AuditEntry {
    entry
        .run(run.id)
        .binding(run.target_binding_id)
        .mode(run.mode)
        .reason(&run.reason)
}

/// Only a FAILED run is retried: a run that ended otherwise, or has not ended, is a
/// failed precondition that says what to do instead.
fn retryable(run: &Run) -> Result<()> {
    match run.state {
        RunState::Failed => Ok(()),
        RunState::CompletedWithErrors => Err(Error::FailedPrecondition(format!(
            "run {} is COMPLETED_WITH_ERRORS: only FAILED runs are retried; start a new run \
             (StartRun) to the same target, whose planning picks up every artifact not yet on it",
            run.id
        ))),
        other => Err(Error::FailedPrecondition(format!(
            "run {} is {}: only FAILED runs are retried; to migrate what is left, start a new run",
            run.id,
            other.as_str().to_uppercase()
        ))),
    }
}

/// A retry's reason: the caller's, or one naming the run it retries.
fn retry_reason(failed: &Run, reason: &str) -> String {
    if reason.is_empty() {
        format!("retry of run {}", failed.id)
    } else {
        reason.to_owned()
    }
}

/// Inserts a queued run; a second open live run of the organization is refused.
async fn insert_open(client: &impl stowage_shared::db::GenericClient, run: &Run) -> Result<()> {
    match db::runs::insert(client, run).await {
        Err(error) if error.as_db().is_some_and(|db| db.is_unique_violation()) => {
            Err(Error::FailedPrecondition(
                "the organization already has a live run queued or in progress; wait for it \
                 to end or cancel it"
                    .into(),
            ))
        }
        other => other,
    }
}

/// A new queued run requested by `caller`.
fn new_run(
    caller: &Principal,
    target: Uuid,
    mode: Mode,
    reason: &str,
    limit: Limit,
    scope: Scope,
    retry_of: Option<Uuid>,
) -> Run {
    let (org, subject) = (&caller.organization, &caller.subject);
    Run {
        scope,
        ..Run::queued(org, subject, target, mode, reason, limit, retry_of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::runs::Counts;

    fn run(state: RunState) -> Run {
        let caller = Principal {
            subject: "alice".into(),
            organization: "acme".into(),
            roles: [Role::OrgAdmin].into(),
        };
        let mut run = new_run(
            &caller,
            Uuid::nil(),
            Mode::Live,
            "why",
            Limit::default(),
            Scope::default(),
            None,
        );
        run.state = state;
        run
    }

    #[test]
    fn a_new_run_is_queued_for_the_caller_with_nothing_counted() {
        let run = run(RunState::Queued);
        assert_eq!(
            (run.organization_id.as_str(), run.requested_by.as_str()),
            ("acme", "alice")
        );
        assert_eq!(run.counts, Counts::default());
        assert!(!run.cancel_requested && run.end_time.is_none());
    }

    #[test]
    fn only_a_failed_run_is_retried() {
        assert!(retryable(&run(RunState::Failed)).is_ok());
        for state in RunState::ALL.iter().filter(|s| **s != RunState::Failed) {
            let refused = retryable(&run(*state));
            assert!(
                matches!(refused, Err(Error::FailedPrecondition(_))),
                "{state:?}: {refused:?}"
            );
        }
    }

    #[test]
    fn a_run_completed_with_errors_is_told_to_start_a_new_run() {
        let Err(Error::FailedPrecondition(message)) =
            retryable(&run(RunState::CompletedWithErrors))
        else {
            panic!("not refused");
        };
        assert!(message.contains("StartRun"), "{message}");
    }

    #[test]
    fn a_retry_without_a_reason_names_the_run_it_retries() {
        let failed = run(RunState::Failed);
        assert_eq!(
            retry_reason(&failed, ""),
            format!("retry of run {}", failed.id)
        );
        assert_eq!(retry_reason(&failed, "fixed the key"), "fixed the key");
    }
}
