//! `stowage.archive.v1.ArchiveAdminService` (SUPER_ADMIN only).

use futures::StreamExt;
use stowage_proto::archive::v1::{self as pb, archive_admin_service_server::ArchiveAdminService};
use stowage_shared::{
    api::{self, InvalidArgument, RequestId},
    auth::{self, Role},
};
use tonic::{Request, Response, Status};

use super::{ResponseStream, job_archive, parse_id, store_setting};
use crate::domain::{
    admin::Outcome,
    audit::Actor,
    payload::Compression,
    relocate::{MoveEvent, MoveMode, MoveResult},
    service::Archives,
    stores::StoreVersion,
};

#[derive(Debug, Clone)]
pub struct AdminApi {
    archives: Archives,
}

impl AdminApi {
    pub fn new(archives: Archives) -> Self {
        Self { archives }
    }
}

#[tonic::async_trait]
impl ArchiveAdminService for AdminApi {
    async fn archive_job(
        &self,
        request: Request<pb::ArchiveJobRequest>,
    ) -> Result<Response<pb::JobArchive>, Status> {
        let caller = auth::principal(&request)?;
        caller.require(Role::SuperAdmin)?;
        let request = request.into_inner();
        let id = parse_id("job_id", &request.job_id)?;
        let reason = api::reason(&request.reason)?;
        let request_id = RequestId::parse(&request.request_id)?;
        let compression = match pb::Compression::try_from(request.compression) {
            Ok(pb::Compression::Unspecified | pb::Compression::Zstd) => Compression::Zstd,
            Ok(pb::Compression::Gzip) => Compression::Gzip,
            Err(_) => return Err(InvalidArgument::new("compression", "unknown value").into()),
        };
        let job = self
            .archives
            .archive_now(&caller, id, reason, compression, &request_id)
            .await?;
        Ok(Response::new(job_archive(&self.archives, job)))
    }

    type ArchiveEligibleJobsStream = ResponseStream<pb::ArchiveOutcome>;

    async fn archive_eligible_jobs(
        &self,
        request: Request<pb::ArchiveEligibleJobsRequest>,
    ) -> Result<Response<Self::ArchiveEligibleJobsStream>, Status> {
        let caller = auth::principal(&request)?;
        caller.require(Role::SuperAdmin)?;
        let request = request.into_inner();
        let reason = api::reason(&request.reason)?.to_owned();
        let limit = u32::try_from(request.limit)
            .map_err(|_| InvalidArgument::new("limit", "must not be negative"))?;
        let archives = self.archives.clone();
        let outcomes = self
            .archives
            .archive_due_outcomes(Actor::caller(&caller), reason, limit)
            .map(move |outcome| Ok(archive_outcome(&archives, outcome?)));
        Ok(Response::new(Box::pin(outcomes)))
    }

    async fn set_archive_store(
        &self,
        request: Request<pb::SetArchiveStoreRequest>,
    ) -> Result<Response<pb::SetArchiveStoreResponse>, Status> {
        let caller = auth::principal(&request)?;
        caller.require(Role::SuperAdmin)?;
        let request = request.into_inner();
        let reason = api::reason(&request.reason)?;
        let request_id = RequestId::parse(&request.request_id)?;
        let setting = store_setting(request.connection_string, request.container)?;
        let store = self
            .archives
            .set_store(&caller, &setting, reason, &request_id)
            .await?;
        Ok(Response::new(pb::SetArchiveStoreResponse {
            store: Some(archive_store(store, true)),
        }))
    }

    async fn update_archive_store_credential(
        &self,
        request: Request<pb::UpdateArchiveStoreCredentialRequest>,
    ) -> Result<Response<pb::ArchiveStore>, Status> {
        let caller = auth::principal(&request)?;
        caller.require(Role::SuperAdmin)?;
        let request = request.into_inner();
        if request.version < 1 {
            return Err(
                InvalidArgument::new("version", "must be a store version (1 or more)").into(),
            );
        }
        let reason = api::reason(&request.reason)?;
        let setting = store_setting(request.connection_string, request.container)?;
        let store = self
            .archives
            .update_store_credential(&caller, request.version, &setting, reason)
            .await?;
        let current = self
            .archives
            .list_stores(&caller)
            .await?
            .first()
            .map(|s| s.version);
        let is_current = current == Some(store.version);
        Ok(Response::new(archive_store(store, is_current)))
    }

    async fn list_archive_stores(
        &self,
        request: Request<pb::ListArchiveStoresRequest>,
    ) -> Result<Response<pb::ListArchiveStoresResponse>, Status> {
        let caller = auth::principal(&request)?;
        let stores = self.archives.list_stores(&caller).await?;
        Ok(Response::new(pb::ListArchiveStoresResponse {
            stores: stores
                .into_iter()
                .enumerate()
                .map(|(i, store)| archive_store(store, i == 0))
                .collect(),
        }))
    }

    type MigrateArchivesStream = ResponseStream<pb::MigrateArchivesProgress>;

    async fn migrate_archives(
        &self,
        request: Request<pb::MigrateArchivesRequest>,
    ) -> Result<Response<Self::MigrateArchivesStream>, Status> {
        let caller = auth::principal(&request)?;
        caller.require(Role::SuperAdmin)?;
        let request = request.into_inner();
        let mode = match pb::MoveMode::try_from(request.mode) {
            Ok(pb::MoveMode::DryRun) => MoveMode::DryRun,
            Ok(pb::MoveMode::Live) => MoveMode::Live,
            Ok(pb::MoveMode::Unspecified) | Err(_) => {
                return Err(InvalidArgument::new(
                    "mode",
                    "is required (MOVE_MODE_DRY_RUN or MOVE_MODE_LIVE)",
                )
                .into());
            }
        };
        let reason = api::reason(&request.reason)?.to_owned();
        let limit = u64::try_from(request.limit)
            .map_err(|_| InvalidArgument::new("limit", "must not be negative"))?;
        let limit = (limit > 0).then_some(limit);
        let events = self
            .archives
            .migrate_archives_events(caller, mode, reason, limit)
            .map(|event| Ok(move_progress(event?)));
        Ok(Response::new(Box::pin(events)))
    }
}

fn archive_outcome(archives: &Archives, outcome: Outcome) -> pb::ArchiveOutcome {
    match outcome.result {
        Ok(job) => pb::ArchiveOutcome {
            job_id: outcome.job_id.to_string(),
            archived: true,
            error: String::new(),
            job: Some(job_archive(archives, job)),
        },
        Err(error) => pb::ArchiveOutcome {
            job_id: outcome.job_id.to_string(),
            archived: false,
            error: Status::from(error).message().to_owned(),
            job: None,
        },
    }
}

fn archive_store(store: StoreVersion, current: bool) -> pb::ArchiveStore {
    pb::ArchiveStore {
        version: store.version,
        provider: store.provider,
        location: store.location,
        credential_kind: store.credential_kind,
        credential_version: store.credential_version,
        current,
        archived_jobs: store.archived_jobs,
        pending_deletes: store.pending_deletes,
        create_time: Some(api::timestamp(store.created_at)),
        created_by: store.created_by,
        credential_update_time: api::optional_timestamp(store.credential_updated_at),
        credential_updated_by: store.credential_updated_by.unwrap_or_default(),
    }
}

fn move_progress(event: MoveEvent) -> pb::MigrateArchivesProgress {
    use pb::migrate_archives_progress::Event;
    let event = match event {
        MoveEvent::Plan {
            target_version,
            sources,
        } => Event::Plan(pb::MovePlan {
            target_version,
            sources: sources
                .into_iter()
                .map(|s| pb::StoreVersionCount {
                    store_version: s.store_version.unwrap_or_default(),
                    jobs: s.jobs,
                    stored_bytes: s.stored_bytes,
                })
                .collect(),
        }),
        MoveEvent::Job(moved) => {
            let (outcome, detail, stored_bytes) = match moved.result {
                MoveResult::Moved { stored_bytes } => {
                    (pb::MoveOutcome::Moved, String::new(), stored_bytes)
                }
                MoveResult::Skipped(why) => (pb::MoveOutcome::Skipped, why, 0),
                MoveResult::Failed(why) => (pb::MoveOutcome::Failed, why, 0),
            };
            Event::Job(pb::ArchiveMove {
                job_id: moved.job_id.to_string(),
                from_version: moved.from_version.unwrap_or_default(),
                to_version: moved.to_version,
                outcome: outcome.into(),
                detail,
                stored_bytes,
            })
        }
        MoveEvent::Done(totals) => Event::Done(pb::MoveTotals {
            moved: totals.moved,
            skipped: totals.skipped,
            failed: totals.failed,
            stored_bytes: totals.stored_bytes,
        }),
    };
    pb::MigrateArchivesProgress { event: Some(event) }
}
