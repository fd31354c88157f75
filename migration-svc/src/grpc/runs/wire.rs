//! The run messages on the way out: runs, items, counts, causes and watch events.

use stowage_proto::migration::v1 as pb;
use stowage_shared::{api, same_variants};

use super::super::optional_uuid;
use crate::domain::{
    model::runs::{Counts, FailureCause, ItemCause, ItemState, Mode, Run, RunItem, RunState},
    watch::Event,
};

same_variants!(Mode => pb::MigrationMode { DryRun, Live });

same_variants!(RunState => pb::RunState {
    Queued, Planning, Running, Completed, CompletedWithErrors, Failed, Cancelled,
});

same_variants!(ItemState => pb::ItemState { Queued, Running, Migrated, Skipped, Failed });

same_variants!(ItemCause => pb::ItemCause {
    AlreadyOnTarget, ArtifactDeleted, SourcePermissionDenied, SourceNotFound,
    SourceUnavailable, SourceUnreadable, ChecksumMismatch, TargetUnavailable, Internal,
    RunFailed,
});

same_variants!(FailureCause => pb::RunFailureCause {
    TargetNotActive, TargetUnavailable, Internal,
});

impl From<Counts> for pb::ItemCounts {
    fn from(c: Counts) -> Self {
        pb::ItemCounts {
            queued: c.queued,
            running: c.running,
            migrated: c.migrated,
            skipped: c.skipped,
            failed: c.failed,
        }
    }
}

impl From<Run> for pb::Run {
    fn from(r: Run) -> Self {
        pb::Run {
            id: r.id.to_string(),
            organization_id: r.organization_id,
            target_binding_id: r.target_binding_id.to_string(),
            mode: pb::MigrationMode::from(r.mode).into(),
            state: pb::RunState::from(r.state).into(),
            reason: r.reason,
            requested_by: r.requested_by,
            retry_of_run_id: optional_uuid(r.retry_of),
            limit: Some(pb::ThroughputLimit {
                bytes_per_second: r.limit.bytes_per_second,
                objects_per_second: r.limit.objects_per_second,
            }),
            items: Some(r.counts.into()),
            bytes_total: r.bytes_total,
            bytes_migrated: r.bytes_migrated,
            sources: r
                .sources
                .into_iter()
                .map(|s| pb::SourceReport {
                    binding_id: s.binding_id.to_string(),
                    artifacts: s.artifacts,
                    bytes: s.bytes,
                })
                .collect(),
            failure_cause: r
                .failure_cause
                .map_or(pb::RunFailureCause::Unspecified, Into::into)
                .into(),
            failure_detail: r.failure_detail.unwrap_or_default(),
            cancel_requested: r.cancel_requested,
            create_time: Some(api::timestamp(r.create_time)),
            start_time: api::optional_timestamp(r.start_time),
            end_time: api::optional_timestamp(r.end_time),
            update_time: Some(api::timestamp(r.update_time)),
            scope: Some(r.scope.into()),
            plan_digest: r.plan_digest.unwrap_or_default(),
            from_dry_run_id: optional_uuid(r.from_dry_run),
        }
    }
}

impl From<RunItem> for pb::RunItem {
    fn from(i: RunItem) -> Self {
        pb::RunItem {
            run_id: i.run_id.to_string(),
            artifact_id: i.artifact_id.to_string(),
            source_binding_id: i.source_binding_id.to_string(),
            state: pb::ItemState::from(i.state).into(),
            size_bytes: i.size_bytes,
            cause: i
                .cause
                .map_or(pb::ItemCause::Unspecified, Into::into)
                .into(),
            cause_detail: i.cause_detail.unwrap_or_default(),
            attempts: i.attempts,
            start_time: api::optional_timestamp(i.start_time),
            end_time: api::optional_timestamp(i.end_time),
            outcome_sequence: i.outcome_seq.unwrap_or_default(),
        }
    }
}

impl From<Event> for pb::run_event::Event {
    fn from(event: Event) -> Self {
        use pb::run_event::Event as E;
        match event {
            Event::Snapshot(run) => E::Snapshot(Box::new((*run).into())),
            Event::Update(run) => E::Update(Box::new((*run).into())),
            Event::Outcome(item) => E::Outcome(item.into()),
            Event::Heartbeat => E::Heartbeat(pb::Heartbeat {}),
        }
    }
}
