//! archive-svc configuration: the common sections (gRPC on 50052, metrics on 9452) and
//! `[archive]`: retention per terminal status, the schedule, and the store used until an
//! admin sets one in `admin_config`.

use std::{collections::BTreeMap, path::Path};

use secrecy::SecretString;
use serde::Deserialize;
use stowage_shared::config::{self, Common};

use crate::domain::{jobs::JobStatus, policy::RetentionPolicy};

#[derive(Clone, Debug, Deserialize)]
pub struct Config {
    #[serde(flatten)]
    pub common: Common,
    #[serde(default)]
    pub archive: ArchiveConfig,
}

impl Config {
    pub const GRPC_PORT: u16 = 50052;
    pub const METRICS_PORT: u16 = 9452;

    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        config::load(
            config::listen_defaults(Self::GRPC_PORT, Self::METRICS_PORT),
            file,
        )
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Idle days per terminal status, e.g. `CANCELLED = 1`; unlisted statuses keep their
    /// defaults. Only terminal statuses may be listed.
    #[serde(default)]
    pub retention_days: BTreeMap<JobStatus, u32>,
    /// Cron expression (UTC) of the archive tick.
    #[serde(default = "default_schedule")]
    pub schedule: String,
    #[serde(default = "default_jobs_per_tick")]
    pub jobs_per_tick: u32,
    /// The archive store until `SetArchiveStore` writes one to `admin_config`.
    #[serde(default)]
    pub default_store: Option<ArchiveStoreConfig>,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            retention_days: BTreeMap::new(),
            schedule: default_schedule(),
            jobs_per_tick: default_jobs_per_tick(),
            default_store: None,
        }
    }
}

impl ArchiveConfig {
    /// The policy in force: the defaults overlaid by `retention_days`.
    pub fn policy(&self) -> Result<RetentionPolicy, String> {
        RetentionPolicy::with_overrides(&self.retention_days)
    }
}

fn default_schedule() -> String {
    "0 3 * * *".to_owned()
}

fn default_jobs_per_tick() -> u32 {
    100
}

/// An archive store: a connection string (Azure account-key or SAS form, or
/// `file:///absolute/dir`, or `memory://name`) and the container.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveStoreConfig {
    pub connection_string: SecretString,
    #[serde(default = "default_container")]
    pub container: String,
}

fn default_container() -> String {
    "stowage-scan-archives".to_owned()
}
