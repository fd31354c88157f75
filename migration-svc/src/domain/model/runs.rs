//! Migration runs and their items as stored and shown: modes, states, the causes of a
//! skipped or failed item and of a failed run, limits, scopes, a plan's drift, counts, the
//! plan by source, the tally a batch of outcomes adds to a run, and a claim of leased
//! items with what their copies need.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stowage_shared::text_enum;
use uuid::Uuid;

use super::{artifacts::Artifact, bindings::BindingState};

text_enum! {
    pub enum Mode {
        DryRun = "dry_run",
        Live = "live",
    }
}

text_enum! {
    pub enum RunState {
        Queued = "queued",
        Planning = "planning",
        Running = "running",
        Completed = "completed",
        CompletedWithErrors = "completed_with_errors",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

impl RunState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Completed
                | RunState::CompletedWithErrors
                | RunState::Failed
                | RunState::Cancelled
        )
    }
}

text_enum! {
    pub enum ItemState {
        Queued = "queued",
        Running = "running",
        Migrated = "migrated",
        Skipped = "skipped",
        Failed = "failed",
    }
}

text_enum! {
    /// Why an item was skipped or failed.
    pub enum ItemCause {
        AlreadyOnTarget = "already_on_target",
        ArtifactDeleted = "artifact_deleted",
        SourcePermissionDenied = "source_permission_denied",
        SourceNotFound = "source_not_found",
        SourceUnavailable = "source_unavailable",
        SourceUnreadable = "source_unreadable",
        ChecksumMismatch = "checksum_mismatch",
        TargetUnavailable = "target_unavailable",
        Internal = "internal",
        /// Never started: the run failed first.
        RunFailed = "run_failed",
    }
}

text_enum! {
    /// Why a run FAILED.
    pub enum FailureCause {
        TargetNotActive = "target_not_active",
        TargetUnavailable = "target_unavailable",
        Internal = "internal",
    }
}

/// Per-run throughput limits; 0 is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    pub bytes_per_second: i64,
    pub objects_per_second: i64,
}

/// Which of the organization's artifacts a run covers: every condition set narrows it,
/// and the empty scope is the whole organization.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Scope {
    /// Only artifacts of these purposes (every purpose when empty).
    pub purposes: Vec<String>,
    /// Never artifacts of these purposes.
    pub excluded_purposes: Vec<String>,
    /// Only artifacts on these source bindings (every binding when empty).
    pub source_bindings: Vec<Uuid>,
    /// Only artifacts created at or after this time.
    pub created_after: Option<DateTime<Utc>>,
    /// Only artifacts created before this time.
    pub created_before: Option<DateTime<Utc>>,
}

/// How a dry run's candidates changed since it planned: artifacts added to them, removed
/// from them (deleted, moved to the target, out of scope now) and changed (another source
/// binding, size or content), each counted, with the first ids of each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drift {
    pub added: Drifted,
    pub removed: Drifted,
    pub changed: Drifted,
}

/// Artifacts of one kind of drift: how many, and the first of them by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drifted {
    pub count: i64,
    pub first: Vec<Uuid>,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        [&self.added, &self.removed, &self.changed]
            .iter()
            .all(|kind| kind.count == 0)
    }

    /// The drift report, as a caller reads it.
    pub fn describe(&self) -> String {
        let kinds = [
            ("added", &self.added),
            ("removed", &self.removed),
            ("changed", &self.changed),
        ];
        let parts: Vec<String> = kinds
            .iter()
            .filter(|(_, kind)| kind.count > 0)
            .map(|(name, kind)| {
                let ids: Vec<String> = kind.first.iter().map(Uuid::to_string).collect();
                let more = if kind.count > ids.len() as i64 {
                    ", …"
                } else {
                    ""
                };
                format!("{} {name} ({}{more})", kind.count, ids.join(", "))
            })
            .collect();
        parts.join("; ")
    }
}

/// Items of a run by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub queued: i64,
    pub running: i64,
    pub migrated: i64,
    pub skipped: i64,
    pub failed: i64,
}

/// Artifacts and bytes of the plan from one source binding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceReport {
    pub binding_id: Uuid,
    pub artifacts: i64,
    pub bytes: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: Uuid,
    pub organization_id: String,
    pub target_binding_id: Uuid,
    pub mode: Mode,
    pub state: RunState,
    pub reason: String,
    pub requested_by: String,
    pub retry_of: Option<Uuid>,
    pub limit: Limit,
    pub scope: Scope,
    /// A dry run's plan digest, once planned: SHA-256 of its target, scope and every
    /// planned artifact (id, source binding, size, content digest) in id order.
    pub plan_digest: Option<String>,
    /// The dry run whose plan this live run executes.
    pub from_dry_run: Option<Uuid>,
    pub counts: Counts,
    pub bytes_total: i64,
    pub bytes_migrated: i64,
    pub sources: Vec<SourceReport>,
    pub failure_cause: Option<FailureCause>,
    pub failure_detail: Option<String>,
    pub cancel_requested: bool,
    /// Outcomes recorded so far (the last outcome sequence number).
    pub last_outcome: i64,
    pub create_time: DateTime<Utc>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub update_time: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RunItem {
    pub run_id: Uuid,
    pub artifact_id: Uuid,
    pub source_binding_id: Uuid,
    pub state: ItemState,
    pub size_bytes: i64,
    pub cause: Option<ItemCause>,
    pub cause_detail: Option<String>,
    pub attempts: i32,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub outcome_seq: Option<i64>,
}

/// A leased item with what its copy needs, read in the statement that leased it.
#[derive(Clone, Debug)]
pub struct Lease {
    pub item: RunItem,
    /// The item's state before this lease: QUEUED, or RUNNING under a lease that lapsed.
    pub previous: ItemState,
    /// The artifact as it is now; `None` if its row is gone.
    pub artifact: Option<Artifact>,
    /// When the credential of the artifact's binding last changed: the version of the
    /// store to read it with.
    pub source_credential: Option<DateTime<Utc>>,
}

/// What a claim found: the run and its target as they are, and the items it leased
/// (none unless the run is running, not cancelled, and its target is active).
#[derive(Debug)]
pub struct Claim {
    pub run_state: RunState,
    pub cancel_requested: bool,
    pub target_state: Option<BindingState>,
    pub leases: Vec<Lease>,
}

/// What a batch of outcomes adds to a run's counters.
#[derive(Debug, Default)]
pub struct Tally {
    pub migrated: i64,
    pub skipped: i64,
    pub failed: i64,
    pub migrated_bytes: i64,
}

impl Tally {
    pub fn add(&mut self, state: ItemState, migrated_bytes: i64) {
        match state {
            ItemState::Migrated => self.migrated += 1,
            ItemState::Skipped => self.skipped += 1,
            ItemState::Failed => self.failed += 1,
            ItemState::Queued | ItemState::Running => {}
        }
        self.migrated_bytes += migrated_bytes;
    }

    pub fn count(&self, state: ItemState) -> i64 {
        match state {
            ItemState::Migrated => self.migrated,
            ItemState::Skipped => self.skipped,
            ItemState::Failed => self.failed,
            ItemState::Queued | ItemState::Running => 0,
        }
    }

    pub fn total(&self) -> i64 {
        self.migrated + self.skipped + self.failed
    }
}

impl Run {
    /// A new run, QUEUED: nothing planned, counted or ended yet.
    pub fn queued(
        organization: &str,
        requested_by: &str,
        target: Uuid,
        mode: Mode,
        reason: &str,
        limit: Limit,
        retry_of: Option<Uuid>,
    ) -> Self {
        let now = stowage_shared::db::now();
        Run {
            id: Uuid::now_v7(),
            organization_id: organization.to_owned(),
            target_binding_id: target,
            mode,
            state: RunState::Queued,
            reason: reason.to_owned(),
            requested_by: requested_by.to_owned(),
            retry_of,
            limit,
            scope: Scope::default(),
            plan_digest: None,
            from_dry_run: None,
            counts: Counts::default(),
            bytes_total: 0,
            bytes_migrated: 0,
            sources: Vec::new(),
            failure_cause: None,
            failure_detail: None,
            cancel_requested: false,
            last_outcome: 0,
            create_time: now,
            start_time: None,
            end_time: None,
            update_time: now,
        }
    }

    /// A live run of organization `acme` to binding 7 in `state`, nothing counted: for
    /// unit tests of the rules over runs.
    #[cfg(test)]
    pub(crate) fn example(state: RunState) -> Self {
        let target = Uuid::from_u128(7);
        let mut run = Run::queued(
            "acme",
            "alice",
            target,
            Mode::Live,
            "test",
            Limit::default(),
            None,
        );
        run.state = state;
        run
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drift_report_counts_each_kind_and_names_its_first_ids() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert!(Drift::default().is_empty());
        let drift = Drift {
            added: Drifted {
                count: 1,
                first: vec![a],
            },
            changed: Drifted {
                count: 3,
                first: vec![b],
            },
            ..Drift::default()
        };
        assert!(!drift.is_empty());
        assert_eq!(
            drift.describe(),
            format!("1 added ({a}); 3 changed ({b}, …)")
        );
    }

    #[test]
    fn a_tally_counts_each_ended_state_and_only_migrated_bytes_move() {
        let mut tally = Tally::default();
        tally.add(ItemState::Migrated, 10);
        tally.add(ItemState::Migrated, 5);
        tally.add(ItemState::Skipped, 0);
        tally.add(ItemState::Failed, 0);
        assert_eq!(tally.count(ItemState::Migrated), 2);
        assert_eq!((tally.total(), tally.migrated_bytes), (4, 15));
        assert_eq!(
            tally.count(ItemState::Queued) + tally.count(ItemState::Running),
            0
        );
    }

    #[test]
    fn only_the_four_ends_of_a_run_are_terminal() {
        let terminal: Vec<_> = RunState::ALL.iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal.len(), 4);
        assert!(!RunState::Running.is_terminal() && !RunState::Planning.is_terminal());
    }

    #[test]
    fn every_state_and_cause_reads_back_from_its_text() {
        for state in RunState::ALL {
            assert_eq!(RunState::parse(state.as_str()), Some(*state));
        }
        for cause in ItemCause::ALL {
            assert_eq!(ItemCause::parse(cause.as_str()), Some(*cause));
        }
        assert_eq!(ItemState::parse("MIGRATED"), None);
    }
}
