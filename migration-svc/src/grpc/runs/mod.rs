//! `stowage.migration.v1.MigrationService`: the calls, each a domain call between the
//! conversions of [`requests`] (and [`scope`]) on the way in, [`wire`] on the way out, and
//! [`cleanup`]'s both ways.

mod cleanup;
mod requests;
mod scope;
mod wire;

use futures::TryStreamExt;
use stowage_proto::migration::v1::{self as pb, migration_service_server::MigrationService};
use stowage_shared::{
    api::{self, ResponseStream},
    auth::{self, Role},
    shutdown::Drain,
};
use tonic::{Request, Response, Status};

use self::requests::{CancelRun, WatchRun};
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

#[tonic::async_trait]
impl MigrationService for MigrationApi {
    async fn start_run(
        &self,
        request: Request<pb::StartRunRequest>,
    ) -> Result<Response<pb::Run>, Status> {
        let (caller, command): (_, StartRun) = auth::admit(request, Some(Role::OrgAdmin))?;
        Ok(Response::new(
            self.runs.start(&caller, command).await?.into(),
        ))
    }

    async fn get_run(
        &self,
        request: Request<pb::GetRunRequest>,
    ) -> Result<Response<pb::Run>, Status> {
        let caller = auth::principal(&request)?;
        let id = api::id("id", &request.get_ref().id)?;
        Ok(Response::new(self.runs.get(&caller, id).await?.into()))
    }

    async fn list_runs(
        &self,
        request: Request<pb::ListRunsRequest>,
    ) -> Result<Response<pb::ListRunsResponse>, Status> {
        let (caller, query): (_, ListRuns) = auth::admit(request, None)?;
        let page = self.runs.list(&caller, query).await?;
        Ok(Response::new(pb::ListRunsResponse {
            runs: page.items.into_iter().map(Into::into).collect(),
            next_page_token: api::next_page_token(&page.next)?,
        }))
    }

    async fn list_run_items(
        &self,
        request: Request<pb::ListRunItemsRequest>,
    ) -> Result<Response<pb::ListRunItemsResponse>, Status> {
        let (caller, query): (_, ListItems) = auth::admit(request, None)?;
        let page = self.runs.items(&caller, query).await?;
        Ok(Response::new(pb::ListRunItemsResponse {
            items: page.items.into_iter().map(Into::into).collect(),
            next_page_token: api::next_page_token(&page.next)?,
        }))
    }

    async fn retry_run(
        &self,
        request: Request<pb::RetryRunRequest>,
    ) -> Result<Response<pb::Run>, Status> {
        let (caller, command): (_, RetryRun) = auth::admit(request, Some(Role::OrgAdmin))?;
        Ok(Response::new(
            self.runs.retry(&caller, command).await?.into(),
        ))
    }

    async fn cancel_run(
        &self,
        request: Request<pb::CancelRunRequest>,
    ) -> Result<Response<pb::Run>, Status> {
        let (caller, cancel): (_, CancelRun) = auth::admit(request, Some(Role::OrgAdmin))?;
        let run = self.runs.cancel(&caller, cancel.id, &cancel.reason).await?;
        Ok(Response::new(run.into()))
    }

    type WatchRunStream = ResponseStream<pb::RunEvent>;

    async fn watch_run(
        &self,
        request: Request<pb::WatchRunRequest>,
    ) -> Result<Response<Self::WatchRunStream>, Status> {
        let (caller, watch): (_, WatchRun) = auth::admit(request, None)?;
        let events = self
            .watcher
            .watch(&caller, watch.id, watch.resume_after)
            .await?
            .map_err(Status::from)
            .map_ok(|(cursor, event)| pb::RunEvent {
                cursor,
                event: Some(event.into()),
            });
        let events = crate::metrics::watched(events);
        Ok(Response::new(Box::pin(self.drain.clone().cut(events))))
    }

    type CleanupRunStream = ResponseStream<pb::CleanupRunResponse>;

    async fn cleanup_run(
        &self,
        request: Request<pb::CleanupRunRequest>,
    ) -> Result<Response<Self::CleanupRunStream>, Status> {
        let (caller, command): (_, CleanupRun) = auth::admit(request, Some(Role::OrgAdmin))?;
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
