//! The scan archive through the gRPC API: archive, restore, refusals and failures.

use stowage_integration::{app::archive_store_name, scans, spawn_app};
use stowage_proto::archive::v1 as pb;
use stowage_shared::{
    auth::Role,
    blob::{BlobKey, BlobStore, Credential, Location, Provider, StoreConfig, StoreOptions},
};
use tonic::Code;

fn archive_request(job: uuid::Uuid) -> pb::ArchiveJobRequest {
    pb::ArchiveJobRequest {
        job_id: job.to_string(),
        reason: "test".into(),
        compression: 0,
        request_id: String::new(),
    }
}

fn restore_request(job: uuid::Uuid) -> pb::RestoreJobRequest {
    pb::RestoreJobRequest {
        job_id: job.to_string(),
        trigger: pb::RestoreTrigger::User.into(),
    }
}

async fn restore(
    client: &mut pb::archive_service_client::ArchiveServiceClient<stowage_integration::app::Bearer>,
    job: uuid::Uuid,
) -> Result<Vec<pb::RestoreProgress>, tonic::Status> {
    let mut stream = client.restore_job(restore_request(job)).await?.into_inner();
    let mut seen = Vec::new();
    while let Some(progress) = stream.message().await? {
        seen.push(progress);
    }
    Ok(seen)
}

#[tokio::test]
async fn an_archived_job_restores_every_column_of_every_row() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 1500, 700)
        .await
        .unwrap();
    let before = scans::table_digest(&db, job).await.unwrap();
    assert_eq!((before.1, before.2), (1500, 700));

    let admin = app.token("acme", &[Role::SuperAdmin]);
    let archived = app
        .archive_admin(Some(&admin))
        .await
        .archive_job(archive_request(job))
        .await;
    let archived = archived.unwrap().into_inner();
    assert_eq!(archived.state(), pb::ArchiveState::Archived);
    assert_eq!(archived.blob_key, format!("acme/{job}.json.zst"));
    assert_eq!((archived.scan_items, archived.file_records), (1500, 700));
    let (_, items, records) = scans::table_digest(&db, job).await.unwrap();
    assert_eq!((items, records), (0, 0), "archived rows leave PostgreSQL");

    let user = app.token("acme", &[Role::Member]);
    let mut client = app.archive(Some(&user)).await;
    let progress = restore(&mut client, job).await.unwrap();
    let last = progress.last().unwrap();
    assert_eq!(last.phase(), pb::RestorePhase::Done);
    assert_eq!(last.rows_done, 2200);
    assert_eq!(
        scans::table_digest(&db, job).await.unwrap(),
        before,
        "lossless"
    );
    let state = client
        .get_job_archive(pb::GetJobArchiveRequest {
            job_id: job.to_string(),
        })
        .await;
    assert_eq!(state.unwrap().into_inner().state(), pb::ArchiveState::Hot);

    // Restoring a hot job is a no-op success.
    let again = restore(&mut client, job).await.unwrap();
    assert!(again.last().unwrap().already_hot);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn gzip_archives_restore_too() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "FAILED", 9.0, 40, 20)
        .await
        .unwrap();
    let before = scans::table_digest(&db, job).await.unwrap();
    let admin = app.token("acme", &[Role::SuperAdmin]);
    let mut request = archive_request(job);
    request.compression = pb::Compression::Gzip.into();
    let archived = app
        .archive_admin(Some(&admin))
        .await
        .archive_job(request)
        .await
        .unwrap();
    assert!(archived.into_inner().blob_key.ends_with(".json.gz"));
    restore(&mut app.archive(Some(&admin)).await, job)
        .await
        .unwrap();
    assert_eq!(scans::table_digest(&db, job).await.unwrap(), before);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn active_jobs_are_never_archived_not_even_by_an_admin() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let admin = app.token("acme", &[Role::SuperAdmin]);
    for status in ["SCANNING", "READY_TO_TRANSFER", "TRANSFERRING", "PAUSED"] {
        let job = scans::insert_job(&db, "acme", status, 400.0, 5, 5)
            .await
            .unwrap();
        let refused = app
            .archive_admin(Some(&admin))
            .await
            .archive_job(archive_request(job))
            .await;
        assert_eq!(
            refused.unwrap_err().code(),
            Code::FailedPrecondition,
            "{status}"
        );
        assert_eq!(scans::table_digest(&db, job).await.unwrap().1, 5);
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn admin_calls_need_super_admin() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 5, 5)
        .await
        .unwrap();
    let org_admin = app.token("acme", &[Role::OrgAdmin]);
    let mut admin = app.archive_admin(Some(&org_admin)).await;
    let refused = admin.archive_job(archive_request(job)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let refused = admin
        .set_archive_store(pb::SetArchiveStoreRequest {
            connection_string: "memory://elsewhere".into(),
            container: "x".into(),
            reason: "test".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    app.stop().await.unwrap();
}

fn archive_store(app: &stowage_integration::TestApp) -> BlobStore {
    let config = StoreConfig {
        provider: Provider::Memory,
        location: Location {
            container: archive_store_name(&app.db),
            ..Location::default()
        },
        credential: Credential::None,
    };
    BlobStore::open(&config, &StoreOptions::fail_fast()).unwrap()
}

#[tokio::test]
async fn restore_of_a_corrupt_blob_is_data_loss_and_inserts_nothing() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 300, 100)
        .await
        .unwrap();
    let admin = app.token("acme", &[Role::SuperAdmin]);
    let archived = app
        .archive_admin(Some(&admin))
        .await
        .archive_job(archive_request(job))
        .await;
    let key = BlobKey::new(archived.unwrap().into_inner().blob_key).unwrap();
    let store = archive_store(&app);
    let read = store.get(&key).await.unwrap();
    let chunks: Vec<bytes::Bytes> = futures::TryStreamExt::try_collect(read.stream)
        .await
        .unwrap();
    let mut bytes = chunks.concat();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    store.put(&key, bytes.into(), false, &[]).await.unwrap();

    let status = restore(&mut app.archive(Some(&admin)).await, job)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DataLoss, "{}", status.message());
    let (_, items, records) = scans::table_digest(&db, job).await.unwrap();
    assert_eq!((items, records), (0, 0), "nothing inserted");
    let state = app
        .archive(Some(&admin))
        .await
        .get_job_archive(pb::GetJobArchiveRequest {
            job_id: job.to_string(),
        })
        .await
        .unwrap();
    assert_eq!(state.into_inner().state(), pb::ArchiveState::Archived);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn restore_of_a_missing_blob_is_not_found_and_the_job_stays_archived() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "CANCELLED", 3.0, 10, 10)
        .await
        .unwrap();
    let admin = app.token("acme", &[Role::SuperAdmin]);
    let archived = app
        .archive_admin(Some(&admin))
        .await
        .archive_job(archive_request(job))
        .await;
    let key = BlobKey::new(archived.unwrap().into_inner().blob_key).unwrap();
    archive_store(&app).delete(&key).await.unwrap();
    let status = restore(&mut app.archive(Some(&admin)).await, job)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{}", status.message());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_restores_insert_once() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 2000, 1000)
        .await
        .unwrap();
    let before = scans::table_digest(&db, job).await.unwrap();
    let admin = app.token("acme", &[Role::SuperAdmin]);
    app.archive_admin(Some(&admin))
        .await
        .archive_job(archive_request(job))
        .await
        .unwrap();
    let (mut a, mut b) = (
        app.archive(Some(&admin)).await,
        app.archive(Some(&admin)).await,
    );
    let (first, second) = tokio::join!(restore(&mut a, job), restore(&mut b, job));
    let (first, second) = (first.unwrap(), second.unwrap());
    let hot = [
        first.last().unwrap().already_hot,
        second.last().unwrap().already_hot,
    ];
    assert_eq!(
        hot.iter().filter(|h| **h).count(),
        1,
        "exactly one restore inserted"
    );
    assert_eq!(scans::table_digest(&db, job).await.unwrap(), before);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn another_tenant_cannot_see_or_restore_a_job() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 5, 5)
        .await
        .unwrap();
    let other = app.token("globex", &[Role::OrgAdmin]);
    let mut client = app.archive(Some(&other)).await;
    let get = client
        .get_job_archive(pb::GetJobArchiveRequest {
            job_id: job.to_string(),
        })
        .await;
    assert_eq!(get.unwrap_err().code(), Code::NotFound);
    assert_eq!(
        restore(&mut client, job).await.unwrap_err().code(),
        Code::NotFound
    );
    app.stop().await.unwrap();
}

async fn archive_due(app: &stowage_integration::TestApp, limit: i32) -> Vec<pb::ArchiveOutcome> {
    let admin = app.token("ops", &[Role::SuperAdmin]);
    let request = pb::ArchiveEligibleJobsRequest {
        limit,
        reason: "catch up".into(),
    };
    let mut stream = app
        .archive_admin(Some(&admin))
        .await
        .archive_eligible_jobs(request)
        .await
        .unwrap()
        .into_inner();
    let mut outcomes = Vec::new();
    while let Some(outcome) = stream.message().await.unwrap() {
        outcomes.push(outcome);
    }
    outcomes
}

#[tokio::test]
async fn each_terminal_status_archives_on_day_n_and_not_on_day_n_minus_one() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let mut due = Vec::new();
    let mut not_due = Vec::new();
    for (status, days) in [
        ("CANCELLED", 1.0),
        ("FAILED", 7.0),
        ("SCAN_COMPLETE", 14.0),
        ("COMPLETED", 14.0),
    ] {
        // A day short of the window (by a minute) and just past it.
        not_due.push(
            scans::insert_job(&db, "acme", status, days - 1.0, 3, 2)
                .await
                .unwrap(),
        );
        not_due.push(
            scans::insert_job(&db, "acme", status, days - 0.001, 3, 2)
                .await
                .unwrap(),
        );
        due.push(
            scans::insert_job(&db, "acme", status, days + 0.001, 3, 2)
                .await
                .unwrap(),
        );
    }
    for status in ["SCANNING", "READY_TO_TRANSFER", "TRANSFERRING", "PAUSED"] {
        not_due.push(
            scans::insert_job(&db, "acme", status, 365.0, 3, 2)
                .await
                .unwrap(),
        );
    }
    let outcomes = archive_due(&app, 100).await;
    let archived: Vec<uuid::Uuid> = outcomes
        .iter()
        .filter(|o| o.archived)
        .map(|o| o.job_id.parse().unwrap())
        .collect();
    assert!(outcomes.iter().all(|o| o.archived), "{outcomes:?}");
    let mut expected = due.clone();
    expected.sort();
    let mut got = archived.clone();
    got.sort();
    assert_eq!(got, expected);
    for job in not_due {
        assert_eq!(
            scans::table_digest(&db, job).await.unwrap().1,
            3,
            "job {job} stays hot"
        );
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_tick_takes_at_most_its_limit_oldest_terminal_first() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let mut jobs = Vec::new();
    for age in [30.0, 50.0, 20.0, 40.0, 60.0] {
        jobs.push((
            age,
            scans::insert_job(&db, "acme", "COMPLETED", age, 2, 1)
                .await
                .unwrap(),
        ));
    }
    let outcomes = archive_due(&app, 3).await;
    let order: Vec<uuid::Uuid> = outcomes.iter().map(|o| o.job_id.parse().unwrap()).collect();
    jobs.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap());
    let oldest: Vec<uuid::Uuid> = jobs.iter().take(3).map(|(_, id)| *id).collect();
    assert_eq!(order, oldest);
    let audited: i64 = db
        .query_one(
            "select count(*) from archive.audit_log
             where action = 'archive' and reason = 'catch up' and outcome = 'ok'
               and actor = 'test-user' and tenant_id = 'acme'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 3, "every archived job is audited");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn activity_resets_the_retention_clock() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 15.0, 3, 2)
        .await
        .unwrap();
    let user = app.token("acme", &[Role::Member]);
    let touched = app
        .archive(Some(&user))
        .await
        .touch_job(pb::TouchJobRequest {
            job_id: job.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_clock_restarted(&app, &touched).await;
    app.stop().await.unwrap();
}

/// The job is eligible again a full COMPLETED window (14 days) from now, so not due now.
async fn assert_clock_restarted(app: &stowage_integration::TestApp, state: &pb::JobArchive) {
    let eligible = state.eligible_time.unwrap();
    let in_days = (eligible.seconds - chrono::Utc::now().timestamp()) as f64 / 86_400.0;
    assert!(
        (13.9..=14.0).contains(&in_days),
        "eligible again in {in_days} days"
    );
    assert!(archive_due(app, 100).await.is_empty());
}

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
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
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
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
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
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
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
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
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

#[tokio::test]
async fn deleting_a_job_removes_its_summary_rows_and_blob_and_is_audited() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 10, 10)
        .await
        .unwrap();
    let admin = app.token("acme", &[Role::SuperAdmin]);
    let archived = app
        .archive_admin(Some(&admin))
        .await
        .archive_job(archive_request(job))
        .await;
    let key = BlobKey::new(archived.unwrap().into_inner().blob_key).unwrap();
    let org_admin = app.token("acme", &[Role::OrgAdmin]);
    let mut client = app.archive(Some(&org_admin)).await;
    let no_reason = pb::DeleteJobRequest {
        job_id: job.to_string(),
        ..Default::default()
    };
    assert_eq!(
        client.delete_job(no_reason).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let deleted = client
        .delete_job(pb::DeleteJobRequest {
            job_id: job.to_string(),
            reason: "customer request".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.blob_deleted);
    let gone = client
        .get_job_archive(pb::GetJobArchiveRequest {
            job_id: job.to_string(),
        })
        .await;
    assert_eq!(gone.unwrap_err().code(), Code::NotFound);
    assert!(matches!(
        archive_store(&app).size(&key).await,
        Err(stowage_shared::blob::BlobError::NotFound(_))
    ));
    let audited: i64 = db
        .query_one(
            "select count(*) from archive.audit_log
             where job_id = $1 and action = 'delete' and reason = 'customer request'",
            &[&job],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 1);
    app.stop().await.unwrap();
}

/// Replaces a hot job's rows by a blob in the earlier system's format (camelCase JSON of
/// every column, gzipped, unencrypted), after `edit` changes the payload.
async fn archive_as_legacy(
    app: &stowage_integration::TestApp,
    db: &tokio_postgres::Client,
    job: uuid::Uuid,
    edit: impl FnOnce(&mut serde_json::Value),
) {
    use std::io::Write;

    // The earlier system's payload: camelCase JSON of every column, gzipped, unencrypted.
    let mut json: serde_json::Value = db
        .query_one(
            "select json_build_object(
               'scanItems', (select json_agg(json_build_object('jobId', job_id, 'id', id,
                   'parentId', parent_id, 'path', path, 'name', name, 'kind', kind,
                   'sizeBytes', size_bytes, 'modifiedAt', modified_at, 'etag', etag,
                   'mimeType', mime_type, 'status', status, 'error', error,
                   'discoveredAt', discovered_at)) from archive.scan_items where job_id = $1),
               'fileRecords', (select json_agg(json_build_object('jobId', job_id, 'id', id,
                   'scanItemId', scan_item_id, 'sourcePath', source_path,
                   'destinationPath', destination_path, 'sizeBytes', size_bytes,
                   'checksum', checksum, 'status', status, 'attempts', attempts,
                   'lastError', last_error, 'startedAt', started_at,
                   'completedAt', completed_at)) from archive.file_records where job_id = $1))",
            &[&job],
        )
        .await
        .unwrap()
        .get(0);
    edit(&mut json);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json.to_string().as_bytes()).unwrap();
    let key = format!("acme/{job}.json.gz");
    archive_store(app)
        .put(
            &BlobKey::new(key.clone()).unwrap(),
            gz.finish().unwrap().into(),
            false,
            &[],
        )
        .await
        .unwrap();
    db.batch_execute(&format!(
        "update archive.scan_jobs set archived_at = now(), archive_blob_key = '{key}',
             archive_format = 'legacy.json.gz' where id = '{job}';
         delete from archive.scan_items where job_id = '{job}';
         delete from archive.file_records where job_id = '{job}';"
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn legacy_unencrypted_gzip_archives_restore() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 200.0, 120, 80)
        .await
        .unwrap();
    let before = scans::table_digest(&db, job).await.unwrap();
    archive_as_legacy(&app, &db, job, |_| {}).await;
    let user = app.token("acme", &[Role::Member]);
    let done = restore(&mut app.archive(Some(&user)).await, job)
        .await
        .unwrap();
    assert_eq!(done.last().unwrap().rows_done, 200);
    assert_eq!(scans::table_digest(&db, job).await.unwrap(), before);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_payload_missing_an_array_is_data_loss_and_inserts_nothing() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 200.0, 30, 20)
        .await
        .unwrap();
    archive_as_legacy(&app, &db, job, |json| {
        json.as_object_mut().unwrap().remove("fileRecords");
    })
    .await;
    let user = app.token("acme", &[Role::Member]);
    let status = restore(&mut app.archive(Some(&user)).await, job)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DataLoss, "{}", status.message());
    assert_eq!(
        scans::table_digest(&db, job).await.unwrap().1,
        0,
        "nothing inserted"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn rows_that_differ_from_the_digest_their_blob_carries_are_data_loss() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 200.0, 30, 20)
        .await
        .unwrap();
    // A well-formed payload whose rows are not the ones its digest was taken of.
    archive_as_legacy(&app, &db, job, |json| {
        // The right row count (50 = 0x32), the wrong sum.
        let digest = format!("{}{:016x}", "00".repeat(16), 50);
        json["rowsDigest"] = serde_json::json!(digest);
    })
    .await;
    let user = app.token("acme", &[Role::Member]);
    let status = restore(&mut app.archive(Some(&user)).await, job)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DataLoss, "{}", status.message());
    assert!(status.message().contains("digest"), "{}", status.message());
    assert_eq!(
        scans::table_digest(&db, job).await.unwrap().1,
        0,
        "nothing inserted"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_new_archive_store_takes_effect_without_a_restart() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let first = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 5, 5)
        .await
        .unwrap();
    let second = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 5, 5)
        .await
        .unwrap();
    let admin = app.token("ops", &[Role::SuperAdmin]);
    let mut client = app.archive_admin(Some(&admin)).await;
    client.archive_job(archive_request(first)).await.unwrap();
    let rotated = format!("rotated-{}", app.db.name);
    client
        .set_archive_store(pb::SetArchiveStoreRequest {
            connection_string: format!("memory://{rotated}"),
            container: "archives".into(),
            reason: "key rotation".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let archived = client
        .archive_job(archive_request(second))
        .await
        .unwrap()
        .into_inner();
    let store = BlobStore::open(
        &StoreConfig {
            provider: Provider::Memory,
            location: Location {
                container: rotated,
                ..Location::default()
            },
            credential: Credential::None,
        },
        &StoreOptions::fail_fast(),
    )
    .unwrap();
    assert!(
        store
            .size(&BlobKey::new(archived.blob_key).unwrap())
            .await
            .is_ok()
    );
    let bad = client
        .set_archive_store(pb::SetArchiveStoreRequest {
            connection_string: "AccountName=x".into(),
            container: "archives".into(),
            reason: "typo".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_schedule_archives_exactly_the_jobs_whose_eligible_time_has_passed() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let mut jobs = Vec::new();
    for (status, idle_days) in [
        ("COMPLETED", 15.0),
        ("COMPLETED", 13.0),
        ("SCAN_COMPLETE", 14.5),
        ("CANCELLED", 2.0),
        ("CANCELLED", 0.5),
        ("FAILED", 8.0),
        ("FAILED", 6.0),
        ("SCANNING", 400.0),
        ("PAUSED", 400.0),
    ] {
        jobs.push(
            scans::insert_job(&db, "acme", status, idle_days, 2, 2)
                .await
                .unwrap(),
        );
    }
    // A terminal job the scanner gave no terminal timestamp: idle since its last activity.
    let untimed = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 2, 2)
        .await
        .unwrap();
    db.execute(
        "update archive.scan_jobs set terminal_at = null where id = $1",
        &[&untimed],
    )
    .await
    .unwrap();
    // Terminal long ago, but touched yesterday.
    let touched = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 2, 2)
        .await
        .unwrap();
    db.execute(
        "update archive.scan_jobs set last_activity_at = now() - interval '1 day' where id = $1",
        &[&touched],
    )
    .await
    .unwrap();
    jobs.extend([untimed, touched]);

    let user = app.token("acme", &[Role::Member]);
    let mut client = app.archive(Some(&user)).await;
    let now = std::time::SystemTime::now();
    let mut due = std::collections::BTreeSet::new();
    for job in &jobs {
        let state = client
            .get_job_archive(pb::GetJobArchiveRequest {
                job_id: job.to_string(),
            })
            .await
            .unwrap()
            .into_inner();
        if let Some(at) = state.eligible_time {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(at.seconds as u64);
            if at <= now {
                due.insert(job.to_string());
            }
        }
    }
    assert!(
        due.contains(&untimed.to_string()),
        "due from its last activity"
    );
    assert!(
        !due.contains(&touched.to_string()),
        "activity restarts the clock"
    );
    assert_eq!(due.len(), 5);
    let archived: std::collections::BTreeSet<String> = archive_due(&app, 100)
        .await
        .into_iter()
        .filter(|outcome| outcome.archived)
        .map(|outcome| outcome.job_id)
        .collect();
    assert_eq!(archived, due, "the schedule's SQL and the rule agree");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_scan_table_changed_under_the_service_is_an_error_not_a_crash() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 2, 2)
        .await
        .unwrap();
    // The scanning application's migration narrowed a column archive-svc reads.
    db.batch_execute("alter table archive.scan_jobs alter column file_count type integer")
        .await
        .unwrap();
    let user = app.token("acme", &[Role::Member]);
    let mut client = app.archive(Some(&user)).await;
    let request = pb::GetJobArchiveRequest {
        job_id: job.to_string(),
    };
    let status = client.get_job_archive(request.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{}", status.message());
    // The server is still there for the next call.
    let again = client.get_job_archive(request).await.unwrap_err();
    assert_eq!(again.code(), Code::Internal);
    app.stop().await.unwrap();
}
