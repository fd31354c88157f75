//! `stowage.migration.v1.MigrationService`: the calls, each a domain call between the
//! conversions of [`wire`], [`scope`] and [`cleanup`].

mod cleanup;
mod scope;
mod wire;

use std::pin::Pin;

use futures::{Stream, TryStreamExt};
use stowage_proto::migration::v1::{self as pb, migration_service_server::MigrationService};
use stowage_shared::{
    api::{self, InvalidArgument, RequestId},
    auth::{self, Role},
    shutdown::Drain,
};
use tonic::{Request, Response, Status};

use self::wire::{item_state, run_state};
use super::parse_id;
use crate::domain::{
    cleanup::Cleaner,
    model::cleanup::CleanupRun,
    runs::{ListItems, ListRuns, RetryRun, Runs, StartRun},
    watch::Watcher,
};

#[derive(Debug, Clone)]
pub struct MigrationApi {
    runs: Runs,
    watcher: Watcher,
    cleaner: Cleaner,
    drain: Drain,
}

impl MigrationApi {
    pub fn new(runs: Runs, watcher: Watcher, cleaner: Cleaner, drain: Drain) -> Self {
        Self {
            runs,
            watcher,
            cleaner,
            drain,
        }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::RunEvent, Status>> + Send>>;
type CleanupStream = Pin<Box<dyn Stream<Item = Result<pb::CleanupRunResponse, Status>> + Send>>;

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
        let events = crate::metrics::watched(events);
        Ok(Response::new(Box::pin(self.drain.clone().cut(events))))
    }

    type CleanupRunStream = CleanupStream;

    async fn cleanup_run(
        &self,
        request: Request<pb::CleanupRunRequest>,
    ) -> Result<Response<Self::CleanupRunStream>, Status> {
        let caller = auth::principal(&request)?;
        caller.require(Role::OrgAdmin)?;
        let command = CleanupRun::try_from(request.into_inner())?;
        let reports = self
            .cleaner
            .cleanup(&caller, command)
            .await?
            .map_err(Status::from)
            .map_ok(pb::CleanupRunResponse::from);
        Ok(Response::new(Box::pin(reports)))
    }
}

/// A valid live StartRunRequest, for the tests of its conversions.
#[cfg(test)]
fn a_start_request() -> pb::StartRunRequest {
    pb::StartRunRequest {
        target_binding_id: uuid::Uuid::now_v7().to_string(),
        mode: pb::MigrationMode::Live as i32,
        reason: "new bucket".into(),
        limit: None,
        request_id: "r-1".into(),
        scope: None,
        from_dry_run_id: String::new(),
        accept_drift: false,
    }
}
