//! The retention policy: how long a job in each terminal status stays idle before its
//! per-file rows are archived. Defaults follow the scan-archive document.

use std::{collections::BTreeMap, time::Duration};

use super::jobs::JobStatus;

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

    #[test]
    fn active_statuses_cannot_be_given_a_window() {
        let overrides = BTreeMap::from([(JobStatus::Paused, 30)]);
        assert!(RetentionPolicy::with_overrides(&overrides).is_err());
        let overrides = BTreeMap::from([(JobStatus::Failed, 3)]);
        let policy = RetentionPolicy::with_overrides(&overrides).unwrap();
        assert_eq!(policy.idle(JobStatus::Failed), Some(DAY * 3));
    }
}
