//! The run messages at the wire: `StartRunRequest` and state filters validated on
//! receipt, runs, items, counts, causes and watch events converted on the way out.

use stowage_proto::migration::v1 as pb;
use stowage_shared::api::{self, InvalidArgument, RequestId};

use super::{super::optional_uuid, scope::executes_a_plan};
use crate::domain::{
    model::runs::{
        Counts, FailureCause, ItemCause, ItemState, Limit, Mode, Run, RunItem, RunState, Scope,
    },
    runs::{ListItems, ListRuns, RetryRun, StartRun},
    watch::Event,
};
use uuid::Uuid;

/// A CancelRunRequest, checked.
pub(super) struct CancelRun {
    pub id: Uuid,
    pub reason: String,
}

/// A WatchRunRequest, checked.
pub(super) struct WatchRun {
    pub id: Uuid,
    pub resume_after: i64,
}

/// A required `mode`: there is no default.
pub(super) fn mode(raw: i32) -> Result<Mode, InvalidArgument> {
    match pb::MigrationMode::try_from(raw) {
        Ok(pb::MigrationMode::DryRun) => Ok(Mode::DryRun),
        Ok(pb::MigrationMode::Live) => Ok(Mode::Live),
        Ok(pb::MigrationMode::Unspecified) => Err(InvalidArgument::new(
            "mode",
            "is required: MIGRATION_MODE_DRY_RUN or MIGRATION_MODE_LIVE (there is no default)",
        )),
        Err(_) => Err(InvalidArgument::new("mode", "unknown migration mode")),
    }
}

impl TryFrom<pb::StartRunRequest> for StartRun {
    type Error = InvalidArgument;

    fn try_from(r: pb::StartRunRequest) -> Result<Self, Self::Error> {
        let mode = mode(r.mode)?;
        let from_dry_run = api::optional_id("from_dry_run_id", &r.from_dry_run_id)?;
        executes_a_plan(
            mode,
            from_dry_run.is_some(),
            r.scope.as_ref(),
            r.accept_drift,
        )?;
        let limit = r.limit.unwrap_or_default();
        if limit.bytes_per_second < 0 || limit.objects_per_second < 0 {
            return Err(InvalidArgument::new(
                "limit",
                "rates must not be negative (0 is unlimited)",
            ));
        }
        Ok(Self {
            target: api::id("target_binding_id", &r.target_binding_id)?,
            mode,
            reason: api::reason(&r.reason)?.to_owned(),
            limit: Limit {
                bytes_per_second: limit.bytes_per_second,
                objects_per_second: limit.objects_per_second,
            },
            scope: r
                .scope
                .map(Scope::try_from)
                .transpose()?
                .unwrap_or_default(),
            from_dry_run,
            accept_drift: r.accept_drift,
            request_id: RequestId::parse(&r.request_id)?,
        })
    }
}

impl TryFrom<pb::ListRunsRequest> for ListRuns {
    type Error = InvalidArgument;

    fn try_from(r: pb::ListRunsRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            state: run_state(r.state)?,
            after: api::parse_page_token(&r.page_token)?,
            limit: api::page_size(r.page_size)?,
        })
    }
}

impl TryFrom<pb::ListRunItemsRequest> for ListItems {
    type Error = InvalidArgument;

    fn try_from(r: pb::ListRunItemsRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            run_id: api::id("run_id", &r.run_id)?,
            state: item_state(r.state)?,
            after: api::parse_page_token(&r.page_token)?,
            limit: api::page_size(r.page_size)?,
        })
    }
}

impl TryFrom<pb::RetryRunRequest> for RetryRun {
    type Error = InvalidArgument;

    fn try_from(r: pb::RetryRunRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            id: api::id("id", &r.id)?,
            reason: api::optional_reason(&r.reason)?.to_owned(),
            request_id: RequestId::parse(&r.request_id)?,
        })
    }
}

impl TryFrom<pb::CancelRunRequest> for CancelRun {
    type Error = InvalidArgument;

    fn try_from(r: pb::CancelRunRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            id: api::id("id", &r.id)?,
            reason: api::optional_reason(&r.reason)?.to_owned(),
        })
    }
}

impl TryFrom<pb::WatchRunRequest> for WatchRun {
    type Error = InvalidArgument;

    fn try_from(r: pb::WatchRunRequest) -> Result<Self, Self::Error> {
        if r.resume_after < 0 {
            return Err(InvalidArgument::new("resume_after", "must not be negative"));
        }
        Ok(Self {
            id: api::id("id", &r.id)?,
            resume_after: r.resume_after,
        })
    }
}

fn run_state(raw: i32) -> Result<Option<RunState>, InvalidArgument> {
    Ok(match pb::RunState::try_from(raw) {
        Ok(pb::RunState::Unspecified) => None,
        Ok(pb::RunState::Queued) => Some(RunState::Queued),
        Ok(pb::RunState::Planning) => Some(RunState::Planning),
        Ok(pb::RunState::Running) => Some(RunState::Running),
        Ok(pb::RunState::Completed) => Some(RunState::Completed),
        Ok(pb::RunState::CompletedWithErrors) => Some(RunState::CompletedWithErrors),
        Ok(pb::RunState::Failed) => Some(RunState::Failed),
        Ok(pb::RunState::Cancelled) => Some(RunState::Cancelled),
        Err(_) => return Err(InvalidArgument::new("state", "unknown run state")),
    })
}

fn item_state(raw: i32) -> Result<Option<ItemState>, InvalidArgument> {
    Ok(match pb::ItemState::try_from(raw) {
        Ok(pb::ItemState::Unspecified) => None,
        Ok(pb::ItemState::Queued) => Some(ItemState::Queued),
        Ok(pb::ItemState::Running) => Some(ItemState::Running),
        Ok(pb::ItemState::Migrated) => Some(ItemState::Migrated),
        Ok(pb::ItemState::Skipped) => Some(ItemState::Skipped),
        Ok(pb::ItemState::Failed) => Some(ItemState::Failed),
        Err(_) => return Err(InvalidArgument::new("state", "unknown item state")),
    })
}

impl From<Mode> for pb::MigrationMode {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::DryRun => pb::MigrationMode::DryRun,
            Mode::Live => pb::MigrationMode::Live,
        }
    }
}

impl From<RunState> for pb::RunState {
    fn from(state: RunState) -> Self {
        match state {
            RunState::Queued => pb::RunState::Queued,
            RunState::Planning => pb::RunState::Planning,
            RunState::Running => pb::RunState::Running,
            RunState::Completed => pb::RunState::Completed,
            RunState::CompletedWithErrors => pb::RunState::CompletedWithErrors,
            RunState::Failed => pb::RunState::Failed,
            RunState::Cancelled => pb::RunState::Cancelled,
        }
    }
}

impl From<ItemState> for pb::ItemState {
    fn from(state: ItemState) -> Self {
        match state {
            ItemState::Queued => pb::ItemState::Queued,
            ItemState::Running => pb::ItemState::Running,
            ItemState::Migrated => pb::ItemState::Migrated,
            ItemState::Skipped => pb::ItemState::Skipped,
            ItemState::Failed => pb::ItemState::Failed,
        }
    }
}

impl From<ItemCause> for pb::ItemCause {
    fn from(cause: ItemCause) -> Self {
        match cause {
            ItemCause::AlreadyOnTarget => pb::ItemCause::AlreadyOnTarget,
            ItemCause::ArtifactDeleted => pb::ItemCause::ArtifactDeleted,
            ItemCause::SourcePermissionDenied => pb::ItemCause::SourcePermissionDenied,
            ItemCause::SourceNotFound => pb::ItemCause::SourceNotFound,
            ItemCause::SourceUnavailable => pb::ItemCause::SourceUnavailable,
            ItemCause::SourceUnreadable => pb::ItemCause::SourceUnreadable,
            ItemCause::ChecksumMismatch => pb::ItemCause::ChecksumMismatch,
            ItemCause::TargetUnavailable => pb::ItemCause::TargetUnavailable,
            ItemCause::Internal => pb::ItemCause::Internal,
            ItemCause::RunFailed => pb::ItemCause::RunFailed,
        }
    }
}

impl From<FailureCause> for pb::RunFailureCause {
    fn from(cause: FailureCause) -> Self {
        match cause {
            FailureCause::TargetNotActive => pb::RunFailureCause::TargetNotActive,
            FailureCause::TargetUnavailable => pb::RunFailureCause::TargetUnavailable,
            FailureCause::Internal => pb::RunFailureCause::Internal,
        }
    }
}

impl From<Counts> for pb::ItemCounts {
    fn from(c: Counts) -> Self {
        pb::ItemCounts {
            queued: c.queued,
            running: c.running,
            migrated: c.migrated,
            skipped: c.skipped,
            failed: c.failed,
        }
    }
}

impl From<Run> for pb::Run {
    fn from(r: Run) -> Self {
        pb::Run {
            id: r.id.to_string(),
            organization_id: r.organization_id,
            target_binding_id: r.target_binding_id.to_string(),
            mode: pb::MigrationMode::from(r.mode).into(),
            state: pb::RunState::from(r.state).into(),
            reason: r.reason,
            requested_by: r.requested_by,
            retry_of_run_id: optional_uuid(r.retry_of),
            limit: Some(pb::ThroughputLimit {
                bytes_per_second: r.limit.bytes_per_second,
                objects_per_second: r.limit.objects_per_second,
            }),
            items: Some(r.counts.into()),
            bytes_total: r.bytes_total,
            bytes_migrated: r.bytes_migrated,
            sources: r
                .sources
                .into_iter()
                .map(|s| pb::SourceReport {
                    binding_id: s.binding_id.to_string(),
                    artifacts: s.artifacts,
                    bytes: s.bytes,
                })
                .collect(),
            failure_cause: r
                .failure_cause
                .map_or(pb::RunFailureCause::Unspecified, Into::into)
                .into(),
            failure_detail: r.failure_detail.unwrap_or_default(),
            cancel_requested: r.cancel_requested,
            create_time: Some(api::timestamp(r.create_time)),
            start_time: api::optional_timestamp(r.start_time),
            end_time: api::optional_timestamp(r.end_time),
            update_time: Some(api::timestamp(r.update_time)),
            scope: Some(r.scope.into()),
            plan_digest: r.plan_digest.unwrap_or_default(),
            from_dry_run_id: optional_uuid(r.from_dry_run),
        }
    }
}

impl From<RunItem> for pb::RunItem {
    fn from(i: RunItem) -> Self {
        pb::RunItem {
            run_id: i.run_id.to_string(),
            artifact_id: i.artifact_id.to_string(),
            source_binding_id: i.source_binding_id.to_string(),
            state: pb::ItemState::from(i.state).into(),
            size_bytes: i.size_bytes,
            cause: i
                .cause
                .map_or(pb::ItemCause::Unspecified, Into::into)
                .into(),
            cause_detail: i.cause_detail.unwrap_or_default(),
            attempts: i.attempts,
            start_time: api::optional_timestamp(i.start_time),
            end_time: api::optional_timestamp(i.end_time),
            outcome_sequence: i.outcome_seq.unwrap_or_default(),
        }
    }
}

impl From<Event> for pb::run_event::Event {
    fn from(event: Event) -> Self {
        use pb::run_event::Event as E;
        match event {
            Event::Snapshot(run) => E::Snapshot(run.into()),
            Event::Update(run) => E::Update(run.into()),
            Event::Outcome(item) => E::Outcome(item.into()),
            Event::Heartbeat => E::Heartbeat(pb::Heartbeat {}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{
        super::{super::refused, a_start_request as start},
        *,
    };

    #[test]
    fn a_start_request_is_taken_with_its_mode_reason_and_no_limit_by_default() {
        let command = StartRun::try_from(start()).expect("valid");
        assert_eq!(
            (command.mode, command.reason.as_str()),
            (Mode::Live, "new bucket")
        );
        assert_eq!(command.limit, Limit::default());
    }

    #[test]
    fn a_start_request_without_a_known_mode_is_refused_naming_the_mode() {
        for mode in [pb::MigrationMode::Unspecified as i32, 99] {
            let request = pb::StartRunRequest { mode, ..start() };
            assert_eq!(refused(StartRun::try_from(request)), "mode");
        }
    }

    #[test]
    fn each_malformed_start_field_is_named() {
        let negative = pb::ThroughputLimit {
            bytes_per_second: -1,
            objects_per_second: 0,
        };
        let cases = [
            (
                pb::StartRunRequest {
                    limit: Some(negative),
                    ..start()
                },
                "limit",
            ),
            (
                pb::StartRunRequest {
                    target_binding_id: "b".into(),
                    ..start()
                },
                "target_binding_id",
            ),
            (
                pb::StartRunRequest {
                    reason: " ".into(),
                    ..start()
                },
                "reason",
            ),
            (
                pb::StartRunRequest {
                    request_id: "a b".into(),
                    ..start()
                },
                "request_id",
            ),
        ];
        for (request, field) in cases {
            assert_eq!(refused(StartRun::try_from(request)), field);
        }
    }

    #[test]
    fn a_state_filter_left_unspecified_lists_all_and_an_unknown_one_is_refused() {
        assert_eq!(run_state(pb::RunState::Unspecified as i32).ok(), Some(None));
        assert_eq!(
            run_state(pb::RunState::Failed as i32).ok(),
            Some(Some(RunState::Failed))
        );
        assert_eq!(refused(run_state(99)), "state");
        assert_eq!(
            item_state(pb::ItemState::Skipped as i32).ok(),
            Some(Some(ItemState::Skipped))
        );
        assert_eq!(refused(item_state(-1)), "state");
    }
}
