//! `stowage.archive.v1.ArchiveService`.

use futures::StreamExt;
use stowage_proto::archive::v1::{self as pb, archive_service_server::ArchiveService};
use stowage_shared::{
    api::{self, ResponseStream},
    auth::{self, Role},
};
use tonic::{Request, Response, Status};

use crate::domain::{
    policy::RetentionPolicy,
    requests::{DeleteJob, ListJobs, RestoreJob},
    service::Archives,
};

#[derive(Debug, Clone)]
pub struct ArchiveApi {
    archives: Archives,
    policy: RetentionPolicy,
    schedule: String,
    jobs_per_tick: u32,
}

impl ArchiveApi {
    pub fn new(
        archives: Archives,
        policy: RetentionPolicy,
        schedule: String,
        jobs_per_tick: u32,
    ) -> Self {
        Self {
            archives,
            policy,
            schedule,
            jobs_per_tick,
        }
    }
}

#[tonic::async_trait]
impl ArchiveService for ArchiveApi {
    async fn get_archive_policy(
        &self,
        request: Request<pb::GetArchivePolicyRequest>,
    ) -> Result<Response<pb::ArchivePolicy>, Status> {
        auth::principal(&request)?;
        let rules = self
            .policy
            .idle_days()
            .map(|(status, days)| pb::RetentionRule {
                status: pb::JobStatus::from(status).into(),
                idle: Some(prost_types::Duration {
                    seconds: i64::from(days) * 86_400,
                    nanos: 0,
                }),
                idle_days: i32::try_from(days).unwrap_or(i32::MAX),
            })
            .collect();
        Ok(Response::new(pb::ArchivePolicy {
            rules,
            schedule: self.schedule.clone(),
            jobs_per_tick: i32::try_from(self.jobs_per_tick).unwrap_or(i32::MAX),
        }))
    }

    async fn get_job_archive(
        &self,
        request: Request<pb::GetJobArchiveRequest>,
    ) -> Result<Response<pb::JobArchive>, Status> {
        let caller = auth::principal(&request)?;
        let id = api::id("job_id", &request.get_ref().job_id)?;
        let job = self.archives.get(&caller, id).await?;
        Ok(Response::new(self.archives.view(job).into()))
    }

    async fn list_job_archives(
        &self,
        request: Request<pb::ListJobArchivesRequest>,
    ) -> Result<Response<pb::ListJobArchivesResponse>, Status> {
        let (caller, list): (_, ListJobs) = auth::admit(request, None)?;
        let page = self
            .archives
            .list(&caller, list.archived, list.after, list.limit)
            .await?;
        Ok(Response::new(pb::ListJobArchivesResponse {
            jobs: page
                .items
                .into_iter()
                .map(|job| self.archives.view(job).into())
                .collect(),
            next_page_token: api::next_page_token(&page.next)?,
        }))
    }

    type RestoreJobStream = ResponseStream<pb::RestoreProgress>;

    async fn restore_job(
        &self,
        request: Request<pb::RestoreJobRequest>,
    ) -> Result<Response<Self::RestoreJobStream>, Status> {
        let (caller, restore): (_, RestoreJob) = auth::admit(request, None)?;
        let progress = self
            .archives
            .restore_progress(caller, restore.job_id, restore.trigger)
            .map(|progress| Ok(progress?.into()));
        Ok(Response::new(Box::pin(progress)))
    }

    async fn touch_job(
        &self,
        request: Request<pb::TouchJobRequest>,
    ) -> Result<Response<pb::JobArchive>, Status> {
        let caller = auth::principal(&request)?;
        let id = api::id("job_id", &request.get_ref().job_id)?;
        let job = self.archives.touch(&caller, id).await?;
        Ok(Response::new(self.archives.view(job).into()))
    }

    async fn delete_job(
        &self,
        request: Request<pb::DeleteJobRequest>,
    ) -> Result<Response<pb::DeleteJobResponse>, Status> {
        let (caller, delete): (_, DeleteJob) = auth::admit(request, Some(Role::OrgAdmin))?;
        let deleted = self
            .archives
            .delete(&caller, delete.job_id, &delete.reason, &delete.request_id)
            .await?;
        Ok(Response::new(pb::DeleteJobResponse {
            job_id: deleted.job_id.to_string(),
            blob_deleted: deleted.blob_deleted,
            blob_delete_pending: deleted.blob_delete_pending,
        }))
    }
}
