//! `stowage.archive.v1.ArchiveService`.

use stowage_proto::archive::v1::{self as pb, archive_service_server::ArchiveService};
use stowage_shared::auth;
use tonic::{Request, Response, Status};

use crate::domain::{jobs::JobStatus, policy::RetentionPolicy};

#[derive(Debug, Clone)]
pub struct ArchiveApi {
    policy: RetentionPolicy,
    schedule: String,
    jobs_per_tick: u32,
}

impl ArchiveApi {
    pub fn new(policy: RetentionPolicy, schedule: String, jobs_per_tick: u32) -> Self {
        Self {
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
}

impl From<JobStatus> for pb::JobStatus {
    fn from(status: JobStatus) -> Self {
        match status {
            JobStatus::Scanning => pb::JobStatus::Scanning,
            JobStatus::ReadyToTransfer => pb::JobStatus::ReadyToTransfer,
            JobStatus::Transferring => pb::JobStatus::Transferring,
            JobStatus::Paused => pb::JobStatus::Paused,
            JobStatus::Cancelled => pb::JobStatus::Cancelled,
            JobStatus::Failed => pb::JobStatus::Failed,
            JobStatus::ScanComplete => pb::JobStatus::ScanComplete,
            JobStatus::Completed => pb::JobStatus::Completed,
        }
    }
}
