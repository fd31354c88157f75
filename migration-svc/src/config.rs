//! migration-svc configuration: the common sections (gRPC on 50051, metrics on 9451) and
//! `[migration]`: how the runner works through runs and how hard it tries a store.

use std::time::Duration;

use serde::Deserialize;
use stowage_shared::{blob::StoreOptions, config::humantime_secs};

stowage_shared::service_config!(Config { migration: RunnerConfig }, ports: 50051, 9451);

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunnerConfig {
    /// Whether this replica processes runs (an API-only replica sets false).
    pub enabled: bool,
    /// Items one replica copies at once.
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
    #[serde(with = "humantime_secs")]
    pub store_retry_timeout: Duration,
    /// How often a watch stream without news sends a heartbeat.
    #[serde(with = "humantime_secs")]
    pub watch_heartbeat: Duration,
    /// A `file` binding's staging file of an upload untouched this long is an interrupted
    /// upload (its replica died) and is removed; the sweep runs this often too.
    #[serde(with = "humantime_secs")]
    pub interrupted_upload_age: Duration,
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
            watch_heartbeat: Duration::from_secs(5),
            interrupted_upload_age: Duration::from_secs(3600),
        }
    }
}

impl RunnerConfig {
    /// How stores of bindings are reached.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            max_retries: self.store_retries,
            retry_timeout: self.store_retry_timeout,
            ..StoreOptions::default()
        }
    }
}
