//! archive-svc's metrics: the catalog of every metric it records (described, and each
//! series at zero from start), and the backlog gauges: jobs eligible for archiving now but
//! not yet archived, and how long the longest-waiting one has been eligible, read from
//! `archive.scan_jobs` by the eligibility rule of `db::jobs::DUE` (a terminal job without
//! a terminal timestamp is due from its last activity), and the queue's depth.

use std::time::Duration;

use deadpool_postgres::Pool;
use metrics::Unit;
use stowage_shared::{instruments::Metric, startup::Foundation, sweep::Verdict};

use crate::{db, domain::policy::RetentionPolicy, error::Result};

pub const BACKLOG: &str = "archive_backlog_jobs";
pub const BACKLOG_OLDEST: &str = "archive_backlog_oldest_seconds";
pub const VERIFIED: &str = "archive_verified_blobs_total";
pub const QUEUED: &str = "archive_queue_jobs";
pub const QUEUED_BACKING_OFF: &str = "archive_queue_backing_off_jobs";

/// How often the backlog is counted.
pub const BACKLOG_PERIOD: Duration = Duration::from_secs(60);

/// Every metric archive-svc exports besides the shared gRPC and pool ones.
pub fn catalog() -> Vec<Metric> {
    vec![
        Metric::counter(
            "archive_jobs_archived_total",
            "Jobs whose rows were archived to a verified blob and deleted from PostgreSQL",
        ),
        Metric::counter(
            "archive_rows_archived_total",
            "Rows (scan items and file records) moved to archive blobs",
        ),
        Metric::histogram("archive_job_seconds", "Time to archive one job").unit(Unit::Seconds),
        Metric::counter(
            "archive_jobs_failed_total",
            "Jobs the schedule or a bulk archive tried and failed to archive (their rows stay \
             hot)",
        ),
        Metric::counter(
            "archive_jobs_restored_total",
            "Jobs whose rows were restored from their archive blob",
        ),
        Metric::counter(
            "archive_rows_restored_total",
            "Rows inserted back into PostgreSQL by restores",
        ),
        Metric::histogram("archive_restore_seconds", "Time to restore one job").unit(Unit::Seconds),
        Metric::counter(
            "archive_jobs_moved_total",
            "Archives moved to the newest archive store version",
        ),
        Metric::counter(
            VERIFIED,
            "Archive blobs an integrity sweep (VerifyArchives) checked, by result",
        )
        .per("result", Verdict::ALL.map(Verdict::as_str)),
        Metric::counter(
            "archive_blobs_swept_total",
            "Blobs of deleted or moved archives removed from their store",
        ),
        Metric::gauge(
            BACKLOG,
            "Jobs eligible for archiving now (terminal, idle past their window) but not yet \
             archived",
        ),
        Metric::gauge(
            BACKLOG_OLDEST,
            "How long the longest-waiting job of the backlog has been eligible (0: no backlog)",
        )
        .unit(Unit::Seconds),
        Metric::gauge(
            QUEUED,
            "Jobs the schedule enqueued that no replica has archived yet",
        ),
        Metric::gauge(
            QUEUED_BACKING_OFF,
            "Queued jobs waiting out a backoff after a failed attempt",
        ),
    ]
}

/// Sets the backlog and queue gauges.
pub async fn backlog(pool: &Pool, policy: &RetentionPolicy) -> Result<()> {
    let (statuses, days) = db::jobs::window_params(&policy.windows());
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "select count(*)::int8,
                    coalesce(extract(epoch from now() - min(greatest(j.terminal_at,
                        j.last_activity_at) + make_interval(days => policy.days))), 0)::float8
             from archive.scan_jobs j
             join unnest($1::text[], $2::int4[]) as policy(status, days)
               on policy.status = j.status
             where j.archived_at is null
               and greatest(j.terminal_at, j.last_activity_at)
                   <= now() - make_interval(days => policy.days)",
        )
        .await?;
    let row = client.query_one(&statement, &[&statuses, &days]).await?;
    let (jobs, oldest): (i64, f64) = (row.try_get(0)?, row.try_get(1)?);
    metrics::gauge!(BACKLOG).set(jobs as f64);
    metrics::gauge!(BACKLOG_OLDEST).set(oldest.max(0.0));
    let (queued, backing_off) = db::queue::depth(&client).await?;
    metrics::gauge!(QUEUED).set(queued as f64);
    metrics::gauge!(QUEUED_BACKING_OFF).set(backing_off as f64);
    Ok(())
}

/// Registers the catalog and keeps the backlog gauges current while the server serves.
pub fn install(foundation: &mut Foundation, policy: &RetentionPolicy) {
    foundation.register_metrics(&catalog());
    let (pool, policy) = (foundation.pool.clone(), policy.clone());
    foundation.run_alongside(stowage_shared::instruments::every(
        BACKLOG_PERIOD,
        "archive_backlog",
        move || {
            let (pool, policy) = (pool.clone(), policy.clone());
            async move { backlog(&pool, &policy).await }
        },
    ));
}
