//! The archive queue across replicas: the tick enqueues the due jobs (up to its limit,
//! oldest terminal first); every replica's workers claim from the queue, so two replicas
//! archive disjoint jobs in parallel and none is archived twice; a job another operation
//! holds waits out a backoff instead of blocking the queue's head, and is archived once
//! free. PostgreSQL and the memory archive store.

use std::time::{Duration, Instant};

use stowage_integration::{TestApp, db::count, scans, spawn_app_configured};
use uuid::Uuid;

fn quick(archive: &mut archive_svc::config::ArchiveConfig) {
    archive.queue.concurrency = 2;
    archive.queue.poll_interval = Duration::from_millis(50);
    archive.queue.backoff = Duration::from_millis(300);
}

async fn due_jobs(app: &TestApp, n: usize) -> Vec<Uuid> {
    let db = app.db.client().await.unwrap();
    let mut jobs = Vec::new();
    for i in 0..n {
        // oldest first in insertion order
        let idle_days = 200.0 - i as f64;
        let job = scans::insert_job(&db, "acme", "COMPLETED", idle_days, 20, 10)
            .await
            .unwrap();
        jobs.push(job);
    }
    jobs
}

/// Waits (at most a minute) until every one of `jobs` is archived.
async fn wait_archived(app: &TestApp, jobs: &[Uuid]) {
    let db = app.db.client().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let archived = count(
            &db,
            "select count(*) from archive.scan_jobs
                 where id = any($1) and archived_at is not null",
            &[&jobs],
        )
        .await
        .unwrap();
        if archived == jobs.len() as i64 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{archived} of {} archived",
            jobs.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn two_replicas_archive_disjoint_jobs_and_none_twice() {
    let mut settings = archive_svc::config::ArchiveConfig::default();
    quick(&mut settings);
    let app = spawn_app_configured(|configs| quick(&mut configs.archive.archive))
        .await
        .unwrap();
    let _second = app.archive_replica(settings.clone()).await.unwrap();
    let jobs = due_jobs(&app, 30).await;
    settings.jobs_per_tick = 24;
    assert_eq!(
        app.archive_tick(&settings).await.unwrap(),
        24,
        "the tick's limit"
    );
    let (first, rest) = jobs.split_at(24);
    wait_archived(&app, first).await;

    let db = app.db.client().await.unwrap();
    let rows = db
        .query(
            "select job_id, count(*), min(detail->>'worker') from archive.audit_log
             where action = 'archive' and outcome = 'ok' group by job_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 24, "only the oldest 24 were archived");
    assert!(
        rows.iter().all(|r| r.get::<_, i64>(1) == 1),
        "none archived twice"
    );
    let archived: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    assert!(first.iter().all(|j| archived.contains(j)));
    assert!(!rest.iter().any(|j| archived.contains(j)));
    let workers: std::collections::BTreeSet<String> = rows.iter().map(|r| r.get(2)).collect();
    assert_eq!(workers.len(), 2, "both replicas archived: {workers:?}");
    let queued = count(&db, "select count(*) from archive.archive_queue", &[])
        .await
        .unwrap();
    assert_eq!(queued, 0, "archived jobs leave the queue");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_job_held_elsewhere_backs_off_without_blocking_the_queue() {
    let mut settings = archive_svc::config::ArchiveConfig::default();
    quick(&mut settings);
    let app = spawn_app_configured(|configs| quick(&mut configs.archive.archive))
        .await
        .unwrap();
    let jobs = due_jobs(&app, 5).await;
    let head = jobs[0];
    // Another blob-writing operation on the oldest job: it holds the job's lock.
    let holder = app.db.client().await.unwrap();
    holder
        .execute(
            "select pg_advisory_lock(hashtext($1))",
            &[&format!("stowage.archive.job/{head}")],
        )
        .await
        .unwrap();
    assert_eq!(app.archive_tick(&settings).await.unwrap(), 5);
    wait_archived(&app, &jobs[1..]).await;

    let db = app.db.client().await.unwrap();
    let row = db
        .query_one(
            "select attempts, last_error from archive.archive_queue where job_id = $1",
            &[&head],
        )
        .await
        .unwrap();
    assert!(row.get::<_, i32>(0) >= 1);
    assert!(row.get::<_, String>(1).contains("in flight"));
    holder
        .execute(
            "select pg_advisory_unlock(hashtext($1))",
            &[&format!("stowage.archive.job/{head}")],
        )
        .await
        .unwrap();
    wait_archived(&app, &[head]).await;
    app.stop().await.unwrap();
}
