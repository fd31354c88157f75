//! migration-svc configuration: the common sections (gRPC on 50051, metrics on 9451) and
//! `[migration]`: how the runner works through runs and how hard it tries a store.

use std::time::Duration;

use serde::Deserialize;
use stowage_shared::{
    blob::StoreOptions,
    config::humantime_secs,
    sweep::{self, Sampling},
};

stowage_shared::service_config!(Config { migration: RunnerConfig }, ports: 50051, 9451);

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunnerConfig {
    /// Whether this replica processes runs (an API-only replica sets false).
    pub enabled: bool,
    /// Items one replica copies at once, across all the runs it works on (they share
    /// these slots, first come first served).
    pub concurrency: usize,
    /// Items one replica leases at a time.
    pub batch_size: i64,
    /// Artifacts planned per transaction.
    pub plan_page: i64,
    /// How long a lease on a run or item lasts without a heartbeat; another replica
    /// takes over expired leases.
    #[serde(with = "humantime_secs")]
    pub lease_ttl: Duration,
    /// How often an idle runner looks for work.
    #[serde(with = "humantime_secs")]
    pub poll_interval: Duration,
    /// Attempts at writing one item to the target before the run fails closed.
    pub target_attempts: u32,
    /// Retries of one store request (object_store's own, with backoff).
    pub store_retries: usize,
    /// No retry of a store request, and no new attempt at an item, starts once this much
    /// time has passed since the first.
    #[serde(with = "humantime_secs")]
    pub store_retry_timeout: Duration,
    /// Silence on a store connection after which a request has failed (a stalled store).
    #[serde(with = "humantime_secs")]
    pub store_read_timeout: Duration,
    /// How often a watch stream without news sends a heartbeat.
    #[serde(with = "humantime_secs")]
    pub watch_heartbeat: Duration,
    /// A `file` binding's staging file of an upload untouched this long is an interrupted
    /// upload (its replica died) and is removed; the sweep runs this often too.
    #[serde(with = "humantime_secs")]
    pub interrupted_upload_age: Duration,
    /// How long after an item migrated `CleanupRun` may delete its source copy (after
    /// verifying the migrated copy again). Nothing is deleted unless a caller asks.
    #[serde(with = "humantime_secs")]
    pub source_cleanup_window: Duration,
    /// Cron expression (UTC; five fields, or six with seconds first) of scheduled
    /// integrity sweeps of every organization (as `VerifyArtifacts`); none when unset.
    pub verify_schedule: Option<String>,
    /// The share of artifacts a scheduled sweep reads, picked by id (1 to 100).
    pub verify_sample_percent: i32,
    /// Most stored bytes a scheduled sweep reads per organization (0: no limit).
    pub verify_byte_budget: i64,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            concurrency: 16,
            batch_size: 32,
            plan_page: 1000,
            lease_ttl: Duration::from_secs(30),
            poll_interval: Duration::from_millis(500),
            target_attempts: 3,
            store_retries: 5,
            store_retry_timeout: Duration::from_secs(60),
            store_read_timeout: Duration::from_secs(30),
            watch_heartbeat: Duration::from_secs(5),
            interrupted_upload_age: Duration::from_secs(3600),
            source_cleanup_window: Duration::from_secs(7 * 86_400),
            verify_schedule: None,
            verify_sample_percent: 100,
            verify_byte_budget: 0,
        }
    }
}

impl RunnerConfig {
    /// The scheduled sweeps' cron and sampling, if sweeps are scheduled.
    pub fn verify_schedule(&self) -> Result<Option<(croner::Cron, Sampling)>, String> {
        sweep::scheduled(
            "migration",
            self.verify_schedule.as_deref(),
            self.verify_sample_percent,
            self.verify_byte_budget,
        )
    }

    /// How stores of bindings are reached.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions::with_budget(
            self.store_retries,
            self.store_retry_timeout,
            self.store_read_timeout,
        )
    }

    /// The longest an item's copy takes to give up on a target that stopped answering,
    /// and so the longest such a target takes to fail a run closed: each attempt gives up
    /// within the store client's own bound, and no attempt starts once
    /// `store_retry_timeout` has passed since the first (beyond the backoff before it).
    pub fn dead_target_bound(&self) -> Duration {
        let attempt = self.store_options().gives_up_within();
        let retries = self.target_attempts.max(1) - 1;
        let backoffs: Duration = (1..=retries).map(attempt_backoff).sum();
        let last_start = if retries == 0 {
            Duration::ZERO
        } else {
            let by_count = attempt * retries + backoffs;
            by_count.min(self.store_retry_timeout + attempt_backoff(retries))
        };
        last_start + attempt
    }
}

/// The runner's wait before an item's `attempt + 1`-th attempt at the target.
pub fn attempt_backoff(attempt: u32) -> Duration {
    Duration::from_millis(200) * 2u32.saturating_pow(attempt.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_target_fails_a_run_closed_within_two_and_a_half_minutes_by_default() {
        // One store operation: 60 s of retries, the last one's 1.6 s backoff, then 35 s of
        // silence (connect and read timeouts); the last of three attempts starts 60 s and
        // a 400 ms backoff after the first.
        let defaults = RunnerConfig::default();
        assert_eq!(
            defaults.store_options().gives_up_within(),
            Duration::from_millis(96_600)
        );
        assert_eq!(defaults.dead_target_bound(), Duration::from_millis(157_000));
    }

    #[test]
    fn one_attempt_is_bounded_by_the_store_client_alone() {
        let config = RunnerConfig {
            target_attempts: 1,
            store_retries: 0,
            store_read_timeout: Duration::from_secs(2),
            ..RunnerConfig::default()
        };
        // 5 s to connect, 2 s of silence, no retry.
        assert_eq!(config.dead_target_bound(), Duration::from_secs(7));
    }

    #[test]
    fn attempts_back_off_doubling_from_200_ms() {
        let waits: Vec<_> = (1..=3).map(attempt_backoff).collect();
        assert_eq!(waits, [200, 400, 800].map(Duration::from_millis).to_vec());
    }
}
