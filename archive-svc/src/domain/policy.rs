//! The retention policy: how long a job in each terminal status stays idle before its
//! per-file rows are archived. Defaults follow the scan-archive document.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};

use super::jobs::{Job, JobStatus};

const DAY: Duration = Duration::from_secs(86_400);
/// Longest configurable idle window (a hundred years).
pub const MAX_IDLE_DAYS: u32 = 36_500;

/// Idle window per terminal status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    idle_days: BTreeMap<JobStatus, u32>,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            idle_days: BTreeMap::from([
                (JobStatus::Cancelled, 1),
                (JobStatus::Failed, 7),
                (JobStatus::ScanComplete, 14),
                (JobStatus::Completed, 14),
            ]),
        }
    }
}

impl RetentionPolicy {
    /// The defaults with some windows changed. Active statuses cannot be given a window.
    pub fn with_overrides(overrides: &BTreeMap<JobStatus, u32>) -> Result<Self, String> {
        let mut policy = Self::default();
        for (status, days) in overrides {
            if *days > MAX_IDLE_DAYS {
                return Err(format!(
                    "{} days for {} is more than the {MAX_IDLE_DAYS}-day maximum",
                    days,
                    status.as_str()
                ));
            }
            if !status.is_terminal() {
                return Err(format!(
                    "{} is not a terminal status; only CANCELLED, FAILED, SCAN_COMPLETE and \
                     COMPLETED jobs are ever archived",
                    status.as_str()
                ));
            }
            policy.idle_days.insert(*status, *days);
        }
        Ok(policy)
    }

    /// The idle window of `status`, or `None` for statuses that are never archived.
    pub fn idle(&self, status: JobStatus) -> Option<Duration> {
        self.idle_days.get(&status).map(|days| DAY * *days)
    }

    pub fn idle_days(&self) -> impl Iterator<Item = (JobStatus, u32)> + '_ {
        self.idle_days.iter().map(|(status, days)| (*status, *days))
    }

    /// The windows as the due-jobs query takes them (`db::jobs::DUE`).
    pub fn windows(&self) -> Vec<(JobStatus, i32)> {
        self.idle_days()
            .map(|(status, days)| (status, i32::try_from(days).unwrap_or(i32::MAX)))
            .collect()
    }

    /// When a hot job becomes due for the schedule: its status's idle window after the
    /// later of its terminal timestamp and its last activity (a terminal job the scanner
    /// gave no terminal timestamp counts from its last activity). `None` for an archived
    /// job and for statuses that are never archived. `db::jobs::eligible` is the same rule
    /// in SQL.
    pub fn due_at(&self, job: &Job) -> Option<DateTime<Utc>> {
        if job.archive.is_some() {
            return None;
        }
        let idle = chrono::Duration::from_std(self.idle(job.status)?).ok()?;
        let since = job
            .terminal_at
            .map_or(job.last_activity_at, |t| t.max(job.last_activity_at));
        since.checked_add_signed(idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_document() {
        let policy = RetentionPolicy::default();
        assert_eq!(policy.idle(JobStatus::Cancelled), Some(DAY));
        assert_eq!(policy.idle(JobStatus::Failed), Some(DAY * 7));
        assert_eq!(policy.idle(JobStatus::ScanComplete), Some(DAY * 14));
        assert_eq!(policy.idle(JobStatus::Completed), Some(DAY * 14));
        for active in [
            JobStatus::Scanning,
            JobStatus::ReadyToTransfer,
            JobStatus::Transferring,
            JobStatus::Paused,
        ] {
            assert_eq!(policy.idle(active), None);
        }
    }

    fn job(status: JobStatus, terminal_days_ago: Option<i64>, active_days_ago: i64) -> Job {
        let now = Utc::now();
        Job {
            id: uuid::Uuid::nil(),
            tenant_id: "acme".into(),
            owner_id: "owner".into(),
            name: "scan".into(),
            status,
            file_count: 0,
            byte_count: 0,
            error_count: 0,
            terminal_at: terminal_days_ago.map(|d| now - chrono::Duration::days(d)),
            last_activity_at: now - chrono::Duration::days(active_days_ago),
            archive: None,
        }
    }

    #[test]
    fn a_job_is_due_its_window_after_the_later_of_terminal_and_last_activity() {
        let policy = RetentionPolicy::default();
        let due = |job: &Job| {
            let days =
                |at: DateTime<Utc>| ((at - Utc::now()).num_seconds() as f64 / 86_400.0).round();
            policy.due_at(job).map(|at| days(at) as i64)
        };
        assert_eq!(due(&job(JobStatus::Completed, Some(20), 20)), Some(-6));
        assert_eq!(due(&job(JobStatus::Completed, Some(20), 1)), Some(13));
        assert_eq!(due(&job(JobStatus::Cancelled, Some(3), 3)), Some(-2));
        // No terminal timestamp: idle since the last activity.
        assert_eq!(due(&job(JobStatus::Failed, None, 10)), Some(-3));
        assert_eq!(due(&job(JobStatus::Paused, Some(400), 400)), None);
        let mut archived = job(JobStatus::Completed, Some(20), 20);
        archived.archive = Some(crate::domain::jobs::ArchiveInfo {
            archived_at: Utc::now(),
            blob_key: "acme/x.json.zst".into(),
            format: crate::domain::payload::BlobFormat::JsonZstd,
            stored_bytes: None,
            plaintext_bytes: None,
            plaintext_sha256: None,
            kek_id: None,
            scan_items: None,
            file_records: None,
            rows_digest: None,
            store_version: Some(1),
        });
        assert_eq!(due(&archived), None);
    }

    #[test]
    fn active_statuses_cannot_be_given_a_window() {
        let overrides = BTreeMap::from([(JobStatus::Paused, 30)]);
        assert!(RetentionPolicy::with_overrides(&overrides).is_err());
        let overrides = BTreeMap::from([(JobStatus::Failed, 3)]);
        let policy = RetentionPolicy::with_overrides(&overrides).unwrap();
        assert_eq!(policy.idle(JobStatus::Failed), Some(DAY * 3));
    }
}
