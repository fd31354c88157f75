//! `archive.archive_queue`: the due jobs the tick enqueued, claimed by replicas with
//! `FOR UPDATE SKIP LOCKED` (so no two claim the same job) under a lease, and finished,
//! or put back to wait out a backoff.

use std::time::Duration;

use chrono::{DateTime, Utc};
use stowage_shared::db::{self, GenericClient};
use uuid::Uuid;

use super::jobs;
use crate::{domain::jobs::JobStatus, error::Result};

/// A claimed job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimed {
    pub job_id: Uuid,
    pub tenant_id: String,
    /// Attempts so far, this one included.
    pub attempts: i32,
}

/// Enqueues the jobs due at `now` (`jobs::DUE`), up to `limit` of them, oldest terminal
/// first; jobs already queued stay as they are. Returns how many were added.
pub async fn enqueue_due(
    client: &impl GenericClient,
    windows: &[(JobStatus, i32)],
    now: DateTime<Utc>,
    limit: i64,
) -> Result<u64> {
    let (statuses, days) = jobs::window_params(windows);
    let sql = format!(
        "insert into archive.archive_queue (job_id, tenant_id, idle_since) {}
         on conflict (job_id) do nothing",
        jobs::DUE
    );
    Ok(db::execute(client, &sql, &[&statuses, &days, &now, &limit]).await?)
}

/// Claims up to `limit` ready jobs for `owner` until `lease` from now: oldest terminal
/// first, skipping rows another replica is claiming.
pub async fn claim(
    client: &impl GenericClient,
    owner: &str,
    lease: Duration,
    limit: i64,
) -> Result<Vec<Claimed>> {
    let lease_seconds = lease.as_secs_f64();
    let statement = client
        .prepare_cached(
            "update archive.archive_queue q
             set claimed_by = $1, claimed_until = now() + make_interval(secs => $2),
                 attempts = q.attempts + 1
             where q.job_id in (
                 select job_id from archive.archive_queue
                 where next_attempt_at <= now()
                   and (claimed_until is null or claimed_until < now())
                 order by idle_since, job_id
                 limit $3
                 for update skip locked)
             returning q.job_id, q.tenant_id, q.attempts",
        )
        .await?;
    let rows = client
        .query(&statement, &[&owner, &lease_seconds, &limit])
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Claimed {
                job_id: row.try_get(0)?,
                tenant_id: row.try_get(1)?,
                attempts: row.try_get(2)?,
            })
        })
        .collect()
}

/// Removes a job `owner` claimed: archived, no longer due, or given up on.
pub async fn finish(client: &impl GenericClient, job_id: Uuid, owner: &str) -> Result<()> {
    db::execute(
        client,
        "delete from archive.archive_queue where job_id = $1 and claimed_by = $2",
        &[&job_id, &owner],
    )
    .await?;
    Ok(())
}

/// Puts a job `owner` claimed back, to be tried again after `backoff`.
pub async fn retry_later(
    client: &impl GenericClient,
    job_id: Uuid,
    owner: &str,
    error: &str,
    backoff: Duration,
) -> Result<()> {
    db::execute(
        client,
        "update archive.archive_queue
         set claimed_by = null, claimed_until = null, last_error = $3,
             next_attempt_at = now() + make_interval(secs => $4)
         where job_id = $1 and claimed_by = $2",
        &[&job_id, &owner, &error, &backoff.as_secs_f64()],
    )
    .await?;
    Ok(())
}

/// Jobs in the queue, and of those how many wait out a backoff.
pub async fn depth(client: &impl GenericClient) -> Result<(i64, i64)> {
    let row = client
        .query_one(
            "select count(*), count(*) filter (where next_attempt_at > now())
             from archive.archive_queue",
            &[],
        )
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}
