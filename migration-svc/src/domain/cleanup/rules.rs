//! The pure rules of a cleanup: when a source becomes due, which verdicts keep it, and
//! whether a verified item's source may go as its locks show it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use stowage_shared::sweep::Verdict;

use crate::domain::model::cleanup::{Candidate, CleanupCause, DeleteGuard};

/// Whether a verified item's source may go, as its locks show it: not on an active binding
/// (a migration back to it may be writing the same key), not the artifact's current copy,
/// and the artifact still where it was verified.
pub(super) fn may_delete(
    guard: &DeleteGuard,
    candidate: &Candidate,
) -> Result<(), (CleanupCause, String)> {
    let source = (
        candidate.source_binding_id,
        candidate.source_object_key.as_str(),
    );
    let current = (guard.binding_id, guard.object_key.as_str());
    let verified = (
        candidate.artifact.binding_id,
        candidate.artifact.object_key.as_str(),
    );
    if guard.source_active {
        Err((
            CleanupCause::SourceInUse,
            "the source binding is active again; its copies are kept".into(),
        ))
    } else if current == source {
        Err((
            CleanupCause::SourceInUse,
            "the source is the artifact's current copy".into(),
        ))
    } else if current != verified {
        Err((
            CleanupCause::ArtifactChanged,
            "the artifact moved while it was verified; the next cleanup verifies its new copy"
                .into(),
        ))
    } else {
        Ok(())
    }
}

/// When the source of an item migrated at `migrated_at` becomes due.
pub(super) fn due_time(migrated_at: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    migrated_at
        .checked_add_signed(window)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Why a check's verdict keeps the source; `None` when the copy verified.
pub(super) fn failed_check(verdict: Verdict) -> Option<CleanupCause> {
    match verdict {
        Verdict::Ok => None,
        Verdict::Missing => Some(CleanupCause::TargetMissing),
        Verdict::Corrupt => Some(CleanupCause::TargetCorrupt),
        Verdict::Unverifiable | Verdict::Shredded => Some(CleanupCause::TargetUnverifiable),
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::model::artifacts::Artifact;

    #[test]
    fn only_a_verified_copy_lets_a_source_go() {
        assert_eq!(failed_check(Verdict::Ok), None);
        for verdict in [Verdict::Missing, Verdict::Corrupt, Verdict::Unverifiable] {
            assert!(failed_check(verdict).is_some(), "{verdict:?}");
        }
    }

    fn candidate() -> Candidate {
        let (source, current) = (Uuid::from_u128(1), Uuid::from_u128(2));
        Candidate {
            artifact: Artifact {
                id: Uuid::from_u128(9),
                organization_id: "acme".into(),
                binding_id: current,
                object_key: "artifacts/2/9".into(),
                name: "n".into(),
                purpose: "p".into(),
                content_type: "c".into(),
                size_bytes: 1,
                sha256: "s".into(),
                stored_bytes: 1,
                kek_id: "k".into(),
                create_time: Utc::now(),
                update_time: Utc::now(),
                delete_time: None,
            },
            source_binding_id: source,
            source_object_key: "artifacts/1/9".into(),
            migrated_at: Utc::now(),
            cleanup: None,
        }
    }

    #[test]
    fn a_source_goes_only_if_unused_and_the_artifact_is_where_it_was_verified() {
        let c = candidate();
        let at = |binding: u128, key: &str, source_active| DeleteGuard {
            source_active,
            binding_id: Uuid::from_u128(binding),
            object_key: key.into(),
        };
        assert_eq!(may_delete(&at(2, "artifacts/2/9", false), &c), Ok(()));
        let cause = |guard| may_delete(&guard, &c).unwrap_err().0;
        assert_eq!(
            cause(at(2, "artifacts/2/9", true)),
            CleanupCause::SourceInUse
        );
        assert_eq!(
            cause(at(1, "artifacts/1/9", false)),
            CleanupCause::SourceInUse
        );
        assert_eq!(
            cause(at(3, "artifacts/3/9", false)),
            CleanupCause::ArtifactChanged
        );
    }

    #[test]
    fn a_source_is_due_a_full_window_after_it_migrated() {
        let migrated = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let week = Duration::from_secs(7 * 86_400);
        assert_eq!(
            due_time(migrated, week).to_rfc3339(),
            "2026-01-08T00:00:00+00:00"
        );
        assert_eq!(due_time(migrated, Duration::MAX), DateTime::<Utc>::MAX_UTC);
    }
}
