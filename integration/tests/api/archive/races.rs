//! An archive racing the application: a touch, a row write or a dead connection during
//! an archive leaves every row hot.

use super::*;

/// Waits (up to 10 s) until `count` sessions of the test database wait on a lock.
async fn wait_for_lock_waiters(db: &tokio_postgres::Client, count: i64) {
    for _ in 0..200 {
        let row = db
            .query_one(
                "select count(*) from pg_stat_activity
                 where datname = current_database() and wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(0) >= count {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{count} sessions never waited on a lock");
}

/// An admin `ArchiveJob` call in flight.
type HeldArchive = tokio::task::JoinHandle<Result<tonic::Response<pb::JobArchive>, tonic::Status>>;

/// Starts an admin archive of `job` while another session holds the job's row lock, and
/// returns once the archive waits on it: at its final check, rows deleted and blob written.
/// The holder (in an open transaction) decides what the archive then sees.
async fn archive_held_at_final_check(
    app: &stowage_integration::TestApp,
    db: &tokio_postgres::Client,
    job: uuid::Uuid,
) -> (tokio_postgres::Client, HeldArchive) {
    let blocker = app.db.client().await.unwrap();
    blocker
        .batch_execute(&format!(
            "begin; select 1 from archive.scan_jobs where id = '{job}' for update"
        ))
        .await
        .unwrap();
    let admin = app.token("acme", &[Role::SuperAdmin]);
    let mut client = app.archive_admin(Some(&admin)).await;
    let archive = tokio::spawn(async move { client.archive_job(archive_request(job)).await });
    wait_for_lock_waiters(db, 1).await;
    (blocker, archive)
}

/// Touches the job through the session holding its row lock, commits, and checks that the
/// held archive then refuses: it saw the activity and rolled back.
async fn touch_and_see_the_archive_roll_back(
    blocker: tokio_postgres::Client,
    archive: HeldArchive,
    job: uuid::Uuid,
) {
    blocker
        .batch_execute(&format!(
            "update archive.scan_jobs set last_activity_at = now() where id = '{job}'; commit"
        ))
        .await
        .unwrap();
    let refused = archive.await.unwrap().unwrap_err();
    assert_eq!(
        refused.code(),
        Code::FailedPrecondition,
        "{}",
        refused.message()
    );
}

#[tokio::test]
async fn restoring_a_hot_job_records_activity() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 3, 2)
        .await
        .unwrap();
    let user = app.token("acme", &[Role::Member]);
    let mut client = app.archive(Some(&user)).await;
    let seen = restore(&mut client, job).await.unwrap();
    assert!(seen.last().unwrap().already_hot);
    let state = client
        .get_job_archive(pb::GetJobArchiveRequest {
            job_id: job.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_clock_restarted(&app, &state).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_row_write_during_an_archive_waits_and_lands_on_hot_rows() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 30, 40)
        .await
        .unwrap();
    let (blocker, archive) = archive_held_at_final_check(&app, &db, job).await;
    // A retry writes the job's rows: it waits on the rows the archive has deleted.
    let writer = app.db.client().await.unwrap();
    let write = tokio::spawn(async move {
        writer
            .execute(
                "update archive.file_records set attempts = attempts + 1 where job_id = $1",
                &[&job],
            )
            .await
    });
    wait_for_lock_waiters(&db, 2).await;
    // Activity on the job (what the retry's RestoreJob records): the archive rolls back
    // and the write lands.
    touch_and_see_the_archive_roll_back(blocker, archive, job).await;
    assert_eq!(write.await.unwrap().unwrap(), 40, "every record updated");
    let (_, items, records) = scans::table_digest(&db, job).await.unwrap();
    assert_eq!((items, records), (30, 40), "rows stay hot");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_archive_whose_connection_dies_before_commit_leaves_every_row_hot() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 300, 200)
        .await
        .unwrap();
    let before = scans::table_digest(&db, job).await.unwrap();
    // The archive stops at its final check, rows deleted, blob written; then its session
    // dies, as it would with the process.
    let (blocker, archive) = archive_held_at_final_check(&app, &db, job).await;
    let killed = db
        .query_one(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity
             where datname = current_database() and wait_event_type = 'Lock'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(killed.get::<_, i64>(0), 1);
    assert!(archive.await.unwrap().is_err());
    blocker.batch_execute("commit").await.unwrap();
    assert_eq!(
        scans::table_digest(&db, job).await.unwrap(),
        before,
        "every row hot and unchanged"
    );

    // The next archive overwrites the stray blob and restores losslessly.
    let admin = app.token("acme", &[Role::SuperAdmin]);
    let mut client = app.archive_admin(Some(&admin)).await;
    let archived = client.archive_job(archive_request(job)).await.unwrap();
    assert_eq!(archived.into_inner().state(), pb::ArchiveState::Archived);
    let user = app.token("acme", &[Role::Member]);
    restore(&mut app.archive(Some(&user)).await, job)
        .await
        .unwrap();
    assert_eq!(scans::table_digest(&db, job).await.unwrap(), before);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_archive_racing_a_touch_leaves_the_job_hot() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 50, 50)
        .await
        .unwrap();
    let (blocker, archive) = archive_held_at_final_check(&app, &db, job).await;
    // The user touches the job while it is being archived.
    touch_and_see_the_archive_roll_back(blocker, archive, job).await;
    assert_eq!(
        scans::table_digest(&db, job).await.unwrap().1,
        50,
        "rows stay hot"
    );
    app.stop().await.unwrap();
}
