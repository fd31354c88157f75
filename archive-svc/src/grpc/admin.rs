//! `stowage.archive.v1.ArchiveAdminService` (SUPER_ADMIN only).

use futures::StreamExt;
use stowage_proto::archive::v1::{self as pb, archive_admin_service_server::ArchiveAdminService};
use stowage_shared::{
    api::ResponseStream,
    auth::{self, Role},
};
use tonic::{Request, Response, Status};

use super::replies::archive_outcome;
use crate::domain::{
    audit::Actor,
    requests::{
        ArchiveDue, ArchiveNow, DestroyTenantKeys, MigrateArchives, SetStore, UpdateStoreCredential,
    },
    service::Archives,
    verify::VerifyArchives,
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
        let (caller, archive): (_, ArchiveNow) = auth::admit(request, Some(Role::SuperAdmin))?;
        let job = self
            .archives
            .archive_now(
                &caller,
                archive.job_id,
                &archive.reason,
                archive.compression,
                &archive.request_id,
            )
            .await?;
        Ok(Response::new(self.archives.view(job).into()))
    }

    type ArchiveEligibleJobsStream = ResponseStream<pb::ArchiveOutcome>;

    async fn archive_eligible_jobs(
        &self,
        request: Request<pb::ArchiveEligibleJobsRequest>,
    ) -> Result<Response<Self::ArchiveEligibleJobsStream>, Status> {
        let (caller, due): (_, ArchiveDue) = auth::admit(request, Some(Role::SuperAdmin))?;
        let archives = self.archives.clone();
        let outcomes = self
            .archives
            .archive_due_outcomes(Actor::caller(&caller), due.reason, due.limit)
            .map(move |outcome| Ok(archive_outcome(outcome?, |job| archives.view(job))));
        Ok(Response::new(Box::pin(outcomes)))
    }

    async fn set_archive_store(
        &self,
        request: Request<pb::SetArchiveStoreRequest>,
    ) -> Result<Response<pb::SetArchiveStoreResponse>, Status> {
        let (caller, set): (_, SetStore) = auth::admit(request, Some(Role::SuperAdmin))?;
        let store = self
            .archives
            .set_store(&caller, &set.setting, &set.reason, &set.request_id)
            .await?;
        Ok(Response::new(pb::SetArchiveStoreResponse {
            store: Some(store.into()),
        }))
    }

    async fn update_archive_store_credential(
        &self,
        request: Request<pb::UpdateArchiveStoreCredentialRequest>,
    ) -> Result<Response<pb::ArchiveStore>, Status> {
        let (caller, update): (_, UpdateStoreCredential) =
            auth::admit(request, Some(Role::SuperAdmin))?;
        let store = self
            .archives
            .update_store_credential(&caller, update.version, &update.setting, &update.reason)
            .await?;
        Ok(Response::new(store.into()))
    }

    async fn list_archive_stores(
        &self,
        request: Request<pb::ListArchiveStoresRequest>,
    ) -> Result<Response<pb::ListArchiveStoresResponse>, Status> {
        let caller = auth::principal(&request)?;
        let stores = self.archives.list_stores(&caller).await?;
        Ok(Response::new(pb::ListArchiveStoresResponse {
            stores: stores.into_iter().map(Into::into).collect(),
        }))
    }

    type MigrateArchivesStream = ResponseStream<pb::MigrateArchivesProgress>;

    async fn migrate_archives(
        &self,
        request: Request<pb::MigrateArchivesRequest>,
    ) -> Result<Response<Self::MigrateArchivesStream>, Status> {
        let (caller, migrate): (_, MigrateArchives) = auth::admit(request, Some(Role::SuperAdmin))?;
        let events = self
            .archives
            .migrate_archives_events(caller, migrate.mode, migrate.reason, migrate.limit)
            .map(|event| Ok(event?.into()));
        Ok(Response::new(Box::pin(events)))
    }

    type VerifyArchivesStream = ResponseStream<pb::VerifyArchivesResponse>;

    async fn verify_archives(
        &self,
        request: Request<pb::VerifyArchivesRequest>,
    ) -> Result<Response<Self::VerifyArchivesStream>, Status> {
        let (caller, command): (_, VerifyArchives) = auth::admit(request, Some(Role::SuperAdmin))?;
        let reports = self
            .archives
            .verify_archives(&caller, command)?
            .map(|report| Ok(report?.into()));
        Ok(Response::new(Box::pin(reports)))
    }

    async fn destroy_tenant_keys(
        &self,
        request: Request<pb::DestroyTenantKeysRequest>,
    ) -> Result<Response<pb::DestroyTenantKeysResponse>, Status> {
        let (caller, command): (_, DestroyTenantKeys) =
            auth::admit(request, Some(Role::SuperAdmin))?;
        let shredded = self.archives.destroy_tenant_keys(&caller, &command).await?;
        Ok(Response::new(pb::DestroyTenantKeysResponse {
            tenant_id: command.tenant_id,
            keys_destroyed: i64::try_from(shredded.keys_destroyed).unwrap_or(i64::MAX),
            archived_jobs_shredded: shredded.archived_jobs,
        }))
    }
}
