//! The archive schedule: at every cron occurrence (default daily 03:00 UTC) archive up to
//! `jobs_per_tick` due jobs, oldest terminal timestamp first. A PostgreSQL advisory lock
//! makes one replica run a tick; per-job failures are logged and counted, never fatal.

use chrono::{DateTime, Utc};
use croner::Cron;
use stowage_shared::{db::lock::AdvisoryLock, shutdown::Drain};
use tokio::sync::mpsc;

use super::{admin::Outcome, audit::Actor, service::Archives};
use crate::error::Result;

/// Advisory lock of the tick: one replica ticks at a time.
const TICK_LOCK: &str = "stowage.archive.tick";

#[derive(Clone, Debug)]
pub struct Scheduler {
    archives: Archives,
    pool: deadpool_postgres::Pool,
    cron: Cron,
    jobs_per_tick: u32,
}

/// What one tick did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tick {
    /// Another replica held the lock.
    Skipped,
    Ran {
        archived: u32,
        failed: u32,
    },
}

impl Scheduler {
    pub fn new(
        archives: Archives,
        pool: deadpool_postgres::Pool,
        cron: Cron,
        jobs_per_tick: u32,
    ) -> Self {
        Self {
            archives,
            pool,
            cron,
            jobs_per_tick,
        }
    }

    /// The first occurrence strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }

    /// Sleeps until each occurrence and ticks, until the drain starts.
    pub async fn run(self, drain: Drain) {
        loop {
            let Some(next) = self.next_after(Utc::now()) else {
                tracing::error!("the archive schedule has no next occurrence; stopping it");
                return;
            };
            let wait = (next - Utc::now()).to_std().unwrap_or_default();
            tracing::info!(%next, "next archive tick");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = drain.draining() => return,
            }
            match self.tick().await {
                Ok(Tick::Ran { archived, failed }) => {
                    tracing::info!(archived, failed, "archive tick done");
                }
                Ok(Tick::Skipped) => tracing::info!("archive tick ran on another replica"),
                Err(error) => tracing::error!(%error, "archive tick failed"),
            }
        }
    }

    /// One tick now, if no other replica is running one.
    pub async fn tick(&self) -> Result<Tick> {
        // The lock's session ends with this tick, whatever happens during it.
        let Some(lock) = AdvisoryLock::try_acquire(self.pool.get().await?, TICK_LOCK).await? else {
            return Ok(Tick::Skipped);
        };
        let (outcomes, mut received) = mpsc::channel::<Outcome>(16);
        let drain_outcomes = tokio::spawn(async move { while received.recv().await.is_some() {} });
        let result = self
            .archives
            .archive_due(
                &Actor::scheduler(),
                "retention schedule",
                self.jobs_per_tick,
                &outcomes,
            )
            .await;
        drop(outcomes);
        let _ = drain_outcomes.await;
        lock.release().await;
        let (archived, failed) = result?;
        Ok(Tick::Ran { archived, failed })
    }
}

#[cfg(test)]
mod tests {
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
