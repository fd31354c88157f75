//! The archive schedule: at every cron occurrence (default daily 03:00 UTC) enqueue up to
//! `jobs_per_tick` due jobs, oldest terminal timestamp first, for every replica's queue
//! workers ([`super::queue`]) to archive. A PostgreSQL advisory lock makes one replica
//! run a tick.

use chrono::Utc;
use croner::Cron;
use stowage_shared::{
    schedule::{exclusively, on_schedule},
    shutdown::Drain,
};

use super::policy::RetentionPolicy;
use crate::{db, error::Result};

/// Advisory lock of the tick: one replica ticks at a time.
const TICK_LOCK: &str = "stowage.archive.tick";

#[derive(Clone, Debug)]
pub struct Scheduler {
    policy: RetentionPolicy,
    pool: deadpool_postgres::Pool,
    cron: Cron,
    jobs_per_tick: u32,
}

impl Scheduler {
    pub fn new(
        policy: RetentionPolicy,
        pool: deadpool_postgres::Pool,
        cron: Cron,
        jobs_per_tick: u32,
    ) -> Self {
        Self {
            policy,
            pool,
            cron,
            jobs_per_tick,
        }
    }

    /// Sleeps until each occurrence and ticks, until the drain starts.
    pub async fn run(self, drain: Drain) {
        on_schedule(&self.cron, "archive tick", &drain, || self.tick()).await;
    }

    /// One tick now, unless another replica is running one: the jobs it added to the
    /// queue (jobs already queued are not counted again).
    pub async fn tick(&self) -> Result<Option<u64>> {
        exclusively(&self.pool, TICK_LOCK, || async {
            let limit = i64::from(self.jobs_per_tick);
            let windows = self.policy.windows();
            let client = self.pool.get().await?;
            db::queue::enqueue_due(&client, &windows, Utc::now(), limit).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    #[test]
    fn the_default_schedule_fires_daily_at_three_utc() {
        let cron: Cron = "0 3 * * *".parse().unwrap();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let next = cron
            .find_next_occurrence(&at("2026-11-23T02:59:59Z"), false)
            .unwrap();
        assert_eq!(next, at("2026-11-23T03:00:00Z"));
        let next = cron
            .find_next_occurrence(&at("2026-11-23T03:00:00Z"), false)
            .unwrap();
        assert_eq!(next, at("2026-11-24T03:00:00Z"));
    }
}
