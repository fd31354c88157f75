//! Executing a dry run's plan: which dry runs a live run may execute, and the drift of
//! the candidates from the plan that refuses it (unless the caller accepts the drift).

use stowage_shared::db::{GenericClient, RowLock};
use uuid::Uuid;

use super::StartRun;
use crate::{
    db,
    domain::model::runs::{Mode, Run, RunState, Scope},
    error::{Error, Result},
};

/// Drift ids a refused StartRun names, of each kind.
const DRIFT_SHOWN: i64 = 10;

/// The scope of dry run `id`, which a live run is to execute: only if it is a completed
/// dry run for the same target with a plan, and its plan still holds (the candidates did
/// not drift from it) or the caller accepts the drift.
pub(super) async fn executable_plan(
    tx: &impl GenericClient,
    org: &str,
    id: Uuid,
    command: &StartRun,
) -> Result<Scope> {
    let dry = db::runs::RUNS.find(tx, Some(org), id, RowLock::No).await?;
    executable(&dry, command.target)?;
    let drift = db::plans::drift(tx, &dry, DRIFT_SHOWN).await?;
    if !drift.is_empty() && !command.accept_drift {
        return Err(Error::FailedPrecondition(format!(
            "the candidates drifted from the plan of dry run {id}: {}; start a new dry run, or \
             set accept_drift to execute the plan as the candidates are now",
            drift.describe()
        )));
    }
    Ok(dry.scope)
}

/// Whether `dry` has a plan a live run to `target` can execute.
fn executable(dry: &Run, target: Uuid) -> Result<()> {
    let id = dry.id;
    if dry.mode != Mode::DryRun {
        return Err(Error::FailedPrecondition(format!(
            "run {id} is a live run: only a dry run's plan is executed"
        )));
    }
    if dry.state != RunState::Completed || dry.plan_digest.is_none() {
        return Err(Error::FailedPrecondition(format!(
            "dry run {id} is {} without a plan: only a completed dry run has one",
            dry.state.as_str()
        )));
    }
    if dry.target_binding_id != target {
        return Err(Error::FailedPrecondition(format!(
            "dry run {id} planned for binding {}, not {target}",
            dry.target_binding_id
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dry_run() -> Run {
        let mut dry = Run::example(RunState::Completed);
        dry.mode = Mode::DryRun;
        dry.plan_digest = Some("d".repeat(64));
        dry
    }

    #[test]
    fn only_a_completed_dry_run_with_a_plan_for_the_same_target_is_executable() {
        let dry = dry_run();
        assert!(executable(&dry, dry.target_binding_id).is_ok());
        let refused = |dry: &Run, target| match executable(dry, target) {
            Err(Error::FailedPrecondition(message)) => message,
            other => panic!("not refused: {other:?}"),
        };
        assert!(refused(&dry, Uuid::from_u128(9)).contains("planned for binding"));
        let live = Run {
            mode: Mode::Live,
            ..dry.clone()
        };
        assert!(refused(&live, dry.target_binding_id).contains("is a live run"));
        let running = Run {
            state: RunState::Running,
            ..dry.clone()
        };
        assert!(refused(&running, dry.target_binding_id).contains("without a plan"));
        let unplanned = Run {
            plan_digest: None,
            ..dry.clone()
        };
        assert!(refused(&unplanned, dry.target_binding_id).contains("without a plan"));
    }
}
