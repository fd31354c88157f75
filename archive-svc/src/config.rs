//! archive-svc configuration: the common sections (gRPC on 50052, metrics on 9452) and
//! `[archive]`: retention per terminal status, the schedule, the store that becomes store
//! version 1 when there is none yet, and how often blobs of deleted or moved jobs are
//! swept.

use std::{collections::BTreeMap, time::Duration};

use serde::Deserialize;
use stowage_shared::{
    blob::StoreOptions,
    config::humantime_secs,
    sweep::{self, Sampling},
};

pub use crate::domain::stores::ArchiveStoreConfig;
use crate::domain::{jobs::JobStatus, policy::RetentionPolicy, queue::QueueSettings};

stowage_shared::service_config!(Config { archive: ArchiveConfig }, ports: 50052, 9452);

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Idle days per terminal status, e.g. `CANCELLED = 1`; unlisted statuses keep their
    /// defaults. Only terminal statuses may be listed.
    #[serde(default)]
    pub retention_days: BTreeMap<JobStatus, u32>,
    /// Cron expression (UTC; five fields, or six with seconds first) of the archive tick.
    #[serde(default = "default_schedule")]
    pub schedule: String,
    /// Most jobs one tick enqueues.
    #[serde(default = "default_jobs_per_tick")]
    pub jobs_per_tick: u32,
    /// How every replica works through the queue the tick fills.
    #[serde(default)]
    pub queue: QueueConfig,
    /// Becomes archive store version 1 at start when no version exists yet; later stores
    /// are added with `SetArchiveStore`.
    #[serde(default)]
    pub default_store: Option<ArchiveStoreConfig>,
    /// How often blobs of deleted and moved jobs that could not be deleted at once are
    /// tried again (also the first retry's backoff, growing with each failure).
    #[serde(default = "default_sweep_interval", with = "humantime_secs")]
    pub sweep_interval: Duration,
    /// Retries of one archive store request (object_store's own, with backoff).
    #[serde(default = "default_store_retries")]
    pub store_retries: usize,
    /// No retry of an archive store request starts once this much time has passed.
    #[serde(default = "default_store_retry_timeout", with = "humantime_secs")]
    pub store_retry_timeout: Duration,
    /// Silence on a store connection after which a request has failed (a stalled store).
    #[serde(default = "default_store_read_timeout", with = "humantime_secs")]
    pub store_read_timeout: Duration,
    /// The Azure access tier archive blobs are written at: `Cool` (cold archives, as the
    /// scan archive's storage account keeps them), `Hot`, `Cold`, or `Default` (the
    /// account's own). Other stores ignore it.
    #[serde(default = "default_access_tier")]
    pub access_tier: String,
    /// Cron expression (UTC; five fields, or six with seconds first) of scheduled integrity
    /// sweeps (as `VerifyArchives`, by the schedule's actor); none when unset.
    #[serde(default)]
    pub verify_schedule: Option<String>,
    /// The share of archives a scheduled sweep reads, picked by job id (1 to 100).
    #[serde(default = "default_verify_sample_percent")]
    pub verify_sample_percent: i32,
    /// Most stored bytes a scheduled sweep reads (0: no limit).
    #[serde(default)]
    pub verify_byte_budget: i64,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            retention_days: BTreeMap::new(),
            schedule: default_schedule(),
            jobs_per_tick: default_jobs_per_tick(),
            queue: QueueConfig::default(),
            default_store: None,
            sweep_interval: default_sweep_interval(),
            store_retries: default_store_retries(),
            store_retry_timeout: default_store_retry_timeout(),
            store_read_timeout: default_store_read_timeout(),
            access_tier: default_access_tier(),
            verify_schedule: None,
            verify_sample_percent: default_verify_sample_percent(),
            verify_byte_budget: 0,
        }
    }
}

impl ArchiveConfig {
    /// The policy in force: the defaults overlaid by `retention_days`.
    pub fn policy(&self) -> Result<RetentionPolicy, String> {
        RetentionPolicy::with_overrides(&self.retention_days)
    }

    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            azure_access_tier: self.azure_access_tier(),
            ..StoreOptions::with_budget(
                self.store_retries,
                self.store_retry_timeout,
                self.store_read_timeout,
            )
        }
    }

    /// The tier archive blobs ask for, if any.
    fn azure_access_tier(&self) -> Option<String> {
        Some(self.access_tier.clone()).filter(|tier| tier != "Default")
    }

    /// The scheduled sweeps' cron and sampling, if sweeps are scheduled.
    pub fn verify_schedule(&self) -> Result<Option<(croner::Cron, Sampling)>, String> {
        sweep::scheduled(
            "archive",
            self.verify_schedule.as_deref(),
            self.verify_sample_percent,
            self.verify_byte_budget,
        )
    }

    /// Whether `access_tier` is one Azure takes.
    pub fn check_access_tier(&self) -> Result<(), String> {
        match self.access_tier.as_str() {
            "Hot" | "Cool" | "Cold" | "Default" => Ok(()),
            other => Err(format!(
                "archive.access_tier {other:?}: must be Hot, Cool, Cold or Default"
            )),
        }
    }
}

fn default_schedule() -> String {
    "0 3 * * *".to_owned()
}

fn default_jobs_per_tick() -> u32 {
    100
}

fn default_sweep_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_verify_sample_percent() -> i32 {
    100
}

fn default_access_tier() -> String {
    "Cool".to_owned()
}

fn default_store_retries() -> usize {
    5
}

fn default_store_retry_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_store_read_timeout() -> Duration {
    Duration::from_secs(30)
}

/// `[archive.queue]`: the workers each replica runs on the archive queue.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Jobs one replica archives at once.
    pub concurrency: usize,
    /// Attempts at one job before it leaves the queue (the next tick enqueues it again).
    pub attempts: u32,
    /// The wait after a first failed attempt; it doubles with each further one.
    #[serde(with = "humantime_secs")]
    pub backoff: Duration,
    /// How long a claim lasts: a job a dead replica held is claimed again after it.
    #[serde(with = "humantime_secs")]
    pub lease: Duration,
    /// How often an idle replica looks for queued jobs.
    #[serde(with = "humantime_secs")]
    pub poll_interval: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            attempts: 5,
            backoff: Duration::from_secs(60),
            lease: Duration::from_secs(900),
            poll_interval: Duration::from_secs(5),
        }
    }
}

impl QueueConfig {
    pub fn settings(&self) -> QueueSettings {
        QueueSettings {
            concurrency: self.concurrency.max(1),
            attempts: self.attempts.max(1),
            backoff: self.backoff,
            lease: self.lease,
            poll: self.poll_interval,
        }
    }
}
