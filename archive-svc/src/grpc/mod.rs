//! The gRPC adapter: wire messages in, domain calls, wire messages out. Validation of
//! requests happens here; no SQL or store I/O.

pub mod admin;
pub mod archive;

use std::pin::Pin;

use futures::Stream;
use stowage_proto::archive::v1 as pb;
use stowage_shared::api::{self, InvalidArgument};
use tonic::Status;
use uuid::Uuid;

use crate::domain::{
    jobs::{Job, JobStatus},
    service::Archives,
};

/// A server-streaming response.
pub type ResponseStream<M> = Pin<Box<dyn Stream<Item = Result<M, Status>> + Send>>;

fn parse_id(field: &'static str, raw: &str) -> Result<Uuid, InvalidArgument> {
    Uuid::parse_str(raw.trim()).map_err(|_| InvalidArgument::new(field, "must be a UUID"))
}

/// Longest connection string or container name a store setting takes.
const MAX_SETTING_CHARS: usize = 4096;

/// A store setting's text fields: bounded, no control characters (the message never
/// quotes the value: a connection string carries a secret).
fn store_setting(
    connection_string: String,
    container: String,
) -> Result<crate::domain::stores::StoreSetting, InvalidArgument> {
    api::text("connection_string", &connection_string, MAX_SETTING_CHARS)?;
    api::text("container", &container, MAX_SETTING_CHARS)?;
    Ok(crate::domain::stores::StoreSetting {
        connection_string,
        container,
    })
}

fn job_archive(archives: &Archives, job: Job) -> pb::JobArchive {
    let eligible_time = archives.eligible_at(&job).map(api::timestamp);
    let archive = job.archive.as_ref();
    pb::JobArchive {
        job_id: job.id.to_string(),
        tenant_id: job.tenant_id.clone(),
        name: job.name.clone(),
        status: pb::JobStatus::from(job.status).into(),
        state: if archive.is_some() {
            pb::ArchiveState::Archived
        } else {
            pb::ArchiveState::Hot
        }
        .into(),
        blob_key: archive.map(|a| a.blob_key.clone()).unwrap_or_default(),
        format: archive
            .map(|a| a.format.as_str().to_owned())
            .unwrap_or_default(),
        stored_bytes: archive.and_then(|a| a.stored_bytes).unwrap_or_default(),
        plaintext_bytes: archive.and_then(|a| a.plaintext_bytes).unwrap_or_default(),
        scan_items: archive.and_then(|a| a.scan_items).unwrap_or_default(),
        file_records: archive.and_then(|a| a.file_records).unwrap_or_default(),
        archive_time: archive.map(|a| api::timestamp(a.archived_at)),
        store_version: archive.and_then(|a| a.store_version).unwrap_or_default(),
        eligible_time,
        last_activity_time: Some(api::timestamp(job.last_activity_at)),
        terminal_time: api::optional_timestamp(job.terminal_at),
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
