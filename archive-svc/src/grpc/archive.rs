//! `stowage.archive.v1.ArchiveService`.

use stowage_proto::archive::v1::{self as pb, archive_service_server::ArchiveService};
use stowage_shared::{
    api::{self, InvalidArgument, RequestId},
    auth::{self, Role},
};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use super::{ResponseStream, job_archive, parse_id, server_stream};
use crate::domain::{
    policy::RetentionPolicy,
    restore::{Phase, Progress},
    service::{Archives, Trigger},
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
        let id = parse_id("job_id", &request.get_ref().job_id)?;
        let job = self.archives.get(&caller, id).await?;
        Ok(Response::new(job_archive(&self.archives, job)))
    }

    async fn list_job_archives(
        &self,
        request: Request<pb::ListJobArchivesRequest>,
    ) -> Result<Response<pb::ListJobArchivesResponse>, Status> {
        let caller = auth::principal(&request)?;
        let request = request.into_inner();
        let archived = match pb::ArchiveState::try_from(request.state) {
            Ok(pb::ArchiveState::Unspecified) => None,
            Ok(pb::ArchiveState::Hot) => Some(false),
            Ok(pb::ArchiveState::Archived) => Some(true),
            Err(_) => return Err(InvalidArgument::new("state", "unknown archive state").into()),
        };
        let limit = api::page_size(request.page_size)?;
        let after = api::parse_page_token(&request.page_token)?;
        let page = self.archives.list(&caller, archived, after, limit).await?;
        Ok(Response::new(pb::ListJobArchivesResponse {
            jobs: page
                .items
                .into_iter()
                .map(|job| job_archive(&self.archives, job))
                .collect(),
            next_page_token: page.next.map(|id| api::page_token(&id)).unwrap_or_default(),
        }))
    }

    type RestoreJobStream = ResponseStream<pb::RestoreProgress>;

    async fn restore_job(
        &self,
        request: Request<pb::RestoreJobRequest>,
    ) -> Result<Response<Self::RestoreJobStream>, Status> {
        let caller = auth::principal(&request)?;
        let id = parse_id("job_id", &request.get_ref().job_id)?;
        let trigger = match pb::RestoreTrigger::try_from(request.get_ref().trigger) {
            Ok(pb::RestoreTrigger::User) => Trigger::User,
            Ok(pb::RestoreTrigger::Resume) => Trigger::Resume,
            Ok(pb::RestoreTrigger::Retry) => Trigger::Retry,
            Ok(pb::RestoreTrigger::Admin) => Trigger::Admin,
            Ok(pb::RestoreTrigger::Unspecified) | Err(_) => {
                return Err(InvalidArgument::new(
                    "trigger",
                    "is required (USER, RESUME, RETRY or ADMIN)",
                )
                .into());
            }
        };
        let (progress_tx, progress_rx) = mpsc::channel::<Progress>(64);
        let archives = self.archives.clone();
        // The restore runs to its end even if the caller goes away: it commits or rolls back.
        let work =
            tokio::spawn(async move { archives.restore(&caller, id, trigger, &progress_tx).await });
        let each = |progress: Progress| {
            (progress.phase != Phase::Done).then(|| restore_progress(&progress))
        };
        let last = |done: Progress| Some(restore_progress(&done));
        Ok(Response::new(server_stream(progress_rx, work, each, last)))
    }

    async fn touch_job(
        &self,
        request: Request<pb::TouchJobRequest>,
    ) -> Result<Response<pb::JobArchive>, Status> {
        let caller = auth::principal(&request)?;
        let id = parse_id("job_id", &request.get_ref().job_id)?;
        let job = self.archives.touch(&caller, id).await?;
        Ok(Response::new(job_archive(&self.archives, job)))
    }

    async fn delete_job(
        &self,
        request: Request<pb::DeleteJobRequest>,
    ) -> Result<Response<pb::DeleteJobResponse>, Status> {
        let caller = auth::principal(&request)?;
        // The role before the request: a caller without it learns nothing more.
        caller.require(Role::OrgAdmin)?;
        let request = request.into_inner();
        let id = parse_id("job_id", &request.job_id)?;
        let reason = api::reason(&request.reason)?;
        let request_id = RequestId::parse(&request.request_id)?;
        let deleted = self
            .archives
            .delete(&caller, id, reason, &request_id)
            .await?;
        Ok(Response::new(pb::DeleteJobResponse {
            job_id: deleted.job_id.to_string(),
            blob_deleted: deleted.blob_deleted,
            blob_delete_pending: deleted.blob_delete_pending,
        }))
    }
}

fn restore_progress(progress: &Progress) -> pb::RestoreProgress {
    let phase = match progress.phase {
        Phase::Fetching => pb::RestorePhase::Fetching,
        Phase::Decoding => pb::RestorePhase::Decoding,
        Phase::Inserting => pb::RestorePhase::Inserting,
        Phase::Verifying => pb::RestorePhase::Verifying,
        Phase::Done => pb::RestorePhase::Done,
    };
    pb::RestoreProgress {
        phase: phase.into(),
        rows_done: progress.rows_done as i64,
        rows_total: progress.rows_total as i64,
        bytes_read: progress.bytes_read as i64,
        already_hot: progress.already_hot,
    }
}
