//! `stowage.archive.v1.ArchiveAdminService` (SUPER_ADMIN only).

use std::pin::Pin;

use futures::Stream;
use stowage_proto::archive::v1::{self as pb, archive_admin_service_server::ArchiveAdminService};
use stowage_shared::auth::{self, Role};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{job_archive, parse_id, reason};
use crate::domain::{
    archive::Compression,
    service::{Archives, Outcome},
    store::StoreSetting,
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

type OutcomeStream = Pin<Box<dyn Stream<Item = Result<pb::ArchiveOutcome, Status>> + Send>>;

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
        let reason = reason(&request.reason)?;
        let compression = match pb::Compression::try_from(request.compression) {
            Ok(pb::Compression::Unspecified | pb::Compression::Zstd) => Compression::Zstd,
            Ok(pb::Compression::Gzip) => Compression::Gzip,
            Err(_) => {
                return Err(Status::invalid_argument("compression: unknown value"));
            }
        };
        let job = self
            .archives
            .archive_now(&caller, id, reason, compression)
            .await?;
        Ok(Response::new(job_archive(&self.archives, job)))
    }

    type ArchiveEligibleJobsStream = OutcomeStream;

    async fn archive_eligible_jobs(
        &self,
        request: Request<pb::ArchiveEligibleJobsRequest>,
    ) -> Result<Response<Self::ArchiveEligibleJobsStream>, Status> {
        let caller = auth::principal(&request)?;
        caller.require(Role::SuperAdmin)?;
        let request = request.into_inner();
        let reason = reason(&request.reason)?.to_owned();
        let limit = u32::try_from(request.limit)
            .map_err(|_| Status::invalid_argument("limit: must not be negative"))?;
        let (outcome_tx, mut outcome_rx) = mpsc::channel::<Outcome>(16);
        let (tx, rx) = mpsc::channel::<Result<pb::ArchiveOutcome, Status>>(16);
        let archives = self.archives.clone();
        tokio::spawn(async move {
            let forward = {
                let archives = archives.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    while let Some(outcome) = outcome_rx.recv().await {
                        let message = match outcome.result {
                            Ok(job) => pb::ArchiveOutcome {
                                job_id: outcome.job_id.to_string(),
                                archived: true,
                                error: String::new(),
                                job: Some(job_archive(&archives, job)),
                            },
                            Err(error) => pb::ArchiveOutcome {
                                job_id: outcome.job_id.to_string(),
                                archived: false,
                                error: error.to_string(),
                                job: None,
                            },
                        };
                        let _ = tx.send(Ok(message)).await;
                    }
                })
            };
            let result = archives
                .archive_due(&caller.subject, &reason, limit, &outcome_tx)
                .await;
            drop(outcome_tx);
            let _ = forward.await;
            if let Err(error) = result {
                let _ = tx.send(Err(error.into())).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn set_archive_store(
        &self,
        request: Request<pb::SetArchiveStoreRequest>,
    ) -> Result<Response<pb::SetArchiveStoreResponse>, Status> {
        let caller = auth::principal(&request)?;
        caller.require(Role::SuperAdmin)?;
        let request = request.into_inner();
        let reason = reason(&request.reason)?.to_owned();
        let setting = StoreSetting {
            connection_string: request.connection_string,
            container: request.container,
        };
        self.archives.set_store(&caller, &setting, &reason).await?;
        Ok(Response::new(pb::SetArchiveStoreResponse {}))
    }
}
