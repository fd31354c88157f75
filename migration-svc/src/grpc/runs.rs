//! `stowage.migration.v1.MigrationService`.

use std::pin::Pin;

use futures::{Stream, TryStreamExt};
use stowage_proto::migration::v1::{self as pb, migration_service_server::MigrationService};
use stowage_shared::{
    api::{self, InvalidArgument, RequestId},
    auth::{self, Role},
    shutdown::Drain,
};
use tonic::{Request, Response, Status};

use super::{optional_uuid, parse_id};
use crate::domain::{
    runs::{
        Counts, FailureCause, ItemCause, ItemState, Limit, ListItems, ListRuns, Mode, RetryRun,
        Run, RunItem, RunState, Runs, StartRun,
    },
    watch::{Event, Watcher},
};

#[derive(Debug, Clone)]
pub struct MigrationApi {
    runs: Runs,
    watcher: Watcher,
    drain: Drain,
}

impl MigrationApi {
    pub fn new(runs: Runs, watcher: Watcher, drain: Drain) -> Self {
        Self {
            runs,
            watcher,
            drain,
        }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::RunEvent, Status>> + Send>>;

#[tonic::async_trait]
impl MigrationService for MigrationApi {
    async fn start_run(
        &self,
        request: Request<pb::StartRunRequest>,
    ) -> Result<Response<pb::Run>, Status> {
        let caller = auth::principal(&request)?;
        // The role before the request: a caller without it learns nothing more.
        caller.require(Role::OrgAdmin)?;
        let command = StartRun::try_from(request.into_inner())?;
        Ok(Response::new(
            self.runs.start(&caller, command).await?.into(),
        ))
    }

    async fn get_run(
        &self,
        request: Request<pb::GetRunRequest>,
    ) -> Result<Response<pb::Run>, Status> {
        let caller = auth::principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(self.runs.get(&caller, id).await?.into()))
    }

    async fn list_runs(
        &self,
        request: Request<pb::ListRunsRequest>,
    ) -> Result<Response<pb::ListRunsResponse>, Status> {
        let caller = auth::principal(&request)?;
        let request = request.into_inner();
        let query = ListRuns {
            state: run_state(request.state)?,
            after: api::parse_page_token(&request.page_token)?,
            limit: api::page_size(request.page_size)?,
        };
        let page = self.runs.list(&caller, query).await?;
        Ok(Response::new(pb::ListRunsResponse {
            runs: page.items.into_iter().map(Into::into).collect(),
            next_page_token: page.next.map(|id| api::page_token(&id)).unwrap_or_default(),
        }))
    }

    async fn list_run_items(
        &self,
        request: Request<pb::ListRunItemsRequest>,
    ) -> Result<Response<pb::ListRunItemsResponse>, Status> {
        let caller = auth::principal(&request)?;
        let request = request.into_inner();
        let query = ListItems {
            run_id: parse_id("run_id", &request.run_id)?,
            state: item_state(request.state)?,
            after: api::parse_page_token(&request.page_token)?,
            limit: api::page_size(request.page_size)?,
        };
        let page = self.runs.items(&caller, query).await?;
        Ok(Response::new(pb::ListRunItemsResponse {
            items: page.items.into_iter().map(Into::into).collect(),
            next_page_token: page.next.map(|id| api::page_token(&id)).unwrap_or_default(),
        }))
    }

    async fn retry_run(
        &self,
        request: Request<pb::RetryRunRequest>,
    ) -> Result<Response<pb::Run>, Status> {
        let caller = auth::principal(&request)?;
        // The role before the request: a caller without it learns nothing more.
        caller.require(Role::OrgAdmin)?;
        let request = request.into_inner();
        let command = RetryRun {
            id: parse_id("id", &request.id)?,
            reason: api::optional_reason(&request.reason)?.to_owned(),
            request_id: RequestId::parse(&request.request_id)?,
        };
        Ok(Response::new(
            self.runs.retry(&caller, command).await?.into(),
        ))
    }

    async fn cancel_run(
        &self,
        request: Request<pb::CancelRunRequest>,
    ) -> Result<Response<pb::Run>, Status> {
        let caller = auth::principal(&request)?;
        // The role before the request: a caller without it learns nothing more.
        caller.require(Role::OrgAdmin)?;
        let request = request.into_inner();
        let id = parse_id("id", &request.id)?;
        let reason = api::optional_reason(&request.reason)?;
        let run = self.runs.cancel(&caller, id, reason).await?;
        Ok(Response::new(run.into()))
    }

    type WatchRunStream = EventStream;

    async fn watch_run(
        &self,
        request: Request<pb::WatchRunRequest>,
    ) -> Result<Response<Self::WatchRunStream>, Status> {
        let caller = auth::principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let resume_after = request.get_ref().resume_after;
        if resume_after < 0 {
            return Err(InvalidArgument::new("resume_after", "must not be negative").into());
        }
        let events = self
            .watcher
            .watch(&caller, id, resume_after)
            .await?
            .map_err(Status::from)
            .map_ok(|(cursor, event)| pb::RunEvent {
                cursor,
                event: Some(event.into()),
            });
        Ok(Response::new(Box::pin(self.drain.clone().cut(events))))
    }
}

impl TryFrom<pb::StartRunRequest> for StartRun {
    type Error = InvalidArgument;

    fn try_from(r: pb::StartRunRequest) -> Result<Self, Self::Error> {
        let mode = match pb::MigrationMode::try_from(r.mode) {
            Ok(pb::MigrationMode::DryRun) => Mode::DryRun,
            Ok(pb::MigrationMode::Live) => Mode::Live,
            Ok(pb::MigrationMode::Unspecified) => {
                return Err(InvalidArgument::new(
                    "mode",
                    "is required: MIGRATION_MODE_DRY_RUN or MIGRATION_MODE_LIVE (there is no \
                     default)",
                ));
            }
            Err(_) => return Err(InvalidArgument::new("mode", "unknown migration mode")),
        };
        let limit = r.limit.unwrap_or_default();
        if limit.bytes_per_second < 0 || limit.objects_per_second < 0 {
            return Err(InvalidArgument::new(
                "limit",
                "rates must not be negative (0 is unlimited)",
            ));
        }
        Ok(Self {
            target: parse_id("target_binding_id", &r.target_binding_id)?,
            mode,
            reason: api::reason(&r.reason)?.to_owned(),
            limit: Limit {
                bytes_per_second: limit.bytes_per_second,
                objects_per_second: limit.objects_per_second,
            },
            request_id: RequestId::parse(&r.request_id)?,
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
