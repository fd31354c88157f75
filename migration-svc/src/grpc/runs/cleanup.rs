//! Source cleanup at the wire: `CleanupRunRequest` validated on receipt, each item and the
//! totals converted on the way out.

use stowage_proto::migration::v1::{self as pb, cleanup_run_response::Report as Wire};
use stowage_shared::{
    api::{self, InvalidArgument},
    same_variants,
};

use super::requests::mode;
use crate::domain::{
    cleanup::CleanupReport,
    model::cleanup::{Cleaned, CleanupCause, CleanupRun, CleanupState, CleanupSummary},
};

impl TryFrom<pb::CleanupRunRequest> for CleanupRun {
    type Error = InvalidArgument;

    fn try_from(r: pb::CleanupRunRequest) -> Result<Self, Self::Error> {
        let limit = match r.limit {
            0 => None,
            n if n > 0 => Some(i64::from(n)),
            _ => {
                return Err(InvalidArgument::new(
                    "limit",
                    "must not be negative (0 is every item)",
                ));
            }
        };
        Ok(Self {
            run_id: api::id("run_id", &r.run_id)?,
            mode: mode(r.mode)?,
            reason: api::reason(&r.reason)?.to_owned(),
            limit,
        })
    }
}

same_variants!(CleanupState => pb::CleanupState {
    VerifiedAndDeleted, WouldDelete, SkippedNotDue, Failed,
});

same_variants!(CleanupCause => pb::CleanupCause {
    TargetMissing, TargetCorrupt, TargetUnverifiable, SourceDeleteFailed, SourceInUse,
    ArtifactChanged,
});

impl From<CleanupReport> for pb::CleanupRunResponse {
    fn from(report: CleanupReport) -> Self {
        let report = match report {
            CleanupReport::Item(Cleaned {
                artifact_id,
                source_binding_id,
                source_object_key,
                verified_binding_id,
                state: s,
                cause: c,
                detail,
                due_time,
            }) => Wire::Item(pb::CleanupItem {
                artifact_id: artifact_id.to_string(),
                source_binding_id: source_binding_id.to_string(),
                source_object_key,
                verified_binding_id: verified_binding_id.to_string(),
                state: pb::CleanupState::from(s).into(),
                cause: c.map_or(pb::CleanupCause::Unspecified, Into::into).into(),
                detail,
                due_time: Some(api::timestamp(due_time)),
            }),
            CleanupReport::Summary(CleanupSummary {
                deleted,
                would_delete,
                not_due,
                failed,
                bytes,
                next_due_time,
            }) => Wire::Summary(pb::CleanupSummary {
                deleted,
                would_delete,
                not_due,
                failed,
                bytes,
                next_due_time: api::optional_timestamp(next_due_time),
            }),
        };
        Self {
            report: Some(report),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{super::super::refused, *};

    fn request() -> pb::CleanupRunRequest {
        pb::CleanupRunRequest {
            run_id: uuid::Uuid::now_v7().to_string(),
            mode: pb::MigrationMode::Live.into(),
            reason: "free the old bucket".into(),
            limit: 0,
        }
    }

    #[test]
    fn a_cleanup_looks_at_every_item_unless_limited() {
        let all = CleanupRun::try_from(request()).unwrap();
        assert_eq!(
            (all.mode, all.limit),
            (crate::domain::model::runs::Mode::Live, None)
        );
        let some = CleanupRun::try_from(pb::CleanupRunRequest {
            limit: 10,
            ..request()
        })
        .unwrap();
        assert_eq!(some.limit, Some(10));
    }

    #[test]
    fn each_malformed_cleanup_field_is_named() {
        let cases = [
            (
                pb::CleanupRunRequest {
                    run_id: "r".into(),
                    ..request()
                },
                "run_id",
            ),
            (
                pb::CleanupRunRequest {
                    mode: 0,
                    ..request()
                },
                "mode",
            ),
            (
                pb::CleanupRunRequest {
                    reason: " ".into(),
                    ..request()
                },
                "reason",
            ),
            (
                pb::CleanupRunRequest {
                    limit: -1,
                    ..request()
                },
                "limit",
            ),
        ];
        for (request, field) in cases {
            assert_eq!(refused(CleanupRun::try_from(request)), field);
        }
    }
}
