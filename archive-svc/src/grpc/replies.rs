//! Replies: `From<domain>` for each message the services send.

use stowage_proto::{archive::v1 as pb, integrity::v1::Verification};
use stowage_shared::{api, same_variants};

use crate::domain::{
    admin::Outcome,
    jobs::JobStatus,
    relocate::{MoveEvent, MoveResult},
    restore::{Phase, Progress},
    service::JobView,
    stores::StoreVersion,
    verify::Report,
};

impl From<JobView> for pb::JobArchive {
    fn from(view: JobView) -> Self {
        let JobView { job, eligible_time } = view;
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
            eligible_time: eligible_time.map(api::timestamp),
            last_activity_time: Some(api::timestamp(job.last_activity_at)),
            terminal_time: api::optional_timestamp(job.terminal_at),
        }
    }
}

same_variants!(JobStatus => pb::JobStatus {
    Scanning, ReadyToTransfer, Transferring, Paused, Cancelled, Failed, ScanComplete,
    Completed,
});

same_variants!(Phase => pb::RestorePhase { Fetching, Decoding, Inserting, Verifying, Done });

impl From<Progress> for pb::RestoreProgress {
    fn from(progress: Progress) -> Self {
        pb::RestoreProgress {
            phase: pb::RestorePhase::from(progress.phase).into(),
            rows_done: progress.rows_done as i64,
            rows_total: progress.rows_total as i64,
            bytes_read: progress.bytes_read as i64,
            already_hot: progress.already_hot,
        }
    }
}

/// One job's outcome in a bulk archive; `error` is what the caller would have been told.
pub fn archive_outcome(
    outcome: Outcome,
    view: impl FnOnce(crate::domain::jobs::Job) -> JobView,
) -> pb::ArchiveOutcome {
    match outcome.result {
        Ok(job) => pb::ArchiveOutcome {
            job_id: outcome.job_id.to_string(),
            archived: true,
            error: String::new(),
            job: Some(view(job).into()),
        },
        Err(error) => pb::ArchiveOutcome {
            job_id: outcome.job_id.to_string(),
            archived: false,
            error: tonic::Status::from(error).message().to_owned(),
            job: None,
        },
    }
}

impl From<StoreVersion> for pb::ArchiveStore {
    fn from(store: StoreVersion) -> Self {
        pb::ArchiveStore {
            version: store.version,
            provider: store.provider,
            location: store.location,
            credential_kind: store.credential_kind,
            credential_version: store.credential_version,
            current: store.current,
            archived_jobs: store.archived_jobs,
            pending_deletes: store.pending_deletes,
            create_time: Some(api::timestamp(store.created_at)),
            created_by: store.created_by,
            credential_update_time: api::optional_timestamp(store.credential_updated_at),
            credential_updated_by: store.credential_updated_by.unwrap_or_default(),
        }
    }
}

impl From<MoveEvent> for pb::MigrateArchivesProgress {
    fn from(event: MoveEvent) -> Self {
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
}

impl From<Report> for pb::VerifyArchivesResponse {
    fn from(report: Report) -> Self {
        use pb::verify_archives_response::Report as Wire;
        let report = match report {
            Report::Archive(checked) => Wire::Archive(pb::ArchiveVerification {
                job_id: checked.job_id.to_string(),
                tenant_id: checked.tenant_id,
                store_version: checked.store_version.unwrap_or_default(),
                blob_key: checked.blob_key,
                result: Verification::from(checked.verdict).into(),
                detail: checked.detail,
            }),
            Report::Summary(summary) => Wire::Summary(summary.into()),
        };
        Self {
            report: Some(report),
        }
    }
}
